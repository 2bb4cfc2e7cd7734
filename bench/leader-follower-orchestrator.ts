import { CreateTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { CreateEventBusCommand, PutEventsCommand, PutRuleCommand, PutTargetsCommand } from '@aws-sdk/client-eventbridge';
import { InvokeCommand } from '@aws-sdk/client-lambda';
import { CreateQueueCommand, DeleteMessageBatchCommand, GetQueueAttributesCommand, ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { Leader, LeaderConfig, LeaderMetrics } from '../src/leader-follower-orchestrator/leader-core';
import {
  DEFAULT_STEP_EVENT_BYTES, FollowerRequest, FOLLOWERS_ITEM_KEY, FollowersItem, RouteItem,
} from '../src/leader-follower-orchestrator/orchestrator-contract';
import { ProgressStore } from '../src/leader-follower-orchestrator/progress-core';
import { followerNames } from '../src/leader-follower-orchestrator/route-schema';
import { CachedRouteStore, DynamoRouteStore, RouteReader, RouteStore } from '../src/leader-follower-orchestrator/route-store-core';
import { SILENT_LOGGER } from '../src/runtime/core-logger';
import { buildRecord, CURATED_SOURCE, RECORD_DETAIL_TYPE, RecordEnvelope } from '../src/runtime/curated-envelope';
import { motoClients, MotoClients, uniqueName } from '../test/support/moto';
import motoGlobalSetup from '../test/support/moto-global-setup';
import motoGlobalTeardown from '../test/support/moto-global-teardown';

type Table = (title: string, header: string[], rows: (string | number)[][]) => void;

/** Curated records per measured configuration on moto. */
const MOTO_EVENTS: number = 1_000;
/** Records run through each configuration (on its own resources) before the measured runs, then discarded. */
const MOTO_WARMUP_EVENTS = 20;
/** Events between drains of the capture queue. */
const DRAIN_EVERY = 10;
/** Records per round of the in-memory measurement, and rounds measured per implementation (after one warm-up round). */
const CPU_EVENTS = 1_000;
const CPU_ROUNDS = 5;
const CHANNELS = 5;
/** Tenants the records are spread over: ours reads up to four route keys per channel and tenant (cached). */
const TENANTS = 4;
const FOLLOWERS = ['enrich', 'render', 'deliver'];
const FOLLOWER_ARNS: Record<string, string> = Object.fromEntries(
  FOLLOWERS.map((name) => [name, `arn:aws:lambda:us-east-1:123456789012:function:bench-${name}`]),
);
/** The leader handler's lease (leader.lambda.ts) and the construct's default progress lifetime (14 days). */
const LEASE_MS = 45_000;
const PROGRESS_TTL_SECONDS = 1_209_600;
const ROUTE_CACHE_TTL_MS = 60_000;

// ---------------------------------------------------------------------------
// Shared pieces: the fake Lambda client, the events, the driver
// ---------------------------------------------------------------------------

/** Anything with the leader's `handle`. */
interface Handler { handle(input: unknown): Promise<unknown> }

/**
 * Lambda client that records each asynchronous invoke instead of invoking, so the followers
 * are not part of the timing. It keeps the raw payload; the driver parses it outside the timed call.
 */
class FakeLambda {
  public readonly pending: Uint8Array[] = [];
  public invokes = 0;

  public async send(command: any): Promise<{ StatusCode: number }> {
    if (!(command instanceof InvokeCommand) || command.input.InvocationType !== 'Event') {
      throw new Error(`the fake Lambda client only takes asynchronous InvokeCommands, got ${command?.constructor?.name}`);
    }
    this.invokes++;
    this.pending.push(command.input.Payload as Uint8Array);
    return { StatusCode: 202 };
  }
}

/** Counts the PutEvents entries the wrapped client accepted. */
class CountingEventBridge {
  public accepted = 0;

  constructor(private readonly inner: { send(command: any): Promise<any> }) {}

  public async send(command: any): Promise<any> {
    const result = await this.inner.send(command);
    if (command instanceof PutEventsCommand) this.accepted += (result.Entries ?? []).filter((e: { ErrorCode?: string }) => !e.ErrorCode).length;
    return result;
  }
}

const NO_METRICS: LeaderMetrics = { count: () => {}, latency: () => {} };

function routeItems(): RouteItem[] {
  // Each channel runs the three followers in its own order.
  return Array.from({ length: CHANNELS }, (_, c) => ({
    channel: `channel-${c}`,
    followers: FOLLOWERS.map((_f, i) => FOLLOWERS[(i + c) % FOLLOWERS.length]),
  }));
}

/** Curated record events as the curated bus's rule delivers them to the leader, spread over the channels. */
function curatedEvents(count: number, prefix: string): Record<string, unknown>[] {
  return Array.from({ length: count }, (_, i) => {
    const record = buildRecord({
      id: `${prefix}-${i}`,
      channel: `channel-${i % CHANNELS}`,
      // Tenants and an event type, as production records have: ours looks up the most specific route of each.
      tenant: `tenant-${i % TENANTS}`,
      correlationId: `order-${i}`,
      lane: 'fast',
      time: new Date().toISOString(),
      source: 'shop.orders',
      detailType: 'OrderPlaced',
      payload: { orderId: i, customer: `c-${i % 97}`, lines: [{ sku: `sku-${i % 13}`, quantity: 1 + (i % 3) }], note: 'n'.repeat(200) },
    });
    return {
      'version': '0',
      'id': `eb-${prefix}-${i}`,
      'detail-type': RECORD_DETAIL_TYPE,
      'source': CURATED_SOURCE,
      'account': '123456789012',
      'time': record.time,
      'region': 'us-east-1',
      'resources': [],
      'detail': record,
    };
  });
}

/** The record Lambda sends to a follower's success destination, the follower having returned `{ event }` unchanged. */
function successRecord(request: FollowerRequest | NaiveRequest): Record<string, unknown> {
  const follower = 'orchestration' in request ? request.orchestration.follower : request.follower;
  return {
    version: '1.0',
    timestamp: new Date().toISOString(),
    requestContext: {
      requestId: `req-${request.step}`,
      functionArn: `${FOLLOWER_ARNS[follower]}:$LATEST`,
      condition: 'Success',
      approximateInvokeCount: 1,
    },
    requestPayload: request,
    responseContext: { statusCode: 200, executedVersion: '$LATEST' },
    responsePayload: { event: request.event },
  };
}

/** Per-invocation times (ns) of every `handle` call. */
interface DriveResult {
  samples: bigint[];
  /** The times of the start invocations (step 1, where ours reads the route) alone. */
  startSamples: bigint[];
  invocations: number;
  totalNs: bigint;
}

/**
 * For each event: the leader's start (step 1), then one return per recorded invoke, each
 * built as the follower's success destination record, until nothing is pending (FINISH).
 * Only `handle` is timed; `afterEvent` (untimed) runs after each event's FINISH.
 */
async function drive(
  leader: Handler, lambda: FakeLambda, events: Record<string, unknown>[], afterEvent?: (index: number) => Promise<void>,
): Promise<DriveResult> {
  const samples: bigint[] = [];
  const startSamples: bigint[] = [];
  const timed = async (input: unknown) => {
    const start = process.hrtime.bigint();
    await leader.handle(input);
    samples.push(process.hrtime.bigint() - start);
  };
  for (const [index, event] of events.entries()) {
    await timed(event);
    startSamples.push(samples[samples.length - 1]);
    while (lambda.pending.length > 0) {
      const request = JSON.parse(Buffer.from(lambda.pending.shift()!).toString('utf8')) as FollowerRequest | NaiveRequest;
      await timed(successRecord(request));
    }
    await afterEvent?.(index);
  }
  return { samples, startSamples, invocations: samples.length, totalNs: samples.reduce((a, b) => a + b, 0n) };
}

function quantileMs(samples: bigint[], q: number): number {
  const sorted = [...samples].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return Number(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]) / 1e6;
}

// ---------------------------------------------------------------------------
// The naive baseline: the seed's design
// ---------------------------------------------------------------------------

/** The naive leader's follower request: no run id, no hops, no replay detection. */
interface NaiveRequest { channel: string; step: number; follower: string; event: unknown; record: Record<string, unknown> }

/**
 * The seed's leader: reads the channel's route from the table on every invocation (the start
 * and every follower return), keeps no progress (a duplicate delivery runs a step again),
 * validates nothing, invokes the next follower, and puts the record on the bus at FINISH.
 */
class NaiveLeader implements Handler {
  public finished = 0;

  constructor(
    private readonly deps: { routes: Pick<RouteStore, 'get'>; lambda: FakeLambda; eventBridge: { send(command: any): Promise<any> } },
    private readonly config: { curatedBusName: string; followers: Record<string, string> },
  ) {}

  public async handle(input: any): Promise<void> {
    if (input?.requestContext && input.requestPayload) {
      const request = input.requestPayload as NaiveRequest;
      const route = (await this.deps.routes.get(request.channel)) as RouteItem;
      const next = request.step + 1;
      const event = input.responsePayload?.event;
      if (next > route.followers.length) return this.finish(request.record, event);
      return this.invoke(route, next, event, request.record);
    }
    const { payload, ...record } = input.detail as RecordEnvelope;
    const route = (await this.deps.routes.get(record.channel as string)) as RouteItem;
    return this.invoke(route, 1, payload, record);
  }

  private async invoke(route: RouteItem, step: number, event: unknown, record: Record<string, unknown>): Promise<void> {
    const follower = followerNames(route)[step - 1];
    const request: NaiveRequest = { channel: route.channel, step, follower, event, record };
    await this.deps.lambda.send(new InvokeCommand({
      FunctionName: this.config.followers[follower], InvocationType: 'Event', Payload: Buffer.from(JSON.stringify(request), 'utf8'),
    }));
  }

  private async finish(record: Record<string, unknown>, event: unknown): Promise<void> {
    const result = await this.deps.eventBridge.send(new PutEventsCommand({
      Entries: [{
        EventBusName: this.config.curatedBusName,
        Source: CURATED_SOURCE,
        DetailType: RECORD_DETAIL_TYPE,
        Detail: JSON.stringify({ ...record, payload: event }),
      }],
    }));
    if (result.FailedEntryCount) throw new Error(`PutEvents failed: ${JSON.stringify(result.Entries)}`);
    this.finished++;
  }
}

// ---------------------------------------------------------------------------
// 1. On moto: DynamoDB tables, the curated bus, the DLQ
// ---------------------------------------------------------------------------

type Configuration = 'cache-on' | 'cache-off' | 'naive';
const CONFIGURATIONS: [Configuration, string][] = [
  ['cache-on', `ours, route cache on (routeCacheTtl ${ROUTE_CACHE_TTL_MS / 1000} s)`],
  ['cache-off', 'ours, route cache off (ttl 0)'],
  ['naive', 'naive seed leader (GetItem every step, no progress)'],
];

interface Resources { routesTable: string; progressTable: string; busName: string; dlqUrl: string; captureUrl: string }

async function createResources(clients: MotoClients): Promise<Resources> {
  const { dynamoDb, eventBridge, sqs } = clients;
  const table = async (prefix: string, key: string) => {
    const name = uniqueName(prefix);
    await dynamoDb.send(new CreateTableCommand({
      TableName: name, BillingMode: 'PAY_PER_REQUEST', KeySchema: [{ AttributeName: key, KeyType: 'HASH' }], AttributeDefinitions: [{ AttributeName: key, AttributeType: 'S' }],
    }));
    return name;
  };
  const routesTable = await table('bench-routes', 'channel');
  const progressTable = await table('bench-progress', 'runId');
  const busName = uniqueName('bench-curated');
  await eventBridge.send(new CreateEventBusCommand({ Name: busName }));
  const dlqUrl = (await sqs.send(new CreateQueueCommand({ QueueName: uniqueName('bench-leader-dlq') }))).QueueUrl!;
  const captureUrl = (await sqs.send(new CreateQueueCommand({ QueueName: uniqueName('bench-capture') }))).QueueUrl!;
  const { Attributes } = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: captureUrl, AttributeNames: ['QueueArn'] }));
  const rule = uniqueName('bench-outputs');
  await eventBridge.send(new PutRuleCommand({
    Name: rule, EventBusName: busName, EventPattern: JSON.stringify({ 'source': [CURATED_SOURCE], 'detail-type': [RECORD_DETAIL_TYPE] }),
  }));
  await eventBridge.send(new PutTargetsCommand({ Rule: rule, EventBusName: busName, Targets: [{ Id: 'capture', Arn: Attributes!.QueueArn! }] }));
  const writer = new DynamoRouteStore(dynamoDb, routesTable);
  for (const route of routeItems()) await writer.put(route);
  // As the routes custom resource writes it: ours reads the follower ARNs from it (through the route cache).
  await writer.put(followersItem());
  return { routesTable, progressTable, busName, dlqUrl, captureUrl };
}

