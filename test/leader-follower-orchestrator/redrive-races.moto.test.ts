import { DeleteItemCommand, GetItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import {
  arnOf, curatedEvent, DeadLetterQueueClock, Deployment, deployWithRoutes, drainQueue, dynamoDb, flaky, LambdaSimulator, motoLeader,
  orchestrated, STAMPING_FOLLOWERS, STEP_RESULT_TIMEOUT_MS,
} from './moto-harness';

/**
 * Races between a step's dispatch, its follower's result and the redrive, against moto: a
 * result handled between the leader's Invoke and its markDispatched, a resumed step failing
 * again, an expired run resumed twice, a late copy of an old failure record, and requests the
 * redrive function must refuse. Whatever the order, the event ends delivered or parked, and a
 * parked message can be redriven.
 */

let deployment: Deployment;
beforeEach(async () => {
  deployment = await deployWithRoutes();
});


describe('a follower\'s result handled between the Invoke and markDispatched', () => {
/** A DynamoDB client that runs `hook` just before the markDispatched UpdateItem of `step` (once). */
  function slowMarkDispatched(step: number, hook: () => Promise<void>) {
    let fired = false;
    return {
      send: async (command: any) => {
        if (!fired && command instanceof UpdateItemCommand
        && command.input.UpdateExpression?.startsWith('SET #dispatched')
        && command.input.ExpressionAttributeValues?.[':k']?.N === String(step)) {
          fired = true;
          await hook();
        }
        return dynamoDb.send(command);
      },
    };
  }

  test('normal dispatch: a failure record handled before markDispatched leaves a parked message that a redrive can resume', async () => {
    const render = { down: true };
    const lambda = new LambdaSimulator({ ...STAMPING_FOLLOWERS, render: flaky('render', render) });
    const dlq = new DeadLetterQueueClock(deployment);
    // Another leader invocation (Lambda runs the failure destination concurrently).
    const other = motoLeader(deployment, lambda, { sqs: dlq.client });
    const slow = slowMarkDispatched(2, async () => {
      await lambda.settle(other.leader); // render runs, fails, its failure record reaches the leader
    });
    const { leader, clock } = motoLeader(deployment, lambda, { sqs: dlq.client, dynamoDb: slow });

    await leader.handle(curatedEvent('r1', 'email', { steps: [] }));
    await lambda.settle(leader);
    expect(dlq.sent.map((m) => [m.reason, m.step])).toEqual([['follower-failed', 2]]);

    // The operator fixes render and redrives.
    render.down = false;
    const redriver = motoLeader(deployment, lambda, { sqs: dlq.client, clock });
    const report = await redriver.leader.handle({ redrive: {} });
    await lambda.settle(redriver.leader);
    const delivered = await orchestrated(deployment);
    const left = await drainQueue(deployment.dlqUrl);
    expect({ report: report.redrive, delivered: delivered.map((o) => o.payload.steps), left: left.length }).toEqual({
      report: { received: 1, resumed: 1, reparked: 0, dropped: 0, skipped: 0, failed: 0 },
      delivered: [['enrich', 'render', 'deliver']],
      left: 0,
    });
  });

  test('resumed step: a failure record of the resumed follower handled before markDispatched is not swallowed', async () => {
    const render = { down: true };
    const lambda = new LambdaSimulator({ ...STAMPING_FOLLOWERS, render: flaky('render', render) });
    const dlq = new DeadLetterQueueClock(deployment);
    const { leader, clock } = motoLeader(deployment, lambda, { sqs: dlq.client });
    await leader.handle(curatedEvent('r2', 'email', { steps: [] }));
    await lambda.settle(leader);
    expect(dlq.sent.map((m) => [m.reason, m.step])).toEqual([['follower-failed', 2]]);

    // render is still broken; the operator redrives. The resumed render fails again, and its failure
    // record reaches the leader while the redrive is still between Invoke and markDispatched.
    const other = motoLeader(deployment, lambda, { sqs: dlq.client, clock });
    const slow = slowMarkDispatched(2, async () => {
      await lambda.settle(other.leader);
    });
    const redriver = motoLeader(deployment, lambda, { sqs: dlq.client, dynamoDb: slow, clock });
    const first = await redriver.leader.handle({ redrive: {} });
    await lambda.settle(redriver.leader);

    // Now render is fixed: a second redrive must find the event somewhere.
    render.down = false;
    await dlq.visibilityTimeoutPasses();
    clock.now += 20 * 60_000;
    for (const message of dlq.sent.slice(1)) await dlq.requeue(message); // any new parked message, its delay passed
    const second = await motoLeader(deployment, lambda, { sqs: dlq.client, clock }).leader.handle({ redrive: {} });
    await lambda.settle(leader);
    const delivered = await orchestrated(deployment);
    // The resumed render's failure was parked, not swallowed (the same redrive may pick the new
    // message up at once: it is not delayed), and once render is fixed the event is delivered.
    // One redrive: the old message resumed (its Invoke went out), then the new park of the
    // resumed dispatch's failure, received in the same loop and resumed too.
    expect(first.redrive).toEqual({ received: 2, resumed: 2, reparked: 0, dropped: 0, skipped: 0, failed: 0 });
    expect(dlq.sent.slice(1).map((m) => [m.reason, m.step])).toEqual([['follower-failed', 2], ['follower-failed', 2]]);
    expect(second.redrive).toMatchObject({ resumed: 1, failed: 0 });
    expect(delivered.map((o) => o.payload.steps)).toEqual([['enrich', 'render', 'deliver']]);
    expect(await drainQueue(deployment.dlqUrl)).toEqual([]);
  });
});

describe('an expired run', () => {
  test('progress expired, first resume throttled: the next redrive still resumes the step', async () => {
    const render = { down: true };
    const lambda = new LambdaSimulator({ ...STAMPING_FOLLOWERS, render: flaky('render', render) });
    const dlq = new DeadLetterQueueClock(deployment);
    const { leader, clock } = motoLeader(deployment, lambda, { sqs: dlq.client });
    await leader.handle(curatedEvent('x1', 'email', { steps: [] }));
    await lambda.settle(leader);
    const [parkedMessage] = dlq.sent;
    expect(parkedMessage).toMatchObject({ reason: 'follower-failed', step: 2 });

    // progressTtl passes (min 1 day; the DLQ keeps messages longer): DynamoDB deletes the item.
    clock.now += 2 * 86_400_000;
    await dynamoDb.send(new DeleteItemCommand({ TableName: deployment.progressTable, Key: { runId: { S: parkedMessage.runId } } }));

    render.down = false;
    lambda.throttleNextInvokes(1);
    const first = await leader.handle({ redrive: {} });
    const item = (await dynamoDb.send(new GetItemCommand({ TableName: deployment.progressTable, Key: { runId: { S: parkedMessage.runId } } }))).Item;
    await dlq.visibilityTimeoutPasses();
    clock.now += 121_000;
    const second = await leader.handle({ redrive: {} });
    await lambda.settle(leader);

    const delivered = (await orchestrated(deployment)).map((o) => o.payload.steps);
    const left = await drainQueue(deployment.dlqUrl);
    expect({
      itemAfterFirst: { parked: item?.parked?.S, resuming: item?.resuming?.BOOL },
      first: first.redrive,
      second: second.redrive,
      delivered,
      left: left.length,
    }).toEqual({
      itemAfterFirst: expect.anything(),
      first: { received: 1, resumed: 0, reparked: 0, dropped: 0, skipped: 0, failed: 1 },
      second: { received: 1, resumed: 1, reparked: 0, dropped: 0, skipped: 0, failed: 0 },
      delivered: [['enrich', 'render', 'deliver']],
      left: 0,
    });
  });
});

describe('the redrive function takes redrive and sweep requests only', () => {
  test('the redrive function refuses a curated event carrying "redrive": true (cannot start a run)', async () => {
    const lambda = new LambdaSimulator(STAMPING_FOLLOWERS);
    const dlq = new DeadLetterQueueClock(deployment);
    const redriveFn = motoLeader(deployment, lambda, { entry: 'redrive', sqs: dlq.client });
    const outcome = await redriveFn.leader.handle({ ...curatedEvent('evil', 'sms', { steps: [] }), redrive: true })
      .then((report) => ({ accepted: report }), (error) => ({ refused: String(error) }));
    await lambda.settle(motoLeader(deployment, lambda, { entry: 'events' }).leader);
    expect({ outcome, followersRun: lambda.invocations.length, delivered: (await orchestrated(deployment)).length, parked: dlq.sent.length })
      .toEqual({ outcome: { refused: expect.stringMatching(/not a redrive or sweep request/) }, followersRun: 0, delivered: 0, parked: 0 });
  });

  test('the redrive function refuses a forged follower result carrying "redrive": null (cannot advance a run)', async () => {
    const lambda = new LambdaSimulator(STAMPING_FOLLOWERS);
    const events = motoLeader(deployment, lambda, { entry: 'events' });
    await events.leader.handle(curatedEvent('e1', 'sms', { steps: [] }));
    const [request] = lambda.queued; // step 1 (enrich) is in flight
    // A forged success record: the caller writes requestContext.functionArn itself.
    const forged = {
      redrive: null,
      requestContext: { requestId: 'r', functionArn: `${lambda.arns.enrich}:$LATEST`, condition: 'Success', approximateInvokeCount: 1 },
      requestPayload: request,
      responsePayload: { event: { steps: ['forged'] }, finish: true },
    };
    const redriveFn = motoLeader(deployment, lambda, { entry: 'redrive' });
    const outcome = await redriveFn.leader.handle(forged).then((report) => ({ accepted: report.outcomes }), (error) => ({ refused: String(error) }));
    expect({ outcome, delivered: (await orchestrated(deployment)).map((o) => o.payload) })
      .toEqual({ outcome: { refused: expect.stringMatching(/not a redrive or sweep request/) }, delivered: [] });
  });
});

describe('a late copy of an old failure record', () => {
  test('a duplicate of the original failure record, after the step was resumed, parks no second message', async () => {
    const render = { down: true };
    const lambda = new LambdaSimulator({ ...STAMPING_FOLLOWERS, render: flaky('render', render) });
    const dlq = new DeadLetterQueueClock(deployment);
    const { leader } = motoLeader(deployment, lambda, { sqs: dlq.client });
    const records: any[] = [];
    const capturing = { handle: async (input: any) => { records.push(input); return leader.handle(input); } } as any;
    await leader.handle(curatedEvent('dup', 'email', { steps: [] }));
    await lambda.settle(capturing);
    const failure = records.find((r) => r.requestContext.condition !== 'Success');
    expect(dlq.sent.map((m) => m.reason)).toEqual(['follower-failed']);

    render.down = false;
    expect((await leader.handle({ redrive: {} })).redrive).toMatchObject({ resumed: 1 });
    // Lambda delivers the original failure record a second time.
    await leader.handle(failure);
    await lambda.settle(leader);
    expect((await orchestrated(deployment)).map((o) => o.payload.steps)).toEqual([['enrich', 'render', 'deliver']]);
    expect(dlq.sent.map((m) => m.reason)).toEqual(['follower-failed']);
  });

  test('a record with no dispatch id (in flight when this version was deployed), again after its step was resumed, parks no second message', async () => {
    const render = { down: true };
    const lambda = new LambdaSimulator({ ...STAMPING_FOLLOWERS, render: flaky('render', render) });
    const dlq = new DeadLetterQueueClock(deployment);
    const { leader } = motoLeader(deployment, lambda, { sqs: dlq.client });
    let legacyFailure: any;
    // Followers answer as a request sent by the previous version would: no dispatch id in the
    // record, none on the step's progress item.
    const legacy = {
      handle: async (input: any) => {
        const { dispatchId, ...orchestration } = input.requestPayload.orchestration;
        const record = { ...input, requestPayload: { ...input.requestPayload, orchestration } };
        await dynamoDb.send(new UpdateItemCommand({
          TableName: deployment.progressTable,
          Key: { runId: { S: orchestration.runId } },
          UpdateExpression: 'REMOVE dispatchId',
        }));
        if (record.requestContext.condition !== 'Success') legacyFailure = record;
        return leader.handle(record);
      },
    } as any;
    await leader.handle(curatedEvent('legacy', 'email', { steps: [] }));
    await lambda.settle(legacy);
    expect(dlq.sent.map((m) => m.reason)).toEqual(['follower-failed']);

    render.down = false;
    expect((await leader.handle({ redrive: {} })).redrive).toMatchObject({ resumed: 1 });
    // Lambda delivers the legacy failure record a second time, while the resumed render runs.
    await leader.handle(legacyFailure);
    await lambda.settle(leader);
    expect((await orchestrated(deployment)).map((o) => o.payload.steps)).toEqual([['enrich', 'render', 'deliver']]);
    expect(dlq.sent.map((m) => m.reason)).toEqual(['follower-failed']);
  });
});

describe('a park whose first send failed is sent by Lambda\'s retry, whatever park came before', () => {
  function destination(request: any, outcome: { result?: unknown; error?: string }) {
    const ok = outcome.error === undefined;
    return {
      version: '1.0',
      timestamp: new Date().toISOString(),
      requestContext: {
        requestId: 'r', functionArn: `${arnOf(request.orchestration.follower)}:$LATEST`, condition: ok ? 'Success' : 'RetriesExhausted', approximateInvokeCount: ok ? 1 : 3,
      },
      requestPayload: request,
      responseContext: { statusCode: 200, executedVersion: '$LATEST', ...(ok ? {} : { functionError: 'Unhandled' }) },
      responsePayload: ok ? outcome.result : { errorType: 'Error', errorMessage: outcome.error },
    };
  }

  /** An SQS client whose next SendMessage fails (throttled), as the leader's SDK would see after its retries. */
  function sqsFailingOnce(dlq: DeadLetterQueueClock) {
    let failed = false;
    return {
      send: async (command: any) => {
        if (!failed && command instanceof SendMessageCommand) {
          failed = true;
          throw Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' });
        }
        return dlq.client.send(command);
      },
    };
  }

  async function item(runId: string) {
    const key = { runId: { S: runId } };
    return (await dynamoDb.send(new GetItemCommand({ TableName: deployment.progressTable, Key: key, ConsistentRead: true }))).Item;
  }

  test('resumed step fails fast (before markDispatched) and the first SendMessage of its park fails: Lambda\'s retry must still park it', async () => {
    const render = { down: true };
    const lambda = new LambdaSimulator({ ...STAMPING_FOLLOWERS, render: flaky('render', render) });
    const dlq = new DeadLetterQueueClock(deployment);
    const { leader, clock } = motoLeader(deployment, lambda, { sqs: dlq.client });
    await leader.handle(curatedEvent('ps1', 'email', { steps: [] }));
    await lambda.settle(leader);
    expect(dlq.sent.map((m) => [m.reason, m.step])).toEqual([['follower-failed', 2]]);
    const runId = dlq.sent[0].runId;

    // The redrive resumes step 2; render (still broken) fails at once, and the leader invocation
    // handling that failure record runs between the redrive's Invoke and its markDispatched. Its
    // first SendMessage is throttled (the invocation fails); Lambda retries the invocation.
    let hookRan = false;
    const slow = {
      send: async (command: any) => {
        if (!hookRan && command instanceof UpdateItemCommand && command.input.UpdateExpression?.startsWith('SET #dispatched')
        && command.input.ExpressionAttributeValues?.[':k']?.N === '2') {
          hookRan = true;
          const request = lambda.queued.find((r) => r.step === 2)!;
          const failure = destination(request, { error: 'render is down' });
          const attempt1 = motoLeader(deployment, lambda, { sqs: sqsFailingOnce(dlq), clock }).leader;
          await expect(attempt1.handle(failure)).rejects.toThrow(/Rate exceeded/);
          const attempt2 = motoLeader(deployment, lambda, { sqs: dlq.client, clock }).leader; // Lambda's retry
          await attempt2.handle(failure);
        }
        return dynamoDb.send(command);
      },
    };
    const redriver = motoLeader(deployment, lambda, { sqs: dlq.client, dynamoDb: slow, clock });
    const report = await redriver.leader.handle({ redrive: {} });
    expect(hookRan).toBe(true);
    // The resumed Invoke's own request is consumed (its outcome is the failure handled above).
    lambda.undeliverableResults.add('render');
    await lambda.settle(leader);
    lambda.undeliverableResults.delete('render');

    const after = await item(runId);
    // Render is fixed: the operator redrives until the queue is empty, and sweeps after the stall time.
    render.down = false;
    clock.now += STEP_RESULT_TIMEOUT_MS + 60_000;
    const sweep = await leader.handle({ sweepStalled: {} });
    await dlq.visibilityTimeoutPasses();
    for (const message of dlq.sent.slice(1)) await dlq.requeue(message);
    const second = await leader.handle({ redrive: { maxMessages: 50 } });
    await lambda.settle(leader);
    const delivered = (await orchestrated(deployment)).map((o) => o.payload.steps);
    expect({
      firstRedrive: report.redrive,
      item: {
        step: after?.step?.N, parked: after?.parked?.S !== undefined, parkSent: after?.parkSent?.BOOL, stallAt: after?.stallAt?.N !== undefined,
      },
      parkedMessagesAfterTheFirst: dlq.sent.slice(1).map((m) => [m.reason, m.step]),
      sweep: sweep.sweep,
      secondRedrive: second.redrive,
      delivered,
    }).toMatchObject({
    // Lambda's retry parked the resumed dispatch's failure (a stale parkSent refused it before).
      parkedMessagesAfterTheFirst: expect.arrayContaining([['follower-failed', 2]]),
      delivered: [['enrich', 'render', 'deliver']],
    });
  });

  test('a late result after a stalled park, whose next step is parked (oversized) and whose first SendMessage fails: Lambda\'s retry must still park it', async () => {
  // enrich returns an event too big for the next request.
    const big = 'x'.repeat(6_000);
    const lambda = new LambdaSimulator({ ...STAMPING_FOLLOWERS, enrich: ({ event }) => ({ event: { ...event, big } }) });
    const dlq = new DeadLetterQueueClock(deployment);
    const { leader, clock } = motoLeader(deployment, lambda, { sqs: dlq.client, maxEventBytes: 4_000 });
    await leader.handle(curatedEvent('ps2', 'sms', { steps: [] }));
    const [request] = lambda.queued; // enrich is slow: its result is not back yet

    clock.now += STEP_RESULT_TIMEOUT_MS + 1;
    expect((await leader.handle({ sweepStalled: {} })).sweep).toEqual({ found: 1, parked: 1 });
    expect(dlq.sent.map((m) => [m.reason, m.step])).toEqual([['stalled', 1]]);
    const runId = dlq.sent[0].runId;

    // The late result arrives ("still advances the run"): step 2's request is oversized and is parked,
    // but that invocation's SendMessage is throttled; Lambda retries the invocation.
    const late = destination(request, { result: { event: { steps: [], big } } });
    const attempt1 = motoLeader(deployment, lambda, { sqs: sqsFailingOnce(dlq), clock, maxEventBytes: 4_000 }).leader;
    await expect(attempt1.handle(late)).rejects.toThrow(/Rate exceeded/);
    const attempt2 = motoLeader(deployment, lambda, { sqs: dlq.client, clock, maxEventBytes: 4_000 }).leader;
    const retry = await attempt2.handle(late);
    const after = await item(runId);

    // The operator redrives everything that is parked.
    const redrive = await leader.handle({ redrive: { maxMessages: 50 } });
    expect({
      retryOutcomes: retry.outcomes,
      item: { step: after?.step?.N, parked: after?.parked?.S !== undefined, parkSent: after?.parkSent?.BOOL },
      parkedMessages: dlq.sent.map((m) => [m.reason, m.step]),
      redrive: redrive.redrive,
    }).toEqual({
      retryOutcomes: expect.objectContaining({ parked: 1 }),
      item: { step: '2', parked: true, parkSent: true }, // sent, once the retry parked it
      // The retry's park, then the redrive's repark of it (the cause is not fixed).
      parkedMessages: [['stalled', 1], ['oversized', 2], ['oversized', 2]],
      redrive: expect.objectContaining({ received: 2, dropped: 1, reparked: 1 }), // the stalled copy dropped, the oversized one parked again
    });
  });
});

test('a malformed sweep request fails with what is allowed', async () => {
  const { leader } = motoLeader(deployment, new LambdaSimulator(STAMPING_FOLLOWERS), { entry: 'redrive' });
  await expect(leader.handle({ sweepStalled: { maxItems: -5 } })).rejects.toThrow(/invalid sweep request: .*allowed: \{ "sweepStalled": \{ "maxItems"\?: 1 to 1000/);
  await expect(leader.handle({ sweepStalled: { bogus: true } })).rejects.toThrow(/invalid sweep request/);
});
