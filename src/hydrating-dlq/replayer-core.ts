import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { KinesisClient, PutRecordsCommand } from '@aws-sdk/client-kinesis';
import { GetObjectCommand, GetObjectTaggingCommand, ListObjectsV2Command, PutObjectTaggingCommand, S3Client, Tag } from '@aws-sdk/client-s3';
import { HydratedRecordObject, recordData, UNRECOVERABLE_SEGMENT } from './hydrated-object';
import { UNREADABLE_PREFIX } from './hydrator-core';
import { describeValue, errorText, isObject } from '../runtime/argument-checks';
import { CoreLogger, SILENT_LOGGER } from '../runtime/core-logger';
import { DEFAULT_MAX_ENTRY_BYTES, putEventsEntrySize, putEventsReliably } from '../runtime/put-events';

/**
 * The replayer: sends hydrated records again, chosen by consumer and arrival time or by key
 * prefix, to the pipe's target (through the replay stream, which a replay pipe with the same
 * settings delivers to the same target) or to an event bus. Each object is marked (the
 * `replayed` tag) only after the stream or the bus accepted its record, so a second run skips
 * it; an object whose record was refused is left unmarked and counted as failed with the
 * reason. Delivery is at least once: a run that dies between a send and its mark sends that
 * record again next time.
 */

/** The tag that marks an object replayed; its value says when and where to (`2026-12-01T10:00:00.000Z pipe`). */
export const REPLAYED_TAG = 'replayed';
/** The event detail-type of records replayed to a bus, and their source. */
export const REPLAY_DETAIL_TYPE = 'Hydrated Record Replayed';
export const REPLAY_SOURCE = 'cdk-event-fabric.hydrating-dlq';

/** Records per PutRecords call (Kinesis's limit is 500 records and 5 MiB). */
const PUT_RECORDS_MAX = 500;
const PUT_RECORDS_MAX_BYTES = 5 * 1024 * 1024 - 64 * 1024;
/** Attempts of a record the replay stream refuses (throttling), with backoff, before its key is given up for the run. */
const PUT_RECORD_ATTEMPTS = 5;
/** Objects read before they are sent and marked: memory holds one chunk, and one takes well under the time reserve. */
const CHUNK_OBJECTS = 100;
const CHUNK_BYTES = 32 * 1024 * 1024;
/** No new object is read with less time than this left in the invocation. */
const RESERVE_MS = 30_000;
const MAX_FAILURES_REPORTED = 50;
/** A Kinesis record's largest size: data and partition key (the replay stream's default maximum). */
const MAX_RECORD_BYTES = 1_048_576;

/** A record's refusal: why, and whether sending it again may work (throttling, a failed call) or never will (its size). */
interface Refusal { readonly reason: string; readonly permanent: boolean }
type SendOutcome = [Candidate, Refusal | undefined];
const NOT_SENT_HELD_BACK: Refusal = {
  reason: 'not sent: an earlier record of its partition key was refused in this run; run the replay again', permanent: false,
};

/** What an operator asks for (the replayer's invocation payload). */
export interface ReplayRequest {
  /** The consumer (pipe) whose records to replay, with `from` and `to`. */
  readonly consumer?: string;
  /** Arrival times, ISO 8601: records that arrived at or after `from` and before `to`. */
  readonly from?: string;
  readonly to?: string;
  /** Or: every record under this key prefix (it must start with the configured object prefix). */
  readonly prefix?: string;
  /** `pipe` (the default: the replay stream, to the pipe's target) or `bus`. */
  readonly target?: 'pipe' | 'bus';
  /** Report what would be sent; send and mark nothing. */
  readonly dryRun?: boolean;
  /** Send objects already marked replayed too. */
  readonly includeReplayed?: boolean;
  /** Objects to look at in this invocation (1 to 10,000); the report's `startAfter` continues. @default 1000 */
  readonly maxObjects?: number;
  /** Continue after this key (from a previous report). */
  readonly startAfter?: string;
  /**
   * With `includeReplayed`: objects marked replayed at or after this time are skipped, being
   * sent by this replay's earlier pages (from a previous report; give it back with `startAfter`).
   */
  readonly replayedSince?: string;
}

