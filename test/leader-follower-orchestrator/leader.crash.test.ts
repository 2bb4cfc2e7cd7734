import { DeleteItemCommand, ScanCommand } from '@aws-sdk/client-dynamodb';
import { PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { LambdaClient } from '@aws-sdk/client-lambda';
import { ChangeMessageVisibilityCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import {
  arnOf, curatedEvent, deployWithRoutes, Deployment, drainQueue, flaky, FollowerHandler, LambdaSimulator, motoLeader, orchestrated, sqs,
  STAMPING_FOLLOWERS, STEP_RESULT_TIMEOUT_MS,
} from './moto-harness';
import { FOLLOWERS_ITEM_KEY } from '../../src/leader-follower-orchestrator/orchestrator-contract';
import { DynamoRouteStore } from '../../src/leader-follower-orchestrator/route-store-core';
import { handleRoutesResource, handleRouteWriteRequest } from '../../src/leader-follower-orchestrator/route-writer-core';
import { exploreCrashPoints, FaultInjector, invariant, InvocationOutcome } from '../support/crash-points';
import { motoClients } from '../support/moto';

/**
 * The leader and its redrive under the crash-point harness, against moto (DynamoDB, SQS,
 * EventBridge) with Lambda simulated through a real LambdaClient: every AWS call of one
 * invocation fails in turn as a lost request, a lost answer and a crash.
 *
 * The platform then does what AWS does: an asynchronous invocation that failed or died is
 * retried twice (a minute, then two, later), and after that Lambda's on-failure destination
 * puts the invocation record in the leader's dead-letter queue. A redrive is the operator's:
 * after a failed one, they run it again.
 *
 * Invariant: once the followers have run and the operator has redriven the dead-letter queue
 * until it is empty (the cause of a park fixed first), the record was put on the curated bus,
 * and nothing is left in the queue. Nothing is lost, whatever failed where.
 */

const handlerClients = motoClients();
const injector = new FaultInjector(handlerClients.dynamoDb, handlerClients.sqs, handlerClients.eventBridge);
const OPERATOR_ROUNDS = 5;

interface World {
  readonly deployment: Deployment;
  readonly lambda: LambdaSimulator;
  readonly lambdaClient: LambdaClient;
  readonly clock: { now: number };
  /** Receipt handles of messages a faulted invocation received (hidden for 2 minutes in moto's real time). */
  readonly received: string[];
  /** Messages a faulted invocation parked again with a 15-minute delay (moto delays in real time). */
  readonly delayed: string[];
  /** What the scenario's faulted invocation handles. */
  input?: unknown;
  /** The curated bus refuses the faulted invocation's entries (a permission or policy problem the operator fixes). */
  rejectPublish?: string;
}

let world: World;
injector.observe((call) => {
  if (call.command === 'ReceiveMessageCommand') world.received.push(...(call.output?.Messages ?? []).map((m: any) => m.ReceiptHandle));
  if (call.command === 'SendMessageCommand' && call.input.DelaySeconds) world.delayed.push(call.input.MessageBody);
});

afterAll(() => {
  for (const client of [handlerClients.sqs, handlerClients.eventBridge, handlerClients.dynamoDb, handlerClients.s3]) client.destroy();
});

async function newWorld(followers: Record<string, FollowerHandler> = STAMPING_FOLLOWERS): Promise<World> {
  const lambda = new LambdaSimulator(followers);
  const lambdaClient = lambda.sdkClient();
  injector.attach(lambdaClient);
  world = {
    deployment: await deployWithRoutes(), lambda, lambdaClient, clock: { now: Date.parse('2026-11-30T12:00:00Z') }, received: [], delayed: [],
  };
  return world;
}

/** The leader as one invocation runs it: the handler's clients, which the harness faults. */
function faultedLeader(w: World, options: Parameters<typeof motoLeader>[2] = {}) {
  return motoLeader(w.deployment, w.lambda, {
    ...options,
    clock: w.clock,
    sqs: handlerClients.sqs,
    eventBridge: w.rejectPublish ? rejecting(w.rejectPublish) : handlerClients.eventBridge,
    dynamoDb: handlerClients.dynamoDb,
    lambda: w.lambdaClient,
  }).leader;
}

/** A bus that refuses every entry with `code` (not a call failure: PutEvents answers with FailedEntryCount). */
function rejecting(code: string) {
  return {
    send: async (command: any) => {
      if (!(command instanceof PutEventsCommand)) return handlerClients.eventBridge.send(command);
      const entries = command.input.Entries ?? [];
      return { FailedEntryCount: entries.length, Entries: entries.map(() => ({ ErrorCode: code, ErrorMessage: `injected: ${code}` })) };
    },
  };
}

/**
 * The faulted invocation's input is parked with `reason`: a message of the leader with that
 * reason and the input, or (all of Lambda's attempts having failed) Lambda's on-failure record
 * of it; the redrive of either parks it again with the reason. Copies count as duplicates.
 */
async function checkParked(w: World, reason: string) {
  const left = await drainQueue(w.deployment.dlqUrl);
  const same = (value: unknown) => JSON.stringify(value) === JSON.stringify(w.input);
  const parkedHere = left.filter((m: any) => (m.reason === reason && same(m.input)) || same(m.requestPayload));
  invariant(parkedHere.length > 0, `the input was not parked as ${reason}; the dead-letter queue holds ${JSON.stringify(left).slice(0, 400)}`);
  invariant(parkedHere.length === left.length, `the dead-letter queue holds other messages: ${JSON.stringify(left).slice(0, 400)}`);
  return { delivered: 0, waiting: 0, parked: 1, duplicates: parkedHere.length - 1 };
}

/** The leader outside the faulted invocation: the followers' returns, the operator's redrives. */
function platformLeader(w: World, options: Parameters<typeof motoLeader>[2] = {}) {
  return motoLeader(w.deployment, w.lambda, { ...options, clock: w.clock }).leader;
}

/**
 * Lambda's asynchronous retries: two more attempts after a failure (or a death), then the
 * on-failure destination's invocation record (the shape of the "Invocation record" example in
 * the Lambda developer guide's asynchronous invocation destinations page) in the dead-letter queue.
 */
async function asyncRetries(w: World, first: InvocationOutcome, options: Parameters<typeof motoLeader>[2] = {}): Promise<void> {
  let last = first;
  for (let retry = 1; retry <= 2 && last.ended !== 'returned'; retry++) {
    w.clock.now += retry * 60_000;
    last = await injector.invoke(() => faultedLeader(w, options).handle(w.input));
  }
  if (last.ended === 'returned') return;
  const error = last.ended === 'threw' ? last.error as Error : new Error('Task timed out after 30.00 seconds');
  await sqs.send(new SendMessageCommand({
    QueueUrl: w.deployment.dlqUrl,
    MessageBody: JSON.stringify({
      version: '1.0',
      timestamp: new Date(w.clock.now).toISOString(),
      requestContext: {
        requestId: 'e4b46cbf-b738-xmpl-8880-a18cdf61200e',
        functionArn: 'arn:aws:lambda:us-east-1:123456789012:function:leader:$LATEST',
        condition: 'RetriesExhausted',
        approximateInvokeCount: 3,
      },
      requestPayload: w.input,
      responseContext: { statusCode: 200, executedVersion: '$LATEST', functionError: 'Unhandled' },
      responsePayload: { errorType: error.name, errorMessage: error.message },
    }),
  }));
}

/** The operator's next redrive, after a faulted one: the same request again, while it left something. */
async function operatorRedrivesAgain(w: World, first: InvocationOutcome, options: Parameters<typeof motoLeader>[2] = {}): Promise<void> {
  let last = first;
  for (let run = 0; run < 3 && last.ended !== 'returned'; run++) {
    await timePasses(w);
    last = await injector.invoke(() => faultedLeader(w, options).handle(w.input));
  }
}

/** Minutes pass: messages a redrive hid come back, and messages parked with a delay are due. */
async function timePasses(w: World): Promise<void> {
  w.clock.now += 16 * 60_000;
  for (const handle of w.received.splice(0)) {
    // A handle of a message deleted since is refused: nothing to show again.
    await sqs.send(new ChangeMessageVisibilityCommand({ QueueUrl: w.deployment.dlqUrl, ReceiptHandle: handle, VisibilityTimeout: 0 }))
      .catch(() => undefined);
  }
  // Moto keeps the delayed message hidden in real time: a copy stands for it, now due.
  for (const body of w.delayed.splice(0)) await sqs.send(new SendMessageCommand({ QueueUrl: w.deployment.dlqUrl, MessageBody: body }));
}

/**
 * The followers run, and the operator (the cause of any park fixed) redrives the dead-letter
 * queue until it is empty. Then: the record was put on the bus (once, or more where the docs
 * say at least once), and the queue holds nothing.
 */
async function checkDelivered(w: World, id: string, fixed: Parameters<typeof motoLeader>[2] = {}) {
  // The operator's own redrives hide what they receive, too; record those handles.
  const operatorSqs = {
    send: async (command: any) => {
      const output: any = await sqs.send(command);
      if (output?.Messages) w.received.push(...output.Messages.map((m: any) => m.ReceiptHandle));
      return output;
    },
  };
  const leader = platformLeader(w, { ...fixed, sqs: operatorSqs });
  for (let round = 0; round < OPERATOR_ROUNDS; round++) {
    await w.lambda.settle(leader);
    await timePasses(w);
    const report = await leader.handle({ redrive: { maxMessages: 100 } });
    await w.lambda.settle(leader);
    if (report.redrive!.received === 0 && w.lambda.queued.length === 0) break;
  }
  await timePasses(w);
  const left = await drainQueue(w.deployment.dlqUrl);
  const outputs = (await orchestrated(w.deployment)).filter((o) => o.id === id);
  invariant(outputs.length > 0, `record ${id} was never put on the curated bus; the dead-letter queue holds ${JSON.stringify(left).slice(0, 400)}`);
  invariant(left.length === 0, `the dead-letter queue still holds ${left.length} message(s) after the operator's redrives: ${JSON.stringify(left).slice(0, 400)}`);
  return { delivered: 1, waiting: 0, parked: 0, duplicates: outputs.length - 1 };
}

const summary: string[] = [];
afterAll(() => console.log(`Crash points, LeaderFollowerOrchestrator:\n${summary.join('\n')}`));

async function explore(name: string, setup: () => Promise<World>, redeliver: (w: World, first: InvocationOutcome) => Promise<void>,
  check: (w: World) => Promise<{ delivered: number; waiting: number; parked: number; duplicates: number }>,
  options: Parameters<typeof motoLeader>[2] = {}) {
  const report = await exploreCrashPoints<World>({
    name: `LeaderFollowerOrchestrator ${name}`,
    injector,
    setup,
    invoke: (w) => faultedLeader(w, options).handle(w.input),
    redeliver,
    check,
  });
  summary.push(`  ${name}: ${report.crashPoints} trials (${report.cleanCalls.join(', ')}); totals ${JSON.stringify(report.totals)}`);
  return report;
}

test('leader, a curated record starts its route: every fault ends with the record on the bus', async () => {
  const report = await explore('leader: a record starts its route', async () => {
    const w = await newWorld();
    w.input = curatedEvent('r1', 'sms', { steps: [] });
    return w;
  }, (w, first) => asyncRetries(w, first), (w) => checkDelivered(w, 'r1'));
  // The routes of the record's tenant and of its channel (read together), the followers item (then cached), the claim, the Invoke, the mark.
  expect(report.cleanCalls).toEqual(['GetItem', 'GetItem', 'GetItem', 'UpdateItem', 'Invoke', 'UpdateItem']);
  // A lost Invoke answer invokes the follower again, whose second result is a replay: one record on the bus.
  expect(report.totals.duplicates).toBe(0);
}, 300_000);

test('leader, the last follower\'s result: every fault ends with the record on the bus (at least once)', async () => {
  const report = await explore('leader: the last result finishes the run', async () => {
    const w = await newWorld();
    const leader = platformLeader(w);
    await leader.handle(curatedEvent('r2', 'sms', { steps: [] }));
    // Run step 1, then capture step 2's destination record instead of handing it to the leader.
    await w.lambda.settle({ handle: async (record: any) => (record.requestPayload.step === 2 ? (w.input = record) : leader.handle(record)) } as any);
    return w;
  }, (w, first) => asyncRetries(w, first), (w) => checkDelivered(w, 'r2'));
  // The followers item (the sender check), the claim, PutEvents, the mark.
  expect(report.cleanCalls).toEqual(['GetItem', 'UpdateItem', 'PutEvents', 'UpdateItem']);
  // FINISH is at least once: PutEvents applied, then its answer lost, or the mark after it lost
  // or never made (a crash), puts the record again on the retry. A lost answer of the mark does not.
  const twice = report.trials.filter((t) => t.outcomes.duplicates > 0).map((t) => `${t.at} ${t.call}/${t.kind}`);
  expect(twice).toEqual(['2 PutEvents/lost-answer', '3 UpdateItem/lost-request', '3 UpdateItem/crash']);
}, 300_000);

test('leader, a follower\'s failure is parked: every fault ends parked once, and the operator\'s redrive delivers it', async () => {
  const state = { down: true };
  const report = await explore('leader: a follower failure is parked', async () => {
    state.down = true;
    const w = await newWorld({ ...STAMPING_FOLLOWERS, deliver: flaky('deliver', state) });
    const leader = platformLeader(w);
    await leader.handle(curatedEvent('r3', 'sms', { steps: [] }));
    await w.lambda.settle({ handle: async (record: any) => (record.requestPayload.step === 2 ? (w.input = record) : leader.handle(record)) } as any);
    return w;
  }, (w, first) => asyncRetries(w, first), async (w) => {
    state.down = false;
    return checkDelivered(w, 'r3');
  });
  expect(report.cleanCalls).toEqual(['GetItem', 'UpdateItem', 'SendMessage', 'UpdateItem']);
  expect(report.totals.duplicates).toBe(0);
}, 300_000);

test('redrive of a parked step: every fault ends with the record on the bus, never deleted as resumed', async () => {
  const state = { down: true };
  const report = await explore('redrive: a parked step is resumed', async () => {
    state.down = true;
    const w = await newWorld({ ...STAMPING_FOLLOWERS, render: flaky('render', state) });
    const leader = platformLeader(w);
    await leader.handle(curatedEvent('r4', 'email', { steps: [] }));
    await w.lambda.settle(leader);
    state.down = false;
    w.input = { redrive: { maxMessages: 10 } };
    return w;
  }, (w, first) => operatorRedrivesAgain(w, first), (w) => checkDelivered(w, 'r4'));
  // A resumed step reads the followers item fresh (a deploy may have fixed the follower).
  expect(report.cleanCalls).toEqual(['ReceiveMessage', 'GetItem', 'UpdateItem', 'Invoke', 'UpdateItem', 'DeleteMessage', 'ReceiveMessage']);
  expect(report.totals.duplicates).toBe(0);
}, 300_000);

test('redrive of a step whose cause is not fixed: every fault ends parked again (or still parked), and delivered once fixed', async () => {
  const big = (request: any) => ({ event: { ...request.event, blob: 'x'.repeat(3000) } });
  const report = await explore('redrive: a step parked again', async () => {
    const w = await newWorld({ ...STAMPING_FOLLOWERS, enrich: big });
    const leader = platformLeader(w, { maxEventBytes: 2048 });
    await leader.handle(curatedEvent('r5', 'email', { steps: [] }));
    await w.lambda.settle(leader);
    w.input = { redrive: { maxMessages: 10 } };
    return w;
  }, (w, first) => operatorRedrivesAgain(w, first, { maxEventBytes: 2048 }), (w) => checkDelivered(w, 'r5', { maxEventBytes: 8192 }),
  { maxEventBytes: 2048 });
  expect(report.cleanCalls).toEqual(['ReceiveMessage', 'GetItem', 'UpdateItem', 'SendMessage', 'UpdateItem', 'DeleteMessage', 'ReceiveMessage']);
  expect(report.totals.duplicates).toBe(0);
}, 300_000);

test('stalled-steps sweep: every fault ends with the stalled step parked (by this sweep or the next), and delivered once redriven', async () => {
  const report = await explore('sweep: a stalled step is parked', async () => {
    const w = await newWorld();
    w.lambda.undeliverableResults.add('render');
    const leader = platformLeader(w);
    await leader.handle(curatedEvent('r6', 'email', { steps: [] }));
    await w.lambda.settle(leader);
    w.lambda.undeliverableResults.delete('render');
    w.clock.now += STEP_RESULT_TIMEOUT_MS + 1;
    w.input = { sweepStalled: {} };
    return w;
  }, async (w) => {
    // The schedule's next sweep, 15 minutes later.
    w.clock.now += 15 * 60_000;
    await injector.invoke(() => faultedLeader(w).handle(w.input));
  }, (w) => checkDelivered(w, 'r6'));
  expect(report.cleanCalls).toEqual(['Scan', 'GetItem', 'UpdateItem', 'SendMessage', 'UpdateItem']);
  expect(report.totals.duplicates).toBe(0);
}, 300_000);

test('leader, input that is not a curated event: every fault ends parked with its reason (at least once)', async () => {
  const report = await explore('leader: invalid input is parked', async () => {
    const w = await newWorld();
    w.input = { 'detail-type': 'CuratedRecord', 'source': 'cdk-event-fabric', 'detail': { kind: 'record', id: 'bad-1' } };
    return w;
  }, (w, first) => asyncRetries(w, first), (w) => checkParked(w, 'invalid-input'));
  expect(report.cleanCalls).toEqual(['SendMessage']);
  // A lost answer of SendMessage sends it again on Lambda's retry: invalid input keeps no progress to mark.
  expect(report.trials.filter((t) => t.outcomes.duplicates > 0).map((t) => `${t.call}/${t.kind}`)).toEqual(['SendMessage/lost-answer']);
}, 300_000);

test('leader, the curated bus refuses the processed record: every fault ends parked as publish-failed, and delivered once fixed', async () => {
  const report = await explore('leader: a refused record is parked (publish-failed)', async () => {
    const w = await newWorld();
    const leader = platformLeader(w);
    await leader.handle(curatedEvent('r7', 'sms', { steps: [] }));
    await w.lambda.settle({ handle: async (record: any) => (record.requestPayload.step === 2 ? (w.input = record) : leader.handle(record)) } as any);
    w.rejectPublish = 'AccessDeniedException';
    return w;
  }, (w, first) => asyncRetries(w, first), (w) => {
    // The operator fixes the bus's policy, then redrives.
    w.rejectPublish = undefined;
    return checkDelivered(w, 'r7');
  });
  // The followers item (the sender check), the claim, (PutEvents refused), the park's mark, its message, its sent mark.
  expect(report.cleanCalls).toEqual(['GetItem', 'UpdateItem', 'UpdateItem', 'SendMessage', 'UpdateItem']);
  expect(report.totals.duplicates).toBe(0);
}, 300_000);

test('leader, a result whose run has no progress (expired): every fault ends parked as out-of-order, and delivered once redriven', async () => {
  const report = await explore('leader: a result out of order is parked', async () => {
    const w = await newWorld();
    const leader = platformLeader(w);
    await leader.handle(curatedEvent('r8', 'email', { steps: [] }));
    await w.lambda.settle({ handle: async (record: any) => (record.requestPayload.step === 2 ? (w.input = record) : leader.handle(record)) } as any);
    // The progress table's TTL removed the run's item while step 2 ran.
    const runId = (w.input as any).requestPayload.orchestration.runId;
    await handlerClients.dynamoDb.send(new DeleteItemCommand({ TableName: w.deployment.progressTable, Key: { runId: { S: runId } } }));
    return w;
  }, (w, first) => asyncRetries(w, first), (w) => checkDelivered(w, 'r8'));
  expect(report.cleanCalls).toEqual(['GetItem', 'UpdateItem', 'GetItem', 'UpdateItem', 'SendMessage', 'UpdateItem']);
  expect(report.totals.duplicates).toBe(0);
}, 300_000);

describe('route writer', () => {
  const V1 = [{ channel: 'email', followers: ['enrich', 'render', 'deliver'] }, { channel: 'sms', followers: ['enrich', 'deliver'] }];
  const V2 = [{ channel: 'email', followers: ['render', 'deliver'] }, { channel: 'push', followers: ['notify'] }];
  // The followers item each version writes: V2 drops enrich and registers notify.
  const F1 = { enrich: arnOf('enrich'), render: arnOf('render'), deliver: arnOf('deliver') };
  const F2 = { render: arnOf('render'), deliver: arnOf('deliver'), notify: arnOf('notify') };
  const props = (routes: typeof V1, followers: Record<string, string>) => ({ Routes: JSON.stringify(routes), Followers: JSON.stringify(followers) });
  // As deployed: the registered names come from the resource's Followers.
  const CONFIG = { maxHops: 7 };
  interface WriterWorld { readonly table: string; outcome?: 'deployed' | 'rolled back' }

  const routesIn = async (table: string) => {
    const items = (await handlerClients.dynamoDb.send(new ScanCommand({ TableName: table, ConsistentRead: true }))).Items ?? [];
    const routes = items.map((i) => unmarshall(i)).map(({ channel, followers }) => ({ channel, followers }));
    return routes.sort((a, b) => a.channel.localeCompare(b.channel));
  };
  const followersIn = async (table: string) => (await routesIn(table)).find((r) => r.channel === FOLLOWERS_ITEM_KEY)?.followers;
  const sorted = (routes: typeof V1) => [...routes].sort((a, b) => a.channel.localeCompare(b.channel));

  test('a deploy that changes routes: after any fault, CloudFormation\'s rollback leaves the old routes, a success the new ones', async () => {
    const report = await exploreCrashPoints<WriterWorld>({
      name: 'LeaderFollowerOrchestrator route writer: a deploy updates routes',
      injector,
      setup: async () => {
        const { routesTable } = await deployWithRoutes();
        const store = new DynamoRouteStore(handlerClients.dynamoDb, routesTable);
        // V1 was deployed (deployWithRoutes wrote the same routes).
        await handleRoutesResource({ RequestType: 'Create', ResourceProperties: props(V1, F1) }, store, CONFIG);
        return { table: routesTable };
      },
      invoke: (w) => handleRoutesResource({
        RequestType: 'Update',
        PhysicalResourceId: 'orchestrator-routes',
        ResourceProperties: props(V2, F2),
        OldResourceProperties: props(V1, F1),
      }, new DynamoRouteStore(handlerClients.dynamoDb, w.table), CONFIG),
      // A failed update (an error, or a handler that died: the provider's timeout) is rolled back:
      // CloudFormation sends an Update with the old properties, which succeeds.
      redeliver: async (w, first) => {
        if (first.ended === 'returned') {
          w.outcome = 'deployed';
          return;
        }
        await handleRoutesResource({
          RequestType: 'Update',
          PhysicalResourceId: 'orchestrator-routes',
          ResourceProperties: props(V1, F1),
          OldResourceProperties: props(V2, F2),
        }, new DynamoRouteStore(handlerClients.dynamoDb, w.table), CONFIG);
        w.outcome = 'rolled back';
      },
      check: async (w) => {
        const expected = sorted(w.outcome === 'deployed' ? V2 : V1);
        const table = (await routesIn(w.table)).filter((r) => r.channel !== FOLLOWERS_ITEM_KEY);
        invariant(JSON.stringify(table) === JSON.stringify(expected), `${w.outcome}: the table holds ${JSON.stringify(table)}, not ${JSON.stringify(expected)}`);
        // Every follower a route names is registered: the leader can run each route.
        const followers = await followersIn(w.table);
        invariant(JSON.stringify(followers) === JSON.stringify(w.outcome === 'deployed' ? F2 : F1),
          `${w.outcome}: the followers item is ${JSON.stringify(followers)}`);
        return { delivered: 1, waiting: 0, parked: 0, duplicates: 0 };
      },
    });
    summary.push(`  route writer: a deploy updates routes: ${report.crashPoints} trials (${report.cleanCalls.join(', ')}); totals ${JSON.stringify(report.totals)}`);
    // The followers item first, then the changed routes (email, push), then the removed one (sms).
    expect(report.cleanCalls).toEqual(['PutItem', 'PutItem', 'PutItem', 'DeleteItem']);
  }, 300_000);

  test('a run-time write (putRoutes, deleteRoutes): after any fault, the operator\'s retry of the same request leaves exactly its routes', async () => {
    const TENANT_ROUTE = { channel: 'email', tenant: 'acme', followers: [{ follower: 'render', parameters: { template: 'acme' } }, 'deliver'] };
    const request = { putRoutes: [{ channel: 'push', followers: ['deliver'] }], deleteRoutes: [{ channel: 'email', tenant: 'acme' }] };
    const report = await exploreCrashPoints<WriterWorld>({
      name: 'LeaderFollowerOrchestrator route writer: a run-time write',
      injector,
      setup: async () => {
        const { routesTable } = await deployWithRoutes();
        await handleRouteWriteRequest({ putRoutes: [TENANT_ROUTE] }, new DynamoRouteStore(handlerClients.dynamoDb, routesTable), CONFIG);
        return { table: routesTable };
      },
      invoke: (w) => handleRouteWriteRequest(request, new DynamoRouteStore(handlerClients.dynamoDb, w.table), CONFIG),
      // The caller sees the error (a synchronous invocation) and sends the same request again.
      redeliver: async (w, first) => {
        if (first.ended !== 'returned') await handleRouteWriteRequest(request, new DynamoRouteStore(handlerClients.dynamoDb, w.table), CONFIG);
      },
      check: async (w) => {
        const table = (await routesIn(w.table)).filter((r) => r.channel !== FOLLOWERS_ITEM_KEY);
        const expected = sorted([...V1, { channel: 'push', followers: ['deliver'] }]);
        invariant(JSON.stringify(table) === JSON.stringify(expected), `the table holds ${JSON.stringify(table)}, not ${JSON.stringify(expected)}`);
        return { delivered: 1, waiting: 0, parked: 0, duplicates: 0 };
      },
    });
    summary.push(`  route writer: a run-time write: ${report.crashPoints} trials (${report.cleanCalls.join(', ')}); totals ${JSON.stringify(report.totals)}`);
    // The followers item (the registered names), the new route, the deleted tenant route.
    expect(report.cleanCalls).toEqual(['GetItem', 'PutItem', 'DeleteItem']);
  }, 300_000);
});
