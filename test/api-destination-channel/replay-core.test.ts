import {
  EventBridgeClient,
  ListRulesCommand,
  ListTargetsByRuleCommand,
  PutEventsCommand,
  PutEventsRequestEntry,
  PutEventsResultEntry,
  Rule,
} from '@aws-sdk/client-eventbridge';
import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageBatchCommand,
  DeleteMessageBatchRequest,
  GetQueueAttributesCommand,
  Message,
  ReceiveMessageCommand,
  ReceiveMessageRequest,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { originalEvent, replayEvent } from './replay-rules';
import { REPLAY_DETAIL_TYPE, REPLAY_SOURCE, replayDetail } from '../../src/api-destination-channel/replay-contract';
import { parseReplayRequest, ReplayDependencies, ReplayEntry, ReplayResult, replayDeadLetters, toReplayEntry } from '../../src/api-destination-channel/replay-core';
import { putEventsEntrySize } from '../../src/runtime/put-events';

const QUEUE_URL = 'https://sqs.us-east-1.amazonaws.com/111111111111/channel-dlq';
const REPLAY_BUS = 'replay-bus';
const RULE_A = 'arn:aws:events:us-east-1:111111111111:rule/orders-bus/orders-channel';
const RULE_B = 'arn:aws:events:us-east-1:111111111111:rule/orders-bus/refunds-channel';
const REPLAY_RULE_A = 'arn:aws:events:us-east-1:111111111111:rule/replay-bus/orders-channel-replay';
const ONE_MIB = 1_048_576;

const sqsMock = mockClient(SQSClient);
const eventBridgeMock = mockClient(EventBridgeClient);

// ---------------------------------------------------------------------------
// Builders
// ---------------------------------------------------------------------------

interface MessageOptions {
  /** The message body; objects are JSON-encoded. */
  readonly body?: unknown;
  /** RULE_ARN attribute; `null` leaves it out. @default RULE_A */
  readonly ruleArn?: string | null;
}

/** An SQS message of the dead-letter queue; its receipt handle is `rh-<id>`. */
function deadLetter(id: string, options: MessageOptions = {}): Message {
  const body = options.body ?? originalEvent(`event-${id}`);
  const ruleArn = options.ruleArn === undefined ? RULE_A : options.ruleArn;
  return {
    MessageId: id,
    ReceiptHandle: `rh-${id}`,
    Body: typeof body === 'string' ? body : JSON.stringify(body),
    MessageAttributes: ruleArn === null ? undefined : {
      RULE_ARN: { DataType: 'String', StringValue: ruleArn },
      ERROR_CODE: { DataType: 'String', StringValue: 'SDK_CLIENT_ERROR' },
    },
  };
}

function deadLetters(prefix: string, count: number): Message[] {
  return Array.from({ length: count }, (_, i) => deadLetter(`${prefix}${i}`));
}

// ---------------------------------------------------------------------------
// Fakes
// ---------------------------------------------------------------------------

/**
 * A dead-letter queue: ReceiveMessage hands out visible messages (at most `batchSize` a
 * call) and hides them; DeleteMessageBatch removes them, failing the receipt handles in
 * `failDeletes`.
 */
class FakeQueue {
  readonly deleted: string[] = [];
  readonly receiveRequests: ReceiveMessageRequest[] = [];
  private readonly visible: Message[];

  constructor(messages: Message[], private readonly options: { batchSize?: number; failDeletes?: Set<string> } = {}) {
    this.visible = [...messages];
    sqsMock.on(ReceiveMessageCommand).callsFake((input: ReceiveMessageRequest) => {
      this.receiveRequests.push(input);
      const count = Math.min(input.MaxNumberOfMessages ?? 1, this.options.batchSize ?? 10);
      const messagesOut = this.visible.splice(0, count);
      return messagesOut.length > 0 ? { Messages: messagesOut } : {};
    });
    sqsMock.on(DeleteMessageBatchCommand).callsFake((input: DeleteMessageBatchRequest) => {
      const successful = [];
      const failed = [];
      for (const e of input.Entries ?? []) {
        if (this.options.failDeletes?.has(e.ReceiptHandle!)) {
          failed.push({ Id: e.Id, Code: 'ReceiptHandleIsInvalid', Message: 'The receipt handle has expired', SenderFault: true });
        } else {
          this.deleted.push(e.ReceiptHandle!);
          successful.push({ Id: e.Id });
        }
      }
      return { Successful: successful, Failed: failed.length > 0 ? failed : undefined };
    });
  }

  /** Messages never received. */
  get remaining(): number {
    return this.visible.length;
  }
}

/** PutEvents that accepts every entry except those whose original event id `failure` names. */
function fakePutEvents(failure: (eventId: string, attempt: number) => string | undefined = () => undefined) {
  const attempts = new Map<string, number>();
  eventBridgeMock.on(PutEventsCommand).callsFake((input: { Entries: PutEventsRequestEntry[] }) => {
    const results: PutEventsResultEntry[] = input.Entries.map((e) => {
      const eventId = JSON.parse(e.Detail!).event.id as string;
      const attempt = (attempts.get(eventId) ?? 0) + 1;
      attempts.set(eventId, attempt);
      const code = failure(eventId, attempt);
      return code ? { ErrorCode: code, ErrorMessage: `rejected ${eventId}` } : { EventId: `replayed-${eventId}` };
    });
    return { FailedEntryCount: results.filter((r) => r.ErrorCode).length, Entries: results };
  });
}

