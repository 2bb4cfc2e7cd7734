import { Logger } from '@aws-lambda-powertools/logger';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { KinesisClient } from '@aws-sdk/client-kinesis';
import { S3Client } from '@aws-sdk/client-s3';
import { HYDRATOR_ENV } from './hydrating-dlq-contract';
import { ReplayReport, Replayer } from './replayer-core';
import { withHandlerTimeouts } from '../runtime/client-timeouts';
import { requiredEnv } from '../runtime/env-settings';

const env = process.env;
const replayer = new Replayer({
  s3: new S3Client(withHandlerTimeouts()),
  kinesis: new KinesisClient(withHandlerTimeouts()),
  eventBridge: new EventBridgeClient(withHandlerTimeouts()),
  logger: new Logger(),
}, {
  bucketName: requiredEnv(env, HYDRATOR_ENV.BUCKET_NAME),
  prefix: env[HYDRATOR_ENV.OBJECT_PREFIX] ?? '',
  replayStreamName: requiredEnv(env, HYDRATOR_ENV.REPLAY_STREAM_NAME),
  eventBusName: env[HYDRATOR_ENV.REPLAY_EVENT_BUS_NAME] || undefined,
});

/**
 * Replays hydrated records (see `Replayer`). Invoked by an operator, synchronously:
 * `aws lambda invoke --function-name <replayer> --payload '{"consumer":"<pipe>","from":"...","to":"...","dryRun":true}' out.json`.
 * A request that is not valid fails with a message saying what is allowed; nothing is sent.
 */
export async function handler(event: unknown): Promise<ReplayReport> {
  return replayer.replay(event);
}
