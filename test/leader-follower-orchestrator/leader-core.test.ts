import { gunzipSync } from 'zlib';
import {
  ConditionalCheckFailedException, DeleteItemCommand, DynamoDBClient, GetItemCommand, ScanCommand, PutItemCommand, UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { DeleteMessageCommand, ReceiveMessageCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { marshall } from '@aws-sdk/util-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import {
  CapturedMetrics, captureLogger, CONFIG, destinationRecord, FOLLOWER_ARNS, MemoryProgress, MemoryRouteStore, metadataOf, NOW_MS, record,
  RECORD_TIME, batchEvent, recordEvent, ROUTES,
} from './leader-fixtures';
import { defineFollower, finishRoute } from '../../src/leader-follower-orchestrator/follower';
import {
  Leader, LeaderConfig, leaderConfigFromEnv, LeaderDependencies, StepBusyError, UNROUTED_CHANNEL,
} from '../../src/leader-follower-orchestrator/leader-core';
import type { FollowerRequest, ParkedEvent, RouteItem } from '../../src/leader-follower-orchestrator/orchestrator-contract';
import { routeKey, routeKeysOf } from '../../src/leader-follower-orchestrator/orchestrator-contract';
import { ProgressStore } from '../../src/leader-follower-orchestrator/progress-core';
import { checkRoute, followerNames, routeParameters, unregisteredFollowers } from '../../src/leader-follower-orchestrator/route-schema';
import { CachedRouteStore, DynamoRouteStore, RouteStore } from '../../src/leader-follower-orchestrator/route-store-core';
import {
  handleRoutesResource, handleRouteWriteRequest, ROUTES_RESOURCE_ID, validateRoutes,
} from '../../src/leader-follower-orchestrator/route-writer-core';
import { checkRecord, CURATED_SOURCE, deterministicId, RECORD_DETAIL_TYPE, RecordEnvelope } from '../../src/runtime/curated-envelope';

const lambdaMock = mockClient(LambdaClient);
const eventsMock = mockClient(EventBridgeClient);
const sqsMock = mockClient(SQSClient);
const dynamoMock = mockClient(DynamoDBClient);

beforeEach(() => {
  lambdaMock.reset();
  eventsMock.reset();
  sqsMock.reset();
  dynamoMock.reset();
  lambdaMock.on(InvokeCommand).resolves({ StatusCode: 202 });
  eventsMock.on(PutEventsCommand).callsFake((input) => ({
    FailedEntryCount: 0, Entries: input.Entries.map((_: unknown, i: number) => ({ EventId: `out-${i}` })),
  }));
  sqsMock.on(SendMessageCommand).resolves({ MessageId: 'parked-1' });
  sqsMock.on(ReceiveMessageCommand).resolves({ Messages: [] });
  sqsMock.on(DeleteMessageCommand).resolves({});
});

interface HarnessOptions {
  readonly config?: Partial<LeaderConfig>;
  readonly routes?: LeaderDependencies['routes'];
  readonly progress?: LeaderDependencies['progress'];
  readonly concurrency?: number;
}

/** A leader over mocked SDK clients, an in-memory route store and in-memory progress. */
function harness(options: HarnessOptions = {}) {
  const calls: string[] = [];
  const routes = options.routes ?? new MemoryRouteStore();
  const memory = new MemoryProgress(calls);
  const progress = options.progress ?? memory;
  const metrics = new CapturedMetrics();
  const logger = captureLogger();
  const clock = { now: NOW_MS };
  const sleep = jest.fn(async (_ms: number) => {});
  const leader = new Leader({
    routes,
    progress,
    lambda: new LambdaClient({ region: 'us-east-1' }),
    eventBridge: new EventBridgeClient({ region: 'us-east-1' }),
    sqs: new SQSClient({ region: 'us-east-1' }),
    metrics,
    logger,
    now: () => clock.now,
    sleep,
    concurrency: options.concurrency,
  }, { ...CONFIG, ...options.config });
  return { leader, routes, progress, memory, metrics, logger, clock, sleep, calls };
}
type Harness = ReturnType<typeof harness>;

/** Every Lambda Invoke, with its payload parsed. */
function invocations(): { functionName: string; invocationType: string; request: FollowerRequest<any> }[] {
  return lambdaMock.commandCalls(InvokeCommand).map((call) => ({
    functionName: call.args[0].input.FunctionName!,
    invocationType: call.args[0].input.InvocationType!,
    request: JSON.parse(Buffer.from(call.args[0].input.Payload as Uint8Array).toString('utf8')),
  }));
}

/** The request of the last Invoke. */
function lastRequest(): FollowerRequest<any> {
  const all = invocations();
  expect(all.length).toBeGreaterThan(0);
  return all[all.length - 1].request;
}

/** Every message parked in the dead-letter queue, parsed. */
function parked(): ParkedEvent[] {
  return sqsMock.commandCalls(SendMessageCommand).map((call) => JSON.parse(call.args[0].input.MessageBody!));
}

/** Every entry put on a bus, with its detail parsed. */
function published(): { bus: string; source: string; detailType: string; detail: any }[] {
  return eventsMock.commandCalls(PutEventsCommand).flatMap((call) => call.args[0].input.Entries!.map((e) => ({
    bus: e.EventBusName!, source: e.Source!, detailType: e.DetailType!, detail: JSON.parse(e.Detail!),
  })));
}

/** Asserts exactly one message was parked, to the configured queue, with the leader's marker; returns it. */
function expectOneParked(): ParkedEvent {
  expect(sqsMock).toHaveReceivedCommandTimes(SendMessageCommand, 1);
  expect(sqsMock).toHaveReceivedCommandWith(SendMessageCommand, { QueueUrl: CONFIG.deadLetterQueueUrl });
  const [body] = parked();
  expect(body).toMatchObject({ parkedBy: 'cdk-event-fabric.leader', orchestrator: CONFIG.orchestratorId });
  expect(typeof body.message).toBe('string');
  expect(body.message.length).toBeGreaterThan(20);
  return body;
}

/** Answers the last follower request with `response` through its destination record. */
async function respond(h: Harness, response: unknown, condition = 'Success', attempts = 1) {
  return h.leader.handle(destinationRecord(lastRequest(), response, condition, attempts));
}

const runIdOf = (rec: RecordEnvelope, priorHops = 0) =>
  deterministicId(CONFIG.orchestratorId, String(rec.tenant), rec.id, rec.channel!, String(priorHops));
const iso = (ms: number) => new Date(ms).toISOString();
const noOutcomes = { dispatched: 0, finished: 0, parked: 0, replay: 0 };

/** A record that went through another orchestrator before: it keeps counting its hops. */
function reenteringRecord(hops: number): RecordEnvelope {
  return {
    ...record({ id: 'rec-again' }),
    orchestration: {
      orchestrator: 'Stack/Upstream',
      runId: 'upstream-run',
      route: Array.from({ length: hops }, (_, i) => `upstream${i}`),
      hops,
      startedAt: RECORD_TIME,
      completedAt: RECORD_TIME,
    },
  };
}

// ---------------------------------------------------------------------------------------------
describe('Leader: starting a route', () => {
  test('a CuratedRecord event invokes the first follower asynchronously with the follower request', async () => {
    const h = harness();
    lambdaMock.on(InvokeCommand).callsFake(async () => {
      h.calls.push('invoke');
      return { StatusCode: 202 };
    });
    const rec = record();

    const report = await h.leader.handle(recordEvent(rec));

    expect(report).toEqual({ outcomes: { ...noOutcomes, dispatched: 1 } });
    expect(lambdaMock).toHaveReceivedCommandTimes(InvokeCommand, 1);
    const [invocation] = invocations();
    expect(invocation.functionName).toBe(FOLLOWER_ARNS.enrich);
    expect(invocation.invocationType).toBe('Event');
    expect(invocation.request).toEqual({
      channel: 'email',
      step: 1,
      event: rec.payload,
      orchestration: {
        orchestrator: CONFIG.orchestratorId,
        runId: runIdOf(rec),
        route: ['enrich', 'render'],
        follower: 'enrich',
        hops: 1,
        startedAt: NOW_MS,
        record: metadataOf(rec),
        dispatchId: expect.any(String),
        followerArn: FOLLOWER_ARNS.enrich,
        maxResultBytes: expect.any(Number),
      },
    });
    // What is left of the 1 MB asynchronous limit once the request is in the destination record.
    const requestBytes = Buffer.byteLength(JSON.stringify(invocation.request), 'utf8');
    expect(invocation.request.orchestration.maxResultBytes + requestBytes).toBeGreaterThan(995_000);
    expect(invocation.request.orchestration.maxResultBytes + requestBytes).toBeLessThanOrEqual(1_000_000 - 4096);
    expect(invocation.request.orchestration.record).not.toHaveProperty('payload');
    expect(h.calls).toEqual(['claim 1', 'invoke', 'markDispatched 1']);
    expect(h.memory.claim).toHaveBeenCalledWith({ runId: runIdOf(rec), step: 1, channel: 'email', resume: false, parkToken: undefined, dispatchId: expect.any(String) });
    // The step awaits its result: its request is kept (gzipped) until the stall time.
    expect(h.memory.markDispatched)
      .toHaveBeenCalledWith(runIdOf(rec), 1, expect.any(String), {
        input: expect.any(Buffer), stallAt: NOW_MS + CONFIG.stepResultTimeoutMs,
      }, undefined);
    const kept = JSON.parse(gunzipSync(h.memory.markDispatched.mock.calls[0][3]!.input).toString('utf8'));
    expect(kept).toMatchObject({ channel: 'email', step: 1, orchestration: { follower: 'enrich', runId: runIdOf(rec) } });
    expect(h.metrics.counts).toEqual({ email: { Steps: 1 } });
    expect(sqsMock).not.toHaveReceivedCommand(SendMessageCommand);
    expect(eventsMock).not.toHaveReceivedCommand(PutEventsCommand);
    expect(h.logger.messages('info')).toContain('step dispatched');
  });

  test('a bare record envelope (no EventBridge wrapper) is accepted the same way', async () => {
    const viaEvent = harness();
    await viaEvent.leader.handle(recordEvent(record()));
    const expected = lastRequest();
    lambdaMock.resetHistory();

    const bare = harness();
    const report = await bare.leader.handle(record());

    expect(report.outcomes.dispatched).toBe(1);
    // The same request, but for its own dispatch id.
    const sameButDispatch = { ...expected, orchestration: { ...expected.orchestration, dispatchId: expect.any(String) } };
    expect(invocations()).toEqual([{ functionName: FOLLOWER_ARNS.enrich, invocationType: 'Event', request: sameButDispatch }]);
    expect(bare.metrics.counts).toEqual({ email: { Steps: 1 } });
  });

  test('a CuratedBatch of 3 records on 2 channels invokes the first follower of each record\'s route', async () => {
    const h = harness();
    const records = [
      record({ id: 'rec-1', channel: 'email', payload: { n: 1 } }),
      record({ id: 'rec-2', channel: 'sms', payload: { n: 2 } }),
      record({ id: 'rec-3', channel: 'email', payload: { n: 3 } }),
    ];

    const report = await h.leader.handle(batchEvent(records));

    expect(report.outcomes.dispatched).toBe(3);
    expect(lambdaMock).toHaveReceivedCommandTimes(InvokeCommand, 3);
    const byRecord = Object.fromEntries(invocations().map((i) => [i.request.orchestration.record.id, i]));
    expect(Object.keys(byRecord).sort()).toEqual(['rec-1', 'rec-2', 'rec-3']);
    expect(byRecord['rec-1'].functionName).toBe(FOLLOWER_ARNS.enrich);
    expect(byRecord['rec-2'].functionName).toBe(FOLLOWER_ARNS.deliver);
    expect(byRecord['rec-3'].functionName).toBe(FOLLOWER_ARNS.enrich);
    for (const [i, rec] of records.entries()) {
      const request = byRecord[rec.id].request;
      expect(request).toMatchObject({ channel: rec.channel, step: 1, event: { n: i + 1 } });
      expect(request.orchestration).toMatchObject({ runId: runIdOf(rec), hops: 1, record: metadataOf(rec) });
    }
    expect(h.metrics.counts).toEqual({ email: { Steps: 2 }, sms: { Steps: 1 } });
  });

  test('a record that was orchestrated before keeps counting its hops (and gets its own run id)', async () => {
    const h = harness();
    const rec = reenteringRecord(5);

    await h.leader.handle(recordEvent(rec));

    const request = lastRequest();
    expect(request.orchestration.hops).toBe(6);
    expect(request.orchestration.runId).toBe(runIdOf(rec, 5));
    expect(request.orchestration.runId).not.toBe(runIdOf(rec, 0));
  });

  test('the same record delivered twice is a replay: one invoke, metric Replays', async () => {
    const h = harness();
    await h.leader.handle(recordEvent(record()));
    const report = await h.leader.handle(recordEvent(record()));

    expect(lambdaMock).toHaveReceivedCommandTimes(InvokeCommand, 1);
    expect(report.outcomes).toEqual({ ...noOutcomes, dispatched: 1, replay: 1 });
    expect(h.metrics.counts.email).toEqual({ Steps: 1, Replays: 1 });
  });
});

// ---------------------------------------------------------------------------------------------
describe('Leader: follower results', () => {
  test('a success destination record invokes the next step with the returned event and hops 2', async () => {
    const h = harness();
    const rec = record();
    await h.leader.handle(recordEvent(rec));
    const step1 = lastRequest();

    const report = await respond(h, { event: { enriched: true } });

    expect(report.outcomes.dispatched).toBe(2);
    expect(lambdaMock).toHaveReceivedCommandTimes(InvokeCommand, 2);
    const [, second] = invocations();
    expect(second.functionName).toBe(FOLLOWER_ARNS.render);
    expect(second.invocationType).toBe('Event');
    expect(second.request).toEqual({
      channel: 'email',
      step: 2,
      event: { enriched: true },
      orchestration: {
        ...step1.orchestration,
        follower: 'render',
        hops: 2,
        dispatchId: expect.any(String),
        followerArn: FOLLOWER_ARNS.render,
        maxResultBytes: expect.any(Number),
      },
    });
    expect(h.memory.claim).toHaveBeenLastCalledWith({ runId: runIdOf(rec), step: 2, channel: 'email', resume: false, parkToken: undefined, dispatchId: expect.any(String) });
    expect(h.memory.markDispatched)
      .toHaveBeenLastCalledWith(runIdOf(rec), 2, expect.any(String), { input: expect.any(Buffer), stallAt: expect.any(Number) }, undefined);
    expect(h.metrics.counts).toEqual({ email: { Steps: 2 } });
  });

  test('the last step\'s success puts the processed record on the curated bus', async () => {
    const h = harness();
    const rec = record();
    await h.leader.handle(recordEvent(rec));
    h.clock.now = NOW_MS + 400;
    await respond(h, { event: { enriched: true } });
    h.clock.now = NOW_MS + 1_500;

    const report = await respond(h, { event: { rendered: '<p>hi</p>' } });

    expect(report.outcomes.finished).toBe(1);
    expect(lambdaMock).toHaveReceivedCommandTimes(InvokeCommand, 2);
    expect(eventsMock).toHaveReceivedCommandTimes(PutEventsCommand, 1);
    const [entry] = published();
    expect(entry.bus).toBe(CONFIG.curatedBusName);
    expect(entry.source).toBe('cdk-event-fabric');
    expect(entry.source).toBe(CURATED_SOURCE);
    expect(entry.detailType).toBe('CuratedRecord');
    expect(entry.detailType).toBe(RECORD_DETAIL_TYPE);
    expect(entry.detail).toEqual({
      ...metadataOf(rec),
      payload: { rendered: '<p>hi</p>' },
      orchestration: {
        orchestrator: CONFIG.orchestratorId,
        runId: runIdOf(rec),
        route: ['enrich', 'render'],
        hops: 2,
        startedAt: iso(NOW_MS),
        completedAt: iso(NOW_MS + 1_500),
      },
    });
    expect(checkRecord(entry.detail)).toEqual({ valid: true, errors: [] });
    expect(h.memory.claim).toHaveBeenLastCalledWith({ runId: runIdOf(rec), step: 3, channel: 'email', resume: false, parkToken: undefined, dispatchId: expect.any(String) });
    expect(h.memory.markDispatched).toHaveBeenLastCalledWith(runIdOf(rec), 3, expect.any(String), undefined, undefined);
    expect(h.metrics.counts).toEqual({ email: { Steps: 2, Completions: 1 } });
    expect(h.metrics.latencies).toEqual({ email: [1_500] });
    expect(sqsMock).not.toHaveReceivedCommand(SendMessageCommand);
  });

  test('finish: true at step 1 of a 3-step route publishes with only the first follower in the route', async () => {
    const h = harness();
    const rec = record({ channel: 'letter' });
    await h.leader.handle(recordEvent(rec));

    await respond(h, { event: { done: 'early' }, finish: true });

    expect(lambdaMock).toHaveReceivedCommandTimes(InvokeCommand, 1);
    const [entry] = published();
    expect(entry.detail.payload).toEqual({ done: 'early' });
    expect(entry.detail.orchestration).toMatchObject({ route: ['enrich'], hops: 1 });
    expect(h.metrics.counts.letter).toEqual({ Steps: 1, Completions: 1 });
  });

  test('a duplicate of the last step\'s result is a replay: the record is published once', async () => {
    const h = harness();
    await h.leader.handle(recordEvent(record({ channel: 'sms' })));
    const last = destinationRecord(lastRequest(), { event: { sent: true } });

    await h.leader.handle(last);
    const report = await h.leader.handle(last);

    expect(eventsMock).toHaveReceivedCommandTimes(PutEventsCommand, 1);
    expect(report.outcomes.replay).toBe(1);
    expect(h.metrics.counts.sms).toEqual({ Steps: 1, Completions: 1, Replays: 1 });
  });
});

// ---------------------------------------------------------------------------------------------
describe('Leader: parking what cannot be routed', () => {
  test.each([
    ['an object that is no envelope', { hello: 1 }, /kind must be "record" or "batch" \(got no kind\)/],
    ['a CuratedRecord with a missing field', recordEvent((({ lane, ...rest }) => { void lane; return rest; })(record())), /required property 'lane'/],
  ])('invalid input (%s) is parked as invalid-input, unrouted', async (_name, input, detail) => {
    const h = harness();

    const report = await h.leader.handle(input);

    const body = expectOneParked();
    expect(body).toMatchObject({ reason: 'invalid-input', channel: null, step: 0, hops: 0, input });
    expect(body.record).toBeUndefined();
    expect(body.message).toMatch(/^not a curated envelope \(a CuratedRecord or CuratedBatch event/);
    expect(body.message).toMatch(detail);
    expect(report.outcomes.parked).toBe(1);
    expect(h.metrics.counts).toEqual({ [UNROUTED_CHANNEL]: { Failures: 1 } });
    expect(UNROUTED_CHANNEL).toBe('(unrouted)');
    expect(lambdaMock).not.toHaveReceivedCommand(InvokeCommand);
    expect(h.logger.messages('error')).toEqual(['event parked']);
  });

  test('a record without a channel is parked as no-channel, unrouted, without a route lookup', async () => {
    const h = harness();
    const rec = record({ channel: null });

    await h.leader.handle(recordEvent(rec));

    const body = expectOneParked();
    expect(body).toMatchObject({ reason: 'no-channel', channel: null, step: 0, hops: 0, record: rec });
    expect(body.message).toMatch(/no channel; allowed: a record whose channel has a route/);
    expect((h.routes as MemoryRouteStore).reads).toBe(0);
    expect(h.metrics.counts).toEqual({ '(unrouted)': { Failures: 1 } });
    expect(lambdaMock).not.toHaveReceivedCommand(InvokeCommand);
  });

  test('a channel without a route is parked as unknown-channel, unrouted', async () => {
    const h = harness();
    const rec = record({ channel: 'fax' });

    await h.leader.handle(recordEvent(rec));

    const body = expectOneParked();
    expect(body).toMatchObject({ reason: 'unknown-channel', channel: 'fax', step: 0, hops: 0, record: rec });
    expect(body.message).toMatch(/no route for channel "fax"; add one to the routes table/);
    expect(h.metrics.counts).toEqual({ '(unrouted)': { Failures: 1 } });
    expect(lambdaMock).not.toHaveReceivedCommand(InvokeCommand);
  });

  test.each([
    ['followers as a string', { channel: 'email', followers: 'enrich' }, /\/followers must be array/],
    ['16 followers', { channel: 'email', followers: Array(16).fill('enrich') }, /more than 15 followers.*more than 16 times by one event/],
    ['a step with an extra key', { channel: 'email', followers: [{ follower: 'render', parameters: {}, retries: 2 }] },
      '/followers/0 must be a follower name of 1 to 64 letters, digits, "_" or "-", or { "follower": <such a name>, "parameters"?: <any JSON> } and nothing else'],
    ['a step without its follower', { channel: 'email', followers: [{ parameters: { template: 'welcome' } }] },
      '/followers/0 must be a follower name of 1 to 64 letters, digits, "_" or "-", or { "follower": <such a name>, "parameters"?: <any JSON> } and nothing else'],
    ['an extra property', { channel: 'email', followers: ['enrich'], owner: 'ops' }, /"owner"; allowed: channel, tenant, eventType, followers, description/],
  ])('a route with %s is parked as bad-route under its channel', async (_name, stored, detail) => {
    const h = harness({ routes: new MemoryRouteStore([stored]) });
    const rec = record();

    await h.leader.handle(recordEvent(rec));

    const body = expectOneParked();
    expect(body).toMatchObject({ reason: 'bad-route', channel: 'email', step: 0, record: rec });
    expect(body.message).toMatch(/^the route of channel "email" is invalid: /);
    expect(body.message).toMatch(detail);
    expect(h.metrics.counts).toEqual({ email: { Failures: 1 } });
    expect(lambdaMock).not.toHaveReceivedCommand(InvokeCommand);
  });

  test('a route naming an unregistered follower is parked as unregistered-follower', async () => {
    const h = harness({ routes: new MemoryRouteStore([{ channel: 'email', followers: ['enrich', 'ghost'] }]) });
    const rec = record();

    await h.leader.handle(recordEvent(rec));

    const body = expectOneParked();
    expect(body).toMatchObject({ reason: 'unregistered-follower', channel: 'email', step: 0, route: ['enrich', 'ghost'], record: rec });
    expect(body.message).toBe('the route of channel "email" names unregistered followers ["ghost"]; allowed: ["deliver","enrich","render"]');
    expect(h.metrics.counts).toEqual({ email: { Failures: 1 } });
    expect(lambdaMock).not.toHaveReceivedCommand(InvokeCommand);
  });

  test('a record with 6 hops and a 2-step route is parked at the hop limit 7 before step 1', async () => {
    const h = harness();
    const rec = reenteringRecord(6);

    await h.leader.handle(recordEvent(rec));

    const body = expectOneParked();
    expect(body).toMatchObject({ reason: 'hop-limit', channel: 'email', step: 0, hops: 6, route: ['enrich', 'render'], record: rec });
    expect(body.message).toBe('the record has made 6 hops and the route needs 2 more; the hop limit is 7');
    expect(h.metrics.counts).toEqual({ email: { Failures: 1 } });
    expect(lambdaMock).not.toHaveReceivedCommand(InvokeCommand);
  });

  test('a step that would pass the hop limit (lowered mid-run) is parked at that step', async () => {
    const first = harness();
    await first.leader.handle(recordEvent(reenteringRecord(5)));
    const step1 = lastRequest();
    const lowered = harness({ config: { maxHops: 6 } });

    await lowered.leader.handle(destinationRecord(step1, { event: { enriched: true } }));

    const body = expectOneParked();
    expect(body).toMatchObject({ reason: 'hop-limit', channel: 'email', step: 2, follower: 'render', hops: 6 });
    expect(body.record!.payload).toEqual({ enriched: true });
    expect(body.message).toBe('step 2 would be hop 7; the hop limit is 6');
    expect(lambdaMock).toHaveReceivedCommandTimes(InvokeCommand, 1);
  });

  test('a request over maxEventBytes is parked as oversized before it is claimed or invoked', async () => {
    const h = harness({ config: { maxEventBytes: 600 } });
    const rec = record({ payload: { text: 'x'.repeat(1_000) } });

    await h.leader.handle(recordEvent(rec));

    const body = expectOneParked();
    expect(body).toMatchObject({
      reason: 'oversized',
      channel: 'email',
      step: 1,
      follower: 'enrich',
      hops: 0,
      runId: runIdOf(rec),
      route: ['enrich', 'render'],
      startedAt: NOW_MS,
      record: rec,
    });
    expect(body.message).toMatch(/^the request for step 1 is \d+ bytes; allowed: at most 600 /);
    expect(h.memory.claim).not.toHaveBeenCalled();
    expect(lambdaMock).not.toHaveReceivedCommand(InvokeCommand);
    expect(h.metrics.counts).toEqual({ email: { Failures: 1 } });
  });

  test('a follower that failed is parked at its step with the event it was given and its error', async () => {
    const h = harness();
    const rec = record();
    await h.leader.handle(recordEvent(rec));
    await respond(h, { event: { enriched: true } });

    await respond(h, { errorType: 'Error', errorMessage: 'boom', trace: ['at render'] }, 'RetriesExhausted', 3);

    const body = expectOneParked();
    expect(body).toMatchObject({
      reason: 'follower-failed',
      channel: 'email',
      step: 2,
      follower: 'render',
      hops: 1,
      runId: runIdOf(rec),
      route: ['enrich', 'render'],
      startedAt: NOW_MS,
      record: { ...metadataOf(rec), payload: { enriched: true } },
    });
    expect(body.message).toBe('follower "render" failed at step 2 (RetriesExhausted, 3 attempts): Error: boom');
    expect(h.metrics.counts).toEqual({ email: { Steps: 2, Failures: 1 } });
    expect(lambdaMock).toHaveReceivedCommandTimes(InvokeCommand, 2);
    expect(eventsMock).not.toHaveReceivedCommand(PutEventsCommand);
  });

  test.each([
    ['a string', 'just a string'],
    ['an object without event', { evnt: 1 }],
    ['a non-boolean finish', { event: 1, finish: 'yes' }],
  ])('a follower result that is %s is parked as invalid-follower-result', async (_name, response) => {
    const h = harness();
    const rec = record();
    await h.leader.handle(recordEvent(rec));

    await respond(h, response);

    const body = expectOneParked();
    expect(body).toMatchObject({ reason: 'invalid-follower-result', channel: 'email', step: 1, follower: 'enrich', hops: 0, record: rec });
    expect(body.message).toContain(`follower "enrich" returned ${JSON.stringify(response)} at step 1; allowed: { "event": <the processed event>`);
    expect(h.metrics.counts).toEqual({ email: { Steps: 1, Failures: 1 } });
    expect(lambdaMock).toHaveReceivedCommandTimes(InvokeCommand, 1);
  });

  test.each([
    ['a step beyond its route', { step: 3 }],
    ['a follower that is not the route\'s at that step', { follower: 'render' }],
  ])('a destination record with %s is parked as invalid-input', async (_name, change) => {
    const h = harness();
    await h.leader.handle(recordEvent(record()));
    const request = lastRequest();
    const tampered = {
      ...request,
      step: (change as { step?: number }).step ?? request.step,
      orchestration: { ...request.orchestration, follower: (change as { follower?: string }).follower ?? request.orchestration.follower },
    };
    const input = destinationRecord(tampered, { event: {} });

    await h.leader.handle(input);

    const body = expectOneParked();
    expect(body).toMatchObject({ reason: 'invalid-input', channel: 'email', step: tampered.step, input });
    expect(body.message).toBe(`a follower result for step ${tampered.step} (follower "${tampered.orchestration.follower}") does not match its `
      + 'route ["enrich","render"]; allowed: a step from 1 to 2 naming the route\'s follower at that step');
    expect(h.metrics.counts[UNROUTED_CHANNEL]).toEqual({ Failures: 1 });
    expect(lambdaMock).toHaveReceivedCommandTimes(InvokeCommand, 1);
  });

  test('a destination record of another orchestrator is parked as invalid-input', async () => {
    const h = harness();
    await h.leader.handle(recordEvent(record()));
    const request = lastRequest();
    const input = destinationRecord({ ...request, orchestration: { ...request.orchestration, orchestrator: 'Other/Orchestrator' } }, { event: {} });

    await h.leader.handle(input);

    const body = expectOneParked();
    expect(body).toMatchObject({ reason: 'invalid-input', channel: 'email', step: 1, input });
    expect(body.message).toBe('a follower result of orchestrator "Other/Orchestrator" reached orchestrator "Stack/Orchestrator"; '
      + 'allowed: results of this orchestrator\'s own followers');
    expect(lambdaMock).toHaveReceivedCommandTimes(InvokeCommand, 1);
    expect(eventsMock).not.toHaveReceivedCommand(PutEventsCommand);
  });

  test('PutEvents rejecting the entry with a permanent code parks the record as publish-failed at FINISH', async () => {
    const h = harness();
    const rec = record();
    await h.leader.handle(recordEvent(rec));
    await respond(h, { event: { enriched: true } });
    eventsMock.on(PutEventsCommand).resolves({ FailedEntryCount: 1, Entries: [{ ErrorCode: 'MalformedDetail', ErrorMessage: 'Detail is malformed' }] });

    await respond(h, { event: { rendered: true } });

    expect(eventsMock).toHaveReceivedCommandTimes(PutEventsCommand, 1);
    const body = expectOneParked();
    expect(body).toMatchObject({
      reason: 'publish-failed',
      channel: 'email',
      step: 3,
      hops: 2,
      runId: runIdOf(rec),
      route: ['enrich', 'render'],
      record: { ...metadataOf(rec), payload: { rendered: true } },
    });
    expect(body.message).toBe('PutEvents rejected the processed record: MalformedDetail: Detail is malformed');
    expect(h.memory.markDispatched).not.toHaveBeenCalledWith(runIdOf(rec), 3);
    expect(h.metrics.counts).toEqual({ email: { Steps: 2, Failures: 1 } });
  });

  test('progress out-of-order parks the step as out-of-order', async () => {
    const progress = { claim: jest.fn().mockResolvedValue('out-of-order'), markDispatched: jest.fn(), markParked: jest.fn().mockResolvedValue(true), markParkSent: jest.fn(), findStalled: jest.fn() };
    const h = harness({ progress });
    const rec = record();

    const report = await h.leader.handle(recordEvent(rec));

    const body = expectOneParked();
    expect(body).toMatchObject({ reason: 'out-of-order', channel: 'email', step: 1, follower: 'enrich', hops: 0, record: rec });
    expect(body.message).toContain('redrive resumes it at this step');
    expect(report.outcomes).toEqual({ ...noOutcomes, parked: 1 });
    expect(lambdaMock).not.toHaveReceivedCommand(InvokeCommand);
    expect(progress.markDispatched).not.toHaveBeenCalled();
    expect(h.metrics.counts).toEqual({ email: { Failures: 1 } });
  });
});

// ---------------------------------------------------------------------------------------------
describe('Leader: replay detection', () => {
  test('claim "replay" invokes nothing and counts Replays', async () => {
    const progress = { claim: jest.fn().mockResolvedValue('replay'), markDispatched: jest.fn(), markParked: jest.fn().mockResolvedValue(true), markParkSent: jest.fn(), findStalled: jest.fn() };
    const h = harness({ progress });

    const report = await h.leader.handle(recordEvent(record()));

    expect(report.outcomes).toEqual({ ...noOutcomes, replay: 1 });
    expect(lambdaMock).not.toHaveReceivedCommand(InvokeCommand);
    expect(eventsMock).not.toHaveReceivedCommand(PutEventsCommand);
    expect(sqsMock).not.toHaveReceivedCommand(SendMessageCommand);
    expect(progress.markDispatched).not.toHaveBeenCalled();
    expect(h.metrics.counts).toEqual({ email: { Replays: 1 } });
    expect(h.logger.messages('warn')).toEqual(['replay detected: step already applied, not applied again']);
  });

  test('claim "replay" at FINISH publishes nothing', async () => {
    const claims: string[] = ['claimed', 'replay'];
    const progress = { claim: jest.fn(async () => claims.shift()), markDispatched: jest.fn(async () => {}) } as unknown as LeaderDependencies['progress'];
    const h = harness({ progress });
    await h.leader.handle(recordEvent(record({ channel: 'sms' })));

    const report = await respond(h, { event: { sent: true } });

    expect(report.outcomes.replay).toBe(1);
    expect(eventsMock).not.toHaveReceivedCommand(PutEventsCommand);
    expect(h.metrics.counts.sms).toEqual({ Steps: 1, Replays: 1 });
  });

  test('claim "busy" rejects with StepBusyError and invokes nothing', async () => {
    const progress = { claim: jest.fn().mockResolvedValue('busy'), markDispatched: jest.fn(), markParked: jest.fn().mockResolvedValue(true), markParkSent: jest.fn(), findStalled: jest.fn() };
    const h = harness({ progress });
    const rec = record();

    const handled = h.leader.handle(recordEvent(rec));

    await expect(handled).rejects.toBeInstanceOf(StepBusyError);
    await expect(handled).rejects.toThrow(`step 1 of run ${runIdOf(rec)} is being dispatched by another invocation`);
    expect(lambdaMock).not.toHaveReceivedCommand(InvokeCommand);
    expect(sqsMock).not.toHaveReceivedCommand(SendMessageCommand);
  });
});

// ---------------------------------------------------------------------------------------------
describe('Leader: AWS faults fail the invocation (Lambda retries it)', () => {
  test('Lambda Invoke throwing rejects and the step is not marked dispatched', async () => {
    const h = harness();
    lambdaMock.on(InvokeCommand).rejects(new Error('Rate exceeded'));

    await expect(h.leader.handle(recordEvent(record()))).rejects.toThrow('Rate exceeded');

    expect(h.memory.claim).toHaveBeenCalledTimes(1);
    expect(h.memory.markDispatched).not.toHaveBeenCalled();
    expect(sqsMock).not.toHaveReceivedCommand(SendMessageCommand);
    expect(h.metrics.counts).toEqual({});
  });

  test('a retry of the failed invocation within the claim is busy (it does not invoke twice concurrently)', async () => {
    const h = harness();
    lambdaMock.on(InvokeCommand).rejectsOnce(new Error('Rate exceeded')).resolves({ StatusCode: 202 });
    await expect(h.leader.handle(recordEvent(record()))).rejects.toThrow('Rate exceeded');

    await expect(h.leader.handle(recordEvent(record()))).rejects.toBeInstanceOf(StepBusyError);
    expect(lambdaMock).toHaveReceivedCommandTimes(InvokeCommand, 1);
  });

  test('PutEvents failing as a whole rejects and parks nothing', async () => {
    const h = harness();
    const rec = record({ channel: 'sms' });
    await h.leader.handle(recordEvent(rec));
    eventsMock.on(PutEventsCommand).rejects(new Error('Service unavailable'));

    await expect(respond(h, { event: { sent: true } })).rejects.toThrow(`PutEvents failed for run ${runIdOf(rec)}: Error: Service unavailable`);

    expect(sqsMock).not.toHaveReceivedCommand(SendMessageCommand);
    expect(h.memory.markDispatched).not.toHaveBeenCalledWith(runIdOf(rec), 2);
    expect(h.metrics.counts.sms).toEqual({ Steps: 1 });
  });

  test('PutEvents throttling the entry on every attempt rejects after the retries, parking nothing', async () => {
    const h = harness();
    await h.leader.handle(recordEvent(record({ channel: 'sms' })));
    eventsMock.on(PutEventsCommand).resolves({ FailedEntryCount: 1, Entries: [{ ErrorCode: 'ThrottlingException', ErrorMessage: 'Rate exceeded' }] });

    await expect(respond(h, { event: { sent: true } })).rejects.toThrow(/ThrottlingException: Rate exceeded/);

    expect(eventsMock).toHaveReceivedCommandTimes(PutEventsCommand, 4);
    expect(h.sleep).toHaveBeenCalledTimes(3);
    expect(sqsMock).not.toHaveReceivedCommand(SendMessageCommand);
  });

  test('SQS SendMessage throwing while parking rejects', async () => {
    const h = harness();
    sqsMock.on(SendMessageCommand).rejects(new Error('KMS.ThrottlingException'));

    await expect(h.leader.handle(recordEvent(record({ channel: 'fax' })))).rejects.toThrow('KMS.ThrottlingException');

    expect(sqsMock).toHaveReceivedCommandTimes(SendMessageCommand, 1);
    expect(h.metrics.counts).toEqual({});
  });

  test('a batch where one invoke fails attempts all three, then rejects with that error', async () => {
    const h = harness();
    lambdaMock.on(InvokeCommand).callsFake(async (input) => {
      const request = JSON.parse(Buffer.from(input.Payload).toString('utf8'));
      if (request.orchestration.record.id === 'rec-2') throw new Error('boom rec-2');
      return { StatusCode: 202 };
    });
    const records = ['rec-1', 'rec-2', 'rec-3'].map((id, i) => record({ id, channel: i === 1 ? 'sms' : 'email' }));

    await expect(h.leader.handle(batchEvent(records))).rejects.toThrow('boom rec-2');

    expect(lambdaMock).toHaveReceivedCommandTimes(InvokeCommand, 3);
    expect(h.memory.markDispatched).toHaveBeenCalledTimes(2);
    expect(h.metrics.counts).toEqual({ email: { Steps: 2 } });
  });

  test('a batch where two invokes fail rejects with an AggregateError of both', async () => {
    const h = harness();
    lambdaMock.on(InvokeCommand).callsFake(async (input) => {
      const request = JSON.parse(Buffer.from(input.Payload).toString('utf8'));
      if (request.orchestration.record.id !== 'rec-2') throw new Error(`boom ${request.orchestration.record.id}`);
      return { StatusCode: 202 };
    });
    const records = ['rec-1', 'rec-2', 'rec-3'].map((id) => record({ id }));

    const error = await h.leader.handle(batchEvent(records)).then(() => undefined, (e: unknown) => e);

    expect(error).toBeInstanceOf(AggregateError);
    expect((error as AggregateError).message).toBe('2 of 3 records failed; the invocation is retried');
    expect((error as AggregateError).errors.map((e: Error) => e.message).sort()).toEqual(['boom rec-1', 'boom rec-3']);
    expect(lambdaMock).toHaveReceivedCommandTimes(InvokeCommand, 3);
  });
});

// ---------------------------------------------------------------------------------------------
describe('Leader: redrive', () => {
  const message = (id: string, body: unknown) => ({ MessageId: id, ReceiptHandle: `rh-${id}`, Body: JSON.stringify(body) });
  const queue = (...messages: ReturnType<typeof message>[]) => {
    sqsMock.on(ReceiveMessageCommand).resolvesOnce({ Messages: messages }).resolves({ Messages: [] });
  };

  test('a parked follower failure at step 2 is resumed at step 2 (not step 1) and deleted', async () => {
    const h = harness();
    const rec = record();
    await h.leader.handle(recordEvent(rec));
    await respond(h, { event: { enriched: true } });
    await respond(h, { errorType: 'Error', errorMessage: 'boom' }, 'RetriesExhausted', 3);
    const [body] = parked();
    expect(body.step).toBe(2);
    lambdaMock.resetHistory();
    sqsMock.resetHistory();
    h.memory.claim.mockClear();
    queue(message('m-1', body));

    const report = await h.leader.handle({ redrive: { maxMessages: 5 } });

    expect(report.redrive).toEqual({ received: 1, resumed: 1, reparked: 0, dropped: 0, skipped: 0, failed: 0 });
    expect(sqsMock).toHaveReceivedCommandWith(ReceiveMessageCommand, { QueueUrl: CONFIG.deadLetterQueueUrl, MaxNumberOfMessages: 5 });
    expect(invocations()).toHaveLength(1);
    const [invocation] = invocations();
    expect(invocation.functionName).toBe(FOLLOWER_ARNS.render);
    expect(invocation.request).toMatchObject({ channel: 'email', step: 2, event: { enriched: true } });
    expect(invocation.request.orchestration).toMatchObject({
      runId: runIdOf(rec), follower: 'render', hops: 2, route: ['enrich', 'render'], startedAt: NOW_MS, record: metadataOf(rec),
    });
    expect(h.memory.claim).toHaveBeenCalledWith({ runId: runIdOf(rec), step: 2, channel: 'email', resume: true, parkToken: expect.any(String), dispatchId: expect.any(String) });
    expect(sqsMock).toHaveReceivedCommandTimes(DeleteMessageCommand, 1);
    expect(sqsMock).toHaveReceivedCommandWith(DeleteMessageCommand, { QueueUrl: CONFIG.deadLetterQueueUrl, ReceiptHandle: 'rh-m-1' });
    expect(sqsMock).not.toHaveReceivedCommand(SendMessageCommand);
  });

  test('a parked publish failure (step = route length + 1) is resumed at FINISH: published, nothing invoked', async () => {
    const h = harness();
    const rec = record();
    await h.leader.handle(recordEvent(rec));
    await respond(h, { event: { enriched: true } });
    eventsMock.on(PutEventsCommand).resolves({ FailedEntryCount: 1, Entries: [{ ErrorCode: 'MalformedDetail', ErrorMessage: 'bad' }] });
    await respond(h, { event: { rendered: true } });
    const [body] = parked();
    expect(body).toMatchObject({ reason: 'publish-failed', step: 3 });
    eventsMock.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [{ EventId: 'out-0' }] });
    lambdaMock.resetHistory();
    eventsMock.resetHistory();
    sqsMock.resetHistory();
    queue(message('m-1', body));

    const report = await h.leader.handle({ redrive: { maxMessages: 5 } });

    expect(report.redrive).toEqual({ received: 1, resumed: 1, reparked: 0, dropped: 0, skipped: 0, failed: 0 });
    expect(lambdaMock).not.toHaveReceivedCommand(InvokeCommand);
    expect(published().map((e) => e.detail)).toEqual([{
      ...metadataOf(rec),
      payload: { rendered: true },
      orchestration: {
        orchestrator: CONFIG.orchestratorId, runId: runIdOf(rec), route: ['enrich', 'render'], hops: 2, startedAt: iso(NOW_MS), completedAt: iso(NOW_MS),
      },
    }]);
    expect(h.memory.claim).toHaveBeenLastCalledWith({ runId: runIdOf(rec), step: 3, channel: 'email', resume: true, parkToken: expect.any(String), dispatchId: expect.any(String) });
    expect(sqsMock).not.toHaveReceivedCommand(SendMessageCommand);
    expect(sqsMock).toHaveReceivedCommandWith(DeleteMessageCommand, { ReceiptHandle: 'rh-m-1' });
  });

  test('a parked unknown channel (step 0) reads its route fresh, past the route cache, and starts at step 1', async () => {
    const inner = new MemoryRouteStore();
    const clock = { now: NOW_MS };
    const cached = new CachedRouteStore(inner, 60_000, () => clock.now);
    const forget = jest.spyOn(cached, 'forget');
    const h = harness({ routes: cached });
    const rec = record({ channel: 'push' });
    await h.leader.handle(recordEvent(rec));
    const [body] = parked();
    expect(body).toMatchObject({ reason: 'unknown-channel', step: 0 });
    await inner.put({ channel: 'push', followers: ['deliver'] }); // added behind the cache's back
    sqsMock.resetHistory();
    queue(message('m-1', body));

    const report = await h.leader.handle({ redrive: { maxMessages: 5 } });

    expect(report.redrive).toEqual({ received: 1, resumed: 1, reparked: 0, dropped: 0, skipped: 0, failed: 0 });
    // Each of the record's four route keys (tenant and event type, tenant, event type, channel), read twice: at first, and fresh.
    const keys = ['push \u27e8tenant="acme" eventType="OrderPlaced"\u27e9', 'push \u27e8tenant="acme" eventType=*\u27e9',
      'push \u27e8tenant=* eventType="OrderPlaced"\u27e9', 'push'];
    expect(forget.mock.calls.map(([key]) => key)).toEqual(keys);
    expect(inner.reads).toBe(2 * keys.length);
    expect(invocations()).toHaveLength(1);
    expect(invocations()[0].functionName).toBe(FOLLOWER_ARNS.deliver);
    expect(invocations()[0].request).toMatchObject({ channel: 'push', step: 1, event: rec.payload, orchestration: { hops: 1 } });
    expect(sqsMock).not.toHaveReceivedCommand(SendMessageCommand);
    expect(sqsMock).toHaveReceivedCommandWith(DeleteMessageCommand, { ReceiptHandle: 'rh-m-1' });
  });

  test('the leader\'s own Lambda on-failure record is handled as its request', async () => {
    const h = harness();
    const rec = record();
    queue(message('m-1', {
      version: '1.0',
      timestamp: '2027-01-15T08:01:00.000Z',
      requestContext: {
        requestId: 'leader-req',
        functionArn: 'arn:aws:lambda:us-east-1:111111111111:function:leader:$LATEST',
        condition: 'RetriesExhausted',
        approximateInvokeCount: 3,
      },
      requestPayload: recordEvent(rec),
      responseContext: { statusCode: 200, executedVersion: '$LATEST', functionError: 'Unhandled' },
      responsePayload: { errorType: 'StepBusyError', errorMessage: 'step 1 of run x is being dispatched by another invocation' },
    }));

    const report = await h.leader.handle({ redrive: { maxMessages: 5 } });

    expect(report.redrive).toEqual({ received: 1, resumed: 1, reparked: 0, dropped: 0, skipped: 0, failed: 0 });
    expect(invocations()).toHaveLength(1);
    expect(invocations()[0].functionName).toBe(FOLLOWER_ARNS.enrich);
    expect(invocations()[0].request).toMatchObject({ channel: 'email', step: 1, event: rec.payload });
    expect((h.routes as MemoryRouteStore).forget).toHaveBeenCalledWith('email');
    expect(sqsMock).not.toHaveReceivedCommand(SendMessageCommand);
  });

  test('an EventBridge dead-letter message (a plain CuratedRecord event) is routed', async () => {
    const h = harness();
    queue(message('m-1', recordEvent(record({ channel: 'sms' }))));

    const report = await h.leader.handle({ redrive: { maxMessages: 5 } });

    expect(report.redrive).toEqual({ received: 1, resumed: 1, reparked: 0, dropped: 0, skipped: 0, failed: 0 });
    expect(invocations().map((i) => [i.functionName, i.request.step])).toEqual([[FOLLOWER_ARNS.deliver, 1]]);
    expect(sqsMock).toHaveReceivedCommandWith(DeleteMessageCommand, { ReceiptHandle: 'rh-m-1' });
  });

  test('a message whose resume throws stays in the queue and counts as failed', async () => {
    const h = harness();
    lambdaMock.on(InvokeCommand).callsFake(async (input) => {
      if (input.FunctionName === FOLLOWER_ARNS.enrich) throw new Error('Rate exceeded');
      return { StatusCode: 202 };
    });
    queue(message('m-1', recordEvent(record({ channel: 'email' }))), message('m-2', recordEvent(record({ id: 'rec-2', channel: 'sms' }))));

    const report = await h.leader.handle({ redrive: { maxMessages: 5 } });

    expect(report.redrive).toEqual({ received: 2, resumed: 1, reparked: 0, dropped: 0, skipped: 0, failed: 1 });
    expect(lambdaMock).toHaveReceivedCommandTimes(InvokeCommand, 2);
    expect(sqsMock).toHaveReceivedCommandTimes(DeleteMessageCommand, 1);
    expect(sqsMock).toHaveReceivedCommandWith(DeleteMessageCommand, { ReceiptHandle: 'rh-m-2' });
    expect(sqsMock).not.toHaveReceivedCommandWith(DeleteMessageCommand, { ReceiptHandle: 'rh-m-1' });
    const failure = h.logger.lines.find((l) => l.message === 'redrive failed; the message stays in the queue');
    expect(failure?.fields).toMatchObject({ messageId: 'm-1', error: 'Error: Rate exceeded' });
  });

  test('receives until the queue is empty, at most maxMessages (default 10)', async () => {
    const h = harness();
    const events = Array.from({ length: 3 }, (_, i) => message(`m-${i}`, recordEvent(record({ id: `rec-${i}`, channel: 'sms' }))));
    sqsMock.on(ReceiveMessageCommand)
      .resolvesOnce({ Messages: events.slice(0, 2) })
      .resolvesOnce({ Messages: events.slice(2) })
      .resolves({ Messages: [] });

    const report = await h.leader.handle({ redrive: {} });

    expect(report.redrive).toEqual({ received: 3, resumed: 3, reparked: 0, dropped: 0, skipped: 0, failed: 0 });
    expect(sqsMock).toHaveReceivedNthCommandWith(1, ReceiveMessageCommand, { MaxNumberOfMessages: 10 });
    expect(sqsMock).toHaveReceivedCommandTimes(ReceiveMessageCommand, 3);
    expect(lambdaMock).toHaveReceivedCommandTimes(InvokeCommand, 3);
  });

  test('an event that is parked again during a redrive is not redriven again by the same redrive', async () => {
    // A queue that behaves like SQS: a sent message is visible at once unless delayed; a received one is hidden.
    const visible: { MessageId: string; ReceiptHandle: string; Body: string }[] = [];
    let sent = 0;
    let delayed = 0;
    sqsMock.on(SendMessageCommand).callsFake(async (input) => {
      sent++;
      if (input.DelaySeconds) delayed++;
      else visible.push({ MessageId: `p-${sent}`, ReceiptHandle: `rh-p-${sent}`, Body: input.MessageBody });
      return { MessageId: `p-${sent}` };
    });
    sqsMock.on(ReceiveMessageCommand).callsFake(async (input) => ({ Messages: visible.splice(0, input.MaxNumberOfMessages) }));
    const h = harness();
    await h.leader.handle(recordEvent(record({ channel: 'fax' }))); // parked: unknown channel
    expect(sent).toBe(1);

    const report = await h.leader.handle({ redrive: { maxMessages: 5 } });

    // The one parked event is taken once and parked once more (still unknown), hidden for 15 minutes.
    expect(report.redrive).toEqual({ received: 1, resumed: 0, reparked: 1, dropped: 0, skipped: 0, failed: 0 });
    expect(sent).toBe(2);
    expect(delayed).toBe(1);
    expect(sqsMock).toHaveReceivedCommandWith(SendMessageCommand, { DelaySeconds: 900 });
  });

  test('a publish failure after finish: true is redriven as FINISH, not as the next follower\'s step', async () => {
    const h = harness();
    const rec = record({ channel: 'letter' });
    await h.leader.handle(recordEvent(rec));
    eventsMock.on(PutEventsCommand).resolves({ FailedEntryCount: 1, Entries: [{ ErrorCode: 'MalformedDetail', ErrorMessage: 'bad' }] });
    await respond(h, { event: { done: 'early' }, finish: true });
    const [body] = parked();
    // An early finish drops the rest of the route: the parked step is FINISH, one past the route's end.
    expect(body).toMatchObject({ reason: 'publish-failed', route: ['enrich'], step: 2 });
    eventsMock.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [{ EventId: 'out-0' }] });
    lambdaMock.resetHistory();
    eventsMock.resetHistory();
    queue(message('m-1', body));

    await h.leader.handle({ redrive: { maxMessages: 5 } });

    // Published with route ["enrich"]; "render", which the early finish skipped, is not invoked.
    expect(lambdaMock).not.toHaveReceivedCommand(InvokeCommand);
    expect(published().map((e) => e.detail.orchestration.route)).toEqual([['enrich']]);
  });
});

