import { createHash } from 'crypto';
import { FailedBatch } from './failed-batch';

/**
 * The objects the hydrator writes, and their keys. One object per record (a KPL-aggregated
 * record gives one per user record), and one "unrecoverable" object per failed batch whose
 * records could not all be read back. A key depends only on the record, so hydrating the same
 * batch again finds its objects and adds no copies: a record object is written only if its key
 * is free (If-None-Match), so a second hydration keeps the first object and its `replayed` mark.
 *
 *   <prefix><consumer>/<yyyy>/<MM>/<dd>/<HH>/<shardId>/<partition key>/<arrival>-<sequence number>[-<subsequence, 6 digits>].json
 *   <prefix><consumer>/<yyyy>/<MM>/<dd>/<HH>/<shardId>/!unrecoverable/<start>-<end>.json
 *
 * - consumer: the pipe's name (or the Lambda function's, with its qualifier);
 * - the UTC date and hour, and the arrival time (`20261201T122209493Z`), of the record's
 *   arrival in the stream (of the batch's first record for an unrecoverable object);
 * - the partition key percent-encoded: every byte of its UTF-8 but `A-Z a-z 0-9 _ -` becomes
 *   `%XX`, so a key never holds `/`, `.` or `!` of its own (an unrecoverable segment cannot be a
 *   partition key). One longer than 512 characters encoded is cut there at a whole `%XX` and
 *   ends in `~` and 32 hex digits of its SHA-256 (the object holds it whole);
 * - so prefixes list by consumer, date, hour, shard and partition key.
 */

/** The object format's version, in every object. */
export const HYDRATED_OBJECT_VERSION = '1';
/** The segment where a batch's unrecoverable objects are, in place of a partition key. */
export const UNRECOVERABLE_SEGMENT = '!unrecoverable';

const MAX_ENCODED_PARTITION_KEY = 512;

/** One record as read back from the stream (a user record, when it was aggregated). */
export interface HydratedRecordFields {
  readonly partitionKey: string;
  readonly sequenceNumber: string;
  /** The user record's position in its KPL-aggregated record; absent for a plain record. */
  readonly subSequenceNumber?: number;
  readonly approximateArrivalTimestamp: Date;
  readonly data: Uint8Array;
  /** Set when the record looked KPL-aggregated but did not decode: it is then kept whole. */
  readonly deaggregationError?: string;
}

/** The body of a record object (JSON). */
export interface HydratedRecordObject {
  readonly version: string;
  readonly kind: 'record';
  /** The consumer (pipe) name. */
  readonly consumer: string;
  readonly record: {
    /** The data as the stream holds it: text when it is UTF-8, otherwise base64. */
    readonly data: string;
    readonly dataEncoding: 'utf-8' | 'base64';
    readonly partitionKey: string;
    readonly sequenceNumber: string;
    readonly subSequenceNumber?: number;
    readonly approximateArrivalTimestamp: string;
    /** Why a record that looked KPL-aggregated is kept whole. */
    readonly deaggregationError?: string;
  };
  readonly source: { readonly streamArn: string; readonly shardId: string };
  readonly failure: FailureFields;
  /** When the hydrator wrote it. */
  readonly hydratedAt: string;
}

/** The body of an unrecoverable object (JSON): the range that could not be read back, and why. */
export interface UnrecoverableObject {
  readonly version: string;
  readonly kind: 'unrecoverable';
  readonly consumer: string;
  readonly source: { readonly streamArn: string; readonly shardId: string };
  readonly failure: FailureFields;
  /** Why records are missing, in words. */
  readonly reason: string;
  /** The same, as codes: `shard-not-found`, `trimmed`, `start-not-found`, `end-not-found`. */
  readonly reasonCodes: string[];
  /** Kinesis records of the range that were read (and written as record objects). */
  readonly recordsRead: number;
  /** At least this many records of the batch were not read (`batchSize - recordsRead`, and at least one per missing end of the range). */
  readonly recordsMissing: number;
  readonly firstSequenceNumberRead?: string;
  readonly lastSequenceNumberRead?: string;
  readonly hydratedAt: string;
}

/** What every object says of the failed batch it came from. */
export interface FailureFields {
  readonly origin: 'pipe' | 'lambda';
  readonly consumerArn: string;
  readonly condition: string;
  readonly startSequenceNumber: string;
  readonly endSequenceNumber: string;
  readonly batchSize: number;
  readonly approximateArrivalOfFirstRecord?: string;
  readonly approximateArrivalOfLastRecord?: string;
}

