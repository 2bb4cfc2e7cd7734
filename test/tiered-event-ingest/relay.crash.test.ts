import { CreateEventBusCommand, PutRuleCommand, PutTargetsCommand } from '@aws-sdk/client-eventbridge';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { lambdaOnFailureRecord } from './lambda-destination-fixtures';
import { recordLine } from './publisher-fixtures';
import { relayRecord } from '../../src/tiered-event-ingest/relay-core';
import {
  CrashPointReport,
  CrashPointScenario,
  CrashPointViolation,
  exploreCrashPoints,
  FAULT_KINDS,
  FaultInjector,
  invariant,
  InvocationOutcome,
  OutcomeCounts,
} from '../support/crash-points';
import { createMotoQueue, drainMotoQueue, motoClients, MotoQueue, uniqueName } from '../support/moto';
import { asynchronousInvokeRetries } from '../support/platform';

/**
 * The TieredEventIngest fast-lane relay (`relayRecord`) under the crash-point harness, against
 * moto. EventBridge invokes the relay asynchronously; when an invocation throws or dies, Lambda
 * retries it twice, then sends an invocation record (with the event as `requestPayload`) to the
 * on-failure destination, the fast-lane DLQ (`asynchronousInvokeRetries` models it).
 *
 * Invariant, after Lambda's retries: the record is on the curated bus as a CuratedRecord (a
 * capture rule copies it to a queue; duplicates are allowed, delivery is at least once), or the
 * invocation ended in the on-failure destination with the record as its payload, where the
 * operator's redrive finds it; never neither.
 */

const RELAY_FUNCTION_ARN = 'arn:aws:lambda:us-east-1:123456789012:function:Stack-IngestRelayFunction-Ab12Cd34Ef56';
const platform = motoClients(); // the harness's own view of AWS: never faulted
const handlerClients = motoClients(); // the client the relay uses: faulted
const injector = new FaultInjector(handlerClients.eventBridge);

interface RelayWorld {
  readonly busName: string;
  /** The queue a capture rule on the curated bus copies every CuratedRecord to. */
  readonly capture: MotoQueue;
  /** The relay's on-failure destination. */
  readonly dlq: MotoQueue;
  /** The event EventBridge delivers: the record envelope the fast-lane rule built. */
  readonly envelope: Record<string, unknown>;
}

/** A fresh world: the curated bus with a capture rule, the fast-lane DLQ, and a record envelope with an id of its own. */
async function createWorld(options: { envelope?: Record<string, unknown> } = {}): Promise<RelayWorld> {
  const busName = uniqueName('curated');
  await platform.eventBridge.send(new CreateEventBusCommand({ Name: busName }));
  const capture = await createMotoQueue(platform.sqs, 'records');
  const rule = uniqueName('records');
  await platform.eventBridge.send(new PutRuleCommand({
    Name: rule, EventBusName: busName, EventPattern: JSON.stringify({ 'source': ['cdk-event-fabric'], 'detail-type': ['CuratedRecord'] }),
  }));
  await platform.eventBridge.send(new PutTargetsCommand({ Rule: rule, EventBusName: busName, Targets: [{ Id: 'capture', Arn: capture.arn }] }));
  const dlq = await createMotoQueue(platform.sqs, 'fast-lane-dlq');
  const envelope = options.envelope ?? { ...JSON.parse(recordLine(7)), id: uniqueName('evt'), lane: 'fast' };
  return { busName, capture, dlq, envelope };
}

/** One invocation of the relay, as the Lambda handler makes it (the backoff between PutEvents attempts skipped). */
const relay = (world: RelayWorld, busName = world.busName) => () =>
  relayRecord(handlerClients.eventBridge, busName, world.envelope, async () => undefined);

/** Lambda's on-failure destination: the invocation record of the last failed attempt, sent to the fast-lane DLQ. */
async function onFailure(world: RelayWorld, last: InvocationOutcome): Promise<void> {
  const errorMessage = last.ended === 'threw' ? (last.error as Error).message : 'Task timed out after 30.00 seconds';
  const record = { ...lambdaOnFailureRecord({ functionArn: RELAY_FUNCTION_ARN, requestPayload: world.envelope }), responsePayload: { errorMessage } };
  await platform.sqs.send(new SendMessageCommand({ QueueUrl: world.dlq.url, MessageBody: JSON.stringify(record) }));
}

