import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { defaultIngest } from './fixtures';
import { CONFIG, depsFor, objectBytes, quarantined, REF, stubEventBridge } from './publisher-fixtures';
import { checkRecord } from '../../src/runtime/curated-envelope';
import { publishObject } from '../../src/tiered-event-ingest/publisher-core';
import { relayRecord } from '../../src/tiered-event-ingest/relay-core';
import { DeliveryContext, renderTarget, RuleTargetInputConfig } from '../support/input-transformer';

// jq 1.6 (WebAssembly), the engine of Firehose's dynamic partitioning; see partition-key-query.test.ts.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const jq: { json(input: unknown, query: string): Promise<unknown> } = require('jq-web').promised;

/**
 * Ids of every JSON type, through both lanes as the synthesized construct wires them: the
 * rule's input transformer (rendered by the documented-semantics evaluator), then the fast
 * lane's relay, or the slow lane's Firehose partition query (jq 1.6) and batch publisher.
 * Every record must reach the curated bus with string ids; none may be parked.
 */
const stack = new Stack(new App(), 'Test', { env: { account: '111111111111', region: 'eu-west-1' } });
const ingest = defaultIngest(stack, { fastRoutes: [{ id: 'Orders', eventPattern: { source: ['shop'] } }] });
const template = Template.fromStack(stack);
const resolve = (construct: { node: { defaultChild?: unknown } }) => stack.resolve((construct.node.defaultChild as any).logicalId);
const rules = template.findResources('AWS::Events::Rule');
const targetOf = (logicalId: string): RuleTargetInputConfig => rules[logicalId].Properties.Targets[0];
const fastTarget = targetOf(resolve(ingest.fastRoutes[0]));
const slowTarget = targetOf(resolve(ingest.slowLaneRule));
const partitionQuery: string = Object.values<any>(template.findResources('AWS::KinesisFirehose::DeliveryStream'))[0]
  .Properties.ExtendedS3DestinationConfiguration.ProcessingConfiguration.Processors
  .find((p: any) => p.Type === 'MetadataExtraction').Parameters.find((p: any) => p.ParameterName === 'MetadataExtractionQuery').ParameterValue;

const context: DeliveryContext = { ruleArn: 'arn:aws:events:eu-west-1:111111111111:rule/x', ruleName: 'x', ingestionTime: '2026-11-30T10:00:00Z' };
const sourceEvent = (detail: Record<string, unknown>) => ({
  'version': '0',
  'id': '6a7e8feb-b491-4cf7-a9f1-bf3703467718',
  'detail-type': 'OrderPlaced',
  'source': 'shop',
  'account': '111111111111',
  'time': '2026-11-30T10:00:00Z',
  'region': 'eu-west-1',
  'resources': [],
  detail,
});

/** [case, source detail, tenant expected on the curated bus (undefined: any string)]. */
const CASES: [string, Record<string, unknown>, string | undefined][] = [
  ['numeric ids', { tenantId: 6500, channel: 3, correlationId: 90071992547, order: 1 }, '6500'],
  ['a missing tenant (and channel and correlation id)', { order: 2 }, ''],
  // Inside quotes a null has no documented rendering; what matters is that it is not parked.
  ['a null tenant', { tenantId: null, channel: 'sms', order: 3 }, undefined],
  ['string ids', { tenantId: 'acme', channel: 'sms', correlationId: 'c-1', order: 4 }, 'acme'],
];

describe.each(CASES)('%s', (_, detail, tenant) => {
  test('fast lane: the route\'s input is a valid envelope with string ids, and the relay puts it on the curated bus', async () => {
    const body = renderTarget(fastTarget, sourceEvent(detail), context).body;
    const envelope = JSON.parse(body);
    expect(checkRecord(envelope)).toEqual({ valid: true, errors: [] });
    const { client, published } = stubEventBridge();
    await relayRecord(client, 'curated', envelope);
    const put = JSON.parse(published.calls[0].Entries![0].Detail!);
    for (const field of ['tenant', 'channel', 'correlationId']) expect(typeof put[field]).toBe('string');
    if (tenant !== undefined) expect(put.tenant).toBe(tenant);
    if (detail.correlationId !== undefined) expect(put.correlationId).toBe(String(detail.correlationId));
    expect(put.payload).toEqual(detail);
  });

  test('slow lane: Firehose extracts a partition key (no error output), and the publisher publishes the record', async () => {
    const line = renderTarget(slowTarget, sourceEvent(detail), context).body;
    const key = await jq.json(JSON.parse(line), partitionQuery) as { tenant: unknown };
    expect(typeof key.tenant).toBe('string'); // null or a missing key sends the record to firehose-errors/
    expect(key.tenant).not.toBe('');
    const { client, published } = stubEventBridge();
    const deps = depsFor(objectBytes([line, line.replace('"order":', '"order":1')]), client);
    const report = await publishObject(deps, CONFIG, REF);
    expect(quarantined(deps.quarantine)).toEqual([]);
    expect(report.published).toBe(2);
    const batch = published.entries[0].detail;
    expect(typeof batch.tenant).toBe('string');
    if (tenant !== undefined) expect(batch.tenant).toBe(tenant);
    expect(batch.records[0].payload).toEqual(detail);
  });
});
