import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { DynamoDbObjectLedger } from './object-ledger-core';
import { consumeObjectMessages } from './object-queue-consumer-core';

const logger = new Logger();
const metrics = new Metrics({ defaultDimensions: { ingest: process.env.INGEST_ID ?? 'unknown' } });
const s3 = new S3Client({});
const eventBridge = new EventBridgeClient({});
const sqs = new SQSClient({});
const ledger = new DynamoDbObjectLedger(new DynamoDBClient({}), process.env.LEDGER_TABLE_NAME ?? '');

/**
 * Publishes each S3 object named by an SQS message (an EventBridge "Object Created"
 * event) to the curated bus as CuratedBatch events. A message that fails is reported as a
 * batch item failure, so SQS retries it and finally moves it to the object DLQ; a long or
 * throttled object continues in a new message (see `consumeObjectMessages`).
 */
export async function handler(event: SQSEvent, context: Context): Promise<SQSBatchResponse> {
  try {
    return await consumeObjectMessages({
      s3,
      eventBridge,
      sqs,
      ledger,
      requestId: context.awsRequestId,
      remainingMs: () => context.getRemainingTimeInMillis(),
      log: logger,
      addMetrics: (report, extra) => {
        metrics.addMetric('RecordsPublished', MetricUnit.Count, report.published);
        metrics.addMetric('RecordsQuarantined', MetricUnit.Count, report.quarantined);
        metrics.addMetric('EventsPublished', MetricUnit.Count, report.events);
        metrics.addMetric('BilledChunks', MetricUnit.Count, report.billedChunks);
        for (const [name, value] of Object.entries(extra)) metrics.addMetric(name, MetricUnit.Count, value);
      },
    }, process.env, event);
  } finally {
    metrics.publishStoredMetrics();
  }
}
