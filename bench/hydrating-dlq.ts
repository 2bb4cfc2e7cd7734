import { setFlagsFromString } from 'v8';
import { runInNewContext } from 'vm';
import { GetRecordsCommand, GetShardIteratorCommand, KinesisClient } from '@aws-sdk/client-kinesis';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Hydrator } from '../src/hydrating-dlq/hydrator-core';
import { readShardRange } from '../src/hydrating-dlq/shard-range-reader';
import { motoBucket, MotoStream, motoStream, pipeDlqMessage } from '../test/hydrating-dlq/kinesis-moto';
import { motoClients } from '../test/support/moto';
import motoGlobalSetup from '../test/support/moto-global-setup';
import motoGlobalTeardown from '../test/support/moto-global-teardown';

type Table = (title: string, header: string[], rows: (string | number)[][]) => void;

/** Records on the stream; the failed batch's range is all of them. */
const RECORDS = 10_000;
/**
 * GetRecords page sizes. Not 500 as well: moto writes about 200 objects a second, so each run that
 * writes the whole range takes about 45 s, and a third page size would take the benchmark past 3 minutes.
 */
const PAGE_SIZES = [10_000, 1_000];
/** The hydrator's default write concurrency, used by the naive hydrator too. */
const WRITE_CONCURRENCY = 16;
const PARTITION_KEYS = ['tenant-a', 'tenant-b', 'tenant-c', 'tenant-d'];
const MEMORY_SAMPLE_MS = 20;
const MIB = 1_048_576;
/** Objects written before the measured runs, so the first run measured does not also pay the S3 client's warm-up. */
const WARMUP_OBJECTS = 200;

// A full GC before each run, so a run's memory does not include the garbage of the run before it
// (bench/run.ts runs without --expose-gc; the flag set at run time exposes gc in a new context).
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

interface Run { getRecordsCalls: number; records: number }
interface Measured extends Run { ms: number; rssMiB: number; heapMiB: number }

/**
 * Hydrating one failed batch of 10,000 records (the whole stream) on moto Kinesis and S3
 * (the moto server is started and stopped here), for several GetRecords page sizes:
 * - ours: the Hydrator, which pages GetRecords to the end sequence number;
 * - naive (theburningmonk-style): one GetShardIterator and ONE GetRecords with the same Limit,
 *   then every returned record up to the end written to S3, 16 at a time; the records past its
 *   first page are missed;
 * - ceiling: the range reader's GetRecords loop alone, no S3 writes.
 * moto runs on loopback in one Python process, so times and records/s are moto's, not AWS's:
 * read them as ratios between rows. Peak memory is this process's, sampled every 20 ms, as the
 * peak minus the value just before the run (after a full GC); it includes garbage not yet collected.
 */
export async function benchHydratingDlq(table: Table): Promise<void> {
  await motoGlobalSetup();
  try {
    const { kinesis, s3 } = motoClients();
    const stream = await motoStream(kinesis, Array.from({ length: RECORDS }, (_, i) => ({
      data: Buffer.from(payload(i)), partitionKey: PARTITION_KEYS[i % PARTITION_KEYS.length],
    })));
    const body = pipeDlqMessage(stream, 0, RECORDS - 1);
    const warmupBucket = await motoBucket(s3);
    await writeAll(Array.from({ length: WARMUP_OBJECTS }, (_, i) => () => put(s3, warmupBucket, `warmup/${i}.json`, { i })));
    const rows: (string | number)[][] = [];
    for (const pageSize of PAGE_SIZES) {
      const goal = 2 * Math.ceil(RECORDS / pageSize);
      // The ceiling first: it also warms moto and the clients up for this page size.
      const ceiling = await measure(() => readOnly(kinesis, stream, pageSize));
      rows.push(row(pageSize, 'ceiling (GetRecords loop only, no S3)', ceiling, goal));
      // A fresh bucket per run, so no run overwrites another's objects.
      const oursBucket = await motoBucket(s3);
      const ours = await measure(async () => {
        const hydrator = new Hydrator({ kinesis, s3 }, { bucketName: oursBucket, prefix: 'bench/', streamArns: [stream.arn], read: { pageSize } });
        const result = await hydrator.hydrate({ messageId: `bench-${pageSize}`, body });
        return { getRecordsCalls: result.read?.getRecordsCalls ?? 0, records: result.recordsWritten };
      });
      rows.push(row(pageSize, 'ours (Hydrator)', ours, goal));
      const naiveBucket = await motoBucket(s3);
      const naive = await measure(() => naiveHydrate(kinesis, s3, naiveBucket, stream, pageSize));
      rows.push(row(pageSize, 'naive (one GetRecords)', naive, goal));
    }
    table(`HydratingDlq: hydrating a ${RECORDS.toLocaleString('en-US')}-record range (~200 B JSON records, ${PARTITION_KEYS.length} partition keys) `
      + `on moto Kinesis and S3, ours against a naive single-GetRecords hydrator; ${WRITE_CONCURRENCY} PutObjects at a time`,
    ['page size', 'implementation', 'GetRecords calls', 'goal (2 x ceil(N/page))', 'records written', 'missed', 'ms', 'records/s',
      'peak RSS +MiB', 'peak heap +MiB'], rows);
    console.log('(moto on loopback: read times as ratios. The ceiling writes nothing: its "records written" are the records read.)');
  } finally {
    await motoGlobalTeardown();
  }
}

