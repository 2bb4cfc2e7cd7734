import {
  ConditionalCheckFailedException, DynamoDBClient, GetItemCommand, ProvisionedThroughputExceededException, PutItemCommand, QueryCommand, ScanCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { CopyObjectCommand, DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { ConflictException, CreateScheduleCommand, DeleteScheduleCommand, ResourceNotFoundException, SchedulerClient } from '@aws-sdk/client-scheduler';
import { marshall } from '@aws-sdk/util-dynamodb';
import type { Context } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import {
  ACCOUNT_CHECK, captureLogger, captureMetrics, CONFIG, DAY, eventItem, IN_STOCK, NOW, SCHEDULE, streamEvent, streamRecord,
} from './aggregator-fixtures';
import {
  AggregationBusyError, Aggregator, AggregatorConfig, aggregatorConfigFromEnv, atExpression, deadlineScheduleName,
} from '../../src/event-aggregator/aggregator-core';
import { putEventsEntrySize } from '../../src/runtime/put-events';

const ENV = {
  TABLE_NAME: 'aggregates',
  OUTPUT_BUS_NAME: 'orders',
  AGGREGATE_SOURCE: 'shop.aggregator',
  REQUIRED_EVENTS: JSON.stringify([ACCOUNT_CHECK, IN_STOCK]),
  EMIT_ON_EVERY_CHANGE: 'false',
  DEADLINE_SECONDS: '900',
  SCHEDULE_GROUP_NAME: SCHEDULE.groupName,
  SCHEDULE_TARGET_ARN: SCHEDULE.targetArn,
  SCHEDULE_ROLE_ARN: SCHEDULE.roleArn,
  SCHEDULE_DLQ_ARN: SCHEDULE.dlqArn,
  ITEM_TTL_SECONDS: String(7 * DAY),
  FAILED_BATCH_BUCKET_NAME: 'failed-batches',
  POWERTOOLS_METRICS_NAMESPACE: 'cdk-event-fabric',
  POWERTOOLS_SERVICE_NAME: 'event-aggregator',
};

const dynamo = mockClient(DynamoDBClient);
const events = mockClient(EventBridgeClient);
const scheduler = mockClient(SchedulerClient);

/** The table the Query mock reads (plain items). */
let table: Record<string, any>[];

beforeEach(() => {
  dynamo.reset();
  events.reset();
  scheduler.reset();
  table = [];
  dynamo.on(QueryCommand).callsFake((input) => {
    const items = table.filter((i) => i.correlationId === input.ExpressionAttributeValues[':id'].S);
    return { Items: items.map((i) => marshall(i)), Count: items.length, ScannedCount: items.length };
  });
  dynamo.on(PutItemCommand).resolves({});
  dynamo.on(UpdateItemCommand).resolves({});
  events.on(PutEventsCommand).callsFake((input) => ({ FailedEntryCount: 0, Entries: input.Entries.map((_: unknown, i: number) => ({ EventId: `out-${i}` })) }));
  scheduler.on(CreateScheduleCommand).resolves({ ScheduleArn: 'arn:aws:scheduler:us-east-1:111111111111:schedule/g/s' });
  scheduler.on(DeleteScheduleCommand).resolves({});
});

function aggregator(config: Partial<AggregatorConfig> = {}, owner = 'req-1') {
  const logger = captureLogger();
  const metrics = captureMetrics();
  const core = new Aggregator({
    dynamoDb: new DynamoDBClient({ region: 'us-east-1' }),
    eventBridge: new EventBridgeClient({ region: 'us-east-1' }),
    scheduler: new SchedulerClient({ region: 'us-east-1' }),
    owner,
    logger,
    metric: metrics.metric,
    nowSeconds: () => NOW,
    sleep: async () => {},
  }, { ...CONFIG, ...config });
  return { core, logger, metrics: metrics.totals };
}

/** Every entry put on the bus, with its detail parsed. */
function emitted(): { detailType: string; source: string; bus: string; detail: any }[] {
  return events.commandCalls(PutEventsCommand).flatMap((call) => call.args[0].input.Entries!.map((e) => ({
    detailType: e.DetailType!, source: e.Source!, bus: e.EventBusName!, detail: JSON.parse(e.Detail!),
  })));
}

const conditionFailed = (item?: Record<string, unknown>) => new ConditionalCheckFailedException({
  message: 'The conditional request failed', $metadata: {}, ...(item ? { Item: marshall(item) } : {}),
});
const marker = (status: string, extra: Record<string, unknown> = {}) => ({
  correlationId: '7',
  eventName: '#aggregate',
  status,
  owner: 'req-0',
  eventKeys: [ACCOUNT_CHECK, IN_STOCK].map((n) => eventItem('7', n).eventName),
  expiresAt: NOW + DAY,
  ...extra,
});
const withDeadline: Partial<AggregatorConfig> = { deadlineSeconds: 900, schedule: SCHEDULE };

describe('configuration', () => {
  test('reads the environment the construct sets', () => {
    expect(aggregatorConfigFromEnv(ENV)).toEqual({
      tableName: 'aggregates',
      outputBusName: 'orders',
      source: 'shop.aggregator',
      requiredEvents: [ACCOUNT_CHECK, IN_STOCK],
      emitOnEveryChange: false,
      deadlineSeconds: 900,
      schedule: SCHEDULE,
      itemTtlSeconds: 7 * DAY,
    });
  });

  test('defaults: the contract source, no deadline (schedule settings not needed), no update events', () => {
    const env = { TABLE_NAME: 't', OUTPUT_BUS_NAME: 'b', REQUIRED_EVENTS: '["a","b","a"]', ITEM_TTL_SECONDS: '60', DEADLINE_SECONDS: '0' };
    expect(aggregatorConfigFromEnv(env)).toEqual({
      tableName: 't',
      outputBusName: 'b',
      source: 'cdk-event-fabric.aggregator',
      requiredEvents: ['a', 'b'],
      emitOnEveryChange: false,
      deadlineSeconds: 0,
      itemTtlSeconds: 60,
    });
    expect(aggregatorConfigFromEnv({ ...env, EMIT_ON_EVERY_CHANGE: 'true' }).emitOnEveryChange).toBe(true);
    expect(aggregatorConfigFromEnv({ ...env, MAX_ENTRY_BYTES: '262144' }).maxEntryBytes).toBe(262144);
  });

  test.each([
    [{ TABLE_NAME: '' }, 'environment variable TABLE_NAME is not set'],
    [{ OUTPUT_BUS_NAME: undefined }, 'environment variable OUTPUT_BUS_NAME is not set'],
    [{ REQUIRED_EVENTS: 'Account Check' }, 'environment variable REQUIRED_EVENTS must be a JSON array of event names, got Account Check'],
    [{ REQUIRED_EVENTS: '[]' }, 'environment variable REQUIRED_EVENTS must be a non-empty JSON array of non-empty strings, got []'],
    [{ REQUIRED_EVENTS: '["a", 7]' }, 'environment variable REQUIRED_EVENTS must be a non-empty JSON array of non-empty strings, got ["a", 7]'],
    [{ REQUIRED_EVENTS: '["a","#aggregate"]' }, "environment variable REQUIRED_EVENTS names reserved events (starting with '#'): #aggregate"],
    [{ EMIT_ON_EVERY_CHANGE: 'yes' }, "environment variable EMIT_ON_EVERY_CHANGE must be 'true' or 'false', got yes"],
    [{ DEADLINE_SECONDS: '-5' }, 'environment variable DEADLINE_SECONDS must be a positive integer, got -5'],
    [{ SCHEDULE_ROLE_ARN: '' }, 'environment variable SCHEDULE_ROLE_ARN is not set'],
    [{ SCHEDULE_DLQ_ARN: undefined }, 'environment variable SCHEDULE_DLQ_ARN is not set'],
    [{ ITEM_TTL_SECONDS: 'week' }, 'environment variable ITEM_TTL_SECONDS must be a positive integer, got week'],
  ])('a bad environment is named in the error (%#)', (change, message) => {
    expect(() => aggregatorConfigFromEnv({ ...ENV, ...change })).toThrow(message);
  });

  test('a deadline without a Scheduler client is refused', () => {
    expect(() => new Aggregator({ dynamoDb: {} as any, eventBridge: {} as any, owner: 'o' }, { ...CONFIG, ...withDeadline }))
      .toThrow('a deadline needs the schedule settings');
  });

  test('schedule names are deterministic, distinct and valid; at() is UTC to the second', () => {
    const name = deadlineScheduleName('7');
    expect(name).toMatch(/^agg-[0-9a-f]{40}$/);
    expect(name).toBe(deadlineScheduleName('7'));
    expect(deadlineScheduleName('8')).not.toBe(name);
    expect(deadlineScheduleName('x'.repeat(5000)).length).toBeLessThanOrEqual(64);
    expect(atExpression(NOW + 900)).toBe('at(2027-01-15T08:15:00)');
  });
});

describe('stream batches', () => {
  test('a single event emits nothing: one consistent Query, no claim, no Scan', async () => {
    table = [eventItem('7', ACCOUNT_CHECK)];
    const { core, metrics } = aggregator();
    const report = await core.processStreamBatch(streamEvent(streamRecord('INSERT', table[0])));
    expect(report.batchItemFailures).toEqual([]);
    expect(report.outcomes).toEqual([expect.objectContaining({ correlationId: '7', outcome: 'waiting', missing: [IN_STOCK], itemsRead: 1 })]);
    expect(dynamo).toHaveReceivedCommandTimes(QueryCommand, 1);
    expect(dynamo).toHaveReceivedCommandWith(QueryCommand, {
      TableName: 'aggregates',
      KeyConditionExpression: '#id = :id',
      ExpressionAttributeNames: { '#id': 'correlationId' },
      ExpressionAttributeValues: { ':id': { S: '7' } },
      ConsistentRead: true,
    });
    expect(dynamo).toHaveReceivedCommandTimes(ScanCommand, 0);
    expect(dynamo).toHaveReceivedCommandTimes(PutItemCommand, 0);
    expect(emitted()).toEqual([]);
    expect(metrics).toEqual({ ItemsRead: 1 });
  });

  test('Account Check then In Stock for order 7: one Completed event with both payloads, the marker claimed then COMPLETE', async () => {
    table = [eventItem('7', ACCOUNT_CHECK, { credit: 'approved' }), eventItem('7', IN_STOCK, { sku: 'A-1', quantity: 3 })];
    const { core, metrics } = aggregator();
    const report = await core.processStreamBatch(streamEvent(streamRecord('INSERT', table[1])));

    expect(report).toMatchObject({ batchItemFailures: [], outcomes: [{ correlationId: '7', outcome: 'completed', missing: [] }] });
    expect(dynamo).toHaveReceivedCommandWith(PutItemCommand, {
      TableName: 'aggregates',
      Item: {
        correlationId: { S: '7' },
        eventName: { S: '#aggregate' },
        status: { S: 'EMITTING' },
        owner: { S: 'req-1' },
        leaseUntil: { N: String(NOW + 60) },
        eventKeys: { L: [{ S: table[0].eventName }, { S: table[1].eventName }] },
        expiresAt: { N: String(NOW + 7 * DAY) },
      },
      ConditionExpression: 'attribute_not_exists(#id) OR (#status = :emitting AND leaseUntil < :now) OR #expires <= :now',
      ExpressionAttributeValues: { ':emitting': { S: 'EMITTING' }, ':now': { N: String(NOW) } },
    });
    expect(emitted()).toEqual([{
      detailType: 'Aggregation Completed',
      source: 'cdk-event-fabric.aggregator',
      bus: 'orders',
      detail: {
        correlationId: '7',
        status: 'complete',
        received: { [ACCOUNT_CHECK]: true, [IN_STOCK]: true },
        events: {
          [ACCOUNT_CHECK]: { eventId: 'evt-7-Account-Check', receivedAt: '2027-01-15T08:00:00.000Z', payload: { credit: 'approved' } },
          [IN_STOCK]: { eventId: 'evt-7-In-Stock', receivedAt: '2027-01-15T08:00:00.000Z', payload: { sku: 'A-1', quantity: 3 } },
        },
        eventCount: 2,
      },
    }]);
    expect(dynamo).toHaveReceivedCommandWith(UpdateItemCommand, {
      Key: { correlationId: { S: '7' }, eventName: { S: '#aggregate' } },
      UpdateExpression: 'SET #status = :final, emittedAt = :now, #expires = :expires REMOVE leaseUntil',
      ConditionExpression: '#owner = :owner AND #status = :emitting',
      ExpressionAttributeValues: expect.objectContaining({ ':final': { S: 'COMPLETE' }, ':owner': { S: 'req-1' } }),
    });
    expect(metrics).toEqual({ ItemsRead: 2, AggregationsCompleted: 1 });
    expect(dynamo).toHaveReceivedCommandTimes(ScanCommand, 0);
  });

  test('items written directly (seed style, no recorder) carry their other attributes as the payload; odd types become JSON', async () => {
    table = [
      { correlationId: '7', eventName: ACCOUNT_CHECK, OrderID: 7, expiresAt: NOW + DAY },
      { correlationId: '7', eventName: IN_STOCK, tags: new Set(['a', 'b']), blob: new Uint8Array([1, 2, 3]) },
    ];
    // A number DynamoDB holds exactly but a double cannot keeps its digits as a string.
    dynamo.on(QueryCommand).resolves({
      Items: [
        { ...marshall(table[0]), big: { N: '123456789012345678901' } },
        marshall(table[1]),
      ],
      Count: 2,
    });
    const { core } = aggregator();
    await core.processStreamBatch(streamEvent(streamRecord('MODIFY', table[1])));
    expect(emitted()[0].detail.events).toEqual({
      [ACCOUNT_CHECK]: { OrderID: 7, big: '123456789012345678901' },
      [IN_STOCK]: { tags: ['a', 'b'], blob: 'AQID' },
    });
  });

  test('a long item collection is read with one paginated Query (LastEvaluatedKey), never a Scan', async () => {
    const pages = [
      { Items: [marshall(eventItem('7', ACCOUNT_CHECK))], Count: 1, LastEvaluatedKey: marshall({ correlationId: '7', eventName: ACCOUNT_CHECK }) },
      { Items: [marshall(eventItem('7', 'Gift Wrap')), marshall(eventItem('7', IN_STOCK))], Count: 2 },
    ];
    dynamo.on(QueryCommand).resolvesOnce(pages[0]).resolvesOnce(pages[1]);
    const { core, metrics } = aggregator();
    const report = await core.processStreamBatch(streamEvent(streamRecord('INSERT', eventItem('7', IN_STOCK))));
    expect(report.outcomes[0]).toMatchObject({ outcome: 'completed', itemsRead: 3 });
    const queries = dynamo.commandCalls(QueryCommand).map((c) => c.args[0].input);
    expect(queries).toHaveLength(2);
    expect(queries.every((q) => q.ConsistentRead === true)).toBe(true);
    expect(queries[1].ExclusiveStartKey).toEqual(pages[0].LastEvaluatedKey);
    expect(emitted()[0].detail.received).toEqual({ [ACCOUNT_CHECK]: true, 'Gift Wrap': true, [IN_STOCK]: true });
    expect(metrics.ItemsRead).toBe(3);
    expect(dynamo).toHaveReceivedCommandTimes(ScanCommand, 0);
  });

  test('REMOVE records (TTL expiry) and marker records are ignored without reading the table', async () => {
    const { core } = aggregator();
    const report = await core.processStreamBatch(streamEvent(
      streamRecord('REMOVE', eventItem('7', ACCOUNT_CHECK)),
      streamRecord('INSERT', marker('EMITTING')),
      streamRecord('MODIFY', marker('COMPLETE')),
    ));
    expect(report).toEqual({ batchItemFailures: [], outcomes: [], ignoredRecords: 3 });
    expect(dynamo.calls()).toHaveLength(0);
    expect(emitted()).toEqual([]);
  });

  test('a record whose correlationId key is not a string (not this table\'s layout) is ignored with a warning', async () => {
    const record = streamRecord('INSERT', eventItem('7', ACCOUNT_CHECK));
    record.dynamodb!.Keys = { correlationId: { N: '7' }, eventName: { S: ACCOUNT_CHECK } };
    const { core, logger } = aggregator();
    const report = await core.processStreamBatch(streamEvent(record));
    expect(report).toEqual({ batchItemFailures: [], outcomes: [], ignoredRecords: 1 });
    expect(logger.messages('warn')).toEqual(['stream record without a string correlationId key; ignored']);
    expect(dynamo.calls()).toHaveLength(0);
  });

  test('records are grouped by correlation id: one Query per id, in first-seen order', async () => {
    table = [eventItem('8', ACCOUNT_CHECK), eventItem('7', ACCOUNT_CHECK), eventItem('7', IN_STOCK)];
    const { core } = aggregator();
    const report = await core.processStreamBatch(streamEvent(
      streamRecord('INSERT', table[0]), streamRecord('INSERT', table[1]), streamRecord('INSERT', table[2]), streamRecord('MODIFY', table[0]),
    ));
    expect(report.outcomes.map((o) => [o.correlationId, o.outcome])).toEqual([['8', 'waiting'], ['7', 'completed']]);
    expect(dynamo.commandCalls(QueryCommand).map((c) => c.args[0].input.ExpressionAttributeValues![':id'].S)).toEqual(['8', '7']);
    expect(emitted().map((e) => e.detail.correlationId)).toEqual(['7']);
  });

  test('an event after completion is not emitted again: LateEvents counted and logged with the reason; a replayed record is not late', async () => {
    table = [eventItem('7', ACCOUNT_CHECK), eventItem('7', IN_STOCK), eventItem('7', 'Gift Wrap'), marker('COMPLETE')];
    const { core, logger, metrics } = aggregator();
    // The stream delivers In Stock's INSERT again (a retried batch) with Gift Wrap's first write.
    const report = await core.processStreamBatch(streamEvent(streamRecord('INSERT', table[1]), streamRecord('INSERT', table[2])));
    expect(report.outcomes).toEqual([expect.objectContaining({ outcome: 'done', lateEvents: ['Gift Wrap'] })]);
    expect(logger.messages('warn')).toEqual(['event Gift Wrap for 7 arrived after the aggregation was COMPLETE; not emitted again']);
    expect(metrics.LateEvents).toBe(1);
    expect(dynamo).toHaveReceivedCommandTimes(PutItemCommand, 0);
    expect(emitted()).toEqual([]);
  });

  test('a claim that finds the marker COMPLETE (another shard won) emits nothing and succeeds', async () => {
    table = [eventItem('7', ACCOUNT_CHECK), eventItem('7', IN_STOCK)];
    dynamo.on(PutItemCommand).rejects(conditionFailed(marker('COMPLETE')));
    const { core, logger } = aggregator();
    const report = await core.processStreamBatch(streamEvent(streamRecord('INSERT', table[1])));
    expect(report).toMatchObject({ batchItemFailures: [], outcomes: [{ outcome: 'claimed-elsewhere' }] });
    expect(logger.messages('info')).toContain('aggregation of 7 was already emitted by another invocation (COMPLETE); nothing to do');
    expect(emitted()).toEqual([]);
  });

  test('a claim that finds a live claim of another invocation is retried (batch item failure), not dropped', async () => {
    table = [eventItem('7', ACCOUNT_CHECK), eventItem('7', IN_STOCK)];
    dynamo.on(PutItemCommand).rejects(conditionFailed(marker('EMITTING', { owner: 'req-0', leaseUntil: NOW + 30 })));
    const { core } = aggregator();
    const record = streamRecord('INSERT', table[1]);
    const report = await core.processStreamBatch(streamEvent(record));
    expect(report.batchItemFailures).toEqual([{ itemIdentifier: record.dynamodb!.SequenceNumber }]);
    expect(report.outcomes[0]).toMatchObject({ outcome: 'busy', error: expect.stringContaining(`req-0, lease until ${NOW + 30}`) });
    expect(emitted()).toEqual([]);
  });

  // Invariant: a claim whose owner died is taken over by the stream's own retries, so the
  // aggregate is emitted even when no new event and no deadline ever come. Each retry that
  // finds a live lease waits out as much of it as its invocation allows before giving up.
  describe('a claim held by an invocation that died', () => {
    function clockedAggregator(remainingAtStart: number) {
      let clockMs = NOW * 1000;
      const endMs = clockMs + remainingAtStart;
      const sleeps: number[] = [];
      const core = new Aggregator({
        dynamoDb: new DynamoDBClient({ region: 'us-east-1' }),
        eventBridge: new EventBridgeClient({ region: 'us-east-1' }),
        owner: 'req-1',
        nowSeconds: () => Math.floor(clockMs / 1000),
        remainingMs: () => endMs - clockMs,
        sleep: async (ms) => {
          sleeps.push(ms);
          clockMs += ms;
        },
      }, CONFIG);
      return { core, sleeps, now: () => Math.floor(clockMs / 1000), advance: (ms: number) => { clockMs += ms; } };
    }

    test('a lease that ends within the invocation\'s time is waited out, then taken over: the aggregate is emitted once', async () => {
      table = [eventItem('7', ACCOUNT_CHECK), eventItem('7', IN_STOCK)];
      const { core, sleeps, now } = clockedAggregator(29_000);
      dynamo.on(PutItemCommand).callsFake((input) => {
        if (now() <= NOW + 12) throw conditionFailed(marker('EMITTING', { owner: 'req-0', leaseUntil: NOW + 12 }));
        expect(input.ExpressionAttributeValues[':now'].N).toBe(String(now()));
        return {};
      });
      const report = await core.processStreamBatch(streamEvent(streamRecord('INSERT', table[1])));
      expect(report).toMatchObject({ batchItemFailures: [], outcomes: [{ outcome: 'completed' }] });
      expect(sleeps).toEqual([13_000]);
      expect(emitted().map((e) => e.detailType)).toEqual(['Aggregation Completed']);
    });

    test('a lease that ends later waits until only the reserve is left, then the id is retried (busy): each retry wears the lease down', async () => {
      table = [eventItem('7', ACCOUNT_CHECK), eventItem('7', IN_STOCK)];
      const { core, sleeps } = clockedAggregator(29_000);
      dynamo.on(PutItemCommand).rejects(conditionFailed(marker('EMITTING', { owner: 'req-0', leaseUntil: NOW + 50 })));
      const record = streamRecord('INSERT', table[1]);
      const report = await core.processStreamBatch(streamEvent(record));
      expect(report.batchItemFailures).toEqual([{ itemIdentifier: record.dynamodb!.SequenceNumber }]);
      expect(report.outcomes[0].outcome).toBe('busy');
      expect(sleeps).toEqual([14_000]);
      // No claim at the reserve's edge: the lease could not have ended, and a claim there leaves no time to emit.
      expect(dynamo).toHaveReceivedCommandTimes(PutItemCommand, 1);
      expect(emitted()).toEqual([]);
    });

    test('with a real timer (which fires late) a capped wait still reports the id busy, not out of time', async () => {
      table = [eventItem('7', ACCOUNT_CHECK), eventItem('7', IN_STOCK)];
      const started = Date.now();
      const core = new Aggregator({
        dynamoDb: new DynamoDBClient({ region: 'us-east-1' }),
        eventBridge: new EventBridgeClient({ region: 'us-east-1' }),
        owner: 'req-1',
        nowSeconds: () => NOW,
        remainingMs: () => 15_050 - (Date.now() - started),
      }, CONFIG);
      dynamo.on(PutItemCommand).rejects(conditionFailed(marker('EMITTING', { owner: 'req-0', leaseUntil: NOW + 50 })));
      const report = await core.processStreamBatch(streamEvent(streamRecord('INSERT', table[1])));
      expect(report.outcomes[0].outcome).toBe('busy');
    });

    test('a claim taken with the reserve left and PutEvents throttled stops retrying while the finish still has its time: released, retried', async () => {
      table = [eventItem('7', ACCOUNT_CHECK), eventItem('7', IN_STOCK)];
      const { core, advance } = clockedAggregator(16_000);
      let puts = 0;
      events.on(PutEventsCommand).callsFake((input) => {
        puts++;
        advance(4_500); // a slow call
        return { FailedEntryCount: 1, Entries: input.Entries.map(() => ({ ErrorCode: 'ThrottlingException', ErrorMessage: 'Rate exceeded' })) };
      });
      const report = await core.processStreamBatch(streamEvent(streamRecord('INSERT', table[1])));
      expect(report.outcomes[0].outcome).toBe('failed');
      expect(puts).toBe(1); // 16 s left at the claim, 11.5 s after the first call: under the 12 s a retry and the finish need
      // The lease is released (leaseUntil 0), so the stream's retry claims at once.
      expect(dynamo).toHaveReceivedCommandWith(UpdateItemCommand, { UpdateExpression: 'SET leaseUntil = :zero' });
    });
  });

  test('a lost answer to "mark complete" whose write was applied is success, not "lease taken over"', async () => {
    table = [eventItem('7', ACCOUNT_CHECK), eventItem('7', IN_STOCK)];
    dynamo.on(UpdateItemCommand)
      .rejectsOnce(Object.assign(new Error('request timed out'), { name: 'TimeoutError' }))
      .rejects(conditionFailed(marker('COMPLETE', { owner: 'req-1' })));
    const { core, logger } = aggregator();
    const report = await core.processStreamBatch(streamEvent(streamRecord('INSERT', table[1])));
    expect(report.outcomes[0].outcome).toBe('completed');
    expect(dynamo).toHaveReceivedCommandTimes(UpdateItemCommand, 2);
    expect(dynamo).toHaveReceivedCommandWith(UpdateItemCommand, { ReturnValuesOnConditionCheckFailure: 'ALL_OLD' });
    expect(logger.messages('error')).toEqual([]);
  });


  test('when the failed condition returns no item, the marker is read with a consistent GetItem', async () => {
    table = [eventItem('7', ACCOUNT_CHECK), eventItem('7', IN_STOCK)];
    dynamo.on(PutItemCommand).rejects(conditionFailed());
    dynamo.on(GetItemCommand).resolves({ Item: marshall(marker('INCOMPLETE')) });
    const { core } = aggregator();
    const report = await core.processStreamBatch(streamEvent(streamRecord('INSERT', table[1])));
    expect(report.outcomes[0].outcome).toBe('claimed-elsewhere');
    expect(dynamo).toHaveReceivedCommandWith(GetItemCommand, { ConsistentRead: true, Key: { correlationId: { S: '7' }, eventName: { S: '#aggregate' } } });
  });

  test('PutEvents failure: the marker stays EMITTING with its lease released, the first record of the id fails; other ids go on', async () => {
    table = [eventItem('7', ACCOUNT_CHECK), eventItem('7', IN_STOCK), eventItem('8', ACCOUNT_CHECK), eventItem('8', IN_STOCK)];
    events.on(PutEventsCommand).callsFake((input) => {
      const failed = JSON.parse(input.Entries[0].Detail).correlationId === '7';
      return failed
        ? { FailedEntryCount: 1, Entries: [{ ErrorCode: 'InternalFailure', ErrorMessage: 'try again' }] }
        : { FailedEntryCount: 0, Entries: [{ EventId: 'ok' }] };
    });
    const { core, metrics } = aggregator();
    const first7 = streamRecord('INSERT', table[0]);
    const report = await core.processStreamBatch(streamEvent(first7, streamRecord('INSERT', table[2]), streamRecord('INSERT', table[1]),
      streamRecord('INSERT', table[3])));

    expect(report.batchItemFailures).toEqual([{ itemIdentifier: first7.dynamodb!.SequenceNumber }]);
    expect(report.outcomes.map((o) => [o.correlationId, o.outcome])).toEqual([['7', 'failed'], ['8', 'completed']]);
    expect(report.outcomes[0].error).toBe('PutEvents of Aggregation Completed for 7 failed: InternalFailure: try again; '
      + 'the marker stays EMITTING and a retry claims it again');
    // 4 attempts for 7 (retryable code), 1 for 8.
    expect(events).toHaveReceivedCommandTimes(PutEventsCommand, 5);
    const updates = dynamo.commandCalls(UpdateItemCommand).map((c) => c.args[0].input);
    expect(updates.map((u) => [u.Key!.correlationId.S, u.UpdateExpression])).toEqual([
      ['7', 'SET leaseUntil = :zero'],
      ['8', 'SET #status = :final, emittedAt = :now, #expires = :expires REMOVE leaseUntil'],
    ]);
    expect(metrics.AggregationsCompleted).toBe(1);
  });

  test('a failing Query fails only its id, from its first record', async () => {
    table = [eventItem('8', ACCOUNT_CHECK), eventItem('8', IN_STOCK)];
    dynamo.on(QueryCommand, { ExpressionAttributeValues: { ':id': { S: '7' } } }).rejects(Object.assign(new Error('Throughput exceeded'), {
      name: 'ProvisionedThroughputExceededException',
    }));
    const { core, logger } = aggregator();
    const a = streamRecord('INSERT', eventItem('7', ACCOUNT_CHECK));
    const report = await core.processStreamBatch(streamEvent(a, streamRecord('INSERT', table[1]), streamRecord('INSERT', eventItem('7', IN_STOCK))));
    expect(report.batchItemFailures).toEqual([{ itemIdentifier: a.dynamodb!.SequenceNumber }]);
    expect(report.outcomes.map((o) => o.outcome)).toEqual(['failed', 'completed']);
    expect(logger.messages('error')).toEqual([`aggregation of 7 failed; the stream retries from record ${a.dynamodb!.SequenceNumber}`]);
  });

  test('payloads over the PutEvents entry limit: the event goes out without them, with truncated: true', async () => {
    table = [eventItem('7', ACCOUNT_CHECK, { blob: 'x'.repeat(3000) }), eventItem('7', IN_STOCK, { blob: 'y'.repeat(3000) })];
    const { core, logger } = aggregator({ maxEntryBytes: 4096 });
    const report = await core.processStreamBatch(streamEvent(streamRecord('INSERT', table[1])));
    expect(report.outcomes[0]).toMatchObject({ outcome: 'completed', truncated: true });
    expect(emitted()[0].detail).toEqual({
      correlationId: '7', status: 'complete', received: { [ACCOUNT_CHECK]: true, [IN_STOCK]: true }, eventCount: 2, truncated: true,
    });
    expect(logger.messages('warn')[0]).toContain('emitted without them (truncated)');
  });

  test('names alone over the entry limit: `received` is left out too, and the event still fits (it is never rejected forever)', async () => {
    // The recorder stores any name up to 1024 bytes, not only the required ones; `received` names them all.
    const extra = Array.from({ length: 60 }, (_, i) => eventItem('7', `optional-event-${i}-${'n'.repeat(80)}`));
    table = [eventItem('7', ACCOUNT_CHECK), eventItem('7', IN_STOCK), ...extra];
    const { core } = aggregator({ maxEntryBytes: 4096 });
    const report = await core.processStreamBatch(streamEvent(streamRecord('INSERT', table[1])));
    expect(report.outcomes[0]).toMatchObject({ outcome: 'completed', truncated: true });
    const entry = events.commandCalls(PutEventsCommand)[0].args[0].input.Entries![0];
    expect(putEventsEntrySize(entry)).toBeLessThanOrEqual(4096);
    expect(JSON.parse(entry.Detail!)).toEqual({ correlationId: '7', status: 'complete', eventCount: 62, truncated: true });
  });

  test('an Incomplete event too large even without payloads keeps `missing` and drops `received` first', async () => {
    const extra = Array.from({ length: 60 }, (_, i) => eventItem('7', `optional-event-${i}-${'n'.repeat(80)}`));
    table = [eventItem('7', ACCOUNT_CHECK), ...extra];
    const { core } = aggregator({ maxEntryBytes: 4096, deadlineSeconds: 900, schedule: SCHEDULE }, 'req-1');
    const outcome = await core.processDeadline({ deadlineFor: '7' });
    expect(outcome).toMatchObject({ outcome: 'incomplete', truncated: true });
    const entry = events.commandCalls(PutEventsCommand)[0].args[0].input.Entries![0];
    expect(putEventsEntrySize(entry)).toBeLessThanOrEqual(4096);
    expect(JSON.parse(entry.Detail!)).toEqual({ correlationId: '7', status: 'incomplete', missing: [IN_STOCK], eventCount: 61, truncated: true });
  });

  test('EMIT_ON_EVERY_CHANGE: an Updated event per change (partial, then complete), and Completed once', async () => {
    const { core } = aggregator({ emitOnEveryChange: true });
    table = [eventItem('7', ACCOUNT_CHECK)];
    await core.processStreamBatch(streamEvent(streamRecord('INSERT', table[0])));
    table.push(eventItem('7', IN_STOCK));
    await core.processStreamBatch(streamEvent(streamRecord('INSERT', table[1])));
    expect(emitted().map((e) => [e.detailType, e.detail.status, e.detail.missing])).toEqual([
      ['Aggregation Updated', 'partial', [IN_STOCK]],
      ['Aggregation Updated', 'complete', []],
      ['Aggregation Completed', 'complete', undefined],
    ]);
    expect(emitted()[0].detail.received).toEqual({ [ACCOUNT_CHECK]: true });
  });

  test('an emitted event whose marker cannot be finished is logged, not failed (at least once)', async () => {
    table = [eventItem('7', ACCOUNT_CHECK), eventItem('7', IN_STOCK)];
    dynamo.on(UpdateItemCommand).rejects(conditionFailed());
    const { core, logger } = aggregator();
    const report = await core.processStreamBatch(streamEvent(streamRecord('INSERT', table[1])));
    expect(report).toMatchObject({ batchItemFailures: [], outcomes: [{ outcome: 'completed' }] });
    expect(logger.messages('error')[0]).toContain('our lease expired and another invocation took the marker over');
  });

  // Invariant: once the aggregate is out, a transient failure of "mark complete" does not
  // leave the marker claimable (a later write of the id would then emit it again).
  test('a throttled or failed "mark complete" is retried until the marker is COMPLETE', async () => {
    table = [eventItem('7', ACCOUNT_CHECK), eventItem('7', IN_STOCK)];
    const throttled = new ProvisionedThroughputExceededException({ message: 'Rate of requests exceeds the allowed throughput', $metadata: {} });
    dynamo.on(UpdateItemCommand).rejectsOnce(throttled).rejectsOnce(new Error('socket hang up')).resolves({});
    const { core, logger } = aggregator();
    const report = await core.processStreamBatch(streamEvent(streamRecord('INSERT', table[1])));
    expect(report).toMatchObject({ batchItemFailures: [], outcomes: [{ outcome: 'completed' }] });
    const finishes = dynamo.commandCalls(UpdateItemCommand).map((c) => c.args[0].input.ExpressionAttributeValues![':final']?.S);
    expect(finishes).toEqual(['COMPLETE', 'COMPLETE', 'COMPLETE']);
    expect(logger.messages('error')).toEqual([]);
    expect(emitted()).toHaveLength(1);
  });

  test('a "mark complete" that keeps failing is given up after 6 attempts with an error naming the risk of a second emit', async () => {
    table = [eventItem('7', ACCOUNT_CHECK), eventItem('7', IN_STOCK)];
    dynamo.on(UpdateItemCommand).rejects(new Error('socket hang up'));
    const { core, logger, metrics } = aggregator();
    const report = await core.processStreamBatch(streamEvent(streamRecord('INSERT', table[1])));
    expect(report).toMatchObject({ batchItemFailures: [], outcomes: [{ outcome: 'completed' }] });
    expect(dynamo).toHaveReceivedCommandTimes(UpdateItemCommand, 6);
    expect(logger.messages('error')).toEqual([expect.stringContaining('the marker stays EMITTING after 6 attempts, so a later trigger may emit again')]);
    // Counted for the unmarked-aggregate alarm.
    expect(metrics.UnmarkedAggregates).toBe(1);
  });

  test('a "mark complete" refused because the lease was taken over is not retried', async () => {
    table = [eventItem('7', ACCOUNT_CHECK), eventItem('7', IN_STOCK)];
    dynamo.on(UpdateItemCommand).rejects(conditionFailed());
    const { core } = aggregator();
    await core.processStreamBatch(streamEvent(streamRecord('INSERT', table[1])));
    expect(dynamo).toHaveReceivedCommandTimes(UpdateItemCommand, 1);
  });

  test('expired items (TTL not yet applied) count as gone', async () => {
    table = [{ ...eventItem('7', ACCOUNT_CHECK), expiresAt: NOW - 1 }, eventItem('7', IN_STOCK)];
    const { core } = aggregator();
    const report = await core.processStreamBatch(streamEvent(streamRecord('INSERT', table[1])));
    expect(report.outcomes[0]).toMatchObject({ outcome: 'waiting', missing: [ACCOUNT_CHECK] });
  });
});

describe('deadline', () => {
  const first = (receivedAt?: string) => eventItem('7', ACCOUNT_CHECK, { credit: 'approved' }, { receivedAt });

  test('the first write creates the one-time schedule: deterministic name, at(first event + deadline), target, DLQ, retries', async () => {
    table = [first('2027-01-15T07:59:30Z')];
    const { core } = aggregator(withDeadline);
    const report = await core.processStreamBatch(streamEvent(streamRecord('INSERT', table[0])));
    expect(report.outcomes[0]).toMatchObject({ outcome: 'waiting', scheduleCreated: true });
    expect(scheduler).toHaveReceivedCommandTimes(CreateScheduleCommand, 1);
    expect(scheduler).toHaveReceivedCommandWith(CreateScheduleCommand, {
      Name: deadlineScheduleName('7'),
      GroupName: SCHEDULE.groupName,
      ScheduleExpression: 'at(2027-01-15T08:14:30)',
      ScheduleExpressionTimezone: 'UTC',
      FlexibleTimeWindow: { Mode: 'OFF' },
      ActionAfterCompletion: 'DELETE',
      Target: {
        Arn: SCHEDULE.targetArn,
        RoleArn: SCHEDULE.roleArn,
        Input: JSON.stringify({ deadlineFor: '7' }),
        DeadLetterConfig: { Arn: SCHEDULE.dlqArn },
        RetryPolicy: { MaximumRetryAttempts: 5, MaximumEventAgeInSeconds: 3600 },
      },
    });
  });

  test('a replayed first write gets ConflictException, which is fine', async () => {
    table = [first()];
    scheduler.on(CreateScheduleCommand).rejects(new ConflictException({ message: 'Schedule exists', Message: 'Schedule exists', $metadata: {} }));
    const { core } = aggregator(withDeadline);
    const report = await core.processStreamBatch(streamEvent(streamRecord('INSERT', table[0])));
    expect(report).toMatchObject({ batchItemFailures: [], outcomes: [{ outcome: 'waiting', scheduleCreated: false }] });
  });

  test('every write of an unfinished id asks for the same schedule (the first creates it, the others get ConflictException)', async () => {
    table = [first(), eventItem('7', 'Gift Wrap')];
    const { core } = aggregator({ ...withDeadline, requiredEvents: [ACCOUNT_CHECK, IN_STOCK, 'Gift Wrap'] });
    await core.processStreamBatch(streamEvent(streamRecord('INSERT', table[1])));
    await core.processStreamBatch(streamEvent(streamRecord('MODIFY', table[0])));
    expect(scheduler).toHaveReceivedCommandTimes(CreateScheduleCommand, 2);
    const names = scheduler.commandCalls(CreateScheduleCommand).map((c) => [c.args[0].input.Name, c.args[0].input.ScheduleExpression]);
    expect(new Set(names.map((n) => n.join(' '))).size).toBe(1);
    expect(names[0][0]).toBe(deadlineScheduleName('7'));
  });

  test('a deadline already past when the first write is processed (stream lag) is set a minute ahead', async () => {
    table = [first('2027-01-15T06:00:00Z')];
    const { core } = aggregator(withDeadline);
    await core.processStreamBatch(streamEvent(streamRecord('INSERT', table[0])));
    expect(scheduler).toHaveReceivedCommandWith(CreateScheduleCommand, { ScheduleExpression: atExpression(NOW + 60) });
  });

  test('a failing CreateSchedule fails the record, so the first write is retried with its schedule', async () => {
    table = [first()];
    scheduler.on(CreateScheduleCommand).rejects(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }));
    const { core } = aggregator(withDeadline);
    const record = streamRecord('INSERT', table[0]);
    const report = await core.processStreamBatch(streamEvent(record));
    expect(report.batchItemFailures).toEqual([{ itemIdentifier: record.dynamodb!.SequenceNumber }]);
  });

  test('completion deletes the schedule; one already gone is fine', async () => {
    table = [first(), eventItem('7', IN_STOCK)];
    scheduler.on(DeleteScheduleCommand).rejects(new ResourceNotFoundException({ message: 'gone', Message: 'gone', $metadata: {} }));
    const { core } = aggregator(withDeadline);
    const report = await core.processStreamBatch(streamEvent(streamRecord('INSERT', table[1])));
    expect(report).toMatchObject({ batchItemFailures: [], outcomes: [{ outcome: 'completed' }] });
    expect(scheduler).toHaveReceivedCommandWith(DeleteScheduleCommand, { Name: deadlineScheduleName('7'), GroupName: SCHEDULE.groupName });
    expect(scheduler).toHaveReceivedCommandTimes(CreateScheduleCommand, 0);
  });

  test('a schedule that cannot be deleted is logged, not failed: its invocation will find the aggregation done', async () => {
    table = [first(), eventItem('7', IN_STOCK)];
    scheduler.on(DeleteScheduleCommand).rejects(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }));
    const { core, logger } = aggregator(withDeadline);
    const report = await core.processStreamBatch(streamEvent(streamRecord('INSERT', table[1])));
    expect(report).toMatchObject({ batchItemFailures: [], outcomes: [{ outcome: 'completed' }] });
    expect(logger.messages('warn')).toEqual([`could not delete deadline schedule ${deadlineScheduleName('7')}; its invocation will find the aggregation done`]);
  });

  test('the deadline with an event missing emits Incomplete listing it, through the claimed marker', async () => {
    table = [first()];
    const { core, metrics } = aggregator(withDeadline);
    const outcome = await core.processDeadline({ deadlineFor: '7' });
    expect(outcome).toMatchObject({ correlationId: '7', outcome: 'incomplete', missing: [IN_STOCK] });
    expect(emitted()).toEqual([expect.objectContaining({
      detailType: 'Aggregation Incomplete',
      detail: {
        correlationId: '7',
        status: 'incomplete',
        received: { [ACCOUNT_CHECK]: true },
        events: { [ACCOUNT_CHECK]: expect.objectContaining({ payload: { credit: 'approved' } }) },
        missing: [IN_STOCK],
        eventCount: 1,
      },
    })]);
    expect(dynamo).toHaveReceivedCommandWith(PutItemCommand, { Item: expect.objectContaining({ status: { S: 'EMITTING' } }) });
    expect(dynamo).toHaveReceivedCommandWith(UpdateItemCommand, { ExpressionAttributeValues: expect.objectContaining({ ':final': { S: 'INCOMPLETE' } }) });
    expect(metrics.AggregationsIncomplete).toBe(1);
    expect(scheduler).toHaveReceivedCommandTimes(DeleteScheduleCommand, 0);
  });

  test('the deadline after completion does nothing', async () => {
    table = [first(), eventItem('7', IN_STOCK), marker('COMPLETE')];
    const { core, logger } = aggregator(withDeadline);
    expect((await core.processDeadline({ deadlineFor: '7' })).outcome).toBe('done');
    expect(dynamo).toHaveReceivedCommandTimes(PutItemCommand, 0);
    expect(emitted()).toEqual([]);
    expect(logger.messages('info')).toEqual(['deadline of 7 passed after the aggregation was COMPLETE; nothing to emit']);
  });

  test('the deadline with everything there (the stream has not caught up) emits Completed through the same guard', async () => {
    table = [first(), eventItem('7', IN_STOCK)];
    const { core } = aggregator(withDeadline);
    expect((await core.processDeadline({ deadlineFor: '7' })).outcome).toBe('completed');
    expect(emitted().map((e) => e.detailType)).toEqual(['Aggregation Completed']);
  });

  test('a deadline that finds a live claim throws so the schedule retries it', async () => {
    table = [first()];
    dynamo.on(PutItemCommand).rejects(conditionFailed(marker('EMITTING', { leaseUntil: NOW + 30 })));
    const { core } = aggregator(withDeadline);
    await expect(core.processDeadline({ deadlineFor: '7' })).rejects.toThrow(AggregationBusyError);
  });

  test.each([[{}], [{ deadlineFor: '' }], [{ deadlineFor: 7 }]])('a deadline invocation without a correlation id is refused (%j)', async (input) => {
    const { core } = aggregator(withDeadline);
    await expect(core.processDeadline(input as any)).rejects.toThrow('deadline invocation needs a non-empty string deadlineFor');
  });
});

