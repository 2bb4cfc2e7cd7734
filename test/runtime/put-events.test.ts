import { EventBridgeClient, PutEventsCommand, PutEventsRequestEntry, PutEventsResultEntry } from '@aws-sdk/client-eventbridge';
import { mockClient } from 'aws-sdk-client-mock';
import { MAX_ENTRIES_PER_PUT_EVENTS, putEventsEntrySize, putEventsReliably } from '../../src/runtime/put-events';

const eventBridge = mockClient(EventBridgeClient);
const client = new EventBridgeClient({ region: 'us-east-1' });
const noSleep = async () => {};

beforeEach(() => {
  eventBridge.reset();
});

afterEach(() => {
  jest.restoreAllMocks();
});

/** Entry number `n`: its Detail names it, so calls can be inspected by number. */
function entry(n: number, detailPadding = ''): PutEventsRequestEntry {
  return { EventBusName: 'bus', Source: 'test.source', DetailType: 'Test', Detail: JSON.stringify({ n, pad: detailPadding }) };
}

function entries(count: number): PutEventsRequestEntry[] {
  return Array.from({ length: count }, (_, n) => entry(n));
}

/** The entry numbers sent in each PutEvents call, in call order. */
function sentNumbers(): number[][] {
  return eventBridge.commandCalls(PutEventsCommand).map((call) =>
    (call.args[0].input.Entries ?? []).map((e) => JSON.parse(e.Detail!).n as number));
}

/** A PutEvents fake that fails the entries `failure(n, attempt)` names and accepts the rest. */
function putEventsFake(failure: (n: number, attempt: number) => string | undefined) {
  const attempts = new Map<number, number>();
  return (input: { Entries: PutEventsRequestEntry[] }) => {
    const results: PutEventsResultEntry[] = input.Entries.map((e) => {
      const n = JSON.parse(e.Detail!).n as number;
      const attempt = (attempts.get(n) ?? 0) + 1;
      attempts.set(n, attempt);
      const code = failure(n, attempt);
      return code ? { ErrorCode: code, ErrorMessage: `${code} for ${n}` } : { EventId: `id-${n}` };
    });
    return { FailedEntryCount: results.filter((r) => r.ErrorCode).length, Entries: results };
  };
}

describe('putEventsEntrySize', () => {
  test('counts the UTF-8 bytes of Source, DetailType, Detail and each Resource', () => {
    const size = putEventsEntrySize({
      EventBusName: 'not-counted-bus',
      Source: 'shop.orders', // 11 bytes
      DetailType: 'Order Placed', // 12 bytes
      Detail: '{"city":"Zürich","emoji":"😀"}', // 27 ASCII + ü (2 bytes) + 😀 (4 bytes) = 33 bytes
      Resources: ['arn:aws:s3:::b', 'ré'], // 14 bytes + 3 bytes
    });
    expect(size).toBe(11 + 12 + 33 + 14 + 3);
  });

  test('adds 14 bytes when Time is set', () => {
    const base: PutEventsRequestEntry = { Source: 'a', DetailType: 'bc', Detail: '{}' };
    expect(putEventsEntrySize(base)).toBe(5);
    expect(putEventsEntrySize({ ...base, Time: new Date('2026-01-01T00:00:00Z') })).toBe(5 + 14);
  });

  test('counts missing fields as zero', () => {
    expect(putEventsEntrySize({})).toBe(0);
  });
});

