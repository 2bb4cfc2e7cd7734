import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { LambdaClient } from '@aws-sdk/client-lambda';
import { SQSClient } from '@aws-sdk/client-sqs';
import type { Context } from 'aws-lambda';
import { Leader, LeaderConfig, leaderConfigFromEnv, LeaderMetrics, LeaderReport } from './leader-core';
import { LEADER_ENV, LeaderEntry } from './orchestrator-contract';
import { ProgressStore } from './progress-core';
import { CachedRouteStore, DynamoRouteStore } from './route-store-core';

const logger = new Logger();
const dynamoDb = new DynamoDBClient({});
const lambda = new LambdaClient({});
const eventBridge = new EventBridgeClient({});
const sqs = new SQSClient({});
const env = process.env;
const routesTable = new DynamoRouteStore(dynamoDb, env[LEADER_ENV.ROUTES_TABLE_NAME] ?? '');
/** Lives as long as the execution environment: the route cache of `routeCacheTtl`. */
const routes = new CachedRouteStore(routesTable, Number(env[LEADER_ENV.ROUTE_CACHE_TTL_SECONDS] ?? '0') * 1000);
/** The followers item changes only at deploy: cached for 5 minutes, read again when it is found out of date. */
const followers = new CachedRouteStore(routesTable, 5 * 60_000);
/** A claimed step belongs to its invocation for longer than the leader's timeout (30 s). */
const LEASE_MS = 45_000;
const progress = new ProgressStore(dynamoDb, env[LEADER_ENV.PROGRESS_TABLE_NAME] ?? '', LEASE_MS,
  Number(env[LEADER_ENV.PROGRESS_TTL_SECONDS] ?? '604800'));

/**
 * Per-channel metrics, published once per invocation as one EMF document per channel
 * (dimensions `orchestrator` and `channel`).
 */
class ChannelMetrics implements LeaderMetrics {
  private readonly counts = new Map<string, Map<string, number>>();
  private readonly latencies = new Map<string, number[]>();

  public count(channel: string, name: string, value = 1): void {
    const counts = this.counts.get(channel) ?? new Map<string, number>();
    counts.set(name, (counts.get(name) ?? 0) + value);
    this.counts.set(channel, counts);
  }

  public latency(channel: string, milliseconds: number): void {
    const values = this.latencies.get(channel) ?? [];
    values.push(milliseconds);
    this.latencies.set(channel, values);
  }

  public publish(orchestrator: string): void {
    for (const channel of new Set([...this.counts.keys(), ...this.latencies.keys()])) {
      const metrics = new Metrics({ defaultDimensions: { orchestrator, channel } });
      for (const [name, value] of this.counts.get(channel) ?? []) metrics.addMetric(name, MetricUnit.Count, value);
      for (const value of this.latencies.get(channel) ?? []) metrics.addMetric('EndToEndLatency', MetricUnit.Milliseconds, value);
      metrics.publishStoredMetrics();
    }
  }
}

/**
 * Two functions run this bundle (`LEADER_ENTRY`). The leader (`events`): a rule target for
 * curated records and batches, and the success and failure destination of every follower. A
 * failure it cannot park (AWS errors, a step still being dispatched by another invocation)
 * fails the invocation so Lambda retries it; after the retries, the on-failure destination
 * keeps the request in the dead-letter queue. The redrive function (`redrive`): invoked with
 * `{ "redrive": { "maxMessages": n, ... } }`, the resumer of the dead-letter queue.
 */
const entry: LeaderEntry = env[LEADER_ENV.ENTRY] === 'redrive' ? 'redrive' : 'events';
/** The environment does not change within an execution environment: read it once. */
let config: LeaderConfig | undefined;

export async function handler(input: unknown, context?: Context): Promise<LeaderReport> {
  config ??= leaderConfigFromEnv(env);
  const metrics = new ChannelMetrics();
  const leader = new Leader({
    routes,
    followers,
    progress,
    lambda,
    eventBridge,
    sqs,
    metrics,
    logger,
    remainingTimeMs: context ? () => context.getRemainingTimeInMillis() : undefined,
    entry,
  }, config);
  try {
    const report = await leader.handle(input);
    logger.info('invocation handled', { ...report });
    return report;
  } finally {
    metrics.publish(config.orchestratorId);
  }
}
