import { createHash } from 'crypto';
import { once } from 'events';
import { PassThrough } from 'stream';
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import {
  DeleteMessageBatchCommand, Message, MessageAttributeValue, ReceiveMessageCommand, SendMessageBatchCommand, SendMessageBatchRequestEntry, SQSClient,
} from '@aws-sdk/client-sqs';
import { Upload } from '@aws-sdk/lib-storage';
import { errorText, nonNegativeInteger, positiveInteger } from '../runtime/argument-checks';
import { maybeGunzip } from '../runtime/ndjson-lines';

/**
 * Redrive of the slow lane's dead ends. Records parked in S3 (`quarantine/` segments the
 * batch publisher wrote, `firehose-errors/` objects Firehose wrote) are copied, one record
 * per line, into a new object under `data/redrive/`: its "Object Created" notification
 * takes it through the normal publisher, which publishes each record or quarantines it
 * again with its reason. Nothing here publishes, so every record goes through the one
 * path that validates, packs and deduplicates. Notifications parked in the object
 * dead-letter queue are moved back to the object queue.
 */

/** Key prefixes redrive reads from: the only places the slow lane parks records in S3. */
export const PARKED_PREFIXES: readonly string[] = ['quarantine/', 'firehose-errors/'];
/** Redriven objects are written under this prefix: inside `data/`, so the publisher is notified. */
export const REDRIVE_KEY_PREFIX = 'data/redrive/';
/** Parked objects handled per call unless the request says otherwise. */
export const DEFAULT_MAX_REDRIVE_OBJECTS = 100;
/** Entries of a parked object longer than this are reported, not read (a quarantined 8 MiB line escaped as JSON fits). */
export const MAX_PARKED_ENTRY_BYTES = 64 * 1024 * 1024;

const QUARANTINE_PREFIX = 'quarantine/';
const MAX_S3_KEY_BYTES = 1024;
const DEFAULT_PARKED_RESERVE_MS = 30_000;
const DEFAULT_DLQ_RESERVE_MS = 10_000;
const DEFAULT_REPORT_LIMIT = 100;
/** S3's smallest part but the last one. */
const MIN_PART_BYTES = 5 * 1024 * 1024;
const DEFAULT_PART_BYTES = 8 * 1024 * 1024;

/** What redriving parked S3 objects needs; clients are injected so a handler or a test owns them. */
export interface ParkedRedriveDeps {
  readonly s3: S3Client;
  /** The ingest bucket: parked objects are read from it and redriven objects written to it. */
  readonly bucket: string;
  /** Time left in the invocation, ms (Lambda's `getRemainingTimeInMillis`): the run stops early and hands back a token. */
  readonly remainingMs: () => number;
}

/** One call of `redriveParkedObjects`: which parked objects, and how far to go. */
export interface ParkedRedriveRequest {
  /** Key prefix of the parked objects: must start with `quarantine/` or `firehose-errors/` (a full key selects one object). */
  readonly prefix: string;
  /** `nextContinuationToken` of the previous call, to go on where it stopped. */
  readonly continuationToken?: string;
  /** Parked objects handled in this call at most. @default 100 */
  readonly maxObjects?: number;
  /**
   * Redrive an object even if its redriven copy exists. A redriven object the publisher
   * already finished is published again in full, so its records are put twice. @default false
   */
  readonly force?: boolean;
  /** Read and report, write nothing. @default false */
  readonly dryRun?: boolean;
  /** No new object starts with less than this left of the invocation, ms. @default 30000 */
  readonly reserveMs?: number;
  /** Entries kept in each list of the report (counts are always complete). @default 100 */
  readonly reportLimit?: number;
  /** Size of the parts a large redriven object is uploaded in (5 MiB at least). @default 8 MiB */
  readonly partBytes?: number;
}

/** A parked entry that holds no record to redrive: it stays where it is, and the report says why. */
export interface UnrecoverableRecord {
  /** The parked object. */
  readonly key: string;
  /** Line of the parked object the entry starts on (1-based). */
  readonly line: number;
  /** Position of the entry in the parked object (1-based): tells apart entries sharing a line. */
  readonly entry: number;
  /** For a quarantine entry: its line in the object it was quarantined from. */
  readonly sourceLine?: number;
  readonly reason: string;
}