// ---------------------------------------------------------------------------------------------
describe('leaderConfigFromEnv', () => {
  const env = {
    ORCHESTRATOR_ID: 'Stack/Orchestrator',
    CURATED_BUS_NAME: 'curated-bus',
    DEAD_LETTER_QUEUE_URL: CONFIG.deadLetterQueueUrl,
    MAX_HOPS: '7',
    MAX_EVENT_BYTES: '256000',
    STEP_RESULT_TIMEOUT_SECONDS: String(CONFIG.stepResultTimeoutMs / 1000),
  };

  test('reads the environment the construct sets; the followers come from the routes table', () => {
    const { followers, ...fromEnv } = CONFIG;
    expect(leaderConfigFromEnv(env)).toEqual(fromEnv);
  });

  test('names a missing variable', () => {
    expect(() => leaderConfigFromEnv({ ...env, DEAD_LETTER_QUEUE_URL: undefined })).toThrow('environment variable DEAD_LETTER_QUEUE_URL is not set');
  });

  // A MAX_HOPS that is not a number would be NaN, which would disable every hop-limit comparison.
  test('refuses a MAX_HOPS that is not a number', () => {
    expect(() => leaderConfigFromEnv({ ...env, MAX_HOPS: 'seven' })).toThrow(/MAX_HOPS/);
  });
});

