/**
 * What the EventAggregator construct and its handlers agree on: table layout, reserved
 * names, event source and detail-types, and the handlers' environment.
 */

/** Partition key: the correlation id (string). */
export const CORRELATION_ID_ATTRIBUTE = 'correlationId';
/**
 * Sort key (string): the event name, a unit separator (U+001F) and the event id, so every
 * distinct event is kept. An item written directly may use the bare event name. Names
 * starting with `#` are reserved; names contain no control characters.
 */
export const EVENT_NAME_ATTRIBUTE = 'eventName';
/** Between the event name and the event id in the sort key. */
export const EVENT_KEY_SEPARATOR = '\u001f';

/** The sort key of a recorded event. */
export function eventKey(eventName: string, eventId: string): string {
  return `${eventName}${EVENT_KEY_SEPARATOR}${eventId}`;
}

/** The event name of a sort key (the whole key when it has no event id). */
export function eventNameOfKey(key: string): string {
  const at = key.indexOf(EVENT_KEY_SEPARATOR);
  return at < 0 ? key : key.slice(0, at);
}
/**
 * Attribute where the recorder keeps an event's detail, as JSON text: any JSON fits (no
 * DynamoDB number range or nesting limit) and its size is the item's size. The aggregator
 * emits it parsed, as `payload`.
 */
export const PAYLOAD_JSON_ATTRIBUTE = 'payloadJson';
/** TTL attribute (epoch seconds) on every item. */
export const EXPIRES_AT_ATTRIBUTE = 'expiresAt';
/**
 * Sort key of the per-correlation-id marker item that guards emit-once: written with a
 * conditional put when the set completes (or its deadline passes).
 */
export const MARKER_EVENT_NAME = '#aggregate';
/** Prefix of reserved event names. */
export const RESERVED_EVENT_NAME_PREFIX = '#';

/** Default `source` of the aggregated events. */
export const DEFAULT_AGGREGATE_SOURCE = 'cdk-event-fabric.aggregator';
/** Detail-type of the event emitted once when every required event has arrived. */
export const COMPLETED_DETAIL_TYPE = 'Aggregation Completed';
/** Detail-type of the event emitted when the deadline passes before the set is complete. */
export const INCOMPLETE_DETAIL_TYPE = 'Aggregation Incomplete';
/** Detail-type of the event emitted once when a counted event fails a requirement's condition that fails the set. */
export const FAILED_DETAIL_TYPE = 'Aggregation Failed';
/** Detail-type of the optional event emitted on every change of a correlation id's set. */
export const UPDATED_DETAIL_TYPE = 'Aggregation Updated';

/**
 * Where Lambda writes the stream batches the aggregator gave up on (the S3 on-failure
 * destination): `aws/lambda/<ESM-UUID>/<shardID>/YYYY/MM/DD/<time>-<UUID>`, per
 * https://docs.aws.amazon.com/lambda/latest/dg/services-dynamodb-errors.html
 */
export const FAILED_BATCH_PREFIX = 'aws/lambda/';
/** Where a redriven batch is moved, so what is left under `FAILED_BATCH_PREFIX` still needs an operator. */
export const REDRIVEN_PREFIX = 'redriven/';

/** Environment variables of the aggregator function. */
export const AGGREGATOR_ENV = {
  TABLE_NAME: 'TABLE_NAME',
  OUTPUT_BUS_NAME: 'OUTPUT_BUS_NAME',
  AGGREGATE_SOURCE: 'AGGREGATE_SOURCE',
  /** JSON array of the required event names (each needed once, no condition). */
  REQUIRED_EVENTS: 'REQUIRED_EVENTS',
  /** JSON array of requirements (see `Requirement`); given instead of REQUIRED_EVENTS. */
  REQUIREMENTS: 'REQUIREMENTS',
  /** 'true' when a newer event of a name replaces the one counted so far. */
  NEWEST_REPLACES: 'NEWEST_REPLACES',
  /** 'true' to also emit an Aggregation Updated event on every change. */
  EMIT_ON_EVERY_CHANGE: 'EMIT_ON_EVERY_CHANGE',
  /** Seconds from the first event to the deadline; absent or '0' when there is none. */
  DEADLINE_SECONDS: 'DEADLINE_SECONDS',
  /** Scheduler group, target ARN (the aggregator itself) and role for deadline schedules. */
  SCHEDULE_GROUP_NAME: 'SCHEDULE_GROUP_NAME',
  SCHEDULE_TARGET_ARN: 'SCHEDULE_TARGET_ARN',
  SCHEDULE_ROLE_ARN: 'SCHEDULE_ROLE_ARN',
  /** Dead-letter queue ARN for the schedules' target (the deadline invocation). */
  SCHEDULE_DLQ_ARN: 'SCHEDULE_DLQ_ARN',
  /** Seconds items live after their last write (TTL). */
  ITEM_TTL_SECONDS: 'ITEM_TTL_SECONDS',
  /** Bucket of the failed stream batches, which `{ redriveFailedBatches }` redrives. */
  FAILED_BATCH_BUCKET_NAME: 'FAILED_BATCH_BUCKET_NAME',
  /** Largest aggregated event (PutEvents entry bytes); above it the payloads are left out. */
  MAX_ENTRY_BYTES: 'MAX_ENTRY_BYTES',
} as const;

/** Environment variables of the recorder function (bus sources). */
export const RECORDER_ENV = {
  TABLE_NAME: 'TABLE_NAME',
  ITEM_TTL_SECONDS: 'ITEM_TTL_SECONDS',
  /** Largest payload, in bytes of JSON, the recorder stores (DynamoDB items are at most 400 KB). */
  MAX_PAYLOAD_BYTES: 'MAX_PAYLOAD_BYTES',
} as const;

/** The payload the deadline schedule invokes the aggregator with. */
export interface DeadlineInvocation {
  readonly deadlineFor: string;
}
