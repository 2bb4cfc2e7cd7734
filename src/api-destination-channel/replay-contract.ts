/**
 * The shape of a replay event, shared by the construct (the replay rule's pattern and
 * input) and the replay handler (which builds the events).
 *
 * A replayed event travels on the stack's private replay bus, never on the channel's own
 * bus, so no other rule sees it. Its detail wraps the original event unchanged, so the
 * channel's input transformation and idempotency key read the same values as the first time.
 */
export const REPLAY_SOURCE = 'cdk-event-fabric.replay';
export const REPLAY_DETAIL_TYPE = 'ApiDestinationChannel Replay';

/** Detail of a replay event. */
export interface ReplayDetail {
  /** ARN of the channel rule that first delivered (and failed) the event: routes the replay. */
  readonly ruleArn: string;
  /** Name of that rule (what `<aws.events.rule-name>` rendered the first time). */
  readonly ruleName: string;
  /** The original event, exactly as EventBridge put it in the dead-letter queue. */
  readonly event: Record<string, unknown>;
  /**
   * The original event without its `detail` field: what `<aws.events.event>` rendered the
   * first time (`<aws.events.event.json>` is the whole event, `event` above).
   */
  readonly eventWithoutDetail: Record<string, unknown>;
}

/** JSONPath (from the root of a replay event) of the wrapped original event. */
export const REPLAY_ORIGINAL_EVENT_PATH = '$.detail.event';
/** JSONPath of the original event without its detail (`<aws.events.event>` on replay). */
export const REPLAY_EVENT_WITHOUT_DETAIL_PATH = '$.detail.eventWithoutDetail';
/** JSONPath of the original rule's ARN (`<aws.events.rule-arn>` on replay). */
export const REPLAY_RULE_ARN_PATH = '$.detail.ruleArn';
/** JSONPath of the original rule's name (`<aws.events.rule-name>` on replay). */
export const REPLAY_RULE_NAME_PATH = '$.detail.ruleName';

/**
 * The rule name in an EventBridge rule ARN: `arn:aws:events:region:account:rule/name` on
 * the default bus, `.../rule/bus-name/name` on a custom bus.
 */
export function ruleNameOf(ruleArn: string): string {
  const resource = ruleArn.split(':').slice(5).join(':');
  return resource.slice(resource.lastIndexOf('/') + 1);
}

/** The detail of the replay event that re-delivers `event`, first failed by `ruleArn`. */
export function replayDetail(ruleArn: string, event: Record<string, unknown>): ReplayDetail {
  const { detail: _detail, ...eventWithoutDetail } = event;
  return { ruleArn, ruleName: ruleNameOf(ruleArn), event, eventWithoutDetail };
}
