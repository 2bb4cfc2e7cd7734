import { ArnFormat, Duration, Names, RemovalPolicy, Stack, Token, Tokenization, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as lambdaDestinations from 'aws-cdk-lib/aws-lambda-destinations';
import * as lambdaEventSources from 'aws-cdk-lib/aws-lambda-event-sources';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct, IConstruct } from 'constructs';
import {
  AGGREGATOR_ENV,
  COMPLETED_DETAIL_TYPE,
  CORRELATION_ID_ATTRIBUTE,
  DEFAULT_AGGREGATE_SOURCE,
  EVENT_NAME_ATTRIBUTE,
  EXPIRES_AT_ATTRIBUTE,
  FAILED_BATCH_PREFIX,
  FAILED_DETAIL_TYPE,
  INCOMPLETE_DETAIL_TYPE,
  RECORDER_ENV,
  REDRIVEN_PREFIX,
  RESERVED_EVENT_NAME_PREFIX,
  UPDATED_DETAIL_TYPE,
} from './aggregator-contract';
import { AggregatorFunction } from './aggregator-function';
import { conditionProblem, oneOfEach, Requirement } from './completion-rules';
import { AggregationRequirement, AggregatorSourceOptions, EventAggregatorProps } from './event-aggregator-props';
import { RecorderFunction } from './recorder-function';
import {
  acknowledgeKeyWildcards, acknowledgeXRay, allowEventBridgeToUseKey, functionLogGroup, functionRole, grantInvokeExactly, handlerMetric,
  METRICS_NAMESPACE, queueDepth, secureDeadLetterQueue, thresholdAlarm, truncate, flattenForNag,
} from '../common/construct-defaults';
import { DELIVERABLE_ENTRY_BYTES } from '../common/event-limits';
import { addStackResourceBudgetCheck } from '../common/stack-resource-budget';
import { EVENT_JSON_PATH, PropValidationError, validateEventPattern, validateIntegerRange } from '../common/validation';
import { allowRuleToSendToQueue } from '../tiered-event-ingest/lane-target';

/** The `service` dimension and Powertools service name of the aggregator's handlers. */
const SERVICE_NAME = 'event-aggregator';
/** EventBridge JSON path in dot notation, as the input transformer accepts it. */
const MAX_REQUIRED_EVENTS = 20;
const MAX_ANY_OF_NAMES = 10;
const MAX_COUNT = 100;
const MAX_EVENT_NAME_LENGTH = 255;
const MAX_DEADLINE_SECONDS = 365 * 86_400;
const DEFAULT_ITEM_TTL = Duration.days(7);
/** Delivery of source events to the recorder: a failing function is retried for an hour. */
const SOURCE_RETRY_ATTEMPTS = 8;
const SOURCE_MAX_EVENT_AGE = Duration.hours(1);
/** Delivery of aggregated events to onComplete/onIncomplete targets: EventBridge's maximum. */
const OUTPUT_RETRY_ATTEMPTS = 185;
const OUTPUT_MAX_EVENT_AGE = Duration.hours(24);
/**
 * A stream record the aggregator still fails on after this age goes to the aggregator
 * dead-letter queue, while the stream (24 hours of retention) still holds it for 18 hours.
 */
const STREAM_MAX_RECORD_AGE = Duration.hours(6);
/** The filter of the failed-batch bucket's request metrics (objects under `aws/lambda/`). */
const FAILED_BATCH_METRICS_FILTER = 'FailedBatches';
/**
 * How long a failed batch is kept: its alarm fires when it arrives, and it is redriven while its
 * items last (`itemTtl`); so at least 90 days, and 30 days longer than the items.
 */
function failedBatchRetention(itemTtl: Duration): Duration {
  if (Token.isUnresolved(itemTtl.toSeconds())) return Duration.days(MAX_FAILED_BATCH_RETENTION_DAYS);
  return Duration.days(Math.max(90, Math.ceil(itemTtl.toSeconds() / 86_400) + 30));
}
/** An itemTtl given as a token is not known at synth: failed batches are then kept ten years. */
const MAX_FAILED_BATCH_RETENTION_DAYS = 3650;
/** The iterator-age alarm fires when the aggregator lags the table by this much. */
const ITERATOR_AGE_THRESHOLD = Duration.minutes(5);

/**
 * Collects the events of one correlation id (an order, a request) from several sources and
 * emits one `Aggregation Completed` event once every required event has arrived.
 *
 * Sources on a bus are recorded by a recorder function (`addSource`); other producers write
 * to the table directly (`grantRecord`). The table's stream triggers the aggregator, which
 * reads the correlation id's items with a consistent Query (never a Scan), and emits on the
 * output bus once, guarded by a conditional write of a marker item. Items expire with TTL.
 * With a `deadline`, a one-time EventBridge Scheduler schedule per correlation id makes the
 * aggregator emit `Aggregation Incomplete` when the set is still incomplete at the deadline.
 *
 * Every failure path ends in an encrypted dead-letter queue watched by an alarm.
 */
export class EventAggregator extends Construct {
  /**
   * CloudFormation resources one aggregator adds to its stack in the default configuration
   * (no sources, no deadline, no onComplete rule). Each source adds a rule and a Lambda
   * permission; each onComplete/onIncomplete adds a rule (and the target's own resources);
   * a deadline adds 7. Asserted by the unit tests.
   */
  public static readonly RESOURCES_PER_AGGREGATOR = 25;
  /** Default `source` of the aggregated events. */
  public static readonly DEFAULT_AGGREGATE_SOURCE = DEFAULT_AGGREGATE_SOURCE;
  /** Detail-type of the event emitted once per correlation id when every required event has arrived. */
  public static readonly COMPLETED_DETAIL_TYPE = COMPLETED_DETAIL_TYPE;
  /** Detail-type of the event emitted when a correlation id's deadline passes before its set is complete. */
  public static readonly INCOMPLETE_DETAIL_TYPE = INCOMPLETE_DETAIL_TYPE;
  /** Detail-type of the event emitted once when a counted event fails the condition of a `failOnMismatch` requirement. */
  public static readonly FAILED_DETAIL_TYPE = FAILED_DETAIL_TYPE;
  /** Detail-type of the events emitted on every change of a set, with `emitOnEveryChange`. */
  public static readonly UPDATED_DETAIL_TYPE = UPDATED_DETAIL_TYPE;

