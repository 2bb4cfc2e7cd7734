import { gzipSync } from 'zlib';
import { PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { chunked, CONFIG, depsFor, objectBytes, quarantined, recordLine, REF, seededRandom, stubEventBridge } from './publisher-fixtures';
import { checkEnvelope } from '../../src/runtime/curated-envelope';
import { BatchPacker, BILLING_CHUNK_BYTES } from '../../src/tiered-event-ingest/batch-packer';
import { InMemoryObjectLedger } from '../../src/tiered-event-ingest/object-ledger-core';
import { MAX_BUFFERED_LINE_BYTES, objectIdOf, ObjectReport, publishObject, PublishRetryError, quarantineKey } from '../../src/tiered-event-ingest/publisher-core';

const lines = (n: number, from = 1) => Array.from({ length: n }, (_, i) => recordLine(from + i));
const ids = (n: number) => Array.from({ length: n }, (_, i) => `evt-${i + 1}`);

/** Every input record is published or quarantined, and the counts agree with what the stubs saw. */
function expectAccounted(report: ObjectReport, publishedIds: string[], quarantine: Map<string, string>) {
  expect(report.inputRecords).toBe(report.published + report.quarantined);
  expect(publishedIds.length).toBe(report.published);
  expect(quarantined(quarantine).length).toBe(report.quarantined);
}

describe('line handling', () => {
  test('an empty object publishes nothing and is marked done', async () => {
    const { client, published } = stubEventBridge();
    const deps = depsFor(Buffer.alloc(0), client);
    const report = await publishObject(deps, CONFIG, REF);
    expect(report).toMatchObject({ outcome: 'published', inputRecords: 0, published: 0, quarantined: 0, events: 0 });
    expect(published.calls).toHaveLength(0);
    expect(deps.ledger.items.get(objectIdOf(REF))?.status).toBe('DONE');
  });

  test.each([
    ['with a trailing newline', { trailing: true }],
    ['without a trailing newline', { trailing: false }],
    ['with CRLF line endings', { eol: '\r\n' }],
    ['with CRLF and no final line ending', { eol: '\r\n', trailing: false }],
    ['gzipped', { gzip: true }],
    ['with blank lines between records', { eol: '\n\n' }],
  ])('every record is published once %s', async (_name, options) => {
    const { client, published } = stubEventBridge();
    const deps = depsFor(objectBytes(lines(250), options), client);
    const report = await publishObject(deps, CONFIG, REF);
    expect(published.recordIds).toEqual(ids(250));
    expect(report).toMatchObject({ inputRecords: 250, published: 250, quarantined: 0 });
    for (const entry of published.entries) {
      expect(JSON.stringify(entry.detail)).not.toContain('\\r');
      expect(checkEnvelope(entry.detail)).toEqual({ valid: true, errors: [] });
    }
    expectAccounted(report, published.recordIds, deps.quarantine);
  });

  test('invalid JSON, non-record JSON and invalid UTF-8 lines are quarantined with their reason; the rest publish', async () => {
    const good = lines(6);
    const bytes = Buffer.concat([
      Buffer.from([good[0], '{"broken": ', good[1], '[1,2,3]', good[2], '{"kind":"record"}', good[3]].join('\n') + '\n'),
      Buffer.from([0xc3, 0x28, 0x0a]), // an invalid two-byte sequence, then a newline
      Buffer.from(`${good[4]}\n${good[5]}\n`),
    ]);
    const { client, published } = stubEventBridge();
    const deps = depsFor(bytes, client);
    const report = await publishObject(deps, CONFIG, REF);
    expect(published.recordIds).toEqual(ids(6));
    const parked = quarantined(deps.quarantine);
    expect(parked.map((q) => [q.line, q.reason.split(':')[0]])).toEqual([
      [2, 'invalid JSON'],
      [4, 'not a curated record'],
      [6, 'not a curated record'],
      [8, 'line is not valid UTF-8'],
    ]);
    expect(parked[0].record).toBe('{"broken": ');
    expect(parked[2].reason).toContain("must have required property 'schemaVersion'");
    expect(report.quarantineReasons).toEqual({ 'invalid JSON': 1, 'not a curated record': 2, 'not UTF-8': 1 });
    expectAccounted(report, published.recordIds, deps.quarantine);
  });

  test('bytes that are not UTF-8 are kept exactly, as base64, in the quarantine', async () => {
    const bad = Buffer.from([0x7b, 0xc3, 0x28, 0xff, 0x7d]);
    const { client } = stubEventBridge();
    const deps = depsFor(Buffer.concat([Buffer.from(`${recordLine(1)}\n`), bad, Buffer.from('\n')]), client);
    await publishObject(deps, CONFIG, REF);
    const [parked] = quarantined(deps.quarantine) as any[];
    expect(parked).toMatchObject({ line: 2, reason: 'line is not valid UTF-8', record: null });
    expect(Buffer.from(parked.recordBase64, 'base64')).toEqual(bad);
  });

  test('one byte per chunk: the gzip magic number and a byte order mark are still recognized', async () => {
    for (const gzip of [false, true]) {
      const bytes = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), objectBytes(lines(5))]);
      const input = gzip ? gzipSync(bytes) : bytes;
      const { client, published } = stubEventBridge();
      const deps = { ...depsFor(input, client), openObject: async () => chunked(input, 1) };
      const report = await publishObject(deps, CONFIG, REF);
      expect(published.recordIds).toEqual(ids(5));
      expect(report.quarantined).toBe(0);
    }
  });

  test('a quarantine key that would pass S3\'s 1024-byte limit uses the hash of the object key', () => {
    const longKey = `data/tenant=${'t'.repeat(1100)}/x.gz`;
    const key = quarantineKey('quarantine/', { ...REF, key: longKey }, 1, 9);
    expect(key).toMatch(/^quarantine\/by-hash\/[0-9a-f]{64}\/v1\/lines-1-9\.ndjson$/);
    expect(quarantineKey('quarantine/', REF, 1, 9)).toBe(`quarantine/${REF.key}/v1/lines-1-9.ndjson`);
  });

  test('multi-byte UTF-8 is sized in bytes: no entry exceeds the limit and text survives intact', async () => {
    const config = { ...CONFIG, maxEntryBytes: 8192 };
    const payloads = Array.from({ length: 120 }, (_, i) => ({ text: 'é日本語🙂'.repeat(1 + (i % 30)), i }));
    const input = payloads.map((p, i) => recordLine(i + 1, p));
    const { client, published } = stubEventBridge();
    const deps = depsFor(objectBytes(input), client);
    const report = await publishObject(deps, config, REF);
    expect(report.published).toBe(120);
    expect(published.entries.every((e) => e.bytes <= 8192)).toBe(true);
    const texts = published.entries.flatMap((e) => e.detail.records.map((r: any) => r.payload.text));
    expect(texts).toEqual(payloads.map((p) => p.text));
  });

  test('a line longer than the read buffer is quarantined by reference, without holding it in memory', async () => {
    const huge = 'x'.repeat(MAX_BUFFERED_LINE_BYTES + 10);
    const { client, published } = stubEventBridge();
    const deps = depsFor(objectBytes([recordLine(1), huge, recordLine(3)]), client);
    const report = await publishObject(deps, CONFIG, REF);
    expect(published.recordIds).toEqual(['evt-1', 'evt-3']);
    const [parked] = quarantined(deps.quarantine);
    expect(parked).toMatchObject({ line: 2, bytes: MAX_BUFFERED_LINE_BYTES + 10, record: null });
    expect(parked.reason).toContain('kept by reference');
    expectAccounted(report, published.recordIds, deps.quarantine);
  });
});

