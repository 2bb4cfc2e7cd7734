import { createHash } from 'crypto';
import {
  AttributeValue, ConditionalCheckFailedException, DynamoDBClient, GetItemCommand, PutItemCommand, QueryCommand, QueryCommandInput,
  UpdateItemCommand, UpdateItemCommandInput,
} from '@aws-sdk/client-dynamodb';
import type { EventBridgeClient, PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';
import { CreateScheduleCommand, DeleteScheduleCommand, SchedulerClient } from '@aws-sdk/client-scheduler';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import type { DynamoDBBatchResponse, DynamoDBRecord, DynamoDBStreamEvent } from 'aws-lambda';
import {
  AGGREGATOR_ENV, COMPLETED_DETAIL_TYPE, CORRELATION_ID_ATTRIBUTE, DeadlineInvocation, DEFAULT_AGGREGATE_SOURCE, EVENT_NAME_ATTRIBUTE,
  eventNameOfKey, EXPIRES_AT_ATTRIBUTE, FAILED_DETAIL_TYPE, INCOMPLETE_DETAIL_TYPE, MARKER_EVENT_NAME, PAYLOAD_JSON_ATTRIBUTE,
  RESERVED_EVENT_NAME_PREFIX, UPDATED_DETAIL_TYPE,
} from './aggregator-contract';
import { conditionProblem, evaluate, Evaluation, oneOfEach, RecordedEvent, Requirement } from './completion-rules';
import { describeValue } from './recorder-core';
import { CoreLogger, SILENT_LOGGER } from '../runtime/core-logger';
import { positiveIntegerEnv, requiredEnv } from '../runtime/env-settings';
import { DEFAULT_MAX_ENTRY_BYTES, putEventsEntrySize, putEventsReliably } from '../runtime/put-events';

/** Seconds a claimed marker (status EMITTING) belongs to its owner before another invocation may take it over. */
export const DEFAULT_LEASE_SECONDS = 60;
/**
 * No claim starts with less than this left of the invocation: the claim, one PutEvents
 * attempt and the finish's attempts must fit, each request at most 5 s (the handler's
 * clients time out each request and make one attempt; the core retries where it matters).
 */
export const DEFAULT_RESERVE_MS = 15_000;
/** A deadline that is already past when its schedule is created is set this far in the future instead. */
export const MIN_SCHEDULE_LEAD_SECONDS = 60;

export type MarkerStatus = 'EMITTING' | 'COMPLETE' | 'INCOMPLETE' | 'FAILED';
export type AggregatorMetric = 'AggregationsCompleted' | 'AggregationsIncomplete' | 'AggregationsFailed' | 'LateEvents' | 'ItemsRead'
| 'UnmarkedAggregates';
/** The marker lists the keys of the events it emitted while they fit in this many bytes (a DynamoDB item is at most 400 KB). */
const MAX_MARKER_KEY_BYTES = 65_536;

/** Where deadline schedules are created and what they invoke. */
export interface DeadlineScheduleConfig {
  readonly groupName: string;
  /** The aggregator function, invoked with `{ deadlineFor }`. */
  readonly targetArn: string;
  readonly roleArn: string;
  /** Dead-letter queue of the schedule's target. */
  readonly dlqArn: string;
}

export interface AggregatorConfig {
  readonly tableName: string;
  readonly outputBusName: string;
  /** `source` of the aggregated events. */
  readonly source: string;
  /** Names each needed once, without a condition; give this or `requirements`. */
  readonly requiredEvents?: string[];
  /** What completes a set; give this or `requiredEvents`. */
  readonly requirements?: Requirement[];
  /** A newer event of a name (by event time) replaces the one counted so far. @default false */
  readonly newestReplaces?: boolean;
  readonly emitOnEveryChange: boolean;
  /** Seconds from the first event to the deadline; 0 for none. */
  readonly deadlineSeconds: number;
  /** Required when `deadlineSeconds > 0`. */
  readonly schedule?: DeadlineScheduleConfig;
  /** TTL of the marker item. */
  readonly itemTtlSeconds: number;
  /** @default DEFAULT_LEASE_SECONDS */
  readonly leaseSeconds?: number;
  /** PutEvents entry size limit. @default DEFAULT_MAX_ENTRY_BYTES */
  readonly maxEntryBytes?: number;
  /** No id is started and no claim taken with less than this left of the invocation, ms. @default DEFAULT_RESERVE_MS */
  readonly reserveMs?: number;
}

export interface AggregatorDeps {
  readonly dynamoDb: Pick<DynamoDBClient, 'send'>;
  readonly eventBridge: EventBridgeClient;
  /** Required when the config has a deadline. */
  readonly scheduler?: Pick<SchedulerClient, 'send'>;
  /** Identifies this invocation as the owner of a claimed marker (e.g. the Lambda request id). */
  readonly owner: string;
  readonly logger?: CoreLogger;
  readonly metric?: (name: AggregatorMetric, value: number) => void;
  readonly nowSeconds?: () => number;
  /** Backoff of the PutEvents retries; injected for tests. */
  readonly sleep?: (ms: number) => Promise<void>;
  /** Milliseconds left in the invocation (Lambda's `getRemainingTimeInMillis`); without it, time is not checked. */
  readonly remainingMs?: () => number;
}

/** What happened to one correlation id. */
export interface CorrelationOutcome {
  readonly correlationId: string;
  /**
   * `waiting`: required events are missing; `completed`/`incomplete`/`failed-set`: this invocation emitted that event;
   * `done`: the aggregation was already emitted; `claimed-elsewhere`: another invocation emitted it meanwhile;
   * `busy`: another invocation holds a live claim (retried later); `deferred`: not started or not
   * claimed for lack of time (retried); `failed`: an error (retried).
   */
  readonly outcome: 'waiting' | 'completed' | 'incomplete' | 'failed-set' | 'done' | 'claimed-elsewhere' | 'busy' | 'deferred' | 'failed';
  readonly itemsRead: number;
  /** Event items of the id read but skipped because they had expired (TTL not yet applied). */
  readonly expiredItems?: number;
  readonly missing: string[];
  /** Event names that arrived after the aggregation was emitted (not emitted again). */
  readonly lateEvents: string[];
  readonly scheduleCreated: boolean;
  readonly updatesEmitted: number;
  /** The emitted event left `events` out to fit the entry size limit. */
  readonly truncated?: boolean;
  readonly error?: string;
}

export interface StreamBatchReport extends DynamoDBBatchResponse {
  readonly outcomes: CorrelationOutcome[];
  /** REMOVE records, marker records and records without the table's keys. */
  readonly ignoredRecords: number;
}

/** The aggregator's settings, read from the environment the construct sets. */
export function aggregatorConfigFromEnv(env: NodeJS.ProcessEnv): AggregatorConfig {
  const deadlineText = env[AGGREGATOR_ENV.DEADLINE_SECONDS];
  const deadlineSeconds = deadlineText === undefined || deadlineText === '' || deadlineText === '0'
    ? 0 : positiveIntegerEnv(env, AGGREGATOR_ENV.DEADLINE_SECONDS);
  const emit = env[AGGREGATOR_ENV.EMIT_ON_EVERY_CHANGE];
  if (emit !== undefined && emit !== '' && emit !== 'true' && emit !== 'false') {
    throw new Error(`environment variable ${AGGREGATOR_ENV.EMIT_ON_EVERY_CHANGE} must be 'true' or 'false', got ${emit}`);
  }
  const newest = env[AGGREGATOR_ENV.NEWEST_REPLACES];
  if (newest !== undefined && newest !== '' && newest !== 'true' && newest !== 'false') {
    throw new Error(`environment variable ${AGGREGATOR_ENV.NEWEST_REPLACES} must be 'true' or 'false', got ${newest}`);
  }
  return {
    tableName: requiredEnv(env, AGGREGATOR_ENV.TABLE_NAME),
    outputBusName: requiredEnv(env, AGGREGATOR_ENV.OUTPUT_BUS_NAME),
    source: env[AGGREGATOR_ENV.AGGREGATE_SOURCE] || DEFAULT_AGGREGATE_SOURCE,
    ...(env[AGGREGATOR_ENV.REQUIREMENTS] ? { requirements: requirementsFromEnv(env) } : { requiredEvents: requiredEventsFromEnv(env) }),
    ...(newest === 'true' ? { newestReplaces: true } : {}),
    emitOnEveryChange: emit === 'true',
    deadlineSeconds,
    ...(deadlineSeconds > 0 ? {
      schedule: {
        groupName: requiredEnv(env, AGGREGATOR_ENV.SCHEDULE_GROUP_NAME),
        targetArn: requiredEnv(env, AGGREGATOR_ENV.SCHEDULE_TARGET_ARN),
        roleArn: requiredEnv(env, AGGREGATOR_ENV.SCHEDULE_ROLE_ARN),
        dlqArn: requiredEnv(env, AGGREGATOR_ENV.SCHEDULE_DLQ_ARN),
      },
    } : {}),
    itemTtlSeconds: positiveIntegerEnv(env, AGGREGATOR_ENV.ITEM_TTL_SECONDS),
    ...(env[AGGREGATOR_ENV.MAX_ENTRY_BYTES] ? { maxEntryBytes: positiveIntegerEnv(env, AGGREGATOR_ENV.MAX_ENTRY_BYTES) } : {}),
  };
}

function requiredEventsFromEnv(env: NodeJS.ProcessEnv): string[] {
  const name = AGGREGATOR_ENV.REQUIRED_EVENTS;
  const text = requiredEnv(env, name);
  let names: unknown;
  try {
    names = JSON.parse(text);
  } catch {
    throw new Error(`environment variable ${name} must be a JSON array of event names, got ${text}`);
  }
  if (!Array.isArray(names) || names.length === 0 || !names.every((n) => typeof n === 'string' && n !== '')) {
    throw new Error(`environment variable ${name} must be a non-empty JSON array of non-empty strings, got ${text}`);
  }
  const reserved = names.filter((n: string) => n.startsWith(RESERVED_EVENT_NAME_PREFIX));
  if (reserved.length > 0) throw new Error(`environment variable ${name} names reserved events (starting with '#'): ${reserved.join(', ')}`);
  return [...new Set(names as string[])];
}

function requirementsFromEnv(env: NodeJS.ProcessEnv): Requirement[] {
  const name = AGGREGATOR_ENV.REQUIREMENTS;
  const text = env[name]!;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error(`environment variable ${name} must be a JSON array of requirements, got ${text}`);
  }
  if (!Array.isArray(parsed) || parsed.length === 0) throw new Error(`environment variable ${name} must be a non-empty JSON array, got ${text}`);
  return parsed.map((r: any, i) => {
    const problem = r === null || typeof r !== 'object' ? 'is not an object'
      : typeof r.label !== 'string' || r.label === '' ? 'needs a non-empty label'
        : !Array.isArray(r.anyOf) || r.anyOf.length === 0 || !r.anyOf.every((n: unknown) => typeof n === 'string' && n !== '' && !n.startsWith(RESERVED_EVENT_NAME_PREFIX))
          ? 'needs anyOf: a non-empty list of event names not starting with #'
          : !Number.isSafeInteger(r.count) || r.count < 1 ? 'needs a positive integer count'
            : typeof r.failOnMismatch !== 'boolean' ? 'needs failOnMismatch: true or false'
              : r.condition !== undefined ? conditionProblem(r.condition) : undefined;
    if (problem) throw new Error(`environment variable ${name}: requirement ${i} ${problem}`);
    return { label: r.label, anyOf: r.anyOf, count: r.count, failOnMismatch: r.failOnMismatch, ...(r.condition ? { condition: r.condition } : {}) };
  });
}