  /** Names of the events the requirements count, in the order given. */
  public readonly requiredEvents: string[];
  /** What completes a set: `requirements` as given, or one requirement per name of `requiredEvents`, with the defaults filled in. */
  public readonly requirements: AggregationRequirement[];
  /** `source` of the aggregated events. */
  public readonly aggregateSource: string;
  /** Bus the aggregated events are put on. */
  public readonly outputBus: events.IEventBus;
  /**
   * Table of the recorded events: partition key `correlationId`, sort key `eventName`, TTL
   * attribute `expiresAt`, and a `#aggregate` marker item per emitted correlation id.
   */
  public readonly table: dynamodb.Table;
  /** Function that records the events of bus sources in the table. */
  public readonly recorderFunction: lambda.Function;
  /** Function that aggregates each changed correlation id (from the table's stream) and emits. */
  public readonly aggregatorFunction: lambda.Function;
  /**
   * Dead-letter queue of source events that EventBridge could not deliver to the recorder,
   * and of recorder invocations that failed after Lambda's retries (as on-failure records,
   * which carry the request payload).
   */
  public readonly recordDeadLetterQueue: sqs.Queue;
  /**
   * Bucket of the table stream batches the aggregator gave up on (its event source's S3
   * on-failure destination): each object under `aws/lambda/` holds the whole batch, and
   * invoking the aggregator with `{ "redriveFailedBatches": {} }` aggregates its ids again
   * and moves it under `redriven/`.
   */
  public readonly failedBatchBucket: s3.Bucket;
  /** Dead-letter queue of aggregated events that could not be delivered to an onComplete/onIncomplete target. */
  public readonly ruleDeadLetterQueue: sqs.Queue;
  /**
   * Dead-letter queue of deadline invocations that failed: schedules Scheduler could not
   * invoke the aggregator for, and deadline invocations the aggregator failed on. Only with a deadline.
   */
  public readonly deadlineDeadLetterQueue?: sqs.Queue;
  /** Schedule group of the per-correlation-id deadline schedules. Only with a deadline. */
  public readonly scheduleGroup?: scheduler.ScheduleGroup;
  /** Role EventBridge Scheduler assumes to invoke the aggregator at a deadline. Only with a deadline. */
  public readonly scheduleRole?: iam.Role;
  /** Alarm: the record dead-letter queue holds at least one message. */
  public readonly recordDeadLetterQueueAlarm: cloudwatch.Alarm;
  /** Alarm: Lambda wrote a failed stream batch to the failed-batch bucket. */
  public readonly failedBatchAlarm: cloudwatch.Alarm;
  /** Alarm: Lambda could not write a failed stream batch to the failed-batch bucket (the batch is dropped). */
  public readonly failedBatchDeliveryAlarm: cloudwatch.Alarm;
  /** Alarm: the rule dead-letter queue holds at least one message. */
  public readonly ruleDeadLetterQueueAlarm: cloudwatch.Alarm;
  /** Alarm: the deadline dead-letter queue holds at least one message. Only with a deadline. */
  public readonly deadlineDeadLetterQueueAlarm?: cloudwatch.Alarm;
  /** Alarm: the aggregator function failed at least once. */
  public readonly aggregatorErrorsAlarm: cloudwatch.Alarm;
  /** Alarm: the aggregator lags the table's stream by 5 minutes or more. */
  public readonly iteratorAgeAlarm: cloudwatch.Alarm;
  /** Alarm: an aggregate went out but its marker could not be made final (a later write may emit it again). */
  public readonly unmarkedAggregateAlarm: cloudwatch.Alarm;

  private readonly props: EventAggregatorProps;
  private readonly sourceRules: events.Rule[] = [];
  private readonly sourceIds = new Set<string>();

