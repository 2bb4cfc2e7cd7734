import { KinesisClient } from '@aws-sdk/client-kinesis';
import { PutObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { FailedBatch, readFailedBatch } from './failed-batch';
import {
  consumerName, failureFields, HYDRATED_OBJECT_VERSION, recordObject, recordObjectKey, unrecoverableObjectKey,
  UnrecoverableObject,
} from './hydrated-object';
import { RangeReadSummary, readShardRange, ShardRangeReadOptions } from './shard-range-reader';
import { userRecords } from './user-records';
import { CoreLogger, SILENT_LOGGER } from '../runtime/core-logger';

/**
 * The hydrator: for each dead-letter message of a Kinesis consumer (a pipe, or a Lambda event
 * source mapping), reads the failed batch's records back from the stream and writes each to
 * the bucket (`hydrated-object.ts` has the keys and the format). The message is acknowledged
 * only once every object it leads to is written:
 * - every record of the range → a record object (written once: hydrating the batch again keeps it);
 * - records the stream no longer has → one unrecoverable object saying which and why;
 * - a message that is not a failed batch of this stream → an unreadable object holding the
 *   message and the reason.
 * An AWS error fails the message: it returns to the queue, and after the retries goes to the
 * hydrator's own dead-letter queue.
 */


/** The prefix (under the configured one) where unreadable dead-letter messages are kept. */
export const UNREADABLE_PREFIX = '!unreadable/';

export interface HydratorSettings {
  readonly bucketName: string;
  /** Key prefix of every object ('' or ending in '/'). */
  readonly prefix: string;
  /** The streams this hydrator reads; a message of another stream is kept as unreadable. */
  readonly streamArns: string[];
  /** Record objects written at once. @default 16 */
  readonly writeConcurrency?: number;
  readonly read?: ShardRangeReadOptions;
}

export interface HydratorDeps {
  readonly kinesis: KinesisClient;
  readonly s3: S3Client;
  readonly logger?: CoreLogger;
  readonly now?: () => Date;
}

/** What became of one dead-letter message. */
export interface MessageHydration {
  readonly messageId: string;
  /**
   * `hydrated-wider-range`: every record was found, but the range held more Kinesis records
   * than the batch (a pipe with a filter, or a parallelization factor above 1, delivers other
   * records between the batch's first and last): those were hydrated too.
   */
  readonly outcome: 'hydrated' | 'hydrated-wider-range' | 'partly-unrecoverable' | 'unreadable';
  /** Record objects written now (not those already there from an earlier hydration of the batch). */
  readonly recordsWritten: number;
  /** Record objects already there (the batch was hydrated before), left as they were. */
  readonly recordsAlreadyHydrated: number;
  /** Kinesis records read in the range (an aggregated record counts once). */
  readonly kinesisRecordsRead: number;
  readonly reason?: string;
  readonly read?: RangeReadSummary;
  /** Keys of the unrecoverable or unreadable object written, if any. */
  readonly parkedKey?: string;
}

/** The hydrator's report of one SQS batch: per message, and the ids Lambda must return to the queue. */
export interface HydratorReport {
  readonly messages: MessageHydration[];
  readonly batchItemFailures: { itemIdentifier: string }[];
}

/** One SQS message as Lambda delivers it (the fields the hydrator reads). */
export interface DeadLetterMessage {
  readonly messageId: string;
  readonly body: string;
  readonly attributes?: { readonly SentTimestamp?: string };
}

export class Hydrator {
  private readonly logger: CoreLogger;
  private readonly now: () => Date;

  constructor(private readonly deps: HydratorDeps, private readonly settings: HydratorSettings) {
    this.logger = deps.logger ?? SILENT_LOGGER;
    this.now = deps.now ?? (() => new Date());
  }

  /** Hydrates each message in turn; a message that fails is named in `batchItemFailures` and the rest go on. */
  public async handleBatch(messages: readonly DeadLetterMessage[]): Promise<HydratorReport> {
    const results: MessageHydration[] = [];
    const batchItemFailures: { itemIdentifier: string }[] = [];
    for (const message of messages) {
      try {
        results.push(await this.hydrate(message));
      } catch (error) {
        this.logger.error('hydration failed; the message returns to the queue', { messageId: message.messageId, error: String(error) });
        batchItemFailures.push({ itemIdentifier: message.messageId });
      }
    }
    return { messages: results, batchItemFailures };
  }

  /** Hydrates one message; throws when an AWS call fails (nothing is acknowledged then). */
  public async hydrate(message: DeadLetterMessage): Promise<MessageHydration> {
    const read = readFailedBatch(message.body);
    if (!read.ok) return this.unreadable(message, read.reason);
    const batch = read.batch;
    if (!this.settings.streamArns.includes(batch.streamArn)) {
      return this.unreadable(message, `the failed batch is of stream ${batch.streamArn}; this hydrator reads ${this.settings.streamArns.join(' and ')}`);
    }
    const consumer = consumerName(batch.consumerArn);
    const now = this.now();
    let recordsWritten = 0;
    let recordsAlreadyHydrated = 0;
    const summary = await readShardRange(this.deps.kinesis, batch, async (page) => {
      const records = page.flatMap((r) => userRecords(r).records);
      await this.writeAll(records.map((record) => async () => {
        const key = recordObjectKey(this.settings.prefix, consumer, batch.shardId, record);
        if (await this.putIfAbsent(key, recordObject(consumer, batch, record, now))) recordsWritten++;
        else recordsAlreadyHydrated++;
      }));
    }, this.settings.read);

    const missing = missingRecords(batch, summary);
    if (!missing) {
      const wider = summary.recordsRead > batch.batchSize;
      const fields = {
        messageId: message.messageId,
        consumer,
        shardId: batch.shardId,
        recordsWritten,
        recordsAlreadyHydrated,
        batchSize: batch.batchSize,
        kinesisRecordsRead: summary.recordsRead,
      };
      if (wider) this.logger.warn('failed batch hydrated; its range held more records than the batch (a filter, or parallelization)', fields);
      else this.logger.info('failed batch hydrated', fields);
      return {
        messageId: message.messageId,
        outcome: wider ? 'hydrated-wider-range' : 'hydrated',
        recordsWritten,
        recordsAlreadyHydrated,
        kinesisRecordsRead: summary.recordsRead,
        read: summary,
      };
    }
    const key = unrecoverableObjectKey(this.settings.prefix, consumer, batch, sentTime(message) ?? now);
    const body: UnrecoverableObject = {
      version: HYDRATED_OBJECT_VERSION,
      kind: 'unrecoverable',
      consumer,
      source: { streamArn: batch.streamArn, shardId: batch.shardId },
      failure: failureFields(batch),
      reason: missing.reason,
      reasonCodes: missing.codes,
      recordsRead: summary.recordsRead,
      recordsMissing: missing.count,
      firstSequenceNumberRead: summary.firstSequenceNumber,
      lastSequenceNumberRead: summary.lastSequenceNumber,
      hydratedAt: now.toISOString(),
    };
    await this.put(key, body);
    this.logger.warn('failed batch partly unrecoverable', { messageId: message.messageId, key, reason: missing.reason });
    return {
      messageId: message.messageId,
      outcome: 'partly-unrecoverable',
      recordsWritten,
      recordsAlreadyHydrated,
      kinesisRecordsRead: summary.recordsRead,
      reason: missing.reason,
      read: summary,
      parkedKey: key,
    };
  }

  private async unreadable(message: DeadLetterMessage, reason: string): Promise<MessageHydration> {
    const time = sentTime(message) ?? this.now();
    const iso = time.toISOString();
    const key = `${this.settings.prefix}${UNREADABLE_PREFIX}${iso.slice(0, 4)}/${iso.slice(5, 7)}/${iso.slice(8, 10)}/${message.messageId}.json`;
    await this.put(key, {
      version: HYDRATED_OBJECT_VERSION, kind: 'unreadable', reason, messageId: message.messageId, body: message.body, keptAt: this.now().toISOString(),
    });
    this.logger.warn('dead-letter message unreadable; kept', { messageId: message.messageId, key, reason });
    return { messageId: message.messageId, outcome: 'unreadable', recordsWritten: 0, recordsAlreadyHydrated: 0, kinesisRecordsRead: 0, reason, parkedKey: key };
  }

  private async put(key: string, body: object): Promise<void> {
    await this.deps.s3.send(new PutObjectCommand({
      Bucket: this.settings.bucketName,
      Key: key,
      Body: JSON.stringify(body),
      ContentType: 'application/json',
    }));
  }

  /**
   * Writes a record object only if its key is free; false when it is already there (written by
   * an earlier hydration of the batch, perhaps since marked replayed: it stays as it is).
   */
  private async putIfAbsent(key: string, body: object): Promise<boolean> {
    try {
      await this.deps.s3.send(new PutObjectCommand({
        Bucket: this.settings.bucketName,
        Key: key,
        Body: JSON.stringify(body),
        ContentType: 'application/json',
        IfNoneMatch: '*',
      }));
      return true;
    } catch (error) {
      if (error instanceof S3ServiceException && error.$metadata.httpStatusCode === 412) return false;
      if ((error as Error).name === 'PreconditionFailed') return false;
      throw error;
    }
  }

  /** Runs the writes with bounded concurrency; the first error fails the whole (after the others in flight end). */
  private async writeAll(writes: (() => Promise<void>)[]): Promise<void> {
    const concurrency = this.settings.writeConcurrency ?? 16;
    let next = 0;
    const errors: unknown[] = [];
    const worker = async (): Promise<void> => {
      while (next < writes.length && errors.length === 0) {
        const write = writes[next++];
        try {
          await write();
        } catch (error) {
          errors.push(error);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, writes.length) }, worker));
    if (errors.length > 0) throw errors[0];
  }
}

