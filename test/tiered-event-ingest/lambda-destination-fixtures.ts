/**
 * The invocation record Lambda sends to an on-failure destination of an asynchronous
 * invocation, as the Lambda Developer Guide shows it ("Example invocation record", an event
 * that failed three processing attempts because of a function error):
 * https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html
 *
 * With an SQS destination the record is the message body. A test changes only the fields it
 * needs (the function ARN, the request payload) and keeps the shape.
 */
export function lambdaOnFailureRecord(overrides: { functionArn?: string; requestPayload?: unknown } = {}): Record<string, unknown> {
  return {
    version: '1.0',
    timestamp: '2019-11-14T18:16:05.568Z',
    requestContext: {
      requestId: 'e4b46cbf-b738-xmpl-8880-a18cdf61200e',
      functionArn: overrides.functionArn ?? 'arn:aws:lambda:us-east-1:123456789012:function:my-function:$LATEST',
      condition: 'RetriesExhausted',
      approximateInvokeCount: 3,
    },
    requestPayload: 'requestPayload' in overrides ? overrides.requestPayload : {
      ORDER_IDS: [
        '9e07af03-ce31-4ff3-xmpl-36dce652cb4f',
        '637de236-e7b2-464e-xmpl-baf57f86bb53',
        'a81ddca6-2c35-45c7-xmpl-c3a03a31ed15',
      ],
    },
    responseContext: {
      statusCode: 200,
      executedVersion: '$LATEST',
      functionError: 'Unhandled',
    },
    responsePayload: {
      errorMessage: 'RequestId: e4b46cbf-b738-xmpl-8880-a18cdf61200e Process exited before completing request',
    },
  };
}
