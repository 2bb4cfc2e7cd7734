/**
 * Deployed check of TieredEventIngest: an event put on the fast bus reaches the curated bus
 * within seconds as a `CuratedRecord` (through the fast route's default target, the relay
 * function), and an event put on the slow bus reaches it as a `CuratedBatch` once Firehose
 * has flushed its buffer (60 seconds) and the batch publisher has read the object.
 *
 * Two capture queues, one per detail-type, observe the curated bus, so neither wait can
 * receive (and hide) the other lane's message.
 *
 * Offline, `integ/snapshot.ts` compares this app's synthesized templates with the
 * committed snapshot; with an AWS account, deploy it with integ-runner or `cdk deploy`.
 */
import { ExpectedResult, IntegTest, Match } from '@aws-cdk/integ-tests-alpha';
import { App, Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import { Construct } from 'constructs';
import { BusCapture, containsAll } from './capture';
import { CuratedEnvelope, TieredEventIngest } from '../src';

/** Test scaffolding: a queue that receives the curated events of one detail-type. Not part of the library. */
function curatedCapture(scope: Construct, id: string, curatedBus: events.IEventBus, detailType: string): BusCapture {
  return new BusCapture(scope, id, curatedBus, { source: [CuratedEnvelope.SOURCE], detailType: [detailType] });
}

/** Builds the integ app into `app`; returns the test for more assertions. */
export function buildApp(app: App): IntegTest {
  const stack = new Stack(app, 'TieredEventIngestInteg');
  const ingest = new TieredEventIngest(stack, 'Ingest', {
    fastRoutes: [{ id: 'Orders', eventPattern: { source: ['integ.journeys'] } }],
    bufferingInterval: Duration.seconds(60),
    removalPolicy: RemovalPolicy.DESTROY,
  });
  // The Firehose L2 adds its region-to-CIDR mapping to every environment-agnostic stack; an S3
  // destination never looks it up, so CloudFormation validation warns that it is unused.
  Validations.of(stack).acknowledge({
    id: 'CloudFormation-Validate::W7001',
    reason: 'Unused Firehose region-to-CIDR mapping that the Firehose L2 adds to environment-agnostic stacks; an S3 destination does not need it.',
  });
  const records = curatedCapture(stack, 'RecordCapture', ingest.curatedBus, CuratedEnvelope.RECORD_DETAIL_TYPE);
  const batches = curatedCapture(stack, 'BatchCapture', ingest.curatedBus, CuratedEnvelope.BATCH_DETAIL_TYPE);

  const integ = new IntegTest(app, 'TieredEventIngestTest', { testCases: [stack] });

  // 1. One event on each lane's bus.
  const putFast = integ.assertions.awsApiCall('EventBridge', 'putEvents', {
    Entries: [{
      EventBusName: ingest.fastBus.eventBusName,
      Source: 'integ.journeys',
      DetailType: 'MessageRequested',
      Detail: JSON.stringify({ tenantId: 'acme', channel: 'sms', correlationId: 'fast-1', text: 'hello' }),
    }],
  });
  putFast.expect(ExpectedResult.objectLike({ FailedEntryCount: 0 }));
  const putSlow = integ.assertions.awsApiCall('EventBridge', 'putEvents', {
    Entries: [{
      EventBusName: ingest.slowBus.eventBusName,
      Source: 'integ.journeys',
      DetailType: 'MessageRequested',
      // A numeric tenant id, as many platforms have: it must arrive as the string "6500".
      Detail: JSON.stringify({ tenantId: 6500, channel: 'email', correlationId: 'slow-1', text: 'hello later' }),
    }],
  });
  putSlow.expect(ExpectedResult.objectLike({ FailedEntryCount: 0 }));

  // 2. The fast event arrives on the curated bus as a record of the fast lane, within seconds.
  // One message per receive: each capture queue holds only its own detail-type, and the
  // whole response comes back through a custom resource (at most 4096 bytes).
  const fastArrived = integ.assertions.awsApiCall('SQS', 'receiveMessage', {
    QueueUrl: records.queue.queueUrl,
    WaitTimeSeconds: 20,
    MaxNumberOfMessages: 1,
  }).expect(ExpectedResult.objectLike({
    Messages: Match.arrayWith([Match.objectLike({
      Body: Match.stringLikeRegexp(containsAll('"detail-type":"CuratedRecord"', '"correlationId":"fast-1"', '"lane":"fast"')),
    })]),
  })).waitForAssertions({ totalTimeout: Duration.minutes(3), interval: Duration.seconds(10) });

  // 3. The slow event arrives as a batch of the slow lane, after the Firehose buffer and the publisher.
  const slowArrived = integ.assertions.awsApiCall('SQS', 'receiveMessage', {
    QueueUrl: batches.queue.queueUrl,
    WaitTimeSeconds: 20,
    MaxNumberOfMessages: 1,
  }).expect(ExpectedResult.objectLike({
    Messages: Match.arrayWith([Match.objectLike({
      Body: Match.stringLikeRegexp(containsAll('"detail-type":"CuratedBatch"', '"correlationId":"slow-1"', '"lane":"slow"', '"tenant":"6500"')),
    })]),
  })).waitForAssertions({ totalTimeout: Duration.minutes(10), interval: Duration.seconds(30) });

  // 4. The redrive function runs with its grants: a dry run over the quarantine lists what it would write.
  const redriveDryRun = integ.assertions.invokeFunction({
    functionName: ingest.redriveFunction.functionName,
    payload: JSON.stringify({ action: 'parked-records', prefix: 'quarantine/', dryRun: true }),
  }).expect(ExpectedResult.objectLike({ StatusCode: 200, Payload: Match.stringLikeRegexp('"dryRun":true') }));

  putFast.next(putSlow).next(fastArrived).next(slowArrived).next(redriveDryRun);

  return integ;
}

if (require.main === module) {
  const app = new App();
  buildApp(app);
  app.synth();
}