/**
 * The outputs that reached the capture queue. Drained (received and deleted) as the run goes,
 * outside the timed calls: moto's SQS slows down with the depth of a queue, and so would
 * every PutEvents that delivers to it.
 */
class Capture {
  public readonly ids = new Set<string>();
  public messages = 0;

  constructor(private readonly clients: MotoClients, private readonly queueUrl: string) {}

  /** Receives and deletes until the queue answers empty; returns how many arrived. */
  public async drain(): Promise<number> {
    let arrived = 0;
    for (;;) {
      const { Messages = [] } = await this.clients.sqs.send(new ReceiveMessageCommand({
        QueueUrl: this.queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0, VisibilityTimeout: 600,
      }));
      if (Messages.length === 0) return arrived;
      for (const m of Messages) this.ids.add(JSON.parse(m.Body!).detail.id);
      this.messages += Messages.length;
      arrived += Messages.length;
      await this.clients.sqs.send(new DeleteMessageBatchCommand({
        QueueUrl: this.queueUrl, Entries: Messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })),
      }));
    }
  }

  /** Drains until `expected` outputs arrived (bounded), then once more to catch any extra. */
  public async settle(expected: number): Promise<void> {
    const deadline = Date.now() + 30_000;
    while (this.messages < expected && Date.now() < deadline) {
      if ((await this.drain()) === 0) await new Promise((resolve) => setTimeout(resolve, 200));
    }
    await this.drain();
  }
}

