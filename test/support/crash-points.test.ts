import { SendMessageBatchCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import { CrashPointScenario, CrashPointViolation, exploreCrashPoints, FakeClock, FaultInjector, invariant } from './crash-points';
import { createMotoQueue, drainMotoQueue, motoClients, MotoQueue, uniqueName } from './moto';
import { asynchronousInvokeRetries, SqsBatch, SqsEvent, SqsEventSource } from './platform';

/** The harness itself: its faults do what they say, its platform models redeliver, and it catches losses. */

const platform = motoClients();
const handlerClients = motoClients();
const injector = new FaultInjector(handlerClients.sqs);
const clock = new FakeClock();

type Queue = MotoQueue;

const createQueue = (prefix: string, attributes: Record<string, string> = {}) => createMotoQueue(platform.sqs, prefix, attributes);
const bodies = (queue: Queue) => drainMotoQueue(platform.sqs, queue.url);

afterAll(() => {
  for (const clients of [platform, handlerClients]) clients.sqs.destroy();
});

describe('FaultInjector', () => {
  const send = (queue: Queue, body: string) => handlerClients.sqs.send(new SendMessageCommand({ QueueUrl: queue.url, MessageBody: body }));

  test('a lost request throws and AWS never saw it', async () => {
    const queue = await createQueue('lost-request');
    const outcome = await injector.invoke(() => send(queue, 'one'), { at: 0, kind: 'lost-request' });
    expect(outcome.ended).toBe('threw');
    expect((outcome as { error: Error }).error.name).toBe('TimeoutError');
    expect(await bodies(queue)).toEqual([]);
  });

  test('a lost answer throws after AWS applied the call', async () => {
    const queue = await createQueue('lost-answer');
    const outcome = await injector.invoke(() => send(queue, 'one'), { at: 0, kind: 'lost-answer' });
    expect(outcome.ended).toBe('threw');
    expect(await bodies(queue)).toEqual(['one']);
  });

  test('a crash stops the invocation there: that call and every later one never happen, even ones already scheduled', async () => {
    const queue = await createQueue('crash');
    let settled = false;
    const outcome = await injector.invoke(async () => {
      await send(queue, 'first');
      const late = new Promise((r) => setTimeout(r, 20)).then(() => send(queue, 'scheduled before the crash'));
      await send(queue, 'second');
      await late;
      settled = true;
    }, { at: 1, kind: 'crash' });
    await new Promise((r) => setTimeout(r, 100));
    expect(outcome.ended).toBe('crashed');
    expect(settled).toBe(false);
    expect(await bodies(queue)).toEqual(['first']);
    expect(outcome.calls.map((c) => c.command)).toEqual(['SendMessageCommand', 'SendMessageCommand']);
  });

  test('calls outside an invocation are never faulted or recorded', async () => {
    const queue = await createQueue('outside');
    await send(queue, 'setup');
    expect(await bodies(queue)).toEqual(['setup']);
  });
});

describe('SqsEventSource under the harness', () => {
  interface World {
    readonly source: Queue;
    readonly dlq: Queue;
    readonly output: Queue;
    readonly inputs: string[];
    readonly mapping: SqsEventSource;
    batch?: SqsBatch;
  }

  async function world(): Promise<World> {
    clock.reset();
    const dlq = await createQueue('source-dlq');
    const source = await createQueue('source', {
      VisibilityTimeout: '30',
      RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlq.arn, maxReceiveCount: 3 }),
    });
    const output = await createQueue('output');
    const inputs = Array.from({ length: 4 }, (_, i) => `record-${i}-${uniqueName('r')}`);
    for (const body of inputs) await platform.sqs.send(new SendMessageCommand({ QueueUrl: source.url, MessageBody: body }));
    const mapping = new SqsEventSource(platform.sqs, injector, clock, {
      queueUrl: source.url, queueArn: source.arn, visibilityTimeoutSeconds: 30, batchSize: 2, reportBatchItemFailures: true,
    });
    return { source, dlq, output, inputs, mapping };
  }

  type Consumer = (w: World) => (event: SqsEvent) => Promise<unknown>;

  /** A consumer that copies each record to an output queue and reports the ones it could not copy. */
  const careful: Consumer = (w) => async (event) => {
    const batchItemFailures: { itemIdentifier: string }[] = [];
    for (const record of event.Records) {
      try {
        await handlerClients.sqs.send(new SendMessageCommand({ QueueUrl: w.output.url, MessageBody: record.body }));
      } catch {
        batchItemFailures.push({ itemIdentifier: record.messageId });
      }
    }
    return { batchItemFailures };
  };

  /** The same consumer, but it swallows a failed copy and reports success: a planted loss. */
  const careless: Consumer = (w) => async (event) => {
    for (const record of event.Records) {
      await handlerClients.sqs.send(new SendMessageCommand({ QueueUrl: w.output.url, MessageBody: record.body })).catch(() => undefined);
    }
    return { batchItemFailures: [] };
  };

  function scenario(name: string, consumer: Consumer): CrashPointScenario<World> {
    return {
      name,
      injector,
      setup: world,
      // The mapping's first batch is the faulted invocation (the poll itself is the platform's, never faulted).
      invoke: async (w) => {
        w.batch = await w.mapping.poll();
        return consumer(w)(w.batch!.event);
      },
      redeliver: async (w, first) => {
        await w.mapping.settle(w.batch!, first);
        await w.mapping.drain(consumer(w));
      },
      check: async (w) => {
        const delivered = await bodies(w.output);
        const parked = await bodies(w.dlq);
        for (const input of w.inputs) {
          invariant(delivered.includes(input) || parked.includes(input), `${input} is lost: neither delivered nor in the DLQ`);
        }
        return {
          delivered: w.inputs.filter((i) => delivered.includes(i)).length,
          waiting: 0,
          parked: w.inputs.filter((i) => parked.includes(i) && !delivered.includes(i)).length,
          duplicates: delivered.length - new Set(delivered).size,
        };
      },
    };
  }

  test('a consumer that reports its failed records loses nothing: each is delivered or, after 3 receives, in the DLQ', async () => {
    const report = await exploreCrashPoints(scenario('harness self-test: careful SQS consumer, 4 records in batches of 2', careful));
    expect(report.cleanCalls).toEqual(['SendMessage', 'SendMessage']);
    expect(report.crashPoints).toBe(6);
    for (const t of report.trials) expect(t.outcomes.delivered).toBe(4);
    // A lost answer makes a copied record fail, so it is copied again; a crash repeats the copies made before it.
    const duplicates = Object.fromEntries(report.trials.map((t) => [`${t.kind}@${t.at}`, t.outcomes.duplicates]));
    expect(duplicates).toEqual({
      'lost-request@0': 0,
      'lost-answer@0': 1,
      'crash@0': 0,
      'lost-request@1': 0,
      'lost-answer@1': 1,
      'crash@1': 1,
    });
  });

  test('the harness catches a consumer that swallows a failed copy', async () => {
    const exploring = exploreCrashPoints(scenario('harness self-test: careless SQS consumer', careless));
    await expect(exploring).rejects.toThrow(CrashPointViolation);
    await expect(exploring).rejects.toThrow(/lost-request at call 0 \(SendMessage\): record-0-\S+ is lost: neither delivered nor in the DLQ/);
  });

  test('records that keep failing reach the queue\'s DLQ after maxReceiveCount receives, and are counted as parked', async () => {
    const w = await world();
    const failing = async (event: SqsEvent) => ({ batchItemFailures: event.Records.map((r) => ({ itemIdentifier: r.messageId })) });
    const outcomes = await w.mapping.drain(failing);
    expect(outcomes).toHaveLength(6); // 2 batches x 3 receives
    expect((await bodies(w.dlq)).sort()).toEqual([...w.inputs].sort());
    expect(await bodies(w.output)).toEqual([]);
  });
});