/** Every entry put on EventBridge, in order. */
function putEntries(): PutEventsRequestEntry[] {
  return eventBridgeMock.commandCalls(PutEventsCommand).flatMap((call) => call.args[0].input.Entries ?? []);
}

function deps(overrides: Partial<ReplayDependencies> = {}): ReplayDependencies {
  return {
    sqs: new SQSClient({ region: 'us-east-1' }),
    eventBridge: new EventBridgeClient({ region: 'us-east-1' }),
    replayBusName: REPLAY_BUS,
    maxEntryBytes: ONE_MIB,
    putEventsOptions: { sleep: async () => {} },
    ...overrides,
  };
}

/** The invariant every result keeps: each received message is replayed, deferred or failed. */
function expectAccounted(result: ReplayResult, received: number, replayed: number, deferred = 0): void {
  expect(result.received).toBe(received);
  expect(result.replayed).toBe(replayed);
  expect(result.deferred).toBe(deferred);
  expect(result.failedCount).toBe(received - replayed - deferred);
  expect(result.failed).toHaveLength(Math.min(100, result.failedCount));
  expect(Object.values(result.failureReasons).reduce((a, b) => a + b, 0)).toBe(result.failedCount);
  expect(result.received).toBe(result.replayed + result.deferred + result.failedCount);
}

/** The replay bus's rule of a channel, as ListRules returns it (the pattern the construct writes). */
function replayRule(name: string, ruleArns: string[], state = 'ENABLED'): Rule {
  return {
    Name: name,
    State: state as Rule['State'],
    EventBusName: REPLAY_BUS,
    EventPattern: JSON.stringify({ 'source': [REPLAY_SOURCE], 'detail-type': [REPLAY_DETAIL_TYPE], 'detail': { ruleArn: ruleArns } }),
  };
}

/** ListRules on the replay bus answers `rules` (in pages of `pageSize`); every rule has a target unless named. */
function replayBusRules(rules: Rule[], options: { pageSize?: number; withoutTargets?: string[] } = {}): void {
  const pageSize = options.pageSize ?? 100;
  eventBridgeMock.on(ListRulesCommand).callsFake((input: { EventBusName?: string; NextToken?: string }) => {
    if (input.EventBusName !== REPLAY_BUS) return { Rules: [] };
    const start = Number(input.NextToken ?? 0);
    const next = start + pageSize;
    return { Rules: rules.slice(start, next), NextToken: next < rules.length ? String(next) : undefined };
  });
  eventBridgeMock.on(ListTargetsByRuleCommand).callsFake((input: { Rule: string }) => (
    options.withoutTargets?.includes(input.Rule) ? { Targets: [] } : { Targets: [{ Id: 'api', Arn: 'arn:aws:events:us-east-1:111111111111:api-destination/x' }] }));
}

/** The receipt handles each ChangeMessageVisibilityBatch call made visible again. */
function released(): string[] {
  return sqsMock.commandCalls(ChangeMessageVisibilityBatchCommand).flatMap((call) =>
    (call.args[0].input.Entries ?? []).filter((e) => e.VisibilityTimeout === 0).map((e) => e.ReceiptHandle!));
}

function failedIds(result: ReplayResult): string[] {
  return result.failed.map((f) => f.messageId).sort();
}

beforeEach(() => {
  sqsMock.reset();
  eventBridgeMock.reset();
  replayBusRules([replayRule('orders-channel-replay', [RULE_A]), replayRule('refunds-channel-replay', [RULE_B])]);
  sqsMock.on(ChangeMessageVisibilityBatchCommand).resolves({ Successful: [] });
  sqsMock.on(GetQueueAttributesCommand).resolves({ Attributes: { MaximumMessageSize: '1048576' } });
});

// ---------------------------------------------------------------------------
// parseReplayRequest
// ---------------------------------------------------------------------------

describe('parseReplayRequest', () => {
  test('accepts a queue URL and an optional positive maxMessages, dropping other fields', () => {
    expect(parseReplayRequest({ queueUrl: QUEUE_URL })).toEqual({ queueUrl: QUEUE_URL, maxMessages: undefined });
    expect(parseReplayRequest({ queueUrl: QUEUE_URL, maxMessages: 25, extra: true })).toEqual({ queueUrl: QUEUE_URL, maxMessages: 25 });
    expect(parseReplayRequest({ queueUrl: 'http://127.0.0.1:5000/123456789012/dlq' }).queueUrl).toBe('http://127.0.0.1:5000/123456789012/dlq');
  });

  test.each([
    ['no payload', undefined],
    ['null', null],
    ['a string', QUEUE_URL],
    ['no queueUrl', {}],
    ['a non-string queueUrl', { queueUrl: 42 }],
    ['a queue name instead of a URL', { queueUrl: 'channel-dlq' }],
    ['a queue ARN instead of a URL', { queueUrl: 'arn:aws:sqs:us-east-1:111111111111:channel-dlq' }],
  ])('rejects %s, saying what is expected', (_, payload) => {
    expect(() => parseReplayRequest(payload)).toThrow(/Invalid replay request .*expected \{"queueUrl": "<SQS queue URL>", "maxMessages"\?: <positive integer>\}/);
  });

  test.each([
    ['zero', 0],
    ['negative', -3],
    ['fractional', 2.5],
    ['a string', '10'],
    ['null', null],
  ])('rejects a maxMessages that is %s', (_, maxMessages) => {
    expect(() => parseReplayRequest({ queueUrl: QUEUE_URL, maxMessages })).toThrow(/maxMessages .* must be a positive integer/);
  });
});

