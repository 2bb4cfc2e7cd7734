/**
 * One batch-publisher benchmark run, in its own process so its peak RSS is its own.
 * Bundled with esbuild and run with plain node by bench/batch-publisher.ts.
 *
 *   node worker.js <ours|naive|ceiling> <totalMiB> <payloadBytes>
 *
 * Feeds generated NDJSON (curated record lines whose payload is `payloadBytes` bytes, plus
 * about 170 bytes of envelope) to the
 * publisher core, or to the naive baseline, with an in-memory EventBridge stub that
 * rejects entries over the 1 MiB limit, and prints one JSON line of figures. `ceiling`
 * reads the same bytes doing only what any publisher must: split lines, JSON.parse each.
 */
import { readFileSync } from 'fs';
import type { PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { DEFAULT_MAX_ENTRY_BYTES, putEventsEntrySize, putEventsReliably } from '../src/runtime/put-events';
import { BILLING_CHUNK_BYTES, DEFAULT_BATCH_ENTRY_BYTES } from '../src/tiered-event-ingest/batch-packer';
import { InMemoryObjectLedger } from '../src/tiered-event-ingest/object-ledger-core';
import { publishObject } from '../src/tiered-event-ingest/publisher-core';

const MAX_ENTRY_BYTES = DEFAULT_MAX_ENTRY_BYTES;
const SEED_RECORDS_PER_EVENT = 1000;

interface Counters { calls: number; entries: number; acceptedBytes: number; billedChunks: number; rejectedRecords: number; publishedRecords: number }

/** An EventBridge stand-in: accepts entries up to the limit and counts what AWS would bill. */
function stubEventBridge(counters: Counters) {
  return {
    send: async (command: PutEventsCommand) => {
      counters.calls++;
      const entries = command.input.Entries ?? [];
      return {
        Entries: entries.map((entry) => {
          const size = putEventsEntrySize(entry);
          if (size > MAX_ENTRY_BYTES) {
            counters.rejectedRecords += recordCount(entry.Detail!);
            return { ErrorCode: 'ValidationException', ErrorMessage: `entry of ${size} bytes is over ${MAX_ENTRY_BYTES}` };
          }
          counters.entries++;
          counters.acceptedBytes += size;
          counters.billedChunks += Math.ceil(size / BILLING_CHUNK_BYTES);
          counters.publishedRecords += recordCount(entry.Detail!);
          return { EventId: String(counters.entries) };
        }),
      };
    },
  } as any;
}

/**
 * `recordCount` without parsing a megabyte of JSON (both publishers write it in the header).
 * Read digit by digit: a RegExp would keep its last subject, a slice of the Detail that
 * holds the whole Detail, alive until the next match, so the stub itself would keep one
 * request body at a time and push each into the old generation (it measurably did).
 */
function recordCount(detail: string): number {
  const key = '"recordCount":';
  const at = detail.indexOf(key);
  if (at === -1 || at > 2048) return 0;
  let count = 0;
  for (let i = at + key.length; i < detail.length; i++) {
    const digit = detail.charCodeAt(i) - 48;
    if (digit < 0 || digit > 9) break;
    count = count * 10 + digit;
  }
  return count;
}

/** A curated record line whose payload (`{"p":"xx…"}`) is `payloadBytes` bytes. */
function line(n: number, payloadBytes: number): string {
  return JSON.stringify({
    schemaVersion: '1.0',
    kind: 'record',
    id: `evt-${n}`,
    tenant: 'acme',
    channel: 'sms',
    correlationId: null,
    lane: 'slow',
    time: '2026-11-22T10:00:00Z',
    payload: { p: 'x'.repeat(Math.max(0, payloadBytes - 8)) },
  });
}

/** `totalMiB` of NDJSON as 1 MiB blocks built once and yielded again and again (generation costs nothing). */
function generate(totalMiB: number, payloadBytes: number): { source: () => AsyncIterable<Uint8Array>; bytes: number; records: number } {
  const lines: string[] = [];
  let size = 0;
  for (let n = 1; size < 1024 * 1024; n++) {
    const l = line(n, payloadBytes) + '\n';
    if (size + l.length > 1024 * 1024) break;
    lines.push(l);
    size += l.length;
  }
  const block = Buffer.from(lines.join(''));
  return {
    source: async function* () { for (let i = 0; i < totalMiB; i++) yield block; },
    bytes: block.length * totalMiB,
    records: lines.length * totalMiB,
  };
}

/**
 * The ceiling: the least any publisher does with the same bytes, split them into lines and
 * JSON.parse each line, nothing else (no validation, no batching, no PutEvents). A line cut
 * by a chunk border is joined first. Returns the lines parsed.
 */
async function ceiling(source: AsyncIterable<Uint8Array>): Promise<number> {
  let lines = 0;
  let rest: Buffer | undefined; // the start of a line cut by a chunk border
  for await (const raw of source) {
    const chunk = Buffer.isBuffer(raw) ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
    let start = 0;
    for (let nl = chunk.indexOf(10); nl !== -1; nl = chunk.indexOf(10, start)) {
      const text = rest ? Buffer.concat([rest, chunk.subarray(0, nl)]).toString('utf8') : chunk.toString('utf8', start, nl);
      rest = undefined;
      if (text.length > 0) {
        JSON.parse(text);
        lines++;
      }
      start = nl + 1;
    }
    if (start < chunk.length) rest = rest ? Buffer.concat([rest, chunk.subarray(start)]) : chunk.subarray(start);
  }
  if (rest && rest.length > 0) {
    JSON.parse(rest.toString('utf8'));
    lines++;
  }
  return lines;
}

/** The seed's approach: the whole object in memory, then fixed 1000-record events. */
async function naive(source: AsyncIterable<Uint8Array>, client: any): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const chunk of source) chunks.push(Buffer.from(chunk));
  const whole = Buffer.concat(chunks);
  const records: unknown[] = [];
  let start = 0;
  for (let nl = whole.indexOf(10, start); nl !== -1; nl = whole.indexOf(10, start)) {
    records.push(JSON.parse(whole.subarray(start, nl).toString('utf8')));
    start = nl + 1;
  }
  for (let i = 0; i < records.length; i += SEED_RECORDS_PER_EVENT * 10) {
    const entries = [];
    for (let j = i; j < Math.min(i + SEED_RECORDS_PER_EVENT * 10, records.length); j += SEED_RECORDS_PER_EVENT) {
      const batch = records.slice(j, j + SEED_RECORDS_PER_EVENT);
      entries.push({
        EventBusName: 'curated',
        Source: 'cdk-event-fabric',
        DetailType: 'CuratedBatch',
        Detail: JSON.stringify({ recordCount: batch.length, records: batch }),
      });
    }
    await putEventsReliably(client, entries, { maxRequestBytes: MAX_ENTRY_BYTES, sleep: async () => undefined });
  }
}

