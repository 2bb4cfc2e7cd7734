import { ArnFormat, Duration, RemovalPolicy, Size, SizeRoundingBehavior, Stack, Token, Tokenization, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as firehose from 'aws-cdk-lib/aws-kinesisfirehose';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as lambdaDestinations from 'aws-cdk-lib/aws-lambda-destinations';
import * as lambdaEventSources from 'aws-cdk-lib/aws-lambda-event-sources';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct, IConstruct } from 'constructs';
import { DEFAULT_BATCH_ENTRY_BYTES } from './batch-packer';
import { BatchPublisherFunction } from './batch-publisher-function';
import { FastLaneRelayFunction } from './fast-lane-relay-function';
import { LaneTarget } from './lane-target';
import { RedriveFunction } from './redrive-function';
import { FastRouteOptions, TieredEventIngestProps } from './tiered-event-ingest-props';
import {
  acknowledgeKeyWildcards, acknowledgeXRay, allowEventBridgeToUseKey, FUNCTION_LOG_RETENTION, functionLogGroup, functionRole,
  handlerMetric, METRICS_NAMESPACE, queueDepth, queueEncryption, secureDeadLetterQueue, thresholdAlarm, truncate,
} from '../common/construct-defaults';
import { addStackResourceBudgetCheck } from '../common/stack-resource-budget';
import { PropValidationError, validateEventPattern, validateIntegerRange } from '../common/validation';
import { CuratedEnvelope, CuratedEnvelopePaths, IngestLane } from '../envelope';

/** S3 prefix of the objects Firehose writes; the batch publisher reads only these. */
const DATA_PREFIX = 'data/';
/** S3 prefix where the batch publisher writes records it could not publish. */
const QUARANTINE_PREFIX = 'quarantine/';
/** S3 prefix under `data/` where the redrive writes parked records back, for the publisher. */
const REDRIVE_PREFIX = 'data/redrive/';
/** S3 prefix of Firehose's error output (records it could not partition or deliver). */
const FIREHOSE_ERRORS_PREFIX = 'firehose-errors/';
/**
 * The tenant, or `_none` for a record without one (an empty or null tenant), so such records
 * are partitioned and published rather than left in Firehose's error output. `tostring`
 * keeps a numeric tenant (a record written to the stream directly) a valid key.
 */
const DEFAULT_PARTITION_KEY_QUERY = 'if (.tenant // "") == "" then "_none" else (.tenant | tostring) end';
/** The `service` dimension and Powertools service name of the ingest's handlers. */
const SERVICE_NAME = 'tiered-event-ingest';

/**
 * Two ingest lanes feeding one curated bus.
 *
 * The fast lane is a bus whose routes deliver each event within seconds, by default
 * through a relay function that puts it on the curated bus as a record envelope. The
 * slow lane is a bus whose events Firehose buffers into GZIP objects partitioned by
 * tenant in an S3 bucket; each new object is announced through S3's EventBridge
 * notifications and an SQS queue to a batch publisher, which puts its records on the
 * curated bus in batch envelopes, once per object version thanks to a DynamoDB ledger (delivery is still at least once).
 * The curated bus is archived for replay.
 *
 * Every failure path ends in an encrypted dead-letter queue or the bucket's
 * `quarantine/` prefix, each watched by an alarm.
 */
export class TieredEventIngest extends Construct {
  /**
   * CloudFormation resources one ingest adds to its stack in the default configuration
   * (no fast routes; each route adds a rule and two alarms, and a Lambda permission when
   * it targets the relay function). Asserted by the unit tests.
   */
  public static readonly RESOURCES_PER_INGEST = 57;