// ---------------------------------------------------------------------------
// toReplayEntry
// ---------------------------------------------------------------------------

describe('toReplayEntry', () => {
  test('wraps a dead letter in a replay event routed by its RULE_ARN', () => {
    const event = originalEvent('e-1', { orderId: 'o-1', note: 'café ☕' });

    const entry = toReplayEntry(deadLetter('m1', { body: event, ruleArn: RULE_B }), REPLAY_BUS, ONE_MIB);

    expect(entry).toEqual({
      ruleArn: RULE_B,
      entry: { EventBusName: REPLAY_BUS, Source: REPLAY_SOURCE, DetailType: REPLAY_DETAIL_TYPE, Detail: expect.any(String) },
    });
    const { detail: _, ...eventWithoutDetail } = event;
    expect(JSON.parse((entry as ReplayEntry).entry.Detail!)).toEqual({ ruleArn: RULE_B, ruleName: 'refunds-channel', event, eventWithoutDetail });
  });

  test('puts a failed replay (a replay event in the queue) back as it is, still routed to the original rule', () => {
    const event = originalEvent('e-2');
    // A replay that failed again lands in the DLQ with the replay rule's ARN.
    const message = deadLetter('m2', { body: replayEvent(RULE_A, event), ruleArn: REPLAY_RULE_A });

    const { ruleArn, entry } = toReplayEntry(message, REPLAY_BUS, ONE_MIB) as ReplayEntry;

    expect(ruleArn).toBe(RULE_A);
    expect(entry.Source).toBe(REPLAY_SOURCE);
    expect(entry.DetailType).toBe(REPLAY_DETAIL_TYPE);
    expect(JSON.parse(entry.Detail!)).toEqual(replayDetail(RULE_A, event));
  });

  test('leaves a replay event without RULE_ARN: anyone who may send to the queue could write one', () => {
    const event = originalEvent('e-3');
    expect(toReplayEntry(deadLetter('m3', { body: replayEvent(RULE_B, event), ruleArn: null }), REPLAY_BUS, ONE_MIB))
      .toMatchObject({ reason: 'no RULE_ARN message attribute: not an EventBridge dead letter, so its channel is unknown' });
  });

  test('a body that looks like a replay event, failed by a channel rule, is routed by its RULE_ARN, not by its body', () => {
    const looksLikeReplay = replayEvent(RULE_A, originalEvent('e-3b'));
    const { ruleArn, entry } = toReplayEntry(deadLetter('m3b', { body: looksLikeReplay, ruleArn: RULE_B }), REPLAY_BUS, ONE_MIB) as ReplayEntry;
    expect(ruleArn).toBe(RULE_B);
    expect(JSON.parse(entry.Detail!)).toEqual(replayDetail(RULE_B, looksLikeReplay));
  });

  test('rejects a dead letter of the replay bus that is not a whole replay event', () => {
    const reason = 'a dead letter of the replay bus that is not a replay event with detail.ruleArn and detail.event';
    const broken = { ...replayEvent(RULE_A, originalEvent('e-4')), detail: { event: originalEvent('e-4') } };
    expect(toReplayEntry(deadLetter('m4', { body: broken, ruleArn: REPLAY_RULE_A }), REPLAY_BUS, ONE_MIB)).toMatchObject({ reason });
    const noEvent = { ...replayEvent(RULE_A, originalEvent('e-5')), detail: { ruleArn: RULE_A } };
    expect(toReplayEntry(deadLetter('m5', { body: noEvent, ruleArn: REPLAY_RULE_A }), REPLAY_BUS, ONE_MIB)).toMatchObject({ reason });
    expect(toReplayEntry(deadLetter('m5b', { body: originalEvent('e-5b'), ruleArn: REPLAY_RULE_A }), REPLAY_BUS, ONE_MIB)).toMatchObject({ reason });
  });

  test('rejects a body that is not JSON', () => {
    const result = toReplayEntry(deadLetter('m6', { body: '{"id": "truncated' }), REPLAY_BUS, ONE_MIB);
    expect(result).toMatchObject({ reason: expect.stringMatching(/^body cannot be read exactly as JSON \(.+\)$/) });
  });

  test('rejects a message without a body', () => {
    const { Body: _, ...withoutBody } = deadLetter('m7');
    expect(toReplayEntry(withoutBody, REPLAY_BUS, ONE_MIB)).toMatchObject({ reason: expect.stringMatching(/^body cannot be read exactly as JSON/) });
  });

  test('rejects an event without RULE_ARN: its channel is unknown', () => {
    expect(toReplayEntry(deadLetter('m8', { ruleArn: null }), REPLAY_BUS, ONE_MIB))
      .toMatchObject({ reason: 'no RULE_ARN message attribute: not an EventBridge dead letter, so its channel is unknown' });
    expect(toReplayEntry(deadLetter('m9', { ruleArn: '' }), REPLAY_BUS, ONE_MIB))
      .toMatchObject({ reason: expect.stringMatching(/^no RULE_ARN message attribute/) });
  });

  test.each([
    ['an object without id and source', { orderId: 'o-1' }],
    ['an object without source', { id: 'e-10' }],
    ['an array', [1, 2, 3]],
    ['a number', 42],
    ['null', 'null'],
    ['a JSON string', '"just a string"'],
  ])('rejects a body that is %s', (_, body) => {
    expect(toReplayEntry(deadLetter('m10', { body }), REPLAY_BUS, ONE_MIB))
      .toMatchObject({ reason: 'body is not an EventBridge event (no id or source)' });
  });

  test('rejects a replay event over maxEntryBytes, and accepts one exactly at it', () => {
    const message = deadLetter('m11', { body: originalEvent('e-11', { blob: 'x'.repeat(500) }) });
    const size = putEventsEntrySize((toReplayEntry(message, REPLAY_BUS, ONE_MIB) as ReplayEntry).entry);
    expect(size).toBeGreaterThan(500);

    expect((toReplayEntry(message, REPLAY_BUS, size) as ReplayEntry).entry.Detail).toContain('"blob"');
    expect(toReplayEntry(message, REPLAY_BUS, size - 1))
      .toMatchObject({ reason: expect.stringMatching(new RegExp(`^replay event is ${size} bytes, over the ${size - 1} bytes a replay may have \\(the PutEvents entry limit, and the queue's maximum message size less 4096 bytes`)) });
  });
});