/** What a replay did. */
export interface ReplayReport {
  readonly dryRun: boolean;
  readonly target: 'pipe' | 'bus';
  /** Record objects found (unrecoverable and unreadable objects are not records, and not counted). */
  readonly found: number;
  /** Records the stream or the bus accepted (in a dry run: that would be sent). */
  readonly sent: number;
  /** Records refused, with their reasons in `failures`. */
  readonly failed: number;
  /** Objects already marked replayed, skipped. */
  readonly skipped: number;
  readonly failures: { readonly key: string; readonly reason: string }[];
  /** Set when more objects remain (possibly empty: from the beginning): invoke again with `startAfter`. */
  readonly startAfter?: string;
  /** With `includeReplayed`: when this replay began; pass it back as `replayedSince` with `startAfter`. */
  readonly replayedSince?: string;
}

export interface ReplayerSettings {
  readonly bucketName: string;
  readonly prefix: string;
  /** The replay stream: a replay pipe delivers it to the pipe's target. */
  readonly replayStreamName: string;
  /** An event bus records may be replayed to. @default - none: `target: "bus"` is refused */
  readonly eventBusName?: string;
  /** Largest PutEvents entry. @default 1 MiB */
  readonly maxEventBytes?: number;
}

export interface ReplayerDeps {
  readonly s3: S3Client;
  readonly kinesis: KinesisClient;
  readonly eventBridge: EventBridgeClient;
  readonly logger?: CoreLogger;
  readonly now?: () => Date;
  /** The invocation's time left (ms): a replay stops between chunks when it runs short, and says where to continue. */
  readonly remainingMs?: () => number;
  /** Waits between attempts; tests pass a fake. @default setTimeout */
  readonly sleep?: (ms: number) => Promise<void>;
}

/** A request refused before anything was read: the message says what was wrong and what is allowed. */
export class ReplayRequestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ReplayRequestError';
  }
}

interface Candidate { readonly key: string; readonly object: HydratedRecordObject; readonly tags: Tag[]; readonly bytes: number }

export class Replayer {
  private readonly logger: CoreLogger;
  private readonly now: () => Date;

  constructor(private readonly deps: ReplayerDeps, private readonly settings: ReplayerSettings) {
    this.logger = deps.logger ?? SILENT_LOGGER;
    this.now = deps.now ?? (() => new Date());
  }

