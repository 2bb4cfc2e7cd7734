/**
 * Deployed check of LeaderFollowerOrchestrator, in seed 000's "Function Leader" and
 * "Function Followers" scenario: each curated record goes through the followers of its
 * channel's route, one step at a time, and comes back to the curated bus at FINISH.
 *
 * Three followers (enrich, render, deliver) each append their own name to `event.steps` (with
 * the step's `parameters.template`, when the route gives one) and return `{ event }`. Two
 * channels are routed at deploy: "email" goes through enrich, render (template "email-long")
 * and deliver; "sms" through enrich and deliver. A third, "push", is onboarded at run time by
 * configuration alone: one invocation of the route writer adds its route, reusing the generic
 * render follower with other step parameters (template "push-short"); no deploy, no code.
 * One `CuratedRecord` per channel is put on the curated bus; the orchestrator's source rule hands
 * it to the leader, and the processed record (with its `orchestration` block) is put back on the
 * same bus, where the source rule no longer matches it. One capture queue per channel receives
 * the orchestrated records, and the assertions check that the steps ran in the route's order,
 * each with its parameters.
 *
 * Offline, `integ/snapshot.ts` compares this app's synthesized templates with the
 * committed snapshot; with an AWS account, deploy it with integ-runner or `cdk deploy`.
 */
