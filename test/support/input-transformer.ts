/**
 * A test-only evaluator of an EventBridge rule target's input transformation and HTTP
 * parameters, following AWS's documented semantics:
 *
 * - https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-transform-target-input.html
 *   ("Predefined variables", "Input transform examples", "Common issues with transforming input")
 * - https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_InputTransformer.html
 *   (at most 100 InputPathsMap entries; keys `[A-Za-z0-9_-]+`, not starting with "AWS")
 * - https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-api-destinations.html
 *   (API destination targets: header, query-string and path parameters, static or a JSONPath
 *   into the original event, never into the transformed one)
 *
 * It renders what the target would receive for one event, so two targets can be compared.
 * Where the docs leave a detail open, the choice made here is stated next to the code.
 */

/** The input-related part of a CloudFormation `AWS::Events::Rule` target, tokens resolved. */
export interface RuleTargetInputConfig {
  readonly Input?: string;
  readonly InputPath?: string;
  readonly InputTransformer?: {
    readonly InputPathsMap?: Record<string, string>;
    readonly InputTemplate: string;
  };
  readonly HttpParameters?: {
    readonly HeaderParameters?: Record<string, string>;
    readonly QueryStringParameters?: Record<string, string>;
    readonly PathParameterValues?: string[];
  };
}

/** What EventBridge knows besides the event when it delivers it: the predefined variables. */
export interface DeliveryContext {
  /** `<aws.events.rule-arn>`: the ARN of the rule delivering the event. */
  readonly ruleArn: string;
  /** `<aws.events.rule-name>`: that rule's name. */
  readonly ruleName: string;
  /** `<aws.events.event.ingestion-time>`: when EventBridge received the event (ISO 8601). */
  readonly ingestionTime: string;
}

/** The request an API destination target sends for one event. */
export interface RenderedRequest {
  readonly body: string;
  readonly headers: Record<string, string>;
  readonly queryString: Record<string, string>;
  readonly pathParameters: string[];
}

/** EventBridge's limit on InputPathsMap entries (API_InputTransformer: "Maximum number of 100 items"). */
export const MAX_INPUT_PATHS_MAP_ENTRIES = 100;

/** The result of a JSONPath: `found` is false when the path matches nothing. */
export type PathResult = { readonly found: true; readonly value: unknown } | { readonly found: false };

type Segment = { readonly kind: 'name'; readonly name: string } | { readonly kind: 'index'; readonly index: number } | { readonly kind: 'wildcard' };

/**
 * Parses the JSONPath subset EventBridge documents ("EventBridge does not support all JSON
 * Path syntax"): `$`, dot notation with names of letters, digits, dashes, underscores (and
 * forward slashes, listed in the current page), array indices `[n]` and wildcards (`.*`,
 * `[*]`). Anything else throws, so a test never relies on syntax EventBridge may reject.
 */
export function parseJsonPath(path: string): Segment[] {
  if (!path.startsWith('$')) throw new Error(`JSONPath must start with $: ${JSON.stringify(path)}`);
  const segments: Segment[] = [];
  const re = /\.([A-Za-z0-9_\-/]+)|\.\*|\[(\d+)\]|\[\*\]/y;
  re.lastIndex = 1;
  while (re.lastIndex < path.length) {
    const start = re.lastIndex;
    const m = re.exec(path);
    if (!m) throw new Error(`Unsupported JSONPath syntax at ${JSON.stringify(path.slice(start))} in ${JSON.stringify(path)}`);
    if (m[1] !== undefined) segments.push({ kind: 'name', name: m[1] });
    else if (m[2] !== undefined) segments.push({ kind: 'index', index: Number(m[2]) });
    else segments.push({ kind: 'wildcard' });
  }
  return segments;
}

/**
 * Evaluates a JSONPath against an event. Without a wildcard the result is the one value
 * found; with a wildcard it is the array of every value matched, in document order.
 */
export function evaluateJsonPath(root: unknown, path: string): PathResult {
  const segments = parseJsonPath(path);
  let nodes: unknown[] = [root];
  let multiple = false;
  for (const segment of segments) {
    const next: unknown[] = [];
    for (const node of nodes) {
      if (segment.kind === 'name') {
        if (isObject(node) && Object.prototype.hasOwnProperty.call(node, segment.name)) next.push(node[segment.name]);
      } else if (segment.kind === 'index') {
        if (Array.isArray(node) && segment.index < node.length) next.push(node[segment.index]);
      } else {
        multiple = true;
        if (Array.isArray(node)) next.push(...node);
        else if (isObject(node)) next.push(...Object.values(node));
      }
    }
    nodes = next;
  }
  if (nodes.length === 0) return { found: false };
  return { found: true, value: multiple ? nodes : nodes[0] };
}

