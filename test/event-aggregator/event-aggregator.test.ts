import { App, CfnParameter, Duration, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { defaultAggregator, fullestAggregator, REQUIRED_EVENTS, userQueue } from './fixtures';
import { EventAggregator, EventAggregatorProps } from '../../src';
import { formatFindings, synthNagFindings } from '../support/nag';
import { resourceCount, resourcesByType } from '../support/templates';

function newStack(app = new App()): Stack {
  return new Stack(app, 'Test', { env: { account: '111111111111', region: 'eu-west-1' } });
}

const getAtt = (prefix: string, attr = 'Arn') => ({ 'Fn::GetAtt': [Match.stringLikeRegexp(`^${prefix}`), attr] });
const ref = (prefix: string) => ({ Ref: Match.stringLikeRegexp(`^${prefix}`) });

/** The aggregator function's properties (the one with OUTPUT_BUS_NAME in its environment). */
function aggregatorFunction(template: Template): any {
  return Object.values<any>(template.findResources('AWS::Lambda::Function'))
    .find((f) => f.Properties.Environment?.Variables?.OUTPUT_BUS_NAME !== undefined).Properties;
}

/** The recorder function's properties. */
function recorderFunction(template: Template): any {
  return Object.values<any>(template.findResources('AWS::Lambda::Function'))
    .find((f) => f.Properties.Environment?.Variables?.MAX_PAYLOAD_BYTES !== undefined).Properties;
}

/** Statements of the IAM policy attached to the role whose logical id starts with `rolePrefix`. */
function roleStatements(template: Template, rolePrefix: string): any[] {
  return Object.values<any>(template.findResources('AWS::IAM::Policy'))
    .filter((p) => p.Properties.Roles.some((r: any) => new RegExp(`^${rolePrefix}`).test(r.Ref)))
    .flatMap((p) => p.Properties.PolicyDocument.Statement);
}

/** The rule whose pattern has the given detail-type (first element). */
function ruleWithDetailType(template: Template, detailType: string): any {
  return Object.values<any>(template.findResources('AWS::Events::Rule'))
    .find((r) => r.Properties.EventPattern['detail-type']?.[0] === detailType);
}

/** The rule on the bus whose logical id starts with `busPrefix`. */
function ruleOnBus(template: Template, busPrefix: string): any {
  return Object.values<any>(template.findResources('AWS::Events::Rule'))
    .find((r) => new RegExp(`^${busPrefix}`).test(r.Properties.EventBusName?.Ref ?? ''));
}

const ordersSource = (bus: events.IEventBus) => ({
  eventBus: bus,
  eventPattern: { source: ['shop.orders'] },
  correlationIdPath: '$.detail.orderId',
  eventNamePath: '$.detail-type',
});

describe('EventAggregator defaults', () => {
  const stack = newStack();
  const aggregator = defaultAggregator(stack);
  const template = Template.fromStack(stack);

  test('table: correlationId/eventName keys, on demand, TTL, point-in-time recovery, stream of new images, encrypted, retained', () => {
    template.hasResource('AWS::DynamoDB::Table', {
      Properties: {
        KeySchema: [{ AttributeName: 'correlationId', KeyType: 'HASH' }, { AttributeName: 'eventName', KeyType: 'RANGE' }],
        AttributeDefinitions: [{ AttributeName: 'correlationId', AttributeType: 'S' }, { AttributeName: 'eventName', AttributeType: 'S' }],
        BillingMode: 'PAY_PER_REQUEST',
        TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        StreamSpecification: { StreamViewType: 'NEW_IMAGE' },
        SSESpecification: { SSEEnabled: true },
      },
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
    });
  });

  test('an output bus is created, with the AWS owned key', () => {
    template.resourceCountIs('AWS::Events::EventBus', 1);
    template.hasResourceProperties('AWS::Events::EventBus', { KmsKeyIdentifier: Match.absent() });
    expect(aggregator.aggregateSource).toBe('cdk-event-fabric.aggregator');
    expect(aggregator.requiredEvents).toEqual(REQUIRED_EVENTS);
  });

  test('aggregator: exact environment without a deadline', () => {
    const fn = aggregatorFunction(template);
    expect(fn.Environment.Variables).toEqual({
      TABLE_NAME: { Ref: expect.stringMatching(/^AggregatorTable/) },
      OUTPUT_BUS_NAME: { Ref: expect.stringMatching(/^AggregatorOutputBus/) },
      AGGREGATE_SOURCE: 'cdk-event-fabric.aggregator',
      REQUIRED_EVENTS: '["Account Check","In Stock"]',
      EMIT_ON_EVERY_CHANGE: 'false',
      DEADLINE_SECONDS: '0',
      ITEM_TTL_SECONDS: '604800',
      FAILED_BATCH_BUCKET_NAME: { Ref: expect.stringMatching(/^AggregatorFailedBatchBucket/) },
      MAX_ENTRY_BYTES: '1044480',
      AGGREGATOR_ID: aggregator.node.addr,
      POWERTOOLS_SERVICE_NAME: 'event-aggregator',
      POWERTOOLS_METRICS_NAMESPACE: 'cdk-event-fabric',
      // Added by the generated function class for every Node.js handler.
      AWS_NODEJS_CONNECTION_REUSE_ENABLED: '1',
    });
    expect(fn).toMatchObject({
      MemorySize: 256,
      Timeout: 30,
      Runtime: 'nodejs24.x',
      TracingConfig: { Mode: 'Active' },
      LoggingConfig: { LogGroup: { Ref: expect.stringMatching(/^AggregatorAggregatorFunctionLogs/) } },
      FunctionName: expect.stringMatching(/^Test-Aggregator-[0-9A-F]{8}-aggregator$/),
    });
  });

  test('aggregator: stream source from the start, batches of 100, bisect, 10 retries, partial failures, S3 on failure, INSERT/MODIFY only', () => {
    template.resourceCountIs('AWS::Lambda::EventSourceMapping', 1);
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: getAtt('AggregatorTable', 'StreamArn'),
      FunctionName: ref('AggregatorAggregatorFunction'),
      StartingPosition: 'TRIM_HORIZON',
      BatchSize: 100,
      BisectBatchOnFunctionError: true,
      MaximumRetryAttempts: 10,
      MaximumRecordAgeInSeconds: 21600,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      DestinationConfig: { OnFailure: { Destination: getAtt('AggregatorFailedBatchBucket') } },
      FilterCriteria: { Filters: [{ Pattern: '{"eventName":["INSERT","MODIFY"]}' }] },
    });
  });

  test('aggregator: no asynchronous invoke config without a deadline', () => {
    const configs = Object.values<any>(template.findResources('AWS::Lambda::EventInvokeConfig'));
    expect(configs.map((c) => c.Properties.FunctionName.Ref)).toEqual([expect.stringMatching(/^AggregatorRecorderFunction/)]);
  });

  test('aggregator IAM: Query/GetItem/PutItem/UpdateItem on the table, stream read, PutEvents on the output bus, nothing else', () => {
    const all = roleStatements(template, 'AggregatorAggregatorFunctionRole');
    expect(all.map((s) => s.Action)).toEqual([
      ['logs:CreateLogStream', 'logs:PutLogEvents'],
      ['xray:PutTraceSegments', 'xray:PutTelemetryRecords'],
      // The failed-batch bucket: Lambda writes the batches, the redrive reads, copies and deletes them.
      's3:ListBucket',
      ['s3:PutObject', 's3:GetObject', 's3:DeleteObject'],
      's3:PutObject',
      'dynamodb:ListStreams',
      ['dynamodb:DescribeStream', 'dynamodb:GetRecords', 'dynamodb:GetShardIterator'],
      ['dynamodb:Query', 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem'],
      'events:PutEvents',
    ]);
    expect(all.find((s) => s.Action === 'events:PutEvents').Resource)
      .toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^AggregatorOutputBus/), 'Arn'] });
    expect(JSON.stringify(all)).not.toContain('scheduler:');
    const bucketArn = { 'Fn::GetAtt': [expect.stringMatching(/^AggregatorFailedBatchBucket/), 'Arn'] };
    const objects = (prefix: string) => ({ 'Fn::Join': ['', [bucketArn, `/${prefix}*`]] });
    expect(all.filter((st) => JSON.stringify(st.Action).includes('s3:')).map((st) => st.Resource))
      .toEqual([bucketArn, objects('aws/lambda/'), objects('redriven/')]);
  });

  test('failed-batch bucket: encrypted, TLS only, no public access, retained, request metrics and expiry of its two prefixes', () => {
    template.hasResource('AWS::S3::Bucket', {
      DeletionPolicy: 'Retain',
      Properties: {
        BucketEncryption: { ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
        PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
        MetricsConfigurations: [{ Id: 'FailedBatches', Prefix: 'aws/lambda/' }],
        LifecycleConfiguration: {
          Rules: [
            { Id: 'ExpireFailedBatches', Prefix: 'aws/lambda/', ExpirationInDays: 90, Status: 'Enabled' },
            { Id: 'ExpireRedriven', Prefix: 'redriven/', ExpirationInDays: 30, Status: 'Enabled' },
          ],
        },
      },
    });
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]) },
    });
  });

  test('recorder: environment, async retries 2 with failures to the record DLQ, PutItem only', () => {
    const fn = recorderFunction(template);
    expect(fn.Environment.Variables).toEqual({
      TABLE_NAME: { Ref: expect.stringMatching(/^AggregatorTable/) },
      ITEM_TTL_SECONDS: '604800',
      MAX_PAYLOAD_BYTES: '350000',
      POWERTOOLS_SERVICE_NAME: 'event-aggregator',
      AWS_NODEJS_CONNECTION_REUSE_ENABLED: '1',
    });
    expect(fn).toMatchObject({
      MemorySize: 256,
      Timeout: 30,
      TracingConfig: { Mode: 'Active' },
      LoggingConfig: { LogGroup: { Ref: expect.stringMatching(/^AggregatorRecorderFunctionLogs/) } },
    });
    template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
      FunctionName: ref('AggregatorRecorderFunction'),
      MaximumRetryAttempts: 2,
      DestinationConfig: { OnFailure: { Destination: getAtt('AggregatorRecordDeadLetterQueue') } },
    });
    const tableStatements = roleStatements(template, 'AggregatorRecorderFunctionRole')
      .filter((s) => JSON.stringify(s.Resource).includes('AggregatorTable'));
    expect(tableStatements.map((s) => s.Action)).toEqual(['dynamodb:PutItem']);
  });

  test('functions log to their own log groups, three months, without the managed policy', () => {
    template.resourcePropertiesCountIs('AWS::Logs::LogGroup', { RetentionInDays: 90 }, 2);
    expect(JSON.stringify(template.findResources('AWS::IAM::Role'))).not.toContain('AWSLambdaBasicExecutionRole');
  });

  test('dead-letter queues: SSE-SQS, 14 days, TLS only', () => {
    const queues = template.findResources('AWS::SQS::Queue', { Properties: { MessageRetentionPeriod: 1209600, SqsManagedSseEnabled: true } });
    expect(Object.keys(queues).sort()).toEqual([
      expect.stringMatching(/^AggregatorRecordDeadLetterQueue/),
      expect.stringMatching(/^AggregatorRuleDeadLetterQueue/),
    ]);
    for (const policy of Object.values<any>(template.findResources('AWS::SQS::QueuePolicy'))) {
      expect(policy.Properties.PolicyDocument.Statement).toEqual(expect.arrayContaining([
        expect.objectContaining({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
      ]));
    }
  });

  test('no deadline: no schedule group, schedule role, deadline DLQ or deadline alarm', () => {
    template.resourceCountIs('AWS::Scheduler::ScheduleGroup', 0);
    expect(JSON.stringify(template.findResources('AWS::IAM::Role'))).not.toContain('scheduler.amazonaws.com');
    expect(aggregator.scheduleGroup).toBeUndefined();
    expect(aggregator.scheduleRole).toBeUndefined();
    expect(aggregator.deadlineDeadLetterQueue).toBeUndefined();
    expect(aggregator.deadlineDeadLetterQueueAlarm).toBeUndefined();
    expect(() => aggregator.onIncomplete('Late', new targets.SqsQueue(new sqs.Queue(newStack(), 'Q')))).toThrow(/invalid onIncomplete/);
  });

  test('seven alarms: two DLQ depths, failed batches written and not written, aggregator errors, iterator age, an unmarked aggregate', () => {
    template.resourceCountIs('AWS::CloudWatch::Alarm', 7);
    const alarms = Object.values<any>(template.findResources('AWS::CloudWatch::Alarm')).map((a) => a.Properties);
    for (const alarm of alarms) {
      expect(alarm).toMatchObject({
        EvaluationPeriods: 1, TreatMissingData: 'notBreaching', ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      });
      expect(alarm.AlarmDescription).toContain('Test/Aggregator');
      expect(alarm.AlarmActions).toBeUndefined();
    }
    const depths = alarms.filter((a) => a.MetricName === 'ApproximateNumberOfMessagesVisible');
    expect(depths).toHaveLength(2);
    for (const alarm of depths) expect(alarm).toMatchObject({ Threshold: 1, Statistic: 'Maximum' });
    const fnDimension = [{ Name: 'FunctionName', Value: { Ref: expect.stringMatching(/^AggregatorAggregatorFunction/) } }];
    expect(alarms.find((a) => a.MetricName === 'Errors')).toMatchObject({
      Namespace: 'AWS/Lambda', Statistic: 'Sum', Threshold: 1, Dimensions: fnDimension,
    });
    expect(alarms.find((a) => a.MetricName === 'PutRequests')).toMatchObject({
      Namespace: 'AWS/S3',
      Statistic: 'Sum',
      Threshold: 1,
      Period: 300,
      Dimensions: [
        { Name: 'BucketName', Value: { Ref: expect.stringMatching(/^AggregatorFailedBatchBucket/) } }, { Name: 'FilterId', Value: 'FailedBatches' },
      ],
    });
    expect(alarms.find((a) => a.MetricName === 'DestinationDeliveryFailures')).toMatchObject({
      Namespace: 'AWS/Lambda', Statistic: 'Sum', Threshold: 1, Dimensions: fnDimension,
    });
    expect(alarms.find((a) => a.MetricName === 'UnmarkedAggregates')).toMatchObject({
      Namespace: 'cdk-event-fabric',
      Statistic: 'Sum',
      Threshold: 1,
      Dimensions: [{ Name: 'aggregator', Value: aggregator.node.addr }, { Name: 'service', Value: 'event-aggregator' }],
    });
    expect(alarms.find((a) => a.MetricName === 'IteratorAge')).toMatchObject({
      Namespace: 'AWS/Lambda', Statistic: 'Maximum', Threshold: 300_000, Dimensions: fnDimension,
    });
  });

  test('exposes every resource', () => {
    for (const r of [
      aggregator.outputBus, aggregator.table, aggregator.recorderFunction, aggregator.aggregatorFunction,
      aggregator.recordDeadLetterQueue, aggregator.failedBatchBucket, aggregator.ruleDeadLetterQueue,
      aggregator.recordDeadLetterQueueAlarm, aggregator.failedBatchAlarm, aggregator.failedBatchDeliveryAlarm, aggregator.ruleDeadLetterQueueAlarm,
      aggregator.aggregatorErrorsAlarm, aggregator.iteratorAgeAlarm, aggregator.unmarkedAggregateAlarm,
    ]) {
      expect(r).toBeDefined();
    }
    expect(aggregator.sources).toEqual([]);
    expect(EventAggregator.COMPLETED_DETAIL_TYPE).toBe('Aggregation Completed');
    expect(EventAggregator.INCOMPLETE_DETAIL_TYPE).toBe('Aggregation Incomplete');
    expect(EventAggregator.UPDATED_DETAIL_TYPE).toBe('Aggregation Updated');
    expect(EventAggregator.DEFAULT_AGGREGATE_SOURCE).toBe('cdk-event-fabric.aggregator');
  });

  test('metric helpers: namespace, service and aggregator dimensions (several aggregators stay apart), Sum', () => {
    for (const [metric, name] of [
      [aggregator.metricAggregationsCompleted(), 'AggregationsCompleted'],
      [aggregator.metricAggregationsIncomplete(), 'AggregationsIncomplete'],
      [aggregator.metricAggregationsFailed(), 'AggregationsFailed'],
      [aggregator.metricUnmarkedAggregates(), 'UnmarkedAggregates'],
      [aggregator.metricLateEvents({ period: Duration.minutes(1) }), 'LateEvents'],
    ] as const) {
      expect(metric.metricName).toBe(name);
      expect(metric.namespace).toBe('cdk-event-fabric');
      expect(metric.statistic).toBe('Sum');
      expect(metric.dimensions).toEqual({ service: 'event-aggregator', aggregator: aggregator.node.addr });
    }
    expect(aggregator.metricLateEvents({ period: Duration.minutes(1) }).period.toMinutes()).toBe(1);
  });
});

