import { EventBridgeClient, ListRulesCommand } from '@aws-sdk/client-eventbridge';
import { ChangeMessageVisibilityBatchCommand, GetQueueAttributesCommand, Message, ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';

/** The replay function's own log of a run, read by operators and log-based alarms. */

const infoCalls: [string, Record<string, unknown>][] = [];
jest.mock('@aws-lambda-powertools/logger', () => ({
  Logger: class {
    public appendKeys(): void {}
    public warn(): void {}
    public info(message: string, fields: Record<string, unknown>): void { infoCalls.push([message, fields]); }
  },
}));

// eslint-disable-next-line import/order
import { handler } from '../../src/api-destination-channel/replay.lambda';

const QUEUE_URL = 'https://sqs.us-east-1.amazonaws.com/111111111111/channel-dlq';
const sqsMock = mockClient(SQSClient);
const eventBridgeMock = mockClient(EventBridgeClient);

test('"replay finished" logs how many messages were left, not the length of the 100-message sample', async () => {
  process.env.REPLAY_BUS_NAME = 'replay-bus';
  const messages: Message[] = Array.from({ length: 150 }, (_, i) => ({
    MessageId: `m${i}`,
    ReceiptHandle: `rh-${i}`,
    Body: 'not json',
    MessageAttributes: { RULE_ARN: { DataType: 'String', StringValue: 'arn:aws:events:us-east-1:111111111111:rule/b/r' } },
  }));
  sqsMock.on(GetQueueAttributesCommand).resolves({ Attributes: { MaximumMessageSize: '1048576' } });
  sqsMock.on(ReceiveMessageCommand).callsFake(() => {
    const out = messages.splice(0, 10);
    return out.length ? { Messages: out } : {};
  });
  sqsMock.on(ChangeMessageVisibilityBatchCommand).resolves({ Successful: [] });
  eventBridgeMock.on(ListRulesCommand).resolves({ Rules: [] });

  const result = await handler({ queueUrl: QUEUE_URL }, { getRemainingTimeInMillis: () => 300_000 } as any);
  expect(result.failedCount).toBe(150);
  const finished = infoCalls.find(([m]) => m === 'replay finished')![1];
  expect(finished.failed).toBe(150);
});
