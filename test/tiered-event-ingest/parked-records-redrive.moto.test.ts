import { gzipSync } from 'zlib';
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, ListObjectVersionsCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { ReceiveMessageCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import { firehoseErrorKey, firehoseErrorObject, firehoseErrorRecord } from './firehose-error-fixtures';
import { createMotoIngest } from './moto-ingest';
import { recordLine } from './publisher-fixtures';
import { DynamoDbObjectLedger } from '../../src/tiered-event-ingest/object-ledger-core';
import {
  ParkedRedriveReport, redriveKeyFor, redriveObjectDeadLetters, redriveParkedObjects,
} from '../../src/tiered-event-ingest/parked-records-redrive-core';
import { objectRefFromNotification } from '../../src/tiered-event-ingest/publisher-config-core';
import { MAX_BUFFERED_LINE_BYTES, ObjectRef, publishObject, PublisherConfig, quarantineKey } from '../../src/tiered-event-ingest/publisher-core';
import { FaultInjector } from '../support/crash-points';
import { createMotoQueue, drainMotoQueue, motoClients, uniqueName } from '../support/moto';

const clients = motoClients();
const { sqs, eventBridge, s3, dynamoDb } = clients;
/** The SQS client the DLQ redrive uses, with the fault injector on it (setup and checks use `sqs`). */
const redriveClients = motoClients();
const injector = new FaultInjector(redriveClients.sqs);

afterAll(() => {
  for (const client of [sqs, eventBridge, s3, dynamoDb, redriveClients.sqs]) client.destroy();
});

const plentyOfTime = () => 15 * 60 * 1000;
/** The publisher as first configured: a small entry limit quarantines large records. */
const SMALL_ENTRIES = 2048;

/** The construct's resources in moto: versioned bucket, ledger table, curated bus whose batches a capture queue receives. */
async function world() {
  const { bucket, table, bus, capture } = await createMotoIngest(clients, ['CuratedBatch']);

  const config = (maxEntryBytes: number): PublisherConfig => ({ curatedBusName: bus, quarantinePrefix: 'quarantine/', maxEntryBytes, maxRecords: 1000, leaseSeconds: 360 });
  const deps = (owner: string) => ({
    eventBridge,
    ledger: new DynamoDbObjectLedger(dynamoDb, table),
    owner,
    openObject: async (r: ObjectRef) => {
      const object = await s3.send(new GetObjectCommand({ Bucket: r.bucket, Key: r.key, VersionId: r.versionId }));
      return object.Body as AsyncIterable<Uint8Array>;
    },
    writeQuarantine: async (k: string, body: string) => { await s3.send(new PutObjectCommand({ Bucket: bucket, Key: k, Body: body })); },
  });
  /** Publishes the object a notification names, as the publisher does for a message of the object queue. */
  const publishNotified = (body: string, maxEntryBytes: number) =>
    publishObject(deps(uniqueName('attempt')), config(maxEntryBytes), objectRefFromNotification(body, bucket, 'data/'));
  /** Publishes an object as the publisher does for the notification S3 sends for it. */
  const publish = async (key: string, maxEntryBytes: number) => {
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    return publishNotified(notification(bucket, key, head.VersionId!), maxEntryBytes);
  };
  /** Every record the curated bus delivered so far, as received (each batch event read once). */
  const deliveredRecords = async (): Promise<any[]> => (await drainMotoQueue(sqs, capture.url)).flatMap((body) => JSON.parse(body).detail.records);
  return { bucket, publish, publishNotified, deliveredRecords, redriveDeps: { s3, bucket, remainingMs: plentyOfTime } };
}

/** An EventBridge S3 "Object Created" notification as the object queue receives it. */
function notification(bucket: string, key: string, versionId: string): string {
  return JSON.stringify({
    'version': '0',
    'id': uniqueName('n'),
    'detail-type': 'Object Created',
    'source': 'aws.s3',
    'account': '123456789012',
    'time': '2026-11-22T10:00:00Z',
    'region': 'us-east-1',
    'resources': [`arn:aws:s3:::${bucket}`],
    'detail': { version: '0', bucket: { name: bucket }, object: { 'key': key, 'size': 1, 'etag': 'e', 'version-id': versionId, 'sequencer': '00A' } },
  });
}

async function put(bucket: string, key: string, body: string | Buffer): Promise<void> {
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
}

async function read(bucket: string, key: string): Promise<Buffer> {
  const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return Buffer.from(await object.Body!.transformToByteArray());
}

async function keysUnder(bucket: string, prefix: string): Promise<string[]> {
  const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
  return (listed.Contents ?? []).map((c) => c.Key!);
}

/** Every version of every object under `prefix`, as key and ETag. */
async function versionsUnder(bucket: string, prefix: string): Promise<string[]> {
  const listed = await s3.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: prefix }));
  return (listed.Versions ?? []).map((v) => `${v.Key} ${v.ETag}`).sort();
}