describe('EventAggregator sources', () => {
  test('a source with an event-name path: rule on its bus to the recorder, input transformer, retries and the record DLQ', () => {
    const stack = newStack();
    const bus = new events.EventBus(stack, 'Orders');
    const aggregator = defaultAggregator(stack);
    const rule = aggregator.addSource('Orders', ordersSource(bus));
    expect(aggregator.sources).toEqual([rule]);
    const template = Template.fromStack(stack);
    const props = ruleOnBus(template, 'Orders').Properties;
    expect(props.EventPattern).toEqual({ source: ['shop.orders'] });
    expect(props.Description).toContain('source Orders');
    expect(props.Targets).toHaveLength(1);
    const target = props.Targets[0];
    expect(target.Arn).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^AggregatorRecorderFunction/), 'Arn'] });
    expect(target.RetryPolicy).toEqual({ MaximumRetryAttempts: 8, MaximumEventAgeInSeconds: 3600 });
    expect(target.DeadLetterConfig).toEqual({ Arn: { 'Fn::GetAtt': [expect.stringMatching(/^AggregatorRecordDeadLetterQueue/), 'Arn'] } });
    expect(target.InputTransformer.InputPathsMap).toEqual({
      'detail-orderId': '$.detail.orderId',
      'detail-type': '$.detail-type',
      'id': '$.id',
      'time': '$.time',
      'detail': '$.detail',
    });
    expect(target.InputTransformer.InputTemplate).toBe(
      '{"correlationId":<detail-orderId>,"eventName":<detail-type>,"eventId":<id>,"time":<time>,"detail":<detail>}');
    template.hasResourceProperties('AWS::Lambda::Permission', {
      Action: 'lambda:InvokeFunction',
      Principal: 'events.amazonaws.com',
      FunctionName: getAtt('AggregatorRecorderFunction'),
      SourceArn: getAtt('AggregatorSourceOrders'),
    });
    template.hasResourceProperties('AWS::SQS::QueuePolicy', {
      Queues: [ref('AggregatorRecordDeadLetterQueue')],
      PolicyDocument: {
        Statement: Match.arrayWith([Match.objectLike({
          Action: 'sqs:SendMessage',
          Principal: { Service: 'events.amazonaws.com' },
          Condition: { ArnEquals: { 'aws:SourceArn': getAtt('AggregatorSourceOrders') } },
        })]),
      },
    });
  });

  test('a source with a constant event name puts it in the template', () => {
    const stack = newStack();
    const bus = new events.EventBus(stack, 'Warehouse');
    defaultAggregator(stack, {
      sources: [{
        id: 'Stock', eventBus: bus, eventPattern: { source: ['shop.warehouse'] }, correlationIdPath: '$.detail.order.id', eventName: 'In Stock',
      }],
    });
    const target = ruleOnBus(Template.fromStack(stack), 'Warehouse').Properties.Targets[0];
    expect(target.InputTransformer.InputPathsMap)
      .toEqual({ 'detail-order-id': '$.detail.order.id', 'id': '$.id', 'time': '$.time', 'detail': '$.detail' });
    expect(target.InputTransformer.InputTemplate).toBe(
      '{"correlationId":<detail-order-id>,"eventName":"In Stock","eventId":<id>,"time":<time>,"detail":<detail>}');
  });

  test('sources from props come first, then addSource, each a rule of its own', () => {
    const stack = newStack();
    const bus = new events.EventBus(stack, 'Orders');
    const aggregator = defaultAggregator(stack, { sources: [{ id: 'A', ...ordersSource(bus) }] });
    aggregator.addSource('B', { ...ordersSource(bus), eventPattern: { source: ['shop.payments'] }, description: 'Payments' });
    expect(aggregator.sources.map((r) => r.node.id)).toEqual(['SourceA', 'SourceB']);
    aggregator.sources.pop();
    expect(aggregator.sources).toHaveLength(2); // a copy
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::Events::Rule', 2);
    template.hasResourceProperties('AWS::Events::Rule', { Description: 'Payments', EventPattern: { source: ['shop.payments'] } });
  });
});