// ---------------------------------------------------------------------------
// replayDeadLetters
// ---------------------------------------------------------------------------

describe('replayDeadLetters', () => {
  test('drains the queue batch by batch until a receive comes back empty', async () => {
    const messages = deadLetters('m', 13);
    const queue = new FakeQueue(messages);
    fakePutEvents();

    const result = await replayDeadLetters(deps(), { queueUrl: QUEUE_URL });

    expectAccounted(result, 13, 13);
    expect(result.queueUrl).toBe(QUEUE_URL);
    expect(queue.receiveRequests).toHaveLength(3); // 10, 3, then empty
    expect(queue.receiveRequests[0]).toMatchObject({
      QueueUrl: QUEUE_URL,
      MaxNumberOfMessages: 10,
      VisibilityTimeout: 900,
      MessageAttributeNames: ['All'],
    });
    expect(queue.deleted.sort()).toEqual(messages.map((m) => m.ReceiptHandle).sort());
    expect(putEntries().map((e) => JSON.parse(e.Detail!))).toEqual(messages.map((m) => replayDetail(RULE_A, JSON.parse(m.Body!))));
    expect(putEntries().every((e) => e.EventBusName === REPLAY_BUS)).toBe(true);
  });

  test('handles a queue that returns fewer messages than asked for', async () => {
    const messages = deadLetters('m', 7);
    const queue = new FakeQueue(messages, { batchSize: 3 });
    fakePutEvents();

    const result = await replayDeadLetters(deps({ visibilityTimeoutSeconds: 60 }), { queueUrl: QUEUE_URL });

    expectAccounted(result, 7, 7);
    expect(queue.receiveRequests).toHaveLength(4); // 3, 3, 1, then empty
    expect(queue.receiveRequests.every((r) => r.VisibilityTimeout === 60)).toBe(true);
    expect(queue.deleted.sort()).toEqual(messages.map((m) => m.ReceiptHandle).sort());
  });

  test('returns an empty result for an empty queue', async () => {
    const queue = new FakeQueue([]);

    const result = await replayDeadLetters(deps(), { queueUrl: QUEUE_URL });

    expect(result).toEqual({ queueUrl: QUEUE_URL, received: 0, replayed: 0, deferred: 0, failedCount: 0, failureReasons: {}, failed: [] });
    expect(queue.receiveRequests).toHaveLength(1);
    expect(eventBridgeMock.commandCalls(PutEventsCommand)).toHaveLength(0);
    expect(sqsMock.commandCalls(DeleteMessageBatchCommand)).toHaveLength(0);
  });

  test('replays the good messages of a mix and leaves the bad ones in the queue with their reasons', async () => {
    const good = [
      deadLetter('good-a'),
      deadLetter('good-b', { ruleArn: RULE_B }),
      deadLetter('good-replay', { body: replayEvent(RULE_B, originalEvent('event-replayed-before')), ruleArn: REPLAY_RULE_A }),
    ];
    const bad = [
      deadLetter('bad-json', { body: 'not json' }),
      deadLetter('bad-no-rule', { ruleArn: null }),
      deadLetter('bad-not-event', { body: { hello: 'world' } }),
      deadLetter('bad-too-big', { body: originalEvent('event-big', { blob: 'x'.repeat(5_000) }) }),
    ];
    const queue = new FakeQueue([good[0], bad[0], bad[1], good[1], bad[2], good[2], bad[3]]);
    fakePutEvents();
    const log = jest.fn();

    const result = await replayDeadLetters(deps({ maxEntryBytes: 4_000, log }), { queueUrl: QUEUE_URL });

    expectAccounted(result, 7, 3);
    expect(queue.deleted.sort()).toEqual(['rh-good-a', 'rh-good-b', 'rh-good-replay']);
    const reasons = Object.fromEntries(result.failed.map((f) => [f.messageId, f.reason]));
    expect(reasons).toEqual({
      'bad-json': expect.stringMatching(/^body cannot be read exactly as JSON/),
      'bad-no-rule': expect.stringMatching(/^no RULE_ARN message attribute/),
      'bad-not-event': 'body is not an EventBridge event (no id or source)',
      'bad-too-big': expect.stringMatching(/^replay event is \d+ bytes, over the 4000 bytes a replay may have/),
    });
    expect(putEntries().map((e) => JSON.parse(e.Detail!).ruleArn)).toEqual([RULE_A, RULE_B, RULE_B]);
    expect(log).toHaveBeenCalledTimes(4);
    expect(log).toHaveBeenCalledWith('dead letter not replayable; left in the queue', { messageId: 'bad-json', reason: reasons['bad-json'] });
  });

  test('does not put or delete anything when a batch has no replayable message', async () => {
    const queue = new FakeQueue([deadLetter('bad-1', { body: '<xml/>' }), deadLetter('bad-2', { ruleArn: null })]);
    fakePutEvents();

    const result = await replayDeadLetters(deps(), { queueUrl: QUEUE_URL });

    expectAccounted(result, 2, 0);
    expect(failedIds(result)).toEqual(['bad-1', 'bad-2']);
    expect(eventBridgeMock.commandCalls(PutEventsCommand)).toHaveLength(0);
    expect(sqsMock.commandCalls(DeleteMessageBatchCommand)).toHaveLength(0);
    expect(queue.deleted).toEqual([]);
  });

  test('leaves in the queue the messages whose events PutEvents rejects (30% permanently)', async () => {
    const messages = deadLetters('m', 20);
    const queue = new FakeQueue(messages);
    const rejected = new Set(['event-m1', 'event-m4', 'event-m7', 'event-m10', 'event-m13', 'event-m16']);
    fakePutEvents((eventId) => (rejected.has(eventId) ? 'InvalidArgument' : undefined));

    const result = await replayDeadLetters(deps(), { queueUrl: QUEUE_URL });

    expectAccounted(result, 20, 14);
    expect(failedIds(result)).toEqual(['m1', 'm10', 'm13', 'm16', 'm4', 'm7']);
    expect(result.failed.find((f) => f.messageId === 'm4')!.reason).toBe('PutEvents failed: InvalidArgument: rejected event-m4');
    const kept = new Set(['rh-m1', 'rh-m4', 'rh-m7', 'rh-m10', 'rh-m13', 'rh-m16']);
    expect(queue.deleted.sort()).toEqual(messages.map((m) => m.ReceiptHandle!).filter((h) => !kept.has(h)).sort());
    // Permanent errors are not retried: one put per message.
    expect(putEntries()).toHaveLength(20);
  });

  test('deletes messages whose events were accepted after a throttled first attempt', async () => {
    const messages = deadLetters('m', 4);
    const queue = new FakeQueue(messages);
    fakePutEvents((eventId, attempt) => (eventId === 'event-m2' && attempt === 1 ? 'ThrottlingException' : undefined));

    const result = await replayDeadLetters(deps(), { queueUrl: QUEUE_URL });

    expectAccounted(result, 4, 4);
    expect(putEntries().map((e) => JSON.parse(e.Detail!).event.id)).toEqual(['event-m0', 'event-m1', 'event-m2', 'event-m3', 'event-m2']);
    expect(queue.deleted.sort()).toEqual(['rh-m0', 'rh-m1', 'rh-m2', 'rh-m3']);
  });

  test('reports replayed messages whose delete failed, without counting them as replayed', async () => {
    const messages = deadLetters('m', 5);
    const queue = new FakeQueue(messages, { failDeletes: new Set(['rh-m3']) });
    fakePutEvents();

    const result = await replayDeadLetters(deps(), { queueUrl: QUEUE_URL });

    expectAccounted(result, 5, 4);
    expect(result.failed).toEqual([{
      messageId: 'm3',
      reason: 'replayed, but delete failed (ReceiptHandleIsInvalid: The receipt handle has expired); it will be delivered again after the visibility timeout',
    }]);
    expect(queue.deleted.sort()).toEqual(['rh-m0', 'rh-m1', 'rh-m2', 'rh-m4']);
    expect(putEntries()).toHaveLength(5);
  });

  test('stops after maxMessages', async () => {
    const messages = deadLetters('m', 25);
    const queue = new FakeQueue(messages);
    fakePutEvents();

    const result = await replayDeadLetters(deps(), { queueUrl: QUEUE_URL, maxMessages: 12 });

    expectAccounted(result, 12, 12);
    expect(queue.receiveRequests.map((r) => r.MaxNumberOfMessages)).toEqual([10, 2]);
    expect(queue.remaining).toBe(13);
    expect(queue.deleted.sort()).toEqual(messages.slice(0, 12).map((m) => m.ReceiptHandle).sort());
  });

  test('does not count the messages it leaves towards maxMessages (another stack\'s dead letters cannot starve a run)', async () => {
    const queue = new FakeQueue([deadLetter('bad', { body: 'nope' }), deadLetter('theirs', { ruleArn: RULE_OTHER_STACK }), ...deadLetters('m', 5)]);
    fakePutEvents();

    const result = await replayDeadLetters(deps(), { queueUrl: QUEUE_URL, maxMessages: 3 });

    expectAccounted(result, 5, 3);
    expect(failedIds(result)).toEqual(['bad', 'theirs']);
    expect(queue.receiveRequests.map((r) => r.MaxNumberOfMessages)).toEqual([3, 2]);
    expect(queue.deleted.sort()).toEqual(['rh-m0', 'rh-m1', 'rh-m2']);
    expect(queue.remaining).toBe(2);
  });

  test('stops receiving when the invocation has too little time left', async () => {
    const messages = deadLetters('m', 30);
    const queue = new FakeQueue(messages);
    fakePutEvents();
    // Checked before each receive: two batches fit, then less than the 20 s margin is left.
    const remainingTimeMs = jest.fn().mockReturnValueOnce(300_000).mockReturnValueOnce(20_001).mockReturnValue(19_999);

    const result = await replayDeadLetters(deps({ remainingTimeMs }), { queueUrl: QUEUE_URL });

    expectAccounted(result, 20, 20);
    expect(queue.receiveRequests).toHaveLength(2);
    expect(queue.remaining).toBe(10);
    expect(queue.deleted.sort()).toEqual(messages.slice(0, 20).map((m) => m.ReceiptHandle).sort());
  });

  test('receives nothing when started with less than the margin left', async () => {
    const queue = new FakeQueue(deadLetters('m', 3));

    const result = await replayDeadLetters(deps({ remainingTimeMs: () => 5_000 }), { queueUrl: QUEUE_URL });

    expect(result).toEqual({ queueUrl: QUEUE_URL, received: 0, replayed: 0, deferred: 0, failedCount: 0, failureReasons: {}, failed: [] });
    expect(queue.receiveRequests).toHaveLength(0);
    expect(queue.remaining).toBe(3);
  });
});

