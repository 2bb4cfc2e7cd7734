import type { PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';
import { DELIVERABLE_ENTRY_BYTES } from '../common/event-limits';
import { BATCH_DETAIL_TYPE, CURATED_SOURCE, deterministicId, ENVELOPE_SCHEMA_VERSION } from '../runtime/curated-envelope';

/** Default batch entry size: the largest that still delivers to 1 MiB targets. */
export const DEFAULT_BATCH_ENTRY_BYTES = DELIVERABLE_ENTRY_BYTES;
/** EventBridge bills each 64 KB chunk of an entry as one event. */
export const BILLING_CHUNK_BYTES = 65_536;
/**
 * When a batch must close with its last chunk filled less than this, the records of that
 * chunk move to the next batch. Each multi-chunk entry then wastes under 10% of a chunk
 * (at most 5% of the entry), while full 1 MiB entries are rarely split.
 */
const MIN_LAST_CHUNK_FILL = 0.9;
/** `new Date().toISOString()` is always 24 characters for years 0000–9999. */
const ISO_TIME_LENGTH = 24;

/** A validated record line, ready to embed verbatim in a batch. */
export interface PackableRecord {
  readonly line: number;
  readonly text: Buffer;
  readonly tenant: string | null;
}

/** A closed batch: one PutEvents entry and the lines it carries. */
export interface PackedBatch {
  /** The batch id (also in the entry's detail): derived from the object and the lines carried. */
  readonly id: string;
  /** Copies of the records carried (the batch keeps their bytes, not the records). */
  readonly records: PackableRecord[];
  readonly recordCount: number;
  readonly firstLine: number;
  readonly lastLine: number;
  /** Entry size as EventBridge counts it (Source + DetailType + Detail). */
  readonly bytes: number;
  /** 64 KB chunks EventBridge bills for this entry. */
  readonly chunks: number;
  /**
   * Builds the PutEvents entry, the same on every call. It is built for the call that puts
   * it, so its Detail (up to 1 MiB) is garbage as soon as that call returns.
   */
  entry(): PutEventsRequestEntry;
}

export interface PackerOptions {
  readonly maxEntryBytes: number;
  readonly maxRecords: number;
  /** Identifies the object: batch ids derive from it and the lines a batch carries. */
  readonly objectId: string;
  readonly origin: { readonly bucket: string; readonly key: string; readonly versionId?: string };
}

/** Room kept for the three numbers of a header (count, first line, last line): 16 digits each. */
const HEADER_NUMBER_ROOM = 48;

/**
 * The bytes of one batch: its records copied in, joined by commas, after room for the
 * header, which is written in front of them when the entry is built, so the Detail is
 * one `toString` of one range. Slabs are reused (see `BatchPacker.release`): batches and
 * the records they carry then make no garbage that outlives a young-generation collection
 * (records held as objects or as views of the input until their flight is put are
 * promoted to the old generation, where V8 lets that garbage grow to several times the
 * live heap), and input chunks are not kept alive by the records that came from them.
 */
class Slab {
  count = 0;
  textBytes = 0;
  /** Where the records start: after room for the header. */
  recordsStart = 0;
  /** Where the next record goes. */
  end = 0;
  tenant: string | null = null;
  lines: Float64Array;
  /** Where each record ends. */
  ends: Float64Array;

  constructor(public bytes: Buffer, records: number) {
    this.lines = new Float64Array(records);
    this.ends = new Float64Array(records);
  }

  start(k: number): number {
    return k === 0 ? this.recordsStart : this.ends[k - 1] + 1;
  }

  length(k: number): number {
    return this.ends[k] - this.start(k);
  }

  /** Appends a record. */
  push(line: number, text: Uint8Array): void {
    if (this.count === this.lines.length) {
      this.lines = grow(this.lines);
      this.ends = grow(this.ends);
    }
    const needed = this.end + 1 + text.length + FOOTER.length;
    if (needed > this.bytes.length) {
      // Only for records past the packer's limits (which callers check first): not pooled then.
      const bigger = Buffer.allocUnsafeSlow(Math.max(needed, this.bytes.length * 2));
      this.bytes.copy(bigger, 0, 0, this.end);
      this.bytes = bigger;
    }
    if (this.count > 0) this.bytes[this.end++] = COMMA;
    this.bytes.set(text, this.end);
    this.end += text.length;
    this.lines[this.count] = line;
    this.ends[this.count] = this.end;
    this.count++;
    this.textBytes += text.length;
  }
}

function grow(array: Float64Array): Float64Array {
  const bigger = new Float64Array(array.length * 2);
  bigger.set(array);
  return bigger;
}

class Batch implements PackedBatch {
  released = false;
  readonly recordCount: number;
  readonly firstLine: number;
  readonly lastLine: number;
  readonly chunks: number;

  constructor(readonly id: string, private readonly header: string, private readonly headerBytes: number,
    readonly slab: Slab, readonly bytes: number) {
    this.recordCount = slab.count;
    this.firstLine = slab.lines[0];
    this.lastLine = slab.lines[slab.count - 1];
    this.chunks = Math.ceil(bytes / BILLING_CHUNK_BYTES);
  }

  entry(): PutEventsRequestEntry {
    if (this.released) throw new Error(`batch ${this.id} was released`);
    const slab = this.slab;
    const from = slab.recordsStart - this.headerBytes;
    slab.bytes.write(this.header, from, 'utf8');
    const to = slab.end + FOOTER.copy(slab.bytes, slab.end);
    return { Source: CURATED_SOURCE, DetailType: BATCH_DETAIL_TYPE, Detail: slab.bytes.toString('utf8', from, to) };
  }

  get records(): PackableRecord[] {
    if (this.released) throw new Error(`batch ${this.id} was released`);
    const slab = this.slab;
    const records: PackableRecord[] = [];
    for (let k = 0; k < slab.count; k++) {
      const start = slab.start(k);
      records.push({ line: slab.lines[k], text: Buffer.from(slab.bytes.subarray(start, slab.ends[k])), tenant: slab.tenant });
    }
    return records;
  }
}

/**
 * Packs record lines into CuratedBatch entries by bytes. An entry never exceeds
 * `maxEntryBytes` (sizes are exact, computed with the documented entry-size rule) nor
 * `maxRecords`; a batch holds one tenant. When a batch must close with its last 64 KB
 * chunk mostly empty, the records of that chunk move to the next batch, so billed chunks
 * stay close to the minimum. Output depends only on the input from the first line fed,
 * which lets a retry from a checkpoint rebuild the same batches.
 *
 * Records are copied into the packer's own buffers as they are added. A batch's buffer is
 * reused once the batch is passed to `release`; a batch not released is collected as usual.
 */
export class BatchPacker {
  private readonly fixedBytes: number;
  private readonly originJson: string;
  private open: Slab | undefined;
  private readonly free: Slab[] = [];
  private cachedTenant: string | null | undefined;
  private cachedHeaderBytes: number | undefined;
  private lineListBytes = Buffer.alloc(0);

  constructor(private readonly options: PackerOptions) {
    const o = options.origin;
    this.originJson = `"bucket":${JSON.stringify(o.bucket)},"key":${JSON.stringify(o.key)}`
      + (o.versionId !== undefined ? `,"versionId":${JSON.stringify(o.versionId)}` : '');
    this.fixedBytes = Buffer.byteLength(CURATED_SOURCE) + Buffer.byteLength(BATCH_DETAIL_TYPE);
  }

  /** First line of the open batch, or undefined when no batch is open. */
  get openFirstLine(): number | undefined {
    return this.open ? this.open.lines[0] : undefined;
  }

  /** The entry size of a lone record, to reject records that can never fit. */
  sizeAlone(record: PackableRecord): number {
    return this.entryBytes(1, record.line, record.line, record.tenant, record.text.length);
  }

  /** Adds a record (which must fit alone) and returns the batches this closed. */
  add(record: PackableRecord): PackedBatch[] {
    const closed: PackedBatch[] = [];
    if (this.open && this.open.tenant !== record.tenant) {
      closed.push(...this.close(false));
    }
    // Closing may carry the records of a mostly empty last chunk forward; those are under
    // one chunk, so at most a second close is needed.
    while (this.open && this.entryBytes(this.open.count + 1, this.open.lines[0], record.line, record.tenant,
      this.open.textBytes + this.open.count + record.text.length) > this.options.maxEntryBytes) {
      closed.push(...this.close(true));
    }
    // An open batch's entry is within the limit, so it fits a slab of `maxEntryBytes` plus header room.
    this.open ??= this.takeSlab(record.tenant);
    this.open.push(record.line, record.text);
    if (this.open.count >= this.options.maxRecords) closed.push(...this.close(true));
    return closed;
  }

  /** Closes the open batch as is (end of input, or a checkpoint needs a batch boundary). */
  flush(): PackedBatch[] {
    return this.open ? this.close(false) : [];
  }

  /**
   * Takes back the buffers of batches that are done with (put, or given up): their entries
   * and records can no longer be read, and the next batches reuse the buffers.
   */
  release(batches: Iterable<PackedBatch>): void {
    for (const batch of batches) {
      if (!(batch instanceof Batch) || batch.released) continue;
      batch.released = true;
      if (batch.slab.bytes.length === this.slabBytes()) this.free.push(batch.slab);
    }
  }

  private close(mayCarry: boolean): PackedBatch[] {
    const slab = this.open!;
    this.open = undefined;
    if (mayCarry && slab.count > 1) {
      const cut = this.chunkAlignedCut(slab);
      if (cut < slab.count) {
        const carried = this.takeSlab(slab.tenant);
        for (let k = cut; k < slab.count; k++) carried.push(slab.lines[k], slab.bytes.subarray(slab.start(k), slab.ends[k]));
        slab.end = slab.ends[cut - 1];
        slab.count = cut;
        slab.textBytes -= carried.textBytes;
        this.open = carried;
      }
    }
    return [this.build(slab)];
  }

  /** How many leading records to keep so the last billed chunk is not mostly empty. */
  private chunkAlignedCut(slab: Slab): number {
    const count = slab.count;
    const first = slab.lines[0];
    const total = this.entryBytes(count, first, slab.lines[count - 1], slab.tenant, slab.textBytes + count - 1);
    const chunks = Math.ceil(total / BILLING_CHUNK_BYTES);
    const lastFill = total - (chunks - 1) * BILLING_CHUNK_BYTES;
    if (chunks < 2 || lastFill >= MIN_LAST_CHUNK_FILL * BILLING_CHUNK_BYTES) return count;
    const target = (chunks - 1) * BILLING_CHUNK_BYTES;
    let textBytes = 0;
    for (let k = 0; k < count; k++) {
      textBytes += slab.length(k);
      const size = this.entryBytes(k + 1, first, slab.lines[k], slab.tenant, textBytes + k);
      if (size > target) return Math.max(k, 1);
    }
    return count;
  }

  /**
   * Exact entry size: the header and footer are rendered with the same numbers as the
   * batch, so only the digits of those numbers vary. Called once per record, so cheap.
   */
  private entryBytes(count: number, firstLine: number, lastLine: number, tenant: string | null, recordsBytes: number): number {
    return this.fixedBytes + this.headerBaseBytes(tenant) + digits(count) + digits(firstLine) + digits(lastLine) + recordsBytes + FOOTER.length;
  }

  /** Header bytes without the three numbers, for the last tenant seen. */
  private headerBaseBytes(tenant: string | null): number {
    if (this.cachedTenant !== tenant || this.cachedHeaderBytes === undefined) {
      this.cachedTenant = tenant;
      this.cachedHeaderBytes = Buffer.byteLength(this.header('0'.repeat(36), tenant, 'T'.repeat(ISO_TIME_LENGTH), '', '', ''));
    }
    return this.cachedHeaderBytes;
  }

  private header(id: string, tenant: string | null, time: string, count: number | '', firstLine: number | '', lastLine: number | ''): string {
    return `{"schemaVersion":"${ENVELOPE_SCHEMA_VERSION}","kind":"batch","id":"${id}","tenant":${JSON.stringify(tenant)},`
      + `"lane":"slow","time":"${time}","recordCount":${count},`
      + `"origin":{${this.originJson},"firstLine":${firstLine},"lastLine":${lastLine}},"records":[`;
  }

  /**
   * Pooled slabs hold any batch the packer closes: its header, records and footer are
   * within `maxEntryBytes`, and its records start after the header's room.
   */
  private slabBytes(): number {
    return this.options.maxEntryBytes + HEADER_NUMBER_ROOM;
  }

  /** An empty slab for records of `tenant`: a released one, or a new one. */
  private takeSlab(tenant: string | null): Slab {
    const headerRoom = this.headerBaseBytes(tenant) + HEADER_NUMBER_ROOM;
    const slab = this.free.pop() ?? new Slab(Buffer.allocUnsafeSlow(this.slabBytes()), Math.min(this.options.maxRecords, 1024));
    slab.count = 0;
    slab.textBytes = 0;
    slab.tenant = tenant;
    slab.recordsStart = headerRoom;
    slab.end = headerRoom;
    return slab;
  }

  /**
   * Builds the entry of the given records (of one tenant, in line order). Its id derives
   * from every line it carries, so a batch that gains or loses a line (another packing
   * setting on a retry, or a split) is a new batch, for the ledger and for consumers.
   */
  buildBatch(records: PackableRecord[]): PackedBatch {
    const slab = this.takeSlab(records[0].tenant);
    for (const r of records) slab.push(r.line, r.text);
    return this.build(slab);
  }

  /**
   * The batch's line numbers joined by commas, as bytes written into a reused buffer: the
   * id hashes the same bytes as from `lines.join(',')`, without making that string (and
   * its number strings) for each batch, which measurably ended up in the old generation.
   */
  private lineList(slab: Slab): Buffer {
    const room = slab.count * 26; // a comma and `String(n)` of any number
    if (this.lineListBytes.length < room) this.lineListBytes = Buffer.allocUnsafeSlow(Math.max(room, 16_384));
    const out = this.lineListBytes;
    let n = 0;
    for (let k = 0; k < slab.count; k++) {
      if (k > 0) out[n++] = COMMA;
      n += writeDecimal(out, n, slab.lines[k]);
    }
    return out.subarray(0, n);
  }

  private build(slab: Slab): PackedBatch {
    const count = slab.count;
    const id = deterministicId(this.options.objectId, this.lineList(slab));
    const header = this.header(id, slab.tenant, new Date().toISOString(), count, slab.lines[0], slab.lines[count - 1]);
    const headerBytes = Buffer.byteLength(header);
    const bytes = this.fixedBytes + headerBytes + slab.textBytes + count - 1 + FOOTER.length;
    return new Batch(id, header, headerBytes, slab, bytes);
  }
}

const COMMA = 0x2c;

/** Writes `n` as `String(n)` would; returns the bytes written. */
function writeDecimal(out: Buffer, at: number, n: number): number {
  if (!Number.isSafeInteger(n) || n < 0) return out.write(String(n), at, 'latin1');
  const count = digits(n);
  for (let i = at + count - 1, rest = n; i >= at; i--, rest = Math.floor(rest / 10)) out[i] = 0x30 + (rest % 10);
  return count;
}

function digits(n: number): number {
  let count = 1;
  for (let rest = n; rest >= 10; rest = Math.floor(rest / 10)) count++;
  return count;
}
const FOOTER = Buffer.from(']}');
