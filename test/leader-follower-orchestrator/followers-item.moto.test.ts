import { InvokeCommand } from '@aws-sdk/client-lambda';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { defaultOrchestrator, followerFunction } from './fixtures';
import {
  arnOf, curatedEvent, Deployment, deployWithRoutes, dynamoDb, LambdaSimulator, motoLeader, orchestrated, parked, registerFollowers, stamping,
  STAMPING_FOLLOWERS, writeRoute,
} from './moto-harness';
import { FOLLOWERS_ITEM_KEY } from '../../src/leader-follower-orchestrator/orchestrator-contract';
import { DynamoRouteStore } from '../../src/leader-follower-orchestrator/route-store-core';
import { handleRoutesResource } from '../../src/leader-follower-orchestrator/route-writer-core';

let deployment: Deployment;
beforeEach(async () => {
  deployment = await deployWithRoutes();
});

/** The routes custom resource at a deploy: writes the followers item (and the routes). */
const deploy = (followers: Record<string, string>, routes: unknown[] = []) => handleRoutesResource({
  RequestType: 'Create',
  ResourceProperties: { Routes: JSON.stringify(routes), Followers: JSON.stringify(followers) },
}, new DynamoRouteStore(dynamoDb, deployment.routesTable), { maxHops: 7 });

const BASE = { enrich: arnOf('enrich'), render: arnOf('render'), deliver: arnOf('deliver') };

describe('a deploy that changes a registered follower\'s ARN, seen by a warm leader (default 60 s route cache)', () => {
  test('a follower registered as a version: after a deploy publishes version 2 (and the role may invoke only it), the leader invokes version 2', async () => {
    await deploy({ ...BASE, render: `${arnOf('render')}:1` }, [{ channel: 'card', followers: ['render'] }]);
    // What the leader's role may invoke: the deploy updates the policy before it writes the followers item.
    let allowed = `${arnOf('render')}:1`;
    const invoked: string[] = [];
    const lambda = {
      send: async (command: InvokeCommand) => {
        if (command.input.FunctionName !== allowed) {
          throw Object.assign(new Error(`not authorized to perform: lambda:InvokeFunction on ${command.input.FunctionName}`), { name: 'AccessDeniedException' });
        }
        invoked.push(command.input.FunctionName!);
        return { StatusCode: 202 };
      },
    };
    const { leader } = motoLeader(deployment, new LambdaSimulator({}), { lambda });
    await leader.handle(curatedEvent('c1', 'card', { steps: [] }));
    // The next deploy publishes the follower's version 2 (a code change): the leader's invoke policy, then the
    // followers item, name version 2 only. The leader function itself is not updated by this deploy.
    allowed = `${arnOf('render')}:2`;
    await deploy({ ...BASE, render: `${arnOf('render')}:2` });
    // This warm environment still has version 1 cached: refused, it reads the item again and invokes version 2.
    await leader.handle(curatedEvent('c2', 'card', { steps: [] }));
    expect(invoked).toEqual([`${arnOf('render')}:1`, `${arnOf('render')}:2`]);
  });

  test('a follower whose function is replaced: the new function\'s result reaching a warm leader advances the run', async () => {
    await writeRoute(deployment, { channel: 'direct', followers: ['deliver'] });
    const lambda = new LambdaSimulator({ ...STAMPING_FOLLOWERS, 'deliver-v2': stamping('deliver-v2') });
    // Two execution environments of the leader: `warm` read the followers item before the deploy.
    const warm = motoLeader(deployment, lambda).leader;
    await warm.handle(curatedEvent('d1', 'direct', { steps: [] }));
    await lambda.settle(warm);
    // The deploy replaces the deliver function (a new function name): the followers item names the new ARN.
    await deploy({ ...BASE, deliver: arnOf('deliver-v2') });
    const cold = motoLeader(deployment, lambda).leader;
    await cold.handle(curatedEvent('d2', 'direct', { steps: [] }));
    // The new function's destination record is delivered to the warm environment.
    await lambda.settle(warm);
    expect((await parked(deployment)).map((p) => [p.reason, p.message])).toEqual([]);
    expect((await orchestrated(deployment)).map((o) => [o.id, o.payload.steps])).toEqual(expect.arrayContaining([
      ['d1', ['deliver']], ['d2', ['deliver-v2']],
    ]));
  });
});

