/**
 * Message body that an Amazon EventBridge Pipe with a Kinesis data stream source sends to its
 * SQS dead-letter queue.
 *
 * NOT AWS documentation: AWS documents this message without a JSON example (Amazon EventBridge
 * User Guide, "Amazon EventBridge Pipes error handling and troubleshooting",
 * https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-pipes-error-troubleshooting.html,
 * and "Amazon Kinesis stream as a source",
 * https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-pipes-kinesis.html). The shape is
 * that of a message captured from a pipe in a public test module, which LocalStack's Pipes
 * emulator also builds: `context` (`partnerResourceArn`, `condition`), `version`, `timestamp`,
 * and `KinesisBatchInfo` with the same fields as the Lambda on-failure record below. The values
 * here are ours (the capture's names were a company's, and its sequence numbers mock values);
 * the sequence numbers follow Kinesis's pattern. `RecordAgeExceeded` is not confirmed by an
 * example as a Pipes condition.
 */
export const PIPES_KINESIS_DLQ_MESSAGE = {
  context: {
    partnerResourceArn: 'arn:aws:pipes:us-east-1:123456789012:pipe/orders-to-api',
    condition: 'RetryAttemptsExhausted',
  },
  version: '1.0',
  timestamp: '2026-11-30T15:03:51.498Z',
  KinesisBatchInfo: {
    shardId: 'shardId-000000000000',
    startSequenceNumber: '49657421092336431384529591016419587374429116335263940610',
    endSequenceNumber: '49657421092336431384529591016420796300248730964438646786',
    approximateArrivalOfFirstRecord: '2026-11-30T15:03:46.620Z',
    approximateArrivalOfLastRecord: '2026-11-30T15:03:46.910Z',
    batchSize: 2,
    streamArn: 'arn:aws:kinesis:us-east-1:123456789012:stream/orders',
  },
} as const;

/**
 * Invocation record that AWS Lambda sends to the on-failure destination (SQS or SNS) of a Kinesis
 * event source mapping.
 *
 * AWS documentation. AWS Lambda Developer Guide, "Retain discarded batch records for a Kinesis
 * Data Streams event source in Lambda" ("Example invocation record"),
 * https://docs.aws.amazon.com/lambda/latest/dg/kinesis-on-failure-destination.html
 * Copied from the archived Markdown source of that guide: awsdocs/aws-lambda-developer-guide,
 * doc_source/with-kinesis.md (also doc_source/invocation-eventsourcemapping.md), commit
 * 03f7fcb0b771f031f7cb3aa43e8b18407c00b3a8 (2023-10-30), the last commit before the Markdown was
 * removed. Values unchanged; nothing inferred.
 */
export const LAMBDA_KINESIS_ON_FAILURE_RECORD = {
  requestContext: {
    requestId: 'c9b8fa9f-5a7f-xmpl-af9c-0c604cde93a5',
    functionArn: 'arn:aws:lambda:us-east-2:123456789012:function:myfunction',
    condition: 'RetryAttemptsExhausted',
    approximateInvokeCount: 1,
  },
  responseContext: {
    statusCode: 200,
    executedVersion: '$LATEST',
    functionError: 'Unhandled',
  },
  version: '1.0',
  timestamp: '2019-11-14T00:38:06.021Z',
  KinesisBatchInfo: {
    shardId: 'shardId-000000000001',
    startSequenceNumber: '49601189658422359378836298521827638475320189012309704722',
    endSequenceNumber: '49601189658422359378836298522902373528957594348623495186',
    approximateArrivalOfFirstRecord: '2019-11-14T00:38:04.835Z',
    approximateArrivalOfLastRecord: '2019-11-14T00:38:05.580Z',
    batchSize: 500,
    streamArn: 'arn:aws:kinesis:us-east-2:123456789012:stream/mystream',
  },
} as const;
