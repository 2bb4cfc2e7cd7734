import { createHash, randomUUID } from 'crypto';
import { CreateTableCommand, ScanCommand } from '@aws-sdk/client-dynamodb';
import { CreateEventBusCommand, PutRuleCommand, PutTargetsCommand } from '@aws-sdk/client-eventbridge';
import { CreateBucketCommand, GetObjectCommand, ListObjectsV2Command, PutBucketVersioningCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { DeleteMessageCommand, ReceiveMessageCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import type { SQSEvent } from 'aws-lambda';
import fc from 'fast-check';
import { recordLine } from './publisher-fixtures';
import { DynamoDbObjectLedger } from '../../src/tiered-event-ingest/object-ledger-core';
import { ConsumerLog, consumeObjectMessages } from '../../src/tiered-event-ingest/object-queue-consumer-core';
import { captureLogger, LoggedLine } from '../support/capture-logger';
import {
  CrashPointReport,
  CrashPointScenario,
  CrashPointViolation,
  exploreCrashPoints,
  FakeClock,
  Fault,
  FAULT_KINDS,
  FaultInjector,
  invariant,
  OutcomeCounts,
} from '../support/crash-points';
import { createMotoQueue, drainMotoQueue, motoClients, MotoQueue, uniqueName } from '../support/moto';
import { SqsBatch, SqsEvent, SqsEventSource, SqsVisibility } from '../support/platform';

/**
 * The TieredEventIngest batch publisher (`consumeObjectMessages`) under the crash-point
 * harness, against moto: every AWS call of an invocation (the ledger's DynamoDB updates, the
 * S3 read and quarantine writes, the PutEvents flights, the SQS visibility change and
 * continuation) fails as a lost request, a lost answer, a crash and (PutEvents) a partial
 * failure; Lambda's SQS event source then redelivers as AWS does (visibility timeout, partial
 * batch responses, the queue's redrive to the object DLQ after 5 receives).
 *
 * Invariant, after redelivery settles (see `checkWorld`):
 * - every record line of the object is on the curated bus (in some delivered CuratedBatch;
 *   duplicates are allowed, delivery is at least once) or in a quarantine segment with its
 *   reason, OR the object's notification is parked in the object DLQ, where an operator finds
 *   it: no record is silently missing;
 * - the ledger never says DONE while a record is missing (a DONE object is never published
 *   again: a redriven notification would be a duplicate, so the record would be lost for good);
 * - a parked notification really is the way back: the operator's redrive (the notification
 *   moved back to the object queue) then publishes every missing record;
 * - the ledger is completed (DONE) by one invocation only.
 */

/** The construct's settings for a publisher timeout of 60 s, derived from it as the construct derives them. */
const PUBLISHER_TIMEOUT_SECONDS = 60;
const VISIBILITY_SECONDS = PUBLISHER_TIMEOUT_SECONDS * 6;
const LEASE_SECONDS = PUBLISHER_TIMEOUT_SECONDS + 60;
const RESERVE_MS = Math.min(15_000, (PUBLISHER_TIMEOUT_SECONDS * 1000) / 4);
const MAX_RECEIVE_COUNT = 5;
/** SQS's longest delivery delay: every delayed continuation is due within it. */
const MAX_DELAY_SECONDS = 900;
const DATA_PREFIX = 'data/';
const QUARANTINE_PREFIX = 'quarantine/';

const platform = motoClients(); // the harness's own view of AWS: never faulted
const handlerClients = motoClients(); // the clients the publisher uses: faulted
const injector = new FaultInjector(handlerClients.s3, handlerClients.eventBridge, handlerClients.sqs, handlerClients.dynamoDb);
const clock = new FakeClock();
// eslint-disable-next-line no-new
new SqsVisibility(injector, clock, platform.sqs, VISIBILITY_SECONDS);

/** One line of the test object and what it must become. */
interface InputLine {
  readonly line: number;
  readonly text: string;
  /** The record id, for a record line; undefined for a line that must be quarantined. */
  readonly id?: string;
}

interface PublisherWorld {
  readonly bucket: string;
  readonly table: string;
  readonly busName: string;
  readonly objectQueue: MotoQueue;
  readonly dlq: MotoQueue;
  /** The queue a capture rule on the curated bus copies every CuratedBatch to. */
  readonly capture: MotoQueue;
  readonly key: string;
  readonly notification: string;
  readonly lines: InputLine[];
  readonly env: NodeJS.ProcessEnv;
  readonly mapping: SqsEventSource;
  /** Fake ms each applied PutEvents call takes (0: the invocation never runs short of time). */
  putEventsMs: number;
  readonly logs: LoggedLine[];
  /** Continuations sent with a delay, not yet due on the fake clock. */
  delayedSends: number;
  /** Ledger `complete` updates DynamoDB applied for this world's object. */
  completions: number;
  batch?: SqsBatch;
}

/** The world the models below act on (one trial at a time). */
let active: PublisherWorld | undefined;

/**
 * The object: 25 lines of two tenants, switching every fourth line, at most 3 records per event
 * and 4 KB entries, two records too large to share an entry: 12 entries, so two flights (10
 * entries, then 2); and one line that is not JSON, quarantined with the first flight.
 */
function objectLines(): InputLine[] {
  return Array.from({ length: 25 }, (_, i) => {
    const n = i + 1;
    if (n === 14) return { line: n, text: `{"id": "evt-${n}", cut off` };
    const payload = n === 5 || n === 20 ? { n, body: 'x'.repeat(3300) } : { n };
    return { line: n, text: recordLine(n, payload, Math.floor(i / 4) % 2 ? 'globex' : 'acme'), id: `evt-${n}` };
  });
}

/** An EventBridge S3 "Object Created" event, as the object-created rule sends it to the object queue. */
function notification(bucket: string, key: string, versionId: string, size: number): string {
  return JSON.stringify({
    'version': '0',
    'id': randomUUID(),
    'detail-type': 'Object Created',
    'source': 'aws.s3',
    'account': '123456789012',
    'time': '2026-11-30T12:00:00Z',
    'region': 'us-east-1',
    'resources': [`arn:aws:s3:::${bucket}`],
    'detail': {
      'version': '0',
      'bucket': { name: bucket },
      'object': { 'key': key, 'size': size, 'etag': 'e', 'version-id': versionId, 'sequencer': '0062E99A88DC407460' },
      'request-id': 'N4N7GDK58NMKJ12R',
      'requester': '123456789012',
      'reason': 'PutObject',
    },
  });
}

const createQueue = (prefix: string, attributes: Record<string, string> = {}) => createMotoQueue(platform.sqs, prefix, attributes);

/**
 * A fresh world: the versioned ingest bucket holding the object, the ledger table, the curated
 * bus with a capture rule, the object queue (redrive to its DLQ after 5 receives) holding the
 * notification (`copies` times: a duplicate notification), and Lambda's event source mapping.
 */
async function createWorld(options: { putEventsMs?: number; copies?: number } = {}): Promise<PublisherWorld> {
  clock.reset();
  const bucket = uniqueName('ingest');
  await platform.s3.send(new CreateBucketCommand({ Bucket: bucket }));
  await platform.s3.send(new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: 'Enabled' } }));
  const table = uniqueName('ledger');
  await platform.dynamoDb.send(new CreateTableCommand({
    TableName: table,
    BillingMode: 'PAY_PER_REQUEST',
    KeySchema: [{ AttributeName: 'objectId', KeyType: 'HASH' }],
    AttributeDefinitions: [{ AttributeName: 'objectId', AttributeType: 'S' }],
  }));
  const busName = uniqueName('curated');
  await platform.eventBridge.send(new CreateEventBusCommand({ Name: busName }));
  const capture = await createQueue('capture');
  const rule = uniqueName('batches');
  await platform.eventBridge.send(new PutRuleCommand({
    Name: rule, EventBusName: busName, EventPattern: JSON.stringify({ 'source': ['cdk-event-fabric'], 'detail-type': ['CuratedBatch'] }),
  }));
  await platform.eventBridge.send(new PutTargetsCommand({ Rule: rule, EventBusName: busName, Targets: [{ Id: 'capture', Arn: capture.arn }] }));
  const dlq = await createQueue('object-dlq');
  const objectQueue = await createQueue('object-queue', {
    VisibilityTimeout: String(VISIBILITY_SECONDS),
    RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlq.arn, maxReceiveCount: MAX_RECEIVE_COUNT }),
  });

  const lines = objectLines();
  const key = `${DATA_PREFIX}tenant=acme/2026/11/30/12/stream-1-2026-11-30-12-00-00-${randomUUID()}`;
  const body = lines.map((l) => l.text).join('\n') + '\n';
  const put = await platform.s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
  const message = notification(bucket, key, put.VersionId!, Buffer.byteLength(body));
  for (let i = 0; i < (options.copies ?? 1); i++) {
    await platform.sqs.send(new SendMessageCommand({ QueueUrl: objectQueue.url, MessageBody: message }));
  }
  const env: NodeJS.ProcessEnv = {
    BUCKET_NAME: bucket,
    DATA_PREFIX,
    QUARANTINE_PREFIX,
    CURATED_BUS_NAME: busName,
    LEDGER_TABLE_NAME: table,
    MAX_ENTRY_BYTES: '4096',
    MAX_RECORDS_PER_EVENT: '3',
    LEASE_SECONDS: String(LEASE_SECONDS),
    RESERVE_MS: String(RESERVE_MS),
    OBJECT_QUEUE_URL: objectQueue.url,
  };
  const mapping = new SqsEventSource(platform.sqs, injector, clock, {
    queueUrl: objectQueue.url, queueArn: objectQueue.arn, visibilityTimeoutSeconds: VISIBILITY_SECONDS, batchSize: 1, reportBatchItemFailures: true,
  });
  const world: PublisherWorld = {
    bucket,
    table,
    busName,
    objectQueue,
    dlq,
    capture,
    key,
    notification: message,
    lines,
    env,
    mapping,
    putEventsMs: options.putEventsMs ?? 0,
    logs: [],
    delayedSends: 0,
    completions: 0,
  };
  active = world;
  return world;
}

