import { App, CfnParameter, Duration, NestedStack, RemovalPolicy, Stack, Token } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as cloudwatchActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as events from 'aws-cdk-lib/aws-events';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { defaultChannel, fullestChannel, userSecret } from './fixtures';
import { ApiDestinationChannel, ChannelAuthorization } from '../../src';
import { formatFindings, synthNagFindings } from '../support/nag';
import { resourceCount, resourcesByType } from '../support/templates';

function newStack(): Stack {
  return new Stack(new App(), 'Test', { env: { account: '111111111111', region: 'eu-west-1' } });
}

describe('ApiDestinationChannel defaults', () => {
  const stack = newStack();
  const channel = defaultChannel(stack);
  const template = Template.fromStack(stack);

  test('rule on the given bus with the given pattern', () => {
    template.hasResourceProperties('AWS::Events::Rule', {
      EventBusName: { Ref: Match.stringLikeRegexp('Bus') },
      EventPattern: { 'source': ['shop.orders'], 'detail-type': ['OrderPlaced'] },
      State: 'ENABLED',
    });
  });

  test('target: API destination, $.detail body, idempotency key from the event id, retry policy, DLQ', () => {
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: { source: ['shop.orders'] },
      Targets: [Match.objectLike({
        Arn: { 'Fn::GetAtt': [Match.stringLikeRegexp('ChannelApiDestination'), 'Arn'] },
        InputPath: '$.detail',
        HttpParameters: { HeaderParameters: { 'Idempotency-Key': '$.id' } },
        RetryPolicy: { MaximumRetryAttempts: 185, MaximumEventAgeInSeconds: 86400 },
        DeadLetterConfig: { Arn: { 'Fn::GetAtt': [Match.stringLikeRegexp('ChannelDeadLetterQueue'), 'Arn'] } },
        RoleArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('ChannelEventRole'), 'Arn'] },
      })],
    });
  });

  test('API destination POSTs to the endpoint through the created connection', () => {
    template.hasResourceProperties('AWS::Events::ApiDestination', {
      HttpMethod: 'POST',
      InvocationEndpoint: 'https://crm.example.com/orders',
      ConnectionArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('ChannelConnection'), 'Arn'] },
      InvocationRateLimitPerSecond: Match.absent(),
    });
  });

  test('the API key comes from Secrets Manager as a dynamic reference, never in plain text', () => {
    const conn = Object.values<any>(template.findResources('AWS::Events::Connection'))[0];
    expect(conn.Properties.AuthorizationType).toBe('API_KEY');
    const params = conn.Properties.AuthParameters.ApiKeyAuthParameters;
    expect(params.ApiKeyName).toBe('x-api-key');
    expect(JSON.stringify(params.ApiKeyValue)).toContain('{{resolve:secretsmanager:');
  });

  test('dead-letter queue: SSE-SQS, TLS only, 14 days, writable by the rules only', () => {
    template.hasResourceProperties('AWS::SQS::Queue', {
      SqsManagedSseEnabled: true,
      MessageRetentionPeriod: 1209600,
    });
    const policy = Object.values<any>(template.findResources('AWS::SQS::QueuePolicy'))[0];
    const statements = policy.Properties.PolicyDocument.Statement;
    expect(statements.some((s: any) => s.Effect === 'Deny' && s.Condition?.Bool?.['aws:SecureTransport'] === 'false')).toBe(true);
    const sends = statements.filter((s: any) => s.Action === 'sqs:SendMessage');
    expect(sends).toEqual([expect.objectContaining({
      Effect: 'Allow',
      Principal: { Service: 'events.amazonaws.com' },
      Resource: { 'Fn::GetAtt': [expect.stringMatching(/^ChannelDeadLetterQueue/), 'Arn'] },
      // one statement for the channel rule and its replay rule
      Condition: {
        ArnEquals: {
          'aws:SourceArn': [
            { 'Fn::GetAtt': [expect.stringMatching(/^ChannelRule/), 'Arn'] },
            { 'Fn::GetAtt': [expect.stringMatching(/^ChannelReplayRule/), 'Arn'] },
          ],
        },
      },
    })]);
  });

  test('the created dead-letter queue is retained when removed or when the stack is deleted', () => {
    template.hasResource('AWS::SQS::Queue', { DeletionPolicy: 'Retain', UpdateReplacePolicy: 'Retain' });
  });

  test('event role may invoke only this API destination', () => {
    template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: {
        Statement: [{
          Action: 'events:InvokeApiDestination',
          Effect: 'Allow',
          Resource: { 'Fn::GetAtt': [Match.stringLikeRegexp('ChannelApiDestination'), 'Arn'] },
        }],
      },
      Roles: [{ Ref: Match.stringLikeRegexp('ChannelEventRole') }],
    });
  });

  test('six alarms: DLQ depth, failed invocations, sent to DLQ, failed to be sent to DLQ, and the replay rule\'s two', () => {
    template.resourceCountIs('AWS::CloudWatch::Alarm', 6);
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'ApproximateNumberOfMessagesVisible', Namespace: 'AWS/SQS', Threshold: 1, TreatMissingData: 'notBreaching',
    });
    for (const metricName of ['FailedInvocations', 'InvocationsSentToDlq', 'InvocationsFailedToBeSentToDlq']) {
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        MetricName: metricName,
        Namespace: 'AWS/Events',
        Statistic: 'Sum',
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
        Dimensions: Match.arrayWith([{ Name: 'RuleName', Value: { Ref: Match.stringLikeRegexp('ChannelRule') } }]),
      });
    }
  });

  test('replay alarms: the replay rule\'s FailedInvocations and InvocationsFailedToBeSentToDlq', () => {
    for (const metricName of ['FailedInvocations', 'InvocationsFailedToBeSentToDlq']) {
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        MetricName: metricName,
        Namespace: 'AWS/Events',
        Statistic: 'Sum',
        Threshold: 1,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
        TreatMissingData: 'notBreaching',
        Dimensions: [
          { Name: 'EventBusName', Value: { Ref: Match.stringLikeRegexp('CdkEventFabricChannelReplayBus') } },
          { Name: 'RuleName', Value: { Ref: Match.stringLikeRegexp('ChannelReplayRule') } },
        ],
      });
    }
    const alarmLogicalId = (alarm: any) => stack.resolve((alarm.node.defaultChild as any).logicalId);
    expect(alarmLogicalId(channel.replayFailedInvocationsAlarm)).toMatch(/^ChannelReplayFailedInvocationsAlarm/);
    expect(alarmLogicalId(channel.replayInvocationsFailedToBeSentToDlqAlarm)).toMatch(/^ChannelReplayInvocationsFailedToBeSentToDlqAlarm/);
  });

  test('replay: a rule on the private replay bus, matching only replays of this channel\'s rule', () => {
    template.resourceCountIs('AWS::Events::EventBus', 2); // the source bus and the replay bus
    template.hasResourceProperties('AWS::Events::Rule', {
      EventBusName: { Ref: Match.stringLikeRegexp('CdkEventFabricChannelReplayBus') },
      EventPattern: {
        'source': ['cdk-event-fabric.replay'],
        'detail-type': ['ApiDestinationChannel Replay'],
        'detail': { ruleArn: [{ 'Fn::GetAtt': [Match.stringLikeRegexp('ChannelRule'), 'Arn'] }] },
      },
      Targets: [Match.objectLike({
        InputPath: '$.detail.event.detail',
        HttpParameters: { HeaderParameters: { 'Idempotency-Key': '$.detail.event.id' } },
        RetryPolicy: { MaximumRetryAttempts: 185, MaximumEventAgeInSeconds: 86400 },
        DeadLetterConfig: { Arn: { 'Fn::GetAtt': [Match.stringLikeRegexp('ChannelDeadLetterQueue'), 'Arn'] } },
      })],
    });
  });

  test('replay function: Node.js 24, tracing, may read the DLQ and put on the replay bus only', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      Runtime: 'nodejs24.x',
      TracingConfig: { Mode: 'Active' },
      Environment: { Variables: Match.objectLike({ REPLAY_BUS_NAME: { Ref: Match.stringLikeRegexp('CdkEventFabricChannelReplayBus') } }) },
    });
    const policies = JSON.stringify(template.findResources('AWS::IAM::Policy'));
    expect(policies).toContain('sqs:ReceiveMessage');
    expect(policies).toContain('events:PutEvents');
  });

  test('exposes every resource and a replay payload naming its queue', () => {
    expect(channel.rule).toBeDefined();
    expect(channel.apiDestination).toBeDefined();
    expect(channel.connection).toBeDefined();
    expect(channel.deadLetterQueue).toBeDefined();
    expect(channel.replayRule).toBeDefined();
    expect(channel.replayFunction).toBeDefined();
    expect(channel.replayBus).toBeDefined();
    expect(channel.eventRole).toBeDefined();
    expect(stack.resolve(channel.replayPayload)).toEqual({
      'Fn::Join': ['', ['{"queueUrl":"', { Ref: expect.stringMatching(/^ChannelDeadLetterQueue/) }, '"}']],
    });
  });

  test('metric helpers name the rule and the custom bus', () => {
    const metric = stack.resolve(channel.metricFailedInvocations().toMetricConfig().metricStat!.dimensions);
    expect(metric).toEqual(expect.arrayContaining([
      { name: 'RuleName', value: { Ref: expect.stringMatching(/ChannelRule/) } },
      { name: 'EventBusName', value: { Ref: expect.stringMatching(/Bus/) } },
    ]));
    expect(channel.metricIngestionToInvocationSuccessLatency().statistic).toBe('p99');
    expect(channel.metricRetryInvocationAttempts().metricName).toBe('RetryInvocationAttempts');
    expect(channel.metricInvocations().metricName).toBe('Invocations');
  });

  test('replay metric helpers name the replay rule and the replay bus', () => {
    const replayDimensions = [
      { name: 'EventBusName', value: { Ref: expect.stringMatching(/^CdkEventFabricChannelReplayBus/) } },
      { name: 'RuleName', value: { Ref: expect.stringMatching(/^ChannelReplayRule/) } },
    ];
    for (const [metric, name] of [
      [channel.metricReplayInvocations(), 'Invocations'],
      [channel.metricReplayFailedInvocations(), 'FailedInvocations'],
      [channel.metricReplayInvocationsFailedToBeSentToDlq(), 'InvocationsFailedToBeSentToDlq'],
    ] as const) {
      expect(metric.metricName).toBe(name);
      expect(metric.namespace).toBe('AWS/Events');
      expect(stack.resolve(metric.toMetricConfig().metricStat!.dimensions)).toEqual(replayDimensions);
    }
  });
});

