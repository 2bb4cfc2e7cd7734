import { GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { marshall, unmarshall } from '@aws-sdk/util-dynamodb';
import { ACCOUNT_CHECK, captureLogger, captureMetrics, createAggregatesTable, IN_STOCK, streamEvent, streamRecord } from './aggregator-fixtures';
import { eventKey } from '../../src/event-aggregator/aggregator-contract';
import { Aggregator } from '../../src/event-aggregator/aggregator-core';
import { recordEvent } from '../../src/event-aggregator/recorder-core';
import { motoClients, uniqueName } from '../support/moto';

const { dynamoDb } = motoClients();
const TTL = 7 * 86_400;
const T0 = 1_800_000_000;

/**
 * An id's lifetime: the marker's TTL is set when the aggregate is emitted; an event that
 * arrives later (reported late, not emitted again) gets a TTL that would outlive the marker,
 * and once the marker expired the late events would be read as a new set and emitted a
 * second time (found by review). A late event extends the marker's life to its own.
 */
test('events reported late for an emitted set are never emitted again: the marker lives as long as they do', async () => {
  const table = uniqueName('aggregates');
  await createAggregatesTable(dynamoDb, table);
  const put: any[] = [];
  const eventBridge = { send: async (cmd: any) => { put.push(...cmd.input.Entries); return { FailedEntryCount: 0, Entries: cmd.input.Entries.map(() => ({ EventId: 'x' })) }; } } as any;
  let now = T0;
  const core = new Aggregator({ dynamoDb, eventBridge, owner: 'req', logger: captureLogger(), nowSeconds: () => now, sleep: async () => {} }, {
    tableName: table,
    outputBusName: 'orders',
    source: 'agg',
    requiredEvents: [ACCOUNT_CHECK, IN_STOCK],
    emitOnEveryChange: false,
    deadlineSeconds: 0,
    itemTtlSeconds: TTL,
  });
  const record = async (name: string, eventId: string) => {
    const recorderConfig = { tableName: table, itemTtlSeconds: TTL, maxPayloadBytes: 350_000 };
    await recordEvent({ dynamoDb, logger: captureLogger(), nowSeconds: () => now }, recorderConfig,
      { correlationId: '7', eventName: name, eventId, time: new Date(now * 1000).toISOString(), detail: { eventId } });
    const { Item } = await dynamoDb.send(new GetItemCommand({ TableName: table, Key: marshall({ correlationId: '7', eventName: eventKey(name, eventId) }), ConsistentRead: true }));
    return core.processStreamBatch(streamEvent(streamRecord('INSERT', unmarshall(Item!))));
  };

  await record(ACCOUNT_CHECK, 'a1');
  expect((await record(IN_STOCK, 'b1')).outcomes[0].outcome).toBe('completed');

  // Late events of order 7 within the item lifetime: reported late, not emitted.
  now = T0 + TTL - 3600;
  expect((await record(ACCOUNT_CHECK, 'a2')).outcomes[0]).toMatchObject({ outcome: 'done', lateEvents: [ACCOUNT_CHECK] });
  now = T0 + TTL - 1800;
  expect((await record(IN_STOCK, 'b2')).outcomes[0]).toMatchObject({ outcome: 'done', lateEvents: [IN_STOCK] });

  // The marker (expiresAt T0 + TTL) expires; a2 and b2 (expiresAt ~T0 + 2 TTL) live on. Any later write of the id...
  now = T0 + TTL + 60;
  const third = await record('Gift Wrap', 'g1');
  const details = put.map((e) => ({ detailType: e.DetailType, ids: Object.values(JSON.parse(e.Detail).events ?? {}).map((x: any) => x.eventId) }));
  expect({ outcome: third.outcomes[0].outcome, emitted: details }).toEqual({
    outcome: 'done',
    emitted: [{ detailType: 'Aggregation Completed', ids: ['a1', 'b1'] }],
  });
});

test('direct writer (bare names): a new event of an emitted name after completion is late, and the set is never emitted twice (found by review)', async () => {
  const table = uniqueName('aggregates');
  await createAggregatesTable(dynamoDb, table);
  const put: any[] = [];
  const eventBridge = { send: async (cmd: any) => { put.push(...cmd.input.Entries); return { FailedEntryCount: 0, Entries: cmd.input.Entries.map(() => ({ EventId: 'x' })) }; } } as any;
  let now = T0;
  const metrics = captureMetrics();
  const core = new Aggregator({ dynamoDb, eventBridge, owner: 'req', logger: captureLogger(), metric: metrics.metric, nowSeconds: () => now, sleep: async () => {} }, {
    tableName: table, outputBusName: 'orders', source: 'agg', requiredEvents: ['Shipped'], emitOnEveryChange: false, deadlineSeconds: 0, itemTtlSeconds: TTL,
  });
  const write = async (attrs: Record<string, unknown>) => {
    const item = { correlationId: '7', eventName: 'Shipped', receivedAt: new Date(now * 1000).toISOString(), expiresAt: now + TTL, ...attrs };
    await dynamoDb.send(new PutItemCommand({ TableName: table, Item: marshall(item) }));
    return core.processStreamBatch(streamEvent(streamRecord(put.length === 0 && attrs.carrier === 'UPS' ? 'INSERT' : 'MODIFY', item)));
  };

  expect((await write({ carrier: 'UPS' })).outcomes[0].outcome).toBe('completed');
  // Six days later the producer writes a new Shipped event (a re-shipment) for order 7.
  now = T0 + 6 * 86_400;
  const late = await write({ carrier: 'DHL' });
  const lateCount = metrics.totals.LateEvents;
  // Eight days later (marker expired at T0 + TTL; the DHL item lives until T0 + 13 days) the producer writes again.
  now = T0 + 8 * 86_400;
  const again = await write({ carrier: 'FedEx' });

  expect({
    lateReport: { outcome: late.outcomes[0].outcome, lateEvents: late.outcomes[0].lateEvents, LateEvents: lateCount },
    againOutcome: again.outcomes[0].outcome,
    completedEvents: put.filter((e) => e.DetailType === 'Aggregation Completed').map((e) => JSON.parse(e.Detail).events.Shipped.carrier),
  }).toEqual({
    lateReport: { outcome: 'done', lateEvents: ['Shipped'], LateEvents: 1 },
    againOutcome: 'done',
    completedEvents: ['UPS'],
  });
});