describe('time budget', () => {
  // Invariant: no claim is taken with less than the reserve of the invocation left, so a
  // timeout never lands between a claim and its finish (a claim that outlives its owner
  // blocks the id for the whole lease). An id not started in time is retried, not lost.
  test('ids reached with less than the reserve left are not claimed: they and every later id are retried from their first record', async () => {
    table = ['1', '2', '3'].flatMap((id) => [eventItem(id, ACCOUNT_CHECK), eventItem(id, IN_STOCK)]);
    let remaining = 25_000;
    const logger = captureLogger();
    const core = new Aggregator({
      dynamoDb: new DynamoDBClient({ region: 'us-east-1' }),
      eventBridge: new EventBridgeClient({ region: 'us-east-1' }),
      owner: 'req-1',
      logger,
      nowSeconds: () => NOW,
      sleep: async () => {},
      remainingMs: () => remaining,
    }, CONFIG);
    // Each id's Query costs 8 s of the invocation: id 1 starts with 25 s, id 2 with 17 s, id 3 with 9 s (under the 15 s reserve).
    dynamo.on(QueryCommand).callsFake((input) => {
      remaining -= 8_000;
      const items = table.filter((i) => i.correlationId === input.ExpressionAttributeValues[':id'].S);
      return { Items: items.map((i) => marshall(i)), Count: items.length };
    });
    const records = ['1', '2', '3'].map((id) => streamRecord('INSERT', eventItem(id, IN_STOCK)));

    const report = await core.processStreamBatch(streamEvent(...records));

    // id 2 was read with 17 s left, but its claim would start with 9 s: not claimed either.
    expect(report.outcomes.map((o) => [o.correlationId, o.outcome])).toEqual([['1', 'completed'], ['2', 'deferred'], ['3', 'deferred']]);
    expect(report.batchItemFailures).toEqual([records[1], records[2]].map((r) => ({ itemIdentifier: r.dynamodb!.SequenceNumber })));
    expect(dynamo.commandCalls(PutItemCommand).map((c) => c.args[0].input.Item!.correlationId.S)).toEqual(['1']);
    expect(emitted().map((e) => e.detail.correlationId)).toEqual(['1']);
    expect(dynamo.commandCalls(QueryCommand)).toHaveLength(2); // id 3 is not even read
    expect(report.outcomes[2].error).toBe('less than 15000 ms of the invocation left; the stream retries this id');
  });

  test('a deadline reached with less than the reserve left throws before claiming, so the schedule retries it', async () => {
    table = [eventItem('7', ACCOUNT_CHECK)];
    const core = new Aggregator({
      dynamoDb: new DynamoDBClient({ region: 'us-east-1' }),
      eventBridge: new EventBridgeClient({ region: 'us-east-1' }),
      scheduler: new SchedulerClient({ region: 'us-east-1' }),
      owner: 'req-1',
      nowSeconds: () => NOW,
      remainingMs: () => 4_000,
    }, { ...CONFIG, deadlineSeconds: 900, schedule: SCHEDULE });
    await expect(core.processDeadline({ deadlineFor: '7' })).rejects.toThrow('less than 15000 ms of the invocation left');
    expect(dynamo).toHaveReceivedCommandTimes(PutItemCommand, 0);
    expect(emitted()).toEqual([]);
  });
});

