import { Duration, Names } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as sqs from 'aws-cdk-lib/aws-sqs';

/** The lane's delivery defaults, applied to a target that did not set its own. */
export interface LaneTargetOptions {
  /** The rule the target is added to (its ARN scopes the dead-letter queue's policy). */
  readonly rule: events.Rule;
  /** Input for a target that sets none. */
  readonly input: events.RuleTargetInput;
  /** Dead-letter queue for a target that sets none. */
  readonly deadLetterQueue: sqs.IQueue;
  /** Retry attempts for a target without a retry policy. */
  readonly retryAttempts: number;
  /** Maximum event age for a target without a retry policy. */
  readonly maxEventAge: Duration;
}

/**
 * Wraps any rule target so it gets a lane's input, retry policy and dead-letter queue
 * unless it set its own. Targets of aws-events-targets only add a retry policy or a DLQ
 * when asked to, so without this a bare `new targets.LambdaFunction(fn)` would drop
 * events after EventBridge's default 24 hours of retries with nowhere to keep them.
 */
export class LaneTarget implements events.IRuleTarget {
  constructor(private readonly inner: events.IRuleTarget, private readonly options: LaneTargetOptions) {}

  public bind(rule: Parameters<events.IRuleTarget['bind']>[0], id?: string): events.RuleTargetConfig {
    const config = this.inner.bind(rule, id);
    const deadLetterConfig = config.deadLetterConfig ?? { arn: this.options.deadLetterQueue.queueArn };
    if (config.deadLetterConfig === undefined) {
      allowRuleToSendToQueue(this.options.rule, this.options.deadLetterQueue);
    }
    return {
      ...config,
      input: config.input ?? this.options.input,
      deadLetterConfig,
      retryPolicy: config.retryPolicy ?? {
        maximumRetryAttempts: this.options.retryAttempts,
        maximumEventAgeInSeconds: this.options.maxEventAge.toSeconds(),
      },
    };
  }
}

/**
 * Lets one rule (and only it) send failed events to a dead-letter queue. The same
 * statement aws-events-targets adds for its `deadLetterQueue` option, whose helper is internal.
 */
export function allowRuleToSendToQueue(rule: events.Rule, queue: sqs.IQueue): void {
  queue.addToResourcePolicy(new iam.PolicyStatement({
    sid: `AllowEventRule${Names.nodeUniqueId(rule.node)}`,
    principals: [new iam.ServicePrincipal('events.amazonaws.com')],
    actions: ['sqs:SendMessage'],
    resources: [queue.queueArn],
    conditions: { ArnEquals: { 'aws:SourceArn': rule.ruleArn } },
  }));
}
