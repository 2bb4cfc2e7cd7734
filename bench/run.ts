/**
 * Benchmarks, each printed beside a naive baseline measured in the same run.
 * Run with `npx projen bench`. Figures vary with the machine; read them as ratios.
 *
 * 1. Resources per channel, and synth time for 40 channels: ApiDestinationChannel against
 *    the bare hand-written wiring (rule + connection + API destination, no DLQ/alarms/replay).
 * 2. Replay throughput on 20,000 dead letters with in-memory SQS and EventBridge stubs:
 *    the replay core (10-message receives, batched PutEvents, batched deletes) against a
 *    naive loop (one PutEvents and one DeleteMessage per message).
 * 3. TieredEventIngest's batch publisher on 100 MiB and 1 GiB of NDJSON (1 KiB and 200 B
 *    records) against the seed's approach (whole object in memory, 1000 records per event)
 *    and against a ceiling (the same bytes split into lines and JSON.parse'd, nothing else):
 *    throughput and its fraction of the ceiling, peak RSS, PutEvents calls, entries, billed
 *    64 KB chunks against the minimum, and records rejected by the 1 MiB entry limit.
 * 4. EventAggregator's read of one correlation id on moto DynamoDB (started here) in tables
 *    of 10, 1,000 and 10,000 unrelated items: the consistent Query on the partition key
 *    against the seed's Scan with a FilterExpression: items read, read units and time.
 * 5. LeaderFollowerOrchestrator's leader on moto (started here), followers replaced by a fake
 *    Lambda client, 1,000 records of 4 tenants on 3-step routes: per-invocation time (median,
 *    p95), routes table reads (each record's route keys, most specific first, and the followers
 *    item) and progress writes per 1,000 events, with the route cache on and off, against
 *    the seed's naive leader (a route read on every step, no progress); then the leader's CPU
 *    per invocation with in-memory stubs, ours against the naive leader.
 * 6. HydratingDlq's hydrator on moto (started here) hydrating a 10,000-record failed batch with
 *    GetRecords pages of 10,000 and 1,000: GetRecords calls against the goal (2 × ceil(10,000 /
 *    page size)), records written and missed, records/s and peak memory, against a naive
 *    hydrator (one GetRecords, which misses the records past its first page) and a ceiling
 *    (the GetRecords loop alone, no S3 writes).
 */
import { App, Stack } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { ApiDestinationChannel, ChannelAuthorization } from '../src';
import { benchBatchPublisher } from './batch-publisher';
import { benchEventAggregator } from './event-aggregator';
import { benchHydratingDlq } from './hydrating-dlq';
import { benchLeaderFollowerOrchestrator } from './leader-follower-orchestrator';
import { REPLAY_DETAIL_TYPE, REPLAY_SOURCE } from '../src/api-destination-channel/replay-contract';
import { replayDeadLetters } from '../src/api-destination-channel/replay-core';

function table(title: string, header: string[], rows: (string | number)[][]): void {
  console.log(`\n${title}`);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (cells: (string | number)[]) => cells.map((c, i) => String(c).padEnd(widths[i])).join('  ');
  console.log(line(header));
  for (const r of rows) console.log(line(r));
}

// ---------------------------------------------------------------------------
// 1. Resources and synth time
// ---------------------------------------------------------------------------
type Builder = (stack: Stack, bus: events.IEventBus, connection: events.Connection, i: number) => void;

const ours: Builder = (stack, bus, connection, i) => {
  new ApiDestinationChannel(stack, `Channel${i}`, {
    eventBus: bus, connection, eventPattern: { source: ['bench'], detail: { n: [i] } }, endpoint: `https://api${i}.example.com/`,
  });
};

const naive: Builder = (stack, bus, connection, i) => {
  const destination = new events.ApiDestination(stack, `Destination${i}`, { connection, endpoint: `https://api${i}.example.com/` });
  new events.Rule(stack, `Rule${i}`, {
    eventBus: bus, eventPattern: { source: ['bench'], detail: { n: [i] } }, targets: [new targets.ApiDestination(destination)],
  });
};

function synthChannels(build: Builder, n: number): { resources: number; ms: number } {
  const start = process.hrtime.bigint();
  const app = new App();
  const stack = new Stack(app, 'Bench');
  const bus = new events.EventBus(stack, 'Bus');
  const connection = new events.Connection(stack, 'Connection', {
    authorization: ChannelAuthorization.apiKey({ headerName: 'x-api-key', secret: new secretsmanager.Secret(stack, 'Key') }).toEventsAuthorization(),
  });
  for (let i = 0; i < n; i++) build(stack, bus, connection, i);
  const template = app.synth().getStackByName('Bench').template;
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  return { resources: Object.keys(template.Resources).length, ms };
}

function benchResources(): void {
  const rows: (string | number)[][] = [];
  for (const [name, build] of [['ApiDestinationChannel', ours], ['naive rule + destination', naive]] as [string, Builder][]) {
    const one = synthChannels(build, 1);
    const two = synthChannels(build, 2);
    synthChannels(build, 36); // warm-up (36 channels is what one stack fits)
    const forty = synthChannels(build, 36);
    rows.push([name, two.resources - one.resources, one.resources, forty.resources, forty.ms.toFixed(0)]);
  }
  table('Resources per channel and synth time (36 channels, one shared connection)',
    ['wiring', 'resources/channel', 'stack with 1', 'stack with 36', 'synth 36 (ms)'], rows);
  console.log('(the naive wiring has no DLQ, alarms, retry policy, idempotency key or replay)');
}

