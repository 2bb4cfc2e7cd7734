import { GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { CreateBucketCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { marshall, unmarshall } from '@aws-sdk/util-dynamodb';
import { ACCOUNT_CHECK, eventItem, IN_STOCK, seedConfig, streamEvent, streamRecord } from './aggregator-fixtures';
import { createAggregatorMotoWorld } from './aggregator-moto-world';
import { Aggregator, AggregatorConfig } from '../../src/event-aggregator/aggregator-core';
import { redriveFailedBatches, RedriveFailedBatchesReport } from '../../src/event-aggregator/failed-batch-redrive-core';
import { exploreCrashPoints, FaultInjector, invariant, InvocationOutcome } from '../support/crash-points';
import { drainMotoQueue, motoClients, MotoQueue, uniqueName } from '../support/moto';

/**
 * The redrive of the failed-batch bucket under the crash-point harness, against moto: order
 * 7 is complete in the table, its batch is in the bucket. The redrive lists, reads, aggregates
 * (Query, claim, PutEvents, mark), copies and deletes. After a fault the operator runs it
 * again, three minutes later, (up to 3 times) until it reports nothing failed and nothing remaining.
 *
 * Invariant: the aggregate was emitted and the marker is COMPLETE, and the batch is never
 * lost: it is under redriven/, or still under aws/lambda/ for the next run.
 */

const platform = motoClients();
const handlerClients = motoClients();
const injector = new FaultInjector(handlerClients.dynamoDb, handlerClients.eventBridge, handlerClients.s3);
const KEY = 'aws/lambda/8f3a0c1e-xmpl-4f4e-9d5c-2f1b0f6f1e01/shardId-00000001573689847184-864758bb/2027/01/15/2027-01-15T08.00.01-0b8d1c6e';
const OPERATOR_RUNS = 3;

interface RedriveWorld {
  readonly config: AggregatorConfig;
  readonly bucketName: string;
  readonly capture: MotoQueue;
  runs: number;
  /** The world's clock, seconds: an operator's next run comes a few minutes later. */
  now: number;
}

async function createWorld(): Promise<RedriveWorld> {
  const { tableName, busName, capture } = await createAggregatorMotoWorld(platform);
  const bucketName = uniqueName('failed-batches');
  await platform.s3.send(new CreateBucketCommand({ Bucket: bucketName }));
  const now = Math.floor(Date.now() / 1000);
  const items = [eventItem('7', ACCOUNT_CHECK, {}, { now }), eventItem('7', IN_STOCK, {}, { now })];
  for (const item of items) await platform.dynamoDb.send(new PutItemCommand({ TableName: tableName, Item: marshall(item) }));
  // The documented invocation record's shape (see failed-batch-redrive.moto.test.ts), with the batch in `payload`.
  const body = JSON.stringify({ version: '1.0', requestContext: { condition: 'RetryAttemptsExhausted' }, payload: JSON.stringify(streamEvent(streamRecord('INSERT', items[1]))) });
  await platform.s3.send(new PutObjectCommand({ Bucket: bucketName, Key: KEY, Body: body }));
  return { config: seedConfig(tableName, busName), bucketName, capture, runs: 0, now };
}

const redrive = (world: RedriveWorld) => () => {
  world.runs++;
  const aggregator = new Aggregator({
    dynamoDb: handlerClients.dynamoDb,
    eventBridge: handlerClients.eventBridge,
    owner: `redrive-${world.runs}`,
    nowSeconds: () => world.now,
    sleep: async () => {},
  }, world.config);
  return redriveFailedBatches({ s3: handlerClients.s3, aggregator, bucketName: world.bucketName }, { redriveFailedBatches: {} });
};

/** The operator runs the redrive again while it failed, or reported a batch failed or remaining. */
async function operatorRuns(world: RedriveWorld, first: InvocationOutcome): Promise<void> {
  let last = first;
  for (let run = 0; run < OPERATOR_RUNS; run++) {
    if (last.ended === 'returned') {
      const report = last.value as RedriveFailedBatchesReport;
      if (report.failed.length === 0 && report.remaining === 0) return;
    }
    // A claim left by a run that failed holds the id for its 60 s lease.
    world.now += 180;
    last = await injector.invoke(redrive(world));
  }
}

afterAll(() => {
  for (const clients of [platform, handlerClients]) {
    clients.sqs.destroy();
    clients.eventBridge.destroy();
    clients.s3.destroy();
    clients.dynamoDb.destroy();
  }
});

test('redrive: after any fault and the operator\'s next run, the aggregate is emitted, the marker is COMPLETE and the batch is never lost', async () => {
  const report = await exploreCrashPoints<RedriveWorld>({
    name: 'EventAggregator failed-batch redrive: one batch, order 7 complete',
    injector,
    setup: createWorld,
    invoke: (world) => redrive(world)(),
    redeliver: operatorRuns,
    check: async (world) => {
      const emitted = await drainMotoQueue(platform.sqs, world.capture.url);
      const { Item } = await platform.dynamoDb.send(new GetItemCommand({
        TableName: world.config.tableName, Key: marshall({ correlationId: '7', eventName: '#aggregate' }), ConsistentRead: true,
      }));
      const keys = ((await platform.s3.send(new ListObjectsV2Command({ Bucket: world.bucketName }))).Contents ?? []).map((o) => o.Key!);
      invariant(emitted.length > 0, `the aggregate was never emitted after ${world.runs} runs`);
      invariant(Item !== undefined && unmarshall(Item).status === 'COMPLETE', `the marker is ${JSON.stringify(Item && unmarshall(Item))}`);
      invariant(keys.includes(`redriven/${KEY}`) || keys.includes(KEY), `the batch is gone: ${JSON.stringify(keys)}`);
      return { delivered: 1, waiting: keys.includes(KEY) ? 1 : 0, parked: 0, duplicates: emitted.length - 1 };
    },
  });
  console.log(`Crash points, failed-batch redrive: ${report.crashPoints} trials; totals ${JSON.stringify(report.totals)}`);
  expect(report.cleanCalls).toEqual(['ListObjectsV2', 'GetObject', 'Query', 'PutItem', 'PutEvents', 'UpdateItem', 'CopyObject', 'DeleteObject']);
  // A second emit only where the aggregator's docs allow it (a lost PutEvents answer, a death between PutEvents and the mark).
  const withDuplicates = report.trials.filter((t) => t.outcomes.duplicates > 0).map((t) => `${t.call}/${t.kind}`);
  expect(withDuplicates).toEqual(['PutEvents/lost-answer', 'UpdateItem/crash']);
  // Every fault ends with the batch moved: the operator's next run finishes the move.
  expect(report.totals.waiting).toBe(0);
}, 300_000);