async function queueDepth(clients: MotoClients, queueUrl: string): Promise<number> {
  const { Attributes } = await clients.sqs.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['ApproximateNumberOfMessages'] }));
  return Number(Attributes?.ApproximateNumberOfMessages ?? NaN);
}

interface MotoRun {
  invocations: number;
  routeReads: number;
  progressWrites: number;
  medianMs: number;
  p95Ms: number;
  startMedianMs: number;
  outputs: number;
  /** Wall time of the run (leader calls, driver, drains), and the leader calls' share of it. */
  seconds: number;
  leaderSeconds: number;
}

/** Runs `count` events through one configuration, on its own tables, bus and queues. */
async function runOnMoto(clients: MotoClients, configuration: Configuration, count: number, prefix: string): Promise<MotoRun> {
  const resources = await createResources(clients);
  const lambda = new FakeLambda();
  const eventBridge = new CountingEventBridge(clients.eventBridge);
  const tableRoutes = new DynamoRouteStore(clients.dynamoDb, resources.routesTable);
  let leader: Handler;
  let progress: ProgressStore | undefined;
  let finished: () => number;
  let parked: () => number = () => 0;
  if (configuration === 'naive') {
    const naive = new NaiveLeader({ routes: tableRoutes, lambda, eventBridge }, { curatedBusName: resources.busName, followers: FOLLOWER_ARNS });
    leader = naive;
    finished = () => naive.finished;
  } else {
    progress = new ProgressStore(clients.dynamoDb, resources.progressTable, LEASE_MS, PROGRESS_TTL_SECONDS);
    const routes = new CachedRouteStore(tableRoutes, configuration === 'cache-on' ? ROUTE_CACHE_TTL_MS : 0);
    // As the leader's handler reads it: the followers item cached for 5 minutes, whatever the route cache.
    const followers = new CachedRouteStore(tableRoutes, 5 * 60_000);
    const ours = new Leader({ routes, followers, progress, lambda, eventBridge, sqs: clients.sqs, metrics: NO_METRICS, logger: SILENT_LOGGER },
      leaderConfig(resources.busName, resources.dlqUrl));
    let last: any = { outcomes: { finished: 0, parked: 0 } };
    leader = { handle: async (input) => { last = await ours.handle(input); return last; } };
    finished = () => last.outcomes.finished;
    parked = () => last.outcomes.parked;
  }

  const captured = new Capture(clients, resources.captureUrl);
  const started = process.hrtime.bigint();
  const { samples, startSamples, invocations, totalNs } = await drive(leader, lambda, curatedEvents(count, prefix),
    async (index) => { if (index % DRAIN_EVERY === DRAIN_EVERY - 1) await captured.drain(); });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const expectedInvocations = count * (FOLLOWERS.length + 1);
  await captured.settle(count);
  const dlq = await queueDepth(clients, resources.dlqUrl);
  const problems = [
    invocations !== expectedInvocations && `${invocations} leader invocations, expected ${expectedInvocations}`,
    lambda.invokes !== count * FOLLOWERS.length && `${lambda.invokes} follower invokes, expected ${count * FOLLOWERS.length}`,
    finished() !== count && `${finished()} runs finished, expected ${count}`,
    parked() !== 0 && `${parked()} events parked`,
    dlq !== 0 && `${dlq} messages in the leader's DLQ`,
    eventBridge.accepted !== count && `${eventBridge.accepted} PutEvents entries accepted, expected ${count}`,
    captured.messages !== count && `${captured.messages} outputs reached the capture queue, expected ${count}`,
    captured.ids.size !== count && `${captured.ids.size} distinct records reached the capture queue, expected ${count}`,
  ].filter(Boolean);
  if (problems.length > 0) throw new Error(`leader bench (${configuration}, ${count} events): ${problems.join('; ')}`);
  return {
    invocations,
    routeReads: tableRoutes.reads,
    progressWrites: progress?.writes ?? 0,
    medianMs: quantileMs(samples, 0.5),
    p95Ms: quantileMs(samples, 0.95),
    startMedianMs: quantileMs(startSamples, 0.5),
    outputs: captured.messages,
    seconds,
    leaderSeconds: Number(totalNs) / 1e9,
  };
}