/**
 * Peak RSS of this process. getrusage's maxRSS is inherited through fork and exec, so a
 * child of a big parent would report the parent's peak; Linux's VmHWM belongs to this
 * process image alone.
 */
function peakRssKiB(): number {
  try {
    const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    if (match) return Number(match[1]);
  } catch {
    // not Linux
  }
  return process.resourceUsage().maxRSS;
}

async function main(): Promise<void> {
  const [which, totalMiB, payloadBytes] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
  const input = generate(totalMiB, payloadBytes);
  const counters: Counters = { calls: 0, entries: 0, acceptedBytes: 0, billedChunks: 0, rejectedRecords: 0, publishedRecords: 0 };
  const client = stubEventBridge(counters);
  const start = process.hrtime.bigint();
  if (which === 'ours') {
    await publishObject({
      eventBridge: client,
      ledger: new InMemoryObjectLedger(),
      owner: 'bench',
      openObject: async () => input.source(),
      writeQuarantine: async () => undefined,
      sleep: async () => undefined,
    }, { curatedBusName: 'curated', quarantinePrefix: 'quarantine/', maxEntryBytes: DEFAULT_BATCH_ENTRY_BYTES, maxRecords: SEED_RECORDS_PER_EVENT, leaseSeconds: 360 },
    { bucket: 'bench', key: 'data/bench.ndjson' });
  } else if (which === 'ceiling') {
    counters.publishedRecords = await ceiling(input.source());
  } else {
    await naive(input.source(), client);
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  console.log(JSON.stringify({
    which,
    inputBytes: input.bytes,
    inputRecords: input.records,
    seconds,
    ...counters,
    peakRssMiB: peakRssKiB() / 1024,
  }));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
