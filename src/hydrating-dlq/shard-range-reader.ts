import { GetRecordsCommand, GetShardIteratorCommand, KinesisClient, _Record as KinesisRecord, ShardIteratorType } from '@aws-sdk/client-kinesis';

/**
 * Reads one shard's records from a start to an end sequence number (both included), the way a
 * failed batch must be read back: GetShardIterator AT_SEQUENCE_NUMBER, then GetRecords until a
 * record past the end, the end itself, the end of a closed shard, or the tip of an open one.
 *
 * Kinesis's own rules shape the loop (Kinesis API reference, GetRecords and GetShardIterator):
 * - a page may hold fewer records than asked, or none while more follow: only a record past
 *   the end, a closed shard's missing NextShardIterator, or an empty page at the tip
 *   (MillisBehindLatest 0) ends the read;
 * - an iterator expires 5 minutes after it was returned: a new one starts after the last
 *   record read (AFTER_SEQUENCE_NUMBER), so nothing is read twice or skipped;
 * - throttling (ProvisionedThroughputExceededException, LimitExceededException and
 *   KMSThrottlingException) is retried with capped exponential backoff and full jitter;
 * - a shard closed by a split or a merge keeps its records until the retention ends, and its
 *   last page has no NextShardIterator;
 * - a sequence number already trimmed, or a shard already gone, cannot be read at: the read
 *   starts at the trim horizon instead, and the result says which records were not found.
 *
 * Sequence numbers increase within a shard, and are compared as integers (they can exceed 2^53).
 */

/** The range to read. */
export interface ShardRange {
  readonly streamArn: string;
  readonly shardId: string;
  readonly startSequenceNumber: string;
  readonly endSequenceNumber: string;
}

/** Tuning of a read; the defaults suit a Lambda handler. */
export interface ShardRangeReadOptions {
  /** GetRecords Limit (1 to 10,000). @default 10000 */
  readonly pageSize?: number;
  /** Attempts of one call while Kinesis throttles it. @default 10 */
  readonly maxThrottledAttempts?: number;
  /** Iterators renewed after they expired, per read. @default 10 */
  readonly maxIteratorRenewals?: number;
  /** First backoff in ms (doubling, capped at 5 s, full jitter). @default 200 */
  readonly backoffBaseMs?: number;
  /** Waits; tests pass a fake. @default setTimeout */
  readonly sleep?: (ms: number) => Promise<void>;
}

/** How a read ended. */
export type RangeEnd =
  /** The end sequence number was read, or a record past it. */
  | 'complete'
  /** The shard is closed and its last record is before the end. */
  | 'shard-closed-before-end'
  /** An open shard's tip was reached before the end. */
  | 'tip-before-end'
  /** The shard no longer exists (its retention ended after it was closed), or the stream is gone. */
  | 'shard-not-found';

/** What a read found: counts, and where the records start if not at the start sequence number. */
export interface RangeReadSummary {
  readonly end: RangeEnd;
  /** Kinesis records read within the range (an aggregated record counts once). */
  readonly recordsRead: number;
  /** True when the read could not start at the start sequence number (trimmed): it started at the trim horizon. */
  readonly startedAtTrimHorizon: boolean;
  /** The first record read within the range, if any. */
  readonly firstSequenceNumber?: string;
  /** The last record read within the range, if any. */
  readonly lastSequenceNumber?: string;
  readonly getRecordsCalls: number;
  readonly getShardIteratorCalls: number;
  readonly throttledCalls: number;
  readonly iteratorRenewals: number;
}

const THROTTLING = new Set(['ProvisionedThroughputExceededException', 'LimitExceededException', 'KMSThrottlingException']);
const MAX_BACKOFF_MS = 5_000;
const MAX_PAGE_SIZE = 10_000;

/**
 * Reads the range page by page: `onPage` receives each page's records within the range, in
 * order, and the read waits for it (so a caller can write them before more are read and memory
 * holds one page). Returns how the read ended.
 */
