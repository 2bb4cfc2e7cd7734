import { DeleteItemCommand } from '@aws-sdk/client-dynamodb';
import {
  curatedEvent, DeadLetterQueueClock, Deployment, deployWithRoutes, drainQueue, dynamoDb, failingPutEvents, flaky, LambdaSimulator,
  motoLeader, orchestrated, STAMPING_FOLLOWERS, STEP_RESULT_TIMEOUT_MS,
} from './moto-harness';
import { deterministicId } from '../../src/runtime/curated-envelope';

/**
 * The redrive's own failures, against moto: whatever goes wrong while a parked event is being
 * resumed, the event ends delivered or parked again, never deleted as "resumed".
 */

const FOLLOWERS = STAMPING_FOLLOWERS;

let deployment: Deployment;
beforeEach(async () => {
  deployment = await deployWithRoutes();
});


describe('a redrive whose dispatch fails leaves the message for the next redrive', () => {
  test('the Invoke of the resumed step is throttled: the next redrive (after the visibility timeout) dispatches it', async () => {
    const render = { down: true };
    const lambda = new LambdaSimulator({ ...FOLLOWERS, render: flaky('render', render) });
    const dlq = new DeadLetterQueueClock(deployment);
    const { leader, clock } = motoLeader(deployment, lambda, { sqs: dlq.client });
    await leader.handle(curatedEvent('t1', 'email', { steps: [] }));
    await lambda.settle(leader);
    render.down = false;

    lambda.throttleNextInvokes(1);
    const first = await leader.handle({ redrive: {} });
    await dlq.visibilityTimeoutPasses();
    clock.now += 121_000;
    const second = await leader.handle({ redrive: {} });
    await lambda.settle(leader);

    expect((await orchestrated(deployment)).map((o) => o.payload.steps)).toEqual([['enrich', 'render', 'deliver']]);
    expect(first.redrive).toEqual({ received: 1, resumed: 0, reparked: 0, dropped: 0, skipped: 0, failed: 1 });
    expect(second.redrive).toEqual({ received: 1, resumed: 1, reparked: 0, dropped: 0, skipped: 0, failed: 0 });
    expect(await drainQueue(deployment.dlqUrl)).toEqual([]);
  });

  test('the resumed FINISH is throttled by EventBridge: the next redrive puts the record on the bus', async () => {
    const lambda = new LambdaSimulator(FOLLOWERS);
    const dlq = new DeadLetterQueueClock(deployment);
    const throttles = { remaining: 0 };
    const { leader, clock } = motoLeader(deployment, lambda, { sqs: dlq.client, eventBridge: failingPutEvents(throttles) });
    await leader.handle(curatedEvent('f1', 'sms', { steps: [] }));
    // The run's progress expires (TTL) while its last follower runs: its result is out of order, parked at FINISH.
    const runId = deterministicId('orchestrator-1', 'tenant-a', 'f1', 'sms', '0');
    await lambda.settle({
      handle: async (input: unknown) => {
        if ((input as any).requestPayload?.step === 2) {
          await dynamoDb.send(new DeleteItemCommand({ TableName: deployment.progressTable, Key: { runId: { S: runId } } }));
        }
        return leader.handle(input);
      },
    } as any);
    expect(dlq.sent.map((m) => [m.reason, m.step])).toEqual([['out-of-order', 3]]);

    // PutEvents is throttled through all of putEventsReliably's attempts.
    throttles.remaining = 4;
    const first = await leader.handle({ redrive: {} });
    await dlq.visibilityTimeoutPasses();
    clock.now += 121_000;
    const second = await leader.handle({ redrive: {} });

    expect((await orchestrated(deployment)).map((o) => o.payload.steps)).toEqual([['enrich', 'deliver']]);
    expect(first.redrive).toMatchObject({ received: 1, resumed: 0, failed: 1 });
    expect(second.redrive).toMatchObject({ received: 1, resumed: 1, failed: 0 });
  });
});

