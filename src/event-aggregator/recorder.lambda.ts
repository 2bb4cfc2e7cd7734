import { Logger } from '@aws-lambda-powertools/logger';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { recordEvent, recorderConfigFromEnv, RecorderInput, RecordResult } from './recorder-core';
import { withHandlerTimeouts } from '../runtime/client-timeouts';

const logger = new Logger();
const dynamoDb = new DynamoDBClient(withHandlerTimeouts());

/**
 * Stores one event of a bus source, invoked asynchronously by the source's EventBridge
 * rule with `{ correlationId, eventName, eventId, time, detail }`. Invalid input throws
 * with the reason: Lambda's async retries and on-failure destination then park the event,
 * with that message, in the recorder DLQ.
 */
export async function handler(event: RecorderInput): Promise<RecordResult> {
  const config = recorderConfigFromEnv(process.env);
  const correlationId = typeof event?.correlationId === 'string' || typeof event?.correlationId === 'number' ? String(event.correlationId) : undefined;
  logger.appendKeys({ correlationId, eventName: event?.eventName, eventId: event?.eventId });
  try {
    return await recordEvent({ dynamoDb, logger }, config, event);
  } catch (err) {
    logger.error('event not stored; the invocation fails so the on-failure destination parks it with this reason', err as Error);
    throw err;
  } finally {
    logger.removeKeys(['correlationId', 'eventName', 'eventId']);
  }
}
