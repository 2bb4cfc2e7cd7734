import { CopyObjectCommand, DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import type { DynamoDBStreamEvent } from 'aws-lambda';
import { CORRELATION_ID_ATTRIBUTE, EXPIRES_AT_ATTRIBUTE, FAILED_BATCH_PREFIX, REDRIVEN_PREFIX } from './aggregator-contract';
import type { Aggregator, CorrelationOutcome } from './aggregator-core';
import { describeValue } from './recorder-core';
import { CoreLogger, SILENT_LOGGER } from '../runtime/core-logger';

/** No object is started with less than this left of the invocation: a batch of 100 ids is read again and may emit. */
const MIN_TIME_PER_OBJECT_MS = 20_000;

/** The invocation that redrives failed batches: `{ "redriveFailedBatches": {} }`, or with the keys to redrive. */
export interface RedriveFailedBatchesInvocation {
  readonly redriveFailedBatches: {
    /** Object keys to redrive. @default - the objects under `aws/lambda/`, in listing order, until time runs short */
    readonly keys?: string[];
    /** Continue the listing after this key: the previous report's `continueAfter`. @default - from the first key */
    readonly startAfter?: string;
  };
}

export interface RedriveFailedBatchesReport {
  /** Objects looked at. */
  readonly found: number;
  /** Batches whose every correlation id was aggregated again (emitted, done, or waiting), moved under `redriven/`. */
  readonly redriven: string[];
  /** Batches left in place, with the reason. */
  readonly failed: { key: string; reason: string }[];
  /** Objects not started for lack of time; invoke again with `startAfter: continueAfter`. */
  readonly remaining: number;
  /** With objects remaining: the last key started, to continue the listing after it. */
  readonly continueAfter?: string;
}

export interface RedriveDeps {
  readonly s3: Pick<S3Client, 'send'>;
  readonly aggregator: Pick<Aggregator, 'processStreamBatch'>;
  readonly bucketName: string;
  readonly logger?: CoreLogger;
  readonly remainingMs?: () => number;
  readonly nowSeconds?: () => number;
}

/**
 * Redrives the stream batches Lambda wrote to the failure bucket: each object carries the
 * whole original batch (`payload`), whose correlation ids are aggregated again from the
 * table, as if the stream had delivered them. A batch is moved under `redriven/` only when
 * every id of it succeeded; otherwise it stays, and the report says why. Running it twice
 * is safe: an id already emitted is found done by its marker.
 */
export async function redriveFailedBatches(deps: RedriveDeps, invocation: RedriveFailedBatchesInvocation): Promise<RedriveFailedBatchesReport> {
  const logger = deps.logger ?? SILENT_LOGGER;
  const request = invocation?.redriveFailedBatches;
  if (request === null || typeof request !== 'object' || Array.isArray(request)
    || (request.keys !== undefined && (!Array.isArray(request.keys) || !request.keys.every((k) => typeof k === 'string' && k !== '')))
    || (request.startAfter !== undefined && typeof request.startAfter !== 'string')) {
    throw new Error('redriveFailedBatches takes { "keys"?: [non-empty strings], "startAfter"?: string }, got '
      + `${describeValue(request)}`);
  }
  const keys = request.keys ?? await listFailedBatches(deps, request.startAfter);
  const redriven: string[] = [];
  const failed: { key: string; reason: string }[] = [];
  let started = 0;
  for (const key of keys) {
    if (deps.remainingMs && deps.remainingMs() < MIN_TIME_PER_OBJECT_MS) break;
    started++;
    try {
      const batch = await readFailedBatch(deps, key);
      const report = await deps.aggregator.processStreamBatch(batch);
      if (report.batchItemFailures.length > 0) {
        const errors = report.outcomes.filter((o) => o.error).map((o) => `${o.correlationId}: ${o.error}`);
        failed.push({ key, reason: `${report.batchItemFailures.length} correlation id(s) failed again: ${errors.join('; ')}` });
        continue;
      }
      // A set still waiting that lost items to expiry meanwhile (the batch's own, or earlier
      // ones of the set) was not handed off: it may have been complete when the batch failed.
      const expired = expiredWaitingIds(batch, report.outcomes, deps.nowSeconds?.() ?? Math.floor(Date.now() / 1000));
      if (expired.length > 0) {
        failed.push({
          key,
          reason: `items of ${expired.join(', ')} expired (itemTtl) before this redrive, so the table no longer holds their whole sets; `
            + 'the events are in this batch\'s records (NewImage) and in the table until TTL deletes them: record them again to aggregate them',
        });
        continue;
      }
      // Copy, then delete: a lost delete leaves the batch in both places, and its next redrive finds its ids done.
      await deps.s3.send(new CopyObjectCommand({
        Bucket: deps.bucketName, Key: `${REDRIVEN_PREFIX}${key}`, CopySource: `${deps.bucketName}/${encodeURIComponent(key).replace(/%2F/g, '/')}`,
      }));
      await deps.s3.send(new DeleteObjectCommand({ Bucket: deps.bucketName, Key: key }));
      redriven.push(key);
      logger.info(`failed batch ${key} redriven`, { outcomes: report.outcomes.map((o) => ({ correlationId: o.correlationId, outcome: o.outcome })) });
    } catch (err) {
      failed.push({ key, reason: (err as Error).message });
      logger.error(`failed batch ${key} could not be redriven; it stays for the next run`, err as Error);
    }
  }
  const remaining = keys.length - started;
  return { found: keys.length, redriven, failed, remaining, ...(remaining > 0 && started > 0 ? { continueAfter: keys[started - 1] } : {}) };
}

function expiredWaitingIds(batch: DynamoDBStreamEvent, outcomes: CorrelationOutcome[], now: number): string[] {
  const waiting = outcomes.filter((o) => o.outcome === 'waiting');
  const withExpiredRecords = new Set(batch.Records.filter((r) => Number(r.dynamodb?.NewImage?.[EXPIRES_AT_ATTRIBUTE]?.N) <= now)
    .map((r) => r.dynamodb?.Keys?.[CORRELATION_ID_ATTRIBUTE]?.S));
  return waiting.filter((o) => (o.expiredItems ?? 0) > 0 || withExpiredRecords.has(o.correlationId)).map((o) => o.correlationId);
}

async function listFailedBatches(deps: RedriveDeps, startAfter?: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await deps.s3.send(new ListObjectsV2Command({
      Bucket: deps.bucketName, Prefix: FAILED_BATCH_PREFIX, ContinuationToken: token, ...(startAfter ? { StartAfter: startAfter } : {}),
    }));
    keys.push(...(page.Contents ?? []).map((o) => o.Key!).filter((k) => k !== undefined));
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return keys;
}

/** The original stream batch of an invocation record; throws, naming what is wrong, for anything else. */
async function readFailedBatch(deps: RedriveDeps, key: string): Promise<DynamoDBStreamEvent> {
  if (!key.startsWith(FAILED_BATCH_PREFIX)) throw new Error(`key ${describeValue(key)} is not a failed batch (they are under ${FAILED_BATCH_PREFIX})`);
  const object = await deps.s3.send(new GetObjectCommand({ Bucket: deps.bucketName, Key: key }));
  const text = await object.Body!.transformToString('utf-8');
  let record: any;
  try {
    record = JSON.parse(text);
  } catch {
    throw new Error(`object is not JSON: ${describeValue(text)}`);
  }
  // Lambda writes the batch as an escaped JSON string; accept it parsed too.
  let payload = record?.payload;
  if (typeof payload === 'string') {
    try {
      payload = JSON.parse(payload);
    } catch {
      throw new Error(`payload is not JSON: ${describeValue(payload)}`);
    }
  }
  if (!payload || !Array.isArray(payload.Records)) {
    throw new Error(`object has no stream batch in payload (an invocation record of a DynamoDB stream with Records): ${describeValue(record)}`);
  }
  return payload as DynamoDBStreamEvent;
}