/** The predefined variables, from "Predefined variables" on the input transformation page. */
function predefinedVariables(event: Record<string, unknown>, context: DeliveryContext): Map<string, PredefinedValue> {
  const { detail: _detail, ...withoutDetail } = event;
  return new Map<string, PredefinedValue>([
    ['aws.events.rule-arn', { value: context.ruleArn, unescapedJson: false }],
    ['aws.events.rule-name', { value: context.ruleName, unescapedJson: false }],
    ['aws.events.event.ingestion-time', { value: context.ingestionTime, unescapedJson: false }],
    // "The original event payload as JSON (without the detail field). Can only be used as a
    // value for a JSON field, as its contents are not escaped."
    ['aws.events.event', { value: withoutDetail, unescapedJson: true }],
    // "The full original event payload as JSON (with the detail field)." Same restriction.
    ['aws.events.event.json', { value: event, unescapedJson: true }],
  ]);
}

interface PredefinedValue {
  readonly value: unknown;
  /** Rendered as its JSON text wherever it stands, since its contents are not escaped. */
  readonly unescapedJson: boolean;
}

/**
 * Renders an InputTemplate for one event.
 *
 * - A variable is `<name>`, defined by the InputPathsMap or predefined. A `<...>` that names
 *   no variable stays as it is (it is text, not a placeholder).
 * - A variable whose JSONPath matches nothing "isn't created and won't appear in the
 *   output": it renders as nothing here. Inside a quoted string this matches what AWS
 *   returned in LocalStack's recorded AWS snapshot (tests/aws/services/events/
 *   test_events_inputs.snapshot.json, "custom-variables-not-match-all": the missing
 *   variable's place in the string is empty); outside quotes the docs do not say more.
 * - JSON templates (a JSON text once every placeholder outside string literals is read as a
 *   value, the templates the docs' examples use, including a single quoted string):
 *   - outside quotes, a string renders with quotes added ("EventBridge automatically adds
 *     quotes to string variable values"), an object, array, number, boolean or null as its
 *     JSON ("EventBridge does not add quotes to variables that represent JSON objects or arrays");
 *   - inside quotes, a string renders as its raw characters ("EventBridge doesn't escape
 *     values extracted by Input Path"), a number, boolean or null as its JSON text, and an
 *     object or array as its JSON without quotes ("If a JSON path references a JSON object or
 *     array, but the variable is referenced in a string, EventBridge removes any internal
 *     quotes to ensure a valid string");
 *   - quotes escaped with a backslash inside a string do not end it ("String with escaped
 *     quotes" example).
 * - Any other template is text: every value renders raw (strings unquoted, anything else as JSON).
 * - `<aws.events.event>` and `<aws.events.event.json>` render their JSON unescaped ("its
 *   contents are not escaped"). The docs allow them only as the value of a JSON field, not
 *   inside a string; what EventBridge does there is not documented, so this evaluator throws.
 */
