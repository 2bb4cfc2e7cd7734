import { Duration, RemovalPolicy, Stack, Token, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct, IConstruct } from 'constructs';

/**
 * Retention of the handlers' logs: three months, as long as quarantined records are kept by
 * default, so the logs that explain a parked event outlive it.
 */
export const FUNCTION_LOG_RETENTION = logs.RetentionDays.THREE_MONTHS;

/** SSE-SQS, or SSE-KMS with the customer key when one is given. */
export function queueEncryption(key: kms.IKey | undefined): Pick<sqs.QueueProps, 'encryption' | 'encryptionMasterKey'> {
  return key
    ? { encryption: sqs.QueueEncryption.KMS, encryptionMasterKey: key }
    : { encryption: sqs.QueueEncryption.SQS_MANAGED };
}

/** Options of `secureDeadLetterQueue`. */
export interface DeadLetterQueueOptions {
  /** Customer key, or SSE-SQS without one. */
  readonly encryptionKey?: kms.IKey;
  /** What the queue holds, for the acknowledgement reasons. */
  readonly holds: string;
  /** How its messages leave it, for the acknowledgement reasons ("redriven by an operator", ...). */
  readonly emptiedBy: string;
  /** @default 14 days */
  readonly retentionPeriod?: Duration;
  /** @default SQS's 30 seconds */
  readonly visibilityTimeout?: Duration;
  /** @default RemovalPolicy.DESTROY (the default of `sqs.Queue`) */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * A construct's dead-letter queue: encrypted, TLS only, 14 days of retention, and the two
 * findings every dead-letter queue raises (no DLQ of its own, no redrive policy) acknowledged.
 */
export function secureDeadLetterQueue(scope: Construct, id: string, options: DeadLetterQueueOptions): sqs.Queue {
  const queue = new sqs.Queue(scope, id, {
    ...queueEncryption(options.encryptionKey),
    enforceSSL: true,
    retentionPeriod: options.retentionPeriod ?? Duration.days(14),
    visibilityTimeout: options.visibilityTimeout,
    removalPolicy: options.removalPolicy,
  });
  Validations.of(queue).acknowledge({
    id: 'AwsSolutions-SQS3',
    reason: `This queue is itself a dead-letter queue (${options.holds}); its messages are ${options.emptiedBy}.`,
  });
  Validations.of(queue).acknowledge({
    id: 'Serverless-SQSRedrivePolicy',
    reason: `This queue is itself a dead-letter queue (${options.holds}); a redrive policy would only move its messages further away.`,
  });
  return queue;
}

/** Visible messages of a queue (maximum over 5 minutes), the metric of every DLQ alarm. */
export function queueDepth(queue: sqs.IQueue): cloudwatch.Metric {
  return queue.metricApproximateNumberOfMessagesVisible({ statistic: cloudwatch.Stats.MAXIMUM, period: Duration.minutes(5) });
}

/** A handler's own log group, deleted with the stack. */
export function functionLogGroup(scope: Construct, id: string): logs.LogGroup {
  return new logs.LogGroup(scope, id, { retention: FUNCTION_LOG_RETENTION, removalPolicy: RemovalPolicy.DESTROY });
}

/** An explicit role, so logging is granted on the function's own log group only (no managed policy). */
export function functionRole(scope: Construct, id: string, description: string, logGroup: logs.LogGroup): iam.Role {
  const role = new iam.Role(scope, id, { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'), description });
  logGroup.grantWrite(role);
  return role;
}

/** Acknowledges the one `Resource::*` finding active tracing causes on a function role. */
export function acknowledgeXRay(role: iam.IRole, extra = ''): void {
  Validations.of(role).acknowledge({
    id: 'AwsSolutions-IAM5[Resource::*]',
    reason: `Only the X-Ray actions (xray:PutTraceSegments, xray:PutTelemetryRecords)${extra} use Resource "*", the only resource they support; `
      + 'every other grant is scoped.',
  });
}

/**
 * Lets EventBridge use a customer key to write to the queues it encrypts (DLQs, target
 * queues), for this account's rules only: aws-cdk-lib adds the queue policy, not the key
 * policy. An imported key's policy cannot be changed here; it needs the same statement.
 * Returns false when the statement could not be added (an imported or AWS managed key).
 */
export function allowEventBridgeToUseKey(scope: IConstruct, key: kms.IKey | undefined): boolean {
  if (!key) return false;
  return key.addToResourcePolicy(new iam.PolicyStatement({
    sid: 'AllowEventBridgeToEncryptQueueMessages',
    principals: [new iam.ServicePrincipal('events.amazonaws.com')],
    actions: ['kms:GenerateDataKey', 'kms:Decrypt'],
    resources: ['*'],
    conditions: { StringEquals: { 'aws:SourceAccount': Stack.of(scope).account } },
  })).statementAdded;
}

/** Options of `thresholdAlarm`. */
export interface ThresholdAlarmOptions {
  /** @default 1 */
  readonly threshold?: number;
  /** @default GREATER_THAN_OR_EQUAL_TO_THRESHOLD */
  readonly comparisonOperator?: cloudwatch.ComparisonOperator;
}

/**
 * The constructs' alarm: one period over the threshold, missing data not breaching (these
 * metrics are absent when there is no traffic, which is not a failure), a description that
 * names the construct, and the user's alarm actions.
 */
export function thresholdAlarm(scope: Construct, id: string, metric: cloudwatch.IMetric, what: string,
  alarmActions: cloudwatch.IAlarmAction[] | undefined, options: ThresholdAlarmOptions = {}): cloudwatch.Alarm {
  const alarm = new cloudwatch.Alarm(scope, id, {
    metric,
    threshold: options.threshold ?? 1,
    evaluationPeriods: 1,
    comparisonOperator: options.comparisonOperator ?? cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    alarmDescription: `${what} (${scope.node.path})`,
  });
  for (const action of alarmActions ?? []) alarm.addAlarmAction(action);
  return alarm;
}

/** Acknowledges the IAM5 findings of a CDK KMS grant (its action groups) on a role, for one key. */
export function acknowledgeKeyWildcards(role: iam.IRole, key: kms.IKey | undefined, why: string): void {
  if (!key) return;
  for (const action of ['kms:GenerateDataKey*', 'kms:ReEncrypt*']) {
    Validations.of(role).acknowledge({
      id: `AwsSolutions-IAM5[Action::${action}]`,
      reason: `${why}; ${action} is the action group of the CDK KMS grant, limited to that one key.`,
    });
  }
}

/** Cuts a description to a service's length limit; a token is left alone. */
export function truncate(text: string, max: number): string {
  return Token.isUnresolved(text) || text.length <= max ? text : text.slice(0, max);
}

/** Namespace of the custom metrics the handlers publish with Powertools Metrics (EMF). */
export const METRICS_NAMESPACE = 'cdk-event-fabric';

/** A handler's custom metric (Sum over 5 minutes unless `props` say otherwise). */
export function handlerMetric(metricName: string, dimensionsMap: { [name: string]: string }, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
  return new cloudwatch.Metric({
    namespace: METRICS_NAMESPACE,
    metricName,
    dimensionsMap,
    statistic: cloudwatch.Stats.SUM,
    period: Duration.minutes(5),
    ...props,
  });
}

/**
 * `lambda:InvokeFunction` on the function's own ARN only. `grantInvoke` adds `<ARN>:*` (every
 * version and alias), which cdk-nag reports on the grantee's role as an unacknowledged
 * AwsSolutions-IAM5; this library's functions are invoked unqualified.
 */
export function grantInvokeExactly(fn: lambda.IFunction, grantee: iam.IGrantable): iam.Grant {
  return iam.Grant.addToPrincipal({ grantee, actions: ['lambda:InvokeFunction'], resourceArns: [fn.functionArn] });
}

/** A resolved CloudFormation value as cdk-nag renders it in finding ids (`<LogicalId>`, `<AWS::Region>`). */
export function flattenForNag(value: unknown): string {
  if (typeof value === 'string') return value.replace(/\$\{/g, '<').replace(/}/g, '>');
  const node = value as Record<string, any>;
  if (node['Fn::Join']) {
    const [delimiter, items] = node['Fn::Join'];
    return (items as unknown[]).map(flattenForNag).join(delimiter);
  }
  if (node['Fn::GetAtt']) return `<${node['Fn::GetAtt'].map(flattenForNag).join('.')}>`;
  if (node.Ref) return `<${flattenForNag(node.Ref)}>`;
  return JSON.stringify(value);
}
