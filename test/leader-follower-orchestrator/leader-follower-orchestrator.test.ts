import { App, CfnElement, CfnParameter, Duration, Stack, Token } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { defaultOrchestrator, followerFunction, fullestOrchestrator } from './fixtures';
import { LeaderFollowerOrchestrator, LeaderFollowerOrchestratorProps, TieredEventIngest } from '../../src';
import { formatFindings, synthNagFindings } from '../support/nag';
import { resourceCount, resourcesByType } from '../support/templates';

const ENV = { account: '111111111111', region: 'eu-west-1' };

function newStack(app = new App(), id = 'Test'): Stack {
  return new Stack(app, id, { env: ENV });
}

const getAtt = (prefix: string, attr = 'Arn') => ({ 'Fn::GetAtt': [expect.stringMatching(new RegExp(`^${prefix}`)), attr] });
const ref = (prefix: string) => ({ Ref: expect.stringMatching(new RegExp(`^${prefix}`)) });

/** The ARN of a function built from its name (how followers name the leader). */
const functionArn = (name: string) => ({
  'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, `:lambda:${ENV.region}:${ENV.account}:function:${name}`]],
});

/** The leader function's logical id and properties (the one whose LEADER_ENTRY is "events"). */
function leaderResource(template: Template, entry: 'events' | 'redrive' = 'events'): [string, any] {
  const found = Object.entries<any>(template.findResources('AWS::Lambda::Function'))
    .filter(([, f]) => f.Properties.Environment?.Variables?.LEADER_ENTRY === entry);
  expect(found).toHaveLength(1);
  return [found[0][0], found[0][1].Properties];
}

const leaderFunction = (template: Template): any => leaderResource(template)[1];

/** The followers the routes custom resource writes as the routes table's followers item (name to ARN). */
const followersProperty = (template: Template): any => Object.values<any>(template.findResources('Custom::OrchestratorRoutes'))[0].Properties.Followers;

/** The route writer function. */
function routeWriterFunction(template: Template): any {
  const found = Object.entries<any>(template.findResources('AWS::Lambda::Function'))
    .filter(([id]) => /RouteWriterFunction[0-9A-F]{8}$/.test(id)).map(([, f]) => f);
  expect(found).toHaveLength(1);
  return found[0].Properties;
}

/** Statements of the IAM policies attached to the role whose logical id starts with `rolePrefix`. */
function roleStatements(template: Template, rolePrefix: string): any[] {
  return Object.values<any>(template.findResources('AWS::IAM::Policy'))
    .filter((p) => p.Properties.Roles.some((r: any) => new RegExp(`^${rolePrefix}`).test(r.Ref)))
    .flatMap((p) => p.Properties.PolicyDocument.Statement);
}

/** The asynchronous invocation configurations of the function whose logical id starts with `fnPrefix`. */
function invokeConfigsOf(template: Template, fnPrefix: string): any[] {
  return Object.values<any>(template.findResources('AWS::Lambda::EventInvokeConfig'))
    .filter((c) => new RegExp(`^${fnPrefix}`).test(c.Properties.FunctionName.Ref ?? ''));
}

/**
 * Rebuilds the JSON of a `stack.toJsonString` value (an Fn::Join) with each intrinsic
 * replaced by a readable placeholder, `<GetAtt:LogicalId.Attr>` or `<Ref:LogicalId>`, and parses it.
 */
function parseJoinedJson(value: any): any {
  expect(Object.keys(value)).toEqual(['Fn::Join']);
  const [separator, parts] = value['Fn::Join'];
  expect(separator).toBe('');
  const text = parts.map((p: any) => {
    if (typeof p === 'string') return p;
    if (p['Fn::GetAtt']) return `<GetAtt:${p['Fn::GetAtt'].join('.')}>`;
    if (p.Ref) return `<Ref:${p.Ref}>`;
    throw new Error(`unexpected part ${JSON.stringify(p)}`);
  }).join('');
  return JSON.parse(text);
}

/** The rule whose logical id starts with `prefix`. */
function ruleById(template: Template, prefix: string): any {
  const found = Object.entries<any>(template.findResources('AWS::Events::Rule')).filter(([id]) => new RegExp(`^${prefix}`).test(id));
  expect(found).toHaveLength(1);
  return found[0][1].Properties;
}