  /** Bus of the fast lane. */
  public readonly fastBus: events.IEventBus;
  /** Bus of the slow lane. */
  public readonly slowBus: events.IEventBus;
  /** Bus that receives every curated record and batch. */
  public readonly curatedBus: events.IEventBus;
  /** Archive of every event on the curated bus, for replay. */
  public readonly curatedArchive: events.Archive;
  /**
   * Dead-letter queue of the fast lane: events EventBridge could not deliver to a route's
   * target (for targets without their own DLQ), and relay invocations that failed after
   * Lambda's retries (as Lambda on-failure records, which carry the request payload).
   */
  public readonly fastLaneDeadLetterQueue: sqs.Queue;
  /** Function that puts fast-lane records on the curated bus; the default route target. */
  public readonly relayFunction: lambda.Function;
  /** Rule on the slow bus that sends events to Firehose. */
  public readonly slowLaneRule: events.Rule;
  /** Dead-letter queue of events EventBridge could not put to Firehose. */
  public readonly slowLaneDeadLetterQueue: sqs.Queue;
  /** Firehose stream that writes slow-lane records to the bucket, partitioned by tenant. */
  public readonly deliveryStream: firehose.DeliveryStream;
  /** Bucket of slow-lane objects (`data/`), quarantined records and Firehose errors. */
  public readonly bucket: s3.Bucket;
  /** Rule on the account's default bus that matches new objects under `data/`. */
  public readonly objectCreatedRule: events.Rule;
  /** Queue of new-object notifications that feeds the batch publisher. */
  public readonly objectQueue: sqs.Queue;
  /** Dead-letter queue of object notifications that could not be delivered or published. */
  public readonly objectDeadLetterQueue: sqs.Queue;
  /** Function that publishes each new object's records on the curated bus. */
  public readonly publisherFunction: lambda.Function;
  /**
   * The operator's way back from every dead end: invoke it with a command (see the docs):
   * `{"action":"parked-records","prefix":"quarantine/..."}` republishes quarantined records
   * or Firehose's error output after a fix, `{"action":"object-dlq"}` moves the object
   * DLQ's notifications back to the object queue.
   */
  public readonly redriveFunction: lambda.Function;
  /** Table of the object versions already published, so a duplicate notification publishes nothing twice. */
  public readonly ledgerTable: dynamodb.Table;
  /** Alarm: the fast-lane dead-letter queue holds at least one message. */
  public readonly fastLaneDeadLetterQueueAlarm: cloudwatch.Alarm;
  /** Alarm: the slow-lane dead-letter queue holds at least one message. */
  public readonly slowLaneDeadLetterQueueAlarm: cloudwatch.Alarm;
  /** Alarm: the object dead-letter queue holds at least one message. */
  public readonly objectDeadLetterQueueAlarm: cloudwatch.Alarm;
  /** Alarm: Firehose exceeded its active-partition quota (records then go to `firehose-errors/`). */
  public readonly partitionOverflowAlarm: cloudwatch.Alarm;
  /** Alarm: Firehose failed to write to the bucket. */
  public readonly deliveryFailureAlarm: cloudwatch.Alarm;
  /** Rule on the account's default bus that matches Firehose's error objects, for `firehoseErrorsAlarm`. */
  public readonly firehoseErrorsRule: events.Rule;
  /** Alarm: Firehose wrote at least one error object (records that did not reach the curated bus). */
  public readonly firehoseErrorsAlarm: cloudwatch.Alarm;
  /** Alarm: the batch publisher quarantined at least one record. */
  public readonly quarantineAlarm: cloudwatch.Alarm;
  /**
   * Alarms on the delivery of every rule with a target: the slow-lane rule, the
   * object-created rule and each fast route. Per rule, `FailedInvocations` (events that
   * went to a dead-letter queue) and `InvocationsFailedToBeSentToDlq` (events EventBridge
   * could neither deliver nor park: the one path that bypasses every DLQ, so they are lost).
   * Fast routes added later add theirs.
   */
  public readonly ruleDeliveryAlarms: cloudwatch.Alarm[] = [];
  /** Alarm: the oldest object notification has waited an hour in the object queue (a backlog, or a publisher that cannot keep up). */
  public readonly objectQueueAgeAlarm: cloudwatch.Alarm;
  /** Alarm: the batch publisher failed (crashed or timed out) at least once. */
  public readonly publisherErrorsAlarm: cloudwatch.Alarm;
  /** Alarm: Firehose throttled records (the slow bus then retries, and finally parks them in the slow-lane DLQ). */
  public readonly firehoseThrottlingAlarm: cloudwatch.Alarm;
  /**
   * Alarms: a dead-letter queue's oldest message is 10 days old, 4 days before its
   * 14-day retention drops it. Redrive the queue before then (see the docs).
   */
  public readonly deadLetterExpiryAlarms: cloudwatch.Alarm[];

  private readonly props: TieredEventIngestProps;
  private readonly envelopePaths: CuratedEnvelopePaths;
  private readonly routes: events.Rule[] = [];
  private readonly routeIds = new Set<string>();

