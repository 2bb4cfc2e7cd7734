import {
  BatchWriteItemCommand, CreateTableCommand, DynamoDBClient, GetItemCommand, QueryCommand, UpdateItemCommand, UpdateTimeToLiveCommand,
} from '@aws-sdk/client-dynamodb';
import { CreateEventBusCommand, EventBridgeClient, PutEventsCommand, PutRuleCommand, PutTargetsCommand } from '@aws-sdk/client-eventbridge';
import { CreateScheduleGroupCommand, GetScheduleCommand, SchedulerClient } from '@aws-sdk/client-scheduler';
import { CreateQueueCommand, GetQueueAttributesCommand, ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { marshall, unmarshall } from '@aws-sdk/util-dynamodb';
import type { DynamoDBRecord } from 'aws-lambda';
import { ACCOUNT_CHECK, captureLogger, captureMetrics, IN_STOCK, streamEvent, streamRecord } from './aggregator-fixtures';
import { eventKey } from '../../src/event-aggregator/aggregator-contract';
import { Aggregator, AggregatorConfig, deadlineScheduleName } from '../../src/event-aggregator/aggregator-core';
import { recordEvent } from '../../src/event-aggregator/recorder-core';
import { motoClients, motoEndpoint, uniqueName } from '../support/moto';

const { sqs, eventBridge, dynamoDb } = motoClients();
const scheduler = new SchedulerClient({
  endpoint: motoEndpoint(), region: 'us-east-1', credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' }, maxAttempts: 1,
});
const SOURCE = 'cdk-event-fabric.aggregator';
const TTL = 7 * 86_400;

/** What the construct creates, in moto: the table (keys, TTL), the output bus with a capture rule and the seed's "Invoice processing" rule. */
async function setUp() {
  const table = uniqueName('aggregates');
  await dynamoDb.send(new CreateTableCommand({
    TableName: table,
    BillingMode: 'PAY_PER_REQUEST',
    KeySchema: [{ AttributeName: 'correlationId', KeyType: 'HASH' }, { AttributeName: 'eventName', KeyType: 'RANGE' }],
    AttributeDefinitions: [{ AttributeName: 'correlationId', AttributeType: 'S' }, { AttributeName: 'eventName', AttributeType: 'S' }],
    StreamSpecification: { StreamEnabled: true, StreamViewType: 'NEW_IMAGE' },
  }));
  await dynamoDb.send(new UpdateTimeToLiveCommand({ TableName: table, TimeToLiveSpecification: { Enabled: true, AttributeName: 'expiresAt' } }));
  const bus = uniqueName('orders');
  await eventBridge.send(new CreateEventBusCommand({ Name: bus }));
  const queue = async (name: string, pattern: unknown) => {
    const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: uniqueName(name) }));
    const { Attributes } = await sqs.send(new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ['QueueArn'] }));
    const rule = uniqueName(name);
    await eventBridge.send(new PutRuleCommand({ Name: rule, EventBusName: bus, EventPattern: JSON.stringify(pattern) }));
    await eventBridge.send(new PutTargetsCommand({ Rule: rule, EventBusName: bus, Targets: [{ Id: 'q', Arn: Attributes!.QueueArn! }] }));
    return { url: QueueUrl!, arn: Attributes!.QueueArn! };
  };
  const capture = await queue('capture', { source: [SOURCE] });
  // The seed's rule, on the aggregated event: both checks exist → "Invoice processing".
  const invoice = await queue('invoice', {
    'source': [SOURCE],
    'detail-type': ['Aggregation Completed'],
    'detail': { received: { [ACCOUNT_CHECK]: [{ exists: true }], [IN_STOCK]: [{ exists: true }] } },
  });
  const scheduleGroup = uniqueName('deadlines');
  await scheduler.send(new CreateScheduleGroupCommand({ Name: scheduleGroup }));
  const dlq = await queue('deadline-dlq', { source: ['never'] });
  const config: AggregatorConfig = {
    tableName: table,
    outputBusName: bus,
    source: SOURCE,
    requiredEvents: [ACCOUNT_CHECK, IN_STOCK],
    emitOnEveryChange: false,
    deadlineSeconds: 0,
    itemTtlSeconds: TTL,
  };
  const deadlineConfig: AggregatorConfig = {
    ...config,
    deadlineSeconds: 900,
    schedule: {
      groupName: scheduleGroup,
      targetArn: 'arn:aws:lambda:us-east-1:123456789012:function:aggregator',
      roleArn: 'arn:aws:iam::123456789012:role/scheduler',
      dlqArn: dlq.arn,
    },
  };
  return { table, bus, config, deadlineConfig, captureUrl: capture.url, invoiceUrl: invoice.url, scheduleGroup };
}