describe('EventAggregator completion rules', () => {
  test('onComplete: the aggregator source and the Completed detail-type (only complete sets are emitted as Completed)', () => {
    const stack = newStack();
    const aggregator = defaultAggregator(stack);
    const queue = userQueue(stack, 'Invoices');
    const rule = aggregator.onComplete('Invoice', new targets.SqsQueue(queue));
    expect(rule.node.id).toBe('Invoice');
    const template = Template.fromStack(stack);
    const props = ruleWithDetailType(template, 'Aggregation Completed').Properties;
    expect(props.EventBusName).toEqual({ Ref: expect.stringMatching(/^AggregatorOutputBus/) });
    expect(props.EventPattern).toEqual({ 'source': ['cdk-event-fabric.aggregator'], 'detail-type': ['Aggregation Completed'] });
    const target = props.Targets[0];
    expect(target.Arn).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^Invoices/), 'Arn'] });
    expect(target.RetryPolicy).toEqual({ MaximumRetryAttempts: 185, MaximumEventAgeInSeconds: 86400 });
    expect(target.DeadLetterConfig).toEqual({ Arn: { 'Fn::GetAtt': [expect.stringMatching(/^AggregatorRuleDeadLetterQueue/), 'Arn'] } });
    // The whole aggregated event is delivered.
    expect(target.Input).toBeUndefined();
    expect(target.InputPath).toBeUndefined();
    expect(target.InputTransformer).toBeUndefined();
    template.hasResourceProperties('AWS::SQS::QueuePolicy', {
      Queues: [ref('AggregatorRuleDeadLetterQueue')],
      PolicyDocument: {
        Statement: Match.arrayWith([Match.objectLike({
          Action: 'sqs:SendMessage',
          Condition: { ArnEquals: { 'aws:SourceArn': getAtt('AggregatorInvoice') } },
        })]),
      },
    });
  });

  test('a target with its own retry policy and DLQ keeps them, and the rule DLQ is not opened to its rule', () => {
    const stack = newStack();
    const aggregator = defaultAggregator(stack);
    const ownDlq = new sqs.Queue(stack, 'OwnDlq');
    aggregator.onComplete('Invoice', new targets.SqsQueue(userQueue(stack, 'Invoices'), {
      deadLetterQueue: ownDlq, retryAttempts: 3, maxEventAge: Duration.minutes(5),
    }));
    const template = Template.fromStack(stack);
    const target = ruleWithDetailType(template, 'Aggregation Completed').Properties.Targets[0];
    expect(target.DeadLetterConfig).toEqual({ Arn: { 'Fn::GetAtt': [expect.stringMatching(/^OwnDlq/), 'Arn'] } });
    expect(target.RetryPolicy).toEqual({ MaximumRetryAttempts: 3, MaximumEventAgeInSeconds: 300 });
    const ruleDlqPolicy = Object.values<any>(template.findResources('AWS::SQS::QueuePolicy'))
      .find((p) => /^AggregatorRuleDeadLetterQueue/.test(p.Properties.Queues[0].Ref));
    expect(ruleDlqPolicy.Properties.PolicyDocument.Statement.filter((s: any) => s.Action === 'sqs:SendMessage')).toHaveLength(0);
  });

  test('onIncomplete (with a deadline): the aggregator source and the Incomplete detail-type', () => {
    const stack = newStack();
    const aggregator = defaultAggregator(stack, { deadline: Duration.minutes(10), aggregateSource: 'shop.orders-aggregate' });
    aggregator.onIncomplete('Escalate', new targets.SqsQueue(userQueue(stack, 'Escalations')));
    const props = ruleWithDetailType(Template.fromStack(stack), 'Aggregation Incomplete').Properties;
    expect(props.EventPattern).toEqual({ 'source': ['shop.orders-aggregate'], 'detail-type': ['Aggregation Incomplete'] });
    expect(props.Targets[0].RetryPolicy).toEqual({ MaximumRetryAttempts: 185, MaximumEventAgeInSeconds: 86400 });
    expect(props.Targets[0].DeadLetterConfig).toBeDefined();
  });

  test('an existing output bus is used, and none is created', () => {
    const stack = newStack();
    const bus = events.EventBus.fromEventBusName(stack, 'Shared', 'shared-bus');
    const aggregator = defaultAggregator(stack, { outputBus: bus });
    aggregator.onComplete('Invoice', new targets.SqsQueue(userQueue(stack, 'Invoices')));
    expect(aggregator.outputBus).toBe(bus);
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::Events::EventBus', 0);
    expect(ruleWithDetailType(template, 'Aggregation Completed').Properties.EventBusName).toBe('shared-bus');
    expect(aggregatorFunction(template).Environment.Variables.OUTPUT_BUS_NAME).toBe('shared-bus');
  });
});