describe('LeaderFollowerOrchestrator defaults', () => {
  const stack = newStack();
  const orchestrator = defaultOrchestrator(stack);
  const template = Template.fromStack(stack);
  const [leaderLogicalId, leader] = leaderResource(template);

  test(`exactly RESOURCES_PER_ORCHESTRATOR (${LeaderFollowerOrchestrator.RESOURCES_PER_ORCHESTRATOR}) resources`, () => {
    expect(LeaderFollowerOrchestrator.RESOURCES_PER_ORCHESTRATOR).toBe(32);
    expect(resourceCount(stack)).toBe(32);
    expect(resourcesByType(stack)).toEqual({
      'AWS::Events::EventBus': 1,
      'AWS::SQS::Queue': 1,
      'AWS::SQS::QueuePolicy': 1,
      'AWS::DynamoDB::Table': 2,
      'AWS::Logs::LogGroup': 5,
      'AWS::IAM::Role': 5,
      'AWS::IAM::Policy': 5,
      'AWS::Lambda::Function': 5,
      'AWS::Lambda::EventInvokeConfig': 1,
      'AWS::Events::Rule': 1,
      'AWS::Lambda::Permission': 1,
      'Custom::OrchestratorRoutes': 1,
      'AWS::CloudWatch::Alarm': 3,
    });
  });

  test('routes table: partition key channel, on demand, point-in-time recovery, encrypted, retained', () => {
    const tables = template.findResources('AWS::DynamoDB::Table', {
      Properties: { KeySchema: [{ AttributeName: 'channel', KeyType: 'HASH' }] },
    });
    expect(Object.keys(tables)).toEqual([expect.stringMatching(/^OrchestratorRoutesTable/)]);
    const table = Object.values<any>(tables)[0];
    expect(table).toEqual({
      Type: 'AWS::DynamoDB::Table',
      Properties: {
        KeySchema: [{ AttributeName: 'channel', KeyType: 'HASH' }],
        AttributeDefinitions: [{ AttributeName: 'channel', AttributeType: 'S' }],
        BillingMode: 'PAY_PER_REQUEST',
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        SSESpecification: { SSEEnabled: true },
      },
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
    });
  });

  test('progress table: partition key runId, TTL expiresAt, on demand, point-in-time recovery, encrypted, retained', () => {
    template.hasResource('AWS::DynamoDB::Table', {
      Properties: {
        KeySchema: [{ AttributeName: 'runId', KeyType: 'HASH' }],
        AttributeDefinitions: [{ AttributeName: 'runId', AttributeType: 'S' }, { AttributeName: 'stallAt', AttributeType: 'N' }],
        // Sparse: only the steps awaiting a follower's result carry stallAt.
        GlobalSecondaryIndexes: [{
          IndexName: 'stalled-steps',
          KeySchema: [{ AttributeName: 'runId', KeyType: 'HASH' }, { AttributeName: 'stallAt', KeyType: 'RANGE' }],
          Projection: { ProjectionType: 'KEYS_ONLY' },
        }],
        BillingMode: 'PAY_PER_REQUEST',
        TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        SSESpecification: { SSEEnabled: true },
      },
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
    });
    // The routes table has no TTL: routes stay until deleted.
    template.resourcePropertiesCountIs('AWS::DynamoDB::Table', { TimeToLiveSpecification: Match.anyValue() }, 1);
  });

  test('dead-letter queue: SSE-SQS, 14 days, TLS only', () => {
    template.resourceCountIs('AWS::SQS::Queue', 1);
    template.hasResourceProperties('AWS::SQS::Queue', {
      SqsManagedSseEnabled: true,
      MessageRetentionPeriod: 1_209_600,
      VisibilityTimeout: 120,
      KmsMasterKeyId: Match.absent(),
    });
    template.hasResourceProperties('AWS::SQS::QueuePolicy', {
      Queues: [{ Ref: Match.stringLikeRegexp('^OrchestratorDeadLetterQueue') }],
      PolicyDocument: {
        Statement: Match.arrayWith([Match.objectLike({
          Effect: 'Deny', Action: 'sqs:*', Principal: { AWS: '*' }, Condition: { Bool: { 'aws:SecureTransport': 'false' } },
        })]),
      },
    });
  });

  test('a curated bus is created, with the AWS owned key', () => {
    template.resourceCountIs('AWS::Events::EventBus', 1);
    template.hasResourceProperties('AWS::Events::EventBus', { KmsKeyIdentifier: Match.absent() });
  });

  test('leader: runtime, timeout, memory, tracing, recursive loop detection, explicit name, log group', () => {
    expect(leader).toMatchObject({
      Runtime: 'nodejs24.x',
      Timeout: 30,
      MemorySize: 512,
      TracingConfig: { Mode: 'Active' },
      RecursiveLoop: 'Terminate',
      FunctionName: expect.stringMatching(/^Test-Orchestrator-[0-9A-F]{8}-leader$/),
      LoggingConfig: { LogGroup: ref('OrchestratorLeaderFunctionLogs') },
    });
    expect(leader.FunctionName.length).toBeLessThanOrEqual(64);
    expect(leaderLogicalId).toMatch(/^OrchestratorLeaderFunction/);
  });

  test('leader: exact environment, without the followers (they are in the routes table)', () => {
    expect(leader.Environment.Variables).toEqual({
      ROUTES_TABLE_NAME: ref('OrchestratorRoutesTable'),
      PROGRESS_TABLE_NAME: ref('OrchestratorProgressTable'),
      CURATED_BUS_NAME: ref('OrchestratorCuratedBus'),
      DEAD_LETTER_QUEUE_URL: ref('OrchestratorDeadLetterQueue'),
      MAX_HOPS: '7',
      ROUTE_CACHE_TTL_SECONDS: '60',
      MAX_EVENT_BYTES: '256000',
      PROGRESS_TTL_SECONDS: '1209600',
      ORCHESTRATOR_ID: orchestrator.node.addr,
      STEP_RESULT_TIMEOUT_SECONDS: String(6.5 * 3600),
      LEADER_ENTRY: 'events',
      POWERTOOLS_SERVICE_NAME: 'leader-follower-orchestrator',
      POWERTOOLS_METRICS_NAMESPACE: 'cdk-event-fabric',
      AWS_NODEJS_CONNECTION_REUSE_ENABLED: '1',
    });
  });

  test('leader: 2 asynchronous retries within 6 hours, failures to the dead-letter queue', () => {
    const configs = invokeConfigsOf(template, 'OrchestratorLeaderFunction');
    expect(configs).toEqual([{
      Type: 'AWS::Lambda::EventInvokeConfig',
      Properties: {
        FunctionName: { Ref: leaderLogicalId },
        Qualifier: '$LATEST',
        MaximumRetryAttempts: 2,
        MaximumEventAgeInSeconds: 21_600,
        DestinationConfig: { OnFailure: { Destination: getAtt('OrchestratorDeadLetterQueue') } },
      },
    }]);
  });

  test('leader IAM: GetItem on routes, GetItem/UpdateItem on progress, PutEvents on the bus, DLQ send only, no invoke', () => {
    const all = roleStatements(template, 'OrchestratorLeaderFunctionRole');
    expect(all).toHaveLength(6);
    expect(all).toEqual(expect.arrayContaining([
      { Action: ['logs:CreateLogStream', 'logs:PutLogEvents'], Effect: 'Allow', Resource: getAtt('OrchestratorLeaderFunctionLogs') },
      { Action: 'dynamodb:GetItem', Effect: 'Allow', Resource: getAtt('OrchestratorRoutesTable') },
      { Action: ['dynamodb:GetItem', 'dynamodb:UpdateItem'], Effect: 'Allow', Resource: getAtt('OrchestratorProgressTable') },
      { Action: 'events:PutEvents', Effect: 'Allow', Resource: getAtt('OrchestratorCuratedBus') },
      {
        Action: ['sqs:SendMessage', 'sqs:GetQueueAttributes', 'sqs:GetQueueUrl'],
        Effect: 'Allow',
        Resource: getAtt('OrchestratorDeadLetterQueue'),
      },
      { Action: ['xray:PutTraceSegments', 'xray:PutTelemetryRecords'], Effect: 'Allow', Resource: '*' },
    ]));
    // Neither consuming the dead-letter queue nor scanning for stalled steps: that is the redrive function's.
    expect(JSON.stringify(all)).not.toMatch(/sqs:ReceiveMessage|sqs:DeleteMessage|dynamodb:Scan|lambda:InvokeFunction|dynamodb:PutItem/);
  });

  test('redrive function IAM: its own role, the leader\'s step work plus consuming the queue and scanning the stalled-steps index only', () => {
    const all = roleStatements(template, 'OrchestratorRedriveFunctionRole');
    expect(all).toEqual(expect.arrayContaining([
      { Action: ['logs:CreateLogStream', 'logs:PutLogEvents'], Effect: 'Allow', Resource: getAtt('OrchestratorRedriveFunctionLogs') },
      { Action: ['dynamodb:GetItem', 'dynamodb:UpdateItem'], Effect: 'Allow', Resource: getAtt('OrchestratorProgressTable') },
      {
        Action: expect.arrayContaining(['sqs:ReceiveMessage', 'sqs:ChangeMessageVisibility', 'sqs:DeleteMessage']),
        Effect: 'Allow',
        Resource: getAtt('OrchestratorDeadLetterQueue'),
      },
      // The sparse index of awaited steps, and that index only (no "index/*").
      {
        Action: 'dynamodb:Scan',
        Effect: 'Allow',
        Resource: { 'Fn::Join': ['', [getAtt('OrchestratorProgressTable'), '/index/stalled-steps']] },
      },
    ]));
    expect(all).toHaveLength(8);
  });

  test.each([
    ['route writer (run-time writes)', 'RouteWriterFunction', 'api'],
    ['routes resource (the custom resource\'s)', 'RoutesResourceFunction', 'deploy'],
  ])('%s function: GetItem/PutItem/DeleteItem on the routes table only, its own role, environment without followers', (_name, id, entry) => {
    const tableStatements = roleStatements(template, `Orchestrator${id}Role`)
      .filter((s) => JSON.stringify(s.Resource).includes('Table'));
    expect(tableStatements).toEqual([
      { Action: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:DeleteItem'], Effect: 'Allow', Resource: [getAtt('OrchestratorRoutesTable')] },
    ]);
    const found = Object.entries<any>(template.findResources('AWS::Lambda::Function')).filter(([logicalId]) => new RegExp(`^Orchestrator${id}[0-9A-F]{8}$`).test(logicalId));
    expect(found).toHaveLength(1);
    const writer = found[0][1].Properties;
    expect(writer.Environment.Variables).toEqual({
      ROUTES_TABLE_NAME: ref('OrchestratorRoutesTable'),
      MAX_HOPS: '7',
      ROUTE_WRITER_ENTRY: entry,
      POWERTOOLS_SERVICE_NAME: 'leader-follower-orchestrator',
      AWS_NODEJS_CONNECTION_REUSE_ENABLED: '1',
    });
    expect(writer).toMatchObject({ Runtime: 'nodejs24.x', Timeout: 60, MemorySize: 256, TracingConfig: { Mode: 'Active' } });
    expect(writer.Role).toEqual(getAtt(`Orchestrator${id}Role`));
  });

  test('deploy order: the roles may invoke the followers, then the followers item and routes are written, then the functions read them', () => {
    const [routesId, routes] = Object.entries<any>(template.findResources('Custom::OrchestratorRoutes'))[0];
    for (const role of ['OrchestratorLeaderFunctionRole', 'OrchestratorRedriveFunctionRole']) {
      expect(routes.DependsOn).toEqual(expect.arrayContaining([
        expect.stringMatching(new RegExp(`^${role}[0-9A-F]{8}$`)), expect.stringMatching(new RegExp(`^${role}DefaultPolicy`)),
      ]));
    }
    const functions = template.findResources('AWS::Lambda::Function', { DependsOn: Match.arrayWith([routesId]) });
    expect(Object.keys(functions).sort()).toEqual([leaderLogicalId, expect.stringMatching(/^OrchestratorRedriveFunction[0-9A-F]{8}$/)].sort());
  });

  test('routes custom resource: no routes, no followers, served by the provider framework', () => {
    const resources = Object.values<any>(template.findResources('Custom::OrchestratorRoutes'));
    expect(resources).toHaveLength(1);
    expect(resources[0].Properties).toEqual({
      ServiceToken: getAtt('OrchestratorRoutesProviderframeworkonEvent'),
      Routes: '[]',
      Followers: '{}',
    });
    template.hasResourceProperties('AWS::Lambda::Function', {
      Handler: 'framework.onEvent',
      Environment: { Variables: { USER_ON_EVENT_FUNCTION_ARN: Match.objectLike({ 'Fn::GetAtt': [Match.stringLikeRegexp('^OrchestratorRoutesResourceFunction'), 'Arn'] }) } },
    });
  });

  test('three alarms: DLQ messages (visible + delayed) at 1, leader destination delivery failures, redrive function errors', () => {
    const alarms = Object.values<any>(template.findResources('AWS::CloudWatch::Alarm')).map((a) => a.Properties);
    expect(alarms).toHaveLength(3);
    for (const alarm of alarms) {
      expect(alarm).toMatchObject({
        EvaluationPeriods: 1, Threshold: 1, TreatMissingData: 'notBreaching', ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      });
      expect(alarm.AlarmDescription).toContain('(Test/Orchestrator)');
      expect(alarm.AlarmActions).toBeUndefined();
    }
    // Messages parked again during a redrive are delayed 15 minutes; the alarm counts them too.
    const depth = alarms.find((a) => a.Metrics !== undefined);
    expect(depth.Metrics.find((m: any) => m.Expression).Expression).toBe('visible + delayed');
    const queueMetric = (name: string) => depth.Metrics.find((m: any) => m.MetricStat?.Metric.MetricName === name).MetricStat;
    for (const name of ['ApproximateNumberOfMessagesVisible', 'ApproximateNumberOfMessagesDelayed']) {
      expect(queueMetric(name)).toMatchObject({
        Metric: { Namespace: 'AWS/SQS', Dimensions: [{ Name: 'QueueName', Value: getAtt('OrchestratorDeadLetterQueue', 'QueueName') }] },
        Stat: 'Maximum',
        Period: 300,
      });
    }
    expect(alarms.find((a) => a.MetricName === 'DestinationDeliveryFailures')).toMatchObject({
      Namespace: 'AWS/Lambda',
      Statistic: 'Sum',
      Dimensions: [{ Name: 'FunctionName', Value: { Ref: leaderLogicalId } }],
    });
    // A sweep that keeps failing parks no stalled step: its errors must not go unseen.
    const [redriveLogicalId] = Object.keys(template.findResources('AWS::Lambda::Function', {
      Properties: { Environment: { Variables: { LEADER_ENTRY: 'redrive' } } },
    }));
    expect(alarms.find((a) => a.MetricName === 'Errors')).toMatchObject({
      Namespace: 'AWS/Lambda',
      Statistic: 'Sum',
      Period: 300,
      Dimensions: [{ Name: 'FunctionName', Value: { Ref: redriveLogicalId } }],
      AlarmDescription: expect.stringContaining('sweep'),
    });
    // The exposed alarm is that one.
    const [errorsAlarmId] = Object.keys(template.findResources('AWS::CloudWatch::Alarm', { Properties: { MetricName: 'Errors' } }));
    expect(Stack.of(orchestrator).getLogicalId(orchestrator.redriveErrorsAlarm.node.defaultChild as CfnElement)).toBe(errorsAlarmId);
  });

  test('exposes its resources; no followers, routes or sources', () => {
    for (const r of [
      orchestrator.curatedBus, orchestrator.routesTable, orchestrator.progressTable, orchestrator.leaderFunction,
      orchestrator.routeWriterFunction, orchestrator.routesResource, orchestrator.routesProvider, orchestrator.deadLetterQueue,
      orchestrator.deadLetterQueueAlarm, orchestrator.leaderDeliveryFailuresAlarm, orchestrator.redriveErrorsAlarm,
    ]) {
      expect(r).toBeDefined();
    }
    // The exposed provider is the one behind the routes custom resource.
    const [routes] = Object.values<any>(template.findResources('Custom::OrchestratorRoutes'));
    expect(routes.Properties.ServiceToken).toEqual(Stack.of(orchestrator).resolve(orchestrator.routesProvider.serviceToken));
    expect(orchestrator.maxHops).toBe(7);
    expect(LeaderFollowerOrchestrator.MAX_ROUTE_LENGTH).toBe(15);
    expect(orchestrator.maxHops).toBe(7);
    expect(orchestrator.followerNames).toEqual([]);
    expect(orchestrator.deployedRoutes).toEqual([]);
    expect(orchestrator.sources).toEqual([]);
    expect(orchestrator.followerDeliveryFailuresAlarms).toEqual([]);
  });
});

describe('LeaderFollowerOrchestrator per-follower delivery options', () => {
  const configOf = (template: Template, id: string) => Object.values<any>(template.findResources('AWS::Lambda::EventInvokeConfig'))
    .find((c) => c.Properties.FunctionName.Ref?.startsWith(id))!.Properties;

  test('a non-idempotent delivery step with 0 retries beside an enrichment step with 2; the stall time follows the longest event age', () => {
    const stack = newStack();
    const orchestrator = defaultOrchestrator(stack, { followers: [{ name: 'enrich', function: followerFunction(stack, 'Enrich') }] });
    orchestrator.addFollower('deliver', followerFunction(stack, 'Deliver'), { retryAttempts: 0, maxEventAge: Duration.minutes(10) });
    const template = Template.fromStack(stack);
    expect(configOf(template, 'Enrich')).toMatchObject({ MaximumRetryAttempts: 2, MaximumEventAgeInSeconds: 21_600 });
    expect(configOf(template, 'Deliver')).toMatchObject({ MaximumRetryAttempts: 0, MaximumEventAgeInSeconds: 600 });
    const [, leader] = leaderResource(template);
    expect(leader.Environment.Variables.STEP_RESULT_TIMEOUT_SECONDS).toBe(String(21_600 + 1800));
    // Both the leader and the redrive function (which resumes steps) may invoke each follower, and only them.
    for (const role of ['OrchestratorLeaderFunctionRole', 'OrchestratorRedriveFunctionRole']) {
      const invokes = roleStatements(template, role).filter((st) => st.Action === 'lambda:InvokeFunction').map((st) => st.Resource);
      expect(invokes).toEqual([[getAtt('Enrich'), getAtt('Deliver')]]);
    }
  });

  test('the followers prop takes the same options; with only short event ages, steps stall sooner', () => {
    const stack = newStack();
    defaultOrchestrator(stack, {
      followers: [
        { name: 'enrich', function: followerFunction(stack, 'Enrich'), retryAttempts: 1, maxEventAge: Duration.hours(1) },
        { name: 'deliver', function: followerFunction(stack, 'Deliver'), retryAttempts: 0, maxEventAge: Duration.minutes(5) },
      ],
    });
    const template = Template.fromStack(stack);
    expect(configOf(template, 'Enrich')).toMatchObject({ MaximumRetryAttempts: 1, MaximumEventAgeInSeconds: 3600 });
    expect(configOf(template, 'Deliver')).toMatchObject({ MaximumRetryAttempts: 0, MaximumEventAgeInSeconds: 300 });
    expect(leaderResource(template)[1].Environment.Variables.STEP_RESULT_TIMEOUT_SECONDS).toBe(String(3600 + 1800));
  });

  test.each([
    [{ retryAttempts: 3 }, /invalid retryAttempts of follower "deliver" 3; allowed: an integer from 0 to 2/],
    [{ retryAttempts: -1 }, /invalid retryAttempts of follower "deliver" -1; allowed: an integer from 0 to 2/],
    [{ maxEventAge: Duration.seconds(30) }, /invalid maxEventAge of follower "deliver" "30 seconds"; allowed: a whole number of seconds from 60 to 21600/],
  ])('bad options %j fail at synth with what is allowed', (options, error) => {
    const stack = newStack();
    const orchestrator = defaultOrchestrator(stack);
    expect(() => orchestrator.addFollower('deliver', followerFunction(stack, 'Deliver'), options)).toThrow(error);
  });
});

describe('LeaderFollowerOrchestrator followers', () => {
  const app = new App();
  const stack = newStack(app);
  const orchestrator = defaultOrchestrator(stack);
  const enrich = followerFunction(stack, 'Enrich');
  orchestrator.addFollower('enrich', enrich);
  const template = Template.fromStack(stack);
  const [leaderLogicalId, leaderProps] = leaderResource(template);
  const leaderArn = functionArn(leaderProps.FunctionName);

  test('synth succeeds: the follower names the leader by a constructed ARN, so there is no dependency cycle', () => {
    expect(() => app.synth()).not.toThrow();
  });

  test('the follower\'s asynchronous configuration: $LATEST, leader as success and failure destination, after the leader', () => {
    const resources = Object.values<any>(template.findResources('AWS::Lambda::EventInvokeConfig'))
      .filter((c) => /^Enrich/.test(c.Properties.FunctionName.Ref ?? ''));
    expect(resources).toHaveLength(1);
    const config = resources[0];
    expect(config.Properties).toEqual({
      FunctionName: ref('Enrich'),
      Qualifier: '$LATEST',
      MaximumRetryAttempts: 2,
      MaximumEventAgeInSeconds: 21_600,
      DestinationConfig: { OnSuccess: { Destination: leaderArn }, OnFailure: { Destination: leaderArn } },
    });
    // A constructed ARN string, never a reference to the leader.
    expect(JSON.stringify(config.Properties)).not.toContain(leaderLogicalId);
    expect(config.DependsOn).toContain(leaderLogicalId);
  });

  test('the follower\'s role may invoke the leader (by its constructed ARN)', () => {
    const invoke = roleStatements(template, 'EnrichRole').filter((s) => s.Action === 'lambda:InvokeFunction');
    expect(invoke).toEqual([{ Action: 'lambda:InvokeFunction', Effect: 'Allow', Resource: leaderArn }]);
  });

  test('the leader may invoke the follower, unqualified, without a ":*" wildcard', () => {
    const all = roleStatements(template, 'OrchestratorLeaderFunctionRole');
    const invoke = all.filter((s) => JSON.stringify(s.Action).includes('lambda:'));
    expect(invoke).toEqual([{ Action: 'lambda:InvokeFunction', Effect: 'Allow', Resource: getAtt('Enrich') }]);
    expect(JSON.stringify(all)).not.toContain(':*');
  });

  test('the routes custom resource\'s Followers (the followers item) maps each name to its function ARN', () => {
    const followers = followersProperty(template);
    expect(JSON.stringify(followers)).toContain('enrich');
    expect(followers['Fn::Join'][1]).toContainEqual(getAtt('Enrich'));
    const enrichId = Stack.of(enrich).getLogicalId(enrich.node.defaultChild as lambda.CfnFunction);
    expect(parseJoinedJson(followers)).toEqual({ enrich: `<GetAtt:${enrichId}.Arn>` });
  });

  test('a delivery-failures alarm per follower', () => {
    expect(orchestrator.followerDeliveryFailuresAlarms).toHaveLength(1);
    expect(orchestrator.followerNames).toEqual(['enrich']);
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'DestinationDeliveryFailures',
      Namespace: 'AWS/Lambda',
      Threshold: 1,
      Dimensions: [{ Name: 'FunctionName', Value: { Ref: Match.stringLikeRegexp('^Enrich') } }],
      AlarmDescription: Match.stringLikeRegexp('follower "enrich"'),
    });
    template.resourceCountIs('AWS::CloudWatch::Alarm', 4);
  });

  test('each follower adds 2 resources: its asynchronous configuration and its alarm', () => {
    // The fixture's function brings its own log group, role, policy and function.
    expect(resourceCount(stack)).toBe(LeaderFollowerOrchestrator.RESOURCES_PER_ORCHESTRATOR + 4 + 2);
  });

  test('an alias follower: the configuration is on the alias\'s function, qualified by the alias name', () => {
    const other = newStack();
    const o = defaultOrchestrator(other);
    const fn = followerFunction(other, 'Deliver');
    const alias = new lambda.Alias(other, 'DeliverLive', { aliasName: 'live', version: fn.currentVersion });
    o.addFollower('deliver', alias);
    const t = Template.fromStack(other);
    const configs = invokeConfigsOf(t, 'Deliver');
    expect(configs).toHaveLength(1);
    expect(configs[0].Properties).toMatchObject({ FunctionName: ref('Deliver'), Qualifier: 'live' });
    expect(configs[0].Properties.FunctionName.Ref).not.toMatch(/^DeliverLive/);
    // The leader invokes the alias (its ARN is a Ref of the alias), and may invoke only it.
    expect(roleStatements(t, 'OrchestratorLeaderFunctionRole').filter((s) => s.Action === 'lambda:InvokeFunction'))
      .toEqual([{ Action: 'lambda:InvokeFunction', Effect: 'Allow', Resource: ref('DeliverLive') }]);
    expect(parseJoinedJson(followersProperty(t))).toEqual({
      deliver: expect.stringMatching(/^<Ref:DeliverLive/),
    });
    // The underlying function's role may send results to the leader.
    expect(roleStatements(t, 'DeliverRole').filter((s) => s.Action === 'lambda:InvokeFunction')).toHaveLength(1);
  });

  test('a version follower: qualified by the version', () => {
    const other = newStack();
    const o = defaultOrchestrator(other);
    const fn = followerFunction(other, 'Render');
    o.addFollower('render', fn.currentVersion);
    const configs = invokeConfigsOf(Template.fromStack(other), 'Render');
    expect(configs).toHaveLength(1);
    expect(configs[0].Properties.Qualifier).toEqual(getAtt('RenderCurrentVersion', 'Version'));
  });

  test('a follower in another stack of the same app synthesizes without a cycle', () => {
    const crossApp = new App();
    const followers = newStack(crossApp, 'Followers');
    const orchestration = newStack(crossApp, 'Orchestration');
    const o = defaultOrchestrator(orchestration);
    o.addFollower('enrich', followerFunction(followers, 'Enrich'));
    o.addRoute('email', ['enrich']);
    expect(() => crossApp.synth()).not.toThrow();
    // Only the orchestration stack depends on the followers stack, not the other way round.
    expect(orchestration.dependencies).toContain(followers);
    expect(followers.dependencies).not.toContain(orchestration);
    const followerTemplate = Template.fromStack(followers);
    const leaderName = leaderFunction(Template.fromStack(orchestration)).FunctionName;
    expect(roleStatements(followerTemplate, 'EnrichRole').filter((s) => s.Action === 'lambda:InvokeFunction'))
      .toEqual([{ Action: 'lambda:InvokeFunction', Effect: 'Allow', Resource: functionArn(leaderName) }]);
    expect(JSON.stringify(followerTemplate.toJSON())).not.toContain('Fn::ImportValue');
  });

  test('an imported follower whose role this app cannot change: a warning says to allow it to invoke the leader', () => {
    const other = newStack();
    const o = defaultOrchestrator(other);
    o.addFollower('external', lambda.Function.fromFunctionArn(other, 'External',
      `arn:aws:lambda:${ENV.region}:${ENV.account}:function:external`));
    const leaderName = leaderFunction(Template.fromStack(other)).FunctionName;
    const warnings = Annotations.fromStack(other).findWarning('/Test/External', Match.anyValue());
    expect(warnings).toHaveLength(1);
    expect(warnings[0].entry.data).toContain('lambda:InvokeFunction');
    expect(warnings[0].entry.data).toContain(`:function:${leaderName}`);
    // The leader may still invoke it.
    expect(roleStatements(Template.fromStack(other), 'OrchestratorLeaderFunctionRole').filter((s) => s.Action === 'lambda:InvokeFunction'))
      .toEqual([{ Action: 'lambda:InvokeFunction', Effect: 'Allow', Resource: `arn:aws:lambda:${ENV.region}:${ENV.account}:function:external` }]);
  });
});