/** Drains a queue: the events the bus delivered (moto delivers during PutEvents). */
async function delivered(queueUrl: string): Promise<any[]> {
  const out: any[] = [];
  for (let empty = 0; empty < 2;) {
    const { Messages } = await sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0 }));
    if (!Messages?.length) { empty++; continue; }
    out.push(...Messages.map((m) => JSON.parse(m.Body!)));
  }
  return out;
}

/** A DynamoDB client on moto that remembers every command it sent. */
function recordingDynamoDb(): { client: DynamoDBClient; sent: { name: string; input: any }[] } {
  const sent: { name: string; input: any }[] = [];
  const client = {
    send: (command: any) => {
      sent.push({ name: command.constructor.name, input: command.input });
      return dynamoDb.send(command);
    },
  } as unknown as DynamoDBClient;
  return { client, sent };
}

interface Env { table: string; config: AggregatorConfig }

interface Overrides { eventBridge?: EventBridgeClient; dynamoDb?: DynamoDBClient; now?: () => number }

function aggregatorFor(config: AggregatorConfig, owner: string, options: Overrides = {}) {
  const logger = captureLogger();
  const metrics = captureMetrics();
  const core = new Aggregator({
    dynamoDb: options.dynamoDb ?? dynamoDb,
    eventBridge: options.eventBridge ?? eventBridge,
    scheduler,
    owner,
    logger,
    metric: metrics.metric,
    nowSeconds: options.now,
    sleep: async () => {},
  }, config);
  return { core, logger, metrics: metrics.totals };
}

/**
 * Records an event through the recorder (real DynamoDB on moto) and returns the stream
 * record DynamoDB would deliver for that write (none when the write was refused).
 */
async function record(env: Env, correlationId: string | number, eventName: string, detail: unknown, eventId = `${correlationId}-${eventName}`) {
  const key = { correlationId: String(correlationId), eventName: eventKey(eventName, eventId) };
  const before = await dynamoDb.send(new GetItemCommand({ TableName: env.table, Key: marshall(key), ConsistentRead: true }));
  const logger = captureLogger();
  const result = await recordEvent({ dynamoDb, logger }, { tableName: env.table, itemTtlSeconds: TTL, maxPayloadBytes: 350_000 },
    { correlationId, eventName, eventId, time: new Date().toISOString(), detail });
  const after = await dynamoDb.send(new GetItemCommand({ TableName: env.table, Key: marshall(key), ConsistentRead: true }));
  const stream = result.outcome === 'recorded' ? streamRecord(before.Item ? 'MODIFY' : 'INSERT', unmarshall(after.Item!)) : undefined;
  return { result, stream, logger };
}

async function markerOf(table: string, correlationId: string) {
  const { Item } = await dynamoDb.send(new GetItemCommand({
    TableName: table, Key: marshall({ correlationId, eventName: '#aggregate' }), ConsistentRead: true,
  }));
  return Item ? unmarshall(Item) : undefined;
}

