import { CreateEventBusCommand, DeleteRuleCommand, PutEventsCommand, PutRuleCommand, PutTargetsCommand, RemoveTargetsCommand } from '@aws-sdk/client-eventbridge';
import { CreateQueueCommand, GetQueueAttributesCommand, ReceiveMessageCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import { REPLAY_DETAIL_TYPE, REPLAY_SOURCE, replayDetail } from '../../src/api-destination-channel/replay-contract';
import { replayDeadLetters } from '../../src/api-destination-channel/replay-core';
import { motoClients, uniqueName } from '../support/moto';

const { sqs, eventBridge } = motoClients();
const ACCOUNT = '123456789012';
const POLL_DEADLINE_MS = 10_000;

interface Queue {
  readonly url: string;
  readonly arn: string;
}

async function createQueue(name: string): Promise<Queue> {
  const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: name }));
  const { Attributes } = await sqs.send(new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ['QueueArn'] }));
  return { url: QueueUrl!, arn: Attributes!.QueueArn! };
}

/** A rule on `busName` with `pattern` that delivers the matched events to `queue`. */
async function createRule(busName: string, name: string, pattern: object, queue: Queue): Promise<string> {
  const { RuleArn } = await eventBridge.send(new PutRuleCommand({ Name: name, EventBusName: busName, EventPattern: JSON.stringify(pattern) }));
  await eventBridge.send(new PutTargetsCommand({ Rule: name, EventBusName: busName, Targets: [{ Id: 'capture', Arn: queue.arn }] }));
  return RuleArn!;
}

/** The pattern of a channel's rule on the replay bus (see the construct). */
function channelReplayPattern(ruleArn: string): object {
  return { 'source': [REPLAY_SOURCE], 'detail-type': [REPLAY_DETAIL_TYPE], 'detail': { ruleArn: [ruleArn] } };
}

/** An event as EventBridge delivers it, and so as it lands in a dead-letter queue. */
function originalEvent(id: string, detailType: string, detail: Record<string, unknown>): Record<string, unknown> {
  return {
    'version': '0',
    id,
    'detail-type': detailType,
    'source': 'shop.orders',
    'account': ACCOUNT,
    'time': '2026-03-01T12:00:00Z',
    'region': 'us-east-1',
    'resources': [],
    detail,
  };
}

/** Sends a message to the DLQ as EventBridge does for a failed target; returns its MessageId. */
async function sendDeadLetter(queue: Queue, body: string, ruleArn?: string): Promise<string> {
  const { MessageId } = await sqs.send(new SendMessageCommand({
    QueueUrl: queue.url,
    MessageBody: body,
    MessageAttributes: ruleArn === undefined ? undefined : {
      RULE_ARN: { DataType: 'String', StringValue: ruleArn },
      ERROR_CODE: { DataType: 'String', StringValue: 'SDK_CLIENT_ERROR' },
      ERROR_MESSAGE: { DataType: 'String', StringValue: 'Unable to invoke ApiDestination endpoint' },
    },
  }));
  return MessageId!;
}

/**
 * The events delivered to a capture queue. Polls (bounded) until `expected` arrived, then
 * makes sure nothing more is there.
 */
async function captured(queue: Queue, expected: number): Promise<any[]> {
  const events: any[] = [];
  const receive = async (waitSeconds: number) => {
    const { Messages } = await sqs.send(new ReceiveMessageCommand({
      QueueUrl: queue.url, MaxNumberOfMessages: 10, WaitTimeSeconds: waitSeconds, VisibilityTimeout: 300,
    }));
    events.push(...(Messages ?? []).map((m) => JSON.parse(m.Body!)));
  };
  const deadline = Date.now() + POLL_DEADLINE_MS;
  while (events.length < expected && Date.now() < deadline) await receive(1);
  await receive(0);
  return events;
}

async function queueCounts(queue: Queue): Promise<{ visible: number; notVisible: number }> {
  const { Attributes } = await sqs.send(new GetQueueAttributesCommand({
    QueueUrl: queue.url,
    AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
  }));
  return { visible: Number(Attributes!.ApproximateNumberOfMessages), notVisible: Number(Attributes!.ApproximateNumberOfMessagesNotVisible) };
}