  constructor(scope: Construct, id: string, props: TieredEventIngestProps = {}) {
    super(scope, id);
    this.props = props;
    this.envelopePaths = validateProps(this, props);
    const key = props.encryptionKey;
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;

    this.fastBus = props.fastBus ?? this.createBus('FastBus', 'fast lane: events delivered one by one within seconds');
    this.slowBus = props.slowBus ?? this.createBus('SlowBus', 'slow lane: events batched through Firehose and S3');
    this.curatedBus = props.curatedBus ?? this.createBus('CuratedBus', 'curated records and batches of both lanes');
    const archiveSource = this.archiveSource();
    this.curatedArchive = new events.Archive(this, 'CuratedArchive', {
      sourceEventBus: archiveSource,
      eventPattern: { source: events.Match.prefix('') },
      retention: props.archiveRetention ?? Duration.days(30),
      kmsKey: key,
      description: 'cdk-event-fabric TieredEventIngest: every curated event, for replay',
    });
    if (archiveSource !== this.curatedBus) {
      this.curatedArchive.node.addDependency(this.curatedBus);
    }
    // EventBridge writes to the dead-letter queues and the object queue; the targets add
    // the queue policies, this adds the key policy.
    allowEventBridgeToUseKey(this, key);

    this.fastLaneDeadLetterQueue = this.createDeadLetterQueue('FastLaneDeadLetterQueue',
      'fast-lane events EventBridge could not deliver, and relay invocations that failed');
    this.slowLaneDeadLetterQueue = this.createDeadLetterQueue('SlowLaneDeadLetterQueue',
      'slow-lane events EventBridge could not put to Firehose');
    this.objectDeadLetterQueue = this.createDeadLetterQueue('ObjectDeadLetterQueue',
      'object notifications that could not be delivered to the object queue or published');

    this.bucket = this.createBucket(props, removalPolicy);
    this.ledgerTable = new dynamodb.Table(this, 'LedgerTable', {
      partitionKey: { name: 'objectId', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      timeToLiveAttribute: 'expiresAt',
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: key ? dynamodb.TableEncryption.CUSTOMER_MANAGED : dynamodb.TableEncryption.AWS_MANAGED,
      encryptionKey: key,
      removalPolicy,
    });

    // Fast lane.
    this.relayFunction = this.createRelayFunction();
    for (const route of props.fastRoutes ?? []) {
      this.addFastRoute(route.id, route);
    }

    // Slow lane: slow bus -> Firehose -> bucket.
    this.deliveryStream = this.createDeliveryStream(props);
    this.slowLaneRule = new events.Rule(this, 'SlowLaneRule', {
      eventBus: this.slowBus,
      eventPattern: props.slowLaneEventPattern ?? { source: events.Match.prefix('') },
      description: `cdk-event-fabric TieredEventIngest slow lane to Firehose (${truncate(this.node.path, 400)})`,
    });
    // targets.FirehoseDeliveryStream has no retry or DLQ options; the lane target adds them.
    const slowInput = CuratedEnvelope.ruleTargetInput(IngestLane.SLOW, this.envelopePaths);
    this.slowLaneRule.addTarget(new LaneTarget(new targets.FirehoseDeliveryStream(this.deliveryStream, { message: slowInput }), {
      rule: this.slowLaneRule,
      input: slowInput,
      deadLetterQueue: this.slowLaneDeadLetterQueue,
      retryAttempts: 185,
      maxEventAge: Duration.hours(24),
    }));

    // Bucket -> default bus -> object queue -> batch publisher -> curated bus.
    const publisherTimeout = props.publisherTimeout ?? Duration.minutes(5);
    this.objectQueue = new sqs.Queue(this, 'ObjectQueue', {
      ...queueEncryption(key),
      enforceSSL: true,
      visibilityTimeout: Duration.seconds(publisherTimeout.toSeconds() * 6),
      deadLetterQueue: { queue: this.objectDeadLetterQueue, maxReceiveCount: props.publisherMaxReceiveCount ?? 5 },
    });
    this.objectCreatedRule = new events.Rule(this, 'ObjectCreatedRule', {
      eventBus: events.EventBus.fromEventBusName(this, 'DefaultBus', 'default'),
      eventPattern: {
        source: ['aws.s3'],
        detailType: ['Object Created'],
        detail: { bucket: { name: [this.bucket.bucketName] }, object: { key: events.Match.prefix(DATA_PREFIX) } },
      },
      description: `cdk-event-fabric TieredEventIngest new slow-lane objects to the publisher (${truncate(this.node.path, 400)})`,
    });
    this.objectCreatedRule.addTarget(new targets.SqsQueue(this.objectQueue, {
      deadLetterQueue: this.objectDeadLetterQueue,
      retryAttempts: 185,
      maxEventAge: Duration.hours(24),
    }));
    this.publisherFunction = this.createPublisherFunction(props, publisherTimeout);
    this.redriveFunction = this.createRedriveFunction();
    // Objects Firehose writes under firehose-errors/ hold records that never reach the
    // curated bus (no partition key, partition quota, delivery errors): count them.
    this.firehoseErrorsRule = new events.Rule(this, 'FirehoseErrorsRule', {
      eventBus: events.EventBus.fromEventBusName(this, 'DefaultBusForErrors', 'default'),
      eventPattern: {
        source: ['aws.s3'],
        detailType: ['Object Created'],
        detail: { bucket: { name: [this.bucket.bucketName] }, object: { key: events.Match.prefix(FIREHOSE_ERRORS_PREFIX) } },
      },
      description: `cdk-event-fabric TieredEventIngest Firehose error objects, counted by an alarm (${truncate(this.node.path, 400)})`,
    });
    Validations.of(this.firehoseErrorsRule).acknowledge({
      id: 'Serverless-EventBusDLQ',
      reason: 'The rule has no target to deliver to: it exists only so its MatchedEvents metric counts Firehose error objects for firehoseErrorsAlarm.',
    });

    this.fastLaneDeadLetterQueueAlarm = this.alarm('FastLaneDeadLetterQueueAlarm', queueDepth(this.fastLaneDeadLetterQueue),
      'Fast-lane events or relay invocations failed and are parked in the fast-lane dead-letter queue; fix the cause, then redrive them');
    this.slowLaneDeadLetterQueueAlarm = this.alarm('SlowLaneDeadLetterQueueAlarm', queueDepth(this.slowLaneDeadLetterQueue),
      'Slow-lane events could not be put to Firehose and are parked in the slow-lane dead-letter queue');
    this.objectDeadLetterQueueAlarm = this.alarm('ObjectDeadLetterQueueAlarm', queueDepth(this.objectDeadLetterQueue),
      'S3 objects of the slow lane were not published; their notifications are in the object dead-letter queue, redrive them to the object queue');
    this.partitionOverflowAlarm = this.alarm('PartitionOverflowAlarm',
      this.deliveryStream.metric('PartitionCountExceeded', { statistic: cloudwatch.Stats.MAXIMUM, period: Duration.minutes(5) }),
      'Firehose exceeded its active-partition quota; records over it are written under firehose-errors/. Raise the quota or partition more coarsely');
    this.deliveryFailureAlarm = this.alarm('DeliveryFailureAlarm',
      this.deliveryStream.metric('DeliveryToS3.Success', { statistic: cloudwatch.Stats.MINIMUM, period: Duration.minutes(5) }),
      'Firehose failed to write to the ingest bucket; it retries for up to 24 hours, then the data is lost. Check the bucket, key and role',
      cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD);
    this.firehoseErrorsAlarm = this.alarm('FirehoseErrorsAlarm',
      new cloudwatch.Metric({
        namespace: 'AWS/Events',
        metricName: 'MatchedEvents',
        dimensionsMap: { RuleName: this.firehoseErrorsRule.ruleName },
        statistic: cloudwatch.Stats.SUM,
        period: Duration.minutes(5),
      }),
      `Firehose wrote records it could not partition or deliver under ${FIREHOSE_ERRORS_PREFIX} (for example events without a tenant id); `
      + 'they did not reach the curated bus');
    this.quarantineAlarm = this.alarm('QuarantineAlarm', this.metricRecordsQuarantined(),
      `The batch publisher quarantined records it could not publish; they are under ${QUARANTINE_PREFIX} in the ingest bucket`);

    this.ruleDeliveryAlarms.push(
      ...this.ruleAlarms('SlowLaneRule', this.slowLaneRule, this.slowBus, 'slow-lane events to Firehose', 'the slow-lane dead-letter queue'),
      ...this.ruleAlarms('ObjectCreatedRule', this.objectCreatedRule, undefined, 'new-object notifications to the object queue',
        'the object dead-letter queue'),
    );
    this.objectQueueAgeAlarm = this.alarm('ObjectQueueAgeAlarm',
      this.objectQueue.metricApproximateAgeOfOldestMessage({ statistic: cloudwatch.Stats.MAXIMUM, period: Duration.minutes(5) }),
      'A new-object notification has waited an hour in the object queue: the publisher is behind (raise publisherMaxConcurrency if PutEvents '
      + 'is not throttled) or failing; objects must be published before dataRetention deletes them', undefined, 3600);
    this.publisherErrorsAlarm = this.alarm('PublisherErrorsAlarm',
      this.publisherFunction.metricErrors({ statistic: cloudwatch.Stats.SUM, period: Duration.minutes(5) }),
      'The batch publisher failed (an error or a timeout); its object is retried and finally parked in the object dead-letter queue');
    this.firehoseThrottlingAlarm = this.alarm('FirehoseThrottlingAlarm',
      this.deliveryStream.metric('ThrottledRecords', { statistic: cloudwatch.Stats.SUM, period: Duration.minutes(5) }),
      'Firehose throttled slow-lane records; EventBridge retries them for 24 hours, then parks them in the slow-lane dead-letter queue. '
      + 'Ask for a higher Firehose throughput quota');
    this.deadLetterExpiryAlarms = ([
      ['FastLane', this.fastLaneDeadLetterQueue],
      ['SlowLane', this.slowLaneDeadLetterQueue],
      ['Object', this.objectDeadLetterQueue],
    ] as const).map(([name, queue]) => this.alarm(`${name}DeadLetterQueueExpiryAlarm`,
      queue.metricApproximateAgeOfOldestMessage({ statistic: cloudwatch.Stats.MAXIMUM, period: Duration.minutes(5) }),
      `A message has waited 10 days in the ${name === 'Object' ? 'object' : name === 'FastLane' ? 'fast-lane' : 'slow-lane'} dead-letter queue; `
      + 'its 14-day retention drops it in 4 days. Redrive it now (see the redrive function)', undefined, 10 * 86_400));

    addStackResourceBudgetCheck(this, 'TieredEventIngest', TieredEventIngest.RESOURCES_PER_INGEST);
  }

  /** The fast-lane rules, in the order they were added. */
  public get fastRoutes(): events.Rule[] {
    return [...this.routes];
  }

  /**
   * Adds a route to the fast lane: a rule on the fast bus. Its target (by default the relay
   * function) gets the route's input, the lane's retry policy and the fast-lane dead-letter
   * queue, unless it set its own input, retry policy or dead-letter queue.
   */
  public addFastRoute(id: string, options: FastRouteOptions): events.Rule {
    if (this.routeIds.has(id)) {
      throw new PropValidationError(this, 'fast route id', id, 'allowed: an id not used by another fast route of this ingest');
    }
    validatePattern(this, `eventPattern of fast route "${id}"`, options.eventPattern);
    this.routeIds.add(id);
    const rule = new events.Rule(this, `FastRoute${id}`, {
      eventBus: this.fastBus,
      eventPattern: options.eventPattern,
      description: truncate(options.description ?? `cdk-event-fabric TieredEventIngest fast route ${id} (${this.node.path})`, 512),
    });
    rule.addTarget(new LaneTarget(options.target ?? new targets.LambdaFunction(this.relayFunction), {
      rule,
      input: options.input ?? CuratedEnvelope.ruleTargetInput(IngestLane.FAST, this.envelopePaths),
      deadLetterQueue: this.fastLaneDeadLetterQueue,
      retryAttempts: this.props.fastLaneRetryAttempts ?? 8,
      maxEventAge: this.props.fastLaneMaxEventAge ?? Duration.hours(1),
    }));
    this.routes.push(rule);
    const target = options.target ? 'its target' : 'the relay function';
    this.ruleDeliveryAlarms.push(...this.ruleAlarms(`FastRoute${id}`, rule, this.fastBus, `fast route ${id} to ${target}`,
      'the fast-lane dead-letter queue (unless the target set its own)'));
    return rule;
  }

  /** A custom metric of this ingest's handlers (namespace `cdk-event-fabric`, dimensions `service` and `ingest`). */
  public metric(metricName: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return handlerMetric(metricName, { service: SERVICE_NAME, ingest: this.node.addr }, props);
  }


  /** Records the batch publisher put on the curated bus. */
  public metricRecordsPublished(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric('RecordsPublished', props);
  }

  /** Records the batch publisher wrote under `quarantine/` instead of publishing them. */
  public metricRecordsQuarantined(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric('RecordsQuarantined', props);
  }

  /** 64 KiB PutEvents chunks the batch publisher was billed for. */
  public metricBilledChunks(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric('BilledChunks', props);
  }

  /** Batch events the batch publisher put on the curated bus. */
  public metricEventsPublished(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric('EventsPublished', props);
  }

  private createBus(id: string, what: string): events.EventBus {
    return new events.EventBus(this, id, {
      kmsKey: this.props.encryptionKey,
      description: `cdk-event-fabric TieredEventIngest ${what}`,
    });
  }

  /**
   * The curated bus as the archive's source. With a customer key, the archive adds a key
   * policy condition on the bus ARN while the created bus refers to the key: a created bus
   * is then referenced by its ARN built from its literal name, which breaks the cycle.
   */
  private archiveSource(): events.IEventBus {
    if (!this.props.encryptionKey || this.props.curatedBus) return this.curatedBus;
    const name = (this.curatedBus.node.defaultChild as events.CfnEventBus).name;
    return events.EventBus.fromEventBusArn(this, 'CuratedBusByName', Stack.of(this).formatArn({
      service: 'events', resource: 'event-bus', resourceName: name, arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
    }));
  }

  private createDeadLetterQueue(id: string, what: string): sqs.Queue {
    return secureDeadLetterQueue(this, id, { encryptionKey: this.props.encryptionKey, holds: what, emptiedBy: 'inspected and redriven by an operator' });
  }

  private createBucket(props: TieredEventIngestProps, removalPolicy: RemovalPolicy): s3.Bucket {
    const quarantineRetention = props.quarantineRetention ?? Duration.days(90);
    const bucket = new s3.Bucket(this, 'Bucket', {
      encryption: props.encryptionKey ? s3.BucketEncryption.KMS : s3.BucketEncryption.S3_MANAGED,
      encryptionKey: props.encryptionKey,
      bucketKeyEnabled: props.encryptionKey ? true : undefined,
      enforceSSL: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      serverAccessLogsBucket: props.serverAccessLogsBucket,
      serverAccessLogsPrefix: props.serverAccessLogsBucket ? 'tiered-event-ingest/' : undefined,
      removalPolicy,
      lifecycleRules: [
        { id: 'ExpireData', prefix: DATA_PREFIX, expiration: props.dataRetention ?? Duration.days(30) },
        { id: 'ExpireFirehoseErrors', prefix: FIREHOSE_ERRORS_PREFIX, expiration: quarantineRetention },
        { id: 'ExpireQuarantine', prefix: QUARANTINE_PREFIX, expiration: quarantineRetention },
        { id: 'AbortIncompleteUploads', abortIncompleteMultipartUploadAfter: Duration.days(1) },
      ],
    });
    // Set on the L1: the L2's `eventBridgeEnabled` would add a custom-resource function.
    (bucket.node.defaultChild as s3.CfnBucket).notificationConfiguration = {
      eventBridgeConfiguration: { eventBridgeEnabled: true },
    };
    if (!props.serverAccessLogsBucket) {
      Validations.of(bucket).acknowledge({
        id: 'AwsSolutions-S1',
        reason: 'Server access logging is opt-in: pass `serverAccessLogsBucket` (an SSE-S3 bucket in the same account and region) to enable it. '
          + 'Only the ingest\'s Firehose stream writes to this bucket and only its publisher reads from it.',
      });
    }
    return bucket;
  }

  private createRelayFunction(): lambda.Function {
    const logGroup = functionLogGroup(this, 'RelayFunctionLogs');
    const role = functionRole(this, 'RelayFunctionRole', 'cdk-event-fabric TieredEventIngest fast-lane relay', logGroup);
    const fn = new FastLaneRelayFunction(this, 'RelayFunction', {
      role,
      description: 'cdk-event-fabric TieredEventIngest: puts fast-lane records on the curated bus',
      memorySize: 256,
      timeout: Duration.seconds(30),
      tracing: lambda.Tracing.ACTIVE,
      logGroup,
      retryAttempts: 2,
      onFailure: new lambdaDestinations.SqsDestination(this.fastLaneDeadLetterQueue),
      environment: {
        CURATED_BUS_NAME: this.curatedBus.eventBusName,
        POWERTOOLS_SERVICE_NAME: SERVICE_NAME,
      },
    });
    this.curatedBus.grantPutEventsTo(fn);
    acknowledgeXRay(role);
    acknowledgeKeyWildcards(role, this.props.encryptionKey, 'The relay sends failed invocations to the fast-lane dead-letter queue, encrypted with the ingest key');
    Validations.of(fn).acknowledge({
      id: 'Serverless-LambdaDLQ',
      reason: 'Invoked asynchronously by EventBridge; failed invocations go to the on-failure destination (the fast-lane dead-letter queue), which records the error with the payload. A legacy DLQ would receive the same events twice.',
    });
    return fn;
  }

  private createDeliveryStream(props: TieredEventIngestProps): firehose.DeliveryStream {
    const key = props.encryptionKey;
    const logGroup = new logs.LogGroup(this, 'DeliveryStreamLogs', { retention: FUNCTION_LOG_RETENTION, removalPolicy: RemovalPolicy.DESTROY });
    // One role for the stream and its destination, so its grants can be reviewed in one place.
    const role = new iam.Role(this, 'DeliveryStreamRole', {
      assumedBy: new iam.ServicePrincipal('firehose.amazonaws.com'),
      description: 'cdk-event-fabric TieredEventIngest: lets Firehose write the slow lane to the ingest bucket',
    });
    const stream = new firehose.DeliveryStream(this, 'DeliveryStream', {
      role,
      encryption: key ? firehose.StreamEncryption.customerManagedKey(key) : firehose.StreamEncryption.awsOwnedKey(),
      destination: new firehose.S3Bucket(this.bucket, {
        role,
        dataOutputPrefix: `${DATA_PREFIX}tenant=!{partitionKeyFromQuery:tenant}/!{timestamp:yyyy/MM/dd/HH}/`,
        errorOutputPrefix: `${FIREHOSE_ERRORS_PREFIX}!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd/HH}/`,
        dynamicPartitioning: { enabled: true },
        processors: [
          // Parenthesized: an object value in jq 1.6 may not hold an operator (`.a // "x"`).
          firehose.MetadataExtractionProcessor.jq16({ tenant: `(${props.partitionKeyQuery ?? DEFAULT_PARTITION_KEY_QUERY})` }),
          new firehose.AppendDelimiterToRecordProcessor(),
        ],
        bufferingSize: props.bufferingSize ?? Size.mebibytes(128),
        bufferingInterval: props.bufferingInterval ?? Duration.seconds(60),
        compression: (props.compressObjects ?? true) ? firehose.Compression.GZIP : firehose.Compression.UNCOMPRESSED,
        encryptionKey: key,
        loggingConfig: new firehose.EnableLogging(logGroup),
      }),
    });
    acknowledgeWildcards(role, this.bucket, [
      ['Action::s3:Abort*', 'Action::s3:DeleteObject*', 'Action::s3:GetBucket*', 'Action::s3:GetObject*', 'Action::s3:List*'],
      ['Resource::<BUCKET>/*'],
    ], 'Firehose writes objects under any prefix of the ingest bucket (data/ and firehose-errors/, chosen at delivery time) and needs multipart and listing actions for it; '
      + 'the grant comes from the Firehose L2 S3 destination (bucket.grantReadWrite) and is limited to this bucket.');
    acknowledgeKeyWildcards(role, key, 'Firehose encrypts the stream and the objects it writes with the ingest key');
    return stream;
  }

  private createPublisherFunction(props: TieredEventIngestProps, timeout: Duration): lambda.Function {
    const logGroup = functionLogGroup(this, 'PublisherFunctionLogs');
    const role = functionRole(this, 'PublisherFunctionRole', 'cdk-event-fabric TieredEventIngest batch publisher', logGroup);
    const fn = new BatchPublisherFunction(this, 'PublisherFunction', {
      role,
      description: 'cdk-event-fabric TieredEventIngest: publishes the records of each new slow-lane object on the curated bus',
      memorySize: props.publisherMemorySize ?? 1024,
      timeout,
      tracing: lambda.Tracing.ACTIVE,
      logGroup,
      environment: {
        CURATED_BUS_NAME: this.curatedBus.eventBusName,
        BUCKET_NAME: this.bucket.bucketName,
        DATA_PREFIX,
        QUARANTINE_PREFIX,
        LEDGER_TABLE_NAME: this.ledgerTable.tableName,
        MAX_ENTRY_BYTES: Tokenization.stringifyNumber(props.maxEntryBytes ?? DEFAULT_BATCH_ENTRY_BYTES),
        MAX_RECORDS_PER_EVENT: Tokenization.stringifyNumber(props.maxRecordsPerEvent ?? 1000),
        LEASE_SECONDS: String(timeout.toSeconds() + 60),
        // Time kept to checkpoint and stop cleanly: 15 s, or a quarter of a short timeout.
        RESERVE_MS: String(Math.min(15_000, timeout.toMilliseconds() / 4)),
        OBJECT_QUEUE_URL: this.objectQueue.queueUrl,
        INGEST_ID: this.node.addr,
        POWERTOOLS_SERVICE_NAME: SERVICE_NAME,
        POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE,
      },
    });
    fn.addEventSource(new lambdaEventSources.SqsEventSource(this.objectQueue, {
      batchSize: 1,
      reportBatchItemFailures: true,
      maxConcurrency: props.publisherMaxConcurrency ?? 5,
    }));
    // Continuations of long or throttled objects go back to the object queue.
    this.objectQueue.grantSendMessages(fn);
    this.bucket.grantRead(fn, `${DATA_PREFIX}*`);
    this.bucket.grantPut(fn, `${QUARANTINE_PREFIX}*`);
    this.curatedBus.grantPutEventsTo(fn);
    // The ledger needs only item reads and conditional updates.
    this.ledgerTable.grant(fn, 'dynamodb:GetItem', 'dynamodb:UpdateItem');
    props.encryptionKey?.grantEncryptDecrypt(fn);

    acknowledgeXRay(role);
    acknowledgeWildcards(role, this.bucket, [
      ['Action::s3:GetObject*', 'Action::s3:GetBucket*', 'Action::s3:List*', 'Action::s3:Abort*'],
      [`Resource::<BUCKET>/${DATA_PREFIX}*`, `Resource::<BUCKET>/${QUARANTINE_PREFIX}*`],
    ], `The publisher reads any object under ${DATA_PREFIX} (named by the S3 notification) and writes any object under ${QUARANTINE_PREFIX}; `
      + 'the wildcards are the action groups of bucket.grantRead/grantPut, limited to these two prefixes of this bucket.');
    acknowledgeKeyWildcards(role, props.encryptionKey, 'The publisher reads SSE-KMS objects and writes quarantined ones with the ingest key');
    Validations.of(fn).acknowledge({
      id: 'Serverless-LambdaDLQ',
      reason: 'Invoked by an SQS event source mapping, not asynchronously; a message that keeps failing moves to the object dead-letter queue through the object queue\'s redrive policy.',
    });
    Validations.of(fn).acknowledge({
      id: 'Serverless-LambdaAsyncFailureDestination',
      reason: 'Invoked by an SQS event source mapping, not asynchronously; failures are handled by the object queue\'s redrive policy to the object dead-letter queue.',
    });
    const mapping = fn.node.children.find((c) => c instanceof lambda.EventSourceMapping);
    if (mapping) {
      Validations.of(mapping).acknowledge({
        id: 'Serverless-LambdaEventSourceMappingDestination',
        reason: 'Lambda supports on-failure destinations only for stream and Kafka sources; for this SQS source a message that keeps failing moves to the object dead-letter queue through the object queue\'s redrive policy.',
      });
    }
    return fn;
  }

  private createRedriveFunction(): lambda.Function {
    const logGroup = functionLogGroup(this, 'RedriveFunctionLogs');
    const role = functionRole(this, 'RedriveFunctionRole', 'cdk-event-fabric TieredEventIngest redrive of parked records', logGroup);
    const fn = new RedriveFunction(this, 'RedriveFunction', {
      role,
      description: 'cdk-event-fabric TieredEventIngest: redrives quarantined records, Firehose error output and the DLQs (invoked by an operator)',
      memorySize: 1024,
      timeout: Duration.minutes(15),
      tracing: lambda.Tracing.ACTIVE,
      logGroup,
      // An operator's synchronous call: no asynchronous retries of a paged command.
      retryAttempts: 0,
      environment: {
        BUCKET_NAME: this.bucket.bucketName,
        OBJECT_QUEUE_URL: this.objectQueue.queueUrl,
        OBJECT_DLQ_URL: this.objectDeadLetterQueue.queueUrl,
        SLOW_LANE_DLQ_URL: this.slowLaneDeadLetterQueue.queueUrl,
        FAST_LANE_DLQ_URL: this.fastLaneDeadLetterQueue.queueUrl,
        CURATED_BUS_NAME: this.curatedBus.eventBusName,
        RELAY_FUNCTION_ARN: this.relayFunction.functionArn,
        TENANT_ID_PATH: this.envelopePaths.tenantIdPath!,
        CHANNEL_PATH: this.envelopePaths.channelPath!,
        CORRELATION_ID_PATH: this.envelopePaths.correlationIdPath!,
        POWERTOOLS_SERVICE_NAME: SERVICE_NAME,
      },
    });
    // Reads parked objects, checks and writes data/redrive/ (whose notification reaches the publisher).
    this.bucket.grantRead(fn, `${QUARANTINE_PREFIX}*`);
    this.bucket.grantRead(fn, `${FIREHOSE_ERRORS_PREFIX}*`);
    this.bucket.grantReadWrite(fn, `${REDRIVE_PREFIX}*`);
    for (const dlq of [this.objectDeadLetterQueue, this.slowLaneDeadLetterQueue, this.fastLaneDeadLetterQueue]) dlq.grantConsumeMessages(fn);
    this.objectQueue.grantSendMessages(fn);
    // The fast lane's records go where the relay puts them.
    this.curatedBus.grantPutEventsTo(fn);
    this.props.encryptionKey?.grantEncryptDecrypt(fn);

    acknowledgeXRay(role);
    acknowledgeWildcards(role, this.bucket, [
      ['Action::s3:GetObject*', 'Action::s3:GetBucket*', 'Action::s3:List*', 'Action::s3:Abort*', 'Action::s3:DeleteObject*'],
      [`Resource::<BUCKET>/${QUARANTINE_PREFIX}*`, `Resource::<BUCKET>/${FIREHOSE_ERRORS_PREFIX}*`, `Resource::<BUCKET>/${REDRIVE_PREFIX}*`],
    ], `The redrive reads any parked object under ${QUARANTINE_PREFIX} or ${FIREHOSE_ERRORS_PREFIX} (the operator names the prefix) and writes `
      + `under ${REDRIVE_PREFIX}; the wildcards are the action groups of bucket.grantRead/grantReadWrite, limited to these prefixes of this bucket.`);
    acknowledgeKeyWildcards(role, this.props.encryptionKey, 'The redrive reads and writes SSE-KMS objects and queue messages with the ingest key');
    Validations.of(fn).acknowledge({
      id: 'Serverless-LambdaDLQ',
      reason: 'Invoked synchronously by an operator, who gets the report (or the error) as the response; there is no asynchronous event to park.',
    });
    Validations.of(fn).acknowledge({
      id: 'Serverless-LambdaAsyncFailureDestination',
      reason: 'Invoked synchronously by an operator, who gets the report (or the error) as the response; there is no asynchronous event to park.',
    });
    return fn;
  }

  private alarm(id: string, metric: cloudwatch.IMetric, what: string,
    comparisonOperator = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD, threshold = 1): cloudwatch.Alarm {
    return thresholdAlarm(this, id, metric, what, this.props.alarmActions, { comparisonOperator, threshold });
  }

  /**
   * The two delivery alarms of a rule. A rule on a custom bus reports its metrics with the
   * EventBusName and RuleName dimensions, one on the default bus with RuleName alone.
   */
  private ruleAlarms(id: string, rule: events.Rule, bus: events.IEventBus | undefined, what: string, dlq: string): cloudwatch.Alarm[] {
    const metric = (metricName: string) => new cloudwatch.Metric({
      namespace: 'AWS/Events',
      metricName,
      dimensionsMap: bus ? { EventBusName: bus.eventBusName, RuleName: rule.ruleName } : { RuleName: rule.ruleName },
      statistic: cloudwatch.Stats.SUM,
      period: Duration.minutes(5),
    });
    return [
      this.alarm(`${id}FailedInvocationsAlarm`, metric('FailedInvocations'),
        `EventBridge could not deliver ${what} after its retries; the events are in ${dlq}`),
      this.alarm(`${id}DeadLetterFailureAlarm`, metric('InvocationsFailedToBeSentToDlq'),
        `EventBridge could neither deliver ${what} nor send them to ${dlq} (permissions, key policy or size): those events are lost. `
        + 'Check the queue policy and key policy now'),
    ];
  }

}

function validateProps(scope: Construct, props: TieredEventIngestProps): CuratedEnvelopePaths {
  validateIntegerRange(scope, 'fastLaneRetryAttempts', props.fastLaneRetryAttempts, 0, 185);
  validateSeconds(scope, 'fastLaneMaxEventAge', props.fastLaneMaxEventAge, 60, 86_400);
  if (props.bufferingSize !== undefined && !props.bufferingSize.isUnresolved()) {
    const mib = props.bufferingSize.toMebibytes({ rounding: SizeRoundingBehavior.NONE });
    validateIntegerRange(scope, 'bufferingSize', mib, 64, 128, 'MiB (dynamic partitioning needs at least 64 MiB)');
  }
  validateSeconds(scope, 'bufferingInterval', props.bufferingInterval, 60, 900, ' (dynamic partitioning needs at least 60 seconds)');
  validateIntegerRange(scope, 'maxEntryBytes', props.maxEntryBytes, 4096, 1_048_576, 'bytes (the EventBridge PutEvents entry limit is 1 MiB)');
  validateIntegerRange(scope, 'maxRecordsPerEvent', props.maxRecordsPerEvent, 1, 100_000, 'records');
  if (props.publisherTimeout?.isUnresolved()) {
    throw new PropValidationError(scope, 'publisherTimeout', props.publisherTimeout.toString(),
      'allowed: a resolved duration (the queue visibility timeout and lease are derived from it at synth time)');
  }
  validateSeconds(scope, 'publisherTimeout', props.publisherTimeout, 10, 900);
  validateIntegerRange(scope, 'publisherMemorySize', props.publisherMemorySize, 128, 10_240, 'MiB');
  validateIntegerRange(scope, 'publisherMaxReceiveCount', props.publisherMaxReceiveCount, 1, 1000, 'receives');
  validateIntegerRange(scope, 'publisherMaxConcurrency', props.publisherMaxConcurrency, 2, 1000,
    'concurrent invocations (the range Lambda allows for an SQS event source)');
  validateWholeDays(scope, 'archiveRetention', props.archiveRetention, 0, ' (0 keeps events forever)');
  validateWholeDays(scope, 'dataRetention', props.dataRetention, 1);
  validateWholeDays(scope, 'quarantineRetention', props.quarantineRetention, 1);
  const query = props.partitionKeyQuery;
  if (query !== undefined && !Token.isUnresolved(query) && (query.trim().length === 0 || query.length > 512)) {
    throw new PropValidationError(scope, 'partitionKeyQuery', query, 'allowed: a non-empty JQ query of at most 512 characters, such as ".tenant"');
  }
  if (props.slowLaneEventPattern !== undefined) {
    validatePattern(scope, 'slowLaneEventPattern', props.slowLaneEventPattern);
  }
  try {
    return CuratedEnvelope.resolvePaths(props.envelopePaths);
  } catch (err) {
    throw new PropValidationError(scope, 'envelopePaths', props.envelopePaths, `allowed: EventBridge JSON paths (${(err as Error).message})`);
  }
}

function validateSeconds(scope: IConstruct, prop: string, value: Duration | undefined, min: number, max: number, note = ''): void {
  if (value === undefined || value.isUnresolved()) return;
  validateIntegerRange(scope, prop, value.toSeconds(), min, max, `seconds${note}`);
}

function validateWholeDays(scope: IConstruct, prop: string, value: Duration | undefined, minDays: number, note = ''): void {
  if (value === undefined || value.isUnresolved()) return;
  const seconds = value.toSeconds();
  if (!Number.isInteger(seconds / 86_400) || seconds < minDays * 86_400) {
    throw new PropValidationError(scope, prop, value.toHumanString(), `allowed: a whole number of days, at least ${minDays}${note}`);
  }
}

function validatePattern(scope: IConstruct, prop: string, pattern: events.EventPattern): void {
  validateEventPattern(scope, prop, pattern, '; to match every event use { source: events.Match.prefix(\'\') }');
}


/**
 * Acknowledges IAM5 findings for wildcards of bucket grants, one id per finding; `<BUCKET>`
 * stands for the bucket's ARN as cdk-nag renders it (`<LogicalId.Arn>`).
 */
function acknowledgeWildcards(role: iam.IRole, bucket: s3.Bucket, ids: string[][], reason: string): void {
  const bucketArn = `<${Stack.of(bucket).getLogicalId(bucket.node.defaultChild as s3.CfnBucket)}.Arn>`;
  for (const id of ids.flat()) {
    Validations.of(role).acknowledge({ id: `AwsSolutions-IAM5[${id.replace('<BUCKET>', bucketArn)}]`, reason });
  }
}