describe('moto: aggregation', () => {
  test('the seed\'s rule: a REJECTED check with the stock check invoices nothing; the corrected check, recorded after it, invoices once', async () => {
    const env = await setUp();
    const config: AggregatorConfig = {
      ...env.config,
      requiredEvents: undefined,
      requirements: [
        { label: ACCOUNT_CHECK, anyOf: [ACCOUNT_CHECK], count: 1, condition: { status: ['APPROVED'] }, failOnMismatch: false },
        { label: IN_STOCK, anyOf: [IN_STOCK], count: 1, failOnMismatch: false },
      ],
      newestReplaces: true,
    };
    const { core } = aggregatorFor(config, 'req-1');
    const rejected = await record(env, 9, ACCOUNT_CHECK, { OrderID: 9, status: 'REJECTED' }, 'check-1');
    const stock = await record(env, 9, IN_STOCK, { OrderID: 9, sku: 'A-1' }, 'stock-1');
    const before = await core.processStreamBatch(streamEvent(rejected.stream!, stock.stream!));
    expect(before.outcomes[0]).toMatchObject({ outcome: 'waiting', missing: [ACCOUNT_CHECK] });
    expect(await delivered(env.captureUrl)).toEqual([]);

    // Put within the same second as the rejection: the time it was recorded decides.
    const corrected = await record(env, 9, ACCOUNT_CHECK, { OrderID: 9, status: 'APPROVED' }, 'check-2');
    const after = await core.processStreamBatch(streamEvent(corrected.stream!));
    expect(after.outcomes[0]).toMatchObject({ outcome: 'completed', missing: [] });
    const out = await delivered(env.captureUrl);
    expect(out.map((e) => [e['detail-type'], e.detail.events[ACCOUNT_CHECK].eventId])).toEqual([['Aggregation Completed', 'check-2']]);
    // A replay of the whole history emits nothing more.
    await core.processStreamBatch(streamEvent(rejected.stream!, stock.stream!, corrected.stream!));
    expect(await delivered(env.captureUrl)).toEqual([]);
  });

  test('Account Check then In Stock for order 7 → exactly one Completed event with both payloads; the seed\'s exists rule matches it', async () => {
    const env = await setUp();
    const { core, metrics } = aggregatorFor(env.config, 'req-1');
    const first = await record(env, 7, ACCOUNT_CHECK, { OrderID: 7, credit: 'approved' });
    const afterFirst = await core.processStreamBatch(streamEvent(first.stream!));
    expect(afterFirst.outcomes[0]).toMatchObject({ outcome: 'waiting', missing: [IN_STOCK] });
    expect(await delivered(env.captureUrl)).toEqual([]);

    const second = await record(env, 7, IN_STOCK, { OrderID: 7, sku: 'A-1' });
    const afterSecond = await core.processStreamBatch(streamEvent(second.stream!));
    expect(afterSecond).toMatchObject({ batchItemFailures: [], outcomes: [{ outcome: 'completed' }] });

    const out = await delivered(env.captureUrl);
    expect(out).toHaveLength(1);
    expect(out[0]).toMatchObject({ 'source': SOURCE, 'detail-type': 'Aggregation Completed' });
    expect(out[0].detail).toEqual({
      correlationId: '7',
      status: 'complete',
      received: { [ACCOUNT_CHECK]: true, [IN_STOCK]: true },
      events: {
        [ACCOUNT_CHECK]: { eventId: `7-${ACCOUNT_CHECK}`, receivedAt: expect.any(String), recordedAt: expect.any(String), payload: { OrderID: 7, credit: 'approved' } },
        [IN_STOCK]: { eventId: `7-${IN_STOCK}`, receivedAt: expect.any(String), recordedAt: expect.any(String), payload: { OrderID: 7, sku: 'A-1' } },
      },
      eventCount: 2,
    });
    expect(await delivered(env.invoiceUrl)).toHaveLength(1);
    expect(await markerOf(env.table, '7')).toMatchObject({
      status: 'COMPLETE', owner: 'req-1', eventKeys: [eventKey(ACCOUNT_CHECK, `7-${ACCOUNT_CHECK}`), eventKey(IN_STOCK, `7-${IN_STOCK}`)],
    });
    expect(metrics).toEqual({ ItemsRead: 1 + 2, AggregationsCompleted: 1 });
  });

  test('a single event emits nothing', async () => {
    const env = await setUp();
    const only = await record(env, 'order-1', IN_STOCK, { sku: 'B' });
    const report = await aggregatorFor(env.config, 'req-1').core.processStreamBatch(streamEvent(only.stream!));
    expect(report.outcomes[0]).toMatchObject({ outcome: 'waiting', missing: [ACCOUNT_CHECK] });
    expect(await delivered(env.captureUrl)).toEqual([]);
    expect(await markerOf(env.table, 'order-1')).toBeUndefined();
  });

  test('out of order (In Stock first) → the same single event', async () => {
    const env = await setUp();
    const { core } = aggregatorFor(env.config, 'req-1');
    const a = await record(env, 7, IN_STOCK, { sku: 'A-1' });
    await core.processStreamBatch(streamEvent(a.stream!));
    const b = await record(env, 7, ACCOUNT_CHECK, { credit: 'approved' });
    await core.processStreamBatch(streamEvent(b.stream!));
    const out = await delivered(env.captureUrl);
    expect(out.map((e) => [e['detail-type'], e.detail.received])).toEqual([['Aggregation Completed', { [ACCOUNT_CHECK]: true, [IN_STOCK]: true }]]);
  });

  test('emit once: the same stream batch replayed → one event, and the replay is not counted as late', async () => {
    const env = await setUp();
    const a = await record(env, 7, ACCOUNT_CHECK, {});
    const b = await record(env, 7, IN_STOCK, {});
    const batch = streamEvent(a.stream!, b.stream!);
    const first = await aggregatorFor(env.config, 'req-1').core.processStreamBatch(batch);
    const replay = aggregatorFor(env.config, 'req-2');
    const second = await replay.core.processStreamBatch(batch);
    expect(first.outcomes[0].outcome).toBe('completed');
    expect(second.outcomes[0]).toMatchObject({ outcome: 'done', lateEvents: [] });
    expect(replay.metrics.LateEvents).toBeUndefined();
    expect(await delivered(env.captureUrl)).toHaveLength(1);
  });

  test('emit once: two shards completing the same ids concurrently → exactly one event per id', async () => {
    const env = await setUp();
    const ids = Array.from({ length: 8 }, (_, i) => `race-${i}`);
    const shard1: DynamoDBRecord[] = [];
    const shard2: DynamoDBRecord[] = [];
    for (const id of ids) {
      shard1.push((await record(env, id, ACCOUNT_CHECK, { id })).stream!);
      shard2.push((await record(env, id, IN_STOCK, { id })).stream!);
    }
    const [one, two] = await Promise.all([
      aggregatorFor(env.config, 'shard-1').core.processStreamBatch(streamEvent(...shard1)),
      aggregatorFor(env.config, 'shard-2').core.processStreamBatch(streamEvent(...shard2)),
    ]);
    // Each id: one shard emitted; the other found it done, or found the live claim and asks for a retry.
    for (const id of ids) {
      const outcomes = [one, two].map((r) => r.outcomes.find((o) => o.correlationId === id)!.outcome).sort();
      expect([['claimed-elsewhere', 'completed'], ['busy', 'completed'], ['completed', 'done']]).toContainEqual(outcomes);
    }
    // The retries Lambda would make of the busy ids emit nothing more.
    for (const [report, records] of [[one, shard1], [two, shard2]] as const) {
      if (report.batchItemFailures.length === 0) continue;
      const retry = await aggregatorFor(env.config, 'retry').core.processStreamBatch(streamEvent(...records));
      expect(retry.batchItemFailures).toEqual([]);
    }
    const out = await delivered(env.captureUrl);
    expect(out.map((e) => e.detail.correlationId).sort()).toEqual([...ids].sort());
  });

  test('an event after completion is not emitted again: LateEvents and the reason logged', async () => {
    const env = await setUp();
    const { core } = aggregatorFor(env.config, 'req-1');
    await core.processStreamBatch(streamEvent((await record(env, 7, ACCOUNT_CHECK, {})).stream!, (await record(env, 7, IN_STOCK, {})).stream!));
    const late = await record(env, 7, 'Gift Wrap', { paper: 'red' });
    const lateRun = aggregatorFor(env.config, 'req-2');
    const report = await lateRun.core.processStreamBatch(streamEvent(late.stream!));
    expect(report.outcomes[0]).toMatchObject({ outcome: 'done', lateEvents: ['Gift Wrap'] });
    expect(lateRun.metrics.LateEvents).toBe(1);
    expect(lateRun.logger.messages('warn')).toEqual(['event Gift Wrap for 7 arrived after the aggregation was COMPLETE; not emitted again']);
    expect(await delivered(env.captureUrl)).toHaveLength(1);
  });

  test('REMOVE records and the marker\'s own stream records are ignored', async () => {
    const env = await setUp();
    const a = await record(env, 7, ACCOUNT_CHECK, {});
    const b = await record(env, 7, IN_STOCK, {});
    await aggregatorFor(env.config, 'req-1').core.processStreamBatch(streamEvent(a.stream!, b.stream!));
    const marker = await markerOf(env.table, '7');
    const { client, sent } = recordingDynamoDb();
    const report = await aggregatorFor(env.config, 'req-2', { dynamoDb: client }).core.processStreamBatch(streamEvent(
      streamRecord('INSERT', marker!), streamRecord('MODIFY', marker!), streamRecord('REMOVE', unmarshall(
        (await dynamoDb.send(new GetItemCommand({ TableName: env.table, Key: marshall({ correlationId: '7', eventName: eventKey(ACCOUNT_CHECK, `7-${ACCOUNT_CHECK}`) }) }))).Item!)),
    ));
    expect(report).toEqual({ batchItemFailures: [], outcomes: [], ignoredRecords: 3 });
    expect(sent).toEqual([]);
    expect(await delivered(env.captureUrl)).toHaveLength(1);
  });

  test('one consistent Query per id, never a Scan: 200 unrelated items are not read', async () => {
    const env = await setUp();
    for (let start = 0; start < 200; start += 25) {
      const items = Array.from({ length: 25 }, (_, i) => ({ correlationId: `other-${start + i}`, eventName: ACCOUNT_CHECK, payload: {} }));
      const requests = items.map((item) => ({ PutRequest: { Item: marshall(item) } }));
      await dynamoDb.send(new BatchWriteItemCommand({ RequestItems: { [env.table]: requests } }));
    }
    const a = await record(env, 7, ACCOUNT_CHECK, {});
    const b = await record(env, 7, IN_STOCK, {});
    const { client, sent } = recordingDynamoDb();
    const report = await aggregatorFor(env.config, 'req-1', { dynamoDb: client }).core.processStreamBatch(streamEvent(a.stream!, b.stream!));
    expect(report.outcomes[0]).toMatchObject({ outcome: 'completed', itemsRead: 2 });
    expect(sent.map((s) => s.name)).toEqual(['QueryCommand', 'PutItemCommand', 'UpdateItemCommand']);
    expect(sent[0].input).toMatchObject({ ConsistentRead: true, KeyConditionExpression: '#id = :id' });
    expect(sent.some((s) => s.name === 'ScanCommand')).toBe(false);
  });
});

