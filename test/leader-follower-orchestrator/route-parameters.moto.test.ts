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
