import { App, CfnParameter, Duration, Size, Stack, Token } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { defaultIngest, fullestIngest, userBus } from './fixtures';
import { TieredEventIngest } from '../../src';
import { formatFindings, synthNagFindings } from '../support/nag';
import { resourceCount, resourcesByType } from '../support/templates';

function newStack(): Stack {
  return new Stack(new App(), 'Test', { env: { account: '111111111111', region: 'eu-west-1' } });
}

const getAtt = (prefix: string) => ({ 'Fn::GetAtt': [Match.stringLikeRegexp(`^${prefix}`), 'Arn'] });

/** The rule whose pattern has the given source (first element). */
function ruleWithSource(template: Template, source: string): any {
  return Object.values<any>(template.findResources('AWS::Events::Rule'))
    .find((r) => JSON.stringify(r.Properties.EventPattern.source) === JSON.stringify([source]));
}

/** The IAM policy statements attached to the role whose logical id starts with `rolePrefix`. */
function roleStatements(template: Template, rolePrefix: string): any[] {
  return Object.values<any>(template.findResources('AWS::IAM::Policy'))
    .filter((p) => p.Properties.Roles.some((r: any) => typeof r.Ref === 'string' && r.Ref.startsWith(rolePrefix)))
    .flatMap((p) => p.Properties.PolicyDocument.Statement);
}

/** Every IAM policy statement of the template. */
function statements(template: Template): any[] {
  return Object.values<any>(template.findResources('AWS::IAM::Policy')).flatMap((p) => p.Properties.PolicyDocument.Statement);
}

