import { GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { CreateBucketCommand, DeleteObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { marshall, unmarshall } from '@aws-sdk/util-dynamodb';
import { ACCOUNT_CHECK, eventItem, IN_STOCK, seedConfig, streamEvent, streamRecord } from './aggregator-fixtures';
import { createAggregatorMotoWorld } from './aggregator-moto-world';
import { Aggregator } from '../../src/event-aggregator/aggregator-core';
import { redriveFailedBatches } from '../../src/event-aggregator/failed-batch-redrive-core';
import { drainMotoQueue, motoClients, uniqueName } from '../support/moto';

const { dynamoDb, eventBridge, s3, sqs } = motoClients();

/**
 * What Lambda writes to an S3 on-failure destination for a DynamoDB stream: the invocation
 * record of "Retain discarded records for a DynamoDB event source in Lambda"
 * (https://docs.aws.amazon.com/lambda/latest/dg/services-dynamodb-errors.html), copied as
 * documented, with `payload` ("the original invocation record as an escaped JSON string")
 * holding a batch of this table's stream.
 */
function invocationRecord(batch: unknown) {
  return {
    requestContext: {
      requestId: '316aa6d0-8154-xmpl-9af7-85d5f4a6bc81',
      functionArn: 'arn:aws:lambda:us-east-2:123456789012:function:myfunction',
      condition: 'RetryAttemptsExhausted',
      approximateInvokeCount: 1,
    },
    responseContext: { statusCode: 200, executedVersion: '$LATEST', functionError: 'Unhandled' },
    version: '1.0',
    timestamp: '2019-11-14T00:13:49.717Z',
    DDBStreamBatchInfo: {
      shardId: 'shardId-00000001573689847184-864758bb',
      startSequenceNumber: '800000000003126276362',
      endSequenceNumber: '800000000003126276362',
      approximateArrivalOfFirstRecord: '2019-11-14T00:13:19Z',
      approximateArrivalOfLastRecord: '2019-11-14T00:13:19Z',
      batchSize: 1,
      streamArn: 'arn:aws:dynamodb:us-east-2:123456789012:table/mytable/stream/2019-11-14T00:04:06.388',
    },
    payload: JSON.stringify(batch),
  };
}

/** The documented key convention: aws/lambda/<ESM-UUID>/<shardID>/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-<Random UUID>. */
const failedKey = (n: number) => `aws/lambda/8f3a0c1e-xmpl-4f4e-9d5c-2f1b0f6f1e${String(n).padStart(2, '0')}/shardId-00000001573689847184-864758bb/`
  + `2027/01/15/2027-01-15T08.00.0${n}-0b8d1c6e-xmpl-4c59-9a1f-${String(n).padStart(12, '0')}`;

async function setUp() {
  const { tableName, busName, capture } = await createAggregatorMotoWorld({ dynamoDb, eventBridge, sqs });
  const bucketName = uniqueName('failed-batches');
  await s3.send(new CreateBucketCommand({ Bucket: bucketName }));
  const config = seedConfig(tableName, busName);
  // Order 7 is complete in the table, but the aggregator gave up on its batch: no marker, nothing emitted.
  const now = Math.floor(Date.now() / 1000);
  const items = [eventItem('7', ACCOUNT_CHECK, { status: 'APPROVED' }, { now }), eventItem('7', IN_STOCK, { sku: 'A-1' }, { now })];
  for (const item of items) await dynamoDb.send(new PutItemCommand({ TableName: tableName, Item: marshall(item) }));
  const batch = streamEvent(streamRecord('INSERT', items[1]));
  const aggregator = (events: EventBridgeClient = eventBridge) => new Aggregator({ dynamoDb, eventBridge: events, owner: uniqueName('redrive') }, config);
  const keys = async () => ((await s3.send(new ListObjectsV2Command({ Bucket: bucketName }))).Contents ?? []).map((o) => o.Key!).sort();
  const marker = async () => {
    const { Item } = await dynamoDb.send(new GetItemCommand({ TableName: tableName, Key: marshall({ correlationId: '7', eventName: '#aggregate' }) }));
    return Item ? unmarshall(Item) : undefined;
  };
  return { tableName, bucketName, capture, batch, aggregator, keys, marker };
}

describe('moto: redriving the batches the aggregator gave up on (S3 on-failure destination)', () => {
  test('the batch is aggregated again from the table: one Completed event, the marker COMPLETE, the object moved under redriven/', async () => {
    const world = await setUp();
    await s3.send(new PutObjectCommand({ Bucket: world.bucketName, Key: failedKey(1), Body: JSON.stringify(invocationRecord(world.batch)) }));

    const report = await redriveFailedBatches({ s3, aggregator: world.aggregator(), bucketName: world.bucketName }, { redriveFailedBatches: {} });
    expect(report).toEqual({ found: 1, redriven: [failedKey(1)], failed: [], remaining: 0 });
    const emitted = (await drainMotoQueue(sqs, world.capture.url)).map((m) => JSON.parse(m));
    expect(emitted.map((e) => [e['detail-type'], e.detail.correlationId])).toEqual([['Aggregation Completed', '7']]);
    expect((await world.marker())!.status).toBe('COMPLETE');
    expect(await world.keys()).toEqual([`redriven/${failedKey(1)}`]);

    // Nothing is left to redrive, and the same batch redriven again (a copy kept elsewhere) emits nothing.
    expect(await redriveFailedBatches({ s3, aggregator: world.aggregator(), bucketName: world.bucketName }, { redriveFailedBatches: {} }))
      .toEqual({ found: 0, redriven: [], failed: [], remaining: 0 });
    await s3.send(new PutObjectCommand({ Bucket: world.bucketName, Key: failedKey(2), Body: JSON.stringify(invocationRecord(world.batch)) }));
    expect((await redriveFailedBatches({ s3, aggregator: world.aggregator(), bucketName: world.bucketName }, { redriveFailedBatches: {} })).redriven)
      .toEqual([failedKey(2)]);
    expect(await drainMotoQueue(sqs, world.capture.url)).toEqual([]);
  });

  test('a batch that fails again (PutEvents refused) stays where it is, with the reason; nothing is emitted or moved', async () => {
    const world = await setUp();
    await s3.send(new PutObjectCommand({ Bucket: world.bucketName, Key: failedKey(1), Body: JSON.stringify(invocationRecord(world.batch)) }));
    const refusing = {
      send: async (command: unknown) => {
        if (command instanceof PutEventsCommand) throw Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' });
        return eventBridge.send(command as any);
      },
    } as unknown as EventBridgeClient;
    const core = new Aggregator({ dynamoDb, eventBridge: refusing, owner: 'redrive-1', sleep: async () => {} }, (world.aggregator() as any).config);

    const report = await redriveFailedBatches({ s3, aggregator: core, bucketName: world.bucketName }, { redriveFailedBatches: {} });
    expect(report).toMatchObject({ found: 1, redriven: [], remaining: 0 });
    expect(report.failed).toEqual([{ key: failedKey(1), reason: expect.stringMatching(/^1 correlation id\(s\) failed again: 7: PutEvents of Aggregation Completed for 7 failed/) }]);
    expect(await world.keys()).toEqual([failedKey(1)]);
    expect(await drainMotoQueue(sqs, world.capture.url)).toEqual([]);
  });

  test('an object that is not an invocation record is reported with what is wrong, and kept', async () => {
    const world = await setUp();
    const bodies = ['not json', JSON.stringify({ requestContext: {}, DDBStreamBatchInfo: {} }), JSON.stringify({ payload: '{"Records":' })];
    for (const [i, body] of bodies.entries()) await s3.send(new PutObjectCommand({ Bucket: world.bucketName, Key: failedKey(i), Body: body }));
    const report = await redriveFailedBatches({ s3, aggregator: world.aggregator(), bucketName: world.bucketName }, { redriveFailedBatches: {} });
    expect(report.failed).toEqual([
      { key: failedKey(0), reason: 'object is not JSON: "not json"' },
      { key: failedKey(1), reason: expect.stringContaining('object has no stream batch in payload') },
      { key: failedKey(2), reason: 'payload is not JSON: "{\\"Records\\":"' },
    ]);
    expect(await world.keys()).toEqual([failedKey(0), failedKey(1), failedKey(2)]);
  });

  test('a lost delete after the copy leaves the batch in both places; the next run finds its id done and emits nothing more', async () => {
    const world = await setUp();
    await s3.send(new PutObjectCommand({ Bucket: world.bucketName, Key: failedKey(1), Body: JSON.stringify(invocationRecord(world.batch)) }));
    // The delete's request is lost (never reaches S3): the batch is now under both prefixes.
    const losingDelete = {
      send: async (command: unknown) => {
        if (command instanceof DeleteObjectCommand) throw Object.assign(new Error('socket hang up'), { name: 'TimeoutError' });
        return s3.send(command as any);
      },
    } as any;
    const first = await redriveFailedBatches({ s3: losingDelete, aggregator: world.aggregator(), bucketName: world.bucketName },
      { redriveFailedBatches: {} });
    expect(first.failed).toEqual([{ key: failedKey(1), reason: 'socket hang up' }]);
    expect(await world.keys()).toEqual([failedKey(1), `redriven/${failedKey(1)}`]);
    const second = await redriveFailedBatches({ s3, aggregator: world.aggregator(), bucketName: world.bucketName }, { redriveFailedBatches: {} });
    expect(second).toEqual({ found: 1, redriven: [failedKey(1)], failed: [], remaining: 0 });
    expect(await world.keys()).toEqual([`redriven/${failedKey(1)}`]);
    expect((await drainMotoQueue(sqs, world.capture.url)).length).toBe(1);
  });

  test('keys can be named; a key outside aws/lambda/ is refused; objects are not started without time for them', async () => {
    const world = await setUp();
    for (const n of [1, 2]) {
      await s3.send(new PutObjectCommand({ Bucket: world.bucketName, Key: failedKey(n), Body: JSON.stringify(invocationRecord(world.batch)) }));
    }
    const named = await redriveFailedBatches({ s3, aggregator: world.aggregator(), bucketName: world.bucketName },
      { redriveFailedBatches: { keys: [failedKey(2), 'redriven/x'] } });
    expect(named).toEqual({
      found: 2, redriven: [failedKey(2)], failed: [{ key: 'redriven/x', reason: 'key "redriven/x" is not a failed batch (they are under aws/lambda/)' }], remaining: 0,
    });
    const late = await redriveFailedBatches({ s3, aggregator: world.aggregator(), bucketName: world.bucketName, remainingMs: () => 5_000 },
      { redriveFailedBatches: {} });
    expect(late).toEqual({ found: 1, redriven: [], failed: [], remaining: 1 });
  });

  test('a set whose items expired before the redrive is not handed off: the batch stays, with the reason (found by review)', async () => {
    const world = await setUp();
    // Order 8, recorded 8 days ago with a 7-day TTL: expired, not yet deleted by TTL.
    const then = Math.floor(Date.now() / 1000) - 8 * 86_400;
    const items = [eventItem('8', ACCOUNT_CHECK, { status: 'APPROVED' }, { now: then }), eventItem('8', IN_STOCK, { sku: 'A-1' }, { now: then })];
    for (const item of items) await dynamoDb.send(new PutItemCommand({ TableName: world.tableName, Item: marshall(item) }));
    const batch = streamEvent(streamRecord('INSERT', items[0]), streamRecord('INSERT', items[1]));
    await s3.send(new PutObjectCommand({ Bucket: world.bucketName, Key: failedKey(1), Body: JSON.stringify(invocationRecord(batch)) }));

    const report = await redriveFailedBatches({ s3, aggregator: world.aggregator(), bucketName: world.bucketName }, { redriveFailedBatches: {} });
    expect(report).toEqual({
      found: 1,
      redriven: [],
      remaining: 0,
      failed: [{
        key: failedKey(1),
        reason: expect.stringMatching(
          /^items of 8 expired \(itemTtl\) before this redrive, .*the events are in this batch's records \(NewImage\)/),
      }],
    });
    expect(await world.keys()).toEqual([failedKey(1)]);
    expect(await drainMotoQueue(sqs, world.capture.url)).toEqual([]);
  });
});