/**
 * One invocation of the batch publisher as Lambda runs it: a new request id, the invocation's
 * deadline on the fake clock (the publisher timeout from now), the ledger's clock the same.
 */
function publisher(world: PublisherWorld): (event: SqsEvent) => Promise<unknown> {
  return (event) => {
    const deadline = clock.now() + PUBLISHER_TIMEOUT_SECONDS * 1000;
    const logger = captureLogger();
    const log = {
      info: (message: string, fields?: Record<string, unknown>) => logger.info(message, fields),
      warn: (message: string, fields?: Record<string, unknown>) => logger.warn(message, fields),
      error: (message: string, fields?: Record<string, unknown>) => logger.error(message, fields),
    } as unknown as ConsumerLog;
    const invocation = consumeObjectMessages({
      s3: handlerClients.s3,
      eventBridge: handlerClients.eventBridge,
      sqs: handlerClients.sqs,
      ledger: new DynamoDbObjectLedger(handlerClients.dynamoDb, world.table),
      requestId: randomUUID(),
      remainingMs: () => deadline - clock.now(),
      log,
      sleep: async () => undefined,
      random: () => 0.5,
      nowSeconds: () => Math.floor(clock.now() / 1000),
    }, world.env, event as unknown as SQSEvent);
    return invocation.finally(() => world.logs.push(...logger.lines));
  };
}