/**
 * The one Query that reads a correlation id's items: strongly consistent, so a write that
 * triggered the stream record is always seen. Never a Scan: the cost is the id's own items,
 * whatever the size of the table.
 */
export function correlationQueryInput(tableName: string, correlationId: string,
  exclusiveStartKey?: Record<string, AttributeValue>): QueryCommandInput {
  return {
    TableName: tableName,
    KeyConditionExpression: '#id = :id',
    ExpressionAttributeNames: { '#id': CORRELATION_ID_ATTRIBUTE },
    ExpressionAttributeValues: { ':id': { S: correlationId } },
    ConsistentRead: true,
    ...(exclusiveStartKey ? { ExclusiveStartKey: exclusiveStartKey } : {}),
  };
}

/** Deterministic schedule name of a correlation id's deadline (≤ 64 chars of [0-9a-zA-Z-_.]). */
export function deadlineScheduleName(correlationId: string): string {
  return `agg-${createHash('sha256').update(correlationId, 'utf8').digest('hex').slice(0, 40)}`;
}

/** What the deadline schedule invokes the aggregator with. */
export function deadlineInput(correlationId: string): DeadlineInvocation {
  return { deadlineFor: correlationId };
}

/** A one-time schedule expression, `at(yyyy-mm-ddThh:mm:ss)`, in UTC. */
export function atExpression(epochSeconds: number): string {
  return `at(${new Date(epochSeconds * 1000).toISOString().slice(0, 19)})`;
}

