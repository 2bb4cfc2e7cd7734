import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { KinesisClient } from '@aws-sdk/client-kinesis';
import { S3Client } from '@aws-sdk/client-s3';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { HYDRATOR_ENV } from './hydrating-dlq-contract';
import { Hydrator } from './hydrator-core';
import { withHandlerTimeouts } from '../runtime/client-timeouts';
import { requiredEnv } from '../runtime/env-settings';

const env = process.env;
const logger = new Logger();
const metrics = new Metrics({ defaultDimensions: { hydratingDlq: env[HYDRATOR_ENV.METRICS_ID] ?? 'unknown' } });
const hydrator = new Hydrator({
  kinesis: new KinesisClient(withHandlerTimeouts()),
  s3: new S3Client(withHandlerTimeouts()),
  logger,
}, {
  bucketName: requiredEnv(env, HYDRATOR_ENV.BUCKET_NAME),
  prefix: env[HYDRATOR_ENV.OBJECT_PREFIX] ?? '',
  streamArns: requiredEnv(env, HYDRATOR_ENV.STREAM_ARNS).split(','),
});

/**
 * Hydrates each message of the pipe's dead-letter queue (see `Hydrator`). A message whose
 * hydration failed is reported as a batch item failure: SQS returns it after the visibility
 * timeout, and after the retries moves it to the hydrator's own dead-letter queue.
 */
export async function handler(event: SQSEvent): Promise<SQSBatchResponse> {
  try {
    const report = await hydrator.handleBatch(event.Records);
    const count = (outcome: string) => report.messages.filter((m) => m.outcome === outcome).length;
    metrics.addMetric('RecordsHydrated', MetricUnit.Count, report.messages.reduce((sum, m) => sum + m.recordsWritten, 0));
    metrics.addMetric('BatchesHydrated', MetricUnit.Count, count('hydrated') + count('hydrated-wider-range'));
    metrics.addMetric('BatchesWiderRange', MetricUnit.Count, count('hydrated-wider-range'));
    metrics.addMetric('BatchesPartlyUnrecoverable', MetricUnit.Count, count('partly-unrecoverable'));
    metrics.addMetric('MessagesUnreadable', MetricUnit.Count, count('unreadable'));
    metrics.addMetric('MessagesFailed', MetricUnit.Count, report.batchItemFailures.length);
    return { batchItemFailures: report.batchItemFailures };
  } finally {
    metrics.publishStoredMetrics();
  }
}
