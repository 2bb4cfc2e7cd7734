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

/** Properties of an `EventAggregator`. */
export interface EventAggregatorProps {
  /**
   * Names of the events that complete a correlation id's set: when an event of each name has
   * been recorded for a correlation id, one `Aggregation Completed` event is emitted for it.
   * From 1 to 20 distinct, non-empty names of at most 255 characters; names starting with `#`
   * are reserved. They become keys of the completion rule's pattern, so they must be literal
   * strings (not tokens).
   */
  readonly requiredEvents: string[];

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
