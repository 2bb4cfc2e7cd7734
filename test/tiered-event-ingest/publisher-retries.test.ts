import { Readable } from 'stream';
import { PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { ChangeMessageVisibilityCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { SQSEvent } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { CONFIG, depsFor, objectBytes, quarantined, recordLine, REF, stubEventBridge } from './publisher-fixtures';
import { putEventsReliably } from '../../src/runtime/put-events';
import { InMemoryObjectLedger } from '../../src/tiered-event-ingest/object-ledger-core';
import { consumeObjectMessages } from '../../src/tiered-event-ingest/object-queue-consumer-core';
import { objectIdOf, publishObject, PublishRetryError } from '../../src/tiered-event-ingest/publisher-core';

const lines = (n: number, from = 1) => Array.from({ length: n }, (_, i) => recordLine(from + i));
const ids = (n: number) => Array.from({ length: n }, (_, i) => `evt-${i + 1}`);

/** An EventBridge that refuses (MalformedDetail) any entry carrying one of `bad`, and fails entries `transient(n)` says. */
function refusingEventBridge(bad: string[], transient: (entryDetail: string) => string | undefined = () => undefined) {
  const { client: inner, published } = stubEventBridge();
  const client = {
    send: async (command: any) => {
      const entries = command.input.Entries as { Detail: string }[];
      const verdict = entries.map((e) => {
        if (bad.some((id) => e.Detail.includes(`"id":"${id}"`))) return 'MalformedDetail';
        return transient(e.Detail);
      });
      const accepted = await inner.send(new PutEventsCommand({ Entries: command.input.Entries.filter((_: any, i: number) => !verdict[i]) }));
      let k = 0;
      const results = verdict.map((v) => (v ? { ErrorCode: v, ErrorMessage: `injected ${v}` } : accepted.Entries![k++]));
      return { FailedEntryCount: verdict.filter(Boolean).length, Entries: results };
    },
  };
  return { client: client as any, published };
}

describe('split batches and transient failures', () => {
  // Invariant: every line is published at least once or quarantined; a resumed run's counts balance
  // (inputRecords === published + alreadyPublished + quarantined); no record is published twice.
  test('a refused batch whose halves hit a transient error resumes without skipping, repeating or miscounting', async () => {
    // Records 3 and 6 are refused; record 7's entry is throttled in attempt 1 only.
    let throttle = true;
    const { client, published } = refusingEventBridge(['evt-3', 'evt-6'], (d) => (throttle && d.includes('"id":"evt-7"') && !d.includes('"id":"evt-6"') ? 'AccessDeniedException' : undefined));
    const deps = depsFor(objectBytes(lines(8)), client);
    const config = { ...CONFIG, maxRecords: 8 };
    const first = await publishObject({ ...deps, nowSeconds: () => 1 }, config, REF).catch((e) => e);
    expect(first).toBeInstanceOf(PublishRetryError);
    throttle = false;
    const report = await publishObject({ ...deps, owner: 'attempt-2', nowSeconds: () => 2 }, config, REF);
    expect(report.outcome).toBe('published');
    expect(report.inputRecords).toBe(report.published + report.alreadyPublished + report.quarantined);
    expect(report.quarantined).toBe(2);
    expect(published.recordIds).toHaveLength(6);
    expect(new Set(published.recordIds)).toEqual(new Set(ids(8).filter((id) => id !== 'evt-3' && id !== 'evt-6')));
    expect(quarantined(deps.quarantine).map((q) => q.line)).toEqual([3, 6]);
  });

  // Invariant: after a clean time stop in a later flight, the checkpoint holds no stale ids of the
  // earlier flight, and the resume publishes every remaining record exactly once.
  test('an out-of-time stop after a successful flight checkpoints that flight\'s end with no stale ids', async () => {
    // 20 lines alternating tenants: 20 batches, two flights of 10.
    const text = Array.from({ length: 20 }, (_, i) => recordLine(i + 1, { n: i }, i % 2 ? 'a' : 'b'));
    const { client, published } = stubEventBridge();
    const deps = depsFor(objectBytes(text), client);
    let checks = 0;
    const failure = await publishObject({ ...deps, nowSeconds: () => 1, remainingMs: () => (checks++ < 1 ? 60_000 : 1_000) }, CONFIG, REF)
      .catch((e) => e);
    expect(failure).toBeInstanceOf(PublishRetryError);
    expect(failure.outOfTime).toBe(true);
    const item = deps.ledger.items.get(objectIdOf(REF))!;
    expect(item.cursor).toEqual({ line: 11, publishedInFlight: [] });
    const report = await publishObject({ ...deps, owner: 'attempt-2', nowSeconds: () => 10 }, CONFIG, REF);
    expect(report.startLine).toBe(11);
    expect(published.recordIds).toEqual(ids(20));
  });

  // Invariant (lease release): after a transient failure the lease is released "so the queue's retry may
  // claim the object at once" (publisher-core.ts:238). A retry in the same second must not be told 'busy'.
  test('a retry in the same second as the failure claims the object instead of finding it busy', async () => {
    let fail = true;
    const { client, published } = stubEventBridge(() => (fail ? 'AccessDeniedException' : undefined));
    const deps = depsFor(objectBytes(lines(5)), client);
    await expect(publishObject({ ...deps, nowSeconds: () => 100 }, CONFIG, REF)).rejects.toThrow(PublishRetryError);
    fail = false;
    const report = await publishObject({ ...deps, owner: 'attempt-2', nowSeconds: () => 100 }, CONFIG, REF);
    expect(report.outcome).toBe('published');
    expect(published.recordIds).toEqual(ids(5));
  });

  // Invariant: the quarantine holds only records that were not published. After maxEntryBytes is raised
  // between a failed attempt and its retry, a record parked as "over the entry limit" in attempt 1 is
  // published by attempt 2; a quarantine segment still claiming it was not is redriven and published again.
  test('a record quarantined in a failed attempt and published on its retry is not left in a stale quarantine segment', async () => {
    const text = Array.from({ length: 60 }, (_, i) => recordLine(i + 1, { text: 'y'.repeat(i === 2 ? 6000 : 900) }));
    let failOnce = true;
    const { client, published } = stubEventBridge((n) => {
      if (n === 5 && failOnce) { failOnce = false; return 'AccessDeniedException'; }
      return undefined;
    });
    const deps = depsFor(objectBytes(text), client);
    await expect(publishObject({ ...deps, nowSeconds: () => 1 }, { ...CONFIG, maxEntryBytes: 4096 }, REF)).rejects.toThrow(PublishRetryError);
    // The failed flight writes no segment: its lines are examined again by the retry.
    expect(quarantined(deps.quarantine)).toEqual([]);
    const report = await publishObject({ ...deps, owner: 'attempt-2', nowSeconds: () => 2 }, { ...CONFIG, maxEntryBytes: 16_384 }, REF);
    expect(report.outcome).toBe('published');
    expect(published.recordIds).toContain('evt-3');
    // Published in the end, so no quarantine segment may list it (the redrive would publish it again).
    expect(quarantined(deps.quarantine).map((q) => q.line)).toEqual([]);
  });
});

describe('putEventsReliably with shouldStop', () => {
  // Invariant: every entry gets an outcome; a stop on the first attempt makes exactly one call and
  // reports throttled entries with their error (never ok, never dropped).
  test('shouldStop true on the first attempt: one call, throttled entries keep their error, the rest are ok', async () => {
    const { client, published } = stubEventBridge((n) => (n % 2 ? 'ThrottlingException' : undefined));
    const entries = Array.from({ length: 6 }, (_, i) => ({ Source: 's', DetailType: 'd', Detail: JSON.stringify({ records: [{ id: `r${i}` }] }) }));
    const sleep = jest.fn(async () => undefined);
    const outcomes = await putEventsReliably(client, entries, { maxAttempts: Number.MAX_SAFE_INTEGER, shouldStop: () => true, sleep });
    expect(published.calls).toHaveLength(1);
    expect(sleep).not.toHaveBeenCalled();
    expect(outcomes).toHaveLength(6);
    expect(outcomes.map((o) => o.ok)).toEqual([true, false, true, false, true, false]);
    expect(outcomes.filter((o) => !o.ok).every((o) => o.errorCode === 'ThrottlingException')).toBe(true);
  });

  // Invariant: a whole call failing with a retryable name and stopped by shouldStop stays marked as a
  // whole-call failure, so a content-like name is never taken for the entry's content.
  test('a retryable whole-call failure stopped by shouldStop never counts as a refused entry', async () => {
    const client = { send: async () => { throw Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }); } } as any;
    const outcomes = await putEventsReliably(client, [{ Source: 's', DetailType: 'd', Detail: '{}' }], { shouldStop: () => true, sleep: async () => undefined });
    expect(outcomes).toEqual([expect.objectContaining({ ok: false, errorCode: 'ThrottlingException' })]);
  });
});

