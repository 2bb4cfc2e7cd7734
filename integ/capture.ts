/**
 * Test scaffolding shared by the integ apps: the queues their assertions read, and a matcher.
 * Not part of the library.
 */
import { Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct, IConstruct } from 'constructs';

/** A capture queue: encrypted, TLS only, messages kept an hour, deleted with the stack. */
export const CAPTURE_QUEUE_PROPS: sqs.QueueProps = {
  enforceSSL: true,
  encryption: sqs.QueueEncryption.SQS_MANAGED,
  retentionPeriod: Duration.hours(1),
  removalPolicy: RemovalPolicy.DESTROY,
};

/** Findings on the capture scaffolding only (the constructs under test need none). */
const CAPTURE_ACKNOWLEDGEMENTS: Record<string, string> = {
  'AwsSolutions-SQS3': 'Test capture queue: only the assertions read it; unread messages expire after an hour or go with the stack.',
  'Serverless-SQSRedrivePolicy': 'Test capture queue: no consumer other than the assertions, so nothing is redriven.',
  'Serverless-EventBusDLQ': 'Test capture rule: a lost delivery makes the assertion fail, which is the signal wanted.',
};

/** Acknowledges the capture scaffolding's findings on `scope` (a capture queue, or a construct holding one and its rule). */
export function acknowledgeCapture(scope: IConstruct): void {
  for (const [ruleId, reason] of Object.entries(CAPTURE_ACKNOWLEDGEMENTS)) {
    Validations.of(scope).acknowledge({ id: ruleId, reason });
  }
}

/** A regular expression that matches a string containing every one of `parts`, in any order. */
export function containsAll(...parts: string[]): string {
  const escaped = parts.map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return escaped.map((p) => `(?=[\\s\\S]*${p})`).join('');
}

/** A capture queue fed by a rule on a bus: the events of `eventPattern` land in `queue`. */
export class BusCapture extends Construct {
  public readonly queue: sqs.Queue;

  constructor(scope: Construct, id: string, eventBus: events.IEventBus, eventPattern: events.EventPattern) {
    super(scope, id);
    this.queue = new sqs.Queue(this, 'Queue', CAPTURE_QUEUE_PROPS);
    new events.Rule(this, 'Rule', { eventBus, eventPattern, targets: [new targets.SqsQueue(this.queue)] });
    acknowledgeCapture(this);
  }
}
