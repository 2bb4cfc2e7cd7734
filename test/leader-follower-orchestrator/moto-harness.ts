import { CreateTableCommand, UpdateTimeToLiveCommand } from '@aws-sdk/client-dynamodb';
import { CreateEventBusCommand, PutEventsCommand, PutRuleCommand, PutTargetsCommand } from '@aws-sdk/client-eventbridge';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import {
  ChangeMessageVisibilityCommand, CreateQueueCommand, DeleteMessageCommand, GetQueueAttributesCommand, ReceiveMessageCommand, SendMessageCommand,
} from '@aws-sdk/client-sqs';
import { CapturedMetrics } from './leader-fixtures';
import { Leader, LeaderConfig } from '../../src/leader-follower-orchestrator/leader-core';
import { FollowerRequest, FollowerResult, FOLLOWERS_ITEM_KEY, ParkedEvent, RouteItem } from '../../src/leader-follower-orchestrator/orchestrator-contract';
import { ProgressStore } from '../../src/leader-follower-orchestrator/progress-core';
import { CachedRouteStore, DynamoRouteStore } from '../../src/leader-follower-orchestrator/route-store-core';
import { SILENT_LOGGER } from '../../src/runtime/core-logger';
import { buildRecord } from '../../src/runtime/curated-envelope';
import { motoClients, uniqueName } from '../support/moto';

export const { sqs, eventBridge, dynamoDb } = motoClients();

/** For each function, the invocations one triggering event has made of it (as Lambda's recursive loop detection counts). */
export type Lineage = Record<string, number>;

/** A follower as the simulator runs it: the handler Lambda would run, given the request. */
export type FollowerHandler = (request: FollowerRequest<any>) => Promise<FollowerResult<any>> | FollowerResult<any>;

/** What the construct deploys, in moto: both tables, the curated bus with a capture rule, the dead-letter queue. */
export async function deployInMoto() {
  const routesTable = uniqueName('routes');
  const progressTable = uniqueName('progress');
  await dynamoDb.send(new CreateTableCommand({
    TableName: routesTable,
    BillingMode: 'PAY_PER_REQUEST',
    KeySchema: [{ AttributeName: 'channel', KeyType: 'HASH' }],
    AttributeDefinitions: [{ AttributeName: 'channel', AttributeType: 'S' }],
  }));
  await dynamoDb.send(new CreateTableCommand({
    TableName: progressTable,
    BillingMode: 'PAY_PER_REQUEST',
    KeySchema: [{ AttributeName: 'runId', KeyType: 'HASH' }],
    AttributeDefinitions: [{ AttributeName: 'runId', AttributeType: 'S' }, { AttributeName: 'stallAt', AttributeType: 'N' }],
    // The sparse index of steps awaiting their result, as the construct declares it.
    GlobalSecondaryIndexes: [{
      IndexName: 'stalled-steps',
      KeySchema: [{ AttributeName: 'runId', KeyType: 'HASH' }, { AttributeName: 'stallAt', KeyType: 'RANGE' }],
      Projection: { ProjectionType: 'KEYS_ONLY' },
    }],
  }));
  await dynamoDb.send(new UpdateTimeToLiveCommand({
    TableName: progressTable, TimeToLiveSpecification: { Enabled: true, AttributeName: 'expiresAt' },
  }));
  const bus = uniqueName('curated');
  await eventBridge.send(new CreateEventBusCommand({ Name: bus }));
  const queue = async (name: string) => {
    const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: uniqueName(name) }));
    const { Attributes } = await sqs.send(new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ['QueueArn'] }));
    return { url: QueueUrl!, arn: Attributes!.QueueArn! };
  };
  // What downstream channels would subscribe to: orchestrated records only.
  const capture = await queue('orchestrated');
  const rule = uniqueName('orchestrated');
  await eventBridge.send(new PutRuleCommand({
    Name: rule,
    EventBusName: bus,
    EventPattern: JSON.stringify({ 'source': ['cdk-event-fabric'], 'detail-type': ['CuratedRecord'], 'detail': { orchestration: { hops: [{ exists: true }] } } }),
  }));
  await eventBridge.send(new PutTargetsCommand({ Rule: rule, EventBusName: bus, Targets: [{ Id: 'capture', Arn: capture.arn }] }));
  const dlq = await queue('orchestrator-dlq');
  return { routesTable, progressTable, bus, captureUrl: capture.url, dlqUrl: dlq.url };
}

export type Deployment = Awaited<ReturnType<typeof deployInMoto>>;

