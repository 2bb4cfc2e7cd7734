/**
 * Defects a hostile review found in the hydrator (moto): KPL de-aggregation that lost or mislabelled records, and a
 * range wider than its batch reported as a clean hydration. Each test failed before its fix.
 */
import { createHash } from 'crypto';
import { bucketObjects, motoBucket, motoStream, pipeDlqMessage } from './kinesis-moto';
import { Hydrator } from '../../src/hydrating-dlq/hydrator-core';
import { userRecords } from '../../src/hydrating-dlq/user-records';
import { motoClients } from '../support/moto';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const common = require('aws-kinesis-agg/lib/common');

const { kinesis, s3 } = motoClients();

/** A KPL aggregated record (magic, protobuf, MD5) built from a raw AggregatedRecord message: valid checksum. */
function kplRecord(message: object): Buffer {
  const body = Buffer.from(common.AggregatedRecord.encode(common.AggregatedRecord.create(message)).finish());
  return Buffer.concat([common.magic, body, createHash('md5').update(body).digest()]);
}

describe('Hydrator: defects found by a hostile review', () => {
  test('a KPL record whose user record points outside the partition key table is kept whole, and the batch is hydrated', async () => {
    // DEFECT: aws-kinesis-agg does not throw for a partition_key_index outside the table: it returns a user
    // record whose partitionKey is undefined. userRecords() passes it on as a good record, and the hydrator's
    // partitionKeySegment(undefined) throws a TypeError. hydrate() therefore throws for the whole message:
    // SQS retries it 3 times and parks it in the hydrator's DLQ, so the batch's GOOD records (the plain record
    // beside it) are never hydrated either, until the stream's retention trims them. The module's contract is
    // "an aggregated record that fails to decode is kept whole, with the error, rather than lost".
    // (A malformed record is exactly the kind of record that makes a pipe's target fail in the first place.)
    const malformed = kplRecord({
      partition_key_table: ['customer-1'],
      records: [{ partition_key_index: 0, data: Buffer.from('ok') }, { partition_key_index: 7, data: Buffer.from('bad index') }],
    });
    const stream = await motoStream(kinesis, [
      { data: Buffer.from('plain before'), partitionKey: 'customer-0' },
      { data: malformed, partitionKey: 'customer-1' },
    ]);
    const bucket = await motoBucket(s3);
    const hydrator = new Hydrator({ kinesis, s3 }, { bucketName: bucket, prefix: 'hydrated/', streamArns: [stream.arn] });

    const report = await hydrator.handleBatch([{ messageId: 'm1', body: pipeDlqMessage(stream, 0, 1) }]);
    expect(report.batchItemFailures).toEqual([]);
    const objects = [...(await bucketObjects(s3, bucket)).values()];
    // The plain record is hydrated, and the malformed aggregated record is kept (whole, with a deaggregation error).
    expect(objects.map((o) => o.record?.data)).toContain('plain before');
    expect(objects.some((o) => o.record?.deaggregationError !== undefined)).toBe(true);
  });

  test('userRecords never yields a user record without a partition key', () => {
    // Same defect, at the unit level: the record handed to the key builder has partitionKey undefined.
    const malformed = kplRecord({
      partition_key_table: ['a'],
      records: [{ partition_key_index: 3, data: Buffer.from('x') }],
    });
    const result = userRecords({
      PartitionKey: 'a', SequenceNumber: '1', Data: malformed, ApproximateArrivalTimestamp: new Date('2026-12-01T10:00:00Z'),
    });
    for (const r of result.records) expect(typeof r.partitionKey).toBe('string');
  });

  test('explicit hash keys are not kept: aws-kinesis-agg gives a user record without one another record\'s', () => {
    // DEFECT (wrong records): aws-kinesis-agg reads explicit_hash_key_table[explicit_hash_key_index]; for a user
    // record with no explicit hash key the (absent) index decodes as 0, so it is given the FIRST entry of the table,
    // i.e. some other user record's explicit hash key. userRecords() stores it as the record's explicitHashKey
    // (in the hydrated object), and the replayer sends it as PutRecords' ExplicitHashKey: the replayed record is
    // routed by a hash key its producer never set (to another shard than its partition key maps to, on a
    // multi-shard stream), and the object misreports the record.
    const aggregated = kplRecord({
      partition_key_table: ['a', 'b'],
      explicit_hash_key_table: ['170141183460469231731687303715884105728'],
      records: [
        { partition_key_index: 0, explicit_hash_key_index: 0, data: Buffer.from('with ehk') },
        { partition_key_index: 1, data: Buffer.from('without ehk') },
      ],
    });
    const result = userRecords({
      PartitionKey: 'a', SequenceNumber: '1', Data: aggregated, ApproximateArrivalTimestamp: new Date('2026-12-01T10:00:00Z'),
    });
    expect(result.deaggregationError).toBeUndefined();
    expect(result.records.map((r) => Buffer.from(r.data).toString())).toEqual(['with ehk', 'without ehk']);
    for (const record of result.records) expect(record).not.toHaveProperty('explicitHashKey');
  });

  test('a range holding more records than the failed batch (parallelizationFactor > 1, filters) is not hydrated as if all had failed', async () => {
    // DEFECT (wrong records, duplicates on replay): with parallelizationFactor > 1 (the construct allows 1 to 10)
    // a pipe splits a shard by partition key into concurrent batches, so a failed batch's [start, end] range also
    // holds records of OTHER partition keys that other batches delivered successfully (with filterPatterns, also
    // records the filter dropped). The dead-letter message says so: batchSize 2 for a range of 3 records. The
    // hydrator reads the whole range and writes every record as failed, reporting a clean 'hydrated'; a replay
    // then delivers the record the target already processed a second time. Nothing compares the records read
    // with batchSize (the count is only used when records are MISSING).
    const stream = await motoStream(kinesis, [
      { data: Buffer.from('{"order":1,"status":"failed"}'), partitionKey: 'customer-A' },
      { data: Buffer.from('{"order":2,"status":"delivered by another batch"}'), partitionKey: 'customer-B' },
      { data: Buffer.from('{"order":3,"status":"failed"}'), partitionKey: 'customer-A' },
    ]);
    const body = JSON.parse(pipeDlqMessage(stream, 0, 2));
    body.KinesisBatchInfo.batchSize = 2; // the batch: customer-A's two records
    const bucket = await motoBucket(s3);
    const hydration = await new Hydrator({ kinesis, s3 }, { bucketName: bucket, prefix: 'hydrated/', streamArns: [stream.arn] })
      .hydrate({ messageId: 'm1', body: JSON.stringify(body) });
    // Every record of the range is kept, and the outcome says the range held records that were not in the batch.
    expect(hydration).toMatchObject({ outcome: 'hydrated-wider-range', recordsWritten: 3, kinesisRecordsRead: 3 });
  });
});
