import { DynamoDBClient, PutItemCommand, QueryCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { marshall } from '@aws-sdk/util-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { ACCOUNT_CHECK, captureLogger, CONFIG, DAY, eventItem, IN_STOCK, NOW, streamEvent, streamRecord } from './aggregator-fixtures';
import { eventKey } from '../../src/event-aggregator/aggregator-contract';
import { Aggregator, AggregatorConfig } from '../../src/event-aggregator/aggregator-core';
import { evaluate, oneOfEach, RecordedEvent } from '../../src/event-aggregator/completion-rules';
import { validateRecorderInput } from '../../src/event-aggregator/recorder-core';
import { putEventsEntrySize } from '../../src/runtime/put-events';

const dynamo = mockClient(DynamoDBClient);
const events = mockClient(EventBridgeClient);
let table: Record<string, any>[];

beforeEach(() => {
  dynamo.reset();
  events.reset();
  table = [];
  dynamo.on(QueryCommand).callsFake((input) => {
    const items = table.filter((i) => i.correlationId === input.ExpressionAttributeValues[':id'].S);
    return { Items: items.map((i) => marshall(i)), Count: items.length };
  });
  dynamo.on(PutItemCommand).resolves({});
  dynamo.on(UpdateItemCommand).resolves({});
  events.on(PutEventsCommand).callsFake((input) => ({ FailedEntryCount: 0, Entries: input.Entries.map(() => ({ EventId: 'out' })) }));
});

function aggregator(config: Partial<AggregatorConfig> = {}) {
  return new Aggregator({
    dynamoDb: new DynamoDBClient({ region: 'us-east-1' }),
    eventBridge: new EventBridgeClient({ region: 'us-east-1' }),
    owner: 'req-1',
    logger: captureLogger(),
    nowSeconds: () => NOW,
    sleep: async () => {},
  }, { ...CONFIG, ...config });
}

const entries = () => events.commandCalls(PutEventsCommand).flatMap((c) => c.args[0].input.Entries!);

const CHECK_APPROVED = {
  requiredEvents: undefined,
  requirements: [
    { label: ACCOUNT_CHECK, anyOf: [ACCOUNT_CHECK], count: 1, condition: { status: ['APPROVED'] }, failOnMismatch: false },
    { label: IN_STOCK, anyOf: [IN_STOCK], count: 1, failOnMismatch: false },
  ],
};

test('newestReplaces: a directly written item without receivedAt is the oldest, so a later dated correction replaces it', async () => {
  const core = aggregator({ ...CHECK_APPROVED, newestReplaces: true });
  // A producer using grantRecord writes its check directly, bare name, no receivedAt (docs: receivedAt is optional).
  const direct = { correlationId: '7', eventName: ACCOUNT_CHECK, status: 'REJECTED', expiresAt: NOW + 7 * DAY };
  table = [direct, eventItem('7', IN_STOCK, {}, { receivedAt: '2027-01-15T07:00:00.000Z' })];
  await core.processStreamBatch(streamEvent(...table.map((i) => streamRecord('INSERT', i))));
  // The corrected check arrives later, with a real event time: with newestReplaces it must replace the rejected one.
  const corrected = eventItem('7', ACCOUNT_CHECK, { status: 'APPROVED' }, { receivedAt: '2027-01-15T08:00:00.000Z', eventId: 'c2' });
  table.push(corrected);
  const report = await core.processStreamBatch(streamEvent(streamRecord('INSERT', corrected)));
  expect(report.outcomes[0]).toMatchObject({ outcome: 'completed', missing: [] });
});

test('newestReplaces: a correction within the same second (EventBridge time has 1 s resolution) wins by the time it was recorded', async () => {
  const core = aggregator({ ...CHECK_APPROVED, newestReplaces: true });
  const sameSecond = '2027-01-15T08:00:00Z'; // what $.time looks like: whole seconds
  table = [
    eventItem('7', ACCOUNT_CHECK, { status: 'REJECTED' }, { receivedAt: sameSecond, eventId: 'f0c1-rejected', recordedAt: '2027-01-15T08:00:00.200Z' }),
    eventItem('7', IN_STOCK, {}, { receivedAt: sameSecond }),
  ];
  await core.processStreamBatch(streamEvent(...table.map((i) => streamRecord('INSERT', i))));
  const corrected = eventItem('7', ACCOUNT_CHECK, { status: 'APPROVED' },
    { receivedAt: sameSecond, eventId: '0a9e-approved', recordedAt: '2027-01-15T08:00:00.700Z' });
  table.push(corrected);
  const report = await core.processStreamBatch(streamEvent(streamRecord('INSERT', corrected)));
  expect(report.outcomes[0]).toMatchObject({ outcome: 'completed' });
});

test('count 2 of an any-of group needs two distinct events: one event recorded under both names counts once', () => {
  // Two bus sources (addSource) whose rules both match one payment event, each with its own constant eventName.
  const e = (name: string): RecordedEvent => ({ key: eventKey(name, 'evt-1'), name, eventId: 'evt-1', timeMs: 0, payload: {}, detail: {} });
  const result = evaluate([{ label: 'Two payments', anyOf: ['Card Payment', 'Bank Transfer'], count: 2, failOnMismatch: false }],
    [e('Card Payment'), e('Bank Transfer')], false);
  // Before the fix the set was complete with evt-1 counted under both names.
  expect(result).toMatchObject({ state: 'waiting', missing: ['Two payments'] });
});

test('a correlation id that JSON escaping would take over 2 KiB is refused by the recorder, so the smallest aggregate always fits', async () => {
  // 2048 bytes of UTF-8, 4096 once escaped: refused with the reason.
  expect(() => validateRecorderInput({ correlationId: '"'.repeat(2048), eventName: ACCOUNT_CHECK, eventId: 'e1', detail: {} }, 350_000))
    .toThrow('correlationId is 4096 bytes once escaped as JSON, more than the 2048-byte limit');
  // The longest id the recorder accepts still fits the smallest aggregate.
  const correlationId = '"'.repeat(1024);
  expect(validateRecorderInput({ correlationId, eventName: ACCOUNT_CHECK, eventId: 'e1', detail: {} }, 350_000).correlationId).toBe(correlationId);
  const core = aggregator({ maxEntryBytes: 4096 });
  table = [eventItem(correlationId, ACCOUNT_CHECK), eventItem(correlationId, IN_STOCK)];
  const report = await core.processStreamBatch(streamEvent(streamRecord('INSERT', table[1])));
  expect(report.outcomes[0].outcome).toBe('completed');
  const [entry] = entries();
  expect(putEventsEntrySize(entry)).toBeLessThanOrEqual(4096);
});

test('one event recorded under two required names (two sources matched it) completes only one of them', () => {
  const e = (name: string): RecordedEvent => ({ key: eventKey(name, 'evt-1'), name, eventId: 'evt-1', timeMs: 1_000, payload: {}, detail: {} });
  const result = evaluate(oneOfEach([ACCOUNT_CHECK, IN_STOCK]), [e(ACCOUNT_CHECK), e(IN_STOCK)], false);
  expect(result).toMatchObject({ state: 'waiting', missing: [IN_STOCK] });
  // Both names are still carried in the aggregated event.
  expect([...result.counted.keys()]).toEqual([ACCOUNT_CHECK, IN_STOCK]);
});
