import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as events from 'aws-cdk-lib/aws-events';
import * as kinesis from 'aws-cdk-lib/aws-kinesis';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { PipeTarget } from './pipe-target';
import { ChannelAuthorization } from '../api-destination-channel/channel-authorization';

/** Where a pipe starts reading a stream it has not read before. */
export enum PipeStartingPosition {
  /** The oldest record the stream holds: nothing put before the pipe existed is skipped. */
  TRIM_HORIZON = 'TRIM_HORIZON',
  /** Only records put after the pipe started. */
  LATEST = 'LATEST',
}

/** How much a pipe logs. */
export enum PipeLogLevel {
  OFF = 'OFF',
  /** Failed executions only. */
  ERROR = 'ERROR',
  /** Every execution's steps. */
  INFO = 'INFO',
  /** Everything, including each stage's input and output. */
  TRACE = 'TRACE',
}

/** Properties of a `HydratingDlq`. */
export interface HydratingDlqProps {
  // ----- stream -----

  /**
   * An existing stream to read. Its retention must be given as `streamRetention`.
   * @default - a new stream, encrypted, on-demand unless `streamMode` says otherwise
   */
  readonly stream?: kinesis.IStream;

  /**
   * Capacity mode of the created stream.
   * @default kinesis.StreamMode.ON_DEMAND
   */
  readonly streamMode?: kinesis.StreamMode;

  /**
   * Shards of the created stream when `streamMode` is PROVISIONED (an integer from 1 to 500).
   * @default 1
   */
  readonly shardCount?: number;

  /**
   * Retention of the stream: of the created one (24 hours to 365 days), or of `stream` as it is
   * configured. The hydrator must read a failed batch back before it ends; the deadline
   * alarm and the `maximumRecordAge` check derive from it.
   * @default Duration.hours(24)
   */
  readonly streamRetention?: Duration;

  /**
   * Customer key for the created stream, the queues and the bucket.
   * @default - AWS managed keys: the created stream's `aws/kinesis`, SSE-SQS, SSE-S3
   */
  readonly encryptionKey?: kms.IKey;

  // ----- target -----

  /**
   * Where the pipe delivers the records. Give either `target`, or `endpoint` for the default
   * target: an API destination built from `endpoint`, `authorization` or `connection`, and `httpMethod`.
   * @default - an API destination to `endpoint`
   */
  readonly target?: PipeTarget;

  /**
   * The default target's endpoint: an absolute `https://` URL, with optional `*` wildcards.
   * @default - none; `target` must be given
   */
  readonly endpoint?: string;

  /**
   * HTTP method of the default target.
   * @default events.HttpMethod.POST
   */
  readonly httpMethod?: events.HttpMethod;

  /**
   * How the default target's connection authenticates (secrets come from Secrets Manager).
   * With `endpoint`, exactly one of `authorization` and `connection`.
   * @default - none
   */
  readonly authorization?: ChannelAuthorization;

  /**
   * An existing connection for the default target.
   * @default - none
   */
  readonly connection?: events.IConnection;

  /**
   * Invocations per second the default target sends to the endpoint (1 to 300).
   * @default - EventBridge's per-destination quota
   */
  readonly rateLimitPerSecond?: number;

  // ----- pipe -----

  /**
   * Name of the pipe (1 to 57 of `A-Z a-z 0-9 . _ -`, not ending in `-replay`): the replay
   * pipe is `<pipeName>-replay`. It is the consumer name in the hydrated objects' keys.
   * @default - a name derived from the construct's path
   */
  readonly pipeName?: string;

  /**
   * Records per batch sent to the target (1 to 10,000). API destinations take one record
   * per request.
   * @default 1
   */
  readonly batchSize?: number;

  /**
   * How long the pipe gathers records for a batch (0 to 300 seconds).
   * @default - none: a batch goes as soon as records are available
   */
  readonly maximumBatchingWindow?: Duration;

