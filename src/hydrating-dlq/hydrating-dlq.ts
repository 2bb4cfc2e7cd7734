import { ArnFormat, Duration, Names, RemovalPolicy, Stack, Token, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kinesis from 'aws-cdk-lib/aws-kinesis';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as lambdaEventSources from 'aws-cdk-lib/aws-lambda-event-sources';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as pipes from 'aws-cdk-lib/aws-pipes';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { HYDRATOR_ENV } from './hydrating-dlq-contract';
import { HydratingDlqProps, PipeLogLevel, PipeStartingPosition } from './hydrating-dlq-props';
import { HydratorFunction } from './hydrator-function';
import { PipeTarget, PipeTargetConfig } from './pipe-target';
import { ReplayerFunction } from './replayer-function';
import {
  acknowledgeKeyWildcards, acknowledgeXRay, flattenForNag, FUNCTION_LOG_RETENTION, functionLogGroup, functionRole, handlerMetric, METRICS_NAMESPACE,
  grantInvokeExactly, queueDepth, queueEncryption, secureDeadLetterQueue, thresholdAlarm,
} from '../common/construct-defaults';
import { addStackResourceBudgetCheck } from '../common/stack-resource-budget';
import { PropValidationError, validateHttpsUrl, validateIntegerRange } from '../common/validation';

const SERVICE_NAME = 'cdk-event-fabric-hydrating-dlq';
/** 57 characters, so that `<name>-replay` (the replay pipe) is within Pipes' 64. */
const PIPE_NAME = /^[.\-_A-Za-z0-9]{1,57}$/;
/** S3's safe key characters only: no IAM wildcards (`*`, `?`) or policy variables (`${...}`) in the grants built from it. */
const OBJECT_PREFIX = /^([A-Za-z0-9_'()-][A-Za-z0-9!_.'()-]*\/)*$/;
/** Receives of a dead-letter message before it moves to the hydrator's own dead-letter queue. */
const HYDRATOR_MAX_RECEIVE_COUNT = 3;

/**
 * A Kinesis data stream delivered to a target through an EventBridge Pipe, whose
 * metadata-only dead-letter queue is hydrated back into full records in S3.
 *
 * - The pipe's retries and record age are always bounded (Pipes' defaults would block a shard
 *   behind one bad record until the retention ends), and its explicit role holds the
 *   dead-letter queue's permissions from the first deploy.
 * - Each dead-letter message names a failed batch (shard and sequence range). The hydrator
 *   reads exactly those records back from the stream, before its retention ends, and writes
 *   each to the bucket under `<prefix><pipe>/<yyyy>/<MM>/<dd>/<HH>/<shard>/<partition key>/`.
 *   Records the stream no longer has are written as an unrecoverable object with the reason.
 * - Alarms: the hydration deadline (the oldest dead-letter message against the stream's
 *   retention), hydrator failures, unrecoverable records, and the pipe's execution and target failures.
 */
export class HydratingDlq extends Construct {
  /** CloudFormation resources one HydratingDlq adds in its default configuration (an API destination target). */
  public static readonly RESOURCES_PER_HYDRATING_DLQ = 30;

  /** The stream the pipe reads. */
  public readonly stream: kinesis.IStream;
  /** The pipe (L1: aws-cdk-lib has no stable Pipes L2). */
  public readonly pipe: pipes.CfnPipe;
  /** The pipe's name: the consumer name in the hydrated objects' keys. */
  public readonly pipeName: string;
  /** The replay stream: the replayer puts records here, and the replay pipe delivers them to the same target. */
  public readonly replayStream: kinesis.Stream;
  /** The replay pipe: the pipe's settings, target and dead-letter queue, reading the replay stream. */
  public readonly replayPipe: pipes.CfnPipe;
  /** The replay pipe's name (`<pipeName>-replay`). */
  public readonly replayPipeName: string;
  /** The replayer: invoked by an operator to send hydrated records again (see the docs). */
  public readonly replayerFunction: lambda.Function;
  /** The pipe's role. */
  public readonly pipeRole: iam.Role;
  /** The pipe's log group. */
  public readonly pipeLogGroup: logs.LogGroup;
  /** The default target's API destination, when no `target` was given. */
  public readonly apiDestination?: events.ApiDestination;
  /** The default target's connection, when it was created here. */
  public readonly connection?: events.IConnection;
  /** The pipe's dead-letter queue: metadata of failed batches, the hydrator's trigger. */
  public readonly deadLetterQueue: sqs.Queue;
  /** Dead-letter messages the hydrator could not hydrate, after 3 attempts. */
  public readonly hydratorDeadLetterQueue: sqs.Queue;
  /** The hydrator. */
  public readonly hydratorFunction: lambda.Function;
  /** The hydrated records' bucket. */
  public readonly bucket: s3.IBucket;
  /** The key prefix of every hydrated object. */
  public readonly objectPrefix: string;
  /** The oldest dead-letter message is halfway to the hydration deadline (see the docs). */
  public readonly hydrationDeadlineAlarm: cloudwatch.Alarm;
  /** A dead-letter message waits in the hydrator's dead-letter queue. */
  public readonly hydratorDeadLetterQueueAlarm: cloudwatch.Alarm;
  /** The hydrator failed (an invocation error or a message returned to the queue). */
  public readonly hydratorErrorsAlarm: cloudwatch.Alarm;
  /** Records the stream no longer had, or a dead-letter message that was not a failed batch, were written as such. */
  public readonly unrecoverableRecordsAlarm: cloudwatch.Alarm;
  /** Executions of the pipe or the replay pipe failed. */
  public readonly pipeExecutionFailedAlarm: cloudwatch.Alarm;
  /** The target failed (for the pipe or the replay pipe). */
  public readonly pipeTargetFailedAlarm: cloudwatch.Alarm;

  private readonly props: HydratingDlqProps;
  /** The customer key of the streams, queues and bucket, if any. */
  private readonly key?: kms.IKey;
  private readonly metricsId: string;

  constructor(scope: Construct, id: string, props: HydratingDlqProps) {
    super(scope, id);
    this.props = props;
    // A passed-in stream's own key protects what is made of its records too, unless another is given.
    this.key = props.encryptionKey ?? props.stream?.encryptionKey;
    this.metricsId = this.node.path;
    const retention = props.streamRetention ?? Duration.hours(24);
    const maximumRecordAge = props.maximumRecordAge ?? Duration.hours(1);
    this.validate(retention, maximumRecordAge);
    addStackResourceBudgetCheck(this, 'HydratingDlq', HydratingDlq.RESOURCES_PER_HYDRATING_DLQ);
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    const key = this.key;

    this.stream = props.stream ?? this.createStream(retention, removalPolicy);
    this.pipeName = props.pipeName ?? Names.uniqueResourceName(this, { maxLength: 57, separator: '-' });
    this.replayPipeName = `${this.pipeName.slice(0, 57)}-replay`;
    this.replayStream = new kinesis.Stream(this, 'ReplayStream', {
      streamMode: kinesis.StreamMode.PROVISIONED,
      shardCount: 1,
      // As long as the source stream's: the replay pipe's records live as long as the pipe's.
      retentionPeriod: retention,
      encryption: key ? kinesis.StreamEncryption.KMS : kinesis.StreamEncryption.MANAGED,
      encryptionKey: key,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    if (key) this.acknowledgeCustomerKey(this.replayStream);
    this.objectPrefix = props.objectPrefix ?? 'hydrated/';

    this.hydratorDeadLetterQueue = secureDeadLetterQueue(this, 'HydratorDeadLetterQueue', {
      encryptionKey: key,
      holds: 'pipe dead-letter messages the hydrator failed to hydrate',
      emptiedBy: 'moved back to the pipe\'s dead-letter queue (an SQS redrive) once the cause is fixed',
      removalPolicy,
    });
    const hydratorTimeout = props.hydratorTimeout ?? Duration.minutes(5);
    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', {
      ...queueEncryption(key),
      enforceSSL: true,
      retentionPeriod: props.deadLetterQueueRetention ?? Duration.days(14),
      // Lambda's advice for an SQS event source: six times the function's timeout.
      visibilityTimeout: Duration.seconds(hydratorTimeout.toSeconds() * 6),
      deadLetterQueue: { queue: this.hydratorDeadLetterQueue, maxReceiveCount: HYDRATOR_MAX_RECEIVE_COUNT },
      removalPolicy,
    });

    this.bucket = props.bucket ?? this.createBucket(removalPolicy);

    const target = props.target ?? this.defaultTarget();
    this.pipeLogGroup = new logs.LogGroup(this, 'PipeLogs', { retention: FUNCTION_LOG_RETENTION, removalPolicy: RemovalPolicy.DESTROY });
    this.pipeRole = this.createPipeRole();
    const targetConfig = target.bind(this.pipeRole);
    this.pipe = this.createPipe('Pipe', this.pipeName, this.stream, targetConfig, maximumRecordAge, props.startingPosition);
    // Replayed records are new to the replay stream: the replay pipe starts at its oldest, never skipping one.
    this.replayPipe = this.createPipe('ReplayPipe', this.replayPipeName, this.replayStream, targetConfig, maximumRecordAge, PipeStartingPosition.TRIM_HORIZON);
    this.hydratorFunction = this.createHydrator(hydratorTimeout);
    this.replayerFunction = this.createReplayer();

    const alarmActions = props.alarmActions;
    // Halfway from the dead-letter message to the earliest moment its records can be trimmed.
    const deadlineSeconds = Math.max(60, Math.floor((retention.toSeconds() - maximumRecordAge.toSeconds()) / 2));
    this.hydrationDeadlineAlarm = thresholdAlarm(this, 'HydrationDeadlineAlarm',
      this.deadLetterQueue.metricApproximateAgeOfOldestMessage({ statistic: cloudwatch.Stats.MAXIMUM, period: Duration.minutes(5) }),
      `A failed batch has waited ${deadlineSeconds} s in the pipe's dead-letter queue, halfway to the stream's retention: hydrate it before its records are trimmed`,
      alarmActions, { threshold: deadlineSeconds });
    this.hydratorDeadLetterQueueAlarm = thresholdAlarm(this, 'HydratorDeadLetterQueueAlarm', queueDepth(this.hydratorDeadLetterQueue),
      'Dead-letter messages the hydrator could not hydrate: fix the cause and redrive them to the pipe\'s dead-letter queue before the stream\'s retention ends',
      alarmActions);
    this.hydratorErrorsAlarm = thresholdAlarm(this, 'HydratorErrorsAlarm', new cloudwatch.MathExpression({
      expression: 'FILL(errors, 0) + FILL(failed, 0)',
      usingMetrics: { errors: this.hydratorFunction.metricErrors({ period: Duration.minutes(5) }), failed: this.metricHydrator('MessagesFailed') },
      period: Duration.minutes(5),
      label: 'hydrator errors and failed messages',
    }), 'The hydrator failed: an invocation error, or a dead-letter message returned to the queue', alarmActions);
    this.unrecoverableRecordsAlarm = thresholdAlarm(this, 'UnrecoverableRecordsAlarm', new cloudwatch.MathExpression({
      expression: 'FILL(partly, 0) + FILL(unreadable, 0)',
      usingMetrics: { partly: this.metricHydrator('BatchesPartlyUnrecoverable'), unreadable: this.metricHydrator('MessagesUnreadable') },
      period: Duration.minutes(5),
      label: 'batches partly unrecoverable and messages unreadable',
    }), `Records the stream no longer had, or dead-letter messages that were not failed batches, were written under ${this.objectPrefix}`, alarmActions);
    this.pipeExecutionFailedAlarm = thresholdAlarm(this, 'PipeExecutionFailedAlarm', this.bothPipes('ExecutionFailed'),
      `Executions of pipe ${this.pipeName} or ${this.replayPipeName} failed`, alarmActions);
    this.pipeTargetFailedAlarm = thresholdAlarm(this, 'PipeTargetFailedAlarm', this.bothPipes('TargetStageFailed'),
      `The target of pipe ${this.pipeName} or ${this.replayPipeName} failed`, alarmActions);
  }

  /**
   * A metric of the pipe (or, with `replayPipe`, of the replay pipe): namespace
   * `AWS/EventBridge/Pipes`, dimension `PipeName`, summed over 5 minutes.
   */
  public metricPipe(metricName: string, props?: cloudwatch.MetricOptions, replayPipe = false): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: 'AWS/EventBridge/Pipes',
      metricName,
      dimensionsMap: { PipeName: replayPipe ? this.replayPipeName : this.pipeName },
      statistic: cloudwatch.Stats.SUM,
      period: Duration.minutes(5),
      ...props,
    });
  }

  /**
   * A hydrator metric: `RecordsHydrated`, `BatchesHydrated`, `BatchesWiderRange`, `BatchesPartlyUnrecoverable`,
   * `MessagesUnreadable` or `MessagesFailed` (namespace `cdk-event-fabric`, dimension
   * `hydratingDlq`), summed over 5 minutes.
   */
  public metricHydrator(metricName: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return handlerMetric(metricName, { service: SERVICE_NAME, hydratingDlq: this.metricsId }, props);
  }

  /** Lets `grantee` invoke the replayer. */
  public grantReplay(grantee: iam.IGrantable): iam.Grant {
    return grantInvokeExactly(this.replayerFunction, grantee);
  }

  /** Lets `grantee` read the hydrated objects (and decrypt them). */
  public grantReadHydrated(grantee: iam.IGrantable): iam.Grant {
    return this.bucket.grantRead(grantee, `${this.objectPrefix}*`);
  }

  private validate(retention: Duration, maximumRecordAge: Duration): void {
    const props = this.props;
    if ((props.target === undefined) === (props.endpoint === undefined)) {
      throw new PropValidationError(this, 'target/endpoint', { target: props.target?.kind, endpoint: props.endpoint },
        'allowed: exactly one of them (`target` for any pipe target, or `endpoint` for the default API destination)');
    }
    if (props.endpoint !== undefined) {
      validateHttpsUrl(this, 'endpoint', props.endpoint);
      if ((props.authorization === undefined) === (props.connection === undefined)) {
        throw new PropValidationError(this, 'authorization/connection', { authorization: !!props.authorization, connection: !!props.connection },
          'allowed: exactly one of them with `endpoint`');
      }
    } else {
      for (const [name, value] of Object.entries({
        authorization: props.authorization, connection: props.connection, httpMethod: props.httpMethod, rateLimitPerSecond: props.rateLimitPerSecond,
      })) {
        if (value !== undefined) throw new PropValidationError(this, name, '(given)', 'allowed: only with `endpoint` (the default target); configure your own target instead');
      }
    }
    validateIntegerRange(this, 'rateLimitPerSecond', props.rateLimitPerSecond, 1, 300, 'invocations per second');
    if (props.stream && (props.streamMode !== undefined || props.shardCount !== undefined)) {
      throw new PropValidationError(this, 'streamMode/shardCount', { streamMode: props.streamMode, shardCount: props.shardCount },
        'allowed: only for the created stream (leave them out with `stream`)');
    }
    if (props.shardCount !== undefined && props.streamMode !== kinesis.StreamMode.PROVISIONED) {
      throw new PropValidationError(this, 'shardCount', props.shardCount, 'allowed: only with streamMode PROVISIONED');
    }
    validateIntegerRange(this, 'shardCount', props.shardCount, 1, 500);
    const retentionHours = durationIn(retention, 'hours');
    if (retentionHours !== undefined && (!Number.isInteger(retentionHours) || retentionHours < 24 || retentionHours > 8760)) {
      throw new PropValidationError(this, 'streamRetention', retention.toHumanString(), 'allowed: whole hours from 24 hours to 365 days (Kinesis\'s retention range)');
    }
    validateIntegerRange(this, 'batchSize', props.batchSize, 1, 10_000, 'records');
    validateIntegerRange(this, 'maximumBatchingWindow', durationIn(props.maximumBatchingWindow, 'seconds'), 0, 300, 'seconds');
    validateIntegerRange(this, 'maximumRetryAttempts', props.maximumRetryAttempts, 0, 10_000, '(never -1, infinite)');
    validateIntegerRange(this, 'parallelizationFactor', props.parallelizationFactor, 1, 10);
    const ageSeconds = durationIn(maximumRecordAge, 'seconds');
    validateIntegerRange(this, 'maximumRecordAge', ageSeconds, 60, 604_800, 'seconds (never -1, infinite)');
    const retentionSeconds = durationIn(retention, 'seconds');
    if (ageSeconds !== undefined && retentionSeconds !== undefined && ageSeconds >= retentionSeconds) {
      throw new PropValidationError(this, 'maximumRecordAge', maximumRecordAge.toHumanString(),
        `allowed: shorter than the stream's retention (${retention.toHumanString()}), so a failed batch's records are still in the stream when the hydrator reads them`);
    }
    if (props.pipeName !== undefined && !Token.isUnresolved(props.pipeName) && (!PIPE_NAME.test(props.pipeName) || props.pipeName.endsWith('-replay'))) {
      throw new PropValidationError(this, 'pipeName', props.pipeName,
        'allowed: 1 to 57 characters of A-Z a-z 0-9 . _ -, not ending in "-replay" (the replay pipe is named <pipeName>-replay, within Pipes\' 64)');
    }
    if (props.objectPrefix !== undefined && (!OBJECT_PREFIX.test(props.objectPrefix) || props.objectPrefix.length > 100)) {
      throw new PropValidationError(this, 'objectPrefix', props.objectPrefix,
        'allowed: empty, or up to 100 characters of A-Z a-z 0-9 ! _ . \' ( ) - in segments each ending in "/", none starting with "." or "!" (no IAM wildcards)');
    }
    if (props.inputTemplate !== undefined && !Token.isUnresolved(props.inputTemplate) && props.inputTemplate.length > 8192) {
      throw new PropValidationError(this, 'inputTemplate', `${props.inputTemplate.slice(0, 40)}...`, 'allowed: at most 8,192 characters');
    }
    const filters = props.filterPatterns ?? [];
    if (filters.length > 5) throw new PropValidationError(this, 'filterPatterns', filters, 'allowed: at most 5 patterns');
    for (const pattern of filters) {
      if (Token.isUnresolved(pattern)) continue;
      let parsed: unknown;
      try {
        parsed = JSON.parse(pattern);
      } catch {
        parsed = undefined;
      }
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed) || Object.keys(parsed).length === 0) {
        throw new PropValidationError(this, 'filterPatterns', pattern, 'allowed: JSON event patterns, each an object with at least one field (for example {"data":{"type":["order"]}})');
      }
    }
    validateIntegerRange(this, 'hydratorBatchSize', props.hydratorBatchSize, 1, 10, 'messages');
    validateIntegerRange(this, 'hydratorTimeout', durationIn(props.hydratorTimeout, 'seconds'), 30, 900, 'seconds');
    validateIntegerRange(this, 'hydratorMaxConcurrency', props.hydratorMaxConcurrency, 2, 1000, 'concurrent invocations');
    // A dead-letter message must outlive the hydrator's receives: each waits out the visibility timeout.
    const visibility = (durationIn(props.hydratorTimeout, 'seconds') ?? 300) * 6;
    const minimumRetention = visibility * (HYDRATOR_MAX_RECEIVE_COUNT + 1);
    validateIntegerRange(this, 'deadLetterQueueRetention', durationIn(props.deadLetterQueueRetention, 'seconds'), Math.min(minimumRetention, 1_209_600), 1_209_600,
      `seconds (at least ${HYDRATOR_MAX_RECEIVE_COUNT + 1} visibility timeouts of 6 x hydratorTimeout, so a message outlives the hydrator's ${HYDRATOR_MAX_RECEIVE_COUNT} attempts)`);
  }

  private createStream(retention: Duration, removalPolicy: RemovalPolicy): kinesis.Stream {
    const key = this.key;
    const stream = new kinesis.Stream(this, 'Stream', {
      streamMode: this.props.streamMode ?? kinesis.StreamMode.ON_DEMAND,
      shardCount: this.props.streamMode === kinesis.StreamMode.PROVISIONED ? this.props.shardCount ?? 1 : undefined,
      retentionPeriod: retention,
      encryption: key ? kinesis.StreamEncryption.KMS : kinesis.StreamEncryption.MANAGED,
      encryptionKey: key,
      removalPolicy,
    });
    if (key) this.acknowledgeCustomerKey(stream);
    return stream;
  }

  private acknowledgeCustomerKey(stream: kinesis.Stream): void {
    Validations.of(stream).acknowledge({
      id: 'AwsSolutions-KDS3',
      reason: 'The stream is encrypted with the customer key given as `encryptionKey`, as the user chose; without one it uses aws/kinesis.',
    });
  }

  private createBucket(removalPolicy: RemovalPolicy): s3.Bucket {
    const key = this.key;
    const bucket = new s3.Bucket(this, 'Bucket', {
      encryption: key ? s3.BucketEncryption.KMS : s3.BucketEncryption.S3_MANAGED,
      encryptionKey: key,
      bucketKeyEnabled: key ? true : undefined,
      enforceSSL: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      serverAccessLogsBucket: this.props.serverAccessLogsBucket,
      serverAccessLogsPrefix: this.props.serverAccessLogsBucket ? 'hydrating-dlq/' : undefined,
      removalPolicy,
      lifecycleRules: [{ id: 'AbortIncompleteUploads', abortIncompleteMultipartUploadAfter: Duration.days(1) }],
    });
    if (!this.props.serverAccessLogsBucket) {
      Validations.of(bucket).acknowledge({
        id: 'AwsSolutions-S1',
        reason: 'Server access logging is opt-in: pass `serverAccessLogsBucket` to enable it. Only the hydrator writes here; '
          + 'its logs and metrics record every object it writes.',
      });
    }
    return bucket;
  }

  private defaultTarget(): PipeTarget {
    const props = this.props;
    const connection = props.connection ?? new events.Connection(this, 'Connection', {
      authorization: props.authorization!.toEventsAuthorization(),
      description: `cdk-event-fabric HydratingDlq ${this.node.path}`.slice(0, 512),
    });
    const destination = new events.ApiDestination(this, 'ApiDestination', {
      connection,
      endpoint: props.endpoint!,
      httpMethod: props.httpMethod ?? events.HttpMethod.POST,
      rateLimitPerSecond: props.rateLimitPerSecond,
      description: `cdk-event-fabric HydratingDlq ${this.node.path}`.slice(0, 512),
    });
    (this as { connection?: events.IConnection }).connection = props.connection ? undefined : connection;
    (this as { apiDestination?: events.ApiDestination }).apiDestination = destination;
    return PipeTarget.apiDestination(destination);
  }

  private pipeArn(name: string): string {
    return Stack.of(this).formatArn({ service: 'pipes', resource: 'pipe', resourceName: name, arnFormat: ArnFormat.SLASH_RESOURCE_NAME });
  }

  /** Sum of a metric over the pipe and the replay pipe. */
  private bothPipes(metricName: string): cloudwatch.MathExpression {
    return new cloudwatch.MathExpression({
      expression: 'FILL(pipe, 0) + FILL(replay, 0)',
      usingMetrics: { pipe: this.metricPipe(metricName), replay: this.metricPipe(metricName, undefined, true) },
      period: Duration.minutes(5),
      label: `${metricName} (pipe and replay pipe)`,
    });
  }

  private createPipeRole(): iam.Role {
    const stack = Stack.of(this);
    const role = new iam.Role(this, 'PipeRole', {
      assumedBy: new iam.ServicePrincipal('pipes.amazonaws.com', {
        conditions: { StringEquals: { 'aws:SourceAccount': stack.account, 'aws:SourceArn': [this.pipeArn(this.pipeName), this.pipeArn(this.replayPipeName)] } },
      }),
      description: 'cdk-event-fabric HydratingDlq pipe: reads the stream, calls the target, writes the dead-letter queue and logs',
    });
    this.stream.grantRead(role);
    this.replayStream.grantRead(role);
    // Granted before the pipe exists: adding a dead-letter queue to a pipe whose role lacks it fails the update.
    this.deadLetterQueue.grantSendMessages(role);
    this.pipeLogGroup.grantWrite(role);
    acknowledgeKeyWildcards(role, this.key, 'The pipe reads the stream and writes the dead-letter queue, both encrypted with the construct key');
    return role;
  }

  private createPipe(id: string, name: string, source: kinesis.IStream, config: PipeTargetConfig, maximumRecordAge: Duration,
    startingPosition: PipeStartingPosition | undefined): pipes.CfnPipe {
    const props = this.props;
    const filters = props.filterPatterns ?? [];
    const pipe = new pipes.CfnPipe(this, id, {
      name,
      description: `cdk-event-fabric HydratingDlq ${this.node.path}${id === 'ReplayPipe' ? ' (replay)' : ''}`.slice(0, 512),
      roleArn: this.pipeRole.roleArn,
      source: source.streamArn,
      sourceParameters: {
        kinesisStreamParameters: {
          startingPosition: startingPosition ?? PipeStartingPosition.TRIM_HORIZON,
          batchSize: props.batchSize ?? 1,
          maximumBatchingWindowInSeconds: props.maximumBatchingWindow?.toSeconds(),
          maximumRetryAttempts: props.maximumRetryAttempts ?? 3,
          maximumRecordAgeInSeconds: maximumRecordAge.toSeconds(),
          onPartialBatchItemFailure: props.bisectBatchOnFailure ?? true ? 'AUTOMATIC_BISECT' : undefined,
          parallelizationFactor: props.parallelizationFactor ?? 1,
          deadLetterConfig: { arn: this.deadLetterQueue.queueArn },
        },
        filterCriteria: filters.length > 0 ? { filters: filters.map((pattern) => ({ pattern })) } : undefined,
      },
      target: config.targetArn,
      targetParameters: config.targetParameters || props.inputTemplate !== undefined
        ? { ...config.targetParameters, inputTemplate: props.inputTemplate } : undefined,
      logConfiguration: {
        level: props.logLevel ?? PipeLogLevel.ERROR,
        includeExecutionData: props.logExecutionData ? ['ALL'] : undefined,
        cloudwatchLogsLogDestination: { logGroupArn: this.pipeLogGroup.logGroupArn },
      },
    });
    // The role's policies exist before the pipe starts: its first poll, dead letter and log need them.
    pipe.node.addDependency(this.pipeRole);
    return pipe;
  }

  private createHydrator(timeout: Duration): lambda.Function {
    const key = this.key;
    const logGroup = functionLogGroup(this, 'HydratorFunctionLogs');
    const role = functionRole(this, 'HydratorFunctionRole', 'cdk-event-fabric HydratingDlq hydrator', logGroup);
    const fn = new HydratorFunction(this, 'HydratorFunction', {
      role,
      description: 'cdk-event-fabric HydratingDlq: reads failed batches back from the stream into S3',
      memorySize: 512,
      timeout,
      tracing: lambda.Tracing.ACTIVE,
      logGroup,
      environment: {
        [HYDRATOR_ENV.BUCKET_NAME]: this.bucket.bucketName,
        [HYDRATOR_ENV.OBJECT_PREFIX]: this.objectPrefix,
        [HYDRATOR_ENV.STREAM_ARNS]: `${this.stream.streamArn},${this.replayStream.streamArn}`,
        [HYDRATOR_ENV.METRICS_ID]: this.metricsId,
        POWERTOOLS_SERVICE_NAME: SERVICE_NAME,
        POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE,
      },
    });
    fn.addEventSource(new lambdaEventSources.SqsEventSource(this.deadLetterQueue, {
      batchSize: this.props.hydratorBatchSize ?? 1,
      reportBatchItemFailures: true,
      // A few at once: the hydrators read the shards the pipe reads (GetRecords: 5 calls a second per shard).
      maxConcurrency: this.props.hydratorMaxConcurrency ?? 2,
    }));
    // The two calls the range reader makes, on the two streams (and their keys).
    fn.addToRolePolicy(new iam.PolicyStatement({
      actions: ['kinesis:GetShardIterator', 'kinesis:GetRecords'],
      resources: [this.stream.streamArn, this.replayStream.streamArn],
    }));
    this.stream.encryptionKey?.grantDecrypt(fn);
    this.replayStream.encryptionKey?.grantDecrypt(fn);
    // PutObject only (grantPut adds s3:Abort* and legal-hold actions the hydrator never uses).
    fn.addToRolePolicy(new iam.PolicyStatement({ actions: ['s3:PutObject'], resources: [this.bucket.arnForObjects(`${this.objectPrefix}*`)] }));
    this.bucket.encryptionKey?.grantEncrypt(fn);
    acknowledgeXRay(role);
    acknowledgeKeyWildcards(role, key, 'The hydrator reads the stream and the dead-letter queue, and writes the bucket, encrypted with the construct key');
    Validations.of(role).acknowledge({
      id: `AwsSolutions-IAM5[Resource::${flattenForNag(Stack.of(this).resolve(this.bucket.arnForObjects(`${this.objectPrefix}*`)))}]`,
      reason: 'The hydrator writes one object per record under the construct\'s prefix, keyed at run time.',
    });
    const viaRedrive = 'Triggered by an SQS event source: a message it fails returns to the queue, whose redrive policy moves it to the '
      + 'hydrator\'s dead-letter queue (SQS event sources have no on-failure destination).';
    Validations.of(fn).acknowledge({ id: 'Serverless-LambdaDLQ', reason: viaRedrive });
    Validations.of(fn).acknowledge({ id: 'Serverless-LambdaEventSourceMappingDestination', reason: viaRedrive });
    return fn;
  }

  private createReplayer(): lambda.Function {
    const key = this.key;
    const bus = this.props.replayEventBus;
    const logGroup = functionLogGroup(this, 'ReplayerFunctionLogs');
    const role = functionRole(this, 'ReplayerFunctionRole', 'cdk-event-fabric HydratingDlq replayer', logGroup);
    const fn = new ReplayerFunction(this, 'ReplayerFunction', {
      role,
      description: 'cdk-event-fabric HydratingDlq: replays hydrated records to the pipe\'s target (through the replay stream) or a bus',
      memorySize: 512,
      timeout: Duration.minutes(5),
      // One replay at a time: a client that retries a long invocation (the AWS CLI after 60 s) must not start a second run beside it.
      reservedConcurrentExecutions: 1,
      tracing: lambda.Tracing.ACTIVE,
      logGroup,
      environment: {
        [HYDRATOR_ENV.BUCKET_NAME]: this.bucket.bucketName,
        [HYDRATOR_ENV.OBJECT_PREFIX]: this.objectPrefix,
        [HYDRATOR_ENV.REPLAY_STREAM_NAME]: this.replayStream.streamName,
        ...(bus ? { [HYDRATOR_ENV.REPLAY_EVENT_BUS_NAME]: bus.eventBusName } : {}),
        POWERTOOLS_SERVICE_NAME: SERVICE_NAME,
      },
    });
    const objects = this.bucket.arnForObjects(`${this.objectPrefix}*`);
    fn.addToRolePolicy(new iam.PolicyStatement({ actions: ['s3:GetObject', 's3:GetObjectTagging', 's3:PutObjectTagging'], resources: [objects] }));
    fn.addToRolePolicy(new iam.PolicyStatement({
      actions: ['s3:ListBucket'],
      resources: [this.bucket.bucketArn],
      conditions: { StringLike: { 's3:prefix': `${this.objectPrefix}*` } },
    }));
    this.bucket.encryptionKey?.grantDecrypt(fn);
    fn.addToRolePolicy(new iam.PolicyStatement({ actions: ['kinesis:PutRecords'], resources: [this.replayStream.streamArn] }));
    key?.grantEncrypt(fn);
    bus?.grantPutEventsTo(fn);
    acknowledgeXRay(role);
    acknowledgeKeyWildcards(role, key, 'The replayer reads the bucket and writes the replay stream, encrypted with the construct key');
    Validations.of(role).acknowledge({
      id: `AwsSolutions-IAM5[Resource::${flattenForNag(Stack.of(this).resolve(objects))}]`,
      reason: 'The replayer reads and tags the hydrated objects under the construct\'s prefix, chosen by the operator at run time.',
    });
    Validations.of(fn).acknowledge({
      id: 'Serverless-LambdaDLQ',
      reason: 'Invoked synchronously by an operator, who sees its report or its error; there is no asynchronous invocation to catch.',
    });
    return fn;
  }
}

/** A duration in `unit`, or undefined when it is a token (or absent). */
function durationIn(duration: Duration | undefined, unit: 'seconds' | 'hours'): number | undefined {
  if (duration === undefined || Token.isUnresolved(duration.toSeconds({ integral: false }))) return undefined;
  return unit === 'seconds' ? duration.toSeconds({ integral: false }) : duration.toHours({ integral: false });
}