  public async replay(input: unknown): Promise<ReplayReport> {
    const request = this.checkRequest(input);
    const target = request.target ?? 'pipe';
    const dryRun = request.dryRun ?? false;
    const counts = { found: 0, sent: 0, failed: 0, skipped: 0 };
    // With includeReplayed, a continuation still skips what this replay itself marked in its earlier pages
    // (marks since it began); its first page reads every object before marking it, so it skips nothing.
    const replayedSince = request.includeReplayed ? request.replayedSince ?? this.now().toISOString() : undefined;
    const skip = (tags: Tag[]) => {
      const mark = tags.find((t) => t.Key === REPLAYED_TAG)?.Value;
      if (mark === undefined) return false;
      if (!request.includeReplayed) return true;
      return request.replayedSince !== undefined && Date.parse(mark.split(' ')[0]) >= Date.parse(request.replayedSince);
    };
    const failures: { key: string; reason: string }[] = [];
    const fail = (key: string, reason: string) => {
      counts.failed++;
      if (failures.length < MAX_FAILURES_REPORTED) failures.push({ key, reason });
    };

    const listed = await this.listKeys(request);
    let startAfter = listed.startAfter;
    // Partition keys with a record refused in this run: their later records wait, so none overtakes it.
    const heldBack = new Set<string>();
    // The first record refused for a reason that may pass next time: a continuation restarts there (see below).
    const position = new Map(listed.keys.map((key, i) => [key, i]));
    let firstRetryable: number | undefined;
    let chunk: Candidate[] = [];
    let chunkBytes = 0;
    const flush = async () => {
      const sending = chunk;
      chunk = [];
      chunkBytes = 0;
      const outcomes = target === 'bus' ? await this.sendToBus(sending, dryRun) : await this.sendToStream(sending, heldBack, dryRun);
      for (const [candidate, refusal] of outcomes) {
        if (refusal !== undefined) {
          fail(candidate.key, refusal.reason);
          if (!refusal.permanent) firstRetryable = Math.min(firstRetryable ?? Infinity, position.get(candidate.key)!);
          continue;
        }
        counts.sent++;
        if (dryRun) continue;
        // Marked only now that the stream or the bus has the record. A mark that fails (for
        // example an object that already has S3's 10 tags) leaves the object to be sent again.
        try {
          await this.mark(candidate, target);
        } catch (error) {
          if (failures.length < MAX_FAILURES_REPORTED) failures.push({ key: candidate.key, reason: `sent, but not marked replayed: ${errorText(error)}` });
        }
      }
    };
    for (let i = 0; i < listed.keys.length; i++) {
      if (i > 0 && (this.deps.remainingMs?.() ?? Infinity) < RESERVE_MS) {
        // Out of time: what was read is sent and marked, and the rest is for the next invocation.
        await flush();
        startAfter = listed.keys[i - 1];
        break;
      }
      const candidate = await this.read(listed.keys[i]);
      if (candidate) {
        counts.found++;
        if (skip(candidate.tags)) {
          counts.skipped++;
        } else {
          chunk.push(candidate);
          chunkBytes += candidate.bytes;
        }
      }
      if (chunk.length >= CHUNK_OBJECTS || chunkBytes >= CHUNK_BYTES) await flush();
    }
    if (chunk.length > 0) await flush();
    // A continuation restarts at the first record refused for a passing reason: it goes before the later records of its
    // key (held back, unmarked), and what was sent meanwhile is skipped as replayed. ('' restarts at the beginning.)
    if (startAfter !== undefined && firstRetryable !== undefined) {
      startAfter = firstRetryable === 0 ? request.startAfter ?? '' : listed.keys[firstRetryable - 1];
    }
    const report: ReplayReport = {
      dryRun, target, ...counts, failures, startAfter, replayedSince: startAfter !== undefined ? replayedSince : undefined,
    };
    this.logger.info('replay done', { ...counts, dryRun, target, startAfter });
    return report;
  }

  private checkRequest(input: unknown): ReplayRequest {
    if (!isObject(input)) throw new ReplayRequestError(`the request is ${describeValue(input)}; allowed: an object, see ReplayRequest`);
    const allowed = ['consumer', 'from', 'to', 'prefix', 'target', 'dryRun', 'includeReplayed', 'maxObjects', 'startAfter', 'replayedSince'];
    const unknown = Object.keys(input).filter((k) => !allowed.includes(k));
    if (unknown.length) throw new ReplayRequestError(`unknown field(s) ${unknown.join(', ')}; allowed: ${allowed.join(', ')}`);
    const r = input as ReplayRequest;
    const byTime = r.consumer !== undefined || r.from !== undefined || r.to !== undefined;
    if (byTime === (r.prefix !== undefined)) {
      throw new ReplayRequestError('give either consumer, from and to (records of one consumer by arrival time), or prefix (every record under a key prefix)');
    }
    if (byTime) {
      if (typeof r.consumer !== 'string' || !/^[^/\s]{1,140}$/.test(r.consumer)) {
        throw new ReplayRequestError(`consumer ${describeValue(r.consumer)} is not a consumer name; allowed: the pipe's name (no "/")`);
      }
      const from = Date.parse(String(r.from));
      const to = Date.parse(String(r.to));
      if (typeof r.from !== 'string' || typeof r.to !== 'string' || Number.isNaN(from) || Number.isNaN(to) || from >= to) {
        throw new ReplayRequestError(`from ${describeValue(r.from)} and to ${describeValue(r.to)}: allowed: ISO 8601 times, from before to`);
      }
      if (to - from > 31 * 86_400_000) throw new ReplayRequestError('from and to span more than 31 days; allowed: up to 31 days per request');
    } else if (typeof r.prefix !== 'string' || !r.prefix.startsWith(this.settings.prefix) || r.prefix.length > 1024) {
      throw new ReplayRequestError(`prefix ${describeValue(r.prefix)} is not under the hydrated objects' prefix "${this.settings.prefix}"`);
    }
    if (r.target !== undefined && r.target !== 'pipe' && r.target !== 'bus') {
      throw new ReplayRequestError(`target ${describeValue(r.target)}; allowed: "pipe" (the pipe's target, through the replay stream) or "bus"`);
    }
    if (r.target === 'bus' && !this.settings.eventBusName) {
      throw new ReplayRequestError('target "bus": this construct has no replay bus; set its replayEventBus prop, or replay to "pipe"');
    }
    for (const flag of ['dryRun', 'includeReplayed'] as const) {
      if (r[flag] !== undefined && typeof r[flag] !== 'boolean') throw new ReplayRequestError(`${flag} ${describeValue(r[flag])}; allowed: true or false`);
    }
    if (r.maxObjects !== undefined && (!Number.isInteger(r.maxObjects) || r.maxObjects < 1 || r.maxObjects > 10_000)) {
      throw new ReplayRequestError(`maxObjects ${describeValue(r.maxObjects)}; allowed: an integer from 1 to 10000`);
    }
    if (r.startAfter !== undefined && typeof r.startAfter !== 'string') throw new ReplayRequestError(`startAfter ${describeValue(r.startAfter)}; allowed: a key`);
    if (r.replayedSince !== undefined && (typeof r.replayedSince !== 'string' || Number.isNaN(Date.parse(r.replayedSince)) || !r.includeReplayed)) {
      throw new ReplayRequestError(`replayedSince ${describeValue(r.replayedSince)}; allowed: an ISO 8601 time from a previous report, with includeReplayed`);
    }
    return r;
  }

