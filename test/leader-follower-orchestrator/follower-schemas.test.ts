import { readFileSync } from 'fs';
import * as path from 'path';
import Ajv2020 from 'ajv/dist/2020';
import {
  curatedEvent, DeadLetterQueueClock, Deployment, deployWithRoutes, LambdaSimulator, motoLeader, STAMPING_FOLLOWERS,
} from './moto-harness';
import { FOLLOWER_REQUEST_SCHEMA, FOLLOWER_RESULT_SCHEMA } from '../../src/leader-follower-orchestrator/follower-contract-schema';

/**
 * The follower contract as JSON Schema, for followers in any language: the shipped files are
 * the schemas the library uses, every request the leader sends validates, and the leader
 * accepts exactly the results the result schema accepts.
 */

const ajv = new Ajv2020({ strict: true, allErrors: true });
const validRequest = ajv.compile(FOLLOWER_REQUEST_SCHEMA);
const validResult = ajv.compile(FOLLOWER_RESULT_SCHEMA);
const shipped = (name: string) => JSON.parse(readFileSync(path.join(__dirname, '..', '..', 'schemas', name), 'utf8'));

test('schemas/follower-request.v1.schema.json and follower-result.v1.schema.json are the library\'s (run `npx projen schemas` if not)', () => {
  expect(shipped('follower-request.v1.schema.json')).toEqual(FOLLOWER_REQUEST_SCHEMA);
  expect(shipped('follower-result.v1.schema.json')).toEqual(FOLLOWER_RESULT_SCHEMA);
  // The limits are stated where a follower author reads them.
  expect(FOLLOWER_REQUEST_SCHEMA.properties.orchestration.properties.maxResultBytes.description).toMatch(/must fail instead/);
  expect(FOLLOWER_RESULT_SCHEMA.description).toMatch(/at most the request's orchestration.maxResultBytes/);
});

let deployment: Deployment;
beforeEach(async () => {
  deployment = await deployWithRoutes();
});

test('every request the leader sends, at every step, validates against the request schema', async () => {
  const lambda = new LambdaSimulator(STAMPING_FOLLOWERS);
  const { leader } = motoLeader(deployment, lambda);
  await leader.handle(curatedEvent('s1', 'email', { steps: [] }));
  await leader.handle(curatedEvent('s2', 'sms', { steps: [] }));
  await lambda.settle(leader);
  expect(lambda.invocations).toHaveLength(5);
  for (const { request } of lambda.invocations) {
    expect({ valid: validRequest(request), errors: validRequest.errors ?? null }).toEqual({ valid: true, errors: null });
  }
  // A request without its dispatch id, or with a step past the longest route, is not one.
  const [{ request }] = lambda.invocations;
  const { dispatchId: _d, ...withoutDispatch } = request.orchestration;
  expect(validRequest({ ...request, orchestration: withoutDispatch })).toBe(false);
  expect(validRequest({ ...request, step: 16 })).toBe(false);
});

test.each([
  [{ event: null }, true],
  [{ event: { html: '<p/>' }, finish: true }, true],
  [{ event: 'text', finish: false, note: 'extra fields are ignored' }, true],
  ['rendered!', false],
  [{}, false],
  [{ event: 1, finish: 'yes' }, false],
  [null, false],
])('the result %j: schema says %s, and the leader agrees', async (result, valid) => {
  expect(validResult(result)).toBe(valid);
  const lambda = new LambdaSimulator({ ...STAMPING_FOLLOWERS, enrich: () => result as any });
  const dlq = new DeadLetterQueueClock(deployment);
  const { leader } = motoLeader(deployment, lambda, { sqs: dlq.client });
  await leader.handle(curatedEvent('r', 'sms', { steps: [] }));
  await lambda.settle({ handle: (input: any) => (input.requestPayload.step === 1 ? leader.handle(input) : Promise.resolve()) } as any);
  const parkedAsInvalid = dlq.sent.filter((m) => m.reason === 'invalid-follower-result').length;
  expect(parkedAsInvalid).toBe(valid ? 0 : 1);
});
