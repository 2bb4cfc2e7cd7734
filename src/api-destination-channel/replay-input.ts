import { Annotations, IResolveContext, Lazy, Stack, Token } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import { IConstruct } from 'constructs';
import {
  REPLAY_EVENT_WITHOUT_DETAIL_PATH,
  REPLAY_ORIGINAL_EVENT_PATH,
  REPLAY_RULE_ARN_PATH,
  REPLAY_RULE_NAME_PATH,
} from './replay-contract';

/**
 * EventBridge's limit on input-path variables per target
 * (https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_InputTransformer.html).
 */
export const MAX_INPUT_PATHS = 100;

/**
 * The predefined variables a replay would render from the replay event or the replay rule
 * (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-transform-target-input.html,
 * "Predefined variables"), each replaced on replay by an input-path variable of ours aimed
 * at what the replay event's detail carries (see replay-contract.ts). The names look
 * reserved; one that the user's map or template already holds gets a numeric suffix.
 */
const PREDEFINED_ON_REPLAY: ReadonlyArray<{ readonly variable: string; readonly key: string; readonly path: string }> = [
  { variable: 'aws.events.event', key: 'cef_original_event_without_detail', path: REPLAY_EVENT_WITHOUT_DETAIL_PATH },
  { variable: 'aws.events.event.json', key: 'cef_original_event', path: REPLAY_ORIGINAL_EVENT_PATH },
  { variable: 'aws.events.rule-arn', key: 'cef_original_rule_arn', path: REPLAY_RULE_ARN_PATH },
  { variable: 'aws.events.rule-name', key: 'cef_original_rule_name', path: REPLAY_RULE_NAME_PATH },
];
const PREDEFINED_VARIABLE = /<(aws\.events\.(?:event|event\.json|rule-arn|rule-name|event\.ingestion-time))>/g;
const INGESTION_TIME = 'aws.events.event.ingestion-time';
const WHOLE_EVENT = new Set(['aws.events.event', 'aws.events.event.json']);
/** Intrinsics whose string arguments are names, not text of the template. */
const REFERENCE_INTRINSICS = new Set(['Ref', 'Fn::GetAtt', 'Fn::ImportValue', 'Fn::FindInMap', 'Fn::GetAZs', 'Condition']);

/**
 * Rewrites a JSONPath that starts at an event's root so that it starts at the original
 * event wrapped in a replay event. Static values (not starting with `$`) are unchanged.
 */
export function toReplayPath(path: string): string {
  if (path === '$') return REPLAY_ORIGINAL_EVENT_PATH;
  if (path.startsWith('$.') || path.startsWith('$[')) return REPLAY_ORIGINAL_EVENT_PATH + path.slice(1);
  return path;
}

/** Rewrites every JSONPath value of a resolved input-paths map with `toReplayPath`. */
function toReplayPathsMap(params: { [key: string]: string }): { [key: string]: string } {
  return Object.fromEntries(Object.entries(params).map(([k, v]) => [k, typeof v === 'string' ? toReplayPath(v) : v]));
}

/**
 * What the replay rule's target sends for an HTTP parameter value or event path of the
 * channel rule's target: a JSONPath into the event is re-aimed at the wrapped original event,
 * anything else is unchanged.
 *
 * A literal string is rewritten at once. A token (an `EventField`, which resolves to its
 * JSONPath at synth, a lazy value, a string that concatenates them, a deploy-time value) is
 * rewritten once resolved; `what` names the value in the synth error (added to `scope`'s
 * validation) when its deploy-time text could be a JSONPath that cannot be re-aimed.
 */
export function toReplayValue(scope: IConstruct, value: string, what: string): string {
  if (!Token.isUnresolved(value)) return toReplayPath(value);
  validateReplayValue(scope, () => [reAimResolved(Stack.of(scope).resolve(value), what)]);
  return Lazy.uncachedString({ produce: (ctx) => reAimResolved(ctx.resolve(value), what).value as string });
}

/** `toReplayValue` for each value of a header or query-string parameter map. */
export function toReplayParameters(
  scope: IConstruct,
  params: { [key: string]: string } | undefined,
  what: string,
): { [key: string]: string } | undefined {
  if (!params) return undefined;
  return Object.fromEntries(Object.entries(params).map(([k, v]) => [k, toReplayValue(scope, v, `${what}['${k}']`)]));
}

