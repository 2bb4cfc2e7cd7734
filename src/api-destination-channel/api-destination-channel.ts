import { Annotations, Duration, RemovalPolicy, Stack, Token } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { ApiDestinationChannelProps } from './api-destination-channel-props';
import { ChannelDeadLetterQueue, withDeadLetterQueue } from './channel-dead-letter-queue';
import { REPLAY_DETAIL_TYPE, REPLAY_SOURCE } from './replay-contract';
import { ChannelReplayHub } from './replay-hub';
import { ReplayRuleTargetInput, toReplayParameters, toReplayPathParameterValues } from './replay-input';
import { secureDeadLetterQueue, thresholdAlarm, truncate } from '../common/construct-defaults';
import { addStackResourceBudgetCheck } from '../common/stack-resource-budget';
import { PropValidationError, validateEventPattern, validateHttpsUrl, validateIntegerRange } from '../common/validation';

const DEFAULT_IDEMPOTENCY_HEADER = 'Idempotency-Key';

/**
 * One remote HTTP API fed from an event bus, configured rather than coded.
 *
 * Creates a rule with an input transformation, an API destination (and a connection
 * unless a shared one is given), a target with a retry policy and an encrypted, retained
 * dead-letter queue, alarms on the queue depth, failed invocations, invocations sent to
 * the queue and invocations that could not be sent to it, and a rule on the stack's
 * private replay bus so the queue's events can be re-delivered to this channel only,
 * with alarms on its failed invocations and on replays that could not be sent back to
 * the queue.
 *
 * Delivery is at least once: the idempotency-key header (the event id, on by default)
 * lets the remote API discard duplicates, including replays.
 */
export class ApiDestinationChannel extends Construct {
  /**
   * CloudFormation resources one channel adds to its stack, not counting a shared
   * connection or the stack's replay bus and function. Asserted by the unit tests.
   * Channels that share a given queue add 3 fewer each: the queue, its policy and its
   * depth alarm count once per queue and stack.
   */
  public static readonly RESOURCES_PER_CHANNEL = 13;

  /** The rule on the source bus. */
  public readonly rule: events.Rule;
  /** The connection the API destination uses (created, or the shared one given). */
  public readonly connection: events.IConnection;
  /** The API destination. */
  public readonly apiDestination: events.ApiDestination;
  /** The role EventBridge assumes to invoke the API destination. */
  public readonly eventRole: iam.IRole;
  /** The queue that keeps events whose delivery failed. */
  public readonly deadLetterQueue: sqs.IQueue;
  /** The rule on the replay bus that re-delivers this channel's dead letters. */
  public readonly replayRule: events.Rule;
  /** The stack's private replay bus (shared by the stack's channels). */
  public readonly replayBus: events.IEventBus;
  /**
   * The function that replays a dead-letter queue (shared by the stack's channels).
   * Invoke it with `replayPayload` to re-deliver this channel's dead letters.
   */
  public readonly replayFunction: lambda.IFunction;
  /**
   * Alarm: the dead-letter queue holds at least one visible message. One per queue and
   * stack: channels that share a queue return the same alarm, which notifies all their
   * `alarmActions`.
   */
  public readonly deadLetterQueueDepthAlarm: cloudwatch.Alarm;
  /** Alarm: at least one invocation failed permanently. */
  public readonly failedInvocationsAlarm: cloudwatch.Alarm;
  /** Alarm: at least one event was sent to the dead-letter queue. */
  public readonly invocationsSentToDlqAlarm: cloudwatch.Alarm;
  /** Alarm: at least one event could not be sent to the dead-letter queue (it is lost). */
  public readonly invocationsFailedToBeSentToDlqAlarm: cloudwatch.Alarm;
  /**
   * Alarm: at least one replayed event failed again (after the replay rule's retries, or
   * not retryable). It is back in the dead-letter queue unless
   * `replayInvocationsFailedToBeSentToDlqAlarm` fires too.
   */
  public readonly replayFailedInvocationsAlarm: cloudwatch.Alarm;
  /**
   * Alarm: at least one replayed event failed and could not be sent back to the
   * dead-letter queue. The replay had already deleted its message, so the event is lost.
   */
  public readonly replayInvocationsFailedToBeSentToDlqAlarm: cloudwatch.Alarm;

  private readonly eventBus: events.IEventBus;