  /**
   * Retries of a failed batch before it goes to the dead-letter queue (0 to 10,000). Never
   * infinite: Pipes' default would block the shard behind one bad record until the retention ends.
   * @default 3
   */
  readonly maximumRetryAttempts?: number;

  /**
   * Records older than this go to the dead-letter queue instead of the target (60 seconds
   * to 7 days, and shorter than `streamRetention`, so the hydrator still finds them).
   * @default Duration.hours(1)
   */
  readonly maximumRecordAge?: Duration;

  /**
   * Split a failed batch in two and retry each half, so one bad record fails alone.
   * @default true
   */
  readonly bisectBatchOnFailure?: boolean;

  /**
   * Batches processed at once per shard (1 to 10). Above 1, records of one partition key stay in order.
   * @default 1
   */
  readonly parallelizationFactor?: number;

  /**
   * Where the pipe starts on a stream it has not read.
   * @default PipeStartingPosition.TRIM_HORIZON
   */
  readonly startingPosition?: PipeStartingPosition;

  /**
   * The pipe's input template: what the target receives for each record, with `<$.data>`,
   * `<$.partitionKey>`, `<$.sequenceNumber>` and Pipes' reserved variables (at most 8,192 characters).
   * @default - the record as Pipes delivers it
   */
  readonly inputTemplate?: string;

  /**
   * Event patterns (JSON) of the records the pipe delivers, at most 5; the others are dropped
   * by the pipe without a failure.
   * @default - every record
   */
  readonly filterPatterns?: string[];

  /**
   * The pipe's log level (to its own log group).
   * @default PipeLogLevel.ERROR
   */
  readonly logLevel?: PipeLogLevel;

  /**
   * Include the records, requests and responses in the pipe's logs. They may hold personal data.
   * @default false
   */
  readonly logExecutionData?: boolean;

  // ----- dead-letter queue, hydrator, bucket -----

  /**
   * How long the pipe's dead-letter queue keeps a message, up to 14 days, and at least 4 times
   * its visibility timeout (6 x `hydratorTimeout`), so a message outlives the hydrator's 3 attempts.
   * @default Duration.days(14)
   */
  readonly deadLetterQueueRetention?: Duration;

  /**
   * Where hydrated records are written.
   * @default - a new bucket: encrypted, TLS only, public access blocked, retained
   */
  readonly bucket?: s3.IBucket;

  /**
   * Key prefix of every hydrated object: empty, or up to 100 characters of
   * `A-Z a-z 0-9 ! _ . ' ( ) -` in segments each ending in `/`.
   * @default 'hydrated/'
   */
  readonly objectPrefix?: string;

  /**
   * Bucket for the created bucket's server access logs.
   * @default - no access logs
   */
  readonly serverAccessLogsBucket?: s3.IBucket;

  /**
   * Dead-letter messages per hydrator invocation (1 to 10).
   * @default 1
   */
  readonly hydratorBatchSize?: number;

  /**
   * Hydrator invocations at once (2 to 1,000). They read the shards the pipe reads, and a shard
   * serves 5 GetRecords calls a second to all its readers.
   * @default 2
   */
  readonly hydratorMaxConcurrency?: number;

  /**
   * Timeout of the hydrator (30 seconds to 15 minutes). A batch of 10,000 records takes up to
   * 10,000 S3 writes.
   * @default Duration.minutes(5)
   */
  readonly hydratorTimeout?: Duration;

  /**
   * A bus the replayer may also send hydrated records to (`"target": "bus"`), as
   * `Hydrated Record Replayed` events from `cdk-event-fabric.hydrating-dlq`.
   * @default - none: records are replayed to the pipe's target only
   */
  readonly replayEventBus?: events.IEventBus;

  /**
   * What happens to the created stream, queues and bucket when the construct is removed.
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;

  /**
   * Actions of every alarm (for example an SNS topic action).
   * @default - none
   */
  readonly alarmActions?: cloudwatch.IAlarmAction[];
}