describe('moto: failures and retries', () => {
  /** EventBridge on moto whose first `failures` PutEvents calls fail with a throttling error. */
  function flakyEventBridge(failures: number): EventBridgeClient {
    let calls = 0;
    return {
      send: (command: any) => {
        if (command instanceof PutEventsCommand && calls++ < failures) {
          return Promise.reject(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }));
        }
        return eventBridge.send(command);
      },
    } as unknown as EventBridgeClient;
  }

  test('PutEvents failure → marker left EMITTING (lease released), record failed; the retry emits once', async () => {
    const env = await setUp();
    const a = await record(env, 7, ACCOUNT_CHECK, {});
    const b = await record(env, 7, IN_STOCK, {});
    const batch = streamEvent(a.stream!, b.stream!);
    const failing = await aggregatorFor(env.config, 'req-1', { eventBridge: flakyEventBridge(100) }).core.processStreamBatch(batch);
    expect(failing.batchItemFailures).toEqual([{ itemIdentifier: a.stream!.dynamodb!.SequenceNumber }]);
    expect(await markerOf(env.table, '7')).toMatchObject({ status: 'EMITTING', owner: 'req-1', leaseUntil: 0 });
    expect(await delivered(env.captureUrl)).toEqual([]);

    const retry = await aggregatorFor(env.config, 'req-2').core.processStreamBatch(batch);
    expect(retry).toMatchObject({ batchItemFailures: [], outcomes: [{ outcome: 'completed' }] });
    expect(await markerOf(env.table, '7')).toMatchObject({ status: 'COMPLETE', owner: 'req-2' });
    expect(await delivered(env.captureUrl)).toHaveLength(1);
  });

  test('a claim left by a crashed invocation: retries inside its lease are failed (busy), the one after it emits once', async () => {
    const env = await setUp();
    const a = await record(env, 7, ACCOUNT_CHECK, {});
    const b = await record(env, 7, IN_STOCK, {});
    const batch = streamEvent(a.stream!, b.stream!);
    // The invocation dies between claim and PutEvents: PutEvents fails and the lease cannot be released.
    const noRelease = {
      send: (command: any) => (command instanceof UpdateItemCommand
        ? Promise.reject(Object.assign(new Error('socket hang up'), { name: 'TimeoutError' })) : dynamoDb.send(command)),
    } as unknown as DynamoDBClient;
    const now = Math.floor(Date.now() / 1000);
    await aggregatorFor(env.config, 'crashed', { eventBridge: flakyEventBridge(100), dynamoDb: noRelease, now: () => now }).core.processStreamBatch(batch);
    expect(await markerOf(env.table, '7')).toMatchObject({ status: 'EMITTING', owner: 'crashed', leaseUntil: now + 60 });

    const early = await aggregatorFor(env.config, 'retry-1', { now: () => now + 30 }).core.processStreamBatch(batch);
    expect(early.outcomes[0].outcome).toBe('busy');
    expect(early.batchItemFailures).toHaveLength(1);
    expect(await delivered(env.captureUrl)).toEqual([]);

    const late = await aggregatorFor(env.config, 'retry-2', { now: () => now + 61 }).core.processStreamBatch(batch);
    expect(late).toMatchObject({ batchItemFailures: [], outcomes: [{ outcome: 'completed' }] });
    expect(await delivered(env.captureUrl)).toHaveLength(1);
  });
});

