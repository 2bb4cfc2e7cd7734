import type { LeaderConfig, LeaderMetrics } from '../../src/leader-follower-orchestrator/leader-core';
import type { FollowerRequest, RouteItem } from '../../src/leader-follower-orchestrator/orchestrator-contract';
import type { AwaitedStep, ClaimOutcome, StalledStep, StepClaim } from '../../src/leader-follower-orchestrator/progress-core';
import type { RouteStore } from '../../src/leader-follower-orchestrator/route-store-core';
import {
  BatchEnvelope, buildRecord, CURATED_SOURCE, RECORD_DETAIL_TYPE, BATCH_DETAIL_TYPE, RecordEnvelope, RecordFields,
} from '../../src/runtime/curated-envelope';

/** A fixed clock for the unit tests (epoch ms): 2027-01-15T08:00:00Z. */
export const NOW_MS = Date.parse('2027-01-15T08:00:00.000Z');
export const RECORD_TIME = '2027-01-15T07:59:00.000Z';

const ARN = 'arn:aws:lambda:us-east-1:111111111111:function:';
export const FOLLOWER_ARNS = {
  enrich: `${ARN}enrich`,
  render: `${ARN}render`,
  deliver: `${ARN}deliver`,
} as const;

export const CONFIG: LeaderConfig = {
  orchestratorId: 'Stack/Orchestrator',
  curatedBusName: 'curated-bus',
  deadLetterQueueUrl: 'https://sqs.us-east-1.amazonaws.com/111111111111/orchestrator-dlq',
  followers: { ...FOLLOWER_ARNS },
  maxHops: 7,
  maxEventBytes: 256_000,
  stepResultTimeoutMs: 6.5 * 3_600_000,
};

/** The routes most tests start from. */
export const ROUTES: RouteItem[] = [
  { channel: 'email', followers: ['enrich', 'render'] },
  { channel: 'sms', followers: ['deliver'] },
  { channel: 'letter', followers: ['enrich', 'render', 'deliver'] },
];

/** A record envelope of channel `email` unless told otherwise. */
export function record(overrides: Partial<RecordFields> = {}): RecordEnvelope {
  return buildRecord({
    id: 'rec-1',
    tenant: 'acme',
    channel: 'email',
    correlationId: 'corr-1',
    lane: 'fast',
    time: RECORD_TIME,
    source: 'shop.orders',
    detailType: 'OrderPlaced',
    payload: { orderId: 'o-1', to: 'ada@example.com' },
    ...overrides,
  });
}

/** The metadata of a record: the envelope without its payload. */
export function metadataOf(envelope: RecordEnvelope): Record<string, unknown> {
  const { payload, ...metadata } = envelope;
  void payload;
  return metadata;
}

/** A CuratedRecord event as an EventBridge rule delivers it. */
export function recordEvent(detail: unknown) {
  return {
    'version': '0',
    'id': 'eb-event-1',
    'detail-type': RECORD_DETAIL_TYPE,
    'source': CURATED_SOURCE,
    'account': '111111111111',
    'time': RECORD_TIME,
    'region': 'us-east-1',
    'resources': [],
    detail,
  };
}

/** A CuratedBatch event carrying `records`. */
export function batchEvent(records: RecordEnvelope[]) {
  const detail: BatchEnvelope = {
    schemaVersion: '1.0',
    kind: 'batch',
    id: 'batch-1',
    tenant: 'acme',
    lane: 'slow',
    time: RECORD_TIME,
    recordCount: records.length,
    origin: { bucket: 'ingest', key: 'acme/2027/01/15/part-0001.jsonl', firstLine: 1, lastLine: records.length },
    records,
  };
  return { ...recordEvent(detail), 'detail-type': BATCH_DETAIL_TYPE };
}

/** The record Lambda sends to a follower's success (or failure) destination. */
export function destinationRecord(request: FollowerRequest, responsePayload: unknown, condition = 'Success', attempts = 1) {
  return {
    version: '1.0',
    timestamp: '2027-01-15T08:00:01.000Z',
    requestContext: {
      requestId: 'req-follower',
      functionArn: `${(FOLLOWER_ARNS as Record<string, string>)[request.orchestration.follower] ?? `${ARN}unknown`}:$LATEST`,
      condition,
      approximateInvokeCount: attempts,
    },
    requestPayload: request,
    responseContext: condition === 'Success'
      ? { statusCode: 200, executedVersion: '$LATEST' }
      : { statusCode: 200, executedVersion: '$LATEST', functionError: 'Unhandled' },
    responsePayload,
  };
}

/** A Map-backed route store; `reads` counts `get` calls, `forget` is a spy. */
export class MemoryRouteStore implements RouteStore {
  public readonly items = new Map<string, unknown>();
  public reads = 0;
  public readonly forget = jest.fn((_channel: string) => {});