describe('ApiDestinationChannel fullest configuration', () => {
  const stack = newStack();
  fullestChannel(stack);
  const template = Template.fromStack(stack);

  test('OAuth client credentials with the client secret as a dynamic reference', () => {
    const conn = Object.values<any>(template.findResources('AWS::Events::Connection'))[0];
    expect(conn.Properties.AuthorizationType).toBe('OAUTH_CLIENT_CREDENTIALS');
    const oauth = conn.Properties.AuthParameters.OAuthParameters;
    expect(oauth.AuthorizationEndpoint).toBe('https://auth.example.com/oauth2/token');
    expect(oauth.ClientParameters.ClientID).toBe('cdk-event-fabric');
    expect(JSON.stringify(oauth.ClientParameters.ClientSecret)).toMatch(/\{\{resolve:secretsmanager:.*:SecretString:clientSecret::\}\}/);
    expect(oauth.OAuthHttpParameters.BodyParameters).toEqual([{ Key: 'scope', Value: 'orders:write', IsValueSecret: false }]);
  });

  test('transformation, parameters, rate limit, retry policy and method', () => {
    template.hasResourceProperties('AWS::Events::ApiDestination', { HttpMethod: 'PUT', InvocationRateLimitPerSecond: 20 });
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: Match.objectLike({ detail: { total: [{ numeric: ['>', 0] }] } }),
      Targets: [Match.objectLike({
        InputTransformer: {
          InputPathsMap: { 'detail-orderId': '$.detail.orderId', 'detail-total': '$.detail.total', 'time': '$.time' },
          InputTemplate: '{"orderId":<detail-orderId>,"total":<detail-total>,"placedAt":<time>}',
        },
        HttpParameters: {
          HeaderParameters: { 'x-tenant': '$.detail.tenant', 'x-source': 'cdk-event-fabric', 'X-Idempotency-Key': '$.id' },
          QueryStringParameters: { region: '$.region' },
          PathParameterValues: ['$.detail.tenant'],
        },
        RetryPolicy: { MaximumRetryAttempts: 10, MaximumEventAgeInSeconds: 7200 },
      })],
    });
  });

  test('replay re-aims every path at the wrapped original event', () => {
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: Match.objectLike({ source: ['cdk-event-fabric.replay'] }),
      Targets: [Match.objectLike({
        InputTransformer: {
          InputPathsMap: { 'detail-orderId': '$.detail.event.detail.orderId', 'detail-total': '$.detail.event.detail.total', 'time': '$.detail.event.time' },
          InputTemplate: '{"orderId":<detail-orderId>,"total":<detail-total>,"placedAt":<time>}',
        },
        HttpParameters: {
          HeaderParameters: { 'x-tenant': '$.detail.event.detail.tenant', 'x-source': 'cdk-event-fabric', 'X-Idempotency-Key': '$.detail.event.id' },
          QueryStringParameters: { region: '$.detail.event.region' },
          PathParameterValues: ['$.detail.event.detail.tenant'],
        },
      })],
    });
  });

  test('customer KMS key on the DLQ, and the key policy lets EventBridge use it', () => {
    template.hasResourceProperties('AWS::SQS::Queue', {
      KmsMasterKeyId: { 'Fn::GetAtt': [Match.stringLikeRegexp('DlqKey'), 'Arn'] },
      MessageRetentionPeriod: 604800,
    });
    template.hasResourceProperties('AWS::KMS::Key', {
      KeyPolicy: {
        Statement: Match.arrayWith([Match.objectLike({
          Action: ['kms:GenerateDataKey', 'kms:Decrypt'],
          Principal: { Service: 'events.amazonaws.com' },
          Condition: { StringEquals: { 'aws:SourceAccount': '111111111111' } },
        })]),
      },
    });
  });

  test('every alarm notifies the given actions', () => {
    const alarms = Object.values<any>(template.findResources('AWS::CloudWatch::Alarm'));
    expect(alarms).toHaveLength(6);
    for (const alarm of alarms) {
      expect(alarm.Properties.AlarmActions).toEqual([{ Ref: expect.stringMatching(/^Alarms/) }]);
    }
  });
});

