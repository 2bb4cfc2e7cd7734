import { ConditionalCheckFailedException, DynamoDBClient, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { marshall } from '@aws-sdk/util-dynamodb';
import {
  CORRELATION_ID_ATTRIBUTE, EVENT_NAME_ATTRIBUTE, eventKey, EXPIRES_AT_ATTRIBUTE, PAYLOAD_JSON_ATTRIBUTE, RECORDER_ENV, RESERVED_EVENT_NAME_PREFIX,
} from './aggregator-contract';
import { CoreLogger, SILENT_LOGGER } from '../runtime/core-logger';
import { positiveIntegerEnv, requiredEnv } from '../runtime/env-settings';

/** Default for MAX_PAYLOAD_BYTES: leaves room under DynamoDB's 400 KB item limit for the keys and metadata. */
export const DEFAULT_MAX_PAYLOAD_BYTES = 350_000;
/** DynamoDB's limits on key values, in UTF-8 bytes. */
export const MAX_PARTITION_KEY_BYTES = 2048;
export const MAX_SORT_KEY_BYTES = 1024;
/** Event ids are UUIDs (36 bytes); a longer id leaves too little of the sort key for the name. */
export const MAX_EVENT_ID_BYTES = 128;


export interface RecorderConfig {
  readonly tableName: string;
  readonly itemTtlSeconds: number;
  readonly maxPayloadBytes: number;
}

/** The recorder's settings, read from the environment the construct sets. */
export function recorderConfigFromEnv(env: NodeJS.ProcessEnv): RecorderConfig {
  return {
    tableName: requiredEnv(env, RECORDER_ENV.TABLE_NAME),
    itemTtlSeconds: positiveIntegerEnv(env, RECORDER_ENV.ITEM_TTL_SECONDS),
    maxPayloadBytes: positiveIntegerEnv(env, RECORDER_ENV.MAX_PAYLOAD_BYTES, DEFAULT_MAX_PAYLOAD_BYTES),
  };
}

/**
 * What the recorder is invoked with: the EventBridge rule's input transformer turns the
 * source event into this shape (`correlationId`/`eventName` are null when the event lacks them).
 */
export interface RecorderInput {
  readonly correlationId?: unknown;
  readonly eventName?: unknown;
  readonly eventId?: unknown;
  readonly time?: unknown;
  readonly detail?: unknown;
}

export interface RecordResult {
  /** `recorded`: the item was written; `already-recorded`: this event (same event id) is stored already. */
  readonly outcome: 'recorded' | 'already-recorded';
  readonly correlationId: string;
  readonly eventName: string;
  readonly eventId: string;
  readonly payloadBytes: number;
}

export interface RecorderDeps {
  readonly dynamoDb: Pick<DynamoDBClient, 'send'>;
  readonly logger?: CoreLogger;
  readonly nowSeconds?: () => number;
}

/** A value for an error message: JSON, cut to 200 characters. */
export function describeValue(value: unknown): string {
  const text = value === undefined ? 'undefined' : JSON.stringify(value);
  return text.length > 200 ? `${text.slice(0, 200)}...` : text;
}

/** A key value: a non-empty string, or a finite number in its string form (the seed's order ids are numbers). */
function keyValue(field: string, value: unknown, maxBytes: number): string {
  // Ids past 2^53 were already rounded when the event was parsed: two orders could merge.
  if (typeof value === 'number' && Number.isFinite(value) && !Number.isSafeInteger(value) && Number.isInteger(value)) {
    throw new Error(`${field} ${describeValue(value)} is a number too large to be exact in JSON (over 2^53); send it as a string`);
  }
  const text = typeof value === 'number' && Number.isFinite(value) ? String(value) : value;
  if (typeof text !== 'string' || text.trim() === '') {
    throw new Error(`${field} must be a non-empty string or a number, got ${describeValue(value)}; check the rule's input transformer path`);
  }
  // A control character could be the separator of the sort key, or hide in a log line.
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(text)) throw new Error(`${field} ${describeValue(text)} contains a control character; allowed: printable text`);
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > maxBytes) throw new Error(`${field} is ${bytes} bytes of UTF-8, more than the ${maxBytes}-byte limit: ${describeValue(text)}`);
  // The aggregated event always carries the correlation id as JSON: its escaped form must fit too.
  const jsonBytes = Buffer.byteLength(JSON.stringify(text), 'utf8') - 2;
  if (jsonBytes > maxBytes) throw new Error(`${field} is ${jsonBytes} bytes once escaped as JSON, more than the ${maxBytes}-byte limit: ${describeValue(text)}`);
  return text;
}