  constructor(routes: unknown[] = ROUTES) {
    for (const route of routes) this.items.set((route as RouteItem).channel, route);
  }

  public async get(channel: string): Promise<unknown | undefined> {
    this.reads++;
    return this.items.get(channel);
  }

  public async put(route: RouteItem): Promise<void> {
    this.items.set(route.channel, route);
  }

  public async delete(channel: string): Promise<void> {
    this.items.delete(channel);
  }
}

/**
 * In-memory progress with the ProgressStore's claim semantics (no lease: a claimed step that
 * was not dispatched is always 'busy'). `log` records the calls in order, shared with the test.
 */
export class MemoryProgress {
  public readonly items = new Map<string, MemoryProgressItem>();

  public readonly claim = jest.fn(async (claim: StepClaim): Promise<ClaimOutcome> => {
    this.log.push(`claim ${claim.step}${claim.resume ? ' (resume)' : ''}`);
    const item = this.items.get(claim.runId);
    if (claim.resume) {
      if (item && !this.holds(item, claim.step, claim.parkToken)) return 'superseded';
      this.items.set(claim.runId, {
        ...(item ?? { step: claim.step }), dispatched: false, resuming: true, dispatchId: claim.dispatchId, parked: claim.parkToken ?? item?.parked,
      });
      return 'claimed';
    }
    if ((!item && claim.step === 1) || (item !== undefined && claim.step > 1 && item.step === claim.step - 1)) {
      this.items.set(claim.runId, { step: claim.step, dispatched: false, dispatchId: claim.dispatchId });
      return 'claimed';
    }
    if (!item) return 'out-of-order';
    if (item.step > claim.step || (item.step === claim.step && (item.dispatched || item.parked !== undefined))) return 'replay';
    if (item.step === claim.step) return 'busy';
    return 'out-of-order';
  });

  public readonly markDispatched = jest.fn(async (runId: string, step: number, dispatchId: string, _awaiting?: AwaitedStep,
    resumeToken?: string): Promise<void> => {
    this.log.push(`markDispatched ${step}`);
    const item = this.items.get(runId);
    if (item && item.step === step && item.dispatchId === dispatchId && (item.parked === undefined || item.parked === resumeToken)) {
      this.items.set(runId, { step, dispatched: true, dispatchId });
    }
  });

  public readonly markParked = jest.fn(async (runId: string, step: number, _channel: string, token: string, previous?: string,
    resultOf?: string): Promise<boolean> => {
    this.log.push(`markParked ${step}`);
    const item = this.items.get(runId);
    if (previous !== undefined) {
      if (item && !this.holds(item, step, previous)) return false;
      this.items.set(runId, { step, dispatched: false, parked: token, parkedFrom: previous });
      return true;
    }
    const sameParkUnsent = item?.parked === token && !item.parkSent;
    const allowed = !item || item.step < step || (item.step === step && (resultOf === undefined
      ? item.parked === undefined || sameParkUnsent
      : item.dispatchId === resultOf && (item.parked === undefined || item.resuming === true || sameParkUnsent)));
    if (!allowed) return false;
    this.items.set(runId, { step, dispatched: false, parked: token, dispatchId: item?.dispatchId });
    return true;
  });

  public readonly findStalled = jest.fn(async (): Promise<StalledStep[]> => []);

  public readonly markParkSent = jest.fn(async (runId: string, token: string): Promise<void> => {
    const item = this.items.get(runId);
    if (item && item.parked === token) item.parkSent = true;
  });

  constructor(private readonly log: string[] = []) {}

  /** The message with `token` holds the parked step (as ProgressStore's condition says). */
  private holds(item: MemoryProgressItem, step: number, token?: string) {
    return token !== undefined && item.step === step && !item.dispatched
      && (item.parked === token || (item.parkedFrom === token && !item.parkSent));
  }
}

/** A progress item of `MemoryProgress`: the attributes ProgressStore writes. */
interface MemoryProgressItem {
  step: number;
  dispatched: boolean;
  dispatchId?: string;
  parked?: string;
  parkedFrom?: string;
  parkSent?: boolean;
  resuming?: boolean;
}

/** Metrics summed per channel and name, and latencies per channel. */
export class CapturedMetrics implements LeaderMetrics {
  public readonly counts: Record<string, Record<string, number>> = {};
  public readonly latencies: Record<string, number[]> = {};

  public count(channel: string, name: string, value = 1): void {
    this.counts[channel] = { ...this.counts[channel], [name]: (this.counts[channel]?.[name] ?? 0) + value };
  }

  public latency(channel: string, milliseconds: number): void {
    (this.latencies[channel] ??= []).push(milliseconds);
  }
}

export { captureLogger } from '../support/capture-logger';
export type { LoggedLine } from '../support/capture-logger';
