import { hydratedWorld, objectTags, streamRecords } from './replay-moto';
import { REPLAYED_TAG, ReplayReport, Replayer } from '../../src/hydrating-dlq/replayer-core';
import { exploreCrashPoints, FAULT_KINDS, FaultInjector, invariant, InvocationOutcome } from '../support/crash-points';
import { motoClients } from '../support/moto';

/**
 * The replayer under the crash-point harness, against moto (S3, Kinesis): every call of a
 * replay of 4 records (list, reads, PutRecords, the marks) fails as a lost request, a lost
 * answer, a crash, and PutRecords also in part. The operator, as the docs say, runs the
 * replay again when it failed or reported failed records (up to 3 runs in all).
 *
 * Invariant: no object is marked replayed unless its record is on the replay stream; after
 * the operator's runs every record is on the replay stream (duplicates allowed: a record sent
 * whose mark was lost is sent again) and every object is marked.
 */

const platform = motoClients();
const handlerClients = motoClients();
const injector = new FaultInjector(handlerClients.s3, handlerClients.kinesis);
const WINDOW = { from: new Date(Date.now() - 3_600_000).toISOString(), to: new Date(Date.now() + 3 * 3_600_000).toISOString() };

type World = Awaited<ReturnType<typeof hydratedWorld>> & { replayer: Replayer };

const needsAnotherRun = (outcome: InvocationOutcome) => outcome.ended !== 'returned' || (outcome.value as ReplayReport).failed > 0
  || (outcome.value as ReplayReport).failures.length > 0;

afterAll(() => {
  for (const clients of [platform, handlerClients]) {
    clients.s3.destroy();
    clients.kinesis.destroy();
    clients.sqs.destroy();
  }
});

test('replayer: every record on the replay stream and every object marked, whatever call fails', async () => {
  const report = await exploreCrashPoints<World>({
    name: 'replayer, 4 records to the replay stream',
    injector,
    kinds: FAULT_KINDS,
    setup: async () => {
      const w = await hydratedWorld(platform.kinesis, platform.s3, 4);
      const { s3, kinesis, eventBridge } = handlerClients;
      const replayer = new Replayer({ s3, kinesis, eventBridge, sleep: async () => undefined },
        { bucketName: w.bucket, prefix: 'hydrated/', replayStreamName: w.replayStreamName });
      return { ...w, replayer };
    },
    invoke: (w) => w.replayer.replay({ consumer: 'orders-to-api', ...WINDOW }),
    redeliver: async (w, first) => {
      let outcome = first;
      for (let run = 2; run <= 3 && needsAnotherRun(outcome); run++) {
        outcome = await injector.invoke(() => w.replayer.replay({ consumer: 'orders-to-api', ...WINDOW }));
      }
    },
    check: async (w) => {
      const onStream = await streamRecords(platform.kinesis, w.replayArn);
      const tags = await objectTags(platform.s3, w.bucket);
      invariant(tags.size === 4, `${tags.size} record objects`);
      const expected = w.records.map((r) => ({ partitionKey: r.partitionKey, data: r.data.toString('base64') }));
      const count = (r: { partitionKey: string; data: string }) => onStream
        .filter((s) => s.partitionKey === r.partitionKey && s.data === r.data).length;
      const missing = expected.filter((r) => count(r) === 0);
      invariant(missing.length === 0, `records never replayed: ${JSON.stringify(missing)}`);
      const unmarked = [...tags.entries()].filter(([, t]) => !t[REPLAYED_TAG]).map(([k]) => k);
      invariant(unmarked.length === 0, `objects not marked replayed after the operator's runs: ${unmarked.join(', ')}`);
      return { delivered: expected.length, waiting: 0, parked: 0, duplicates: onStream.length - expected.length };
    },
  });
  console.log(`Crash points, replayer: ${report.crashPoints} trials; calls ${report.cleanCalls.join(' ')}; `
    + `delivered ${report.totals.delivered}, duplicates ${report.totals.duplicates}`);
  // Two calls: a call carries one record of a partition key, and customer-0 has two records.
  expect(report.cleanCalls.filter((c) => c === 'PutRecords')).toHaveLength(2);
  expect(report.cleanCalls.filter((c) => c === 'PutObjectTagging')).toHaveLength(4);
  expect(report.totals.delivered).toBe(report.crashPoints * 4);
});

test('a replay stream that refuses every record: each failure reported, nothing marked', async () => {
  const w = await hydratedWorld(platform.kinesis, platform.s3, 2);
  const replayer = new Replayer({ s3: handlerClients.s3, kinesis: handlerClients.kinesis, eventBridge: handlerClients.eventBridge },
    { bucketName: w.bucket, prefix: 'hydrated/', replayStreamName: `${w.replayStreamName}-missing` });
  // A stream that does not exist: PutRecords fails, so nothing may be marked.
  const result = await replayer.replay({ consumer: 'orders-to-api', ...WINDOW });
  expect(result).toMatchObject({ found: 2, sent: 0, failed: 2 });
  expect(result.failures.map((f) => f.reason)).toEqual([expect.stringMatching(/^PutRecords failed: /), expect.stringMatching(/^PutRecords failed: /)]);
  expect([...(await objectTags(platform.s3, w.bucket)).values()]).toEqual([{}, {}]);
});
