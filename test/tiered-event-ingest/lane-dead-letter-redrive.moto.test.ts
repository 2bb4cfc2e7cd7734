import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { App, Stack } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import { lambdaOnFailureRecord } from './lambda-destination-fixtures';
import { createMotoIngest } from './moto-ingest';
import { CuratedEnvelope, IngestLane } from '../../src/envelope/curated-envelope';
import { checkRecord, RecordEnvelope } from '../../src/runtime/curated-envelope';
import {
  envelopeFromEvent, FastLaneRedriveReport, LaneDeadLetterRedriveDeps, redriveFastLaneDeadLetters, redriveSlowLaneDeadLetters, SlowLaneRedriveReport,
} from '../../src/tiered-event-ingest/lane-dead-letter-redrive-core';
import { DynamoDbObjectLedger } from '../../src/tiered-event-ingest/object-ledger-core';
import { objectRefFromNotification } from '../../src/tiered-event-ingest/publisher-config-core';
import { ObjectRef, publishObject, PublisherConfig } from '../../src/tiered-event-ingest/publisher-core';
import { ec2StateChangeEvent, eventBridgeDeadLetterAttributes } from '../support/aws-fixtures';
import { FaultInjector } from '../support/crash-points';
import { renderInputTemplate } from '../support/input-transformer';
import { createMotoQueue, drainMotoQueue, motoClients, uniqueName } from '../support/moto';

const clients = motoClients();
const { sqs, eventBridge, s3, dynamoDb } = clients;
/** Clients the redrive uses with the fault injector on them (setup and checks use the ones above). */
const faulty = motoClients();
const injector = new FaultInjector(faulty.s3, faulty.eventBridge);

afterAll(() => {
  for (const client of [sqs, eventBridge, s3, dynamoDb, faulty.sqs, faulty.s3, faulty.eventBridge, faulty.dynamoDb]) client.destroy();
});

const plentyOfTime = () => 15 * 60 * 1000;
const NOW = new Date(Date.UTC(2026, 10, 30, 10, 42, 7));
const ACCOUNT = '123456789012';
const SLOW_RULE_ARN = `arn:aws:events:us-east-1:${ACCOUNT}:rule/slow-bus/Ingest-SlowLaneRule`;
const FIREHOSE_ARN = `arn:aws:firehose:us-east-1:${ACCOUNT}:deliverystream/Ingest-DeliveryStream`;
const RELAY_ARN = `arn:aws:lambda:us-east-1:${ACCOUNT}:function:Ingest-RelayFunction`;
const RELAY_RULE_ARN = `arn:aws:events:us-east-1:${ACCOUNT}:rule/fast-bus/Ingest-OrdersRoute`;
const OTHER_RULE_ARN = `arn:aws:events:us-east-1:${ACCOUNT}:rule/fast-bus/Ingest-AuditRoute`;
const OTHER_TARGET_ARN = `arn:aws:sqs:us-east-1:${ACCOUNT}:audit-queue`;

/** The EC2 state-change example event, with the ids the envelope paths read in its detail. */
function sourceEvent(id: string, ids: Record<string, unknown>): Record<string, unknown> {
  const event = ec2StateChangeEvent({ id });
  return { ...event, detail: { ...(event.detail as object), ...ids } };
}