  constructor(scope: Construct, id: string, props: EventAggregatorProps) {
    super(scope, id);
    this.props = props;
    validateProps(this, props);
    const key = props.encryptionKey;
    this.requirements = runtimeRequirements(props);
    this.requiredEvents = this.requirements.flatMap((r) => r.anyOf);
    this.aggregateSource = props.aggregateSource ?? DEFAULT_AGGREGATE_SOURCE;
    const itemTtl = props.itemTtl ?? DEFAULT_ITEM_TTL;

    this.outputBus = props.outputBus ?? new events.EventBus(this, 'OutputBus', {
      kmsKey: key,
      description: 'cdk-event-fabric EventAggregator: aggregated events',
    });
    // EventBridge writes to the dead-letter queues; the targets add the queue policies,
    // this adds the key policy.
    allowEventBridgeToUseKey(this, key);

    this.recordDeadLetterQueue = this.createDeadLetterQueue('RecordDeadLetterQueue',
      'source events EventBridge could not deliver to the recorder, and recorder invocations that failed');
    this.failedBatchBucket = this.createFailedBatchBucket(itemTtl);
    this.ruleDeadLetterQueue = this.createDeadLetterQueue('RuleDeadLetterQueue',
      'aggregated events EventBridge could not deliver to an onComplete or onIncomplete target');

    this.table = new dynamodb.Table(this, 'Table', {
      partitionKey: { name: CORRELATION_ID_ATTRIBUTE, type: dynamodb.AttributeType.STRING },
      sortKey: { name: EVENT_NAME_ATTRIBUTE, type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      timeToLiveAttribute: EXPIRES_AT_ATTRIBUTE,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: key ? dynamodb.TableEncryption.CUSTOMER_MANAGED : dynamodb.TableEncryption.AWS_MANAGED,
      encryptionKey: key,
      stream: dynamodb.StreamViewType.NEW_IMAGE,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });

    this.recorderFunction = this.createRecorderFunction(itemTtl);

    // The aggregator's name is set, so its ARN can be built without referring to the function:
    // its own environment (SCHEDULE_TARGET_ARN) and the schedule role's policy need it.
    const aggregatorName = `${Names.uniqueResourceName(this, { maxLength: 53, separator: '-' })}-aggregator`;
    const aggregatorArn = Stack.of(this).formatArn({
      service: 'lambda', resource: 'function', resourceName: aggregatorName, arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
    if (props.deadline) {
      this.deadlineDeadLetterQueue = this.createDeadLetterQueue('DeadlineDeadLetterQueue',
        'deadline invocations Scheduler could not deliver or the aggregator failed on');
      this.scheduleGroup = new scheduler.ScheduleGroup(this, 'ScheduleGroup', { removalPolicy: RemovalPolicy.DESTROY });
      this.scheduleRole = this.createScheduleRole(this.scheduleGroup, this.deadlineDeadLetterQueue, aggregatorArn);
    }
    this.aggregatorFunction = this.createAggregatorFunction(aggregatorName, aggregatorArn, itemTtl);

    for (const source of props.sources ?? []) {
      this.addSource(source.id, source);
    }

    this.recordDeadLetterQueueAlarm = this.alarm('RecordDeadLetterQueueAlarm', queueDepth(this.recordDeadLetterQueue),
      'Source events were not recorded and are parked in the record dead-letter queue; fix the cause, then redrive them');
    this.failedBatchAlarm = this.alarm('FailedBatchAlarm', new cloudwatch.Metric({
      namespace: 'AWS/S3',
      metricName: 'PutRequests',
      dimensionsMap: { BucketName: this.failedBatchBucket.bucketName, FilterId: FAILED_BATCH_METRICS_FILTER },
      statistic: cloudwatch.Stats.SUM,
      period: Duration.minutes(5),
    }), `The aggregator gave up on table stream batches, kept whole under ${FAILED_BATCH_PREFIX} in the failed-batch bucket; fix the cause, `
      + 'then invoke the aggregator with {"redriveFailedBatches":{}} before the items expire (itemTtl)');
    this.failedBatchDeliveryAlarm = this.alarm('FailedBatchDeliveryAlarm',
      this.aggregatorFunction.metric('DestinationDeliveryFailures', { statistic: cloudwatch.Stats.SUM, period: Duration.minutes(5) }),
      'Lambda could not deliver a failure to an on-failure destination: a table stream batch to the failed-batch bucket (its ids '
      + 'are then only in the table: rewrite one item of each affected correlation id), or, with a deadline, a deadline invocation to '
      + 'the deadline dead-letter queue (invoke the aggregator with its { deadlineFor }); the function\'s log names which');
    this.ruleDeadLetterQueueAlarm = this.alarm('RuleDeadLetterQueueAlarm', queueDepth(this.ruleDeadLetterQueue),
      'Aggregated events could not be delivered to an onComplete or onIncomplete target and are parked in the rule dead-letter queue');
    if (this.deadlineDeadLetterQueue) {
      this.deadlineDeadLetterQueueAlarm = this.alarm('DeadlineDeadLetterQueueAlarm', queueDepth(this.deadlineDeadLetterQueue),
        'Deadline invocations failed and are parked in the deadline dead-letter queue; redrive them to the aggregator');
    }
    this.aggregatorErrorsAlarm = this.alarm('AggregatorErrorsAlarm',
      this.aggregatorFunction.metricErrors({ statistic: cloudwatch.Stats.SUM, period: Duration.minutes(5) }),
      'The aggregator function failed; stream batches are retried, then kept whole in the failed-batch bucket');
    this.iteratorAgeAlarm = this.alarm('IteratorAgeAlarm',
      this.aggregatorFunction.metric('IteratorAge', { statistic: cloudwatch.Stats.MAXIMUM, period: Duration.minutes(5) }),
      `The aggregator lags the table stream by ${ITERATOR_AGE_THRESHOLD.toMinutes()} minutes or more; aggregations are delayed, `
      + 'and records older than 6 hours go to the failed-batch bucket',
      ITERATOR_AGE_THRESHOLD.toMilliseconds());
    this.unmarkedAggregateAlarm = this.alarm('UnmarkedAggregateAlarm', this.metricUnmarkedAggregates({ period: Duration.minutes(5) }),
      'An aggregated event went out but its marker stayed EMITTING (the correlation id is in the aggregator\'s error log); a write '
      + 'to that id after the lease may emit it again: set the marker\'s status to the emitted one (see the docs, Recovery)');

    addStackResourceBudgetCheck(this, 'EventAggregator', EventAggregator.RESOURCES_PER_AGGREGATOR);
  }

  /** The source rules, in the order they were added. */
  public get sources(): events.Rule[] {
    return [...this.sourceRules];
  }

  /**
   * Records events of a bus: a rule on `options.eventBus` sends each matching event to the
   * recorder function as `{ correlationId, eventName, eventId, time, detail }`, with a retry
   * policy (8 attempts within an hour) and the record dead-letter queue.
   */
  public addSource(id: string, options: AggregatorSourceOptions): events.Rule {
    if (this.sourceIds.has(id)) {
      throw new PropValidationError(this, 'source id', id, 'allowed: an id not used by another source of this aggregator');
    }
    validateSource(this, id, options);
    this.sourceIds.add(id);
    const rule = new events.Rule(this, `Source${id}`, {
      eventBus: options.eventBus,
      eventPattern: options.eventPattern,
      description: truncate(options.description ?? `cdk-event-fabric EventAggregator source ${id} (${this.node.path})`, 512),
    });
    rule.addTarget(new targets.LambdaFunction(this.recorderFunction, {
      event: events.RuleTargetInput.fromObject({
        correlationId: events.EventField.fromPath(options.correlationIdPath),
        eventName: options.eventNamePath !== undefined ? events.EventField.fromPath(options.eventNamePath) : options.eventName,
        eventId: events.EventField.eventId,
        time: events.EventField.time,
        detail: events.EventField.fromPath('$.detail'),
      }),
      deadLetterQueue: this.recordDeadLetterQueue,
      retryAttempts: SOURCE_RETRY_ATTEMPTS,
      maxEventAge: SOURCE_MAX_EVENT_AGE,
    }));
    this.sourceRules.push(rule);
    return rule;
  }

  /**
   * Lets a producer record events by writing to the table directly: `dynamodb:PutItem` and
   * `dynamodb:UpdateItem` on the table, and use of the key when there is one. Items need
   * `correlationId` and `eventName` (not starting with `#`), and should carry `expiresAt`
   * (epoch seconds) so they expire.
   */
  public grantRecord(grantee: iam.IGrantable): iam.Grant {
    const grant = this.table.grant(grantee, 'dynamodb:PutItem', 'dynamodb:UpdateItem');
    const keyGrant = this.props.encryptionKey?.grantEncryptDecrypt(grantee);
    return keyGrant ? grant.combine(keyGrant) : grant;
  }

  /**
   * Lets `grantee` redrive the failed-batch bucket by invoking the aggregator with
   * `{ "redriveFailedBatches": {} }` (see the docs, Recovery): `lambda:InvokeFunction` on the
   * aggregator function's own ARN.
   */
  public grantRedriveFailedBatches(grantee: iam.IGrantable): iam.Grant {
    return grantInvokeExactly(this.aggregatorFunction, grantee);
  }

  /**
   * Sends each `Aggregation Completed` event of this aggregator to `target`: a rule on the
   * output bus that matches the aggregator's source and the detail-type (the event is only
   * emitted when every requirement is met). The target gets a retry policy (185 attempts
   * within 24 hours) and the rule dead-letter queue unless it set its own.
   */
  public onComplete(id: string, target: events.IRuleTarget): events.Rule {
    return this.outputRule(id, target, { source: [this.aggregateSource], detailType: [COMPLETED_DETAIL_TYPE] }, 'completed sets');
  }

  /**
   * Sends each `Aggregation Failed` event of this aggregator (a set ended by an event that
   * failed the condition of a `failOnMismatch` requirement) to `target`, with the same
   * delivery defaults as `onComplete`.
   */
  public onFailed(id: string, target: events.IRuleTarget): events.Rule {
    if (!this.requirements.some((r) => r.failOnMismatch)) {
      throw new PropValidationError(this, 'onFailed', id,
        'allowed: only on an aggregator with a requirement that has a condition and failOnMismatch; without one no Aggregation Failed event is emitted');
    }
    return this.outputRule(id, target, { source: [this.aggregateSource], detailType: [FAILED_DETAIL_TYPE] }, 'failed sets');
  }

  /**
   * Sends each `Aggregation Incomplete` event of this aggregator (a set still incomplete at
   * its deadline) to `target`, with the same delivery defaults as `onComplete`. Only for an
   * aggregator with a `deadline`.
   */
  public onIncomplete(id: string, target: events.IRuleTarget): events.Rule {
    if (!this.props.deadline) {
      throw new PropValidationError(this, 'onIncomplete', id,
        'allowed: only on an aggregator with a deadline (set the deadline prop); without one no Aggregation Incomplete event is emitted');
    }
    return this.outputRule(id, target, { source: [this.aggregateSource], detailType: [INCOMPLETE_DETAIL_TYPE] }, 'sets incomplete at their deadline');
  }

  /** A custom metric of this aggregator's handlers (namespace `cdk-event-fabric`, dimensions `service` and `aggregator`). */
  public metric(metricName: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return handlerMetric(metricName, { service: SERVICE_NAME, aggregator: this.node.addr }, props);
  }


  /** `Aggregation Completed` events emitted (metric `AggregationsCompleted`). */
  public metricAggregationsCompleted(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric('AggregationsCompleted', props);
  }

  /** `Aggregation Incomplete` events emitted at a deadline (metric `AggregationsIncomplete`). */
  public metricAggregationsIncomplete(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric('AggregationsIncomplete', props);
  }

  /** `Aggregation Failed` events emitted (metric `AggregationsFailed`). */
  public metricAggregationsFailed(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric('AggregationsFailed', props);
  }

  /** Aggregated events whose marker could not be made final after they went out (metric `UnmarkedAggregates`). */
  public metricUnmarkedAggregates(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric('UnmarkedAggregates', props);
  }

  /** Events recorded for a correlation id that was already emitted (metric `LateEvents`). */
  public metricLateEvents(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric('LateEvents', props);
  }

  private outputRule(id: string, target: events.IRuleTarget, eventPattern: events.EventPattern, what: string): events.Rule {
    const rule = new events.Rule(this, id, {
      eventBus: this.outputBus,
      eventPattern,
      description: truncate(`cdk-event-fabric EventAggregator ${what} to ${id} (${this.node.path})`, 512),
    });
    rule.addTarget(new OutputTarget(target, rule, this.ruleDeadLetterQueue));
    return rule;
  }

  private createDeadLetterQueue(id: string, what: string): sqs.Queue {
    return secureDeadLetterQueue(this, id, { encryptionKey: this.props.encryptionKey, holds: what, emptiedBy: 'inspected and redriven by an operator' });
  }

  private createRecorderFunction(itemTtl: Duration): lambda.Function {
    const key = this.props.encryptionKey;
    const logGroup = functionLogGroup(this, 'RecorderFunctionLogs');
    const role = functionRole(this, 'RecorderFunctionRole', 'cdk-event-fabric EventAggregator recorder', logGroup);
    const fn = new RecorderFunction(this, 'RecorderFunction', {
      role,
      description: 'cdk-event-fabric EventAggregator: records source events in the aggregation table',
      memorySize: 256,
      timeout: Duration.seconds(30),
      tracing: lambda.Tracing.ACTIVE,
      logGroup,
      retryAttempts: 2,
      onFailure: new lambdaDestinations.SqsDestination(this.recordDeadLetterQueue),
      environment: {
        [RECORDER_ENV.TABLE_NAME]: this.table.tableName,
        [RECORDER_ENV.ITEM_TTL_SECONDS]: Tokenization.stringifyNumber(itemTtl.toSeconds()),
        [RECORDER_ENV.MAX_PAYLOAD_BYTES]: Tokenization.stringifyNumber(this.props.maxPayloadBytes ?? 350_000),
        POWERTOOLS_SERVICE_NAME: SERVICE_NAME,
      },
    });
    this.table.grant(fn, 'dynamodb:PutItem');
    key?.grantEncryptDecrypt(fn);
    acknowledgeXRay(role);
    acknowledgeKeyWildcards(role, key,
      'The recorder writes table items and failed invocations to the record dead-letter queue with the aggregator key');
    Validations.of(fn).acknowledge({
      id: 'Serverless-LambdaDLQ',
      reason: 'Invoked asynchronously by EventBridge; failed invocations go to the on-failure destination (the record dead-letter queue), '
        + 'which records the error with the payload. A legacy DLQ would receive the same events twice.',
    });
    return fn;
  }

  private createScheduleRole(group: scheduler.ScheduleGroup, deadLetterQueue: sqs.Queue, aggregatorArn: string): iam.Role {
    const stack = Stack.of(this);
    const role = new iam.Role(this, 'ScheduleRole', {
      assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com', {
        conditions: {
          StringEquals: { 'aws:SourceAccount': stack.account },
          ArnLike: { 'aws:SourceArn': group.scheduleGroupArn },
        },
      }),
      description: 'cdk-event-fabric EventAggregator: lets EventBridge Scheduler invoke the aggregator at a deadline',
    });
    role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ['lambda:InvokeFunction'], resources: [aggregatorArn] }));
    // Scheduler sends a schedule's failed invocations to its DLQ with this role.
    deadLetterQueue.grantSendMessages(role);
    acknowledgeKeyWildcards(role, this.props.encryptionKey,
      'Scheduler writes failed deadline invocations to the deadline dead-letter queue, encrypted with the aggregator key');
    return role;
  }

  private createFailedBatchBucket(itemTtl: Duration): s3.Bucket {
    const key = this.props.encryptionKey;
    const bucket = new s3.Bucket(this, 'FailedBatchBucket', {
      encryption: key ? s3.BucketEncryption.KMS : s3.BucketEncryption.S3_MANAGED,
      encryptionKey: key,
      bucketKeyEnabled: key ? true : undefined,
      enforceSSL: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      removalPolicy: this.props.removalPolicy ?? RemovalPolicy.RETAIN,
      // Request metrics of the failed batches only: the alarm counts their PUTs (a redrive's copies go elsewhere).
      metrics: [{ id: FAILED_BATCH_METRICS_FILTER, prefix: FAILED_BATCH_PREFIX }],
      lifecycleRules: [
        { id: 'ExpireFailedBatches', prefix: FAILED_BATCH_PREFIX, expiration: failedBatchRetention(itemTtl) },
        { id: 'ExpireRedriven', prefix: REDRIVEN_PREFIX, expiration: Duration.days(30) },
      ],
    });
    Validations.of(bucket).acknowledge({
      id: 'AwsSolutions-S1',
      reason: 'Only Lambda (the aggregator\'s event source mapping) writes failed stream batches here and only the aggregator reads them; '
        + 'the alarm on new objects and the redrive\'s log record every use.',
    });
    return bucket;
  }

  private createAggregatorFunction(functionName: string, functionArn: string, itemTtl: Duration): lambda.Function {
    const props = this.props;
    const key = props.encryptionKey;
    const logGroup = functionLogGroup(this, 'AggregatorFunctionLogs');
    const role = functionRole(this, 'AggregatorFunctionRole', 'cdk-event-fabric EventAggregator aggregator', logGroup);
    const environment: Record<string, string> = {
      [AGGREGATOR_ENV.TABLE_NAME]: this.table.tableName,
      [AGGREGATOR_ENV.OUTPUT_BUS_NAME]: this.outputBus.eventBusName,
      [AGGREGATOR_ENV.AGGREGATE_SOURCE]: this.aggregateSource,
      ...requirementsEnvironment(props),
      [AGGREGATOR_ENV.EMIT_ON_EVERY_CHANGE]: String(props.emitOnEveryChange ?? false),
      [AGGREGATOR_ENV.DEADLINE_SECONDS]: props.deadline ? Tokenization.stringifyNumber(props.deadline.toSeconds()) : '0',
      [AGGREGATOR_ENV.ITEM_TTL_SECONDS]: Tokenization.stringifyNumber(itemTtl.toSeconds()),
      [AGGREGATOR_ENV.FAILED_BATCH_BUCKET_NAME]: this.failedBatchBucket.bucketName,
      [AGGREGATOR_ENV.MAX_ENTRY_BYTES]: Tokenization.stringifyNumber(props.maxAggregateBytes ?? DELIVERABLE_ENTRY_BYTES),
      AGGREGATOR_ID: this.node.addr,
      POWERTOOLS_SERVICE_NAME: SERVICE_NAME,
      POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE,
    };
    if (this.scheduleGroup && this.scheduleRole && this.deadlineDeadLetterQueue) {
      environment[AGGREGATOR_ENV.SCHEDULE_GROUP_NAME] = this.scheduleGroup.scheduleGroupName;
      environment[AGGREGATOR_ENV.SCHEDULE_TARGET_ARN] = functionArn;
      environment[AGGREGATOR_ENV.SCHEDULE_ROLE_ARN] = this.scheduleRole.roleArn;
      environment[AGGREGATOR_ENV.SCHEDULE_DLQ_ARN] = this.deadlineDeadLetterQueue.queueArn;
    }
    const fn = new AggregatorFunction(this, 'AggregatorFunction', {
      functionName,
      role,
      description: 'cdk-event-fabric EventAggregator: emits each correlation id\'s aggregate once, from the table stream',
      memorySize: 256,
      // Shorter than the 60 s lease on the emit-once marker: a claim outlives its owner, so
      // no second invocation can take over while the first may still emit.
      timeout: Duration.seconds(30),
      tracing: lambda.Tracing.ACTIVE,
      logGroup,
      environment,
      // Only deadline invocations (from Scheduler) are asynchronous.
      ...(this.deadlineDeadLetterQueue ? { retryAttempts: 2, onFailure: new lambdaDestinations.SqsDestination(this.deadlineDeadLetterQueue) } : {}),
    });
    fn.addEventSource(new lambdaEventSources.DynamoEventSource(this.table, {
      startingPosition: lambda.StartingPosition.TRIM_HORIZON,
      batchSize: 100,
      bisectBatchOnError: true,
      retryAttempts: 10,
      reportBatchItemFailures: true,
      maxRecordAge: STREAM_MAX_RECORD_AGE,
      // S3, not SQS: only an S3 on-failure destination keeps the batch itself (SQS gets its sequence numbers).
      onFailure: new FailedBatchDestination(this.failedBatchBucket),
      // TTL deletions and other removals change no set.
      filters: [lambda.FilterCriteria.filter({ eventName: lambda.FilterRule.or('INSERT', 'MODIFY') })],
    }));
    // A consistent Query of one correlation id, the marker's conditional write, and item updates.
    this.table.grant(fn, 'dynamodb:Query', 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem');
    key?.grantEncryptDecrypt(fn);
    this.outputBus.grantPutEventsTo(fn);
    acknowledgeKeyWildcards(role, key,
      'The aggregator reads and writes the table and its stream, and writes to its dead-letter queues, with the aggregator key');

    if (this.scheduleGroup && this.scheduleRole) {
      const schedulesArn = Stack.of(this).formatArn({
        service: 'scheduler',
        resource: 'schedule',
        resourceName: `${this.scheduleGroup.scheduleGroupName}/*`,
        arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
      });
      fn.addToRolePolicy(new iam.PolicyStatement({
        actions: ['scheduler:CreateSchedule', 'scheduler:DeleteSchedule'],
        resources: [schedulesArn],
      }));
      fn.addToRolePolicy(new iam.PolicyStatement({
        actions: ['iam:PassRole'],
        resources: [this.scheduleRole.roleArn],
        conditions: { StringEquals: { 'iam:PassedToService': 'scheduler.amazonaws.com' } },
      }));
      Validations.of(role).acknowledge({
        id: `AwsSolutions-IAM5[Resource::${flattenForNag(Stack.of(this).resolve(schedulesArn))}]`,
        reason: 'The aggregator creates and deletes one deadline schedule per correlation id, named at run time; '
          + 'the wildcard is limited to the schedules of the aggregator\'s own schedule group.',
      });
    }

    Validations.of(role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason: 'Only the X-Ray actions (xray:PutTraceSegments, xray:PutTelemetryRecords) and dynamodb:ListStreams use Resource "*", '
        + 'the only resource they support; every other grant is scoped.',
    });
    Validations.of(fn).acknowledge({
      id: 'Serverless-LambdaDLQ',
      reason: this.deadlineDeadLetterQueue
        ? 'Invoked by the table stream\'s event source mapping, whose failures go to the failed-batch bucket (an S3 on-failure destination), and asynchronously by '
          + 'Scheduler at deadlines, whose failures go to the on-failure destination (the deadline dead-letter queue). '
          + 'A legacy DLQ would duplicate it.'
        : 'Invoked only by the table stream\'s event source mapping, not asynchronously; batches that keep failing go to the mapping\'s '
          + 'on-failure destination (the failed-batch bucket).',
    });
    return fn;
  }

  private alarm(id: string, metric: cloudwatch.IMetric, what: string, threshold = 1): cloudwatch.Alarm {
    return thresholdAlarm(this, id, metric, what, this.props.alarmActions, { threshold });
  }

}