// ---------------------------------------------------------------------------------------------
describe('ProgressStore', () => {
  const LEASE_MS = 45_000;
  const TTL_SECONDS = 604_800;
  const store = () => new ProgressStore(new DynamoDBClient({ region: 'us-east-1' }), 'progress', LEASE_MS, TTL_SECONDS, () => NOW_MS);
  const conditionFailed = () => new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} });
  // A stale claim never dispatched, not parked or parked without its message known to be sent.
  const TAKEOVER = '(#step = :k AND #claimedAt < :stale AND attribute_not_exists(#dispatched) '
    + 'AND (attribute_not_exists(#parked) OR attribute_not_exists(#parkSent)))';
  const updates = () => dynamoMock.commandCalls(UpdateItemCommand).map((c) => c.args[0].input);

  /** Every `#name` and `:value` is both defined and used: DynamoDB rejects unused (and undefined) ones. */
  function expectNoUnusedNamesOrValues(input: ReturnType<typeof updates>[number]) {
    const expressions = `${input.UpdateExpression ?? ''} ${input.ConditionExpression ?? ''}`;
    const usedNames = new Set(expressions.match(/#[A-Za-z0-9_]+/g));
    const usedValues = new Set(expressions.match(/:[A-Za-z0-9_]+/g));
    expect(Object.keys(input.ExpressionAttributeNames ?? {}).sort()).toEqual([...usedNames].sort());
    expect(Object.keys(input.ExpressionAttributeValues ?? {}).sort()).toEqual([...usedValues].sort());
  }

  beforeEach(() => {
    dynamoMock.on(UpdateItemCommand).resolves({});
  });

  test('claiming step 1 writes the step if the run has no item (or its claim is stale and undispatched)', async () => {
    const progress = store();

    await expect(progress.claim({ runId: 'run-1', step: 1, channel: 'email' })).resolves.toBe('claimed');

    const [input] = updates();
    expect(input).toEqual({
      TableName: 'progress',
      Key: { runId: { S: 'run-1' } },
      UpdateExpression: 'SET #step = :k, #claimedAt = :now, #channel = :channel, #expiresAt = :exp '
        + 'REMOVE #dispatched, #parked, #parkSent, #parkedFrom, #resuming, #stallAt, #stepInput',
      ConditionExpression: `${TAKEOVER} OR attribute_not_exists(#run)`,
      ExpressionAttributeNames: {
        '#step': 'step',
        '#claimedAt': 'claimedAt',
        '#dispatched': 'dispatched',
        '#parked': 'parked',
        '#parkSent': 'parkSent',
        '#parkedFrom': 'parkedFrom',
        '#resuming': 'resuming',
        '#stallAt': 'stallAt',
        '#stepInput': 'stepInput',
        '#channel': 'channel',
        '#expiresAt': 'expiresAt',
        '#run': 'runId',
      },
      ExpressionAttributeValues: {
        ':k': { N: '1' },
        ':stale': { N: String(NOW_MS - LEASE_MS) },
        ':now': { N: String(NOW_MS) },
        ':exp': { N: String(Math.floor(NOW_MS / 1000) + TTL_SECONDS) },
        ':channel': { S: 'email' },
      },
    });
    expectNoUnusedNamesOrValues(input);
    expect(progress.writes).toBe(1);
    expect(dynamoMock).not.toHaveReceivedCommand(GetItemCommand);
  });

  test('claiming step k > 1 requires the run at step k - 1', async () => {
    await expect(store().claim({ runId: 'run-1', step: 3, channel: 'email' })).resolves.toBe('claimed');

    const [input] = updates();
    expect(input.ConditionExpression).toBe(`${TAKEOVER} OR #step = :prev`);
    expect(input.ExpressionAttributeValues![':prev']).toEqual({ N: '2' });
    expect(input.ExpressionAttributeValues![':k']).toEqual({ N: '3' });
    expect(input.ExpressionAttributeNames).not.toHaveProperty('#run');
    expectNoUnusedNamesOrValues(input);
  });

  test.each([3, 1])('a resume of step %d needs the message holding the parked step (its token is kept), or an expired run', async (step) => {
    await expect(store().claim({ runId: 'run-1', step, channel: 'email', resume: true, parkToken: 'token-1' })).resolves.toBe('claimed');

    const [input] = updates();
    expect(input.ConditionExpression).toBe('attribute_not_exists(#run) OR ((#step = :k AND attribute_not_exists(#dispatched) '
      + 'AND (#parked = :token OR (#parkedFrom = :token AND attribute_not_exists(#parkSent)))) '
      + 'AND (attribute_not_exists(#resuming) OR #claimedAt < :stale))');
    expect(input.ExpressionAttributeValues![':token']).toEqual({ S: 'token-1' });
    // The token stays until markDispatched: a resume that fails before it can be tried again.
    expect(input.UpdateExpression).toBe('SET #step = :k, #claimedAt = :now, #channel = :channel, #expiresAt = :exp, #resuming = :true, '
      + '#parked = :token REMOVE #dispatched, #stallAt, #stepInput');
    expect(input.ExpressionAttributeNames!['#run']).toBe('runId');
    expectNoUnusedNamesOrValues(input);
  });

  test('a resume without a token (a message parked before tokens) needs an expired run, and names only what it uses', async () => {
    await store().claim({ runId: 'run-1', step: 2, channel: 'email', resume: true });
    const [input] = updates();
    expect(input.ConditionExpression).toBe('attribute_not_exists(#run)');
    expectNoUnusedNamesOrValues(input);
  });

  test('a repark replaces the redriven message\'s token with a new one, if that message holds the step', async () => {
    await expect(store().markParked('run-1', 2, 'email', 'token-2', 'token-1')).resolves.toBe(true);
    const [input] = updates();
    expect(input.ConditionExpression).toBe('attribute_not_exists(#run) OR (#step = :k AND attribute_not_exists(#dispatched) '
      + 'AND (#parked = :token OR (#parkedFrom = :token AND attribute_not_exists(#parkSent))))');
    expect(input.ExpressionAttributeValues).toMatchObject({ ':token': { S: 'token-1' }, ':new': { S: 'token-2' } });
    expect(input.UpdateExpression).toBe('SET #step = :k, #parked = :new, #parkedFrom = :token, #claimedAt = :now, #channel = :channel, '
      + '#expiresAt = :exp REMOVE #dispatched, #parkSent, #resuming, #stallAt, #stepInput');
    expectNoUnusedNamesOrValues(input);
  });

  test('markParked parks a step once per token; a duplicate with another token is refused', async () => {
    await expect(store().markParked('run-1', 2, 'email', 'token-1')).resolves.toBe(true);
    const [input] = updates();
    expect(input.ConditionExpression).toBe('attribute_not_exists(#run) OR #step < :k '
      + 'OR (#step = :k AND (attribute_not_exists(#parked) OR (#parked = :token AND attribute_not_exists(#parkSent))))');
    // The step's kept input stays until the message is sent (markParkSent removes it); a new
    // park is not sent yet, whatever an earlier one was.
    expect(input.UpdateExpression).toBe('SET #step = :k, #parked = :token, #claimedAt = :now, #channel = :channel, #expiresAt = :exp '
      + 'REMOVE #dispatched, #parkedFrom, #resuming, #parkSent');
    expectNoUnusedNamesOrValues(input);
    dynamoMock.on(UpdateItemCommand).rejects(new ConditionalCheckFailedException({ message: 'no', $metadata: {} }));
    await expect(store().markParked('run-1', 2, 'email', 'token-2')).resolves.toBe(false);
  });

  test.each([
    ['the run is past the step', 2, { step: 3 }, 'replay', undefined],
    ['the step was dispatched', 2, { step: 2, dispatched: true }, 'replay', undefined],
    ['the step is claimed within its lease, not dispatched', 2, { step: 2, claimedAt: NOW_MS - 1_000 }, 'busy', undefined],
    ['the run is behind the previous step', 3, { step: 1, dispatched: true }, 'out-of-order', undefined],
    ['the run has no item', 2, undefined, 'out-of-order', undefined],
    ['(a resume) the token holds the step, resumed within the lease', 2, { step: 2, parked: 'token-1', resuming: true }, 'busy', 'token-1'],
    ['(a resume) a newer park replaced the token, its message not yet sent', 2, { step: 2, parked: 'token-2', parkedFrom: 'token-1' }, 'busy', 'token-1'],
    ['(a resume) a newer park replaced the token and its message was sent', 2, { step: 2, parked: 'token-2', parkedFrom: 'token-1', parkSent: true },
      'superseded', 'token-1'],
    ['(a resume) the resumed step was dispatched', 2, { step: 2, dispatched: true }, 'superseded', 'token-1'],
    ['(a resume) the run moved on', 2, { step: 3 }, 'superseded', 'token-1'],
  ])('a refused claim is classified by a consistent read: %s', async (_name, step, item, outcome, parkToken) => {
    dynamoMock.on(UpdateItemCommand).rejects(conditionFailed());
    dynamoMock.on(GetItemCommand).resolves(item ? { Item: marshall({ runId: 'run-1', channel: 'email', ...item }) } : {});

    await expect(store().claim({ runId: 'run-1', step, channel: 'email', resume: parkToken !== undefined, parkToken })).resolves.toBe(outcome);

    expect(dynamoMock).toHaveReceivedCommandWith(GetItemCommand, { TableName: 'progress', Key: { runId: { S: 'run-1' } }, ConsistentRead: true });
  });

  test('a conditional failure recognised by its name only is classified too', async () => {
    dynamoMock.on(UpdateItemCommand).rejects(Object.assign(new Error('failed'), { name: 'ConditionalCheckFailedException' }));
    dynamoMock.on(GetItemCommand).resolves({ Item: marshall({ runId: 'run-1', step: 4 }) });

    await expect(store().claim({ runId: 'run-1', step: 2, channel: 'email' })).resolves.toBe('replay');
  });

  test('any other error of the claim is rethrown without a read', async () => {
    dynamoMock.on(UpdateItemCommand).rejects(Object.assign(new Error('slow down'), { name: 'ProvisionedThroughputExceededException' }));

    await expect(store().claim({ runId: 'run-1', step: 1, channel: 'email' })).rejects.toThrow('slow down');
    expect(dynamoMock).not.toHaveReceivedCommand(GetItemCommand);
  });

  test('markDispatched sets dispatched on the step at this dispatch, never over a park made since, with only the names it uses', async () => {
    const progress = store();

    await progress.markDispatched('run-1', 2, 'dispatch-1');

    const [input] = updates();
    expect(input).toEqual({
      TableName: 'progress',
      Key: { runId: { S: 'run-1' } },
      UpdateExpression: 'SET #dispatched = :true REMOVE #parked, #parkSent, #parkedFrom, #resuming',
      ConditionExpression: '#step = :k AND #dispatchId = :dispatch AND (attribute_not_exists(#parked))',
      ExpressionAttributeNames: {
        '#step': 'step',
        '#dispatched': 'dispatched',
        '#parked': 'parked',
        '#parkSent': 'parkSent',
        '#parkedFrom': 'parkedFrom',
        '#resuming': 'resuming',
        '#dispatchId': 'dispatchId',
      },
      ExpressionAttributeValues: { ':k': { N: '2' }, ':true': { BOOL: true }, ':dispatch': { S: 'dispatch-1' } },
    });
    expectNoUnusedNamesOrValues(input);
    expect(progress.writes).toBe(1);
  });

  test('markDispatched of a resumed step consumes its own park token only', async () => {
    await store().markDispatched('run-1', 2, 'dispatch-1', undefined, 'token-1');
    const [input] = updates();
    expect(input.ConditionExpression).toBe('#step = :k AND #dispatchId = :dispatch AND (attribute_not_exists(#parked) OR #parked = :token)');
    expect(input.ExpressionAttributeValues![':token']).toEqual({ S: 'token-1' });
    expectNoUnusedNamesOrValues(input);
  });

  test('markDispatched of a follower step keeps its input and stall time, which the sparse index holds until the result', async () => {
    await store().markDispatched('run-1', 2, 'dispatch-1', { input: new Uint8Array([1, 2, 3]), stallAt: NOW_MS + 60_000 });
    const [input] = updates();
    expect(input.UpdateExpression).toBe('SET #dispatched = :true, #stallAt = :stallAt, #stepInput = :input REMOVE #parked, #parkSent, #parkedFrom, #resuming');
    expect(input.ExpressionAttributeValues).toEqual({
      ':k': { N: '2' },
      ':true': { BOOL: true },
      ':dispatch': { S: 'dispatch-1' },
      ':stallAt': { N: String(NOW_MS + 60_000) },
      ':input': { B: new Uint8Array([1, 2, 3]) },
    });
    expectNoUnusedNamesOrValues(input);
  });

  test('findStalled scans the keys-only index for steps past their stall time, page by page, then reads each item, up to the limit', async () => {
    const key = (runId: string, stallAt: number) => ({ runId: { S: runId }, stallAt: { N: String(stallAt) } });
    const item = (runId: string, stallAt: number) => ({ ...key(runId, stallAt), step: { N: '2' }, stepInput: { B: new Uint8Array([7]) } });
    dynamoMock.on(ScanCommand).resolvesOnce({ Items: [key('a', 1), key('gone', 1)], LastEvaluatedKey: key('gone', 1) })
      .resolvesOnce({ Items: [key('b', 2), key('c', 3)] });
    dynamoMock.on(GetItemCommand, { Key: { runId: { S: 'a' } } }).resolves({ Item: item('a', 1) })
      // Its result came after the scan: the step moved on, no longer awaited.
      .on(GetItemCommand, { Key: { runId: { S: 'gone' } } }).resolves({ Item: { runId: { S: 'gone' }, step: { N: '3' } } })
      .on(GetItemCommand, { Key: { runId: { S: 'b' } } }).resolves({ Item: item('b', 2) });
    const found = await store().findStalled(NOW_MS, 2);
    expect(found).toEqual([
      { runId: 'a', step: 2, stallAt: 1, input: new Uint8Array([7]) }, { runId: 'b', step: 2, stallAt: 2, input: new Uint8Array([7]) },
    ]);
    const scans = dynamoMock.commandCalls(ScanCommand).map((c) => c.args[0].input);
    expect(scans[0]).toEqual({
      TableName: 'progress',
      IndexName: 'stalled-steps',
      FilterExpression: '#stallAt < :now',
      ExpressionAttributeNames: { '#stallAt': 'stallAt' },
      ExpressionAttributeValues: { ':now': { N: String(NOW_MS) } },
      ExclusiveStartKey: undefined,
    });
    expect(scans[1].ExclusiveStartKey).toEqual(key('gone', 1));
    // 'c' is past the limit: never read.
    expect(dynamoMock.commandCalls(GetItemCommand).map((c) => c.args[0].input.Key!.runId.S)).toEqual(['a', 'gone', 'b']);
    expect(dynamoMock.commandCalls(GetItemCommand).every((c) => c.args[0].input.ConsistentRead === true)).toBe(true);
  });

  test('markDispatched swallows a conditional failure (the run moved on) but rethrows other errors', async () => {
    dynamoMock.on(UpdateItemCommand).rejectsOnce(conditionFailed()).rejects(new Error('network down'));
    const progress = store();

    await expect(progress.markDispatched('run-1', 2, 'dispatch-1')).resolves.toBeUndefined();
    await expect(progress.markDispatched('run-1', 2, 'dispatch-1')).rejects.toThrow('network down');
  });
});