describe('object queue consumer', () => {
  const s3 = mockClient(S3Client);
  const sqs = mockClient(SQSClient);
  const ENV = {
    BUCKET_NAME: 'ingest-bucket',
    DATA_PREFIX: 'data/',
    QUARANTINE_PREFIX: 'quarantine/',
    CURATED_BUS_NAME: 'curated',
    MAX_ENTRY_BYTES: '1048576',
    MAX_RECORDS_PER_EVENT: '1000',
    // What the construct sets for its default 5-minute timeout: lease = timeout + 60 s.
    LEASE_SECONDS: '360',
    RESERVE_MS: '15000',
    OBJECT_QUEUE_URL: 'https://sqs.us-east-1.amazonaws.com/123456789012/objects',
  };
  const body = JSON.stringify({
    'source': 'aws.s3',
    'detail-type': 'Object Created',
    'detail': { bucket: { name: 'ingest-bucket' }, object: { 'key': 'data/tenant=acme/x.gz', 'version-id': 'v1', 'sequencer': '0A' } },
  });
  const event = (receives: number): SQSEvent => ({
    Records: [{ messageId: `m-${receives}`, receiptHandle: `rh-${receives}`, body, attributes: { ApproximateReceiveCount: String(receives) } }],
  } as unknown as SQSEvent);
  const log = { info: () => undefined, warn: () => undefined, error: () => undefined } as any;

  beforeEach(() => {
    s3.reset();
    sqs.reset();
    sqs.on(ChangeMessageVisibilityCommand).resolves({});
    sqs.on(SendMessageCommand).resolves({ MessageId: 'continuation' });
    s3.on(PutObjectCommand).resolves({});
  });

  // Invariant: a message that made no progress is retried before the queue parks it. With the default
  // maxReceiveCount (5), a single transient S3 read error after the claim must not send the object to the
  // DLQ without a single real retry: the lease the failed run still holds (360 s) outlives the backoff
  // of 30 s, 60 s, 120 s, 240 s (x0.5..1.5 jitter), so every redelivery is told 'busy'.
  test('one transient S3 error after the claim does not exhaust maxReceiveCount on busy redeliveries', async () => {
    let reads = 0;
    s3.on(GetObjectCommand).callsFake(() => {
      if (reads++ === 0) throw Object.assign(new Error('We encountered an internal error. Please try again.'), { name: 'InternalError' });
      return { Body: Readable.from([objectBytes(lines(3))]) as any };
    });
    const { client, published } = stubEventBridge();
    const ledger = new InMemoryObjectLedger();
    let now = 1_000;
    let done = false;
    const maxReceiveCount = 5;
    for (let receive = 1; receive <= maxReceiveCount && !done; receive++) {
      const result = await consumeObjectMessages({
        s3: s3 as unknown as S3Client,
        sqs: sqs as unknown as SQSClient,
        eventBridge: client,
        ledger,
        requestId: `req-${receive}`,
        remainingMs: () => 300_000,
        log,
        random: () => 0,
        nowSeconds: () => now,
        sleep: async () => undefined,
      }, ENV, event(receive));
      if (result.batchItemFailures.length === 0) {
        done = true;
      } else {
        const change = sqs.commandCalls(ChangeMessageVisibilityCommand).at(-1)!.args[0].input;
        now += change.VisibilityTimeout!;
      }
    }
    // Otherwise the 5th failure moves the message to the object DLQ after the object was tried once.
    expect(done).toBe(true);
    expect(published.recordIds).toEqual(ids(3));
  });

  // Invariant: no continuation loop without progress: a run whose only "work" is entries a previous
  // attempt already put, and whose remaining entry stays throttled, reports no progress and keeps its message.
  test('a run that only skips already-put entries and is throttled again sends no continuation', async () => {
    // 10 lines alternating tenants: one flight of 10 entries; the last entry is throttled in both runs.
    const text = Array.from({ length: 10 }, (_, i) => recordLine(i + 1, { n: i }, i % 2 ? 'a' : 'b'));
    s3.on(GetObjectCommand).callsFake(() => ({ Body: Readable.from([objectBytes(text)]) as any }));
    const { client, published } = refusingEventBridge([], (d) => (d.includes('"id":"evt-10"') ? 'ThrottlingException' : undefined));
    const ledger = new InMemoryObjectLedger();
    let now = 1_000;
    const run = async (receive: number, remaining: () => number) => consumeObjectMessages({
      s3: s3 as unknown as S3Client,
      sqs: sqs as unknown as SQSClient,
      eventBridge: client,
      ledger,
      requestId: `req-${receive}`,
      remainingMs: remaining,
      log,
      random: () => 0.5,
      nowSeconds: () => now,
      sleep: async () => undefined,
    }, ENV, event(receive));
    // Run 1: 9 entries put, then time runs low while the 10th is throttled: progress, a continuation.
    let calls = 0;
    const first = await run(1, () => (calls++ < 3 ? 60_000 : 1_000));
    expect(first.batchItemFailures).toEqual([]);
    expect(sqs.commandCalls(SendMessageCommand)).toHaveLength(1);
    expect(published.recordIds).toHaveLength(9);
    now += 120;
    calls = 0;
    const second = await run(1, () => (calls++ < 3 ? 60_000 : 1_000));
    // No progress: no second continuation; the message is kept and comes back after a backoff.
    expect(sqs.commandCalls(SendMessageCommand)).toHaveLength(1);
    expect(second.batchItemFailures).toEqual([{ itemIdentifier: 'm-1' }]);
    expect(sqs.commandCalls(ChangeMessageVisibilityCommand)).toHaveLength(1);
    expect(published.recordIds).toHaveLength(9);
    expect(ledgerItem(ledger).cursor.publishedInFlight).toHaveLength(9);
  });
});

