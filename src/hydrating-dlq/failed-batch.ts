import { describeValue as describe, isObject } from '../runtime/argument-checks';

/**
 * The failed batch a Kinesis consumer's dead-letter message describes: an EventBridge Pipe's
 * dead-letter queue message, or a Lambda event source mapping's on-failure record. Both hold
 * metadata only (the shard and the sequence range), not the records: the hydrator reads those
 * back from the stream before its retention ends.
 */

/** A failed batch of one shard: where to read its records back from, and why it failed. */
export interface FailedBatch {
  /** Who consumed the stream: a pipe (`context.partnerResourceArn`) or a Lambda function (`requestContext.functionArn`). */
  readonly origin: 'pipe' | 'lambda';
  readonly consumerArn: string;
  /** Why the consumer gave up, for example `RetryAttemptsExhausted` or `RecordAgeExceeded`. */
  readonly condition: string;
  readonly streamArn: string;
  readonly shardId: string;
  readonly startSequenceNumber: string;
  readonly endSequenceNumber: string;
  readonly approximateArrivalOfFirstRecord?: string;
  readonly approximateArrivalOfLastRecord?: string;
  readonly batchSize: number;
}

/** A dead-letter message read: its batch, or why it could not be read (the message is kept with that reason). */
export type FailedBatchMessage = { readonly ok: true; readonly batch: FailedBatch } | { readonly ok: false; readonly reason: string };

/** Kinesis's patterns (API reference): a sequence number, and a shard id. */
const SEQUENCE_NUMBER = /^(0|[1-9]\d{0,128})$/;
const SHARD_ID = /^[a-zA-Z0-9_.-]{1,128}$/;
const STREAM_ARN = /^arn:aws[a-z-]*:kinesis:[a-z0-9-]+:\d{12}:stream\/[a-zA-Z0-9_.-]{1,128}$/;

/** Reads a dead-letter message body (JSON) into the failed batch it describes, or says what is wrong with it. */
export function readFailedBatch(body: string): FailedBatchMessage {
  let message: unknown;
  try {
    message = JSON.parse(body);
  } catch (error) {
    return { ok: false, reason: `not JSON: ${(error as Error).message}` };
  }
  if (!isObject(message)) return { ok: false, reason: `not a JSON object: ${describe(message)}` };
  const info = message.KinesisBatchInfo;
  if (!isObject(info)) {
    return {
      ok: false,
      reason: 'no KinesisBatchInfo object; allowed: the dead-letter message of a pipe, or the on-failure record of a Lambda '
      + 'event source mapping, whose source is a Kinesis data stream',
    };
  }
  // A pipe's message has `context`, a Lambda record `requestContext`: one of them, and both fields from it.
  if (isObject(message.context) === isObject(message.requestContext)) {
    return {
      ok: false,
      reason: 'not a readable failed batch: expected exactly one of context (a pipe\'s dead-letter message) and '
      + 'requestContext (a Lambda on-failure record)',
    };
  }
  const pipe = isObject(message.context) ? message.context : undefined;
  const source = pipe ?? (message.requestContext as Record<string, unknown>);
  const consumerArn = pipe ? pipe.partnerResourceArn : source.functionArn;
  const condition = source.condition;
  const problems = [
    typeof consumerArn !== 'string' || !consumerArn.startsWith('arn:')
      ? `the consumer ARN (context.partnerResourceArn or requestContext.functionArn) is ${describe(consumerArn)}` : undefined,
    typeof condition !== 'string' || condition === ''
      ? `the condition (context.condition or requestContext.condition) is ${describe(condition)}` : undefined,
    typeof info.streamArn !== 'string' || !STREAM_ARN.test(info.streamArn) ? `KinesisBatchInfo.streamArn is ${describe(info.streamArn)}` : undefined,
    typeof info.shardId !== 'string' || !SHARD_ID.test(info.shardId) ? `KinesisBatchInfo.shardId is ${describe(info.shardId)}` : undefined,
    ...(['startSequenceNumber', 'endSequenceNumber'] as const).map((field) => (typeof info[field] !== 'string'
      || !SEQUENCE_NUMBER.test(info[field] as string) ? `KinesisBatchInfo.${field} is ${describe(info[field])}` : undefined)),
    !Number.isInteger(info.batchSize) || (info.batchSize as number) < 1 ? `KinesisBatchInfo.batchSize is ${describe(info.batchSize)}` : undefined,
  ].filter((problem): problem is string => problem !== undefined);
  if (problems.length === 0 && BigInt(info.startSequenceNumber as string) > BigInt(info.endSequenceNumber as string)) {
    problems.push(`the sequence range ${info.startSequenceNumber} to ${info.endSequenceNumber} ends before it starts`);
  }
  if (problems.length > 0) return { ok: false, reason: `not a readable failed batch: ${problems.join('; ')}` };
  const arrival = (value: unknown) => (typeof value === 'string' ? value : undefined);
  return {
    ok: true,
    batch: {
      origin: pipe ? 'pipe' : 'lambda',
      consumerArn: consumerArn as string,
      condition: condition as string,
      streamArn: info.streamArn as string,
      shardId: info.shardId as string,
      startSequenceNumber: info.startSequenceNumber as string,
      endSequenceNumber: info.endSequenceNumber as string,
      ...(arrival(info.approximateArrivalOfFirstRecord) ? { approximateArrivalOfFirstRecord: arrival(info.approximateArrivalOfFirstRecord) } : {}),
      ...(arrival(info.approximateArrivalOfLastRecord) ? { approximateArrivalOfLastRecord: arrival(info.approximateArrivalOfLastRecord) } : {}),
      batchSize: info.batchSize as number,
    },
  };
}
