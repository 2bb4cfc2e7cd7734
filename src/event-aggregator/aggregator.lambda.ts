import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { S3Client } from '@aws-sdk/client-s3';
import { SchedulerClient } from '@aws-sdk/client-scheduler';
import type { Context, DynamoDBBatchResponse, DynamoDBStreamEvent } from 'aws-lambda';
import { AGGREGATOR_ENV, DeadlineInvocation } from './aggregator-contract';
import { Aggregator, aggregatorConfigFromEnv } from './aggregator-core';
import { redriveFailedBatches, RedriveFailedBatchesInvocation, RedriveFailedBatchesReport } from './failed-batch-redrive-core';
import { describeValue } from './recorder-core';
import { withHandlerTimeouts } from '../runtime/client-timeouts';
import { requiredEnv } from '../runtime/env-settings';

const logger = new Logger();
// The `aggregator` dimension keeps the metrics of several aggregators in one account apart.
const metrics = new Metrics({ defaultDimensions: { aggregator: process.env.AGGREGATOR_ID ?? 'unknown' } });
// One attempt per send: the core retries PutEvents and the finish itself, within the
// invocation's time, and a failed read or claim is retried by the stream.
const dynamoDb = new DynamoDBClient({ ...withHandlerTimeouts(), maxAttempts: 1 });
const eventBridge = new EventBridgeClient({ ...withHandlerTimeouts(), maxAttempts: 1 });
const scheduler = new SchedulerClient(withHandlerTimeouts());
const s3 = new S3Client(withHandlerTimeouts());

type Invocation = DynamoDBStreamEvent | DeadlineInvocation | RedriveFailedBatchesInvocation;

/**
 * One function for three triggers: a batch of the table's stream (`Records`), the deadline
 * schedule (`{ deadlineFor }`) and an operator's redrive of the failed batches
 * (`{ redriveFailedBatches: {} }`, answered with a report). Stream failures are reported per
 * correlation id as batch item failures; a failed deadline invocation throws so the schedule
 * retries it (and finally parks it in its DLQ).
 */
export async function handler(event: Invocation, context: Context): Promise<DynamoDBBatchResponse | RedriveFailedBatchesReport | void> {
  const aggregator = new Aggregator({
    dynamoDb,
    eventBridge,
    scheduler,
    owner: context.awsRequestId,
    remainingMs: () => context.getRemainingTimeInMillis(),
    logger,
    metric: (name, value) => metrics.addMetric(name, MetricUnit.Count, value),
  }, aggregatorConfigFromEnv(process.env));
  try {
    if (event && Array.isArray((event as DynamoDBStreamEvent).Records)) {
      const report = await aggregator.processStreamBatch(event as DynamoDBStreamEvent);
      logger.info('stream batch processed', {
        records: (event as DynamoDBStreamEvent).Records.length,
        ignored: report.ignoredRecords,
        outcomes: report.outcomes.reduce<Record<string, number>>((counts, o) => ({ ...counts, [o.outcome]: (counts[o.outcome] ?? 0) + 1 }), {}),
        failures: report.batchItemFailures.length,
      });
      return { batchItemFailures: report.batchItemFailures };
    }
    if (event && typeof event === 'object' && 'redriveFailedBatches' in event) {
      const report = await redriveFailedBatches({
        s3,
        aggregator,
        bucketName: requiredEnv(process.env, AGGREGATOR_ENV.FAILED_BATCH_BUCKET_NAME),
        logger,
        remainingMs: () => context.getRemainingTimeInMillis(),
      }, event);
      logger.info('failed batches redriven', { ...report });
      return report;
    }
    if (event && typeof event === 'object' && 'deadlineFor' in event) {
      const outcome = await aggregator.processDeadline(event);
      logger.info('deadline processed', { ...outcome });
      return;
    }
    throw new Error(`unrecognised invocation: expected a DynamoDB stream batch (Records), { deadlineFor } or { redriveFailedBatches }, got ${describeValue(event)}`);
  } finally {
    metrics.publishStoredMetrics();
  }
}