/** A parked object that could not be read or its copy not written; the next objects are still handled. */
export interface FailedParkedObject {
  readonly key: string;
  readonly reason: string;
}

/** What one call did; `complete` is false while `nextContinuationToken` leads to more. */
export interface ParkedRedriveReport {
  readonly prefix: string;
  readonly dryRun: boolean;
  /** Parked objects looked at (already redriven and failed ones included). */
  readonly objectsScanned: number;
  /** Redriven objects written (in a dry run: that would be written). */
  readonly objectsWritten: number;
  /** Records written to redriven objects (in a dry run: that would be). */
  readonly recordsRedriven: number;
  /** Parked objects skipped because their redriven copy exists (see `force`). */
  readonly alreadyRedriven: number;
  /** Parked objects with no recoverable record: nothing is written for them. */
  readonly objectsWithNothingToRedrive: number;
  readonly unrecoverableCount: number;
  /** The first `reportLimit` unrecoverable entries. */
  readonly unrecoverable: UnrecoverableRecord[];
  readonly failedObjectCount: number;
  /** The first `reportLimit` failed objects: redrive each again with its key as the prefix. */
  readonly failedObjects: FailedParkedObject[];
  /** Keys of the redriven objects written (the first `reportLimit`); in a dry run, the keys that would be. */
  readonly writtenKeys: string[];
  /** Every object under the prefix was handled. */
  readonly complete: boolean;
  /** Pass it back as `continuationToken` to go on; absent when `complete`. */
  readonly nextContinuationToken?: string;
}

/** Throws unless `prefix` lies inside a parked-records prefix: redrive must never copy `data/` into itself. */
export function assertParkedPrefix(prefix: string): void {
  if (!PARKED_PREFIXES.some((allowed) => prefix.startsWith(allowed))) {
    throw new Error(`prefix ${JSON.stringify(prefix)} is not a parked-records prefix: redrive reads only keys under `
      + 'quarantine/ (lines the batch publisher quarantined) or firehose-errors/ (records Firehose could not deliver), '
      + 'e.g. "quarantine/" or "firehose-errors/processing-failed/2026/11/22/"');
  }
}

/**
 * Key of the redriven copy of a parked object: deterministic, so a second run finds it and
 * skips the object. A key too long for S3 (1024 bytes) is replaced by its hash, as
 * quarantine keys are.
 */
export function redriveKeyFor(parkedKey: string): string {
  const key = `${REDRIVE_KEY_PREFIX}${parkedKey}`;
  if (Buffer.byteLength(key) <= MAX_S3_KEY_BYTES) return key;
  return `${REDRIVE_KEY_PREFIX}by-hash/${createHash('sha256').update(parkedKey).digest('hex')}.ndjson`;
}

/**
 * Copies the recoverable records of parked objects into new objects under `data/redrive/`,
 * one object per parked object, one record per line as it was first written (a quarantine
 * entry's `record` or `recordBase64` bytes; a Firehose error record's base64 `rawData`,
 * less one trailing newline). The parked objects are never changed (they expire by
 * lifecycle). Entries without a record are reported with their reason, never dropped
 * silently. Paged: at most `maxObjects` per call and only while time allows; call again
 * with `nextContinuationToken` until `complete`. A failed listing throws (repeat the call
 * with the same token); a parked object that fails is reported and the run goes on. Run
 * one redrive of a prefix at a time: two at once can both write the same copy.
 */
