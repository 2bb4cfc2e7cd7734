import { PutObjectCommand } from '@aws-sdk/client-s3';
import { ReceiveMessageCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import { bucketObjects, kplAggregate, motoBucket, MotoStream, motoStream, pipeDlqMessage } from './kinesis-moto';
import { Hydrator } from '../../src/hydrating-dlq/hydrator-core';
import { createMotoQueue, motoClients } from '../support/moto';

const { kinesis, s3, sqs } = motoClients();
const NOW = new Date('2026-12-01T09:00:00.000Z');

function records(n: number) {
  return Array.from({ length: n }, (_, i) => ({ data: Buffer.from(JSON.stringify({ order: i })), partitionKey: `customer-${i % 4}` }));
}

async function setup(n = 12) {
  const stream = await motoStream(kinesis, records(n));
  const bucket = await motoBucket(s3);
  const hydrator = new Hydrator({ kinesis, s3, now: () => NOW }, { bucketName: bucket, prefix: 'hydrated/', streamArns: [stream.arn], read: { pageSize: 4 } });
  return { stream, bucket, hydrator };
}

describe('Hydrator against moto: a failed batch read back from the stream into S3', () => {
  test('every record of the range becomes one object under the key convention, with its data and metadata', async () => {
    const { stream, bucket, hydrator } = await setup();
    const result = await hydrator.hydrate({ messageId: 'm-1', body: pipeDlqMessage(stream, 2, 9) });
    expect(result).toMatchObject({ outcome: 'hydrated', recordsWritten: 8, kinesisRecordsRead: 8 });
    expect(result.read).toMatchObject({ getRecordsCalls: 2, end: 'complete' });

    const objects = await bucketObjects(s3, bucket);
    expect(objects.size).toBe(8);
    const orders = [...objects.values()].map((o) => JSON.parse(o.record.data).order).sort((a, b) => a - b);
    expect(orders).toEqual([2, 3, 4, 5, 6, 7, 8, 9]);
    for (const [key, object] of objects) {
      const arrival = new Date(object.record.approximateArrivalTimestamp);
      const iso = arrival.toISOString();
      expect(key).toBe(`hydrated/orders-to-api/${iso.slice(0, 4)}/${iso.slice(5, 7)}/${iso.slice(8, 10)}/${iso.slice(11, 13)}/`
        + `${stream.shardId}/${object.record.partitionKey}/${iso.replace(/[-:.]/g, '')}-${object.record.sequenceNumber}.json`);
      expect(object).toMatchObject({
        version: '1',
        kind: 'record',
        consumer: 'orders-to-api',
        record: { dataEncoding: 'utf-8' },
        source: { streamArn: stream.arn, shardId: stream.shardId },
        failure: {
          origin: 'pipe',
          condition: 'RetryAttemptsExhausted',
          startSequenceNumber: stream.sequenceNumbers[2],
          endSequenceNumber: stream.sequenceNumbers[9],
          batchSize: 8,
        },
        hydratedAt: NOW.toISOString(),
      });
      expect(stream.sequenceNumbers.indexOf(object.record.sequenceNumber)).toBe(JSON.parse(object.record.data).order);
    }
  });

  test('hydrating the same message again (a duplicate delivery) finds its objects: the same keys, no copies, nothing rewritten', async () => {
    const { stream, bucket, hydrator } = await setup();
    await hydrator.hydrate({ messageId: 'm-1', body: pipeDlqMessage(stream, 0, 11) });
    const first = await bucketObjects(s3, bucket);
    const again = new Hydrator({ kinesis, s3, now: () => new Date(NOW.getTime() + 60_000) }, { bucketName: bucket, prefix: 'hydrated/', streamArns: [stream.arn] });
    expect(await again.hydrate({ messageId: 'm-2', body: pipeDlqMessage(stream, 0, 11) }))
      .toMatchObject({ outcome: 'hydrated', recordsWritten: 0, recordsAlreadyHydrated: 12 });
    const second = await bucketObjects(s3, bucket);
    expect([...second.keys()].sort()).toEqual([...first.keys()].sort());
    expect(second.size).toBe(12);
    // The first objects stay as they were (their hydratedAt is the first hydration's).
    expect([...second.values()].map((o) => o.hydratedAt)).toEqual(Array(12).fill(NOW.toISOString()));
  });

  test('data that is not UTF-8 is kept as base64; partition keys with slashes and non-ASCII are encoded in the key', async () => {
    const stream = await motoStream(kinesis, [
      { data: Buffer.from([0xff, 0x00, 0xfe]), partitionKey: 'tenant/a b' },
      { data: Buffer.from('żółw'), partitionKey: 'żółw!' },
    ]);
    const bucket = await motoBucket(s3);
    const hydrator = new Hydrator({ kinesis, s3, now: () => NOW }, { bucketName: bucket, prefix: '', streamArns: [stream.arn] });
    await hydrator.hydrate({ messageId: 'm', body: pipeDlqMessage(stream, 0, 1) });
    const objects = [...(await bucketObjects(s3, bucket)).entries()];
    const binary = objects.find(([, o]) => o.record.partitionKey === 'tenant/a b')!;
    expect(binary[1].record).toMatchObject({ data: '/wD+', dataEncoding: 'base64' });
    expect(binary[0]).toContain(`/${stream.shardId}/tenant%2Fa%20b/`);
    const text = objects.find(([, o]) => o.record.partitionKey === 'żółw!')!;
    expect(text[1].record).toMatchObject({ data: 'żółw', dataEncoding: 'utf-8' });
    expect(text[0]).toContain(`/${stream.shardId}/%C5%BC%C3%B3%C5%82w%21/`);
  });

  test('a range that ends past the stream\'s newest record: the records found, and an unrecoverable object naming the rest', async () => {
    const { stream, bucket, hydrator } = await setup(6);
    const body = JSON.parse(pipeDlqMessage(stream, 3, 5));
    body.KinesisBatchInfo.endSequenceNumber = (BigInt(stream.sequenceNumbers[5]) + 1000n).toString();
    body.KinesisBatchInfo.batchSize = 5;
    const result = await hydrator.hydrate({ messageId: 'm', body: JSON.stringify(body), attributes: { SentTimestamp: String(NOW.getTime()) } });
    expect(result).toMatchObject({ outcome: 'partly-unrecoverable', recordsWritten: 3 });
    const objects = await bucketObjects(s3, bucket);
    expect(objects.size).toBe(4);
    const key = `hydrated/orders-to-api/2026/11/30/15/${stream.shardId}/!unrecoverable/${body.KinesisBatchInfo.startSequenceNumber}-${body.KinesisBatchInfo.endSequenceNumber}.json`;
    expect(result.parkedKey).toBe(key);
    expect(objects.get(key)).toEqual({
      version: '1',
      kind: 'unrecoverable',
      consumer: 'orders-to-api',
      source: { streamArn: stream.arn, shardId: stream.shardId },
      failure: expect.objectContaining({ batchSize: 5, endSequenceNumber: body.KinesisBatchInfo.endSequenceNumber }),
      reason: `no record at the end sequence number ${body.KinesisBatchInfo.endSequenceNumber} (the shard's newest record is before it); `
        + `3 record(s) of the range were read, from ${stream.sequenceNumbers[3]} to ${stream.sequenceNumbers[5]}`,
      reasonCodes: ['end-not-found'],
      recordsRead: 3,
      recordsMissing: 2,
      firstSequenceNumberRead: stream.sequenceNumbers[3],
      lastSequenceNumberRead: stream.sequenceNumbers[5],
      hydratedAt: NOW.toISOString(),
    });
  });

  test.each([
    ['a malformed message', (_stream: MotoStream) => '{"context":', /^not JSON: /],
    ['metadata for another stream', (stream: MotoStream) => pipeDlqMessage({ ...stream, arn: stream.arn.replace(/stream\/.*/, 'stream/other') }, 0, 1),
      /^the failed batch is of stream arn:aws:kinesis:us-east-1:123456789012:stream\/other; this hydrator reads arn:aws:kinesis:/],
  ])('%s is kept whole in the bucket with its reason', async (_name, makeBody, reason) => {
    const { stream, bucket, hydrator } = await setup(3);
    const body = makeBody(stream);
    const result = await hydrator.hydrate({ messageId: 'msg-7', body, attributes: { SentTimestamp: String(NOW.getTime()) } });
    expect(result).toMatchObject({ outcome: 'unreadable', parkedKey: 'hydrated/!unreadable/2026/12/01/msg-7.json' });
    expect(result.reason).toMatch(reason);
    const objects = await bucketObjects(s3, bucket);
    expect([...objects.keys()]).toEqual(['hydrated/!unreadable/2026/12/01/msg-7.json']);
    expect(objects.get('hydrated/!unreadable/2026/12/01/msg-7.json')).toEqual({
      version: '1', kind: 'unreadable', reason: result.reason, messageId: 'msg-7', body, keptAt: NOW.toISOString(),
    });
  });

  test('the way back from an unreadable object: its body, sent again to the dead-letter queue once the cause is fixed, is hydrated', async () => {
    // A hydrator that did not know the stream (say, deployed before the stream was added) keeps the message as unreadable.
    const { stream, bucket } = await setup(4);
    const unaware = new Hydrator({ kinesis, s3, now: () => NOW }, { bucketName: bucket, prefix: 'hydrated/', streamArns: ['arn:aws:kinesis:us-east-1:123456789012:stream/other'] });
    const kept = await unaware.hydrate({ messageId: 'msg-9', body: pipeDlqMessage(stream, 0, 3), attributes: { SentTimestamp: String(NOW.getTime()) } });
    expect(kept.outcome).toBe('unreadable');
    // The operator sends the kept body, as it is, to the dead-letter queue; the fixed hydrator reads it.
    const queue = await createMotoQueue(sqs, 'pipe-dlq');
    const body = (await bucketObjects(s3, bucket)).get(kept.parkedKey!).body;
    await sqs.send(new SendMessageCommand({ QueueUrl: queue.url, MessageBody: body }));
    const [message] = (await sqs.send(new ReceiveMessageCommand({ QueueUrl: queue.url }))).Messages!;
    const fixed = new Hydrator({ kinesis, s3, now: () => NOW }, { bucketName: bucket, prefix: 'hydrated/', streamArns: [stream.arn] });
    expect(await fixed.hydrate({ messageId: message.MessageId!, body: message.Body! })).toMatchObject({ outcome: 'hydrated', recordsWritten: 4 });
    const orders = [...(await bucketObjects(s3, bucket)).values()].filter((o) => o.kind === 'record').map((o) => JSON.parse(o.record.data).order).sort();
    expect(orders).toEqual([0, 1, 2, 3]);
  });

  test('KPL-aggregated records are split into their user records (aws-kinesis-agg), each its own object', async () => {
    const aggregated = await kplAggregate([
      { partitionKey: 'tenant-a', data: Buffer.from('{"n":1}') },
      { partitionKey: 'tenant-b', data: Buffer.from('{"n":2}') },
      { partitionKey: 'tenant-a', data: Buffer.from('{"n":3}') },
    ]);
    const broken = Buffer.concat([Buffer.from('f3899ac2', 'hex'), Buffer.from('not a protobuf message at all, and no checksum')]);
    const stream = await motoStream(kinesis, [aggregated, { data: broken, partitionKey: 'broken' }, { data: Buffer.from('plain'), partitionKey: 'p' }]);
    const bucket = await motoBucket(s3);
    const hydrator = new Hydrator({ kinesis, s3, now: () => NOW }, { bucketName: bucket, prefix: '', streamArns: [stream.arn] });
    const result = await hydrator.hydrate({ messageId: 'm', body: pipeDlqMessage(stream, 0, 2) });
    expect(result).toMatchObject({ outcome: 'hydrated', recordsWritten: 5, kinesisRecordsRead: 3 });
    const objects = [...(await bucketObjects(s3, bucket)).entries()].sort(([a], [b]) => a.localeCompare(b));
    const users = objects.filter(([, o]) => o.record.sequenceNumber === stream.sequenceNumbers[0]);
    expect(users.map(([key, o]) => [key.split('/').slice(-2).join('/').replace(/^(.*)\/\d{8}T\d{9}Z-/, '$1/'), o.record.data, o.record.subSequenceNumber]))
      .toEqual([
        [`tenant-a/${stream.sequenceNumbers[0]}-000000.json`, '{"n":1}', 0],
        [`tenant-a/${stream.sequenceNumbers[0]}-000002.json`, '{"n":3}', 2],
        [`tenant-b/${stream.sequenceNumbers[0]}-000001.json`, '{"n":2}', 1],
      ]);
    const kept = objects.find(([, o]) => o.record.partitionKey === 'broken')![1];
    expect(kept.record).toMatchObject({ data: broken.toString('base64'), dataEncoding: 'base64', deaggregationError: expect.stringMatching(/.+/) });
    expect(kept.record.subSequenceNumber).toBeUndefined();
    const plain = objects.find(([, o]) => o.record.partitionKey === 'p')![1];
    expect(plain.record).toEqual(expect.objectContaining({ data: 'plain', dataEncoding: 'utf-8' }));
    expect(plain.record).not.toHaveProperty('deaggregationError');
  });

  test('an S3 write that fails fails the message (it returns to the queue), and the other messages of the batch go on', async () => {
    const { stream, bucket } = await setup(4);
    const failing = new Hydrator({ kinesis, s3: { send: async (c: any) => { if (c instanceof PutObjectCommand && c.input.Key?.includes('customer-1')) throw new Error('SlowDown'); return s3.send(c); } } as any, now: () => NOW },
      { bucketName: bucket, prefix: 'hydrated/', streamArns: [stream.arn] });
    const report = await failing.handleBatch([
      { messageId: 'a', body: pipeDlqMessage(stream, 0, 3) },
      { messageId: 'b', body: '[]' },
    ]);
    expect(report.batchItemFailures).toEqual([{ itemIdentifier: 'a' }]);
    expect(report.messages.map((m) => [m.messageId, m.outcome])).toEqual([['b', 'unreadable']]);
  });
});
