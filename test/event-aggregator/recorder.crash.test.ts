import { QueryCommand } from '@aws-sdk/client-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import { createAggregatesTable, IN_STOCK } from './aggregator-fixtures';
import { eventKey } from '../../src/event-aggregator/aggregator-contract';
import { recordEvent, RecorderInput } from '../../src/event-aggregator/recorder-core';
import { exploreCrashPoints, FaultInjector, invariant, InvocationOutcome } from '../support/crash-points';
import { motoClients, uniqueName } from '../support/moto';

/**
 * The EventAggregator's recorder under the crash-point harness, against moto. The source
 * rule invokes it asynchronously; Lambda retries a failed or timed-out invocation twice, then
 * the on-failure destination parks the event in the record DLQ (the construct's settings).
 *
 * Invariant, after the retries: the event is stored exactly once (one item, keyed by its
 * event id, with its detail), or parked. A lost answer or a crash after the write is
 * retried and finds its item: no second item, nothing rewritten.
 */

const platform = motoClients(); // never faulted
const handlerClients = motoClients(); // faulted
const injector = new FaultInjector(handlerClients.dynamoDb);
const LAMBDA_ASYNC_RETRIES = 2;

interface RecorderWorld {
  readonly tableName: string;
  readonly input: RecorderInput;
  /** Invocations that failed after the last retry: what the record DLQ would hold. */
  parked: number;
}

const record = (world: RecorderWorld) => () => recordEvent({ dynamoDb: handlerClients.dynamoDb },
  { tableName: world.tableName, itemTtlSeconds: 7 * 86_400, maxPayloadBytes: 350_000 }, world.input);

async function asyncRetries(world: RecorderWorld, first: InvocationOutcome): Promise<void> {
  let last = first;
  for (let retry = 0; retry < LAMBDA_ASYNC_RETRIES && last.ended !== 'returned'; retry++) last = await injector.invoke(record(world));
  if (last.ended !== 'returned') world.parked++;
}

afterAll(() => {
  for (const clients of [platform, handlerClients]) clients.dynamoDb.destroy();
});

test('recorder: after any fault and Lambda\'s retries, the event is stored once, with its detail', async () => {
  const report = await exploreCrashPoints<RecorderWorld>({
    name: 'EventAggregator recorder: one source event',
    injector,
    setup: async () => ({
      tableName: await createAggregatesTable(platform.dynamoDb, uniqueName('aggregates')),
      input: { correlationId: 7, eventName: IN_STOCK, eventId: 'evt-1', time: '2027-01-15T08:00:00Z', detail: { OrderID: 7, sku: 'A-1' } },
      parked: 0,
    }),
    invoke: (world) => record(world)(),
    redeliver: asyncRetries,
    check: async (world) => {
      const { Items } = await platform.dynamoDb.send(new QueryCommand({
        TableName: world.tableName, KeyConditionExpression: 'correlationId = :id', ExpressionAttributeValues: { ':id': { S: '7' } }, ConsistentRead: true,
      }));
      const items = (Items ?? []).map((i) => unmarshall(i));
      invariant(world.parked > 0 || items.length === 1, `the event is neither stored once nor parked: ${JSON.stringify(items)}`);
      invariant(items.every((i) => i.eventName === eventKey(IN_STOCK, 'evt-1') && i.payloadJson === '{"OrderID":7,"sku":"A-1"}'),
        `an item is not the event as sent: ${JSON.stringify(items)}`);
      return { delivered: items.length > 0 ? 1 : 0, waiting: 0, parked: world.parked, duplicates: Math.max(0, items.length - 1) };
    },
  });
  console.log(`Crash points, EventAggregator recorder: ${report.crashPoints} trials; totals ${JSON.stringify(report.totals)}`);
  expect(report.cleanCalls).toEqual(['PutItem']);
  expect(report.crashPoints).toBe(3);
  expect(report.totals).toEqual({ delivered: 3, waiting: 0, parked: 0, duplicates: 0 });
}, 120_000);