/** The ledger item of the object the consumer tests publish. */
function ledgerItem(ledger: InMemoryObjectLedger) {
  return ledger.items.get(objectIdOf({ bucket: 'ingest-bucket', key: 'data/tenant=acme/x.gz', versionId: 'v1' }))!;
}

describe('ids in the slow lane', () => {
  // Invariant: every line is published or quarantined with a reason: a quoted numeric tenant and an empty
  // one are published in batches of their own tenant; a numeric tenant written straight to the stream
  // (which the default partition query accepts) is quarantined with its reason, never dropped.
  test('"6500", "" and null tenants publish in separate batches; a numeric tenant is quarantined with a reason', async () => {
    const text = [recordLine(1, {}, '6500'), recordLine(2, {}, ''), recordLine(3, {}, null),
      JSON.stringify({ ...JSON.parse(recordLine(4)), tenant: 6500 }), recordLine(5, {}, '6500')];
    const { client, published } = stubEventBridge();
    const deps = depsFor(objectBytes(text), client);
    const report = await publishObject(deps, CONFIG, REF);
    expect(report.inputRecords).toBe(report.published + report.alreadyPublished + report.quarantined);
    expect(published.entries.map((e) => [e.detail.tenant, e.detail.records.map((r: any) => r.id)])).toEqual([
      ['6500', ['evt-1']], ['', ['evt-2']], [null, ['evt-3']], ['6500', ['evt-5']],
    ]);
    const parked = quarantined(deps.quarantine);
    expect(parked.map((q) => q.line)).toEqual([4]);
    expect(parked[0].reason).toMatch(/not a curated record/);
  });
});