export async function readShardRange(kinesis: KinesisClient, range: ShardRange, onPage: (records: KinesisRecord[]) => Promise<void>,
  options: ShardRangeReadOptions = {}): Promise<RangeReadSummary> {
  const pageSize = options.pageSize ?? MAX_PAGE_SIZE;
  if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > MAX_PAGE_SIZE) {
    throw new Error(`pageSize must be an integer from 1 to ${MAX_PAGE_SIZE} (GetRecords' Limit); got ${pageSize}`);
  }
  const start = BigInt(range.startSequenceNumber);
  const end = BigInt(range.endSequenceNumber);
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const counts = { getRecordsCalls: 0, getShardIteratorCalls: 0, throttledCalls: 0, iteratorRenewals: 0 };
  let recordsRead = 0;
  let firstSequenceNumber: string | undefined;
  let lastSequenceNumber: string | undefined;
  // The last record read at all (also before the range, when the read starts at the trim horizon): where a renewed iterator starts after.
  let lastSeen: string | undefined;
  let startedAtTrimHorizon = false;

  const withBackoff = async <T>(call: () => Promise<T>): Promise<T> => {
    const attempts = options.maxThrottledAttempts ?? 10;
    for (let attempt = 1; ; attempt++) {
      try {
        return await call();
      } catch (error) {
        if (!THROTTLING.has((error as Error).name) || attempt >= attempts) throw error;
        counts.throttledCalls++;
        const cap = Math.min(MAX_BACKOFF_MS, (options.backoffBaseMs ?? 200) * 2 ** (attempt - 1));
        await sleep(Math.random() * cap);
      }
    }
  };

  const iterator = async (type: ShardIteratorType, sequenceNumber?: string): Promise<string | undefined> => {
    counts.getShardIteratorCalls++;
    const answer = await withBackoff(() => kinesis.send(new GetShardIteratorCommand({
      StreamARN: range.streamArn,
      ShardId: range.shardId,
      ShardIteratorType: type,
      StartingSequenceNumber: sequenceNumber,
    })));
    return answer.ShardIterator;
  };

  const summary = (end_: RangeEnd): RangeReadSummary => ({
    end: end_, recordsRead, startedAtTrimHorizon, firstSequenceNumber, lastSequenceNumber, ...counts,
  });

  let shardIterator: string | undefined;
  try {
    shardIterator = await iterator('AT_SEQUENCE_NUMBER', range.startSequenceNumber);
  } catch (error) {
    if ((error as Error).name === 'ResourceNotFoundException') return summary('shard-not-found');
    // A sequence number Kinesis no longer has (trimmed): read what is left, from the trim horizon.
    if ((error as Error).name !== 'InvalidArgumentException') throw error;
    startedAtTrimHorizon = true;
    shardIterator = await iterator('TRIM_HORIZON');
  }

  for (;;) {
    if (shardIterator === undefined) return summary('shard-closed-before-end');
    let page;
    try {
      counts.getRecordsCalls++;
      const current = shardIterator;
      page = await withBackoff(() => kinesis.send(new GetRecordsCommand({ ShardIterator: current, Limit: pageSize, StreamARN: range.streamArn })));
    } catch (error) {
      if ((error as Error).name !== 'ExpiredIteratorException') throw error;
      if (counts.iteratorRenewals >= (options.maxIteratorRenewals ?? 10)) throw error;
      counts.iteratorRenewals++;
      shardIterator = lastSeen !== undefined
        ? await iterator('AFTER_SEQUENCE_NUMBER', lastSeen)
        : startedAtTrimHorizon ? await iterator('TRIM_HORIZON') : await iterator('AT_SEQUENCE_NUMBER', range.startSequenceNumber);
      continue;
    }
    const records = page.Records ?? [];
    const inRange = records.filter((r) => {
      const sequence = BigInt(r.SequenceNumber!);
      return sequence >= start && sequence <= end;
    });
    if (inRange.length > 0) {
      await onPage(inRange);
      recordsRead += inRange.length;
      firstSequenceNumber ??= inRange[0].SequenceNumber;
      lastSequenceNumber = inRange[inRange.length - 1].SequenceNumber;
    }
    if (records.length > 0) lastSeen = records[records.length - 1].SequenceNumber;
    if (lastSeen !== undefined && BigInt(lastSeen) >= end) return summary('complete');
    if (!page.NextShardIterator) return summary('shard-closed-before-end');
    if (records.length === 0 && page.MillisBehindLatest === 0) return summary('tip-before-end');
    shardIterator = page.NextShardIterator;
  }
}