  /** The keys to look at, in key order, at most maxObjects; `startAfter` when more remain. */
  private async listKeys(request: ReplayRequest): Promise<{ keys: string[]; startAfter?: string }> {
    const max = request.maxObjects ?? 1000;
    const keys: string[] = [];
    const prefixes = request.prefix !== undefined ? [request.prefix]
      : hourPrefixes(this.settings.prefix, request.consumer!, request.from!, request.to!);
    const from = request.from ? Date.parse(request.from) : undefined;
    const to = request.to ? Date.parse(request.to) : undefined;
    for (const prefix of prefixes) {
      if (request.startAfter && prefix + '\uffff' < request.startAfter) continue;
      let token: string | undefined;
      do {
        const page = await this.deps.s3.send(new ListObjectsV2Command({
          Bucket: this.settings.bucketName,
          Prefix: prefix,
          ContinuationToken: token,
          StartAfter: token ? undefined : (request.startAfter && request.startAfter > prefix ? request.startAfter : undefined),
        }));
        for (const object of page.Contents ?? []) {
          const key = object.Key!;
          if (key.includes(`/${UNRECOVERABLE_SEGMENT}/`) || key.startsWith(`${this.settings.prefix}${UNREADABLE_PREFIX}`)) continue;
          if (from !== undefined && to !== undefined) {
            const arrival = arrivalOfKey(key);
            if (arrival === undefined || arrival < from || arrival >= to) continue;
          }
          if (keys.length === max) return { keys, startAfter: keys[keys.length - 1] };
          keys.push(key);
        }
        token = page.NextContinuationToken;
      } while (token);
    }
    return { keys };
  }

  private async read(key: string): Promise<Candidate | undefined> {
    const got = await this.deps.s3.send(new GetObjectCommand({ Bucket: this.settings.bucketName, Key: key }));
    const text = await got.Body!.transformToString();
    let object: HydratedRecordObject;
    try {
      object = JSON.parse(text);
    } catch {
      return undefined;
    }
    if (!isObject(object) || object.kind !== 'record' || !isObject(object.record)) return undefined;
    const tags = (got.TagCount ?? 0) > 0
      ? (await this.deps.s3.send(new GetObjectTaggingCommand({ Bucket: this.settings.bucketName, Key: key }))).TagSet ?? []
      : [];
    return { key, object, tags, bytes: text.length };
  }

  /** Adds the one `replayed` tag, keeping the object's other tags (S3 allows 10: an object with 10 of its own cannot be marked). */
  private async mark(candidate: Candidate, target: 'pipe' | 'bus'): Promise<void> {
    const tags = candidate.tags.filter((t) => t.Key !== REPLAYED_TAG);
    await this.deps.s3.send(new PutObjectTaggingCommand({
      Bucket: this.settings.bucketName,
      Key: candidate.key,
      Tagging: { TagSet: [...tags, { Key: REPLAYED_TAG, Value: `${this.now().toISOString()} ${target}` }] },
    }));
  }

