import { LAMBDA_KINESIS_ON_FAILURE_RECORD, PIPES_KINESIS_DLQ_MESSAGE } from './dlq-fixtures';
import { readFailedBatch } from '../../src/hydrating-dlq/failed-batch';

describe('readFailedBatch: the failed batch a dead-letter message describes', () => {
  test('a pipe\'s dead-letter message (Kinesis source)', () => {
    expect(readFailedBatch(JSON.stringify(PIPES_KINESIS_DLQ_MESSAGE))).toEqual({
      ok: true,
      batch: {
        origin: 'pipe',
        consumerArn: 'arn:aws:pipes:us-east-1:123456789012:pipe/orders-to-api',
        condition: 'RetryAttemptsExhausted',
        streamArn: 'arn:aws:kinesis:us-east-1:123456789012:stream/orders',
        shardId: 'shardId-000000000000',
        startSequenceNumber: '49657421092336431384529591016419587374429116335263940610',
        endSequenceNumber: '49657421092336431384529591016420796300248730964438646786',
        approximateArrivalOfFirstRecord: '2026-11-30T15:03:46.620Z',
        approximateArrivalOfLastRecord: '2026-11-30T15:03:46.910Z',
        batchSize: 2,
      },
    });
  });

  test('a Lambda event source mapping\'s on-failure record (the Lambda developer guide\'s example)', () => {
    expect(readFailedBatch(JSON.stringify(LAMBDA_KINESIS_ON_FAILURE_RECORD))).toEqual({
      ok: true,
      batch: {
        origin: 'lambda',
        consumerArn: 'arn:aws:lambda:us-east-2:123456789012:function:myfunction',
        condition: 'RetryAttemptsExhausted',
        streamArn: 'arn:aws:kinesis:us-east-2:123456789012:stream/mystream',
        shardId: 'shardId-000000000001',
        startSequenceNumber: '49601189658422359378836298521827638475320189012309704722',
        endSequenceNumber: '49601189658422359378836298522902373528957594348623495186',
        approximateArrivalOfFirstRecord: '2019-11-14T00:38:04.835Z',
        approximateArrivalOfLastRecord: '2019-11-14T00:38:05.580Z',
        batchSize: 500,
      },
    });
  });

  const info = PIPES_KINESIS_DLQ_MESSAGE.KinesisBatchInfo;
  const withInfo = (changes: Record<string, unknown>) => JSON.stringify({ ...PIPES_KINESIS_DLQ_MESSAGE, KinesisBatchInfo: { ...info, ...changes } });
  test.each([
    ['not JSON', '{"context":', /^not JSON: /],
    ['a JSON array', '[1,2]', /^not a JSON object: \[1,2\]$/],
    ['no KinesisBatchInfo (a DynamoDB stream source)', JSON.stringify({ context: PIPES_KINESIS_DLQ_MESSAGE.context, DDBStreamBatchInfo: {} }),
      /^no KinesisBatchInfo object; allowed: the dead-letter message of a pipe, or the on-failure record of a Lambda event source mapping/],
    ['no consumer', JSON.stringify({ KinesisBatchInfo: info, context: { condition: 'RetryAttemptsExhausted' } }),
      /the consumer ARN \(context\.partnerResourceArn or requestContext\.functionArn\) is undefined/],
    ['both a pipe\'s context and a Lambda requestContext',
      JSON.stringify({ ...PIPES_KINESIS_DLQ_MESSAGE, requestContext: LAMBDA_KINESIS_ON_FAILURE_RECORD.requestContext }),
      /expected exactly one of context \(a pipe's dead-letter message\) and requestContext \(a Lambda on-failure record\)/],
    ['a pipe\'s context without its ARN, beside a Lambda record\'s fields',
      JSON.stringify({ ...LAMBDA_KINESIS_ON_FAILURE_RECORD, context: { partnerResourceArn: null, condition: 'RetryAttemptsExhausted' } }),
      /expected exactly one of context/],
    ['a sequence number that is not one', withInfo({ startSequenceNumber: '0x1f' }), /KinesisBatchInfo\.startSequenceNumber is "0x1f"/],
    ['a range that ends before it starts', withInfo({ startSequenceNumber: info.endSequenceNumber, endSequenceNumber: info.startSequenceNumber }),
      /the sequence range 4965\d+ to 4965\d+ ends before it starts/],
    ['a stream ARN of another service', withInfo({ streamArn: 'arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2026' }),
      /KinesisBatchInfo\.streamArn is "arn:aws:dynamodb:/],
    ['an empty batch', withInfo({ batchSize: 0 }), /KinesisBatchInfo\.batchSize is 0/],
  ])('%s: not read, with the reason', (_name, body, reason) => {
    const read = readFailedBatch(body);
    expect(read.ok).toBe(false);
    expect(read.ok ? '' : read.reason).toMatch(reason);
  });

  test('every problem of a message is named at once', () => {
    const read = readFailedBatch(withInfo({ shardId: 'shard 1', batchSize: -1, endSequenceNumber: 7 }));
    expect(read).toEqual({
      ok: false,
      reason: 'not a readable failed batch: KinesisBatchInfo.shardId is "shard 1"; KinesisBatchInfo.endSequenceNumber is 7; '
        + 'KinesisBatchInfo.batchSize is -1',
    });
  });
});
