import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { DynamoDbObjectLedger } from './object-ledger-core';
import { objectRefFromNotification, publisherConfigFromEnv } from './publisher-config-core';
import { publishObject } from './publisher-core';

const logger = new Logger();
const metrics = new Metrics({ defaultDimensions: { ingest: process.env.INGEST_ID ?? 'unknown' } });
const s3 = new S3Client({});
const eventBridge = new EventBridgeClient({});
const ledger = new DynamoDbObjectLedger(new DynamoDBClient({}), process.env.LEDGER_TABLE_NAME ?? '');

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
        openObject: async (r) => {
          const object = await s3.send(new GetObjectCommand({ Bucket: r.bucket, Key: r.key, VersionId: r.versionId }));
          return object.Body as AsyncIterable<Uint8Array>;
        },
        writeQuarantine: async (key, body) => {
          await s3.send(new PutObjectCommand({ Bucket: env.bucketName, Key: key, Body: body, ContentType: 'application/x-ndjson' }));
        },
      }, env.publisher, ref);
      metrics.addMetric('RecordsPublished', MetricUnit.Count, report.published);
      metrics.addMetric('RecordsQuarantined', MetricUnit.Count, report.quarantined);
      metrics.addMetric('EventsPublished', MetricUnit.Count, report.events);
      metrics.addMetric('BilledChunks', MetricUnit.Count, report.billedChunks);
      if (report.outcome === 'duplicate') metrics.addMetric('DuplicateObjects', MetricUnit.Count, 1);
      logger.info('object processed', { ...report });
    } catch (err) {
      logger.error('object not finished; the queue will retry it, then park it in the object DLQ', err as Error);
      failures.push({ itemIdentifier: message.messageId });
    } finally {
      logger.removeKeys(['bucket', 'key', 'versionId']);
    }
  }
  metrics.publishStoredMetrics();
  return { batchItemFailures: failures };
}
