import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { GetObjectCommand, NoSuchKey, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { DynamoDbObjectLedger } from './object-ledger-core';
import { decodeS3Key, objectRefFromNotification, publisherConfigFromEnv } from './publisher-config-core';
import { ObjectRef, ObjectReport, publishObject, PublishRetryError } from './publisher-core';

const logger = new Logger();
const metrics = new Metrics({ defaultDimensions: { ingest: process.env.INGEST_ID ?? 'unknown' } });
const s3 = new S3Client({});
const eventBridge = new EventBridgeClient({});
const ledger = new DynamoDbObjectLedger(new DynamoDBClient({}), process.env.LEDGER_TABLE_NAME ?? '');

function addMetrics(report: ObjectReport): void {
  metrics.addMetric('RecordsPublished', MetricUnit.Count, report.published);
  metrics.addMetric('RecordsQuarantined', MetricUnit.Count, report.quarantined);
  metrics.addMetric('EventsPublished', MetricUnit.Count, report.events);
  metrics.addMetric('BilledChunks', MetricUnit.Count, report.billedChunks);
}

/**
 * Opens the object. If the key is not found as given and looks URL-encoded (as S3's
 * classic notifications encode keys), the decoded key is tried too.
 */
async function openObject(ref: ObjectRef): Promise<AsyncIterable<Uint8Array>> {
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

/**
 * Publishes each S3 object named by an SQS message (an EventBridge "Object Created"
 * event) to the curated bus as CuratedBatch events. A message that fails is reported as a
 * batch item failure, so SQS retries it and finally moves it to the object DLQ.
 */
export async function handler(event: SQSEvent, context: Context): Promise<SQSBatchResponse> {
  const env = publisherConfigFromEnv(process.env);
  const failures: SQSBatchResponse['batchItemFailures'] = [];
  for (const message of event.Records) {
    try {
      const ref = objectRefFromNotification(message.body, env.bucketName, env.dataPrefix);
      logger.appendKeys({ bucket: ref.bucket, key: ref.key, versionId: ref.versionId });
      const report = await publishObject({
        eventBridge,
        ledger,
        owner: `${context.awsRequestId}/${message.messageId}`,
        openObject,
        writeQuarantine: async (key, body) => {
          await s3.send(new PutObjectCommand({ Bucket: env.bucketName, Key: key, Body: body, ContentType: 'application/x-ndjson' }));
        },
      }, env.publisher, ref);
      addMetrics(report);
      if (report.outcome === 'duplicate') metrics.addMetric('DuplicateObjects', MetricUnit.Count, 1);
      if (report.outcome === 'busy') {
        // Another worker holds a live lease: retry later rather than drop the message, in
        // case that worker fails.
        logger.warn('object is being published by another worker; the queue will retry this message', { ...report });
        failures.push({ itemIdentifier: message.messageId });
      } else {
        logger.info('object processed', { ...report });
      }
    } catch (err) {
      if (err instanceof PublishRetryError) addMetrics(err.partial);
      logger.error('object not finished; the queue will retry it, then park it in the object DLQ', err as Error);
      failures.push({ itemIdentifier: message.messageId });
    } finally {
      logger.removeKeys(['bucket', 'key', 'versionId']);
    }
  }
  metrics.publishStoredMetrics();
  return { batchItemFailures: failures };
}
