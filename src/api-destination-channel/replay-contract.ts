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
  /** The original event, exactly as EventBridge put it in the dead-letter queue. */
  readonly event: Record<string, unknown>;
}

/** JSONPath (from the root of a replay event) of the wrapped original event. */
export const REPLAY_ORIGINAL_EVENT_PATH = '$.detail.event';
