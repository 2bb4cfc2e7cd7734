import { CreateEventBusCommand, PutEventsCommand, PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';
import { DeleteMessageBatchCommand, Message, ReceiveMessageCommand, SendMessageBatchCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import fc from 'fast-check';
import { putReplayRule } from './replay-rules';
import { ReplayDependencies, replayDeadLetters, ReplayEntry, toReplayEntry } from '../../src/api-destination-channel/replay-core';
import { ec2StateChangeEvent, eventBridgeDeadLetterAttributes } from '../support/aws-fixtures';
import {
  CrashPointScenario,
  CrashPointViolation,
  exploreCrashPoints,
  FakeClock,
  FaultInjector,
  invariant,
  InvocationOutcome,
  OutcomeCounts,
} from '../support/crash-points';
import { createMotoQueue, drainMotoQueue, motoClients, MotoQueue, uniqueName } from '../support/moto';
import { SqsVisibility, synchronousCallerRetries } from '../support/platform';

/**
 * The replay handler under the crash-point harness, against moto: every AWS call of a
 * replay run fails as a lost request, a lost answer and a crash; the operator invokes again
 * as a synchronous caller does, the fake clock passes the visibility timeout, and the
 * operator's next run finishes the job. Invariant: every dead letter whose channel has a
 * replay rule is delivered to that channel (at least once: the idempotency key absorbs
 * duplicates) and to no other; every other dead letter is still in the queue.
 */

const ACCOUNT = '123456789012';
const VISIBILITY_SECONDS = 900;
const platform = motoClients(); // the harness's own view of AWS: never faulted
const handlerClients = motoClients(); // the clients the handler uses: faulted
const injector = new FaultInjector(handlerClients.sqs, handlerClients.eventBridge);
const clock = new FakeClock();
new SqsVisibility(injector, clock, platform.sqs);

type Queue = MotoQueue;

interface ReplayWorld {
  readonly dlq: Queue;
  readonly replayBusName: string;
  /** Channel rule ARN → the capture queue standing in for its API destination. */
  readonly channels: Map<string, Queue>;
  /** Event id → the channel rule that failed it (routable dead letters). */
  readonly routable: Map<string, string>;
  /** Bodies of the dead letters no replay rule takes (another stack's channel, not JSON). */
  readonly unroutable: string[];
}

const createQueue = (prefix: string) => createMotoQueue(platform.sqs, prefix);

/**
 * A fresh world: a DLQ shared by two channels of this stack and one of another stack, the
 * stack's replay bus with one replay rule per channel (the pattern the construct writes),
 * and dead letters as EventBridge writes them (documented attributes, documented event).
 */
async function createWorld(counts = { a: 5, b: 4, otherStack: 2, notJson: 1 }): Promise<ReplayWorld> {
  const dlq = await createQueue('dlq');
  const replayBusName = uniqueName('replay-bus');
  await platform.eventBridge.send(new CreateEventBusCommand({ Name: replayBusName }));
  const bus = uniqueName('orders');
  const ruleA = `arn:aws:events:us-east-1:${ACCOUNT}:rule/${bus}/Stack-ChannelARule-${uniqueName('a')}`;
  const ruleB = `arn:aws:events:us-east-1:${ACCOUNT}:rule/${bus}/Stack-ChannelBRule-${uniqueName('b')}`;
  const ruleOtherStack = `arn:aws:events:us-east-1:${ACCOUNT}:rule/${bus}/OtherStack-ChannelRule-${uniqueName('c')}`;
  const channels = new Map<string, Queue>();
  for (const ruleArn of [ruleA, ruleB]) {
    const capture = await createQueue('api');
    await putReplayRule(platform.eventBridge, replayBusName, ruleArn, capture.arn);
    channels.set(ruleArn, capture);
  }
  const routable = new Map<string, string>();
  const unroutable: string[] = [];
  const send = (body: string, ruleArn: string) => platform.sqs.send(new SendMessageCommand({
    QueueUrl: dlq.url,
    MessageBody: body,
    MessageAttributes: eventBridgeDeadLetterAttributes(ruleArn, `arn:aws:events:us-east-1:${ACCOUNT}:api-destination/crm/${uniqueName('t')}`),
  }));
  const plan: [string, number][] = [[ruleA, counts.a], [ruleB, counts.b], [ruleOtherStack, counts.otherStack]];
  for (const [ruleArn, count] of plan) {
    for (let i = 0; i < count; i++) {
      const event = ec2StateChangeEvent({ id: uniqueName('event') });
      await send(JSON.stringify(event), ruleArn);
      if (ruleArn === ruleOtherStack) unroutable.push(JSON.stringify(event));
      else routable.set(event.id as string, ruleArn);
    }
  }
  for (let i = 0; i < counts.notJson; i++) {
    const body = `{"id": "cut-off-${i}`;
    await send(body, ruleA);
    unroutable.push(body);
  }
  return { dlq, replayBusName, channels, routable, unroutable };
}

function replayDeps(world: ReplayWorld): ReplayDependencies {
  return {
    sqs: handlerClients.sqs,
    eventBridge: handlerClients.eventBridge,
    replayBusName: world.replayBusName,
    maxEntryBytes: 1_048_576,
    visibilityTimeoutSeconds: VISIBILITY_SECONDS,
    receiveWaitTimeSeconds: 0,
    putEventsOptions: { maxAttempts: 2, sleep: async () => undefined },
  };
}

/** Every message body in a queue (each received once, hidden for the rest of the check). */
const drain = (queue: Queue) => drainMotoQueue(platform.sqs, queue.url);

/** The invariant, on the final state; counts each input's fate. */
async function checkWorld(world: ReplayWorld): Promise<OutcomeCounts> {
  // Messages a run left hidden count as in the queue: they reappear when their timeout ends.
  await clock.advance((VISIBILITY_SECONDS + 1) * 1000);
  const deliveries = new Map<string, number>();
  for (const [ruleArn, capture] of world.channels) {
    for (const body of await drain(capture)) {
      const { detail } = JSON.parse(body);
      const id = detail.event.id as string;
      invariant(world.routable.get(id) === ruleArn, `event ${id} reached the replay rule of ${ruleArn}, not its own channel ${world.routable.get(id)}`);
      invariant(detail.ruleArn === ruleArn, `event ${id} was replayed with ruleArn ${detail.ruleArn}`);
      deliveries.set(id, (deliveries.get(id) ?? 0) + 1);
    }
  }
  const left = await drain(world.dlq);
  let waiting = 0;
  for (const [id] of world.routable) {
    const inQueue = left.some((body) => body.includes(id));
    invariant((deliveries.get(id) ?? 0) > 0 || inQueue, `dead letter ${id} is lost: neither delivered nor in the queue`);
    invariant(!inQueue, `dead letter ${id} is still in the queue after the operator's last run`);
    if (inQueue) waiting++;
  }
  for (const body of world.unroutable) {
    invariant(left.includes(body), `dead letter ${body.slice(0, 80)} has no replay rule and left the queue: lost`);
  }
  invariant(left.length === world.unroutable.length, `the queue holds ${left.length} messages, expected the ${world.unroutable.length} without a replay rule`);
  const delivered = [...deliveries.values()];
  return {
    delivered: delivered.length,
    waiting,
    parked: world.unroutable.length,
    duplicates: delivered.reduce((sum, n) => sum + n - 1, 0),
  };
}

/** The operator's procedure after a first run: retry a failed call, and run again later. */
async function operator(first: InvocationOutcome, run: () => Promise<unknown>): Promise<void> {
  await synchronousCallerRetries(injector, first, run);
  await clock.advance((VISIBILITY_SECONDS + 1) * 1000);
  const later = await injector.invoke(run);
  if (later.ended !== 'returned') throw new Error(`the operator's later run did not return: ${later.ended}`);
}

function replayScenario(name: string, handler: (world: ReplayWorld) => Promise<unknown>): CrashPointScenario<ReplayWorld> {
  return {
    name,
    injector,
    setup: async () => {
      clock.reset();
      return createWorld();
    },
    invoke: handler,
    redeliver: (world, first) => operator(first, () => handler(world)),
    check: checkWorld,
  };
}

describe('replay handler under the crash-point harness (moto)', () => {
  afterAll(() => {
    for (const clients of [platform, handlerClients]) {
      clients.sqs.destroy();
      clients.eventBridge.destroy();
    }
  });

  test('every dead letter is delivered to its own channel or still in the queue, after every fault at every call', async () => {
    const report = await exploreCrashPoints(replayScenario('ApiDestinationChannel replay: 9 routable, 3 without a replay rule',
      (world) => replayDeadLetters(replayDeps(world), { queueUrl: world.dlq.url })));

    expect(report.cleanCalls).toEqual([
      'GetQueueAttributes',
      'ReceiveMessage', 'ListRules', 'ListTargetsByRule', 'ListTargetsByRule', 'PutEvents', 'DeleteMessageBatch',
      'ReceiveMessage', 'ListRules', // the last two: no replay rule matches them, so no target to look up
      'ReceiveMessage', 'ChangeMessageVisibilityBatch',
    ]);
    // Three faults at each call, and a partial failure at each batch call (PutEvents, DeleteMessageBatch, ChangeMessageVisibilityBatch).
    expect(report.crashPoints).toBe(report.cleanCalls.length * 3 + 3);
    // Every trial ends with all 9 routable dead letters delivered and the 3 others parked.
    expect(report.trials.every((t) => t.outcomes.delivered === 9 && t.outcomes.parked === 3 && t.outcomes.waiting === 0)).toBe(true);
    // A lost PutEvents answer is the one place a replay is sent twice (at least once, by design).
    const withDuplicates = report.trials.filter((t) => t.outcomes.duplicates > 0).map((t) => `${t.kind}@${t.call}`);
    expect(withDuplicates).toEqual(expect.arrayContaining(['lost-answer@PutEvents']));
  });

  test('the harness catches a planted loss: a replay that deletes before it sends fails it', async () => {
    // Receives a batch, deletes it, then puts it: a crash between the two loses the batch.
    const deleteThenSend = async (world: ReplayWorld) => {
      for (;;) {
        const { Messages } = await handlerClients.sqs.send(new ReceiveMessageCommand({
          QueueUrl: world.dlq.url, MaxNumberOfMessages: 10, VisibilityTimeout: VISIBILITY_SECONDS, MessageAttributeNames: ['All'],
        }));
        if (!Messages?.length) return;
        const entries = Messages.map((m) => toReplayEntry(m, world.replayBusName, 1_048_576))
          .flatMap((r) => ('entry' in r && world.channels.has(r.ruleArn) ? [r.entry] : []));
        const keep = Messages.filter((m) => { const r = toReplayEntry(m, world.replayBusName, 1_048_576); return !('entry' in r) || !world.channels.has(r.ruleArn); });
        const remove = Messages.filter((m) => !keep.includes(m));
        if (remove.length) {
          await handlerClients.sqs.send(new DeleteMessageBatchCommand({
            QueueUrl: world.dlq.url, Entries: remove.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })),
          }));
        }
        if (entries.length) await handlerClients.eventBridge.send(new PutEventsCommand({ Entries: entries }));
      }
    };

    const exploring = exploreCrashPoints(replayScenario('planted loss: delete before send', deleteThenSend));

    await expect(exploring).rejects.toThrow(CrashPointViolation);
    // The first trial to break it: the delete was applied, its answer lost, so nothing was sent.
    await expect(exploring).rejects.toThrow(/lost-answer at call 1 \(DeleteMessageBatch\): dead letter event-\S+ is lost: neither delivered nor in the queue/);
  });

  /** The batch's replayable entries and their messages, as the planted handlers below build them. */
  function plantedBatch(world: ReplayWorld, messages: Message[]): { entries: PutEventsRequestEntry[]; mine: Message[] } {
    const replays = messages.map((m) => ({ m, r: toReplayEntry(m, world.replayBusName, 1_048_576) }));
    const mine = replays.filter(({ r }) => 'entry' in r && world.channels.has(r.ruleArn));
    return { entries: mine.map(({ r }) => (r as ReplayEntry).entry), mine: mine.map(({ m }) => m) };
  }

  async function receiveBatch(world: ReplayWorld): Promise<Message[]> {
    const { Messages } = await handlerClients.sqs.send(new ReceiveMessageCommand({
      QueueUrl: world.dlq.url, MaxNumberOfMessages: 10, VisibilityTimeout: VISIBILITY_SECONDS, MessageAttributeNames: ['All'],
    }));
    return Messages ?? [];
  }

  const deleteBatch = (world: ReplayWorld, messages: Message[]) => handlerClients.sqs.send(new DeleteMessageBatchCommand({
    QueueUrl: world.dlq.url, Entries: messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })),
  }));

  test('the harness catches a replay that ignores PutEvents\' per-entry errors (a partial failure)', async () => {
    const ignoresEntryErrors = async (world: ReplayWorld) => {
      for (let messages = await receiveBatch(world); messages.length > 0; messages = await receiveBatch(world)) {
        const { entries, mine } = plantedBatch(world, messages);
        if (entries.length === 0) continue;
        await handlerClients.eventBridge.send(new PutEventsCommand({ Entries: entries }));
        await deleteBatch(world, mine);
      }
    };

    const exploring = exploreCrashPoints(replayScenario('planted loss: per-entry PutEvents errors ignored', ignoresEntryErrors));

    await expect(exploring).rejects.toThrow(/partial-failure at call 1 \(PutEvents\): dead letter event-\S+ is lost/);
  });

  test('the harness catches a loss that needs two calls in flight when the process dies', async () => {
    // Put and delete sent together; a failed put is compensated by sending the messages back.
    // A crash with both on the wire applies the delete, never the put, and the compensation never runs.
    const concurrentPutAndDelete = async (world: ReplayWorld) => {
      for (let messages = await receiveBatch(world); messages.length > 0; messages = await receiveBatch(world)) {
        const { entries, mine } = plantedBatch(world, messages);
        if (entries.length === 0) continue;
        const [put] = await Promise.allSettled([
          handlerClients.eventBridge.send(new PutEventsCommand({ Entries: entries })),
          deleteBatch(world, mine),
        ]);
        if (put.status === 'rejected' || (put.value.FailedEntryCount ?? 0) > 0) {
          await handlerClients.sqs.send(new SendMessageBatchCommand({
            QueueUrl: world.dlq.url,
            Entries: mine.map((m, i) => ({ Id: String(i), MessageBody: m.Body!, MessageAttributes: m.MessageAttributes })),
          }));
        }
      }
    };

    const exploring = exploreCrashPoints(replayScenario('planted loss: put and delete in flight together', concurrentPutAndDelete));

    await expect(exploring).rejects.toThrow(/crash at call 1 \(PutEvents\): dead letter event-\S+ is lost/);
  });

  test('two replay runs racing on one queue, in every order fast-check\'s scheduler picks, lose nothing', async () => {
    // Each AWS call of either run waits for the scheduler to let it go.
    let scheduler: fc.Scheduler | undefined;
    for (const client of [handlerClients.sqs, handlerClients.eventBridge]) {
      (client.middlewareStack as { add: (middleware: unknown, options: unknown) => void }).add((next: any, context: any) => async (args: any) => {
        if (scheduler) await scheduler.schedule(Promise.resolve(), `${context.commandName}`);
        return next(args);
      }, { step: 'initialize', name: 'raceScheduler', priority: 'low' });
    }
    let runs = 0;
    await fc.assert(fc.asyncProperty(fc.scheduler(), async (s) => {
      runs++;
      clock.reset();
      const world = await createWorld({ a: 6, b: 5, otherStack: 2, notJson: 1 });
      const run = () => replayDeadLetters(replayDeps(world), { queueUrl: world.dlq.url });
      scheduler = s;
      const both = Promise.all([run(), run()]);
      try {
        await s.waitFor(both);
      } finally {
        scheduler = undefined;
      }
      const [first, second] = await both;
      // SQS may hand one message to both runs (at least once), so together they replay 11 or more.
      expect(first.replayed + second.replayed).toBeGreaterThanOrEqual(11);
      await clock.advance((VISIBILITY_SECONDS + 1) * 1000);
      await run();
      const outcomes = await checkWorld(world);
      expect(outcomes).toMatchObject({ delivered: 11, waiting: 0, parked: 3 });
      expect(outcomes.duplicates).toBe(first.replayed + second.replayed - 11);
    }), { numRuns: 12 });
    expect(runs).toBe(12);
  });
});
