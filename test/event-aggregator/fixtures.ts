import { Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as cloudwatchActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { EventAggregator, EventAggregatorProps } from '../../src';

/** The seed's two checks of an order. */
export const REQUIRED_EVENTS = ['Account Check', 'In Stock'];

/** The default configuration: only the required events. */
export function defaultAggregator(stack: Stack, overrides: Partial<EventAggregatorProps> = {}, id = 'Aggregator'): EventAggregator {
  return new EventAggregator(stack, id, { requiredEvents: REQUIRED_EVENTS, ...overrides });
}

/**
 * Every option set: a customer key, an existing output bus, a deadline, requirements with a
 * condition that fails the set, an any-of group and newestReplaces, a source with an
 * event-name path and one with a constant name, onComplete, onIncomplete and onFailed targets,
 * emitOnEveryChange, tuning and alarm actions to an SNS topic.
 */
export function fullestAggregator(stack: Stack): EventAggregator {
  const key = new kms.Key(stack, 'AggregatorKey', { enableKeyRotation: true });
  const topic = new sns.Topic(stack, 'Alarms', { enforceSSL: true, masterKey: key });
  const orders = new events.EventBus(stack, 'OrdersBus');
  const warehouse = new events.EventBus(stack, 'WarehouseBus');
  const output = new events.EventBus(stack, 'OutputBus');
  const aggregator = new EventAggregator(stack, 'FullAggregator', {
    requirements: [
      { anyOf: ['Account Check'], condition: { status: ['APPROVED'] }, failOnMismatch: true },
      { anyOf: ['In Stock'] },
      { anyOf: ['Payment Captured', 'Invoice Waived'], label: 'Payment' },
    ],
    newestReplaces: true,
    outputBus: output,
    aggregateSource: 'shop.order-aggregator',
    emitOnEveryChange: true,
    deadline: Duration.minutes(15),
    itemTtl: Duration.days(2),
    encryptionKey: key,
    removalPolicy: RemovalPolicy.DESTROY,
    maxPayloadBytes: 100_000,
    sources: [{
      id: 'Orders',
      eventBus: orders,
      eventPattern: { source: ['shop.orders'], detailType: ['Account Check', 'Payment Captured'] },
      correlationIdPath: '$.detail.orderId',
      eventNamePath: '$.detail-type',
      description: 'Order checks, recorded',
    }],
    alarmActions: [new cloudwatchActions.SnsAction(topic)],
  });
  aggregator.addSource('Warehouse', {
    eventBus: warehouse,
    eventPattern: { source: ['shop.warehouse'], detailType: ['StockReserved'] },
    correlationIdPath: '$.detail.order.id',
    eventName: 'In Stock',
  });
  aggregator.onComplete('Invoice', new targets.SqsQueue(userQueue(stack, 'InvoiceQueue', key)));
  aggregator.onIncomplete('Escalation', new targets.SqsQueue(userQueue(stack, 'EscalationQueue', key)));
  aggregator.onFailed('Rejection', new targets.SqsQueue(userQueue(stack, 'RejectionQueue', key)));
  return aggregator;
}

/** A queue the user owns, as an onComplete/onIncomplete target. */
export function userQueue(stack: Stack, id: string, key?: kms.IKey): sqs.Queue {
  const queue = new sqs.Queue(stack, id, {
    enforceSSL: true,
    ...(key ? { encryption: sqs.QueueEncryption.KMS, encryptionMasterKey: key } : { encryption: sqs.QueueEncryption.SQS_MANAGED }),
  });
  Validations.of(queue).acknowledge({ id: 'AwsSolutions-SQS3', reason: 'Test fixture: a target queue owned by the user.' });
  Validations.of(queue).acknowledge({ id: 'Serverless-SQSRedrivePolicy', reason: 'Test fixture: a target queue owned by the user.' });
  return queue;
}
