import { CreateEventBusCommand, PutRuleCommand, PutTargetsCommand } from '@aws-sdk/client-eventbridge';
import { CreateBucketCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { lambdaOnFailureRecord } from './lambda-destination-fixtures';
import { recordLine } from './publisher-fixtures';
import { runRedriveCommand } from '../../src/tiered-event-ingest/redrive-command-core';
import { ec2StateChangeEvent, eventBridgeDeadLetterAttributes } from '../support/aws-fixtures';
import { createMotoQueue, drainMotoQueue, motoClients, uniqueName } from '../support/moto';

/**
 * The redrive function's commands as an operator sends them, against moto, with the
 * environment the construct sets: each dead end's contents go back where the ingest
 * publishes them, and a command that is not one is refused with what is allowed.
 */
const { sqs, eventBridge, s3 } = motoClients();
afterAll(() => [sqs, eventBridge, s3].forEach((c) => c.destroy()));

const ACCOUNT = '123456789012';
const RELAY_ARN = `arn:aws:lambda:us-east-1:${ACCOUNT}:function:Ingest-RelayFunction`;

async function world() {
  const bucket = uniqueName('ingest');
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  const queues = {
    objects: await createMotoQueue(sqs, 'objects'),
    objectDlq: await createMotoQueue(sqs, 'object-dlq'),
    slowDlq: await createMotoQueue(sqs, 'slow-dlq'),
    fastDlq: await createMotoQueue(sqs, 'fast-dlq'),
    capture: await createMotoQueue(sqs, 'capture'),
  };
  const bus = uniqueName('curated');
  await eventBridge.send(new CreateEventBusCommand({ Name: bus }));
  const rule = uniqueName('all');
  await eventBridge.send(new PutRuleCommand({ Name: rule, EventBusName: bus, EventPattern: JSON.stringify({ source: ['cdk-event-fabric'] }) }));
  await eventBridge.send(new PutTargetsCommand({ Rule: rule, EventBusName: bus, Targets: [{ Id: 'capture', Arn: queues.capture.arn }] }));
  const env = {
    BUCKET_NAME: bucket,
    OBJECT_QUEUE_URL: queues.objects.url,
    OBJECT_DLQ_URL: queues.objectDlq.url,
    SLOW_LANE_DLQ_URL: queues.slowDlq.url,
    FAST_LANE_DLQ_URL: queues.fastDlq.url,
    CURATED_BUS_NAME: bus,
    RELAY_FUNCTION_ARN: RELAY_ARN,
    TENANT_ID_PATH: '$.detail.tenantId',
    CHANNEL_PATH: '$.detail.channel',
    CORRELATION_ID_PATH: '$.detail.correlationId',
  };
  const run = (command: unknown, overrides: Record<string, string> = {}) =>
    runRedriveCommand({ s3, sqs, eventBridge, remainingMs: () => 15 * 60_000, env: { ...env, ...overrides } }, command);
  return { bucket, bus, queues, run };
}

test('a command that is not one is refused with the actions allowed', async () => {
  const w = await world();
  const allowed = 'allowed "action": "parked-records", "object-dlq", "slow-lane-dlq", "fast-lane-dlq"';
  await expect(w.run({ action: 'replay' })).rejects.toThrow(`unknown redrive command "replay"; ${allowed}`);
  await expect(w.run('object-dlq')).rejects.toThrow(`unknown redrive command "object-dlq"; ${allowed}`);
  await expect(w.run({ action: 'parked-records' })).rejects.toThrow('a parked-records command needs "prefix"');
  await expect(w.run({ action: 'object-dlq' }, { OBJECT_DLQ_URL: '' })).rejects.toThrow('environment variable OBJECT_DLQ_URL is not set');
});

test('parked-records: a quarantined record is written back under data/redrive/', async () => {
  const w = await world();
  const segment = JSON.stringify({ line: 2, reason: 'record of 9000 bytes makes a batch entry…', bytes: 120, record: recordLine(2) }) + '\n';
  await s3.send(new PutObjectCommand({ Bucket: w.bucket, Key: 'quarantine/data/tenant=acme/a.gz/v1/lines-1-2.ndjson', Body: segment }));
  const report = await w.run({ action: 'parked-records', prefix: 'quarantine/' });
  expect(report).toMatchObject({ objectsWritten: 1, recordsRedriven: 1, complete: true });
  const keys = (await s3.send(new ListObjectsV2Command({ Bucket: w.bucket, Prefix: 'data/redrive/' }))).Contents!.map((o) => o.Key);
  expect(keys).toEqual(['data/redrive/quarantine/data/tenant=acme/a.gz/v1/lines-1-2.ndjson']);
  const body = await (await s3.send(new GetObjectCommand({ Bucket: w.bucket, Key: keys[0] }))).Body!.transformToString();
  expect(body.trim()).toBe(recordLine(2));
});

test('object-dlq: a parked notification goes back to the object queue unchanged', async () => {
  const w = await world();
  const body = JSON.stringify({ 'source': 'aws.s3', 'detail-type': 'Object Created', 'detail': { bucket: { name: w.bucket }, object: { key: 'data/x.gz' } } });
  await sqs.send(new SendMessageCommand({ QueueUrl: w.queues.objectDlq.url, MessageBody: body }));
  const report = await w.run({ action: 'object-dlq' });
  expect(report).toMatchObject({ received: 1, moved: 1, failed: 0 });
  expect(await drainMotoQueue(sqs, w.queues.objects.url)).toEqual([body]);
  expect(await drainMotoQueue(sqs, w.queues.objectDlq.url)).toEqual([]);
});

test('slow-lane-dlq: an event EventBridge could not put to Firehose is written as an envelope for the publisher', async () => {
  const w = await world();
  const id = '5a1b0a4c-0000-4000-8000-000000000001';
  const event = { ...ec2StateChangeEvent({ id }), detail: { tenantId: 6500, state: 'running' } };
  await sqs.send(new SendMessageCommand({
    QueueUrl: w.queues.slowDlq.url,
    MessageBody: JSON.stringify(event),
    MessageAttributes: eventBridgeDeadLetterAttributes(`arn:aws:events:us-east-1:${ACCOUNT}:rule/slow/Ingest-SlowLaneRule`,
      `arn:aws:firehose:us-east-1:${ACCOUNT}:deliverystream/Ingest-DeliveryStream`),
  }));
  const report = await w.run({ action: 'slow-lane-dlq' });
  expect(report).toMatchObject({ received: 1, redriven: 1, kept: 0 });
  const [key] = (await s3.send(new ListObjectsV2Command({ Bucket: w.bucket, Prefix: 'data/redrive/slow-lane-dlq/' }))).Contents!.map((o) => o.Key!);
  const line = JSON.parse((await (await s3.send(new GetObjectCommand({ Bucket: w.bucket, Key: key }))).Body!.transformToString()).trim());
  expect(line).toMatchObject({ id, tenant: '6500', lane: 'slow', payload: event.detail });
  expect(await drainMotoQueue(sqs, w.queues.slowDlq.url)).toEqual([]);
});

test('fast-lane-dlq: a relay invocation that failed reaches the curated bus with its id', async () => {
  const w = await world();
  const envelope = JSON.parse(recordLine(7));
  await sqs.send(new SendMessageCommand({
    QueueUrl: w.queues.fastDlq.url,
    MessageBody: JSON.stringify(lambdaOnFailureRecord({ functionArn: `${RELAY_ARN}:$LATEST`, requestPayload: { ...envelope, lane: 'fast' } })),
  }));
  const report = await w.run({ action: 'fast-lane-dlq', maxMessages: 10 });
  expect(report).toMatchObject({ received: 1, redriven: 1, fromOnFailureRecords: 1 });
  const delivered = (await drainMotoQueue(sqs, w.queues.capture.url)).map((b) => JSON.parse(b));
  expect(delivered).toMatchObject([{ 'detail-type': 'CuratedRecord', 'detail': { id: envelope.id, lane: 'fast' } }]);
});
