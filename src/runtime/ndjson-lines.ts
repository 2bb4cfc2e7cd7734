import { isUtf8 } from 'buffer';
import { pipeline, Readable } from 'stream';
import { createGunzip } from 'zlib';

/** One line of an NDJSON stream. `text` is absent when the line was longer than the cap. */
export interface NdjsonLine {
  /** 1-based line number. */
  readonly number: number;
  /** The line's bytes without the line ending (`\n` or `\r\n`), or undefined if too long. */
  readonly text?: Buffer;
  /** The line's length in bytes without the line ending. */
  readonly length: number;
}

const NEWLINE = 0x0a;
const CARRIAGE_RETURN = 0x0d;

/**
 * Splits a byte stream into lines without holding more than one line (capped at
 * `maxLineBytes`) plus one chunk in memory. Blank lines are skipped but counted; a final
 * line without a newline is returned; a UTF-8 byte order mark at the start is dropped.
 * Yields the lines of each chunk together: one await per chunk rather than per line.
 */
export async function* readNdjsonLines(source: AsyncIterable<Uint8Array>, maxLineBytes: number): AsyncGenerator<NdjsonLine[]> {
  let lineNumber = 0;
  let pieces: Buffer[] = [];
  let pending = 0; // bytes of the current line seen so far
  let first = true;

  const finishLine = (tail: Buffer): NdjsonLine | undefined => {
    lineNumber++;
    const length = pending + tail.length;
    let text: Buffer | undefined;
    if (length <= maxLineBytes) {
      text = pieces.length === 0 ? tail : Buffer.concat([...pieces, tail], length);
    }
    pieces = [];
    pending = 0;
    let end = length;
    if (text && end > 0 && text[end - 1] === CARRIAGE_RETURN) {
      end--;
      text = text.subarray(0, end);
    }
    if (end === 0 || (text && isBlank(text))) return undefined;
    return { number: lineNumber, text, length: end };
  };

  for await (const raw of source) {
    let chunk = Buffer.isBuffer(raw) ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
    if (first) {
      first = false;
      if (chunk.length >= 3 && chunk[0] === 0xef && chunk[1] === 0xbb && chunk[2] === 0xbf) chunk = chunk.subarray(3);
    }
    let start = 0;
    const lines: NdjsonLine[] = [];
    for (let nl = chunk.indexOf(NEWLINE, start); nl !== -1; nl = chunk.indexOf(NEWLINE, start)) {
      const line = finishLine(chunk.subarray(start, nl));
      if (line) lines.push(line);
      start = nl + 1;
    }
    if (lines.length > 0) yield lines;
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      // Past the cap only the length is tracked, so a huge line costs no memory.
      if (pending + rest.length <= maxLineBytes) pieces.push(rest);
      else pieces = [];
      pending += rest.length;
    }
  }
  if (pending > 0) {
    const line = finishLine(Buffer.alloc(0));
    if (line) yield [line];
  }
}

function isBlank(text: Buffer): boolean {
  for (const byte of text) {
    if (byte !== 0x20 && byte !== 0x09 && byte !== CARRIAGE_RETURN) return false;
  }
  return true;
}

/** Whether a line's bytes are valid UTF-8 (EventBridge entries must be). */
export function isValidUtf8(text: Buffer): boolean {
  return isUtf8(text);
}

/**
 * Returns the stream's bytes, gunzipped when they start with the gzip magic number
 * (Firehose writes `.gz` objects without a Content-Encoding header).
 */
export async function maybeGunzip(source: AsyncIterable<Uint8Array>): Promise<AsyncIterable<Uint8Array>> {
  const iterator = source[Symbol.asyncIterator]();
  const head = await iterator.next();
  if (head.done) return emptyStream();
  const rest = (async function* () {
    yield head.value;
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) yield next.value;
  })();
  const firstChunk = head.value;
  if (firstChunk.length >= 2 && firstChunk[0] === 0x1f && firstChunk[1] === 0x8b) {
    const gunzip = createGunzip();
    // pipeline forwards a read error of the source to the gunzip stream being iterated.
    pipeline(Readable.from(rest), gunzip, () => undefined);
    return gunzip;
  }
  return rest;
}

async function* emptyStream(): AsyncGenerator<Uint8Array> {
  // nothing to read
}