/**
 * Gives an onComplete/onIncomplete target the aggregator's retry policy and rule
 * dead-letter queue unless it set its own; its input (the whole aggregated event by
 * default) is left as the target set it.
 */
class OutputTarget implements events.IRuleTarget {
  constructor(private readonly inner: events.IRuleTarget, private readonly rule: events.Rule, private readonly deadLetterQueue: sqs.IQueue) {}

  public bind(rule: events.IRule, id?: string): events.RuleTargetConfig {
    const config = this.inner.bind(rule, id);
    if (config.deadLetterConfig === undefined) {
      allowRuleToSendToQueue(this.rule, this.deadLetterQueue);
    }
    return {
      ...config,
      deadLetterConfig: config.deadLetterConfig ?? { arn: this.deadLetterQueue.queueArn },
      retryPolicy: config.retryPolicy ?? {
        maximumRetryAttempts: OUTPUT_RETRY_ATTEMPTS,
        maximumEventAgeInSeconds: OUTPUT_MAX_EVENT_AGE.toSeconds(),
      },
    };
  }
}

/**
 * The stream's S3 on-failure destination, with only the grants it needs: Lambda writes with
 * the function's role (s3:PutObject and s3:ListBucket, as documented), and the redrive reads,
 * copies and deletes the failed batches. `S3OnFailureDestination` would grant read-write on
 * the whole bucket, object lock and retention included. The key grant is the function's own.
 */
