import { CreateEventBusCommand, PutRuleCommand, PutTargetsCommand } from '@aws-sdk/client-eventbridge';
import { PutObjectTaggingCommand } from '@aws-sdk/client-s3';
import { bucketObjects } from './kinesis-moto';
import { hydratedWorld, objectTags, streamRecords } from './replay-moto';
import { REPLAY_DETAIL_TYPE, REPLAY_SOURCE, Replayer, ReplayRequestError } from '../../src/hydrating-dlq/replayer-core';
import { createMotoQueue, drainMotoQueue, motoClients, uniqueName } from '../support/moto';

const { kinesis, s3, eventBridge, sqs } = motoClients();
const NOW = new Date('2026-12-01T10:00:00.000Z');
/** The hours around now: moto stamps the records' arrival with its own clock. */
const WINDOW = { from: new Date(Date.now() - 3_600_000).toISOString(), to: new Date(Date.now() + 3 * 3_600_000).toISOString() };

async function world(n = 6, eventBusName?: string) {
  const w = await hydratedWorld(kinesis, s3, n);
  const replayer = new Replayer({ s3, kinesis, eventBridge, now: () => NOW }, { bucketName: w.bucket, prefix: 'hydrated/', replayStreamName: w.replayStreamName, eventBusName });
  return { ...w, replayer };
}

/** The records' partition key and base64 data, as put on the source stream. */
const expected = (records: { data: Buffer; partitionKey: string }[]) => records.map((r) => ({ partitionKey: r.partitionKey, data: r.data.toString('base64') }));
const sorted = <T>(items: T[]) => [...items].sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));

