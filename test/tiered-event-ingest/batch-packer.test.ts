import fc from 'fast-check';
import { deterministicId } from '../../src/runtime/curated-envelope';
import { BatchPacker, PackedBatch, PackerOptions } from '../../src/tiered-event-ingest/batch-packer';

// The packer copies each record into buffers of its own and reuses a batch's buffer once
// the batch is released. These properties hold whatever the records, tenants, limits,
// flushes and releases: every record lands once, in order, byte for byte; each entry is
// exactly as large as it says and within the limits; the id is the documented one; and a
// reused buffer or an overwritten input never changes an entry.

const CURATED_FIXED_BYTES = 'cdk-event-fabric'.length + 'CuratedBatch'.length;

interface Step {
  readonly tenant: string | null;
  readonly body: string;
  readonly gap: number;
  readonly flush: boolean;
  readonly release: boolean;
}

const stepArbitrary = fc.record({
  tenant: fc.constantFrom<string | null>('acme', 'ünï', null, 't'.repeat(300), '42'),
  body: fc.oneof(
    { weight: 8, arbitrary: fc.string({ maxLength: 200 }) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 3000 }) },
    { weight: 1, arbitrary: fc.nat({ max: 5000 }).map((n) => 'x'.repeat(n)) },
  ),
  gap: fc.nat({ max: 3 }),
  flush: fc.boolean().map((b) => b && Math.random() < 0.1),
  release: fc.boolean(),
});

const optionsArbitrary = fc.record({
  maxEntryBytes: fc.constantFrom(1024, 4096, 65_536, 262_144),
  maxRecords: fc.constantFrom(1, 2, 7, 100, 1000),
  firstLine: fc.nat({ max: 10_000_000 }),
  versioned: fc.boolean(),
});

/** Feeds the steps to a packer; `reuse` releases batches as the publisher does and overwrites each input after it is added. */
function pack(options: PackerOptions, firstLine: number, steps: Step[], reuse: boolean) {
  const packer = new BatchPacker(options);
  const entries: { batch: PackedBatch; detail: string; records: { line: number; text: string }[] }[] = [];
  const added: { line: number; text: string; tenant: string | null }[] = [];
  let held: PackedBatch[] = [];
  const take = (batches: PackedBatch[]) => {
    for (const batch of batches) {
      entries.push({ batch, detail: batch.entry().Detail!, records: batch.records.map((r) => ({ line: r.line, text: r.text.toString() })) });
      held.push(batch);
    }
  };
  let line = firstLine;
  for (const step of steps) {
    const text = JSON.stringify({ body: step.body });
    // The record is a view of a larger chunk, as the line reader hands it out.
    const chunk = Buffer.from(`abc\n${text}\n`);
    const record = { line, text: chunk.subarray(4, chunk.length - 1), tenant: step.tenant };
    if (packer.sizeAlone(record) <= options.maxEntryBytes) {
      added.push({ line, text, tenant: step.tenant });
      take(packer.add(record));
    }
    if (reuse) chunk.fill(0x20);
    if (step.flush) take(packer.flush());
    if (reuse && step.release) {
      packer.release(held);
      held = [];
    }
    line += 1 + step.gap;
  }
  take(packer.flush());
  return { entries, added, packer, held };
}

const withoutTime = (detail: string) => detail.replace(/"time":"[^"]*"/, '"time":"T"');

test('every record lands once, in order, byte for byte, in entries of the size they state and within the limits', () => {
  fc.assert(fc.property(optionsArbitrary, fc.array(stepArbitrary, { maxLength: 400, size: 'max' }), (o, steps) => {
    const options: PackerOptions = {
      maxEntryBytes: o.maxEntryBytes,
      maxRecords: o.maxRecords,
      objectId: `bucket/key#${o.versioned ? 'v1' : 'unversioned'}`,
      origin: { bucket: 'bucket', key: 'data/é.ndjson', ...(o.versioned ? { versionId: 'v1' } : {}) },
    };
    const { entries, added } = pack(options, o.firstLine, steps, true);
    const carried: { text: string; tenant: string | null }[] = [];
    for (const { batch, detail } of entries) {
      const parsed = JSON.parse(detail);
      for (const record of parsed.records) carried.push({ text: JSON.stringify(record), tenant: parsed.tenant });
      expect(Buffer.byteLength(detail) + CURATED_FIXED_BYTES).toBe(batch.bytes);
      expect(batch.bytes).toBeLessThanOrEqual(options.maxEntryBytes);
      expect(batch.recordCount).toBeLessThanOrEqual(options.maxRecords);
      expect(parsed.recordCount).toBe(batch.recordCount);
      expect(parsed.records).toHaveLength(batch.recordCount);
      expect(parsed.origin).toMatchObject({ firstLine: batch.firstLine, lastLine: batch.lastLine });
      expect(parsed.id).toBe(batch.id);
      expect(batch.chunks).toBe(Math.ceil(batch.bytes / 65_536));
    }
    // Every record once, in order, with its tenant: the texts are JSON.stringify output, so
    // parsing and re-stringifying gives them back exactly.
    expect(carried.map((r) => [r.text, r.tenant])).toEqual(added.map((r) => [r.text, r.tenant]));
    expect(entries.map((e) => e.records).flat()).toEqual(added.map((r) => ({ line: r.line, text: r.text })));
    for (const { batch, records } of entries) {
      expect(batch.id).toBe(deterministicId(options.objectId, records.map((r) => r.line).join(',')));
      expect(batch.firstLine).toBe(records[0].line);
      expect(batch.lastLine).toBe(records[records.length - 1].line);
    }
  }), { numRuns: 60 });
});

