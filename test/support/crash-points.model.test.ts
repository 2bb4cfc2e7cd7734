import {
  ChangeMessageVisibilityBatchCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  SendMessageBatchRequestEntry,
  SendMessageCommand,
} from '@aws-sdk/client-sqs';
import { CrashPointScenario, CrashPointViolation, exploreCrashPoints, FakeClock, FaultInjector, invariant } from '../support/crash-points';
import { createMotoQueue, drainMotoQueue, motoClients, MotoQueue, uniqueName } from '../support/moto';
import { SqsVisibility, synchronousCallerRetries } from '../support/platform';

/**
 * The harness's model of AWS where it once differed from AWS: a batch entry SQS reports failed
 * changed nothing, and a partial failure is not always the first entry.
 */

const platform = motoClients();
const handlerClients = motoClients();
const injector = new FaultInjector(handlerClients.sqs);
const clock = new FakeClock();
// eslint-disable-next-line no-new
new SqsVisibility(injector, clock, platform.sqs);

afterAll(() => {
  for (const clients of [platform, handlerClients]) clients.sqs.destroy();
});

async function visibleBodies(queue: MotoQueue): Promise<string[]> {
  const { Messages } = await platform.sqs.send(new ReceiveMessageCommand({ QueueUrl: queue.url, MaxNumberOfMessages: 10, VisibilityTimeout: 600 }));
  return (Messages ?? []).map((m) => m.Body!);
}

describe('SqsVisibility and a ChangeMessageVisibilityBatch that failed in part', () => {
  /**
   * "The result of the action on each message is reported individually in the response"
   * (ChangeMessageVisibilityBatch API reference): an entry reported in Failed did not change
   * its message's visibility; the message keeps the timeout it had.
   */
  async function receiveThenChange(visibilityAtReceive: number, changeTo: number): Promise<{ queue: MotoQueue; body: string }> {
    clock.reset();
    const queue = await createMotoQueue(platform.sqs, 'r2-visibility');
    const body = uniqueName('body');
    await platform.sqs.send(new SendMessageCommand({ QueueUrl: queue.url, MessageBody: body }));
    const outcome = await injector.invoke(async () => {
      const { Messages } = await handlerClients.sqs.send(new ReceiveMessageCommand({
        QueueUrl: queue.url, MaxNumberOfMessages: 1, VisibilityTimeout: visibilityAtReceive,
      }));
      const response = await handlerClients.sqs.send(new ChangeMessageVisibilityBatchCommand({
        QueueUrl: queue.url,
        Entries: Messages!.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle!, VisibilityTimeout: changeTo })),
      }));
      return response.Failed?.length ?? 0;
    }, { at: 1, kind: 'partial-failure' });
    // The handler was told its only entry failed: AWS did not apply it.
    expect(outcome).toMatchObject({ ended: 'returned', value: 1 });
    return { queue, body };
  }

  test('an extension that failed does not keep the message hidden past its original timeout', async () => {
    const { queue, body } = await receiveThenChange(30, 600);
    await clock.advance(31_000);
    // In SQS the message is visible again after 30 s: the failed extension changed nothing.
    // The model recorded the failed entry's 600 s and dropped the 30 s timer, so a handler
    // whose extension failed unnoticed (and whose work is then redelivered) looks safe.
    expect(await visibleBodies(queue)).toEqual([body]);
  });

  test('a release that failed does not make the message visible at once', async () => {
    const { queue } = await receiveThenChange(900, 0);
    await clock.advance(1_000);
    // In SQS the message stays hidden for its 900 s; the model makes it visible now, so a
    // handler that ignores a failed release (as replay's release does) is never caught.
    expect(await visibleBodies(queue)).toEqual([]);
  });
});

describe('partial-failure always fails the first entry', () => {
  interface World {
    readonly output: MotoQueue;
    readonly inputs: string[];
  }

  /**
   * A handler with a common bug: it assumes PutEvents / SQS batch failures come first, and
   * retries `entries.slice(0, failedCount)`. AWS can fail any entry of a batch ("Because the
   * batch request can result in a combination of successful and unsuccessful actions, you
   * should check for batch errors": SendMessageBatch API reference); the handler loses the
   * failed entry whenever it is not at the front.
   */
  async function frontRetrier(w: World): Promise<void> {
    let entries: SendMessageBatchRequestEntry[] = w.inputs.map((body, i) => ({ Id: String(i), MessageBody: body }));
    for (let attempt = 0; attempt < 3 && entries.length > 0; attempt++) {
      const response = await handlerClients.sqs.send(new SendMessageBatchCommand({ QueueUrl: w.output.url, Entries: entries }));
      entries = entries.slice(0, response.Failed?.length ?? 0);
    }
  }

  const scenario: CrashPointScenario<World> = {
    name: 'harness self-test: a batch sender that retries only the front of the batch',
    injector,
    kinds: ['partial-failure'],
    setup: async () => ({
      output: await createMotoQueue(platform.sqs, 'r2-front'),
      inputs: Array.from({ length: 3 }, (_, i) => uniqueName(`input-${i}`)),
    }),
    invoke: (w) => frontRetrier(w),
    redeliver: async (w, first) => {
      await synchronousCallerRetries(injector, first, () => frontRetrier(w));
    },
    check: async (w) => {
      const delivered = await drainMotoQueue(platform.sqs, w.output.url);
      for (const input of w.inputs) invariant(delivered.includes(input), `${input} is lost`);
      return { delivered: w.inputs.length, waiting: 0, parked: 0, duplicates: delivered.length - new Set(delivered).size };
    },
  };

  test('the harness catches a handler that mishandles a failed entry that is not the first', async () => {
    // A partial failure fails entries 0, 2, 4, ...: retrying `slice(0, failed.length)` misses one.
    await expect(exploreCrashPoints(scenario)).rejects.toThrow(CrashPointViolation);
  });
});