describe('Replayer against moto: hydrated records sent again', () => {
  test('by consumer and time range, to the replay stream: every record, its key and its bytes; each object marked', async () => {
    const w = await world();
    const report = await w.replayer.replay({ consumer: 'orders-to-api', ...WINDOW });
    expect(report).toEqual({ dryRun: false, target: 'pipe', found: 6, sent: 6, failed: 0, skipped: 0, failures: [] });
    expect(sorted(await streamRecords(kinesis, w.replayArn))).toEqual(sorted(expected(w.records)));
    const tags = await objectTags(s3, w.bucket);
    expect([...tags.values()]).toEqual(Array(6).fill({ replayed: `${NOW.toISOString()} pipe` }));
  });

  test('a second run skips what was replayed; includeReplayed sends it again', async () => {
    const w = await world(3);
    await w.replayer.replay({ consumer: 'orders-to-api', ...WINDOW });
    expect(await w.replayer.replay({ consumer: 'orders-to-api', ...WINDOW })).toMatchObject({ found: 3, sent: 0, skipped: 3 });
    expect(await streamRecords(kinesis, w.replayArn)).toHaveLength(3);
    expect(await w.replayer.replay({ consumer: 'orders-to-api', ...WINDOW, includeReplayed: true })).toMatchObject({ found: 3, sent: 3, skipped: 0 });
    expect(await streamRecords(kinesis, w.replayArn)).toHaveLength(6);
  });

  test('a dry run reports what it would send and sends and marks nothing', async () => {
    const w = await world(4);
    expect(await w.replayer.replay({ consumer: 'orders-to-api', ...WINDOW, dryRun: true }))
      .toEqual({ dryRun: true, target: 'pipe', found: 4, sent: 4, failed: 0, skipped: 0, failures: [] });
    expect(await streamRecords(kinesis, w.replayArn)).toEqual([]);
    expect([...(await objectTags(s3, w.bucket)).values()]).toEqual(Array(4).fill({}));
  });

  test('a time range outside the records finds nothing; a prefix finds its records only', async () => {
    const w = await world(6);
    expect(await w.replayer.replay({ consumer: 'orders-to-api', from: '2001-01-01T00:00:00Z', to: '2001-01-02T00:00:00Z' })).toMatchObject({ found: 0, sent: 0 });
    expect(await w.replayer.replay({ consumer: 'another-pipe', ...WINDOW })).toMatchObject({ found: 0 });
    const keys = [...(await bucketObjects(s3, w.bucket)).keys()];
    const customer1 = keys.find((k) => k.includes('/customer-1/'))!;
    const prefix = customer1.slice(0, customer1.indexOf('/customer-1/') + '/customer-1/'.length);
    expect(await w.replayer.replay({ prefix })).toMatchObject({ found: 2, sent: 2 });
    expect((await streamRecords(kinesis, w.replayArn)).map((r) => r.partitionKey)).toEqual(['customer-1', 'customer-1']);
  });

  test('maxObjects pages a replay: startAfter continues where it stopped, and the pages together send each record once', async () => {
    const w = await world(5);
    const first = await w.replayer.replay({ consumer: 'orders-to-api', ...WINDOW, maxObjects: 2 });
    expect(first).toMatchObject({ found: 2, sent: 2, startAfter: expect.stringMatching(/^hydrated\/orders-to-api\//) });
    const second = await w.replayer.replay({ consumer: 'orders-to-api', ...WINDOW, maxObjects: 2, startAfter: first.startAfter });
    const third = await w.replayer.replay({ consumer: 'orders-to-api', ...WINDOW, maxObjects: 2, startAfter: second.startAfter });
    expect([second.sent, third.sent, third.startAfter]).toEqual([2, 1, undefined]);
    expect(sorted(await streamRecords(kinesis, w.replayArn))).toEqual(sorted(expected(w.records)));
  });

  test('to a bus: one event per record, the data parsed when it is JSON, marked replayed to the bus', async () => {
    const busName = uniqueName('replay-bus');
    await eventBridge.send(new CreateEventBusCommand({ Name: busName }));
    const capture = await createMotoQueue(sqs, 'replay-capture');
    const rule = uniqueName('replayed');
    await eventBridge.send(new PutRuleCommand({ Name: rule, EventBusName: busName, EventPattern: JSON.stringify({ source: [REPLAY_SOURCE] }) }));
    await eventBridge.send(new PutTargetsCommand({ Rule: rule, EventBusName: busName, Targets: [{ Id: 'capture', Arn: capture.arn }] }));
    const w = await world(3, busName);
    expect(await w.replayer.replay({ consumer: 'orders-to-api', ...WINDOW, target: 'bus' })).toMatchObject({ target: 'bus', found: 3, sent: 3, failed: 0 });
    const events = (await drainMotoQueue(sqs, capture.url)).map((b) => JSON.parse(b));
    expect(events.map((e) => e['detail-type'])).toEqual(Array(3).fill(REPLAY_DETAIL_TYPE));
    expect(sorted(events.map((e) => [e.detail.partitionKey, e.detail.data, e.detail.dataEncoding]))).toEqual(sorted([
      ['customer-0', { order: 0 }, 'utf-8'], ['customer-1', { order: 1 }, 'utf-8'], ['customer-2', '3q2+7w==', 'base64'],
    ]));
    expect([...(await objectTags(s3, w.bucket)).values()]).toEqual(Array(3).fill({ replayed: `${NOW.toISOString()} bus` }));
  });

  test('an object whose mark cannot be written (S3 allows 10 tags) is sent, reported, and left to be sent again', async () => {
    const w = await world(2);
    const [key] = [...(await bucketObjects(s3, w.bucket)).keys()];
    await s3.send(new PutObjectTaggingCommand({
      Bucket: w.bucket, Key: key, Tagging: { TagSet: Array.from({ length: 10 }, (_, i) => ({ Key: `owner-${i}`, Value: 'x' })) },
    }));
    const report = await w.replayer.replay({ consumer: 'orders-to-api', ...WINDOW });
    expect(report).toMatchObject({ found: 2, sent: 2, failed: 0, failures: [{ key, reason: expect.stringMatching(/^sent, but not marked replayed: /) }] });
    expect(await w.replayer.replay({ consumer: 'orders-to-api', ...WINDOW })).toMatchObject({ sent: 1, skipped: 1 });
  });

  test.each([
    [[], 'the request is []; allowed: an object'],
    [{ consumer: 'p', from: 'x', to: 'y' }, 'from "x" and to "y": allowed: ISO 8601 times, from before to'],
    [{ consumer: 'p', from: '2026-12-02T00:00:00Z', to: '2026-12-01T00:00:00Z' }, 'allowed: ISO 8601 times, from before to'],
    [{ consumer: 'p', from: '2026-01-01T00:00:00Z', to: '2026-03-01T00:00:00Z' }, 'from and to span more than 31 days'],
    [{ prefix: 'other/' }, 'prefix "other/" is not under the hydrated objects\' prefix "hydrated/"'],
    [{ prefix: 'hydrated/', consumer: 'p' }, 'give either consumer, from and to'],
    [{ prefix: 'hydrated/', target: 'bus' }, 'target "bus": this construct has no replay bus'],
    [{ prefix: 'hydrated/', target: 'lambda' }, 'target "lambda"; allowed: "pipe"'],
    [{ prefix: 'hydrated/', maxObjects: 0 }, 'maxObjects 0; allowed: an integer from 1 to 10000'],
    [{ prefix: 'hydrated/', dryrun: true }, 'unknown field(s) dryrun; allowed: consumer, from, to, prefix'],
  ])('a bad request is refused before anything is read: %j', async (request, message) => {
    const replayer = new Replayer({ s3, kinesis, eventBridge }, { bucketName: 'unused', prefix: 'hydrated/', replayStreamName: 'unused' });
    const error = await replayer.replay(request).catch((e) => e);
    expect(error).toBeInstanceOf(ReplayRequestError);
    expect(error.message).toContain(message);
  });
});