describe('asynchronousInvokeRetries', () => {
  test('retries a failed invocation twice, then hands the last failure to the on-failure destination', async () => {
    let invocations = 0;
    const failures: string[] = [];
    const failing = async () => {
      invocations++;
      throw new Error(`attempt ${invocations}`);
    };
    const first = await injector.invoke(failing);
    const last = await asynchronousInvokeRetries(injector, first, failing, async (o) => {
      failures.push(o.ended === 'threw' ? (o.error as Error).message : o.ended);
    });
    expect(invocations).toBe(3);
    expect(last.ended).toBe('threw');
    expect(failures).toEqual(['attempt 3']);
  });

  test('stops retrying once an invocation returns', async () => {
    let invocations = 0;
    const flaky = async () => {
      invocations++;
      if (invocations === 1) throw new Error('once');
      return 'ok';
    };
    const onFailure = jest.fn();
    const last = await asynchronousInvokeRetries(injector, await injector.invoke(flaky), flaky, onFailure);
    expect(last).toMatchObject({ ended: 'returned', value: 'ok' });
    expect(invocations).toBe(2);
    expect(onFailure).not.toHaveBeenCalled();
  });
});

describe('FaultInjector: concurrent calls and partial failures', () => {
  const send = (queue: Queue, body: string) => handlerClients.sqs.send(new SendMessageCommand({ QueueUrl: queue.url, MessageBody: body }));

  test('a crash lets the calls sent in the same turn reach AWS (they were on the wire), and no answer returns', async () => {
    const queue = await createQueue('crash-concurrent');
    let answered = 0;
    const outcome = await injector.invoke(async () => {
      await Promise.all([send(queue, 'crashing'), send(queue, 'concurrent').then(() => answered++)]);
      await send(queue, 'after');
    }, { at: 0, kind: 'crash' });
    expect(outcome.ended).toBe('crashed');
    expect(await bodies(queue)).toEqual(['concurrent']);
    expect(answered).toBe(0);
  });

  test('a partial failure applies every other entry and reports the others failed (first, third, ...)', async () => {
    const queue = await createQueue('partial');
    const outcome = await injector.invoke(() => handlerClients.sqs.send(new SendMessageBatchCommand({
      QueueUrl: queue.url, Entries: ['a', 'b', 'c', 'd'].map((body) => ({ Id: body, MessageBody: body })),
    })), { at: 0, kind: 'partial-failure' });
    expect(outcome.ended).toBe('returned');
    const answer = (outcome as { value: { Successful?: { Id?: string }[]; Failed?: { Id?: string; Code?: string }[] } }).value;
    expect(answer.Successful?.map((e) => e.Id)).toEqual(['b', 'd']);
    expect(answer.Failed?.map((f) => [f.Id, f.Code])).toEqual([['a', 'InternalError'], ['c', 'InternalError']]);
    expect((await bodies(queue)).sort()).toEqual(['b', 'd']);
  });

  test('a partial failure of a call that is not a batch is refused, not silently skipped', async () => {
    const queue = await createQueue('partial-single');
    const outcome = await injector.invoke(() => send(queue, 'one'), { at: 0, kind: 'partial-failure' });
    expect(outcome.ended).toBe('threw');
    expect((outcome as { error: Error }).error.message).toBe('partial-failure injected into SendMessageCommand, which is not a batch call');
  });
});