describe('aggregator handler', () => {
  Object.assign(process.env, ENV);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { handler } = require('../../src/event-aggregator/aggregator.lambda') as typeof import('../../src/event-aggregator/aggregator.lambda');
  const context = { awsRequestId: 'lambda-req-9', getRemainingTimeInMillis: () => 29_000 } as Context;

  test('a stream batch returns only the batch item failures; the request id owns the marker', async () => {
    table = [eventItem('7', ACCOUNT_CHECK), eventItem('7', IN_STOCK)];
    const result = await handler(streamEvent(streamRecord('INSERT', table[1])), context);
    expect(result).toEqual({ batchItemFailures: [] });
    expect(dynamo).toHaveReceivedCommandWith(PutItemCommand, { Item: expect.objectContaining({ owner: { S: 'lambda-req-9' } }) });
    expect(emitted()).toEqual([expect.objectContaining({ detailType: 'Aggregation Completed', source: 'shop.aggregator', bus: 'orders' })]);
  });

  test('a deadline invocation emits Incomplete and returns nothing', async () => {
    table = [eventItem('7', ACCOUNT_CHECK)];
    await expect(handler({ deadlineFor: '7' }, context)).resolves.toBeUndefined();
    expect(emitted().map((e) => e.detailType)).toEqual(['Aggregation Incomplete']);
  });

  test('{ redriveFailedBatches: {} } redrives the failed-batch bucket named in the environment and returns the report', async () => {
    const s3 = mockClient(S3Client);
    table = [eventItem('7', ACCOUNT_CHECK), eventItem('7', IN_STOCK)];
    const key = 'aws/lambda/uuid/shardId-1/2027/01/15/2027-01-15T08.00.00-uuid';
    s3.on(ListObjectsV2Command).resolves({ Contents: [{ Key: key }] });
    const body = JSON.stringify({ payload: JSON.stringify(streamEvent(streamRecord('INSERT', table[1]))) });
    s3.on(GetObjectCommand).resolves({ Body: { transformToString: async () => body } as any });
    s3.on(CopyObjectCommand).resolves({});
    s3.on(DeleteObjectCommand).resolves({});
    await expect(handler({ redriveFailedBatches: {} }, context)).resolves.toEqual({ found: 1, redriven: [key], failed: [], remaining: 0 });
    expect(s3).toHaveReceivedCommandWith(ListObjectsV2Command, { Bucket: 'failed-batches', Prefix: 'aws/lambda/' });
    expect(emitted().map((e) => e.detailType)).toEqual(['Aggregation Completed']);
    s3.restore();
  });

  test.each([
    [{ hello: 'world' }, '{"hello":"world"}'],
    ['deadlineFor', '"deadlineFor"'],
    [null, 'null'],
  ])('anything else is refused with what was received (%j)', async (event, shown) => {
    await expect(handler(event as any, context)).rejects.toThrow('unrecognised invocation: expected a DynamoDB stream batch (Records), '
      + `{ deadlineFor } or { redriveFailedBatches }, got ${shown}`);
    expect(dynamo.calls()).toHaveLength(0);
  });
});