/**
 * Models of AWS on the fake clock that the harness does not have, attached to the publisher's
 * clients inside the fault injector (they see only calls AWS applied):
 * - SQS delivery delay: moto delays a message in real time, so a continuation sent with
 *   DelaySeconds (60 s after throttling) would stay out of reach of the test; the model takes
 *   it as SQS does (the answer carries a message id) and enqueues it when the fake clock
 *   reaches its delay.
 * - Time an invocation spends: in a world with `putEventsMs`, each PutEvents call moves the
 *   fake clock on, so `remainingMs` falls under the reserve part-way through an object.
 * - The ledger's completions are counted, to check an object is completed once.
 */
handlerClients.sqs.middlewareStack.add((next: any, context: any) => async (args: any) => {
  const delay = Number(args.input?.DelaySeconds ?? 0);
  if (context.commandName !== 'SendMessageCommand' || delay <= 0 || !active) return next(args);
  const world = active;
  world.delayedSends++;
  clock.at(clock.now() + delay * 1000, async () => {
    world.delayedSends--;
    await platform.sqs.send(new SendMessageCommand({ ...args.input, DelaySeconds: 0 }));
  });
  const md5 = createHash('md5').update(args.input.MessageBody ?? '').digest('hex');
  return { output: { $metadata: {}, MessageId: randomUUID(), MD5OfMessageBody: md5 }, response: {} };
}, { step: 'initialize', name: 'sqsDelayOnFakeClock', priority: 'low' });

