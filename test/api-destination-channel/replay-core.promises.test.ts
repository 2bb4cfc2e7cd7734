import {
  EventBridgeClient,
  ListRulesCommand,
  ListTargetsByRuleCommand,
  PutEventsCommand,
  PutEventsRequestEntry,
} from '@aws-sdk/client-eventbridge';
import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageBatchCommand,
  DeleteMessageBatchRequest,
  GetQueueAttributesCommand,
  Message,
  ReceiveMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { originalEvent, replayEvent } from './replay-rules';
import { REPLAY_DETAIL_TYPE, REPLAY_SOURCE } from '../../src/api-destination-channel/replay-contract';
import { ReplayDependencies, replayDeadLetters, ReplayEntry, toReplayEntry } from '../../src/api-destination-channel/replay-core';

/**
 * The replay handler against its documented promises (docs/api-destination-channel.md,
 * "What replay guarantees") and AWS's limits: routing by RULE_ARN only, reasons counted by
 * kind, exact JSON, PutEvents' nesting limit.
 */

const QUEUE_URL = 'https://sqs.us-east-1.amazonaws.com/111111111111/channel-dlq';
const REPLAY_BUS = 'replay-bus';
const RULE_A = 'arn:aws:events:us-east-1:111111111111:rule/orders-bus/orders-channel';
const ONE_MIB = 1_048_576;

const sqsMock = mockClient(SQSClient);
const eventBridgeMock = mockClient(EventBridgeClient);

function message(id: string, body: string, attributes: Message['MessageAttributes'] | null = undefined): Message {
  return {
    MessageId: id,
    ReceiptHandle: `rh-${id}`,
    Body: body,
    MessageAttributes: attributes === null ? undefined : attributes ?? {
      RULE_ARN: { DataType: 'String', StringValue: RULE_A },
      ERROR_CODE: { DataType: 'String', StringValue: 'SDK_CLIENT_ERROR' },
    },
  };
}

/** A queue that hands out `messages` in one batch, then nothing; deletes always succeed. */
function queueOf(messages: Message[]): { deleted: string[] } {
  const deleted: string[] = [];
  let pending = [...messages];
  sqsMock.on(ReceiveMessageCommand).callsFake(() => {
    const out = pending.splice(0, 10);
    return out.length > 0 ? { Messages: out } : {};
  });
  sqsMock.on(DeleteMessageBatchCommand).callsFake((input: DeleteMessageBatchRequest) => {
    for (const e of input.Entries ?? []) deleted.push(e.ReceiptHandle!);
    return { Successful: (input.Entries ?? []).map((e) => ({ Id: e.Id })) };
  });
  pending = [...messages];
  return { deleted };
}

function putEntries(): PutEventsRequestEntry[] {
  return eventBridgeMock.commandCalls(PutEventsCommand).flatMap((call) => call.args[0].input.Entries ?? []);
}

function deps(): ReplayDependencies {
  return {
    sqs: new SQSClient({ region: 'us-east-1' }),
    eventBridge: new EventBridgeClient({ region: 'us-east-1' }),
    replayBusName: REPLAY_BUS,
    maxEntryBytes: ONE_MIB,
    putEventsOptions: { sleep: async () => {} },
  };
}

beforeEach(() => {
  sqsMock.reset();
  eventBridgeMock.reset();
  eventBridgeMock.on(ListRulesCommand).resolves({
    Rules: [{
      Name: 'orders-channel-replay',
      State: 'ENABLED',
      EventBusName: REPLAY_BUS,
      EventPattern: JSON.stringify({ 'source': [REPLAY_SOURCE], 'detail-type': [REPLAY_DETAIL_TYPE], 'detail': { ruleArn: [RULE_A] } }),
    }],
  });
  eventBridgeMock.on(ListTargetsByRuleCommand).resolves({ Targets: [{ Id: 'api', Arn: 'arn:aws:events:us-east-1:111111111111:api-destination/x' }] });
  eventBridgeMock.on(PutEventsCommand).callsFake((input: { Entries: PutEventsRequestEntry[] }) => ({
    FailedEntryCount: 0,
    Entries: input.Entries.map((_, i) => ({ EventId: `e-${i}` })),
  }));
  sqsMock.on(ChangeMessageVisibilityBatchCommand).resolves({ Successful: [] });
  sqsMock.on(GetQueueAttributesCommand).resolves({ Attributes: { MaximumMessageSize: String(ONE_MIB) } });
});

