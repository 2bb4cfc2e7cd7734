import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as events from 'aws-cdk-lib/aws-events';
import * as kms from 'aws-cdk-lib/aws-kms';

/**
 * A bus whose events an aggregator records: a rule on that bus sends each matching event to
 * the aggregator's recorder function, which stores it under its correlation id and event name.
 *
 * Give exactly one of `eventNamePath` and `eventName`.
 */
export interface AggregatorSourceOptions {
  /** Bus the events are put on. */
  readonly eventBus: events.IEventBus;

  /** Which events of the bus are recorded. Must constrain at least one field. */
  readonly eventPattern: events.EventPattern;

  /**
   * EventBridge JSON path (dot notation, starting with `$.`) of the correlation id in the
   * source event, such as `$.detail.orderId`. Events of one correlation id are aggregated together.
   */
  readonly correlationIdPath: string;

  /**
   * EventBridge JSON path of the event name in the source event, such as `$.detail-type`.
   * The names of `requiredEvents` are matched against it.
   * @default - none: `eventName` must be given
   */
  readonly eventNamePath?: string;

  /**
   * A constant event name for every event this source records, such as `'In Stock'`.
   * At most 255 characters, not starting with `#` (reserved).
   * @default - none: `eventNamePath` must be given
   */
  readonly eventName?: string;

  /**
   * Description of the source's rule.
   * @default - derived from the source id and the construct path
   */
  readonly description?: string;
}

/** A source given in `EventAggregatorProps.sources`. */
export interface AggregatorSource extends AggregatorSourceOptions {
  /** Id of the source, unique within the aggregator; it names the rule's construct. */
  readonly id: string;
}

/**
 * One requirement of a complete set: `count` events whose names are among `anyOf` and whose
 * detail matches `condition`.
 *
 * The events counted are the first `count` of those names by event time, or the newest
 * `count` when the aggregator's `newestReplaces` is set.
 */
export interface AggregationRequirement {
  /**
   * Event names whose events count: one name, or several for an any-of group (an event of
   * any of them counts). From 1 to 10 literal names of at most 255 characters, without
   * control characters, not starting with `#` (reserved); a name belongs to one requirement.
   */
  readonly anyOf: string[];

  /**
   * How many events complete the requirement, an integer from 1 to 100. With more than 1,
   * the aggregated event's `events.<name>` is the list of the counted events of that name.
   * @default 1
   */
  readonly count?: number;

  /**
   * A condition on each counted event's `detail`, in EventBridge event-pattern syntax: nested
   * objects whose leaves are arrays of allowed values (strings, numbers, booleans, null) or
   * the filters `prefix`, `suffix`, `anything-but`, `numeric` and `exists`, for example
   * `{ status: ['APPROVED'] }`. A counted event that does not match keeps the requirement
   * unmet (and is listed in `mismatched`), or ends the set with `failOnMismatch`.
   * @default - every event of the names counts
   */
  readonly condition?: { [key: string]: any };

  /**
   * Whether a counted event that does not match `condition` ends the set at once with one
   * `Aggregation Failed` event (listing it in `mismatched`), instead of leaving the set
   * waiting for a matching event.
   * @default false
   */
  readonly failOnMismatch?: boolean;

  /**
   * How the aggregated events name this requirement in `missing` and `mismatched`. At most
   * 255 characters, distinct among the requirements.
   * @default - the names of `anyOf` joined with ' | '
   */
  readonly label?: string;
}

/** Properties of an `EventAggregator`. */
export interface EventAggregatorProps {
  /**
   * Names of the events that complete a correlation id's set, each needed once, without a
   * condition: when an event of each name has been recorded for a correlation id, one
   * `Aggregation Completed` event is emitted for it. From 1 to 20 distinct, non-empty
   * literal names of at most 255 characters; names starting with `#` are reserved. Give
   * either this or `requirements`.
   * @default - none: `requirements` must be given
   */
  readonly requiredEvents?: string[];

