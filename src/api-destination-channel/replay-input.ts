import { Annotations, IResolveContext, Lazy, Stack } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
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

/** Rewrites every JSONPath value of a parameter map with `toReplayPath`. */
export function toReplayParameters(params?: { [key: string]: string }): { [key: string]: string } | undefined {
  if (!params) return undefined;
  return Object.fromEntries(Object.entries(params).map(([k, v]) => [k, typeof v === 'string' ? toReplayPath(v) : v]));
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
  const userMap = toReplayParameters((resolvedPathsMap ?? {}) as { [key: string]: string }) ?? {};
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
      return { inputPath: toReplayPath(bound.inputPath) };
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