class FailedBatchDestination implements lambda.IEventSourceDlq {
  constructor(private readonly bucket: s3.IBucket) {}

  public bind(_target: lambda.IEventSourceMapping, targetHandler: lambda.IFunction): lambda.DlqDestinationConfig {
    const failed = this.bucket.arnForObjects(`${FAILED_BATCH_PREFIX}*`);
    const redriven = this.bucket.arnForObjects(`${REDRIVEN_PREFIX}*`);
    targetHandler.addToRolePolicy(new iam.PolicyStatement({ actions: ['s3:ListBucket'], resources: [this.bucket.bucketArn] }));
    targetHandler.addToRolePolicy(new iam.PolicyStatement({ actions: ['s3:PutObject', 's3:GetObject', 's3:DeleteObject'], resources: [failed] }));
    targetHandler.addToRolePolicy(new iam.PolicyStatement({ actions: ['s3:PutObject'], resources: [redriven] }));
    if (targetHandler.role) {
      for (const arn of [failed, redriven]) {
        Validations.of(targetHandler.role).acknowledge({
          id: `AwsSolutions-IAM5[Resource::${flattenForNag(Stack.of(this.bucket).resolve(arn))}]`,
          reason: 'Lambda names each failed batch object at run time (aws/lambda/<mapping>/<shard>/<date>/<time>-<uuid>) and the redrive '
            + 'moves it under redriven/; the wildcard is limited to that prefix of the aggregator\'s own failed-batch bucket.',
        });
      }
    }
    return { destination: this.bucket.bucketArn };
  }
}