describe('LeaderFollowerOrchestrator routes', () => {
  test('routes of the props, then addRoute, are written by the custom resource in order', () => {
    const stack = newStack();
    const [a, b, c] = ['A', 'B', 'C'].map((id) => followerFunction(stack, id));
    const orchestrator = defaultOrchestrator(stack, {
      followers: [{ name: 'a', function: a }, { name: 'b', function: b }],
      routes: [
        { channel: 'email', followers: ['a', 'b'], description: 'Email' },
        { channel: 'push', followers: ['b'] },
      ],
    });
    orchestrator.addFollower('c', c);
    orchestrator.addRoute('sms', ['c', 'a', 'c'], 'SMS');
    orchestrator.addRoute('web hooks/v2', ['a']);
    const expected = [
      { channel: 'email', followers: ['a', 'b'], description: 'Email' },
      { channel: 'push', followers: ['b'] },
      { channel: 'sms', followers: ['c', 'a', 'c'], description: 'SMS' },
      { channel: 'web hooks/v2', followers: ['a'] },
    ];
    expect(orchestrator.deployedRoutes).toEqual(expected);
    const template = Template.fromStack(stack);
    const resource = Object.values<any>(template.findResources('Custom::OrchestratorRoutes'))[0];
    expect(typeof resource.Properties.Routes).toBe('string');
    expect(JSON.parse(resource.Properties.Routes)).toEqual(expected);
    expect(Object.keys(parseJoinedJson(resource.Properties.Followers))).toEqual(['a', 'b', 'c']);
    expect(Object.keys(parseJoinedJson(resource.Properties.Followers))).toEqual(orchestrator.followerNames);
  });

  test('a route with step parameters: written as { follower, parameters } beside bare names; a deploy-time value resolves in CloudFormation', () => {
    const stack = newStack();
    const orchestrator = defaultOrchestrator(stack, {
      followers: [{ name: 'render', function: followerFunction(stack, 'Render') }, { name: 'deliver', function: followerFunction(stack, 'Deliver') }],
      routes: [{ channel: 'email', steps: [{ follower: 'render', parameters: { template: 'welcome', locale: 'en-GB' } }, { follower: 'deliver' }] }],
    });
    const queue = new CfnParameter(stack, 'ReplyQueueUrl');
    orchestrator.addRouteDefinition({
      channel: 'sms', steps: [{ follower: 'render', parameters: { template: 'short', replyTo: queue.valueAsString } }, { follower: 'deliver' }],
    });
    expect(orchestrator.deployedRoutes[0]).toEqual({
      channel: 'email', steps: [{ follower: 'render', parameters: { template: 'welcome', locale: 'en-GB' } }, { follower: 'deliver' }],
    });
    const resource = Object.values<any>(Template.fromStack(stack).findResources('Custom::OrchestratorRoutes'))[0];
    const routes = parseJoinedJson(resource.Properties.Routes);
    expect(routes).toEqual([
      { channel: 'email', followers: [{ follower: 'render', parameters: { template: 'welcome', locale: 'en-GB' } }, 'deliver'] },
      { channel: 'sms', followers: [{ follower: 'render', parameters: { template: 'short', replyTo: '<Ref:ReplyQueueUrl>' } }, 'deliver'] },
    ]);
  });

  test.each([
    ['both followers and steps', { channel: 'email', followers: ['render'], steps: [{ follower: 'render' }] }],
    ['neither followers nor steps', { channel: 'email' }],
  ])('a route with %s is refused, saying which to give', (_name, route) => {
    const stack = newStack();
    const orchestrator = defaultOrchestrator(stack, { followers: [{ name: 'render', function: followerFunction(stack, 'Render') }] });
    expect(() => orchestrator.addRouteDefinition(route))
      .toThrow(/allowed: either followers \(names\) or steps \(\{ follower, parameters\? \} each\), not both and not neither/);
  });

  test('a step naming an unregistered follower fails synth like a bare name', () => {
    const app = new App();
    const stack = newStack(app);
    const orchestrator = defaultOrchestrator(stack, { followers: [{ name: 'render', function: followerFunction(stack, 'Render') }] });
    orchestrator.addRouteDefinition({ channel: 'email', steps: [{ follower: 'render' }, { follower: 'ghost', parameters: { a: 1 } }] });
    expect(() => app.synth()).toThrow(/followers \["ghost"\] are not registered/);
  });

  test('deployedRoutes is a copy', () => {
    const stack = newStack();
    const orchestrator = defaultOrchestrator(stack, { followers: [{ name: 'a', function: followerFunction(stack, 'A') }] });
    const followers = ['a'];
    orchestrator.addRoute('email', followers);
    followers.push('a');
    orchestrator.deployedRoutes[0].followers!.push('a');
    expect(orchestrator.deployedRoutes).toEqual([{ channel: 'email', followers: ['a'] }]);
  });

  test('a route may use a follower registered after it (checked at synth)', () => {
    const app = new App();
    const stack = newStack(app);
    const orchestrator = defaultOrchestrator(stack);
    orchestrator.addRoute('email', ['late']);
    orchestrator.addFollower('late', followerFunction(stack, 'Late'));
    expect(() => app.synth()).not.toThrow();
    const routes = Object.values<any>(Template.fromStack(stack).findResources('Custom::OrchestratorRoutes'))[0].Properties.Routes;
    expect(JSON.parse(routes)).toEqual([{ channel: 'email', followers: ['late'] }]);
  });

  test('a lower maxHops reaches both handlers', () => {
    const stack = newStack();
    defaultOrchestrator(stack, { maxHops: 3 });
    const template = Template.fromStack(stack);
    expect(leaderFunction(template).Environment.Variables.MAX_HOPS).toBe('3');
    expect(routeWriterFunction(template).Environment.Variables.MAX_HOPS).toBe('3');
  });
});

