import { Duration, Token } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { ApiDestinationChannelProps } from './api-destination-channel-props';
import { REPLAY_DETAIL_TYPE, REPLAY_SOURCE } from './replay-contract';
import { ChannelReplayHub } from './replay-hub';
import { ReplayRuleTargetInput, toReplayParameters, toReplayPath } from './replay-input';
import { allowEventBridgeToUseKey, secureDeadLetterQueue, thresholdAlarm, truncate } from '../common/construct-defaults';
import { addStackResourceBudgetCheck } from '../common/stack-resource-budget';
import { PropValidationError, validateEventPattern, validateHttpsUrl, validateIntegerRange } from '../common/validation';

const DEFAULT_IDEMPOTENCY_HEADER = 'Idempotency-Key';

/**
 * One remote HTTP API fed from an event bus, configured rather than coded.
 *
 * Creates a rule with an input transformation, an API destination (and a connection
 * unless a shared one is given), a target with a retry policy and an encrypted
 * dead-letter queue, alarms on the queue depth, failed invocations, invocations sent to
 * the queue and invocations that could not be sent to it, and a rule on the stack's
 * private replay bus so the queue's events can be re-delivered to this channel only.
 *
 * Delivery is at least once: the idempotency-key header (the event id, on by default)
 * lets the remote API discard duplicates, including replays.
 */
export class ApiDestinationChannel extends Construct {
  /**
   * CloudFormation resources one channel adds to its stack, not counting a shared
   * connection or the stack's replay bus and function. Asserted by the unit tests.
   */
  public static readonly RESOURCES_PER_CHANNEL = 11;

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
  /** Alarm: the dead-letter queue holds at least one visible message. */
  public readonly deadLetterQueueDepthAlarm: cloudwatch.Alarm;
  /** Alarm: at least one invocation failed permanently. */
  public readonly failedInvocationsAlarm: cloudwatch.Alarm;
  /** Alarm: at least one event was sent to the dead-letter queue. */
  public readonly invocationsSentToDlqAlarm: cloudwatch.Alarm;
  /** Alarm: at least one event could not be sent to the dead-letter queue (it is lost). */
  public readonly invocationsFailedToBeSentToDlqAlarm: cloudwatch.Alarm;

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
    this.rule.addTarget(new targets.ApiDestination(this.apiDestination, {
      event: input,
      eventRole: this.eventRole,
      deadLetterQueue: this.deadLetterQueue,
      headerParameters: nonEmpty(headerParameters),
      queryStringParameters: props.queryStringParameters,
      pathParameterValues: props.pathParameterValues,
      ...retry,
    }));

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
    this.replayRule.addTarget(new targets.ApiDestination(this.apiDestination, {
      event: new ReplayRuleTargetInput(input),
      eventRole: this.eventRole,
      deadLetterQueue: this.deadLetterQueue,
      headerParameters: toReplayParameters(nonEmpty(headerParameters)),
      queryStringParameters: toReplayParameters(props.queryStringParameters),
      pathParameterValues: props.pathParameterValues?.map(toReplayPath),
      ...retry,
    }));
    this.deadLetterQueue.grantConsumeMessages(hub.replayFunction);

    this.deadLetterQueueDepthAlarm = this.alarm('DeadLetterQueueDepthAlarm', this.metricDeadLetterQueueDepth(),
      'Events are parked in the channel dead-letter queue; fix the cause, then replay them', props);
    this.failedInvocationsAlarm = this.alarm('FailedInvocationsAlarm', this.metricFailedInvocations(),
      'Deliveries to the remote API failed permanently', props);
    this.invocationsSentToDlqAlarm = this.alarm('InvocationsSentToDlqAlarm', this.metricInvocationsSentToDlq(),
      'Events were sent to the channel dead-letter queue', props);
    this.invocationsFailedToBeSentToDlqAlarm = this.alarm('InvocationsFailedToBeSentToDlqAlarm', this.metricInvocationsFailedToBeSentToDlq(),
      'Events could not be written to the dead-letter queue and are lost; check the queue policy and key policy', props);

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
    const dimensionsMap: { [name: string]: string } = { RuleName: this.rule.ruleName };
    if (Token.isUnresolved(this.eventBus.eventBusName) || this.eventBus.eventBusName !== 'default') {
      dimensionsMap.EventBusName = this.eventBus.eventBusName;
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

  /** Visible messages in the dead-letter queue (maximum over the period). */
  public metricDeadLetterQueueDepth(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.deadLetterQueue.metricApproximateNumberOfMessagesVisible({
      statistic: cloudwatch.Stats.MAXIMUM,
      period: Duration.minutes(5),
      ...props,
    });
  }

  private createDeadLetterQueue(props: ApiDestinationChannelProps): sqs.Queue {
    // aws-events-targets adds the queue policy for the rule, but not the key policy.
    allowEventBridgeToUseKey(this, props.encryptionKey);
    return secureDeadLetterQueue(this, 'DeadLetterQueue', {
      encryptionKey: props.encryptionKey,
      holds: 'events the channel\'s EventBridge targets could not deliver',
      emptiedBy: 're-delivered by the channel\'s replay function',
      retentionPeriod: props.deadLetterRetentionPeriod,
    });
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
  const header = props.idempotencyKeyHeader;
  if (header !== undefined && !Token.isUnresolved(header) && !/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$/.test(header)) {
    throw new PropValidationError(scope, 'idempotencyKeyHeader', header, 'allowed: an HTTP header name (letters, digits and !#$%&\'*+.^_`|~-)');
  }
}


function nonEmpty(map: { [k: string]: string }): { [k: string]: string } | undefined {
  return Object.keys(map).length > 0 ? map : undefined;
}

