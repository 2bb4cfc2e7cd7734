import { IResolveContext, Lazy } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import { REPLAY_ORIGINAL_EVENT_PATH } from './replay-contract';

const WHOLE_EVENT_VARIABLES = ['<aws.events.event>', '<aws.events.event.json>'];
const ORIGINAL_EVENT_KEY = 'cef_original_event';

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
  return Object.fromEntries(Object.entries(params).map(([k, v]) => [k, toReplayPath(v)]));
}

/**
 * The channel's input transformation, re-aimed at the original event inside a replay
 * event, so a replayed delivery sends the same request body as the first attempt.
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
    if (bound.inputTemplate === undefined) {
      return bound; // a static input: the same on replay
    }
    const template = bound.inputTemplate;
    const pathsMap = toReplayParameters(bound.inputPathsMap) ?? {};
    // The whole-event variables would render the replay wrapper; point them at the original.
    const resolveTemplate = (ctx: IResolveContext): unknown => {
      const resolved = ctx.resolve(template);
      if (typeof resolved !== 'string') return resolved;
      return WHOLE_EVENT_VARIABLES.reduce((t, v) => t.split(v).join(`<${ORIGINAL_EVENT_KEY}>`), resolved);
    };
    return {
      inputTemplate: Lazy.uncachedString({ produce: (ctx) => resolveTemplate(ctx) as string }),
      inputPathsMap: Lazy.uncachedAny({
        produce: (ctx) => {
          const resolved = ctx.resolve(template);
          const usesWholeEvent = typeof resolved === 'string' && WHOLE_EVENT_VARIABLES.some((v) => resolved.includes(v));
          return usesWholeEvent ? { ...pathsMap, [ORIGINAL_EVENT_KEY]: REPLAY_ORIGINAL_EVENT_PATH } : pathsMap;
        },
      }) as any,
    };
  }
}
