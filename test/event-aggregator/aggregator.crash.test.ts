import { CreateTableCommand, GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { CreateEventBusCommand, PutRuleCommand, PutTargetsCommand } from '@aws-sdk/client-eventbridge';
import { marshall, unmarshall } from '@aws-sdk/util-dynamodb';
import { ACCOUNT_CHECK, eventItem, IN_STOCK, streamEvent, streamRecord } from './aggregator-fixtures';
import { Aggregator, AggregatorConfig, StreamBatchReport } from '../../src/event-aggregator/aggregator-core';
import {
  CrashPointReport, CrashPointScenario, exploreCrashPoints, FAULT_KINDS, FaultInjector, invariant, InvocationOutcome, OutcomeCounts,
} from '../support/crash-points';
import { createMotoQueue, drainMotoQueue, motoClients, MotoQueue, uniqueName } from '../support/moto';

/**
 * The EventAggregator's stream path (`processStreamBatch`) under the crash-point harness,
 * against moto: both required events are in the table, and the stream delivers the record
 * of the second. Each invocation has 30 s (the function's timeout) on a fake clock that
 * moves with the core's own waits; a crashed invocation ends at its timeout. The stream
 * retries the batch while an invocation fails, crashes or reports a batch item failure, up
 * to the event source's 10 retries.
 *
 * Invariant, after the stream's retries: the aggregate was emitted (at least once: a second
 * emit is allowed only where the docs say so, after a lost answer or a death between
 * PutEvents and the mark) and the marker is COMPLETE, so no later write emits it again.
 */

const platform = motoClients(); // the harness's own view of AWS: never faulted
const handlerClients = motoClients(); // the clients the aggregator uses: faulted
const injector = new FaultInjector(handlerClients.dynamoDb, handlerClients.eventBridge);
const SOURCE = 'cdk-event-fabric.aggregator';
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

async function createWorld(): Promise<AggregatorWorld> {
  const tableName = uniqueName('aggregates');
  await platform.dynamoDb.send(new CreateTableCommand({
    TableName: tableName,
    BillingMode: 'PAY_PER_REQUEST',
    KeySchema: [{ AttributeName: 'correlationId', KeyType: 'HASH' }, { AttributeName: 'eventName', KeyType: 'RANGE' }],
    AttributeDefinitions: [{ AttributeName: 'correlationId', AttributeType: 'S' }, { AttributeName: 'eventName', AttributeType: 'S' }],
  }));
  const busName = uniqueName('orders');
  await platform.eventBridge.send(new CreateEventBusCommand({ Name: busName }));
  const capture = await createMotoQueue(platform.sqs, 'aggregates');
  const rule = uniqueName('aggregates');
  await platform.eventBridge.send(new PutRuleCommand({ Name: rule, EventBusName: busName, EventPattern: JSON.stringify({ source: [SOURCE] }) }));
  await platform.eventBridge.send(new PutTargetsCommand({ Rule: rule, EventBusName: busName, Targets: [{ Id: 'capture', Arn: capture.arn }] }));
  const clockMs = Date.UTC(2027, 0, 15, 8);
  const now = Math.floor(clockMs / 1000);
  const items = [eventItem('7', ACCOUNT_CHECK, { credit: 'approved' }, { now }), eventItem('7', IN_STOCK, { sku: 'A-1' }, { now })];
  for (const item of items) await platform.dynamoDb.send(new PutItemCommand({ TableName: tableName, Item: marshall(item) }));
  const config: AggregatorConfig = {
    tableName,
    outputBusName: busName,
    source: SOURCE,
    requiredEvents: [ACCOUNT_CHECK, IN_STOCK],
    emitOnEveryChange: false,
    deadlineSeconds: 0,
    itemTtlSeconds: 7 * 86_400,
  };
  return { config, capture, event: streamEvent(streamRecord('INSERT', items[1])), clockMs, invocations: 0 };
}

/** One invocation of the aggregator on the stream batch, with 30 s on the world's clock. */
function invocation(world: AggregatorWorld): () => Promise<StreamBatchReport> {
  return () => {
    const owner = `req-${world.invocations++}`;
    const endsAt = world.clockMs + FUNCTION_TIMEOUT_MS;
    return new Aggregator({
      dynamoDb: handlerClients.dynamoDb,
      eventBridge: handlerClients.eventBridge,
      owner,
      nowSeconds: () => Math.floor(world.clockMs / 1000),
      remainingMs: () => endsAt - world.clockMs,
      sleep: async (ms) => { world.clockMs += ms; },
    }, world.config).processStreamBatch(world.event);
  };
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

async function checkWorld(world: AggregatorWorld): Promise<OutcomeCounts> {
  const emitted = (await drainMotoQueue(platform.sqs, world.capture.url)).map((body) => JSON.parse(body));
  for (const event of emitted) {
    invariant(event['detail-type'] === 'Aggregation Completed' && event.detail.correlationId === '7', `unexpected event: ${JSON.stringify(event)}`);
  }
  const { Item } = await platform.dynamoDb.send(new GetItemCommand({
    TableName: world.config.tableName, Key: marshall({ correlationId: '7', eventName: '#aggregate' }), ConsistentRead: true,
  }));
  const marker = Item ? unmarshall(Item) : undefined;
  invariant(emitted.length > 0, `the aggregate of 7 was never emitted (marker ${JSON.stringify(marker)}) after ${world.invocations} invocations`);
  invariant(marker?.status === 'COMPLETE', `the aggregate was emitted but the marker is ${JSON.stringify(marker)}: a later write would emit it again`);
  return { delivered: 1, waiting: 0, parked: 0, duplicates: emitted.length - 1 };
}

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

test('stream path: after any fault and the stream\'s retries, the aggregate is emitted and the marker is COMPLETE', async () => {
  const scenario: CrashPointScenario<AggregatorWorld> = {
    name: 'EventAggregator stream path: both events recorded, the second one\'s record',
    injector,
    setup: createWorld,
    invoke: (world) => invocation(world)(),
    redeliver: streamRetries,
    check: checkWorld,
  };
  const report = await exploreCrashPoints(scenario);
  summarize(report);
  expect(report.cleanCalls).toEqual(['Query', 'PutItem', 'PutEvents', 'UpdateItem']);
  // Each call × lost request, lost answer and crash, and a partial failure of the one-entry PutEvents.
  expect(report.crashPoints).toBe(13);
  for (const t of report.trials) expect(t.outcomes.delivered).toBe(1);
  // A second emit only where the docs allow it: PutEvents' answer lost, or a death after
  // PutEvents was accepted and before the mark landed. Every other fault emits exactly once.
  const withDuplicates = report.trials.filter((t) => t.outcomes.duplicates > 0).map((t) => `${t.call}/${t.kind}`);
  expect(withDuplicates).toEqual(['PutEvents/lost-answer', 'UpdateItem/crash']);
}, 300_000);