function validateProps(scope: IConstruct, props: EventAggregatorProps): void {
  validateCompletion(scope, props);
  const source = props.aggregateSource;
  if (source !== undefined && !Token.isUnresolved(source)
    && (source.trim().length === 0 || source.length > 256 || source.startsWith('aws.'))) {
    throw new PropValidationError(scope, 'aggregateSource', source,
      'allowed: a non-empty source of at most 256 characters, not starting with "aws." (reserved for AWS services)');
  }
  const deadline = wholeSeconds(scope, 'deadline', props.deadline, 60, MAX_DEADLINE_SECONDS);
  const ttl = props.itemTtl === undefined
    ? DEFAULT_ITEM_TTL.toSeconds()
    : wholeSeconds(scope, 'itemTtl', props.itemTtl, 3600, Number.MAX_SAFE_INTEGER);
  if (ttl !== undefined && deadline !== undefined && ttl <= deadline) {
    const note = props.itemTtl === undefined ? ' (itemTtl is 7 days by default; set it longer than the deadline)' : '';
    throw new PropValidationError(scope, 'itemTtl', ttl,
      `allowed: more seconds than the deadline (${deadline} seconds), so a set's items outlive its deadline${note}`);
  }
  validateIntegerRange(scope, 'maxPayloadBytes', props.maxPayloadBytes, 1024, 390_000, 'bytes (a DynamoDB item is at most 400 KB)');
  validateIntegerRange(scope, 'maxAggregateBytes', props.maxAggregateBytes, 4096, 1_048_576, 'bytes (the EventBridge PutEvents entry limit is 1 MiB)');
}

