import { Readable } from 'stream';
import { DynamoDBClient, GetItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { ChangeMessageVisibilityCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { Context, SQSEvent } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import { recordLine } from './publisher-fixtures';
import { publisherConfigFromEnv, objectRefFromNotification } from '../../src/tiered-event-ingest/publisher-config-core';
import { relayRecord } from '../../src/tiered-event-ingest/relay-core';

const ENV = {
  BUCKET_NAME: 'ingest-bucket',
  DATA_PREFIX: 'data/',
  QUARANTINE_PREFIX: 'quarantine/',
  CURATED_BUS_NAME: 'curated',
  LEDGER_TABLE_NAME: 'ledger',
  MAX_ENTRY_BYTES: '1048576',
  MAX_RECORDS_PER_EVENT: '1000',
  LEASE_SECONDS: '360',
  INGEST_ID: 'c8abc',
  OBJECT_QUEUE_URL: 'https://sqs.us-east-1.amazonaws.com/123456789012/objects',
  POWERTOOLS_METRICS_NAMESPACE: 'cdk-event-fabric',
  POWERTOOLS_SERVICE_NAME: 'tiered-event-ingest',
};
Object.assign(process.env, ENV);
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { handler } = require('../../src/tiered-event-ingest/batch-publisher.lambda') as typeof import('../../src/tiered-event-ingest/batch-publisher.lambda');

const s3 = mockClient(S3Client);
const dynamo = mockClient(DynamoDBClient);
const events = mockClient(EventBridgeClient);
const sqs = mockClient(SQSClient);
const context = { awsRequestId: 'req-1', getRemainingTimeInMillis: () => 60_000 } as unknown as Context;
/** A context whose remaining time runs out at `deadline` (epoch ms). */
const runningOutAt = (deadline: number) => ({ awsRequestId: 'req-1', getRemainingTimeInMillis: () => deadline - Date.now() } as unknown as Context);

function notification(key: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    'source': 'aws.s3',
    'detail-type': 'Object Created',
    'detail': { bucket: { name: 'ingest-bucket' }, object: { key, 'version-id': 'v1', 'sequencer': '0A', ...extra } },
  });
}
const sqsEvent = (...bodies: string[]): SQSEvent => ({
  Records: bodies.map((body, i) => ({ messageId: `m-${i + 1}`, receiptHandle: `rh-${i + 1}`, body, attributes: { ApproximateReceiveCount: '1' } })),
} as unknown as SQSEvent);

beforeEach(() => {
  s3.reset();
  dynamo.reset();
  events.reset();
  sqs.reset();
  sqs.on(ChangeMessageVisibilityCommand).resolves({});
  sqs.on(SendMessageCommand).resolves({ MessageId: 'continuation-1' });
  s3.on(GetObjectCommand).callsFake(() => ({ Body: Readable.from([Buffer.from(`${recordLine(1)}\n${recordLine(2)}\n`)]) as any }));
  dynamo.on(UpdateItemCommand).resolves({ Attributes: { cursorLine: { N: '1' }, publishedInFlight: { S: '' } } });
  events.on(PutEventsCommand).callsFake((input) => ({ FailedEntryCount: 0, Entries: input.Entries.map((_: unknown, i: number) => ({ EventId: `e-${i}` })) }));
});