// ---------------------------------------------------------------------------
// Only where a replay rule takes it, and only what existed when the run started
// ---------------------------------------------------------------------------

const RULE_OTHER_STACK = 'arn:aws:events:us-east-1:111111111111:rule/orders-bus/OtherStack-Channel-1A2B3C';

describe('replayDeadLetters keeps what no replay rule would take', () => {
  test('a dead letter whose rule has no replay rule on this bus stays in the queue, visible again, with its reason', async () => {
    const queue = new FakeQueue([deadLetter('mine'), deadLetter('theirs', { ruleArn: RULE_OTHER_STACK })]);
    fakePutEvents();

    const result = await replayDeadLetters(deps(), { queueUrl: QUEUE_URL });

    expectAccounted(result, 2, 1);
    expect(result.failed).toEqual([{
      messageId: 'theirs',
      reason: `no replay rule on ${REPLAY_BUS} takes rule ${RULE_OTHER_STACK} (no enabled replay rule matches it): its channel may live in another stack `
        + '(use that stack\'s replay function), or was renamed or removed; the message stays in the queue',
    }]);
    expect(putEntries().map((e) => JSON.parse(e.Detail!).ruleArn)).toEqual([RULE_A]);
    expect(queue.deleted).toEqual(['rh-mine']);
    expect(released()).toEqual(['rh-theirs']);
  });

  test('a failed replay (a replay event) whose original rule has no replay rule stays too', async () => {
    const body = replayEvent(RULE_OTHER_STACK, originalEvent('event-x'));
    const queue = new FakeQueue([deadLetter('replayed-elsewhere', { body, ruleArn: REPLAY_RULE_A })]);
    fakePutEvents();

    const result = await replayDeadLetters(deps(), { queueUrl: QUEUE_URL });

    expectAccounted(result, 1, 0);
    expect(result.failed[0].reason).toMatch(new RegExp(`^no replay rule on ${REPLAY_BUS} takes rule ${RULE_OTHER_STACK} `));
    expect(eventBridgeMock.commandCalls(PutEventsCommand)).toHaveLength(0);
    expect(queue.deleted).toEqual([]);
  });

  test.each([
    ['disabled', [replayRule('orders-channel-replay', [RULE_A], 'DISABLED')], {}, 'no enabled replay rule matches it'],
    ['without a target', [replayRule('orders-channel-replay', [RULE_A])], { withoutTargets: ['orders-channel-replay'] }, 'replay rule orders-channel-replay has no target'],
    ['with an edited pattern', [{ ...replayRule('orders-channel-replay', [RULE_A]), EventPattern: JSON.stringify({ 'source': [REPLAY_SOURCE], 'detail-type': [REPLAY_DETAIL_TYPE], 'detail': { ruleArn: [RULE_A] }, 'account': ['999999999999'] }) }], {}, 'no enabled replay rule matches it'],
    ['with an unreadable pattern', [{ ...replayRule('orders-channel-replay', [RULE_A]), EventPattern: '{' }], {}, 'no enabled replay rule matches it'],
  ])('a replay rule that is %s is not trusted', async (_, rules, options, why) => {
    replayBusRules(rules as Rule[], options);
    const queue = new FakeQueue([deadLetter('m0')]);
    fakePutEvents();

    const result = await replayDeadLetters(deps(), { queueUrl: QUEUE_URL });

    expectAccounted(result, 1, 0);
    expect(result.failed[0].reason).toContain(`(${why})`);
    expect(eventBridgeMock.commandCalls(PutEventsCommand)).toHaveLength(0);
    expect(queue.deleted).toEqual([]);
  });

  test('reads every page of the replay bus\'s rules, and each rule\'s targets once per batch', async () => {
    const rules = Array.from({ length: 7 }, (_, i) => replayRule(`filler-${i}`, [`${RULE_A}-filler-${i}`]));
    replayBusRules([...rules, replayRule('refunds-channel-replay', [RULE_B])], { pageSize: 3 });
    const queue = new FakeQueue(Array.from({ length: 4 }, (_, i) => deadLetter(`b${i}`, { ruleArn: RULE_B })));
    fakePutEvents();

    const result = await replayDeadLetters(deps(), { queueUrl: QUEUE_URL });

    expectAccounted(result, 4, 4);
    expect(eventBridgeMock.commandCalls(ListRulesCommand).map((c) => c.args[0].input.NextToken)).toEqual([undefined, '3', '6']);
    expect(eventBridgeMock.commandCalls(ListTargetsByRuleCommand).map((c) => c.args[0].input.Rule)).toEqual(['refunds-channel-replay']);
    expect(queue.deleted).toHaveLength(4);
  });

  test('a batch whose replay rules cannot be read is left, visible again, and the run ends', async () => {
    eventBridgeMock.on(ListRulesCommand).rejects(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }));
    const queue = new FakeQueue(deadLetters('m', 13));

    const result = await replayDeadLetters(deps(), { queueUrl: QUEUE_URL });

    expectAccounted(result, 10, 0);
    expect(result.failureReasons).toEqual({ 'could not read the replay rules (ThrottlingException: Rate exceeded)': 10 });
    expect(queue.receiveRequests).toHaveLength(1);
    expect(eventBridgeMock.commandCalls(PutEventsCommand)).toHaveLength(0);
    expect(queue.deleted).toEqual([]);
    expect(released()).toHaveLength(10);
  });

  test('reads the replay rules again for every batch: a rule deleted during the run is not trusted', async () => {
    let reads = 0;
    eventBridgeMock.on(ListRulesCommand).callsFake(() => {
      reads++;
      // The channel's replay rule is deleted (a renamed channel's old rule) after the first batch.
      return { Rules: reads === 1 ? [replayRule('orders-channel-replay', [RULE_A])] : [] };
    });
    const queue = new FakeQueue(deadLetters('m', 15));
    fakePutEvents();

    const result = await replayDeadLetters(deps(), { queueUrl: QUEUE_URL });

    expectAccounted(result, 15, 10);
    expect(reads).toBe(2);
    expect(putEntries()).toHaveLength(10);
    expect(queue.deleted).toHaveLength(10);
    expect(Object.values(result.failureReasons)).toEqual([5]);
    expect(Object.keys(result.failureReasons)[0]).toMatch(/\(no enabled replay rule matches it\)/);
  });

  test('a failed target look-up leaves that message in the queue and is asked again for the next one', async () => {
    let lookUps = 0;
    eventBridgeMock.on(ListTargetsByRuleCommand).callsFake(async () => {
      lookUps++;
      if (lookUps === 1) throw Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' });
      return { Targets: [{ Id: 'api', Arn: 'arn:aws:events:us-east-1:111111111111:api-destination/x' }] };
    });
    const queue = new FakeQueue(deadLetters('m', 2), { batchSize: 1 });
    fakePutEvents();

    const result = await replayDeadLetters(deps(), { queueUrl: QUEUE_URL });

    expectAccounted(result, 2, 1);
    expect(result.failed).toEqual([{ messageId: 'm0', reason: 'could not check the replay rules (ThrottlingException: Rate exceeded)' }]);
    expect(queue.deleted).toEqual(['rh-m1']);
    expect(released()).toEqual(['rh-m0']);
  });
});