// ---------------------------------------------------------------------------------------------
describe('route stores', () => {
  test('DynamoRouteStore reads consistently and unmarshalls; writes and deletes by channel', async () => {
    dynamoMock.on(GetItemCommand).resolvesOnce({ Item: marshall({ channel: 'email', followers: ['enrich'] }) }).resolves({});
    dynamoMock.on(PutItemCommand).resolves({});
    dynamoMock.on(DeleteItemCommand).resolves({});
    const store = new DynamoRouteStore(new DynamoDBClient({ region: 'us-east-1' }), 'routes');

    await expect(store.get('email')).resolves.toEqual({ channel: 'email', followers: ['enrich'] });
    await expect(store.get('fax')).resolves.toBeUndefined();
    await store.put({ channel: 'sms', followers: ['deliver'], description: undefined } as unknown as RouteItem);
    await store.delete('sms');

    expect(store.reads).toBe(2);
    expect(dynamoMock).toHaveReceivedCommandWith(GetItemCommand, { TableName: 'routes', Key: { channel: { S: 'email' } }, ConsistentRead: true });
    expect(dynamoMock).toHaveReceivedCommandWith(PutItemCommand, { TableName: 'routes', Item: marshall({ channel: 'sms', followers: ['deliver'] }) });
    expect(dynamoMock).toHaveReceivedCommandWith(DeleteItemCommand, { TableName: 'routes', Key: { channel: { S: 'sms' } } });
  });

  describe('CachedRouteStore', () => {
    const TTL = 30_000;
    function cachedOver(read: (channel: string) => Promise<unknown>, ttl = TTL) {
      const clock = { now: NOW_MS };
      const inner: RouteStore = { get: jest.fn(read), put: jest.fn(async () => {}), delete: jest.fn(async () => {}) };
      return { cache: new CachedRouteStore(inner, ttl, () => clock.now), inner, clock };
    }
    const email = { channel: 'email', followers: ['enrich'] };

    test('a second get within the TTL does not read; after the TTL it reads again', async () => {
      const { cache, inner, clock } = cachedOver(async () => email);

      await expect(cache.get('email')).resolves.toEqual(email);
      clock.now += TTL - 1;
      await expect(cache.get('email')).resolves.toEqual(email);
      expect(inner.get).toHaveBeenCalledTimes(1);

      clock.now += 2;
      await cache.get('email');
      expect(inner.get).toHaveBeenCalledTimes(2);
    });

    test('a miss (unknown channel) is cached too', async () => {
      const { cache, inner } = cachedOver(async () => undefined);

      await expect(cache.get('fax')).resolves.toBeUndefined();
      await expect(cache.get('fax')).resolves.toBeUndefined();

      expect(inner.get).toHaveBeenCalledTimes(1);
    });

    test('a rejected read is not cached: the next get reads again', async () => {
      const read = jest.fn<Promise<unknown>, [string]>().mockRejectedValueOnce(new Error('throttled')).mockResolvedValue(email);
      const { cache, inner } = cachedOver(read);

      await expect(cache.get('email')).rejects.toThrow('throttled');
      await expect(cache.get('email')).resolves.toEqual(email);

      expect(inner.get).toHaveBeenCalledTimes(2);
    });

    test('a TTL of 0 reads every time', async () => {
      const { cache, inner } = cachedOver(async () => email, 0);

      await cache.get('email');
      await cache.get('email');
      await cache.get('email');

      expect(inner.get).toHaveBeenCalledTimes(3);
    });

    test('concurrent lookups share one read; forget drops the entry', async () => {
      const { cache, inner } = cachedOver(async () => email);

      await Promise.all([cache.get('email'), cache.get('email')]);
      expect(inner.get).toHaveBeenCalledTimes(1);
      cache.forget('email');
      await cache.get('email');
      expect(inner.get).toHaveBeenCalledTimes(2);
      await cache.get('email');
      expect(inner.get).toHaveBeenCalledTimes(2);
    });
  });
});