  constructor(scope: Construct, id: string, props: ApiDestinationChannelProps) {
    super(scope, id);
    validateProps(this, props);
    this.eventBus = props.eventBus;
    const description = props.description ?? `cdk-event-fabric ApiDestinationChannel ${this.node.path}`;

    this.connection = props.connection ?? new events.Connection(this, 'Connection', {
      authorization: props.authorization!.toEventsAuthorization(),
      description: truncate(description, 512),
    });

    this.apiDestination = new events.ApiDestination(this, 'ApiDestination', {
      connection: this.connection,
      endpoint: props.endpoint,
      httpMethod: props.httpMethod ?? events.HttpMethod.POST,
      rateLimitPerSecond: props.rateLimitPerSecond,
      description: truncate(description, 512),
    });

    this.deadLetterQueue = props.deadLetterQueue ?? this.createDeadLetterQueue(props);
    // One queue-policy statement, key grant and depth alarm per queue and stack.
    const sharedQueue = ChannelDeadLetterQueue.of(this, this.deadLetterQueue);

    this.eventRole = new iam.Role(this, 'EventRole', {
      assumedBy: new iam.ServicePrincipal('events.amazonaws.com'),
      description: 'Lets EventBridge invoke this channel\'s API destination',
    });

    const input = props.input ?? events.RuleTargetInput.fromEventPath('$.detail');
    const headerParameters: { [name: string]: string } = { ...props.headerParameters };
    if (props.idempotencyKey ?? true) {
      headerParameters[props.idempotencyKeyHeader ?? DEFAULT_IDEMPOTENCY_HEADER] = '$.id';
    }
    const retry = {
      retryAttempts: props.maxRetryAttempts ?? 185,
      maxEventAge: props.maxEventAge ?? Duration.hours(24),
    };

    this.rule = new events.Rule(this, 'Rule', {
      eventBus: props.eventBus,
      eventPattern: props.eventPattern,
      enabled: props.enabled ?? true,
      description: truncate(description, 512),
    });
    this.rule.addTarget(withDeadLetterQueue(new targets.ApiDestination(this.apiDestination, {
      event: input,
      eventRole: this.eventRole,
      headerParameters: nonEmpty(headerParameters),
      queryStringParameters: props.queryStringParameters,
      pathParameterValues: props.pathParameterValues,
      ...retry,
    }), this.deadLetterQueue));

    // Replay: the same destination, role, retry policy and DLQ, fed only by replay
    // events whose detail names this channel's rule; paths re-aimed at the original event.
    const hub = ChannelReplayHub.of(this);
    this.replayBus = hub.bus;
    this.replayFunction = hub.replayFunction;
    this.replayRule = new events.Rule(this, 'ReplayRule', {
      eventBus: hub.bus,
      eventPattern: {
        source: [REPLAY_SOURCE],
        detailType: [REPLAY_DETAIL_TYPE],
        detail: { ruleArn: [this.rule.ruleArn] },
      },
      description: truncate(`Replays dead letters of ${description}`, 512),
    });
    this.replayRule.addTarget(withDeadLetterQueue(new targets.ApiDestination(this.apiDestination, {
      event: new ReplayRuleTargetInput(input),
      eventRole: this.eventRole,
      headerParameters: toReplayParameters(this.replayRule, nonEmpty(headerParameters), 'headerParameters'),
      queryStringParameters: toReplayParameters(this.replayRule, props.queryStringParameters, 'queryStringParameters'),
      pathParameterValues: toReplayPathParameterValues(this.replayRule, props.pathParameterValues),
      ...retry,
    }), this.deadLetterQueue));
    this.deadLetterQueue.grantConsumeMessages(hub.replayFunction);

    sharedQueue.addChannel([{ rule: this.rule, bus: props.eventBus }, { rule: this.replayRule, bus: hub.bus }], props.alarmActions);
    this.warnWhereEventBridgeMayNotWrite(sharedQueue);
    this.deadLetterQueueDepthAlarm = sharedQueue.depthAlarm;
    this.failedInvocationsAlarm = this.alarm('FailedInvocationsAlarm', this.metricFailedInvocations(),
      'Deliveries to the remote API failed permanently', props);
    this.invocationsSentToDlqAlarm = this.alarm('InvocationsSentToDlqAlarm', this.metricInvocationsSentToDlq(),
      'Events were sent to the channel dead-letter queue', props);
    this.invocationsFailedToBeSentToDlqAlarm = this.alarm('InvocationsFailedToBeSentToDlqAlarm', this.metricInvocationsFailedToBeSentToDlq(),
      'Events could not be written to the dead-letter queue and are lost; check the queue policy and key policy', props);
    this.replayFailedInvocationsAlarm = this.alarm('ReplayFailedInvocationsAlarm', this.metricReplayFailedInvocations(),
      'Replayed events failed again; they are back in the dead-letter queue unless the replay InvocationsFailedToBeSentToDlq alarm fires too', props);
    this.replayInvocationsFailedToBeSentToDlqAlarm = this.alarm('ReplayInvocationsFailedToBeSentToDlqAlarm',
      this.metricReplayInvocationsFailedToBeSentToDlq(),
      'Replayed events failed and could not be written back to the dead-letter queue; their messages were already deleted, so they are lost. '
      + 'Check the queue policy and key policy', props);

    addStackResourceBudgetCheck(this, 'ApiDestinationChannel', ApiDestinationChannel.RESOURCES_PER_CHANNEL);
  }

