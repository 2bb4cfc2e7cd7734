import { DeleteMessageCommand, ReceiveMessageCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import { bucketObjects, kplAggregate, motoBucket, MotoStream, motoStream, pipeDlqMessage } from './kinesis-moto';
import { Hydrator } from '../../src/hydrating-dlq/hydrator-core';
import {
  CrashPointReport, CrashPointScenario, exploreCrashPoints, FakeClock, FAULT_KINDS, FaultInjector, invariant, OutcomeCounts,
} from '../support/crash-points';
import { createMotoQueue, drainMotoQueue, motoClients, MotoQueue } from '../support/moto';
import { SqsBatch, SqsEventSource, SqsVisibility } from '../support/platform';

/**
 * The hydrator (`Hydrator.handleBatch`, what the Lambda handler runs) under the crash-point
 * harness, against moto (Kinesis, S3, SQS): every Kinesis and S3 call of an invocation fails
 * as a lost request, a lost answer and a crash; Lambda's SQS event source then redelivers as
 * AWS does (visibility timeout, partial batch responses, the pipe DLQ's redrive to the
 * hydrator's own DLQ after 3 receives).
 *
 * Invariant, after redelivery settles:
 * - the pipe's dead-letter queue is empty (nothing stuck in flight);
 * - every user record of the failed batch is an object in the bucket holding its data, and a
 *   batch the stream cannot give back whole has its unrecoverable object naming the range, OR
 *   the dead-letter message is in the hydrator's DLQ, where an operator finds it, and
 *   redriving it (moved back to the pipe's DLQ) hydrates the batch;
 * - a message that is not a failed batch is kept in the bucket with its reason, or waits in
 *   the hydrator's DLQ.
 */

const VISIBILITY_SECONDS = 300;
const MAX_RECEIVE_COUNT = 3;

const platform = motoClients(); // the harness's view of AWS: never faulted
const handlerClients = motoClients(); // the hydrator's clients: faulted
const injector = new FaultInjector(handlerClients.kinesis, handlerClients.s3);
const clock = new FakeClock();
// eslint-disable-next-line no-new
new SqsVisibility(injector, clock, platform.sqs, VISIBILITY_SECONDS);

interface Expected {
  /** user records: partition key and data, by the object's sequence/subsequence. */
  readonly records: { partitionKey: string; data: string }[];
  readonly unrecoverable: boolean;
  readonly unreadable: boolean;
}

interface HydratorWorld {
  readonly stream: MotoStream;
  readonly bucket: string;
  readonly pipeDlq: MotoQueue;
  readonly hydratorDlq: MotoQueue;
  readonly message: string;
  readonly mapping: SqsEventSource;
  readonly hydrator: Hydrator;
  readonly expected: Expected;
  batch?: SqsBatch;
}

type MessageOf = (stream: MotoStream) => { body: string; expected: Omit<Expected, 'records'> & { records?: Expected['records'] } };

/** 9 Kinesis records (one KPL-aggregated of 3 user records), read 4 to a page: the range is records 1 to 7. */
async function createWorld(messageOf: MessageOf, copies = 1): Promise<HydratorWorld> {
  clock.reset();
  const users = [{ partitionKey: 'tenant-a', data: '{"n":"3a"}' }, { partitionKey: 'tenant-b', data: '{"n":"3b"}' }, { partitionKey: 'tenant-a', data: '{"n":"3c"}' }];
  const aggregated = await kplAggregate(users.map((u) => ({ partitionKey: u.partitionKey, data: Buffer.from(u.data) })));
  const plain = (n: number) => ({ partitionKey: `tenant-${n % 2 ? 'a' : 'b'}`, data: `{"n":${n}}` });
  const stream = await motoStream(handlerClients.kinesis, Array.from({ length: 9 }, (_, i) => (i === 3 ? aggregated
    : { partitionKey: plain(i).partitionKey, data: Buffer.from(plain(i).data) })));
  const bucket = await motoBucket(platform.s3);
  const hydratorDlq = await createMotoQueue(platform.sqs, 'hydrator-dlq');
  const pipeDlq = await createMotoQueue(platform.sqs, 'pipe-dlq', {
    VisibilityTimeout: String(VISIBILITY_SECONDS),
    RedrivePolicy: JSON.stringify({ deadLetterTargetArn: hydratorDlq.arn, maxReceiveCount: MAX_RECEIVE_COUNT }),
  });
  const { body, expected } = messageOf(stream);
  for (let i = 0; i < copies; i++) await platform.sqs.send(new SendMessageCommand({ QueueUrl: pipeDlq.url, MessageBody: body }));
  const mapping = new SqsEventSource(platform.sqs, injector, clock, {
    queueUrl: pipeDlq.url, queueArn: pipeDlq.arn, visibilityTimeoutSeconds: VISIBILITY_SECONDS, batchSize: 10, reportBatchItemFailures: true,
  });
  const hydrator = new Hydrator({ kinesis: handlerClients.kinesis, s3: handlerClients.s3 },
    { bucketName: bucket, prefix: 'hydrated/', streamArns: [stream.arn], read: { pageSize: 4, sleep: async () => undefined } });
  const records = expected.records ?? [1, 2, 3, 4, 5, 6, 7].flatMap((i) => (i === 3 ? users : [plain(i)]));
  return { stream, bucket, pipeDlq, hydratorDlq, message: body, mapping, hydrator, expected: { ...expected, records } };
}

const handle = (world: HydratorWorld) => (event: { Records: { messageId: string; body: string }[] }) => world.hydrator.handleBatch(event.Records);

/** The operator's way back from the hydrator's DLQ: the message moved back to the pipe's DLQ (SQS's redrive does the same). */
async function operatorRedrive(world: HydratorWorld): Promise<number> {
  let moved = 0;
  for (;;) {
    const { Messages } = await platform.sqs.send(new ReceiveMessageCommand({ QueueUrl: world.hydratorDlq.url, MaxNumberOfMessages: 10 }));
    if (!Messages?.length) return moved;
    for (const m of Messages) {
      await platform.sqs.send(new SendMessageCommand({ QueueUrl: world.pipeDlq.url, MessageBody: m.Body! }));
      await platform.sqs.send(new DeleteMessageCommand({ QueueUrl: world.hydratorDlq.url, ReceiptHandle: m.ReceiptHandle! }));
      moved++;
    }
  }
}

/** What the bucket holds for the world: user records found (with the right data), and the parked objects. */
async function found(world: HydratorWorld) {
  const objects = [...(await bucketObjects(platform.s3, world.bucket)).entries()];
  const records = objects.filter(([, o]) => o.kind === 'record').map(([, o]) => ({ partitionKey: o.record.partitionKey, data: o.record.data }));
  const missing = world.expected.records.filter((r) => !records.some((f) => f.partitionKey === r.partitionKey && f.data === r.data));
  const unexpected = records.filter((f) => !world.expected.records.some((r) => f.partitionKey === r.partitionKey && f.data === r.data));
  const unrecoverable = objects.filter(([key, o]) => o.kind === 'unrecoverable' && key.includes('/!unrecoverable/') && o.reason);
  const unreadable = objects.filter(([key, o]) => o.kind === 'unreadable' && key.startsWith('hydrated/!unreadable/') && o.body === world.message && o.reason);
  return { objects, records, missing, unexpected, unrecoverable, unreadable };
}

async function checkWorld(world: HydratorWorld): Promise<OutcomeCounts> {
  const left = await drainMotoQueue(platform.sqs, world.pipeDlq.url);
  invariant(left.length === 0, `the pipe's DLQ still holds ${left.length} messages after redelivery settled`);
  const parkedBodies = await drainMotoQueue(platform.sqs, world.hydratorDlq.url);
  invariant(parkedBodies.every((b) => b === world.message), 'the hydrator\'s DLQ holds a message that is not the dead-letter message');
  const waiting = parkedBodies.length > 0;
  let state = await found(world);
  invariant(state.unexpected.length === 0, `objects of records outside the batch: ${JSON.stringify(state.unexpected)}`);
  const complete = () => state.missing.length === 0
    && (state.unrecoverable.length === 1) === world.expected.unrecoverable
    && (state.unreadable.length === 1) === world.expected.unreadable;
  invariant(complete() || waiting, `lost: ${state.missing.length} records missing, ${state.unrecoverable.length} unrecoverable and `
    + `${state.unreadable.length} unreadable objects, and the message is not in the hydrator's DLQ`);
  if (waiting) {
    for (const body of parkedBodies) await platform.sqs.send(new SendMessageCommand({ QueueUrl: world.hydratorDlq.url, MessageBody: body }));
    await clock.advance((VISIBILITY_SECONDS + 1) * 1000);
    await operatorRedrive(world);
    await world.mapping.drain(handle(world));
    state = await found(world);
    invariant(complete(), `the redriven message did not hydrate the batch: ${state.missing.length} records missing`);
    invariant((await drainMotoQueue(platform.sqs, world.hydratorDlq.url)).length === 0, 'the redriven message was parked again');
  }
  invariant(state.records.length === world.expected.records.length,
    `${state.records.length} record objects for ${world.expected.records.length} user records: a re-hydration added copies`);
  return {
    delivered: world.expected.records.length,
    waiting: waiting ? 1 : 0,
    parked: state.unrecoverable.length + state.unreadable.length,
    duplicates: 0,
  };
}

function scenario(name: string, messageOf: MessageOf, copies = 1): CrashPointScenario<HydratorWorld> {
  return {
    name,
    injector,
    setup: () => createWorld(messageOf, copies),
    invoke: async (world) => {
      world.batch = await world.mapping.poll();
      invariant(world.batch !== undefined, 'no message to deliver');
      return handle(world)(world.batch.event);
    },
    redeliver: async (world, first) => {
      await world.mapping.settle(world.batch!, first);
      await world.mapping.drain(handle(world));
    },
    check: checkWorld,
  };
}

const summaries: string[] = [];
function summarize(report: CrashPointReport): void {
  const perKind = FAULT_KINDS.map((kind) => `${kind} ${report.trials.filter((t) => t.kind === kind).length}`).join(', ');
  summaries.push(`${report.name}: ${report.crashPoints} trials (${perKind}); calls ${report.cleanCalls.join(' ')}; totals delivered `
    + `${report.totals.delivered}, waiting ${report.totals.waiting}, parked ${report.totals.parked}`);
}

afterAll(() => {
  if (summaries.length) console.log(`Crash points, hydrator:\n  ${summaries.join('\n  ')}`);
  for (const clients of [platform, handlerClients]) {
    clients.sqs.destroy();
    clients.s3.destroy();
    clients.kinesis.destroy();
  }
});

describe('hydrator under the crash-point harness (moto: Kinesis, S3, SQS)', () => {
  test('a failed batch of 7 Kinesis records (9 user records) read back in pages of 4', async () => {
    const report = await exploreCrashPoints(scenario('hydrator, a failed batch hydrated', (stream) => ({
      body: pipeDlqMessage(stream, 1, 7), expected: { unrecoverable: false, unreadable: false },
    })));
    summarize(report);
    // GetShardIterator, 2 GetRecords pages, 9 PutObjects.
    expect(report.cleanCalls.filter((c) => c === 'GetRecords')).toHaveLength(2);
    expect(report.cleanCalls.filter((c) => c === 'PutObject')).toHaveLength(9);
    expect(report.crashPoints).toBe(12 * 3);
    // One fault, then SQS's retries: every trial ends with all 9 user records in the bucket.
    expect(report.totals).toEqual({ delivered: 36 * 9, waiting: 0, parked: 0, duplicates: 0 });
  });

  test('an S3 outage that outlasts the retries leaves the message in the hydrator\'s DLQ; redriven, it hydrates the batch', async () => {
    const world = await createWorld((stream) => ({ body: pipeDlqMessage(stream, 1, 7), expected: { unrecoverable: false, unreadable: false } }));
    const outage = new Hydrator({ kinesis: handlerClients.kinesis, s3: handlerClients.s3 },
      { bucketName: `${world.bucket}-not-yet`, prefix: 'hydrated/', streamArns: [world.stream.arn] });
    const outcomes = await world.mapping.drain((event) => outage.handleBatch(event.Records));
    expect(outcomes.map((o) => (o.ended === 'returned' ? (o.value as { batchItemFailures: unknown[] }).batchItemFailures.length : o.ended))).toEqual([1, 1, 1]);
    // checkWorld finds it waiting, redrives it and asserts the batch is then hydrated whole.
    expect(await checkWorld(world)).toEqual({ delivered: 9, waiting: 1, parked: 0, duplicates: 0 });
  });

  test('a batch whose range ends past the stream\'s newest record: the records found and an unrecoverable object', async () => {
    const report = await exploreCrashPoints(scenario('hydrator, a batch partly unrecoverable', (stream) => {
      const body = JSON.parse(pipeDlqMessage(stream, 6, 8));
      body.KinesisBatchInfo.endSequenceNumber = (BigInt(stream.sequenceNumbers[8]) + 5n).toString();
      return {
        body: JSON.stringify(body),
        expected: { unrecoverable: true, unreadable: false, records: [6, 7, 8].map((n) => ({ partitionKey: `tenant-${n % 2 ? 'a' : 'b'}`, data: `{"n":${n}}` })) },
      };
    }));
    summarize(report);
    expect(report.cleanCalls[report.cleanCalls.length - 1]).toBe('PutObject');
    expect(report.totals.parked).toBeGreaterThan(0);
  });

  test('a dead-letter message delivered twice (one batch of 2 messages): the records once each, no copies', async () => {
    const report = await exploreCrashPoints(scenario('hydrator, a duplicate dead-letter message', (stream) => ({
      body: pipeDlqMessage(stream, 1, 3),
      expected: {
        unrecoverable: false,
        unreadable: false,
        records: [1, 2, 3].flatMap((i) => (i === 3
          ? [{ partitionKey: 'tenant-a', data: '{"n":"3a"}' }, { partitionKey: 'tenant-b', data: '{"n":"3b"}' }, { partitionKey: 'tenant-a', data: '{"n":"3c"}' }]
          : [{ partitionKey: `tenant-${i % 2 ? 'a' : 'b'}`, data: `{"n":${i}}` }])),
      },
    }), 2));
    summarize(report);
    // 5 user records (record 3 is a KPL record of 3); the second copy's 5 PutObjects find each object there and add nothing.
    expect(report.cleanCalls.filter((c) => c === 'PutObject')).toHaveLength(10);
    expect(report.totals.duplicates).toBe(0);
  });

  test('a message that is not a failed batch is kept in the bucket with its reason', async () => {
    const report = await exploreCrashPoints(scenario('hydrator, an unreadable message kept', () => ({
      body: '{"KinesisBatchInfo": "truncated',
      expected: { unrecoverable: false, unreadable: true, records: [] },
    })));
    summarize(report);
    expect(report.cleanCalls).toEqual(['PutObject']);
    expect(report.crashPoints).toBe(3);
  });
});
