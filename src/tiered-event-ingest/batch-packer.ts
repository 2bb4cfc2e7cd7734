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
  readonly entry: PutEventsRequestEntry;
  readonly records: PackableRecord[];
  readonly firstLine: number;
  readonly lastLine: number;
  /** Entry size as EventBridge counts it (Source + DetailType + Detail). */
  readonly bytes: number;
  /** 64 KB chunks EventBridge bills for this entry. */
  readonly chunks: number;
}

export interface PackerOptions {
  readonly maxEntryBytes: number;
  readonly maxRecords: number;
  /** Identifies the object: batch ids derive from it and the lines a batch carries. */
  readonly objectId: string;
  readonly origin: { readonly bucket: string; readonly key: string; readonly versionId?: string };
}

/**
 * Packs record lines into CuratedBatch entries by bytes. An entry never exceeds
 * `maxEntryBytes` (sizes are exact, computed with the documented entry-size rule) nor
 * `maxRecords`; a batch holds one tenant. When a batch must close with its last 64 KB
 * chunk mostly empty, the records of that chunk move to the next batch, so billed chunks
 * stay close to the minimum. Output depends only on the input from the first line fed,
 * which lets a retry from a checkpoint rebuild the same batches.
 */
export class BatchPacker {
  private readonly fixedBytes: number;
  private readonly originJson: string;
  private open: PackableRecord[] = [];
  private cachedTenant: string | null | undefined;
  private cachedHeaderBytes: number | undefined;
  private openTextBytes = 0;

  constructor(private readonly options: PackerOptions) {
    const o = options.origin;
    this.originJson = `"bucket":${JSON.stringify(o.bucket)},"key":${JSON.stringify(o.key)}`
      + (o.versionId !== undefined ? `,"versionId":${JSON.stringify(o.versionId)}` : '');
    this.fixedBytes = Buffer.byteLength(CURATED_SOURCE) + Buffer.byteLength(BATCH_DETAIL_TYPE);
  }

  /** First line of the open batch, or undefined when no batch is open. */
  get openFirstLine(): number | undefined {
    return this.open[0]?.line;
  }

  /** The entry size of a lone record, to reject records that can never fit. */
  sizeAlone(record: PackableRecord): number {
    return this.entryBytes(1, record.line, record.line, record.tenant, record.text.length);
  }

  /** Adds a record (which must fit alone) and returns the batches this closed. */
  add(record: PackableRecord): PackedBatch[] {
    const closed: PackedBatch[] = [];
    if (this.open.length > 0 && this.open[0].tenant !== record.tenant) {
      closed.push(...this.close(false));
    }
    // Closing may carry the records of a mostly empty last chunk forward; those are under
    // one chunk, so at most a second close is needed.
    while (this.open.length > 0 && this.entryBytes(this.open.length + 1, this.open[0].line, record.line, record.tenant,
      this.openTextBytes + this.open.length + record.text.length) > this.options.maxEntryBytes) {
      closed.push(...this.close(true));
    }
    this.open.push(record);
    this.openTextBytes += record.text.length;
    if (this.open.length >= this.options.maxRecords) closed.push(...this.close(true));
    return closed;
  }

  /** Closes the open batch as is (end of input, or a checkpoint needs a batch boundary). */
  flush(): PackedBatch[] {
    return this.open.length > 0 ? this.close(false) : [];
  }

  private close(mayCarry: boolean): PackedBatch[] {
    let records = this.open;
    let carried: PackableRecord[] = [];
    if (mayCarry && records.length > 1) {
      const cut = this.chunkAlignedCut(records);
      if (cut < records.length) {
        carried = records.slice(cut);
        records = records.slice(0, cut);
      }
    }
    this.open = carried;
    this.openTextBytes = carried.reduce((sum, r) => sum + r.text.length, 0);
    return [this.buildBatch(records)];
  }

  /** How many leading records to keep so the last billed chunk is not mostly empty. */
  private chunkAlignedCut(records: PackableRecord[]): number {
    const first = records[0];
    const total = this.sizeOf(records, records.length);
    const chunks = Math.ceil(total / BILLING_CHUNK_BYTES);
    const lastFill = total - (chunks - 1) * BILLING_CHUNK_BYTES;
    if (chunks < 2 || lastFill >= MIN_LAST_CHUNK_FILL * BILLING_CHUNK_BYTES) return records.length;
    const target = (chunks - 1) * BILLING_CHUNK_BYTES;
    let textBytes = 0;
    for (let k = 0; k < records.length; k++) {
      textBytes += records[k].text.length;
      const size = this.entryBytes(k + 1, first.line, records[k].line, first.tenant, textBytes + k);
      if (size > target) return Math.max(k, 1);
    }
    return records.length;
  }

  private sizeOf(records: PackableRecord[], count: number): number {
    let textBytes = 0;
    for (let k = 0; k < count; k++) textBytes += records[k].text.length;
    return this.entryBytes(count, records[0].line, records[count - 1].line, records[0].tenant, textBytes + count - 1);
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
   * Builds the entry of the given records (of one tenant, in line order). Its id derives
   * from every line it carries, so a batch that gains or loses a line (another packing
   * setting on a retry, or a split) is a new batch, for the ledger and for consumers.
   */
  buildBatch(records: PackableRecord[]): PackedBatch {
    const first = records[0];
    const last = records[records.length - 1];
    const id = deterministicId(this.options.objectId, records.map((r) => r.line).join(','));
    const parts: Buffer[] = [Buffer.from(this.header(id, first.tenant, new Date().toISOString(), records.length, first.line, last.line))];
    records.forEach((r, i) => {
      if (i > 0) parts.push(COMMA);
      parts.push(r.text);
    });
    parts.push(FOOTER);
    const detail = Buffer.concat(parts).toString('utf8');
    const bytes = this.fixedBytes + Buffer.byteLength(detail);
    return {
      id,
      entry: { Source: CURATED_SOURCE, DetailType: BATCH_DETAIL_TYPE, Detail: detail },
      records,
      firstLine: first.line,
      lastLine: last.line,
      bytes,
      chunks: Math.ceil(bytes / BILLING_CHUNK_BYTES),
    };
  }
}

const COMMA = Buffer.from(',');

function digits(n: number): number {
  let count = 1;
  for (let rest = n; rest >= 10; rest = Math.floor(rest / 10)) count++;
  return count;
}
const FOOTER = Buffer.from(']}');