describe('ApiDestinationChannel whole-event input', () => {
  test('a template using <aws.events.event.json> replays the original event, not the wrapper', () => {
    const stack = newStack();
    defaultChannel(stack, {
      input: events.RuleTargetInput.fromMultilineText(`{"id": "${events.EventField.eventId}", "event": <aws.events.event.json>}`),
    });
    const rules = Object.values<any>(Template.fromStack(stack).findResources('AWS::Events::Rule'));
    const original = rules.find((r) => r.Properties.EventPattern.source?.[0] === 'shop.orders');
    const replay = rules.find((r) => r.Properties.EventPattern.source?.[0] === 'cdk-event-fabric.replay');
    expect(original.Properties.Targets[0].InputTransformer.InputTemplate).toContain('<aws.events.event.json>');
    const transformer = replay.Properties.Targets[0].InputTransformer;
    expect(transformer.InputPathsMap).toEqual({ id: '$.detail.event.id', cef_original_event: '$.detail.event' });
    expect(transformer.InputTemplate).toContain('<cef_original_event>');
    expect(transformer.InputTemplate).not.toContain('<aws.events.event');
  });
});

describe('ApiDestinationChannel sharing', () => {
  test('many channels share one connection, one replay bus and one replay function', () => {
    const stack = newStack();
    const secret = userSecret(stack, 'Secret');
    const connection = new events.Connection(stack, 'Shared', {
      authorization: ChannelAuthorization.basic({ username: 'svc', secret, jsonField: 'password' }).toEventsAuthorization(),
    });
    for (let i = 0; i < 3; i++) defaultChannel(stack, { connection, authorization: undefined }, `C${i}`);
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::Events::Connection', 1);
    template.resourceCountIs('AWS::Events::ApiDestination', 3);
    template.resourceCountIs('AWS::Lambda::Function', 1);
    template.resourceCountIs('AWS::Events::EventBus', 2);
    template.hasResourceProperties('AWS::Events::Connection', {
      AuthorizationType: 'BASIC',
      AuthParameters: { BasicAuthParameters: { Username: 'svc', Password: Match.anyValue() } },
    });
  });

  test('a given dead-letter queue is used and granted to the replay function', () => {
    const stack = newStack();
    const queue = new sqs.Queue(stack, 'MyDlq', { enforceSSL: true });
    const channel = defaultChannel(stack, { deadLetterQueue: queue });
    expect(channel.deadLetterQueue).toBe(queue);
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::SQS::Queue', 1);
    template.hasResourceProperties('AWS::Events::Rule', {
      Targets: [Match.objectLike({ DeadLetterConfig: { Arn: { 'Fn::GetAtt': [Match.stringLikeRegexp('MyDlq'), 'Arn'] } } })],
    });
  });

  test('rule on the default bus: metrics carry RuleName only', () => {
    const stack = newStack();
    const channel = defaultChannel(stack, { eventBus: events.EventBus.fromEventBusName(stack, 'Default', 'default') });
    const dims = stack.resolve(channel.metricFailedInvocations().toMetricConfig().metricStat!.dimensions);
    expect(dims).toEqual([{ name: 'RuleName', value: { Ref: expect.stringMatching(/ChannelRule/) } }]);
  });
});