handlerClients.eventBridge.middlewareStack.add((next: any, context: any) => async (args: any) => {
  const result = await next(args);
  if (context.commandName === 'PutEventsCommand' && active && active.putEventsMs > 0) await clock.advance(active.putEventsMs);
  return result;
}, { step: 'initialize', name: 'putEventsTakesTime', priority: 'low' });

injector.observe((call) => {
  const values = Object.values(call.input?.ExpressionAttributeValues ?? {}) as { S?: string }[];
  if (call.command === 'UpdateItemCommand' && active && call.input.TableName === active.table && values.some((v) => v.S === 'DONE')) {
    active.completions++;
  }
});

/**
 * What Lambda and SQS do until nothing is left to deliver: the mapping delivers whatever is
 * visible, the fake clock passes visibility timeouts, and delayed continuations come due.
 */
async function deliverAll(world: PublisherWorld): Promise<void> {
  for (let round = 0; ; round++) {
    await world.mapping.drain(publisher(world));
    if (world.delayedSends === 0) return;
    if (round > 20) throw new Error('delayed continuations keep coming: the object never settles');
    await clock.advance((MAX_DELAY_SECONDS + 1) * 1000);
  }
}

/** Every record id in the CuratedBatch events the curated bus delivered, once per delivery. */
async function deliveredRecordIds(world: PublisherWorld): Promise<string[]> {
  const bodies = await drainMotoQueue(platform.sqs, world.capture.url);
  return bodies.flatMap((body) => {
    const event = JSON.parse(body);
    invariant(event.detail.origin.key === world.key, `a batch of another object reached the bus: ${event.detail.origin.key}`);
    return event.detail.records.map((r: { id: string }) => r.id);
  });
}

/** Quarantined lines by line number: the reason and the record as written. */
type Quarantined = Map<number, { reason: string; record: string | null }>;

/** Quarantined lines (the latest version of every segment), by line number. */
async function quarantinedLines(world: PublisherWorld): Promise<Quarantined> {
  const found: Quarantined = new Map();
  const listed = await platform.s3.send(new ListObjectsV2Command({ Bucket: world.bucket, Prefix: QUARANTINE_PREFIX }));
  for (const object of listed.Contents ?? []) {
    const body = await (await platform.s3.send(new GetObjectCommand({ Bucket: world.bucket, Key: object.Key! }))).Body!.transformToString();
    for (const text of body.split('\n').filter((l) => l)) {
      const item = JSON.parse(text);
      found.set(item.line, { reason: item.reason, record: item.record });
    }
  }
  return found;
}