describe('moto: recorder', () => {
  test('the same event twice (same eventId) → one item, written once; a different event with the same name → its own item', async () => {
    const env = await setUp();
    const first = await record(env, 7, IN_STOCK, { sku: 'A-1' }, 'evt-1');
    const again = await record(env, 7, IN_STOCK, { sku: 'A-1' }, 'evt-1');
    const other = await record(env, 7, IN_STOCK, { sku: 'Z-9' }, 'evt-2');
    expect([first.result.outcome, again.result.outcome, other.result.outcome]).toEqual(['recorded', 'already-recorded', 'recorded']);
    expect(again.stream).toBeUndefined(); // nothing written, so no stream record
    const { Items } = await dynamoDb.send(new QueryCommand({
      TableName: env.table, KeyConditionExpression: 'correlationId = :id', ExpressionAttributeValues: { ':id': { S: '7' } }, ConsistentRead: true,
    }));
    expect(Items!.map((i) => unmarshall(i))).toEqual([
      expect.objectContaining({ eventName: eventKey(IN_STOCK, 'evt-1'), eventId: 'evt-1', payloadJson: '{"sku":"A-1"}' }),
      expect.objectContaining({ eventName: eventKey(IN_STOCK, 'evt-2'), eventId: 'evt-2', payloadJson: '{"sku":"Z-9"}' }),
    ]);
  });

  test('an oversized payload is refused before DynamoDB is asked', async () => {
    const env = await setUp();
    await expect(record(env, 7, IN_STOCK, { blob: 'x'.repeat(350_000) })).rejects.toThrow(/is 350011 bytes of JSON, more than the 350000 bytes/);
  });
});

