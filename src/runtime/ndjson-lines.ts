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
    // A byte order mark opening the object is not part of the first record.
    if (lineNumber === 1 && text && end >= 3 && text[0] === 0xef && text[1] === 0xbb && text[2] === 0xbf) {
      text = text.subarray(3);
      end -= 3;
    }
    if (text && end > 0 && text[end - 1] === CARRIAGE_RETURN) {
      end--;
      text = text.subarray(0, end);
    }
    if (end === 0 || (text && isBlank(text))) return undefined;
    return { number: lineNumber, text, length: end };
  };

  for await (const raw of source) {
    const chunk = Buffer.isBuffer(raw) ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
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
  // Gather a few bytes first, so the gzip magic number is seen whole however small the chunks.
  const headChunks: Buffer[] = [];
  let headBytes = 0;
  let ended = false;
  while (headBytes < 3) {
    const next = await iterator.next();
    if (next.done) {
      ended = true;
      break;
    }
    headChunks.push(Buffer.from(next.value.buffer, next.value.byteOffset, next.value.byteLength));
    headBytes += next.value.byteLength;
  }
  if (headBytes === 0) return emptyStream();
  const head = Buffer.concat(headChunks);
  const rest = (async function* () {
    try {
      yield head;
      if (ended) return;
      for (let next = await iterator.next(); !next.done; next = await iterator.next()) yield next.value;
    } finally {
      // Stopping early (a failure mid-object) must still release the source (an S3 socket).
      await iterator.return?.();
    }
  })();
  if (head[0] === 0x1f && head[1] === 0x8b) {
    const gunzip = createGunzip();
    // pipeline forwards a read error of the source to the gunzip stream being iterated,
    // and destroying the gunzip stream (an early stop) ends the source.
    pipeline(Readable.from(rest), gunzip, () => undefined);
    return gunzip;
  }
  return rest;
}

async function* emptyStream(): AsyncGenerator<Uint8Array> {
  // nothing to read
}