  /**
   * PutRecords to the replay stream, keeping each partition key's order: a call carries at most
   * one record of a key, so a record a call refuses is never overtaken by a later one of its key
   * that the same call took. A refused record is tried again with backoff; one refused every
   * time holds back the rest of its key for this run. A record larger than a Kinesis record may
   * be is refused alone, before any call (in a dry run too), and holds nothing back: it can
   * never go to the replay stream.
   */
  private async sendToStream(candidates: Candidate[], heldBack: Set<string>, dryRun: boolean): Promise<SendOutcome[]> {
    const results: SendOutcome[] = [];
    const queues = new Map<string, Candidate[]>();
    for (const c of candidates) {
      const key = c.object.record.partitionKey;
      const size = recordData(c.object).length + Buffer.byteLength(key);
      if (size > MAX_RECORD_BYTES) {
        results.push([c, { reason: `the record is ${size} bytes; a Kinesis record takes at most ${MAX_RECORD_BYTES}: replay it to "bus"`, permanent: true }]);
      } else if (heldBack.has(key)) {
        results.push([c, NOT_SENT_HELD_BACK]);
      } else {
        queues.set(key, [...(queues.get(key) ?? []), c]);
      }
    }
    if (dryRun) return [...results, ...[...queues.values()].flat().map((c): SendOutcome => [c, undefined])];
    const attempts = new Map<Candidate, number>();
    const sleep = this.deps.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
    while (queues.size > 0) {
      // The head of each key, in calls of at most 500 records and 5 MiB.
      const heads = [...queues.values()].map((q) => q[0]);
      let refusedAny = false;
      for (const call of groupRecords(heads)) {
        const refusals = await this.putRecords(call);
        call.forEach((c, i) => {
          const key = c.object.record.partitionKey;
          const queue = queues.get(key)!;
          if (refusals[i] === undefined) {
            results.push([c, undefined]);
            queue.shift();
          } else {
            refusedAny = true;
            const tried = (attempts.get(c) ?? 0) + 1;
            attempts.set(c, tried);
            if (tried < PUT_RECORD_ATTEMPTS) return;
            results.push([c, { reason: refusals[i]!, permanent: false }]);
            for (const later of queue.slice(1)) results.push([later, NOT_SENT_HELD_BACK]);
            queue.length = 0;
            heldBack.add(key);
          }
          if (queue.length === 0) queues.delete(key);
        });
      }
      if (refusedAny && queues.size > 0) await sleep(Math.random() * Math.min(5_000, 200 * 2 ** Math.max(...[...attempts.values()], 0)));
    }
    return results;
  }

  /**
   * One PutRecords call: each record's refusal, or undefined when the stream took it. A call that
   * fails as a whole (a request Kinesis refuses because of one record, a lost answer) is sent again
   * one record a call, so one record's fault is its own.
   */
  private async putRecords(call: Candidate[]): Promise<(string | undefined)[]> {
    try {
      const answer = await this.deps.kinesis.send(new PutRecordsCommand({
        StreamName: this.settings.replayStreamName,
        Records: call.map((c) => ({ Data: recordData(c.object), PartitionKey: c.object.record.partitionKey })),
      }));
      return call.map((_, i) => {
        const entry = answer.Records?.[i];
        if (!entry) return 'PutRecords answered without this record';
        return entry.ErrorCode ? `${entry.ErrorCode}: ${entry.ErrorMessage ?? ''}`.trim() : undefined;
      });
    } catch (error) {
      if (call.length === 1) return [`PutRecords failed: ${errorText(error)}`];
      const each: (string | undefined)[] = [];
      for (const c of call) each.push((await this.putRecords([c]))[0]);
      return each;
    }
  }