describe('EventAggregator grantRedriveFailedBatches', () => {
  test('invoke the aggregator function by its own ARN only, and the grantee stays nag-clean', () => {
    const app = new App();
    const stack = newStack(app);
    const aggregator = defaultAggregator(stack);
    const operator = new iam.Role(stack, 'Operator', { assumedBy: new iam.AccountRootPrincipal() });
    expect(aggregator.grantRedriveFailedBatches(operator).success).toBe(true);
    expect(roleStatements(Template.fromStack(stack), 'Operator')).toEqual([{
      Action: 'lambda:InvokeFunction',
      Effect: 'Allow',
      Resource: { 'Fn::GetAtt': [expect.stringMatching(/^AggregatorAggregatorFunction/), 'Arn'] },
    }]);
    expect(formatFindings(synthNagFindings(app).filter((f) => f.path.includes('/Operator/')))).toBe('');
  });
});

describe('EventAggregator grantRecord', () => {
  test('PutItem and UpdateItem on the table, and nothing on a key without one', () => {
    const stack = newStack();
    const aggregator = defaultAggregator(stack);
    const producer = new iam.Role(stack, 'Producer', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
    const grant = aggregator.grantRecord(producer);
    expect(grant.success).toBe(true);
    expect(roleStatements(Template.fromStack(stack), 'Producer')).toEqual([{
      Action: ['dynamodb:PutItem', 'dynamodb:UpdateItem'],
      Effect: 'Allow',
      Resource: [{ 'Fn::GetAtt': [expect.stringMatching(/^AggregatorTable/), 'Arn'] }],
    }]);
  });

  test('with a customer key, encrypt and decrypt on that key too', () => {
    const stack = newStack();
    const key = new kms.Key(stack, 'Key');
    const aggregator = defaultAggregator(stack, { encryptionKey: key });
    const producer = new iam.Role(stack, 'Producer', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
    aggregator.grantRecord(producer);
    const all = roleStatements(Template.fromStack(stack), 'Producer');
    expect(all).toHaveLength(2);
    expect(all[0].Action).toEqual(['dynamodb:PutItem', 'dynamodb:UpdateItem']);
    expect(all[1]).toMatchObject({
      Action: expect.arrayContaining(['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey*']),
      Resource: { 'Fn::GetAtt': [expect.stringMatching(/^Key/), 'Arn'] },
    });
  });
});

describe('EventAggregator deadline', () => {
  const app = new App();
  const stack = newStack(app);
  const aggregator = defaultAggregator(stack, { deadline: Duration.minutes(10) });
  const template = Template.fromStack(stack);
  const functionName = aggregatorFunction(template).FunctionName;
  const functionArn = { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, `:lambda:eu-west-1:111111111111:function:${functionName}`]] };

  test('synth succeeds: the aggregator\'s own ARN is built from its name, not referenced (no cycle)', () => {
    expect(() => app.synth()).not.toThrow();
    expect(functionName).toMatch(/^Test-Aggregator-[0-9A-F]{8}-aggregator$/);
  });

  test('a schedule group, deleted with the stack (its schedules only matter while the aggregator lives)', () => {
    template.resourceCountIs('AWS::Scheduler::ScheduleGroup', 1);
    template.hasResource('AWS::Scheduler::ScheduleGroup', { DeletionPolicy: 'Delete' });
    expect(aggregator.scheduleGroup).toBeDefined();
  });

  test('aggregator environment adds the schedule group, its own ARN, the role and the DLQ', () => {
    const env = aggregatorFunction(template).Environment.Variables;
    const groupName = Object.values<any>(template.findResources('AWS::Scheduler::ScheduleGroup'))[0].Properties.Name;
    expect(env).toMatchObject({
      DEADLINE_SECONDS: '600',
      SCHEDULE_GROUP_NAME: groupName,
      SCHEDULE_TARGET_ARN: functionArn,
      SCHEDULE_ROLE_ARN: { 'Fn::GetAtt': [expect.stringMatching(/^AggregatorScheduleRole/), 'Arn'] },
      SCHEDULE_DLQ_ARN: { 'Fn::GetAtt': [expect.stringMatching(/^AggregatorDeadlineDeadLetterQueue/), 'Arn'] },
    });
    expect(Object.keys(env)).toHaveLength(17);
  });

  test('schedule role: assumed by Scheduler for this account and group only; invokes the aggregator, writes the deadline DLQ', () => {
    template.hasResourceProperties('AWS::IAM::Role', {
      AssumeRolePolicyDocument: {
        Statement: [{
          Action: 'sts:AssumeRole',
          Effect: 'Allow',
          Principal: { Service: 'scheduler.amazonaws.com' },
          Condition: {
            StringEquals: { 'aws:SourceAccount': '111111111111' },
            ArnLike: { 'aws:SourceArn': getAtt('AggregatorScheduleGroup') },
          },
        }],
      },
    });
    const all = roleStatements(template, 'AggregatorScheduleRole');
    expect(all).toEqual([
      { Action: 'lambda:InvokeFunction', Effect: 'Allow', Resource: functionArn },
      {
        Action: ['sqs:SendMessage', 'sqs:GetQueueAttributes', 'sqs:GetQueueUrl'],
        Effect: 'Allow',
        Resource: { 'Fn::GetAtt': [expect.stringMatching(/^AggregatorDeadlineDeadLetterQueue/), 'Arn'] },
      },
    ]);
  });

  test('aggregator may create and delete schedules of its group only, and pass the schedule role to Scheduler only', () => {
    const groupName = Object.values<any>(template.findResources('AWS::Scheduler::ScheduleGroup'))[0].Properties.Name;
    const all = roleStatements(template, 'AggregatorAggregatorFunctionRole');
    expect(all.find((s) => JSON.stringify(s.Action).includes('scheduler:'))).toEqual({
      Action: ['scheduler:CreateSchedule', 'scheduler:DeleteSchedule'],
      Effect: 'Allow',
      Resource: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, `:scheduler:eu-west-1:111111111111:schedule/${groupName}/*`]] },
    });
    expect(all.find((s) => s.Action === 'iam:PassRole')).toEqual({
      Action: 'iam:PassRole',
      Effect: 'Allow',
      Resource: { 'Fn::GetAtt': [expect.stringMatching(/^AggregatorScheduleRole/), 'Arn'] },
      Condition: { StringEquals: { 'iam:PassedToService': 'scheduler.amazonaws.com' } },
    });
  });

  test('deadline invocations that fail after 2 Lambda retries go to the deadline DLQ, which has an alarm', () => {
    template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
      FunctionName: ref('AggregatorAggregatorFunction'),
      MaximumRetryAttempts: 2,
      DestinationConfig: { OnFailure: { Destination: getAtt('AggregatorDeadlineDeadLetterQueue') } },
    });
    template.resourceCountIs('AWS::CloudWatch::Alarm', 8);
    expect(aggregator.deadlineDeadLetterQueueAlarm).toBeDefined();
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Dimensions: [{ Name: 'QueueName', Value: getAtt('AggregatorDeadlineDeadLetterQueue', 'QueueName') }],
    });
  });

  test('a deadline adds 7 resources', () => {
    expect(resourceCount(stack)).toBe(EventAggregator.RESOURCES_PER_AGGREGATOR + 7);
  });
});