/** The consumer's name in a key: a pipe's name, or a function's name with its qualifier (`name:alias`). */
export function consumerName(consumerArn: string): string {
  const pipe = /^arn:aws[a-z-]*:pipes:[^:]*:\d*:pipe\/(.+)$/.exec(consumerArn);
  if (pipe) return pipe[1];
  const fn = /^arn:aws[a-z-]*:lambda:[^:]*:\d*:function:(.+)$/.exec(consumerArn);
  if (fn) return fn[1];
  return encodeSegment(consumerArn);
}

/** The key of a record's object. */
export function recordObjectKey(prefix: string, consumer: string, shardId: string, record: HydratedRecordFields): string {
  const arrival = record.approximateArrivalTimestamp;
  // Six digits: keys sort in the user records' order (an aggregated record of 1 MiB holds fewer than a million).
  const sub = record.subSequenceNumber === undefined ? '' : `-${String(record.subSequenceNumber).padStart(6, '0')}`;
  return `${prefix}${consumer}/${hourPath(arrival)}/${shardId}/${partitionKeySegment(record.partitionKey)}/`
    + `${compactTime(arrival)}-${record.sequenceNumber}${sub}.json`;
}

/** The key of a batch's unrecoverable object, under the hour of the batch's first record (or of `fallbackTime`). */
export function unrecoverableObjectKey(prefix: string, consumer: string, batch: FailedBatch, fallbackTime: Date): string {
  const first = batch.approximateArrivalOfFirstRecord ? new Date(batch.approximateArrivalOfFirstRecord) : undefined;
  const time = first && !Number.isNaN(first.getTime()) ? first : fallbackTime;
  return `${prefix}${consumer}/${hourPath(time)}/${batch.shardId}/${UNRECOVERABLE_SEGMENT}/${batch.startSequenceNumber}-${batch.endSequenceNumber}.json`;
}

/** The failure fields every object of `batch` carries. */
export function failureFields(batch: FailedBatch): FailureFields {
  return {
    origin: batch.origin,
    consumerArn: batch.consumerArn,
    condition: batch.condition,
    startSequenceNumber: batch.startSequenceNumber,
    endSequenceNumber: batch.endSequenceNumber,
    batchSize: batch.batchSize,
    approximateArrivalOfFirstRecord: batch.approximateArrivalOfFirstRecord,
    approximateArrivalOfLastRecord: batch.approximateArrivalOfLastRecord,
  };
}

/** A record object's body. */
export function recordObject(consumer: string, batch: FailedBatch, record: HydratedRecordFields, now: Date): HydratedRecordObject {
  const text = utf8Text(record.data);
  return {
    version: HYDRATED_OBJECT_VERSION,
    kind: 'record',
    consumer,
    record: {
      data: text ?? Buffer.from(record.data).toString('base64'),
      dataEncoding: text === undefined ? 'base64' : 'utf-8',
      partitionKey: record.partitionKey,
      sequenceNumber: record.sequenceNumber,
      subSequenceNumber: record.subSequenceNumber,
      approximateArrivalTimestamp: record.approximateArrivalTimestamp.toISOString(),
      deaggregationError: record.deaggregationError,
    },
    source: { streamArn: batch.streamArn, shardId: batch.shardId },
    failure: failureFields(batch),
    hydratedAt: now.toISOString(),
  };
}

/** The record's data as the stream held it. */
export function recordData(object: HydratedRecordObject): Buffer {
  return Buffer.from(object.record.data, object.record.dataEncoding === 'utf-8' ? 'utf-8' : 'base64');
}

function utf8Text(data: Uint8Array): string | undefined {
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(data);
  } catch {
    return undefined;
  }
}

function hourPath(time: Date): string {
  const iso = time.toISOString(); // 2026-12-01T12:22:09.493Z
  return `${iso.slice(0, 4)}/${iso.slice(5, 7)}/${iso.slice(8, 10)}/${iso.slice(11, 13)}`;
}

function compactTime(time: Date): string {
  return time.toISOString().replace(/[-:.]/g, '');
}

/** Percent-encodes every UTF-8 byte but `A-Z a-z 0-9 _ -`. */
function encodeSegment(value: string): string {
  let encoded = '';
  for (const byte of Buffer.from(value, 'utf-8')) {
    const c = String.fromCharCode(byte);
    encoded += /[A-Za-z0-9_-]/.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return encoded;
}

/** The partition key's segment: encoded, and cut with a hash when long (see above). */
export function partitionKeySegment(partitionKey: string): string {
  const encoded = encodeSegment(partitionKey);
  if (encoded.length <= MAX_ENCODED_PARTITION_KEY) return encoded;
  let cut = MAX_ENCODED_PARTITION_KEY - 33;
  // Never cut inside a %XX.
  const percent = encoded.lastIndexOf('%', cut - 1);
  if (percent > cut - 3) cut = percent;
  const hash = createHash('sha256').update(partitionKey, 'utf-8').digest('hex').slice(0, 32);
  return `${encoded.slice(0, cut)}~${hash}`;
}