async function ledgerItem(world: PublisherWorld): Promise<Record<string, any> | undefined> {
  const { Items } = await platform.dynamoDb.send(new ScanCommand({ TableName: world.table, ConsistentRead: true }));
  invariant((Items?.length ?? 0) <= 1, `the ledger holds ${Items?.length} items for one object version`);
  return Items?.[0];
}

/** Lines neither on the bus nor quarantined with a reason. */
function missingLines(world: PublisherWorld, delivered: Set<string>, quarantine: Quarantined): InputLine[] {
  return world.lines.filter((l) => {
    if (l.id !== undefined && delivered.has(l.id)) return false;
    const q = quarantine.get(l.line);
    return !(q && q.reason && q.record === l.text);
  });
}

/** The operator's way back from the object DLQ: the notification moved back to the object queue. */
async function operatorRedrive(world: PublisherWorld): Promise<number> {
  let moved = 0;
  for (;;) {
    const { Messages } = await platform.sqs.send(new ReceiveMessageCommand({ QueueUrl: world.dlq.url, MaxNumberOfMessages: 10 }));
    if (!Messages?.length) return moved;
    for (const m of Messages) {
      await platform.sqs.send(new SendMessageCommand({ QueueUrl: world.objectQueue.url, MessageBody: m.Body! }));
      await platform.sqs.send(new DeleteMessageCommand({ QueueUrl: world.dlq.url, ReceiptHandle: m.ReceiptHandle! }));
      moved++;
    }
  }
}

/** The invariant (see the top of this file), on the final state; counts each line's fate. */
async function checkWorld(world: PublisherWorld): Promise<OutcomeCounts> {
  const named = (lines: InputLine[]) => lines.map((l) => l.id ?? `line ${l.line}`).join(', ');
  const left = await drainMotoQueue(platform.sqs, world.objectQueue.url);
  invariant(left.length === 0, `the object queue still holds ${left.length} messages after redelivery settled`);
  const parkedBodies = await drainMotoQueue(platform.sqs, world.dlq.url);
  invariant(parkedBodies.every((b) => b === world.notification), 'the object DLQ holds a message that is not the notification');
  const parked = parkedBodies.length > 0;
  let ids = await deliveredRecordIds(world);
  let quarantine = await quarantinedLines(world);
  const missing = missingLines(world, new Set(ids), quarantine);
  const ledger = await ledgerItem(world);
  const done = ledger?.status?.S === 'DONE';

  invariant(!done || missing.length === 0, `the ledger says DONE while records are missing: ${named(missing)}`);
  invariant(missing.length === 0 || parked, `records silently lost (not on the bus, not quarantined, the notification not parked): ${named(missing)}`);
  invariant(world.completions <= 1, `the ledger was completed ${world.completions} times`);

  let waiting = 0;
  if (parked) {
    // The parked notification must bring the missing records back when the operator redrives it.
    waiting = missing.length;
    await clock.advance((LEASE_SECONDS + 1) * 1000);
    await operatorRedrive(world);
    await deliverAll(world);
    ids = [...ids, ...await deliveredRecordIds(world)];
    quarantine = await quarantinedLines(world);
    const stillMissing = missingLines(world, new Set(ids), quarantine);
    invariant(stillMissing.length === 0, `the parked notification, redriven, did not bring back: ${named(stillMissing)}`);
    invariant((await drainMotoQueue(platform.sqs, world.dlq.url)).length === 0, 'the redriven notification was parked again');
  }
  const final = await ledgerItem(world);
  invariant(final?.status?.S === 'DONE', `the ledger is ${final?.status?.S ?? 'empty'} after every record was accounted for`);
  invariant(world.completions === 1, `the ledger was completed ${world.completions} times`);
  const records = world.lines.filter((l) => l.id !== undefined);
  return {
    delivered: records.filter((l) => ids.includes(l.id!)).length,
    waiting,
    parked: world.lines.filter((l) => l.id === undefined).length,
    duplicates: ids.length - new Set(ids).size,
  };
}

type Consumer = (world: PublisherWorld) => (event: SqsEvent) => Promise<unknown>;