export async function redriveParkedObjects(deps: ParkedRedriveDeps, request: ParkedRedriveRequest): Promise<ParkedRedriveReport> {
  const prefix = request.prefix;
  assertParkedPrefix(prefix);
  const maxObjects = positiveInteger('maxObjects', request.maxObjects ?? DEFAULT_MAX_REDRIVE_OBJECTS);
  const reportLimit = nonNegativeInteger('reportLimit', request.reportLimit ?? DEFAULT_REPORT_LIMIT);
  const reserveMs = request.reserveMs ?? DEFAULT_PARKED_RESERVE_MS;
  const partBytes = request.partBytes ?? DEFAULT_PART_BYTES;
  if (!Number.isInteger(partBytes) || partBytes < MIN_PART_BYTES) {
    throw new Error(`partBytes must be an integer of at least ${MIN_PART_BYTES} (S3's smallest part), got ${partBytes}`);
  }
  const token = request.continuationToken;
  if (token !== undefined && !token.startsWith(prefix)) {
    throw new Error(`continuationToken ${JSON.stringify(token)} does not belong to prefix ${JSON.stringify(prefix)}: `
      + 'pass the nextContinuationToken of a call with the same prefix');
  }
  const dryRun = request.dryRun ?? false;
  const totals = {
    objectsScanned: 0,
    objectsWritten: 0,
    recordsRedriven: 0,
    alreadyRedriven: 0,
    objectsWithNothingToRedrive: 0,
    unrecoverableCount: 0,
    failedObjectCount: 0,
  };
  const unrecoverable: UnrecoverableRecord[] = [];
  const failedObjects: FailedParkedObject[] = [];
  const writtenKeys: string[] = [];
  const keep = <T>(list: T[], item: T) => { if (list.length < reportLimit) list.push(item); };

  // The token is the last key handled: listing resumes after it (S3 lists keys in order). A
  // token equal to the prefix means "from the start" (StartAfter would skip a key equal to it);
  // a key handled twice that way is harmless: it is found already redriven.
  let lastKey = token === prefix ? undefined : token;
  let handled = 0;
  let complete = false;
  paging: for (;;) {
    const page = await deps.s3.send(new ListObjectsV2Command({
      Bucket: deps.bucket,
      Prefix: prefix,
      StartAfter: lastKey,
      // One more than can be handled: tells whether anything is left after the last one.
      MaxKeys: Math.min(1000, maxObjects - handled + 1),
    }));
    for (const object of page.Contents ?? []) {
      const key = object.Key!;
      if (key.endsWith('/') && (object.Size ?? 0) === 0) {
        lastKey = key; // a folder marker, not an object of records
        continue;
      }
      if (handled >= maxObjects || deps.remainingMs() < reserveMs) break paging;
      handled++;
      totals.objectsScanned++;
      const target = redriveKeyFor(key);
      try {
        if (!request.force && await objectExists(deps, target)) {
          totals.alreadyRedriven++;
        } else {
          const result = await redriveOne(deps, key, target, { dryRun, partBytes }, (item) => {
            totals.unrecoverableCount++;
            keep(unrecoverable, item);
          });
          totals.recordsRedriven += result.records;
          if (result.records > 0) {
            totals.objectsWritten++;
            keep(writtenKeys, target);
          } else {
            totals.objectsWithNothingToRedrive++;
          }
        }
      } catch (err) {
        totals.failedObjectCount++;
        keep(failedObjects, { key, reason: errorText(err) });
      }
      lastKey = key;
    }
    if (!page.IsTruncated) {
      complete = true;
      break;
    }
  }
  return {
    prefix,
    dryRun,
    ...totals,
    unrecoverable,
    failedObjects,
    writtenKeys,
    complete,
    // Stopped before the first object: the prefix itself, read as "resume at the start".
    ...(complete ? {} : { nextContinuationToken: lastKey ?? prefix }),
  };
}

async function objectExists(deps: ParkedRedriveDeps, key: string): Promise<boolean> {
  try {
    await deps.s3.send(new HeadObjectCommand({ Bucket: deps.bucket, Key: key }));
    return true;
  } catch (err) {
    const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    if ((err as Error).name === 'NotFound' || status === 404) return false;
    throw err;
  }
}

/** Reads one parked object and writes (unless a dry run) its recoverable records; returns how many. */
async function redriveOne(deps: ParkedRedriveDeps, key: string, target: string, options: { dryRun: boolean; partBytes: number },
  report: (item: UnrecoverableRecord) => void): Promise<{ records: number }> {
  const recover = key.startsWith(QUARANTINE_PREFIX) ? recoverQuarantined : recoverFirehoseError;
  const writer = options.dryRun ? undefined : new RedrivenObjectWriter(deps, target, key, options.partBytes);
  let records = 0;
  try {
    const object = await deps.s3.send(new GetObjectCommand({ Bucket: deps.bucket, Key: key }));
    const body = await maybeGunzip(object.Body as AsyncIterable<Uint8Array>);
    for await (const entries of parkedEntries(body, MAX_PARKED_ENTRY_BYTES)) {
      for (const entry of entries) {
        const outcome = recover(entry);
        if ('reason' in outcome) {
          report({
            key,
            line: entry.line,
            entry: entry.entry,
            ...(outcome.sourceLine !== undefined ? { sourceLine: outcome.sourceLine } : {}),
            reason: outcome.reason,
          });
          continue;
        }
        records++;
        await writer?.add(outcome.bytes);
      }
    }
    // Nothing recoverable: no object at all (an empty one would be published as nothing).
    if (records > 0) await writer?.finish();
    else await writer?.abort();
  } catch (err) {
    await writer?.abort();
    throw err;
  }
  return { records };
}

