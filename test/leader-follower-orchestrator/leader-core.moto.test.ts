import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import {
  arnOf, curatedEvent, DeadLetterQueueClock, Deployment, deployWithRoutes, drainQueue, dynamoDb, FollowerHandler, LambdaSimulator, motoLeader,
  orchestrated, parked, sqs, stamping, STAMPING_FOLLOWERS, writeRoute,
} from './moto-harness';
import { defineFollower, finishRoute } from '../../src/leader-follower-orchestrator/follower';
import { FOLLOWERS_ITEM_KEY, LAMBDA_RECURSION_LIMIT, MAX_ROUTE_LENGTH } from '../../src/leader-follower-orchestrator/orchestrator-contract';
import { DynamoRouteStore } from '../../src/leader-follower-orchestrator/route-store-core';
import { handleRouteWriteRequest, handleRoutesResource } from '../../src/leader-follower-orchestrator/route-writer-core';
import { buildRecord, deterministicId } from '../../src/runtime/curated-envelope';

const FOLLOWERS = STAMPING_FOLLOWERS;

let deployment: Deployment;
beforeEach(async () => {
  deployment = await deployWithRoutes();
});

describe('a 3-step route, end to end (moto DynamoDB, EventBridge and SQS; Lambda simulated)', () => {
  test('each channel\'s record is processed by its followers in order and put on the curated bus once', async () => {
    const lambda = new LambdaSimulator(FOLLOWERS);
    const { leader, metrics } = motoLeader(deployment, lambda);
    await leader.handle(curatedEvent('e1', 'email', { text: 'hello', steps: [] }));
    await leader.handle(curatedEvent('s1', 'sms', { text: 'hi', steps: [] }));
    expect(await lambda.settle(leader)).toBe(5);

    const outputs = await orchestrated(deployment);
    expect(outputs).toHaveLength(2);
    const email = outputs.find((o) => o.id === 'e1');
    const sms = outputs.find((o) => o.id === 's1');
    expect(email.payload).toEqual({ text: 'hello', steps: ['enrich', 'render', 'deliver'] });
    expect(email.orchestration).toMatchObject({ orchestrator: 'orchestrator-1', route: ['enrich', 'render', 'deliver'], hops: 3 });
    expect(sms.payload.steps).toEqual(['enrich', 'deliver']);
    expect(sms.orchestration.route).toEqual(['enrich', 'deliver']);
    // The envelope's metadata travels unchanged.
    expect(email).toMatchObject({ kind: 'record', channel: 'email', tenant: 'tenant-a', correlationId: 'corr-e1', lane: 'fast' });
    // Steps are numbered 1, 2, 3 and each follower saw the previous one's output.
    const emailSteps = lambda.invocations.filter((i) => i.request.channel === 'email');
    expect(emailSteps.map((i) => [i.follower, i.request.step, i.request.event.steps])).toEqual([
      ['enrich', 1, []], ['render', 2, ['enrich']], ['deliver', 3, ['enrich', 'render']],
    ]);
    expect(metrics.counts.email).toEqual({ Steps: 3, Completions: 1 });
    expect(metrics.counts.sms).toEqual({ Steps: 2, Completions: 1 });
    expect(metrics.latencies.email).toHaveLength(1);
    expect(await parked(deployment)).toEqual([]);
  });

  test('a CuratedBatch: every record follows its own channel\'s route', async () => {
    const lambda = new LambdaSimulator(FOLLOWERS);
    const { leader } = motoLeader(deployment, lambda);
    const records = ['email', 'sms', 'email'].map((channel, i) => buildRecord({ id: `b${i}`, channel, lane: 'slow', payload: { n: i } }));
    await leader.handle({
      'detail-type': 'CuratedBatch',
      'source': 'cdk-event-fabric',
      'detail': {
        schemaVersion: '1.0',
        kind: 'batch',
        id: 'batch-1',
        tenant: null,
        lane: 'slow',
        time: '2026-11-22T10:00:00Z',
        recordCount: 3,
        origin: { bucket: 'b', key: 'k', firstLine: 1, lastLine: 3 },
        records,
      },
    });
    await lambda.settle(leader);
    const outputs = await orchestrated(deployment);
    expect(outputs.map((o) => [o.id, o.payload.steps]).sort()).toEqual([
      ['b0', ['enrich', 'render', 'deliver']], ['b1', ['enrich', 'deliver']], ['b2', ['enrich', 'render', 'deliver']],
    ]);
  });

  test('followers written with the typed helper, one of them ending the route early', async () => {
    const lambda = new LambdaSimulator({
      enrich: defineFollower<{ text: string; vip?: boolean }>(({ event }) => (event.vip ? finishRoute({ ...event, fastTracked: true }) : event)),
      render: defineFollower<{ text: string }>(({ event, step, channel }) => ({ ...event, rendered: `${channel}#${step}` })),
      deliver: defineFollower(({ event }) => event),
    } as any);
    const { leader } = motoLeader(deployment, lambda);
    await leader.handle(curatedEvent('vip', 'email', { text: 'x', vip: true }));
    await leader.handle(curatedEvent('std', 'email', { text: 'y' }));
    await lambda.settle(leader);
    const outputs = await orchestrated(deployment);
    const vip = outputs.find((o) => o.id === 'vip');
    expect(vip.payload).toEqual({ text: 'x', vip: true, fastTracked: true });
    expect(vip.orchestration.route).toEqual(['enrich']);
    expect(outputs.find((o) => o.id === 'std').payload).toEqual({ text: 'y', rendered: 'email#2' });
  });
});

