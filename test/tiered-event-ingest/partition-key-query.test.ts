import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { defaultIngest } from './fixtures';

// jq 1.6, the engine Firehose's dynamic partitioning runs ("JsonParsingEngine": "JQ-1.6"),
// compiled to WebAssembly. jq-web 0.5.1 behaves as jq 1.6 where 1.7 differs: no pick/1,
// and [limit(0; 1, 2)] is [1] (checked below). It ships no types.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const jqWeb = require('jq-web');

interface Jq { json(input: unknown, query: string): Promise<unknown> }
const jq: Jq = jqWeb.promised;

/** The MetadataExtractionQuery the construct renders for `partitionKeyQuery`. */
function renderedQuery(partitionKeyQuery?: string): string {
  const stack = new Stack(new App(), 'Test', { env: { account: '111111111111', region: 'eu-west-1' } });
  defaultIngest(stack, partitionKeyQuery === undefined ? {} : { partitionKeyQuery });
  const stream = Object.values<any>(Template.fromStack(stack).findResources('AWS::KinesisFirehose::DeliveryStream'))[0];
  const extraction = stream.Properties.ExtendedS3DestinationConfiguration.ProcessingConfiguration.Processors
    .find((p: any) => p.Type === 'MetadataExtraction');
  expect(extraction.Parameters).toContainEqual({ ParameterName: 'JsonParsingEngine', ParameterValue: 'JQ-1.6' });
  return extraction.Parameters.find((p: any) => p.ParameterName === 'MetadataExtractionQuery').ParameterValue;
}

/** A slow-lane record as Firehose receives it (the curated envelope's fields that matter here). */
const record = (fields: Record<string, unknown>) => ({ schemaVersion: '1.0', kind: 'record', id: 'r-1', lane: 'slow', payload: { n: 1 }, ...fields });

describe('partitionKeyQuery rendered for Firehose runs in jq 1.6', () => {
  test('the evaluator is jq 1.6: it refuses what 1.6 refuses and keeps its 1.6 quirks', async () => {
    await expect(jq.json({}, '{"tenant":.a // "x"}')).rejects.toThrow(/compile error/);
    await expect(jq.json({}, 'pick(.a)')).rejects.toThrow(/compile error/);
    await expect(jq.json(null, '[limit(0; 1, 2)]')).resolves.toEqual([1]);
  });

  test('the default query extracts the tenant, and gives records without one a partition instead of an error', async () => {
    const query = renderedQuery();
    for (const [fields, tenant] of [
      [{ tenant: 'acme' }, 'acme'],
      [{ tenant: '42' }, '42'], // a numeric id, quoted by the rule's input template
      [{ tenant: 42 }, '42'], // a record written to the stream directly
      [{ tenant: '' }, '_none'], // the input template's rendering of a missing tenant
      [{ tenant: null }, '_none'],
      [{}, '_none'],
    ] as [Record<string, unknown>, string][]) {
      await expect(jq.json(record(fields), query)).resolves.toEqual({ tenant });
    }
  });

  test.each([
    ['an alternative with a default', '.tenant // "unknown"', true, [[{ tenant: 'acme' }, 'acme'], [{}, 'unknown'], [{ tenant: null }, 'unknown']]],
    ['a chain of alternatives', '.tenant // .payload.brand // "unknown"', true, [[{ payload: { brand: 'b7' } }, 'b7'], [{ tenant: 't1' }, 't1']]],
    ['a conditional', 'if .tenant then .tenant else "none" end', true, [[{}, 'none'], [{ tenant: 'x' }, 'x']]],
    ['a comparison', '(.tenant == "a") | tostring', false, [[{ tenant: 'a' }, 'true']]],
    ['a pipe', '.tenant | ascii_downcase', false, [[{ tenant: 'ACME' }, 'acme']]],
    ['a number made a string', '.tenant | tostring', false, [[{ tenant: 6500 }, '6500']]],
  ])('%s: the rendered query compiles and extracts the partition key', async (_, partitionKeyQuery, brokeUnparenthesized, cases) => {
    const query = renderedQuery(partitionKeyQuery);
    expect(query).toBe(`{"tenant":(${partitionKeyQuery})}`);
    for (const [fields, tenant] of cases as [Record<string, unknown>, string][]) {
      await expect(jq.json(record(fields), query)).resolves.toEqual({ tenant });
    }
    // Unparenthesized, as rendered before: jq 1.6 allows only a pipe in an object value, not `//` or `if`.
    const [[firstFields]] = cases as [Record<string, unknown>, string][];
    const before = jq.json(record(firstFields), `{"tenant":${partitionKeyQuery}}`);
    if (brokeUnparenthesized) await expect(before).rejects.toThrow(/compile error/);
    else await expect(before).resolves.toBeInstanceOf(Object);
  });
});
