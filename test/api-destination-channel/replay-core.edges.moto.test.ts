import { CreateEventBusCommand, DeleteRuleCommand, RemoveTargetsCommand } from '@aws-sdk/client-eventbridge';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { putReplayRule } from './replay-rules';
import { ReplayDependencies, replayDeadLetters } from '../../src/api-destination-channel/replay-core';
import { ec2StateChangeEvent, eventBridgeDeadLetterAttributes } from '../support/aws-fixtures';
import { createMotoQueue, drainMotoQueue, motoClients, MotoQueue, uniqueName } from '../support/moto';

/**
 * The replay against moto at its edges: numbers beyond 2^53, a replay rule deleted while a
 * run goes on, and maxMessages on a queue whose oldest dead letters belong to another stack.
 */

const ACCOUNT = '123456789012';
const platform = motoClients(); // another actor's view of AWS
const handler = motoClients(); // the replay function's clients

interface World {
  readonly dlq: MotoQueue;
  readonly api: MotoQueue;
  readonly replayBusName: string;
  readonly replayRule: string;
  readonly ruleArn: string;
}

/** A DLQ, a replay bus and one channel's replay rule delivering to a capture queue (the API). */
async function world(): Promise<World> {
  const dlq = await createMotoQueue(platform.sqs, 'dlq');
  const api = await createMotoQueue(platform.sqs, 'api');
  const replayBusName = uniqueName('replay');
  await platform.eventBridge.send(new CreateEventBusCommand({ Name: replayBusName }));
  const ruleArn = `arn:aws:events:us-east-1:${ACCOUNT}:rule/orders/Stack-ChannelRule-${uniqueName('r')}`;
  const replayRule = await putReplayRule(platform.eventBridge, replayBusName, ruleArn, api.arn);
  return { dlq, api, replayBusName, replayRule, ruleArn };
}

/** A dead letter as EventBridge writes it (documented attributes); its body is the event's text. */
async function park(w: World, body: string, ruleArn = w.ruleArn): Promise<void> {
  await platform.sqs.send(new SendMessageCommand({
    QueueUrl: w.dlq.url,
    MessageBody: body,
    MessageAttributes: eventBridgeDeadLetterAttributes(ruleArn, `arn:aws:events:us-east-1:${ACCOUNT}:api-destination/crm/x`),
  }));
}

function deps(w: World): ReplayDependencies {
  return {
    sqs: handler.sqs,
    eventBridge: handler.eventBridge,
    replayBusName: w.replayBusName,
    maxEntryBytes: 1_048_576,
    receiveWaitTimeSeconds: 0,
    putEventsOptions: { sleep: async () => undefined },
  };
}

afterAll(() => {
  for (const c of [platform, handler]) {
    c.sqs.destroy();
    c.eventBridge.destroy();
  }
});

test('the replay rule\'s target receives the digits of an integer beyond 2^53 (PutEvents accepts int64)', async () => {
  const w = await world();
  const big = '9007199254740993'; // 2^53 + 1: the nearest double is 9007199254740992
  await park(w, `{"version":"0","id":"e-big","detail-type":"Order Placed","source":"shop.orders","account":"${ACCOUNT}",`
    + `"time":"2026-11-30T12:00:00Z","region":"us-east-1","resources":[],"detail":{"orderId":${big},"sequence":9223372036854775807}}`);

  const result = await replayDeadLetters(deps(w), { queueUrl: w.dlq.url });

  expect(result.replayed).toBe(1);
  const [delivered] = await drainMotoQueue(platform.sqs, w.api.url);
  // moto's EventBridge (Python) keeps integers exact.
  expect(delivered).toMatch(new RegExp(`"orderId":\\s*${big}[,}]`));
  expect(delivered).toMatch(/"sequence":\s*9223372036854775807[,}]/);
});

test('a replay rule deleted after the first batch (a renamed channel\'s cleanup): nothing is deleted that no rule takes', async () => {
  const w = await world();
  const ids: string[] = [];
  for (let i = 0; i < 15; i++) {
    const event = ec2StateChangeEvent({ id: uniqueName('event') });
    ids.push(event.id as string);
    await park(w, JSON.stringify(event));
  }
  // CloudFormation's cleanup right after the run's first DeleteMessageBatch: targets, then the rule.
  let deleted = false;
  handler.sqs.middlewareStack.add((next: any, context: any) => async (args: any) => {
    const result = await next(args);
    if (context.commandName === 'DeleteMessageBatchCommand' && !deleted) {
      deleted = true;
      await platform.eventBridge.send(new RemoveTargetsCommand({ Rule: w.replayRule, EventBusName: w.replayBusName, Ids: ['api'] }));
      await platform.eventBridge.send(new DeleteRuleCommand({ Name: w.replayRule, EventBusName: w.replayBusName }));
    }
    return result;
  }, { step: 'initialize', name: 'ruleDeletedMidRun' });

  const result = await replayDeadLetters(deps(w), { queueUrl: w.dlq.url });
  handler.sqs.middlewareStack.remove('ruleDeletedMidRun');

  expect(deleted).toBe(true);
  expect(result.replayed).toBe(10);
  const delivered = await drainMotoQueue(platform.sqs, w.api.url);
  const left = await drainMotoQueue(platform.sqs, w.dlq.url);
  expect(delivered).toHaveLength(10);
  expect(left).toHaveLength(5);
  expect(ids.filter((id) => !delivered.some((b) => b.includes(id)) && !left.some((b) => b.includes(id)))).toEqual([]);
});

test('maxMessages counts only replay attempts: another stack\'s older dead letters cannot starve this stack\'s', async () => {
  const w = await world();
  const foreign = `arn:aws:events:us-east-1:${ACCOUNT}:rule/orders/OtherStack-ChannelRule-${uniqueName('b')}`;
  for (let i = 0; i < 10; i++) await park(w, JSON.stringify(ec2StateChangeEvent({ id: uniqueName('theirs') })), foreign);
  for (let i = 0; i < 5; i++) await park(w, JSON.stringify(ec2StateChangeEvent({ id: uniqueName('ours') })));

  const result = await replayDeadLetters(deps(w), { queueUrl: w.dlq.url, maxMessages: 5 });

  expect(result.replayed).toBe(5);
  expect(result.failedCount).toBe(10);
  expect(await drainMotoQueue(platform.sqs, w.api.url)).toHaveLength(5);
  expect(await drainMotoQueue(platform.sqs, w.dlq.url)).toHaveLength(10);
});