/**
 * Largest JSON of the completion rules in the aggregator's environment: Lambda allows 4 KB
 * for all of a function's variables, and the others take about 1.5 KB.
 */
const MAX_RULES_JSON_LENGTH = 2048;

/** The requirements the aggregator evaluates, with the defaults filled in. */
function runtimeRequirements(props: EventAggregatorProps): Requirement[] {
  if (props.requirements === undefined) {
    return oneOfEach(props.requiredEvents ?? []);
  }
  return props.requirements.map((r) => ({
    label: r.label ?? r.anyOf.join(' | '),
    anyOf: [...r.anyOf],
    count: r.count ?? 1,
    failOnMismatch: r.failOnMismatch ?? false,
    ...(r.condition !== undefined ? { condition: r.condition } : {}),
  }));
}

/** REQUIRED_EVENTS for plain names, REQUIREMENTS otherwise; NEWEST_REPLACES when set. */
function requirementsEnvironment(props: EventAggregatorProps): Record<string, string> {
  return {
    ...(props.requirements === undefined
      ? { [AGGREGATOR_ENV.REQUIRED_EVENTS]: JSON.stringify(props.requiredEvents) }
      : { [AGGREGATOR_ENV.REQUIREMENTS]: JSON.stringify(runtimeRequirements(props)) }),
    ...(props.newestReplaces ? { [AGGREGATOR_ENV.NEWEST_REPLACES]: 'true' } : {}),
  };
}

function validateCompletion(scope: IConstruct, props: EventAggregatorProps): void {
  if ((props.requiredEvents === undefined) === (props.requirements === undefined)) {
    throw new PropValidationError(scope, 'requiredEvents/requirements', props.requiredEvents ?? props.requirements ?? null,
      'allowed: exactly one of requiredEvents (names each needed once) and requirements (conditions, counts, any-of groups)');
  }
  if (props.requiredEvents !== undefined) validateRequiredEvents(scope, props.requiredEvents);
  else validateRequirements(scope, props.requirements!);
  // Lambda counts the environment in bytes.
  const bytes = Buffer.byteLength(Object.values(requirementsEnvironment(props)).join(''), 'utf8');
  if (bytes > MAX_RULES_JSON_LENGTH) {
    const prop = props.requiredEvents !== undefined ? 'requiredEvents' : 'requirements';
    throw new PropValidationError(scope, prop, props.requiredEvents ?? props.requirements,
      `allowed: rules whose JSON fits ${MAX_RULES_JSON_LENGTH} bytes of the aggregator's environment (Lambda allows 4 KB for all `
      + `variables); these need ${bytes}: use fewer or shorter names, labels or conditions`);
  }
}

