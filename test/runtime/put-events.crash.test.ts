import { CreateEventBusCommand, PutEventsRequestEntry, PutRuleCommand, PutTargetsCommand } from '@aws-sdk/client-eventbridge';
import { PutEntryOutcome, putEventsReliably } from '../../src/runtime/put-events';
import { CrashPointScenario, exploreCrashPoints, FaultInjector, invariant, InvocationOutcome } from '../support/crash-points';
import { createMotoQueue, drainMotoQueue, motoClients, uniqueName } from '../support/moto';

/**
 * putEventsReliably under the crash-point harness, against moto: its caller (every handler
 * that publishes) re-sends each entry that has no `ok` outcome, and everything after a throw
 * or a crash, as an SQS- or stream-triggered handler's redelivery does. Invariant: an entry
 * reported `ok` was delivered, and after the caller's retry every entry was delivered at
 * least once.
 */

const platform = motoClients();
const handlerClients = motoClients();
const injector = new FaultInjector(handlerClients.eventBridge);
const ENTRIES = 25;

interface World {
  readonly busName: string;
  /** The target the invariant reads at the end. */
  readonly captureUrl: string;
  /** A second target of the same rule, read right after the first invocation. */
  readonly probeUrl: string;
  readonly entries: PutEventsRequestEntry[];
  /** Entries reported ok by the first invocation but missing at the target (must stay empty). */
  okButMissing: number[];
}

async function createWorld(): Promise<World> {
  const busName = uniqueName('bus');
  await platform.eventBridge.send(new CreateEventBusCommand({ Name: busName }));
  const capture = await createQueue('capture');
  const probe = await createQueue('probe');
  await platform.eventBridge.send(new PutRuleCommand({ Name: 'all', EventBusName: busName, EventPattern: JSON.stringify({ source: ['crash.test'] }) }));
  await platform.eventBridge.send(new PutTargetsCommand({
    Rule: 'all', EventBusName: busName, Targets: [{ Id: 'capture', Arn: capture.arn }, { Id: 'probe', Arn: probe.arn }],
  }));
  const entries = Array.from({ length: ENTRIES }, (_, n) => ({
    EventBusName: busName, Source: 'crash.test', DetailType: 'Numbered', Detail: JSON.stringify({ n, pad: 'é'.repeat(n * 10) }),
  }));
  return { busName, captureUrl: capture.url, probeUrl: probe.url, entries, okButMissing: [] };
}

const createQueue = (prefix: string) => createMotoQueue(platform.sqs, prefix);

/** How many times each entry number reached the target. */
async function deliveries(queueUrl: string): Promise<Map<number, number>> {
  const counts = new Map<number, number>();
  for (const body of await drainMotoQueue(platform.sqs, queueUrl)) {
    const n = JSON.parse(body).detail.n as number;
    counts.set(n, (counts.get(n) ?? 0) + 1);
  }
  return counts;
}

const scenario: CrashPointScenario<World> = {
  name: 'putEventsReliably: 25 entries in 3 calls',
  injector,
  setup: createWorld,
  invoke: (world) => putEventsReliably(handlerClients.eventBridge, world.entries, { sleep: async () => undefined }),
  redeliver: async (world, first: InvocationOutcome) => {
    let again = world.entries.map((_, i) => i);
    if (first.ended === 'returned') {
      const outcomes = first.value as PutEntryOutcome[];
      invariant(outcomes.length === world.entries.length, `${outcomes.length} outcomes for ${world.entries.length} entries`);
      const delivered = await deliveries(world.probeUrl);
      world.okButMissing = outcomes.flatMap((o, i) => (o.ok && !delivered.has(i) ? [i] : []));
      again = outcomes.flatMap((o, i) => (o.ok ? [] : [i]));
    }
    const retry = again.map((i) => world.entries[i]);
    if (retry.length === 0) return;
    const second = await injector.invoke(() => putEventsReliably(handlerClients.eventBridge, retry, { sleep: async () => undefined }));
    invariant(second.ended === 'returned' && (second.value as PutEntryOutcome[]).every((o) => o.ok), 'the caller\'s retry did not deliver every entry');
  },
  check: async (world) => {
    invariant(world.okButMissing.length === 0, `entries ${world.okButMissing.join(', ')} were reported ok but never reached the target`);
    const delivered = await deliveries(world.captureUrl);
    for (let n = 0; n < ENTRIES; n++) invariant((delivered.get(n) ?? 0) > 0, `entry ${n} was never delivered`);
    const total = [...delivered.values()].reduce((a, b) => a + b, 0);
    return { delivered: delivered.size, waiting: 0, parked: 0, duplicates: total - delivered.size };
  },
};

describe('putEventsReliably under the crash-point harness (moto)', () => {
  afterAll(() => {
    for (const clients of [platform, handlerClients]) {
      clients.sqs.destroy();
      clients.eventBridge.destroy();
    }
  });

  test('an entry reported ok was delivered, and the caller\'s retry delivers the rest, after every fault at every call', async () => {
    const report = await exploreCrashPoints(scenario);

    expect(report.cleanCalls).toEqual(['PutEvents', 'PutEvents', 'PutEvents']);
    expect(report.crashPoints).toBe(12); // three faults and a partial failure at each call
    expect(report.trials.every((t) => t.outcomes.delivered === ENTRIES)).toBe(true);
    // A lost request is retried once, never twice: no duplicate. A lost answer repeats its call's entries.
    const duplicates = Object.fromEntries(report.trials.map((t) => [`${t.kind}@${t.at}`, t.outcomes.duplicates]));
    expect(duplicates).toMatchObject({ 'lost-request@0': 0, 'lost-request@1': 0, 'lost-request@2': 0, 'lost-answer@0': 10, 'lost-answer@1': 10, 'lost-answer@2': 5 });
    // A partially failed call's failed entry is retried inside the same invocation (InternalFailure is retryable): no duplicate.
    expect(report.trials.filter((t) => t.kind === 'partial-failure').map((t) => t.outcomes.duplicates)).toEqual([0, 0, 0]);
  });
});