describe('an event whose cause is not fixed is parked again by its redrive, with a token that resumes it later', () => {
  interface Case {
    readonly reason: string;
    readonly step: number;
    /** Runs the event into its park; returns the leader that redrives (nothing fixed). */
    park(dlq: DeadLetterQueueClock): Promise<ReturnType<typeof motoLeader>>;
    /** The redriving leader once the cause is fixed. */
    fixed(dlq: DeadLetterQueueClock): Fixed;
  }
  type Fixed = ReturnType<typeof motoLeader> & { lambda: LambdaSimulator };
  const fixedLeader = (dlq: DeadLetterQueueClock, options: Parameters<typeof motoLeader>[2] = {}): Fixed => {
    const lambda = new LambdaSimulator(FOLLOWERS);
    return { ...motoLeader(deployment, lambda, { ...options, sqs: dlq.client }), lambda };
  };
  const big = (request: any) => ({ event: { ...request.event, blob: 'x'.repeat(3000) } });
  const cases: Case[] = [
    {
      reason: 'oversized',
      step: 2,
      park: async (dlq) => {
        const lambda = new LambdaSimulator({ ...FOLLOWERS, enrich: big });
        const setup = motoLeader(deployment, lambda, { sqs: dlq.client, maxEventBytes: 2048 });
        await setup.leader.handle(curatedEvent('c', 'email', { steps: [] }));
        await lambda.settle(setup.leader);
        return setup;
      },
      fixed: (dlq) => fixedLeader(dlq, { maxEventBytes: 8192 }),
    },
    {
      reason: 'unregistered-follower',
      step: 2,
      park: async (dlq) => {
        // A deploy removes the renderer while the run is at step 1.
        const lambda = new LambdaSimulator(FOLLOWERS);
        const before = motoLeader(deployment, lambda, { sqs: dlq.client });
        await before.leader.handle(curatedEvent('c', 'email', { steps: [] }));
        const { render: _removed, ...remaining } = lambda.arns;
        const after = motoLeader(deployment, lambda, { sqs: dlq.client, followers: remaining });
        await lambda.settle(after.leader);
        return after;
      },
      fixed: (dlq) => fixedLeader(dlq),
    },
    {
      reason: 'hop-limit',
      step: 2,
      park: async (dlq) => {
        // The hop limit is lowered by a deploy while the run is at step 1.
        const lambda = new LambdaSimulator(FOLLOWERS);
        const before = motoLeader(deployment, lambda, { sqs: dlq.client });
        await before.leader.handle(curatedEvent('c', 'email', { steps: [] }));
        const after = motoLeader(deployment, lambda, { sqs: dlq.client, maxHops: 1 });
        await lambda.settle(after.leader);
        return after;
      },
      fixed: (dlq) => fixedLeader(dlq),
    },
    {
      reason: 'publish-failed',
      step: 4,
      park: async (dlq) => {
        // EventBridge rejects the processed record (an entry error it does not clear on retry): parked at FINISH.
        const lambda = new LambdaSimulator(FOLLOWERS);
        const setup = motoLeader(deployment, lambda, { sqs: dlq.client, eventBridge: failingPutEvents({ remaining: 2 }, 'MalformedDetail') });
        await setup.leader.handle(curatedEvent('c', 'email', { steps: [] }));
        await lambda.settle(setup.leader);
        return setup;
      },
      fixed: (dlq) => fixedLeader(dlq),
    },
  ];

  test.each(cases.map((c) => [`${c.reason} at step ${c.step}`, c] as const))('%s', async (_name, c) => {
    const dlq = new DeadLetterQueueClock(deployment);
    const { leader, clock } = await c.park(dlq);
    expect(dlq.sent.map((m) => [m.reason, m.step])).toEqual([[c.reason, c.step]]);

    const report = await leader.handle({ redrive: {} });
    expect(report.redrive).toEqual({ received: 1, resumed: 0, reparked: 1, dropped: 0, skipped: 0, failed: 0 });
    const [original, again] = dlq.sent;
    expect(again).toMatchObject({ reason: c.reason, step: c.step, runId: original.runId, record: original.record, delaySeconds: 900 });
    expect(again.parkToken).not.toBe(original.parkToken);
    // Nothing was delivered, and the old message is gone (only the new one, delayed, is left).
    expect(await orchestrated(deployment)).toEqual([]);
    expect(await drainQueue(deployment.dlqUrl)).toEqual([]);

    // The old message again (SQS delivered it twice, or the redrive died before deleting it):
    // the new message holds the step, so this one is dropped, and nothing new is parked.
    await dlq.requeue(original);
    clock.now += 121_000;
    expect((await leader.handle({ redrive: {} })).redrive).toEqual({ received: 1, resumed: 0, reparked: 0, dropped: 1, skipped: 0, failed: 0 });
    expect(dlq.sent).toHaveLength(2);

    // The new message resumes the step once its cause is fixed.
    const fixed = c.fixed(dlq);
    await dlq.requeue(again);
    expect((await fixed.leader.handle({ redrive: {} })).redrive).toEqual({ received: 1, resumed: 1, reparked: 0, dropped: 0, skipped: 0, failed: 0 });
    await fixed.lambda.settle(fixed.leader);
    expect((await orchestrated(deployment)).map((o) => o.id)).toEqual(['c']);
  });
});