describe('ApiDestinationChannel dead-letter queue removal policy', () => {
  test('deadLetterQueueRemovalPolicy DESTROY deletes the created queue with the stack', () => {
    const stack = newStack();
    defaultChannel(stack, { deadLetterQueueRemovalPolicy: RemovalPolicy.DESTROY });
    Template.fromStack(stack).hasResource('AWS::SQS::Queue', { DeletionPolicy: 'Delete', UpdateReplacePolicy: 'Delete' });
  });
});

describe('ApiDestinationChannel shared dead-letter queue', () => {
  /** `n` channels of one stack on one given queue, each with the alarm actions given. */
  function channelsOnOneQueue(n: number, alarmActions?: (stack: Stack) => any[], eventBus?: (stack: Stack) => events.IEventBus) {
    const app = new App();
    const stack = new Stack(app, 'Test', { env: { account: '111111111111', region: 'eu-west-1' } });
    const queue = new sqs.Queue(stack, 'SharedDlq', { enforceSSL: true });
    const props = () => ({ deadLetterQueue: queue, alarmActions: alarmActions?.(stack), ...(eventBus ? { eventBus: eventBus(stack) } : {}) });
    const channels = [defaultChannel(stack, props(), 'Channel0')];
    const connection = channels[0].connection;
    for (let i = 1; i < n; i++) {
      channels.push(defaultChannel(stack, { ...props(), connection, authorization: undefined }, `Channel${i}`));
    }
    return { app, stack, queue, channels };
  }

  test('15 channels sharing one queue: one queue-policy statement listing their 30 rule ARNs, and one depth alarm', () => {
    const { stack, channels } = channelsOnOneQueue(15);
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::SQS::QueuePolicy', 1);
    const statements = Object.values<any>(template.findResources('AWS::SQS::QueuePolicy'))[0].Properties.PolicyDocument.Statement;
    const sends = statements.filter((s: any) => s.Action === 'sqs:SendMessage');
    expect(sends).toHaveLength(1);
    expect(sends[0].Principal).toEqual({ Service: 'events.amazonaws.com' });
    expect(sends[0].Resource).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^SharedDlq/), 'Arn'] });
    const expected = channels.flatMap((c) => [stack.resolve(c.rule.ruleArn), stack.resolve(c.replayRule.ruleArn)]);
    expect(expected).toHaveLength(30);
    expect(sends[0].Condition.ArnEquals['aws:SourceArn']).toEqual(expected);

    const depthAlarms = template.findResources('AWS::CloudWatch::Alarm', { Properties: { MetricName: 'ApproximateNumberOfMessagesVisible' } });
    expect(Object.keys(depthAlarms)).toHaveLength(1);
    for (const channel of channels) expect(channel.deadLetterQueueDepthAlarm).toBe(channels[0].deadLetterQueueDepthAlarm);
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [Match.stringLikeRegexp('^SharedDlq'), 'QueueName'] } }],
    });
  });

  test('the shared depth alarm notifies each alarm action once', () => {
    const { stack, channels } = channelsOnOneQueue(3, (s) => {
      const topic = (s.node.tryFindChild('Topic') as sns.Topic) ?? new sns.Topic(s, 'Topic', { enforceSSL: true });
      return [new cloudwatchActions.SnsAction(topic)];
    });
    expect(channels[2].deadLetterQueueDepthAlarm).toBe(channels[0].deadLetterQueueDepthAlarm);
    const depthAlarms = Template.fromStack(stack).findResources('AWS::CloudWatch::Alarm', { Properties: { MetricName: 'ApproximateNumberOfMessagesVisible' } });
    expect(Object.values<any>(depthAlarms).map((a) => a.Properties.AlarmActions)).toEqual([[{ Ref: expect.stringMatching(/^Topic/) }]]);
  });

  test('too many channels on one queue fail synth, naming the queue, the count and what to do', () => {
    const { app } = channelsOnOneQueue(30);
    expect(() => app.synth()).toThrow(new RegExp(
      'Test/SharedDlq: invalid deadLetterQueue shared by 30 ApiDestinationChannels of stack \'Test\' \\(60 rules\\): ' +
      'its queue policy would have 2 statements and about \\d+ bytes \\(estimated\\), over SQS\'s limits of 20 statements and 8192 bytes; ' +
      'allowed: about \\d+ channels of one stack on this queue\\. Give some channels their own queue'));
  });

  test('a bus name unknown at synth counts at its maximum length: 15 channels on one queue no longer fit', () => {
    const tokenBus = (stack: Stack) => (stack.node.tryFindChild('TokenBus') as events.IEventBus)
      ?? events.EventBus.fromEventBusArn(stack, 'TokenBus', new CfnParameter(stack, 'BusArn').valueAsString);
    const { app } = channelsOnOneQueue(15, undefined, tokenBus);
    expect(() => app.synth()).toThrow(/invalid deadLetterQueue shared by 15 ApiDestinationChannels .*allowed: about 1[0-4] channels/);
    expect(() => channelsOnOneQueue(15).app.synth()).not.toThrow();
  });

  test('an imported queue: a warning names the statement its owner must add', () => {
    const stack = newStack();
    const queue = sqs.Queue.fromQueueArn(stack, 'ImportedDlq', 'arn:aws:sqs:eu-west-1:111111111111:parked');
    defaultChannel(stack, { deadLetterQueue: queue });
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::SQS::QueuePolicy', 0);
    template.hasResourceProperties('AWS::Events::Rule', {
      Targets: [Match.objectLike({ DeadLetterConfig: { Arn: 'arn:aws:sqs:eu-west-1:111111111111:parked' } })],
    });
    Annotations.fromStack(stack).hasWarning('/Test/Channel', Match.stringLikeRegexp(
      'The dead-letter queue arn:aws:sqs:eu-west-1:111111111111:parked is imported.*Principal \\{"Service":"events.amazonaws.com"\\}, '
      + 'Action sqs:SendMessage.*ArnEquals aws:SourceArn \\[the ARNs of the rules Test/Channel/Rule and Test/Channel/ReplayRule\\]'));
  });

  test('a queue in another region is rejected', () => {
    const stack = newStack();
    const queue = sqs.Queue.fromQueueArn(stack, 'Far', 'arn:aws:sqs:us-east-1:111111111111:parked');
    expect(() => defaultChannel(stack, { deadLetterQueue: queue }))
      .toThrow(/invalid deadLetterQueue "arn:aws:sqs:us-east-1:111111111111:parked"; allowed: a queue in the rule's region eu-west-1/);
  });

  describe('across stacks', () => {
    /** A parent stack holding the shared queue and the bus. */
    function parentWithQueue() {
      const app = new App();
      const parent = new Stack(app, 'Parent', { env: { account: '111111111111', region: 'eu-west-1' } });
      const queue = new sqs.Queue(parent, 'SharedDlq', { enforceSSL: true });
      const bus = new events.EventBus(parent, 'Bus');
      return { app, parent, queue, bus };
    }

    /** The Sids of the sqs:SendMessage statements of the stack's one queue policy. */
    function sendSids(stack: Stack): string[] {
      const policies = Object.values<any>(Template.fromStack(stack).findResources('AWS::SQS::QueuePolicy'));
      expect(policies).toHaveLength(1);
      return policies[0].Properties.PolicyDocument.Statement.filter((s: any) => s.Action === 'sqs:SendMessage').map((s: any) => s.Sid);
    }

    /** Logical ids a resource references (Ref, Fn::GetAtt, DependsOn) among the template's resources. */
    function references(template: any, logicalId: string): Set<string> {
      const found = new Set<string>(template.Resources[logicalId].DependsOn ?? []);
      const walk = (node: unknown): void => {
        if (Array.isArray(node)) {
          node.forEach(walk);
        } else if (node !== null && typeof node === 'object') {
          for (const [key, value] of Object.entries(node)) {
            if (key === 'Ref' && typeof value === 'string') found.add(value);
            else if (key === 'Fn::GetAtt' && Array.isArray(value)) found.add(value[0]);
            else walk(value);
          }
        }
      };
      walk(template.Resources[logicalId].Properties);
      return new Set([...found].filter((id) => id in template.Resources));
    }

    // IAM: "the Sid value must be unique within a JSON policy"; SQS may require it.
    test.each([
      ['Channels-1 and Channels1', (parent: Stack) => [new NestedStack(parent, 'Channels-1'), new NestedStack(parent, 'Channels1')]],
      ['Orders/Eu and OrdersEu', (parent: Stack) => [new NestedStack(new NestedStack(parent, 'Orders'), 'Eu'), new NestedStack(parent, 'OrdersEu')]],
    ])('nested stacks %s sharing a queue of their parent get distinct alphanumeric Sids', (_name, nested) => {
      const { parent, queue, bus } = parentWithQueue();
      for (const stack of nested(parent)) defaultChannel(stack, { deadLetterQueue: queue, eventBus: bus });
      defaultChannel(parent, { deadLetterQueue: queue, eventBus: bus });
      const sids = sendSids(parent);
      expect(sids).toHaveLength(3);
      expect(new Set(sids).size).toBe(3);
      for (const sid of sids) expect(sid).toMatch(/^ApiDestinationChannels[A-Za-z0-9]+$/);
      // The queue's own stack keeps the Sid it had: its path without other characters.
      expect(sids).toContain('ApiDestinationChannelsParent');
    });

    test('channels in nested stacks sharing a queue of their parent (or grandparent) synthesize with no dependency cycle', () => {
      const { app, parent, queue, bus } = parentWithQueue();
      const first = new NestedStack(parent, 'Channels1');
      const second = new NestedStack(parent, 'Channels2');
      const third = new NestedStack(second, 'Channels3');
      for (const stack of [first, second, third]) defaultChannel(stack, { deadLetterQueue: queue, eventBus: bus });

      // What `cdk synth` does; Template.fromStack also fails on a cycle within a template.
      expect(() => app.synth()).not.toThrow();
      const template = Template.fromStack(parent).toJSON();
      for (const stack of [first, second, third]) {
        expect(Object.keys(Template.fromStack(stack).findResources('AWS::SQS::QueuePolicy'))).toEqual([]);
        Template.fromStack(stack).hasResourceProperties('AWS::Events::Rule', {
          Targets: [Match.objectLike({ DeadLetterConfig: { Arn: { Ref: Match.stringLikeRegexp('SharedDlq') } } })],
        });
      }

      // The queue policy (with the queue, in the parent) depends on the nested stacks, never the reverse.
      const policyId = Object.keys(Template.fromStack(parent).findResources('AWS::SQS::QueuePolicy'))[0];
      const nestedIds = Object.keys(Template.fromStack(parent).findResources('AWS::CloudFormation::Stack'));
      expect(nestedIds).toHaveLength(2);
      expect(new Set(sendSids(parent)).size).toBe(3); // one statement per nested stack
      expect([...references(template, policyId)]).toEqual(expect.arrayContaining(nestedIds));
      for (const id of nestedIds) {
        expect(references(template, id).has(policyId)).toBe(false);
        expect([...references(template, id)]).toEqual(expect.arrayContaining([expect.stringMatching(/^SharedDlq/)]));
      }
    });

    /** `perStack[i]` channels in each of `perStack.length` nested stacks, all on the parent's queue and bus (or the default bus). */
    function nestedChannelsOnParentQueue(perStack: number[], onDefaultBus = false) {
      const { app, parent, queue, bus: parentBus } = parentWithQueue();
      const bus = onDefaultBus ? events.EventBus.fromEventBusName(parent, 'DefaultBus', 'default') : parentBus;
      const nested = perStack.map((n, s) => {
        const stack = new NestedStack(parent, `Channels${s + 1}`);
        const first = defaultChannel(stack, { deadLetterQueue: queue, eventBus: bus }, 'Channel0');
        for (let i = 1; i < n; i++) {
          defaultChannel(stack, { deadLetterQueue: queue, eventBus: bus, connection: first.connection, authorization: undefined }, `Channel${i}`);
        }
        return stack;
      });
      return { app, parent, queue, nested };
    }

    // The real policy: about 7.6 KB with 64-character rule names (CloudFormation's longest), estimated about 7.8 KB;
    // each stack's check counted the other stacks' 32 rule ARNs (nested stack outputs) at 256 characters (12 KB).
    test('3 nested stacks of 8 channels sharing a queue of their parent synthesize: other stacks\' rule ARNs count at their estimated length', () => {
      const { app, parent } = nestedChannelsOnParentQueue([8, 8, 8], true);
      expect(() => app.synth()).not.toThrow();
      const statements = Object.values<any>(Template.fromStack(parent).findResources('AWS::SQS::QueuePolicy'))[0].Properties.PolicyDocument.Statement;
      const sends = statements.filter((s: any) => s.Action === 'sqs:SendMessage');
      expect(sends).toHaveLength(3);
      for (const send of sends) expect(send.Condition.ArnEquals['aws:SourceArn']).toHaveLength(16);
    });

    test('too many channels over nested stacks on a queue of their parent fail synth once, naming the total, the stacks and what to do', () => {
      const { app } = nestedChannelsOnParentQueue([12, 12, 12]);
      let message = '';
      try {
        app.synth();
      } catch (e) {
        message = (e as Error).message;
      }
      expect(message).toMatch(new RegExp(
        'Parent/SharedDlq: invalid deadLetterQueue shared by 36 ApiDestinationChannels of stacks ' +
        '\'Parent/Channels1\', \'Parent/Channels2\', \'Parent/Channels3\' \\(72 rules\\): ' +
        'its queue policy would have 4 statements and about \\d+ bytes \\(estimated\\), over SQS\'s limits of 20 statements and 8192 bytes; ' +
        'allowed: about \\d+ channels on this queue in all its stacks\\. Give some channels their own queue'));
      expect(message.match(/invalid deadLetterQueue/g)).toHaveLength(1);
    });

    test('a queue in a nested stack below the channel\'s stack is refused, naming the queue and what is allowed', () => {
      const { parent } = parentWithQueue();
      const queue = new sqs.Queue(new NestedStack(parent, 'Queues'), 'Shared');
      // Synthesized, CloudFormation would reject it: the rule names the queue ARN (a nested
      // stack output) and the queue policy in the nested stack names the rule ARN.
      expect(() => defaultChannel(parent, { deadLetterQueue: queue })).toThrow(new RegExp(
        '^Parent/Channel: invalid deadLetterQueue "Parent/Queues/Shared"; allowed: a queue created in the channel\'s own stack \'Parent\' ' +
        'or in a parent stack of it \\(a stack it is nested in.*\\)\\. This queue is in stack \'Parent/Queues\', nested in the channel\'s stack: ' +
        'its queue policy.*would name the channel\'s rules while the rules name the queue, a circular dependency'));
    });

    test('a queue in a sibling nested stack or in another top-level stack is refused', () => {
      const { app, parent, bus } = parentWithQueue();
      const sibling = new sqs.Queue(new NestedStack(parent, 'Queues'), 'Shared');
      expect(() => defaultChannel(new NestedStack(parent, 'Channels'), { deadLetterQueue: sibling, eventBus: bus }))
        .toThrow(/^Parent\/Channels\/Channel: invalid deadLetterQueue "Parent\/Queues\/Shared"; allowed: a queue created in the channel's own stack 'Parent\/Channels' or in a parent stack of it .*This queue is in stack 'Parent\/Queues', which is not a parent of the channel's stack/);
      const other = new Stack(app, 'Other', { env: { account: '111111111111', region: 'eu-west-1' } });
      expect(() => defaultChannel(other, { deadLetterQueue: new sqs.Queue(parent, 'Elsewhere') }))
        .toThrow(/^Other\/Channel: invalid deadLetterQueue "Parent\/Elsewhere"; .*This queue is in stack 'Parent', which is not a parent of the channel's stack/);
    });
  });
});