describe('completion rules: conditions, newest replaces first, counts, any-of groups', () => {
  const APPROVED_CHECK = {
    requirements: [
      { label: ACCOUNT_CHECK, anyOf: [ACCOUNT_CHECK], count: 1, condition: { status: ['APPROVED'] }, failOnMismatch: false },
      { label: IN_STOCK, anyOf: [IN_STOCK], count: 1, failOnMismatch: false },
    ],
  };
  const FAILING_CHECK = APPROVED_CHECK.requirements.map((r, i) => (i === 0 ? { ...r, failOnMismatch: true } : r));
  const at = (minute: number) => ({ receivedAt: `2027-01-15T08:0${minute}:00.000Z` });

  test('a failing check does not trigger the invoice; the corrected (newer) check does, once', async () => {
    const { core } = aggregator({ ...APPROVED_CHECK, requiredEvents: undefined, newestReplaces: true });
    table = [eventItem('7', ACCOUNT_CHECK, { status: 'REJECTED' }, { ...at(0), eventId: 'c1' }), eventItem('7', IN_STOCK, { sku: 'A-1' }, at(1))];
    const first = await core.processStreamBatch(streamEvent(...table.map((i) => streamRecord('INSERT', i))));
    expect(first.outcomes[0]).toMatchObject({ outcome: 'waiting', missing: [ACCOUNT_CHECK] });
    expect(emitted()).toEqual([]);

    table.push(eventItem('7', ACCOUNT_CHECK, { status: 'APPROVED' }, { ...at(5), eventId: 'c2' }));
    const second = await core.processStreamBatch(streamEvent(streamRecord('INSERT', table[2])));
    expect(second.outcomes[0]).toMatchObject({ outcome: 'completed', missing: [] });
    expect(emitted()).toHaveLength(1);
    expect(emitted()[0]).toMatchObject({ detailType: 'Aggregation Completed', detail: { events: { [ACCOUNT_CHECK]: { eventId: 'c2', payload: { status: 'APPROVED' } } } } });
  });

  test('without newestReplaces the first (failing) check stays the one counted: no invoice, and the deadline says why', async () => {
    const { core } = aggregator({ ...APPROVED_CHECK, requiredEvents: undefined, ...withDeadline });
    table = [eventItem('7', ACCOUNT_CHECK, { status: 'REJECTED' }, { ...at(0), eventId: 'c1' }), eventItem('7', IN_STOCK, {}, at(1)),
      eventItem('7', ACCOUNT_CHECK, { status: 'APPROVED' }, { ...at(5), eventId: 'c2' })];
    expect((await core.processStreamBatch(streamEvent(streamRecord('INSERT', table[2])))).outcomes[0].outcome).toBe('waiting');
    expect(await core.processDeadline({ deadlineFor: '7' })).toMatchObject({ outcome: 'incomplete' });
    expect(emitted()).toEqual([expect.objectContaining({
      detailType: 'Aggregation Incomplete',
      detail: expect.objectContaining({
        status: 'incomplete', missing: [ACCOUNT_CHECK], mismatched: [{ requirement: ACCOUNT_CHECK, eventName: ACCOUNT_CHECK, eventId: 'c1' }],
      }),
    })]);
  });

  test('failOnMismatch: a failing check ends the set as Aggregation Failed, once; the marker is FAILED and later events are late', async () => {
    const rules = { requiredEvents: undefined, requirements: FAILING_CHECK };
    const { core, metrics } = aggregator({ ...rules, ...withDeadline });
    table = [eventItem('7', ACCOUNT_CHECK, { status: 'REJECTED' }, { ...at(0), eventId: 'c1' })];
    const report = await core.processStreamBatch(streamEvent(streamRecord('INSERT', table[0])));
    expect(report.outcomes[0]).toMatchObject({ outcome: 'failed-set', missing: [ACCOUNT_CHECK, IN_STOCK] });
    expect(emitted()).toEqual([expect.objectContaining({
      detailType: 'Aggregation Failed',
      detail: expect.objectContaining({ status: 'failed', mismatched: [{ requirement: ACCOUNT_CHECK, eventName: ACCOUNT_CHECK, eventId: 'c1' }] }),
    })]);
    expect(dynamo.commandCalls(UpdateItemCommand)[0].args[0].input.ExpressionAttributeValues![':final']).toEqual({ S: 'FAILED' });
    expect(metrics.AggregationsFailed).toBe(1);
    // A failed set is final: its deadline schedule goes, and a later event is late.
    expect(scheduler).toHaveReceivedCommandTimes(DeleteScheduleCommand, 1);
    table.push({ ...marker('FAILED', { eventKeys: [table[0].eventName] }) }, eventItem('7', IN_STOCK));
    const late = await core.processStreamBatch(streamEvent(streamRecord('INSERT', table[2])));
    expect(late.outcomes[0]).toMatchObject({ outcome: 'done', lateEvents: [IN_STOCK] });
    expect(emitted()).toHaveLength(1);
  });

  test('a deadline that finds a failing check of a failOnMismatch requirement emits Failed, not Incomplete', async () => {
    const rules = { requiredEvents: undefined, requirements: FAILING_CHECK };
    const { core } = aggregator({ ...rules, ...withDeadline });
    table = [eventItem('7', ACCOUNT_CHECK, { status: 'REJECTED' })];
    expect(await core.processDeadline({ deadlineFor: '7' })).toMatchObject({ outcome: 'failed-set' });
    expect(emitted().map((e) => e.detailType)).toEqual(['Aggregation Failed']);
  });

  test('counts and any-of groups: three signatures and either payment; a counted name carries the list of its events', async () => {
    const { core } = aggregator({
      requiredEvents: undefined,
      requirements: [
        { label: 'Signatures', anyOf: ['Signature'], count: 3, failOnMismatch: false },
        { label: 'Payment', anyOf: ['Card Payment', 'Bank Transfer'], count: 1, failOnMismatch: false },
      ],
    });
    table = [0, 1].map((i) => eventItem('7', 'Signature', { by: i }, { ...at(i), eventId: `s${i}` }));
    table.push(eventItem('7', 'Bank Transfer', { iban: 'x' }, at(3)));
    expect((await core.processStreamBatch(streamEvent(streamRecord('INSERT', table[2])))).outcomes[0]).toMatchObject({
      outcome: 'waiting', missing: ['Signatures'],
    });
    table.push(eventItem('7', 'Signature', { by: 2 }, { ...at(4), eventId: 's2' }));
    expect((await core.processStreamBatch(streamEvent(streamRecord('INSERT', table[3])))).outcomes[0].outcome).toBe('completed');
    const { detail } = emitted()[0];
    expect(detail.events.Signature.map((e: any) => e.eventId)).toEqual(['s0', 's1', 's2']);
    expect(detail.events['Bank Transfer'].payload).toEqual({ iban: 'x' });
    expect(detail.received).toEqual({ 'Signature': true, 'Bank Transfer': true });
    expect(detail.eventCount).toBe(4);
  });

  test('the environment carries the requirements and NEWEST_REPLACES; a bad requirement is named', () => {
    const requirements = [{ label: 'Check', anyOf: [ACCOUNT_CHECK], count: 1, condition: { status: ['APPROVED'] }, failOnMismatch: true }];
    const env = { ...ENV, REQUIRED_EVENTS: undefined, REQUIREMENTS: JSON.stringify(requirements), NEWEST_REPLACES: 'true' };
    expect(aggregatorConfigFromEnv(env)).toMatchObject({ requirements, newestReplaces: true });
    expect(aggregatorConfigFromEnv(env).requiredEvents).toBeUndefined();
    expect(() => aggregatorConfigFromEnv({ ...env, REQUIREMENTS: JSON.stringify([{ ...requirements[0], count: 0 }]) }))
      .toThrow('environment variable REQUIREMENTS: requirement 0 needs a positive integer count');
    expect(() => aggregatorConfigFromEnv({ ...env, REQUIREMENTS: JSON.stringify([{ ...requirements[0], condition: { status: 'APPROVED' } }]) }))
      .toThrow('environment variable REQUIREMENTS: requirement 0 condition.status must be an object');
    expect(() => aggregatorConfigFromEnv({ ...env, NEWEST_REPLACES: 'yes' })).toThrow("NEWEST_REPLACES must be 'true' or 'false', got yes");
  });
});