/** A record's data: about 200 bytes of JSON. */
function payload(i: number): string {
  const head = JSON.stringify({ orderId: `order-${i}`, tenant: PARTITION_KEYS[i % PARTITION_KEYS.length], amount: i % 997, note: '' });
  return head.replace('"note":""', `"note":"${'n'.repeat(200 - head.length)}"`);
}

function row(pageSize: number, name: string, m: Measured, goal: number): (string | number)[] {
  return [pageSize.toLocaleString('en-US'), name, m.getRecordsCalls, goal, m.records, RECORDS - m.records, m.ms.toFixed(0),
    (m.records / (m.ms / 1000)).toFixed(0), m.rssMiB.toFixed(1), m.heapMiB.toFixed(1)];
}

/** Times `run` and samples this process's RSS and heap every 20 ms during it; memory is the peak over the value just before. */
async function measure(run: () => Promise<Run>): Promise<Measured> {
  gc();
  const before = process.memoryUsage();
  let peakRss = before.rss;
  let peakHeap = before.heapUsed;
  const sample = () => {
    const now = process.memoryUsage();
    peakRss = Math.max(peakRss, now.rss);
    peakHeap = Math.max(peakHeap, now.heapUsed);
  };
  const timer = setInterval(sample, MEMORY_SAMPLE_MS);
  const start = process.hrtime.bigint();
  try {
    const result = await run();
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    sample();
    return { ...result, ms, rssMiB: (peakRss - before.rss) / MIB, heapMiB: (peakHeap - before.heapUsed) / MIB };
  } finally {
    clearInterval(timer);
  }
}

/** The ceiling: the range reader's GetRecords loop, counting the records and writing nothing. */
async function readOnly(kinesis: KinesisClient, stream: MotoStream, pageSize: number): Promise<Run> {
  let records = 0;
  const range = {
    streamArn: stream.arn,
    shardId: stream.shardId,
    startSequenceNumber: stream.sequenceNumbers[0],
    endSequenceNumber: stream.sequenceNumbers[RECORDS - 1],
  };
  const summary = await readShardRange(kinesis, range, async (page) => { records += page.length; }, { pageSize });
  return { getRecordsCalls: summary.getRecordsCalls, records };
}

/**
 * The naive hydrator: one iterator at the start, one GetRecords, and each returned record up to
 * the end written as one object, WRITE_CONCURRENCY at a time. It never asks for a next page.
 */
async function naiveHydrate(kinesis: KinesisClient, s3: S3Client, bucket: string, stream: MotoStream, pageSize: number): Promise<Run> {
  const end = BigInt(stream.sequenceNumbers[RECORDS - 1]);
  const { ShardIterator } = await kinesis.send(new GetShardIteratorCommand({
    StreamARN: stream.arn, ShardId: stream.shardId, ShardIteratorType: 'AT_SEQUENCE_NUMBER', StartingSequenceNumber: stream.sequenceNumbers[0],
  }));
  const page = await kinesis.send(new GetRecordsCommand({ StreamARN: stream.arn, ShardIterator, Limit: pageSize }));
  const records = (page.Records ?? []).filter((r) => BigInt(r.SequenceNumber!) <= end);
  await writeAll(records.map((record) => () => put(s3, bucket, `naive/${stream.shardId}/${record.SequenceNumber}.json`, {
    sequenceNumber: record.SequenceNumber,
    partitionKey: record.PartitionKey,
    approximateArrivalTimestamp: record.ApproximateArrivalTimestamp,
    data: Buffer.from(record.Data!).toString('utf8'),
  })));
  return { getRecordsCalls: 1, records: records.length };
}

async function put(s3: S3Client, bucket: string, key: string, body: object): Promise<void> {
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: JSON.stringify(body), ContentType: 'application/json' }));
}

/** Runs the writes WRITE_CONCURRENCY at a time. */
async function writeAll(writes: (() => Promise<void>)[]): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < writes.length) await writes[next++]();
  };
  await Promise.all(Array.from({ length: WRITE_CONCURRENCY }, worker));
}