/** Drains a queue's messages (parsed JSON bodies); moto delivers during PutEvents. */
export async function drainQueue(queueUrl: string): Promise<any[]> {
  const out: any[] = [];
  for (;;) {
    const { Messages } = await sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0 }));
    if (!Messages?.length) return out;
    out.push(...Messages.map((m) => JSON.parse(m.Body!)));
    // Received messages stay invisible for the queue's visibility timeout, so this ends.
  }
}

/** Orchestrated records delivered to the capture queue (their details). */
export async function orchestrated(deployment: Deployment): Promise<any[]> {
  return (await drainQueue(deployment.captureUrl)).map((event) => event.detail);
}

/** Parked events in the dead-letter queue. They become visible again after the timeout; tests drain them once. */
export async function parked(deployment: Deployment): Promise<ParkedEvent[]> {
  return drainQueue(deployment.dlqUrl);
}

/**
 * Plays Lambda's part: the leader's asynchronous Invoke of a follower is queued; `settle`
 * runs each queued follower and sends its destination record (success, or failure after its
 * error) back to the leader, as Lambda destinations do, until nothing is pending.
 */
export class LambdaSimulator {
  /**
   * Followers whose destination records Lambda cannot deliver (a result over the asynchronous
   * payload limit): they run, and their results never reach the leader.
   */
  public readonly undeliverableResults = new Set<string>();

  public readonly invocations: { follower: string; request: FollowerRequest<any> }[] = [];
  private readonly pending: { arn: string; request: FollowerRequest<any>; lineage: Lineage }[] = [];
  private failNextInvoke = 0;
  /**
   * What Lambda's recursive loop detection counts for the invocation running now: for each
   * function, how many times the triggering event has invoked it. Outside `settle`, the
   * leader was invoked once by its rule.
   */
  private lineage: Lineage = { leader: 1 };
  private readonly highest: Lineage = { leader: 1 };

  /** The `send` of a LambdaClient, for the leader. */
  public readonly client = {
    send: async (command: unknown) => {
      if (!(command instanceof InvokeCommand)) throw new Error(`unexpected Lambda command ${String(command)}`);
      if (this.failNextInvoke > 0) {
        this.failNextInvoke--;
        throw Object.assign(new Error('Rate exceeded'), { name: 'TooManyRequestsException' });
      }
      if (command.input.InvocationType !== 'Event') throw new Error('followers must be invoked asynchronously');
      const request = JSON.parse(Buffer.from(command.input.Payload as Uint8Array).toString('utf8'));
      this.enqueue(command.input.FunctionName!, request);
      return { StatusCode: 202 };
    },
  } as any;

  constructor(private readonly followers: Record<string, FollowerHandler>) {}

  /**
   * A real LambdaClient whose requests reach this simulator instead of the network (an
   * asynchronous Invoke is queued, and answered 202), so SDK middleware, such as the
   * crash-point harness's fault injector, sees its calls as it sees moto's.
   */
  public sdkClient(): LambdaClient {
    return new LambdaClient({
      region: 'us-east-1',
      credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
      maxAttempts: 1,
      requestHandler: {
        handle: async (request: { path: string; body: Uint8Array | string }) => {
          this.enqueue(decodeURIComponent(request.path.split('/')[3]), JSON.parse(Buffer.from(request.body).toString('utf8')));
          return { response: { statusCode: 202, headers: {}, body: new Uint8Array() } };
        },
      } as any,
    });
  }

  /** ARN of each follower, as the construct passes them to the leader. */
  public get arns(): Record<string, string> {
    return Object.fromEntries(Object.keys(this.followers).map((name) => [name, arnOf(name)]));
  }

  /** Makes the next `count` Invoke calls fail as the Lambda service would (throttled). */
  public throttleNextInvokes(count: number): void {
    this.failNextInvoke = count;
  }


  /** Runs queued followers and returns their results to `leader`, until none is pending. Returns the records sent back. */
  public async settle(leader: Leader, options: { duplicateResults?: boolean } = {}): Promise<number> {
    let returned = 0;
    while (this.pending.length > 0) {
      const { arn, request, lineage } = this.pending.shift()!;
      const name = arn.split(':').pop()!;
      this.invocations.push({ follower: name, request });
      const record = await this.destinationRecord(arn, request);
      if (this.undeliverableResults.has(name)) continue;
      // The destination invokes the leader: one more invocation of the leader by the same event.
      this.lineage = this.count(lineage, 'leader');
      try {
        await leader.handle(record);
        if (options.duplicateResults) await leader.handle(record);
      } finally {
        this.lineage = { leader: 1 };
      }
      returned++;
    }
    return returned;
  }

  /** The most invocations of each function by one triggering event, over every chain so far. */
  public get mostInvocationsByOneEvent(): Lineage {
    return { ...this.highest };
  }

