/**
 * Second hostile review: the replayer's time budget ("a replay that runs short of time stops between chunks and
 * returns startAfter"). An in-memory S3 and Kinesis (aws-sdk-client-mock) with a simulated clock: every AWS call
 * costs a fixed latency, and `remainingMs` is the Lambda budget (the replayer's timeout is 5 minutes) minus the
 * time spent. Each test failed before its fix: the replayer keeps calling AWS after its invocation's
 * time is up, i.e. Lambda would kill it mid-run, with no report (no startAfter) and records sent but not marked.
 */
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { KinesisClient, PutRecordsCommand, PutRecordsCommandInput } from '@aws-sdk/client-kinesis';
import { GetObjectCommand, GetObjectTaggingCommand, ListObjectsV2Command, PutObjectTaggingCommand, S3Client, Tag } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { FailedBatch } from '../../src/hydrating-dlq/failed-batch';
import { recordObject, recordObjectKey } from '../../src/hydrating-dlq/hydrated-object';
import { Replayer } from '../../src/hydrating-dlq/replayer-core';

const credentials = { accessKeyId: 'a', secretAccessKey: 'b' };
const BATCH: FailedBatch = {
  origin: 'pipe',
  consumerArn: 'arn:aws:pipes:us-east-1:123456789012:pipe/orders-to-api',
  condition: 'RetryAttemptsExhausted',
  streamArn: 'arn:aws:kinesis:us-east-1:123456789012:stream/orders',
  shardId: 'shardId-000000000000',
  startSequenceNumber: '1',
  endSequenceNumber: '2',
  batchSize: 2,
};
const ARRIVAL_BASE = Date.parse('2026-11-30T15:00:00.000Z');
const WINDOW = { from: '2026-11-30T15:00:00Z', to: '2026-11-30T16:00:00Z' };

interface World {
  s3: S3Client;
  kinesis: KinesisClient;
  eventBridge: EventBridgeClient;
  clock: { now: number; callsAfterDeadline: number; latestCall: number };
  remainingMs: () => number;
  sleep: (ms: number) => Promise<void>;
  keys: string[];
}

/**
 * `n` record objects (`partitionKey(i)`), optionally already marked replayed, in a fake bucket; a fake replay stream
 * that accepts everything. Every AWS call advances the clock by `latencyMs`; the budget is `budgetMs`.
 */
function world(n: number, opts: { partitionKey: (i: number) => string; replayed: boolean; latencyMs: number; budgetMs: number }): World {
  const bodies = new Map<string, string>();
  const tags = new Map<string, Tag[]>();
  for (let i = 0; i < n; i++) {
    const fields = {
      partitionKey: opts.partitionKey(i),
      sequenceNumber: String(49657421092336431384529591016419587374429116335263940610n + BigInt(i)),
      approximateArrivalTimestamp: new Date(ARRIVAL_BASE + Math.floor(i / 10)),
      data: Buffer.from(JSON.stringify({ order: i })),
    };
    const key = recordObjectKey('hydrated/', 'orders-to-api', BATCH.shardId, fields);
    bodies.set(key, JSON.stringify(recordObject('orders-to-api', BATCH, fields, new Date())));
    tags.set(key, opts.replayed ? [{ Key: 'replayed', Value: '2026-11-30T17:00:00.000Z' }, { Key: 'replayed-to', Value: 'pipe' }] : []);
  }
  const keys = [...bodies.keys()].sort();
  const clock = { now: 0, callsAfterDeadline: 0, latestCall: 0 };
  const tick = () => {
    if (clock.now >= opts.budgetMs) clock.callsAfterDeadline++;
    clock.now += opts.latencyMs;
    clock.latestCall = clock.now;
  };

  const s3 = new S3Client({ region: 'us-east-1', credentials });
  const s3Mock = mockClient(s3);
  s3Mock.on(ListObjectsV2Command).callsFake((input) => {
    tick();
    const after = input.ContinuationToken ?? input.StartAfter ?? '';
    const matching = keys.filter((k) => k.startsWith(input.Prefix ?? '') && k > after);
    const page = matching.slice(0, 1000);
    const truncated = matching.length > page.length;
    return { Contents: page.map((Key) => ({ Key })), IsTruncated: truncated, NextContinuationToken: truncated ? page[page.length - 1] : undefined };
  });
  s3Mock.on(GetObjectCommand).callsFake((input) => {
    tick();
    const text = bodies.get(input.Key)!;
    return { Body: { transformToString: async () => text }, TagCount: tags.get(input.Key)!.length };
  });
  s3Mock.on(GetObjectTaggingCommand).callsFake((input) => {
    tick();
    return { TagSet: tags.get(input.Key) };
  });
  s3Mock.on(PutObjectTaggingCommand).callsFake((input) => {
    tick();
    tags.set(input.Key, input.Tagging.TagSet);
    return {};
  });

  const kinesis = new KinesisClient({ region: 'us-east-1', credentials });
  mockClient(kinesis).on(PutRecordsCommand).callsFake((input: PutRecordsCommandInput) => {
    tick();
    return { FailedRecordCount: 0, Records: input.Records!.map((_, i) => ({ SequenceNumber: `${clock.now}${i}`, ShardId: 'shardId-000000000000' })) };
  });
  const eventBridge = new EventBridgeClient({ region: 'us-east-1', credentials });
  return {
    s3,
    kinesis,
    eventBridge,
    clock,
    keys,
    remainingMs: () => opts.budgetMs - clock.now,
    sleep: async (ms: number) => { clock.now += ms; },
  };
}

