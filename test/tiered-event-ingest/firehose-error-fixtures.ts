import { gzipSync } from 'zlib';

/**
 * Objects as Firehose writes them under its S3 error output prefix (`firehose-errors/` in
 * the construct): one JSON document per record it could not deliver.
 *
 * The documented shape, for records a processing step failed, is
 * https://docs.aws.amazon.com/firehose/latest/dev/data-transformation-failure-handling.html:
 *
 *   { "attemptsMade": "count", "arrivalTimestamp": "timestamp", "errorCode": "code", "errorMessage": "message",
 *     "attemptEndingTimestamp": "timestamp", "rawData": "data", "lambdaArn": "arn" }
 *
 * with `rawData` "the base64-encoded record data". The dynamic partitioning page
 * (https://docs.aws.amazon.com/firehose/latest/dev/dynamic-partitioning-error-handling.html)
 * says records whose partition keys cannot be extracted, and records past the active
 * partition quota, go to the error prefix "organized based on the error type", with
 * "information about the error", but shows no example; the error code Firehose logs for a
 * failed extraction is `DynamicPartitioning.MetadataExtractionFailed`. The format conversion
 * page (https://docs.aws.amazon.com/firehose/latest/dev/record-format-conversion-error-handling.html)
 * names the code fields `ErrorCode`/`lastErrorCode` instead. The docs do not say whether
 * error objects are compressed, what separates the documents, or which
 * `!{firehose:error-output-type}` a partitioning failure gets: the fixtures cover gzip and
 * plain, newline-delimited and concatenated.
 */
export interface FirehoseErrorRecord {
  readonly attemptsMade: number;
  readonly arrivalTimestamp: number;
  readonly errorCode: string;
  readonly errorMessage: string;
  readonly attemptEndingTimestamp: number;
  readonly rawData?: string;
  readonly lambdaArn?: string;
}

/** An error record for `data` (a record line as the slow lane's rule sent it to Firehose). */
export function firehoseErrorRecord(data: string | Buffer, options: {
  errorCode?: string;
  errorMessage?: string;
  /** Firehose appended the stream's newline delimiter to the record before it failed. */
  withDelimiter?: boolean;
} = {}): FirehoseErrorRecord {
  const bytes = Buffer.concat([Buffer.isBuffer(data) ? data : Buffer.from(data, 'utf8'), Buffer.from(options.withDelimiter ? '\n' : '')]);
  return {
    attemptsMade: 1,
    arrivalTimestamp: 1795860000000,
    errorCode: options.errorCode ?? 'DynamicPartitioning.MetadataExtractionFailed',
    errorMessage: options.errorMessage ?? 'partitionKeys values must not be null or empty',
    attemptEndingTimestamp: 1795860000123,
    rawData: bytes.toString('base64'),
  };
}

/** The bytes of an error object: documents separated by `separator` (a newline unless told; the docs do not say), gzipped unless told. */
export function firehoseErrorObject(records: readonly object[], options: { gzip?: boolean; separator?: string } = {}): Buffer {
  const separator = options.separator ?? '\n';
  const text = records.map((r) => JSON.stringify(r)).join(separator) + (separator === '\n' ? '\n' : '');
  const bytes = Buffer.from(text, 'utf8');
  return (options.gzip ?? true) ? gzipSync(bytes) : bytes;
}

/**
 * A key as Firehose names error objects with the construct's error output prefix
 * (`firehose-errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd/HH}/`) and its
 * fixed suffix `<stream>-<version>-yyyy-MM-dd-HH-mm-ss-<uuid>` (plus `.gz` when compressed).
 */
export function firehoseErrorKey(uuid: string, errorOutputType = 'processing-failed'): string {
  return `firehose-errors/${errorOutputType}/2026/11/22/10/ingest-stream-1-2026-11-22-10-00-00-${uuid}.gz`;
}