describe('TieredEventIngest defaults', () => {
  const stack = newStack();
  const ingest = defaultIngest(stack);
  const template = Template.fromStack(stack);

  test('three buses, and an archive of every curated event kept 30 days', () => {
    template.resourceCountIs('AWS::Events::EventBus', 3);
    template.hasResourceProperties('AWS::Events::Archive', {
      SourceArn: getAtt('IngestCuratedBus'),
      EventPattern: { source: [{ prefix: '' }] },
      RetentionDays: 30,
    });
  });

  test('bucket: SSE-S3, public access blocked, owner enforced, EventBridge notifications, lifecycle', () => {
    template.hasResourceProperties('AWS::S3::Bucket', {
      BucketEncryption: { ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
      PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
      OwnershipControls: { Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] },
      NotificationConfiguration: { EventBridgeConfiguration: { EventBridgeEnabled: true } },
      LoggingConfiguration: Match.absent(),
      LifecycleConfiguration: {
        Rules: [
          { Id: 'ExpireData', Prefix: 'data/', ExpirationInDays: 30, Status: 'Enabled' },
          { Id: 'ExpireFirehoseErrors', Prefix: 'firehose-errors/', ExpirationInDays: 90, Status: 'Enabled' },
          { Id: 'ExpireQuarantine', Prefix: 'quarantine/', ExpirationInDays: 90, Status: 'Enabled' },
          { Id: 'AbortIncompleteUploads', AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 }, Status: 'Enabled' },
        ],
      },
    });
    template.hasResource('AWS::S3::Bucket', { DeletionPolicy: 'Retain', UpdateReplacePolicy: 'Retain' });
    // No custom resource for the notifications: the property is set on the L1.
    template.resourceCountIs('Custom::S3BucketNotifications', 0);
  });

  test('bucket policy denies requests without TLS', () => {
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([Match.objectLike({
          Effect: 'Deny', Action: 's3:*', Condition: { Bool: { 'aws:SecureTransport': 'false' } },
        })]),
      },
    });
  });

  test('Firehose: dynamic partitioning by tenant, newline delimiter, prefixes, 128 MiB / 60 s, GZIP, SSE', () => {
    template.hasResourceProperties('AWS::KinesisFirehose::DeliveryStream', {
      DeliveryStreamType: 'DirectPut',
      DeliveryStreamEncryptionConfigurationInput: { KeyType: 'AWS_OWNED_CMK' },
      ExtendedS3DestinationConfiguration: Match.objectLike({
        BucketARN: getAtt('IngestBucket'),
        Prefix: 'data/tenant=!{partitionKeyFromQuery:tenant}/!{timestamp:yyyy/MM/dd/HH}/',
        ErrorOutputPrefix: 'firehose-errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd/HH}/',
        DynamicPartitioningConfiguration: { Enabled: true },
        BufferingHints: { SizeInMBs: 128, IntervalInSeconds: 60 },
        CompressionFormat: 'GZIP',
        EncryptionConfiguration: Match.absent(),
        ProcessingConfiguration: {
          Enabled: true,
          Processors: [
            {
              Type: 'MetadataExtraction',
              Parameters: [
                { ParameterName: 'MetadataExtractionQuery', ParameterValue: '{"tenant":(if (.tenant // "") == "" then "_none" else (.tenant | tostring) end)}' },
                { ParameterName: 'JsonParsingEngine', ParameterValue: 'JQ-1.6' },
              ],
            },
            { Type: 'AppendDelimiterToRecord', Parameters: [] },
          ],
        },
        CloudWatchLoggingOptions: Match.objectLike({ Enabled: true, LogGroupName: { Ref: Match.stringLikeRegexp('^IngestDeliveryStreamLogs') } }),
      }),
    });
  });

  test('slow rule: every event of the slow bus to Firehose as a slow-lane envelope, with DLQ and retries', () => {
    template.hasResourceProperties('AWS::Events::Rule', {
      EventBusName: { Ref: Match.stringLikeRegexp('^IngestSlowBus') },
      EventPattern: { source: [{ prefix: '' }] },
      Targets: [Match.objectLike({
        Arn: getAtt('IngestDeliveryStream'),
        RoleArn: getAtt('IngestDeliveryStreamEventsRole'),
        DeadLetterConfig: { Arn: getAtt('IngestSlowLaneDeadLetterQueue') },
        RetryPolicy: { MaximumRetryAttempts: 185, MaximumEventAgeInSeconds: 86400 },
        InputTransformer: {
          InputPathsMap: Match.objectLike({
            tenant: '$.detail.tenantId',
            channel: '$.detail.channel',
            correlationId: '$.detail.correlationId',
          }),
          InputTemplate: Match.stringLikeRegexp('"lane":"slow"'),
        },
      })],
    });
  });

  test('object-created rule on the default bus: S3 events of data/ objects to the object queue', () => {
    template.hasResourceProperties('AWS::Events::Rule', {
      EventBusName: 'default',
      EventPattern: {
        'source': ['aws.s3'],
        'detail-type': ['Object Created'],
        'detail': { bucket: { name: [{ Ref: Match.stringLikeRegexp('^IngestBucket') }] }, object: { key: [{ prefix: 'data/' }] } },
      },
      Targets: [Match.objectLike({
        Arn: getAtt('IngestObjectQueue'),
        DeadLetterConfig: { Arn: getAtt('IngestObjectDeadLetterQueue') },
        RetryPolicy: { MaximumRetryAttempts: 185, MaximumEventAgeInSeconds: 86400 },
      })],
    });
  });

  test('object queue: redrive after 5 receives, visibility 6 x the publisher timeout, SSE-SQS', () => {
    template.hasResourceProperties('AWS::SQS::Queue', {
      VisibilityTimeout: 1800,
      SqsManagedSseEnabled: true,
      RedrivePolicy: { deadLetterTargetArn: getAtt('IngestObjectDeadLetterQueue'), maxReceiveCount: 5 },
    });
  });

  test('dead-letter queues: SSE-SQS, 14 days, TLS only', () => {
    const queues = template.findResources('AWS::SQS::Queue', { Properties: { MessageRetentionPeriod: 1209600, SqsManagedSseEnabled: true } });
    expect(Object.keys(queues).sort()).toEqual([
      expect.stringMatching(/^IngestFastLaneDeadLetterQueue/),
      expect.stringMatching(/^IngestObjectDeadLetterQueue/),
      expect.stringMatching(/^IngestSlowLaneDeadLetterQueue/),
    ]);
    const policies = Object.values<any>(template.findResources('AWS::SQS::QueuePolicy'));
    expect(policies).toHaveLength(4);
    for (const policy of policies) {
      expect(policy.Properties.PolicyDocument.Statement).toEqual(expect.arrayContaining([
        expect.objectContaining({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
      ]));
    }
  });

  test('publisher: exact environment, SQS event source of batch size 1 with partial batch failures', () => {
    const fn = Object.values<any>(template.findResources('AWS::Lambda::Function'))
      .find((f) => f.Properties.Environment.Variables.LEDGER_TABLE_NAME !== undefined);
    expect(fn.Properties).toMatchObject({ MemorySize: 1024, Timeout: 300, Runtime: 'nodejs24.x', TracingConfig: { Mode: 'Active' } });
    expect(fn.Properties.Environment.Variables).toEqual({
      CURATED_BUS_NAME: { Ref: expect.stringMatching(/^IngestCuratedBus/) },
      BUCKET_NAME: { Ref: expect.stringMatching(/^IngestBucket/) },
      DATA_PREFIX: 'data/',
      QUARANTINE_PREFIX: 'quarantine/',
      LEDGER_TABLE_NAME: { Ref: expect.stringMatching(/^IngestLedgerTable/) },
      MAX_ENTRY_BYTES: '1044480',
      MAX_RECORDS_PER_EVENT: '1000',
      LEASE_SECONDS: '360',
      RESERVE_MS: '15000',
      OBJECT_QUEUE_URL: { Ref: expect.stringMatching(/^IngestObjectQueue/) },
      INGEST_ID: ingest.node.addr,
      POWERTOOLS_SERVICE_NAME: 'tiered-event-ingest',
      POWERTOOLS_METRICS_NAMESPACE: 'cdk-event-fabric',
      // Added by the generated function class for every Node.js handler.
      AWS_NODEJS_CONNECTION_REUSE_ENABLED: '1',
    });
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: getAtt('IngestObjectQueue'),
      FunctionName: { Ref: Match.stringLikeRegexp('^IngestPublisherFunction') },
      BatchSize: 1,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      ScalingConfig: { MaximumConcurrency: 5 },
    });
    // The publisher sends continuations of long or throttled objects to its own queue.
    expect(statements(template)).toContainEqual(expect.objectContaining({
      Action: ['sqs:SendMessage', 'sqs:GetQueueAttributes', 'sqs:GetQueueUrl'], Resource: { 'Fn::GetAtt': [expect.stringMatching(/^IngestObjectQueue/), 'Arn'] },
    }));
  });

  test('relay: curated bus name, async retries 2 with failures to the fast-lane DLQ', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      MemorySize: 256,
      Timeout: 30,
      TracingConfig: { Mode: 'Active' },
      Environment: {
        Variables: Match.objectLike({ CURATED_BUS_NAME: { Ref: Match.stringLikeRegexp('^IngestCuratedBus') }, POWERTOOLS_SERVICE_NAME: 'tiered-event-ingest' }),
      },
      LoggingConfig: { LogGroup: { Ref: Match.stringLikeRegexp('^IngestRelayFunctionLogs') } },
    });
    template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
      FunctionName: { Ref: Match.stringLikeRegexp('^IngestRelayFunction') },
      MaximumRetryAttempts: 2,
      DestinationConfig: { OnFailure: { Destination: getAtt('IngestFastLaneDeadLetterQueue') } },
    });
  });

  test('functions log to their own log groups, three months', () => {
    template.resourcePropertiesCountIs('AWS::Logs::LogGroup', { RetentionInDays: 90 }, 4);
    expect(JSON.stringify(template.findResources('AWS::IAM::Role'))).not.toContain('AWSLambdaBasicExecutionRole');
  });

  test('redrive function: an operator\'s synchronous tool with the queues, the prefixes it reads and the one it writes', () => {
    const fn = Object.values<any>(template.findResources('AWS::Lambda::Function'))
      .find((f) => f.Properties.Environment.Variables.OBJECT_DLQ_URL !== undefined);
    expect(fn.Properties).toMatchObject({ Timeout: 900, TracingConfig: { Mode: 'Active' } });
    expect(Object.keys(fn.Properties.Environment.Variables).sort()).toEqual([
      'AWS_NODEJS_CONNECTION_REUSE_ENABLED', 'BUCKET_NAME', 'CHANNEL_PATH', 'CORRELATION_ID_PATH', 'CURATED_BUS_NAME', 'FAST_LANE_DLQ_URL',
      'OBJECT_DLQ_URL', 'OBJECT_QUEUE_URL', 'POWERTOOLS_SERVICE_NAME', 'RELAY_FUNCTION_ARN', 'SLOW_LANE_DLQ_URL', 'TENANT_ID_PATH',
    ]);
    // It consumes the three DLQs and writes only under data/redrive/.
    const own = roleStatements(template, 'IngestRedriveFunctionRole');
    const consumed = own.filter((st) => [st.Action].flat().includes('sqs:DeleteMessage')).map((st) => st.Resource['Fn::GetAtt'][0]);
    expect(consumed.map((id: string) => id.replace(/[0-9A-F]{8}$/, '')).sort())
      .toEqual(['IngestFastLaneDeadLetterQueue', 'IngestObjectDeadLetterQueue', 'IngestSlowLaneDeadLetterQueue']);
    const writes = own.filter((st) => [st.Action].flat().includes('s3:PutObject'));
    expect(writes.map((st) => JSON.stringify(st.Resource))).toEqual([expect.stringContaining('/data/redrive/*')]);
    template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', { MaximumRetryAttempts: 0 });
    // The exposed property is that function: the template holds it under the property's logical id.
    const logicalId = stack.resolve((ingest.redriveFunction.node.defaultChild as any).logicalId);
    expect(template.findResources('AWS::Lambda::Function')[logicalId]).toEqual(fn);
    const resources = JSON.stringify(statements(template).map((st) => st.Resource));
    for (const prefix of ['quarantine/*', 'firehose-errors/*', 'data/redrive/*']) expect(resources).toContain(prefix);
  });

  test('ledger table: objectId key, on demand, TTL, point-in-time recovery, encrypted, retained', () => {
    template.hasResource('AWS::DynamoDB::Table', {
      Properties: {
        KeySchema: [{ AttributeName: 'objectId', KeyType: 'HASH' }],
        AttributeDefinitions: [{ AttributeName: 'objectId', AttributeType: 'S' }],
        BillingMode: 'PAY_PER_REQUEST',
        TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        SSESpecification: { SSEEnabled: true },
      },
      DeletionPolicy: 'Retain',
    });
  });

  test('seventeen alarms: DLQ depth and expiry, rule delivery, partitions, Firehose delivery, errors and throttling, quarantine, backlog', () => {
    template.resourceCountIs('AWS::CloudWatch::Alarm', 17);
    const alarms = Object.values<any>(template.findResources('AWS::CloudWatch::Alarm')).map((a) => a.Properties);
    for (const alarm of alarms) {
      expect(alarm).toMatchObject({ EvaluationPeriods: 1, TreatMissingData: 'notBreaching' });
      expect(alarm.AlarmDescription).toContain('Test/Ingest');
    }
    const byMetric = (metricName: string) => alarms.filter((a) => a.MetricName === metricName);
    // Both delivery metrics of both rules; the slow rule's on its custom bus (two dimensions), the object rule's on the default bus.
    for (const metricName of ['FailedInvocations', 'InvocationsFailedToBeSentToDlq']) {
      const [slow, objects] = byMetric(metricName);
      expect(slow).toMatchObject({ Namespace: 'AWS/Events', Threshold: 1, Statistic: 'Sum' });
      expect(slow.Dimensions.map((d: any) => d.Name).sort()).toEqual(['EventBusName', 'RuleName']);
      expect(objects.Dimensions.map((d: any) => d.Name)).toEqual(['RuleName']);
    }
    // Warned 4 days before the 14-day retention of each DLQ drops a message; a backlog after an hour.
    const ages = byMetric('ApproximateAgeOfOldestMessage').map((a) => a.Threshold).sort((a, b) => a - b);
    expect(ages).toEqual([3600, 864_000, 864_000, 864_000]);
    expect(byMetric('Errors')).toHaveLength(1);
    expect(byMetric('ThrottledRecords')).toMatchObject([{ Namespace: 'AWS/Firehose', Threshold: 1 }]);
    expect(ingest.ruleDeliveryAlarms).toHaveLength(4);
    expect(ingest.deadLetterExpiryAlarms).toHaveLength(3);
    expect(alarms.filter((a) => a.MetricName === 'ApproximateNumberOfMessagesVisible')).toHaveLength(3);
    expect(alarms.find((a) => a.MetricName === 'PartitionCountExceeded')).toMatchObject({
      Namespace: 'AWS/Firehose', Statistic: 'Maximum', ComparisonOperator: 'GreaterThanOrEqualToThreshold',
    });
    expect(alarms.find((a) => a.MetricName === 'DeliveryToS3.Success')).toMatchObject({
      Namespace: 'AWS/Firehose', Statistic: 'Minimum', ComparisonOperator: 'LessThanThreshold',
    });
    expect(alarms.find((a) => a.MetricName === 'RecordsQuarantined')).toMatchObject({
      Namespace: 'cdk-event-fabric',
      Statistic: 'Sum',
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      Dimensions: [{ Name: 'ingest', Value: ingest.node.addr }, { Name: 'service', Value: 'tiered-event-ingest' }],
    });
    expect(alarms.find((a) => a.MetricName === 'MatchedEvents')).toMatchObject({
      Namespace: 'AWS/Events', Statistic: 'Sum', Dimensions: [{ Name: 'RuleName', Value: { Ref: expect.stringMatching(/^IngestFirehoseErrorsRule/) } }],
    });
    expect(ingest.quarantineAlarm.alarmArn).toBeDefined();
    expect(ingest.deliveryFailureAlarm.alarmArn).toBeDefined();
  });

  test('Firehose error objects are matched on the default bus (a rule without target, for the alarm)', () => {
    template.hasResourceProperties('AWS::Events::Rule', {
      EventBusName: 'default',
      EventPattern: {
        'source': ['aws.s3'],
        'detail-type': ['Object Created'],
        'detail': { bucket: { name: [{ Ref: Match.stringLikeRegexp('^IngestBucket') }] }, object: { key: [{ prefix: 'firehose-errors/' }] } },
      },
      Targets: Match.absent(),
    });
  });

  test('the publisher may only get and update ledger items', () => {
    const ledgerStatements = statements(template).filter((s) => JSON.stringify(s.Resource).includes('IngestLedgerTable'));
    expect(ledgerStatements.map((s) => s.Action)).toEqual([['dynamodb:GetItem', 'dynamodb:UpdateItem']]);
  });

  test('IAM: PutEvents on the curated bus; the publisher reads only data/ and writes only quarantine/', () => {
    const putEvents = statements(template).filter((s) => s.Action === 'events:PutEvents');
    expect(putEvents).toHaveLength(3); // relay, publisher and redrive
    for (const s of putEvents) expect(s.Resource).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^IngestCuratedBus/), 'Arn'] });

    const bucketArn = { 'Fn::GetAtt': [expect.stringMatching(/^IngestBucket/), 'Arn'] };
    const all = roleStatements(template, 'IngestPublisherFunctionRole');
    const reads = all.filter((s) => [s.Action].flat().includes('s3:GetObject*'));
    const publisherRead = reads.find((s) => !([s.Action].flat().includes('s3:PutObject')));
    expect(publisherRead.Resource).toEqual([bucketArn, { 'Fn::Join': ['', [bucketArn, '/data/*']] }]);
    const puts = all.filter((s) => [s.Action].flat().includes('s3:PutObject') && ![s.Action].flat().includes('s3:GetObject*'));
    expect(puts).toHaveLength(1);
    expect(puts[0].Resource).toEqual({ 'Fn::Join': ['', [bucketArn, '/quarantine/*']] });
  });

  test('exposes every resource', () => {
    for (const r of [
      ingest.fastBus, ingest.slowBus, ingest.curatedBus, ingest.curatedArchive, ingest.fastLaneDeadLetterQueue, ingest.relayFunction,
      ingest.slowLaneRule, ingest.slowLaneDeadLetterQueue, ingest.deliveryStream, ingest.bucket, ingest.objectCreatedRule,
      ingest.objectQueue, ingest.objectDeadLetterQueue, ingest.publisherFunction, ingest.ledgerTable,
      ingest.fastLaneDeadLetterQueueAlarm, ingest.slowLaneDeadLetterQueueAlarm, ingest.objectDeadLetterQueueAlarm,
      ingest.partitionOverflowAlarm, ingest.deliveryFailureAlarm, ingest.quarantineAlarm, ingest.redriveFunction,
      ingest.objectQueueAgeAlarm, ingest.publisherErrorsAlarm, ingest.firehoseThrottlingAlarm,
    ]) {
      expect(r).toBeDefined();
    }
    expect(ingest.fastRoutes).toEqual([]);
  });

  test('metric helpers: namespace, dimensions, Sum', () => {
    for (const [metric, name] of [
      [ingest.metricRecordsPublished(), 'RecordsPublished'],
      [ingest.metricRecordsQuarantined(), 'RecordsQuarantined'],
      [ingest.metricBilledChunks(), 'BilledChunks'],
      [ingest.metricEventsPublished({ period: Duration.minutes(1) }), 'EventsPublished'],
    ] as const) {
      expect(metric.metricName).toBe(name);
      expect(metric.namespace).toBe('cdk-event-fabric');
      expect(metric.statistic).toBe('Sum');
      expect(metric.dimensions).toEqual({ service: 'tiered-event-ingest', ingest: ingest.node.addr });
    }
    expect(ingest.metricEventsPublished({ period: Duration.minutes(1) }).period.toMinutes()).toBe(1);
  });
});