describe('ApiDestinationChannel encrypted dead-letter queue', () => {
  const eventBridgeKeyStatement = Match.objectLike({
    Action: ['kms:GenerateDataKey', 'kms:Decrypt'],
    Principal: { Service: 'events.amazonaws.com' },
    Condition: { StringEquals: { 'aws:SourceAccount': '111111111111' } },
  });

  test('a given queue encrypted with a key created in the app: the key policy lets EventBridge use it', () => {
    const stack = newStack();
    const key = new kms.Key(stack, 'UserKey', { enableKeyRotation: true });
    const queue = new sqs.Queue(stack, 'UserDlq', { encryption: sqs.QueueEncryption.KMS, encryptionMasterKey: key, enforceSSL: true });
    defaultChannel(stack, { deadLetterQueue: queue });
    defaultChannel(stack, { deadLetterQueue: queue }, 'Second');
    Template.fromStack(stack).hasResourceProperties('AWS::KMS::Key', { KeyPolicy: { Statement: Match.arrayWith([eventBridgeKeyStatement]) } });
    const statements = Template.fromStack(stack).toJSON().Resources;
    const keyPolicy = Object.values<any>(statements).find((r) => r.Type === 'AWS::KMS::Key').Properties.KeyPolicy.Statement;
    expect(keyPolicy.filter((s: any) => s.Principal?.Service === 'events.amazonaws.com')).toHaveLength(1);
    expect(Annotations.fromStack(stack).findWarning('*', Match.anyValue())).toEqual([]);
  });

  test('a given queue encrypted with an imported key: a warning names the key policy statement to add', () => {
    const stack = newStack();
    const key = kms.Key.fromKeyArn(stack, 'TheirKey', 'arn:aws:kms:eu-west-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab');
    const queue = new sqs.Queue(stack, 'UserDlq', { encryption: sqs.QueueEncryption.KMS, encryptionMasterKey: key, enforceSSL: true });
    defaultChannel(stack, { deadLetterQueue: queue });
    Annotations.fromStack(stack).hasWarning('/Test/Channel', Match.stringLikeRegexp(
      'The KMS key arn:aws:kms:eu-west-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab of the dead-letter queue Test/UserDlq '
      + 'is imported or AWS managed.*events.amazonaws.com.*kms:GenerateDataKey and kms:Decrypt'));
  });

  test('a given queue encrypted with the AWS managed key: a warning', () => {
    const stack = newStack();
    const queue = new sqs.Queue(stack, 'UserDlq', { encryption: sqs.QueueEncryption.KMS_MANAGED, enforceSSL: true });
    defaultChannel(stack, { deadLetterQueue: queue });
    Annotations.fromStack(stack).hasWarning('/Test/Channel', Match.stringLikeRegexp(
      'The KMS key alias/aws/sqs of the dead-letter queue Test/UserDlq is imported or AWS managed.*alias/aws/sqs cannot allow it'));
  });

  test('an imported key for the created queue: a warning', () => {
    const stack = newStack();
    const key = kms.Key.fromKeyArn(stack, 'TheirKey', 'arn:aws:kms:eu-west-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab');
    defaultChannel(stack, { encryptionKey: key });
    Annotations.fromStack(stack).hasWarning('/Test/Channel', Match.stringLikeRegexp('The KMS key arn:aws:kms:.* is imported or AWS managed'));
  });

  test('an imported encrypted queue: the warning also names the key policy statement', () => {
    const stack = newStack();
    const queue = sqs.Queue.fromQueueAttributes(stack, 'ImportedDlq', {
      queueArn: 'arn:aws:sqs:eu-west-1:111111111111:parked',
      keyArn: 'arn:aws:kms:eu-west-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab',
    });
    defaultChannel(stack, { deadLetterQueue: queue });
    const annotations = Annotations.fromStack(stack);
    annotations.hasWarning('/Test/Channel', Match.stringLikeRegexp('queue arn:aws:sqs:eu-west-1:111111111111:parked is imported.*kms:GenerateDataKey and kms:Decrypt'));
    annotations.hasWarning('/Test/Channel', Match.stringLikeRegexp('The KMS key arn:aws:kms:.* is imported or AWS managed'));
  });
});

