import { AttributeValue, BatchWriteItemCommand, CreateTableCommand, DeleteTableCommand, QueryCommand, ScanCommand } from '@aws-sdk/client-dynamodb';
import { marshall } from '@aws-sdk/util-dynamodb';
import { correlationQueryInput } from '../src/event-aggregator/aggregator-core';
import { recordEvent } from '../src/event-aggregator/recorder-core';
import { motoClients, uniqueName } from '../test/support/moto';
import motoGlobalSetup from '../test/support/moto-global-setup';
import motoGlobalTeardown from '../test/support/moto-global-teardown';

type Table = (title: string, header: string[], rows: (string | number)[][]) => void;

const TABLE_SIZES = [10, 1_000, 10_000];
const REPEATS = 5;
const TTL = 7 * 86_400;

interface Read { count: number; scanned: number; capacity?: number; calls: number; ms: number; bytesReturned: number }

/**
 * Reading one correlation id's items, on moto DynamoDB, in tables holding N unrelated items
 * (other correlation ids) plus one id with 2 events: the aggregator's strongly consistent
 * Query on the partition key against the seed's Scan with a FilterExpression on the id
 * (paginated to the end here; the seed reads only the first page, so past 1 MB it misses
 * events). moto's server runs the moto jest setup's code, started and stopped here.
 */
export async function benchEventAggregator(table: Table): Promise<void> {
  await motoGlobalSetup();
  try {
    const { dynamoDb } = motoClients();
    const rows: (string | number)[][] = [];
    for (const size of TABLE_SIZES) {
      const tableName = uniqueName('bench-aggregates');
      await dynamoDb.send(new CreateTableCommand({
        TableName: tableName,
        BillingMode: 'PAY_PER_REQUEST',
        KeySchema: [{ AttributeName: 'correlationId', KeyType: 'HASH' }, { AttributeName: 'eventName', KeyType: 'RANGE' }],
        AttributeDefinitions: [{ AttributeName: 'correlationId', AttributeType: 'S' }, { AttributeName: 'eventName', AttributeType: 'S' }],
      }));
      const unrelatedBytes = await fill(dynamoDb, tableName, size);
      const config = { tableName, itemTtlSeconds: TTL, maxPayloadBytes: 350_000 };
      const now = new Date().toISOString();
      await recordEvent({ dynamoDb }, config, { correlationId: 7, eventName: 'Account Check', eventId: 'e-1', time: now, detail: { OrderID: 7, ok: true } });
      await recordEvent({ dynamoDb }, config, { correlationId: 7, eventName: 'In Stock', eventId: 'e-2', time: now, detail: { OrderID: 7, sku: 'A-1' } });

      const ours = await median(() => readWith(async (startKey) => dynamoDb.send(new QueryCommand({
        ...correlationQueryInput(tableName, '7', startKey), ReturnConsumedCapacity: 'TOTAL',
      }))));
      // A Query reads the items it returns; a Scan reads every item of the table, whatever the filter.
      const orderBytes = ours.bytesReturned;
      const baseline = await median(() => readWith(async (startKey) => dynamoDb.send(new ScanCommand({
        TableName: tableName,
        FilterExpression: '#id = :id',
        ExpressionAttributeNames: { '#id': 'correlationId' },
        ExpressionAttributeValues: { ':id': { S: '7' } },
        ReturnConsumedCapacity: 'TOTAL',
        ...(startKey ? { ExclusiveStartKey: startKey } : {}),
      }))));
      if (ours.count !== 2 || baseline.count !== 2) throw new Error(`expected 2 items of order 7, got ${ours.count} (Query) and ${baseline.count} (Scan)`);
      rows.push([
        (size + 2).toLocaleString('en-US'),
        ours.scanned, baseline.scanned.toLocaleString('en-US'),
        capacity(ours), capacity(baseline),
        estimatedRcu(orderBytes, true), estimatedRcu(unrelatedBytes + orderBytes, false),
        ours.calls, baseline.calls,
        ours.ms.toFixed(1), baseline.ms.toFixed(1),
      ]);
      await dynamoDb.send(new DeleteTableCommand({ TableName: tableName }));
    }
    table(`Aggregator read for one correlation id (2 events) on moto DynamoDB: consistent Query (ours) vs the seed's Scan + FilterExpression `
      + `(paginated to the end); median of ${REPEATS} runs`,
    ['table items', 'Query items read', 'Scan items read', 'Query RCU (moto)', 'Scan RCU (moto)', 'Query RCU (est.)', 'Scan RCU (est.)',
      'Query calls', 'Scan calls', 'Query ms', 'Scan ms'], rows);
    console.log('(items read = ScannedCount; RCU (moto) = ConsumedCapacity moto returned; RCU (est.) = DynamoDB\'s rule on the bytes read: '
      + '4 KB units, strongly consistent Query 1 per unit, eventually consistent Scan 0.5 per unit. The Scan also runs once per stream record.)');
  } finally {
    await motoGlobalTeardown();
  }
}