describe('EventAggregator fullest configuration', () => {
  const stack = newStack();
  const aggregator = fullestAggregator(stack);
  const template = Template.fromStack(stack);
  const key = getAtt('AggregatorKey');

  test('the customer key encrypts the table and the queues', () => {
    template.hasResourceProperties('AWS::DynamoDB::Table', { SSESpecification: { SSEEnabled: true, SSEType: 'KMS', KMSMasterKeyId: key } });
    // The aggregator's three queues and the fixture's three target queues; the failed-batch bucket.
    template.resourcePropertiesCountIs('AWS::SQS::Queue', { KmsMasterKeyId: key }, 6);
    template.hasResourceProperties('AWS::S3::Bucket', {
      BucketEncryption: { ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms', KMSMasterKeyID: key }, BucketKeyEnabled: true }] },
    });
  });

  test('the key policy lets EventBridge write to the encrypted queues; the functions may use the key', () => {
    template.hasResourceProperties('AWS::KMS::Key', {
      KeyPolicy: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Action: ['kms:GenerateDataKey', 'kms:Decrypt'],
            Principal: { Service: 'events.amazonaws.com' },
            Condition: { StringEquals: { 'aws:SourceAccount': Match.anyValue() } },
          }),
        ]),
      },
    });
    for (const role of ['FullAggregatorRecorderFunctionRole', 'FullAggregatorAggregatorFunctionRole', 'FullAggregatorScheduleRole']) {
      const keyStatements = roleStatements(template, role).filter((s) => JSON.stringify(s.Resource).includes('AggregatorKey'));
      expect(keyStatements.length).toBeGreaterThan(0);
    }
  });

  test('every prop reaches the template', () => {
    const env = aggregatorFunction(template).Environment.Variables;
    expect(env).toMatchObject({
      OUTPUT_BUS_NAME: { Ref: expect.stringMatching(/^OutputBus/) },
      AGGREGATE_SOURCE: 'shop.order-aggregator',
      REQUIREMENTS: JSON.stringify([
        { label: 'Account Check', anyOf: ['Account Check'], count: 1, failOnMismatch: true, condition: { status: ['APPROVED'] } },
        { label: 'In Stock', anyOf: ['In Stock'], count: 1, failOnMismatch: false },
        { label: 'Payment', anyOf: ['Payment Captured', 'Invoice Waived'], count: 1, failOnMismatch: false },
      ]),
      NEWEST_REPLACES: 'true',
      EMIT_ON_EVERY_CHANGE: 'true',
      DEADLINE_SECONDS: '900',
      ITEM_TTL_SECONDS: '172800',
    });
    expect(recorderFunction(template).Environment.Variables).toMatchObject({ ITEM_TTL_SECONDS: '172800', MAX_PAYLOAD_BYTES: '100000' });
    template.hasResource('AWS::DynamoDB::Table', { DeletionPolicy: 'Delete' });
    // The user's three buses; the aggregator creates none.
    template.resourceCountIs('AWS::Events::EventBus', 3);
    expect(ruleOnBus(template, 'OrdersBus').Properties.Description).toBe('Order checks, recorded');
    expect(ruleOnBus(template, 'WarehouseBus').Properties.Targets[0].InputTransformer.InputTemplate).toContain('"eventName":"In Stock"');
    expect(aggregator.sources.map((r) => r.node.id)).toEqual(['SourceOrders', 'SourceWarehouse']);
    const completed = ruleWithDetailType(template, 'Aggregation Completed').Properties;
    expect(completed.EventBusName).toEqual({ Ref: expect.stringMatching(/^OutputBus/) });
    expect(completed.EventPattern).toEqual({ 'source': ['shop.order-aggregator'], 'detail-type': ['Aggregation Completed'] });
    expect(ruleWithDetailType(template, 'Aggregation Incomplete').Properties.EventPattern.source).toEqual(['shop.order-aggregator']);
    expect(ruleWithDetailType(template, 'Aggregation Failed').Properties.EventPattern).toEqual({
      'source': ['shop.order-aggregator'], 'detail-type': ['Aggregation Failed'],
    });
    expect(aggregator.requiredEvents).toEqual(['Account Check', 'In Stock', 'Payment Captured', 'Invoice Waived']);
    expect(aggregator.requirements.map((r) => r.label)).toEqual(['Account Check', 'In Stock', 'Payment']);
  });

  test('every alarm notifies the SNS topic', () => {
    const alarms = Object.values<any>(template.findResources('AWS::CloudWatch::Alarm'));
    expect(alarms).toHaveLength(8);
    for (const alarm of alarms) {
      expect(alarm.Properties.AlarmActions).toEqual([{ Ref: expect.stringMatching(/^Alarms/) }]);
    }
  });

  test('a created output bus is encrypted with the key', () => {
    const other = newStack();
    const otherKey = new kms.Key(other, 'Key');
    defaultAggregator(other, { encryptionKey: otherKey });
    Template.fromStack(other).hasResourceProperties('AWS::Events::EventBus', { KmsKeyIdentifier: getAtt('Key') });
  });
});