describe('entry size limit', () => {
  const limit = 4096;
  const config = { ...CONFIG, maxEntryBytes: limit };
  /** A record line whose batch entry, alone, is exactly `limit + extra` bytes. */
  function lineOfEntrySize(n: number, extra: number): string {
    const packer = new BatchPacker({ maxEntryBytes: limit, maxRecords: 1000, objectId: objectIdOf(REF), origin: REF });
    const base = recordLine(n, { pad: '' });
    const baseSize = packer.sizeAlone({ line: n, text: Buffer.from(base), tenant: 'acme' });
    return recordLine(n, { pad: 'p'.repeat(limit - baseSize + extra) });
  }

  test('a record exactly at the limit is published in an entry of exactly the limit', async () => {
    const { client, published } = stubEventBridge();
    const deps = depsFor(objectBytes([lineOfEntrySize(1, 0)]), client);
    const report = await publishObject(deps, config, REF);
    expect(report.published).toBe(1);
    expect(published.entries[0].bytes).toBe(limit);
  });

  test('a record one byte over the limit is quarantined with the sizes in the reason', async () => {
    const { client, published } = stubEventBridge();
    const deps = depsFor(objectBytes([recordLine(1), lineOfEntrySize(2, 1), recordLine(3)]), client);
    const report = await publishObject(deps, config, REF);
    expect(published.recordIds).toEqual(['evt-1', 'evt-3']);
    const [parked] = quarantined(deps.quarantine);
    expect(parked.line).toBe(2);
    expect(parked.reason).toMatch(new RegExp(`makes a batch entry of ${limit + 1} bytes, over the limit of ${limit} bytes`));
    expect(JSON.parse(parked.record!).id).toBe('evt-2');
    expectAccounted(report, published.recordIds, deps.quarantine);
  });

  test('entries never exceed the byte limit or the record cap, and calls carry at most 10 entries', async () => {
    const { client, published } = stubEventBridge();
    const deps = depsFor(objectBytes(lines(3000)), client);
    await publishObject(deps, { ...config, maxRecords: 7 }, REF);
    expect(published.recordIds).toEqual(ids(3000));
    expect(Math.max(...published.entries.map((e) => e.bytes))).toBeLessThanOrEqual(limit);
    expect(Math.max(...published.entries.map((e) => e.detail.recordCount))).toBeLessThanOrEqual(7);
    expect(Math.max(...published.calls.map((c) => c.Entries!.length))).toBeLessThanOrEqual(10);
    for (const call of published.calls) {
      expect(call.Entries!.every((e) => e.EventBusName === 'curated' && e.Source === 'cdk-event-fabric' && e.DetailType === 'CuratedBatch')).toBe(true);
    }
  });
});