/** Which records of the batch the read did not find, or undefined when it found them all. */
export function missingRecords(batch: FailedBatch, read: RangeReadSummary): { reason: string; codes: string[]; count: number } | undefined {
  const codes: string[] = [];
  const reasons: string[] = [];
  if (read.end === 'shard-not-found') {
    codes.push('shard-not-found');
    reasons.push(`shard ${batch.shardId} of ${batch.streamArn} no longer exists (its retention ended after it was closed, or the stream was deleted)`);
  } else {
    if (read.startedAtTrimHorizon) {
      codes.push('trimmed');
      reasons.push(`the start sequence number ${batch.startSequenceNumber} is older than the stream's trim horizon (its retention ended)`);
    } else if (read.firstSequenceNumber !== batch.startSequenceNumber) {
      codes.push('start-not-found');
      reasons.push(`no record at the start sequence number ${batch.startSequenceNumber} (trimmed from the stream, or never in this shard)`);
    }
    if (read.end !== 'complete' || read.lastSequenceNumber !== batch.endSequenceNumber) {
      codes.push('end-not-found');
      const why = read.end === 'shard-closed-before-end' ? ' (the shard is closed and ends before it)'
        : read.end === 'tip-before-end' ? ' (the shard\'s newest record is before it)' : '';
      reasons.push(`no record at the end sequence number ${batch.endSequenceNumber}${why}`);
    }
  }
  if (codes.length === 0) return undefined;
  const endsMissing = codes.includes('shard-not-found') ? 1
    : Number(codes.includes('trimmed') || codes.includes('start-not-found')) + Number(codes.includes('end-not-found') && batch.endSequenceNumber !== batch.startSequenceNumber);
  const count = Math.max(batch.batchSize - read.recordsRead, endsMissing, 1);
  const readText = read.recordsRead === 0 ? 'no record of the range was read'
    : `${read.recordsRead} record(s) of the range were read, from ${read.firstSequenceNumber} to ${read.lastSequenceNumber}`;
  return { reason: `${reasons.join('; ')}; ${readText}`, codes, count };
}

function sentTime(message: DeadLetterMessage): Date | undefined {
  const sent = Number(message.attributes?.SentTimestamp);
  return Number.isFinite(sent) && sent > 0 ? new Date(sent) : undefined;
}