  /**
   * PutEvents to the bus (10 entries and 1 MiB a call, retryable failures retried); an entry
   * too large for EventBridge fails alone, in a dry run too.
   */
  private async sendToBus(candidates: Candidate[], dryRun: boolean): Promise<SendOutcome[]> {
    const results: SendOutcome[] = [];
    const maxBytes = this.settings.maxEventBytes ?? DEFAULT_MAX_ENTRY_BYTES;
    const entries: { candidate: Candidate; entry: { EventBusName?: string; Source: string; DetailType: string; Detail: string } }[] = [];
    for (const candidate of candidates) {
      const entry = {
        EventBusName: this.settings.eventBusName, Source: REPLAY_SOURCE, DetailType: REPLAY_DETAIL_TYPE, Detail: replayedDetail(candidate),
      };
      const size = putEventsEntrySize(entry);
      if (size > maxBytes) {
        results.push([candidate, { reason: `the event would be ${size} bytes; EventBridge takes at most ${maxBytes}: replay it to "pipe"`, permanent: true }]);
      } else {
        entries.push({ candidate, entry });
      }
    }
    if (dryRun) return [...results, ...entries.map((e): SendOutcome => [e.candidate, undefined])];
    const outcomes = await putEventsReliably(this.deps.eventBridge, entries.map((e) => e.entry),
      { maxRequestBytes: maxBytes, sleep: this.deps.sleep, shouldStop: () => (this.deps.remainingMs?.() ?? Infinity) < RESERVE_MS });
    entries.forEach((e, i) => {
      const outcome = outcomes[i];
      results.push([e.candidate, outcome.ok && outcome.eventId ? undefined
        : { reason: `PutEvents refused it: ${outcome.errorCode ?? 'no event id'} ${outcome.errorMessage ?? ''}`.trim(), permanent: false }]);
    });
    return results;
  }
}

/** Groups records into PutRecords calls: at most 500 records and about 5 MiB each. */
function groupRecords(candidates: Candidate[]): Candidate[][] {
  const calls: Candidate[][] = [];
  let current: Candidate[] = [];
  let bytes = 0;
  for (const c of candidates) {
    const size = recordData(c.object).length + Buffer.byteLength(c.object.record.partitionKey);
    if (current.length === PUT_RECORDS_MAX || (current.length > 0 && bytes + size > PUT_RECORDS_MAX_BYTES)) {
      calls.push(current);
      current = [];
      bytes = 0;
    }
    current.push(c);
    bytes += size;
  }
  if (current.length > 0) calls.push(current);
  return calls;
}

/**
 * A replayed record's event detail (JSON text): the record, its source and the object it came
 * from. Data that is JSON goes in as its own text, never parsed and written again, so numbers
 * beyond a double's precision (and their exact spelling) reach the bus unchanged.
 */
function replayedDetail(candidate: Candidate): string {
  const { record, source, consumer, failure } = candidate.object;
  let json = false;
  if (record.dataEncoding === 'utf-8') {
    try {
      JSON.parse(record.data);
      json = true;
    } catch {
      json = false;
    }
  }
  const rest = JSON.stringify({
    dataEncoding: record.dataEncoding,
    dataIsJson: json,
    partitionKey: record.partitionKey,
    sequenceNumber: record.sequenceNumber,
    subSequenceNumber: record.subSequenceNumber,
    approximateArrivalTimestamp: record.approximateArrivalTimestamp,
    consumer,
    source,
    condition: failure.condition,
    objectKey: candidate.key,
  });
  return `{"data":${json ? record.data.trim() : JSON.stringify(record.data)},${rest.slice(1)}`;
}

/** The hour prefixes from `from` (its hour) up to `to`. */
function hourPrefixes(prefix: string, consumer: string, from: string, to: string): string[] {
  const prefixes: string[] = [];
  const end = Date.parse(to);
  for (let t = Math.floor(Date.parse(from) / 3_600_000) * 3_600_000; t < end; t += 3_600_000) {
    const iso = new Date(t).toISOString();
    prefixes.push(`${prefix}${consumer}/${iso.slice(0, 4)}/${iso.slice(5, 7)}/${iso.slice(8, 10)}/${iso.slice(11, 13)}/`);
  }
  return prefixes;
}

/** The arrival time (ms) in a record object's key (`.../20261201T122209493Z-<seq>[-<sub>].json`). */
function arrivalOfKey(key: string): number | undefined {
  const match = /\/(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(\d{3})Z-\d+(-\d+)?\.json$/.exec(key);
  if (!match) return undefined;
  const [, y, mo, d, h, mi, s, ms] = match;
  return Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s), Number(ms));
}