/** Validates the input; throws an Error stating the reason and the offending value or size. */
export function validateRecorderInput(input: RecorderInput, maxPayloadBytes: number): {
  correlationId: string; eventName: string; eventId: string; time?: string; payloadBytes: number;
} {
  if (input === null || typeof input !== 'object') throw new Error(`the recorder expects an object from the rule's input transformer, got ${describeValue(input)}`);
  const correlationId = keyValue('correlationId', input.correlationId, MAX_PARTITION_KEY_BYTES);
  if (typeof input.eventId !== 'string' || input.eventId === '') {
    throw new Error(`eventId must be the EventBridge event id ($.id), got ${describeValue(input.eventId)}`);
  }
  const eventId = keyValue('eventId', input.eventId, MAX_EVENT_ID_BYTES);
  // The sort key is the name, a separator and the event id, within DynamoDB's 1024 bytes.
  const eventName = keyValue('eventName', input.eventName, MAX_SORT_KEY_BYTES - 1 - Buffer.byteLength(eventId, 'utf8'));
  if (eventName.startsWith(RESERVED_EVENT_NAME_PREFIX)) {
    throw new Error(`eventName ${describeValue(eventName)} is reserved: names starting with '${RESERVED_EVENT_NAME_PREFIX}' are the aggregator's own`);
  }
  const payloadBytes = Buffer.byteLength(JSON.stringify(input.detail ?? null), 'utf8');
  if (payloadBytes > maxPayloadBytes) {
    throw new Error(`detail of event ${input.eventId} (${eventName} for ${correlationId}) is ${payloadBytes} bytes of JSON, more than the ${maxPayloadBytes} `
      + 'bytes the recorder stores (MAX_PAYLOAD_BYTES; DynamoDB items are at most 400 KB)');
  }
  const time = typeof input.time === 'string' && input.time !== '' ? input.time : undefined;
  return { correlationId, eventName, eventId, time, payloadBytes };
}

/**
 * Stores one event of a bus source as the item (correlationId, eventName + U+001F + eventId):
 * every distinct event is kept, and the aggregator decides which ones count (the first or the
 * newest of a name, N of them, those matching a condition). The same event again (a retried
 * invocation, a redelivery) finds its item and writes nothing. Invalid input throws; the
 * async invocation's on-failure destination then parks the event with that message.
 */
export async function recordEvent(deps: RecorderDeps, config: RecorderConfig, input: RecorderInput): Promise<RecordResult> {
  const logger = deps.logger ?? SILENT_LOGGER;
  const nowMs = deps.nowSeconds ? deps.nowSeconds() * 1000 : Date.now();
  const now = Math.floor(nowMs / 1000);
  const { correlationId, eventName, eventId, time, payloadBytes } = validateRecorderInput(input, config.maxPayloadBytes);
  const item = {
    [CORRELATION_ID_ATTRIBUTE]: correlationId,
    [EVENT_NAME_ATTRIBUTE]: eventKey(eventName, eventId),
    eventId,
    receivedAt: time ?? new Date(now * 1000).toISOString(),
    // Breaks ties of event time, which EventBridge gives in whole seconds: a correction sent
    // in the same second as the event it corrects is recorded after it.
    recordedAt: new Date(nowMs).toISOString(),
    [PAYLOAD_JSON_ATTRIBUTE]: JSON.stringify(input.detail ?? null),
    [EXPIRES_AT_ATTRIBUTE]: now + config.itemTtlSeconds,
  };
  const result = { correlationId, eventName, eventId, payloadBytes };
  try {
    await deps.dynamoDb.send(new PutItemCommand({
      TableName: config.tableName,
      Item: marshall(item, { removeUndefinedValues: true, convertClassInstanceToMap: true }),
      // Written once; an expired copy (TTL deletes late) is a set that ended: this starts a new one.
      ConditionExpression: 'attribute_not_exists(#name) OR #expires <= :now',
      ExpressionAttributeNames: { '#name': EVENT_NAME_ATTRIBUTE, '#expires': EXPIRES_AT_ATTRIBUTE },
      ExpressionAttributeValues: { ':now': { N: String(now) } },
    }));
  } catch (err) {
    if (!(err instanceof ConditionalCheckFailedException) && (err as Error).name !== 'ConditionalCheckFailedException') throw err;
    logger.info('event already recorded (a redelivery); nothing written', result);
    return { outcome: 'already-recorded', ...result };
  }
  logger.info('event recorded', result);
  return { outcome: 'recorded', ...result };
}