/** `toReplayValue` for each path parameter value, also when the list itself is a token. */
export function toReplayPathParameterValues(scope: IConstruct, values: string[] | undefined): string[] | undefined {
  if (!values) return undefined;
  if (!Token.isUnresolved(values)) return values.map((v, i) => toReplayValue(scope, v, `pathParameterValues[${i}]`));
  const reAimList = (resolved: unknown): ReAimed[] => (Array.isArray(resolved)
    ? resolved.map((v, i) => reAimResolved(v, `pathParameterValues[${i}]`))
    : [reAimResolved(resolved, 'pathParameterValues')]);
  validateReplayValue(scope, () => reAimList(Stack.of(scope).resolve(values)));
  return Lazy.uncachedList({
    produce: (ctx) => {
      const resolved = ctx.resolve(values);
      return (Array.isArray(resolved) ? reAimList(resolved).map((r) => r.value) : resolved) as string[];
    },
  });
}

/** A resolved value as the replay sends it, and why it cannot be re-aimed safely, if so. */
interface ReAimed {
  readonly value: unknown;
  readonly error?: string;
}

/** Reports, once every token is final, the values a replay cannot re-aim (synth fails). */
function validateReplayValue(scope: IConstruct, reAim: () => ReAimed[]): void {
  scope.node.addValidation({ validate: () => reAim().flatMap((r) => (r.error ? [r.error] : [])) });
}

const ALLOWED_VALUES = 'allowed: a JSONPath into the event ("$", "$.x", "$[0]") as a literal string, an EventField or another ' +
  'token that resolves at synth to such a string, which deploy-time values may follow (it is re-aimed by its literal start); ' +
  'or a static value, literal or deploy-time (Ref, Fn::GetAtt, Fn::ImportValue), which a replay sends unchanged';

/**
 * `toReplayPath` for a resolved value: a string, or a CloudFormation intrinsic standing for
 * a string known only at deploy time. Its text before the first deploy-time part decides:
 * it starts with `$.` or `$[` (a JSONPath: that start is rewritten), or it is `$` followed by
 * a deploy-time part (it may or may not be a JSONPath: an error), or else it is a static
 * value, sent unchanged. A value starting with a reference (`Ref`, `Fn::GetAtt`, ...) is a
 * deploy-time static value too; one starting with another intrinsic that holds text
 * starting with `$` (a `Fn::If` branch, a `Fn::Sub` template) may be a JSONPath: an error.
 */
function reAimResolved(resolved: unknown, what: string): ReAimed {
  if (typeof resolved === 'string') return { value: toReplayPath(resolved) };
  const pieces = joinPieces(resolved);
  const first = pieces[0];
  if (typeof first === 'string') {
    if (pieces.length === 1) return { value: toReplayPath(first) };
    if (first.startsWith('$.') || first.startsWith('$[')) {
      return { value: { 'Fn::Join': ['', [toReplayPath(first), ...pieces.slice(1).map((p) => (typeof p === 'string' ? p : p.deployTime))]] } };
    }
    if (first === '$') {
      return {
        value: resolved,
        error: `invalid ${what}: ${JSON.stringify(resolved)} starts with "$" followed by a deploy-time value, so whether it is ` +
          `a JSONPath into the event is known only at deploy time and a replay cannot re-aim it at the original event; ${ALLOWED_VALUES}`,
      };
    }
    return { value: resolved };
  }
  if (first !== undefined && mayHoldJsonPath(first.deployTime)) {
    return {
      value: resolved,
      error: `invalid ${what}: ${JSON.stringify(resolved)} ${pieces.length > 1 ? `starts with ${JSON.stringify(first.deployTime)}, ` : 'is '}` +
        'a deploy-time value holding text that starts with "$", so it may render as a JSONPath into the event, which a replay ' +
        `cannot re-aim at the original event; ${ALLOWED_VALUES}`,
    };
  }
  return { value: resolved };
}

/**
 * A resolved value's text as literal pieces (adjacent ones merged, empty ones dropped) and
 * deploy-time parts, in order, through `Fn::Join`; any other value is one deploy-time part.
 */
function joinPieces(value: unknown): Array<string | { readonly deployTime: unknown }> {
  const pieces: Array<string | { readonly deployTime: unknown }> = [];
  const add = (v: unknown): void => {
    const join = (v as any)?.['Fn::Join'];
    if (typeof v === 'string') {
      if (v === '') return;
      const last = pieces[pieces.length - 1];
      if (typeof last === 'string') pieces[pieces.length - 1] = last + v;
      else pieces.push(v);
    } else if (v !== null && typeof v === 'object' && Object.keys(v).length === 1 && Array.isArray(join) && Array.isArray(join[1])) {
      (join[1] as unknown[]).forEach((part, i) => {
        if (i > 0) add(join[0]);
        add(part);
      });
    } else {
      pieces.push({ deployTime: v });
    }
  };
  add(value);
  return pieces;
}