describe('a redrive by filter resumes only the messages it names', () => {
  test('by reason, channel and run id; the others are skipped and stay in the queue', async () => {
    const deliver = { down: true };
    const lambda = new LambdaSimulator({ ...FOLLOWERS, deliver: flaky('deliver', deliver) });
    const dlq = new DeadLetterQueueClock(deployment);
    const { leader, clock } = motoLeader(deployment, lambda, { sqs: dlq.client });
    await leader.handle(curatedEvent('e1', 'email', { steps: [] }));
    await leader.handle(curatedEvent('s1', 'sms', { steps: [] }));
    await leader.handle(curatedEvent('s2', 'sms', { steps: [] }));
    await leader.handle(curatedEvent('p1', 'push', { steps: [] }));
    await lambda.settle(leader);
    expect(dlq.sent.map((m) => [m.reason, m.record.id]).sort()).toEqual([
      ['follower-failed', 'e1'], ['follower-failed', 's1'], ['follower-failed', 's2'], ['unknown-channel', 'p1'],
    ]);
    deliver.down = false;
    const s2 = dlq.sent.find((m) => m.record.id === 's2');

    const byRun = await leader.handle({ redrive: { runId: s2.runId } });
    expect(byRun.redrive).toEqual({ received: 4, resumed: 1, reparked: 0, dropped: 0, skipped: 3, failed: 0 });
    await dlq.visibilityTimeoutPasses();
    clock.now += 121_000;
    const bySmsFailures = await leader.handle({ redrive: { reason: 'follower-failed', channel: 'sms' } });
    expect(bySmsFailures.redrive).toEqual({ received: 3, resumed: 1, reparked: 0, dropped: 0, skipped: 2, failed: 0 });
    await lambda.settle(leader);
    expect((await orchestrated(deployment)).map((o) => o.id).sort()).toEqual(['s1', 's2']);

    // The skipped ones are still in the queue, for a redrive that names them.
    await dlq.visibilityTimeoutPasses();
    expect((await drainQueue(deployment.dlqUrl)).map((m) => m.record.id).sort()).toEqual(['e1', 'p1']);
  });

  test.each([
    [{ maxMessages: 0 }, /maxMessages is 0/],
    [{ maxMessages: 1001 }, /maxMessages is 1001/],
    [{ reason: 7 }, /reason is 7/],
    [{ channel: '' }, /channel is ""/],
    [{ tenant: 'a' }, /unknown field "tenant"/],
  ])('a malformed request %j fails with what is allowed, and receives nothing', async (request, error) => {
    const dlq = new DeadLetterQueueClock(deployment);
    const { leader } = motoLeader(deployment, new LambdaSimulator(FOLLOWERS), { sqs: dlq.client });
    await leader.handle(curatedEvent('p1', 'push'));
    const attempt = leader.handle({ redrive: request });
    await expect(attempt).rejects.toThrow(error);
    await expect(attempt).rejects.toThrow(/allowed: \{ "redrive": \{ "maxMessages"\?: 1 to 1000/);
    expect(await drainQueue(deployment.dlqUrl)).toHaveLength(1);
  });
});

describe('a follower result is accepted only from the follower of the step it claims', () => {
  /** The destination record of step 1 of a run, as Lambda would send it for `sender`. */
  async function stepOneRecord(sender: string) {
    const lambda = new LambdaSimulator(FOLLOWERS);
    const dlq = new DeadLetterQueueClock(deployment);
    const setup = motoLeader(deployment, lambda, { sqs: dlq.client });
    await setup.leader.handle(curatedEvent('x1', 'email', { steps: [] }));
    const [request] = lambda.queued;
    const record = {
      version: '1.0',
      timestamp: '2026-11-22T10:00:01.000Z',
      requestContext: { requestId: 'r', functionArn: `${lambda.arns[sender]}:$LATEST`, condition: 'Success', approximateInvokeCount: 1 },
      requestPayload: request,
      responseContext: { statusCode: 200, executedVersion: '$LATEST' },
      responsePayload: { event: { steps: ['forged'] } },
    };
    return { ...setup, lambda, dlq, record };
  }

  test('a record claiming step 1 (enrich) sent by deliver is parked as invalid input, and the run is not advanced', async () => {
    const { leader, lambda, dlq, record } = await stepOneRecord('deliver');
    const before = lambda.queued.length;
    await leader.handle(record);
    expect(lambda.queued).toHaveLength(before);
    expect(dlq.sent).toEqual([expect.objectContaining({ reason: 'invalid-input', step: 1, channel: 'email' })]);
    expect(dlq.sent[0].message).toMatch(/sent by .*function:deliver:\$LATEST.*step 1 of the route is follower "enrich" \(.*function:enrich\)/);
  });

  test('the same record from enrich itself (any qualifier of its ARN) advances the run', async () => {
    const { leader, lambda, dlq, record } = await stepOneRecord('enrich');
    await leader.handle(record);
    expect(lambda.queued.map((r) => [r.orchestration.follower, r.step])).toEqual([['enrich', 1], ['render', 2]]);
    expect(dlq.sent).toEqual([]);
  });
});

describe('the leader and the redrive function take only their own requests', () => {
  test('the leader refuses a redrive request, and leaves the queue alone', async () => {
    const dlq = new DeadLetterQueueClock(deployment);
    const { leader } = motoLeader(deployment, new LambdaSimulator(FOLLOWERS), { sqs: dlq.client, entry: 'events' });
    await leader.handle(curatedEvent('p1', 'push'));
    await expect(leader.handle({ redrive: {} })).rejects.toThrow(/the leader does not take redrive requests; invoke the orchestrator's redrive function/);
    expect(await drainQueue(deployment.dlqUrl)).toHaveLength(1);
  });

  test('the redrive function refuses a curated event and a follower result: it cannot be used to start or advance a run', async () => {
    const lambda = new LambdaSimulator(FOLLOWERS);
    const { leader } = motoLeader(deployment, lambda, { entry: 'redrive' });
    await expect(leader.handle(curatedEvent('e1', 'email'))).rejects.toThrow(/the redrive function takes \{ "redrive": .* \} only, got/);
    const { leader: events } = motoLeader(deployment, lambda, { entry: 'events' });
    await events.handle(curatedEvent('e2', 'email'));
    const [request] = lambda.queued;
    const result = { requestContext: { condition: 'Success', functionArn: lambda.arns.enrich }, requestPayload: request, responsePayload: { event: {} } };
    await expect(leader.handle(result)).rejects.toThrow(/the redrive function takes/);
    expect(lambda.queued).toHaveLength(1);
  });
});

describe('a step whose result never comes back is found by the sweep and parked, and a redrive runs it again', () => {
  test('a result Lambda cannot return (over its payload limit): stalled after the step\'s time, parked with the step\'s event, then delivered', async () => {
    const lambda = new LambdaSimulator(FOLLOWERS);
    lambda.undeliverableResults.add('render');
    const dlq = new DeadLetterQueueClock(deployment);
    const { leader, clock } = motoLeader(deployment, lambda, { sqs: dlq.client });
    await leader.handle(curatedEvent('st', 'email', { steps: [] }));
    await lambda.settle(leader);
    expect(await orchestrated(deployment)).toEqual([]);

    // Not yet: the result may still come (the follower's event age and its last attempt).
    clock.now += STEP_RESULT_TIMEOUT_MS - 60_000;
    expect((await leader.handle({ sweepStalled: {} })).sweep).toEqual({ found: 0, parked: 0 });
    clock.now += 120_000;
    expect((await leader.handle({ sweepStalled: {} })).sweep).toEqual({ found: 1, parked: 1 });
    expect(dlq.sent).toEqual([expect.objectContaining({
      reason: 'stalled', step: 2, follower: 'render', channel: 'email', record: expect.objectContaining({ id: 'st', payload: { steps: ['enrich'] } }),
    })]);
    expect(dlq.sent[0].message).toMatch(/step 2 \(follower "render"\) was dispatched at .* and no result came back/);
    // A second sweep finds nothing: the step is parked, no longer awaited.
    expect((await leader.handle({ sweepStalled: {} })).sweep).toEqual({ found: 0, parked: 0 });

    lambda.undeliverableResults.delete('render');
    expect((await leader.handle({ redrive: {} })).redrive).toMatchObject({ received: 1, resumed: 1 });
    await lambda.settle(leader);
    expect((await orchestrated(deployment)).map((o) => o.payload.steps)).toEqual([['enrich', 'render', 'deliver']]);
  });

  test('a slow result that arrives after the sweep parked its step still advances the run; the stalled message is then dropped', async () => {
    const lambda = new LambdaSimulator(FOLLOWERS);
    const dlq = new DeadLetterQueueClock(deployment);
    const { leader, clock } = motoLeader(deployment, lambda, { sqs: dlq.client });
    await leader.handle(curatedEvent('slow', 'sms', { steps: [] }));
    clock.now += STEP_RESULT_TIMEOUT_MS + 1;
    expect((await leader.handle({ sweepStalled: {} })).sweep).toEqual({ found: 1, parked: 1 });
    await lambda.settle(leader);
    expect((await orchestrated(deployment)).map((o) => o.id)).toEqual(['slow']);
    expect((await leader.handle({ redrive: {} })).redrive).toMatchObject({ received: 1, dropped: 1 });
    expect(lambda.invocations.filter((i) => i.follower === 'enrich')).toHaveLength(1);
  });
});