describe('LeaderFollowerOrchestrator sources', () => {
  const leaderTarget = (target: any) => {
    expect(target.Arn).toEqual(getAtt('OrchestratorLeaderFunction'));
    expect(target.RetryPolicy).toEqual({ MaximumRetryAttempts: 8, MaximumEventAgeInSeconds: 3600 });
    expect(target.DeadLetterConfig).toEqual({ Arn: getAtt('OrchestratorDeadLetterQueue') });
  };

  test('addSource: curated records and batches not yet orchestrated, to the leader with retries and the DLQ', () => {
    const stack = newStack();
    const bus = new events.EventBus(stack, 'Curated');
    const orchestrator = defaultOrchestrator(stack);
    const rule = orchestrator.addSource('Curated', { eventBus: bus });
    expect(orchestrator.sources).toEqual([rule]);
    const template = Template.fromStack(stack);
    const props = ruleById(template, 'OrchestratorSourceCurated');
    expect(props.EventBusName).toEqual(ref('Curated'));
    expect(props.EventPattern).toEqual({
      'source': ['cdk-event-fabric'],
      'detail-type': ['CuratedRecord', 'CuratedBatch'],
      'detail': { orchestration: [{ exists: false }] },
    });
    expect(props.Description).toBe('cdk-event-fabric LeaderFollowerOrchestrator source Curated (Test/Orchestrator)');
    expect(props.Targets).toHaveLength(1);
    leaderTarget(props.Targets[0]);
    expect(props.Targets[0].InputTransformer).toBeUndefined();
    template.hasResourceProperties('AWS::Lambda::Permission', {
      Action: 'lambda:InvokeFunction',
      Principal: 'events.amazonaws.com',
      FunctionName: Match.objectLike({ 'Fn::GetAtt': [Match.stringLikeRegexp('^OrchestratorLeaderFunction'), 'Arn'] }),
      SourceArn: Match.objectLike({ 'Fn::GetAtt': [Match.stringLikeRegexp('^OrchestratorSourceCurated'), 'Arn'] }),
    });
    template.hasResourceProperties('AWS::SQS::QueuePolicy', {
      Queues: [{ Ref: Match.stringLikeRegexp('^OrchestratorDeadLetterQueue') }],
      PolicyDocument: {
        Statement: Match.arrayWith([Match.objectLike({
          Action: 'sqs:SendMessage',
          Principal: { Service: 'events.amazonaws.com' },
          Condition: { ArnEquals: { 'aws:SourceArn': Match.objectLike({ 'Fn::GetAtt': [Match.stringLikeRegexp('^OrchestratorSourceCurated'), 'Arn'] }) } },
        })]),
      },
    });
    // A source adds a rule and a Lambda permission (plus the test's bus).
    expect(resourceCount(stack)).toBe(LeaderFollowerOrchestrator.RESOURCES_PER_ORCHESTRATOR + 1 + 2);
  });

  test('a custom pattern keeps its fields and gets the orchestration guard', () => {
    const stack = newStack();
    const orchestrator = defaultOrchestrator(stack);
    orchestrator.addSource('Orders', {
      eventBus: orchestrator.curatedBus,
      eventPattern: { source: ['shop.orders'], detailType: ['CuratedRecord'], detail: { channel: ['email', 'sms'] } },
      description: 'Orders to route',
    });
    const props = ruleById(Template.fromStack(stack), 'OrchestratorSourceOrders');
    expect(props.EventPattern).toEqual({
      'source': ['shop.orders'],
      'detail-type': ['CuratedRecord'],
      'detail': { orchestration: [{ exists: false }], channel: ['email', 'sms'] },
    });
    expect(props.EventBusName).toEqual(ref('OrchestratorCuratedBus'));
    expect(props.Description).toBe('Orders to route');
    leaderTarget(props.Targets[0]);
  });

  test('a pattern that sets detail.orchestration keeps its own condition', () => {
    const stack = newStack();
    const orchestrator = defaultOrchestrator(stack);
    orchestrator.addSource('Again', {
      eventBus: orchestrator.curatedBus,
      eventPattern: { source: ['cdk-event-fabric'], detail: { orchestration: { orchestrator: ['other'] } } },
    });
    expect(ruleById(Template.fromStack(stack), 'OrchestratorSourceAgain').EventPattern.detail).toEqual({ orchestration: { orchestrator: ['other'] } });
  });

  test('ruleTarget() on a user rule: the leader, 8 attempts within an hour, the orchestrator DLQ', () => {
    const stack = newStack();
    const orchestrator = defaultOrchestrator(stack);
    const rule = new events.Rule(stack, 'UserRule', { eventPattern: { source: ['shop'] } });
    rule.addTarget(orchestrator.ruleTarget());
    const template = Template.fromStack(stack);
    leaderTarget(ruleById(template, 'UserRule').Targets[0]);
    template.hasResourceProperties('AWS::Lambda::Permission', {
      Principal: 'events.amazonaws.com',
      SourceArn: Match.objectLike({ 'Fn::GetAtt': [Match.stringLikeRegexp('^UserRule'), 'Arn'] }),
    });
    expect(orchestrator.sources).toEqual([]);
  });

  test('as a TieredEventIngest fast-route target: the orchestrator DLQ (not the fast-lane DLQ), and the envelope input', () => {
    const stack = newStack();
    const orchestrator = defaultOrchestrator(stack);
    const ingest = new TieredEventIngest(stack, 'Ingest');
    ingest.addFastRoute('Orchestrate', { eventPattern: { source: ['shop.orders'] }, target: orchestrator.ruleTarget() });
    const template = Template.fromStack(stack);
    const target = ruleById(template, 'IngestFastRouteOrchestrate').Targets[0];
    leaderTarget(target);
    expect(JSON.stringify(target.DeadLetterConfig)).not.toContain('FastLaneDeadLetterQueue');
    expect(target.InputTransformer.InputTemplate).toContain('"lane":"fast"');
    expect(target.InputTransformer.InputPathsMap).toMatchObject({ id: '$.id' });
    // The fast-lane DLQ is not opened to this rule; the orchestrator's DLQ is.
    const policies = Object.values<any>(template.findResources('AWS::SQS::QueuePolicy'));
    const fastLanePolicy = policies.find((p) => /^IngestFastLaneDeadLetterQueue/.test(p.Properties.Queues[0].Ref));
    expect(JSON.stringify(fastLanePolicy.Properties.PolicyDocument)).not.toContain('IngestFastRouteOrchestrate');
    const orchestratorPolicy = policies.find((p) => /^OrchestratorDeadLetterQueue/.test(p.Properties.Queues[0].Ref));
    expect(JSON.stringify(orchestratorPolicy.Properties.PolicyDocument)).toContain('IngestFastRouteOrchestrate');
  });
});