// ---------------------------------------------------------------------------
// The replay-event shortcut ignores RULE_ARN
// ---------------------------------------------------------------------------

describe('a message with no RULE_ARN attribute', () => {
  test('is left in the queue even if its body looks like a replay event (docs: "there is no RULE_ARN" is a reason to stay)', async () => {
    // Not an EventBridge dead letter: no RULE_ARN (e.g. a message any producer with
    // sqs:SendMessage put there, or one moved by hand). Its body merely looks like a replay.
    const forged = message('forged', JSON.stringify(replayEvent(RULE_A, originalEvent('chosen-idempotency-key', { refund: 1_000_000 }))), null);
    const queue = queueOf([forged]);

    const result = await replayDeadLetters(deps(), { queueUrl: QUEUE_URL });

    // Not put on the replay bus (it would reach the channel's API), not deleted.
    expect(putEntries()).toHaveLength(0);
    expect(queue.deleted).toEqual([]);
    expect(result.replayed).toBe(0);
    expect(result.failed.map((f) => f.reason).join('\n')).toMatch(/RULE_ARN/);
  });
});

describe('a dead letter of one channel whose event looks like a replay', () => {
  test('is not replayed to another channel: the replay-event form is trusted only from a rule on the replay bus', async () => {
    // Channel B's rule (on its own source bus) failed an event that a publisher on that bus
    // shaped like a replay event naming channel A. RULE_ARN says where it really failed: B.
    const RULE_B = 'arn:aws:events:us-east-1:111111111111:rule/refunds-bus/refunds-channel';
    const crafted = message('crafted', JSON.stringify(replayEvent(RULE_A, originalEvent('chosen-key', { refund: 1_000_000 }))), {
      RULE_ARN: { DataType: 'String', StringValue: RULE_B },
      ERROR_CODE: { DataType: 'String', StringValue: 'SDK_CLIENT_ERROR' },
    });
    queueOf([crafted]);

    await replayDeadLetters(deps(), { queueUrl: QUEUE_URL });

    // RULE_ARN routes it, never the body's detail.ruleArn (which would reach channel A's partner).
    const routedTo = putEntries().map((e) => JSON.parse(e.Detail!).ruleArn);
    expect(routedTo).not.toContain(RULE_A);
  });
});

// ---------------------------------------------------------------------------
// Both ways of reading a dead letter agree: what one refuses the other refuses, and what
// the first replays can be replayed again once it is parked
// ---------------------------------------------------------------------------

const REPLAY_RULE = `arn:aws:events:us-east-1:111111111111:rule/${REPLAY_BUS}/orders-channel-replay`;

/** The replay event EventBridge parks when the replay of `detail` fails again (its detail as it was put). */
function parkedReplay(detail: string): string {
  return `{"version":"0","id":"replay-1","detail-type":${JSON.stringify(REPLAY_DETAIL_TYPE)},"source":${JSON.stringify(REPLAY_SOURCE)},`
    + `"account":"111111111111","time":"2026-03-02T12:00:00Z","region":"us-east-1","resources":[],"detail":${detail}}`;
}