describe('Replayer time budget: second hostile review', () => {
  test('a replay over objects already replayed stops before the invocation times out (maxObjects 10,000)', async () => {
    // DEFECT (no report, endless reruns): the time budget is checked only right after a chunk is FLUSHED, and a
    // chunk fills only with objects to send. Objects already marked replayed are skipped and never fill a chunk,
    // so a run over them never looks at the clock. Each costs GetObject + GetObjectTagging (sequential): 10,000
    // of them (maxObjects' maximum) at 20 ms a call is 400 s, beyond the replayer's 300 s timeout. Lambda kills
    // the run: the operator gets a timeout instead of a report and startAfter, and the same request times out
    // again every time (the same skipped objects are read first), so the records after them are never replayed.
    const budgetMs = 300_000;
    const w = world(10_000, { partitionKey: (i) => `customer-${i % 50}`, replayed: true, latencyMs: 20, budgetMs });
    const replayer = new Replayer({ s3: w.s3, kinesis: w.kinesis, eventBridge: w.eventBridge, remainingMs: w.remainingMs, sleep: w.sleep },
      { bucketName: 'b', prefix: 'hydrated/', replayStreamName: 'replay' });
    const report = await replayer.replay({ consumer: 'orders-to-api', ...WINDOW, maxObjects: 10_000 });
    expect(report.skipped + report.sent + report.failed).toBe(report.found);
    expect({ callsAfterDeadline: w.clock.callsAfterDeadline, finishedWithinBudget: w.clock.latestCall <= budgetMs })
      .toEqual({ callsAfterDeadline: 0, finishedWithinBudget: true });
  });

  test('a chunk of one partition key started with more than the 30 s reserve left still ends before the timeout', async () => {
    // DEFECT (records sent but not marked, report lost): the replayer starts a new chunk whenever at least 30 s
    // (RESERVE_MS) are left, but a chunk is not bounded by 30 s. A chunk is read, sent and marked sequentially:
    // 500 x GetObject, then (one record per partition key per PutRecords call) up to 500 sequential PutRecords
    // calls for one key, then 500 x PutObjectTagging -- 1,500 calls, 37.5 s at 25 ms a call, before any throttling
    // backoff (up to 5 s a round). Started with 32.5 s left, the second chunk runs ~5 s past the timeout: Lambda
    // kills it after its PutRecords and before its marks, so those records are sent again by the next run, and
    // the operator gets no report.
    const budgetMs = 70_000;
    const w = world(1000, { partitionKey: () => 'order-42', replayed: false, latencyMs: 25, budgetMs });
    const replayer = new Replayer({ s3: w.s3, kinesis: w.kinesis, eventBridge: w.eventBridge, remainingMs: w.remainingMs, sleep: w.sleep },
      { bucketName: 'b', prefix: 'hydrated/', replayStreamName: 'replay' });
    await replayer.replay({ consumer: 'orders-to-api', ...WINDOW });
    expect({ callsAfterDeadline: w.clock.callsAfterDeadline, finishedWithinBudget: w.clock.latestCall <= budgetMs })
      .toEqual({ callsAfterDeadline: 0, finishedWithinBudget: true });
  });
});