// ---------------------------------------------------------------------------------------------
describe('route schema', () => {
  test('a valid route passes', () => {
    expect(checkRoute({ channel: 'email', followers: ['enrich', 'render'], description: 'Email', updatedAt: 'x', updatedBy: 'api' }))
      .toEqual({ valid: true, errors: [] });
  });

  test('route keys: the channel alone, or the channel with its tenant and event type as JSON; keys over DynamoDB\'s 2,048 bytes are refused and never looked up', () => {
    expect(routeKey({ channel: 'email' })).toBe('email');
    expect(routeKey({ channel: 'email', tenant: 'acme' })).toBe('email \u27e8tenant="acme" eventType=*\u27e9');
    expect(routeKey({ channel: 'email', eventType: 'a "quoted" ⟩ type' })).toBe('email \u27e8tenant=* eventType="a \\"quoted\\" ⟩ type"\u27e9');
    // A tenant named "*" is not "any tenant".
    expect(routeKey({ channel: 'email', tenant: '*' })).not.toBe(routeKey({ channel: 'email' }));
    expect(routeKeysOf('email', 'acme', 'OrderShipped')).toEqual([
      'email \u27e8tenant="acme" eventType="OrderShipped"\u27e9', 'email \u27e8tenant="acme" eventType=*\u27e9',
      'email \u27e8tenant=* eventType="OrderShipped"\u27e9', 'email',
    ]);
    expect(routeKeysOf('email', null, '')).toEqual(['email']);
    // Control characters take 6 bytes each in JSON: a long channel, tenant and event type of them make a key over the limit.
    const control = '\u0001'.repeat(256);
    expect(checkRoute({ channel: 'x'.repeat(256), tenant: control, eventType: control, followers: ['enrich'] })).toEqual({
      valid: false, errors: [expect.stringMatching(/ is 3\d{3} bytes; allowed: at most 2048 \(DynamoDB's partition key limit\): shorten/)],
    });
    expect(checkRoute({ channel: 'x'.repeat(256), tenant: control, followers: ['enrich'] }).valid).toBe(true);
    // The key of both is over the limit (no route can be there); the tenant's and the event type's alone are not.
    const keys = routeKeysOf('x'.repeat(256), control, control);
    expect(keys).toHaveLength(3);
    expect(keys).not.toContain(routeKey({ channel: 'x'.repeat(256), tenant: control, eventType: control }));
  });

  test('steps with parameters (any JSON) beside bare names pass; names and parameters are read in route order', () => {
    const route = {
      channel: 'email',
      followers: ['enrich', { follower: 'render', parameters: { template: 'welcome', locale: 'fr-FR' } }, { follower: 'deliver' },
        { follower: 'deliver', parameters: ['a', 1, null] }],
    };
    expect(checkRoute(route)).toEqual({ valid: true, errors: [] });
    expect(followerNames(route)).toEqual(['enrich', 'render', 'deliver', 'deliver']);
    expect(routeParameters(route)).toEqual([null, { template: 'welcome', locale: 'fr-FR' }, null, ['a', 1, null]]);
    expect(routeParameters({ channel: 'sms', followers: ['enrich', { follower: 'deliver' }] })).toBeUndefined();
  });

  const CHANNEL_ERROR = '/channel must be printable ASCII with at least one non-space character (it is a CloudWatch dimension value of the metrics)';
  test.each([
    ['no followers', { channel: 'email', followers: [] }, '/followers must NOT have fewer than 1 items'],
    ['a bad follower name', { channel: 'email', followers: ['enrich', 'bad name!'] }, '/followers/1 must be a follower name of 1 to 64 letters, digits, "_" or "-", or { "follower": <such a name>, "parameters"?: <any JSON> } and nothing else'],
    ['a blank channel', { channel: '   ', followers: ['enrich'] }, CHANNEL_ERROR],
    ['a non-ASCII channel', { channel: 'correo-electrónico', followers: ['enrich'] }, CHANNEL_ERROR],
    ['a step with an extra key', { channel: 'email', followers: [{ follower: 'render', parameters: {}, retries: 2 }] },
      '/followers/0 must be a follower name of 1 to 64 letters, digits, "_" or "-", or { "follower": <such a name>, "parameters"?: <any JSON> } and nothing else'],
    ['a step without its follower', { channel: 'email', followers: [{ parameters: { template: 'welcome' } }] },
      '/followers/0 must be a follower name of 1 to 64 letters, digits, "_" or "-", or { "follower": <such a name>, "parameters"?: <any JSON> } and nothing else'],
    ['an extra property', { channel: 'email', followers: ['enrich'], owner: 'ops' },
      '/ must NOT have additional properties ("owner"; allowed: channel, tenant, eventType, followers, description, updatedAt, updatedBy)'],
  ])('a route with %s is invalid, with the reason', (_name, route, error) => {
    expect(checkRoute(route)).toEqual({ valid: false, errors: [error] });
  });

  test('16 followers are refused with the reason (Lambda\'s recursion detection stops a function\'s 17th invocation by one event)', () => {
    const check = checkRoute({ channel: 'email', followers: Array(16).fill('enrich') });
    expect(check.valid).toBe(false);
    expect(check.errors).toHaveLength(1);
    expect(check.errors[0]).toMatch(/^\/followers has more than 15 followers; allowed: 1 to 15/);
    expect(check.errors[0]).toContain('1 + 15 = 16');
    expect(check.errors[0]).toContain('recursive loop detection, which stops a function invoked more than 16 times by one event');
    expect(checkRoute({ channel: 'email', followers: Array(15).fill('enrich') }, 15).valid).toBe(true);
  });

  test('more followers than maxHops are refused', () => {
    expect(checkRoute({ channel: 'email', followers: ['enrich', 'render', 'deliver'] }, 2)).toEqual({
      valid: false, errors: ['/followers has 3 followers; allowed: at most 2 (the orchestrator\'s hop limit)'],
    });
    expect(checkRoute({ channel: 'email', followers: ['enrich', 'render'] }, 2).valid).toBe(true);
  });

  test('unregisteredFollowers lists the unknown names in route order', () => {
    expect(unregisteredFollowers({ channel: 'c', followers: ['x', 'enrich', 'a'] }, ['enrich', 'render'])).toEqual(['x', 'a']);
    expect(unregisteredFollowers({ channel: 'c', followers: ['enrich'] }, new Set(['enrich']))).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
describe('route writer', () => {
  const WRITER = { followerNames: ['enrich', 'render', 'deliver'], maxHops: 7 };
  const DEPLOYED_AT = new Date('2027-01-15T08:00:00.000Z');
  const fakeStore = () => ({
    get: jest.fn(async () => undefined),
    put: jest.fn(async (_route: RouteItem) => {}),
    delete: jest.fn(async (_channel: string) => {}),
  });

  test('validateRoutes returns valid routes unchanged', () => {
    expect(validateRoutes(ROUTES, WRITER)).toBe(ROUTES);
  });

  test('validateRoutes lists every problem in one error', () => {
    const routes = [
      { channel: 'email', followers: ['enrich'] },
      { channel: 'sms', followers: [] },
      { channel: 'push', followers: ['enrich', 'ghost'] },
      { channel: 'email', followers: ['render'] },
    ];

    expect(() => validateRoutes(routes, WRITER)).toThrow(
      'invalid routes, nothing written: route 1 ("sms"): /followers must NOT have fewer than 1 items'
      + ' | route 2 ("push"): followers ["ghost"] are not registered; allowed: ["deliver","enrich","render"]'
      + ' | route 3 ("email"): the route of this channel is given twice',
    );
  });

  test('validateRoutes refuses a value that is not a list', () => {
    expect(() => validateRoutes({ channel: 'email' }, WRITER)).toThrow('routes must be a list of route items, got {"channel":"email"}');
  });

  test('an invalid route writes nothing, neither at deploy nor through a request', async () => {
    const store = fakeStore();
    const routes = [{ channel: 'email', followers: ['enrich'] }, { channel: 'sms', followers: ['ghost'] }];

    await expect(handleRoutesResource({ RequestType: 'Create', ResourceProperties: { Routes: JSON.stringify(routes) } }, store, WRITER))
      .rejects.toThrow(/nothing written: route 1 \("sms"\): followers \["ghost"\] are not registered/);
    await expect(handleRouteWriteRequest({ putRoutes: routes, deleteChannels: ['push'] }, store, WRITER)).rejects.toThrow(/nothing written/);

    expect(store.put).not.toHaveBeenCalled();
    expect(store.delete).not.toHaveBeenCalled();
  });

  test('Create writes every route with updatedBy "deploy" and updatedAt', async () => {
    const store = fakeStore();

    const result = await handleRoutesResource({ RequestType: 'Create', ResourceProperties: { Routes: JSON.stringify(ROUTES) } }, store, WRITER,
      () => DEPLOYED_AT);

    expect(result).toEqual({ PhysicalResourceId: ROUTES_RESOURCE_ID, Data: { written: 3, deleted: 0 } });
    expect(ROUTES_RESOURCE_ID).toBe('orchestrator-routes');
    expect(store.put.mock.calls.map(([route]) => route)).toEqual(ROUTES.map((r) => ({ ...r, updatedAt: DEPLOYED_AT.toISOString(), updatedBy: 'deploy' })));
    expect(store.delete).not.toHaveBeenCalled();
  });

  test('Update writes the routes, deletes the channels it removed and keeps the physical id', async () => {
    const store = fakeStore();
    const routes = [{ channel: 'email', followers: ['render'] }, { channel: 'push', followers: ['deliver'] }];

    const result = await handleRoutesResource({
      RequestType: 'Update',
      PhysicalResourceId: 'orchestrator-routes',
      ResourceProperties: { Routes: JSON.stringify(routes) },
      OldResourceProperties: { Routes: JSON.stringify(ROUTES) },
    }, store, WRITER, () => DEPLOYED_AT);

    expect(result).toEqual({ PhysicalResourceId: 'orchestrator-routes', Data: { written: 2, deleted: 2 } });
    expect(store.put.mock.calls.map(([route]) => route.channel)).toEqual(['email', 'push']);
    expect(store.put).toHaveBeenCalledWith({ channel: 'email', followers: ['render'], updatedAt: DEPLOYED_AT.toISOString(), updatedBy: 'deploy' });
    expect(store.delete.mock.calls.map(([channel]) => channel)).toEqual(['sms', 'letter']);
  });

  test('a deploy of 200 routes answers within CloudFormation\'s 4,096-byte custom resource response', async () => {
    // "The total size of the response body can't exceed 4096 bytes" (AWS CloudFormation User Guide,
    // custom resource response objects). The Provider framework adds its own fields (stack id,
    // request id, logical id, reason) to what the handler returns: leave it 1 KB of them.
    const routes = Array.from({ length: 200 }, (_, i) => ({ channel: `${'c'.repeat(250)}-${String(i).padStart(4, '0')}`, followers: ['enrich'] }));
    const create = await handleRoutesResource({ RequestType: 'Create', ResourceProperties: { Routes: JSON.stringify(routes) } }, fakeStore(), WRITER);
    const update = await handleRoutesResource({
      RequestType: 'Update',
      PhysicalResourceId: ROUTES_RESOURCE_ID,
      ResourceProperties: { Routes: '[]' },
      OldResourceProperties: { Routes: JSON.stringify(routes) },
    }, fakeStore(), WRITER);

    expect(JSON.stringify(create).length).toBeLessThan(4096 - 1024);
    expect(JSON.stringify(update).length).toBeLessThan(4096 - 1024);
    expect(create.Data).toEqual({ written: 200, deleted: 0 });
    expect(update.Data).toEqual({ written: 0, deleted: 200 });
  });

  test('Delete writes and deletes nothing', async () => {
    const store = fakeStore();

    const result = await handleRoutesResource({
      RequestType: 'Delete', PhysicalResourceId: 'orchestrator-routes', ResourceProperties: { Routes: JSON.stringify(ROUTES) },
    }, store, WRITER);

    expect(result).toEqual({ PhysicalResourceId: 'orchestrator-routes', Data: { written: 0, deleted: 0 } });
    expect(store.put).not.toHaveBeenCalled();
    expect(store.delete).not.toHaveBeenCalled();
  });

  test('a write request puts routes (updatedBy "api") and deletes channels', async () => {
    const store = fakeStore();

    const result = await handleRouteWriteRequest({ putRoutes: [{ channel: 'push', followers: ['deliver'] }], deleteChannels: ['fax'] }, store, WRITER,
      () => DEPLOYED_AT);

    expect(result).toEqual({ written: ['push'], deleted: ['fax'] });
    expect(store.put).toHaveBeenCalledWith({ channel: 'push', followers: ['deliver'], updatedAt: DEPLOYED_AT.toISOString(), updatedBy: 'api' });
    expect(store.delete).toHaveBeenCalledWith('fax');
  });

  test('an empty write request is refused', async () => {
    const store = fakeStore();

    await expect(handleRouteWriteRequest({}, store, WRITER)).rejects.toThrow('expected { "putRoutes": [route, ...], "deleteChannels": [channel, ...], "deleteRoutes": [{ "channel", "tenant"?, "eventType"? }, ...] }, got {}');
    expect(store.put).not.toHaveBeenCalled();
  });

  test.each([
    ['a string', 'sms'],
    ['an empty name', ['sms', '']],
    ['a non-string', ['sms', 7]],
    ['the followers item', ['\u27e8followers\u27e9']],
  ])('deleteChannels as %s is refused before anything is written', async (_name, deleteChannels) => {
    const store = fakeStore();
    const request = { putRoutes: [{ channel: 'push', followers: ['deliver'] }], deleteChannels } as unknown as Parameters<typeof handleRouteWriteRequest>[0];

    await expect(handleRouteWriteRequest(request, store, WRITER)).rejects.toThrow(/^deleteChannels must be a list of channel names \(printable ASCII\), got /);
    expect(store.put).not.toHaveBeenCalled();
    expect(store.delete).not.toHaveBeenCalled();
  });
});

// ---------------------------------------------------------------------------------------------
describe('follower helper', () => {
  const request: FollowerRequest<{ n: number }> = {
    channel: 'email',
    step: 1,
    event: { n: 1 },
    orchestration: {
      orchestrator: CONFIG.orchestratorId,
      runId: 'run-1',
      route: ['enrich'],
      follower: 'enrich',
      hops: 1,
      startedAt: NOW_MS,
      record: {},
      dispatchId: 'dispatch-1',
      maxResultBytes: 1000,
    },
  };

  test('defineFollower returns { event } with what the step returned', async () => {
    const step = jest.fn(async (r: FollowerRequest<{ n: number }>) => ({ n: r.event.n + 1 }));

    await expect(defineFollower(step)(request)).resolves.toEqual({ event: { n: 2 } });
    expect(step).toHaveBeenCalledWith(request);
  });

  test('finishRoute(x) becomes { event: x, finish: true }', async () => {
    await expect(defineFollower(() => finishRoute({ n: 9 }))(request)).resolves.toEqual({ event: { n: 9 }, finish: true });
  });

  test('a non-follower input throws a TypeError that says what was expected', async () => {
    const step = jest.fn();
    const handler = defineFollower(step);

    await expect(handler({ hello: 1 } as unknown as FollowerRequest)).rejects.toThrow(TypeError);
    await expect(handler({ hello: 1 } as unknown as FollowerRequest))
      .rejects.toThrow('not a follower request: expected { channel, step, event, orchestration } from a LeaderFollowerOrchestrator, got {"hello":1}');
    expect(step).not.toHaveBeenCalled();
  });

  test('a step returning undefined throws a TypeError', async () => {
    await expect(defineFollower(() => undefined)(request)).rejects.toThrow(
      new TypeError('follower step 1 of channel "email" returned undefined; return the processed event (or finishRoute(event))'),
    );
  });

  // finishRoute(undefined) would lose `event` in JSON, and the leader would park the result.
  test('finishRoute(undefined) is refused like a step returning undefined', async () => {
    await expect(defineFollower(() => finishRoute(undefined))(request)).rejects.toThrow(TypeError);
  });
});