describe('packing', () => {
  test('1 KB records fill 1 MiB entries: billed chunks within 1.05 of the minimum', async () => {
    const input = Array.from({ length: 5000 }, (_, i) => recordLine(i + 1, { body: 'b'.repeat(800) }));
    const { client, published } = stubEventBridge();
    const report = await publishObject(depsFor(objectBytes(input), client), CONFIG, REF);
    const minimum = Math.ceil(report.publishedBytes / BILLING_CHUNK_BYTES);
    expect(report.billedChunks / minimum).toBeLessThanOrEqual(1.05);
    expect(published.entries.every((e) => e.bytes <= CONFIG.maxEntryBytes)).toBe(true);
  });

  test('200 B records hitting the 1000-record cap still fill chunks (the mostly empty last chunk moves on)', async () => {
    const input = Array.from({ length: 20_000 }, (_, i) => recordLine(i + 1, { b: 'x'.repeat(10) }));
    const { client, published } = stubEventBridge();
    const report = await publishObject(depsFor(objectBytes(input), client), CONFIG, REF);
    const minimum = Math.ceil(report.publishedBytes / BILLING_CHUNK_BYTES);
    expect(report.billedChunks / minimum).toBeLessThanOrEqual(1.05);
    expect(Math.max(...published.entries.map((e) => e.detail.recordCount))).toBeLessThanOrEqual(1000);
    expect(published.recordIds).toHaveLength(20_000);
  });

  test('a batch holds one tenant; the batch id is the same on every run', async () => {
    const input = [...lines(3).map((_, i) => recordLine(i + 1, {}, 'acme')), ...[4, 5].map((n) => recordLine(n, {}, 'globex')), recordLine(6, {}, null)];
    const first = stubEventBridge();
    await publishObject(depsFor(objectBytes(input), first.client), CONFIG, REF);
    expect(first.published.entries.map((e) => [e.detail.tenant, e.detail.recordCount])).toEqual([['acme', 3], ['globex', 2], [null, 1]]);
    expect(first.published.entries[1].detail.origin).toEqual({ bucket: REF.bucket, key: REF.key, versionId: 'v1', firstLine: 4, lastLine: 5 });
    const second = stubEventBridge();
    await publishObject(depsFor(objectBytes(input), second.client), CONFIG, REF);
    expect(second.published.entries.map((e) => e.detail.id)).toEqual(first.published.entries.map((e) => e.detail.id));
  });
});