interface Marker {
  readonly status: MarkerStatus;
  readonly owner?: string;
  readonly leaseUntil?: number;
  readonly expiresAt?: number;
  /** The sort keys of the events the aggregation was emitted with (absent when too many to list). */
  readonly eventKeys?: string[];
}

/** A correlation id's items as one consistent Query returned them. */
interface CorrelationState {
  /** The recorded events that have not expired. */
  readonly events: RecordedEvent[];
  readonly marker?: Marker;
  /** Earliest `receivedAt` among the event items, epoch seconds. */
  readonly firstReceivedAt?: number;
  readonly itemsRead: number;
  /** Event items skipped because they had expired. */
  readonly expiredItems: number;
}

type ClaimResult = { state: 'claimed' } | { state: 'done'; status: MarkerStatus } | { state: 'busy'; owner?: string; leaseUntil?: number };

const FINAL_STATUSES: MarkerStatus[] = ['COMPLETE', 'INCOMPLETE', 'FAILED'];
const isFinal = (marker?: Marker): marker is Marker => marker !== undefined && FINAL_STATUSES.includes(marker.status);

/** What each kind of emit puts and marks. */
const EMITS = {
  complete: { detailType: COMPLETED_DETAIL_TYPE, status: 'COMPLETE', outcome: 'completed', metric: 'AggregationsCompleted' },
  incomplete: { detailType: INCOMPLETE_DETAIL_TYPE, status: 'INCOMPLETE', outcome: 'incomplete', metric: 'AggregationsIncomplete' },
  failed: { detailType: FAILED_DETAIL_TYPE, status: 'FAILED', outcome: 'failed-set', metric: 'AggregationsFailed' },
} as const;
type EmitKind = keyof typeof EMITS;

/** Numbers that fit a double exactly become numbers; others keep their digits as a string. */
function numberFromDynamo(text: string): number | string {
  const value = Number(text);
  return Number.isFinite(value) && (!Number.isInteger(value) || Number.isSafeInteger(value)) ? value : text;
}

/** The recorder's JSON text of a payload; text that does not parse is passed on as it is. */
function parsePayloadJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** Sets become arrays and binary becomes base64, so the payload serialises as JSON. */
function jsonSafe(value: unknown): unknown {
  if (value instanceof Set) return [...value].map(jsonSafe);
  if (value instanceof Uint8Array) return Buffer.from(value).toString('base64');
  if (Array.isArray(value)) return value.map(jsonSafe);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, jsonSafe(v)]));
  }
  return value;
}

/** Attempts of "mark complete", and their full-jitter backoff. */
const FINISH_MAX_ATTEMPTS = 6;
const FINISH_BASE_DELAY_MS = 200;
const FINISH_MAX_DELAY_MS = 2_000;
/** No further attempt with less than this left of the invocation: a request takes up to 5 s. */
const FINISH_MIN_TIME_MS = 6_000;
/** No further PutEvents attempt (one request and a backoff of at most 1 s) unless the finish keeps its time. */
const PUT_RETRY_MIN_TIME_MS = FINISH_MIN_TIME_MS + 6_000;

const STREAM_RETRY = 'the stream retries this id';
const DEADLINE_RETRY = 'the schedule retries the deadline';

const isConditionFailure = (err: unknown) => err instanceof ConditionalCheckFailedException || (err as Error)?.name === 'ConditionalCheckFailedException';

/** Thrown when a correlation id's emit must be retried later: another invocation holds a live claim. */
export class AggregationBusyError extends Error {
  constructor(correlationId: string, owner: string | undefined, leaseUntil: number | undefined) {
    super(`aggregation of ${correlationId} is being emitted by another invocation (${owner ?? 'unknown owner'}, lease until ${leaseUntil ?? 'unknown'}); `
      + 'retrying later, so it is not lost if that invocation fails');
    this.name = 'AggregationBusyError';
  }
}