/**
 * Whether a deploy-time value (other than a reference, whose arguments are names) holds a
 * literal that starts with `$` and is not a `Fn::Sub` variable (`${...}`): it may render as a
 * JSONPath.
 */
function mayHoldJsonPath(value: unknown): boolean {
  let found = false;
  mapLiterals(value, (s) => {
    if (/^\$(?!\{)/.test(s)) found = true;
    return s;
  });
  return found;
}

/** The replay's input transformer, worked out from the resolved original one. */
interface ReplayTemplatePlan {
  /** The template with each predefined variable replaced by ours (same shape: string or intrinsic). */
  readonly template: unknown;
  readonly inputPathsMap: { [key: string]: string };
  /** The predefined variables given a variable of ours, in `PREDEFINED_ON_REPLAY` order. */
  readonly added: string[];
  /** Variables the user's own map holds. */
  readonly userVariables: number;
  readonly usesIngestionTime: boolean;
  /** Whole-event variables that stand inside a JSON string literal of the template. */
  readonly wholeEventInString: string[];
}

function planReplayTemplate(resolvedTemplate: unknown, resolvedPathsMap: unknown): ReplayTemplatePlan {
  const userMap = toReplayPathsMap((resolvedPathsMap ?? {}) as { [key: string]: string });
  const texts: string[] = [];
  mapLiterals(resolvedTemplate, (s) => {
    texts.push(s);
    return s;
  });
  const used = new Set<string>();
  for (const text of texts) {
    for (const m of text.matchAll(PREDEFINED_VARIABLE)) used.add(m[1]);
  }
  const inputPathsMap: { [key: string]: string } = { ...userMap };
  const keyOf = new Map<string, string>();
  const taken = (key: string) => key in inputPathsMap || texts.some((t) => t.includes(`<${key}>`));
  for (const { variable, key, path } of PREDEFINED_ON_REPLAY) {
    if (!used.has(variable)) continue;
    let free = key;
    for (let n = 2; taken(free); n++) free = `${key}_${n}`;
    keyOf.set(variable, free);
    inputPathsMap[free] = path;
  }
  const template = mapLiterals(resolvedTemplate, (s) =>
    s.replace(PREDEFINED_VARIABLE, (whole, variable: string) => (keyOf.has(variable) ? `<${keyOf.get(variable)}>` : whole)));
  return {
    template,
    inputPathsMap,
    added: [...keyOf.keys()],
    userVariables: Object.keys(userMap).length,
    usesIngestionTime: used.has(INGESTION_TIME),
    wholeEventInString: [...new Set(predefinedInStrings(resolvedTemplate).filter((v) => WHOLE_EVENT.has(v)))],
  };
}

function limitError(plan: ReplayTemplatePlan): string | undefined {
  if (plan.added.length === 0 || Object.keys(plan.inputPathsMap).length <= MAX_INPUT_PATHS) return undefined;
  return `invalid input: ${plan.userVariables} input-path variables, and its replay needs ${plan.added.length} more ` +
    `to render ${plan.added.map((v) => `<${v}>`).join(', ')} from the replayed event, over EventBridge's limit of ${MAX_INPUT_PATHS} ` +
    `per target; allowed: at most ${MAX_INPUT_PATHS - plan.added.length} variables in \`input\` when it uses these predefined variables`;
}

/**
 * The channel's input transformation, re-aimed at the original event inside a replay
 * event, so a replayed delivery sends the same request body as the first attempt.
 *
 * Input paths are re-aimed at the wrapped original event; the predefined variables
 * `<aws.events.event>`, `<aws.events.event.json>`, `<aws.events.rule-arn>` and
 * `<aws.events.rule-name>` become variables of ours that read the original event (without
 * and with its detail) and the original rule from the replay event's detail, in plain
 * templates and in templates holding deploy-time tokens (`Fn::Join`) alike.
 * `<aws.events.event.ingestion-time>` cannot be reproduced (a dead letter does not carry the
 * original ingestion time): it renders the replay's, and synth warns about it.
 */
export class ReplayRuleTargetInput extends events.RuleTargetInput {
  constructor(private readonly original: events.RuleTargetInput) {
    super();
  }

  public bind(rule: events.IRule): events.RuleTargetInputProperties {
    const bound = this.original.bind(rule);
    if (bound.inputPath !== undefined) {
      return { inputPath: toReplayValue(rule, bound.inputPath, 'input (event path)') };
    }
    if (bound.input !== undefined) {
      return { input: bound.input }; // a static input is not a template: the same on replay
    }
    if (bound.inputTemplate === undefined) {
      return { inputPath: REPLAY_ORIGINAL_EVENT_PATH }; // no input: the target received the whole event
    }
    const template = bound.inputTemplate;
    const pathsMap = bound.inputPathsMap;
    const plan = (ctx: IResolveContext) => planReplayTemplate(ctx.resolve(template), ctx.resolve(pathsMap));
    // Checked once every token is final (the template is also resolved earlier, while the app
    // is prepared, so the limit is reported here rather than thrown while resolving): the
    // limit fails synth, and the variables a replay cannot reproduce warn.
    rule.node.addValidation({
      validate: () => {
        const stack = Stack.of(rule);
        const p = planReplayTemplate(stack.resolve(template), stack.resolve(pathsMap));
        warnAboutReplay(rule, p);
        const error = limitError(p);
        return error ? [error] : [];
      },
    });
    return {
      inputTemplate: Lazy.uncachedString({ produce: (ctx) => plan(ctx).template as string }),
      inputPathsMap: Lazy.uncachedAny({ produce: (ctx) => plan(ctx).inputPathsMap }) as any,
    };
  }
}

function warnAboutReplay(rule: events.IRule, plan: ReplayTemplatePlan): void {
  if (plan.usesIngestionTime) {
    Annotations.of(rule).addWarningV2('cdk-event-fabric:replayIngestionTime',
      `The channel's \`input\` uses <${INGESTION_TIME}>: a replay renders the replay's ingestion time, not the original's ` +
      '(a dead letter does not carry the original ingestion time). Use EventField.time ($.time, the event\'s own time) ' +
      'if the API needs a time that replays keep.');
  }
  if (plan.wholeEventInString.length > 0) {
    const vars = plan.wholeEventInString.map((v) => `<${v}>`).join(' and ');
    Annotations.of(rule).addWarningV2('cdk-event-fabric:replayWholeEventInString',
      `The channel's \`input\` places ${vars} inside a JSON string (RuleTargetInput.fromText, fromMultilineText and fromObject ` +
      'quote their text). EventBridge supports these variables only as the value of a JSON field, and a replay, which renders ' +
      'them through an input-path variable, may differ there. For the whole event use EventField.fromPath(\'$\') in fromObject.');
  }
}

/**
 * Applies `f` to every literal string of a resolved value: plain strings, the parts and
 * delimiter of `Fn::Join` and the text arguments of other intrinsics, recursively; never the
 * names given to `Ref`, `Fn::GetAtt` and other reference intrinsics.
 */
function mapLiterals(value: unknown, f: (s: string) => string): unknown {
  if (typeof value === 'string') return f(value);
  if (Array.isArray(value)) return value.map((v) => mapLiterals(v, f));
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value);
    if (entries.length === 1 && REFERENCE_INTRINSICS.has(entries[0][0])) return value;
    return Object.fromEntries(entries.map(([k, v]) => [k, mapLiterals(v, f)]));
  }
  return value;
}

