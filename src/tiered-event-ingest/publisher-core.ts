import { createHash } from 'crypto';
import type { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { BatchPacker, PackableRecord, PackedBatch } from './batch-packer';
import { LeaseLostError, ObjectLedger } from './object-ledger-core';
import { checkRecord } from '../runtime/curated-envelope';
import { isValidUtf8, maybeGunzip, readNdjsonLines } from '../runtime/ndjson-lines';
import { DEFAULT_MAX_ENTRY_BYTES, putEventsReliably } from '../runtime/put-events';

/** The S3 object version one notification is about. */
export interface ObjectRef {
  readonly bucket: string;
  readonly key: string;
  readonly versionId?: string;
  /** S3's event sequencer: tells two writes of an unversioned key apart. */
  readonly sequencer?: string;
}

export interface PublisherConfig {
  readonly curatedBusName: string;
  /** Key prefix quarantined lines are written under, e.g. `quarantine/`. */
  readonly quarantinePrefix: string;
  readonly maxEntryBytes: number;
  readonly maxRecords: number;
  readonly leaseSeconds: number;
  /** Closed batches published between two checkpoints. @default 10 */
  readonly entriesPerFlight?: number;
  /** Quarantined bytes buffered before they are written out. @default 1 MiB */
  readonly quarantineFlushBytes?: number;
  /**
   * Time, ms, kept in reserve before the invocation ends: with less left, no new flight
   * starts and throttled entries stop being retried, so the run checkpoints and stops
   * cleanly instead of timing out. Only used with `PublisherDeps.remainingMs`. @default 15000
   */
  readonly reserveMs?: number;
}

export interface PublisherDeps {
  readonly eventBridge: EventBridgeClient;
  readonly ledger: ObjectLedger;
  /** Opens the object's bytes as a stream (gzip is detected and undone here). */
  readonly openObject: (ref: ObjectRef) => Promise<AsyncIterable<Uint8Array>>;
  /** Writes one quarantine segment (NDJSON). Same key, same content on a retry. */
  readonly writeQuarantine: (key: string, body: string) => Promise<void>;
  /** Identifies this attempt in the ledger (e.g. the Lambda request id). */
  readonly owner: string;
  readonly nowSeconds?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
  /**
   * Time left in the invocation, ms (Lambda's `getRemainingTimeInMillis`). With it,
   * throttled entries are retried with backoff for as long as time allows.
   * @default - no deadline: throttled entries get 4 attempts
   */
  readonly remainingMs?: () => number;
}

/** What happened to one object; `inputRecords === published + alreadyPublished + quarantined` when complete. */
export interface ObjectReport {
  readonly objectId: string;
  /** `published`: processed to the end; `duplicate`: already done; `busy`: another worker holds it. */
  readonly outcome: 'published' | 'duplicate' | 'busy';
  /** Line the run started at (1 unless resuming after a failure). */
  readonly startLine: number;
  /** Non-blank lines read from `startLine` on. */
  readonly inputRecords: number;
  readonly published: number;
  /** Records of entries a previous attempt had already put (skipped on this resume). */
  readonly alreadyPublished: number;
  readonly quarantined: number;
  /** Batch events put on the curated bus. */
  readonly events: number;
  /** 64 KB chunks billed for those events. */
  readonly billedChunks: number;
  /** Total entry bytes of those events. */
  readonly publishedBytes: number;
  /** Quarantine reasons and how many records each. */
  readonly quarantineReasons: Record<string, number>;
  /** With `busy`: when the other worker's lease ends (epoch seconds). */
  readonly busyUntil?: number;
}

/**
 * The object could not be finished now (AWS failure); a retry resumes at the checkpoint.
 * `partial` holds what this attempt did publish and quarantine before it stopped.
 */
export class PublishRetryError extends Error {
  constructor(objectId: string, readonly line: number, detail: string, readonly partial: ObjectReport,
    /** The run stopped because its invocation was running out of time, not because AWS failed. */
    readonly outOfTime = false) {
    super(`publishing ${objectId} stopped at line ${line}: ${detail}; a retry resumes there`);
    this.name = 'PublishRetryError';
  }
}

/** A lease checkpointed with this length ends a second before now: free to claim at once. */
const RELEASED_LEASE = -1;
/** Lines longer than this are quarantined by reference (line number and length) only. */
export const MAX_BUFFERED_LINE_BYTES = 8 * 1024 * 1024;
/** Entry errors caused by the entry's content: its records are quarantined, not retried. */
const CONTENT_ERROR_CODES = new Set(['MalformedDetail', 'InvalidArgument', 'ValidationException']);

interface QuarantineItem {
  readonly line: number;
  readonly reason: string;
  readonly category: string;
  readonly text?: Buffer;
  readonly length: number;
}

/** Stable id of an object version: a duplicate notification gives the same id. */
export function objectIdOf(ref: ObjectRef): string {
  return `${ref.bucket}/${ref.key}#${ref.versionId ?? ref.sequencer ?? 'unversioned'}`;
}

/**
 * Publishes one S3 object of curated records as CuratedBatch events. Every non-blank line
 * ends up published or quarantined with its reason; when AWS fails, the ledger keeps the
 * cursor and the error makes the queue retry (and finally park) the object.
 */
export async function publishObject(deps: PublisherDeps, config: PublisherConfig, ref: ObjectRef): Promise<ObjectReport> {
  const now = deps.nowSeconds ?? (() => Math.floor(Date.now() / 1000));
  const objectId = objectIdOf(ref);
  const claim = await deps.ledger.claim(objectId, deps.owner, now(), config.leaseSeconds);
  if (claim.state !== 'claimed') {
    return {
      objectId,
      outcome: claim.state === 'done' ? 'duplicate' : 'busy',
      startLine: 0,
      inputRecords: 0,
      alreadyPublished: 0,
      published: 0,
      quarantined: 0,
      events: 0,
      billedChunks: 0,
      publishedBytes: 0,
      quarantineReasons: {},
      ...(claim.state === 'busy' ? { busyUntil: claim.leaseUntil } : {}),
    };
  }

  const entriesPerFlight = config.entriesPerFlight ?? 10;
  const reserveMs = config.reserveMs ?? 15_000;
  const outOfTime = () => deps.remainingMs !== undefined && deps.remainingMs() < reserveMs;
  const quarantineFlushBytes = config.quarantineFlushBytes ?? 1024 * 1024;
  const packer = new BatchPacker({
    maxEntryBytes: config.maxEntryBytes,
    maxRecords: config.maxRecords,
    objectId,
    origin: { bucket: ref.bucket, key: ref.key, versionId: ref.versionId },
  });
  const startLine = claim.cursor.line;
  let alreadyPut = new Set(claim.cursor.publishedInFlight);
  let putInFlight: string[] = [];
  let flight: PackedBatch[] = [];
  let quarantine: QuarantineItem[] = [];
  let quarantineBytes = 0;
  let flightStart = startLine;
  let nextLine = startLine;
  const totals = { inputRecords: 0, published: 0, alreadyPublished: 0, quarantined: 0, events: 0, billedChunks: 0, publishedBytes: 0 };
  const reasons: Record<string, number> = {};

  const park = (item: QuarantineItem) => {
    quarantine.push(item);
    quarantineBytes += quarantineCost(item);
  };
  const report = (): ObjectReport => ({ objectId, outcome: 'published', startLine, ...totals, quarantineReasons: { ...reasons } });

  const flushFlight = async () => {
    const cursorAfter = packer.openFirstLine ?? nextLine;
    const parked = quarantine.filter((q) => q.line < cursorAfter);
    const keep = quarantine.filter((q) => q.line >= cursorAfter);
    if (flight.length === 0 && parked.length === 0) return;
    if (outOfTime()) {
      // Stop before the timeout: nothing of this flight was put; a retry resumes at its start.
      await deps.ledger.checkpoint(objectId, deps.owner, { line: flightStart, publishedInFlight: [...alreadyPut].sort() }, now(), RELEASED_LEASE);
      throw new PublishRetryError(objectId, flightStart, `less than ${reserveMs} ms of the invocation left`, report(), true);
    }

    const skipped = flight.filter((batch) => alreadyPut.has(batch.id));
    const putIds = skipped.map((batch) => batch.id);
    putInFlight = putIds; // the same array: ids put below are seen by a release after a failure
    const transient: string[] = [];
    const alreadyPublished = skipped.reduce((n, b) => n + b.recordCount, 0);
    const flightTotals = { published: 0, alreadyPublished, events: 0, billedChunks: 0, publishedBytes: 0 };
    // An entry refused for its content is split in two and the halves put again, until the
    // records EventBridge refuses are alone: only they are quarantined, not their batch.
    let toPut = flight.filter((batch) => !alreadyPut.has(batch.id));
    const halves: PackedBatch[] = [];
    const entriesToPut = toPut.length;
    while (toPut.length > 0) {
      const outcomes = await putEventsReliably(deps.eventBridge, toPut.map((batch) => ({
        // Built for the call that carries it: a Detail of up to 1 MiB is then garbage when
        // that call returns, instead of being held (and promoted) through the whole flight.
        size: batch.bytes,
        build: () => ({ ...batch.entry(), EventBusName: config.curatedBusName }),
      })), {
        maxRequestBytes: DEFAULT_MAX_ENTRY_BYTES, // the request limit: small entries share a call
        sleep: deps.sleep,
        // With a deadline, throttled entries back off for as long as the invocation allows.
        ...(deps.remainingMs ? { maxAttempts: Number.MAX_SAFE_INTEGER, shouldStop: outOfTime } : {}),
      });
      const refused: PackedBatch[] = [];
      outcomes.forEach((outcome, k) => {
        const batch = toPut[k];
        if (outcome.ok) {
          putIds.push(batch.id);
          flightTotals.published += batch.recordCount;
          flightTotals.events++;
          flightTotals.billedChunks += batch.chunks;
          flightTotals.publishedBytes += batch.bytes;
        } else if (!outcome.callFailed && CONTENT_ERROR_CODES.has(outcome.errorCode ?? '')) {
          if (batch.recordCount > 1) {
            refused.push(batch);
            return;
          }
          const r = batch.records[0];
          parked.push({
            line: r.line,
            category: 'rejected by PutEvents',
            text: r.text,
            length: r.text.length,
            reason: `PutEvents rejected the record: ${outcome.errorCode}: ${outcome.errorMessage ?? ''}`.trim(),
          });
        } else {
          transient.push(`${outcome.errorCode}: ${outcome.errorMessage ?? ''}`.trim());
        }
      });
      toPut = refused.flatMap((batch) => {
        const records = batch.records;
        const half = Math.ceil(records.length / 2);
        const split = [packer.buildBatch(records.slice(0, half)), packer.buildBatch(records.slice(half))];
        halves.push(...split);
        return split;
      }).filter((batch) => {
        if (!alreadyPut.has(batch.id)) return true;
        putIds.push(batch.id); // put by the attempt before this one
        flightTotals.alreadyPublished += batch.recordCount;
        return false;
      });
    }
    parked.sort((a, b) => a.line - b.line);
    const addTotals = () => {
      totals.published += flightTotals.published;
      totals.alreadyPublished += flightTotals.alreadyPublished;
      totals.events += flightTotals.events;
      totals.billedChunks += flightTotals.billedChunks;
      totals.publishedBytes += flightTotals.publishedBytes;
      totals.quarantined += parked.length;
      for (const q of parked) reasons[q.category] = (reasons[q.category] ?? 0) + 1;
    };
    if (transient.length > 0) {
      // Lease released: the queue's retry may claim the object at once. Nothing of this flight
      // is quarantined yet: the retry examines its lines again (with the settings it then has),
      // so a segment never lists a line a later attempt publishes.
      await deps.ledger.checkpoint(objectId, deps.owner, { line: flightStart, publishedInFlight: putIds.sort() }, now(), RELEASED_LEASE);
      // What this flight put or parked stays done; only the failed entries are retried.
      totals.published += flightTotals.published;
      totals.events += flightTotals.events;
      totals.billedChunks += flightTotals.billedChunks;
      totals.publishedBytes += flightTotals.publishedBytes;
      throw new PublishRetryError(objectId, flightStart,
        `${transient.length} of ${entriesToPut} batch entries failed (${[...new Set(transient)].join('; ')})`, report());
    }
    if (parked.length > 0) {
      await deps.writeQuarantine(quarantineKey(config.quarantinePrefix, ref, flightStart, cursorAfter - 1), parked.map(quarantineLine).join(''));
    }
    await deps.ledger.checkpoint(objectId, deps.owner, { line: cursorAfter, publishedInFlight: [] }, now(), config.leaseSeconds);
    addTotals();
    // Done with: the packer reuses their buffers for the next batches.
    packer.release(flight);
    packer.release(halves);
    flight = [];
    quarantine = keep;
    quarantineBytes = keep.reduce((sum, q) => sum + quarantineCost(q), 0);
    flightStart = cursorAfter;
    alreadyPut = new Set();
    putInFlight = [];
  };

  try {
    return await run();
  } catch (err) {
    if (err instanceof PublishRetryError || err instanceof LeaseLostError) throw err;
    // Any other failure (reading the object, writing the quarantine, the ledger): release the
    // lease at the last checkpoint, so the queue's retry claims the object instead of finding
    // it busy until the lease runs out and spending its receives. Best effort: if this fails
    // too, the lease expires by itself.
    await deps.ledger.checkpoint(objectId, deps.owner, { line: flightStart, publishedInFlight: [...alreadyPut, ...putInFlight].sort() },
      now(), RELEASED_LEASE).catch(() => undefined);
    throw err;
  }

  async function run(): Promise<ObjectReport> {
    const chunks = readNdjsonLines(await maybeGunzip(await deps.openObject(ref)), MAX_BUFFERED_LINE_BYTES);
    for await (const lines of chunks) {
      for (const line of lines) {
        if (line.number < startLine) continue;
        nextLine = line.number + 1;
        totals.inputRecords++;
        const record = examine(line.number, line.text, line.length, park);
        if (record) {
          const alone = packer.sizeAlone(record);
          if (alone > config.maxEntryBytes) {
            park({
              line: line.number,
              text: record.text,
              length: record.text.length,
              category: 'over the entry limit',
              reason: `record of ${record.text.length} bytes makes a batch entry of ${alone} bytes, over the limit of ${config.maxEntryBytes} bytes`,
            });
          } else {
            for (const batch of packer.add(record)) flight.push(batch);
          }
        }
        if (flight.length >= entriesPerFlight) {
          await flushFlight();
        } else if (quarantineBytes >= quarantineFlushBytes) {
          flight.push(...packer.flush());
          await flushFlight();
        }
      }
    }
    flight.push(...packer.flush());
    await flushFlight();
    await deps.ledger.complete(objectId, deps.owner, {
      records: totals.inputRecords, published: totals.published, quarantined: totals.quarantined, events: totals.events,
    }, now());
    return report();
  }
}

/** Validates one line; parks it with its reason and returns undefined if it is not a record. */
function examine(line: number, text: Buffer | undefined, length: number, park: (item: QuarantineItem) => void): PackableRecord | undefined {
  if (!text) {
    park({
      line,
      length,
      category: 'line too long to read',
      reason: `line of ${length} bytes is longer than ${MAX_BUFFERED_LINE_BYTES} bytes; kept by reference only (the source object holds it)`,
    });
    return undefined;
  }
  const decoded = text.toString('utf8');
  // Decoding replaces invalid bytes with U+FFFD; only then is the (rarer) exact check needed.
  if (decoded.includes('\uFFFD') && !isValidUtf8(text)) {
    park({ line, text, length, category: 'not UTF-8', reason: 'line is not valid UTF-8' });
    return undefined;
  }
  let value: unknown;
  try {
    value = JSON.parse(decoded);
  } catch (err) {
    park({ line, text, length, category: 'invalid JSON', reason: `invalid JSON: ${(err as Error).message}` });
    return undefined;
  }
  const check = checkRecord(value);
  if (!check.valid) {
    park({ line, text, length, category: 'not a curated record', reason: `not a curated record: ${check.errors.join('; ')}` });
    return undefined;
  }
  return { line, text, tenant: (value as { tenant: string | null }).tenant };
}

/** Buffered bytes an item costs: its text plus a fixed share for the reason and JSON. */
function quarantineCost(item: QuarantineItem): number {
  return (item.text?.length ?? 0) + 256;
}

/**
 * One quarantined line: the record as text, or as base64 when it is not valid UTF-8 (so
 * its bytes survive exactly), or neither when it was too long to read.
 */
function quarantineLine(item: QuarantineItem): string {
  const binary = item.category === 'not UTF-8';
  return JSON.stringify({
    line: item.line,
    reason: item.reason,
    bytes: item.length,
    record: item.text && !binary ? item.text.toString('utf8') : null,
    ...(item.text && binary ? { recordBase64: item.text.toString('base64') } : {}),
  }) + '\n';
}

/** S3 keys are at most 1024 bytes: a long object key is replaced by its hash. */
const MAX_S3_KEY_BYTES = 1024;

/** Deterministic key of a flight's quarantine segment: the same flight rewrites the same object. */
export function quarantineKey(prefix: string, ref: ObjectRef, firstLine: number, lastLine: number): string {
  const version = ref.versionId ?? ref.sequencer ?? 'unversioned';
  const suffix = `/${version}/lines-${firstLine}-${lastLine}.ndjson`;
  const key = `${prefix}${ref.key}${suffix}`;
  if (Buffer.byteLength(key) <= MAX_S3_KEY_BYTES) return key;
  return `${prefix}by-hash/${createHash('sha256').update(ref.key).digest('hex')}${suffix}`;
}
