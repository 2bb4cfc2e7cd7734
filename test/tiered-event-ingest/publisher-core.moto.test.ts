import { gzipSync } from 'zlib';
import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { createMotoIngest } from './moto-ingest';
import { recordLine } from './publisher-fixtures';
import { DynamoDbObjectLedger } from '../../src/tiered-event-ingest/object-ledger-core';
import { objectRefFromNotification } from '../../src/tiered-event-ingest/publisher-config-core';
import { ObjectRef, publishObject, PublisherConfig } from '../../src/tiered-event-ingest/publisher-core';
import { motoClients } from '../support/moto';

const clients = motoClients();
const { sqs, eventBridge, s3, dynamoDb } = clients;

/** The resources the construct creates, made in moto: bucket, ledger table, curated bus with a capture rule. */
async function setUp() {
  const ingest = await createMotoIngest(clients, ['CuratedBatch']);
  return { ...ingest, queueUrl: ingest.capture.url };
}

/** Drains the capture queue: the batch events the curated bus delivered. */
async function delivered(queueUrl: string): Promise<any[]> {
  const events: any[] = [];
  for (let empty = 0; empty < 2;) {
    const { Messages } = await sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }));
    if (!Messages?.length) { empty++; continue; }
    events.push(...Messages.map((m) => JSON.parse(m.Body!)));
  }
  return events;
}

/** An EventBridge S3 "Object Created" notification as the object queue receives it. */
function notification(bucket: string, key: string, versionId: string): string {
  return JSON.stringify({
    'version': '0',
    'id': 'n-1',
    'detail-type': 'Object Created',
    'source': 'aws.s3',
    'account': '123456789012',
    'time': '2026-11-22T10:00:00Z',
    'region': 'us-east-1',
    'resources': [`arn:aws:s3:::${bucket}`],
    'detail': { version: '0', bucket: { name: bucket }, object: { 'key': key, 'size': 1, 'etag': 'e', 'version-id': versionId, 'sequencer': '00A' } },
  });
}

test('moto: a gzipped object of good and bad lines is published to the curated bus once, bad lines quarantined in S3', async () => {
  const { bucket, table, bus, queueUrl } = await setUp();
  const key = 'data/tenant=acme/2026/11/22/10/stream-1-2026-11-22-10-00-00-abc.gz';
  const lines = [...Array.from({ length: 30 }, (_, i) => recordLine(i + 1, { body: 'b'.repeat(300) })), 'not json', recordLine(32)];
  const put = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: gzipSync(lines.join('\n') + '\n') }));
  const config: PublisherConfig = { curatedBusName: bus, quarantinePrefix: 'quarantine/', maxEntryBytes: 4096, maxRecords: 1000, leaseSeconds: 360 };
  const ref: ObjectRef = objectRefFromNotification(notification(bucket, key, put.VersionId!), bucket, 'data/');
  const deps = {
    eventBridge,
    ledger: new DynamoDbObjectLedger(dynamoDb, table),
    openObject: async (r: ObjectRef) => {
      const object = await s3.send(new GetObjectCommand({ Bucket: r.bucket, Key: r.key, VersionId: r.versionId }));
      return object.Body as AsyncIterable<Uint8Array>;
    },
    writeQuarantine: async (k: string, body: string) => { await s3.send(new PutObjectCommand({ Bucket: bucket, Key: k, Body: body })); },
  };

  const first = await publishObject({ ...deps, owner: 'first' }, config, ref);
  const duplicate = await publishObject({ ...deps, owner: 'second' }, config, ref);

  expect(first).toMatchObject({ outcome: 'published', inputRecords: 32, published: 31, quarantined: 1 });
  expect(duplicate.outcome).toBe('duplicate');
  const events = await delivered(queueUrl);
  expect(events.length).toBe(first.events);
  expect(events.every((e) => e['detail-type'] === 'CuratedBatch' && e.source === 'cdk-event-fabric')).toBe(true);
  const ids = events.flatMap((e) => e.detail.records.map((r: any) => r.id)).sort();
  expect(ids).toEqual([...Array.from({ length: 30 }, (_, i) => `evt-${i + 1}`), 'evt-32'].sort());

  const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'quarantine/' }));
  expect(listed.Contents?.map((c) => c.Key)).toEqual([`quarantine/${key}/${put.VersionId}/lines-1-32.ndjson`]);
  const body = await (await s3.send(new GetObjectCommand({ Bucket: bucket, Key: listed.Contents![0].Key! }))).Body!.transformToString();
  expect(JSON.parse(body)).toMatchObject({ line: 31, record: 'not json' });

  const ledger = await dynamoDb.send(new GetItemCommand({ TableName: table, Key: { objectId: { S: first.objectId } }, ConsistentRead: true }));
  expect(ledger.Item).toMatchObject({ status: { S: 'DONE' }, published: { N: '31' }, quarantined: { N: '1' }, records: { N: '32' } });
});

test('moto: the DynamoDB ledger refuses a second live claim and hands the object over once the lease expires', async () => {
  const { table } = await setUp();
  const ledger = new DynamoDbObjectLedger(dynamoDb, table);
  expect(await ledger.claim('obj#1', 'a', 1000, 100)).toEqual({ state: 'claimed', cursor: { line: 1, publishedInFlight: [] } });
  await ledger.checkpoint('obj#1', 'a', { line: 42, publishedInFlight: ['1-40', '81-120'] }, 1010, 100);
  expect(await ledger.claim('obj#1', 'b', 1050, 100)).toEqual({ state: 'busy', leaseUntil: 1110 });
  expect(await ledger.claim('obj#1', 'b', 1111, 100)).toEqual({ state: 'claimed', cursor: { line: 42, publishedInFlight: ['1-40', '81-120'] } });
  await expect(ledger.checkpoint('obj#1', 'a', { line: 50, publishedInFlight: [] }, 1112, 100)).rejects.toThrow(/lease on obj#1 was lost/);
  await ledger.complete('obj#1', 'b', { records: 1, published: 1, quarantined: 0, events: 1 }, 1120);
  expect(await ledger.claim('obj#1', 'c', 99_999, 100)).toEqual({ state: 'done' });
});
