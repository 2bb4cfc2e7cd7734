import { _Record as KinesisRecord } from '@aws-sdk/client-kinesis';
// aws-kinesis-agg's own typings import the v2 SDK, which handlers do not have: its one call is typed here.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { deaggregateSync } = require('aws-kinesis-agg') as { deaggregateSync: DeaggregateSync };
import { HydratedRecordFields } from './hydrated-object';

type DeaggregateSync = (record: AggRecord, computeChecksums: boolean,
  done: (error: Error | null | undefined, userRecords?: AggUserRecord[]) => void) => void;
interface AggRecord { partitionKey: string; explicitPartitionKey?: string; sequenceNumber: string; data: string }
interface AggUserRecord { partitionKey: string; explicitPartitionKey?: string; sequenceNumber: string; subSequenceNumber?: number; data: string }

/** A Kinesis record's user records, or why it could not be split (it is then kept whole). */
export interface UserRecords {
  readonly records: HydratedRecordFields[];
  /** Set when the record began with the KPL's magic number but did not decode (a bad checksum, a broken message). */
  readonly deaggregationError?: string;
}

/**
 * Splits a KPL-aggregated record into its user records with awslabs' aws-kinesis-agg (checksums
 * verified); a plain record is its own one user record. An aggregated record that fails to
 * decode is kept whole, with the error, rather than lost.
 */
export function userRecords(record: KinesisRecord): UserRecords {
  const whole: HydratedRecordFields = {
    partitionKey: record.PartitionKey!,
    sequenceNumber: record.SequenceNumber!,
    approximateArrivalTimestamp: record.ApproximateArrivalTimestamp ?? new Date(0),
    data: record.Data ?? new Uint8Array(),
  };
  let result: UserRecords | undefined;
  deaggregateSync({
    partitionKey: whole.partitionKey,
    sequenceNumber: whole.sequenceNumber,
    data: Buffer.from(whole.data).toString('base64'),
  }, true, (error, found) => {
    // The library calls back twice when one user record fails (with the error, then without): the error stays.
    if (result?.deaggregationError !== undefined) return;
    if (error) {
      result = { records: [{ ...whole, deaggregationError: error.message }], deaggregationError: error.message };
      return;
    }
    if (!found?.length) {
      const reason = 'the aggregated record holds no user records';
      result = { records: [{ ...whole, deaggregationError: reason }], deaggregationError: reason };
      return;
    }
    // The library does not check a user record's partition-key index: one outside the table gives no key.
    const broken = found.findIndex((user) => typeof user.partitionKey !== 'string' || user.partitionKey === '' || typeof user.data !== 'string');
    if (broken >= 0) {
      const reason = `user record ${broken} of the aggregated record has no partition key or data (an index outside its tables)`;
      result = { records: [{ ...whole, deaggregationError: reason }], deaggregationError: reason };
      return;
    }
    // Explicit hash keys are not kept: the library gives a user record without one the table's first entry.
    result = {
      records: found.map((user) => ({
        partitionKey: user.partitionKey,
        sequenceNumber: user.sequenceNumber,
        subSequenceNumber: user.subSequenceNumber,
        approximateArrivalTimestamp: whole.approximateArrivalTimestamp,
        data: Buffer.from(user.data, 'base64'),
      })),
    };
  });
  if (!result) throw new Error('aws-kinesis-agg did not call back synchronously');
  return result;
}
