import { Logger } from '@aws-lambda-powertools/logger';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { KinesisClient } from '@aws-sdk/client-kinesis';
import { S3Client } from '@aws-sdk/client-s3';
import type { Context } from 'aws-lambda';
import { HYDRATOR_ENV } from './hydrating-dlq-contract';
import { ReplayReport, Replayer } from './replayer-core';
import { withHandlerTimeouts } from '../runtime/client-timeouts';
import { requiredEnv } from '../runtime/env-settings';

const env = process.env;
const clients = {
  s3: new S3Client(withHandlerTimeouts()),
  kinesis: new KinesisClient(withHandlerTimeouts()),
  eventBridge: new EventBridgeClient(withHandlerTimeouts()),
  logger: new Logger(),
};
const settings = {
  bucketName: requiredEnv(env, HYDRATOR_ENV.BUCKET_NAME),
  prefix: env[HYDRATOR_ENV.OBJECT_PREFIX] ?? '',
  replayStreamName: requiredEnv(env, HYDRATOR_ENV.REPLAY_STREAM_NAME),
  eventBusName: env[HYDRATOR_ENV.REPLAY_EVENT_BUS_NAME] || undefined,
};

/**
 * Replays hydrated records (see `Replayer`). Invoked by an operator, synchronously:
 * `aws lambda invoke --function-name <replayer> --payload '{"consumer":"<pipe>","from":"...","to":"...","dryRun":true}' out.json`.
 * A request that is not valid fails with a message saying what is allowed; nothing is sent. A
 * replay that runs short of time stops between chunks and returns `startAfter` to continue.
 */
export async function handler(event: unknown, context?: Context): Promise<ReplayReport> {
  const remainingMs = context ? () => context.getRemainingTimeInMillis() : undefined;
  return new Replayer({ ...clients, remainingMs }, settings).replay(event);
}
