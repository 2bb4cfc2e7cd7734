import { CreateStreamCommand, DescribeStreamSummaryCommand, KinesisClient, PutRecordsCommand } from '@aws-sdk/client-kinesis';
import { CreateBucketCommand, GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { PIPES_KINESIS_DLQ_MESSAGE } from './dlq-fixtures';
import { uniqueName } from '../support/moto';

/** A stream on moto, with the records put on it (moto's sequence numbers are real to the reader: increasing integers). */
export interface MotoStream {
  readonly name: string;
  readonly arn: string;
  readonly shardId: string;
  readonly sequenceNumbers: string[];
}

/** Creates a one-shard stream and puts `records` on it, in order. */
export async function motoStream(kinesis: KinesisClient, records: { data: Uint8Array; partitionKey: string }[]): Promise<MotoStream> {
  const name = uniqueName('stream');
  await kinesis.send(new CreateStreamCommand({ StreamName: name, ShardCount: 1 }));
  const arn = (await kinesis.send(new DescribeStreamSummaryCommand({ StreamName: name }))).StreamDescriptionSummary!.StreamARN!;
  const sequenceNumbers: string[] = [];
  let shardId = 'shardId-000000000000';
  for (let i = 0; i < records.length; i += 500) {
    const put = await kinesis.send(new PutRecordsCommand({
      StreamARN: arn,
      Records: records.slice(i, i + 500).map((r) => ({ Data: r.data, PartitionKey: r.partitionKey })),
    }));
    if (put.FailedRecordCount) throw new Error(`moto refused ${put.FailedRecordCount} records`);
    for (const r of put.Records!) {
      sequenceNumbers.push(r.SequenceNumber!);
      shardId = r.ShardId!;
    }
  }
  return { name, arn, shardId, sequenceNumbers };
}

/** A pipe's dead-letter message (the fixture's shape) for records `from`..`to` of `stream`. */
export function pipeDlqMessage(stream: MotoStream, from: number, to: number, pipeName = 'orders-to-api'): string {
  return JSON.stringify({
    ...PIPES_KINESIS_DLQ_MESSAGE,
    context: { ...PIPES_KINESIS_DLQ_MESSAGE.context, partnerResourceArn: `arn:aws:pipes:us-east-1:123456789012:pipe/${pipeName}` },
    KinesisBatchInfo: {
      ...PIPES_KINESIS_DLQ_MESSAGE.KinesisBatchInfo,
      shardId: stream.shardId,
      streamArn: stream.arn,
      startSequenceNumber: stream.sequenceNumbers[from],
      endSequenceNumber: stream.sequenceNumbers[to],
      batchSize: to - from + 1,
    },
  });
}

export async function motoBucket(s3: S3Client): Promise<string> {
  const bucket = uniqueName('hydrated');
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  return bucket;
}

/** Every object of the bucket, key → parsed JSON body. */
export async function bucketObjects(s3: S3Client, bucket: string): Promise<Map<string, any>> {
  const objects = new Map<string, any>();
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
    for (const o of page.Contents ?? []) {
      const body = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: o.Key! }));
      objects.set(o.Key!, JSON.parse(await body.Body!.transformToString()));
    }
    token = page.NextContinuationToken;
  } while (token);
  return objects;
}

/** One KPL-aggregated record of `records`, made by aws-kinesis-agg's aggregator (the KPL's format). */
export async function kplAggregate(records: { partitionKey: string; data: Buffer }[]): Promise<{ partitionKey: string; data: Uint8Array }> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { aggregate } = require('aws-kinesis-agg');
  const encoded: { partitionKey: string; data: Buffer }[] = [];
  await new Promise<void>((resolve, reject) => aggregate(records, (record: { partitionKey: string; data: Buffer }, done: () => void) => {
    encoded.push(record);
    done();
  }, resolve, reject));
  if (encoded.length !== 1) throw new Error(`expected one aggregated record, got ${encoded.length}`);
  return encoded[0];
}