  /**
   * The payload to invoke `replayFunction` with, to re-deliver this channel's dead letters:
   * `{"queueUrl": "<dead-letter queue URL>"}`. Resolves at deploy time.
   */
  public get replayPayload(): string {
    return `{"queueUrl":"${this.deadLetterQueue.queueUrl}"}`;
  }

  /** A metric of this channel's rule in the AWS/Events namespace. */
  public metric(metricName: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return ruleMetric(this.rule, this.eventBus, metricName, props);
  }

  /** Events that matched the rule and were sent to the target. */
  public metricInvocations(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric('Invocations', props);
  }

  /** Invocations that failed permanently (after retries, or not retryable). */
  public metricFailedInvocations(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric('FailedInvocations', props);
  }

  /** Events sent to the dead-letter queue. */
  public metricInvocationsSentToDlq(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric('InvocationsSentToDlq', props);
  }

  /** Events that could not be sent to the dead-letter queue (lost). */
  public metricInvocationsFailedToBeSentToDlq(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric('InvocationsFailedToBeSentToDlq', props);
  }

  /** Delivery attempts that were retried. */
  public metricRetryInvocationAttempts(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric('RetryInvocationAttempts', props);
  }

  /** Time from ingestion to a successful delivery, in milliseconds (p99 by default). */
  public metricIngestionToInvocationSuccessLatency(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric('IngestionToInvocationSuccessLatency', { statistic: 'p99', ...props });
  }

  /** Replay events that matched this channel's replay rule and were sent to the API destination. */
  public metricReplayInvocations(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return ruleMetric(this.replayRule, this.replayBus, 'Invocations', props);
  }

  /** Replays that failed permanently (after retries, or not retryable); they go back to the dead-letter queue. */
  public metricReplayFailedInvocations(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return ruleMetric(this.replayRule, this.replayBus, 'FailedInvocations', props);
  }

  /** Replays that failed and could not be sent back to the dead-letter queue (lost). */
  public metricReplayInvocationsFailedToBeSentToDlq(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return ruleMetric(this.replayRule, this.replayBus, 'InvocationsFailedToBeSentToDlq', props);
  }

  /** Visible messages in the dead-letter queue (maximum over the period). */
  public metricDeadLetterQueueDepth(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.deadLetterQueue.metricApproximateNumberOfMessagesVisible({
      statistic: cloudwatch.Stats.MAXIMUM,
      period: Duration.minutes(5),
      ...props,
    });
  }

  private createDeadLetterQueue(props: ApiDestinationChannelProps): sqs.Queue {
    // The queue policy and the key grant come from ChannelDeadLetterQueue.
    return secureDeadLetterQueue(this, 'DeadLetterQueue', {
      encryptionKey: props.encryptionKey,
      holds: 'events the channel\'s EventBridge targets could not deliver',
      emptiedBy: 're-delivered by the channel\'s replay function',
      retentionPeriod: props.deadLetterRetentionPeriod,
      // Parked events outlive the stack: someone may still need to replay them.
      removalPolicy: props.deadLetterQueueRemovalPolicy ?? RemovalPolicy.RETAIN,
    });
  }

  /** Warns when EventBridge may not be allowed to write to the queue and the library cannot grant it. */
  private warnWhereEventBridgeMayNotWrite(queue: ChannelDeadLetterQueue): void {
    const name = describeQueue(this.deadLetterQueue);
    const rules = `${this.rule.node.path} and ${this.replayRule.node.path}`;
    if (!queue.policyAdded) {
      Annotations.of(this).addWarning(
        `The dead-letter queue ${name} is imported, so this library cannot change its policy. Its owner must add a statement: ` +
        'Effect Allow, Principal {"Service":"events.amazonaws.com"}, Action sqs:SendMessage, Resource the queue ARN, ' +
        `Condition ArnEquals aws:SourceArn [the ARNs of the rules ${rules}] (their ruleArn properties). ` +
        'If the queue is encrypted with a customer managed KMS key, its key policy must also allow events.amazonaws.com ' +
        'kms:GenerateDataKey and kms:Decrypt. Without them EventBridge cannot park this channel\'s failed events, and they are lost.');
    }
    if (queue.ungrantedKey) {
      Annotations.of(this).addWarning(
        `The KMS key ${queue.ungrantedKey} of the dead-letter queue ${name} is imported or AWS managed, so this library cannot change its policy. ` +
        'Its key policy must allow Principal {"Service":"events.amazonaws.com"} kms:GenerateDataKey and kms:Decrypt ' +
        '(condition aws:SourceAccount: this account). An AWS managed key such as alias/aws/sqs cannot allow it: ' +
        'use a customer managed key or SSE-SQS. Without it EventBridge cannot park this channel\'s failed events, and they are lost.');
    }
  }

