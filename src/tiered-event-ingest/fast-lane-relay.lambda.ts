import { Logger } from '@aws-lambda-powertools/logger';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { relayRecord } from './relay-core';

const logger = new Logger();
const eventBridge = new EventBridgeClient({});

/**
 * The fast lane's default target: puts the record envelope the rule built on the curated
 * bus as a CuratedRecord event. Throws on an invalid envelope or a failed put, so Lambda's
 * async retries run and the event then lands in the fast lane DLQ with the error.
 */
export async function handler(envelope: unknown): Promise<{ eventId: string }> {
  const result = await relayRecord(eventBridge, process.env.CURATED_BUS_NAME ?? '', envelope);
  logger.info('relayed', { id: result.id, correlationId: result.correlationId, eventId: result.eventId });
  return { eventId: result.eventId };
}