test('released buffers and overwritten inputs never change an entry: the same steps give the same entries as a packer that reuses nothing', () => {
  fc.assert(fc.property(optionsArbitrary, fc.array(stepArbitrary, { maxLength: 400, size: 'max' }), (o, steps) => {
    const options: PackerOptions = { maxEntryBytes: o.maxEntryBytes, maxRecords: o.maxRecords, objectId: 'b/k#v', origin: { bucket: 'b', key: 'k' } };
    const reused = pack(options, o.firstLine, steps, true);
    const fresh = pack(options, o.firstLine, steps, false);
    expect(reused.entries.map((e) => [e.batch.id, e.batch.bytes, withoutTime(e.detail)]))
      .toEqual(fresh.entries.map((e) => [e.batch.id, e.batch.bytes, withoutTime(e.detail)]));
    // A batch not yet released still builds the entry it built when it closed.
    for (const batch of reused.held) {
      const first = reused.entries.find((e) => e.batch === batch)!;
      expect(batch.entry().Detail).toBe(first.detail);
    }
  }), { numRuns: 60 });
});

test('a released batch cannot be read: its buffer may already hold another batch', () => {
  const packer = new BatchPacker({ maxEntryBytes: 4096, maxRecords: 2, objectId: 'b/k#v', origin: { bucket: 'b', key: 'k' } });
  const closed = [1, 2].flatMap((line) => packer.add({ line, text: Buffer.from(`{"n":${line}}`), tenant: 'acme' }));
  expect(closed).toHaveLength(1);
  const [batch] = closed;
  packer.release([batch]);
  expect(() => batch.entry()).toThrow(`batch ${batch.id} was released`);
  expect(() => batch.records).toThrow(`batch ${batch.id} was released`);
  // The next batch takes the released buffer and is built correctly.
  const next = [3, 4].flatMap((line) => packer.add({ line, text: Buffer.from(`{"n":${line}}`), tenant: 'acme' }));
  expect(JSON.parse(next[0].entry().Detail!).records).toEqual([{ n: 3 }, { n: 4 }]);
});

test('a split rebuilds batches from copies: halves of a batch are the batches of its records', () => {
  const options: PackerOptions = { maxEntryBytes: 65_536, maxRecords: 1000, objectId: 'b/k#v', origin: { bucket: 'b', key: 'k' } };
  const packer = new BatchPacker(options);
  for (let line = 1; line <= 9; line++) packer.add({ line, text: Buffer.from(`{"n":${line}}`), tenant: null });
  const [whole] = packer.flush();
  const records = whole.records;
  const halves = [packer.buildBatch(records.slice(0, 5)), packer.buildBatch(records.slice(5))];
  packer.release([whole]);
  // The halves survive the release of the batch they came from, and another batch reusing its buffer.
  packer.add({ line: 10, text: Buffer.from('{"n":"overwrites"}'), tenant: null });
  packer.flush();
  expect(halves.map((h) => JSON.parse(h.entry().Detail!).records.map((r: { n: number }) => r.n))).toEqual([[1, 2, 3, 4, 5], [6, 7, 8, 9]]);
  expect(halves[0].id).toBe(deterministicId('b/k#v', '1,2,3,4,5'));
});

test('batch ids hashed from bytes are the ids of the same text', () => {
  fc.assert(fc.property(fc.string(), fc.array(fc.nat(), { minLength: 1, maxLength: 50 }), (objectId, lines) => {
    const text = lines.join(',');
    expect(deterministicId(objectId, Buffer.from(text))).toBe(deterministicId(objectId, text));
  }));
});