  private enqueue(arn: string, request: FollowerRequest<any>): void {
    this.pending.push({ arn, request, lineage: this.count(this.lineage, arn.split(':').pop()!) });
  }

  private count(lineage: Lineage, fn: string): Lineage {
    const next = { ...lineage, [fn]: (lineage[fn] ?? 0) + 1 };
    this.highest[fn] = Math.max(this.highest[fn] ?? 0, next[fn]);
    return next;
  }

  /** Queued follower requests not yet run. */
  public get queued(): FollowerRequest<any>[] {
    return this.pending.map((p) => p.request);
  }

  private async destinationRecord(arn: string, request: FollowerRequest<any>): Promise<unknown> {
    const base = { version: '1.0', timestamp: new Date().toISOString(), requestPayload: request };
    try {
      const response = await this.followers[arn.split(':').pop()!](request);
      return {
        ...base,
        requestContext: { requestId: 'r', functionArn: `${arn}:$LATEST`, condition: 'Success', approximateInvokeCount: 1 },
        responseContext: { statusCode: 200, executedVersion: '$LATEST' },
        responsePayload: response,
      };
    } catch (error) {
      return {
        ...base,
        requestContext: { requestId: 'r', functionArn: `${arn}:$LATEST`, condition: 'RetriesExhausted', approximateInvokeCount: 3 },
        responseContext: { statusCode: 200, executedVersion: '$LATEST', functionError: 'Unhandled' },
        responsePayload: { errorType: (error as Error).name, errorMessage: (error as Error).message },
      };
    }
  }
}

export function arnOf(follower: string): string {
  return `arn:aws:lambda:us-east-1:123456789012:function:${follower}`;
}

/** A stamping follower that fails while `state.down` is true. */
export function flaky(name: string, state: { down: boolean }): FollowerHandler {
  return (request) => {
    if (state.down) throw new Error(`${name} is down`);
    return stamping(name)(request);
  };
}

/** A follower that appends its name to `event.steps`, as the integ test's followers do. */
export function stamping(name: string): FollowerHandler {
  return ({ event }) => ({ event: { ...event, steps: [...(event.steps ?? []), name] } });
}

/** The construct's default: the followers' maximum event age (6 hours) and 30 minutes for their last attempt. */
export const STEP_RESULT_TIMEOUT_MS = 6.5 * 3_600_000;

/** The followers of the tests: each stamps its name on the event. */
export const STAMPING_FOLLOWERS = { enrich: stamping('enrich'), render: stamping('render'), deliver: stamping('deliver') };

/** A deployment with the tests' two routes: email (enrich, render, deliver) and sms (enrich, deliver). */
export async function deployWithRoutes(): Promise<Deployment> {
  const deployment = await deployInMoto();
  await registerFollowers(deployment, Object.keys(STAMPING_FOLLOWERS));
  await writeRoute(deployment, { channel: 'email', followers: ['enrich', 'render', 'deliver'] });
  await writeRoute(deployment, { channel: 'sms', followers: ['enrich', 'deliver'] });
  return deployment;
}

/** A leader wired to moto, with a controllable clock. */
export function motoLeader(deployment: Deployment, simulator: LambdaSimulator, options: {
  cacheTtlMs?: number;
  maxHops?: number;
  maxEventBytes?: number;
  clock?: { now: number };
  orchestratorId?: string;
  remainingTimeMs?: () => number;
  /**
   * Registered followers held in the leader's configuration. Default: none there, so the leader
   * reads the routes table's followers item, as deployed (`registerFollowers`).
   */
  followers?: Record<string, string>;
  /** Clients in place of moto's (a wrapper that fails some calls). */
  sqs?: any;
  eventBridge?: any;
  dynamoDb?: any;
  lambda?: any;
  /** Which of the bundle's two functions this is. @default - both */
  entry?: 'events' | 'redrive';
  /** The followers item's own cache, as the handler has it (5 minutes). @default - read through the route cache */
  followerItemTtlMs?: number;
} = {}) {
  const clock = options.clock ?? { now: Date.parse('2026-11-22T10:00:00Z') };
  const now = () => clock.now;
  const table = new DynamoRouteStore(options.dynamoDb ?? dynamoDb, deployment.routesTable);
  const routes = new CachedRouteStore(table, options.cacheTtlMs ?? 60_000, now);
  const progress = new ProgressStore(options.dynamoDb ?? dynamoDb, deployment.progressTable, 45_000, 14 * 86_400, now);
  const metrics = new CapturedMetrics();
  const config: LeaderConfig = {
    orchestratorId: options.orchestratorId ?? 'orchestrator-1',
    curatedBusName: deployment.bus,
    deadLetterQueueUrl: deployment.dlqUrl,
    ...(options.followers ? { followers: options.followers } : {}),
    maxHops: options.maxHops ?? 7,
    maxEventBytes: options.maxEventBytes ?? 256_000,
    stepResultTimeoutMs: STEP_RESULT_TIMEOUT_MS,
  };
  const leader = new Leader({
    routes,
    ...(options.followerItemTtlMs !== undefined ? { followers: new CachedRouteStore(table, options.followerItemTtlMs, now) } : {}),
    progress,
    lambda: options.lambda ?? simulator.client,
    eventBridge: options.eventBridge ?? eventBridge,
    sqs: options.sqs ?? sqs,
    metrics,
    logger: SILENT_LOGGER,
    now,
    sleep: async () => {},
    remainingTimeMs: options.remainingTimeMs,
    entry: options.entry,
  }, config);
  return { leader, table, routes, progress, metrics, clock, config };
}