describe('moto: deadline (EventBridge Scheduler on moto)', () => {
  test('the first write creates the schedule once (replay → ConflictException ignored); the deadline emits Incomplete with missing', async () => {
    const env = await setUp();
    const { core } = aggregatorFor(env.deadlineConfig, 'req-1');
    const first = await record(env, 7, ACCOUNT_CHECK, { credit: 'approved' });
    const created = await core.processStreamBatch(streamEvent(first.stream!));
    const replayed = await core.processStreamBatch(streamEvent(first.stream!));
    expect(created.outcomes[0]).toMatchObject({ outcome: 'waiting', scheduleCreated: true });
    expect(replayed).toMatchObject({ batchItemFailures: [], outcomes: [{ outcome: 'waiting', scheduleCreated: false }] });

    const schedule = await scheduler.send(new GetScheduleCommand({ Name: deadlineScheduleName('7'), GroupName: env.scheduleGroup }));
    const receivedAt = Date.parse(unmarshall((await dynamoDb.send(new GetItemCommand({
      TableName: env.table, Key: marshall({ correlationId: '7', eventName: eventKey(ACCOUNT_CHECK, `7-${ACCOUNT_CHECK}`) }),
    }))).Item!).receivedAt);
    expect(schedule).toMatchObject({
      ScheduleExpression: `at(${new Date(Math.floor(receivedAt / 1000) * 1000 + 900_000).toISOString().slice(0, 19)})`,
      FlexibleTimeWindow: { Mode: 'OFF' },
      ActionAfterCompletion: 'DELETE',
      Target: {
        Arn: env.deadlineConfig.schedule!.targetArn,
        RoleArn: env.deadlineConfig.schedule!.roleArn,
        Input: '{"deadlineFor":"7"}',
        DeadLetterConfig: { Arn: env.deadlineConfig.schedule!.dlqArn },
        RetryPolicy: { MaximumRetryAttempts: 5, MaximumEventAgeInSeconds: 3600 },
      },
    });

    const deadline = aggregatorFor(env.deadlineConfig, 'schedule-1');
    expect(await deadline.core.processDeadline(JSON.parse(schedule.Target!.Input!))).toMatchObject({ outcome: 'incomplete', missing: [IN_STOCK] });
    expect(deadline.metrics.AggregationsIncomplete).toBe(1);
    const out = await delivered(env.captureUrl);
    expect(out.map((e) => [e['detail-type'], e.detail.status, e.detail.missing, e.detail.received])).toEqual([
      ['Aggregation Incomplete', 'incomplete', [IN_STOCK], { [ACCOUNT_CHECK]: true }],
    ]);
    expect(out[0].detail.events[ACCOUNT_CHECK].payload).toEqual({ credit: 'approved' });
    expect(await delivered(env.invoiceUrl)).toEqual([]);
    expect(await markerOf(env.table, '7')).toMatchObject({ status: 'INCOMPLETE', eventKeys: [eventKey(ACCOUNT_CHECK, `7-${ACCOUNT_CHECK}`)] });

    // In Stock after the deadline: late, not emitted.
    const late = aggregatorFor(env.deadlineConfig, 'req-3');
    const report = await late.core.processStreamBatch(streamEvent((await record(env, 7, IN_STOCK, {})).stream!));
    expect(report.outcomes[0]).toMatchObject({ outcome: 'done', lateEvents: [IN_STOCK] });
    expect(late.metrics.LateEvents).toBe(1);
    expect(await delivered(env.captureUrl)).toEqual([]);
  });

  test('completion deletes the schedule, and a deadline after completion emits nothing', async () => {
    const env = await setUp();
    const { core } = aggregatorFor(env.deadlineConfig, 'req-1');
    await core.processStreamBatch(streamEvent((await record(env, 8, ACCOUNT_CHECK, {})).stream!));
    await expect(scheduler.send(new GetScheduleCommand({ Name: deadlineScheduleName('8'), GroupName: env.scheduleGroup }))).resolves.toBeDefined();
    await core.processStreamBatch(streamEvent((await record(env, 8, IN_STOCK, {})).stream!));
    await expect(scheduler.send(new GetScheduleCommand({ Name: deadlineScheduleName('8'), GroupName: env.scheduleGroup })))
      .rejects.toMatchObject({ name: 'ResourceNotFoundException' });

    const deadline = aggregatorFor(env.deadlineConfig, 'schedule-1');
    expect((await deadline.core.processDeadline({ deadlineFor: '8' })).outcome).toBe('done');
    const out = await delivered(env.captureUrl);
    expect(out.map((e) => e['detail-type'])).toEqual(['Aggregation Completed']);
    expect(await delivered(env.invoiceUrl)).toHaveLength(1);
  });
});