/** The construct's resources in moto: versioned bucket, ledger table, curated bus whose events a capture queue receives. */
async function world() {
  const { bucket, table, bus, capture } = await createMotoIngest(clients);
  const dlq = await createMotoQueue(sqs, 'lane-dlq');

  const config: PublisherConfig = { curatedBusName: bus, quarantinePrefix: 'quarantine/', maxEntryBytes: 262_144, maxRecords: 1000, leaseSeconds: 360 };
  /** Publishes an object as the batch publisher does for the notification S3 sends for it. */
  const publish = async (key: string) => {
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    const ref: ObjectRef = objectRefFromNotification(notification(bucket, key, head.VersionId!), bucket, 'data/');
    return publishObject({
      eventBridge,
      ledger: new DynamoDbObjectLedger(dynamoDb, table),
      owner: uniqueName('attempt'),
      openObject: async (r: ObjectRef) => (await s3.send(new GetObjectCommand({ Bucket: r.bucket, Key: r.key, VersionId: r.versionId })))
        .Body as AsyncIterable<Uint8Array>,
      writeQuarantine: async () => { throw new Error('nothing should be quarantined'); },
    }, config, ref);
  };
  /** Every event the curated bus delivered so far (each read once). */
  const delivered = async (): Promise<any[]> => (await drainMotoQueue(sqs, capture.url)).map((body) => JSON.parse(body));
  /** Puts a message in the lane DLQ as EventBridge or Lambda would; returns its message id. */
  const deadLetter = async (body: string, attributes?: ReturnType<typeof eventBridgeDeadLetterAttributes>) => {
    const sent = await sqs.send(new SendMessageCommand({
      QueueUrl: dlq.url, MessageBody: body, ...(attributes ? { MessageAttributes: attributes } : {}),
    }));
    return sent.MessageId!;
  };
  const keysUnder = async (prefix: string) =>
    ((await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }))).Contents ?? []).map((c) => c.Key!);
  const lines = async (key: string): Promise<any[]> => {
    const text = await (await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body!.transformToString();
    expect(text.endsWith('\n')).toBe(true);
    return text.trimEnd().split('\n').map((line) => JSON.parse(line));
  };
  const deps: LaneDeadLetterRedriveDeps = { sqs, s3, eventBridge, remainingMs: plentyOfTime, now: () => NOW, sleep: async () => undefined };
  return { bucket, bus, dlq, publish, delivered, deadLetter, keysUnder, lines, deps };
}

/** An EventBridge S3 "Object Created" notification as the object queue receives it. */
function notification(bucket: string, key: string, versionId: string): string {
  return JSON.stringify({
    'version': '0',
    'id': uniqueName('n'),
    'detail-type': 'Object Created',
    'source': 'aws.s3',
    'account': ACCOUNT,
    'time': '2026-11-30T10:43:00Z',
    'region': 'us-east-1',
    'resources': [`arn:aws:s3:::${bucket}`],
    'detail': { version: '0', bucket: { name: bucket }, object: { 'key': key, 'size': 1, 'etag': 'e', 'version-id': versionId, 'sequencer': '00A' } },
  });
}

const slowAttributes = () => eventBridgeDeadLetterAttributes(SLOW_RULE_ARN, FIREHOSE_ARN, { errorCode: 'SDK_CLIENT_ERROR', retryAttempts: 185 });

describe('envelopeFromEvent: the envelope the lane rule\'s input transformer builds', () => {
  const rule = new events.Rule(new Stack(new App(), 'Test'), 'Rule', { eventPattern: { source: ['aws.ec2'] } });
  const paths = { tenantIdPath: '$.detail.tenant.id', channelPath: '$.detail.route', correlationIdPath: '$.resources[0]' };
  /** What the rule's target receives, rendered with EventBridge's documented semantics. */
  const transformed = (lane: IngestLane, event: Record<string, unknown>) => {
    const input = CuratedEnvelope.ruleTargetInput(lane, paths).bind(rule);
    return JSON.parse(renderInputTemplate(input.inputTemplate!, input.inputPathsMap!, event,
      { ruleArn: SLOW_RULE_ARN, ruleName: 'x', ingestionTime: '2026-11-30T10:00:00Z' }));
  };

  test.each<[string, Record<string, unknown>]>([
    ['string ids', { tenant: { id: 'acme' }, route: 'sms' }],
    ['numeric and boolean ids', { tenant: { id: 6500 }, route: true }],
    ['missing ids', {}],
    ['an object id (EventBridge drops its inner quotes)', { tenant: { id: 'acme' }, route: { primary: 'sms', backup: 3 } }],
  ])('%s: equal to the transformer\'s output, in both lanes', (_, ids) => {
    const event = sourceEvent('0f6a2f55-7a0b-4c1e-9f5e-2b1c7d3e8a90', ids);
    for (const [lane, name] of [[IngestLane.SLOW, 'slow'], [IngestLane.FAST, 'fast']] as const) {
      const built = envelopeFromEvent(event, name, paths);
      expect(built).toEqual({ valid: true, envelope: transformed(lane, event) });
    }
  });

  test('ids become strings: 6500 → "6500", missing or null → "", and the original event id is kept', () => {
    const built = envelopeFromEvent(sourceEvent('evt-1', { tenantId: 6500, channel: null }), 'slow');
    expect(built).toEqual({
      valid: true,
      envelope: {
        schemaVersion: '1.0',
        kind: 'record',
        id: 'evt-1',
        tenant: '6500',
        channel: '',
        correlationId: '',
        lane: 'slow',
        time: '2015-11-11T21:29:54Z',
        source: 'aws.ec2',
        detailType: 'EC2 Instance State-change Notification',
        payload: { 'instance-id': 'i-0123456789', 'state': 'RUNNING', 'tenantId': 6500, 'channel': null },
      },
    });
  });

  test('a value that is not an event, an invalid envelope or a bad path gives errors, never a throw', () => {
    expect(envelopeFromEvent('not an event', 'fast')).toEqual({ valid: false, errors: ['not an EventBridge event: not a JSON object'] });
    expect(envelopeFromEvent({ id: 'x', detail: {} }, 'fast')).toEqual({ valid: false, errors: ['not an EventBridge event: no source, detail-type, time'] });
    const emptyId = envelopeFromEvent(sourceEvent('', { tenantId: 't' }), 'fast');
    expect(emptyId.valid).toBe(false);
    expect(!emptyId.valid && emptyId.errors.join()).toMatch(/^\/id /);
    const badPath = envelopeFromEvent(sourceEvent('e', {}), 'fast', { tenantIdPath: 'detail.tenant' });
    expect(!badPath.valid && badPath.errors.join()).toMatch(/invalid tenantIdPath "detail.tenant"/);
  });
});

