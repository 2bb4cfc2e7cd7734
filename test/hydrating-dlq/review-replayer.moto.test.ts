/**
 * Defects a hostile review found in the replayer (moto, and mocked clients where moto cannot make the fault); each
 * test failed before its fix.
 */
import { EventBridgeClient, PutEventsCommand, PutEventsCommandInput } from '@aws-sdk/client-eventbridge';
import { KinesisClient, PutRecordsCommand, PutRecordsCommandInput } from '@aws-sdk/client-kinesis';
import { mockClient } from 'aws-sdk-client-mock';
import { kplAggregate } from './kinesis-moto';
import { hydrateRecords, motoReplayStream, objectTags, streamRecords } from './replay-moto';
import { Replayer } from '../../src/hydrating-dlq/replayer-core';
import { motoClients } from '../support/moto';

const { kinesis, s3, eventBridge } = motoClients();
const WINDOW = { from: new Date(Date.now() - 3_600_000).toISOString(), to: new Date(Date.now() + 3 * 3_600_000).toISOString() };


describe('Replayer: defects found by a hostile review', () => {
  test('the user records of one KPL record (one partition key) are replayed in their order, also past 10 of them', async () => {
    // DEFECT (ordering): a user record's key ends in `-<sequence>-<subsequence>.json` with the subsequence number
    // in decimal, not zero-padded. The replayer sends objects in S3 key (lexicographic) order, so an aggregated
    // record of 12 user records is replayed as 0, 1, 10, 11, 2, 3, ... 9: records of ONE partition key arrive at
    // the target out of order (the KPL packs hundreds of user records per Kinesis record, so this is the normal case).
    const users = Array.from({ length: 12 }, (_, i) => ({ partitionKey: 'order-42', data: Buffer.from(`event ${i}`) }));
    const { bucket } = await hydrateRecords(kinesis, s3, [await kplAggregate(users)]);
    const replay = await motoReplayStream(kinesis);
    const report = await new Replayer({ s3, kinesis, eventBridge }, { bucketName: bucket, prefix: 'hydrated/', replayStreamName: replay.name })
      .replay({ consumer: 'orders-to-api', ...WINDOW });
    expect(report).toMatchObject({ found: 12, sent: 12, failed: 0 });
    const replayed = (await streamRecords(kinesis, replay.arn)).map((r) => Buffer.from(r.data, 'base64').toString());
    expect(replayed).toEqual(users.map((u) => u.data.toString()));
  });

  test('hydrating the same dead-letter message again does not erase the "replayed" mark (no second replay)', async () => {
    // DEFECT (duplicates): the hydrator overwrites a record's object with a plain PutObject (no tags, no
    // If-None-Match). A dead-letter message is hydrated more than once in normal operation (SQS standard queues
    // deliver at least once; a message whose batch failed later, e.g. on the unrecoverable write or a timeout,
    // is retried; an operator redrives the hydrator's DLQ). If the records were replayed in between, the
    // overwrite drops the `replayed` tag, and the next replay of the same window sends every one of them again.
    const { bucket, hydrator, message } = await hydrateRecords(kinesis, s3, [
      { data: Buffer.from('{"order":1}'), partitionKey: 'customer-1' },
      { data: Buffer.from('{"order":2}'), partitionKey: 'customer-2' },
    ]);
    const replay = await motoReplayStream(kinesis);
    const replayer = new Replayer({ s3, kinesis, eventBridge }, { bucketName: bucket, prefix: 'hydrated/', replayStreamName: replay.name });
    expect(await replayer.replay({ consumer: 'orders-to-api', ...WINDOW })).toMatchObject({ sent: 2 });

    await hydrator.hydrate(message); // the same message delivered again

    expect([...(await objectTags(s3, bucket)).values()].every((tags) => 'replayed' in tags)).toBe(true);
    expect(await replayer.replay({ consumer: 'orders-to-api', ...WINDOW })).toMatchObject({ sent: 0, skipped: 2 });
    expect(await streamRecords(kinesis, replay.arn)).toHaveLength(2);
  });

  test('a record replayed to a bus keeps its numbers exactly (no float rounding of large integers)', async () => {
    // DEFECT (data corruption): replayedDetail() JSON.parse()s UTF-8 data and re-serialises it into the event
    // detail. JavaScript numbers are doubles, so an integer above 2^53 (ids, amounts in minor units, Snowflake
    // ids, 64-bit sequence numbers) is silently changed: 12345678901234567891 becomes 12345678901234567000.
    // The target receives a different record than the one that failed. (Also 1.50 -> 1.5, 1e2 -> 100, and a
    // duplicated key keeps only its last value.)
    const original = '{"orderId":12345678901234567891,"amount":1.50}';
    const { bucket } = await hydrateRecords(kinesis, s3, [{ data: Buffer.from(original), partitionKey: 'customer-1' }]);
    const bus = new EventBridgeClient({ region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });
    const sent: PutEventsCommandInput[] = [];
    mockClient(bus).on(PutEventsCommand).callsFake((input: PutEventsCommandInput) => {
      sent.push(input);
      return { FailedEntryCount: 0, Entries: input.Entries!.map((_, i) => ({ EventId: `e${i}` })) };
    });
    const report = await new Replayer({ s3, kinesis, eventBridge: bus }, { bucketName: bucket, prefix: 'hydrated/', replayStreamName: 'unused', eventBusName: 'bus' })
      .replay({ consumer: 'orders-to-api', ...WINDOW, target: 'bus' });
    expect(report).toMatchObject({ sent: 1, failed: 0 });
    const detail = sent[0].Entries![0].Detail!;
    expect(detail).toContain('12345678901234567891');
  });

  test('a PutRecords partial failure never lets a later record of the same partition key overtake an earlier one', async () => {
    // DEFECT (ordering): sendToStream puts up to 500 records per PutRecords and takes each entry's result alone.
    // PutRecords does not stop at a failed entry: when entry 0 (order-42, event 0) is throttled and entry 1
    // (order-42, event 1) is accepted, event 1 is on the replay stream and marked, event 0 is left for the next
    // run: the target receives event 1 BEFORE event 0. The replay stream is ONE provisioned shard (1 MiB/s, 1000
    // records/s) while a call may carry ~5 MiB and 500 records, so per-entry ProvisionedThroughputExceeded is the
    // expected case on a large replay, not an edge case. Nothing retries the refused entries within the run either.
    const { bucket } = await hydrateRecords(kinesis, s3, [
      { data: Buffer.from('event 0'), partitionKey: 'order-42' },
      { data: Buffer.from('event 1'), partitionKey: 'order-42' },
    ]);
    const stream = new KinesisClient({ region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });
    const accepted: string[] = [];
    let call = 0;
    mockClient(stream).on(PutRecordsCommand).callsFake((input: PutRecordsCommandInput) => {
      call++;
      return {
        FailedRecordCount: call === 1 ? 1 : 0,
        Records: input.Records!.map((r, i) => {
          if (call === 1 && i === 0) return { ErrorCode: 'ProvisionedThroughputExceededException', ErrorMessage: 'Rate exceeded for shard' };
          accepted.push(Buffer.from(r.Data!).toString());
          return { SequenceNumber: `${call}${i}`, ShardId: 'shardId-000000000000' };
        }),
      };
    });
    const replayer = new Replayer({ s3, kinesis: stream, eventBridge, sleep: async () => undefined },
      { bucketName: bucket, prefix: 'hydrated/', replayStreamName: 'replay' });
    await replayer.replay({ consumer: 'orders-to-api', ...WINDOW });
    await replayer.replay({ consumer: 'orders-to-api', ...WINDOW }); // the operator runs it again for the failed one
    expect(accepted).toEqual(['event 0', 'event 1']);
  });

  test('a dry run to a bus reports as sent only what a real run would send (not events too large for EventBridge)', async () => {
    // DEFECT (wrong counts): in a dry run `sent` is simply the number of pending objects; the size check that makes
    // a real run refuse an event ("the event would be N bytes; EventBridge takes at most M") is skipped. The
    // operator's dry run says every record will go to the bus; the real run then fails some of them.
    const { bucket } = await hydrateRecords(kinesis, s3, [
      { data: Buffer.from('small'), partitionKey: 'customer-1' },
      { data: Buffer.from('x'.repeat(5000)), partitionKey: 'customer-2' },
    ]);
    const bus = new EventBridgeClient({ region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });
    mockClient(bus).on(PutEventsCommand).callsFake((input: PutEventsCommandInput) => (
      { FailedEntryCount: 0, Entries: input.Entries!.map((_, i) => ({ EventId: `e${i}` })) }));
    const replayer = new Replayer({ s3, kinesis, eventBridge: bus },
      { bucketName: bucket, prefix: 'hydrated/', replayStreamName: 'unused', eventBusName: 'bus', maxEventBytes: 2000 });
    const dry = await replayer.replay({ consumer: 'orders-to-api', ...WINDOW, target: 'bus', dryRun: true });
    const real = await replayer.replay({ consumer: 'orders-to-api', ...WINDOW, target: 'bus' });
    expect(real).toMatchObject({ sent: 1, failed: 1 });
    expect({ sent: dry.sent, failed: dry.failed }).toEqual({ sent: real.sent, failed: real.failed });
  });
});