describe('TieredEventIngest fast lane', () => {
  test('a route without target goes to the relay function as a fast-lane envelope, with the lane DLQ and retries', () => {
    const stack = newStack();
    const ingest = defaultIngest(stack, { fastRoutes: [{ id: 'Orders', eventPattern: { source: ['shop.orders'] } }] });
    const template = Template.fromStack(stack);
    const rule = ruleWithSource(template, 'shop.orders');
    expect(rule.Properties.EventBusName).toEqual({ Ref: expect.stringMatching(/^IngestFastBus/) });
    const target = rule.Properties.Targets[0];
    expect(target.Arn).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^IngestRelayFunction/), 'Arn'] });
    expect(target.DeadLetterConfig).toEqual({ Arn: { 'Fn::GetAtt': [expect.stringMatching(/^IngestFastLaneDeadLetterQueue/), 'Arn'] } });
    expect(target.RetryPolicy).toEqual({ MaximumRetryAttempts: 8, MaximumEventAgeInSeconds: 3600 });
    expect(target.InputTransformer.InputTemplate).toContain('"lane":"fast"');
    expect(target.InputTransformer.InputPathsMap).toMatchObject({ tenant: '$.detail.tenantId' });
    // EventBridge may invoke the relay, and may write this rule's failures to the DLQ.
    template.hasResourceProperties('AWS::Lambda::Permission', {
      Action: 'lambda:InvokeFunction', Principal: 'events.amazonaws.com', SourceArn: getAtt('IngestFastRouteOrders'),
    });
    template.hasResourceProperties('AWS::SQS::QueuePolicy', {
      Queues: [{ Ref: Match.stringLikeRegexp('^IngestFastLaneDeadLetterQueue') }],
      PolicyDocument: {
        Statement: Match.arrayWith([Match.objectLike({
          Action: 'sqs:SendMessage',
          Principal: { Service: 'events.amazonaws.com' },
          Condition: { ArnEquals: { 'aws:SourceArn': getAtt('IngestFastRouteOrders') } },
        })]),
      },
    });
    expect(ingest.fastRoutes).toHaveLength(1);
  });

  test('a user target gets the DLQ, retry policy and envelope filled in', () => {
    const stack = newStack();
    const queue = new sqs.Queue(stack, 'Audit');
    defaultIngest(stack, { fastRoutes: [{ id: 'Audit', eventPattern: { source: ['shop.audit'] }, target: new targets.SqsQueue(queue) }] });
    const target = ruleWithSource(Template.fromStack(stack), 'shop.audit').Properties.Targets[0];
    expect(target.Arn).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^Audit/), 'Arn'] });
    expect(target.DeadLetterConfig).toEqual({ Arn: { 'Fn::GetAtt': [expect.stringMatching(/^IngestFastLaneDeadLetterQueue/), 'Arn'] } });
    expect(target.RetryPolicy).toEqual({ MaximumRetryAttempts: 8, MaximumEventAgeInSeconds: 3600 });
    expect(target.InputTransformer.InputTemplate).toContain('"lane":"fast"');
  });

  test('a target with its own retry policy, DLQ and message keeps them', () => {
    const stack = newStack();
    const queue = new sqs.Queue(stack, 'Audit');
    const ownDlq = new sqs.Queue(stack, 'OwnDlq');
    defaultIngest(stack, {
      fastRoutes: [{
        id: 'Audit',
        eventPattern: { source: ['shop.audit'] },
        target: new targets.SqsQueue(queue, {
          deadLetterQueue: ownDlq,
          retryAttempts: 3,
          maxEventAge: Duration.minutes(5),
          message: events.RuleTargetInput.fromEventPath('$.detail'),
        }),
      }],
    });
    const template = Template.fromStack(stack);
    const target = ruleWithSource(template, 'shop.audit').Properties.Targets[0];
    expect(target.DeadLetterConfig).toEqual({ Arn: { 'Fn::GetAtt': [expect.stringMatching(/^OwnDlq/), 'Arn'] } });
    expect(target.RetryPolicy).toEqual({ MaximumRetryAttempts: 3, MaximumEventAgeInSeconds: 300 });
    expect(target.InputPath).toBe('$.detail');
    expect(target.InputTransformer).toBeUndefined();
    // The lane DLQ is not opened to a rule that does not use it.
    const laneDlqPolicy = Object.values<any>(template.findResources('AWS::SQS::QueuePolicy'))
      .find((p) => /^IngestFastLaneDeadLetterQueue/.test(p.Properties.Queues[0].Ref));
    expect(laneDlqPolicy.Properties.PolicyDocument.Statement.filter((s: any) => s.Action === 'sqs:SendMessage')).toHaveLength(0);
  });

  test('the route input overrides the envelope', () => {
    const stack = newStack();
    defaultIngest(stack, {
      fastRoutes: [{ id: 'Raw', eventPattern: { source: ['shop.raw'] }, input: events.RuleTargetInput.fromEventPath('$.detail.order') }],
    });
    const target = ruleWithSource(Template.fromStack(stack), 'shop.raw').Properties.Targets[0];
    expect(target.InputPath).toBe('$.detail.order');
    expect(target.InputTransformer).toBeUndefined();
  });

  test('routes from props and from addFastRoute, with the lane retry settings and descriptions', () => {
    const stack = newStack();
    const ingest = defaultIngest(stack, {
      fastLaneRetryAttempts: 0,
      fastLaneMaxEventAge: Duration.minutes(2),
      fastRoutes: [{ id: 'Orders', eventPattern: { source: ['shop.orders'] }, description: 'Orders, relayed' }],
    });
    const added = ingest.addFastRoute('Payments', { eventPattern: { source: ['shop.payments'] } });
    expect(ingest.fastRoutes).toHaveLength(2);
    expect(ingest.fastRoutes[1]).toBe(added);
    ingest.fastRoutes.pop();
    expect(ingest.fastRoutes).toHaveLength(2); // a copy
    const template = Template.fromStack(stack);
    const orders = ruleWithSource(template, 'shop.orders');
    const payments = ruleWithSource(template, 'shop.payments');
    expect(orders.Properties.Description).toBe('Orders, relayed');
    expect(payments.Properties.Description).toContain('fast route Payments');
    for (const rule of [orders, payments]) {
      expect(rule.Properties.Targets[0].RetryPolicy).toEqual({ MaximumRetryAttempts: 0, MaximumEventAgeInSeconds: 120 });
    }
  });

  test('custom envelope paths reach both lanes', () => {
    const stack = newStack();
    defaultIngest(stack, {
      envelopePaths: { tenantIdPath: '$.detail.org' },
      fastRoutes: [{ id: 'Orders', eventPattern: { source: ['shop.orders'] } }],
    });
    const template = Template.fromStack(stack);
    const slow = Object.values<any>(template.findResources('AWS::Events::Rule', { Properties: { EventBusName: { Ref: Match.stringLikeRegexp('^IngestSlowBus') } } }))[0];
    const fast = ruleWithSource(template, 'shop.orders');
    for (const rule of [slow, fast]) {
      expect(rule.Properties.Targets[0].InputTransformer.InputPathsMap.tenant).toBe('$.detail.org');
    }
  });
});

