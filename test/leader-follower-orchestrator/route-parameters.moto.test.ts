import { AttributeValue, DynamoDBClient, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { marshall } from '@aws-sdk/util-dynamodb';
import { Deployment, deployWithRoutes, dynamoDb } from './moto-harness';
import { checkRoute } from '../../src/leader-follower-orchestrator/route-schema';
import { DynamoRouteStore } from '../../src/leader-follower-orchestrator/route-store-core';
import { handleRouteWriteRequest } from '../../src/leader-follower-orchestrator/route-writer-core';

/**
 * Step parameters are any JSON the routes table can store: what DynamoDB cannot store is
 * refused by the route check (at synth, by the writer and by the leader), naming the route
 * and the value, before anything is written.
 */

let deployment: Deployment;
beforeEach(async () => {
  deployment = await deployWithRoutes();
});

test('a run-time putRoutes whose second route has an integer DynamoDB cannot store writes nothing, and says which route and value', async () => {
  const store = new DynamoRouteStore(dynamoDb, deployment.routesTable);
  const request = {
    putRoutes: [
      { channel: 'push', followers: ['deliver'] },
      // A 64-bit account id as a JSON number: beyond 2^53, already rounded by JSON.parse.
      { channel: 'fax', followers: [{ follower: 'render', parameters: { accountId: 12345678901234567890 } }, 'deliver'] },
    ],
  };
  await expect(handleRouteWriteRequest(request, store, { maxHops: 7 })).rejects.toThrow(
    /^invalid routes, nothing written: route 1 \("fax"\): \/followers\/0\/parameters\/accountId is the number 12345678901234567000; allowed: .*pass larger ids as strings/);
  expect(await store.get('push')).toBeUndefined();
  expect(await store.get('fax')).toBeUndefined();
});

test.each([
  ['an infinite number', { limit: Infinity }, /\/followers\/0\/parameters\/limit is the number Infinity/],
  ['a decimal too large for DynamoDB', { ratio: 1e200 }, /\/followers\/0\/parameters\/ratio is the number 1e\+200/],
  ['nesting deeper than 16 levels', JSON.parse(`${'{"a":'.repeat(17)}1${'}'.repeat(17)}`), /nests deeper than 16 levels/],
])('parameters with %s are refused by the route check', (_name, parameters, error) => {
  const check = checkRoute({ channel: 'push', followers: [{ follower: 'render', parameters }] });
  expect(check.valid).toBe(false);
  expect(check.errors.join('; ')).toMatch(error);
});

test('what DynamoDB stores is accepted and read back as written: safe integers, decimals, strings, nulls, nested lists', async () => {
  const parameters = { id: 9007199254740991, ratio: 0.125, tiny: 1e-100, text: 'hé', none: null, list: [[1, 'a'], { b: false }] };
  const route = { channel: 'push', followers: [{ follower: 'render', parameters }, 'deliver'] };
  expect(checkRoute(route)).toEqual({ valid: true, errors: [] });
  const store = new DynamoRouteStore(dynamoDb, deployment.routesTable);
  await handleRouteWriteRequest({ putRoutes: [route] }, store, { maxHops: 7 });
  expect(await store.get('push')).toMatchObject({ followers: [{ follower: 'render', parameters }, 'deliver'] });
});

/**
 * DynamoDB's own item-size rules (developerguide/CapacityUnitCalculations.html): a number is
 * 1 byte per two significant digits + 1 byte; a list or map is 3 bytes + its elements, and each
 * element 1 byte more; a map key counts its UTF-8 bytes. Items are at most 400 KB (409,600 bytes).
 * Moto sizes items more leniently, so real DynamoDB's rule is applied here.
 */
function ddbSize(value: AttributeValue): number {
  if (value.S !== undefined) return Buffer.byteLength(value.S, 'utf8');
  if (value.N !== undefined) return Math.ceil(value.N.replace(/^-/, '').replace(/\./, '').replace(/^0+/, '').replace(/0+$/, '').length / 2) + 1;
  if (value.BOOL !== undefined || value.NULL !== undefined) return 1;
  if (value.L !== undefined) return 3 + value.L.reduce((sum, v) => sum + ddbSize(v) + 1, 0);
  if (value.M !== undefined) return 3 + Object.entries(value.M).reduce((sum, [k, v]) => sum + Buffer.byteLength(k, 'utf8') + ddbSize(v) + 1, 0);
  throw new Error('unexpected type');
}
const itemSize = (item: Record<string, AttributeValue>) => Object.entries(item).reduce((s, [k, v]) => s + Buffer.byteLength(k, 'utf8') + ddbSize(v), 0);
const DDB_MAX_ITEM_BYTES = 400 * 1024;

/** 170,000 one-digit numbers: 340,000 bytes as JSON (under the 350,000 the check allows), ~510,000 bytes in DynamoDB. */
const bigRoute = { channel: 'fax', followers: [{ follower: 'render', parameters: { weights: new Array(170_000).fill(7) } }, 'deliver'] };

test('a route whose parameters DynamoDB cannot store (item over 400 KB by DynamoDB\'s size rules) is refused by the route check', () => {
  const size = itemSize(marshall(bigRoute));
  expect(size).toBeGreaterThan(DDB_MAX_ITEM_BYTES); // what DynamoDB would refuse
  expect(Buffer.byteLength(JSON.stringify(bigRoute))).toBeLessThan(350_000); // what the check measures
  expect(checkRoute(bigRoute).valid).toBe(false);
});

test('a run-time putRoutes whose second route is over DynamoDB\'s item size writes nothing (as promised), not the first route only', async () => {
  // moto, but refusing items over 400 KB as DynamoDB measures them
  const strict = new Proxy(dynamoDb, {
    get(target, prop, receiver) {
      if (prop !== 'send') return Reflect.get(target, prop, receiver);
      return async (command: any) => {
        if (command instanceof PutItemCommand && itemSize(command.input.Item!) > DDB_MAX_ITEM_BYTES) {
          throw Object.assign(new Error('Item size has exceeded the maximum allowed size'), { name: 'ValidationException' });
        }
        return target.send(command);
      };
    },
  }) as DynamoDBClient;
  const store = new DynamoRouteStore(strict, deployment.routesTable);
  const request = { putRoutes: [{ channel: 'push', followers: ['deliver'] }, bigRoute] };
  // Refused by the route check, naming the route and its size as DynamoDB counts it, before any PutItem.
  await expect(handleRouteWriteRequest(request as any, store, { maxHops: 7 })).rejects.toThrow(
    /^invalid routes, nothing written: route 1 \("fax"\): the route is \d{6} bytes as DynamoDB sizes items; allowed: at most 350000/);
  // Not the first route alone (it was stored before DynamoDB refused the second).
  expect(await store.get('push')).toBeUndefined();
}, 60_000);