/** The invariant, on the final state; counts the record's fate. */
async function checkWorld(world: RelayWorld): Promise<OutcomeCounts> {
  const id = world.envelope.id as string;
  const delivered = (await drainMotoQueue(platform.sqs, world.capture.url)).map((body) => JSON.parse(body));
  for (const event of delivered) {
    invariant(event['detail-type'] === 'CuratedRecord' && event.source === 'cdk-event-fabric', `unexpected event on the curated bus: ${JSON.stringify(event)}`);
    invariant(JSON.stringify(event.detail) === JSON.stringify(world.envelope), `the curated bus carries ${JSON.stringify(event.detail)}, not the record`);
  }
  const failures = (await drainMotoQueue(platform.sqs, world.dlq.url)).map((body) => JSON.parse(body));
  for (const failure of failures) {
    // The operator's redrive replays `requestPayload`: it must be the record, whole.
    invariant(JSON.stringify(failure.requestPayload) === JSON.stringify(world.envelope), `the on-failure record carries ${JSON.stringify(failure.requestPayload)}`);
  }
  invariant(delivered.length > 0 || failures.length > 0, `record ${id} is lost: not on the curated bus, not in the on-failure destination`);
  return {
    delivered: delivered.length > 0 ? 1 : 0,
    waiting: 0,
    parked: delivered.length === 0 ? 1 : 0,
    duplicates: Math.max(0, delivered.length - 1),
  };
}

function relayScenario(name: string, handler: (world: RelayWorld) => () => Promise<unknown>): CrashPointScenario<RelayWorld> {
  return {
    name,
    injector,
    setup: () => createWorld(),
    invoke: (world) => handler(world)(),
    redeliver: async (world, first) => {
      await asynchronousInvokeRetries(injector, first, handler(world), (last) => onFailure(world, last));
    },
    check: checkWorld,
  };
}

/** Trials per fault kind, for the summary printed after the tests. */
const summaries: string[] = [];
function summarize(report: CrashPointReport): void {
  const perKind = FAULT_KINDS.map((kind) => `${kind} ${report.trials.filter((t) => t.kind === kind).length}`).join(', ');
  const ends = ['returned', 'threw', 'crashed'].map((e) => `${e} ${report.trials.filter((t) => t.firstInvocation === e).length}`).join(', ');
  summaries.push(`${report.name}: ${report.crashPoints} trials (${perKind}); violations: none (the harness throws at the first); first invocation ${ends}; `
    + `totals delivered ${report.totals.delivered}, waiting ${report.totals.waiting}, parked ${report.totals.parked}, duplicates ${report.totals.duplicates}`);
}

afterAll(() => {
  if (summaries.length) console.log(`Crash points, fast-lane relay:\n  ${summaries.join('\n  ')}`);
  for (const clients of [platform, handlerClients]) {
    clients.sqs.destroy();
    clients.eventBridge.destroy();
    clients.s3.destroy();
    clients.dynamoDb.destroy();
  }
});

describe('fast-lane relay under the crash-point harness (moto)', () => {
  test('the record is on the curated bus or in the on-failure destination, after every fault', async () => {
    const report = await exploreCrashPoints(relayScenario('TieredEventIngest fast-lane relay: one record', relay));
    summarize(report);
    expect(report.cleanCalls).toEqual(['PutEvents']);
    // A lost request, a lost answer and a crash, and a partial failure of the one-entry PutEvents.
    expect(report.crashPoints).toBe(4);
    // One fault, then Lambda's retries: every trial delivers the record; a lost answer delivers it twice.
    for (const t of report.trials) expect(t.outcomes).toMatchObject({ delivered: 1, parked: 0 });
    const duplicates = Object.fromEntries(report.trials.map((t) => [t.kind, t.outcomes.duplicates]));
    expect(duplicates).toEqual({ 'lost-request': 0, 'lost-answer': 1, 'crash': 0, 'partial-failure': 0 });
  });

  test('a put that fails on every attempt ends in the on-failure destination with the record', async () => {
    // The curated bus is gone (deleted, or a wrong name): each of the three attempts throws.
    const world = await createWorld();
    const missingBus = relay(world, uniqueName('no-such-bus'));
    const first = await injector.invoke(missingBus);
    const last = await asynchronousInvokeRetries(injector, first, missingBus, (outcome) => onFailure(world, outcome));
    expect(last.ended).toBe('threw');
    expect(await checkWorld(world)).toEqual({ delivered: 0, waiting: 0, parked: 1, duplicates: 0 });
  });

  test('an event that is not a record envelope ends in the on-failure destination, untouched', async () => {
    const world = await createWorld({ envelope: { ...JSON.parse(recordLine(8)), id: uniqueName('evt'), lane: 'medium' } });
    const first = await injector.invoke(relay(world));
    expect(first).toMatchObject({ ended: 'threw', calls: [] });
    await asynchronousInvokeRetries(injector, first, relay(world), (outcome) => onFailure(world, outcome));
    expect(await checkWorld(world)).toEqual({ delivered: 0, waiting: 0, parked: 1, duplicates: 0 });
  });

  test('the invariant catches a planted loss: a relay that swallows a failed put', async () => {
    const swallows = (world: RelayWorld) => () => relay(world)().catch(() => undefined);
    const exploring = exploreCrashPoints(relayScenario('planted loss: relay swallows its error', swallows));
    await expect(exploring).rejects.toThrow(CrashPointViolation);
    await expect(exploring).rejects.toThrow(/lost-request at call 0 \(PutEvents\): record evt-\S+ is lost: not on the curated bus, not in the on-failure destination/);
  });
});
