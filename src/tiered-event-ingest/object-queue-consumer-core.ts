import type { Logger } from '@aws-lambda-powertools/logger';
import type { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { GetObjectCommand, NoSuchKey, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { ChangeMessageVisibilityCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import type { ObjectLedger } from './object-ledger-core';
import { decodeS3Key, objectRefFromNotification, publisherConfigFromEnv } from './publisher-config-core';
import { ObjectRef, ObjectReport, publishObject, PublishRetryError } from './publisher-core';

/** What the object queue's consumer needs; the handler passes real clients, tests faulted ones. */
export interface ObjectQueueConsumerDeps {
  readonly s3: S3Client;
  readonly eventBridge: EventBridgeClient;
  readonly sqs: SQSClient;
  readonly ledger: ObjectLedger;
  /** The invocation's request id: with the message id, it names the ledger owner. */
  readonly requestId: string;
  /** Time left in the invocation, ms. */
  readonly remainingMs: () => number;
  readonly log: ConsumerLog;
  readonly addMetrics?: (report: ObjectReport, extra: Record<string, number>) => void;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly random?: () => number;
  readonly nowSeconds?: () => number;
}

/** The logger calls the consumer makes: a Powertools Logger. */
export type ConsumerLog = Pick<Logger, 'info' | 'warn' | 'error'>;

/** First retry delay of an object that made no progress, seconds; doubles per receive. */
export const RETRY_BASE_SECONDS = 30;
/** SQS's longest visibility change and delivery delay, seconds. */
const MAX_SQS_DELAY_SECONDS = 900;
/** Delay of a continuation after throttling, seconds (one Firehose buffer interval). */
const THROTTLED_CONTINUATION_DELAY_SECONDS = 60;

/**
 * Publishes the object each message names (see `publishObject`) and says which messages
 * SQS must keep. Backpressure:
 * - a run that stops for time or throttling after making progress sends a continuation
 *   (the same notification) to the object queue and lets the original go, so a long object
 *   does not use up `maxReceiveCount`; the continuation is sent before the original is
 *   acknowledged, so a crash in between leaves two messages, and the ledger makes the second
 *   a duplicate;
 * - a run that made no progress keeps its message, made visible again after 30 s, 60 s,
 *   120 s… (by receive count, with jitter, at most 15 minutes) instead of the queue's
 *   visibility timeout, and the queue's redrive policy finally parks it in the object DLQ.
 */
export async function consumeObjectMessages(deps: ObjectQueueConsumerDeps, env: NodeJS.ProcessEnv,
  event: SQSEvent): Promise<SQSBatchResponse> {
  const config = publisherConfigFromEnv(env);
  const queueUrl = env.OBJECT_QUEUE_URL;
  if (!queueUrl) throw new Error('environment variable OBJECT_QUEUE_URL is not set');
  const failures: SQSBatchResponse['batchItemFailures'] = [];
  const random = deps.random ?? Math.random;

  const retryLater = async (message: SQSRecord, notBefore = 0) => {
    const receives = Number(message.attributes?.ApproximateReceiveCount ?? 1);
    const backoff = Math.round(RETRY_BASE_SECONDS * 2 ** (receives - 1) * (0.5 + random()));
    // A busy object comes back no sooner than its lease ends: each receive counts towards the DLQ.
    const seconds = Math.min(MAX_SQS_DELAY_SECONDS, Math.max(backoff, notBefore));
    try {
      await deps.sqs.send(new ChangeMessageVisibilityCommand({
        QueueUrl: queueUrl, ReceiptHandle: message.receiptHandle, VisibilityTimeout: seconds,
      }));
    } catch (err) {
      // The queue's own visibility timeout then applies: later, never lost.
      deps.log.warn('could not shorten the retry delay; the queue visibility timeout applies', { error: (err as Error).message });
    }
    failures.push({ itemIdentifier: message.messageId });
  };

  for (const message of event.Records) {
    let ref: ObjectRef;
    try {
      ref = objectRefFromNotification(message.body, config.bucketName, config.dataPrefix);
    } catch (err) {
      // Not an object notification of this bucket: no retry can help; the DLQ keeps it with the reason in the logs.
      deps.log.error('message is not a notification of a new object of this ingest; it will move to the object DLQ', {
        messageId: message.messageId, error: (err as Error).message,
      });
      failures.push({ itemIdentifier: message.messageId });
      continue;
    }
    const context = { bucket: ref.bucket, key: ref.key, versionId: ref.versionId, messageId: message.messageId };
    try {
      const report = await publishObject({
        eventBridge: deps.eventBridge,
        ledger: deps.ledger,
        owner: `${deps.requestId}/${message.messageId}`,
        openObject: (r) => openObject(deps.s3, r),
        writeQuarantine: async (key, body) => {
          await deps.s3.send(new PutObjectCommand({ Bucket: config.bucketName, Key: key, Body: body, ContentType: 'application/x-ndjson' }));
        },
        remainingMs: deps.remainingMs,
        sleep: deps.sleep,
        nowSeconds: deps.nowSeconds,
      }, config.publisher, ref);
      deps.addMetrics?.(report, { DuplicateObjects: report.outcome === 'duplicate' ? 1 : 0 });
      if (report.outcome === 'busy') {
        // Another worker holds a live lease: retry later rather than drop the message, in case that worker fails.
        deps.log.warn('object is being published by another worker; the queue will retry this message', { ...context, ...report });
        const now = deps.nowSeconds?.() ?? Math.floor(Date.now() / 1000);
        await retryLater(message, (report.busyUntil ?? now) - now + 1);
      } else {
        deps.log.info('object processed', { ...context, ...report });
      }
    } catch (err) {
      if (!(err instanceof PublishRetryError)) {
        deps.log.error('object not finished; the queue will retry it, then park it in the object DLQ', { ...context, error: (err as Error).message });
        await retryLater(message);
        continue;
      }
      const partial = err.partial;
      const progressed = partial.published + partial.quarantined + partial.alreadyPublished > 0;
      deps.addMetrics?.(partial, { ObjectsPaused: 1 });
      if (progressed && await sendContinuation(deps, queueUrl, message, err.outOfTime ? 0 : THROTTLED_CONTINUATION_DELAY_SECONDS)) {
        deps.log.info('object paused; a continuation message resumes it', { ...context, line: err.line, reason: err.message });
        continue;
      }
      deps.log.error('object not finished; the queue will retry it, then park it in the object DLQ', { ...context, error: err.message });
      await retryLater(message);
    }
  }
  return { batchItemFailures: failures };
}

/** Sends the same notification again; false (the original is then kept) if SQS did not take it. */
async function sendContinuation(deps: ObjectQueueConsumerDeps, queueUrl: string, message: SQSRecord, delaySeconds: number): Promise<boolean> {
  try {
    await deps.sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: message.body, DelaySeconds: delaySeconds }));
    return true;
  } catch (err) {
    deps.log.warn('could not send the continuation message; keeping the original', { error: (err as Error).message });
    return false;
  }
}

/**
 * Opens the object. If the key is not found as given and looks URL-encoded (as S3's
 * classic notifications encode keys), the decoded key is tried too.
 */
async function openObject(s3: S3Client, ref: ObjectRef): Promise<AsyncIterable<Uint8Array>> {
  const get = async (key: string) => (await s3.send(new GetObjectCommand({ Bucket: ref.bucket, Key: key, VersionId: ref.versionId })))
    .Body as AsyncIterable<Uint8Array>;
  try {
    return await get(ref.key);
  } catch (err) {
    const decoded = decodeS3Key(ref.key);
    if (!(err instanceof NoSuchKey || (err as Error).name === 'NoSuchKey') || decoded === ref.key) throw err;
    return get(decoded);
  }
}