/** Counts the table reads of each key: `routeReads(channel)`. */
function readsOf(table: DynamoRouteStore): (key: string) => number {
  const get = jest.spyOn(table, 'get');
  return (key) => get.mock.calls.filter(([read]) => read === key).length;
}

describe('routes change at run time, without a deploy', () => {
  test('a changed route takes effect once the cached one expires; the table is read once per channel per TTL', async () => {
    const lambda = new LambdaSimulator(FOLLOWERS);
    const { leader, table, clock } = motoLeader(deployment, lambda, { cacheTtlMs: 60_000 });
    const routeReads = readsOf(table);
    await leader.handle(curatedEvent('a', 'sms'));
    await lambda.settle(leader);
    // An operator re-routes sms through the renderer, by writing the table.
    await writeRoute(deployment, { channel: 'sms', followers: ['render', 'deliver'] });
    clock.now += 30_000;
    await leader.handle(curatedEvent('b', 'sms'));
    await lambda.settle(leader);
    clock.now += 31_000;
    await leader.handle(curatedEvent('c', 'sms'));
    await lambda.settle(leader);
    const routes = Object.fromEntries((await orchestrated(deployment)).map((o) => [o.id, o.orchestration.route]));
    expect(routes).toEqual({ a: ['enrich', 'deliver'], b: ['enrich', 'deliver'], c: ['render', 'deliver'] });
    // The route of sms: a: read; b: cached (30 s); c: read again (61 s). Steps of a run never read it.
    expect(routeReads('sms')).toBe(2);
  });

  test('with the cache off every record reads its route, and a run keeps the route it started with', async () => {
    const lambda = new LambdaSimulator(FOLLOWERS);
    const { leader, table } = motoLeader(deployment, lambda, { cacheTtlMs: 0 });
    const routeReads = readsOf(table);
    await leader.handle(curatedEvent('a', 'email'));
    // Re-routed while a's run is at step 1.
    await writeRoute(deployment, { channel: 'email', followers: ['deliver'] });
    await leader.handle(curatedEvent('b', 'email'));
    await lambda.settle(leader);
    const routes = Object.fromEntries((await orchestrated(deployment)).map((o) => [o.id, o.orchestration.route]));
    expect(routes).toEqual({ a: ['enrich', 'render', 'deliver'], b: ['deliver'] });
    expect(routeReads('email')).toBe(2);
  });

  test('the route writer validates and writes routes at deploy and at run time, against the real table', async () => {
    const store = new DynamoRouteStore(dynamoDb, deployment.routesTable);
    const config = { followerNames: ['enrich', 'render', 'deliver'], maxHops: 7 };
    await handleRoutesResource({ RequestType: 'Create', ResourceProperties: { Routes: JSON.stringify([{ channel: 'push', followers: ['deliver'] }]) } },
      store, config);
    expect(await store.get('push')).toMatchObject({ channel: 'push', followers: ['deliver'], updatedBy: 'deploy' });
    await handleRoutesResource({
      RequestType: 'Update',
      PhysicalResourceId: 'orchestrator-routes',
      ResourceProperties: { Routes: JSON.stringify([{ channel: 'fax', followers: ['render'] }]) },
      OldResourceProperties: { Routes: JSON.stringify([{ channel: 'push', followers: ['deliver'] }]) },
    }, store, config);
    expect(await store.get('push')).toBeUndefined();
    await expect(handleRouteWriteRequest({ putRoutes: [{ channel: 'sms', followers: ['enrich', 'teleport'] }] }, store, config))
      .rejects.toThrow(/"teleport".*not registered/);
    expect(await store.get('sms')).toMatchObject({ followers: ['enrich', 'deliver'] });
    await handleRouteWriteRequest({ putRoutes: [{ channel: 'sms', followers: ['render'] }], deleteChannels: ['fax'] }, store, config);
    expect(await store.get('sms')).toMatchObject({ followers: ['render'], updatedBy: 'api' });
    expect(await store.get('fax')).toBeUndefined();
  });
});