describe('LeaderFollowerOrchestrator fullest configuration', () => {
  const stack = newStack();
  const orchestrator = fullestOrchestrator(stack);
  const template = Template.fromStack(stack);
  const key = getAtt('OrchestratorKey');

  test('the customer key encrypts both tables and the dead-letter queue', () => {
    const tables = Object.values<any>(template.findResources('AWS::DynamoDB::Table'));
    expect(tables).toHaveLength(2);
    for (const table of tables) {
      expect(table.Properties.SSESpecification).toEqual({ SSEEnabled: true, SSEType: 'KMS', KMSMasterKeyId: key });
    }
    const queues = Object.values<any>(template.findResources('AWS::SQS::Queue'));
    expect(queues).toHaveLength(1);
    expect(queues[0].Properties.KmsMasterKeyId).toEqual(key);
    expect(queues[0].Properties.SqsManagedSseEnabled).toBeUndefined();
  });

  test('the key policy lets EventBridge of this account use the key; the handlers may use it', () => {
    template.hasResourceProperties('AWS::KMS::Key', {
      KeyPolicy: {
        Statement: Match.arrayWith([Match.objectLike({
          Action: ['kms:GenerateDataKey', 'kms:Decrypt'],
          Principal: { Service: 'events.amazonaws.com' },
          Condition: { StringEquals: { 'aws:SourceAccount': ENV.account } },
        })]),
      },
    });
    for (const role of ['FullOrchestratorLeaderFunctionRole', 'FullOrchestratorRouteWriterFunctionRole']) {
      const keyStatements = roleStatements(template, role).filter((s) => JSON.stringify(s.Resource).includes('OrchestratorKey'));
      expect(keyStatements).toContainEqual(expect.objectContaining({
        Effect: 'Allow', Action: expect.arrayContaining(['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey*']), Resource: key,
      }));
      for (const statement of keyStatements) expect(statement.Resource).toEqual(key);
    }
  });

  test('every alarm of the construct notifies the SNS topic', () => {
    const alarms = Object.values<any>(template.findResources('AWS::CloudWatch::Alarm'));
    // DLQ, leader delivery failures, redrive errors and one per follower (3).
    expect(alarms).toHaveLength(6);
    expect(orchestrator.followerDeliveryFailuresAlarms).toHaveLength(3);
    for (const alarm of alarms) {
      expect(alarm.Properties.AlarmActions).toEqual([ref('Alarms')]);
    }
  });

  test('removal policy Delete on the tables', () => {
    const tables = Object.values<any>(template.findResources('AWS::DynamoDB::Table'));
    expect(tables.map((t) => [t.DeletionPolicy, t.UpdateReplacePolicy])).toEqual([['Delete', 'Delete'], ['Delete', 'Delete']]);
  });

  test('tuning reaches the leader and the route writer; the given bus is used', () => {
    const env = leaderFunction(template).Environment.Variables;
    expect(env).toMatchObject({
      CURATED_BUS_NAME: ref('CuratedBus'),
      MAX_HOPS: '6',
      ROUTE_CACHE_TTL_SECONDS: '30',
      MAX_EVENT_BYTES: '400000',
      PROGRESS_TTL_SECONDS: '259200',
    });
    expect(parseJoinedJson(followersProperty(template))).toEqual({
      enrich: expect.stringMatching(/^<GetAtt:Enrich[0-9A-F]{8}\.Arn>$/),
      render: expect.stringMatching(/^<GetAtt:Render[0-9A-F]{8}\.Arn>$/),
      deliver: expect.stringMatching(/^<Ref:DeliverLive[0-9A-F]{8}>$/),
    });
    expect(routeWriterFunction(template).Environment.Variables).toMatchObject({ MAX_HOPS: '6' });
    // The orchestrator creates no bus: the fixture's is the only one.
    template.resourceCountIs('AWS::Events::EventBus', 1);
    expect(orchestrator.curatedBus.node.id).toBe('CuratedBus');
    expect(orchestrator.maxHops).toBe(6);
  });

  test('follower configurations: 1 retry within an hour, leader as destinations', () => {
    const configs = Object.values<any>(template.findResources('AWS::Lambda::EventInvokeConfig'))
      .filter((c) => !/^FullOrchestratorLeaderFunction/.test(c.Properties.FunctionName.Ref));
    expect(configs).toHaveLength(3);
    const leaderArn = functionArn(leaderFunction(template).FunctionName);
    for (const config of configs) {
      expect(config.Properties).toMatchObject({
        MaximumRetryAttempts: 1,
        MaximumEventAgeInSeconds: 3600,
        DestinationConfig: { OnSuccess: { Destination: leaderArn }, OnFailure: { Destination: leaderArn } },
      });
    }
    expect(configs.map((c) => c.Properties.Qualifier).sort()).toEqual(['$LATEST', '$LATEST', 'live']);
    // The leader's own configuration is not changed by the follower props.
    expect(invokeConfigsOf(template, 'FullOrchestratorLeaderFunction')[0].Properties)
      .toMatchObject({ MaximumRetryAttempts: 2, MaximumEventAgeInSeconds: 21_600 });
  });

  test('routes and source', () => {
    const routes = Object.values<any>(template.findResources('Custom::OrchestratorRoutes'))[0].Properties.Routes;
    expect(JSON.parse(routes)).toEqual([
      { channel: 'email', followers: ['enrich', 'render', 'deliver'], description: 'Email: enrich, render, deliver' },
      { channel: 'sms', followers: ['enrich', 'deliver'] },
    ]);
    expect(orchestrator.sources.map((r) => r.node.id)).toEqual(['SourceCurated']);
    expect(ruleById(template, 'FullOrchestratorSourceCurated').EventBusName).toEqual(ref('CuratedBus'));
  });
});