/**
 * Writes a redriven object as it is read, through the SDK's managed upload (one PutObject
 * when it is small, a multipart upload of `partBytes` parts when it is not, aborted on
 * failure), so a large Firehose error object is never held whole in memory. Either way the
 * object appears at once, complete, and notifies the publisher once.
 */
class RedrivenObjectWriter {
  private readonly body = new PassThrough();
  private readonly upload: Upload;
  private readonly uploaded: Promise<unknown>;

  constructor(deps: ParkedRedriveDeps, key: string, parkedKey: string, partBytes: number) {
    this.upload = new Upload({
      client: deps.s3,
      params: { Bucket: deps.bucket, Key: key, Body: this.body, ContentType: NDJSON, Metadata: redrivenFrom(parkedKey) },
      partSize: partBytes,
      queueSize: 1,
    });
    this.uploaded = this.upload.done();
    this.uploaded.catch(() => undefined); // awaited in finish(); an early failure must not go unhandled
  }

  public async add(record: Buffer): Promise<void> {
    this.body.write(record);
    if (!this.body.write(NEWLINE)) await Promise.race([once(this.body, 'drain'), this.uploaded]);
  }

  public async finish(): Promise<void> {
    this.body.end();
    await this.uploaded;
  }

  /** Drops an unfinished upload (multipart parts are billed until aborted). */
  public async abort(): Promise<void> {
    this.body.destroy();
    await this.upload.abort().catch(() => undefined);
  }
}

/** Where the records came from, for whoever finds the object (a hashed key hides it otherwise). */
function redrivenFrom(parkedKey: string): Record<string, string> {
  const from = encodeURIComponent(parkedKey);
  return from.length <= 1800 ? { 'redriven-from': from } : { 'redriven-from-sha256': createHash('sha256').update(parkedKey).digest('hex') };
}

const NEWLINE = Buffer.from('\n');
const NDJSON = 'application/x-ndjson';

/** One JSON value (or a stretch of non-JSON text) of a parked object. */
interface ParkedEntry {
  /** Position of the entry in the object, 1-based. */
  readonly entry: number;
  /** Line the entry starts on, 1-based. */
  readonly line: number;
  /** The entry's bytes; absent when longer than the cap. */
  readonly text?: Buffer;
  readonly length: number;
  /** A line break or the end of the object came before the value was closed. */
  readonly cutShort: boolean;
}

const LINE_FEED = 0x0a;
const CARRIAGE_RETURN = 0x0d;
const SPACE = 0x20;
const TAB = 0x09;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;

/**
 * Splits a parked object into its JSON objects, whether they are newline-delimited (the
 * quarantine format, Firehose with a delimiter) or concatenated with nothing between them
 * (Firehose's default), holding one entry at most in memory. Neither format breaks a value
 * over lines, so a line break inside an unfinished value ends it as cut short: a damaged
 * entry never swallows the ones after it. Text that does not start a JSON object runs to the
 * end of its line and is returned as one entry (it fails to parse, and is reported).
 */
