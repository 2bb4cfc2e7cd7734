import { GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { marshall, unmarshall } from '@aws-sdk/util-dynamodb';
import { ACCOUNT_CHECK, eventItem, IN_STOCK, seedConfig, streamEvent, streamRecord } from './aggregator-fixtures';
import { createAggregatorMotoWorld } from './aggregator-moto-world';
import { Aggregator, AggregatorConfig, StreamBatchReport } from '../../src/event-aggregator/aggregator-core';
import {
  CrashPointReport, CrashPointScenario, exploreCrashPoints, FAULT_KINDS, FaultInjector, invariant, InvocationOutcome, OutcomeCounts,
} from '../support/crash-points';
import { drainMotoQueue, motoClients, MotoQueue } from '../support/moto';

/**
 * The EventAggregator's stream path (`processStreamBatch`) under the crash-point harness,
 * against moto: both required events are in the table, and the stream delivers the record
 * of the second. Each invocation has 30 s (the function's timeout) on a fake clock that
 * moves with the core's own waits; a crashed invocation ends at its timeout. The stream
 * retries the batch while an invocation fails, crashes or reports a batch item failure, up
 * to the event source's 10 retries.
 *
 * The deadline path (`processDeadline`) is run the same way, with one of the two events
 * recorded and EventBridge Scheduler's retries (5) as the redelivery.
 *
 * Invariant, after the retries: the aggregate was emitted (at least once: a second
 * emit is allowed only where the docs say so, after a lost answer or a death between
 * PutEvents and the mark) and the marker is final, so no later write emits it again.
 */

const platform = motoClients(); // the harness's own view of AWS: never faulted
const handlerClients = motoClients(); // the clients the aggregator uses: faulted
const injector = new FaultInjector(handlerClients.dynamoDb, handlerClients.eventBridge);
const STREAM_RETRIES = 10;
const FUNCTION_TIMEOUT_MS = 30_000;

interface AggregatorWorld {
  readonly config: AggregatorConfig;
  readonly capture: MotoQueue;
  readonly event: ReturnType<typeof streamEvent>;
  /** The fake clock, ms. */
  clockMs: number;
  invocations: number;
}

async function createWorld(names: string[] = [ACCOUNT_CHECK, IN_STOCK]): Promise<AggregatorWorld> {
  const { tableName, busName, capture } = await createAggregatorMotoWorld(platform);
  const clockMs = Date.UTC(2027, 0, 15, 8);
  const now = Math.floor(clockMs / 1000);
  const items = names.map((name) => eventItem('7', name, { from: name }, { now }));
  for (const item of items) await platform.dynamoDb.send(new PutItemCommand({ TableName: tableName, Item: marshall(item) }));
  const config = seedConfig(tableName, busName);
  return { config, capture, event: streamEvent(streamRecord('INSERT', items[items.length - 1])), clockMs, invocations: 0 };
}

/** The aggregator as one invocation of the function sees it, with 30 s on the world's clock. */
function aggregatorFor(world: AggregatorWorld): Aggregator {
  const owner = `req-${world.invocations++}`;
  const endsAt = world.clockMs + FUNCTION_TIMEOUT_MS;
  return new Aggregator({
    dynamoDb: handlerClients.dynamoDb,
    eventBridge: handlerClients.eventBridge,
    owner,
    nowSeconds: () => Math.floor(world.clockMs / 1000),
    remainingMs: () => endsAt - world.clockMs,
    sleep: async (ms) => { world.clockMs += ms; },
  }, world.config);
}

/** One invocation of the aggregator on the stream batch. */
function invocation(world: AggregatorWorld): () => Promise<StreamBatchReport> {
  return () => aggregatorFor(world).processStreamBatch(world.event);
}

/** One invocation by the deadline schedule. */
function deadlineInvocation(world: AggregatorWorld): () => Promise<unknown> {
  return () => aggregatorFor(world).processDeadline({ deadlineFor: '7' });
}

/**
 * EventBridge Scheduler's retries of a failed target invocation (the construct sets 5
 * attempts within an hour), about a minute apart here.
 */
async function schedulerRetries(world: AggregatorWorld, first: InvocationOutcome): Promise<void> {
  let last = first;
  for (let retry = 0; retry < 5 && last.ended !== 'returned'; retry++) {
    world.clockMs += 60_000;
    last = await injector.invoke(deadlineInvocation(world));
  }
}

/** The stream: the batch is retried while an invocation fails, dies (at its timeout) or reports a batch item failure. */
async function streamRetries(world: AggregatorWorld, first: InvocationOutcome): Promise<void> {
  let last = first;
  for (let retry = 0; retry < STREAM_RETRIES; retry++) {
    if (last.ended === 'returned' && (last.value as StreamBatchReport).batchItemFailures.length === 0) return;
    // A dead invocation ends at its timeout; a failed one returns at once, and the retry follows about a second later.
    world.clockMs += last.ended === 'crashed' ? FUNCTION_TIMEOUT_MS : 1_000;
    last = await injector.invoke(invocation(world));
  }
}

const checkWorld = (detailType: string, status: string) => async (world: AggregatorWorld): Promise<OutcomeCounts> => {
  const emitted = (await drainMotoQueue(platform.sqs, world.capture.url)).map((body) => JSON.parse(body));
  for (const event of emitted) {
    invariant(event['detail-type'] === detailType && event.detail.correlationId === '7', `unexpected event: ${JSON.stringify(event)}`);
  }
  const { Item } = await platform.dynamoDb.send(new GetItemCommand({
    TableName: world.config.tableName, Key: marshall({ correlationId: '7', eventName: '#aggregate' }), ConsistentRead: true,
  }));
  const marker = Item ? unmarshall(Item) : undefined;
  invariant(emitted.length > 0, `the aggregate of 7 was never emitted (marker ${JSON.stringify(marker)}) after ${world.invocations} invocations`);
  invariant(marker?.status === status, `the aggregate was emitted but the marker is ${JSON.stringify(marker)}: a later write would emit it again`);
  return { delivered: 1, waiting: 0, parked: 0, duplicates: emitted.length - 1 };
};

const summaries: string[] = [];
function summarize(report: CrashPointReport): void {
  const perKind = FAULT_KINDS.map((kind) => `${kind} ${report.trials.filter((t) => t.kind === kind).length}`).join(', ');
  summaries.push(`${report.name}: ${report.crashPoints} trials (${perKind}); violations: none (the harness throws at the first); `
    + `totals delivered ${report.totals.delivered}, duplicates ${report.totals.duplicates}`);
}

afterAll(() => {
  if (summaries.length) console.log(`Crash points, EventAggregator:\n  ${summaries.join('\n  ')}`);
  for (const clients of [platform, handlerClients]) {
    clients.sqs.destroy();
    clients.eventBridge.destroy();
    clients.s3.destroy();
    clients.dynamoDb.destroy();
  }
});

/** Runs the scenario and checks the report: every trial emits; a second emit only where the docs allow it. */
async function expectEmittedAfterEveryFault(scenario: CrashPointScenario<AggregatorWorld>): Promise<void> {
  const report = await exploreCrashPoints(scenario);
  summarize(report);
  expect(report.cleanCalls).toEqual(['Query', 'PutItem', 'PutEvents', 'UpdateItem']);
  // Each call × lost request, lost answer and crash, and a partial failure of the one-entry PutEvents.
  expect(report.crashPoints).toBe(13);
  for (const t of report.trials) expect(t.outcomes.delivered).toBe(1);
  // A second emit only after PutEvents' answer was lost, or a death after PutEvents was
  // accepted and before the mark landed. Every other fault emits exactly once.
  const withDuplicates = report.trials.filter((t) => t.outcomes.duplicates > 0).map((t) => `${t.call}/${t.kind}`);
  expect(withDuplicates).toEqual(['PutEvents/lost-answer', 'UpdateItem/crash']);
}

test('stream path: after any fault and the stream\'s retries, the aggregate is emitted and the marker is COMPLETE', async () => {
  await expectEmittedAfterEveryFault({
    name: 'EventAggregator stream path: both events recorded, the second one\'s record',
    injector,
    setup: () => createWorld(),
    invoke: (world) => invocation(world)(),
    redeliver: streamRetries,
    check: checkWorld('Aggregation Completed', 'COMPLETE'),
  });
}, 300_000);

test('deadline path: after any fault and the schedule\'s retries, Aggregation Incomplete is emitted and the marker is INCOMPLETE', async () => {
  await expectEmittedAfterEveryFault({
    name: 'EventAggregator deadline path: one of two events recorded',
    injector,
    setup: () => createWorld([ACCOUNT_CHECK]),
    invoke: (world) => deadlineInvocation(world)(),
    redeliver: schedulerRetries,
    check: checkWorld('Aggregation Incomplete', 'INCOMPLETE'),
  });
}, 300_000);
