import { Duration, RemovalPolicy, Size } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as events from 'aws-cdk-lib/aws-events';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { CuratedEnvelopePaths } from '../envelope';

/**
 * One route of the fast lane: a rule on the fast bus and its target.
 *
 * The target gets the lane's retry policy and dead-letter queue unless it set its own
 * (for example `new targets.SqsQueue(queue, { deadLetterQueue, retryAttempts })`), and the
 * route's input unless it set its own message.
 */
export interface FastRouteOptions {
  /**
   * Which events of the fast bus take this route. Must constrain at least one field.
   */
  readonly eventPattern: events.EventPattern;

  /**
   * Where the events go.
   * @default - the ingest's relay function, which puts each record on the curated bus
   */
  readonly target?: events.IRuleTarget;

  /**
   * What the target receives. Ignored when the target sets its own input (message, event).
   * @default - the curated record envelope: `CuratedEnvelope.ruleTargetInput(IngestLane.FAST, envelopePaths)`
   */
  readonly input?: events.RuleTargetInput;

  /**
   * Description of the rule.
   * @default - derived from the route id and the construct path
   */
  readonly description?: string;
}

/** A fast-lane route given in `TieredEventIngestProps.fastRoutes`. */
export interface FastRoute extends FastRouteOptions {
  /** Id of the route, unique within the ingest; it names the rule's construct. */
  readonly id: string;
}

/** Properties of a `TieredEventIngest`. All are optional. */
export interface TieredEventIngestProps {
  /**
   * Bus for events that must reach the curated bus within seconds, one by one.
   * @default - a bus is created (encrypted with `encryptionKey` when given)
   */
  readonly fastBus?: events.IEventBus;

  /**
   * Bus for high-volume events that may wait for a Firehose buffer (about a minute or more)
   * and reach the curated bus in batches.
   * @default - a bus is created (encrypted with `encryptionKey` when given)
   */
  readonly slowBus?: events.IEventBus;

  /**
   * Bus that receives every curated record and batch, archived for replay.
   * @default - a bus is created (encrypted with `encryptionKey` when given)
   */
  readonly curatedBus?: events.IEventBus;

  /**
   * Customer managed key for everything the construct creates: buses, archive, bucket
   * (SSE-KMS with an S3 Bucket Key), queues, delivery stream and ledger table. The
   * construct adds key-policy statements for EventBridge, so the key should be created in
   * this app (an imported key's policy must allow `events.amazonaws.com` `kms:GenerateDataKey`
   * and `kms:Decrypt`).
   * @default - AWS managed encryption: SSE-S3, SSE-SQS, a Firehose AWS owned key, DynamoDB AWS managed key
   */
  readonly encryptionKey?: kms.IKey;

  /**
   * How long the curated bus's archive keeps events, in whole days; `Duration.days(0)`
   * keeps them forever.
   * @default Duration.days(30)
   */
  readonly archiveRetention?: Duration;

  /**
   * Where the envelope's tenant, channel and correlation id are found in source events.
   * @default - `$.detail.tenantId`, `$.detail.channel`, `$.detail.correlationId`
   */
  readonly envelopePaths?: CuratedEnvelopePaths;

  /**
   * Routes of the fast lane. More can be added with `addFastRoute`.
   * @default - none
   */
  readonly fastRoutes?: FastRoute[];

  /**
   * How many times EventBridge retries a failed fast-lane delivery, an integer from 0 to 185.
   * Applies to targets that do not set their own retry policy.
   * @default 8
   */
  readonly fastLaneRetryAttempts?: number;

  /**
   * How long EventBridge keeps retrying a fast-lane event, from 60 seconds to 24 hours.
   * Applies to targets that do not set their own retry policy.
   * @default Duration.hours(1)
   */
  readonly fastLaneMaxEventAge?: Duration;

  /**
   * Which events of the slow bus go to Firehose. Must constrain at least one field.
   * @default - every event (`{ source: events.Match.prefix('') }`)
   */
  readonly slowLaneEventPattern?: events.EventPattern;