import { ExpectedResult, IntegTest, Match } from '@aws-cdk/integ-tests-alpha';
import { App, Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { BusCapture, containsAll } from './capture';
import { CuratedEnvelope, IngestLane, LeaderFollowerOrchestrator, RouteStep } from '../src';

/** The routes written at deploy: channel to steps, step 1 first. */
const DEPLOYED_ROUTES: Record<string, RouteStep[]> = {
  email: [{ follower: 'enrich' }, { follower: 'render', parameters: { template: 'email-long' } }, { follower: 'deliver' }],
  sms: [{ follower: 'enrich' }, { follower: 'deliver' }],
};

/** The route written at run time through the route writer: the same render follower, other parameters. */
const ONBOARDED_CHANNEL = 'push';
const ONBOARDED_ROUTE = { channel: ONBOARDED_CHANNEL, followers: ['enrich', { follower: 'render', parameters: { template: 'push-short' } }, 'deliver'] };

/** Each channel's expected output: the steps as the followers stamp them, and the route's follower names. */
const EXPECTED: Record<string, { steps: string[]; route: string[] }> = {
  email: { steps: ['enrich', 'render:email-long', 'deliver'], route: ['enrich', 'render', 'deliver'] },
  sms: { steps: ['enrich', 'deliver'], route: ['enrich', 'deliver'] },
  [ONBOARDED_CHANNEL]: { steps: ['enrich', 'render:push-short', 'deliver'], route: ['enrich', 'render', 'deliver'] },
};

/**
 * A follower as a user would write one in any language: it receives
 * `{ channel, step, event, orchestration }` and returns `{ event }`. This one appends its
 * name to `event.steps`, so the output shows which followers ran, in which order.
 */
const FOLLOWER_CODE = [
  'exports.handler = async (request) => {',
  '  const event = request.event;',
  '  const steps = Array.isArray(event.steps) ? event.steps : [];',
  '  const template = request.parameters && request.parameters.template;',
  '  const stamp = template ? `${process.env.FOLLOWER_NAME}:${template}` : process.env.FOLLOWER_NAME;',
  '  return { event: { ...event, steps: [...steps, stamp] } };',
  '};',
].join('\n');

/**
 * A follower function: inline Node.js code, explicit memory and timeout, active tracing, its
 * own log group and role. The orchestrator sets its asynchronous invocation configuration.
 */
function follower(scope: Construct, id: string, name: string): lambda.Function {
  const logGroup = new logs.LogGroup(scope, `${id}Logs`, { retention: logs.RetentionDays.ONE_WEEK, removalPolicy: RemovalPolicy.DESTROY });
  const role = new iam.Role(scope, `${id}Role`, {
    assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
    description: `integ: follower ${name} of the leader/follower orchestrator`,
  });
  logGroup.grantWrite(role);
  Validations.of(role).acknowledge({
    id: 'AwsSolutions-IAM5[Resource::*]',
    reason: 'Test follower: only the X-Ray actions (xray:PutTraceSegments, xray:PutTelemetryRecords) use Resource "*", '
      + 'the only resource they support; its other grants are scoped.',
  });
  return new lambda.Function(scope, id, {
    runtime: lambda.Runtime.NODEJS_24_X,
    handler: 'index.handler',
    code: lambda.Code.fromInline(FOLLOWER_CODE),
    environment: { FOLLOWER_NAME: name },
    description: `integ: follower ${name}, appends its name (and the step's template) to event.steps`,
    role,
    memorySize: 256,
    timeout: Duration.seconds(10),
    tracing: lambda.Tracing.ACTIVE,
    logGroup,
  });
}

/** Test scaffolding: a queue that receives the orchestrated records of one channel. Not part of the library. */
function orchestratedCapture(scope: Construct, id: string, curatedBus: events.IEventBus, channel: string): BusCapture {
  return new BusCapture(scope, id, curatedBus, {
    source: [CuratedEnvelope.SOURCE],
    detailType: [CuratedEnvelope.RECORD_DETAIL_TYPE],
    detail: { channel: [channel], orchestration: events.Match.exists() },
  });
}


/**
 * One curated record of `channel` on the curated bus, as a TieredEventIngest lane would put it.
 * `nonce` makes the record id new on every run: the orchestrator treats a record id it has
 * already processed as a replay (for `progressTtl`), so a second run on the same stack with
 * fixed ids would produce nothing.
 */
function curatedRecord(bus: events.IEventBus, channel: string, nonce: string) {
  const detail = CuratedEnvelope.recordJson({
    id: `integ-${channel}-${nonce}`,
    lane: IngestLane.FAST,
    tenant: 'acme',
    channel,
    correlationId: `integ-${channel}-${nonce}`,
    // A fixed time keeps the synthesized template, and so the snapshot, stable.
    time: '2026-11-22T10:00:00Z',
    source: 'integ.journeys',
    detailType: 'MessageRequested',
    payload: { text: `hello by ${channel}`, steps: [] },
  });
  return { EventBusName: bus.eventBusName, Source: CuratedEnvelope.SOURCE, DetailType: CuratedEnvelope.RECORD_DETAIL_TYPE, Detail: detail };
}

/** Builds the integ app into `app`; returns the test for more assertions. */
export function buildApp(app: App): IntegTest {
  const stack = new Stack(app, 'LeaderFollowerOrchestratorInteg');
  const curatedBus = new events.EventBus(stack, 'CuratedBus', { description: 'integ: curated records, before and after orchestration' });

  const orchestrator = new LeaderFollowerOrchestrator(stack, 'Orchestrator', {
    curatedBus,
    followers: [
      { name: 'enrich', function: follower(stack, 'EnrichFollower', 'enrich') },
      { name: 'render', function: follower(stack, 'RenderFollower', 'render') },
      { name: 'deliver', function: follower(stack, 'DeliverFollower', 'deliver') },
    ],
    routes: Object.entries(DEPLOYED_ROUTES).map(([channel, steps]) => ({ channel, steps, description: `integ: ${channel}` })),
    removalPolicy: RemovalPolicy.DESTROY,
  });
  // Curated records not yet orchestrated go to the leader; its output (with `orchestration`) does not.
  orchestrator.addSource('Curated', { eventBus: curatedBus });

  const captures = Object.keys(EXPECTED).map((channel) => ({
    channel,
    capture: orchestratedCapture(stack, `${channel[0].toUpperCase()}${channel.slice(1)}Capture`, curatedBus, channel),
  }));

  const integ = new IntegTest(app, 'LeaderFollowerOrchestratorTest', { testCases: [stack] });

  // 1. A value new on every run, for the record ids: the id EventBridge gives an event that no
  // rule matches. (Its response is cut down to that id, so there is nothing else to expect; a
  // failed put has no id, and the next call fails on it.)
  const nonce = integ.assertions.awsApiCall('EventBridge', 'putEvents', {
    Entries: [{ EventBusName: curatedBus.eventBusName, Source: 'integ.nonce', DetailType: 'Nonce', Detail: '{}' }],
  });
  const runNonce = nonce.getAttString('Entries.0.EventId');

  // 2. Onboarding by configuration alone: the route writer adds the push channel's route at run
  // time (validated against the registered followers), reusing render with other parameters.
  const onboard = integ.assertions.invokeFunction({
    functionName: orchestrator.routeWriterFunction.functionName,
    payload: JSON.stringify({ putRoutes: [ONBOARDED_ROUTE] }),
  }).expect(ExpectedResult.objectLike({ StatusCode: 200, Payload: Match.stringLikeRegexp(`"written":\\["${ONBOARDED_CHANNEL}"\\]`) }));

  // 3. One curated record per channel.
  const put = integ.assertions.awsApiCall('EventBridge', 'putEvents', {
    Entries: Object.keys(EXPECTED).map((channel) => curatedRecord(curatedBus, channel, runNonce)),
  });
  put.expect(ExpectedResult.objectLike({ FailedEntryCount: 0 }));

  // 4. Each channel's record comes back orchestrated: its followers ran in the route's order,
  // each with its step's parameters, and the orchestration block names the route and counts one
  // hop per step. One message per receive: the response comes back through a custom resource
  // (at most 4096 bytes).
  let last = nonce.next(onboard).next(put);
  for (const { channel, capture } of captures) {
    const { steps, route } = EXPECTED[channel];
    const arrived = integ.assertions.awsApiCall('SQS', 'receiveMessage', {
      QueueUrl: capture.queue.queueUrl,
      WaitTimeSeconds: 20,
      MaxNumberOfMessages: 1,
    }).expect(ExpectedResult.objectLike({
      Messages: Match.arrayWith([Match.objectLike({
        Body: Match.stringLikeRegexp(containsAll(
          '"detail-type":"CuratedRecord"',
          `"channel":"${channel}"`,
          `"steps":${JSON.stringify(steps)}`,
          `"route":${JSON.stringify(route)}`,
          `"hops":${route.length}`,
        )),
      })]),
    })).waitForAssertions({ totalTimeout: Duration.minutes(5), interval: Duration.seconds(10) });
    last = last.next(arrived);
  }

  return integ;
}

if (require.main === module) {
  const app = new App();
  buildApp(app);
  app.synth();
}