describe('the followers item: registered followers live in the routes table, written by the routes custom resource', () => {
  const arns = (names: string[]) => Object.fromEntries(names.map((name) => [name, arnOf(name)]));
  const deploy = (routes: unknown[], followers: string[], old?: { routes: unknown[]; followers: string[] }) => handleRoutesResource({
    RequestType: old ? 'Update' : 'Create',
    PhysicalResourceId: 'orchestrator-routes',
    ResourceProperties: { Routes: JSON.stringify(routes), Followers: JSON.stringify(arns(followers)) },
    ...(old ? { OldResourceProperties: { Routes: JSON.stringify(old.routes), Followers: JSON.stringify(arns(old.followers)) } } : {}),
  }, new DynamoRouteStore(dynamoDb, deployment.routesTable), { maxHops: 7 });

  test('50 followers: a route through the last three runs, the leader reading each ARN from the followers item', async () => {
    const names = Array.from({ length: 50 }, (_, i) => `follower-${i}`);
    await deploy([{ channel: 'wide', followers: names.slice(47) }], names);
    const lambda = new LambdaSimulator(Object.fromEntries(names.map((name) => [name, stamping(name)])));
    const { leader, config } = motoLeader(deployment, lambda);
    expect(config.followers).toBeUndefined();
    await leader.handle(curatedEvent('w1', 'wide', { steps: [] }));
    expect(await lambda.settle(leader)).toBe(3);
    expect((await orchestrated(deployment)).map((o) => o.payload.steps)).toEqual([['follower-47', 'follower-48', 'follower-49']]);
  });

  test('a follower registered by a later deploy runs at once, though the leader cached the followers item before it', async () => {
    await deploy([{ channel: 'sms', followers: ['enrich', 'deliver'] }], ['enrich', 'deliver']);
    const lambda = new LambdaSimulator({ ...FOLLOWERS, translate: stamping('translate') });
    const { leader } = motoLeader(deployment, lambda, { cacheTtlMs: 3_600_000 });
    await leader.handle(curatedEvent('s1', 'sms', { steps: [] }));
    await lambda.settle(leader);
    // The next deploy registers translate and routes a new channel through it.
    await deploy([{ channel: 'sms', followers: ['enrich', 'deliver'] }, { channel: 'intl', followers: ['translate', 'deliver'] }],
      ['enrich', 'deliver', 'translate'], { routes: [{ channel: 'sms', followers: ['enrich', 'deliver'] }], followers: ['enrich', 'deliver'] });
    await leader.handle(curatedEvent('i1', 'intl', { steps: [] }));
    await lambda.settle(leader);
    expect((await orchestrated(deployment)).map((o) => [o.id, o.payload.steps])).toEqual(expect.arrayContaining([
      ['s1', ['enrich', 'deliver']], ['i1', ['translate', 'deliver']],
    ]));
    expect(await drainQueue(deployment.dlqUrl)).toEqual([]);
  });

  test('the followers item has its own cache, as in the handler: with the route cache off, a 3-step run reads it once', async () => {
    const lambda = new LambdaSimulator(FOLLOWERS);
    const { leader, table } = motoLeader(deployment, lambda, { cacheTtlMs: 0, followerItemTtlMs: 5 * 60_000 });
    const reads = readsOf(table);
    await leader.handle(curatedEvent('f1', 'email', { steps: [] }));
    await lambda.settle(leader);
    expect((await orchestrated(deployment)).map((o) => o.payload.steps)).toEqual([['enrich', 'render', 'deliver']]);
    // Start, three sender checks and two dispatches use the followers: one read; the route is read at start only.
    expect({ followers: reads(FOLLOWERS_ITEM_KEY), route: reads('email') }).toEqual({ followers: 1, route: 1 });
  });

  test('no followers item (a table the routes resource never wrote): the invocation fails, saying so, and nothing is parked', async () => {
    await new DynamoRouteStore(dynamoDb, deployment.routesTable).delete(FOLLOWERS_ITEM_KEY);
    const { leader } = motoLeader(deployment, new LambdaSimulator(FOLLOWERS));
    // Lambda retries the invocation, then keeps it in the dead-letter queue (on-failure destination) for a redrive.
    await expect(leader.handle(curatedEvent('m1', 'email', { steps: [] })))
      .rejects.toThrow(/the routes table has no followers item \(key "⟨followers⟩"\); the orchestrator's routes custom resource writes it when its followers or routes change: deploy such a change/);
    expect(await drainQueue(deployment.dlqUrl)).toEqual([]);
  });

  test('a run-time route write is checked against the followers item; the item itself cannot be deleted or overwritten', async () => {
    await deploy([{ channel: 'sms', followers: ['enrich', 'deliver'] }], ['enrich', 'deliver']);
    const store = new DynamoRouteStore(dynamoDb, deployment.routesTable);
    await expect(handleRouteWriteRequest({ putRoutes: [{ channel: 'fax', followers: ['render'] }] }, store, { maxHops: 7 }))
      .rejects.toThrow(/followers \["render"\] are not registered; allowed: \["deliver","enrich"\]/);
    await handleRouteWriteRequest({ putRoutes: [{ channel: 'fax', followers: ['deliver'] }] }, store, { maxHops: 7 });
    expect(await store.get('fax')).toMatchObject({ followers: ['deliver'], updatedBy: 'api' });
    await expect(handleRouteWriteRequest({ deleteChannels: [FOLLOWERS_ITEM_KEY] }, store, { maxHops: 7 })).rejects.toThrow(/printable ASCII/);
    await expect(handleRouteWriteRequest({ putRoutes: [{ channel: FOLLOWERS_ITEM_KEY, followers: ['deliver'] }] }, store, { maxHops: 7 }))
      .rejects.toThrow(/\/channel must be printable ASCII/);
    expect(await store.get(FOLLOWERS_ITEM_KEY)).toMatchObject({ followers: arns(['enrich', 'deliver']), updatedBy: 'deploy' });
  });
});

describe('step parameters: one generic follower serves channels by configuration', () => {
  /** A follower that stamps its name and the parameters it received. */
  const withParameters = (name: string, state = { down: false }): FollowerHandler => ({ event, parameters }) => {
    if (state.down) throw new Error(`${name} is down`);
    return { event: { ...event, steps: [...(event.steps ?? []), parameters === undefined ? name : `${name}:${JSON.stringify(parameters)}`] } };
  };

  test('each channel\'s step gets its own parameters; a parked step keeps them through the redrive', async () => {
    await writeRoute(deployment, { channel: 'email', followers: ['enrich', { follower: 'render', parameters: { template: 'welcome' } }, 'deliver'] });
    await writeRoute(deployment, { channel: 'sms', followers: [{ follower: 'render', parameters: { template: 'short', locale: 'fr-FR' } }, 'deliver'] });
    const render = { down: true };
    const lambda = new LambdaSimulator({ enrich: stamping('enrich'), render: withParameters('render', render), deliver: withParameters('deliver') });
    const dlq = new DeadLetterQueueClock(deployment);
    const { leader } = motoLeader(deployment, lambda, { sqs: dlq.client });
    await leader.handle(curatedEvent('e1', 'email', { steps: [] }));
    await lambda.settle(leader);
    // The parked message keeps the run's parameters: a redrive after the fix renders with them.
    expect(dlq.sent).toHaveLength(1);
    expect(dlq.sent[0]).toMatchObject({ reason: 'follower-failed', step: 2, routeParameters: [null, { template: 'welcome' }, null] });
    render.down = false;
    expect((await leader.handle({ redrive: {} })).redrive).toMatchObject({ resumed: 1 });
    await leader.handle(curatedEvent('s1', 'sms', { steps: [] }));
    await lambda.settle(leader);
    const outputs = await orchestrated(deployment);
    expect(Object.fromEntries(outputs.map((o) => [o.id, o.payload.steps]))).toEqual({
      e1: ['enrich', 'render:{"template":"welcome"}', 'deliver'],
      s1: ['render:{"template":"short","locale":"fr-FR"}', 'deliver'],
    });
    // The curated output names the route's followers only.
    expect(Object.fromEntries(outputs.map((o) => [o.id, o.orchestration.route]))).toEqual({
      e1: ['enrich', 'render', 'deliver'], s1: ['render', 'deliver'],
    });
  });

  test('the integ app\'s onboarding, offline: a channel added at run time through the route writer reuses render with its own parameters', async () => {
    const lambda = new LambdaSimulator({ enrich: withParameters('enrich'), render: withParameters('render'), deliver: withParameters('deliver') });
    const { leader } = motoLeader(deployment, lambda);
    const route = { channel: 'push', followers: ['enrich', { follower: 'render', parameters: { template: 'push-short' } }, 'deliver'] };
    // As the route writer function runs it: the registered followers come from the followers item.
    expect(await handleRouteWriteRequest({ putRoutes: [route] }, new DynamoRouteStore(dynamoDb, deployment.routesTable), { maxHops: 7 }))
      .toEqual({ written: ['push'], deleted: [] });
    await leader.handle(curatedEvent('p1', 'push', { steps: [] }));
    await lambda.settle(leader);
    expect((await orchestrated(deployment)).map((o) => [o.id, o.payload.steps])).toEqual([['p1', ['enrich', 'render:{"template":"push-short"}', 'deliver']]]);
  });
});

describe('routes by tenant and event type: the most specific route of the record\'s channel', () => {
  const store = () => new DynamoRouteStore(dynamoDb, deployment.routesTable);
  const config = { maxHops: 7 };
  const ROUTES = [
    { channel: 'email', followers: ['enrich', 'deliver'] },
    { channel: 'email', tenant: 'acme', followers: ['render', 'deliver'] },
    { channel: 'email', eventType: 'OrderShipped', followers: ['deliver'] },
    { channel: 'email', tenant: 'acme', eventType: 'OrderShipped', followers: ['enrich'] },
  ];
  const run = async (records: Array<[string, string | null, string | undefined]>) => {
    const lambda = new LambdaSimulator(FOLLOWERS);
    const { leader } = motoLeader(deployment, lambda);
    for (const [id, tenant, detailType] of records) {
      await leader.handle(curatedEvent(id, 'email', { steps: [] }, { tenant, ...(detailType ? { detailType } : {}) }));
    }
    await lambda.settle(leader);
    return Object.fromEntries((await orchestrated(deployment)).map((o) => [o.id, o.payload.steps]));
  };

  test('tenant and event type, then tenant, then event type, then the channel', async () => {
    await handleRouteWriteRequest({ putRoutes: ROUTES }, store(), config);
    expect(await run([
      ['both', 'acme', 'OrderShipped'], ['tenant', 'acme', 'OrderPlaced'], ['type', 'beta', 'OrderShipped'], ['channel', 'beta', undefined],
      ['no-tenant', null, 'OrderPlaced'], ['empty-tenant', '', 'OrderShipped'],
    ])).toEqual({
      'both': ['enrich'],
      'tenant': ['render', 'deliver'],
      'type': ['deliver'],
      'channel': ['enrich', 'deliver'],
      'no-tenant': ['enrich', 'deliver'],
      'empty-tenant': ['deliver'],
    });
  });

  test('each route lives under its route key; deleteRoutes removes one, and its records fall back to the channel\'s route', async () => {
    await handleRouteWriteRequest({ putRoutes: ROUTES }, store(), config);
    expect(await store().get('email \u27e8tenant="acme" eventType=*\u27e9')).toMatchObject({ tenant: 'acme', followers: ['render', 'deliver'] });
    const result = await handleRouteWriteRequest({ deleteRoutes: [{ channel: 'email', tenant: 'acme' }] }, store(), config);
    expect(result.deleted).toEqual(['email \u27e8tenant="acme" eventType=*\u27e9']);
    expect(await run([['tenant', 'acme', 'OrderPlaced']])).toEqual({ tenant: ['enrich', 'deliver'] });
    await expect(handleRouteWriteRequest({ deleteRoutes: [{ channel: 'email', tenant: 7 }] } as any, store(), config))
      .rejects.toThrow(/^deleteRoutes must be a list of \{ "channel": a channel name, "tenant"\?: a tenant, "eventType"\?: an event type \}/);
  });

  test('a deploy that drops a tenant route deletes it (and only it)', async () => {
    const followers = JSON.stringify(Object.fromEntries(Object.keys(FOLLOWERS).map((name) => [name, arnOf(name)])));
    await handleRoutesResource({ RequestType: 'Create', ResourceProperties: { Routes: JSON.stringify(ROUTES), Followers: followers } }, store(), config);
    await handleRoutesResource({
      RequestType: 'Update',
      PhysicalResourceId: 'orchestrator-routes',
      ResourceProperties: { Routes: JSON.stringify([ROUTES[0], ROUTES[2], ROUTES[3]]), Followers: followers },
      OldResourceProperties: { Routes: JSON.stringify(ROUTES), Followers: followers },
    }, store(), config);
    expect(await store().get('email \u27e8tenant="acme" eventType=*\u27e9')).toBeUndefined();
    expect(await store().get('email \u27e8tenant="acme" eventType="OrderShipped"\u27e9')).toMatchObject({ followers: ['enrich'] });
    expect(await store().get('email')).toMatchObject({ followers: ['enrich', 'deliver'] });
  });

  test('an item written by hand under a route key that is not its own is parked as bad-route, saying where it is', async () => {
    await writeRoute(deployment, { channel: 'email \u27e8tenant="acme" eventType=*\u27e9', tenant: 'beta', followers: ['deliver'] });
    const lambda = new LambdaSimulator(FOLLOWERS);
    const { leader } = motoLeader(deployment, lambda);
    await leader.handle(curatedEvent('misfiled', 'email', { steps: [] }, { tenant: 'acme' }));
    const [message] = await parked(deployment);
    expect(message).toMatchObject({ reason: 'bad-route', channel: 'email', step: 0 });
    expect(message.message).toBe('the route "email ⟨tenant=\\"acme\\" eventType=*⟩" is invalid: the route stored under '
      + '"email ⟨tenant=\\"acme\\" eventType=*⟩" is for "email ⟨tenant=\\"beta\\" eventType=*⟩"');
  });
});

describe('duplicates and retries never apply a step twice', () => {
  test('the same event delivered twice starts one run', async () => {
    const lambda = new LambdaSimulator(FOLLOWERS);
    const { leader, metrics } = motoLeader(deployment, lambda);
    const event = curatedEvent('dup', 'email', { steps: [] });
    await leader.handle(event);
    await leader.handle(event);
    await lambda.settle(leader);
    const outputs = await orchestrated(deployment);
    expect(outputs).toHaveLength(1);
    expect(outputs[0].payload.steps).toEqual(['enrich', 'render', 'deliver']);
    expect(lambda.invocations).toHaveLength(3);
    expect(metrics.counts.email.Replays).toBe(1);
  });

  test('every follower result delivered twice: each next step runs once, one output', async () => {
    const lambda = new LambdaSimulator(FOLLOWERS);
    const { leader, metrics } = motoLeader(deployment, lambda);
    await leader.handle(curatedEvent('twice', 'email', { steps: [] }));
    await lambda.settle(leader, { duplicateResults: true });
    const outputs = await orchestrated(deployment);
    expect(outputs).toHaveLength(1);
    expect(outputs[0].payload.steps).toEqual(['enrich', 'render', 'deliver']);
    expect(lambda.invocations.map((i) => i.follower)).toEqual(['enrich', 'render', 'deliver']);
    expect(metrics.counts.email.Replays).toBe(3);
  });

  test('a throttled Invoke fails the invocation; the retry after the lease dispatches the step once', async () => {
    const lambda = new LambdaSimulator(FOLLOWERS);
    const { leader, clock } = motoLeader(deployment, lambda);
    const event = curatedEvent('throttled', 'sms', { steps: [] });
    lambda.throttleNextInvokes(1);
    await expect(leader.handle(event)).rejects.toThrow(/Rate exceeded/);
    // Lambda retries the leader's invocation a minute later, after the 45 s lease.
    clock.now += 60_000;
    await leader.handle(event);
    await lambda.settle(leader);
    const outputs = await orchestrated(deployment);
    expect(outputs.map((o) => o.payload.steps)).toEqual([['enrich', 'deliver']]);
  });

  test('a concurrent duplicate within the lease is told to retry, and then finds the step applied', async () => {
    const lambda = new LambdaSimulator(FOLLOWERS);
    const { leader, progress, clock } = motoLeader(deployment, lambda);
    const event = curatedEvent('racing', 'sms');
    const runId = deterministicId('orchestrator-1', 'tenant-a', 'racing', 'sms', '0');
    // Another invocation has claimed step 1 and has not invoked the follower yet.
    expect(await progress.claim({ runId, step: 1, channel: 'sms', dispatchId: 'other' })).toBe('claimed');
    await expect(leader.handle(event)).rejects.toThrow(/being dispatched by another invocation/);
    await progress.markDispatched(runId, 1, 'other');
    clock.now += 60_000;
    await leader.handle(event);
    expect(lambda.queued).toHaveLength(0);
  });
});

describe('failures are parked with channel, step and reason; redrive resumes them', () => {
  test('a follower that fails is parked at its step with the error, and redrive resumes at that step', async () => {
    let renderDown = true;
    const lambda = new LambdaSimulator({
      ...FOLLOWERS,
      render: (request) => {
        if (renderDown) throw new Error('template service unavailable');
        return stamping('render')(request);
      },
    });
    const { leader, metrics } = motoLeader(deployment, lambda);
    await leader.handle(curatedEvent('f1', 'email', { steps: [] }));
    await lambda.settle(leader);
    expect(await orchestrated(deployment)).toEqual([]);
    const [message] = await drainQueue(deployment.dlqUrl);
    expect(message).toMatchObject({
      reason: 'follower-failed',
      channel: 'email',
      step: 2,
      follower: 'render',
      hops: 1,
      record: { id: 'f1', payload: { steps: ['enrich'] } },
    });
    expect(message.message).toMatch(/render.*step 2.*RetriesExhausted.*template service unavailable/);
    expect(metrics.counts.email.Failures).toBe(1);

    renderDown = false;
    await requeue(deployment, message);
    const report = await leader.handle({ redrive: { maxMessages: 10 } });
    expect(report.redrive).toEqual({ received: 1, resumed: 1, reparked: 0, dropped: 0, skipped: 0, failed: 0 });
    await lambda.settle(leader);
    const [output] = await orchestrated(deployment);
    expect(output.payload.steps).toEqual(['enrich', 'render', 'deliver']);
    // enrich ran once: the redrive resumed at step 2.
    expect(lambda.invocations.filter((i) => i.follower === 'enrich')).toHaveLength(1);
    expect(await drainQueue(deployment.dlqUrl)).toEqual([]);
  });

  test('unknown channel, no channel, bad route, unregistered follower, invalid input: each parked with its reason', async () => {
    const lambda = new LambdaSimulator(FOLLOWERS);
    const { leader, metrics } = motoLeader(deployment, lambda);
    await writeRoute(deployment, { channel: 'broken', followers: 'enrich' });
    await writeRoute(deployment, { channel: 'ghost', followers: ['enrich', 'teleport'] });
    await leader.handle(curatedEvent('u', 'whatsapp'));
    await leader.handle(curatedEvent('n', null));
    await leader.handle(curatedEvent('b', 'broken'));
    await leader.handle(curatedEvent('g', 'ghost'));
    await leader.handle({ 'detail-type': 'CuratedRecord', 'source': 'cdk-event-fabric', 'detail': { kind: 'record', id: 'x' } });
    const messages = await parked(deployment);
    const byReason = Object.fromEntries(messages.map((m) => [m.reason, m]));
    expect(Object.keys(byReason).sort()).toEqual(['bad-route', 'invalid-input', 'no-channel', 'unknown-channel', 'unregistered-follower']);
    expect(byReason['unknown-channel']).toMatchObject({ channel: 'whatsapp', step: 0, record: { id: 'u' } });
    expect(byReason['bad-route'].message).toMatch(/broken.*\/followers must be array/);
    expect(byReason['unregistered-follower'].message).toMatch(/\["teleport"\].*allowed: \["deliver","enrich","render"\]/);
    expect(byReason['invalid-input'].input).toMatchObject({ detail: { id: 'x' } });
    expect(lambda.invocations).toHaveLength(0);
    expect(metrics.counts['(unrouted)'].Failures).toBe(3);
    expect(metrics.counts.broken.Failures).toBe(1);
  });

  test('an unknown channel, redriven after its route was added, is routed (with a fresh route read)', async () => {
    const lambda = new LambdaSimulator(FOLLOWERS);
    const { leader } = motoLeader(deployment, lambda, { cacheTtlMs: 600_000 });
    await leader.handle(curatedEvent('late', 'push', { steps: [] }));
    const [message] = await parked(deployment);
    expect(message.reason).toBe('unknown-channel');
    await writeRoute(deployment, { channel: 'push', followers: ['deliver'] });
    await requeue(deployment, message);
    await leader.handle({ redrive: {} });
    await lambda.settle(leader);
    expect((await orchestrated(deployment)).map((o) => o.payload.steps)).toEqual([['deliver']]);
  });

  test('the hop limit: a record that already made hops and re-enters is parked before its route starts', async () => {
    const lambda = new LambdaSimulator(FOLLOWERS);
    const { leader } = motoLeader(deployment, lambda);
    const looped = curatedEvent('loop', 'email', { steps: [] }, {
      orchestration: { orchestrator: 'orchestrator-1', runId: 'r', route: ['enrich', 'render', 'deliver'], hops: 6, startedAt: 'a', completedAt: 'b' },
    });
    await leader.handle(looped);
    const [message] = await parked(deployment);
    expect(message).toMatchObject({ reason: 'hop-limit', channel: 'email', step: 0, hops: 6 });
    expect(message.message).toMatch(/made 6 hops and the route needs 3 more; the hop limit is 7/);
    expect(lambda.invocations).toHaveLength(0);
  });

  test('an invalid follower result and an oversized event are parked at their step', async () => {
    const lambda = new LambdaSimulator({ ...FOLLOWERS, render: () => 'rendered!' as any, enrich: ({ event }) => ({ event: { ...event, blob: 'x'.repeat(3000) } }) });
    const { leader } = motoLeader(deployment, lambda, { maxEventBytes: 2048 });
    await leader.handle(curatedEvent('bad', 'email', { steps: [] }));
    await lambda.settle(leader);
    await leader.handle(curatedEvent('ok', 'sms', { steps: [] }));
    await lambda.settle(leader);
    const messages = await parked(deployment);
    const reasons = messages.map((m) => [m.reason, m.record?.id, m.step]).sort();
    expect(reasons).toEqual([['oversized', 'bad', 2], ['oversized', 'ok', 2]]);
    const lambda2 = new LambdaSimulator({ ...FOLLOWERS, render: () => 'rendered!' as any });
    const second = motoLeader(deployment, lambda2);
    await second.leader.handle(curatedEvent('bad2', 'email', { steps: [] }));
    await lambda2.settle(second.leader);
    const [invalid] = await parked(deployment);
    expect(invalid).toMatchObject({ reason: 'invalid-follower-result', step: 2, follower: 'render', record: { payload: { steps: ['enrich'] } } });
    expect(invalid.message).toMatch(/returned "rendered!".*allowed: \{ "event"/);
  });
});

describe('parked steps are parked once and resumed once', () => {
  test('a failure record delivered twice parks one message; the message redriven twice runs the step once', async () => {
    let down = true;
    const lambda = new LambdaSimulator({
      ...FOLLOWERS,
      deliver: (request) => {
        if (down) throw new Error('gateway down');
        return stamping('deliver')(request);
      },
    });
    const { leader } = motoLeader(deployment, lambda);
    await leader.handle(curatedEvent('p1', 'sms', { steps: [] }));
    await lambda.settle(leader, { duplicateResults: true });
    const messages = await parked(deployment);
    expect(messages.map((m) => [m.reason, m.step])).toEqual([['follower-failed', 2]]);
    expect(messages[0].parkToken).toEqual(expect.any(String));

    down = false;
    // The same message twice: a redrive that timed out before deleting it, then another redrive.
    await requeue(deployment, messages[0]);
    await requeue(deployment, messages[0]);
    const report = await leader.handle({ redrive: { maxMessages: 10 } });
    // The second copy finds its step dispatched: dropped, not resumed.
    expect(report.redrive).toEqual({ received: 2, resumed: 1, reparked: 0, dropped: 1, skipped: 0, failed: 0 });
    await lambda.settle(leader);
    const outputs = await orchestrated(deployment);
    expect(outputs.map((o) => o.payload.steps)).toEqual([['enrich', 'deliver']]);
    expect(lambda.invocations.filter((i) => i.follower === 'deliver')).toHaveLength(2);
  });

  test('a late duplicate of the final result, after the lease, publishes nothing', async () => {
    const lambda = new LambdaSimulator(FOLLOWERS);
    const { leader, clock } = motoLeader(deployment, lambda);
    await leader.handle(curatedEvent('fin', 'sms', { steps: [] }));
    await lambda.settle(leader);
    expect(await orchestrated(deployment)).toHaveLength(1);
    // The last step's destination record again, a minute later (Lambda delivers at least once).
    const finalRequest = lambda.invocations.find((i) => i.request.step === 2)!.request;
    clock.now += 61_000;
    const report = await leader.handle({
      version: '1.0',
      requestContext: { condition: 'Success', approximateInvokeCount: 1, functionArn: `${lambda.arns.deliver}:$LATEST` },
      requestPayload: finalRequest,
      responseContext: { statusCode: 200 },
      responsePayload: { event: { steps: ['enrich', 'deliver'] } },
    });
    // The leader's counts add up over its invocations here: the one finish is the first run's.
    expect(report.outcomes).toMatchObject({ replay: 1, finished: 1 });
    expect(await orchestrated(deployment)).toEqual([]);
  });

  test('a TypeScript follower whose result could not return to the leader fails its step, and the event is parked', async () => {
    const lambda = new LambdaSimulator({
      ...FOLLOWERS,
      enrich: defineFollower(({ event }) => ({ ...(event as object), attachment: 'x'.repeat(1_100_000) })),
    } as any);
    const { leader } = motoLeader(deployment, lambda);
    await leader.handle(curatedEvent('huge', 'sms', { steps: [] }));
    await lambda.settle(leader);
    const [message] = await parked(deployment);
    expect(message).toMatchObject({ reason: 'follower-failed', step: 1, follower: 'enrich', record: { payload: { steps: [] } } });
    expect(message.message).toMatch(/RangeError: follower step 1 of channel "sms" returned \d+ bytes; allowed: at most \d+/);
  });
});

describe('redrive and deploys leave what they should alone', () => {
  test('a redrive stops receiving when the invocation runs low on time, and drops a failed redrive request', async () => {
    let remaining = 25_000;
    const lambda = new LambdaSimulator(FOLLOWERS);
    const { leader } = motoLeader(deployment, lambda, { remainingTimeMs: () => remaining });
    await leader.handle(curatedEvent('r1', 'push', { steps: [] }));
    const [message] = await parked(deployment);
    await requeue(deployment, message);
    // The leader's own on-failure record of a redrive that failed: nothing to resume.
    await requeue(deployment, { requestContext: { condition: 'RetriesExhausted' }, requestPayload: { redrive: { maxMessages: 10 } } });
    remaining = 9_000;
    expect((await leader.handle({ redrive: {} })).redrive).toEqual({ received: 0, resumed: 0, reparked: 0, dropped: 0, skipped: 0, failed: 0 });
    remaining = 25_000;
    await writeRoute(deployment, { channel: 'push', followers: ['deliver'] });
    expect((await leader.handle({ redrive: {} })).redrive).toEqual({ received: 2, resumed: 1, reparked: 0, dropped: 1, skipped: 0, failed: 0 });
    await lambda.settle(leader);
    expect((await orchestrated(deployment)).map((o) => o.id)).toEqual(['r1']);
  });

  test('a deploy that changes one route writes only that route, keeping a run-time edit of another', async () => {
    const store = new DynamoRouteStore(dynamoDb, deployment.routesTable);
    const config = { followerNames: ['enrich', 'render', 'deliver'], maxHops: 7 };
    const v1 = [{ channel: 'email', followers: ['enrich', 'render', 'deliver'] }, { channel: 'sms', followers: ['enrich', 'deliver'] }];
    await handleRoutesResource({ RequestType: 'Create', ResourceProperties: { Routes: JSON.stringify(v1) } }, store, config);
    // An operator re-routes sms at run time.
    await handleRouteWriteRequest({ putRoutes: [{ channel: 'sms', followers: ['deliver'] }] }, store, config);
    const v2 = [{ channel: 'email', followers: ['render', 'deliver'] }, v1[1]];
    const result = await handleRoutesResource({
      RequestType: 'Update',
      PhysicalResourceId: 'orchestrator-routes',
      ResourceProperties: { Routes: JSON.stringify(v2) },
      OldResourceProperties: { Routes: JSON.stringify(v1) },
    }, store, config);
    expect(result.Data).toEqual({ written: 1, deleted: 0 });
    expect(await store.get('email')).toMatchObject({ followers: ['render', 'deliver'], updatedBy: 'deploy' });
    expect(await store.get('sms')).toMatchObject({ followers: ['deliver'], updatedBy: 'api' });
  });
});

/** Puts a drained message back, as the queue would after its visibility timeout. */
async function requeue(d: Deployment, body: unknown): Promise<void> {
  await sqs.send(new SendMessageCommand({ QueueUrl: d.dlqUrl, MessageBody: JSON.stringify(body) }));
}

test('progress items expire: they carry the TTL attribute', async () => {
  const lambda = new LambdaSimulator(FOLLOWERS);
  const { leader, clock } = motoLeader(deployment, lambda);
  await leader.handle(curatedEvent('ttl', 'sms'));
  const runId = deterministicId('orchestrator-1', 'tenant-a', 'ttl', 'sms', '0');
  const { Item } = await dynamoDb.send(new GetItemCommand({ TableName: deployment.progressTable, Key: { runId: { S: runId } } }));
  expect(Number(Item!.expiresAt.N)).toBe(Math.floor(clock.now / 1000) + 14 * 86_400);
  expect(Item!.dispatched.BOOL).toBe(true);
});

describe('Lambda recursive loop detection: a route of 15 steps, and no more', () => {
  test('the longest route invokes the leader 16 times for one event, and each follower once per appearance; 16 steps are refused when read', async () => {
    const lambda = new LambdaSimulator(FOLLOWERS);
    const { leader } = motoLeader(deployment, lambda, { maxHops: MAX_ROUTE_LENGTH });
    const fifteen = Array.from({ length: MAX_ROUTE_LENGTH }, (_, i) => ['enrich', 'render', 'deliver'][i % 3]);
    await writeRoute(deployment, { channel: 'long', followers: fifteen });
    await writeRoute(deployment, { channel: 'too-long', followers: [...fifteen, 'deliver'] });
    await leader.handle(curatedEvent('chain', 'long', { steps: [] }));
    await lambda.settle(leader);
    const [output] = await orchestrated(deployment);
    expect(output.payload.steps).toEqual(fifteen);
    // Lambda's detection counts per function: the leader once for the record and once per
    // result, each follower once per appearance. All within its 16.
    expect(lambda.mostInvocationsByOneEvent).toEqual({ leader: 16, enrich: 5, render: 5, deliver: 5 });
    expect(Math.max(...Object.values(lambda.mostInvocationsByOneEvent))).toBeLessThanOrEqual(LAMBDA_RECURSION_LIMIT);

    await leader.handle(curatedEvent('chain16', 'too-long'));
    const [message] = await parked(deployment);
    expect(message.reason).toBe('bad-route');
    expect(message.message).toMatch(/more than 15 followers.*1 \+ 15 = 16.*more than 16 times by one event/);
  });
});