/** Thrown before a claim when too little of the invocation is left: the id is retried, never claimed and abandoned. */
export class OutOfTimeError extends Error {
  constructor(reserveMs: number, retriedBy: string) {
    super(`less than ${reserveMs} ms of the invocation left; ${retriedBy}`);
    this.name = 'OutOfTimeError';
  }
}

/**
 * The aggregator: reads a correlation id with one consistent Query, emits the aggregated
 * event exactly once through a conditional write on the marker item, and creates the
 * deadline schedule. Serves both the table's stream and the deadline schedule.
 */
export class Aggregator {
  private readonly logger: CoreLogger;
  private readonly now: () => number;
  private readonly leaseSeconds: number;
  private readonly maxEntryBytes: number;
  private readonly reserveMs: number;
  private readonly requirements: Requirement[];
  /** Names some requirement counts more than one of: their `events` entry is a list. */
  private readonly listedNames: Set<string>;

  constructor(private readonly deps: AggregatorDeps, private readonly config: AggregatorConfig) {
    this.logger = deps.logger ?? SILENT_LOGGER;
    this.now = deps.nowSeconds ?? (() => Math.floor(Date.now() / 1000));
    this.leaseSeconds = config.leaseSeconds ?? DEFAULT_LEASE_SECONDS;
    this.maxEntryBytes = config.maxEntryBytes ?? DEFAULT_MAX_ENTRY_BYTES;
    this.reserveMs = config.reserveMs ?? DEFAULT_RESERVE_MS;
    this.requirements = config.requirements ?? oneOfEach(config.requiredEvents ?? []);
    if (this.requirements.length === 0) throw new Error('an aggregator needs requiredEvents or requirements');
    this.listedNames = new Set(this.requirements.filter((r) => r.count > 1).flatMap((r) => r.anyOf));
    if (config.deadlineSeconds > 0 && (!config.schedule || !deps.scheduler)) {
      throw new Error('a deadline needs the schedule settings (SCHEDULE_* environment variables) and a Scheduler client');
    }
  }

  /**
   * Handles a batch of the table's stream. REMOVE records (TTL expiry) and marker records
   * are ignored; the rest are grouped by correlation id and each id is read once. A failed
   * id reports its first record as a batch item failure (Lambda retries from there); the
   * other ids of the batch are still processed.
   */
  async processStreamBatch(event: DynamoDBStreamEvent): Promise<StreamBatchReport> {
    const groups = new Map<string, DynamoDBRecord[]>();
    let ignoredRecords = 0;
    for (const record of event.Records ?? []) {
      const id = record.dynamodb?.Keys?.[CORRELATION_ID_ATTRIBUTE]?.S;
      const name = record.dynamodb?.Keys?.[EVENT_NAME_ATTRIBUTE]?.S;
      if (record.eventName === 'REMOVE' || name === undefined || name.startsWith(RESERVED_EVENT_NAME_PREFIX)) {
        ignoredRecords++;
        continue;
      }
      if (id === undefined) {
        this.logger.warn('stream record without a string correlationId key; ignored', { eventID: record.eventID });
        ignoredRecords++;
        continue;
      }
      const group = groups.get(id);
      if (group) group.push(record);
      else groups.set(id, [record]);
    }

    const outcomes: CorrelationOutcome[] = [];
    const batchItemFailures: DynamoDBBatchResponse['batchItemFailures'] = [];
    for (const [correlationId, records] of groups) {
      this.logger.appendKeys?.({ correlationId });
      try {
        this.checkTime(STREAM_RETRY);
        outcomes.push(await this.onChange(correlationId, records));
      } catch (err) {
        const busy = err instanceof AggregationBusyError;
        const deferred = err instanceof OutOfTimeError;
        const itemIdentifier = records[0].dynamodb?.SequenceNumber ?? records[0].eventID ?? '';
        if (busy || deferred) this.logger.info((err as Error).message, { itemIdentifier });
        else this.logger.error(`aggregation of ${correlationId} failed; the stream retries from record ${itemIdentifier}`, err as Error);
        batchItemFailures.push({ itemIdentifier });
        outcomes.push({
          correlationId,
          outcome: busy ? 'busy' : deferred ? 'deferred' : 'failed',
          itemsRead: 0,
          missing: [],
          lateEvents: [],
          scheduleCreated: false,
          updatesEmitted: 0,
          error: (err as Error).message,
        });
      } finally {
        this.logger.removeKeys?.(['correlationId']);
      }
    }
    return { batchItemFailures, outcomes, ignoredRecords };
  }

  /**
   * Handles the deadline schedule's invocation: emits Aggregation Incomplete with the
   * missing requirements (or Completed or Failed if the set is decided and the stream has
   * not caught up), unless the aggregation was already emitted. Throws to make the schedule retry.
   */
  async processDeadline(invocation: DeadlineInvocation): Promise<CorrelationOutcome> {
    const correlationId = invocation?.deadlineFor;
    if (typeof correlationId !== 'string' || correlationId === '') {
      throw new Error(`deadline invocation needs a non-empty string deadlineFor, got ${describeValue(correlationId)}`);
    }
    this.logger.appendKeys?.({ correlationId });
    try {
      const state = await this.read(correlationId);
      const evaluation = this.evaluate(state);
      const missing = evaluation.missing;
      const base = { correlationId, itemsRead: state.itemsRead, missing, lateEvents: [], scheduleCreated: false, updatesEmitted: 0 };
      if (isFinal(state.marker)) {
        this.logger.info(`deadline of ${correlationId} passed after the aggregation was ${state.marker.status}; nothing to emit`);
        return { ...base, outcome: 'done' };
      }
      const kind: EmitKind = evaluation.state === 'waiting' ? 'incomplete' : evaluation.state === 'complete' ? 'complete' : 'failed';
      const emitted = await this.emitOnce(correlationId, state, evaluation, kind, 'deadline');
      return { ...base, ...emitted };
    } finally {
      this.logger.removeKeys?.(['correlationId']);
    }
  }

