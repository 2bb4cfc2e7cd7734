import { CreateBucketCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { ReceiveMessageCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import { firehoseErrorKey, firehoseErrorObject, firehoseErrorRecord } from './firehose-error-fixtures';
import { lambdaOnFailureRecord } from './lambda-destination-fixtures';
import { createMotoIngest } from './moto-ingest';
import { recordLine } from './publisher-fixtures';
import { checkRecord, RecordEnvelope } from '../../src/runtime/curated-envelope';
import {
  envelopeFromEvent, FastLaneRedriveReport, redriveFastLaneDeadLetters, redriveSlowLaneDeadLetters, SlowLaneRedriveReport,
} from '../../src/tiered-event-ingest/lane-dead-letter-redrive-core';
import {
  DeadLetterRedriveReport, ParkedRedriveReport, redriveKeyFor, redriveObjectDeadLetters, redriveParkedObjects,
} from '../../src/tiered-event-ingest/parked-records-redrive-core';
import { quarantineKey } from '../../src/tiered-event-ingest/publisher-core';
import { ec2StateChangeEvent, eventBridgeDeadLetterAttributes } from '../support/aws-fixtures';
import { FaultInjector, FaultKind, InvocationOutcome } from '../support/crash-points';
import { createMotoQueue, drainMotoQueue, motoClients, uniqueName } from '../support/moto';

const clients = motoClients();
const { sqs, eventBridge, s3 } = clients;
/** Clients the redrive uses with the fault injector on them (setup and checks use the ones above). */
const faulty = motoClients();
const injector = new FaultInjector(faulty.s3, faulty.sqs, faulty.eventBridge);
/**
 * The S3 client of the crash trials: a crashed run abandons a GetObject body mid-stream, and
 * destroying the client then raises an unhandled stream error, so it is left to the process exit.
 */
const crashS3 = motoClients().s3;
injector.attach(crashS3);

afterAll(() => {
  for (const client of [sqs, eventBridge, s3, clients.dynamoDb, faulty.sqs, faulty.s3, faulty.eventBridge, faulty.dynamoDb]) client.destroy();
});

const plentyOfTime = () => 15 * 60 * 1000;
const NOW = new Date(Date.UTC(2026, 10, 30, 10, 42, 7));
const ACCOUNT = '123456789012';
const SLOW_RULE_ARN = `arn:aws:events:us-east-1:${ACCOUNT}:rule/slow-bus/Ingest-SlowLaneRule`;
const FIREHOSE_ARN = `arn:aws:firehose:us-east-1:${ACCOUNT}:deliverystream/Ingest-DeliveryStream`;
const RELAY_ARN = `arn:aws:lambda:us-east-1:${ACCOUNT}:function:Ingest-RelayFunction`;
const slowAttributes = () => eventBridgeDeadLetterAttributes(SLOW_RULE_ARN, FIREHOSE_ARN);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A bucket as the construct creates it: NOT versioned (an overwrite replaces the only copy). */
async function plainBucket(): Promise<string> {
  const bucket = uniqueName('ingest-plain');
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  return bucket;
}

async function put(bucket: string, key: string, body: string | Buffer): Promise<void> {
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
}

async function read(bucket: string, key: string): Promise<Buffer> {
  const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return Buffer.from(await object.Body!.transformToByteArray());
}

async function exists(bucket: string, key: string): Promise<boolean> {
  try {
    await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    return true;
  } catch (err) {
    if ((err as Error).name === 'NotFound' || (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return false;
    throw err;
  }
}

async function keysUnder(bucket: string, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    keys.push(...(page.Contents ?? []).map((c) => c.Key!));
    token = page.NextContinuationToken;
  } while (token);
  return keys;
}

/** A quarantine segment line by line, in the format quarantineLine writes. */
function segment(entries: object[]): string {
  return entries.map((e) => JSON.stringify(e) + '\n').join('');
}

/** The EC2 example event with its own id. */
function slowEvent(id: string): Record<string, unknown> {
  return ec2StateChangeEvent({ id });
}

function valueOf<T>(outcome: InvocationOutcome<T>): T {
  if (outcome.ended !== 'returned') throw new Error(`the invocation ${outcome.ended}: ${outcome.ended === 'threw' ? String(outcome.error) : ''}`);
  return outcome.value;
}

describe('parked-records redrive: paging and idempotency edge cases', () => {
  // Invariant: a run that stops before its first object hands back a token that resumes
  // AT that object; redriving "each failed object again with its key as the prefix" (as the
  // report advises) must not skip the object when the first call ran short of time.
  test('a full-key prefix whose first call stops before the object: the resumed call redrives it (no silent skip through the token)', async () => {
    const { bucket } = await createMotoIngest(clients);
    const key = quarantineKey('quarantine/', { bucket, key: 'data/tenant=acme/2026/11/22/10/one.gz', versionId: 'v1' }, 1, 1);
    await put(bucket, key, segment([{ line: 1, reason: 'r', bytes: 10, record: recordLine(1) }]));
    const deps = { s3, bucket, remainingMs: plentyOfTime };

    const late = await redriveParkedObjects({ ...deps, remainingMs: () => 1000 }, { prefix: key });
    expect(late).toMatchObject({ objectsScanned: 0, complete: false });
    const resumed = await redriveParkedObjects(deps, { prefix: key, continuationToken: late.nextContinuationToken });

    // The object was never handled, so the resumed call must handle it.
    expect(resumed).toMatchObject({ objectsScanned: 1, objectsWritten: 1, recordsRedriven: 1, complete: true });
    expect(await exists(bucket, redriveKeyFor(key))).toBe(true);
  });

  // Invariant: paging through a prefix with maxObjects 1 (tokens chained) redrives every
  // object exactly once, whatever the keys (folder markers, non-ASCII keys that sort after
  // ASCII ones in UTF-8 order), and an object added after the token position between calls
  // is picked up by the same pass.
  test('paging with maxObjects 1 over folder markers and non-ASCII keys, with an object added between calls: each redriven exactly once', async () => {
    const { bucket } = await createMotoIngest(clients);
    const base = 'firehose-errors/processing-failed/2026/11/22/10/';
    const keys = [`${base}a.gz`, `${base}Z.gz`, `${base}é.gz`, `${base}z.gz`, `${base}ünï/x.gz`];
    for (const [i, key] of keys.entries()) await put(bucket, key, firehoseErrorObject([firehoseErrorRecord(recordLine(i + 1))]));
    await put(bucket, `${base}m/`, ''); // a folder marker
    const deps = { s3, bucket, remainingMs: plentyOfTime };

    const reports: ParkedRedriveReport[] = [];
    let token: string | undefined;
    const added = `${base}zz-added-later.gz`;
    do {
      const report = await redriveParkedObjects(deps, { prefix: 'firehose-errors/', maxObjects: 1, continuationToken: token });
      reports.push(report);
      token = report.nextContinuationToken;
      if (reports.length === 2) await put(bucket, added, firehoseErrorObject([firehoseErrorRecord(recordLine(99))]));
    } while (token !== undefined && reports.length < 20);

    const all = [...keys, added];
    expect(reports.reduce((n, r) => n + r.objectsWritten, 0)).toBe(all.length);
    expect(reports.reduce((n, r) => n + r.alreadyRedriven + r.failedObjectCount, 0)).toBe(0);
    expect((await keysUnder(bucket, 'data/redrive/')).sort()).toEqual(all.map(redriveKeyFor).sort());
    expect(reports[reports.length - 1].complete).toBe(true);
  });

  // Invariant: a record quarantined as binary (recordBase64), a very long line heavy in JSON
  // escapes, and a line with CR, U+2028 and astral characters come back byte for byte;
  // binary Firehose rawData too.
  test('binary (recordBase64), very long and escape-heavy records are redriven byte for byte', async () => {
    const { bucket } = await createMotoIngest(clients);
    const binary = Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x00, 0xc3, 0x28, 0x0d, 0x22, 0x7d]);
    const long = JSON.stringify({ s: '"\\\u0001'.repeat(600_000) }); // ~2.4 MB of text, ~9 MB escaped in the segment
    const odd = '{"a":"x\ry\u2028z\u{1F600}"}';
    const qKey = quarantineKey('quarantine/', { bucket, key: 'data/tenant=acme/2026/11/22/10/bin.gz', versionId: 'v1' }, 1, 3);
    await put(bucket, qKey, segment([
      { line: 1, reason: 'line is not valid UTF-8', bytes: binary.length, record: null, recordBase64: binary.toString('base64') },
      { line: 2, reason: 'invalid JSON', bytes: Buffer.byteLength(long), record: long },
      { line: 3, reason: 'invalid JSON', bytes: Buffer.byteLength(odd), record: odd },
    ]));
    const fKey = firehoseErrorKey('b1b2b3b4');
    await put(bucket, fKey, firehoseErrorObject([firehoseErrorRecord(binary, { withDelimiter: true }), firehoseErrorRecord(odd)]));
    const deps = { s3, bucket, remainingMs: plentyOfTime };

    const q = await redriveParkedObjects(deps, { prefix: qKey });
    const f = await redriveParkedObjects(deps, { prefix: fKey });

    expect(q).toMatchObject({ objectsWritten: 1, recordsRedriven: 3, unrecoverableCount: 0 });
    expect(f).toMatchObject({ objectsWritten: 1, recordsRedriven: 2, unrecoverableCount: 0 });
    const nl = Buffer.from('\n');
    expect((await read(bucket, redriveKeyFor(qKey))).equals(Buffer.concat([binary, nl, Buffer.from(long), nl, Buffer.from(odd), nl]))).toBe(true);
    expect((await read(bucket, redriveKeyFor(fKey))).equals(Buffer.concat([binary, nl, Buffer.from(odd), nl]))).toBe(true);
  });

  // Invariant: whatever AWS call of a multipart redrive fails (request lost, answer lost,
  // crash), a second, clean run leaves the redriven copy complete: HeadObject never sees a
  // half-written copy (an aborted or abandoned multipart upload is invisible), so
  // idempotency never skips a record; the copy holds every record exactly once.
  test('a fault at any call of a multipart redrive, then a clean run: the redriven copy holds every record exactly once', async () => {
    const lines = Array.from({ length: 6 }, (_, i) => recordLine(i + 1, { body: String(i).repeat(1_000_000) }));
    const body = firehoseErrorObject(lines.map((l) => firehoseErrorRecord(l, { withDelimiter: true })), { gzip: false });
    const expected = lines.map((l) => l + '\n').join('');
    const key = firehoseErrorKey('c0c1c2c3');
    const setup = async () => {
      const bucket = await plainBucket();
      await put(bucket, key, body);
      return bucket;
    };
    const run = (bucket: string, client = crashS3) =>
      redriveParkedObjects({ s3: client, bucket, remainingMs: plentyOfTime }, { prefix: key, partBytes: 5 * 1024 * 1024 });

    const cleanBucket = await setup();
    const clean = await injector.invoke(() => run(cleanBucket));
    const calls = clean.calls.map((c) => c.command);
    expect(calls).toEqual(expect.arrayContaining(['CreateMultipartUploadCommand', 'UploadPartCommand', 'CompleteMultipartUploadCommand']));

    const broken: string[] = [];
    for (let at = 0; at < calls.length; at++) {
      for (const kind of ['lost-request', 'lost-answer', 'crash'] as FaultKind[]) {
        const bucket = await setup();
        await injector.invoke(() => run(bucket), { at, kind });
        const second = await run(bucket, s3);
        const target = redriveKeyFor(key);
        const copy = (await exists(bucket, target)) ? (await read(bucket, target)).toString('utf8') : '<missing>';
        if (copy !== expected || second.failedObjectCount !== 0) broken.push(`${kind} at ${calls[at]}: copy ${copy.length} bytes, second run ${JSON.stringify(second)}`);
      }
    }
    expect(broken).toEqual([]);
  });
});

describe('object-dlq redrive: counts and attributes', () => {
  // Invariant: the report matches reality: `failed` messages are "left in the dead-letter
  // queue" and `received` counts messages. With a visibility timeout shorter than the run,
  // the messages whose send failed reappear and are moved in the same run: they must not be
  // reported as left in the DLQ, nor counted twice as received.
  test('a visibility timeout shorter than the run: messages retried in the same run are not reported failed nor received twice', async () => {
    const dlq = await createMotoQueue(sqs, 'object-dlq');
    const queue = await createMotoQueue(sqs, 'object-queue');
    const bodies = Array.from({ length: 5 }, (_, i) => `notification-${i}-${uniqueName('n')}`);
    for (const body of bodies) await sqs.send(new SendMessageCommand({ QueueUrl: dlq.url, MessageBody: body }));

    // Call 1 is the SendMessageBatch: entries 0, 2 and 4 fail.
    const outcome = await injector.invoke(() => redriveObjectDeadLetters({ sqs: faulty.sqs, remainingMs: plentyOfTime },
      { deadLetterQueueUrl: dlq.url, queueUrl: queue.url, visibilityTimeoutSeconds: 1, waitTimeSeconds: 2 }), { at: 1, kind: 'partial-failure' });
    const report: DeadLetterRedriveReport = valueOf(outcome);

    await sleep(1500);
    const moved = await drainMotoQueue(sqs, queue.url);
    const stillParked = await drainMotoQueue(sqs, dlq.url);
    expect([...moved, ...stillParked].sort()).toEqual([...bodies].sort()); // nothing lost
    expect(report.received).toBe(bodies.length);
    expect(report.moved).toBe(moved.length);
    expect(report.failed).toBe(stillParked.length);
    expect(report.failures.length).toBe(stillParked.length);
  });

  // Invariant: `moved + failed === received` whatever stops the run. Ten 100 KiB
  // notifications need five SendMessageBatch calls (256 KiB each at most); the second one
  // is lost, and the run stops: the three groups it never tried are still received, and
  // are reported as left in the DLQ.
  test('a run stopped by a failed send mid-receive counts the messages it never tried as received and failed', async () => {
    const dlq = await createMotoQueue(sqs, 'object-dlq');
    const queue = await createMotoQueue(sqs, 'object-queue');
    const bodies = Array.from({ length: 10 }, (_, i) => `${i}`.padEnd(100 * 1024, '.'));
    for (const body of bodies) await sqs.send(new SendMessageCommand({ QueueUrl: dlq.url, MessageBody: body }));

    // Calls: 0 receive, 1 send, 2 delete, 3 the second send.
    const outcome = await injector.invoke(() => redriveObjectDeadLetters({ sqs: faulty.sqs, remainingMs: plentyOfTime },
      { deadLetterQueueUrl: dlq.url, queueUrl: queue.url, visibilityTimeoutSeconds: 1, waitTimeSeconds: 0 }), { at: 3, kind: 'lost-request' });
    const report: DeadLetterRedriveReport = valueOf(outcome);

    await sleep(1500);
    const moved = await drainMotoQueue(sqs, queue.url);
    const stillParked = await drainMotoQueue(sqs, dlq.url);
    expect([...moved, ...stillParked].sort()).toEqual([...bodies].sort()); // nothing lost
    expect(report.stoppedBecause).toBe('error');
    expect(report).toMatchObject({ received: 10, moved: 2, failed: 8, notDeleted: 0 });
    expect(report.moved).toBe(moved.length);
    expect(report.failures.map((f) => f.reason)).toEqual([
      ...Array(2).fill(expect.stringMatching(/^send failed: .*; left in the dead-letter queue$/)),
      ...Array(6).fill('not tried: the run stopped on an earlier error; left in the dead-letter queue'),
    ]);
  });

  // Invariant: a notification moved back keeps its body and every message attribute,
  // whatever its type (String, Number, Binary, custom-typed).
  test('binary, number and custom-typed message attributes survive the move unchanged', async () => {
    const dlq = await createMotoQueue(sqs, 'object-dlq');
    const queue = await createMotoQueue(sqs, 'object-queue');
    const binary = Uint8Array.from([0, 1, 2, 0xff, 0xfe]);
    const attributes = {
      ERROR_CODE: { DataType: 'String', StringValue: 'SDK_CLIENT_ERROR' },
      RETRY_ATTEMPTS: { DataType: 'Number', StringValue: '185' },
      blob: { DataType: 'Binary', BinaryValue: binary },
      custom: { DataType: 'String.origin', StringValue: 'eventbridge-dlq ✓' },
    };
    await sqs.send(new SendMessageCommand({ QueueUrl: dlq.url, MessageBody: 'notification-with-attributes', MessageAttributes: attributes }));

    const report = await redriveObjectDeadLetters({ sqs: faulty.sqs, remainingMs: plentyOfTime },
      { deadLetterQueueUrl: dlq.url, queueUrl: queue.url, waitTimeSeconds: 0 });

    expect(report).toMatchObject({ received: 1, moved: 1, failed: 0, notDeleted: 0 });
    const { Messages } = await sqs.send(new ReceiveMessageCommand({ QueueUrl: queue.url, MessageAttributeNames: ['All'], VisibilityTimeout: 600 }));
    expect(Messages?.map((m) => m.Body)).toEqual(['notification-with-attributes']);
    const got = Messages![0].MessageAttributes!;
    expect(Object.keys(got).sort()).toEqual(Object.keys(attributes).sort());
    expect(got.ERROR_CODE).toMatchObject(attributes.ERROR_CODE);
    expect(got.RETRY_ATTEMPTS).toMatchObject(attributes.RETRY_ATTEMPTS);
    expect(got.custom).toMatchObject(attributes.custom);
    expect(got.blob.DataType).toBe('Binary');
    expect(Buffer.from(got.blob.BinaryValue!).equals(Buffer.from(binary))).toBe(true);
    expect(await drainMotoQueue(sqs, dlq.url)).toEqual([]);
  });
});

describe('lane dead-letter redrive: edge cases', () => {
  // Invariant: nothing is deleted from the slow-lane DLQ before its record is certainly
  // stored. A batch whose delete failed in part is received again by a later run (at least
  // once); the later run's object must not REPLACE the earlier one, whose other records were
  // already deleted from the DLQ. In the construct's (unversioned) bucket an overwrite
  // destroys the only copy of those records.
  test('slow lane: a later batch with the same first message and count does not overwrite an earlier redriven object', async () => {
    const bucket = await plainBucket();
    const dlq = await createMotoQueue(sqs, 'slow-dlq');
    const ids = ['aaaaaaaa-0000-4000-8000-000000000001', 'aaaaaaaa-0000-4000-8000-000000000002', 'aaaaaaaa-0000-4000-8000-000000000003'];
    const deadLetter = (id: string) =>
      sqs.send(new SendMessageCommand({ QueueUrl: dlq.url, MessageBody: JSON.stringify(slowEvent(id)), MessageAttributes: slowAttributes() }));
    for (const id of ids.slice(0, 2)) await deadLetter(id);
    const deps = { sqs: faulty.sqs, s3, remainingMs: plentyOfTime, now: () => NOW };
    const request = { deadLetterQueueUrl: dlq.url, bucket, waitTimeSeconds: 0, visibilityTimeoutSeconds: 1 };

    // Call 0 receives both, call 1 is the DeleteMessageBatch: entry 0 fails, entry 1 is deleted.
    const first: SlowLaneRedriveReport = valueOf(await injector.invoke(() => redriveSlowLaneDeadLetters(deps, request), { at: 1, kind: 'partial-failure' }));
    expect(first).toMatchObject({ received: 2, redriven: 2, notDeleted: 1 });
    await sleep(1500); // the undeleted one is visible again
    await deadLetter(ids[2]);
    const second = await redriveSlowLaneDeadLetters({ ...deps, sqs }, request);
    expect(second.stoppedBecause).toBe('empty');

    const stored = new Set<string>();
    for (const key of await keysUnder(bucket, 'data/')) {
      for (const line of (await read(bucket, key)).toString('utf8').trimEnd().split('\n')) stored.add((JSON.parse(line) as RecordEnvelope).id);
    }
    const parked = (await drainMotoQueue(sqs, dlq.url)).map((b) => JSON.parse(b).id as string);
    const missing = ids.filter((id) => !stored.has(id) && !parked.includes(id));
    expect({ missing, sameKey: first.writtenKeys[0] === second.writtenKeys[0] }).toEqual({ missing: [], sameKey: false });
  });

  // Invariant: `received` counts messages and `kept` the messages left in the DLQ. Kept
  // messages are meant to stay hidden for the rest of the run ("a run never receives them
  // twice"); with a visibility timeout shorter than the run a kept poison message comes back
  // and must not be counted (and noted) again, nor keep the run from reaching "empty".
  test('a kept message that reappears within the run (visibility shorter than the run) is counted once, and the run ends empty', async () => {
    const dlq = await createMotoQueue(sqs, 'slow-dlq');
    const bucket = await plainBucket();
    await sqs.send(new SendMessageCommand({ QueueUrl: dlq.url, MessageBody: 'not json {', MessageAttributes: slowAttributes() }));

    const report = await redriveSlowLaneDeadLetters({ sqs, s3, remainingMs: plentyOfTime, now: () => NOW },
      { deadLetterQueueUrl: dlq.url, bucket, waitTimeSeconds: 2, visibilityTimeoutSeconds: 1, maxMessages: 4 });

    expect({ received: report.received, kept: report.kept, notes: report.notes.length, stoppedBecause: report.stoppedBecause })
      .toEqual({ received: 1, kept: 1, notes: 1, stoppedBecause: 'empty' });
    expect(await drainMotoQueue(sqs, dlq.url)).toEqual(['not json {']);
  });

  // Invariant: a slow-lane dead letter whose body is already a record envelope (not an
  // EventBridge event) is neither dropped nor re-wrapped: it stays in the DLQ, body
  // unchanged and visible again, reported with its reason; nothing is written.
  test('slow lane: a dead letter that is already an envelope stays in the DLQ with its reason', async () => {
    const dlq = await createMotoQueue(sqs, 'slow-dlq');
    const bucket = await plainBucket();
    const body = recordLine(7);
    const sent = await sqs.send(new SendMessageCommand({ QueueUrl: dlq.url, MessageBody: body, MessageAttributes: slowAttributes() }));
    const messageId = sent.MessageId!;

    const report = await redriveSlowLaneDeadLetters({ sqs, s3, remainingMs: plentyOfTime, now: () => NOW },
      { deadLetterQueueUrl: dlq.url, bucket, waitTimeSeconds: 0 });

    expect(report).toMatchObject({ received: 1, redriven: 0, kept: 1, notReleased: 0, writtenKeys: [], stoppedBecause: 'empty' });
    expect(report.notes).toEqual([{ messageId, reason: expect.stringMatching(/^not an EventBridge event: no detail-type, detail; left in the dead-letter queue$/) }]);
    expect(await keysUnder(bucket, 'data/')).toEqual([]);
    expect(await drainMotoQueue(sqs, dlq.url)).toEqual([body]);
  });

  // Invariant: a relay on-failure record whose payload is a valid envelope of lane "slow" is
  // put on the curated bus exactly as the relay would have put it (its lane not rewritten),
  // then deleted; nothing else is put.
  test('fast lane: an on-failure record carrying a valid lane-"slow" envelope reaches the curated bus unchanged, once', async () => {
    const { bus, capture } = await createMotoIngest(clients);
    const dlq = await createMotoQueue(sqs, 'fast-dlq');
    const built = envelopeFromEvent(slowEvent('bbbbbbbb-0000-4000-8000-000000000001'), 'slow');
    if (!built.valid) throw new Error(built.errors.join());
    expect(checkRecord(built.envelope).valid).toBe(true);
    const onFailure = lambdaOnFailureRecord({ functionArn: RELAY_ARN, requestPayload: built.envelope });
    await sqs.send(new SendMessageCommand({ QueueUrl: dlq.url, MessageBody: JSON.stringify(onFailure) }));

    const fastDeps = { sqs, eventBridge, remainingMs: plentyOfTime, sleep: async () => undefined };
    const report: FastLaneRedriveReport = await redriveFastLaneDeadLetters(fastDeps,
      { deadLetterQueueUrl: dlq.url, curatedBusName: bus, relayFunctionArn: RELAY_ARN, waitTimeSeconds: 0 });

    expect(report).toMatchObject({ received: 1, redriven: 1, kept: 0, fromOnFailureRecords: 1, notDeleted: 0 });
    const delivered = (await drainMotoQueue(sqs, capture.url)).map((b) => JSON.parse(b));
    expect(delivered.map((e) => [e['detail-type'], e.detail])).toEqual([['CuratedRecord', built.envelope]]);
    expect(await drainMotoQueue(sqs, dlq.url)).toEqual([]);
  });
});