/** The routes table's followers item, as deployed. */
function followersItem(): FollowersItem {
  return { channel: FOLLOWERS_ITEM_KEY, followers: FOLLOWER_ARNS, updatedBy: 'deploy' };
}

/** As deployed: no followers in the configuration, so the leader reads the followers item. */
function leaderConfig(curatedBusName: string, deadLetterQueueUrl: string): LeaderConfig {
  return {
    orchestratorId: 'bench/Orchestrator',
    curatedBusName,
    deadLetterQueueUrl,
    maxHops: 6,
    maxEventBytes: DEFAULT_STEP_EVENT_BYTES,
    stepResultTimeoutMs: 6.5 * 3_600_000,
  };
}

async function benchOnMoto(table: Table): Promise<void> {
  await motoGlobalSetup();
  try {
    const clients = motoClients();
    for (const [configuration] of CONFIGURATIONS) await runOnMoto(clients, configuration, MOTO_WARMUP_EVENTS, `warmup-${configuration}`);
    const rows: (string | number)[][] = [];
    const times: string[] = [];
    const starts: string[] = [];
    const per1000 = (n: number) => (n * 1000 / MOTO_EVENTS).toFixed(0);
    for (const [configuration, label] of CONFIGURATIONS) {
      const run = await runOnMoto(clients, configuration, MOTO_EVENTS, configuration);
      rows.push([label, run.invocations, per1000(run.routeReads), per1000(run.progressWrites),
        run.medianMs.toFixed(2), run.p95Ms.toFixed(2), run.outputs]);
      starts.push(`${configuration} ${run.startMedianMs.toFixed(2)} ms`);
      times.push(`${configuration} ${run.seconds.toFixed(0)} s (leader calls ${run.leaderSeconds.toFixed(0)} s)`);
    }
    const scaled = MOTO_EVENTS === 1_000 ? '' : ` (per-1,000 figures scaled from ${MOTO_EVENTS.toLocaleString('en-US')} events)`;
    table(`Leader per-step overhead on moto (loopback DynamoDB, EventBridge, SQS), ${MOTO_EVENTS.toLocaleString('en-US')} curated records of `
      + `${TENANTS} tenants over ${CHANNELS} channels with ${FOLLOWERS.length}-step routes${scaled}; followers replaced by a fake Lambda client that records the invoke `
      + `(so excluded), each leader.handle timed; after a ${MOTO_WARMUP_EVENTS}-record warm-up per configuration`,
    ['configuration', 'leader invocations', 'route reads / 1,000 events', 'progress writes / 1,000 events', 'median ms / invocation',
      'p95 ms / invocation', 'outputs on the bus'], rows);
    console.log('(route reads = GetItem on the routes table (DynamoRouteStore.reads): ours reads up to 4 route keys per channel, tenant and '
      + 'event type (most specific first) and the followers item; progress writes = conditional UpdateItem (ProgressStore.writes); '
      + 'outputs = CuratedRecord events delivered by a rule on the curated bus to an SQS capture queue, all distinct, checked to equal the records sent. '
      + 'The naive leader validates nothing and has no replay detection, hop limit or parking. Each moto call is a loopback HTTP request to a '
      + 'Python server, slower than DynamoDB from Lambda: read the times as ratios.)');
    console.log(`(run times: ${times.join('; ')}. The route cache expires on wall time: each channel is read once per `
      + `${ROUTE_CACHE_TTL_MS / 1000} s of run, so a longer run reads it more than once.)`);
    console.log(`(median ms of the ${MOTO_EVENTS.toLocaleString('en-US')} start invocations alone, the only step where ours reads the route: `
      + `${starts.join('; ')})`);
  } finally {
    await motoGlobalTeardown();
  }
}

