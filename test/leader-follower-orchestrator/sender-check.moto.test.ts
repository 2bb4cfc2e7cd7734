import {
  curatedEvent, DeadLetterQueueClock, Deployment, deployWithRoutes, LambdaSimulator, motoLeader, STAMPING_FOLLOWERS,
} from './moto-harness';

let deployment: Deployment;
beforeEach(async () => {
  deployment = await deployWithRoutes();
});

describe('a follower result is accepted only from the follower of the step it claims (docs: "Who can make the leader act")', () => {
  test('deliver, invoked with run x1\'s step-1 request whose orchestration.followerArn names deliver, cannot advance the run as enrich', async () => {
    const lambda = new LambdaSimulator(STAMPING_FOLLOWERS);
    const dlq = new DeadLetterQueueClock(deployment);
    const { leader } = motoLeader(deployment, lambda, { sqs: dlq.client });
    await leader.handle(curatedEvent('x1', 'email', { steps: [] }));
    const [request] = lambda.queued;
    expect([request.orchestration.follower, request.step]).toEqual(['enrich', 1]);
    // Anyone allowed to invoke deliver (not the leader) sends it this payload; Lambda then sends deliver's
    // destination record to the leader, with deliver as the sender. followerArn is just a field of the payload.
    const crafted = { ...request, orchestration: { ...request.orchestration, followerArn: lambda.arns.deliver } };
    const record = {
      version: '1.0',
      timestamp: '2026-11-22T10:00:01.000Z',
      requestContext: { requestId: 'r', functionArn: `${lambda.arns.deliver}:$LATEST`, condition: 'Success', approximateInvokeCount: 1 },
      requestPayload: crafted,
      responseContext: { statusCode: 200, executedVersion: '$LATEST' },
      responsePayload: { event: { steps: ['forged'] } },
    };
    await leader.handle(record);
    // Step 1 is enrich's: deliver's result is parked as invalid input, and render is not dispatched with the forged event.
    expect(lambda.queued.map((r) => [r.orchestration.follower, r.step, r.event])).toEqual([['enrich', 1, { steps: [] }]]);
    expect(dlq.sent).toEqual([expect.objectContaining({ reason: 'invalid-input', step: 1, channel: 'email' })]);
  });
});