describe('putEventsReliably', () => {
  test('puts 25 entries in calls of 10, 10 and 5, one outcome per entry in input order', async () => {
    eventBridge.on(PutEventsCommand).callsFake(putEventsFake(() => undefined));

    const outcomes = await putEventsReliably(client, entries(25), { sleep: noSleep });

    expect(sentNumbers().map((call) => call.length)).toEqual([MAX_ENTRIES_PER_PUT_EVENTS, MAX_ENTRIES_PER_PUT_EVENTS, 5]);
    expect(sentNumbers().flat()).toEqual(Array.from({ length: 25 }, (_, n) => n));
    expect(outcomes).toEqual(Array.from({ length: 25 }, (_, n) => ({ ok: true, eventId: `id-${n}` })));
  });

  test('splits entries whose total size is over maxRequestBytes', async () => {
    eventBridge.on(PutEventsCommand).callsFake(putEventsFake(() => undefined));
    const input = entries(5);
    const size = putEventsEntrySize(input[0]);
    input.forEach((e) => expect(putEventsEntrySize(e)).toBe(size));

    // Two entries fit in a request, three do not.
    const outcomes = await putEventsReliably(client, input, { maxRequestBytes: 2 * size + 1, sleep: noSleep });

    expect(sentNumbers()).toEqual([[0, 1], [2, 3], [4]]);
    expect(outcomes.every((o) => o.ok)).toBe(true);
  });

  test('fills a request up to exactly maxRequestBytes', async () => {
    eventBridge.on(PutEventsCommand).callsFake(putEventsFake(() => undefined));
    const input = entries(4);
    const size = putEventsEntrySize(input[0]);

    await putEventsReliably(client, input, { maxRequestBytes: 2 * size, sleep: noSleep });

    expect(sentNumbers()).toEqual([[0, 1], [2, 3]]);
  });

  test('sends an entry larger than maxRequestBytes alone rather than dropping it', async () => {
    eventBridge.on(PutEventsCommand).callsFake(putEventsFake(() => undefined));
    const input = [entry(0), entry(1, 'x'.repeat(500)), entry(2)];

    const outcomes = await putEventsReliably(client, input, { maxRequestBytes: 300, sleep: noSleep });

    expect(sentNumbers()).toEqual([[0], [1], [2]]);
    expect(outcomes).toHaveLength(3);
  });

  test('resends only the entries that were throttled', async () => {
    const throttledOnce = new Set([1, 4, 12]);
    eventBridge.on(PutEventsCommand).callsFake(putEventsFake((n, attempt) =>
      throttledOnce.has(n) && attempt === 1 ? 'ThrottlingException' : undefined));
    const sleep = jest.fn(noSleep);

    const outcomes = await putEventsReliably(client, entries(15), { sleep });

    expect(sentNumbers()).toEqual([
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
      [10, 11, 12, 13, 14],
      [1, 4, 12],
    ]);
    expect(outcomes).toEqual(Array.from({ length: 15 }, (_, n) => ({ ok: true, eventId: `id-${n}` })));
    expect(sleep).toHaveBeenCalledTimes(1);
  });

  test('retries InternalFailure like throttling', async () => {
    eventBridge.on(PutEventsCommand).callsFake(putEventsFake((n, attempt) =>
      n === 0 && attempt < 3 ? 'InternalFailure' : undefined));

    const outcomes = await putEventsReliably(client, entries(2), { sleep: noSleep });

    expect(sentNumbers()).toEqual([[0, 1], [0], [0]]);
    expect(outcomes).toEqual([{ ok: true, eventId: 'id-0' }, { ok: true, eventId: 'id-1' }]);
  });

  test.each(['ValidationException', 'AccessDeniedException', 'MalformedDetail', 'NotAuthorized'])(
    'does not retry the permanent error code %s',
    async (code) => {
      eventBridge.on(PutEventsCommand).callsFake(putEventsFake((n) => (n === 1 ? code : undefined)));
      const sleep = jest.fn(noSleep);

      const outcomes = await putEventsReliably(client, entries(3), { sleep });

      expect(sentNumbers()).toEqual([[0, 1, 2]]);
      expect(sleep).not.toHaveBeenCalled();
      expect(outcomes).toEqual([
        { ok: true, eventId: 'id-0' },
        { ok: false, errorCode: code, errorMessage: `${code} for 1` },
        { ok: true, eventId: 'id-2' },
      ]);
    },
  );

  test('gives up after maxAttempts with the last error code, backing off exponentially with jitter', async () => {
    eventBridge.on(PutEventsCommand).callsFake(putEventsFake((n) => (n === 0 ? 'ThrottlingException' : undefined)));
    jest.spyOn(Math, 'random').mockReturnValue(0.5);
    const sleep = jest.fn(noSleep);

    const outcomes = await putEventsReliably(client, entries(2), { maxAttempts: 3, baseDelayMs: 100, sleep });

    expect(sentNumbers()).toEqual([[0, 1], [0], [0]]);
    expect(outcomes).toEqual([
      { ok: false, errorCode: 'ThrottlingException', errorMessage: 'ThrottlingException for 0' },
      { ok: true, eventId: 'id-1' },
    ]);
    // Full jitter: random() * base * 2^(attempt - 1), with random() = 0.5.
    expect(sleep.mock.calls).toEqual([[50], [100]]);
  });

  test('gives every entry of a call that throws an outcome with the error name, marked as a failed call', async () => {
    const denied = Object.assign(new Error('not allowed to put on bus'), { name: 'AccessDeniedException' });
    eventBridge.on(PutEventsCommand)
      .rejectsOnce(denied)
      .callsFake(putEventsFake(() => undefined));

    const outcomes = await putEventsReliably(client, entries(12), { sleep: noSleep });

    expect(sentNumbers()).toEqual([[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [10, 11]]);
    expect(outcomes).toHaveLength(12);
    expect(outcomes.slice(0, 10)).toEqual(Array(10).fill({ ok: false, errorCode: 'AccessDeniedException', errorMessage: 'not allowed to put on bus', callFailed: true }));
    expect(outcomes.slice(10)).toEqual([{ ok: true, eventId: 'id-10' }, { ok: true, eventId: 'id-11' }]);
  });

  test('retries a whole call that throws a retryable error', async () => {
    const throttled = Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' });
    eventBridge.on(PutEventsCommand)
      .rejectsOnce(throttled)
      .callsFake(putEventsFake(() => undefined));

    const outcomes = await putEventsReliably(client, entries(3), { sleep: noSleep });

    expect(sentNumbers()).toEqual([[0, 1, 2], [0, 1, 2]]);
    expect(outcomes.every((o) => o.ok)).toBe(true);
  });

  test('reports entries that PutEvents returned no result for', async () => {
    eventBridge.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [{ EventId: 'only-one' }] });

    const outcomes = await putEventsReliably(client, entries(2), { sleep: noSleep });

    expect(outcomes).toEqual([
      { ok: true, eventId: 'only-one' },
      { ok: false, errorCode: 'MissingResult', errorMessage: 'PutEvents returned fewer results than entries' },
    ]);
  });

  // Deferred entries keep a big Detail from being held while the calls before it run: each
  // is built for the call that carries it, again for a retry, and grouped by its stated size.
  test('builds a deferred entry only for the call that carries it, and again for its retry', async () => {
    const throttledOnce = new Set([3]);
    const built: number[] = [];
    const fake = putEventsFake((n, attempt) => throttledOnce.has(n) && attempt === 1 ? 'ThrottlingException' : undefined);
    eventBridge.on(PutEventsCommand).callsFake((input) => {
      built.push(-1); // a call boundary
      return fake(input);
    });
    const deferred = entries(4).map((e, n) => ({
      size: 600,
      build: () => {
        built.push(n);
        return e;
      },
    }));

    const outcomes = await putEventsReliably(client, deferred, { sleep: noSleep, maxRequestBytes: 1200 });

    // Two entries of the stated 600 bytes fill a 1200-byte call; each is built just before its call.
    expect(sentNumbers()).toEqual([[0, 1], [2, 3], [3]]);
    expect(built).toEqual([0, 1, -1, 2, 3, -1, 3, -1]);
    expect(outcomes.every((o) => o.ok)).toBe(true);
  });

  test('makes no call for no entries', async () => {
    expect(await putEventsReliably(client, [], { sleep: noSleep })).toEqual([]);
    expect(eventBridge.commandCalls(PutEventsCommand)).toHaveLength(0);
  });
});