/** Writes the routes table's followers item, as the routes custom resource does at deploy: each name with its simulated ARN. */
export async function registerFollowers(deployment: Deployment, names: string[]): Promise<void> {
  await new DynamoRouteStore(dynamoDb, deployment.routesTable).put({
    channel: FOLLOWERS_ITEM_KEY, followers: Object.fromEntries(names.map((name) => [name, arnOf(name)])), updatedBy: 'deploy',
  });
}

/** Writes a route item straight into the table, as an operator could at run time. */
export async function writeRoute(deployment: Deployment, route: RouteItem | Record<string, unknown>): Promise<void> {
  await new DynamoRouteStore(dynamoDb, deployment.routesTable).put(route as RouteItem);
}

/** A CuratedRecord event as the curated bus delivers it to the leader's rule. */
export function curatedEvent(id: string, channel: string | null, payload: unknown = { text: `message ${id}` }, extra: Record<string, unknown> = {}) {
  const record = { ...buildRecord({ id, channel, tenant: 'tenant-a', correlationId: `corr-${id}`, lane: 'fast', time: '2026-11-22T09:59:00Z', payload }), ...extra };
  return { 'version': '0', 'id': `evt-${id}`, 'detail-type': 'CuratedRecord', 'source': 'cdk-event-fabric', 'detail': record };
}

/**
 * The leader's SQS client, recording the messages it received and did not delete, so a test
 * can let their visibility timeout pass (moto keeps real time; the redrive hides them for 120 s).
 */
export class DeadLetterQueueClock {
  private readonly hidden = new Map<string, string>();
  public readonly sent: any[] = [];

  public readonly client = {
    send: async (command: any) => {
      const output: any = await sqs.send(command);
      if (command instanceof ReceiveMessageCommand) {
        for (const m of output.Messages ?? []) this.hidden.set(m.MessageId, m.ReceiptHandle);
      }
      if (command instanceof DeleteMessageCommand) {
        for (const [id, handle] of this.hidden) if (handle === command.input.ReceiptHandle) this.hidden.delete(id);
      }
      if (command instanceof SendMessageCommand) {
        this.sent.push({ ...JSON.parse(command.input.MessageBody!), delaySeconds: command.input.DelaySeconds });
      }
      return output;
    },
  };

  constructor(private readonly deployment: Deployment) {}

  /** Puts a message the leader sent back in the queue, visible now (a duplicate, or its delay passed). */
  public async requeue(message: any): Promise<void> {
    const { delaySeconds: _delay, ...body } = message;
    await sqs.send(new SendMessageCommand({ QueueUrl: this.deployment.dlqUrl, MessageBody: JSON.stringify(body) }));
  }

  /** Received messages that were not deleted become visible again, as after their visibility timeout. */
  public async visibilityTimeoutPasses(): Promise<void> {
    for (const handle of this.hidden.values()) {
      await sqs.send(new ChangeMessageVisibilityCommand({ QueueUrl: this.deployment.dlqUrl, ReceiptHandle: handle, VisibilityTimeout: 0 }));
    }
    this.hidden.clear();
  }
}

/**
 * An EventBridge client whose next `count.remaining` PutEvents calls fail: throttled (the call
 * throws, as after the SDK's own retries), or each entry rejected with `rejectWith` (an entry
 * error EventBridge does not clear on retry).
 */
export function failingPutEvents(count: { remaining: number }, rejectWith?: string): any {
  return {
    send: async (command: any) => {
      if (command instanceof PutEventsCommand && count.remaining > 0) {
        count.remaining--;
        if (rejectWith) {
          const entries = command.input.Entries ?? [];
          return { FailedEntryCount: entries.length, Entries: entries.map(() => ({ ErrorCode: rejectWith, ErrorMessage: `injected: ${rejectWith}` })) };
        }
        throw Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' });
      }
      return eventBridge.send(command);
    },
  };
}