describe('replayDeadLetters takes only the dead letters that existed when it started', () => {
  const STARTED_AT = Date.UTC(2026, 10, 30, 12);

  function sentAt(message: Message, sentTimestamp: number): Message {
    return { ...message, Attributes: { SentTimestamp: String(sentTimestamp) } };
  }

  test('messages sent after the run started are deferred: not replayed, not deleted, visible again at the end', async () => {
    const old = [sentAt(deadLetter('old-1'), STARTED_AT - 60_000), sentAt(deadLetter('old-2'), STARTED_AT)];
    const fresh = [sentAt(deadLetter('new-1'), STARTED_AT + 1), sentAt(deadLetter('new-2'), STARTED_AT + 5_000)];
    const queue = new FakeQueue([old[0], fresh[0], old[1], fresh[1]]);
    fakePutEvents();

    const result = await replayDeadLetters(deps({ now: () => STARTED_AT }), { queueUrl: QUEUE_URL });

    expectAccounted(result, 4, 2, 2);
    expect(queue.deleted.sort()).toEqual(['rh-old-1', 'rh-old-2']);
    expect(putEntries()).toHaveLength(2);
    expect(released().sort()).toEqual(['rh-new-1', 'rh-new-2']);
    expect(queue.receiveRequests[0].MessageSystemAttributeNames).toEqual(['SentTimestamp']);
  });

  test('a replay the endpoint rejects again returns as a new message and is not taken again by the same run', async () => {
    // The queue: 3 dead letters; each replay put "fails at the endpoint" and lands back in the
    // queue a moment later, as EventBridge does with a replay rule's failed delivery.
    let clock = STARTED_AT;
    const visible: Message[] = deadLetters('m', 3).map((m) => sentAt(m, STARTED_AT - 1_000));
    let returned = 0;
    sqsMock.on(ReceiveMessageCommand).callsFake(() => ({ Messages: visible.splice(0, 10) }));
    sqsMock.on(DeleteMessageBatchCommand).callsFake((input: DeleteMessageBatchRequest) => (
      { Successful: (input.Entries ?? []).map((e) => ({ Id: e.Id })) }));
    eventBridgeMock.on(PutEventsCommand).callsFake((input: { Entries: PutEventsRequestEntry[] }) => {
      for (const e of input.Entries) {
        clock += 1_000;
        const back = JSON.stringify({ ...replayEvent(RULE_A, JSON.parse(e.Detail!).event), detail: JSON.parse(e.Detail!) });
        visible.push(sentAt(deadLetter(`returned-${returned++}`, { body: back, ruleArn: REPLAY_RULE_A }), clock));
      }
      return { FailedEntryCount: 0, Entries: input.Entries.map((_, i) => ({ EventId: `r-${i}` })) };
    });

    const result = await replayDeadLetters(deps({ now: () => STARTED_AT }), { queueUrl: QUEUE_URL });

    expectAccounted(result, 6, 3, 3);
    expect(eventBridgeMock.commandCalls(PutEventsCommand)).toHaveLength(1);
    expect(putEntries()).toHaveLength(3);
    expect(released().sort()).toEqual(['rh-returned-0', 'rh-returned-1', 'rh-returned-2']);
  });
});