  private async onChange(correlationId: string, records: DynamoDBRecord[]): Promise<CorrelationOutcome> {
    const state = await this.read(correlationId);
    const changed = [...new Set(records.map((r) => r.dynamodb!.Keys![EVENT_NAME_ATTRIBUTE].S!))];
    const evaluation = this.evaluate(state);
    const missing = evaluation.missing;
    const base = {
      correlationId,
      itemsRead: state.itemsRead,
      ...(state.expiredItems > 0 ? { expiredItems: state.expiredItems } : {}),
      missing,
      lateEvents: [] as string[],
      scheduleCreated: false,
      updatesEmitted: 0,
    };

    if (isFinal(state.marker)) {
      // Late: a key the aggregation was not emitted with (without the list, every key), or an
      // emitted key rewritten (MODIFY: a direct writer's new event under a bare name). An
      // INSERT of an emitted key is the stream delivering the same write again.
      const emittedKeys = new Set(state.marker.eventKeys ?? []);
      const rewrittenKeys = new Set(records.filter((r) => r.eventName === 'MODIFY').map((r) => r.dynamodb!.Keys![EVENT_NAME_ATTRIBUTE].S!));
      const lateKeys = changed.filter((key) => !emittedKeys.has(key) || rewrittenKeys.has(key));
      for (const key of lateKeys) {
        this.logger.warn(`event ${eventNameOfKey(key)} for ${correlationId} arrived after the aggregation was ${state.marker.status}; not emitted again`,
          { eventKey: key, status: state.marker.status });
      }
      const replayed = changed.filter((key) => !lateKeys.includes(key));
      if (replayed.length > 0) {
        this.logger.debug('events that are already part of the emitted aggregation delivered again (a replay); ignored', { eventKeys: replayed });
      }
      if (lateKeys.length > 0) this.deps.metric?.('LateEvents', lateKeys.length);
      // Whatever the write, no item of the id may outlive its final marker.
      await this.outliveEvents(correlationId, state);
      return { ...base, outcome: 'done', lateEvents: [...new Set(lateKeys.map(eventNameOfKey))] };
    }

    let updatesEmitted = 0;
    if (this.config.emitOnEveryChange) {
      // Unguarded: at least once per change (a retried batch emits its updates again).
      await this.put(UPDATED_DETAIL_TYPE, correlationId, state, evaluation, evaluation.state === 'waiting' ? 'partial' : evaluation.state);
      updatesEmitted = 1;
    }
    if (evaluation.state !== 'waiting') {
      const kind: EmitKind = evaluation.state === 'complete' ? 'complete' : 'failed';
      return { ...base, updatesEmitted, ...await this.emitOnce(correlationId, state, evaluation, kind, 'stream') };
    }

    let scheduleCreated = false;
    // Every batch that writes an event of an unfinished id asks for the schedule: its name and
    // time derive from the id and its earliest event, so the first call creates it and the
    // others get ConflictException. (Creating it only on the id's first write would miss the
    // deadline when two first writes land in different batches at the same moment.)
    if (this.config.deadlineSeconds > 0 && !state.marker && state.events.length > 0 && records.length > 0) {
      scheduleCreated = await this.createDeadlineSchedule(correlationId, state);
    }
    this.logger.debug('waiting for more events', { missing, mismatched: evaluation.mismatches });
    return { ...base, updatesEmitted, scheduleCreated, outcome: 'waiting' };
  }

  private sleep(ms: number): Promise<void> {
    return this.deps.sleep ? this.deps.sleep(ms) : new Promise((resolve) => setTimeout(resolve, ms));
  }

  /** Throws `OutOfTimeError` when less than the reserve is left. */
  private checkTime(retriedBy: string): void {
    if (this.deps.remainingMs && this.deps.remainingMs() < this.reserveMs) throw new OutOfTimeError(this.reserveMs, retriedBy);
  }

  private evaluate(state: CorrelationState): Evaluation {
    return evaluate(this.requirements, state.events, this.config.newestReplaces ?? false);
  }