function publisherScenario(name: string, setup: () => Promise<PublisherWorld>, consumer: Consumer = publisher): CrashPointScenario<PublisherWorld> {
  return {
    name,
    injector,
    setup,
    // The mapping's next batch is the faulted invocation (the poll is the platform's, never faulted).
    invoke: async (world) => {
      world.batch = await world.mapping.poll();
      invariant(world.batch !== undefined, 'no message to deliver');
      return consumer(world)(world.batch.event);
    },
    redeliver: async (world, first) => {
      await world.mapping.settle(world.batch!, first);
      await deliverAll(world);
    },
    check: checkWorld,
  };
}

/**
 * A world in which a first invocation already ran (with `fault`, if given) and Lambda settled
 * it; then `elapseMs` passed. The trial's invocation is the next delivery.
 */
async function settledWorld(options: { putEventsMs?: number; copies?: number }, fault: Fault | undefined, elapseMs: number): Promise<PublisherWorld> {
  const world = await createWorld(options);
  const batch = (await world.mapping.poll())!;
  const outcome = await injector.invoke(() => publisher(world)(batch.event), fault);
  await world.mapping.settle(batch, outcome);
  await clock.advance(elapseMs);
  return world;
}

/** Each PutEvents takes 50 s of the 60 s invocation: after one flight less than the 15 s reserve is left. */
const SLOW_PUT_EVENTS = { putEventsMs: 50_000 };

/** Trials per fault kind, for the summary printed after the tests. */
const summaries: string[] = [];
function summarize(report: CrashPointReport): void {
  const perKind = FAULT_KINDS.map((kind) => `${kind} ${report.trials.filter((t) => t.kind === kind).length}`).join(', ');
  const ends = ['returned', 'threw', 'crashed'].map((e) => `${e} ${report.trials.filter((t) => t.firstInvocation === e).length}`).join(', ');
  summaries.push(`${report.name}: ${report.crashPoints} trials (${perKind}); violations: none (the harness throws at the first); first invocation ${ends}; `
    + `totals delivered ${report.totals.delivered}, waiting ${report.totals.waiting}, parked ${report.totals.parked}, duplicates ${report.totals.duplicates}`);
}

afterAll(() => {
  if (summaries.length) console.log(`Crash points, batch publisher:\n  ${summaries.join('\n  ')}`);
  for (const clients of [platform, handlerClients]) {
    clients.sqs.destroy();
    clients.eventBridge.destroy();
    clients.s3.destroy();
    clients.dynamoDb.destroy();
  }
});

/** The ledger's cursor for the world's object: its line and the entries of that flight already put. */
async function ledgerCursor(world: PublisherWorld): Promise<{ line: number; publishedInFlight: string[] }> {
  const item = await ledgerItem(world);
  return { line: Number(item?.cursorLine?.N ?? 0), publishedInFlight: item?.publishedInFlight?.S ? item.publishedInFlight.S.split(',') : [] };
}

/** Lets the scheduler order every AWS call of the publisher's clients while `scheduler` is set. */
let scheduler: fc.Scheduler | undefined;
for (const client of [handlerClients.s3, handlerClients.eventBridge, handlerClients.sqs, handlerClients.dynamoDb]) {
  (client.middlewareStack as { add: (middleware: unknown, options: unknown) => void }).add((next: any, context: any) => async (args: any) => {
    if (scheduler) await scheduler.schedule(Promise.resolve(), `${context.commandName}`);
    return next(args);
  }, { step: 'initialize', name: 'raceScheduler', priority: 'low' });
}

/**
 * Delivers two batches at once, each AWS call of either invocation let go in the order the
 * scheduler picks; Lambda then settles both and redelivers whatever is left.
 */