function validateRequiredEvents(scope: IConstruct, names: string[]): void {
  if (!Array.isArray(names) || names.length < 1 || names.length > MAX_REQUIRED_EVENTS) {
    throw new PropValidationError(scope, 'requiredEvents', names, `allowed: from 1 to ${MAX_REQUIRED_EVENTS} event names`);
  }
  if (Token.isUnresolved(names) || names.some((n) => Token.isUnresolved(n))) {
    throw new PropValidationError(scope, 'requiredEvents', names, 'allowed: literal names, not tokens (the aggregator compares them at run time)');
  }
  const seen = new Set<string>();
  for (const name of names) {
    validateEventName(scope, 'requiredEvents', name, names);
    if (seen.has(name)) {
      throw new PropValidationError(scope, 'requiredEvents', names, `allowed: distinct names ("${name}" is given twice)`);
    }
    seen.add(name);
  }
}

function validateRequirements(scope: IConstruct, requirements: AggregationRequirement[]): void {
  if (!Array.isArray(requirements) || requirements.length < 1 || requirements.length > MAX_REQUIRED_EVENTS) {
    throw new PropValidationError(scope, 'requirements', requirements, `allowed: from 1 to ${MAX_REQUIRED_EVENTS} requirements`);
  }
  const names = new Set<string>();
  const labels = new Set<string>();
  requirements.forEach((r, i) => {
    const prop = `requirements[${i}]`;
    if (Token.isUnresolved(r) || Token.isUnresolved(r.anyOf) || JSON.stringify(r).includes('${Token[')) {
      throw new PropValidationError(scope, prop, r, 'allowed: literal names, labels and conditions, not tokens (the aggregator evaluates them at run time)');
    }
    if (!Array.isArray(r.anyOf) || r.anyOf.length < 1 || r.anyOf.length > MAX_ANY_OF_NAMES) {
      throw new PropValidationError(scope, `${prop}.anyOf`, r.anyOf, `allowed: from 1 to ${MAX_ANY_OF_NAMES} event names`);
    }
    for (const name of r.anyOf) {
      validateEventName(scope, `${prop}.anyOf`, name, r.anyOf);
      if (names.has(name)) {
        throw new PropValidationError(scope, `${prop}.anyOf`, r.anyOf, `allowed: names that belong to one requirement ("${name}" is in two)`);
      }
      names.add(name);
    }
    validateIntegerRange(scope, `${prop}.count`, r.count, 1, MAX_COUNT, 'events');
    if (r.condition !== undefined) {
      const problem = conditionProblem(r.condition, 'condition');
      if (problem) throw new PropValidationError(scope, `${prop}.condition`, r.condition, `allowed: ${CONDITION_HINT}; here ${problem}`);
    } else if (r.failOnMismatch) {
      throw new PropValidationError(scope, `${prop}.failOnMismatch`, true, 'allowed: only with a condition (without one, no event can mismatch)');
    }
    const label = r.label ?? r.anyOf.join(' | ');
    if (typeof label !== 'string' || label.trim().length === 0 || label.length > MAX_EVENT_NAME_LENGTH || labels.has(label)) {
      throw new PropValidationError(scope, `${prop}.label`, label, `allowed: a non-empty label of at most ${MAX_EVENT_NAME_LENGTH} characters, distinct among the requirements`);
    }
    labels.add(label);
  });
}

const CONDITION_HINT = 'an EventBridge-style pattern on the detail: nested objects whose leaves are non-empty arrays of strings, numbers, '
  + 'booleans, null, or the filters prefix, suffix, anything-but, numeric, exists';

function validateEventName(scope: IConstruct, prop: string, name: string, shown: unknown): void {
  // eslint-disable-next-line no-control-regex
  if (typeof name !== 'string' || name.trim().length === 0 || name.length > MAX_EVENT_NAME_LENGTH || /[\u0000-\u001f\u007f]/.test(name)
    || name.startsWith(RESERVED_EVENT_NAME_PREFIX)) {
    throw new PropValidationError(scope, prop, shown, `allowed: non-empty event names of at most ${MAX_EVENT_NAME_LENGTH} characters, `
      + `without control characters, not starting with "${RESERVED_EVENT_NAME_PREFIX}" (reserved)`);
  }
}

function validateSource(scope: IConstruct, id: string, options: AggregatorSourceOptions): void {
  validateEventPattern(scope, `eventPattern of source "${id}"`, options.eventPattern);
  validatePath(scope, `correlationIdPath of source "${id}"`, options.correlationIdPath);
  if ((options.eventName === undefined) === (options.eventNamePath === undefined)) {
    throw new PropValidationError(scope, `event name of source "${id}"`,
      { eventName: options.eventName, eventNamePath: options.eventNamePath },
      'allowed: exactly one of eventName (a constant name) and eventNamePath (where the name is in the event)');
  }
  if (options.eventNamePath !== undefined) {
    validatePath(scope, `eventNamePath of source "${id}"`, options.eventNamePath);
  } else if (!Token.isUnresolved(options.eventName)) {
    validateEventName(scope, `eventName of source "${id}"`, options.eventName!, options.eventName);
  }
}

function validatePath(scope: IConstruct, prop: string, path: string): void {
  if (Token.isUnresolved(path)) return;
  if (typeof path !== 'string' || !EVENT_JSON_PATH.test(path)) {
    throw new PropValidationError(scope, prop, path,
      'allowed: an EventBridge JSON path in dot notation starting with "$.", such as "$.detail.orderId"');
  }
}

/** The duration in seconds, checked to be whole and in [min, max]; undefined when absent or a token. */
function wholeSeconds(scope: IConstruct, prop: string, value: Duration | undefined, min: number, max: number): number | undefined {
  if (value === undefined || value.isUnresolved()) return undefined;
  const seconds = value.toMilliseconds() / 1000;
  if (!Number.isInteger(seconds) || seconds < min || seconds > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `at least ${min}` : `from ${min} to ${max}`;
    throw new PropValidationError(scope, prop, seconds, `allowed: a whole number of seconds, ${range}`);
  }
  return seconds;
}