// ---------------------------------------------------------------------------
// 2. Pure CPU: in-memory stubs
// ---------------------------------------------------------------------------

/** Routes from a Map, counting reads like DynamoRouteStore. */
class MapRouteStore implements RouteReader {
  public reads = 0;
  private readonly routes = new Map<string, RouteItem | FollowersItem>();

  constructor(routes: Array<RouteItem | FollowersItem>) {
    for (const route of routes) this.routes.set(route.channel, route);
  }

  public async get(channel: string): Promise<unknown | undefined> {
    this.reads++;
    // A copy, as a table read would return.
    const route = this.routes.get(channel);
    return route && structuredClone(route);
  }

  /** Nothing is cached here. */
  public forget(): void {}
}

const stubEventBridge = {
  send: async (command: any) => ({ FailedEntryCount: 0, Entries: command.input.Entries.map((_: unknown, i: number) => ({ EventId: `ev-${i}` })) }),
};
/** Every UpdateItem succeeds: the happy path, where no claim is refused. */
const stubDynamoDb = { send: async () => ({}) } as unknown as DynamoDBClient;
const stubSqs = { send: async () => { throw new Error('nothing should be parked'); } };

type CpuRun = DriveResult;

async function runInMemory(implementation: 'ours' | 'naive', count: number, prefix: string): Promise<CpuRun> {
  const lambda = new FakeLambda();
  const routes = new MapRouteStore([...routeItems(), followersItem()]);
  const eventBridge = new CountingEventBridge(stubEventBridge);
  const leader: Handler = implementation === 'naive'
    ? new NaiveLeader({ routes, lambda, eventBridge }, { curatedBusName: 'bus', followers: FOLLOWER_ARNS })
    : new Leader({
      routes,
      // As the leader's handler reads it: the followers item through its own 5-minute cache.
      followers: new CachedRouteStore(routes, 5 * 60_000),
      progress: new ProgressStore(stubDynamoDb, 'progress', LEASE_MS, PROGRESS_TTL_SECONDS),
      lambda,
      eventBridge,
      sqs: stubSqs as any,
      metrics: NO_METRICS,
      logger: SILENT_LOGGER,
    }, leaderConfig('bus', 'dlq'));
  const events = curatedEvents(count, prefix);
  const { samples, startSamples, invocations, totalNs } = await drive(leader, lambda, events);
  if (invocations !== count * (FOLLOWERS.length + 1) || eventBridge.accepted !== count) {
    throw new Error(`in-memory leader bench (${implementation}): ${invocations} invocations and ${eventBridge.accepted} outputs for ${count} records`);
  }
  return { samples, startSamples, invocations, totalNs };
}