describe('LeaderFollowerOrchestrator grants', () => {
  const grantee = (stack: Stack) => new iam.Role(stack, 'Operator', { assumedBy: new iam.AccountRootPrincipal() });

  test('grantWriteRoutes: invoke the route writer, and nothing else', () => {
    const stack = newStack();
    const orchestrator = defaultOrchestrator(stack);
    expect(orchestrator.grantWriteRoutes(grantee(stack)).success).toBe(true);
    const all = roleStatements(Template.fromStack(stack), 'Operator');
    expect(all).toHaveLength(1);
    expect(all[0]).toMatchObject({ Action: 'lambda:InvokeFunction', Effect: 'Allow' });
    // The function's own ARN only: no version or alias wildcard.
    expect([all[0].Resource].flat()).toEqual([getAtt('OrchestratorRouteWriterFunction')]);
  });

  test('grantRedrive: invoke the redrive function, and nothing else (not the leader)', () => {
    const stack = newStack();
    const orchestrator = defaultOrchestrator(stack);
    expect(orchestrator.grantRedrive(grantee(stack)).success).toBe(true);
    const all = roleStatements(Template.fromStack(stack), 'Operator');
    expect(all).toHaveLength(1);
    expect(all[0]).toMatchObject({ Action: 'lambda:InvokeFunction', Effect: 'Allow' });
    // The function's own ARN only: no version or alias wildcard.
    expect([all[0].Resource].flat()).toEqual([getAtt('OrchestratorRedriveFunction')]);
  });

  test('the stalled-steps sweep: every 15 minutes, the redrive function with { sweepStalled: {} }; the timeout follows the follower event age', () => {
    const stack = newStack();
    const orchestrator = defaultOrchestrator(stack, { followerMaxEventAge: Duration.hours(1) });
    const template = Template.fromStack(stack);
    const [redriveId, redrive] = leaderResource(template, 'redrive');
    // One hour of event age and 30 minutes for the last attempt and margin.
    expect(redrive.Environment.Variables.STEP_RESULT_TIMEOUT_SECONDS).toBe('5400');
    // The exposed rule is the schedule below.
    const sweepId = stack.getLogicalId(orchestrator.stalledStepsSweep.node.defaultChild as events.CfnRule);
    expect(template.toJSON().Resources[sweepId].Properties.ScheduleExpression).toBe('rate(15 minutes)');
    template.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'rate(15 minutes)',
      Targets: [Match.objectLike({ Arn: { 'Fn::GetAtt': [redriveId, 'Arn'] }, Input: JSON.stringify({ sweepStalled: {} }) })],
    });
  });

  test('the redrive function runs the leader\'s code with its own role, taking redrive requests only, with the lease-safe timeout', () => {
    const stack = newStack();
    defaultOrchestrator(stack);
    const template = Template.fromStack(stack);
    const [, leader] = leaderResource(template);
    const [, redrive] = leaderResource(template, 'redrive');
    expect(redrive.Code).toEqual(leader.Code);
    expect(redrive.Role).not.toEqual(leader.Role);
    expect(redrive.Timeout).toBe(30);
    const { LEADER_ENTRY: _l, ...leaderEnv } = leader.Environment.Variables;
    const { LEADER_ENTRY: _r, ...redriveEnv } = redrive.Environment.Variables;
    expect(redriveEnv).toEqual(leaderEnv);
  });
});

describe('LeaderFollowerOrchestrator grants leave the grantee nag-clean', () => {
  test('a user role given grantWriteRoutes and grantRedrive, as the docs show, has no cdk-nag finding', () => {
    const app = new App();
    const stack = newStack(app);
    const orchestrator = defaultOrchestrator(stack);
    const operator = new iam.Role(stack, 'Operator', { assumedBy: new iam.AccountRootPrincipal() });
    orchestrator.grantWriteRoutes(operator);
    orchestrator.grantRedrive(operator);
    const onOperator = synthNagFindings(app).filter((f) => f.path.includes('/Operator/'));
    expect(formatFindings(onOperator)).toBe('');
    // Exactly the two functions' ARNs: no version or alias wildcard.
    const resources = roleStatements(Template.fromStack(stack), 'Operator').flatMap((st) => [st.Resource].flat());
    expect(resources).toEqual([getAtt('OrchestratorRouteWriterFunction'), getAtt('OrchestratorRedriveFunction')]);
  });
});

describe('LeaderFollowerOrchestrator metrics', () => {
  const stack = newStack();
  const orchestrator = defaultOrchestrator(stack);
  const other = defaultOrchestrator(stack, {}, 'Other');

  test('namespace, service, orchestrator and channel dimensions, Sum over 5 minutes', () => {
    for (const [metric, name] of [
      [orchestrator.metricSteps('email'), 'Steps'],
      [orchestrator.metricCompletions('email'), 'Completions'],
      [orchestrator.metricFailures('email'), 'Failures'],
      [orchestrator.metricReplays('email'), 'Replays'],
    ] as const) {
      expect(metric.metricName).toBe(name);
      expect(metric.namespace).toBe('cdk-event-fabric');
      expect(metric.statistic).toBe('Sum');
      expect(metric.period.toMinutes()).toBe(5);
      expect(metric.dimensions).toEqual({ service: 'leader-follower-orchestrator', orchestrator: orchestrator.node.addr, channel: 'email' });
    }
    expect(other.metricSteps('email').dimensions?.orchestrator).toBe(other.node.addr);
    expect(other.node.addr).not.toBe(orchestrator.node.addr);
    expect(orchestrator.metricFailures('(unrouted)').dimensions?.channel).toBe('(unrouted)');
  });

  test('end-to-end latency is p99 by default; options override', () => {
    const latency = orchestrator.metricEndToEndLatency('sms');
    expect(latency.metricName).toBe('EndToEndLatency');
    expect(latency.statistic).toBe('p99');
    expect(latency.dimensions).toEqual({ service: 'leader-follower-orchestrator', orchestrator: orchestrator.node.addr, channel: 'sms' });
    expect(orchestrator.metricEndToEndLatency('sms', { statistic: 'p50' }).statistic).toBe('p50');
    expect(orchestrator.metricSteps('sms', { period: Duration.minutes(1) }).period.toMinutes()).toBe(1);
    expect(orchestrator.metric('Custom', 'sms').metricName).toBe('Custom');
  });
});