describe('failures from PutEvents', () => {
  /** Runs the object as SQS would: again after each retryable failure, with the lease expired. */
  async function runUntilDone(deps: ReturnType<typeof depsFor>, config = CONFIG, maxAttempts = 100) {
    let clock = 1_000_000;
    const reports: ObjectReport[] = [];
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      try {
        reports.push(await publishObject({ ...deps, owner: `attempt-${attempt}`, nowSeconds: () => clock }, config, REF));
        return { reports, attempts: attempt };
      } catch (err) {
        if (!(err instanceof PublishRetryError)) throw err;
        clock += config.leaseSeconds + 1;
      }
    }
    return { reports, attempts: maxAttempts };
  }

  test('30% random throttling: failed entries alone are retried; across retries every record is published exactly once', async () => {
    const random = seededRandom(42);
    const { client, published } = stubEventBridge(() => (random() < 0.3 ? 'ThrottlingException' : undefined));
    const deps = depsFor(objectBytes(lines(3000)), client);
    const { reports, attempts } = await runUntilDone(deps, { ...CONFIG, maxEntryBytes: 16_384 });
    expect(reports.at(-1)?.outcome).toBe('published');
    expect(published.recordIds).toHaveLength(3000);
    expect(new Set(published.recordIds).size).toBe(3000);
    expect([...published.recordIds].sort()).toEqual(ids(3000).sort());
    expect(quarantined(deps.quarantine)).toHaveLength(0);
    // Most attempts end in one invocation; some entries fail 4 times in a row and need a retry of the object.
    expect(attempts).toBeGreaterThanOrEqual(1);
    const sentEntries = published.calls.reduce((n, c) => n + c.Entries!.length, 0);
    expect(sentEntries).toBeGreaterThan(published.entries.length); // the failed ones were sent again
  });

  test('InternalFailure is retried the same way', async () => {
    const random = seededRandom(7);
    const { client, published } = stubEventBridge(() => (random() < 0.3 ? 'InternalFailure' : undefined));
    const deps = depsFor(objectBytes(lines(500)), client);
    await runUntilDone(deps, { ...CONFIG, maxEntryBytes: 8192 });
    expect([...published.recordIds].sort()).toEqual(ids(500).sort());
  });

  test('total failure: nothing is published, the object stays at line 1 and goes to the DLQ after the queue\'s retries', async () => {
    const { client, published } = stubEventBridge(() => 'AccessDeniedException');
    const deps = depsFor(objectBytes(lines(100)), client);
    const { reports, attempts } = await runUntilDone(deps, CONFIG, 5); // maxReceiveCount 5
    expect(reports).toHaveLength(0);
    expect(attempts).toBe(5);
    expect(published.recordIds).toHaveLength(0);
    const item = deps.ledger.items.get(objectIdOf(REF))!;
    expect(item.status).toBe('IN_PROGRESS');
    expect(item.cursor).toEqual({ line: 1, publishedInFlight: [] });
    // The 100 records are all in the parked object (from the ledger cursor on): 0 published + 0 quarantined + 100 parked.
  });

  test('an entry failing inside a flight: the retry resumes at the flight, skipping the entries already put', async () => {
    let failNext = true;
    const { client, published } = stubEventBridge((n) => (n === 3 && failNext ? 'AccessDeniedException' : undefined));
    const deps = depsFor(objectBytes(lines(2000)), client);
    const config = { ...CONFIG, maxEntryBytes: 8192 };
    await expect(publishObject({ ...deps, nowSeconds: () => 1 }, config, REF)).rejects.toThrow(
      /stopped at line 1: 1 of \d+ batch entries failed \(AccessDeniedException: injected AccessDeniedException\); a retry resumes there/);
    const cursor = deps.ledger.items.get(objectIdOf(REF))!.cursor;
    expect(cursor.line).toBe(1);
    expect(cursor.publishedInFlight.length).toBeGreaterThanOrEqual(9);
    expect(cursor.publishedInFlight.every((r) => /^[0-9a-f-]{36}$/.test(r))).toBe(true);
    failNext = false;
    // The lease was released with the failure, so the queue's retry claims it at once.
    const report = await publishObject({ ...deps, owner: 'attempt-2', nowSeconds: () => 2 }, config, REF);
    expect(report.startLine).toBe(1);
    expect(report.inputRecords).toBe(report.published + report.alreadyPublished + report.quarantined);
    // Exactly once, though the retried entry lands after later ones (EventBridge does not keep order anyway).
    expect(published.recordIds).toHaveLength(2000);
    expect([...published.recordIds].sort()).toEqual(ids(2000).sort());
  });

  test('a whole-call error in a later flight: the retry resumes at that flight\'s first line and republishes nothing', async () => {
    let calls = 0;
    const { client: inner, published } = stubEventBridge();
    const client = { send: async (command: any) => { if (++calls === 3) throw Object.assign(new Error('socket hang up'), { name: 'TimeoutError' }); return inner.send(command); } };
    const deps = depsFor(objectBytes(lines(2000)), client as any);
    const config = { ...CONFIG, maxEntryBytes: 8192 };
    const failure = await publishObject({ ...deps, nowSeconds: () => 1 }, config, REF).catch((err) => err);
    expect(failure).toBeInstanceOf(PublishRetryError);
    expect(failure.message).toMatch(/stopped at line \d+: .*TimeoutError: socket hang up.*a retry resumes there/);
    const resumeAt = deps.ledger.items.get(objectIdOf(REF))!.cursor.line;
    expect(resumeAt).toBeGreaterThan(1);
    expect(failure.partial.published).toBe(published.recordIds.length); // reported, so metrics count them
    const report = await publishObject({ ...deps, owner: 'attempt-2', nowSeconds: () => 2 }, config, REF);
    expect(report.startLine).toBe(resumeAt);
    expect(published.recordIds).toEqual(ids(2000));
  });

  test('a changed packing setting between a failure and its retry repeats records but never skips one', async () => {
    let failNext = true;
    const { client, published } = stubEventBridge((n) => (n === 3 && failNext ? 'AccessDeniedException' : undefined));
    const deps = depsFor(objectBytes(lines(400)), client);
    await expect(publishObject({ ...deps, nowSeconds: () => 1 }, { ...CONFIG, maxEntryBytes: 8192 }, REF)).rejects.toThrow(PublishRetryError);
    failNext = false;
    await publishObject({ ...deps, owner: 'attempt-2', nowSeconds: () => 2 }, { ...CONFIG, maxEntryBytes: 16_384 }, REF);
    expect(new Set(published.recordIds)).toEqual(new Set(ids(400)));
  });

  test('a line too large in one attempt and fitting in its retry (maxEntryBytes raised) is published, not skipped', async () => {
    // Line 3 is quarantined as too large in attempt 1; the tenant change at line 6 closes the
    // batch of lines 1-5 (without 3), which is put; the other tenant's entry then fails.
    const big = recordLine(3, { text: 'x'.repeat(6000) });
    const text = [recordLine(1), recordLine(2), big, recordLine(4), recordLine(5), recordLine(6, { n: 6 }, 'other')];
    let failOther = true;
    const { client, published } = stubEventBridge();
    const failing = {
      send: async (command: any) => {
        const entries = command.input.Entries as { Detail: string }[];
        if (failOther && entries.some((e) => JSON.parse(e.Detail).tenant === 'other')) {
          const accepted = await client.send(new PutEventsCommand({ Entries: command.input.Entries.filter((e: any) => JSON.parse(e.Detail).tenant !== 'other') }));
          const results: any[] = [];
          let k = 0;
          for (const e of entries) results.push(JSON.parse(e.Detail).tenant === 'other' ? { ErrorCode: 'AccessDeniedException' } : accepted.Entries![k++]);
          return { FailedEntryCount: 1, Entries: results };
        }
        return client.send(command);
      },
    };
    const deps = depsFor(objectBytes(text), failing as any);
    await expect(publishObject({ ...deps, nowSeconds: () => 1 }, { ...CONFIG, maxEntryBytes: 4096 }, REF)).rejects.toThrow(PublishRetryError);
    expect(published.recordIds).toEqual(['evt-1', 'evt-2', 'evt-4', 'evt-5']);
    const firstBatchId = published.entries[0].detail.id;
    failOther = false;
    const report = await publishObject({ ...deps, owner: 'attempt-2', nowSeconds: () => 2 }, { ...CONFIG, maxEntryBytes: 16_384 }, REF);
    expect(report.outcome).toBe('published');
    const parked = quarantined(deps.quarantine).map((q) => JSON.parse(q.record!).id);
    // Every line is published or quarantined: line 3 made it this time.
    expect(new Set([...published.recordIds, ...parked])).toEqual(new Set(ids(6)));
    expect(published.recordIds).toContain('evt-3');
    // The batch that now carries line 3 has a new id, so consumers do not discard it as a repeat.
    const withThree = published.entries.find((e) => e.detail.records.some((r: any) => r.id === 'evt-3'))!;
    expect(withThree.detail.id).not.toBe(firstBatchId);
  });

  test('a whole call refused (even with a content-like code) is retried with the object, never quarantined', async () => {
    const client = { send: async () => { throw Object.assign(new Error('request too large'), { name: 'ValidationException' }); } };
    const deps = depsFor(objectBytes(lines(30)), client as any);
    await expect(publishObject(deps, CONFIG, REF)).rejects.toThrow(/ValidationException: request too large/);
    expect(deps.quarantine.size).toBe(0);
  });

  test('an entry rejected for its content is split until only the bad record is quarantined, with the error', async () => {
    const { client: inner, published } = stubEventBridge();
    // EventBridge refuses any entry that carries record 777 (of 1000 in one batch).
    const client = {
      send: async (command: any) => {
        const entries = command.input.Entries as { Detail: string }[];
        const bad = entries.map((e) => e.Detail.includes('"id":"evt-777"'));
        const accepted = await inner.send(new PutEventsCommand({ Entries: command.input.Entries.filter((_: any, i: number) => !bad[i]) }));
        let k = 0;
        const results = bad.map((b) => (b ? { ErrorCode: 'MalformedDetail', ErrorMessage: 'Detail is malformed.' } : accepted.Entries![k++]));
        return { FailedEntryCount: bad.filter(Boolean).length, Entries: results };
      },
    };
    const deps = depsFor(objectBytes(lines(1000)), client as any);
    const report = await publishObject(deps, CONFIG, REF);
    const parked = quarantined(deps.quarantine);
    expect(parked.map((q) => [q.line, q.reason])).toEqual([[777, 'PutEvents rejected the record: MalformedDetail: Detail is malformed.']]);
    expect(published.recordIds).toHaveLength(999);
    expect(new Set(published.recordIds)).toEqual(new Set(ids(1000).filter((id) => id !== 'evt-777')));
    expect(report.quarantineReasons).toEqual({ 'rejected by PutEvents': 1 });
    expectAccounted(report, published.recordIds, deps.quarantine);
  });
});