describe('TieredEventIngest with existing buses', () => {
  test('uses the given buses and creates none', () => {
    const stack = newStack();
    const fast = userBus(stack, 'Fast');
    const slow = userBus(stack, 'Slow');
    const curated = events.EventBus.fromEventBusName(stack, 'Curated', 'curated');
    const ingest = defaultIngest(stack, { fastBus: fast, slowBus: slow, curatedBus: curated, fastRoutes: [{ id: 'A', eventPattern: { source: ['a'] } }] });
    expect(ingest.fastBus).toBe(fast);
    expect(ingest.slowBus).toBe(slow);
    expect(ingest.curatedBus).toBe(curated);
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::Events::EventBus', 2); // the user's two
    const archive = Object.values<any>(template.findResources('AWS::Events::Archive'))[0];
    expect(JSON.stringify(archive.Properties.SourceArn)).toContain(':event-bus/curated');
    expect(ruleWithSource(template, 'a').Properties.EventBusName).toEqual({ Ref: expect.stringMatching(/^Fast/) });
    template.hasResourceProperties('AWS::Events::Rule', { EventBusName: { Ref: Match.stringLikeRegexp('^Slow') } });
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ CURATED_BUS_NAME: 'curated', LEDGER_TABLE_NAME: Match.anyValue() }) },
    });
  });
});