describe('ApiDestinationChannel validation', () => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['rateLimitPerSecond 0', { rateLimitPerSecond: 0 }, /invalid rateLimitPerSecond 0; allowed: an integer from 1 to 300 invocations per second/],
    ['rateLimitPerSecond 301', { rateLimitPerSecond: 301 }, /invalid rateLimitPerSecond 301; allowed: an integer from 1 to 300/],
    ['rateLimitPerSecond 1.5', { rateLimitPerSecond: 1.5 }, /invalid rateLimitPerSecond 1.5; allowed: an integer/],
    ['maxRetryAttempts -1', { maxRetryAttempts: -1 }, /invalid maxRetryAttempts -1; allowed: an integer from 0 to 185/],
    ['maxRetryAttempts 186', { maxRetryAttempts: 186 }, /invalid maxRetryAttempts 186; allowed: an integer from 0 to 185/],
    ['maxEventAge 59 s', { maxEventAge: Duration.seconds(59) }, /invalid maxEventAge 59; allowed: an integer from 60 to 86400 seconds/],
    ['maxEventAge 25 h', { maxEventAge: Duration.hours(25) }, /invalid maxEventAge 90000; allowed: an integer from 60 to 86400 seconds/],
    ['deadLetterRetentionPeriod 15 d', { deadLetterRetentionPeriod: Duration.days(15) }, /invalid deadLetterRetentionPeriod 1296000; allowed: an integer from 60 to 1209600 seconds/],
    ['endpoint http', { endpoint: 'http://crm.example.com' }, /invalid endpoint "http:\/\/crm.example.com"; allowed: an absolute https:\/\/ URL/],
    ['endpoint not a URL', { endpoint: 'crm.example.com/orders' }, /invalid endpoint "crm.example.com\/orders"; allowed: an absolute https:\/\/ URL/],
    ['empty pattern', { eventPattern: {} }, /invalid eventPattern \{\}; allowed: a pattern that constrains at least one field/],
    ['pattern with only empty lists', { eventPattern: { source: [] } }, /invalid eventPattern \{"source":\[\]\}/],
    ['neither authorization nor connection', { authorization: undefined }, /invalid authorization\/connection .*allowed: exactly one of/],
    ['bad idempotency header', { idempotencyKeyHeader: 'Idempotency Key' }, /invalid idempotencyKeyHeader "Idempotency Key"; allowed: an HTTP header name/],
  ];

  test.each(cases)('%s', (_name, overrides, message) => {
    const stack = newStack();
    expect(() => defaultChannel(stack, overrides as any)).toThrow(message);
  });

  test('both authorization and connection', () => {
    const stack = newStack();
    const connection = new events.Connection(stack, 'C', { authorization: events.Authorization.apiKey('k', new secretsmanager.Secret(stack, 'S').secretValue) });
    expect(() => defaultChannel(stack, { connection })).toThrow(/exactly one of `authorization`/);
  });

  test('OAuth token endpoint must be https', () => {
    const stack = newStack();
    const authorization = ChannelAuthorization.oauthClientCredentials({
      authorizationEndpoint: 'http://auth.example.com/token', clientId: 'c', clientSecret: new secretsmanager.Secret(stack, 'S'),
    });
    expect(() => defaultChannel(stack, { authorization })).toThrow(/invalid authorization.authorizationEndpoint "http:\/\/auth.example.com\/token"/);
  });

  test('encryptionKey with a given queue', () => {
    const stack = newStack();
    const key = new kms.Key(stack, 'K');
    expect(() => defaultChannel(stack, { deadLetterQueue: new sqs.Queue(stack, 'Q'), encryptionKey: key }))
      .toThrow(/invalid encryptionKey .*allowed: only with a created dead-letter queue/);
  });

  test('deadLetterQueueRemovalPolicy with a given queue', () => {
    const stack = newStack();
    expect(() => defaultChannel(stack, { deadLetterQueue: new sqs.Queue(stack, 'Q'), deadLetterQueueRemovalPolicy: RemovalPolicy.DESTROY }))
      .toThrow(/invalid deadLetterQueueRemovalPolicy "destroy"; allowed: only with a created dead-letter queue/);
  });

  test('errors name the construct path', () => {
    const stack = newStack();
    expect(() => defaultChannel(stack, { maxRetryAttempts: 999 })).toThrow(/^Test\/Channel: invalid maxRetryAttempts 999/);
  });

  test('unresolved tokens are not validated', () => {
    const stack = newStack();
    expect(() => defaultChannel(stack, {
      rateLimitPerSecond: Token.asNumber({ Ref: 'Rate' }),
      maxRetryAttempts: Token.asNumber({ Ref: 'Retries' }),
      endpoint: Token.asString({ Ref: 'Endpoint' }),
    })).not.toThrow();
  });
});