async function* parkedEntries(source: AsyncIterable<Uint8Array>, maxEntryBytes: number): AsyncGenerator<ParkedEntry[]> {
  let line = 1;
  let count = 0;
  let mode: 'between' | 'object' | 'text' = 'between';
  let depth = 0;
  let inString = false;
  let escaped = false;
  let startLine = 0;
  let pieces: Buffer[] = [];
  let pending = 0;

  const finish = (tail: Buffer, cutShort: boolean): ParkedEntry => {
    const length = pending + tail.length;
    let text = length <= maxEntryBytes ? (pieces.length === 0 ? tail : Buffer.concat([...pieces, tail], length)) : undefined;
    if (text && mode === 'text' && text.length > 0 && text[text.length - 1] === CARRIAGE_RETURN) text = text.subarray(0, text.length - 1);
    pieces = [];
    pending = 0;
    mode = 'between';
    return { entry: count, line: startLine, text, length: text?.length ?? length, cutShort };
  };

  for await (const raw of source) {
    const chunk = Buffer.isBuffer(raw) ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
    const found: ParkedEntry[] = [];
    let start = 0;
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i];
      if (mode === 'between') {
        if (byte === LINE_FEED) line++;
        if (byte === LINE_FEED || byte === CARRIAGE_RETURN || byte === SPACE || byte === TAB) continue;
        count++;
        startLine = line;
        start = i;
        if (byte === OPEN_BRACE) {
          mode = 'object';
          depth = 1;
          inString = false;
          escaped = false;
        } else {
          mode = 'text';
        }
      } else if (mode === 'object') {
        if (byte === LINE_FEED) {
          found.push(finish(chunk.subarray(start, i), true));
          line++;
        } else if (inString) {
          if (escaped) escaped = false;
          else if (byte === BACKSLASH) escaped = true;
          else if (byte === QUOTE) inString = false;
        } else if (byte === QUOTE) {
          inString = true;
        } else if (byte === OPEN_BRACE || byte === OPEN_BRACKET) {
          depth++;
        } else if ((byte === CLOSE_BRACE || byte === CLOSE_BRACKET) && --depth === 0) {
          found.push(finish(chunk.subarray(start, i + 1), false));
        }
      } else if (byte === LINE_FEED) {
        found.push(finish(chunk.subarray(start, i), false));
        line++;
      }
    }
    if (mode !== 'between') {
      const rest = chunk.subarray(start);
      // Past the cap only the length is counted, so an oversized entry costs no memory.
      if (pending + rest.length <= maxEntryBytes) pieces.push(rest);
      else pieces = [];
      pending += rest.length;
    }
    if (found.length > 0) yield found;
  }
  if (mode !== 'between') yield [finish(Buffer.alloc(0), mode === 'object')];
}

type Recovery = { readonly bytes: Buffer } | { readonly reason: string; readonly sourceLine?: number };

