import { gzipSync } from 'zlib';
import { GetItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import {
  arnOf, curatedEvent, Deployment, deployWithRoutes, dynamoDb, LambdaSimulator, motoLeader, parked, STAMPING_FOLLOWERS, STEP_RESULT_TIMEOUT_MS,
} from './moto-harness';

let deployment: Deployment;
beforeEach(async () => {
  deployment = await deployWithRoutes();
});

/**
 * A run the current leader started (step 1 dispatched with a dispatch id), whose step 2 was then
 * claimed and dispatched by a leader of the version before dispatch ids: Lambda serves the old and
 * the new code side by side for a while after a function update, and a CloudFormation rollback
 * runs the old code again on runs the new code started. The old code's claim and markDispatched
 * are the ones of `git show 717ff40^:src/leader-follower-orchestrator/progress-core.ts`: they
 * neither set nor remove `dispatchId`.
 */
async function legacyStepTwo(clock: { now: number }) {
  const lambda = new LambdaSimulator(STAMPING_FOLLOWERS);
  const current = motoLeader(deployment, lambda, { clock });
  await current.leader.handle(curatedEvent('legacy-1', 'sms', { steps: [] }));
  const [enrichRequest] = lambda.queued;
  const runId = enrichRequest.orchestration.runId;
  // The old leader takes enrich's result: it claims step 2 (no dispatch id, as before dispatch ids)...
  expect(await current.progress.claim({ runId, step: 2, channel: 'sms' })).toBe('claimed');
  // ...and invokes deliver with a request that has no dispatch id, then marks the step dispatched (old markDispatched).
  const { dispatchId: _none, maxResultBytes: _max, ...legacyContext } = enrichRequest.orchestration as any;
  const legacyRequest = {
    channel: 'sms',
    step: 2,
    event: { steps: ['enrich'] },
    orchestration: { ...legacyContext, follower: 'deliver', hops: 2 },
  };
  await dynamoDb.send(new UpdateItemCommand({
    TableName: deployment.progressTable,
    Key: { runId: { S: runId } },
    UpdateExpression: 'SET #dispatched = :true, #stallAt = :stallAt, #stepInput = :input REMOVE #parked, #parkSent, #parkedFrom, #resuming',
    ConditionExpression: '#step = :k',
    ExpressionAttributeNames: {
      '#dispatched': 'dispatched',
      '#stallAt': 'stallAt',
      '#stepInput': 'stepInput',
      '#parked': 'parked',
      '#parkSent': 'parkSent',
      '#parkedFrom': 'parkedFrom',
      '#resuming': 'resuming',
      '#step': 'step',
    },
    ExpressionAttributeValues: {
      ':true': { BOOL: true },
      ':k': { N: '2' },
      ':stallAt': { N: String(clock.now + STEP_RESULT_TIMEOUT_MS) },
      ':input': { B: gzipSync(JSON.stringify(legacyRequest)) },
    },
  }));
  const key = { runId: { S: runId } };
  const { Item } = await dynamoDb.send(new GetItemCommand({ TableName: deployment.progressTable, Key: key, ConsistentRead: true }));
  // Step 2 was never parked and never dispatched with an id: its dispatchId attribute is step 1's.
  expect(Item?.step?.N).toBe('2');
  return { runId, legacyRequest };
}

describe('a legacy failure record (no orchestration.dispatchId) of a step that was never parked', () => {
  test('deliver fails on the legacy request: the current leader parks the step', async () => {
    const clock = { now: Date.parse('2026-11-22T10:00:00Z') };
    const { legacyRequest } = await legacyStepTwo(clock);
    // Hours later (follower retries), the failure record reaches the current leader.
    const { leader } = motoLeader(deployment, new LambdaSimulator(STAMPING_FOLLOWERS), { clock });
    await leader.handle({
      version: '1.0',
      timestamp: '2026-11-22T12:00:00Z',
      requestContext: { requestId: 'r', functionArn: `${arnOf('deliver')}:$LATEST`, condition: 'RetriesExhausted', approximateInvokeCount: 3 },
      requestPayload: legacyRequest,
      responseContext: { statusCode: 200, executedVersion: '$LATEST', functionError: 'Unhandled' },
      responsePayload: { errorType: 'Error', errorMessage: 'smtp down' },
    });
    expect((await parked(deployment)).map((p) => [p.reason, p.step, p.follower, (p.record as any)?.payload])).toEqual([
      ['follower-failed', 2, 'deliver', { steps: ['enrich'] }],
    ]);
  });

  test('its result never comes back: the stalled-step sweep parks the step', async () => {
    const clock = { now: Date.parse('2026-11-22T10:00:00Z') };
    await legacyStepTwo(clock);
    clock.now += STEP_RESULT_TIMEOUT_MS + 60_000;
    const { leader } = motoLeader(deployment, new LambdaSimulator(STAMPING_FOLLOWERS), { clock, entry: 'redrive' });
    const report = await leader.handle({ sweepStalled: {} });
    expect({ sweep: report.sweep, parked: (await parked(deployment)).map((p) => [p.reason, p.step]) })
      .toEqual({ sweep: { found: 1, parked: 1 }, parked: [['stalled', 2]] });
  });
});