  /** One consistent Query for the id (paginated); never a Scan. Expired items count as gone. */
  private async read(correlationId: string): Promise<CorrelationState> {
    const now = this.now();
    const events: RecordedEvent[] = [];
    let marker: Marker | undefined;
    let firstReceivedAt: number | undefined;
    let itemsRead = 0;
    let expiredItems = 0;
    let startKey: Record<string, AttributeValue> | undefined;
    do {
      const page = await this.deps.dynamoDb.send(new QueryCommand(correlationQueryInput(this.config.tableName, correlationId, startKey)));
      itemsRead += page.Count ?? page.Items?.length ?? 0;
      for (const raw of page.Items ?? []) {
        const item = unmarshall(raw, { wrapNumbers: numberFromDynamo });
        const key = item[EVENT_NAME_ATTRIBUTE];
        // TTL deletes items days late at worst; an expired item is treated as gone already.
        if (typeof item[EXPIRES_AT_ATTRIBUTE] === 'number' && item[EXPIRES_AT_ATTRIBUTE] <= now) {
          if (key !== MARKER_EVENT_NAME) expiredItems++;
          continue;
        }
        if (key === MARKER_EVENT_NAME) {
          const keys = item.eventKeys ?? item.names; // `names`: markers written before events were keyed by id
          marker = {
            status: item.status,
            owner: item.owner,
            ...(typeof item[EXPIRES_AT_ATTRIBUTE] === 'number' ? { expiresAt: item[EXPIRES_AT_ATTRIBUTE] } : {}),
            leaseUntil: typeof item.leaseUntil === 'number' ? item.leaseUntil : undefined,
            eventKeys: Array.isArray(keys) ? keys : undefined,
          };
        } else if (typeof key === 'string' && !key.startsWith(RESERVED_EVENT_NAME_PREFIX)) {
          const payload: Record<string, unknown> = {};
          for (const [attribute, value] of Object.entries(item)) {
            if (attribute === PAYLOAD_JSON_ATTRIBUTE && typeof value === 'string') {
              payload.payload = parsePayloadJson(value);
            } else if (attribute !== CORRELATION_ID_ATTRIBUTE && attribute !== EVENT_NAME_ATTRIBUTE && attribute !== EXPIRES_AT_ATTRIBUTE) {
              payload[attribute] = jsonSafe(value);
            }
          }
          const timeMs = typeof item.receivedAt === 'string' ? Date.parse(item.receivedAt) : NaN;
          if (!Number.isNaN(timeMs)) firstReceivedAt = Math.min(firstReceivedAt ?? Infinity, Math.floor(timeMs / 1000));
          events.push({
            key,
            name: eventNameOfKey(key),
            ...(typeof item.eventId === 'string' ? { eventId: item.eventId } : {}),
            timeMs,
            recordedMs: typeof item.recordedAt === 'string' ? Date.parse(item.recordedAt) : NaN,
            ...(typeof item[EXPIRES_AT_ATTRIBUTE] === 'number' ? { expiresAt: item[EXPIRES_AT_ATTRIBUTE] } : {}),
            payload,
            // A condition tests the source event's detail; an item written directly is its own detail.
            detail: 'payload' in payload && PAYLOAD_JSON_ATTRIBUTE in item ? payload.payload : payload,
          });
        }
      }
      startKey = page.LastEvaluatedKey;
    } while (startKey);
    this.deps.metric?.('ItemsRead', itemsRead);
    return { events, marker, firstReceivedAt, itemsRead, expiredItems };
  }

  /**
   * Emits Completed or Incomplete exactly once: claims the marker with a conditional put
   * (status EMITTING, with a lease), puts the event, then marks it COMPLETE or INCOMPLETE.
   * If PutEvents fails, the marker stays EMITTING, its lease is released and the error is
   * thrown, so the retry can claim it again.
   */
  private async emitOnce(correlationId: string, state: CorrelationState, evaluation: Evaluation, kind: EmitKind, trigger: 'stream' | 'deadline'):
  Promise<Pick<CorrelationOutcome, 'outcome' | 'truncated'>> {
    const emit = EMITS[kind];
    const keys = state.events.map((e) => e.key);
    // The read may have used up the time: a claim must leave time to emit and finish.
    const retriedBy = trigger === 'stream' ? STREAM_RETRY : DEADLINE_RETRY;
    this.checkTime(retriedBy);
    let claim = await this.claim(correlationId, keys);
    // A live claim may belong to an invocation that died holding it; nothing else would then
    // emit the aggregate (every name is recorded, so no new stream record comes). Wait out as
    // much of its lease as this invocation allows and claim again: the retries that find it
    // busy each wear the lease down, so one of them takes it over.
    while (claim.state === 'busy' && this.deps.remainingMs && claim.leaseUntil !== undefined) {
      const available = this.deps.remainingMs() - this.reserveMs;
      if (available <= 0) break;
      const untilLeaseEnds = Math.max(1, claim.leaseUntil + 1 - this.now()) * 1000;
      if (untilLeaseEnds > available) {
        // The lease outlasts what this invocation may wait: wear it down, then leave the id to the next retry.
        await this.sleep(available);
        break;
      }
      await this.sleep(untilLeaseEnds);
      this.checkTime(retriedBy);
      claim = await this.claim(correlationId, keys);
    }
    if (claim.state === 'done') {
      this.logger.info(`aggregation of ${correlationId} was already emitted by another invocation (${claim.status}); nothing to do`);
      return { outcome: 'claimed-elsewhere' };
    }
    if (claim.state === 'busy') throw new AggregationBusyError(correlationId, claim.owner, claim.leaseUntil);

    let truncated: boolean;
    try {
      truncated = await this.put(emit.detailType, correlationId, state, evaluation, kind);
    } catch (err) {
      await this.releaseLease(correlationId);
      throw new Error(`${(err as Error).message}; the marker stays EMITTING and a retry claims it again`);
    }
    await this.finish(correlationId, emit.status);
    this.deps.metric?.(emit.metric, 1);
    this.logger.info(`aggregation of ${correlationId} emitted (${emit.status})`,
      { eventKeys: keys, missing: evaluation.missing, mismatched: evaluation.mismatches, truncated, trigger });
    if (kind !== 'incomplete' && trigger === 'stream' && this.config.deadlineSeconds > 0) await this.deleteDeadlineSchedule(correlationId);
    return { outcome: emit.outcome, ...(truncated ? { truncated } : {}) };
  }

