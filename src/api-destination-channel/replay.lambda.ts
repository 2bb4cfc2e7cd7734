import { Logger } from '@aws-lambda-powertools/logger';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { SQSClient } from '@aws-sdk/client-sqs';
import type { Context } from 'aws-lambda';
import { parseReplayRequest, replayDeadLetters, ReplayResult } from './replay-core';
import { DEFAULT_MAX_ENTRY_BYTES } from '../runtime/put-events';

const logger = new Logger();
const sqs = new SQSClient({});
const eventBridge = new EventBridgeClient({});

/**
 * Replays an ApiDestinationChannel dead-letter queue to its own channel.
 * Invoke synchronously with `{"queueUrl": "<dead-letter queue URL>"}`.
 */
export async function handler(payload: unknown, context: Context): Promise<ReplayResult> {
  const request = parseReplayRequest(payload);
  logger.appendKeys({ queueUrl: request.queueUrl });
  const result = await replayDeadLetters({
    sqs,
    eventBridge,
    replayBusName: requiredEnv('REPLAY_BUS_NAME'),
    maxEntryBytes: Number(process.env.MAX_ENTRY_BYTES ?? DEFAULT_MAX_ENTRY_BYTES),
    remainingTimeMs: () => context.getRemainingTimeInMillis(),
    log: (message, fields) => logger.warn(message, fields),
  }, request);
  logger.info('replay finished', {
    received: result.received,
    replayed: result.replayed,
    deferred: result.deferred,
    failed: result.failedCount,
    failureReasons: result.failureReasons,
  });
  return result;
}

function requiredEnv(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`Environment variable ${name} is not set`);
  return value;
}
