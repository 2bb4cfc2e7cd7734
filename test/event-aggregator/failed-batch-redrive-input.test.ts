import { redriveFailedBatches } from '../../src/event-aggregator/failed-batch-redrive-core';

/**
 * Found by review. The operator's payload is JSON from `aws lambda invoke` (docs: `{"redriveFailedBatches":{"keys":[…]}}`);
 * nothing checks its shape at run time. A single key given as a string (an easy slip) is
 * iterated character by character: the report says it "found" ~150 objects and lists ~150
 * failures "key "a" is not a failed batch", instead of refusing the invocation.
 */
test('keys that is not an array of strings is refused, not iterated per character', async () => {
  const key = 'aws/lambda/8f3a0c1e/shardId-00000001573689847184-864758bb/2027/01/15/2027-01-15T08.00.00-0b8d1c6e';
  const s3 = { send: async () => { throw new Error('no S3 call expected'); } } as any;
  const aggregator = { processStreamBatch: async () => ({ batchItemFailures: [], outcomes: [], ignoredRecords: 0 }) } as any;
  let outcome: unknown;
  try {
    outcome = await redriveFailedBatches({ s3, aggregator, bucketName: 'b' }, { redriveFailedBatches: { keys: key as any } });
  } catch (err) {
    outcome = (err as Error).message;
  }
  expect(typeof outcome === 'string' ? outcome : (outcome as any).found).not.toBe(key.length);
  expect(outcome).toEqual(expect.stringContaining('keys'));
});