// ---------------------------------------------------------------------------
// 2. Replay throughput with in-memory stubs
// ---------------------------------------------------------------------------
interface Counters { receive: number; putEvents: number; delete: number; entries: number; ruleLookups: number }

const RULE_ARN = 'arn:aws:events:eu-west-1:111111111111:rule/bus/channel';

function stubClients(messages: number): { sqs: any; eventBridge: any; counters: Counters } {
  const counters: Counters = { receive: 0, putEvents: 0, delete: 0, entries: 0, ruleLookups: 0 };
  const queue: any[] = [];
  for (let i = 0; i < messages; i++) {
    queue.push({
      MessageId: `m${i}`,
      ReceiptHandle: `r${i}`,
      Body: JSON.stringify({ 'version': '0', 'id': `e${i}`, 'source': 'shop.orders', 'detail-type': 'OrderPlaced', 'detail': { orderId: i, items: 'x'.repeat(600) } }),
      MessageAttributes: { RULE_ARN: { DataType: 'String', StringValue: RULE_ARN } },
    });
  }
  const sqs = {
    send: async (command: any) => {
      const name = command.constructor.name;
      if (name === 'GetQueueAttributesCommand') {
        counters.receive++; // one SQS call per run
        return { Attributes: { MaximumMessageSize: '1048576' } };
      }
      if (name === 'ReceiveMessageCommand') {
        counters.receive++;
        return { Messages: queue.splice(0, command.input.MaxNumberOfMessages ?? 1) };
      }
      counters.delete++;
      return name === 'DeleteMessageBatchCommand' ? { Successful: command.input.Entries, Failed: [] } : {};
    },
  };
  const eventBridge = {
    send: async (command: any) => {
      // The replay core checks once per run that a replay rule with a target takes the channel's rule.
      if (command.constructor.name === 'ListRulesCommand') {
        counters.ruleLookups++;
        const pattern = { 'source': [REPLAY_SOURCE], 'detail-type': [REPLAY_DETAIL_TYPE], 'detail': { ruleArn: [RULE_ARN] } };
        return { Rules: [{ Name: 'replay-rule', State: 'ENABLED', EventPattern: JSON.stringify(pattern) }] };
      }
      if (command.constructor.name === 'ListTargetsByRuleCommand') {
        counters.ruleLookups++;
        return { Targets: [{ Id: 'api', Arn: 'arn:aws:events:eu-west-1:111111111111:api-destination/x' }] };
      }
      counters.putEvents++;
      counters.entries += command.input.Entries.length;
      return { FailedEntryCount: 0, Entries: command.input.Entries.map((_: unknown, i: number) => ({ EventId: `id${i}` })) };
    },
  };
  return { sqs, eventBridge, counters };
}

/** The naive replay: one receive per message, one PutEvents per message, one delete per message. */
async function naiveReplay(sqs: any, eventBridge: any): Promise<number> {
  const { ReceiveMessageCommand, DeleteMessageCommand } = await import('@aws-sdk/client-sqs');
  const { PutEventsCommand } = await import('@aws-sdk/client-eventbridge');
  let replayed = 0;
  for (;;) {
    const { Messages } = await sqs.send(new ReceiveMessageCommand({ QueueUrl: 'q', MaxNumberOfMessages: 1 }));
    if (!Messages || Messages.length === 0) return replayed;
    const m = Messages[0];
    const event = JSON.parse(m.Body);
    await eventBridge.send(new PutEventsCommand({
      Entries: [{ Source: 'replay', DetailType: 'replay', Detail: JSON.stringify({ ruleArn: m.MessageAttributes.RULE_ARN.StringValue, event }) }],
    }));
    await sqs.send(new DeleteMessageCommand({ QueueUrl: 'q', ReceiptHandle: m.ReceiptHandle }));
    replayed++;
  }
}

async function benchReplay(messages: number): Promise<void> {
  const rows: (string | number)[][] = [];
  for (const name of ['replay core', 'naive per-message loop']) {
    const { sqs, eventBridge, counters } = stubClients(messages);
    const start = process.hrtime.bigint();
    const replayed = name === 'replay core'
      ? (await replayDeadLetters({ sqs, eventBridge, replayBusName: 'replay-bus', maxEntryBytes: 1_048_576 }, { queueUrl: 'q' })).replayed
      : await naiveReplay(sqs, eventBridge);
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    const apiCalls = counters.receive + counters.putEvents + counters.delete + counters.ruleLookups;
    const sqsCalls = counters.receive + counters.delete;
    rows.push([name, replayed, (replayed / seconds).toFixed(0), counters.putEvents, sqsCalls, counters.ruleLookups, apiCalls,
      (apiCalls / replayed).toFixed(2)]);
  }
  table(`Replay of ${messages} dead letters (in-memory stubs; API calls are what AWS would bill and throttle)`,
    ['implementation', 'replayed', 'msgs/s', 'PutEvents calls', 'SQS calls', 'rule look-ups', 'API calls', 'calls/msg'], rows);
  console.log('(the naive loop deletes each message once PutEvents accepts it, whether or not a rule will take it)');
}

async function main(): Promise<void> {
  benchResources();
  await benchReplay(20_000);
  benchBatchPublisher(table);
  await benchEventAggregator(table);
  await benchLeaderFollowerOrchestrator(table);
  await benchHydratingDlq(table);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
