import { _Record as KinesisRecord } from '@aws-sdk/client-kinesis';
import { FakeShard, FakeShardOptions, fakeSequenceNumber } from './fake-shard';
import { readShardRange, RangeReadSummary } from '../../src/hydrating-dlq/shard-range-reader';

const STREAM_ARN = 'arn:aws:kinesis:us-east-1:123456789012:stream/orders';

async function read(options: FakeShardOptions, from: number, to: number, readOptions: { pageSize?: number; maxThrottledAttempts?: number } = {}) {
  const shard = new FakeShard(options);
  const pages: KinesisRecord[][] = [];
  const sleeps: number[] = [];
  const summary: RangeReadSummary = await readShardRange(shard.client(), {
    streamArn: STREAM_ARN,
    shardId: 'shardId-000000000000',
    startSequenceNumber: fakeSequenceNumber(from),
    endSequenceNumber: fakeSequenceNumber(to),
  }, async (page) => { pages.push(page); }, { ...readOptions, sleep: async (ms) => { sleeps.push(ms); } });
  const indexes = pages.flat().map((r) => shard.records.indexOf(r));
  return { shard, summary, indexes, pages, sleeps };
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('readShardRange: a failed batch\'s records, read back from its shard', () => {
  test('reads exactly the range, page by page, and stops at the end sequence number', async () => {
    const { summary, indexes, shard, pages } = await read({ count: 40 }, 5, 27, { pageSize: 10 });
    expect(indexes).toEqual(range(5, 27));
    expect(pages.map((p) => p.length)).toEqual([10, 10, 3]);
    expect(summary).toMatchObject({
      end: 'complete',
      recordsRead: 23,
      getRecordsCalls: 3,
      getShardIteratorCalls: 1,
      startedAtTrimHorizon: false,
      firstSequenceNumber: fakeSequenceNumber(5),
      lastSequenceNumber: fakeSequenceNumber(27),
    });
    expect(shard.iteratorRequests[0]).toMatchObject({
      ShardIteratorType: 'AT_SEQUENCE_NUMBER',
      StartingSequenceNumber: fakeSequenceNumber(5),
      StreamARN: STREAM_ARN,
      ShardId: 'shardId-000000000000',
    });
    expect(shard.getRecordsRequests.map((r) => r.Limit)).toEqual([10, 10, 10]);
  });

  test('a range of one record', async () => {
    const { summary, indexes } = await read({ count: 5 }, 3, 3);
    expect(indexes).toEqual([3]);
    expect(summary).toMatchObject({ end: 'complete', recordsRead: 1, getRecordsCalls: 1 });
  });

  test('short and empty pages while records follow do not end the read', async () => {
    const { summary, indexes } = await read({ count: 30, maxPage: 3, emptyPagesAt: [1, 2, 4] }, 0, 20, { pageSize: 10 });
    expect(indexes).toEqual(range(0, 20));
    expect(summary).toMatchObject({ end: 'complete', recordsRead: 21, getRecordsCalls: 10 });
  });

  test('an expired iterator is renewed after the last record read: nothing read twice, nothing skipped', async () => {
    const { summary, indexes, shard } = await read({ count: 30, expireAt: [2, 3] }, 4, 25, { pageSize: 5 });
    expect(indexes).toEqual(range(4, 25));
    expect(summary).toMatchObject({ end: 'complete', iteratorRenewals: 2, getShardIteratorCalls: 3 });
    expect(shard.iteratorRequests.slice(1)).toEqual([
      expect.objectContaining({ ShardIteratorType: 'AFTER_SEQUENCE_NUMBER', StartingSequenceNumber: fakeSequenceNumber(8) }),
      expect.objectContaining({ ShardIteratorType: 'AFTER_SEQUENCE_NUMBER', StartingSequenceNumber: fakeSequenceNumber(8) }),
    ]);
  });

  test('an iterator that expires before the first page is renewed at the start sequence number', async () => {
    const { indexes, shard } = await read({ count: 10, expireAt: [1] }, 2, 6);
    expect(indexes).toEqual(range(2, 6));
    expect(shard.iteratorRequests.map((r) => [r.ShardIteratorType, r.StartingSequenceNumber]))
      .toEqual([['AT_SEQUENCE_NUMBER', fakeSequenceNumber(2)], ['AT_SEQUENCE_NUMBER', fakeSequenceNumber(2)]]);
  });

  test('throttling is retried with capped, jittered, growing backoff', async () => {
    const { summary, indexes, sleeps } = await read({ count: 10, throttleAt: [1, 2, 4, 5, 6] }, 0, 9, { pageSize: 4 });
    expect(indexes).toEqual(range(0, 9));
    expect(summary.throttledCalls).toBe(5);
    expect(sleeps).toHaveLength(5);
    // Full jitter: each wait is below its cap (200 ms doubling per attempt of the same call).
    const caps = [200, 400, 200, 400, 800];
    sleeps.forEach((ms, i) => expect(ms).toBeLessThan(caps[i]));
  });

  test('throttling that outlasts the attempts fails the read (the message returns to its queue)', async () => {
    await expect(read({ count: 10, throttleAt: [1, 2, 3] }, 0, 9, { maxThrottledAttempts: 3 }))
      .rejects.toThrow('ProvisionedThroughputExceededException (fake shard)');
  });

  test('a closed parent shard (after a split or merge) that holds the whole range is read to its end', async () => {
    const { summary, indexes } = await read({ count: 12, closed: true }, 6, 11, { pageSize: 4 });
    expect(indexes).toEqual(range(6, 11));
    expect(summary.end).toBe('complete');
  });

  test('a closed shard that ends before the end sequence number says so', async () => {
    const shard = new FakeShard({ count: 8, closed: true });
    const seen: string[] = [];
    const summary = await readShardRange(shard.client(), {
      streamArn: STREAM_ARN,
      shardId: 's',
      startSequenceNumber: fakeSequenceNumber(5),
      endSequenceNumber: fakeSequenceNumber(20),
    }, async (p) => { seen.push(...p.map((r) => r.SequenceNumber!)); }, { pageSize: 2 });
    expect(seen).toEqual([5, 6, 7].map(fakeSequenceNumber));
    expect(summary).toMatchObject({ end: 'shard-closed-before-end', recordsRead: 3, lastSequenceNumber: fakeSequenceNumber(7) });
  });

  test('an open shard whose tip is before the end sequence number says so', async () => {
    const { summary, indexes } = await read({ count: 8 }, 5, 20, { pageSize: 2 });
    expect(indexes).toEqual([5, 6, 7]);
    expect(summary.end).toBe('tip-before-end');
  });

  test('a trimmed start: the read starts at the trim horizon and says so', async () => {
    const { summary, indexes, shard } = await read({ count: 20, trimmedBefore: 8 }, 3, 12);
    expect(indexes).toEqual(range(8, 12));
    expect(summary).toMatchObject({ end: 'complete', startedAtTrimHorizon: true, recordsRead: 5, firstSequenceNumber: fakeSequenceNumber(8) });
    expect(shard.iteratorRequests.map((r) => r.ShardIteratorType)).toEqual(['AT_SEQUENCE_NUMBER', 'TRIM_HORIZON']);
  });

  test('a range wholly trimmed reads nothing of it', async () => {
    const { summary, indexes } = await read({ count: 20, trimmedBefore: 15 }, 3, 12);
    expect(indexes).toEqual([]);
    expect(summary).toMatchObject({ end: 'complete', startedAtTrimHorizon: true, recordsRead: 0 });
  });

  test('a shard that no longer exists', async () => {
    const { summary, indexes } = await read({ count: 5, gone: true }, 0, 4);
    expect(indexes).toEqual([]);
    expect(summary).toMatchObject({ end: 'shard-not-found', recordsRead: 0 });
  });

  test('a page size outside GetRecords\' Limit is refused', async () => {
    await expect(read({ count: 5 }, 0, 4, { pageSize: 10_001 })).rejects.toThrow('pageSize must be an integer from 1 to 10000 (GetRecords\' Limit); got 10001');
  });
});