  /**
   * JQ query on the record envelope whose value partitions the slow lane's S3 objects
   * (`data/tenant=<value>/...`), at most 512 characters, run by Firehose's jq 1.6. Any jq
   * expression works, operators included (`.tenant // "unknown"`): the construct wraps it in
   * parentheses. Records whose key cannot be extracted are written under `firehose-errors/`.
   * @default - the tenant, or `_none` for records without one: `if (.tenant // "") == "" then "_none" else (.tenant | tostring) end`
   */
  readonly partitionKeyQuery?: string;

  /**
   * Firehose buffer size, from 64 to 128 MiB (dynamic partitioning needs at least 64 MiB).
   * Larger buffers mean fewer, larger objects per tenant.
   * @default Size.mebibytes(128)
   */
  readonly bufferingSize?: Size;

  /**
   * Longest time Firehose buffers records before writing an object, from 60 to 900 seconds
   * (dynamic partitioning needs at least 60 seconds). It bounds the slow lane's latency.
   * @default Duration.seconds(60)
   */
  readonly bufferingInterval?: Duration;

  /**
   * Whether Firehose compresses the objects it writes (GZIP).
   * @default true
   */
  readonly compressObjects?: boolean;

  /**
   * How long the bucket keeps slow-lane data objects (`data/`), in whole days (at least 1).
   * Objects must be published before they expire.
   * @default Duration.days(30)
   */
  readonly dataRetention?: Duration;

  /**
   * How long the bucket keeps quarantined records (`quarantine/`) and Firehose error
   * output (`firehose-errors/`), in whole days (at least 1).
   * @default Duration.days(90)
   */
  readonly quarantineRetention?: Duration;

  /**
   * Bucket for the S3 server access logs of the ingest bucket (prefix `tiered-event-ingest/`).
   * It must use SSE-S3: S3 cannot deliver access logs to an SSE-KMS bucket.
   * @default - no access logging
   */
  readonly serverAccessLogsBucket?: s3.IBucket;

  /**
   * What happens to the bucket and the ledger table when they leave the stack.
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;

  /**
   * Timeout of the batch publisher, from 10 seconds to 15 minutes. The object queue's
   * visibility timeout is six times this, and a ledger lease lasts this plus 60 seconds.
   * Must be a resolved value (both are derived from it at synth time).
   * @default Duration.minutes(5)
   */
  readonly publisherTimeout?: Duration;

  /**
   * Memory of the batch publisher in MiB, an integer from 128 to 10240.
   * @default 1024
   */
  readonly publisherMemorySize?: number;

  /**
   * How many times an S3 object is tried before its notification goes to the object
   * dead-letter queue, an integer from 1 to 1000.
   * @default 5
   */
  readonly publisherMaxReceiveCount?: number;

  /**
   * Most batch publisher invocations running at once, an integer from 2 to 1000 (the SQS
   * event source's `maxConcurrency`). Each invocation publishes one object at up to about
   * 150 MiB/s of 1 MiB entries, so this bounds the slow lane's PutEvents rate on the curated
   * bus: keep it well under the account's PutEvents quota. Objects beyond it wait in the
   * object queue. Throttled entries are retried with backoff for as long as the invocation
   * has time; a long or throttled object then continues in a new message.
   * @default 5
   */
  readonly publisherMaxConcurrency?: number;

  /**
   * Largest PutEvents entry the publisher builds, in bytes, an integer from 4096 to
   * 1048576. EventBridge accepts entries up to 1 MiB since 2026-01-29; set 262144 where
   * consumers still expect the former 256 KiB limit. The default leaves 4 KiB for the
   * fields EventBridge adds around the entry, so a delivered event still fits a 1 MiB SQS
   * message or Lambda payload; it bills the same 16 chunks as a full 1 MiB entry.
   * @default 1044480
   */
  readonly maxEntryBytes?: number;

  /**
   * Most records the publisher packs into one curated batch event, an integer from 1 to 100000.
   * @default 1000
   */
  readonly maxRecordsPerEvent?: number;

  /**
   * Actions (for example an SNS topic action) for every alarm of the ingest.
   * @default - none; the alarms are exposed to add actions later
   */
  readonly alarmActions?: cloudwatch.IAlarmAction[];
}
