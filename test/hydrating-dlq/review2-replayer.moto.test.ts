/**
 * Second hostile review of the HydratingDlq replayer (after commit 7274296). Moto, with mocked clients only where
 * moto cannot make the fault. Each test failed before its fix (commit after 7274296).
 */
import { KinesisClient, PutRecordsCommand, PutRecordsCommandInput } from '@aws-sdk/client-kinesis';
import { PutObjectCommand, PutObjectTaggingCommand } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { motoBucket } from './kinesis-moto';
import { hydrateRecords, motoReplayStream, objectTags, streamRecords } from './replay-moto';
import { FailedBatch } from '../../src/hydrating-dlq/failed-batch';
import { recordObject, recordObjectKey } from '../../src/hydrating-dlq/hydrated-object';
import { Replayer } from '../../src/hydrating-dlq/replayer-core';
import { motoClients } from '../support/moto';

const { kinesis, s3, eventBridge } = motoClients();
const WINDOW = { from: new Date(Date.now() - 3_600_000).toISOString(), to: new Date(Date.now() + 3 * 3_600_000).toISOString() };
const noSleep = async () => undefined;


/** Writes a record object exactly as the hydrator would (for a record moto's own stream could not hold). */
async function putHydrated(bucket: string, record: { partitionKey: string; sequenceNumber: string; data: Buffer; arrival: Date }) {
  const batch: FailedBatch = {
    origin: 'pipe',
    consumerArn: 'arn:aws:pipes:us-east-1:123456789012:pipe/orders-to-api',
    condition: 'RetryAttemptsExhausted',
    streamArn: 'arn:aws:kinesis:us-east-1:123456789012:stream/orders',
    shardId: 'shardId-000000000000',
    startSequenceNumber: record.sequenceNumber,
    endSequenceNumber: record.sequenceNumber,
    batchSize: 1,
  };
  const fields = {
    partitionKey: record.partitionKey, sequenceNumber: record.sequenceNumber, approximateArrivalTimestamp: record.arrival, data: record.data,
  };
  const key = recordObjectKey('hydrated/', 'orders-to-api', batch.shardId, fields);
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: JSON.stringify(recordObject('orders-to-api', batch, fields, new Date())) }));
  return key;
}