  /** Puts one aggregated event; returns whether `events` had to be left out. Throws if PutEvents failed. */
  private async put(detailType: string, correlationId: string, state: CorrelationState, evaluation: Evaluation, status: string): Promise<boolean> {
    const received = Object.fromEntries([...evaluation.counted.keys()].map((name) => [name, true]));
    // A name counted more than once carries the list of its counted events; any other name, its one event.
    const events = Object.fromEntries([...evaluation.counted].map(([name, counted]) =>
      [name, this.listedNames.has(name) ? counted.map((e) => e.payload) : counted[0].payload]));
    const eventCount = state.events.length;
    const withMissing = detailType === COMPLETED_DETAIL_TYPE ? {} : {
      missing: evaluation.missing,
      ...(evaluation.mismatches.length > 0 ? { mismatched: evaluation.mismatches } : {}),
    };
    const entry = (detail: unknown): PutEventsRequestEntry => ({
      EventBusName: this.config.outputBusName, Source: this.config.source, DetailType: detailType, Detail: JSON.stringify(detail),
    });
    // The payloads together can exceed the PutEvents entry limit, and so can the names alone
    // (the recorder stores names it does not require). A rejected entry would be rejected on
    // every retry, so the event sheds fields until it fits: the payloads (consumers read them
    // from the table until the items expire), then `received`, then `missing` and `mismatched`. The last form
    // fits any correlation id of printable text (at most 2 KiB) under the smallest limit, 4 KiB.
    const forms = [
      { correlationId, status, received, events, ...withMissing, eventCount },
      { correlationId, status, received, ...withMissing, eventCount, truncated: true },
      { correlationId, status, ...withMissing, eventCount, truncated: true },
      { correlationId, status, eventCount, truncated: true },
    ].map(entry);
    const chosen = forms.find((form) => putEventsEntrySize(form) <= this.maxEntryBytes) ?? forms[forms.length - 1];
    const truncated = chosen !== forms[0];
    if (truncated) {
      this.logger.warn(`${detailType} of ${correlationId} is over ${this.maxEntryBytes} bytes with the payloads; emitted without them (truncated)`,
        { fieldsLeftOut: chosen === forms[1] ? ['events'] : chosen === forms[2] ? ['events', 'received'] : ['events', 'received', 'missing'] });
    }
    // Retries stop while the finish still has its time: a timeout between an accepted put and
    // the finish would leave the id to be emitted again; a put that stops is released instead.
    const remainingMs = this.deps.remainingMs;
    const [outcome] = await putEventsReliably(this.deps.eventBridge, [chosen], {
      sleep: this.deps.sleep,
      maxDelayMs: 1_000,
      ...(remainingMs ? { shouldStop: () => remainingMs() < PUT_RETRY_MIN_TIME_MS } : {}),
    });
    if (!outcome.ok) throw new Error(`PutEvents of ${detailType} for ${correlationId} failed: ${outcome.errorCode}: ${outcome.errorMessage ?? ''}`.trim());
    return truncated;
  }

  private async claim(correlationId: string, eventKeys: string[]): Promise<ClaimResult> {
    const listed = eventKeys.reduce((bytes, eventKey) => bytes + Buffer.byteLength(eventKey, 'utf8') + 3, 0) <= MAX_MARKER_KEY_BYTES;
    const now = this.now();
    const key = { [CORRELATION_ID_ATTRIBUTE]: { S: correlationId }, [EVENT_NAME_ATTRIBUTE]: { S: MARKER_EVENT_NAME } };
    try {
      await this.deps.dynamoDb.send(new PutItemCommand({
        TableName: this.config.tableName,
        Item: {
          ...key,
          status: { S: 'EMITTING' },
          owner: { S: this.deps.owner },
          leaseUntil: { N: String(now + this.leaseSeconds) },
          ...(listed ? { eventKeys: { L: eventKeys.map((eventKey) => ({ S: eventKey })) } } : {}),
          [EXPIRES_AT_ATTRIBUTE]: { N: String(now + this.config.itemTtlSeconds) },
        },
        // An expired marker (TTL deletes late) belongs to a finished earlier set: a new set may claim it.
        ConditionExpression: 'attribute_not_exists(#id) OR (#status = :emitting AND leaseUntil < :now) OR #expires <= :now',
        ExpressionAttributeNames: { '#id': CORRELATION_ID_ATTRIBUTE, '#status': 'status', '#expires': EXPIRES_AT_ATTRIBUTE },
        ExpressionAttributeValues: { ':emitting': { S: 'EMITTING' }, ':now': { N: String(now) } },
        ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
      }));
      return { state: 'claimed' };
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
      let existing = (err as ConditionalCheckFailedException).Item;
      if (!existing) {
        existing = (await this.deps.dynamoDb.send(new GetItemCommand({ TableName: this.config.tableName, Key: key, ConsistentRead: true }))).Item;
      }
      const status = existing?.status?.S as MarkerStatus | undefined;
      if (status && FINAL_STATUSES.includes(status)) return { state: 'done', status };
      return { state: 'busy', owner: existing?.owner?.S, leaseUntil: existing?.leaseUntil?.N ? Number(existing.leaseUntil.N) : undefined };
    }
  }

