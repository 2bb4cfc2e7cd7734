/**
 * Deployed check of EventAggregator, in the seed's order scenario: an order is invoiced once
 * its account check has passed and its stock check has happened ("if BOTH processes are
 * successful").
 *
 * The checks are put on a source bus as events whose detail-type is the check's name and
 * whose detail carries the order id (and the account check's status). The aggregator records
 * them (through `addSource`) and emits one `Aggregation Completed` per order once the account
 * check is APPROVED and the stock check is there; `onComplete` sends it to an "invoice"
 * queue. Order 7 gets both checks and must be invoiced exactly once; order 8 gets only its
 * account check and must produce no aggregated event at all. Order 9's account check is
 * REJECTED: nothing may be emitted for it, until a corrected (newer) APPROVED check
 * completes it. Capture queues of every aggregated event of orders 8 and 9 observe this.
 *
 * Offline, `integ/snapshot.ts` compares this app's synthesized templates with the
 * committed snapshot; with an AWS account, deploy it with integ-runner or `cdk deploy`.
 */
import { ExpectedResult, IntegTest, Match } from '@aws-cdk/integ-tests-alpha';
import { App, Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { acknowledgeCapture, CAPTURE_QUEUE_PROPS, containsAll } from './capture';
import { EventAggregator } from '../src';

const ORDER_SOURCE = 'integ.orders';

/** Test scaffolding: a queue the assertions read. Not part of the library. */
class CaptureQueue extends sqs.Queue {
  constructor(scope: Construct, id: string) {
    super(scope, id, CAPTURE_QUEUE_PROPS);
    acknowledgeCapture(this);
  }
}


/** One order check on the source bus, as the seed's applications would put it. */
function check(bus: events.IEventBus, name: string, orderId: number, status?: string) {
  return { EventBusName: bus.eventBusName, Source: ORDER_SOURCE, DetailType: name, Detail: JSON.stringify({ orderId, status }) };
}

/** Test scaffolding: a capture of every aggregated event of one order. */
function orderCapture(stack: Stack, aggregator: EventAggregator, orderId: string): sqs.Queue {
  const queue = new CaptureQueue(stack, `Order${orderId}Queue`);
  const rule = new events.Rule(stack, `Order${orderId}Rule`, {
    eventBus: aggregator.outputBus,
    eventPattern: { source: [aggregator.aggregateSource], detail: { correlationId: [orderId] } },
    targets: [new targets.SqsQueue(queue)],
  });
  Validations.of(rule).acknowledge({
    id: 'Serverless-EventBusDLQ',
    reason: 'Test capture rule: a lost delivery could only hide a failure the other assertions also catch.',
  });
  return queue;
}

/** Builds the integ app into `app`; returns the test for more assertions. */
export function buildApp(app: App): IntegTest {
  const stack = new Stack(app, 'EventAggregatorInteg');
  const orders = new events.EventBus(stack, 'OrdersBus', { description: 'integ: order checks (account, stock)' });
  const aggregator = new EventAggregator(stack, 'Aggregator', {
    requirements: [
      { anyOf: ['Account Check'], condition: { status: ['APPROVED'] } },
      { anyOf: ['In Stock'] },
    ],
    // A corrected check replaces the failed one.
    newestReplaces: true,
    removalPolicy: RemovalPolicy.DESTROY,
  });
  aggregator.addSource('Orders', {
    eventBus: orders,
    eventPattern: { source: [ORDER_SOURCE] },
    correlationIdPath: '$.detail.orderId',
    eventNamePath: '$.detail-type',
  });
  const invoices = new CaptureQueue(stack, 'InvoiceQueue');
  aggregator.onComplete('Invoice', new targets.SqsQueue(invoices));

  // Every aggregated event of orders 8 and 9 (whatever its detail-type).
  const order8 = orderCapture(stack, aggregator, '8');
  const order9 = orderCapture(stack, aggregator, '9');

  const integ = new IntegTest(app, 'EventAggregatorTest', { testCases: [stack] });
  const assertions = integ.assertions;
  const put = (...entries: ReturnType<typeof check>[]) => assertions.awsApiCall('EventBridge', 'putEvents', { Entries: entries })
    .expect(ExpectedResult.objectLike({ FailedEntryCount: 0 }));
  // One message per receive (the response comes back through a custom resource, at most
  // 4096 bytes), kept invisible long enough for the counts that follow.
  const receive = (queue: sqs.IQueue) => assertions.awsApiCall('SQS', 'receiveMessage', {
    QueueUrl: queue.queueUrl, WaitTimeSeconds: 20, MaxNumberOfMessages: 1, VisibilityTimeout: 600,
  });
  const receives = (queue: sqs.IQueue, ...fragments: string[]) => receive(queue).expect(ExpectedResult.objectLike({
    Messages: Match.arrayWith([Match.objectLike({ Body: Match.stringLikeRegexp(containsAll(...fragments)) })]),
  })).waitForAssertions({ totalTimeout: Duration.minutes(5), interval: Duration.seconds(10) });
  const counts = (queue: sqs.IQueue, attributes: Record<string, string>) => assertions.awsApiCall('SQS', 'getQueueAttributes', {
    QueueUrl: queue.queueUrl, AttributeNames: Object.keys(attributes),
  }).expect(ExpectedResult.objectLike({ Attributes: attributes }));
  // Nothing about an order: wait up to 20 s for a message (one received stays in flight,
  // which the count includes), then count its capture queue.
  const silent = (queue: sqs.IQueue) => [receive(queue), counts(queue, { ApproximateNumberOfMessages: '0', ApproximateNumberOfMessagesNotVisible: '0' })];

  const steps = [
    // 1. Order 8 gets only its account check; order 7 gets both checks.
    put(check(orders, 'Account Check', 8, 'APPROVED')),
    put(check(orders, 'Account Check', 7, 'APPROVED'), check(orders, 'In Stock', 7)),
    // 2. Order 7 is invoiced, exactly once: no other completion waits in the invoice queue.
    receives(invoices, '"detail-type":"Aggregation Completed"', '"correlationId":"7"', '"Account Check":true', '"In Stock":true'),
    counts(invoices, { ApproximateNumberOfMessages: '0' }),
    // 3. Order 8 produced nothing.
    ...silent(order8),
    // 4. Order 9: a failed account check and the stock check must not trigger the invoice...
    put(check(orders, 'Account Check', 9, 'REJECTED'), check(orders, 'In Stock', 9)),
    ...silent(order9),
    // 5. ...and the corrected check (a newer event) completes it: one Completed, with the APPROVED check.
    put(check(orders, 'Account Check', 9, 'APPROVED')),
    receives(order9, '"detail-type":"Aggregation Completed"', '"correlationId":"9"', '"status":"APPROVED"'),
    counts(order9, { ApproximateNumberOfMessages: '0' }),
  ];
  steps.reduce((previous, step) => previous.next(step));

  return integ;
}

if (require.main === module) {
  const app = new App();
  buildApp(app);
  app.synth();
}