describe('Replayer: second hostile review', () => {
  test('a record refused in one page is not overtaken by a later record of its key in the next page (startAfter)', async () => {
    // DEFECT (ordering): `heldBack` (the partition keys with a refused record) lives only inside one invocation.
    // The docs tell the operator to continue a replay with the report's `startAfter` (pages of `maxObjects`, or a
    // run that stopped on its time budget). The next page starts with an empty `heldBack`, so the later records of
    // a key whose record was refused in the previous page ARE sent, ahead of the refused one, which only goes out
    // when the operator later "runs again while failed > 0". The docs promise: "the later records of its key are
    // held back ... so none overtakes it". With default paging (1,000 objects) this hits every key that straddles a
    // page boundary during throttling of the one-shard replay stream.
    const { bucket } = await hydrateRecords(kinesis, s3, [
      { data: Buffer.from('event 0'), partitionKey: 'order-42' },
      { data: Buffer.from('event 1'), partitionKey: 'order-42' },
    ]);
    const stream = new KinesisClient({ region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });
    const accepted: string[] = [];
    let throttling = true; // the replay stream is throttled during the first invocation
    mockClient(stream).on(PutRecordsCommand).callsFake((input: PutRecordsCommandInput) => ({
      FailedRecordCount: throttling ? input.Records!.length : 0,
      Records: input.Records!.map((r, i) => {
        if (throttling) return { ErrorCode: 'ProvisionedThroughputExceededException', ErrorMessage: 'Rate exceeded for shard' };
        accepted.push(Buffer.from(r.Data!).toString());
        return { SequenceNumber: `${accepted.length}${i}`, ShardId: 'shardId-000000000000' };
      }),
    }));
    const replayer = new Replayer({ s3, kinesis: stream, eventBridge, sleep: noSleep }, { bucketName: bucket, prefix: 'hydrated/', replayStreamName: 'replay' });

    const first = await replayer.replay({ consumer: 'orders-to-api', ...WINDOW, maxObjects: 1 });
    expect(first).toMatchObject({ found: 1, sent: 0, failed: 1 });
    // The continuation restarts at the refused record, the first listed: from the beginning.
    expect(first.startAfter).toBe('');
    throttling = false;
    // The operator continues with startAfter, as the docs say, then runs again for the failed one.
    await replayer.replay({ consumer: 'orders-to-api', ...WINDOW, maxObjects: 1, startAfter: first.startAfter });
    await replayer.replay({ consumer: 'orders-to-api', ...WINDOW });
    expect(accepted).toEqual(['event 0', 'event 1']);
  });

  test('one record the replay stream can never take does not fail the other partition keys of its PutRecords call', async () => {
    // DEFECT (records blocked on every run): sendToStream puts the heads of up to 500 partition keys in ONE
    // PutRecords call. A record Kinesis rejects at the request level (here: larger than the replay stream's 1 MiB,
    // possible when the source stream's MaxRecordSizeInKiB is raised up to 10 MiB -- and exactly the records a
    // target is likely to fail on) makes the whole call throw a ValidationException. putRecords() then marks EVERY
    // record of the call refused; after 5 attempts every one of those keys is held back. The grouping is the same
    // on every run, so "run again while failed > 0" never gets the innocent keys through: up to 499 partition keys
    // cannot be replayed to the pipe at all while the poison record is in the selection.
    const { bucket } = await hydrateRecords(kinesis, s3, [
      { data: Buffer.from('{"order":1}'), partitionKey: 'customer-1' },
      { data: Buffer.from('{"order":2}'), partitionKey: 'customer-2' },
      { data: Buffer.from('{"order":3}'), partitionKey: 'customer-3' },
    ]);
    await putHydrated(bucket, {
      partitionKey: 'customer-big',
      sequenceNumber: '49657421092336431384529591016419587374429116335263940610',
      data: Buffer.alloc(1_200_000, 0x61),
      arrival: new Date(),
    });
    const replay = await motoReplayStream(kinesis);
    const replayer = new Replayer({ s3, kinesis, eventBridge, sleep: noSleep }, { bucketName: bucket, prefix: 'hydrated/', replayStreamName: replay.name });
    const report = await replayer.replay({ consumer: 'orders-to-api', ...WINDOW });
    expect(report.found).toBe(4);
    // Only the oversized record can fail; the three others are fine records of other keys.
    expect({ sent: report.sent, failed: report.failed }).toEqual({ sent: 3, failed: 1 });
    expect((await streamRecords(kinesis, replay.arn)).map((r) => r.partitionKey).sort()).toEqual(['customer-1', 'customer-2', 'customer-3']);
  });

  test('a dry run to "pipe" does not report as sendable a record larger than the replay stream takes', async () => {
    // DEFECT (wrong counts): the first review made dry runs to a bus size-check their events; dry runs to "pipe"
    // still count every pending object as sent. The replay stream is created by the construct with Kinesis's
    // default 1 MiB record limit, so a record above it is refused by every real run; the dry run says it would go.
    const bucket = await motoBucket(s3);
    await putHydrated(bucket, {
      partitionKey: 'customer-big',
      sequenceNumber: '49657421092336431384529591016419587374429116335263940610',
      data: Buffer.alloc(1_200_000, 0x61),
      arrival: new Date(),
    });
    const replay = await motoReplayStream(kinesis);
    const replayer = new Replayer({ s3, kinesis, eventBridge, sleep: noSleep }, { bucketName: bucket, prefix: 'hydrated/', replayStreamName: replay.name });
    const dry = await replayer.replay({ consumer: 'orders-to-api', ...WINDOW, dryRun: true });
    const real = await replayer.replay({ consumer: 'orders-to-api', ...WINDOW });
    expect(real).toMatchObject({ sent: 0, failed: 1 });
    expect({ sent: dry.sent, failed: dry.failed }).toEqual({ sent: real.sent, failed: real.failed });
  });

  test('an object with 9 tags of its own is marked replayed (the docs say only 10 tags prevent it)', async () => {
    // DEFECT (duplicates on every run, docs wrong): mark() adds TWO tags (`replayed` and `replayed-to`). An object
    // that already has 9 tags ends with 11, S3 refuses the PutObjectTagging, and the record is "sent, but not
    // marked replayed": every later run of the same window sends it again. The docs only admit this for "an
    // object that already has S3's 10 tags". (The time value alone would fit: 9 + 1 = 10.)
    const { bucket } = await hydrateRecords(kinesis, s3, [{ data: Buffer.from('{"order":1}'), partitionKey: 'customer-1' }]);
    const [key] = [...(await objectTags(s3, bucket)).keys()];
    await s3.send(new PutObjectTaggingCommand({
      Bucket: bucket, Key: key, Tagging: { TagSet: Array.from({ length: 9 }, (_, i) => ({ Key: `team-${i}`, Value: 'x' })) },
    }));
    const replay = await motoReplayStream(kinesis);
    const replayer = new Replayer({ s3, kinesis, eventBridge, sleep: noSleep }, { bucketName: bucket, prefix: 'hydrated/', replayStreamName: replay.name });
    expect(await replayer.replay({ consumer: 'orders-to-api', ...WINDOW })).toMatchObject({ sent: 1 });
    expect(await replayer.replay({ consumer: 'orders-to-api', ...WINDOW })).toMatchObject({ sent: 0, skipped: 1 });
    expect(await streamRecords(kinesis, replay.arn)).toHaveLength(1);
  });
});