describe('TieredEventIngest fullest configuration', () => {
  const stack = newStack();
  const ingest = fullestIngest(stack);
  const template = Template.fromStack(stack);
  const key = getAtt('IngestKey');

  test('the customer key encrypts buses, archive, bucket, queues, table and stream', () => {
    template.resourcePropertiesCountIs('AWS::Events::EventBus', { KmsKeyIdentifier: key }, 3);
    template.hasResourceProperties('AWS::Events::Archive', { KmsKeyIdentifier: key, RetentionDays: 365 });
    template.hasResourceProperties('AWS::S3::Bucket', {
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [{ BucketKeyEnabled: true, ServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms', KMSMasterKeyID: key } }],
      },
    });
    // The ingest's four queues and the fixture's audit queue.
    template.resourcePropertiesCountIs('AWS::SQS::Queue', { KmsMasterKeyId: key }, 5);
    template.hasResourceProperties('AWS::DynamoDB::Table', { SSESpecification: { SSEEnabled: true, SSEType: 'KMS', KMSMasterKeyId: key } });
    template.hasResourceProperties('AWS::KinesisFirehose::DeliveryStream', {
      DeliveryStreamEncryptionConfigurationInput: { KeyType: 'CUSTOMER_MANAGED_CMK', KeyARN: key },
      ExtendedS3DestinationConfiguration: Match.objectLike({
        EncryptionConfiguration: { KMSEncryptionConfig: { AWSKMSKeyARN: key } },
      }),
    });
  });

  test('the key policy lets EventBridge write to the encrypted queues', () => {
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

  test('every prop reaches the template', () => {
    template.hasResourceProperties('AWS::KinesisFirehose::DeliveryStream', {
      ExtendedS3DestinationConfiguration: Match.objectLike({
        BufferingHints: { SizeInMBs: 64, IntervalInSeconds: 300 },
        CompressionFormat: 'UNCOMPRESSED',
        ProcessingConfiguration: Match.objectLike({
          Processors: Match.arrayWith([Match.objectLike({
            Parameters: Match.arrayWith([{ ParameterName: 'MetadataExtractionQuery', ParameterValue: '{"tenant":(.tenant // "unknown")}' }]),
          })]),
        }),
      }),
    });
    template.hasResourceProperties('AWS::S3::Bucket', {
      LoggingConfiguration: { DestinationBucketName: { Ref: Match.stringLikeRegexp('^AccessLogs') }, LogFilePrefix: 'tiered-event-ingest/' },
      LifecycleConfiguration: {
        Rules: Match.arrayWith([
          Match.objectLike({ Prefix: 'data/', ExpirationInDays: 7 }),
          Match.objectLike({ Prefix: 'firehose-errors/', ExpirationInDays: 180 }),
          Match.objectLike({ Prefix: 'quarantine/', ExpirationInDays: 180 }),
        ]),
      },
    });
    template.hasResource('AWS::S3::Bucket', { Properties: Match.objectLike({ NotificationConfiguration: Match.anyValue() }), DeletionPolicy: 'Delete' });
    template.hasResource('AWS::DynamoDB::Table', { DeletionPolicy: 'Delete' });
    template.hasResourceProperties('AWS::SQS::Queue', { VisibilityTimeout: 3600, RedrivePolicy: Match.objectLike({ maxReceiveCount: 3 }) });
    template.hasResourceProperties('AWS::Lambda::Function', {
      MemorySize: 2048,
      Timeout: 600,
      Environment: { Variables: Match.objectLike({ MAX_ENTRY_BYTES: '262144', MAX_RECORDS_PER_EVENT: '500', LEASE_SECONDS: '660' }) },
    });
    template.hasResourceProperties('AWS::Events::Rule', {
      EventBusName: { Ref: Match.stringLikeRegexp('^FullIngestSlowBus') },
      EventPattern: { source: ['shop.clicks', 'shop.views'] },
    });
    expect(ingest.fastRoutes.map((r) => r.node.id)).toEqual(['FastRouteOrders', 'FastRouteAudit', 'FastRoutePayments']);
  });

  test('every alarm notifies the SNS topic', () => {
    const alarms = Object.values<any>(template.findResources('AWS::CloudWatch::Alarm'));
    expect(alarms).toHaveLength(17 + 3 * 2); // the defaults and the three fast routes' delivery alarms
    for (const alarm of alarms) {
      expect(alarm.Properties.AlarmActions).toEqual([{ Ref: expect.stringMatching(/^Alarms/) }]);
    }
  });
});

describe('TieredEventIngest validation', () => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['fastLaneRetryAttempts 186', { fastLaneRetryAttempts: 186 }, /invalid fastLaneRetryAttempts 186; allowed: an integer from 0 to 185/],
    ['fastLaneRetryAttempts -1', { fastLaneRetryAttempts: -1 }, /invalid fastLaneRetryAttempts -1; allowed: an integer from 0 to 185/],
    ['fastLaneMaxEventAge 30 s', { fastLaneMaxEventAge: Duration.seconds(30) }, /invalid fastLaneMaxEventAge 30; allowed: an integer from 60 to 86400 seconds/],
    ['fastLaneMaxEventAge 25 h', { fastLaneMaxEventAge: Duration.hours(25) }, /invalid fastLaneMaxEventAge 90000; allowed: an integer from 60 to 86400 seconds/],
    ['bufferingSize 32 MiB', { bufferingSize: Size.mebibytes(32) }, /invalid bufferingSize 32; allowed: an integer from 64 to 128 MiB \(dynamic partitioning/],
    ['bufferingSize 256 MiB', { bufferingSize: Size.mebibytes(256) }, /invalid bufferingSize 256; allowed: an integer from 64 to 128 MiB/],
    ['bufferingSize 100.5 MiB', { bufferingSize: Size.kibibytes(102_912) }, /invalid bufferingSize 100.5; allowed: an integer from 64 to 128 MiB/],
    ['bufferingInterval 901 s', { bufferingInterval: Duration.seconds(901) }, /invalid bufferingInterval 901; allowed: an integer from 60 to 900 seconds/],
    ['bufferingInterval 30 s', { bufferingInterval: Duration.seconds(30) }, /invalid bufferingInterval 30; allowed: an integer from 60 to 900 seconds \(dynamic partitioning/],
    ['maxEntryBytes 4095', { maxEntryBytes: 4095 }, /invalid maxEntryBytes 4095; allowed: an integer from 4096 to 1048576 bytes/],
    ['maxEntryBytes 1048577', { maxEntryBytes: 1_048_577 }, /invalid maxEntryBytes 1048577; allowed: an integer from 4096 to 1048576 bytes/],
    ['maxEntryBytes 5000.5', { maxEntryBytes: 5000.5 }, /invalid maxEntryBytes 5000.5; allowed: an integer from 4096 to 1048576/],
    ['maxRecordsPerEvent 0', { maxRecordsPerEvent: 0 }, /invalid maxRecordsPerEvent 0; allowed: an integer from 1 to 100000 records/],
    ['publisherTimeout 5 s', { publisherTimeout: Duration.seconds(5) }, /invalid publisherTimeout 5; allowed: an integer from 10 to 900 seconds/],
    ['publisherTimeout 16 min', { publisherTimeout: Duration.minutes(16) }, /invalid publisherTimeout 960; allowed: an integer from 10 to 900 seconds/],
    ['publisherMemorySize 64', { publisherMemorySize: 64 }, /invalid publisherMemorySize 64; allowed: an integer from 128 to 10240 MiB/],
    ['publisherMaxReceiveCount 0', { publisherMaxReceiveCount: 0 }, /invalid publisherMaxReceiveCount 0; allowed: an integer from 1 to 1000/],
    ['publisherMaxConcurrency 1', { publisherMaxConcurrency: 1 }, /invalid publisherMaxConcurrency 1; allowed: an integer from 2 to 1000 concurrent invocations/],
    ['archiveRetention 36 h', { archiveRetention: Duration.hours(36) }, /invalid archiveRetention "1 day 12 hours"; allowed: a whole number of days, at least 0 \(0 keeps events forever\)/],
    ['dataRetention 12 h', { dataRetention: Duration.hours(12) }, /invalid dataRetention "12 hours"; allowed: a whole number of days, at least 1/],
    ['quarantineRetention 0 d', { quarantineRetention: Duration.days(0) }, /invalid quarantineRetention "0 days"; allowed: a whole number of days, at least 1/],
    ['partitionKeyQuery empty', { partitionKeyQuery: ' ' }, /invalid partitionKeyQuery " "; allowed: a non-empty JQ query of at most 512 characters/],
    ['partitionKeyQuery too long', { partitionKeyQuery: `.${'a'.repeat(512)}` }, /invalid partitionKeyQuery ".a+"; allowed: a non-empty JQ query of at most 512/],
    ['envelopePaths bad path', { envelopePaths: { tenantIdPath: 'detail.tenant' } },
      /invalid envelopePaths \{"tenantIdPath":"detail.tenant"\}; allowed: EventBridge JSON paths \(invalid tenantIdPath "detail.tenant"; allowed: a JSON path in dot notation/],
    ['slowLaneEventPattern empty', { slowLaneEventPattern: {} }, /invalid slowLaneEventPattern \{\}; allowed: a pattern that constrains at least one field/],
    ['fast route with an empty pattern', { fastRoutes: [{ id: 'Empty', eventPattern: { source: [] } }] },
      /invalid eventPattern of fast route "Empty" \{"source":\[\]\}; allowed: a pattern that constrains at least one field/],
    ['duplicate fast route id', { fastRoutes: [{ id: 'A', eventPattern: { source: ['a'] } }, { id: 'A', eventPattern: { source: ['b'] } }] },
      /invalid fast route id "A"; allowed: an id not used by another fast route of this ingest/],
  ];

  test.each(cases)('%s', (_name, overrides, message) => {
    expect(() => defaultIngest(newStack(), overrides as any)).toThrow(message);
  });

  test('errors name the construct path', () => {
    expect(() => defaultIngest(newStack(), { maxRecordsPerEvent: 0 })).toThrow(/^Test\/Ingest: invalid maxRecordsPerEvent 0/);
  });

  test('addFastRoute rejects an id already used', () => {
    const ingest = defaultIngest(newStack(), { fastRoutes: [{ id: 'A', eventPattern: { source: ['a'] } }] });
    expect(() => ingest.addFastRoute('A', { eventPattern: { source: ['b'] } })).toThrow(/invalid fast route id "A"/);
  });

  test('archiveRetention 0 days keeps events forever', () => {
    const stack = newStack();
    defaultIngest(stack, { archiveRetention: Duration.days(0) });
    Template.fromStack(stack).hasResourceProperties('AWS::Events::Archive', { RetentionDays: 0 });
  });

  test('a publisher timeout from a token is refused: the visibility timeout is derived from it', () => {
    expect(() => defaultIngest(newStack(), { publisherTimeout: Duration.seconds(Token.asNumber({ Ref: 'Timeout' })) }))
      .toThrow(/invalid publisherTimeout .*allowed: a resolved duration/);
  });

  test('a short publisher timeout keeps a quarter of it in reserve to stop cleanly, and the concurrency is a prop', () => {
    const stack = newStack();
    defaultIngest(stack, { publisherTimeout: Duration.seconds(20), publisherMaxConcurrency: 50 });
    const template = Template.fromStack(stack);
    template.hasResourceProperties('AWS::Lambda::Function', { Timeout: 20, Environment: { Variables: Match.objectLike({ RESERVE_MS: '5000' }) } });
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', { ScalingConfig: { MaximumConcurrency: 50 } });
  });

  test('unresolved tokens are not validated', () => {
    const stack = newStack();
    const num = (id: string) => new CfnParameter(stack, id, { type: 'Number' }).valueAsNumber;
    expect(() => defaultIngest(stack, {
      fastLaneRetryAttempts: num('Retries'),
      fastLaneMaxEventAge: Duration.seconds(num('Age')),
      bufferingSize: Size.mebibytes(num('Size')),
      bufferingInterval: Duration.seconds(num('Interval')),
      maxEntryBytes: num('EntryBytes'),
      maxRecordsPerEvent: num('Records'),
      publisherMemorySize: num('Memory'),
      publisherMaxReceiveCount: num('Receives'),
      archiveRetention: Duration.days(num('Archive')),
      partitionKeyQuery: new CfnParameter(stack, 'Query').valueAsString,
      fastRoutes: [{ id: 'A', eventPattern: { source: ['a'] } }],
    })).not.toThrow();
    const fn = Object.values<any>(Template.fromStack(stack).findResources('AWS::Lambda::Function'))
      .find((f) => f.Properties.Environment.Variables.LEDGER_TABLE_NAME !== undefined);
    expect(fn.Properties.Environment.Variables.MAX_ENTRY_BYTES).toEqual({ Ref: 'EntryBytes' });
  });
});

describe('TieredEventIngest cdk-nag (AwsSolutions + Serverless)', () => {
  test('default configuration has no unacknowledged findings', () => {
    const app = new App();
    defaultIngest(new Stack(app, 'Default', { env: { account: '111111111111', region: 'eu-west-1' } }));
    expect(formatFindings(synthNagFindings(app))).toBe('');
  });

  test('fullest configuration has no unacknowledged findings', () => {
    const app = new App();
    fullestIngest(new Stack(app, 'Fullest', { env: { account: '111111111111', region: 'eu-west-1' } }));
    expect(formatFindings(synthNagFindings(app))).toBe('');
  });

  test('an environment-agnostic stack has no unacknowledged findings either', () => {
    // The Firehose L2 renders its region-to-CIDR mapping here, which CloudFormation
    // validation reports as an unused-mapping warning (W7001), not as a finding.
    const app = new App();
    defaultIngest(new Stack(app, 'Agnostic'));
    expect(formatFindings(synthNagFindings(app))).toBe('');
  });
});

describe('TieredEventIngest scale', () => {
  test(`one ingest adds ${TieredEventIngest.RESOURCES_PER_INGEST} resources in the default configuration`, () => {
    const one = newStack();
    defaultIngest(one);
    expect(resourceCount(one)).toBe(TieredEventIngest.RESOURCES_PER_INGEST);
    const two = newStack();
    defaultIngest(two, {}, 'A');
    defaultIngest(two, {}, 'B');
    expect(resourceCount(two)).toBe(2 * TieredEventIngest.RESOURCES_PER_INGEST);
    expect(resourcesByType(one)).toMatchObject({
      'AWS::Events::EventBus': 3, 'AWS::SQS::Queue': 4, 'AWS::Lambda::Function': 3, 'AWS::CloudWatch::Alarm': 17, 'AWS::Events::Rule': 3,
    });
  });

  test('a fast route to the relay adds a rule, a Lambda permission and its two delivery alarms', () => {
    const stack = newStack();
    const ingest = defaultIngest(stack, { fastRoutes: [{ id: 'A', eventPattern: { source: ['a'] } }] });
    expect(resourceCount(stack)).toBe(TieredEventIngest.RESOURCES_PER_INGEST + 4);
    expect(ingest.ruleDeliveryAlarms).toHaveLength(6);
  });

  test('too many ingests in one stack fail synth with advice on how to split', () => {
    const app = new App();
    const stack = new Stack(app, 'Crowded', { env: { account: '111111111111', region: 'eu-west-1' } });
    for (let i = 0; i < 13; i++) defaultIngest(stack, {}, `Ingest${i}`);
    expect(() => app.synth()).toThrow(
      new RegExp(`Stack 'Crowded' holds \\d+ CloudFormation resources, over the limit of 500\\. Each TieredEventIngest adds about ${TieredEventIngest.RESOURCES_PER_INGEST} resources`),
    );
  });
});