  /**
   * Marks the claimed marker final. The event is out already: until this succeeds, a later
   * write of the id (after the lease) would emit it again, so a transient failure is retried
   * with backoff for as long as the invocation has time. A condition failure (the lease was
   * taken over) is not retried. A final failure is logged, not thrown: failing the record
   * would only make the retry emit again.
   */
  private async finish(correlationId: string, status: MarkerStatus): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const now = this.now();
      try {
        await this.deps.dynamoDb.send(new UpdateItemCommand({
          ...this.ownClaimUpdate(correlationId, 'SET #status = :final, emittedAt = :now, #expires = :expires REMOVE leaseUntil',
            { '#expires': EXPIRES_AT_ATTRIBUTE },
            { ':final': { S: status }, ':now': { N: String(now) }, ':expires': { N: String(now + this.config.itemTtlSeconds) } }),
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        }));
        return;
      } catch (err) {
        // An earlier attempt whose answer was lost may have set it already.
        const old = (err as ConditionalCheckFailedException).Item;
        if (isConditionFailure(err) && old?.owner?.S === this.deps.owner && old?.status?.S === status) return;
        const leaseLost = isConditionFailure(err);
        const delayMs = Math.random() * Math.min(FINISH_MAX_DELAY_MS, FINISH_BASE_DELAY_MS * 2 ** (attempt - 1));
        const timeLeft = !this.deps.remainingMs || this.deps.remainingMs() - delayMs > FINISH_MIN_TIME_MS;
        if (!leaseLost && attempt < FINISH_MAX_ATTEMPTS && timeLeft) {
          this.logger.warn(`marking ${correlationId} ${status} failed (attempt ${attempt}); retrying`, err as Error);
          await this.sleep(delayMs);
          continue;
        }
        const reason = leaseLost
          ? 'our lease expired and another invocation took the marker over, so it may emit again'
          : `the marker stays EMITTING after ${attempt} attempts, so a later trigger may emit again after the lease`;
        this.logger.error(`aggregation of ${correlationId} was emitted but its marker could not be set to ${status}: ${reason} (at least once)`,
          err as Error);
        if (!leaseLost) this.deps.metric?.('UnmarkedAggregates', 1);
        return;
      }
    }
  }

  /**
   * A late event lives longer than the final marker of its id; once the marker expired, the
   * late events would be read as a new set and emitted again. So the marker takes the latest
   * expiry of the id's events. A failure fails the record, so the stream retries it.
   */
  private async outliveEvents(correlationId: string, state: CorrelationState): Promise<void> {
    const latest = Math.max(...state.events.map((e) => e.expiresAt ?? 0));
    if (!(latest > (state.marker?.expiresAt ?? Infinity))) return;
    try {
      await this.deps.dynamoDb.send(new UpdateItemCommand({
        TableName: this.config.tableName,
        Key: { [CORRELATION_ID_ATTRIBUTE]: { S: correlationId }, [EVENT_NAME_ATTRIBUTE]: { S: MARKER_EVENT_NAME } },
        UpdateExpression: 'SET #expires = :latest',
        ConditionExpression: '#status = :status AND #expires < :latest',
        ExpressionAttributeNames: { '#expires': EXPIRES_AT_ATTRIBUTE, '#status': 'status' },
        ExpressionAttributeValues: { ':latest': { N: String(latest) }, ':status': { S: state.marker!.status } },
      }));
    } catch (err) {
      if (!isConditionFailure(err)) throw err; // already later: another invocation extended it
    }
  }

  /** An update of the marker this invocation claimed, applied only while the claim is still ours and EMITTING. */
  private ownClaimUpdate(correlationId: string, updateExpression: string, names: Record<string, string>,
    values: Record<string, AttributeValue>): UpdateItemCommandInput {
    return {
      TableName: this.config.tableName,
      Key: { [CORRELATION_ID_ATTRIBUTE]: { S: correlationId }, [EVENT_NAME_ATTRIBUTE]: { S: MARKER_EVENT_NAME } },
      UpdateExpression: updateExpression,
      ConditionExpression: '#owner = :owner AND #status = :emitting',
      ExpressionAttributeNames: { '#status': 'status', '#owner': 'owner', ...names },
      ExpressionAttributeValues: { ':owner': { S: this.deps.owner }, ':emitting': { S: 'EMITTING' }, ...values },
    };
  }

  /** After a failed PutEvents: lease 0, so the retry may claim at once (if this fails too, the lease simply runs out). */
  private async releaseLease(correlationId: string): Promise<void> {
    try {
      await this.deps.dynamoDb.send(new UpdateItemCommand(this.ownClaimUpdate(correlationId, 'SET leaseUntil = :zero', {}, { ':zero': { N: '0' } })));
    } catch (err) {
      this.logger.warn(`could not release the claim on ${correlationId}; a retry can claim it when the lease ends`, err as Error);
    }
  }

  /** Creates the id's one-time deadline schedule; an existing one (ConflictException) is fine. */
  private async createDeadlineSchedule(correlationId: string, state: CorrelationState): Promise<boolean> {
    const schedule = this.config.schedule!;
    const now = this.now();
    const deadline = Math.max((state.firstReceivedAt ?? now) + this.config.deadlineSeconds, now + MIN_SCHEDULE_LEAD_SECONDS);
    const name = deadlineScheduleName(correlationId);
    try {
      await this.deps.scheduler!.send(new CreateScheduleCommand({
        Name: name,
        GroupName: schedule.groupName,
        ScheduleExpression: atExpression(deadline),
        ScheduleExpressionTimezone: 'UTC',
        FlexibleTimeWindow: { Mode: 'OFF' },
        ActionAfterCompletion: 'DELETE',
        Target: {
          Arn: schedule.targetArn,
          RoleArn: schedule.roleArn,
          Input: JSON.stringify(deadlineInput(correlationId)),
          DeadLetterConfig: { Arn: schedule.dlqArn },
          RetryPolicy: { MaximumRetryAttempts: 5, MaximumEventAgeInSeconds: 3600 },
        },
      }));
      this.logger.info(`deadline schedule ${name} created for ${correlationId}`, { scheduleName: name, deadline: atExpression(deadline) });
      return true;
    } catch (err) {
      if ((err as Error).name !== 'ConflictException') throw err;
      this.logger.debug(`deadline schedule ${name} exists already`);
      return false;
    }
  }

  /** Deletes the deadline schedule of a completed id; a missing one is fine, other errors only cost a no-op invocation. */
  private async deleteDeadlineSchedule(correlationId: string): Promise<void> {
    const name = deadlineScheduleName(correlationId);
    try {
      await this.deps.scheduler!.send(new DeleteScheduleCommand({ Name: name, GroupName: this.config.schedule!.groupName }));
    } catch (err) {
      if ((err as Error).name === 'ResourceNotFoundException') return;
      this.logger.warn(`could not delete deadline schedule ${name}; its invocation will find the aggregation done`, err as Error);
    }
  }
}
