import { GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { marshall, unmarshall } from '@aws-sdk/util-dynamodb';
import * as fc from 'fast-check';
import { ACCOUNT_CHECK, eventItem, IN_STOCK, SCHEDULE, seedConfig, streamEvent, streamRecord } from './aggregator-fixtures';
import { createAggregatorMotoWorld } from './aggregator-moto-world';
import { Aggregator, AggregatorConfig, StreamBatchReport } from '../../src/event-aggregator/aggregator-core';
import { drainMotoQueue, motoClients, MotoQueue } from '../support/moto';

/**
 * The stream against the deadline, in every order of their AWS calls that fast-check's
 * scheduler picks (against moto): order 7 has its account check; its stock check is written
 * and its stream record processed while the deadline schedule invokes the aggregator.
 * Afterwards the stream retries a batch item failure and Scheduler a failed deadline
 * invocation, a minute or more later, as AWS would.
 *
 * Invariant: exactly one aggregated event for order 7 (Completed or Incomplete, whichever
 * claimed the marker), and the marker is final with that event's status, so no later write
 * emits again.
 */

const platform = motoClients();
const handlerClients = motoClients();

/**
 * Lets the scheduler order every AWS call of the handlers' clients while `scheduler` is set,
 * and sends them one at a time. DynamoDB applies each conditional write atomically; moto's
 * threaded server does not always: two overlapping conditional puts of the marker were both
 * accepted in one run of this test. One call at a time keeps each call atomic, as in
 * DynamoDB, while the scheduler still picks every order of the calls.
 */
let scheduler: fc.Scheduler | undefined;
let inFlight: Promise<unknown> = Promise.resolve();
for (const client of [handlerClients.dynamoDb, handlerClients.eventBridge]) {
  (client.middlewareStack as { add: (middleware: unknown, options: unknown) => void }).add((next: any, context: any) => async (args: any) => {
    if (!scheduler) return next(args);
    await scheduler.schedule(Promise.resolve(), `${context.commandName}`);
    const previous = inFlight;
    const call = previous.then(() => next(args));
    inFlight = call.catch(() => undefined);
    return call;
  }, { step: 'initialize', name: 'raceScheduler', priority: 'low' });
}

interface RaceWorld {
  readonly config: AggregatorConfig;
  readonly capture: MotoQueue;
  now: number;
  invocations: number;
}

async function createWorld(): Promise<RaceWorld> {
  const { tableName, busName, capture } = await createAggregatorMotoWorld(platform);
  const now = Math.floor(Date.now() / 1000);
  await platform.dynamoDb.send(new PutItemCommand({ TableName: tableName, Item: marshall(eventItem('7', ACCOUNT_CHECK, {}, { now })) }));
  // A deadline, so the deadline path runs; the schedule calls are not part of this race (no Scheduler client is faulted).
  const config = { ...seedConfig(tableName, busName), deadlineSeconds: 900, schedule: SCHEDULE };
  return { config, capture, now, invocations: 0 };
}

function aggregator(world: RaceWorld): Aggregator {
  return new Aggregator({
    dynamoDb: handlerClients.dynamoDb,
    eventBridge: handlerClients.eventBridge,
    scheduler: { send: async () => ({}) } as any,
    owner: `req-${world.invocations++}`,
    nowSeconds: () => world.now,
    sleep: async () => {},
  }, world.config);
}

/** The stock check is written (as the recorder writes it), then its stream record is processed. */
async function stockCheckThroughTheStream(world: RaceWorld): Promise<StreamBatchReport> {
  const item = eventItem('7', IN_STOCK, {}, { now: world.now });
  // The recorder's write; Lambda retries a recorder that failed (twice), as moto may answer an error under load.
  for (let attempt = 1; ; attempt++) {
    try {
      await handlerClients.dynamoDb.send(new PutItemCommand({ TableName: world.config.tableName, Item: marshall(item) }));
      break;
    } catch (err) {
      if (attempt === 3) throw err;
    }
  }
  return aggregator(world).processStreamBatch(streamEvent(streamRecord('INSERT', item)));
}

const deadline = (world: RaceWorld) => aggregator(world).processDeadline({ deadlineFor: '7' }).then(() => true, () => false);

afterAll(() => {
  for (const clients of [platform, handlerClients]) {
    clients.sqs.destroy();
    clients.eventBridge.destroy();
    clients.s3.destroy();
    clients.dynamoDb.destroy();
  }
});

test('stream against deadline, in every order the scheduler picks: one aggregated event, and the marker final with its status', async () => {
  const seen = new Set<string>();
  await fc.assert(fc.asyncProperty(fc.scheduler(), async (s) => {
    const world = await createWorld();
    scheduler = s;
    const race = Promise.all([stockCheckThroughTheStream(world), deadline(world)]);
    try {
      await s.waitFor(race);
    } finally {
      scheduler = undefined;
    }
    let [stream, deadlineDone] = await race;
    // What AWS does next: the stream retries a batch item failure, Scheduler a failed invocation (after the 60 s lease).
    for (let retry = 0; retry < 3 && (stream.batchItemFailures.length > 0 || !deadlineDone); retry++) {
      world.now += 61;
      if (stream.batchItemFailures.length > 0) stream = await aggregator(world).processStreamBatch(streamEvent(streamRecord('INSERT', eventItem('7', IN_STOCK))));
      if (!deadlineDone) deadlineDone = await deadline(world);
    }
    expect({ streamFailures: stream.batchItemFailures, deadlineDone }).toEqual({ streamFailures: [], deadlineDone: true });

    const emitted = (await drainMotoQueue(platform.sqs, world.capture.url)).map((body) => JSON.parse(body));
    const { Item } = await platform.dynamoDb.send(new GetItemCommand({
      TableName: world.config.tableName, Key: marshall({ correlationId: '7', eventName: '#aggregate' }), ConsistentRead: true,
    }));
    const status = Item ? unmarshall(Item).status : undefined;
    expect(emitted.map((e) => e['detail-type'])).toHaveLength(1);
    const expected = emitted[0]['detail-type'] === 'Aggregation Completed' ? 'COMPLETE' : 'INCOMPLETE';
    expect({ detailType: emitted[0]['detail-type'], status }).toEqual({ detailType: emitted[0]['detail-type'], status: expected });
    seen.add(emitted[0]['detail-type']);
  }), { numRuns: 40, endOnFailure: true });
  // The scheduler found both winners: the race is real, not one hand-picked order.
  expect([...seen].sort()).toEqual(['Aggregation Completed', 'Aggregation Incomplete']);
}, 300_000);