describe('redriveSlowLaneDeadLetters: events EventBridge could not put into Firehose go to S3, then through the publisher', () => {
  test('end to end: one NDJSON object of envelopes with the original ids, published to the curated bus; the DLQ is empty after', async () => {
    const w = await world();
    const events3 = [
      sourceEvent('11111111-0000-4000-8000-000000000001', { tenantId: 'acme', channel: 'email', correlationId: 'c-1' }),
      sourceEvent('11111111-0000-4000-8000-000000000002', { tenantId: 6500, channel: 7 }),
      sourceEvent('11111111-0000-4000-8000-000000000003', {}),
    ];
    for (const event of events3) await w.deadLetter(JSON.stringify(event), slowAttributes());

    const report = await redriveSlowLaneDeadLetters(w.deps, { deadLetterQueueUrl: w.dlq.url, bucket: w.bucket, waitTimeSeconds: 0 });

    expect(report).toEqual<SlowLaneRedriveReport>({
      received: 3, redriven: 3, kept: 0, notDeleted: 0, notReleased: 0, notes: [], stoppedBecause: 'empty', writtenKeys: [expect.any(String)],
    });
    const [key] = report.writtenKeys;
    expect(key).toMatch(/^data\/redrive\/slow-lane-dlq\/2026\/11\/30\/10\/[0-9a-f-]+-3-[0-9a-f]{32}\.ndjson$/);
    expect(await w.keysUnder('data/')).toEqual([key]);
    const written: RecordEnvelope[] = await w.lines(key);
    for (const envelope of written) expect(checkRecord(envelope)).toEqual({ valid: true, errors: [] });
    expect(written.map((e) => [e.id, e.tenant, e.channel, e.correlationId, e.lane]).sort()).toEqual([
      ['11111111-0000-4000-8000-000000000001', 'acme', 'email', 'c-1', 'slow'],
      ['11111111-0000-4000-8000-000000000002', '6500', '7', '', 'slow'],
      ['11111111-0000-4000-8000-000000000003', '', '', '', 'slow'],
    ]);
    expect(written.map((e) => e.payload)).toEqual(expect.arrayContaining(events3.map((e) => e.detail)));

    expect(await w.publish(key)).toMatchObject({ outcome: 'published', inputRecords: 3, published: 3, quarantined: 0 });
    const batches = await w.delivered();
    expect(batches.every((e) => e['detail-type'] === 'CuratedBatch')).toBe(true);
    const records = batches.flatMap((e) => e.detail.records);
    expect(records.map((r: RecordEnvelope) => r.id).sort()).toEqual(events3.map((e) => e.id).sort());
    expect(records.sort((a: RecordEnvelope, b: RecordEnvelope) => a.id.localeCompare(b.id)))
      .toEqual(written.sort((a, b) => a.id.localeCompare(b.id)));
    expect(await drainMotoQueue(sqs, w.dlq.url)).toEqual([]);
  });

  test('a poison message (not JSON), a body that is not an event and an invalid envelope stay in the DLQ, reported; nothing is lost', async () => {
    const w = await world();
    const good = [sourceEvent('22222222-0000-4000-8000-000000000001', { tenantId: 'acme' }), sourceEvent('22222222-0000-4000-8000-000000000002', {})];
    const poison = await w.deadLetter('not json {', slowAttributes());
    const notEvent = await w.deadLetter(JSON.stringify({ hello: 'world' }), slowAttributes());
    const invalid = await w.deadLetter(JSON.stringify(sourceEvent('x'.repeat(300), { tenantId: 'acme' })), slowAttributes());
    for (const event of good) await w.deadLetter(JSON.stringify(event), slowAttributes());

    const report = await redriveSlowLaneDeadLetters(w.deps, { deadLetterQueueUrl: w.dlq.url, bucket: w.bucket, waitTimeSeconds: 0 });

    expect(report).toMatchObject({ received: 5, redriven: 2, kept: 3, notDeleted: 0, notReleased: 0, stoppedBecause: 'empty' });
    expect(report.notes.sort((a, b) => a.messageId.localeCompare(b.messageId))).toEqual([
      { messageId: poison, reason: expect.stringMatching(/^the body is not JSON \(.+\); left in the dead-letter queue$/) },
      { messageId: notEvent, reason: 'not an EventBridge event: no id, source, detail-type, time, detail; left in the dead-letter queue' },
      { messageId: invalid, reason: expect.stringMatching(/^\/id must NOT have more than 256 characters; left in the dead-letter queue$/) },
    ].sort((a, b) => a.messageId.localeCompare(b.messageId)));
    const written = (await Promise.all(report.writtenKeys.map((k) => w.lines(k)))).flat();
    expect(written.map((e) => e.id).sort()).toEqual(good.map((e) => e.id).sort());
    // Released at the end of the run: visible at once, bodies unchanged.
    const left = await drainMotoQueue(sqs, w.dlq.url);
    expect(left.sort()).toEqual(['not json {', JSON.stringify({ hello: 'world' }), JSON.stringify(sourceEvent('x'.repeat(300), { tenantId: 'acme' }))].sort());
    expect(left.length + written.length).toBe(5);
  });

  test.each(['lost-request', 'lost-answer'] as const)('a PutObject that fails (%s) deletes nothing: every message is still in the DLQ', async (kind) => {
    const w = await world();
    const originals = [sourceEvent('33333333-0000-4000-8000-000000000001', { tenantId: 'acme' }), sourceEvent('33333333-0000-4000-8000-000000000002', {})];
    for (const event of originals) await w.deadLetter(JSON.stringify(event), slowAttributes());

    const outcome = await injector.invoke(() => redriveSlowLaneDeadLetters({ ...w.deps, s3: faulty.s3 },
      { deadLetterQueueUrl: w.dlq.url, bucket: w.bucket, waitTimeSeconds: 0 }), { at: 0, kind });

    expect(outcome.calls.map((c) => c.command)).toEqual(['PutObjectCommand']);
    expect(outcome.ended).toBe('returned');
    const report = (outcome as { value: SlowLaneRedriveReport }).value;
    expect(report).toMatchObject({ received: 2, redriven: 0, kept: 2, notDeleted: 0, writtenKeys: [], stoppedBecause: 'error' });
    expect(report.notes.map((n) => n.reason)).toEqual([expect.stringMatching(/^PutObject of data\/redrive\/slow-lane-dlq\/.+ failed: TimeoutError/),
      expect.stringMatching(/^PutObject of .+ failed/)]);
    // A lost answer leaves the object written and the messages too: a later run writes them again (at least once).
    expect((await w.keysUnder('data/')).length).toBe(kind === 'lost-answer' ? 1 : 0);
    expect((await drainMotoQueue(sqs, w.dlq.url)).sort()).toEqual(originals.map((e) => JSON.stringify(e)).sort());
  });

  test('maxMessages stops early; the rest stays in the DLQ', async () => {
    const w = await world();
    for (let i = 0; i < 25; i++) await w.deadLetter(JSON.stringify(sourceEvent(`44444444-0000-4000-8000-${String(i).padStart(12, '0')}`, {})), slowAttributes());

    const report = await redriveSlowLaneDeadLetters(w.deps, { deadLetterQueueUrl: w.dlq.url, bucket: w.bucket, waitTimeSeconds: 0, maxMessages: 12 });

    expect(report).toMatchObject({ received: 12, redriven: 12, kept: 0, stoppedBecause: 'max-messages' });
    expect(report.writtenKeys.length).toBe(2);
    const written = (await Promise.all(report.writtenKeys.map((k) => w.lines(k)))).flat();
    expect(written.length).toBe(12);
    const left = (await drainMotoQueue(sqs, w.dlq.url)).map((body) => JSON.parse(body).id);
    expect(left.length).toBe(13);
    expect(new Set([...left, ...written.map((e) => e.id)]).size).toBe(25);
  });

  test('remainingMs below the reserve stops before receiving, or after the batch in hand', async () => {
    const w = await world();
    for (let i = 0; i < 15; i++) await w.deadLetter(JSON.stringify(sourceEvent(`55555555-0000-4000-8000-${String(i).padStart(12, '0')}`, {})), slowAttributes());

    const none = await redriveSlowLaneDeadLetters({ ...w.deps, remainingMs: () => 9_999 },
      { deadLetterQueueUrl: w.dlq.url, bucket: w.bucket, waitTimeSeconds: 0, reserveMs: 10_000 });
    expect(none).toMatchObject({ received: 0, redriven: 0, stoppedBecause: 'out-of-time', writtenKeys: [] });
    expect(await w.keysUnder('data/')).toEqual([]);

    const clock = [60_000, 5_000];
    const one = await redriveSlowLaneDeadLetters({ ...w.deps, remainingMs: () => clock.shift() ?? 0 },
      { deadLetterQueueUrl: w.dlq.url, bucket: w.bucket, waitTimeSeconds: 0, reserveMs: 10_000 });
    expect(one).toMatchObject({ received: 10, redriven: 10, stoppedBecause: 'out-of-time' });
    expect((await drainMotoQueue(sqs, w.dlq.url)).length).toBe(5);
  });
});

