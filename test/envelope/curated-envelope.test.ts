import { readFileSync } from 'fs';
import * as path from 'path';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { CuratedEnvelope, IngestLane } from '../../src';
import { deterministicId } from '../../src/runtime/curated-envelope';
import { CURATED_ENVELOPE_SCHEMA } from '../../src/runtime/curated-envelope-schema';

const record = () => CuratedEnvelope.record({ id: 'evt-1', payload: { text: 'hi' }, lane: IngestLane.FAST, tenant: 'acme', channel: 'sms', time: '2026-11-22T10:00:00Z' });
const batch = (records: unknown[], recordCount = records.length) => ({
  schemaVersion: '1.0',
  kind: 'batch',
  id: 'b-1',
  tenant: 'acme',
  lane: 'slow',
  time: '2026-11-22T10:01:00Z',
  recordCount,
  origin: { bucket: 'b', key: 'data/k.gz', firstLine: 1, lastLine: records.length },
  records,
});

describe('JSON Schema shipped in the package', () => {
  test('schemas/curated-envelope.v1.schema.json is the schema the library validates with (run `npx projen schemas` if not)', () => {
    const shipped = JSON.parse(readFileSync(path.join(__dirname, '..', '..', CuratedEnvelope.SCHEMA_FILE), 'utf8'));
    expect(shipped).toEqual(CURATED_ENVELOPE_SCHEMA);
    expect(JSON.parse(readFileSync(CuratedEnvelope.schemaFilePath(), 'utf8'))).toEqual(CuratedEnvelope.jsonSchema());
  });

  test('schemaJson() is the shipped file\'s content, byte for byte', () => {
    const file = readFileSync(path.join(__dirname, '..', '..', CuratedEnvelope.SCHEMA_FILE), 'utf8');
    expect(CuratedEnvelope.schemaJson()).toBe(file);
    expect(JSON.parse(CuratedEnvelope.schemaJson())).toEqual(CURATED_ENVELOPE_SCHEMA);
  });

  test('jsonSchema() returns a copy the caller cannot use to change validation', () => {
    const schema = CuratedEnvelope.jsonSchema();
    schema.$defs.record.required = [];
    expect(CuratedEnvelope.validate({ kind: 'record' }).valid).toBe(false);
  });
});

describe('record()', () => {
  test('fills the constant fields and nulls for what is not given', () => {
    expect(record()).toEqual({
      schemaVersion: '1.0',
      kind: 'record',
      id: 'evt-1',
      tenant: 'acme',
      channel: 'sms',
      correlationId: null,
      lane: 'fast',
      time: '2026-11-22T10:00:00Z',
      payload: { text: 'hi' },
    });
  });

  test('refuses a field the schema does not allow, naming it', () => {
    expect(() => CuratedEnvelope.record({ id: '', payload: {}, lane: IngestLane.SLOW })).toThrow('invalid curated record: /id must NOT have fewer than 1 characters');
  });
});

describe('validate()', () => {
  test('a record and a batch of records are valid', () => {
    expect(CuratedEnvelope.validate(record())).toEqual({ valid: true, errors: [] });
    expect(CuratedEnvelope.validate(batch([{ ...record(), lane: 'slow' }]))).toEqual({ valid: true, errors: [] });
  });

  test.each([
    ['a batch whose recordCount is not its length', batch([record()], 2), '/recordCount is 2 but records holds 1'],
    ['an empty batch', batch([]), '/recordCount must be >= 1'],
    ['an unknown kind', { kind: 'bundle' }, '/kind must be "record" or "batch" (got "bundle")'],
    ['no kind at all', 'text', '/kind must be "record" or "batch" (got no kind)'],
    ['an extra field', { ...record(), extra: 1 }, '/ must NOT have additional properties ("extra")'],
    ['another schema version', { ...record(), schemaVersion: '2.0' }, '/schemaVersion must be equal to constant ("1.0")'],
    ['a batch in the fast lane', { ...batch([record()]), lane: 'fast' }, '/lane must be equal to constant ("slow")'],
    ['a record in a batch that is not a record', batch([{ id: 'x' }]), "/records/0 must have required property 'schemaVersion'"],
  ])('%s is invalid, with the reason', (_name, value, error) => {
    expect(CuratedEnvelope.validate(value)).toEqual({ valid: false, errors: [error] });
  });
});

describe('JSON variants (exact across jsii languages, which drop nulls from objects)', () => {
  test('recordJson keeps the null fields and validateJson accepts it', () => {
    const json = CuratedEnvelope.recordJson({ id: 'evt-2', payload: [1, 2], lane: IngestLane.SLOW });
    expect(JSON.parse(json)).toMatchObject({ tenant: null, channel: null, correlationId: null, lane: 'slow', payload: [1, 2] });
    expect(CuratedEnvelope.validateJson(json)).toEqual({ valid: true, errors: [] });
  });

  test('validateJson names text that is not JSON', () => {
    expect(CuratedEnvelope.validateJson('{').errors[0]).toMatch(/^\/ is not JSON: /);
  });
});

describe('ruleTargetInput()', () => {
  test('renders an input transformer that builds the envelope from the configured paths', () => {
    const stack = new Stack(new App(), 'S');
    const rule = new events.Rule(stack, 'Rule', { eventPattern: { source: ['x'] } });
    rule.addTarget(new targets.SqsQueue(new sqs.Queue(stack, 'Q'), {
      message: CuratedEnvelope.ruleTargetInput(IngestLane.SLOW, { tenantIdPath: '$.detail.account.tenant' }),
    }));
    const rules = Template.fromStack(stack).findResources('AWS::Events::Rule');
    const transformer = Object.values<any>(rules)[0].Properties.Targets[0].InputTransformer;
    expect(transformer.InputPathsMap).toEqual({
      'id': '$.id',
      'tenant': '$.detail.account.tenant',
      'channel': '$.detail.channel',
      'correlationId': '$.detail.correlationId',
      'time': '$.time',
      'source': '$.source',
      'detail-type': '$.detail-type',
      'detail': '$.detail',
    });
    // The ids are quoted, so numbers and missing ids arrive as strings; the payload is any JSON.
    expect(transformer.InputTemplate).toBe('{"schemaVersion":"1.0","kind":"record","id":<id>,"tenant":"<tenant>",'
      + '"channel":"<channel>","correlationId":"<correlationId>","lane":"slow","time":<time>,"source":<source>,'
      + '"detailType":<detail-type>,"payload":<detail>}');
  });

  test('defaults the paths and refuses one that is not an EventBridge JSON path', () => {
    expect(CuratedEnvelope.resolvePaths()).toEqual({ tenantIdPath: '$.detail.tenantId', channelPath: '$.detail.channel', correlationIdPath: '$.detail.correlationId' });
    expect(() => CuratedEnvelope.ruleTargetInput(IngestLane.FAST, { channelPath: 'detail.channel' })).toThrow(
      'invalid channelPath "detail.channel"; allowed: a JSON path in dot notation starting with "$.", such as "$.detail.tenantId"');
  });
});

test('batch ids are UUID-shaped and the same for the same object and line', () => {
  expect(deterministicId('bucket/key#v1', '1')).toBe(deterministicId('bucket/key#v1', '1'));
  expect(deterministicId('bucket/key#v1', '1')).not.toBe(deterministicId('bucket/key#v1', '2'));
  expect(deterministicId('a')).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
});