describe('ApiDestinationChannel cdk-nag (AwsSolutions + Serverless)', () => {
  test('default configuration has no unacknowledged findings', () => {
    const app = new App();
    defaultChannel(new Stack(app, 'Default'));
    const findings = synthNagFindings(app);
    expect(formatFindings(findings)).toBe('');
  });

  test('fullest configuration has no unacknowledged findings', () => {
    const app = new App();
    fullestChannel(new Stack(app, 'Fullest'));
    const findings = synthNagFindings(app);
    expect(formatFindings(findings)).toBe('');
  });

  test('the gate reports a finding that is not acknowledged', () => {
    const app = new App();
    new sqs.Queue(new Stack(app, 'Bare'), 'Plain', { encryption: sqs.QueueEncryption.UNENCRYPTED });
    const rules = synthNagFindings(app).map((f) => f.rule);
    expect(rules).toEqual(expect.arrayContaining(['AwsSolutions-SQS3', 'AwsSolutions-SQS4']));
  });
});

describe('ApiDestinationChannel scale', () => {
  test(`one channel adds ${ApiDestinationChannel.RESOURCES_PER_CHANNEL} resources besides a shared connection`, () => {
    const withChannels = (n: number) => {
      const stack = newStack();
      const connection = defaultChannel(stack).connection;
      for (let i = 1; i < n; i++) defaultChannel(stack, { connection, authorization: undefined }, `Channel${i}`);
      return stack;
    };
    const one = withChannels(1);
    const two = withChannels(2);
    expect(resourceCount(two) - resourceCount(one)).toBe(ApiDestinationChannel.RESOURCES_PER_CHANNEL);
    expect(resourcesByType(two)['AWS::CloudWatch::Alarm'] - resourcesByType(one)['AWS::CloudWatch::Alarm']).toBe(6);
  });

  test('100 channels in one stack fail synth with advice on how to split', () => {
    const app = new App();
    const stack = new Stack(app, 'Crowded');
    for (let i = 0; i < 100; i++) defaultChannel(stack, {}, `Channel${i}`);
    expect(() => app.synth()).toThrow(/Stack 'Crowded' holds \d+ CloudFormation resources, over the limit of 500\. Each ApiDestinationChannel adds about 13 resources, so one stack fits about 36 of them\. Split them across stacks, for example NestedStacks/);
  });

  test('100 channels split over nested stacks of 36 sharing one bus and connection synthesize, each under 500', () => {
    const app = new App();
    const stack = new Stack(app, 'Split');
    const bus = new events.EventBus(stack, 'Bus');
    const secret = new secretsmanager.Secret(stack, 'Secret');
    const connection = new events.Connection(stack, 'Shared', {
      authorization: ChannelAuthorization.apiKey({ headerName: 'x-api-key', secret }).toEventsAuthorization(),
    });
    const nested: NestedStack[] = [];
    for (let i = 0; i < 100; i++) {
      if (i % 36 === 0) nested.push(new NestedStack(stack, `Channels${nested.length + 1}`));
      new ApiDestinationChannel(nested[nested.length - 1], `Channel${i}`, {
        eventBus: bus,
        connection,
        eventPattern: { source: ['shop.orders'], detail: { channel: [`c${i}`] } },
        endpoint: `https://api${i}.example.com/events`,
      });
    }
    const assembly = app.synth();
    const counts = nested.map((n) => resourceCount(n));
    expect(counts.every((c) => c < 500)).toBe(true);
    expect(counts.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(100 * ApiDestinationChannel.RESOURCES_PER_CHANNEL);
    expect(assembly.getStackByName('Split').template.Resources).toBeDefined();
  });
});