describe('redriveFastLaneDeadLetters: relay failures go to the curated bus through the relay\'s code', () => {
  /** A fast-lane envelope as the route's input transformer builds it. */
  const fastEnvelope = (id: string): RecordEnvelope => {
    const built = envelopeFromEvent(sourceEvent(id, { tenantId: 'acme', channel: 'sms', correlationId: `corr-${id}` }), 'fast');
    if (!built.valid) throw new Error(built.errors.join());
    return built.envelope;
  };

  test('relay records and relay-route events arrive as CuratedRecord with their original ids; the others stay, with their reasons', async () => {
    const w = await world();
    const onFailure = fastEnvelope('66666666-0000-4000-8000-000000000001');
    const routeEvent = sourceEvent('66666666-0000-4000-8000-000000000002', { tenantId: 6500 });
    const otherRouteEvent = sourceEvent('66666666-0000-4000-8000-000000000003', { tenantId: 'acme' });
    const relayFailure = await w.deadLetter(JSON.stringify(lambdaOnFailureRecord({ functionArn: `${RELAY_ARN}:$LATEST`, requestPayload: onFailure })));
    const routeFailure = await w.deadLetter(JSON.stringify(routeEvent), eventBridgeDeadLetterAttributes(RELAY_RULE_ARN, RELAY_ARN));
    const otherRoute = await w.deadLetter(JSON.stringify(otherRouteEvent), eventBridgeDeadLetterAttributes(OTHER_RULE_ARN, OTHER_TARGET_ARN));
    // The documented example as it is: its payload is not an envelope (the relay failed on it).
    const invalid = await w.deadLetter(JSON.stringify(lambdaOnFailureRecord({ functionArn: RELAY_ARN })));
    const otherFunction = await w.deadLetter(JSON.stringify(lambdaOnFailureRecord({ requestPayload: fastEnvelope('66666666-0000-4000-8000-000000000004') })));
    const poison = await w.deadLetter('{"truncated":');

    const report = await redriveFastLaneDeadLetters(w.deps, {
      deadLetterQueueUrl: w.dlq.url, curatedBusName: w.bus, relayFunctionArn: `${RELAY_ARN}:live`, waitTimeSeconds: 0,
    });

    expect(report).toMatchObject<Partial<FastLaneRedriveReport>>({
      received: 6, redriven: 2, kept: 4, notDeleted: 0, notReleased: 0, stoppedBecause: 'empty', fromOnFailureRecords: 1, fromRuleDeadLetters: 1, otherTargets: 1,
    });
    const reasons = Object.fromEntries(report.notes.map((n) => [n.messageId, n.reason]));
    expect(Object.keys(reasons).sort()).toEqual([otherRoute, invalid, otherFunction, poison].sort());
    expect(reasons[otherRoute]).toBe(`delivered by rule ${OTHER_RULE_ARN} to ${OTHER_TARGET_ARN}; `
      + 'redrive it to that target with your own tooling, or re-put the event on the fast bus');
    expect(reasons[invalid]).toMatch(/^the relay's input is not a valid record envelope: .+; left in the dead-letter queue$/);
    expect(reasons[otherFunction]).toMatch(/^an on-failure record of function arn:aws:lambda:us-east-1:123456789012:function:my-function:\$LATEST, not of the relay/);
    expect(reasons[poison]).toMatch(/^the body is not JSON/);
    expect([relayFailure, routeFailure].some((id) => id in reasons)).toBe(false);

    const delivered = await w.delivered();
    expect(delivered.map((e) => [e.source, e['detail-type']])).toEqual([['cdk-event-fabric', 'CuratedRecord'], ['cdk-event-fabric', 'CuratedRecord']]);
    const byId = Object.fromEntries(delivered.map((e) => [e.detail.id, e.detail]));
    expect(byId[onFailure.id]).toEqual(onFailure);
    expect(byId[routeEvent.id as string]).toEqual({
      schemaVersion: '1.0',
      kind: 'record',
      id: routeEvent.id,
      tenant: '6500',
      channel: '',
      correlationId: '',
      lane: 'fast',
      time: routeEvent.time,
      source: 'aws.ec2',
      detailType: 'EC2 Instance State-change Notification',
      payload: routeEvent.detail,
    });
    const left = await drainMotoQueue(sqs, w.dlq.url);
    expect(left.length).toBe(4);
    expect(left).toContain(JSON.stringify(otherRouteEvent));
  });

  test('a put that fails leaves its message in the DLQ; the others go on', async () => {
    const w = await world();
    const first = fastEnvelope('77777777-0000-4000-8000-000000000001');
    const second = fastEnvelope('77777777-0000-4000-8000-000000000002');
    for (const envelope of [first, second]) {
      await w.deadLetter(JSON.stringify(lambdaOnFailureRecord({ functionArn: RELAY_ARN, requestPayload: envelope })));
    }

    const outcome = await injector.invoke(() => redriveFastLaneDeadLetters({ ...w.deps, eventBridge: faulty.eventBridge }, {
      deadLetterQueueUrl: w.dlq.url, curatedBusName: w.bus, relayFunctionArn: RELAY_ARN, waitTimeSeconds: 0,
    }), { at: 0, kind: 'lost-request' });

    expect(outcome.ended).toBe('returned');
    const report = (outcome as { value: FastLaneRedriveReport }).value;
    expect(report).toMatchObject({ received: 2, redriven: 1, kept: 1, fromOnFailureRecords: 1, stoppedBecause: 'empty' });
    expect(report.notes).toEqual([{ messageId: expect.any(String), reason: expect.stringMatching(/^put on the curated bus failed: .*PutEvents failed/) }]);
    const delivered = (await w.delivered()).map((e) => e.detail.id);
    expect(delivered.length).toBe(1);
    const left = (await drainMotoQueue(sqs, w.dlq.url)).map((body) => JSON.parse(body).requestPayload.id);
    expect([...delivered, ...left].sort()).toEqual([first.id, second.id].sort());
  });
});
