import {
  arnOf, curatedEvent, Deployment, deployWithRoutes, dynamoDb, LambdaSimulator, motoLeader, orchestrated, STAMPING_FOLLOWERS,
} from './moto-harness';
import { FOLLOWERS_ITEM_KEY } from '../../src/leader-follower-orchestrator/orchestrator-contract';
import { DynamoRouteStore } from '../../src/leader-follower-orchestrator/route-store-core';
import { motoEndpoint } from '../support/moto';

let deployment: Deployment;
beforeEach(async () => {
  deployment = await deployWithRoutes();
});

/** A route writer function's handler as deployed (`entry`: which of the two), its DynamoDB client pointed at moto. */
function routeWriterHandler(routesTable: string, entry: 'api' | 'deploy' = 'api'): (event: unknown) => Promise<unknown> {
  Object.assign(process.env, {
    ROUTES_TABLE_NAME: routesTable,
    MAX_HOPS: '7',
    ROUTE_WRITER_ENTRY: entry,
    AWS_REGION: 'us-east-1',
    AWS_ENDPOINT_URL: motoEndpoint(),
    AWS_ACCESS_KEY_ID: 'testing',
    AWS_SECRET_ACCESS_KEY: 'testing',
    POWERTOOLS_LOG_LEVEL: 'SILENT',
  });
  let handler: any;
  jest.isolateModules(() => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    handler = require('../../src/leader-follower-orchestrator/route-writer.lambda').handler;
  });
  return handler;
}

describe('the followers item and the route writer\'s run-time callers (grantWriteRoutes)', () => {
  test('a run-time invocation shaped like a custom resource event cannot re-register the followers', async () => {
    const handler = routeWriterHandler(deployment.routesTable);
    const store = new DynamoRouteStore(dynamoDb, deployment.routesTable);
    const deployed = (await store.get(FOLLOWERS_ITEM_KEY) as any).followers;
    // An operator allowed to write routes invokes the route writer directly (aws lambda invoke), with
    // deliver pointed at enrich's function. No CloudFormation involved.
    const forged = {
      RequestType: 'Update',
      PhysicalResourceId: 'orchestrator-routes',
      ResourceProperties: { Followers: JSON.stringify({ ...deployed, deliver: arnOf('enrich') }) },
    };
    await expect(handler(forged)).rejects.toThrow(/the route writer takes \{ "putRoutes", "deleteChannels", "deleteRoutes" \} only/);
    const lambda = new LambdaSimulator(STAMPING_FOLLOWERS);
    const { leader } = motoLeader(deployment, lambda);
    await leader.handle(curatedEvent('f1', 'sms', { steps: [] }));
    await lambda.settle(leader);
    expect({
      followersItem: (await store.get(FOLLOWERS_ITEM_KEY) as any).followers,
      invoked: lambda.invocations.map((i) => `${i.request.orchestration.follower} -> ${i.follower}`),
      output: (await orchestrated(deployment)).map((o) => o.payload.steps),
    }).toEqual({
      followersItem: deployed,
      invoked: ['enrich -> enrich', 'deliver -> deliver'],
      output: [['enrich', 'deliver']],
    });
  });

  test('the routes resource function takes custom resource events (and registers the followers), and refuses run-time writes', async () => {
    const handler = routeWriterHandler(deployment.routesTable, 'deploy');
    const store = new DynamoRouteStore(dynamoDb, deployment.routesTable);
    const followers = { enrich: arnOf('enrich'), deliver: arnOf('deliver') };
    await handler({ RequestType: 'Create', ResourceProperties: { Routes: '[]', Followers: JSON.stringify(followers) } });
    expect((await store.get(FOLLOWERS_ITEM_KEY) as any).followers).toEqual(followers);
    await expect(handler({ putRoutes: [{ channel: 'push', followers: ['deliver'] }] }))
      .rejects.toThrow(/the routes resource function takes the routes custom resource's events only/);
    expect(await store.get('push')).toBeUndefined();
  });
});