/** A quarantine segment as the publisher writes it (see quarantineLine in publisher-core). */
function segment(entries: object[]): string {
  return entries.map((e) => JSON.stringify(e) + '\n').join('');
}

describe('redriveParkedObjects: records parked in S3 go back through the publisher', () => {
  test('quarantine, end to end: a record quarantined for its size is published exactly as it was once the limit is raised and it is redriven', async () => {
    const w = await world();
    const key = 'data/tenant=acme/2026/11/22/10/stream-1-2026-11-22-10-00-00-abc.gz';
    const big = recordLine(2, { body: 'x'.repeat(3000) });
    await put(w.bucket, key, gzipSync([recordLine(1), big, recordLine(3)].join('\n') + '\n'));

    const first = await w.publish(key, SMALL_ENTRIES);
    expect(first).toMatchObject({ outcome: 'published', published: 2, quarantined: 1, quarantineReasons: { 'over the entry limit': 1 } });
    expect((await w.deliveredRecords()).map((r) => r.id).sort()).toEqual(['evt-1', 'evt-3']);
    // Fixing the cause does not bring the record back: the object is done.
    expect((await w.publish(key, 1_048_576)).outcome).toBe('duplicate');
    const [parked] = await keysUnder(w.bucket, 'quarantine/');
    const parkedBefore = await versionsUnder(w.bucket, 'quarantine/');

    const report = await redriveParkedObjects(w.redriveDeps, { prefix: 'quarantine/' });

    const target = `data/redrive/${parked}`;
    expect(report).toEqual<ParkedRedriveReport>({
      prefix: 'quarantine/',
      dryRun: false,
      objectsScanned: 1,
      objectsWritten: 1,
      recordsRedriven: 1,
      alreadyRedriven: 0,
      objectsWithNothingToRedrive: 0,
      unrecoverableCount: 0,
      unrecoverable: [],
      failedObjectCount: 0,
      failedObjects: [],
      writtenKeys: [target],
      complete: true,
    });
    expect((await read(w.bucket, target)).toString('utf8')).toBe(big + '\n');
    const { Metadata } = await s3.send(new HeadObjectCommand({ Bucket: w.bucket, Key: target }));
    expect(decodeURIComponent(Metadata!['redriven-from'])).toBe(parked);
    expect(await versionsUnder(w.bucket, 'quarantine/')).toEqual(parkedBefore); // the parked segment is untouched

    const again = await w.publish(target, 1_048_576);
    expect(again).toMatchObject({ outcome: 'published', inputRecords: 1, published: 1, quarantined: 0 });
    const records = await w.deliveredRecords();
    expect(records.map((r) => JSON.stringify(r))).toEqual([big]);
  });

  test('firehose-errors, end to end: records Firehose could not partition (gzip, newline-delimited or concatenated) are published as they were', async () => {
    const w = await world();
    const lines = [recordLine(11), recordLine(12, { text: 'ünïcödé ✓' }), recordLine(13), recordLine(14)];
    const gzipKey = firehoseErrorKey('0a1b2c3d');
    const plainKey = firehoseErrorKey('4e5f6a7b');
    // One record still ends with the delimiter Firehose appended; the other does not.
    await put(w.bucket, gzipKey, firehoseErrorObject([firehoseErrorRecord(lines[0], { withDelimiter: true }), firehoseErrorRecord(lines[1])]));
    await put(w.bucket, plainKey, firehoseErrorObject([firehoseErrorRecord(lines[2]), firehoseErrorRecord(lines[3], { withDelimiter: true })],
      { gzip: false, separator: '' }));

    const report = await redriveParkedObjects(w.redriveDeps, { prefix: 'firehose-errors/' });

    expect(report).toMatchObject({ objectsScanned: 2, objectsWritten: 2, recordsRedriven: 4, unrecoverableCount: 0, complete: true });
    expect(report.writtenKeys.sort()).toEqual([`data/redrive/${gzipKey}`, `data/redrive/${plainKey}`].sort());
    expect((await read(w.bucket, `data/redrive/${gzipKey}`)).toString('utf8')).toBe(`${lines[0]}\n${lines[1]}\n`);
    expect((await read(w.bucket, `data/redrive/${plainKey}`)).toString('utf8')).toBe(`${lines[2]}\n${lines[3]}\n`);

    for (const key of report.writtenKeys) expect(await w.publish(key, SMALL_ENTRIES)).toMatchObject({ outcome: 'published', published: 2, quarantined: 0 });
    const records = await w.deliveredRecords();
    expect(records.map((r) => JSON.stringify(r)).sort()).toEqual([...lines].sort());
  });

  test('entries without a record are reported with their object, line and reason, never dropped; recoverable ones go back, with their bytes', async () => {
    const w = await world();
    const source = 'data/tenant=acme/2026/11/22/10/stream-1-2026-11-22-10-05-00-def.gz';
    const tooLong = Buffer.alloc(MAX_BUFFERED_LINE_BYTES + 1, 'a');
    const notUtf8 = Buffer.from([0x7b, 0xff, 0xfe, 0x7d]);
    await put(w.bucket, source, Buffer.concat([Buffer.from(recordLine(1) + '\n'), tooLong, Buffer.from('\n'), notUtf8, Buffer.from('\nnot json\n')]));
    const published = await w.publish(source, SMALL_ENTRIES);
    expect(published).toMatchObject({ published: 1, quarantined: 3 });
    const [realSegment] = await keysUnder(w.bucket, 'quarantine/');

    const handmade = 'quarantine/data/tenant=acme/2026/11/22/10/handmade.gz/v9/lines-1-9.ndjson';
    await put(w.bucket, handmade, [
      'oops',
      JSON.stringify({ line: 5, reason: 'x', bytes: 3 }),
      JSON.stringify({ line: 6, reason: 'not UTF-8', bytes: 3, record: null, recordBase64: '!!notbase64' }),
      '{"line":7,"record":"cut sh',
      JSON.stringify({ line: 8, reason: 'invalid JSON', bytes: 10, record: recordLine(8) }),
      JSON.stringify({ line: 9, reason: 'x', bytes: 0, record: '' }),
    ].join('\n') + '\n');
    const errors = firehoseErrorKey('99aa88bb');
    const withoutRawData = { ...firehoseErrorRecord(recordLine(20), { errorCode: 'S3.AccessDenied', errorMessage: 'denied' }), rawData: undefined };
    await put(w.bucket, errors, firehoseErrorObject([withoutRawData, { ...firehoseErrorRecord(recordLine(21)), rawData: 'ab$d' }, firehoseErrorRecord(recordLine(22))]));

    const fromQuarantine = await redriveParkedObjects(w.redriveDeps, { prefix: 'quarantine/' });
    const fromFirehose = await redriveParkedObjects(w.redriveDeps, { prefix: 'firehose-errors/' });

    expect(fromQuarantine).toMatchObject({ objectsScanned: 2, objectsWritten: 2, recordsRedriven: 3, unrecoverableCount: 6, complete: true });
    expect(fromQuarantine.unrecoverable).toEqual([
      { key: handmade, line: 1, entry: 1, reason: expect.stringMatching(/^not a quarantine entry: invalid JSON/) },
      { key: handmade, line: 2, entry: 2, sourceLine: 5, reason: 'not a quarantine entry: it has neither "record" nor "recordBase64"' },
      { key: handmade, line: 3, entry: 3, sourceLine: 6, reason: 'recordBase64 is not valid base64' },
      { key: handmade, line: 4, entry: 4, reason: 'not a quarantine entry: invalid JSON (cut short by a line break or the end of the object)' },
      { key: handmade, line: 6, entry: 6, sourceLine: 9, reason: 'the quarantined record is empty' },
      {
        key: realSegment,
        line: 1,
        entry: 1,
        sourceLine: 2,
        reason: expect.stringMatching(new RegExp(`^the record was quarantined by reference only \\(${tooLong.length} bytes, line of ${tooLong.length} bytes is longer`)),
      },
    ]);
    expect(fromFirehose).toMatchObject({ objectsScanned: 1, objectsWritten: 1, recordsRedriven: 1, unrecoverableCount: 2 });
    expect(fromFirehose.unrecoverable).toEqual([
      { key: errors, line: 1, entry: 1, reason: 'Firehose error record without rawData (S3.AccessDenied: denied)' },
      { key: errors, line: 2, entry: 2, reason: expect.stringMatching(/^Firehose error record whose rawData is not valid base64 \(DynamicPartitioning/) },
    ]);

    // What was quarantined for its content goes back byte for byte, and is quarantined again with its reason.
    const redriven = `data/redrive/${realSegment}`;
    expect(await read(w.bucket, redriven)).toEqual(Buffer.concat([notUtf8, Buffer.from('\nnot json\n')]));
    expect(await w.publish(redriven, 1_048_576)).toMatchObject({
      published: 0, quarantined: 2, quarantineReasons: { 'not UTF-8': 1, 'invalid JSON': 1 },
    });
    const requarantined = (await keysUnder(w.bucket, `quarantine/${redriven}/`))[0];
    const entries = (await read(w.bucket, requarantined)).toString('utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(entries).toMatchObject([{ line: 1, record: null, recordBase64: notUtf8.toString('base64') }, { line: 2, record: 'not json' }]);
  });

  test('idempotent: a second run skips an object already redriven; force writes it again', async () => {
    const w = await world();
    const key = quarantineKey('quarantine/', { bucket: w.bucket, key: 'data/tenant=acme/2026/11/22/10/a.gz', versionId: 'v1' }, 1, 1);
    await put(w.bucket, key, segment([{ line: 1, reason: 'r', bytes: 10, record: recordLine(1) }]));

    const first = await redriveParkedObjects(w.redriveDeps, { prefix: 'quarantine/' });
    const second = await redriveParkedObjects(w.redriveDeps, { prefix: 'quarantine/' });
    const versionsAfterSecond = await versionsUnder(w.bucket, 'data/redrive/');
    const forced = await redriveParkedObjects(w.redriveDeps, { prefix: 'quarantine/', force: true });

    expect(first).toMatchObject({ objectsScanned: 1, objectsWritten: 1, recordsRedriven: 1, alreadyRedriven: 0 });
    expect(second).toMatchObject({ objectsScanned: 1, objectsWritten: 0, recordsRedriven: 0, alreadyRedriven: 1, writtenKeys: [], complete: true });
    expect(versionsAfterSecond).toHaveLength(1);
    expect(forced).toMatchObject({ objectsScanned: 1, objectsWritten: 1, recordsRedriven: 1, alreadyRedriven: 0, writtenKeys: [`data/redrive/${key}`] });
    expect(await versionsUnder(w.bucket, 'data/redrive/')).toHaveLength(2);
  });

  test('a dry run reports what it would write and writes nothing', async () => {
    const w = await world();
    const key = firehoseErrorKey('77665544');
    await put(w.bucket, key, firehoseErrorObject([firehoseErrorRecord(recordLine(1)), { attemptsMade: 1, errorCode: 'X' }, firehoseErrorRecord(recordLine(2))]));

    const report = await redriveParkedObjects(w.redriveDeps, { prefix: 'firehose-errors/', dryRun: true });

    expect(report).toMatchObject({
      dryRun: true, objectsScanned: 1, objectsWritten: 1, recordsRedriven: 2, unrecoverableCount: 1, writtenKeys: [`data/redrive/${key}`], complete: true,
    });
    expect(report.unrecoverable).toEqual([{ key, line: 2, entry: 2, reason: 'Firehose error record without rawData (X)' }]);
    expect(await keysUnder(w.bucket, 'data/')).toEqual([]);
    // Nothing written, so a real run afterwards still redrives it.
    expect(await redriveParkedObjects(w.redriveDeps, { prefix: 'firehose-errors/' })).toMatchObject({ objectsWritten: 1, alreadyRedriven: 0 });
  });

  test('paged: with maxObjects 1, three objects take three calls, each handing back the token of the last key handled', async () => {
    const w = await world();
    const keys = [1, 2, 3].map((n) => quarantineKey('quarantine/', { bucket: w.bucket, key: `data/tenant=acme/2026/11/22/10/o${n}.gz`, versionId: 'v1' }, 1, 1));
    for (const [i, key] of keys.entries()) await put(w.bucket, key, segment([{ line: 1, reason: 'r', bytes: 1, record: recordLine(i + 1) }]));

    const reports: ParkedRedriveReport[] = [];
    let token: string | undefined;
    do {
      const report = await redriveParkedObjects(w.redriveDeps, { prefix: 'quarantine/', maxObjects: 1, continuationToken: token });
      reports.push(report);
      token = report.nextContinuationToken;
    } while (token !== undefined && reports.length < 10);

    expect(reports.map((r) => [r.objectsScanned, r.writtenKeys, r.complete, r.nextContinuationToken])).toEqual([
      [1, [`data/redrive/${keys[0]}`], false, keys[0]],
      [1, [`data/redrive/${keys[1]}`], false, keys[1]],
      [1, [`data/redrive/${keys[2]}`], true, undefined],
    ]);
    expect((await keysUnder(w.bucket, 'data/redrive/')).sort()).toEqual(keys.map((k) => `data/redrive/${k}`).sort());
  });

  test('stops before the invocation runs out of time and goes on from its token', async () => {
    const w = await world();
    const keys = ['a', 'b', 'c'].map((n) => `firehose-errors/processing-failed/2026/11/22/10/${n}.gz`);
    for (const [i, key] of keys.entries()) await put(w.bucket, key, firehoseErrorObject([firehoseErrorRecord(recordLine(i + 1))]));

    const late = await redriveParkedObjects({ ...w.redriveDeps, remainingMs: () => 1000 }, { prefix: 'firehose-errors/' });
    let checks = 0;
    const oneObjectOfTime = () => (checks++ === 0 ? 60_000 : 29_999);
    const short = await redriveParkedObjects({ ...w.redriveDeps, remainingMs: oneObjectOfTime }, { prefix: 'firehose-errors/', continuationToken: late.nextContinuationToken });
    const rest = await redriveParkedObjects(w.redriveDeps, { prefix: 'firehose-errors/', continuationToken: short.nextContinuationToken });

    expect(late).toMatchObject({ objectsScanned: 0, complete: false, nextContinuationToken: 'firehose-errors/' });
    expect(short).toMatchObject({ objectsScanned: 1, writtenKeys: [`data/redrive/${keys[0]}`], complete: false, nextContinuationToken: keys[0] });
    expect(rest).toMatchObject({ objectsScanned: 2, writtenKeys: [`data/redrive/${keys[1]}`, `data/redrive/${keys[2]}`], complete: true });
    expect(rest.nextContinuationToken).toBeUndefined();
  });

  test('a large redriven object is uploaded in parts and holds every record', async () => {
    const w = await world();
    const lines = Array.from({ length: 8 }, (_, i) => recordLine(i + 1, { body: String(i).repeat(1_000_000) }));
    const key = firehoseErrorKey('5a5a5a5a');
    await put(w.bucket, key, firehoseErrorObject(lines.map((l) => firehoseErrorRecord(l, { withDelimiter: true }))));

    const report = await redriveParkedObjects(w.redriveDeps, { prefix: key, partBytes: 5 * 1024 * 1024 });

    expect(report).toMatchObject({ objectsWritten: 1, recordsRedriven: 8 });
    const head = await s3.send(new HeadObjectCommand({ Bucket: w.bucket, Key: `data/redrive/${key}` }));
    expect(head.ETag).toMatch(/-2"?$/); // a multipart upload of two parts
    expect((await read(w.bucket, `data/redrive/${key}`)).toString('utf8')).toBe(lines.map((l) => l + '\n').join(''));
  });

  test('a long key is redriven under its hash', () => {
    const long = `quarantine/data/${'k'.repeat(1100)}`;
    const key = redriveKeyFor(long);
    expect(key).toMatch(/^data\/redrive\/by-hash\/[0-9a-f]{64}\.ndjson$/);
    expect(redriveKeyFor(`${long}x`)).not.toBe(key);
    expect(redriveKeyFor('quarantine/data/a')).toBe('data/redrive/quarantine/data/a');
  });

  test('a prefix outside quarantine/ and firehose-errors/ is refused with what is allowed, before anything is read', async () => {
    const w = await world();
    await put(w.bucket, 'data/tenant=acme/x.gz', recordLine(1));
    for (const prefix of ['', 'data/', 'quarantine', 'firehose-errors', '/quarantine/', 'other/quarantine/']) {
      await expect(redriveParkedObjects(w.redriveDeps, { prefix })).rejects.toThrow(
        `prefix ${JSON.stringify(prefix)} is not a parked-records prefix: redrive reads only keys under quarantine/ (lines the batch publisher quarantined) `
        + 'or firehose-errors/ (records Firehose could not deliver)');
    }
    await expect(redriveParkedObjects(w.redriveDeps, { prefix: 'quarantine/', continuationToken: 'firehose-errors/a' })).rejects.toThrow(/does not belong to prefix/);
    expect(await keysUnder(w.bucket, 'data/redrive/')).toEqual([]);
  });
});

describe('redriveObjectDeadLetters: notifications parked in the object DLQ go back to the object queue', () => {
  test('end to end: a parked notification is moved unchanged and its object is then published', async () => {
    const w = await world();
    const dlq = await createMotoQueue(sqs, 'object-dlq');
    const queue = await createMotoQueue(sqs, 'object-queue');
    const key = 'data/tenant=acme/2026/11/22/10/stream-1-2026-11-22-10-10-00-ghi.gz';
    await put(w.bucket, key, gzipSync(recordLine(31) + '\n'));
    const head = await s3.send(new HeadObjectCommand({ Bucket: w.bucket, Key: key }));
    const parked = notification(w.bucket, key, head.VersionId!);
    const other = notification(w.bucket, 'data/tenant=acme/2026/11/22/10/other.gz', 'v0');
    await sqs.send(new SendMessageCommand({ QueueUrl: dlq.url, MessageBody: parked }));
    await sqs.send(new SendMessageCommand({
      QueueUrl: dlq.url, MessageBody: other, MessageAttributes: { origin: { DataType: 'String', StringValue: 'eventbridge-dlq' } },
    }));

    const report = await redriveObjectDeadLetters({ sqs: redriveClients.sqs, remainingMs: plentyOfTime },
      { deadLetterQueueUrl: dlq.url, queueUrl: queue.url });

    expect(report).toEqual({ received: 2, moved: 2, failed: 0, notDeleted: 0, failures: [], stoppedBecause: 'empty' });
    const { Messages } = await sqs.send(new ReceiveMessageCommand({ QueueUrl: queue.url, MaxNumberOfMessages: 10, MessageAttributeNames: ['All'], VisibilityTimeout: 600 }));
    expect(Messages?.map((m) => m.Body).sort()).toEqual([parked, other].sort());
    expect(Messages?.find((m) => m.Body === other)?.MessageAttributes).toEqual({ origin: expect.objectContaining({ DataType: 'String', StringValue: 'eventbridge-dlq' }) });
    expect(await drainMotoQueue(sqs, dlq.url)).toEqual([]);

    const moved = Messages!.find((m) => m.Body === parked)!.Body!;
    expect(await w.publishNotified(moved, SMALL_ENTRIES)).toMatchObject({ outcome: 'published', published: 1 });
    expect((await w.deliveredRecords()).map((r) => JSON.stringify(r))).toEqual([recordLine(31)]);
  });

  test('a send that fails in part deletes only the sent messages: the failed ones stay in the DLQ, none is lost or doubled', async () => {
    const dlq = await createMotoQueue(sqs, 'object-dlq');
    const queue = await createMotoQueue(sqs, 'object-queue');
    const bodies = Array.from({ length: 5 }, (_, i) => `notification-${i}-${uniqueName('n')}`);
    for (const body of bodies) await sqs.send(new SendMessageCommand({ QueueUrl: dlq.url, MessageBody: body }));
    const deps = { sqs: redriveClients.sqs, remainingMs: plentyOfTime };
    const request = { deadLetterQueueUrl: dlq.url, queueUrl: queue.url, visibilityTimeoutSeconds: 3, waitTimeSeconds: 1 };

    // Call 0 receives, call 1 is the SendMessageBatch: entries 0, 2 and 4 fail, the others are sent.
    const faulted = await injector.invoke(() => redriveObjectDeadLetters(deps, request), { at: 1, kind: 'partial-failure' });

    expect(faulted.ended).toBe('returned');
    const report = (faulted as { value: Awaited<ReturnType<typeof redriveObjectDeadLetters>> }).value;
    expect(report).toMatchObject({ received: 5, moved: 2, failed: 3, notDeleted: 0, stoppedBecause: 'empty' });
    expect(report.failures.map((f) => f.reason)).toEqual(Array(3).fill('send failed (InternalError: injected fault: entry failed); left in the dead-letter queue'));
    const deletes = faulted.calls.filter((c) => c.command === 'DeleteMessageBatchCommand');
    expect(deletes.map((c) => c.input.Entries.length)).toEqual([2]);

    await new Promise((resolve) => setTimeout(resolve, 3500)); // the failed ones become visible again
    const moved = await drainMotoQueue(sqs, queue.url);
    const stillParked = await drainMotoQueue(sqs, dlq.url);
    expect(moved).toHaveLength(2);
    expect(stillParked).toHaveLength(3);
    expect([...moved, ...stillParked].sort()).toEqual([...bodies].sort());
    expect(report.failures.length).toBe(stillParked.length);
  });

  test('stops at maxMessages; the next call moves the rest', async () => {
    const dlq = await createMotoQueue(sqs, 'object-dlq');
    const queue = await createMotoQueue(sqs, 'object-queue');
    const bodies = Array.from({ length: 12 }, (_, i) => `notification-${i}`);
    for (const body of bodies) await sqs.send(new SendMessageCommand({ QueueUrl: dlq.url, MessageBody: body }));
    const deps = { sqs: redriveClients.sqs, remainingMs: plentyOfTime };

    const first = await redriveObjectDeadLetters(deps, { deadLetterQueueUrl: dlq.url, queueUrl: queue.url, maxMessages: 10, waitTimeSeconds: 1 });
    const second = await redriveObjectDeadLetters(deps, { deadLetterQueueUrl: dlq.url, queueUrl: queue.url, maxMessages: 10, waitTimeSeconds: 1 });
    const late = await redriveObjectDeadLetters({ ...deps, remainingMs: () => 0 }, { deadLetterQueueUrl: dlq.url, queueUrl: queue.url });

    expect(first).toMatchObject({ received: 10, moved: 10, failed: 0, stoppedBecause: 'max-messages' });
    expect(second).toMatchObject({ received: 2, moved: 2, failed: 0, stoppedBecause: 'empty' });
    expect(late).toMatchObject({ received: 0, moved: 0, stoppedBecause: 'out-of-time' });
    expect((await drainMotoQueue(sqs, queue.url)).sort()).toEqual([...bodies].sort());
  });
});
