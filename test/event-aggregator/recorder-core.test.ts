import { ConditionalCheckFailedException, DynamoDBClient, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import { captureLogger, DAY, NOW } from './aggregator-fixtures';
import {
  DEFAULT_MAX_PAYLOAD_BYTES, recordEvent, RecorderConfig, recorderConfigFromEnv, RecorderInput,
} from '../../src/event-aggregator/recorder-core';

const ENV = { TABLE_NAME: 'aggregates', ITEM_TTL_SECONDS: String(7 * DAY), MAX_PAYLOAD_BYTES: '1000', POWERTOOLS_SERVICE_NAME: 'event-aggregator' };
const CONFIG: RecorderConfig = { tableName: 'aggregates', itemTtlSeconds: 7 * DAY, maxPayloadBytes: 1000 };

const dynamo = mockClient(DynamoDBClient);

beforeEach(() => {
  dynamo.reset();
  dynamo.on(PutItemCommand).resolves({});
});

/** What the source rule's input transformer gives the recorder. */
const input = (overrides: Partial<Record<keyof RecorderInput, unknown>> = {}): RecorderInput => ({
  correlationId: 7, eventName: 'In Stock', eventId: 'e-1', time: '2027-01-15T08:00:00Z', detail: { OrderID: 7, sku: 'A-1' }, ...overrides,
});

function recorder() {
  const logger = captureLogger();
  const record = (i: RecorderInput) => recordEvent({ dynamoDb: new DynamoDBClient({ region: 'us-east-1' }), logger, nowSeconds: () => NOW }, CONFIG, i);
  return { record, logger };
}

describe('recorder configuration', () => {
  test('reads the environment; MAX_PAYLOAD_BYTES defaults to 350000', () => {
    expect(recorderConfigFromEnv(ENV)).toEqual(CONFIG);
    expect(recorderConfigFromEnv({ ...ENV, MAX_PAYLOAD_BYTES: undefined }).maxPayloadBytes).toBe(DEFAULT_MAX_PAYLOAD_BYTES);
    expect(DEFAULT_MAX_PAYLOAD_BYTES).toBe(350_000);
  });

  test.each([
    [{ TABLE_NAME: undefined }, 'environment variable TABLE_NAME is not set'],
    [{ ITEM_TTL_SECONDS: '' }, 'environment variable ITEM_TTL_SECONDS is not set'],
    [{ MAX_PAYLOAD_BYTES: '0' }, 'environment variable MAX_PAYLOAD_BYTES must be a positive integer, got 0'],
  ])('a bad environment is named in the error (%#)', (change, message) => {
    expect(() => recorderConfigFromEnv({ ...ENV, ...change })).toThrow(message);
  });
});

describe('recording', () => {
  test('writes the item keyed by correlation id and event name + U+001F + event id, written once, TTL; a numeric order id becomes its string form',
    async () => {
      const { record, logger } = recorder();
      const result = await record(input());
      expect(result).toEqual({ outcome: 'recorded', correlationId: '7', eventName: 'In Stock', eventId: 'e-1', payloadBytes: 25 });
      expect(dynamo).toHaveReceivedCommandTimes(PutItemCommand, 1);
      const call = dynamo.commandCalls(PutItemCommand)[0].args[0].input;
      expect(unmarshall(call.Item!)).toEqual({
        correlationId: '7',
        eventName: 'In Stock\u001fe-1',
        eventId: 'e-1',
        receivedAt: '2027-01-15T08:00:00Z',
        recordedAt: '2027-01-15T08:00:00.000Z',
        payloadJson: JSON.stringify({ OrderID: 7, sku: 'A-1' }),
        expiresAt: NOW + 7 * DAY,
      });
      expect(call).toMatchObject({
        TableName: 'aggregates',
        ConditionExpression: 'attribute_not_exists(#name) OR #expires <= :now',
        ExpressionAttributeNames: { '#name': 'eventName', '#expires': 'expiresAt' },
        ExpressionAttributeValues: { ':now': { N: String(NOW) } },
      });
      expect(logger.messages('info')).toEqual(['event recorded']);
    });

  test('the same event again (same eventId: a retry, a redelivery) finds its item and is reported as already recorded', async () => {
    dynamo.on(PutItemCommand).rejects(new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} }));
    const { record, logger } = recorder();
    expect(await record(input())).toEqual({ outcome: 'already-recorded', correlationId: '7', eventName: 'In Stock', eventId: 'e-1', payloadBytes: 25 });
    expect(logger.messages('info')).toEqual(['event already recorded (a redelivery); nothing written']);
  });

  test('a different event with the same name is its own item: both are kept, the aggregator decides which counts', async () => {
    const { record } = recorder();
    await record(input());
    await record(input({ eventId: 'e-2', detail: { OrderID: 7, sku: 'B-2' } }));
    const keys = dynamo.commandCalls(PutItemCommand).map((c) => c.args[0].input.Item!.eventName.S);
    expect(keys).toEqual(['In Stock\u001fe-1', 'In Stock\u001fe-2']);
  });

  test('a missing time is replaced by the time of recording; a missing detail is stored as null', async () => {
    const { record } = recorder();
    await record(input({ time: undefined, detail: undefined }));
    const item = unmarshall(dynamo.commandCalls(PutItemCommand)[0].args[0].input.Item!);
    expect(item).toMatchObject({ receivedAt: new Date(NOW * 1000).toISOString(), payloadJson: 'null' });
  });

  test('other DynamoDB errors propagate, so the event is retried and parked', async () => {
    dynamo.on(PutItemCommand).rejects(Object.assign(new Error('Item size has exceeded the maximum allowed size'), { name: 'ValidationException' }));
    const { record } = recorder();
    await expect(record(input())).rejects.toThrow('Item size has exceeded the maximum allowed size');
  });
});

