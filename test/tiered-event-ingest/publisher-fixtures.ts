import { gzipSync } from 'zlib';
import { EventBridgeClient, PutEventsCommand, PutEventsCommandInput } from '@aws-sdk/client-eventbridge';
import { InMemoryObjectLedger } from '../../src/tiered-event-ingest/object-ledger-core';
import { ObjectRef, PublisherConfig, PublisherDeps } from '../../src/tiered-event-ingest/publisher-core';

export const REF: ObjectRef = { bucket: 'ingest-bucket', key: 'data/tenant=acme/2026/11/22/10/stream-1.gz', versionId: 'v1' };

export const CONFIG: PublisherConfig = {
  curatedBusName: 'curated',
  quarantinePrefix: 'quarantine/',
  maxEntryBytes: 1_048_576,
  maxRecords: 1000,
  leaseSeconds: 360,
};

/** A record envelope line as the slow lane's rule writes it through Firehose. */
export function recordLine(n: number, payload: unknown = { n }, tenant: string | null = 'acme'): string {
  return JSON.stringify({
    schemaVersion: '1.0',
    kind: 'record',
    id: `evt-${n}`,
    tenant,
    channel: 'sms',
    correlationId: `c-${n}`,
    lane: 'slow',
    time: '2026-11-22T10:00:00Z',
    source: 'journeys',
    detailType: 'MessageRequested',
    payload,
  });
}

/** The object's bytes: lines joined by `eol`, with or without a final line ending, optionally gzipped. */
export function objectBytes(lines: string[], options: { eol?: string; trailing?: boolean; gzip?: boolean } = {}): Buffer {
  const eol = options.eol ?? '\n';
  const text = lines.join(eol) + (options.trailing === false || lines.length === 0 ? '' : eol);
  const bytes = Buffer.from(text, 'utf8');
  return options.gzip ? gzipSync(bytes) : bytes;
}

/** Streams `bytes` in chunks of `chunkSize`, so lines straddle chunk borders. */
export async function* chunked(bytes: Buffer, chunkSize = 4096): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += chunkSize) yield bytes.subarray(i, i + chunkSize);
}

/** Everything the stub EventBridge accepted, decoded. */
export interface Published {
  readonly calls: PutEventsCommandInput[];
  readonly entries: { detailType: string; detail: any; bytes: number }[];
  /** Record ids in publish order, across all batches. */
  readonly recordIds: string[];
}

/** A fake EventBridge whose per-entry failure is decided by `fail(entryIndexOverall)`. */
export function stubEventBridge(fail: (n: number) => string | undefined = () => undefined): { client: EventBridgeClient; published: Published } {
  const published: Published = { calls: [], entries: [], recordIds: [] };
  let counter = 0;
  const client = {
    send: async (command: PutEventsCommand) => {
      const input = command.input;
      published.calls.push(input);
      const results = (input.Entries ?? []).map((entry) => {
        const code = fail(counter++);
        if (code) return { ErrorCode: code, ErrorMessage: `injected ${code}` };
        const detail = JSON.parse(entry.Detail!);
        const bytes = Buffer.byteLength(entry.Detail!) + Buffer.byteLength(entry.Source!) + Buffer.byteLength(entry.DetailType!);
        published.entries.push({ detailType: entry.DetailType!, detail, bytes });
        for (const r of detail.records ?? []) published.recordIds.push(r.id);
        return { EventId: `id-${counter}` };
      });
      return { FailedEntryCount: results.filter((r) => 'ErrorCode' in r).length, Entries: results };
    },
  } as unknown as EventBridgeClient;
  return { client, published };
}

/** Deps with an in-memory ledger and quarantine store. */
export function depsFor(bytes: Buffer, client: EventBridgeClient, ledger = new InMemoryObjectLedger(), owner = 'attempt-1'):
PublisherDeps & { quarantine: Map<string, string>; ledger: InMemoryObjectLedger } {
  const quarantine = new Map<string, string>();
  return {
    eventBridge: client,
    ledger,
    owner,
    openObject: async () => chunked(bytes),
    writeQuarantine: async (key, body) => { quarantine.set(key, body); },
    sleep: async () => undefined,
    quarantine,
  };
}

/** Quarantined items across all segments. */
export function quarantined(store: Map<string, string>): { line: number; reason: string; bytes: number; record: string | null }[] {
  return [...store.values()].flatMap((body) => body.split('\n').filter((l) => l).map((l) => JSON.parse(l)));
}

/** A seeded pseudo-random generator (a linear congruential one), so failure injection is repeatable. */
export function seededRandom(seed: number): () => number {
  let state = seed % 2147483648;
  return () => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return state / 2147483648;
  };
}