describe('duplicate notifications', () => {
  test('the same object version twice publishes its records once', async () => {
    const { client, published } = stubEventBridge();
    const ledger = new InMemoryObjectLedger();
    const bytes = objectBytes(lines(50));
    const first = await publishObject(depsFor(bytes, client, ledger, 'first'), CONFIG, REF);
    const second = await publishObject(depsFor(bytes, client, ledger, 'second'), CONFIG, REF);
    expect(first.outcome).toBe('published');
    expect(second).toMatchObject({ outcome: 'duplicate', published: 0 });
    expect(published.recordIds).toEqual(ids(50));
  });

  test('a duplicate arriving while the first is still running is told the object is busy', async () => {
    const ledger = new InMemoryObjectLedger();
    await ledger.claim(objectIdOf(REF), 'first', 100, 360);
    const { client, published } = stubEventBridge();
    const report = await publishObject({ ...depsFor(objectBytes(lines(5)), client, ledger, 'second'), nowSeconds: () => 200 }, CONFIG, REF);
    expect(report.outcome).toBe('busy');
    expect(published.calls).toHaveLength(0);
  });

  test('a new version of the same key is a new object', async () => {
    const { client, published } = stubEventBridge();
    const ledger = new InMemoryObjectLedger();
    const bytes = objectBytes(lines(3));
    await publishObject(depsFor(bytes, client, ledger), CONFIG, REF);
    await publishObject(depsFor(bytes, client, ledger, 'other'), CONFIG, { ...REF, versionId: 'v2' });
    expect(published.recordIds).toHaveLength(6);
  });
});