describe('invalid input is refused with the reason (the message the DLQ keeps); nothing is written', () => {
  test.each([
    ['missing correlation id', { correlationId: null }, 'correlationId must be a non-empty string or a number, got null; check the rule\'s input transformer path'],
    ['absent correlation id', { correlationId: undefined }, 'correlationId must be a non-empty string or a number, got undefined'],
    ['blank correlation id', { correlationId: '  ' }, 'correlationId must be a non-empty string or a number, got "  "'],
    ['object correlation id', { correlationId: { id: 7 } }, 'correlationId must be a non-empty string or a number, got {"id":7}'],
    ['missing event name', { eventName: null }, 'eventName must be a non-empty string or a number, got null'],
    ['empty event name', { eventName: '' }, 'eventName must be a non-empty string or a number, got ""'],
    ['reserved event name', { eventName: '#aggregate' }, 'eventName "#aggregate" is reserved: names starting with \'#\' are the aggregator\'s own'],
    ['missing event id', { eventId: undefined }, 'eventId must be the EventBridge event id ($.id), got undefined'],
    ['oversized correlation id', { correlationId: 'x'.repeat(2049) }, 'correlationId is 2049 bytes of UTF-8, more than the 2048-byte limit'],
    // The sort key holds the name, a separator and the 3-byte event id within 1024 bytes.
    ['oversized event name', { eventName: 'é'.repeat(511) }, 'eventName is 1022 bytes of UTF-8, more than the 1020-byte limit'],
    ['oversized event id', { eventId: 'x'.repeat(129) }, 'eventId is 129 bytes of UTF-8, more than the 128-byte limit'],
    ['control character in an event name', { eventName: 'In\u001fStock' }, 'eventName "In\\u001fStock" contains a control character; allowed: printable text'],
    ['control character in a correlation id', { correlationId: 'a\nb' }, 'correlationId "a\\nb" contains a control character; allowed: printable text'],
    ['oversized payload', { detail: { blob: 'x'.repeat(1000) } }, 'detail of event e-1 (In Stock for 7) is 1011 bytes of JSON, more than the 1000 '
      + 'bytes the recorder stores (MAX_PAYLOAD_BYTES; DynamoDB items are at most 400 KB)'],
  ])('%s', async (_name, overrides, message) => {
    const { record } = recorder();
    await expect(record(input(overrides))).rejects.toThrow(message);
    expect(dynamo).toHaveReceivedCommandTimes(PutItemCommand, 0);
  });

  test('an id too large for an exact JSON number is refused with the reason, so two orders cannot merge', async () => {
    const { record } = recorder();
    await expect(record(input({ correlationId: 9007199254740993 }))).rejects.toThrow(
      'correlationId 9007199254740992 is a number too large to be exact in JSON (over 2^53); send it as a string');
    expect(dynamo).toHaveReceivedCommandTimes(PutItemCommand, 0);
  });

  test('payloads are kept as JSON text, so numbers past 2^53 and deep nesting are stored as sent', async () => {
    const detail = { big: 1e300, deep: JSON.parse('['.repeat(40) + ']'.repeat(40)) };
    const { record } = recorder();
    await record(input({ detail }));
    const item = unmarshall(dynamo.commandCalls(PutItemCommand)[0].args[0].input.Item!);
    expect(JSON.parse(item.payloadJson)).toEqual(detail);
  });

  test('a payload of exactly the limit is stored', async () => {
    const { record } = recorder();
    const detail = { blob: 'x'.repeat(1000 - '{"blob":""}'.length) };
    expect((await record(input({ detail }))).payloadBytes).toBe(1000);
  });

  test('input that is not an object is refused', async () => {
    const { record } = recorder();
    await expect(record('hello' as any)).rejects.toThrow('the recorder expects an object from the rule\'s input transformer, got "hello"');
  });
});

describe('recorder handler', () => {
  Object.assign(process.env, ENV);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { handler } = require('../../src/event-aggregator/recorder.lambda') as typeof import('../../src/event-aggregator/recorder.lambda');

  test('stores the event and returns the result', async () => {
    await expect(handler(input({ correlationId: 'order-9' }))).resolves.toMatchObject({ outcome: 'recorded', correlationId: 'order-9' });
    expect(dynamo).toHaveReceivedCommandWith(PutItemCommand, { TableName: 'aggregates' });
  });

  test('invalid input fails the invocation with the reason, for the on-failure destination', async () => {
    await expect(handler(input({ eventName: null }))).rejects.toThrow('eventName must be a non-empty string or a number, got null');
    expect(dynamo).toHaveReceivedCommandTimes(PutItemCommand, 0);
  });
});