describe('batch publisher handler', () => {
  test('publishes the object named by the notification and reports no failure', async () => {
    const result = await handler(sqsEvent(notification('data/tenant=acme/a.gz')), context);
    expect(result).toEqual({ batchItemFailures: [] });
    expect(s3).toHaveReceivedCommandWith(GetObjectCommand, { Bucket: 'ingest-bucket', Key: 'data/tenant=acme/a.gz', VersionId: 'v1' });
    expect(events).toHaveReceivedCommandTimes(PutEventsCommand, 1);
    const entry = events.commandCalls(PutEventsCommand)[0].args[0].input.Entries![0];
    expect(entry).toMatchObject({ EventBusName: 'curated', Source: 'cdk-event-fabric', DetailType: 'CuratedBatch' });
    expect(JSON.parse(entry.Detail!).records.map((r: any) => r.id)).toEqual(['evt-1', 'evt-2']);
  });

  test('a bad message fails alone; the good one in the same batch still publishes', async () => {
    const result = await handler(sqsEvent('not json', notification('data/b.gz'), notification('elsewhere/c.gz')), context);
    expect(result.batchItemFailures).toEqual([{ itemIdentifier: 'm-1' }, { itemIdentifier: 'm-3' }]);
    expect(events).toHaveReceivedCommandTimes(PutEventsCommand, 1);
  });

  test('throttling is retried with backoff until the time reserve, then the message is kept and comes back within a minute', async () => {
    events.on(PutEventsCommand).rejects(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }));
    const started = Date.now();
    // 15 s is kept in reserve: 15.8 s left means about 0.8 s of backoff before stopping.
    const result = await handler(sqsEvent(notification('data/d.gz')), runningOutAt(started + 15_800));
    expect(result.batchItemFailures).toEqual([{ itemIdentifier: 'm-1' }]);
    expect(events.commandCalls(PutEventsCommand).length).toBeGreaterThan(4); // more than the old fixed 4 attempts
    expect(Date.now() - started).toBeLessThan(10_000);
    const change = sqs.commandCalls(ChangeMessageVisibilityCommand)[0].args[0].input;
    expect(change).toMatchObject({ QueueUrl: ENV.OBJECT_QUEUE_URL, ReceiptHandle: 'rh-1' });
    expect(change.VisibilityTimeout).toBeGreaterThanOrEqual(15);
    expect(change.VisibilityTimeout).toBeLessThanOrEqual(45);
    expect(sqs).toHaveReceivedCommandTimes(SendMessageCommand, 0);
  });

  test('an object that made progress and runs out of time continues in a new message; the original is let go', async () => {
    // 20 lines alternating tenants close 20 batches: two flights. Time runs out after the first.
    const body = Array.from({ length: 20 }, (_, i) => recordLine(i + 1, { n: i }, i % 2 ? 'a' : 'b')).join('\n');
    s3.on(GetObjectCommand).callsFake(() => ({ Body: Readable.from([Buffer.from(body)]) as any }));
    let checks = 0;
    const ctx = { awsRequestId: 'req-1', getRemainingTimeInMillis: () => (checks++ === 0 ? 60_000 : 1_000) } as unknown as Context;
    const message = notification('data/long.gz');
    const result = await handler(sqsEvent(message), ctx);
    expect(result.batchItemFailures).toEqual([]);
    expect(sqs).toHaveReceivedCommandWith(SendMessageCommand, { QueueUrl: ENV.OBJECT_QUEUE_URL, MessageBody: message, DelaySeconds: 0 });
    const published = events.commandCalls(PutEventsCommand).flatMap((c) => c.args[0].input.Entries!);
    expect(published).toHaveLength(10);
    // The ledger was checkpointed at the second flight with the lease released, for the continuation to claim.
    const checkpoints = dynamo.commandCalls(UpdateItemCommand).map((c) => c.args[0].input).filter((i) => i.UpdateExpression!.startsWith('SET cursorLine'));
    expect(checkpoints.at(-1)!.ExpressionAttributeValues![':line']).toEqual({ N: '11' });
  });

  test('a continuation SQS refuses leaves the original message to be retried', async () => {
    const body = Array.from({ length: 20 }, (_, i) => recordLine(i + 1, { n: i }, i % 2 ? 'a' : 'b')).join('\n');
    s3.on(GetObjectCommand).callsFake(() => ({ Body: Readable.from([Buffer.from(body)]) as any }));
    sqs.on(SendMessageCommand).rejects(Object.assign(new Error('throttled'), { name: 'RequestThrottled' }));
    let checks = 0;
    const ctx = { awsRequestId: 'req-1', getRemainingTimeInMillis: () => (checks++ === 0 ? 60_000 : 1_000) } as unknown as Context;
    const result = await handler(sqsEvent(notification('data/long.gz')), ctx);
    expect(result.batchItemFailures).toEqual([{ itemIdentifier: 'm-1' }]);
  });

  test('a duplicate notification (ledger says done) publishes nothing and succeeds', async () => {
    dynamo.on(UpdateItemCommand).rejects(Object.assign(new Error('The conditional request failed'), { name: 'ConditionalCheckFailedException' }));
    dynamo.on(GetItemCommand).resolves({ Item: { status: { S: 'DONE' } } });
    const result = await handler(sqsEvent(notification('data/e.gz')), context);
    expect(result.batchItemFailures).toEqual([]);
    expect(events).toHaveReceivedCommandTimes(PutEventsCommand, 0);
    expect(s3).toHaveReceivedCommandTimes(GetObjectCommand, 0);
  });

  test('a notification for an object another worker is publishing is retried later, not dropped', async () => {
    dynamo.on(UpdateItemCommand).rejects(Object.assign(new Error('The conditional request failed'), { name: 'ConditionalCheckFailedException' }));
    dynamo.on(GetItemCommand).resolves({ Item: { status: { S: 'IN_PROGRESS' }, leaseUntil: { N: String(Math.floor(Date.now() / 1000) + 300) } } });
    const result = await handler(sqsEvent(notification('data/busy.gz')), context);
    expect(result.batchItemFailures).toEqual([{ itemIdentifier: 'm-1' }]);
    expect(events).toHaveReceivedCommandTimes(PutEventsCommand, 0);
  });

  test('a URL-encoded key that is not found as given is read decoded', async () => {
    s3.on(GetObjectCommand, { Key: 'data/tenant%3Dacme/a+b.gz' }).rejects(Object.assign(new Error('The specified key does not exist.'), { name: 'NoSuchKey' }));
    const result = await handler(sqsEvent(notification('data/tenant%3Dacme/a+b.gz')), context);
    expect(result.batchItemFailures).toEqual([]);
    expect(s3).toHaveReceivedCommandWith(GetObjectCommand, { Key: 'data/tenant=acme/a b.gz' });
    expect(events).toHaveReceivedCommandTimes(PutEventsCommand, 1);
  });

  test('quarantined lines are written next to the data with the object version in the key', async () => {
    s3.on(GetObjectCommand).callsFake(() => ({ Body: Readable.from([Buffer.from(`${recordLine(1)}\n{oops\n`)]) as any }));
    await handler(sqsEvent(notification('data/f.gz')), context);
    expect(s3).toHaveReceivedCommandWith(PutObjectCommand, { Bucket: 'ingest-bucket', Key: 'quarantine/data/f.gz/v1/lines-1-2.ndjson' });
  });
});