async function race(s: fc.Scheduler, world: PublisherWorld): Promise<void> {
  const batches = [(await world.mapping.poll())!, (await world.mapping.poll())!];
  expect(batches.map((b) => b.messages.length)).toEqual([1, 1]);
  scheduler = s;
  const both = Promise.all(batches.map((batch) => injector.invoke(() => publisher(world)(batch.event))));
  try {
    await s.waitFor(both);
  } finally {
    scheduler = undefined;
  }
  const outcomes = await both;
  expect(outcomes.map((o) => o.ended)).toEqual(['returned', 'returned']);
  for (const [k, batch] of batches.entries()) await world.mapping.settle(batch, outcomes[k]);
  await deliverAll(world);
}

/** How many times each command occurs in a list of calls. */
const occurrences = (calls: string[], command: string) => calls.filter((c) => c === command).length;

describe('batch publisher under the crash-point harness (moto)', () => {
  const fresh = publisherScenario('TieredEventIngest batch publisher: 25 lines, 2 flights, 1 line quarantined', () => createWorld());
  const outOfTime = publisherScenario('TieredEventIngest batch publisher: out of time after the first flight, continued',
    () => createWorld(SLOW_PUT_EVENTS));
  // The first invocation's PutEvents (call 2: claim, read, put) failed in part and time ran out before a retry: its
  // checkpoint names the entries already put, and its continuation (sent with a 60 s delay) resumes, skipping them.
  const resumed = publisherScenario('TieredEventIngest batch publisher: a continuation resumes a flight put in part', async () => {
    const world = await settledWorld(SLOW_PUT_EVENTS, { at: 2, kind: 'partial-failure' }, 61_000);
    world.putEventsMs = 0;
    const cursor = await ledgerCursor(world);
    invariant(cursor.line === 1 && cursor.publishedInFlight.length > 0, `the setup left the ledger at ${JSON.stringify(cursor)}`);
    return world;
  });
  // A duplicate notification while the invocation that claimed the object has died (call 1: after the claim): its lease is live.
  const busy = publisherScenario('TieredEventIngest batch publisher: a duplicate notification while a dead invocation holds the lease', async () => {
    const world = await settledWorld({ copies: 2 }, { at: 1, kind: 'crash' }, 0);
    const item = await ledgerItem(world);
    invariant(item?.status?.S === 'IN_PROGRESS' && Number(item.leaseUntil?.N) > clock.now() / 1000, `the setup left the ledger at ${JSON.stringify(item)}`);
    return world;
  });

  test('every record is on the curated bus or quarantined, or the notification is parked; never DONE with a record missing', async () => {
    const report = await exploreCrashPoints(fresh);
    summarize(report);
    // The clean run: claim, read, two flights (each a put and a checkpoint; the quarantine segment with the first), complete.
    expect(report.cleanCalls.slice(0, 2)).toEqual(['UpdateItem', 'GetObject']);
    expect(occurrences(report.cleanCalls, 'PutEvents')).toBe(2);
    expect(occurrences(report.cleanCalls, 'PutObject')).toBe(1);
    // Three faults at each call, and a partial failure at each PutEvents.
    expect(report.crashPoints).toBe(report.cleanCalls.length * 3 + 2);
    // Every trial ends with all 24 records delivered and the bad line quarantined.
    for (const t of report.trials) expect(t.outcomes).toMatchObject({ delivered: 24, parked: 1 });
    // A lost PutEvents answer republishes its flight: at least once, by design.
    expect(report.trials.filter((t) => t.outcomes.duplicates > 0).map((t) => `${t.kind}@${t.call}`)).toEqual(expect.arrayContaining(['lost-answer@PutEvents']));
  });

  test('an invocation out of time after its first flight checkpoints, sends a continuation and lets the original go, under every fault', async () => {
    const report = await exploreCrashPoints(outOfTime);
    summarize(report);
    // Claim, read, one flight; then, out of time, a checkpoint and the continuation, the run's last call.
    expect(occurrences(report.cleanCalls, 'PutEvents')).toBe(1);
    expect(report.cleanCalls.at(-1)).toBe('SendMessage');
    for (const t of report.trials) expect(t.outcomes).toMatchObject({ delivered: 24, parked: 1 });
  });

  test('a continuation skips the entries its checkpoint says were put and publishes the rest, under every fault', async () => {
    const report = await exploreCrashPoints(resumed);
    summarize(report);
    // Claim (at the checkpoint), read, the rest of the first flight, the second flight, complete.
    expect(report.cleanCalls.slice(0, 2)).toEqual(['UpdateItem', 'GetObject']);
    expect(occurrences(report.cleanCalls, 'PutEvents')).toBe(2);
    for (const t of report.trials) expect(t.outcomes).toMatchObject({ delivered: 24, parked: 1 });
  });

  test('a notification that finds the object leased by a dead invocation comes back and is published once the lease ends, under every fault', async () => {
    const report = await exploreCrashPoints(busy);
    summarize(report);
    // The claim is refused, the ledger read, and the message's visibility set to come back later.
    expect(report.cleanCalls).toEqual(['UpdateItem', 'GetItem', 'ChangeMessageVisibility']);
    for (const t of report.trials) expect(t.outcomes).toMatchObject({ delivered: 24, parked: 1 });
  });

  test('a process that dies after its last call, before Lambda has its answer, loses nothing (the message comes back)', async () => {
    // The harness's crash stops the process at a call; this is the one place after the last call: between
    // the continuation's SendMessage (or the ledger's completion) and Lambda deleting the original message.
    for (const scenario of [fresh, outOfTime, resumed, busy]) {
      const world = await scenario.setup();
      const run = await injector.invoke(() => scenario.invoke(world) as Promise<unknown>);
      expect(run.ended).toBe('returned');
      await scenario.redeliver(world, { ended: 'crashed', calls: run.calls });
      expect(await scenario.check(world)).toMatchObject({ delivered: 24, waiting: 0, parked: 1 });
    }
  });

  test('the invariant catches a planted loss: a consumer that drops its batch item failures', async () => {
    const dropsFailures: Consumer = (world) => async (event) => {
      await publisher(world)(event);
      return { batchItemFailures: [] };
    };
    const exploring = exploreCrashPoints({
      ...publisherScenario('planted loss: batch item failures dropped', () => createWorld(), dropsFailures),
      kinds: ['lost-request'],
    });
    await expect(exploring).rejects.toThrow(CrashPointViolation);
    await expect(exploring).rejects.toThrow(/lost-request at call 0 \(UpdateItem\): records silently lost/);
  });

  test('two invocations racing on a duplicate notification, in every order fast-check\'s scheduler picks, publish every record once done', async () => {
    let runs = 0;
    await fc.assert(fc.asyncProperty(fc.scheduler(), async (s) => {
      runs++;
      const world = await createWorld({ copies: 2 });
      await race(s, world);
      // Every record published at least once, the bad line quarantined, nothing parked, the ledger DONE by one invocation.
      expect(await checkWorld(world)).toMatchObject({ delivered: 24, waiting: 0, parked: 1 });
      expect(world.completions).toBe(1);
    }), { numRuns: 8 });
    expect(runs).toBe(8);
  });

  test('a continuation racing the original it was meant to replace (the process died before Lambda acknowledged it) loses nothing', async () => {
    let runs = 0;
    await fc.assert(fc.asyncProperty(fc.scheduler(), async (s) => {
      runs++;
      const world = await createWorld(SLOW_PUT_EVENTS);
      const batch = (await world.mapping.poll())!;
      const first = await injector.invoke(() => publisher(world)(batch.event));
      expect(first.ended).toBe('returned');
      // Lambda never had the answer: the original comes back after its visibility timeout, next to the continuation.
      await world.mapping.settle(batch, { ended: 'crashed', calls: first.calls });
      await clock.advance((VISIBILITY_SECONDS + 1) * 1000);
      await race(s, world);
      expect(await checkWorld(world)).toMatchObject({ delivered: 24, waiting: 0, parked: 1 });
      expect(world.completions).toBe(1);
    }), { numRuns: 8 });
    expect(runs).toBe(8);
  });
});
