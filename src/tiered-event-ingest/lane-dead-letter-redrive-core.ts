import { createHash } from 'crypto';
import type { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import {
  ChangeMessageVisibilityBatchCommand, DeleteMessageBatchCommand, Message, MessageAttributeValue, ReceiveMessageCommand, SQSClient,
} from '@aws-sdk/client-sqs';
import { relayRecord } from './relay-core';
import type { CuratedEnvelopePaths } from '../envelope/curated-envelope';
import { errorText, nonNegativeInteger, positiveInteger } from '../runtime/argument-checks';
import { checkRecord, ENVELOPE_SCHEMA_VERSION, Lane, RecordEnvelope } from '../runtime/curated-envelope';
import { resolveEnvelopePaths } from '../runtime/envelope-paths';

/**
 * Redrive of the two lane dead-letter queues of `TieredEventIngest`.
 *
 * Their messages came from EventBridge (a target it could not deliver to after its retry
 * policy) or from Lambda (the relay's asynchronous on-failure records), not from a source
 * queue, so SQS's own DLQ redrive cannot move them back. Here each message is turned back
 * into the record envelope the lane's rule would have built and sent on the lane's normal
 * path: the slow lane's records are written to the ingest bucket under `data/`, where the
 * batch publisher picks them up like any Firehose object; the fast lane's records are put on
 * the curated bus by the relay's own code. A message is deleted only once its record is
 * stored (S3) or put (EventBridge): at least once, never lost. The envelope keeps the
 * original event id, so consumers can discard a record they already have.
 */

/** Redriven slow-lane objects are written under this prefix: inside `data/`, so S3 notifies the batch publisher. */
export const SLOW_LANE_REDRIVE_PREFIX = 'data/redrive/slow-lane-dlq/';
/** Messages received per call unless the request says otherwise. */
export const DEFAULT_MAX_DEAD_LETTERS = 1000;

const DEFAULT_VISIBILITY_TIMEOUT_SECONDS = 300;
const DEFAULT_WAIT_TIME_SECONDS = 2;
const DEFAULT_RESERVE_MS = 10_000;
const DEFAULT_REPORT_LIMIT = 100;
/** SQS's cap on ReceiveMessage, DeleteMessageBatch and ChangeMessageVisibilityBatch entries. */
const SQS_BATCH = 10;
/** The fields an EventBridge event always has, which the lane's input transformer reads. */
const EVENT_STRING_FIELDS = ['id', 'source', 'detail-type', 'time'] as const;

/**
 * The record envelope made from an event, or why there is none. Never thrown: a redrive
 * reports a bad message and goes on with the next one.
 */
export type EnvelopeResult =
  | { readonly valid: true; readonly envelope: RecordEnvelope }
  | { readonly valid: false; readonly errors: string[] };

/**
 * Builds the record envelope the lane's rule builds with its input transformer
 * (`CuratedEnvelope.ruleTargetInput`), from the event the rule matched. Used to redrive an
 * event EventBridge parked in a lane DLQ: the DLQ holds the event, not the target input.
 *
 * - `id` is the event's own id, not a new one, so a consumer that already has the record
 *   (a DLQ message redriven twice) recognises the repeat.
 * - tenant, channel and correlation id are the values at the configured paths as the
 *   quoted template renders them: a string as it is, a number or boolean as its JSON text,
 *   an object or array as its JSON without quotes (EventBridge removes the inner quotes of
 *   a JSON value referenced in a string), a missing path as `""`.
 * - Unlike the transformer, which inserts strings unescaped, a value holding `"` or `\` is
 *   escaped here: the transformer's output would not even be JSON, the redriven record is.
 *
 * The result is validated with `checkRecord`; errors (a path that is not an EventBridge
 * JSON path, a value that is not an EventBridge event, an invalid envelope) are returned.
 */
export function envelopeFromEvent(event: unknown, lane: Lane, paths: CuratedEnvelopePaths = {}): EnvelopeResult {
  let resolved: Required<CuratedEnvelopePaths>;
  try {
    resolved = resolveEnvelopePaths(paths);
  } catch (err) {
    return { valid: false, errors: [(err as Error).message] };
  }
  if (!isObject(event)) return { valid: false, errors: ['not an EventBridge event: not a JSON object'] };
  const missing: string[] = EVENT_STRING_FIELDS.filter((field) => typeof event[field] !== 'string');
  if (!('detail' in event)) missing.push('detail');
  if (missing.length > 0) return { valid: false, errors: [`not an EventBridge event: no ${missing.join(', ')}`] };
  const envelope: RecordEnvelope = {
    schemaVersion: ENVELOPE_SCHEMA_VERSION,
    kind: 'record',
    id: event.id as string,
    tenant: quotedValue(event, resolved.tenantIdPath),
    channel: quotedValue(event, resolved.channelPath),
    correlationId: quotedValue(event, resolved.correlationIdPath),
    lane,
    time: event.time as string,
    source: event.source as string,
    detailType: event['detail-type'] as string,
    payload: event.detail,
  };
  const check = checkRecord(envelope);
  return check.valid ? { valid: true, envelope } : { valid: false, errors: check.errors };
}

/** The value at `path` as the template's `"<var>"` renders it (see `envelopeFromEvent`). */
function quotedValue(event: Record<string, unknown>, path: string): string {
  let node: unknown = event;
  for (const [, name, index] of path.slice(1).matchAll(/\.([^.[]+)|\[(\d+)\]/g)) {
    if (name !== undefined && isObject(node) && Object.prototype.hasOwnProperty.call(node, name)) node = node[name];
    else if (index !== undefined && Array.isArray(node) && Number(index) < node.length) node = node[Number(index)];
    else return ''; // EventBridge renders a missing path inside quotes as nothing.
  }
  // EventBridge's rendering of a null inside quotes is not documented; "" says "no id", as a missing path does.
  if (node === null || node === undefined) return '';
  if (typeof node === 'string') return node;
  if (typeof node === 'object') return JSON.stringify(node).replace(/"/g, '');
  return JSON.stringify(node);
}

/** Clients and clock of a lane DLQ redrive, injected so a handler or a test owns them. */
export interface LaneDeadLetterRedriveDeps {
  readonly sqs: SQSClient;
  /** Needed by the slow lane: redriven records are written to the ingest bucket. */
  readonly s3?: S3Client;
  /** Needed by the fast lane: redriven records are put on the curated bus. */
  readonly eventBridge?: EventBridgeClient;
  /** Time left in the invocation, ms (Lambda's `getRemainingTimeInMillis`): no receive starts with less than `reserveMs` left. */
  readonly remainingMs: () => number;
  /** The clock that dates redriven slow-lane objects (their key holds the UTC hour). @default the system clock */
  readonly now?: () => Date;
  /** Backoff between PutEvents retries of throttled entries (fast lane). @default setTimeout */
  readonly sleep?: (ms: number) => Promise<void>;
}

/** What both lanes' redrives take: the DLQ, the envelope paths and how far to go. */
export interface LaneDeadLetterRedriveRequest {
  /** The lane's dead-letter queue, read from. */
  readonly deadLetterQueueUrl: string;
  /** The envelope paths the construct was given (`envelopePaths`). @default the defaults of `CuratedEnvelope.resolvePaths` */
  readonly paths?: CuratedEnvelopePaths;
  /** Messages received in this call at most. @default 1000 */
  readonly maxMessages?: number;
  /**
   * How long a received message stays hidden, s. It must cover the handling of one batch (a
   * message redriven after it expired may be redriven twice). Messages left in the DLQ are
   * made visible again when the call ends; if it never ends (a crash), after this timeout.
   * @default 300
   */
  readonly visibilityTimeoutSeconds?: number;
  /** Long-poll wait of each receive, s: an empty answer after it means the queue is empty. @default 2 */
  readonly waitTimeSeconds?: number;
  /** No new receive starts with less than this left of the invocation, ms. @default 10000 */
  readonly reserveMs?: number;
  /** Messages kept in the report's list (the counts are always complete). @default 100 */
  readonly reportLimit?: number;
}

/** One call of `redriveSlowLaneDeadLetters`. */
export interface SlowLaneRedriveRequest extends LaneDeadLetterRedriveRequest {
  /** The ingest bucket: redriven records are written to it, under `data/redrive/slow-lane-dlq/`. */
  readonly bucket: string;
}

/** One call of `redriveFastLaneDeadLetters`. */
export interface FastLaneRedriveRequest extends LaneDeadLetterRedriveRequest {
  /** The curated bus the relay puts records on. */
  readonly curatedBusName: string;
  /**
   * The relay function (a version or alias qualifier is ignored): its on-failure records,
   * and the EventBridge dead letters whose `TARGET_ARN` is the relay (routes to it), are
   * redriven through the relay's code. Dead letters of other targets are not (the construct
   * cannot deliver to a target it does not own).
   */
  readonly relayFunctionArn: string;
}

/** A message left in the dead-letter queue, or redriven but not deleted, with the reason. */
export interface DeadLetterNote {
  readonly messageId: string;
  readonly reason: string;
}

/**
 * What one call did. `received === redriven + kept`. The `notDeleted` of the redriven ones
 * are still in the DLQ as well: a later run redrives them again (same envelope id).
 */
export interface LaneDeadLetterReport {
  readonly received: number;
  /** Records stored (slow lane) or put (fast lane). */
  readonly redriven: number;
  /** Messages left in the DLQ: each is listed in `notes` with its reason (up to `reportLimit`). */
  readonly kept: number;
  /** Redriven, but their delete failed: they stay in the DLQ too. */
  readonly notDeleted: number;
  /** Kept messages that could not be made visible again at the end: they reappear after the visibility timeout. */
  readonly notReleased: number;
  readonly notes: DeadLetterNote[];
  /** `empty`: nothing visible was left; `error`: an AWS call failed as a whole (see `error`). */
  readonly stoppedBecause: 'empty' | 'max-messages' | 'out-of-time' | 'error';
  readonly error?: string;
}

/** What `redriveSlowLaneDeadLetters` did; `writtenKeys` are the objects the publisher will publish. */
export interface SlowLaneRedriveReport extends LaneDeadLetterReport {
  readonly writtenKeys: string[];
}

/** What `redriveFastLaneDeadLetters` did, with the redriven ones by origin. */
export interface FastLaneRedriveReport extends LaneDeadLetterReport {
  /** Redriven from the relay's on-failure records. */
  readonly fromOnFailureRecords: number;
  /** Redriven from EventBridge dead letters of relay routes. */
  readonly fromRuleDeadLetters: number;
  /** Kept because another target failed (counted in `kept` too). */
  readonly otherTargets: number;
}

/**
 * Redrives the slow-lane DLQ: events EventBridge could not put into Firehose. Each batch
 * received becomes ONE NDJSON object of record envelopes (lane `slow`) at
 * `data/redrive/slow-lane-dlq/<UTC yyyy/MM/dd/HH>/<first message id>-<count>.ndjson` in the
 * ingest bucket. Nothing is published here: the object's notification takes the records
 * through the batch publisher, which validates, packs and deduplicates them like any
 * Firehose object. The batch's messages are deleted only after the PutObject succeeded; a
 * failed PutObject deletes nothing and stops the run; a failed delete leaves duplicates,
 * never a loss. A message that is not an EventBridge event, or whose envelope is invalid,
 * stays in the DLQ and is reported. Runs until the DLQ has nothing visible, `maxMessages`
 * were received, or time runs low.
 */
export async function redriveSlowLaneDeadLetters(deps: LaneDeadLetterRedriveDeps, request: SlowLaneRedriveRequest): Promise<SlowLaneRedriveReport> {
  const s3 = deps.s3;
  if (!s3) throw new Error('the slow-lane redrive needs an S3 client (deps.s3)');
  if (!request.bucket) throw new Error('bucket is not set');
  resolveEnvelopePaths(request.paths ?? {});
  const now = deps.now ?? (() => new Date());
  const writtenKeys: string[] = [];
  const run = await redriveLoop(deps, request, async (messages, state) => {
    const lines: string[] = [];
    const stored: Message[] = [];
    for (const message of messages) {
      const built = envelopeOf(message.Body, 'slow', request.paths);
      if (!built.valid) {
        state.keep(message, `${built.errors.join('; ')}; left in the dead-letter queue`);
        continue;
      }
      lines.push(JSON.stringify(built.envelope));
      stored.push(message);
    }
    if (stored.length === 0) return undefined;
    // Named by every message it holds: another set of messages (a later run that receives one
    // whose delete failed, with new ones) never overwrites this object in the unversioned bucket.
    const digest = createHash('sha256').update(stored.map((m) => m.MessageId).join('\n')).digest('hex').slice(0, 32);
    const key = `${SLOW_LANE_REDRIVE_PREFIX}${hourPath(now())}/${stored[0].MessageId}-${stored.length}-${digest}.ndjson`;
    try {
      await s3.send(new PutObjectCommand({
        Bucket: request.bucket, Key: key, Body: lines.join('\n') + '\n', ContentType: 'application/x-ndjson',
      }));
    } catch (err) {
      // Written or not is unknown: nothing is deleted, so nothing can be lost.
      for (const message of stored) state.keep(message, `PutObject of ${key} failed: ${errorText(err)}; left in the dead-letter queue`);
      return err;
    }
    writtenKeys.push(key);
    state.redriven(stored.length);
    return state.delete(stored, 'written to S3');
  });
  return { ...run, writtenKeys };
}

/**
 * Redrives the fast-lane DLQ through the relay's own code (`relayRecord`), so each record
 * reaches the curated bus as the `CuratedRecord` event it would have been:
 * - an on-failure record of the relay function (Lambda's asynchronous invocation record):
 *   its `requestPayload` is the envelope the relay failed on;
 * - an EventBridge dead letter of a route whose target is the relay (`TARGET_ARN` the
 *   relay function): the envelope is rebuilt from the event (`envelopeFromEvent`, lane
 *   `fast`).
 * A message is deleted only after its put succeeded. Everything else stays in the DLQ and
 * is reported with its reason: dead letters of routes with another target (the construct
 * cannot deliver to a user's own target), records of another function, invalid envelopes,
 * failed puts. Runs until the DLQ has nothing visible, `maxMessages` were received, or
 * time runs low.
 */
export async function redriveFastLaneDeadLetters(deps: LaneDeadLetterRedriveDeps, request: FastLaneRedriveRequest): Promise<FastLaneRedriveReport> {
  const eventBridge = deps.eventBridge;
  if (!eventBridge) throw new Error('the fast-lane redrive needs an EventBridge client (deps.eventBridge)');
  if (!request.curatedBusName) throw new Error('curatedBusName is not set');
  resolveEnvelopePaths(request.paths ?? {});
  const relayArn = unqualifiedFunctionArn(request.relayFunctionArn);
  const origins = { fromOnFailureRecords: 0, fromRuleDeadLetters: 0, otherTargets: 0 };
  const run = await redriveLoop(deps, request, async (messages, state) => {
    const put: Message[] = [];
    for (const message of messages) {
      const source = fastLaneSource(message, relayArn, request.paths);
      if ('reason' in source) {
        if (source.otherTarget) origins.otherTargets++;
        state.keep(message, source.reason);
        continue;
      }
      try {
        await relayRecord(eventBridge, request.curatedBusName, source.envelope, deps.sleep);
      } catch (err) {
        state.keep(message, `put on the curated bus failed: ${errorText(err)}; left in the dead-letter queue`);
        continue;
      }
      origins[source.origin]++;
      put.push(message);
    }
    state.redriven(put.length);
    return put.length > 0 ? state.delete(put, 'put on the curated bus') : undefined;
  });
  return { ...run, ...origins };
}

type FastLaneSource =
  | { readonly envelope: unknown; readonly origin: 'fromOnFailureRecords' | 'fromRuleDeadLetters' }
  | { readonly reason: string; readonly otherTarget?: boolean };

/** Where a fast-lane dead letter came from, and its envelope if it is the relay's to redrive. */
function fastLaneSource(message: Message, relayArn: string, paths?: CuratedEnvelopePaths): FastLaneSource {
  const ruleArn = stringAttribute(message.MessageAttributes, 'RULE_ARN');
  if (ruleArn !== undefined) {
    const targetArn = stringAttribute(message.MessageAttributes, 'TARGET_ARN') ?? '(no TARGET_ARN)';
    if (unqualifiedFunctionArn(targetArn) !== relayArn) {
      return {
        otherTarget: true,
        reason: `delivered by rule ${ruleArn} to ${targetArn}; redrive it to that target with your own tooling, or re-put the event on the fast bus`,
      };
    }
    const built = envelopeOf(message.Body, 'fast', paths);
    return built.valid
      ? { envelope: built.envelope, origin: 'fromRuleDeadLetters' }
      : { reason: `${built.errors.join('; ')}; left in the dead-letter queue` };
  }
  const body = parseObject(message.Body);
  if ('reason' in body) return { reason: `${body.reason}; left in the dead-letter queue` };
  const context = body.value.requestContext;
  if (!isObject(context) || typeof context.functionArn !== 'string' || !('requestPayload' in body.value)) {
    return { reason: 'neither a Lambda on-failure record nor an EventBridge dead letter (no RULE_ARN attribute); left in the dead-letter queue' };
  }
  if (unqualifiedFunctionArn(context.functionArn) !== relayArn) {
    return { reason: `an on-failure record of function ${context.functionArn}, not of the relay; left in the dead-letter queue` };
  }
  const check = checkRecord(body.value.requestPayload);
  if (!check.valid) return { reason: `the relay's input is not a valid record envelope: ${check.errors.join('; ')}; left in the dead-letter queue` };
  return { envelope: body.value.requestPayload, origin: 'fromOnFailureRecords' };
}

/** A dead letter's record envelope: built from the EventBridge event in its body. */
function envelopeOf(body: string | undefined, lane: Lane, paths?: CuratedEnvelopePaths): EnvelopeResult {
  const parsed = parseObject(body);
  return 'reason' in parsed ? { valid: false, errors: [parsed.reason] } : envelopeFromEvent(parsed.value, lane, paths);
}

function parseObject(body: string | undefined): { value: Record<string, unknown> } | { reason: string } {
  if (!body) return { reason: 'the message has no body' };
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch (err) {
    return { reason: `the body is not JSON (${(err as Error).message})` };
  }
  return isObject(value) ? { value } : { reason: 'the body is not a JSON object' };
}

/** What a batch handler may do with the messages of one receive. */
interface BatchState {
  /** Leaves the message in the DLQ, with its reason. */
  keep(message: Message, reason: string): void;
  redriven(count: number): void;
  /** Deletes redriven messages; returns the error that stops the run, if the call failed as a whole. */
  delete(messages: Message[], what: string): Promise<unknown>;
}

/**
 * The receive loop both lanes share. `handle` deals with one receive's messages and returns
 * an error to stop the run with. Kept messages stay hidden for the rest of the run (so a run
 * never receives them twice and can reach "empty"), then are made visible again at the end,
 * so a later run or an operator sees them at once.
 */
async function redriveLoop(deps: LaneDeadLetterRedriveDeps, request: LaneDeadLetterRedriveRequest,
  handle: (messages: Message[], state: BatchState) => Promise<unknown>): Promise<LaneDeadLetterReport> {
  if (!request.deadLetterQueueUrl) throw new Error('deadLetterQueueUrl is not set');
  const maxMessages = positiveInteger('maxMessages', request.maxMessages ?? DEFAULT_MAX_DEAD_LETTERS);
  const reportLimit = nonNegativeInteger('reportLimit', request.reportLimit ?? DEFAULT_REPORT_LIMIT);
  const reserveMs = request.reserveMs ?? DEFAULT_RESERVE_MS;
  const totals = { received: 0, redriven: 0, kept: 0, notDeleted: 0, notReleased: 0 };
  const notes: DeadLetterNote[] = [];
  const note = (messageId: string | undefined, reason: string) => { if (notes.length < reportLimit) notes.push({ messageId: messageId ?? '?', reason }); };
  // Kept messages by id, with the receipt handle of their latest receive (for the release).
  const kept = new Map<string, Message>();
  const state: BatchState = {
    keep: (message, reason) => {
      totals.kept++;
      kept.set(message.MessageId ?? `?${kept.size}`, message);
      note(message.MessageId, reason);
    },
    redriven: (count) => { totals.redriven += count; },
    delete: async (messages, what) => {
      try {
        const answer = await deps.sqs.send(new DeleteMessageBatchCommand({
          QueueUrl: request.deadLetterQueueUrl,
          Entries: messages.map((m, i) => ({ Id: `m${i}`, ReceiptHandle: m.ReceiptHandle! })),
        }));
        for (const f of answer.Failed ?? []) {
          totals.notDeleted++;
          note(messages[Number(f.Id!.slice(1))]?.MessageId ?? f.Id,
            `${what}, but not deleted from the dead-letter queue (${f.Code}: ${f.Message ?? ''}); a later run redrives it again`);
        }
        return undefined;
      } catch (err) {
        totals.notDeleted += messages.length;
        for (const m of messages) note(m.MessageId, `${what}, but not deleted from the dead-letter queue: ${errorText(err)}`);
        return err;
      }
    },
  };

  const finish = async (stoppedBecause: LaneDeadLetterReport['stoppedBecause'], error?: unknown): Promise<LaneDeadLetterReport> => {
    totals.notReleased = await release(deps.sqs, request.deadLetterQueueUrl, [...kept.values()]);
    return { ...totals, notes, stoppedBecause, ...(error !== undefined ? { error: errorText(error) } : {}) };
  };

  for (;;) {
    if (totals.received >= maxMessages) return finish('max-messages');
    if (deps.remainingMs() < reserveMs) return finish('out-of-time');
    let messages: Message[];
    try {
      const answer = await deps.sqs.send(new ReceiveMessageCommand({
        QueueUrl: request.deadLetterQueueUrl,
        MaxNumberOfMessages: Math.min(SQS_BATCH, maxMessages - totals.received),
        VisibilityTimeout: request.visibilityTimeoutSeconds ?? DEFAULT_VISIBILITY_TIMEOUT_SECONDS,
        WaitTimeSeconds: request.waitTimeSeconds ?? DEFAULT_WAIT_TIME_SECONDS,
        MessageAttributeNames: ['All'],
      }));
      messages = answer.Messages ?? [];
    } catch (err) {
      return finish('error', err);
    }
    if (messages.length === 0) return finish('empty');
    // A kept message can reappear within the run (a visibility timeout shorter than the run):
    // it was handled already, so it is not counted or handled again; only its newest receipt
    // handle is kept, for the release. A receive of nothing new means the run has seen it all.
    const fresh = messages.filter((m) => {
      const id = m.MessageId ?? '';
      if (!kept.has(id)) return true;
      kept.set(id, m);
      return false;
    });
    if (fresh.length === 0) return finish('empty');
    totals.received += fresh.length;
    const error = await handle(fresh, state);
    if (error !== undefined) return finish('error', error);
  }
}

/**
 * Makes kept messages visible again (visibility timeout 0). Returns how many could not be:
 * those reappear when their visibility timeout ends, so a failure here loses nothing.
 */
async function release(sqs: SQSClient, queueUrl: string, messages: Message[]): Promise<number> {
  let failed = 0;
  for (let start = 0; start < messages.length; start += SQS_BATCH) {
    const chunk = messages.slice(start, start + SQS_BATCH);
    try {
      const answer = await sqs.send(new ChangeMessageVisibilityBatchCommand({
        QueueUrl: queueUrl,
        Entries: chunk.map((m, i) => ({ Id: `m${i}`, ReceiptHandle: m.ReceiptHandle!, VisibilityTimeout: 0 })),
      }));
      failed += answer.Failed?.length ?? 0;
    } catch {
      failed += chunk.length;
    }
  }
  return failed;
}

/** `yyyy/MM/dd/HH` of a time, in UTC, as Firehose dates its objects. */
function hourPath(time: Date): string {
  return time.toISOString().slice(0, 13).replace(/[-T]/g, '/');
}

/** A Lambda function ARN without its version or alias: `arn:aws:lambda:<region>:<account>:function:<name>`. */
function unqualifiedFunctionArn(arn: string): string {
  return arn.split(':').slice(0, 7).join(':');
}

function stringAttribute(attributes: Record<string, MessageAttributeValue> | undefined, name: string): string | undefined {
  return attributes?.[name]?.StringValue;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