/** Writes `size` unrelated items (other correlation ids), recorder-shaped, with BatchWriteItem; returns their size in bytes. */
async function fill(dynamoDb: ReturnType<typeof motoClients>['dynamoDb'], tableName: string, size: number): Promise<number> {
  let bytes = 0;
  const expiresAt = Math.floor(Date.now() / 1000) + TTL;
  for (let start = 0; start < size; start += 25) {
    let requests = Array.from({ length: Math.min(25, size - start) }, (_, i) => ({
      PutRequest: {
        Item: marshall({
          correlationId: `order-${start + i + 1000}`,
          eventName: i % 2 ? 'In Stock' : 'Account Check',
          eventId: `u-${start + i}`,
          receivedAt: new Date().toISOString(),
          payload: { OrderID: start + i + 1000, note: 'n'.repeat(150) },
          expiresAt,
        }),
      },
    }));
    bytes += requests.reduce((n, r) => n + itemBytes(r.PutRequest.Item), 0);
    while (requests.length > 0) {
      const result = await dynamoDb.send(new BatchWriteItemCommand({ RequestItems: { [tableName]: requests } }));
      requests = (result.UnprocessedItems?.[tableName] ?? []) as typeof requests;
    }
  }
  return bytes;
}

/**
 * An item's size as DynamoDB counts it (approximately): attribute names plus values; strings
 * in UTF-8 bytes, numbers about one byte per two digits plus one, 3 bytes per map or list
 * plus 1 per element. https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html
 */
function itemBytes(item: Record<string, AttributeValue>): number {
  const value = (v: AttributeValue): number => {
    if (v.S !== undefined) return Buffer.byteLength(v.S, 'utf8');
    if (v.N !== undefined) return Math.ceil(v.N.replace(/[^0-9]/g, '').length / 2) + 1;
    if (v.BOOL !== undefined || v.NULL !== undefined) return 1;
    if (v.M !== undefined) return 3 + Object.entries(v.M).reduce((n, [k, x]) => n + 1 + Buffer.byteLength(k, 'utf8') + value(x), 0);
    if (v.L !== undefined) return 3 + v.L.reduce((n, x) => n + 1 + value(x), 0);
    return 0;
  };
  return Object.entries(item).reduce((n, [k, v]) => n + Buffer.byteLength(k, 'utf8') + value(v), 0);
}

type Page = {
  Items?: Record<string, AttributeValue>[];
  Count?: number;
  ScannedCount?: number;
  LastEvaluatedKey?: Record<string, AttributeValue>;
  ConsumedCapacity?: { CapacityUnits?: number };
};

/** Reads every page; `bytesReturned` is the size of the items returned. */
async function readWith(page: (startKey?: Record<string, AttributeValue>) => Promise<Page>): Promise<Read> {
  const read: Read = { count: 0, scanned: 0, calls: 0, ms: 0, bytesReturned: 0 };
  const start = process.hrtime.bigint();
  let startKey: Record<string, AttributeValue> | undefined;
  do {
    const result = await page(startKey);
    read.calls++;
    read.count += result.Count ?? 0;
    read.bytesReturned += (result.Items ?? []).reduce((n, item) => n + itemBytes(item), 0);
    read.scanned += result.ScannedCount ?? result.Count ?? 0;
    if (result.ConsumedCapacity?.CapacityUnits !== undefined) read.capacity = (read.capacity ?? 0) + result.ConsumedCapacity.CapacityUnits;
    startKey = result.LastEvaluatedKey;
  } while (startKey);
  read.ms = Number(process.hrtime.bigint() - start) / 1e6;
  return read;
}

async function median(run: () => Promise<Read>): Promise<Read> {
  const runs: Read[] = [];
  for (let i = 0; i < REPEATS; i++) runs.push(await run());
  runs.sort((a, b) => a.ms - b.ms);
  return runs[Math.floor(REPEATS / 2)];
}

const capacity = (read: Read) => (read.capacity === undefined ? 'n/a' : read.capacity.toFixed(1));

/** DynamoDB's read-unit rule: 4 KB per unit, rounded up; eventually consistent reads cost half. */
function estimatedRcu(bytes: number, stronglyConsistent: boolean): string {
  const units = Math.max(1, Math.ceil(bytes / 4096));
  return (stronglyConsistent ? units : units / 2).toFixed(1);
}