describe('publisher configuration and notifications', () => {
  test('reads the environment the construct sets', () => {
    expect(publisherConfigFromEnv(ENV)).toEqual({
      bucketName: 'ingest-bucket',
      dataPrefix: 'data/',
      publisher: { curatedBusName: 'curated', quarantinePrefix: 'quarantine/', maxEntryBytes: 1048576, maxRecords: 1000, leaseSeconds: 360 },
    });
  });

  test.each([
    [{ ...ENV, CURATED_BUS_NAME: '' }, 'environment variable CURATED_BUS_NAME is not set'],
    [{ ...ENV, MAX_ENTRY_BYTES: '1.5' }, 'environment variable MAX_ENTRY_BYTES must be a positive integer, got 1.5'],
  ])('a bad environment is named in the error (%#)', (env, message) => {
    expect(() => publisherConfigFromEnv(env)).toThrow(message);
  });

  test('an unversioned object is identified by its sequencer', () => {
    expect(objectRefFromNotification(notification('data/x', { 'version-id': undefined }), 'ingest-bucket', 'data/'))
      .toEqual({ bucket: 'ingest-bucket', key: 'data/x', sequencer: '0A' });
  });

  test.each([
    ['{', /message body is not JSON/],
    ['{"source":"aws.s3"}', /not an EventBridge S3 "Object Created" event/],
    [notification('other/x'), /object s3:\/\/ingest-bucket\/other\/x is outside s3:\/\/ingest-bucket\/data\//],
  ])('a message that is not a notification for the data prefix is refused with its reason (%#)', (body, message) => {
    expect(() => objectRefFromNotification(body, 'ingest-bucket', 'data/')).toThrow(message);
  });
});

describe('fast lane relay', () => {
  const client = new EventBridgeClient({});
  const envelope = JSON.parse(recordLine(9));

  test('puts a valid record envelope on the curated bus as CuratedRecord', async () => {
    const result = await relayRecord(client, 'curated', { ...envelope, lane: 'fast' });
    expect(result).toEqual({ id: 'evt-9', correlationId: 'c-9', eventId: 'e-0' });
    expect(events).toHaveReceivedCommandWith(PutEventsCommand, {
      Entries: [{ EventBusName: 'curated', Source: 'cdk-event-fabric', DetailType: 'CuratedRecord', Detail: JSON.stringify({ ...envelope, lane: 'fast' }) }],
    });
  });

  test('refuses an event that is not an envelope, with the schema errors, so it lands in the lane DLQ', async () => {
    await expect(relayRecord(client, 'curated', { ...envelope, lane: 'medium' })).rejects.toThrow(
      'not a curated record envelope: /lane must be equal to one of the allowed values (["fast","slow"])');
    expect(events).toHaveReceivedCommandTimes(PutEventsCommand, 0);
  });

  test('retries a throttled put, then fails with the error code', async () => {
    events.on(PutEventsCommand).resolves({ FailedEntryCount: 1, Entries: [{ ErrorCode: 'ThrottlingException', ErrorMessage: 'slow down' }] });
    await expect(relayRecord(client, 'curated', envelope, async () => undefined)).rejects.toThrow('PutEvents failed for record evt-9: ThrottlingException: slow down');
    expect(events).toHaveReceivedCommandTimes(PutEventsCommand, 4);
  });
});