export function renderInputTemplate(
  template: string,
  inputPathsMap: Record<string, string>,
  event: Record<string, unknown>,
  context: DeliveryContext,
): string {
  const keys = Object.keys(inputPathsMap);
  if (keys.length > MAX_INPUT_PATHS_MAP_ENTRIES) {
    throw new Error(`InputPathsMap has ${keys.length} entries; EventBridge allows at most ${MAX_INPUT_PATHS_MAP_ENTRIES}`);
  }
  const predefined = predefinedVariables(event, context);
  for (const key of keys) {
    if (!/^[A-Za-z0-9_-]+$/.test(key) || key.startsWith('AWS')) {
      throw new Error(`InputPathsMap key ${JSON.stringify(key)} is not allowed (pattern [A-Za-z0-9_-]+, not starting with "AWS")`);
    }
  }
  const lookup: Lookup = (name) => {
    const pre = predefined.get(name);
    if (pre) return { defined: true, found: true, value: pre.value, unescapedJson: pre.unescapedJson };
    if (!Object.prototype.hasOwnProperty.call(inputPathsMap, name)) return { defined: false };
    const result = evaluateJsonPath(event, inputPathsMap[name]);
    if (!result.found) return { defined: true, found: false, unescapedJson: false };
    return { defined: true, found: true, value: result.value, unescapedJson: false };
  };
  const jsonTemplate = isJsonTemplate(template, (name) => lookup(name).defined);
  return substitute(template, lookup, (value, inString, unescapedJson) => {
    if (unescapedJson) {
      // "JSON properties like aws.events.event.json can only be used as the value of a JSON
      // field, not inline in other strings": what EventBridge sends then is not documented.
      if (inString) throw new Error('<aws.events.event> and <aws.events.event.json> can only be used as the value of a JSON field, not in a string');
      return JSON.stringify(value);
    }
    if (!jsonTemplate) return typeof value === 'string' ? value : JSON.stringify(value);
    if (typeof value === 'string') return inString ? value : `"${value}"`;
    if (inString && value !== null && typeof value === 'object') return JSON.stringify(value).replace(/"/g, '');
    return JSON.stringify(value);
  });
}

type Lookup = (name: string) => { defined: false } | { defined: true; found: boolean; value?: unknown; unescapedJson: boolean };

/** Walks the template, tracking JSON string literals, and replaces each defined `<name>`. */
function substitute(
  template: string,
  lookup: Lookup,
  render: (value: unknown, inString: boolean, unescapedJson: boolean) => string,
): string {
  let out = '';
  let inString = false;
  let i = 0;
  while (i < template.length) {
    const c = template[i];
    if (inString && c === '\\') {
      out += template.slice(i, i + 2);
      i += 2;
      continue;
    }
    if (c === '"') {
      inString = !inString;
      out += c;
      i += 1;
      continue;
    }
    if (c === '<') {
      const m = /^<([^<>\s]+)>/.exec(template.slice(i));
      if (m) {
        const v = lookup(m[1]);
        if (v.defined) {
          if (v.found) out += render(v.value, inString, v.unescapedJson);
          i += m[0].length;
          continue;
        }
      }
    }
    out += c;
    i += 1;
  }
  return out;
}

/** Whether the template is JSON once each placeholder outside a string literal stands for a value. */
function isJsonTemplate(template: string, defined: (name: string) => boolean): boolean {
  const probe = substitute(template, (name) => (defined(name) ? { defined: true, found: true, value: 0, unescapedJson: false } : { defined: false }),
    (_value, inString) => (inString ? 'x' : '0'));
  try {
    JSON.parse(probe);
    return true;
  } catch {
    return false;
  }
}

/**
 * A dynamic HTTP parameter is a JSONPath into the original event (`$.detail.x`); anything
 * else is static. A string value is sent as its characters, any other value as its JSON;
 * a path that matches nothing sends no header or query parameter (not documented further).
 */
function renderParameter(value: string, event: Record<string, unknown>): string | undefined {
  if (!/^\$(\.|\[|$)/.test(value)) return value;
  const result = evaluateJsonPath(event, value);
  if (!result.found) return undefined;
  return typeof result.value === 'string' ? result.value : JSON.stringify(result.value);
}

/**
 * The request body, headers, query string and path parameters a target sends for `event`:
 * `Input` is sent as it is (a static input is not a template, so nothing in it is replaced);
 * `InputPath` sends the JSON of the value it selects; an `InputTransformer` renders its
 * template; with none of them the whole event is sent.
 */
export function renderTarget(target: RuleTargetInputConfig, event: Record<string, unknown>, context: DeliveryContext): RenderedRequest {
  const set = [target.Input, target.InputPath, target.InputTransformer].filter((x) => x !== undefined).length;
  if (set > 1) throw new Error('A target has at most one of Input, InputPath and InputTransformer');
  let body: string;
  if (target.Input !== undefined) {
    body = target.Input;
  } else if (target.InputPath !== undefined) {
    const result = evaluateJsonPath(event, target.InputPath);
    if (!result.found) throw new Error(`InputPath ${target.InputPath} matches nothing in the event`);
    body = JSON.stringify(result.value);
  } else if (target.InputTransformer !== undefined) {
    body = renderInputTemplate(target.InputTransformer.InputTemplate, target.InputTransformer.InputPathsMap ?? {}, event, context);
  } else {
    body = JSON.stringify(event);
  }
  const params = target.HttpParameters ?? {};
  const renderMap = (map: Record<string, string> = {}): Record<string, string> => {
    const out: Record<string, string> = {};
    for (const [name, value] of Object.entries(map)) {
      const rendered = renderParameter(value, event);
      if (rendered !== undefined) out[name] = rendered;
    }
    return out;
  };
  return {
    body,
    headers: renderMap(params.HeaderParameters),
    queryString: renderMap(params.QueryStringParameters),
    pathParameters: (params.PathParameterValues ?? []).map((v) => {
      const rendered = renderParameter(v, event);
      if (rendered === undefined) throw new Error(`Path parameter ${v} matches nothing in the event`);
      return rendered;
    }),
  };
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}