async function benchInMemory(table: Table): Promise<void> {
  const implementations: ['ours' | 'naive', string][] = [['ours', 'ours (LeaderFollowerOrchestrator leader)'], ['naive', 'naive seed leader']];
  for (const [implementation] of implementations) await runInMemory(implementation, CPU_EVENTS, `cpu-warmup-${implementation}`);
  const runs: Record<string, CpuRun[]> = { ours: [], naive: [] };
  // Alternate the implementations round by round, so drift (GC, CPU frequency) hits both.
  for (let round = 0; round < CPU_ROUNDS; round++) {
    for (const [implementation] of implementations) runs[implementation].push(await runInMemory(implementation, CPU_EVENTS, `cpu-${round}`));
  }
  const rows = implementations.map(([implementation, label]) => {
    const samples = runs[implementation].flatMap((r) => r.samples);
    const invocations = runs[implementation].reduce((n, r) => n + r.invocations, 0);
    const totalNs = runs[implementation].reduce((n, r) => n + r.totalNs, 0n);
    return [label, invocations, (quantileMs(samples, 0.5) * 1000).toFixed(1), (quantileMs(samples, 0.95) * 1000).toFixed(1),
      (Number(totalNs) / invocations / 1000).toFixed(1), (invocations / (Number(totalNs) / 1e9)).toFixed(0)];
  });
  table('Leader CPU per invocation with in-memory stubs (routes from a Map, the real ProgressStore over a DynamoDB stub that accepts every write, '
    + `Lambda/EventBridge stubs that answer at once): ${CPU_ROUNDS} rounds of ${CPU_EVENTS.toLocaleString('en-US')} records after one warm-up round`,
  ['implementation', 'leader invocations', 'median μs / invocation', 'p95 μs / invocation', 'mean μs / invocation', 'invocations/s'], rows);
  console.log('(ours validates the envelope (Ajv) and the route on start, builds the claim and mark writes, and validates the output record at FINISH; '
    + 'the naive leader does none of that)');
}

/**
 * LeaderFollowerOrchestrator's leader, driven step by step with the followers replaced by a
 * fake Lambda client: per-invocation time and table reads/writes on moto (started here), with
 * the route cache on and off, against the seed's naive leader; then its CPU cost per
 * invocation with in-memory stubs.
 */
export async function benchLeaderFollowerOrchestrator(table: Table): Promise<void> {
  await benchOnMoto(table);
  await benchInMemory(table);
}
