/**
 * Found by a third hostile review (the test failed before its fix): the continuation restart (report.startAfter moved
 * back to the first retryable refusal) with `includeReplayed: true` re-sent every record the same run had already sent.
 * A continuation now passes back `replayedSince`, so what this replay marked is still skipped.
 */
import { KinesisClient, PutRecordsCommand, PutRecordsCommandInput } from '@aws-sdk/client-kinesis';
import { mockClient } from 'aws-sdk-client-mock';
import { hydrateRecords } from './replay-moto';
import { Replayer } from '../../src/hydrating-dlq/replayer-core';
import { motoClients } from '../support/moto';

const { kinesis, s3, eventBridge } = motoClients();
const WINDOW = { from: new Date(Date.now() - 3_600_000).toISOString(), to: new Date(Date.now() + 3 * 3_600_000).toISOString() };
const noSleep = async () => undefined;

describe('Replayer: final hostile review', () => {
  test('includeReplayed + paging: continuing with startAfter after one refusal sends each record once', async () => {
    // DEFECT (duplicates, counts): after a retryable refusal the report's startAfter is moved back to just before the
    // refused record, relying on "what was sent meanwhile is skipped as replayed". With includeReplayed: true nothing
    // is skipped, so the continuation the report tells the operator to run sends again every record the first
    // invocation already sent (and counted as `sent`): the target receives them twice. If the one record keeps being
    // refused, every continuation re-sends the same window again and never advances past it.
    const { bucket } = await hydrateRecords(kinesis, s3, [
      { data: Buffer.from('a0'), partitionKey: 'pk-a' },
      { data: Buffer.from('b0'), partitionKey: 'pk-b' },
      { data: Buffer.from('c0'), partitionKey: 'pk-c' },
      { data: Buffer.from('d0'), partitionKey: 'pk-d' },
    ]);
    const stream = new KinesisClient({ region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });
    const accepted: string[] = [];
    let throttleA = true; // pk-a's shard is throttled during the first invocation only
    mockClient(stream).on(PutRecordsCommand).callsFake((input: PutRecordsCommandInput) => {
      let failed = 0;
      const records = input.Records!.map((r) => {
        if (throttleA && r.PartitionKey === 'pk-a') {
          failed++;
          return { ErrorCode: 'ProvisionedThroughputExceededException', ErrorMessage: 'Rate exceeded for shard' };
        }
        accepted.push(Buffer.from(r.Data!).toString());
        return { SequenceNumber: String(accepted.length), ShardId: 'shardId-000000000000' };
      });
      return { FailedRecordCount: failed, Records: records };
    });
    const replayer = new Replayer({ s3, kinesis: stream, eventBridge, sleep: noSleep },
      { bucketName: bucket, prefix: 'hydrated/', replayStreamName: 'replay' });
    const request = { consumer: 'orders-to-api', ...WINDOW, includeReplayed: true, maxObjects: 3 };

    const first = await replayer.replay(request);
    expect(first).toMatchObject({ found: 3, sent: 2, failed: 1 });
    expect(first.startAfter).toBe('');
    expect(first.replayedSince).toEqual(expect.any(String));
    throttleA = false;
    let total = first.sent;
    let next = first.startAfter;
    const since = first.replayedSince;
    for (let i = 0; i < 5 && next !== undefined; i++) {
      const report = await replayer.replay({ ...request, startAfter: next, replayedSince: since });
      total += report.sent;
      next = report.startAfter;
    }
    expect(next).toBeUndefined();
    // Each of the four records should reach the target once; the reports' `sent` should add up to four.
    expect([...accepted].sort()).toEqual(['a0', 'b0', 'c0', 'd0']);
    expect(total).toBe(4);
  });
});