describe('replayDeadLetters against moto', () => {
  const defaultBusRule = uniqueName('replay-leak-probe');

  afterAll(async () => {
    // The default bus is shared by every test of the moto server: leave no rule on it.
    await eventBridge.send(new RemoveTargetsCommand({ Rule: defaultBusRule, Ids: ['capture'] })).catch(() => undefined);
    await eventBridge.send(new DeleteRuleCommand({ Name: defaultBusRule })).catch(() => undefined);
    sqs.destroy();
    eventBridge.destroy();
  });

  test('replays each dead letter to its own channel only, on the replay bus, and leaves the bad ones in the DLQ', async () => {
    // The system: a DLQ, a replay bus with one replay rule per channel, and a probe on the default bus.
    const dlq = await createQueue(uniqueName('channel-dlq'));
    const captureA = await createQueue(uniqueName('capture-a'));
    const captureB = await createQueue(uniqueName('capture-b'));
    const captureDefault = await createQueue(uniqueName('capture-default'));
    const replayBusName = uniqueName('replay-bus');
    await eventBridge.send(new CreateEventBusCommand({ Name: replayBusName }));
    // The channels' own rules (on their bus) whose ARNs the dead letters carry.
    const ruleA = `arn:aws:events:us-east-1:${ACCOUNT}:rule/${uniqueName('orders-bus')}/orders-channel`;
    const ruleB = `arn:aws:events:us-east-1:${ACCOUNT}:rule/${uniqueName('orders-bus')}/refunds-channel`;
    await createRule(replayBusName, uniqueName('replay-a'), channelReplayPattern(ruleA), captureA);
    await createRule(replayBusName, uniqueName('replay-b'), channelReplayPattern(ruleB), captureB);
    await createRule('default', defaultBusRule, { source: [REPLAY_SOURCE] }, captureDefault);

    const eventsA = [1, 2, 3].map((n) => originalEvent(uniqueName(`order-${n}`), 'Order Placed', { orderId: `o-${n}`, total: n * 10, note: 'café' }));
    const eventsB = [1, 2].map((n) => originalEvent(uniqueName(`refund-${n}`), 'Refund Issued', { refundId: `r-${n}`, lines: [{ sku: 'A', qty: n }] }));
    for (const event of eventsA) await sendDeadLetter(dlq, JSON.stringify(event), ruleA);
    for (const event of eventsB) await sendDeadLetter(dlq, JSON.stringify(event), ruleB);
    const invalidJsonId = await sendDeadLetter(dlq, '{"id": "cut off', ruleA);
    const noRuleArnId = await sendDeadLetter(dlq, JSON.stringify(originalEvent(uniqueName('orphan'), 'Order Placed', {})));

    const result = await replayDeadLetters(
      { sqs, eventBridge, replayBusName, maxEntryBytes: 1_048_576, visibilityTimeoutSeconds: 60 },
      { queueUrl: dlq.url },
    );

    expect(result.queueUrl).toBe(dlq.url);
    expect(result.received).toBe(7);
    expect(result.replayed).toBe(5);
    expect(result.received).toBe(result.replayed + result.failed.length);
    expect(Object.fromEntries(result.failed.map((f) => [f.messageId, f.reason]))).toEqual({
      [invalidJsonId]: expect.stringMatching(/^body cannot be read exactly as JSON/),
      [noRuleArnId]: expect.stringMatching(/^no RULE_ARN message attribute/),
    });

    // Each channel's replay rule got exactly its own events, wrapped unchanged (ids included).
    const deliveredA = await captured(captureA, 3);
    expect(deliveredA.map((e) => e.detail)).toEqual(expect.arrayContaining(eventsA.map((event) => replayDetail(ruleA, event))));
    expect(deliveredA).toHaveLength(3);
    const deliveredB = await captured(captureB, 2);
    expect(deliveredB.map((e) => e.detail)).toEqual(expect.arrayContaining(eventsB.map((event) => replayDetail(ruleB, event))));
    expect(deliveredB).toHaveLength(2);
    for (const delivered of [...deliveredA, ...deliveredB]) {
      expect(delivered).toMatchObject({ 'source': REPLAY_SOURCE, 'detail-type': REPLAY_DETAIL_TYPE });
    }

    // Nothing reached the default bus; a probe event proves its rule does deliver.
    await eventBridge.send(new PutEventsCommand({
      Entries: [{ Source: REPLAY_SOURCE, DetailType: 'Leak Probe', Detail: JSON.stringify({ probe: defaultBusRule }) }],
    }));
    const deliveredDefault = await captured(captureDefault, 1);
    expect(deliveredDefault.map((e) => e['detail-type'])).toEqual(['Leak Probe']);
    expect(deliveredDefault[0].detail).toEqual({ probe: defaultBusRule });

    // The two bad messages are still in the DLQ, visible again for the operator; the rest are gone.
    expect(await queueCounts(dlq)).toEqual({ visible: 2, notVisible: 0 });
  });
});