const OPAQUE = Symbol('deploy-time value');

/** The template's text as literal pieces and opaque deploy-time values, in order (through `Fn::Join`). */
function textPieces(value: unknown): Array<string | typeof OPAQUE> {
  if (typeof value === 'string') return [value];
  const join = (value as any)?.['Fn::Join'];
  if (value !== null && typeof value === 'object' && Object.keys(value).length === 1 && Array.isArray(join) && Array.isArray(join[1])) {
    const delimiter: Array<string | typeof OPAQUE> = typeof join[0] === 'string' ? [join[0]] : [OPAQUE];
    return (join[1] as unknown[]).flatMap((part, i) => [...(i > 0 ? delimiter : []), ...textPieces(part)]);
  }
  return [OPAQUE];
}

/** The predefined variables that stand inside a JSON string literal (between unescaped quotes). */
function predefinedInStrings(template: unknown): string[] {
  const found: string[] = [];
  let inString = false;
  for (const piece of textPieces(template)) {
    if (piece === OPAQUE) continue;
    for (let i = 0; i < piece.length; i++) {
      const c = piece[i];
      if (inString && c === '\\') {
        i++;
      } else if (c === '"') {
        inString = !inString;
      } else if (c === '<' && inString) {
        const m = /^<(aws\.events\.[A-Za-z.-]+)>/.exec(piece.slice(i));
        if (m) found.push(m[1]);
      }
    }
  }
  return found;
}
