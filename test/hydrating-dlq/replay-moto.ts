import { CreateStreamCommand, DescribeStreamSummaryCommand, GetRecordsCommand, GetShardIteratorCommand, KinesisClient } from '@aws-sdk/client-kinesis';
import { GetObjectTaggingCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { motoBucket, motoStream, pipeDlqMessage } from './kinesis-moto';
import { Hydrator } from '../../src/hydrating-dlq/hydrator-core';
import { uniqueName } from '../support/moto';

/** An empty one-shard stream to replay to. */
export async function motoReplayStream(kinesis: KinesisClient): Promise<{ name: string; arn: string }> {
  const name = uniqueName('replay');
  await kinesis.send(new CreateStreamCommand({ StreamName: name, ShardCount: 1 }));
  const arn = (await kinesis.send(new DescribeStreamSummaryCommand({ StreamName: name }))).StreamDescriptionSummary!.StreamARN!;
  return { name, arn };
}

/** Puts `records` on a fresh moto stream and hydrates them all (one failed batch of pipe `orders-to-api`) into a fresh bucket. */
export async function hydrateRecords(kinesis: KinesisClient, s3: S3Client, records: { data: Uint8Array; partitionKey: string }[]) {
  const source = await motoStream(kinesis, records);
  const bucket = await motoBucket(s3);
  const hydrator = new Hydrator({ kinesis, s3 }, { bucketName: bucket, prefix: 'hydrated/', streamArns: [source.arn] });
  const message = { messageId: 'm1', body: pipeDlqMessage(source, 0, records.length - 1) };
  await hydrator.hydrate(message);
  return { source, bucket, hydrator, message };
}

/** A bucket holding `n` hydrated records of pipe `orders-to-api` (hydrated from a moto stream), and an empty replay stream. */
export async function hydratedWorld(kinesis: KinesisClient, s3: S3Client, n: number) {
  const records = Array.from({ length: n }, (_, i) => ({
    data: i === 2 ? Buffer.from([0xde, 0xad, 0xbe, 0xef]) : Buffer.from(JSON.stringify({ order: i })),
    partitionKey: `customer-${i % 3}`,
  }));
  const { source, bucket } = await hydrateRecords(kinesis, s3, records);
  const replay = await motoReplayStream(kinesis);
  return { records, source, bucket, replayStreamName: replay.name, replayArn: replay.arn };
}

/** Every record on a one-shard stream: partition key and data (base64). */
export async function streamRecords(kinesis: KinesisClient, streamArn: string): Promise<{ partitionKey: string; data: string }[]> {
  const { ShardIterator } = await kinesis.send(new GetShardIteratorCommand({ StreamARN: streamArn, ShardId: 'shardId-000000000000', ShardIteratorType: 'TRIM_HORIZON' }));
  const found: { partitionKey: string; data: string }[] = [];
  let iterator = ShardIterator;
  for (;;) {
    const page = await kinesis.send(new GetRecordsCommand({ ShardIterator: iterator, StreamARN: streamArn }));
    if (!page.Records?.length) return found;
    found.push(...page.Records.map((r) => ({ partitionKey: r.PartitionKey!, data: Buffer.from(r.Data!).toString('base64') })));
    iterator = page.NextShardIterator;
  }
}

/** Key → tags of every object under the prefix. */
export async function objectTags(s3: S3Client, bucket: string, prefix = 'hydrated/'): Promise<Map<string, Record<string, string>>> {
  const tags = new Map<string, Record<string, string>>();
  const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
  for (const o of listed.Contents ?? []) {
    const { TagSet } = await s3.send(new GetObjectTaggingCommand({ Bucket: bucket, Key: o.Key! }));
    tags.set(o.Key!, Object.fromEntries((TagSet ?? []).map((t) => [t.Key!, t.Value!])));
  }
  return tags;
}