describe('replayDeadLetters keeps the event exact, the result deliverable, and what it leaves visible', () => {
  const BIG = '9007199254740993'; // 2^53 + 1: the nearest double is 9007199254740992
  const INT64_MAX = '9223372036854775807';

  test('integers beyond 2^53 replay with their digits (the dead letter is the only exact copy)', () => {
    const body = '{"version":"0","id":"e-big","detail-type":"Order Placed","source":"shop.orders","account":"111111111111",'
      + `"time":"2026-11-30T12:00:00Z","region":"us-east-1","resources":[],"detail":{"orderId":${BIG},"sequence":${INT64_MAX},"price":1.10}}`;
    const { entry } = toReplayEntry(deadLetter('big', { body }), REPLAY_BUS, ONE_MIB) as ReplayEntry;
    expect(entry.Detail).toContain(`"detail":{"orderId":${BIG},"sequence":${INT64_MAX},"price":1.10}`);
  });

  test('a replay must fit the queue with room to be parked again: the limit is the queue\'s maximum message size less 4 KiB', async () => {
    sqsMock.on(GetQueueAttributesCommand).resolves({ Attributes: { MaximumMessageSize: '262144' } });
    const sizeOf = (m: Message) => putEventsEntrySize((toReplayEntry(m, REPLAY_BUS, ONE_MIB) as ReplayEntry).entry);
    const padded = (id: string, target: number) => {
      const probe = deadLetter(id, { body: originalEvent(`event-${id}`, { blob: '' }) });
      return deadLetter(id, { body: originalEvent(`event-${id}`, { blob: 'x'.repeat(target - sizeOf(probe)) }) });
    };
    const fits = padded('fits', 262_144 - 4_096);
    const tooBig = padded('too-big', 262_144 - 4_096 + 1);
    expect([sizeOf(fits), sizeOf(tooBig)]).toEqual([258_048, 258_049]);
    const queue = new FakeQueue([fits, tooBig]);
    fakePutEvents();

    const result = await replayDeadLetters(deps(), { queueUrl: QUEUE_URL });

    expectAccounted(result, 2, 1);
    expect(queue.deleted).toEqual(['rh-fits']);
    expect(result.failed[0].reason).toMatch(/^replay event is 258049 bytes, over the 258048 bytes a replay may have/);
  });

  test('20,000 dead letters of another stack: the result lists 100, counts all by reason, and stays far under 6 MB', async () => {
    const mine = Array.from({ length: 200 }, (_, i) => deadLetter(`mine-${i}`));
    const theirs = Array.from({ length: 19_800 }, (_, i) => deadLetter(`theirs-${i}`, { ruleArn: RULE_OTHER_STACK }));
    const queue = new FakeQueue(theirs.flatMap((m, i) => (i % 99 === 0 && mine.length ? [mine.pop()!, m] : [m])).concat(mine));
    fakePutEvents();

    const result = await replayDeadLetters(deps(), { queueUrl: QUEUE_URL });

    expectAccounted(result, 20_000, 200);
    expect(Object.values(result.failureReasons)).toEqual([19_800]);
    expect(Object.keys(result.failureReasons)[0]).toContain(RULE_OTHER_STACK);
    expect(Buffer.byteLength(JSON.stringify(result))).toBeLessThan(100_000);
    expect(queue.deleted).toHaveLength(200);
  });

  test('at most 100 distinct reasons are listed; the rest are counted under one key', async () => {
    const queue = new FakeQueue(Array.from({ length: 150 }, (_, i) => deadLetter(`bad-${i}`, { ruleArn: `${RULE_OTHER_STACK}-${i}` })));

    const result = await replayDeadLetters(deps(), { queueUrl: QUEUE_URL });

    expectAccounted(result, 150, 0);
    expect(Object.keys(result.failureReasons)).toHaveLength(101);
    expect(result.failureReasons['(other reasons, not listed)']).toBe(50);
    expect(queue.deleted).toEqual([]);
  });

  test('messages a run left are made visible again when the run then fails', async () => {
    sqsMock.on(ReceiveMessageCommand)
      .resolvesOnce({ Messages: [deadLetter('theirs', { ruleArn: RULE_OTHER_STACK })] })
      .rejects(Object.assign(new Error('Service Unavailable'), { name: 'ServiceUnavailable' }));

    await expect(replayDeadLetters(deps(), { queueUrl: QUEUE_URL })).rejects.toThrow('Service Unavailable');
    expect(released()).toEqual(['rh-theirs']);
  });

  test('a queue that reports no maximum message size stops the run before it receives anything', async () => {
    sqsMock.on(GetQueueAttributesCommand).resolves({ Attributes: {} });
    const queue = new FakeQueue(deadLetters('m', 2));

    await expect(replayDeadLetters(deps(), { queueUrl: QUEUE_URL })).rejects.toThrow(/reported no MaximumMessageSize/);
    expect(queue.receiveRequests).toHaveLength(0);
  });
});