  private alarm(id: string, metric: cloudwatch.IMetric, what: string, props: ApiDestinationChannelProps): cloudwatch.Alarm {
    return thresholdAlarm(this, id, metric, what, props.alarmActions);
  }

}

function validateProps(scope: Construct, props: ApiDestinationChannelProps): void {
  if ((props.authorization === undefined) === (props.connection === undefined)) {
    throw new PropValidationError(scope, 'authorization/connection',
      { authorization: props.authorization !== undefined, connection: props.connection !== undefined },
      'allowed: exactly one of `authorization` (a new connection) or `connection` (a shared one)');
  }
  validateHttpsUrl(scope, 'endpoint', props.endpoint);
  if (props.authorization?.authorizationEndpoint !== undefined) {
    validateHttpsUrl(scope, 'authorization.authorizationEndpoint', props.authorization.authorizationEndpoint);
  }
  validateEventPattern(scope, 'eventPattern', props.eventPattern, '; an empty pattern would send every event on the bus to the API');
  validateIntegerRange(scope, 'rateLimitPerSecond', props.rateLimitPerSecond, 1, 300, 'invocations per second');
  validateIntegerRange(scope, 'maxRetryAttempts', props.maxRetryAttempts, 0, 185);
  if (props.maxEventAge !== undefined && !Token.isUnresolved(props.maxEventAge.toSeconds())) {
    validateIntegerRange(scope, 'maxEventAge', props.maxEventAge.toSeconds(), 60, 86_400, 'seconds');
  }
  if (props.deadLetterRetentionPeriod !== undefined && !Token.isUnresolved(props.deadLetterRetentionPeriod.toSeconds())) {
    validateIntegerRange(scope, 'deadLetterRetentionPeriod', props.deadLetterRetentionPeriod.toSeconds(), 60, 1_209_600, 'seconds');
  }
  if (props.deadLetterQueue && props.encryptionKey) {
    throw new PropValidationError(scope, 'encryptionKey', '<IKey>',
      'allowed: only with a created dead-letter queue; a given `deadLetterQueue` keeps its own encryption');
  }
  if (props.deadLetterQueue && props.deadLetterQueueRemovalPolicy !== undefined) {
    throw new PropValidationError(scope, 'deadLetterQueueRemovalPolicy', props.deadLetterQueueRemovalPolicy,
      'allowed: only with a created dead-letter queue; a given `deadLetterQueue` keeps its own removal policy');
  }
  const queueRegion = props.deadLetterQueue?.env.region;
  const region = Stack.of(scope).region;
  if (queueRegion !== undefined && !Token.isUnresolved(queueRegion) && !Token.isUnresolved(region) && queueRegion !== region) {
    throw new PropValidationError(scope, 'deadLetterQueue', describeQueue(props.deadLetterQueue!),
      `allowed: a queue in the rule's region ${region} (EventBridge only sends to a dead-letter queue in its own region)`);
  }
  const header = props.idempotencyKeyHeader;
  if (header !== undefined && !Token.isUnresolved(header) && !/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$/.test(header)) {
    throw new PropValidationError(scope, 'idempotencyKeyHeader', header, 'allowed: an HTTP header name (letters, digits and !#$%&\'*+.^_`|~-)');
  }
}


/** A metric of `rule` in the AWS/Events namespace (the bus dimension unless it is the default bus). */
function ruleMetric(rule: events.IRule, bus: events.IEventBus, metricName: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
  const dimensionsMap: { [name: string]: string } = { RuleName: rule.ruleName };
  if (Token.isUnresolved(bus.eventBusName) || bus.eventBusName !== 'default') {
    dimensionsMap.EventBusName = bus.eventBusName;
  }
  return new cloudwatch.Metric({
    namespace: 'AWS/Events',
    metricName,
    dimensionsMap,
    statistic: cloudwatch.Stats.SUM,
    period: Duration.minutes(5),
    ...props,
  });
}

/** A queue's ARN if known at synth, else its construct path. */
function describeQueue(queue: sqs.IQueue): string {
  return Token.isUnresolved(queue.queueArn) ? queue.node.path : queue.queueArn;
}

function nonEmpty(map: { [k: string]: string }): { [k: string]: string } | undefined {
  return Object.keys(map).length > 0 ? map : undefined;
}