/** Parses an entry as a JSON object, or says why it is not one. */
function jsonObjectOf(entry: ParkedEntry, what: string): { value: Record<string, unknown> } | { reason: string } {
  if (!entry.text) return { reason: `entry of ${entry.length} bytes is longer than ${MAX_PARKED_ENTRY_BYTES} bytes; not read` };
  let value: unknown;
  try {
    value = JSON.parse(entry.text.toString('utf8'));
  } catch (err) {
    const cause = entry.cutShort ? 'cut short by a line break or the end of the object' : (err as Error).message;
    return { reason: `not ${what}: invalid JSON (${cause})` };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { reason: `not ${what}: not a JSON object` };
  return { value: value as Record<string, unknown> };
}

/** A quarantine entry's record: its text, or its bytes when they were kept as base64. */
function recoverQuarantined(entry: ParkedEntry): Recovery {
  const parsed = jsonObjectOf(entry, 'a quarantine entry');
  if ('reason' in parsed) return parsed;
  const q = parsed.value;
  const sourceLine = typeof q.line === 'number' ? q.line : undefined;
  const at = sourceLine !== undefined ? { sourceLine } : {};
  let bytes: Buffer;
  if (typeof q.record === 'string') {
    bytes = Buffer.from(q.record, 'utf8');
  } else if (typeof q.recordBase64 === 'string') {
    const decoded = strictBase64(q.recordBase64);
    if (!decoded) return { reason: 'recordBase64 is not valid base64', ...at };
    bytes = decoded;
  } else if (q.record === null) {
    const size = typeof q.bytes === 'number' ? `${q.bytes} bytes, ` : '';
    return {
      reason: `the record was quarantined by reference only (${size}${typeof q.reason === 'string' ? q.reason : 'no reason given'}): `
        + 'its text is only in the source object, at its line',
      ...at,
    };
  } else {
    return { reason: 'not a quarantine entry: it has neither "record" nor "recordBase64"', ...at };
  }
  if (bytes.length === 0) return { reason: 'the quarantined record is empty', ...at };
  // A quarantined record was one line of its object: a line break means the entry was altered.
  if (bytes.includes(LINE_FEED)) return { reason: 'the quarantined record holds a line break, so it is not one line of NDJSON', ...at };
  return { bytes };
}

/**
 * A Firehose error record's data: `rawData`, base64, as Firehose received it. Firehose
 * may have appended the stream's newline delimiter already; one trailing newline is
 * dropped, as the redriven object adds its own. A record holding more line breaks is
 * copied as is: its lines are what Firehose would have delivered to `data/`.
 */
function recoverFirehoseError(entry: ParkedEntry): Recovery {
  const parsed = jsonObjectOf(entry, 'a Firehose error record');
  if ('reason' in parsed) return parsed;
  const r = parsed.value;
  const code = [r.errorCode, r.ErrorCode, r.lastErrorCode].find((c) => typeof c === 'string') as string | undefined;
  const message = [r.errorMessage, r.ErrorMessage, r.lastErrorMessage].find((m) => typeof m === 'string') as string | undefined;
  const why = code || message ? ` (${[code, message].filter((s) => s).join(': ')})` : '';
  if (typeof r.rawData !== 'string') return { reason: `Firehose error record without rawData${why}` };
  const decoded = strictBase64(r.rawData);
  if (!decoded) return { reason: `Firehose error record whose rawData is not valid base64${why}` };
  let bytes = decoded;
  if (bytes.length > 0 && bytes[bytes.length - 1] === LINE_FEED) {
    bytes = bytes.subarray(0, bytes.length - (bytes.length > 1 && bytes[bytes.length - 2] === CARRIAGE_RETURN ? 2 : 1));
  }
  if (bytes.length === 0) return { reason: `Firehose error record with empty rawData${why}` };
  return { bytes };
}

/** Decodes standard base64 (padded), or returns undefined: Node's decoder would silently skip bad characters. */
function strictBase64(text: string): Buffer | undefined {
  if (text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return undefined;
  return Buffer.from(text, 'base64');
}

/** What moving dead letters back needs; clients are injected so a handler or a test owns them. */
export interface DeadLetterRedriveDeps {
  readonly sqs: SQSClient;
  /** Time left in the invocation, ms: no new batch starts with less than `reserveMs` left. */
  readonly remainingMs: () => number;
}

/** One call of `redriveObjectDeadLetters`. */
export interface DeadLetterRedriveRequest {
  /** The object dead-letter queue, read from. */
  readonly deadLetterQueueUrl: string;
  /** The object queue, written to. */
  readonly queueUrl: string;
  /** Messages received from the dead-letter queue in this call at most. @default 1000 */
  readonly maxMessages?: number;
  /**
   * How long a received message stays hidden in the dead-letter queue, s: long enough to
   * send and delete it. One whose send failed reappears after it: within this call if the
   * call runs longer, and it is then tried again and counted once. @default 120
   */
  readonly visibilityTimeoutSeconds?: number;
  /** Long-poll wait of each receive, s: an empty answer after it means the queue is empty. @default 2 */
  readonly waitTimeSeconds?: number;
  /** No new receive starts with less than this left of the invocation, ms. @default 10000 */
  readonly reserveMs?: number;
  /** Failures kept in the report's list (the counts are always complete). @default 100 */
  readonly reportLimit?: number;
}

/** A dead letter this call could not move, or moved without deleting. */
export interface DeadLetterFailure {
  readonly messageId: string;
  readonly reason: string;
}

/** What one call did. `moved + failed === received`; `notDeleted` of the moved ones are still in the DLQ too. */
export interface DeadLetterRedriveReport {
  readonly received: number;
  /** Sent to the object queue (and deleted from the DLQ, except `notDeleted`). */
  readonly moved: number;
  /** Not sent: still in the DLQ, visible again after the visibility timeout. */
  readonly failed: number;
  /**
   * Sent, but their delete failed: they are in both queues, and a later run sends them
   * again. Harmless: the publisher's ledger turns a repeated notification into a no-op.
   */
  readonly notDeleted: number;
  readonly failures: DeadLetterFailure[];
  /** `empty`: the DLQ had nothing visible left; `error`: an AWS call failed as a whole (see `error`). */
  readonly stoppedBecause: 'empty' | 'max-messages' | 'out-of-time' | 'error';
  readonly error?: string;
}

/** SQS's cap on a SendMessageBatch request (all bodies and attributes), with the historic 256 KiB limit. */
const MAX_SEND_BATCH_BYTES = 256 * 1024;

/**
 * Moves the object dead-letter queue's messages back to the object queue, bodies and
 * attributes unchanged, so the publisher tries their objects again (after the cause was
 * fixed). A message is deleted from the DLQ only once its send succeeded: a partial batch
 * failure leaves the failed ones in the DLQ, where they reappear after the visibility
 * timeout. At least once: a crash between send and delete sends a message again later.
 * Runs until the DLQ has nothing visible, `maxMessages` were received, or time runs low.
 */
export async function redriveObjectDeadLetters(deps: DeadLetterRedriveDeps, request: DeadLetterRedriveRequest): Promise<DeadLetterRedriveReport> {
  if (request.deadLetterQueueUrl === request.queueUrl) throw new Error('the dead-letter queue and the destination queue are the same queue');
  if ([request.deadLetterQueueUrl, request.queueUrl].some((url) => url.endsWith('.fifo'))) {
    throw new Error('FIFO queues are not supported: the object queues are standard queues (a FIFO move would need each message\'s group id)');
  }
  const maxMessages = positiveInteger('maxMessages', request.maxMessages ?? 1000);
  const reportLimit = nonNegativeInteger('reportLimit', request.reportLimit ?? DEFAULT_REPORT_LIMIT);
  const reserveMs = request.reserveMs ?? DEFAULT_DLQ_RESERVE_MS;
  // Each message's last outcome in this run: one that fails and reappears within the run (a
  // visibility timeout shorter than the run) is tried again and counted once, as it ends.
  const outcomes = new Map<string, { kind: 'moved' | 'failed' | 'notDeleted'; reason?: string }>();
  let receipts = 0;
  const fail = (messageId: string, reason: string) => { outcomes.set(messageId, { kind: 'failed', reason }); };
  const report = (stoppedBecause: DeadLetterRedriveReport['stoppedBecause'], error?: unknown): DeadLetterRedriveReport => {
    const all = [...outcomes.entries()];
    const count = (...kinds: string[]) => all.filter(([, o]) => kinds.includes(o.kind)).length;
    const failures = all.filter(([, o]) => o.kind !== 'moved').slice(0, reportLimit).map(([messageId, o]) => ({ messageId, reason: o.reason! }));
    return {
      received: outcomes.size,
      moved: count('moved', 'notDeleted'),
      failed: count('failed'),
      notDeleted: count('notDeleted'),
      failures,
      stoppedBecause,
      ...(error !== undefined ? { error: errorText(error) } : {}),
    };
  };

  for (;;) {
    if (receipts >= maxMessages) return report('max-messages');
    if (deps.remainingMs() < reserveMs) return report('out-of-time');
    let messages: Message[];
    try {
      const answer = await deps.sqs.send(new ReceiveMessageCommand({
        QueueUrl: request.deadLetterQueueUrl,
        MaxNumberOfMessages: Math.min(10, maxMessages - receipts),
        VisibilityTimeout: request.visibilityTimeoutSeconds ?? 120,
        WaitTimeSeconds: request.waitTimeSeconds ?? 2,
        MessageAttributeNames: ['All'],
      }));
      messages = answer.Messages ?? [];
    } catch (err) {
      return report('error', err);
    }
    if (messages.length === 0) return report('empty');
    receipts += messages.length;

    const entries: { entry: SendMessageBatchRequestEntry; message: Message; bytes: number }[] = [];
    messages.forEach((message, i) => {
      if (!message.Body) {
        fail(message.MessageId ?? '?', 'the message has no body; left in the dead-letter queue');
        return;
      }
      const attributes = copyAttributes(message.MessageAttributes);
      entries.push({
        entry: { Id: `m${i}`, MessageBody: message.Body, ...(attributes ? { MessageAttributes: attributes } : {}) },
        message,
        bytes: Buffer.byteLength(message.Body) + attributeBytes(attributes),
      });
    });
    const batches = bySize(entries, MAX_SEND_BATCH_BYTES);
    // A run that stops on an error still reports every message of this receive.
    const stopOnError = (after: number, err: unknown) => {
      for (const later of batches.slice(after + 1)) {
        for (const e of later) fail(e.message.MessageId ?? e.entry.Id!, 'not tried: the run stopped on an earlier error; left in the dead-letter queue');
      }
      return report('error', err);
    };
    for (const [index, batch] of batches.entries()) {
      const byId = new Map(batch.map((e) => [e.entry.Id!, e.message]));
      let sent: string[];
      try {
        const answer = await deps.sqs.send(new SendMessageBatchCommand({ QueueUrl: request.queueUrl, Entries: batch.map((e) => e.entry) }));
        const failedSends = new Map((answer.Failed ?? []).map((f) => [f.Id, f]));
        // Deleted from the DLQ only when confirmed sent: an entry the answer lists as failed, or
        // does not list at all, stays there.
        sent = (answer.Successful ?? []).map((s) => s.Id!).filter((id) => byId.has(id) && !failedSends.has(id));
        for (const [id, message] of byId) {
          if (sent.includes(id)) continue;
          const f = failedSends.get(id);
          fail(message.MessageId ?? id, f
            ? `send failed (${f.Code}: ${f.Message ?? ''}); left in the dead-letter queue`
            : 'the send was not confirmed; left in the dead-letter queue');
        }
      } catch (err) {
        // Sent or not is unknown: nothing is deleted, so nothing can be lost.
        for (const e of batch) fail(e.message.MessageId ?? e.entry.Id!, `send failed: ${errorText(err)}; left in the dead-letter queue`);
        return stopOnError(index, err);
      }
      for (const id of sent) outcomes.set(byId.get(id)!.MessageId ?? id, { kind: 'moved' });
      if (sent.length === 0) continue;
      try {
        const deleted = await deps.sqs.send(new DeleteMessageBatchCommand({
          QueueUrl: request.deadLetterQueueUrl,
          Entries: sent.map((id) => ({ Id: id, ReceiptHandle: byId.get(id)!.ReceiptHandle! })),
        }));
        for (const f of deleted.Failed ?? []) {
          outcomes.set(byId.get(f.Id!)?.MessageId ?? f.Id!, {
            kind: 'notDeleted', reason: `sent, but not deleted from the dead-letter queue (${f.Code}: ${f.Message ?? ''}); a later run sends it again`,
          });
        }
      } catch (err) {
        for (const id of sent) {
          outcomes.set(byId.get(id)!.MessageId ?? id, { kind: 'notDeleted', reason: `sent, but not deleted from the dead-letter queue: ${errorText(err)}` });
        }
        return stopOnError(index, err);
      }
    }
  }
}

/** Message attributes as SendMessage takes them (ReceiveMessage returns the same shape). */
function copyAttributes(attributes: Record<string, MessageAttributeValue> | undefined): Record<string, MessageAttributeValue> | undefined {
  if (!attributes || Object.keys(attributes).length === 0) return undefined;
  return Object.fromEntries(Object.entries(attributes).map(([name, value]) => [name, {
    DataType: value.DataType,
    ...(value.StringValue !== undefined ? { StringValue: value.StringValue } : {}),
    ...(value.BinaryValue !== undefined ? { BinaryValue: value.BinaryValue } : {}),
  }]));
}

function attributeBytes(attributes: Record<string, MessageAttributeValue> | undefined): number {
  return Object.entries(attributes ?? {}).reduce((sum, [name, value]) => sum + Buffer.byteLength(name) + Buffer.byteLength(value.DataType ?? '')
    + Buffer.byteLength(value.StringValue ?? '') + (value.BinaryValue?.length ?? 0), 0);
}

/** Groups entries into requests of at most `maxBytes` (an entry over it goes alone: SQS then reports it failed). */
function bySize<T extends { bytes: number }>(items: T[], maxBytes: number): T[][] {
  const groups: T[][] = [];
  let current: T[] = [];
  let size = 0;
  for (const item of items) {
    if (current.length > 0 && size + item.bytes > maxBytes) {
      groups.push(current);
      current = [];
      size = 0;
    }
    current.push(item);
    size += item.bytes;
  }
  if (current.length > 0) groups.push(current);
  return groups;
}