describe('follower names that are Object.prototype members (allowed by FOLLOWER_NAME_PATTERN)', () => {
  test('a stack with a follower named "constructor" (accepted at synth) deploys: its routes resource writes the followers item', async () => {
    const stack = new Stack(new App(), 'Ctor', { env: { account: '123456789012', region: 'us-east-1' } });
    const orchestrator = defaultOrchestrator(stack);
    orchestrator.addFollower('constructor', followerFunction(stack, 'Ctor'));
    orchestrator.addRoute('ctor', ['constructor']);
    const template = Template.fromStack(stack);
    const [resource] = Object.values<any>(template.findResources('Custom::OrchestratorRoutes'));
    // The custom resource's properties as CloudFormation resolves them (each function ARN in place of its GetAtt).
    const resolve = (value: any): string => (typeof value === 'string' ? value : value['Fn::Join'][1].map((part: any) =>
      (typeof part === 'string' ? part : arnOf(part['Fn::GetAtt'][0]))).join(''));
    const outcome = await handleRoutesResource({
      RequestType: 'Create',
      ResourceProperties: { Routes: resolve(resource.Properties.Routes), Followers: resolve(resource.Properties.Followers) },
    }, new DynamoRouteStore(dynamoDb, deployment.routesTable), { maxHops: 7 }).then(() => 'deployed', (error: Error) => `deploy failed: ${error.message}`);
    expect(outcome).toBe('deployed');
  });

  test('a follower named "toString" registered by a later deploy runs at once, like any other new name', async () => {
    const lambda = new LambdaSimulator({ ...STAMPING_FOLLOWERS, toString: stamping('toString') } as any);
    const { leader } = motoLeader(deployment, lambda, { cacheTtlMs: 3_600_000 });
    await leader.handle(curatedEvent('s1', 'sms', { steps: [] }));
    await lambda.settle(leader);
    await deploy({ ...BASE, toString: arnOf('toString') } as any, [{ channel: 'ts', followers: ['toString'] }]);
    await leader.handle(curatedEvent('k1', 'ts', { steps: [] }));
    await lambda.settle(leader);
    expect((await parked(deployment)).map((p) => [p.reason, p.message])).toEqual([]);
    expect((await orchestrated(deployment)).map((o) => [o.id, o.payload.steps])).toEqual(expect.arrayContaining([['k1', ['toString']]]));
  });

  test('a run whose next follower "toString" a deploy unregistered is parked as unregistered-follower, not failed with a bad Invoke', async () => {
    await deploy({ ...BASE, toString: arnOf('toString') } as any, [{ channel: 'ts', followers: ['enrich', 'toString'] }]);
    const simulator = new LambdaSimulator({ ...STAMPING_FOLLOWERS });
    // Lambda's Invoke takes a function name string; anything else is an error of the call.
    const lambda = {
      send: async (command: InvokeCommand) => {
        const name: unknown = command.input.FunctionName;
        if (typeof name !== 'string') throw new Error(`Invoke called with a FunctionName of type ${typeof name}: ${String(name).slice(0, 40)}`);
        return simulator.client.send(command);
      },
    };
    const { leader } = motoLeader(deployment, simulator, { cacheTtlMs: 0, lambda });
    await leader.handle(curatedEvent('t1', 'ts', { steps: [] }));
    // A deploy removes the follower while the run is at step 1.
    await deploy({ ...BASE });
    const settled = await simulator.settle(leader).then(() => 'settled', (error: Error) => `threw: ${error.message}`);
    expect(settled).toBe('settled');
    expect((await parked(deployment)).map((p) => [p.reason, p.step, p.follower])).toEqual([['unregistered-follower', 2, 'toString']]);
  });
});

describe('deploys seen by a warm leader with the followers item cached for 5 minutes, as deployed', () => {
  /** The leader's role, as a deploy sets it: Invoke of a function it no longer grants is refused. */
  function guarded(simulator: LambdaSimulator, allowed: Set<string>) {
    return {
      send: async (command: InvokeCommand) => {
        if (!allowed.has(command.input.FunctionName!)) {
          throw Object.assign(new Error(`not authorized to perform: lambda:InvokeFunction on ${command.input.FunctionName}`),
            { name: 'AccessDeniedException' });
        }
        return simulator.client.send(command);
      },
    };
  }

  test('a deploy unregisters the next step\'s follower while a warm leader (5-minute followers cache, as deployed) has it cached: the step is parked as unregistered-follower, the invocation does not fail', async () => {
    const simulator = new LambdaSimulator({ ...STAMPING_FOLLOWERS });
    const allowed = new Set(['enrich', 'render', 'deliver'].map(arnOf));
    const { leader } = motoLeader(deployment, simulator, { cacheTtlMs: 0, followerItemTtlMs: 300_000, lambda: guarded(simulator, allowed) });
    await leader.handle(curatedEvent('e1', 'email', { steps: [] }));
    // A deploy removes "render": the leader's invoke grant for it, then the followers item.
    allowed.delete(arnOf('render'));
    await registerFollowers(deployment, ['enrich', 'deliver']);
    const settled = await simulator.settle(leader).then(() => 'settled', (error: Error) => `threw ${error.name}: ${error.message}`);
    expect(settled).toBe('settled');
    expect((await parked(deployment)).map((p) => [p.reason, p.step, p.follower])).toEqual([['unregistered-follower', 2, 'render']]);
  });

  test('an in-flight result of the follower function the leader invoked, arriving after a deploy replaced that function, is taken by every leader environment alike (not parked by a cold one as invalid-input)', async () => {
    const simulator = new LambdaSimulator({ ...STAMPING_FOLLOWERS, 'deliver-v2': STAMPING_FOLLOWERS.deliver });
    await writeRoute(deployment, { channel: 'direct', followers: ['deliver'] });
    const warm = motoLeader(deployment, simulator, { followerItemTtlMs: 300_000 }).leader;
    await warm.handle(curatedEvent('d1', 'direct', { steps: [] }));
    // The deploy replaces the deliver function: the followers item now names deliver-v2.
    await new DynamoRouteStore(dynamoDb, deployment.routesTable).put({
      channel: FOLLOWERS_ITEM_KEY, followers: { enrich: arnOf('enrich'), render: arnOf('render'), deliver: arnOf('deliver-v2') }, updatedBy: 'deploy',
    } as any);
    // The old function's result (of the invocation the leader made before the deploy) reaches a cold environment.
    const cold = motoLeader(deployment, simulator, { followerItemTtlMs: 300_000 }).leader;
    await simulator.settle(cold);
    expect((await parked(deployment)).map((p) => [p.reason, p.message])).toEqual([]);
    expect((await orchestrated(deployment)).map((o) => o.id)).toEqual(['d1']);
  });
});