describe('a dead letter and its parked replay are read the same way', () => {
  test('a repeated key is refused from the first failure on, with the reason the parked path would give', () => {
    const body = JSON.stringify(originalEvent('dup', { status: 'PLACED' })).replace('"status":"PLACED"', '"status":"NEW","status":"PLACED"');
    const first = toReplayEntry(message('dup', body), REPLAY_BUS, ONE_MIB);
    expect(first).toMatchObject({ kind: 'body cannot be read exactly as JSON', reason: expect.stringMatching(/Duplicate key/) });
    // Not replayed once and then stuck: had it been, its parked copy could not be read.
    const parked = toReplayEntry(message('dup-parked', parkedReplay(`{"ruleArn":"${RULE_A}","event":${body}}`),
      { RULE_ARN: { DataType: 'String', StringValue: REPLAY_RULE } }), REPLAY_BUS, ONE_MIB);
    expect(parked).toMatchObject({ kind: 'body cannot be read exactly as JSON' });
  });

  test('what the first failure replays, parked again, replays again to the same channel with the same event text', () => {
    const body = '{"version":"0","id":"big","detail-type":"Order Placed","source":"shop.orders","account":"111111111111",'
      + '"time":"2026-03-01T12:00:00Z","region":"us-east-1","resources":[],"detail":{"orderId":9007199254740993,"price":1.10}}';
    const first = toReplayEntry(message('m1', body), REPLAY_BUS, ONE_MIB) as ReplayEntry;
    expect(first.ruleArn).toBe(RULE_A);
    const second = toReplayEntry(message('m2', parkedReplay(first.entry.Detail!), { RULE_ARN: { DataType: 'String', StringValue: REPLAY_RULE } }),
      REPLAY_BUS, ONE_MIB) as ReplayEntry;
    expect(second.ruleArn).toBe(RULE_A);
    expect(second.entry.Detail).toContain('"orderId":9007199254740993,"price":1.10');
    expect(JSON.parse(second.entry.Detail!)).toEqual(JSON.parse(first.entry.Detail!));
  });
});

// ---------------------------------------------------------------------------
// PutEvents' nesting limit: the replay wrapper adds two levels
// ---------------------------------------------------------------------------

/** A dead letter whose detail is `depth` objects deep. */
function deepBody(id: string, depth: number): string {
  const detail = '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);
  return JSON.stringify(originalEvent(id, 'DETAIL')).replace('"DETAIL"', detail);
}

describe('a dead letter whose detail is as deep as PutEvents allows', () => {
  test('is not turned into a replay entry deeper than PutEvents processes (1000 levels): it is left with that reason up front', () => {
    // "PutEvents will only process nested JSON up to 1000 levels deep." (PutEvents API reference)
    const PUT_EVENTS_MAX_NESTING = 1_000;
    // A detail 999 objects deep was accepted (the event object adds one level: 1,000).
    const replay = toReplayEntry(message('deep', deepBody('deep', PUT_EVENTS_MAX_NESTING - 1)), REPLAY_BUS, ONE_MIB);
    // Wrapped (the replay detail, then the event), it would nest 1,001 levels: it stays, with its reason.
    expect(replay).toMatchObject({ reason: expect.stringMatching(/nests deeper than the 1000 levels PutEvents processes/) });
    // One level less fits exactly: replayed.
    const fits = toReplayEntry(message('fits', deepBody('fits', PUT_EVENTS_MAX_NESTING - 2)), REPLAY_BUS, ONE_MIB);
    expect(fits).toMatchObject({ ruleArn: RULE_A });
  });
});

// ---------------------------------------------------------------------------
// failureReasons keyed by per-message text
// ---------------------------------------------------------------------------

describe('failureReasons', () => {
  test('counts messages by reason: per-message details (a parse position) do not use up the 100 reason keys', async () => {
    // 100 malformed bodies, each broken at a different position, then 50 dead letters of a
    // channel with no replay rule (the case the docs tell the operator to look for).
    const malformed = Array.from({ length: 100 }, (_, i) => message(`bad-${i}`, `{"id":"x",${' '.repeat(i)}oops}`));
    const RULE_GONE = 'arn:aws:events:us-east-1:111111111111:rule/orders-bus/renamed-channel';
    const orphans = Array.from({ length: 50 }, (_, i) => message(`orphan-${i}`, JSON.stringify(originalEvent(`orphan-${i}`)), {
      RULE_ARN: { DataType: 'String', StringValue: RULE_GONE },
    }));
    queueOf([...malformed, ...orphans]);

    const result = await replayDeadLetters(deps(), { queueUrl: QUEUE_URL });
    expect(result.failedCount).toBe(150);

    // Malformed bodies count under one kind, so the 50 orphans keep their own key.
    const orphanKey = Object.keys(result.failureReasons).find((k) => k.includes(RULE_GONE));
    expect(orphanKey).toBeDefined();
    expect(result.failureReasons[orphanKey!]).toBe(50);
  });
});