describe('EventAggregator validation', () => {
  const bus = (stack: Stack) => new events.EventBus(stack, 'SourceBus');
  const cases: [string, Partial<EventAggregatorProps> | ((stack: Stack) => Partial<EventAggregatorProps>), RegExp][] = [
    ['requiredEvents empty', { requiredEvents: [] }, /invalid requiredEvents \[\]; allowed: from 1 to 20 event names/],
    ['requiredEvents too many', { requiredEvents: Array.from({ length: 21 }, (_, i) => `E${i}`) },
      /invalid requiredEvents \["E0",.*"E20"\]; allowed: from 1 to 20 event names/],
    ['requiredEvents duplicate', { requiredEvents: ['A', 'B', 'A'] },
      /invalid requiredEvents \["A","B","A"\]; allowed: distinct names \("A" is given twice\)/],
    ['requiredEvents reserved', { requiredEvents: ['A', '#x'] },
      /invalid requiredEvents \["A","#x"\]; allowed: non-empty event names of at most 255 characters, without control characters, not starting with "#" \(reserved\)/],
    ['requiredEvents blank', { requiredEvents: [' '] }, /invalid requiredEvents \[" "\]; allowed: non-empty event names/],
    ['requiredEvents too long', { requiredEvents: ['x'.repeat(256)] },
      /invalid requiredEvents \["x+"\]; allowed: non-empty event names of at most 255/],
    ['aggregateSource aws.', { aggregateSource: 'aws.orders' },
      /invalid aggregateSource "aws.orders"; allowed: a non-empty source of at most 256 characters, not starting with "aws."/],
    ['deadline 59 s', { deadline: Duration.seconds(59) }, /invalid deadline 59; allowed: a whole number of seconds, from 60 to 31536000/],
    ['deadline 366 days', { deadline: Duration.days(366) }, /invalid deadline 31622400; allowed: a whole number of seconds, from 60 to 31536000/],
    ['deadline fractional', { deadline: Duration.millis(90_500) }, /invalid deadline 90.5; allowed: a whole number of seconds/],
    ['itemTtl under an hour', { itemTtl: Duration.minutes(59) }, /invalid itemTtl 3540; allowed: a whole number of seconds, at least 3600/],
    ['itemTtl fractional', { itemTtl: Duration.millis(3_600_500) }, /invalid itemTtl 3600.5; allowed: a whole number of seconds, at least 3600/],
    ['itemTtl equal to the deadline', { deadline: Duration.hours(2), itemTtl: Duration.hours(2) },
      /invalid itemTtl 7200; allowed: more seconds than the deadline \(7200 seconds\)/],
    ['default itemTtl under the deadline', { deadline: Duration.days(8) },
      /invalid itemTtl 604800; allowed: more seconds than the deadline \(691200 seconds\).*7 days by default/],
    ['maxPayloadBytes 1023', { maxPayloadBytes: 1023 }, /invalid maxPayloadBytes 1023; allowed: an integer from 1024 to 390000 bytes/],
    ['maxPayloadBytes 390001', { maxPayloadBytes: 390_001 }, /invalid maxPayloadBytes 390001; allowed: an integer from 1024 to 390000 bytes/],
    ['source with both event name and path', (s) => ({ sources: [{ id: 'Both', ...ordersSource(bus(s)), eventName: 'In Stock' }] }),
      /invalid event name of source "Both" \{"eventName":"In Stock","eventNamePath":"\$.detail-type"\}; allowed: exactly one of eventName/],
    ['source with neither event name nor path',
      (s) => ({ sources: [{ id: 'None', eventBus: bus(s), eventPattern: { source: ['a'] }, correlationIdPath: '$.detail.id' }] }),
      /invalid event name of source "None" \{\}; allowed: exactly one of eventName \(a constant name\) and eventNamePath/],
    ['source with a bad correlation id path', (s) => ({ sources: [{ id: 'Bad', ...ordersSource(bus(s)), correlationIdPath: 'detail.orderId' }] }),
      /invalid correlationIdPath of source "Bad" "detail.orderId"; allowed: an EventBridge JSON path in dot notation starting with "\$."/],
    ['source with a bad event name path', (s) => ({ sources: [{ id: 'Bad', ...ordersSource(bus(s)), eventNamePath: '$.detail type' }] }),
      /invalid eventNamePath of source "Bad" "\$.detail type"; allowed: an EventBridge JSON path/],
    ['source with a reserved constant name',
      (s) => ({
        sources: [{ id: 'Res', eventBus: bus(s), eventPattern: { source: ['a'] }, correlationIdPath: '$.detail.id', eventName: '#aggregate' }],
      }),
      /invalid eventName of source "Res" "#aggregate"; allowed: non-empty event names of at most 255 characters, without control characters, not starting with "#"/],
    ['source with an empty pattern', (s) => ({ sources: [{ id: 'Empty', ...ordersSource(bus(s)), eventPattern: {} }] }),
      /invalid eventPattern of source "Empty" \{\}; allowed: a pattern that constrains at least one field/],
    ['duplicate source id', (s) => {
      const sourceBus = bus(s);
      return { sources: [{ id: 'A', ...ordersSource(sourceBus) }, { id: 'A', ...ordersSource(sourceBus) }] };
    },
    /invalid source id "A"; allowed: an id not used by another source of this aggregator/],
  ];

  test.each(cases)('%s', (_name, overrides, message) => {
    const stack = newStack();
    const props = typeof overrides === 'function' ? overrides(stack) : overrides;
    expect(() => defaultAggregator(stack, props)).toThrow(message);
  });

  test.each([
    [4095, /invalid maxAggregateBytes 4095; allowed: an integer from 4096 to 1048576 bytes/],
    [1_048_577, /invalid maxAggregateBytes 1048577; allowed: an integer from 4096 to 1048576 bytes/],
  ])('maxAggregateBytes %d', (value, message) => {
    expect(() => defaultAggregator(newStack(), { maxAggregateBytes: value })).toThrow(message);
  });

  test('requiredEvents whose JSON would not fit the aggregator\'s environment (Lambda: 4 KB for all variables)', () => {
    const names = Array.from({ length: 20 }, (_, i) => `${i}`.padEnd(255, 'n'));
    expect(() => defaultAggregator(newStack(), { requiredEvents: names })).toThrow(
      /invalid requiredEvents .*; allowed: rules whose JSON fits 2048 bytes of the aggregator's environment .*these need 5\d{3}/);
  });

  test('errors name the construct path', () => {
    expect(() => defaultAggregator(newStack(), { maxPayloadBytes: 1 })).toThrow(/^Test\/Aggregator: invalid maxPayloadBytes 1/);
  });

  test('onIncomplete without a deadline is refused with the way out', () => {
    const stack = newStack();
    const aggregator = defaultAggregator(stack);
    expect(() => aggregator.onIncomplete('Late', new targets.SqsQueue(userQueue(stack, 'Late'))))
      .toThrow(/invalid onIncomplete "Late"; allowed: only on an aggregator with a deadline \(set the deadline prop\)/);
  });

  test('addSource rejects an id already used', () => {
    const stack = newStack();
    const aggregator = defaultAggregator(stack, { sources: [{ id: 'A', ...ordersSource(new events.EventBus(stack, 'Bus')) }] });
    expect(() => aggregator.addSource('A', ordersSource(aggregator.outputBus))).toThrow(/invalid source id "A"/);
  });

  test('required event names and requirements must be literal: the aggregator compares them at run time', () => {
    const stack = newStack();
    const name = new CfnParameter(stack, 'Name').valueAsString;
    expect(() => defaultAggregator(stack, { requiredEvents: ['A', name] })).toThrow(/invalid requiredEvents .*allowed: literal names, not tokens/);
    expect(() => defaultAggregator(stack, { requiredEvents: undefined, requirements: [{ anyOf: ['A'], condition: { status: [name] } }] }, 'Second'))
      .toThrow(/invalid requirements\[0\] .*allowed: literal names, labels and conditions, not tokens/);
  });

  const requirementCases: [string, Partial<EventAggregatorProps>, RegExp][] = [
    ['both requiredEvents and requirements', { requirements: [{ anyOf: ['A'] }] },
      /invalid requiredEvents\/requirements \["Account Check","In Stock"\]; allowed: exactly one of requiredEvents .* and requirements/],
    ['neither', { requiredEvents: undefined }, /invalid requiredEvents\/requirements null; allowed: exactly one of/],
    ['no requirement', { requiredEvents: undefined, requirements: [] }, /invalid requirements \[\]; allowed: from 1 to 20 requirements/],
    ['an empty any-of group', { requiredEvents: undefined, requirements: [{ anyOf: [] }] },
      /invalid requirements\[0\].anyOf \[\]; allowed: from 1 to 10 event names/],
    ['a name in two requirements', { requiredEvents: undefined, requirements: [{ anyOf: ['A', 'B'] }, { anyOf: ['B'] }] },
      /invalid requirements\[1\].anyOf \["B"\]; allowed: names that belong to one requirement \("B" is in two\)/],
    ['a count of 0', { requiredEvents: undefined, requirements: [{ anyOf: ['A'], count: 0 }] },
      /invalid requirements\[0\].count 0; allowed: an integer from 1 to 100 events/],
    ['a condition with an unsupported filter', { requiredEvents: undefined, requirements: [{ anyOf: ['A'], condition: { s: [{ wildcard: 'x*' }] } }] },
      /invalid requirements\[0\].condition \{"s":\[\{"wildcard":"x\*"\}\]\}; allowed: an EventBridge-style pattern .*; here condition.s uses the filter "wildcard"/],
    ['a condition that is not a pattern', { requiredEvents: undefined, requirements: [{ anyOf: ['A'], condition: { status: 'APPROVED' } }] },
      /here condition.status must be an object/],
    ['failOnMismatch without a condition', { requiredEvents: undefined, requirements: [{ anyOf: ['A'], failOnMismatch: true }] },
      /invalid requirements\[0\].failOnMismatch true; allowed: only with a condition/],
    ['two requirements with one label', { requiredEvents: undefined, requirements: [{ anyOf: ['A'], label: 'X' }, { anyOf: ['B'], label: 'X' }] },
      /invalid requirements\[1\].label "X"; allowed: a non-empty label of at most 255 characters, distinct among the requirements/],
    ['a control character in a name', { requiredEvents: undefined, requirements: [{ anyOf: ['A\u001fB'] }] },
      /allowed: non-empty event names of at most 255 characters, without control characters/],
  ];
  test.each(requirementCases)('requirements: %s', (_name, props, message) => {
    expect(() => defaultAggregator(newStack(), props)).toThrow(message);
  });

  test('onFailed needs a requirement that can fail the set', () => {
    const aggregator = defaultAggregator(newStack());
    expect(() => aggregator.onFailed('X', new targets.SqsQueue(userQueue(Stack.of(aggregator), 'Q'))))
      .toThrow(/invalid onFailed "X"; allowed: only on an aggregator with a requirement that has a condition and failOnMismatch/);
  });

  test('unresolved tokens are not validated, and reach the environment', () => {
    const stack = newStack();
    const num = (id: string) => new CfnParameter(stack, id, { type: 'Number' }).valueAsNumber;
    const text = (id: string) => new CfnParameter(stack, id).valueAsString;
    expect(() => {
      const aggregator = defaultAggregator(stack, {
        aggregateSource: text('Source'),
        deadline: Duration.seconds(num('Deadline')),
        itemTtl: Duration.seconds(num('Ttl')),
        maxPayloadBytes: num('Payload'),
      });
      aggregator.addSource('Tokens', {
        eventBus: aggregator.outputBus,
        eventPattern: { source: ['a'] },
        correlationIdPath: text('CorrelationPath'),
        eventName: text('EventName'),
      });
    }).not.toThrow();
    const template = Template.fromStack(stack);
    expect(aggregatorFunction(template).Environment.Variables).toMatchObject({
      AGGREGATE_SOURCE: { Ref: 'Source' },
      DEADLINE_SECONDS: { Ref: 'Deadline' },
      ITEM_TTL_SECONDS: { Ref: 'Ttl' },
    });
    expect(recorderFunction(template).Environment.Variables.MAX_PAYLOAD_BYTES).toEqual({ Ref: 'Payload' });
  });
});

describe('EventAggregator cdk-nag (AwsSolutions + Serverless)', () => {
  test('default configuration has no unacknowledged findings', () => {
    const app = new App();
    defaultAggregator(newStack(app));
    expect(formatFindings(synthNagFindings(app))).toBe('');
  });

  test('fullest configuration has no unacknowledged findings', () => {
    const app = new App();
    fullestAggregator(newStack(app));
    expect(formatFindings(synthNagFindings(app))).toBe('');
  });

  test('an environment-agnostic stack with a deadline has no unacknowledged findings either', () => {
    const app = new App();
    defaultAggregator(new Stack(app, 'Agnostic'), { deadline: Duration.hours(1) });
    expect(formatFindings(synthNagFindings(app))).toBe('');
  });
});

describe('EventAggregator scale', () => {
  test(`one aggregator adds ${EventAggregator.RESOURCES_PER_AGGREGATOR} resources in the default configuration`, () => {
    const one = newStack();
    defaultAggregator(one);
    expect(resourceCount(one)).toBe(EventAggregator.RESOURCES_PER_AGGREGATOR);
    const two = newStack();
    defaultAggregator(two, {}, 'A');
    defaultAggregator(two, {}, 'B');
    expect(resourceCount(two)).toBe(2 * EventAggregator.RESOURCES_PER_AGGREGATOR);
    expect(resourcesByType(one)).toEqual({
      'AWS::Events::EventBus': 1,
      'AWS::SQS::Queue': 2,
      'AWS::SQS::QueuePolicy': 2,
      'AWS::S3::Bucket': 1,
      'AWS::S3::BucketPolicy': 1,
      'AWS::DynamoDB::Table': 1,
      'AWS::Logs::LogGroup': 2,
      'AWS::IAM::Role': 2,
      'AWS::IAM::Policy': 2,
      'AWS::Lambda::Function': 2,
      'AWS::Lambda::EventInvokeConfig': 1,
      'AWS::Lambda::EventSourceMapping': 1,
      'AWS::CloudWatch::Alarm': 7,
    });
  });

  test('a source adds a rule and a Lambda permission; an onComplete rule adds a rule', () => {
    const stack = newStack();
    const aggregator = defaultAggregator(stack);
    aggregator.addSource('Orders', ordersSource(aggregator.outputBus));
    aggregator.onComplete('Done', new targets.EventBus(aggregator.outputBus));
    // The EventBus target adds a role and its policy.
    expect(resourceCount(stack)).toBe(EventAggregator.RESOURCES_PER_AGGREGATOR + 2 + 3);
  });

  test('too many aggregators in one stack fail synth with advice on how to split', () => {
    const app = new App();
    const stack = newStack(app);
    for (let i = 0; i < 22; i++) defaultAggregator(stack, {}, `Aggregator${i}`);
    expect(() => app.synth()).toThrow(
      new RegExp(`Stack 'Test' holds \\d+ CloudFormation resources, over the limit of 500\\. `
        + `Each EventAggregator adds about ${EventAggregator.RESOURCES_PER_AGGREGATOR} resources`),
    );
  });
});

describe('EventAggregator rules size (found by review)', () => {
  test('requiredEvents whose JSON is over the limit in UTF-8 bytes, though not in characters, are refused at synth', () => {
    // 20 names of 90 CJK characters: 1,861 characters of JSON, 5,461 bytes.
    const names = Array.from({ length: 20 }, (_, i) => `${String.fromCharCode(0x4e00 + i)}${'注'.repeat(89)}`);
    const json = JSON.stringify(names);
    expect({ chars: json.length, bytes: Buffer.byteLength(json, 'utf8') }).toEqual({ chars: 1861, bytes: 5461 });
    expect(() => defaultAggregator(newStack(), { requiredEvents: names })).toThrow(/allowed: rules whose JSON fits 2048 bytes .*these need 5461/);
  });
});