describe('LeaderFollowerOrchestrator validation', () => {
  const cases: [string, Partial<LeaderFollowerOrchestratorProps>, RegExp][] = [
    ['maxHops 0', { maxHops: 0 },
      /^Test\/Orchestrator: invalid maxHops 0; allowed: an integer from 1 to 15 \(the leader is invoked 1 \+ 15 = 16 times .*recursive loop detection stops a function invoked more than 16 times by one event\)/],
    ['maxHops 16', { maxHops: 16 }, /invalid maxHops 16; allowed: an integer from 1 to 15/],
    ['maxHops 2.5', { maxHops: 2.5 }, /invalid maxHops 2\.5; allowed: an integer from 1 to 15/],
    ['maxEventBytes 1023', { maxEventBytes: 1023 }, /invalid maxEventBytes 1023; allowed: an integer from 1024 to 480000 bytes/],
    ['maxEventBytes 480001', { maxEventBytes: 480_001 }, /invalid maxEventBytes 480001; allowed: an integer from 1024 to 480000 bytes .*1 MB/],
    ['followerRetryAttempts 3', { followerRetryAttempts: 3 },
      /invalid followerRetryAttempts 3; allowed: an integer from 0 to 2 \(Lambda's asynchronous retry range\)/],
    ['routeCacheTtl 3601 s', { routeCacheTtl: Duration.seconds(3601) },
      /invalid routeCacheTtl "3601 seconds"; allowed: a whole number of seconds from 0 to 3600/],
    ['routeCacheTtl 1.5 s', { routeCacheTtl: Duration.millis(1500) },
      /invalid routeCacheTtl "1\.5 seconds"; allowed: a whole number of seconds from 0 to 3600/],
    ['followerMaxEventAge 59 s', { followerMaxEventAge: Duration.seconds(59) },
      /invalid followerMaxEventAge "59 seconds"; allowed: a whole number of seconds from 60 to 21600/],
    ['followerMaxEventAge 21601 s', { followerMaxEventAge: Duration.seconds(21_601) },
      /invalid followerMaxEventAge "21601 seconds"; allowed: a whole number of seconds from 60 to 21600/],
    ['progressTtl 12 hours', { progressTtl: Duration.hours(12) },
      /invalid progressTtl "43200 seconds"; allowed: a whole number of seconds from 86400 to 31536000/],
  ];

  test.each(cases)('%s', (_name, props, message) => {
    expect(() => defaultOrchestrator(newStack(), props)).toThrow(message);
  });

  test('the limits themselves are accepted', () => {
    const stack = newStack();
    expect(() => defaultOrchestrator(stack, {
      maxHops: 1,
      maxEventBytes: 1024,
      followerRetryAttempts: 0,
      routeCacheTtl: Duration.seconds(0),
      followerMaxEventAge: Duration.seconds(60),
      progressTtl: Duration.days(1),
    })).not.toThrow();
    expect(() => defaultOrchestrator(stack, {
      maxHops: 7,
      maxEventBytes: 480_000,
      followerRetryAttempts: 2,
      routeCacheTtl: Duration.hours(1),
      followerMaxEventAge: Duration.hours(6),
      progressTtl: Duration.days(365),
    }, 'Max')).not.toThrow();
  });

  describe('followers', () => {
    test('an invalid follower name', () => {
      const stack = newStack();
      const orchestrator = defaultOrchestrator(stack);
      expect(() => orchestrator.addFollower('bad name!', followerFunction(stack, 'Bad')))
        .toThrow(/^Test\/Orchestrator: invalid follower name "bad name!"; allowed: 1 to 64 letters, digits, "_" or "-"/);
    });

    test('an invalid follower name in the props', () => {
      const stack = newStack();
      expect(() => defaultOrchestrator(stack, { followers: [{ name: 'x'.repeat(65), function: followerFunction(stack, 'Long') }] }))
        .toThrow(/invalid follower name "x{65}"; allowed: 1 to 64 letters, digits, "_" or "-"/);
    });

    test('a duplicate follower name', () => {
      const stack = newStack();
      const orchestrator = defaultOrchestrator(stack, { followers: [{ name: 'enrich', function: followerFunction(stack, 'A') }] });
      expect(() => orchestrator.addFollower('enrich', followerFunction(stack, 'B')))
        .toThrow(/invalid follower name "enrich"; allowed: a name not registered yet in this orchestrator/);
    });

    test('50 followers: the leader\'s environment does not grow, its role policy stays within IAM\'s limit; a 51st is refused', () => {
      const stack = newStack();
      const orchestrator = defaultOrchestrator(stack);
      for (let i = 0; i < 50; i++) orchestrator.addFollower(`follower-${i}`, followerFunction(stack, `Follower${i}`));
      expect(orchestrator.followerNames).toHaveLength(50);
      expect(() => orchestrator.addFollower('follower-50', followerFunction(stack, 'Follower50')))
        .toThrow(/invalid followers \["follower-0",.*"follower-50"\]; allowed: at most 50 followers \(the leader's role lists their ARNs/);
      const template = Template.fromStack(stack);
      const [, leader] = leaderResource(template);
      expect(JSON.stringify(leader.Environment)).not.toMatch(/Follower\d/);
      expect(Object.keys(parseJoinedJson(followersProperty(template)))).toHaveLength(50);
      // As deployed: every function ARN at its longest (a 64-character name in a long region), every other reference at 64.
      const longestArn = `arn:aws:lambda:ap-southeast-3:123456789012:function:${'x'.repeat(64)}`;
      const deployed = (value: any): any => {
        if (Array.isArray(value)) return value.map(deployed);
        if (value && typeof value === 'object') {
          if ('Fn::GetAtt' in value) return value['Fn::GetAtt'][1] === 'Arn' ? longestArn : 'x'.repeat(64);
          if ('Ref' in value || 'Fn::Join' in value || 'Fn::Select' in value) return 'x'.repeat(110);
          return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, deployed(v)]));
        }
        return value;
      };
      for (const role of ['OrchestratorLeaderFunctionRole', 'OrchestratorRedriveFunctionRole']) {
        const policies = Object.values<any>(template.findResources('AWS::IAM::Policy'))
          .filter((p) => p.Properties.Roles.some((r: any) => new RegExp(`^${role}[0-9A-F]{8}$`).test(r.Ref)));
        const inline = policies.map((p) => JSON.stringify(deployed(p.Properties.PolicyDocument)).length).reduce((a, b) => a + b, 0);
        // IAM's limit on the inline policies of a role, whitespace not counted (IAM quotas).
        expect(inline).toBeLessThan(10_240);
        expect(inline).toBeGreaterThan(50 * longestArn.length);
      }
    });

    test('a follower function with its own asynchronous invocation configuration', () => {
      const stack = newStack();
      const orchestrator = defaultOrchestrator(stack);
      const own = new lambda.Function(stack, 'Own', {
        runtime: lambda.Runtime.NODEJS_24_X,
        handler: 'index.handler',
        code: lambda.Code.fromInline('exports.handler = async () => ({});'),
        retryAttempts: 0,
      });
      expect(own.node.tryFindChild('EventInvokeConfig')).toBeDefined();
      expect(() => orchestrator.addFollower('own', own))
        .toThrow(/invalid function of follower "own" "Test\/Own"; allowed: a function without its own asynchronous invocation configuration/);
      expect(orchestrator.followerNames).toEqual([]);
    });
  });

  describe('routes', () => {
    const withFollowers = (props: Partial<LeaderFollowerOrchestratorProps> = {}) => {
      const stack = newStack();
      const followers = ['a', 'b', 'c'].map((name) => ({ name, function: followerFunction(stack, name.toUpperCase()) }));
      return defaultOrchestrator(stack, { followers, ...props });
    };

    test('a route without followers', () => {
      expect(() => withFollowers().addRoute('email', []))
        .toThrow(/invalid route of channel "email" \{"channel":"email","followers":\[\]\}; allowed: \/followers must NOT have fewer than 1 items/);
    });

    test('a route of 8 followers (over the default hop limit, 7)', () => {
      expect(() => withFollowers().addRoute('email', ['a', 'b', 'c', 'a', 'b', 'c', 'a', 'b']))
        .toThrow(/invalid route of channel "email" .*allowed: \/followers has 8 followers; allowed: at most 7 \(the orchestrator's hop limit\)/);
    });

    test('a route of 16 followers (over the recursion limit), even with maxHops 15', () => {
      const stack = newStack();
      const orchestrator = defaultOrchestrator(stack, { maxHops: 15, followers: [{ name: 'a', function: followerFunction(stack, 'A') }] });
      orchestrator.addRoute('long', Array(15).fill('a'));
      expect(orchestrator.deployedRoutes.map((r) => r.followers!.length)).toEqual([15]);
      expect(() => orchestrator.addRoute('longer', Array(16).fill('a')))
        .toThrow(/\/followers has more than 15 followers; allowed: 1 to 15, so the leader, invoked once for the record and once per step's result \(1 \+ 15 = 16\), .*more than 16 times by one event/);
    });

    test('a route with an invalid follower name', () => {
      expect(() => withFollowers().addRoute('email', ['a', 'bad name!']))
        .toThrow(/invalid route of channel "email" .*allowed: \/followers\/1 must be a follower name of 1 to 64 letters, digits, "_" or "-"/);
    });

    test('a blank channel', () => {
      expect(() => withFollowers().addRoute('  ', ['a']))
        .toThrow(/invalid route of channel " {2}" .*allowed: \/channel must be printable ASCII with at least one non-space character/);
    });

    test('a duplicate channel', () => {
      const orchestrator = withFollowers({ routes: [{ channel: 'email', followers: ['a'] }] });
      expect(() => orchestrator.addRoute('email', ['b']))
        .toThrow(/invalid route "email"; allowed: a channel \(with this tenant and event type\) without a route yet in this orchestrator/);
    });

    test('routes of one channel for other tenants and event types; the same tenant twice is a duplicate', () => {
      const orchestrator = withFollowers({ routes: [{ channel: 'email', followers: ['a'] }] });
      orchestrator.addRouteDefinition({ channel: 'email', tenant: 'acme', followers: ['b'] });
      orchestrator.addRouteDefinition({ channel: 'email', eventType: 'OrderShipped', followers: ['b'] });
      orchestrator.addRouteDefinition({ channel: 'email', tenant: 'acme', eventType: 'OrderShipped', followers: ['a', 'b'] });
      expect(orchestrator.deployedRoutes.map((r) => [r.tenant, r.eventType])).toEqual([
        [undefined, undefined], ['acme', undefined], [undefined, 'OrderShipped'], ['acme', 'OrderShipped'],
      ]);
      expect(() => orchestrator.addRouteDefinition({ channel: 'email', tenant: 'acme', followers: ['a'] }))
        .toThrow(/invalid route "email ⟨tenant=\\"acme\\" eventType=\*⟩"; allowed: a channel \(with this tenant and event type\) without a route yet/);
      expect(() => orchestrator.addRouteDefinition({ channel: 'email', tenant: '', followers: ['a'] }))
        .toThrow(/\/tenant must NOT have fewer than 1 characters/);
    });

    test('a route longer than a lower maxHops', () => {
      expect(() => withFollowers({ maxHops: 2 }).addRoute('email', ['a', 'b', 'c']))
        .toThrow(/invalid route of channel "email" .*allowed: \/followers has 3 followers; allowed: at most 2 \(the orchestrator's hop limit\)/);
    });

    test('a route in the props longer than maxHops', () => {
      expect(() => withFollowers({ maxHops: 1, routes: [{ channel: 'sms', followers: ['a', 'b'] }] }))
        .toThrow(/invalid route of channel "sms" .*allowed: at most 1 \(the orchestrator's hop limit\)/);
    });

    test('a token channel', () => {
      const orchestrator = withFollowers();
      const channel = new CfnParameter(Stack.of(orchestrator), 'Channel').valueAsString;
      expect(() => orchestrator.addRoute(channel, ['a']))
        .toThrow(/invalid route .*; allowed: literal channel, tenant, event type and follower names \(they are validated at synth\)/);
    });

    test('a route naming an unregistered follower fails synth, naming it', () => {
      const app = new App();
      const stack = newStack(app);
      const orchestrator = defaultOrchestrator(stack, { followers: [{ name: 'a', function: followerFunction(stack, 'A') }] });
      orchestrator.addRoute('email', ['a', 'ghost']);
      expect(() => app.synth()).toThrow(
        /Test\/Orchestrator: invalid route of channel "email": followers \["ghost"\] are not registered; allowed: \["a"\]/);
    });

    test('an empty event pattern in addSource', () => {
      const orchestrator = withFollowers();
      expect(() => orchestrator.addSource('Empty', { eventBus: orchestrator.curatedBus, eventPattern: {} }))
        .toThrow(/invalid eventPattern of source "Empty" \{\}; allowed: a pattern that constrains at least one field/);
      expect(orchestrator.sources).toEqual([]);
    });
  });

  test('unresolved tokens are accepted, and reach the template', () => {
    const app = new App();
    const stack = newStack(app);
    const num = (id: string) => new CfnParameter(stack, id, { type: 'Number' }).valueAsNumber;
    let orchestrator: LeaderFollowerOrchestrator | undefined;
    expect(() => {
      orchestrator = defaultOrchestrator(stack, {
        maxHops: num('Hops'),
        maxEventBytes: num('Bytes'),
        routeCacheTtl: Duration.seconds(num('CacheTtl')),
        progressTtl: Duration.seconds(num('ProgressTtl')),
        followerRetryAttempts: num('Retries'),
        followerMaxEventAge: Duration.seconds(num('Age')),
      });
      orchestrator.addFollower('a', followerFunction(stack, 'A'));
      orchestrator.addRoute('email', ['a']);
    }).not.toThrow();
    expect(Token.isUnresolved(orchestrator!.maxHops)).toBe(true);
    expect(() => app.synth()).not.toThrow();
    const template = Template.fromStack(stack);
    expect(leaderFunction(template).Environment.Variables).toMatchObject({
      MAX_HOPS: { Ref: 'Hops' },
      MAX_EVENT_BYTES: { Ref: 'Bytes' },
      ROUTE_CACHE_TTL_SECONDS: { Ref: 'CacheTtl' },
      PROGRESS_TTL_SECONDS: { Ref: 'ProgressTtl' },
    });
    expect(routeWriterFunction(template).Environment.Variables.MAX_HOPS).toEqual({ Ref: 'Hops' });
    expect(invokeConfigsOf(template, 'A')[0].Properties).toMatchObject({
      MaximumRetryAttempts: { Ref: 'Retries' }, MaximumEventAgeInSeconds: { Ref: 'Age' },
    });
  });

  test('with a token maxHops, routes are still limited to 15 followers at synth', () => {
    const stack = newStack();
    const orchestrator = defaultOrchestrator(stack, {
      maxHops: new CfnParameter(stack, 'Hops', { type: 'Number' }).valueAsNumber,
      followers: [{ name: 'a', function: followerFunction(stack, 'A') }],
    });
    orchestrator.addRoute('email', Array(15).fill('a'));
    expect(orchestrator.deployedRoutes.map((r) => r.followers!.length)).toEqual([15]);
    expect(() => orchestrator.addRoute('sms', Array(16).fill('a'))).toThrow(/\/followers has more than 15 followers/);
  });
});

describe('LeaderFollowerOrchestrator cdk-nag (AwsSolutions + Serverless)', () => {
  test('default configuration has no unacknowledged findings', () => {
    const app = new App();
    defaultOrchestrator(newStack(app));
    const findings = synthNagFindings(app);
    expect(formatFindings(findings)).toBe('');
    expect(findings).toEqual([]);
  });

  test('fullest configuration has no unacknowledged findings', () => {
    const app = new App();
    fullestOrchestrator(newStack(app));
    const findings = synthNagFindings(app);
    expect(formatFindings(findings)).toBe('');
    expect(findings).toEqual([]);
  });

  test('an environment-agnostic stack with a follower and a route has no unacknowledged findings', () => {
    const app = new App();
    const stack = new Stack(app, 'Agnostic');
    const orchestrator = defaultOrchestrator(stack);
    orchestrator.addFollower('enrich', followerFunction(stack, 'Enrich'));
    orchestrator.addRoute('email', ['enrich']);
    orchestrator.addSource('Curated', { eventBus: orchestrator.curatedBus, eventPattern: { source: ['shop'] } });
    const findings = synthNagFindings(app);
    expect(formatFindings(findings)).toBe('');
    expect(findings).toEqual([]);
  });
});

describe('LeaderFollowerOrchestrator scale', () => {
  test('two orchestrators in one stack are independent, twice the resources', () => {
    const stack = newStack();
    defaultOrchestrator(stack, {}, 'A');
    defaultOrchestrator(stack, {}, 'B');
    expect(resourceCount(stack)).toBe(2 * LeaderFollowerOrchestrator.RESOURCES_PER_ORCHESTRATOR);
    const names = Object.values<any>(Template.fromStack(stack).findResources('AWS::Lambda::Function'))
      .map((f) => f.Properties.FunctionName).filter((n) => typeof n === 'string');
    expect(names).toHaveLength(2);
    expect(new Set(names).size).toBe(2);
  });

  test('too many orchestrators in one stack fail synth with advice on how to split', () => {
    const app = new App();
    const stack = newStack(app);
    for (let i = 0; i < 24; i++) defaultOrchestrator(stack, {}, `Orchestrator${i}`);
    expect(() => app.synth()).toThrow(new RegExp(`Stack 'Test' holds \\d+ CloudFormation resources, over the limit of 500\\. `
      + `Each LeaderFollowerOrchestrator adds about ${LeaderFollowerOrchestrator.RESOURCES_PER_ORCHESTRATOR} resources`));
  });
});

describe('a follower\'s asynchronous configuration belongs to one orchestrator', () => {
  test('the same function under two names is refused, naming the first registration', () => {
    const stack = newStack();
    const orchestrator = defaultOrchestrator(stack);
    const fn = followerFunction(stack, 'Enrich');
    orchestrator.addFollower('enrich', fn);
    expect(() => orchestrator.addFollower('enrich2', fn))
      .toThrow(/invalid function of follower "enrich2".*allowed: a function \(and qualifier\) registered once; it is already follower "enrich" of Test\/Orchestrator/);
  });

  test('the same function in two orchestrators is refused; two aliases of one function are two followers', () => {
    const stack = newStack();
    const fn = followerFunction(stack, 'Enrich');
    defaultOrchestrator(stack, {}, 'First').addFollower('enrich', fn);
    const second = defaultOrchestrator(stack, {}, 'Second');
    expect(() => second.addFollower('enrich', fn)).toThrow(/already follower "enrich" of Test\/First/);
    const blue = new lambda.Alias(stack, 'Blue', { aliasName: 'blue', version: fn.currentVersion });
    const green = new lambda.Alias(stack, 'Green', { aliasName: 'green', version: fn.currentVersion });
    second.addFollower('blue', blue);
    second.addFollower('green', green);
    const configs = Object.values<any>(Template.fromStack(stack).findResources('AWS::Lambda::EventInvokeConfig'))
      .map((c) => c.Properties.Qualifier).sort();
    expect(configs).toEqual(['$LATEST', '$LATEST', '$LATEST', 'blue', 'green']);
  });

  test('an imported function with a qualifier in its ARN is refused', () => {
    const stack = newStack();
    const orchestrator = defaultOrchestrator(stack);
    const qualified = lambda.Function.fromFunctionArn(stack, 'Ext', 'arn:aws:lambda:eu-west-1:111111111111:function:ext:live');
    expect(() => orchestrator.addFollower('ext', qualified))
      .toThrow(/invalid function of follower "ext" "arn:aws:lambda:eu-west-1:111111111111:function:ext:live"; allowed: a function, a lambda.Alias/);
    const importedAlias = lambda.Alias.fromAliasAttributes(stack, 'ImportedAlias', {
      aliasName: 'prod', aliasVersion: lambda.Version.fromVersionArn(stack, 'V', 'arn:aws:lambda:eu-west-1:111111111111:function:ext:3'),
    });
    expect(() => orchestrator.addFollower('prod', importedAlias)).toThrow(/allowed: a function, a lambda.Alias or a lambda.Version of this app/);
    const unqualified = lambda.Function.fromFunctionArn(stack, 'Plain', 'arn:aws:lambda:eu-west-1:111111111111:function:plain');
    expect(() => orchestrator.addFollower('plain', unqualified)).not.toThrow();
  });
});