  /**
   * What completes a correlation id's set, when it is more than one event of each name:
   * payload conditions, counts and any-of groups (from 1 to 20 requirements). Give either
   * this or `requiredEvents`.
   * @default - none: `requiredEvents` must be given
   */
  readonly requirements?: AggregationRequirement[];

  /**
   * Whether a newer event of a name (by the event's `time`) replaces the one counted so far,
   * so that, for example, a corrected check completes a set that a failed check held back.
   * An event older than the one counted changes nothing, whatever the order of arrival.
   * @default false - the first events of a name count, and later ones are kept but not counted
   */
  readonly newestReplaces?: boolean;

  /**
   * Bus the aggregated events (`Aggregation Completed`, `Aggregation Incomplete`,
   * `Aggregation Updated`) are put on. When several aggregators share a bus, give each its
   * own `aggregateSource`.
   * @default - a bus is created (encrypted with `encryptionKey` when given)
   */
  readonly outputBus?: events.IEventBus;

  /**
   * `source` of the aggregated events. At most 256 characters, not starting with `aws.`.
   * @default 'cdk-event-fabric.aggregator'
   */
  readonly aggregateSource?: string;

  /**
   * Whether to also emit an `Aggregation Updated` event every time an event is recorded for a
   * correlation id (at least once per change), besides the one `Aggregation Completed`.
   * @default false
   */
  readonly emitOnEveryChange?: boolean;

  /**
   * How long after a correlation id's first event the set may take to complete, in whole
   * seconds from 60 seconds to 365 days. When it passes first, one `Aggregation Incomplete`
   * event is emitted for that correlation id, through a one-time EventBridge Scheduler
   * schedule in a schedule group the aggregator creates.
   * @default - no deadline: an incomplete set waits until its items expire, and emits nothing
   */
  readonly deadline?: Duration;

  /**
   * How long the recorded events and the emit-once marker of a correlation id live after
   * their last write (DynamoDB TTL), in whole seconds, at least 1 hour and longer than
   * `deadline`. An event recorded for a correlation id after its items expired starts a new set.
   * @default Duration.days(7)
   */
  readonly itemTtl?: Duration;

  /**
   * Customer managed key for the table, the queues and a created output bus. The construct
   * adds the key-policy statements EventBridge needs, so the key should be created in this
   * app (an imported key's policy must allow `events.amazonaws.com` `kms:GenerateDataKey`
   * and `kms:Decrypt`).
   * @default - AWS managed encryption: DynamoDB AWS managed key, SSE-SQS, EventBridge AWS owned key
   */
  readonly encryptionKey?: kms.IKey;

  /**
   * What happens to the table when it leaves the stack.
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;

  /**
   * Largest source event `detail` the recorder stores, in bytes of JSON, an integer from 1024
   * to 390000 (a DynamoDB item is at most 400 KB, names and attributes included).
   * @default 350000
   */
  readonly maxPayloadBytes?: number;

  /**
   * Largest aggregated event, in PutEvents entry bytes (an integer from 4096 to 1048576).
   * An aggregate whose payloads would exceed it is emitted without them (`truncated: true`,
   * with the names), so a target with a smaller payload limit (SNS, Step Functions: 256 KiB)
   * still receives it. The default leaves 4 KiB under the 1 MiB PutEvents limit for the
   * fields EventBridge adds, so the event fits a 1 MiB SQS message or Lambda payload.
   * @default 1044480
   */
  readonly maxAggregateBytes?: number;

  /**
   * Sources recorded from buses. More can be added with `addSource`; sources that write to
   * the table directly use `grantRecord`.
   * @default - none
   */
  readonly sources?: AggregatorSource[];

  /**
   * Actions (for example an SNS topic action) for every alarm of the aggregator.
   * @default - none; the alarms are exposed to add actions later
   */
  readonly alarmActions?: cloudwatch.IAlarmAction[];
}
