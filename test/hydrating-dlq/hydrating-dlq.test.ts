import { App, Duration, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as events from 'aws-cdk-lib/aws-events';
import * as kinesis from 'aws-cdk-lib/aws-kinesis';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { defaultHydratingDlq, fullestHydratingDlq } from './construct-fixtures';
import { HydratingDlq, HydratingDlqProps, PipeTarget } from '../../src';
import { formatFindings, synthNagFindings } from '../support/nag';
import { resourceCount, resourcesByType } from '../support/templates';

function newStack(app = new App()): Stack {
  return new Stack(app, 'Test', { env: { account: '111111111111', region: 'eu-west-1' } });
}

/** A GetAtt of the resource whose logical id starts with `prefix`: for Template assertions (`getAtt`) and for jest's (`att`). */
const getAtt = (prefix: string, attr = 'Arn') => ({ 'Fn::GetAtt': [Match.stringLikeRegexp(`^${prefix}`), attr] });
const att = (prefix: string, attr = 'Arn') => ({ 'Fn::GetAtt': [expect.stringMatching(`^${prefix}`), attr] });

/** Statements of the policies attached to the role whose logical id starts with `rolePrefix`. */
function roleStatements(template: Template, rolePrefix: string): any[] {
  return Object.values<any>(template.findResources('AWS::IAM::Policy'))
    .filter((p) => p.Properties.Roles.some((r: any) => new RegExp(`^${rolePrefix}`).test(r.Ref)))
    .flatMap((p) => p.Properties.PolicyDocument.Statement);
}

/** The pipe reading the stream, and the replay pipe. */
const pipeOf = (template: Template) => Object.entries<any>(template.findResources('AWS::Pipes::Pipe')).find(([id]) => /^OrdersPipe/.test(id))![1];
const replayPipeOf = (template: Template) => Object.entries<any>(template.findResources('AWS::Pipes::Pipe')).find(([id]) => /^OrdersReplayPipe/.test(id))![1];

describe('HydratingDlq defaults', () => {
  const stack = newStack();
  const dlq = defaultHydratingDlq(stack);
  const template = Template.fromStack(stack);

  test('an on-demand stream, encrypted with aws/kinesis, 24 hours of retention, retained', () => {
    template.hasResource('AWS::Kinesis::Stream', {
      Properties: { StreamModeDetails: { StreamMode: 'ON_DEMAND' }, RetentionPeriodHours: 24, StreamEncryption: { EncryptionType: 'KMS', KeyId: 'alias/aws/kinesis' } },
      DeletionPolicy: 'Retain',
    });
  });

  test('the pipe: bounded retries and record age, bisect, the dead-letter queue, error logs, the API destination', () => {
    const pipe = pipeOf(template);
    expect(pipe.Properties).toEqual(expect.objectContaining({
      Name: dlq.pipeName,
      Source: att('OrdersStream'),
      Target: att('OrdersApiDestination'),
      RoleArn: att('OrdersPipeRole'),
      SourceParameters: {
        KinesisStreamParameters: {
          BatchSize: 1,
          MaximumRetryAttempts: 3,
          MaximumRecordAgeInSeconds: 3600,
          OnPartialBatchItemFailure: 'AUTOMATIC_BISECT',
          ParallelizationFactor: 1,
          StartingPosition: 'TRIM_HORIZON',
          DeadLetterConfig: { Arn: att('OrdersDeadLetterQueue') },
        },
      },
      LogConfiguration: { Level: 'ERROR', CloudwatchLogsLogDestination: { LogGroupArn: att('OrdersPipeLogs') } },
    }));
    expect(pipe.Properties.TargetParameters).toBeUndefined();
    expect(pipe.Properties.LogConfiguration.IncludeExecutionData).toBeUndefined();
    expect(dlq.pipeName).toMatch(/^[.\-_A-Za-z0-9]{1,64}$/);
  });

  test('the pipe\'s role exists before the pipe and already holds the dead-letter queue\'s send permission', () => {
    const pipe = pipeOf(template);
    expect(pipe.DependsOn).toEqual(expect.arrayContaining([expect.stringMatching(/^OrdersPipeRoleDefaultPolicy/), expect.stringMatching(/^OrdersPipeRole/)]));
    const statements = roleStatements(template, 'OrdersPipeRole');
    expect(statements).toEqual(expect.arrayContaining([
      expect.objectContaining({ Action: expect.arrayContaining(['sqs:SendMessage']), Resource: att('OrdersDeadLetterQueue') }),
      expect.objectContaining({
        Action: expect.arrayContaining(['kinesis:GetRecords', 'kinesis:GetShardIterator', 'kinesis:ListShards']),
        Resource: att('OrdersStream'),
      }),
      expect.objectContaining({ Action: ['logs:CreateLogStream', 'logs:PutLogEvents'], Resource: att('OrdersPipeLogs') }),
      expect.objectContaining({ Action: 'events:InvokeApiDestination', Resource: att('OrdersApiDestination') }),
      expect.objectContaining({ Action: expect.arrayContaining(['kinesis:GetRecords']), Resource: att('OrdersReplayStream') }),
    ]));
    expect(statements).toHaveLength(5);
  });

  test('only EventBridge Pipes of this account may assume the pipe\'s role, for this pipe', () => {
    template.hasResourceProperties('AWS::IAM::Role', {
      AssumeRolePolicyDocument: {
        Statement: [{
          Action: 'sts:AssumeRole',
          Principal: { Service: 'pipes.amazonaws.com' },
          Condition: {
            StringEquals: {
              'aws:SourceAccount': '111111111111',
              'aws:SourceArn': [
                { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, `:pipes:eu-west-1:111111111111:pipe/${dlq.pipeName}`]] },
                { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, `:pipes:eu-west-1:111111111111:pipe/${dlq.pipeName}-replay`]] },
              ],
            },
          },
        }],
      },
    });
  });

  test('the default target: a connection with the API key from Secrets Manager and an API destination', () => {
    template.hasResourceProperties('AWS::Events::Connection', {
      AuthorizationType: 'API_KEY',
      AuthParameters: { ApiKeyAuthParameters: { ApiKeyName: 'x-api-key', ApiKeyValue: Match.objectLike({ 'Fn::Join': Match.anyValue() }) } },
    });
    template.hasResourceProperties('AWS::Events::ApiDestination', { InvocationEndpoint: 'https://api.example.com/orders', HttpMethod: 'POST' });
    expect(dlq.apiDestination).toBeInstanceOf(events.ApiDestination);
    expect(dlq.connection).toBeInstanceOf(events.Connection);
  });

  test('the dead-letter queue redrives to the hydrator\'s own dead-letter queue after 3 receives; both encrypted, TLS only, 14 days', () => {
    template.hasResourceProperties('AWS::SQS::Queue', {
      RedrivePolicy: { deadLetterTargetArn: getAtt('OrdersHydratorDeadLetterQueue'), maxReceiveCount: 3 },
      VisibilityTimeout: 1800,
      MessageRetentionPeriod: 1_209_600,
      SqsManagedSseEnabled: true,
    });
    expect(Object.keys(template.findResources('AWS::SQS::Queue'))).toHaveLength(2);
    expect(Object.keys(template.findResources('AWS::SQS::QueuePolicy', {
      Properties: { PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]) } },
    }))).toHaveLength(2);
  });

  test('the hydrator: triggered by the dead-letter queue with partial batch failures, reads the stream, writes only PutObject under the prefix', () => {
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: getAtt('OrdersDeadLetterQueue'), BatchSize: 1, FunctionResponseTypes: ['ReportBatchItemFailures'],
    });
    template.hasResourceProperties('AWS::Lambda::Function', {
      Timeout: 300,
      Environment: {
        Variables: Match.objectLike({
          BUCKET_NAME: { Ref: Match.stringLikeRegexp('^OrdersBucket') },
          OBJECT_PREFIX: 'hydrated/',
          METRICS_ID: 'Test/Orders',
          STREAM_ARNS: { 'Fn::Join': ['', [getAtt('OrdersStream'), ',', getAtt('OrdersReplayStream')]] },
        }),
      },
    });
    const statements = roleStatements(template, 'OrdersHydratorFunctionRole');
    expect(statements).toEqual(expect.arrayContaining([
      expect.objectContaining({ Action: 's3:PutObject', Resource: { 'Fn::Join': ['', [att('OrdersBucket'), '/hydrated/*']] } }),
      expect.objectContaining({ Action: ['kinesis:GetShardIterator', 'kinesis:GetRecords'], Resource: [att('OrdersStream'), att('OrdersReplayStream')] }),
    ]));
    expect(statements.flatMap((s) => [s.Action].flat()).filter((a: string) => a.startsWith('s3:'))).toEqual(['s3:PutObject']);
  });

  test('the bucket: SSE-S3, TLS only, public access blocked, owner enforced, retained', () => {
    template.hasResource('AWS::S3::Bucket', {
      Properties: Match.objectLike({
        BucketEncryption: { ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
        PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
        OwnershipControls: { Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] },
      }),
      DeletionPolicy: 'Retain',
    });
  });

  test('alarms: the hydration deadline is halfway from the record age to the retention (24 h - 1 h) / 2', () => {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'ApproximateAgeOfOldestMessage',
      Namespace: 'AWS/SQS',
      Threshold: (86_400 - 3_600) / 2,
      Statistic: 'Maximum',
      Dimensions: [{ Name: 'QueueName', Value: getAtt('OrdersDeadLetterQueue', 'QueueName') }],
    });
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Threshold: 1,
      Dimensions: [{ Name: 'QueueName', Value: getAtt('OrdersHydratorDeadLetterQueue', 'QueueName') }],
    });
    const mathAlarms = Object.values<any>(template.findResources('AWS::CloudWatch::Alarm')).filter((a) => a.Properties.Metrics);
    expect(mathAlarms.map((a) => a.Properties.Metrics.find((m: any) => m.Expression).Expression).sort()).toEqual([
      'FILL(errors, 0) + FILL(failed, 0)', 'FILL(partly, 0) + FILL(unreadable, 0)', 'FILL(pipe, 0) + FILL(replay, 0)', 'FILL(pipe, 0) + FILL(replay, 0)',
    ]);
    const metricStats = mathAlarms.flatMap((a) => a.Properties.Metrics.filter((m: any) => m.MetricStat).map((m: any) => m.MetricStat.Metric));
    expect(metricStats.map((m: any) => m.MetricName).sort()).toEqual(['BatchesPartlyUnrecoverable', 'Errors', 'ExecutionFailed', 'ExecutionFailed',
      'MessagesFailed', 'MessagesUnreadable', 'TargetStageFailed', 'TargetStageFailed']);
    // The pipe metrics of the pipe and of the replay pipe.
    expect(metricStats.filter((m: any) => m.Namespace === 'AWS/EventBridge/Pipes').map((m: any) => `${m.MetricName} ${m.Dimensions[0].Value}`).sort())
      .toEqual([`ExecutionFailed ${dlq.pipeName}`, `ExecutionFailed ${dlq.pipeName}-replay`, `TargetStageFailed ${dlq.pipeName}`,
        `TargetStageFailed ${dlq.pipeName}-replay`]);
    expect(Object.keys(template.findResources('AWS::CloudWatch::Alarm'))).toHaveLength(6);
  });

  test('the replay pipe: the pipe\'s settings, target and dead-letter queue, reading the replay stream from its oldest record', () => {
    const pipe = pipeOf(template).Properties;
    expect(replayPipeOf(template).Properties).toEqual({
      ...pipe,
      Name: `${dlq.pipeName}-replay`,
      Description: 'cdk-event-fabric HydratingDlq Test/Orders (replay)',
      Source: att('OrdersReplayStream'),
      SourceParameters: { KinesisStreamParameters: { ...pipe.SourceParameters.KinesisStreamParameters, StartingPosition: 'TRIM_HORIZON' } },
    });
    template.hasResourceProperties('AWS::Kinesis::Stream', {
      StreamModeDetails: { StreamMode: 'PROVISIONED' },
      ShardCount: 1,
      RetentionPeriodHours: 24,
      StreamEncryption: { EncryptionType: 'KMS', KeyId: 'alias/aws/kinesis' },
    });
  });

  test('the replayer: reads and tags the hydrated objects, lists only their prefix, writes only the replay stream', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      Timeout: 300,
      Environment: { Variables: Match.objectLike({ OBJECT_PREFIX: 'hydrated/', REPLAY_STREAM_NAME: { Ref: Match.stringLikeRegexp('^OrdersReplayStream') } }) },
    });
    const statements = roleStatements(template, 'OrdersReplayerFunctionRole');
    expect(statements).toEqual(expect.arrayContaining([
      expect.objectContaining({
        Action: ['s3:GetObject', 's3:GetObjectTagging', 's3:PutObjectTagging'], Resource: { 'Fn::Join': ['', [att('OrdersBucket'), '/hydrated/*']] },
      }),
      expect.objectContaining({ Action: 's3:ListBucket', Resource: att('OrdersBucket'), Condition: { StringLike: { 's3:prefix': 'hydrated/*' } } }),
      expect.objectContaining({ Action: 'kinesis:PutRecords', Resource: att('OrdersReplayStream') }),
    ]));
    expect(statements.flatMap((st) => [st.Action].flat()).filter((a: string) => !a.startsWith('logs:') && !a.startsWith('xray:')).sort())
      .toEqual(['kinesis:PutRecords', 's3:GetObject', 's3:GetObjectTagging', 's3:ListBucket', 's3:PutObjectTagging']);
  });

  test('no unacknowledged cdk-nag findings', () => {
    const app = new App();
    defaultHydratingDlq(newStack(app));
    expect(formatFindings(synthNagFindings(app))).toBe('');
  });
});

describe('HydratingDlq fullest configuration', () => {
  const stack = newStack();
  const dlq = fullestHydratingDlq(stack);
  const template = Template.fromStack(stack);

  test('a provisioned stream of 2 shards, 3 days, the customer key', () => {
    template.hasResourceProperties('AWS::Kinesis::Stream', {
      ShardCount: 2,
      RetentionPeriodHours: 72,
      StreamModeDetails: { StreamMode: 'PROVISIONED' },
      StreamEncryption: { EncryptionType: 'KMS', KeyId: getAtt('Key') },
    });
  });

  test('every pipe setting reaches the pipe', () => {
    const pipe = pipeOf(template);
    expect(pipe.Properties).toEqual(expect.objectContaining({
      Name: 'orders-to-bus',
      Target: att('Bus'),
      SourceParameters: {
        KinesisStreamParameters: {
          BatchSize: 10,
          MaximumBatchingWindowInSeconds: 5,
          MaximumRetryAttempts: 5,
          MaximumRecordAgeInSeconds: 21_600,
          OnPartialBatchItemFailure: 'AUTOMATIC_BISECT',
          ParallelizationFactor: 2,
          StartingPosition: 'LATEST',
          DeadLetterConfig: { Arn: att('OrdersDeadLetterQueue') },
        },
        FilterCriteria: { Filters: [{ Pattern: '{"data":{"type":["order"]}}' }] },
      },
      TargetParameters: {
        EventBridgeEventBusParameters: { DetailType: 'Order', Source: 'orders.stream' },
        InputTemplate: '{"order": <$.data>, "key": "<$.partitionKey>"}',
      },
      LogConfiguration: { Level: 'INFO', IncludeExecutionData: ['ALL'], CloudwatchLogsLogDestination: { LogGroupArn: att('OrdersPipeLogs') } },
    }));
    expect(dlq.apiDestination).toBeUndefined();
    template.resourceCountIs('AWS::Events::ApiDestination', 0);
    // The replay pipe has the same settings, from the replay stream's oldest record.
    expect(replayPipeOf(template).Properties.SourceParameters).toEqual({
      ...pipeOf(template).Properties.SourceParameters,
      KinesisStreamParameters: { ...pipeOf(template).Properties.SourceParameters.KinesisStreamParameters, StartingPosition: 'TRIM_HORIZON' },
    });
    expect(replayPipeOf(template).Properties.TargetParameters).toEqual(pipeOf(template).Properties.TargetParameters);
  });

  test('the replayer may put events on the replay bus, named in its environment, and use the key', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ REPLAY_EVENT_BUS_NAME: { Ref: Match.stringLikeRegexp('^ReplayBus') } }) },
    });
    expect(roleStatements(template, 'OrdersReplayerFunctionRole')).toEqual(expect.arrayContaining([
      expect.objectContaining({ Action: 'events:PutEvents', Resource: att('ReplayBus') }),
      expect.objectContaining({ Action: expect.arrayContaining(['kms:Encrypt', 'kms:GenerateDataKey*']), Resource: att('Key') }),
      expect.objectContaining({ Action: 'kms:Decrypt', Resource: att('Key') }),
    ]));
  });

  test('the pipe\'s role may put events on the bus and use the key for the stream and the dead-letter queue', () => {
    const statements = roleStatements(template, 'OrdersPipeRole');
    expect(statements).toEqual(expect.arrayContaining([
      expect.objectContaining({ Action: 'events:PutEvents', Resource: att('Bus') }),
      expect.objectContaining({ Action: expect.arrayContaining(['kms:Decrypt', 'kms:GenerateDataKey*']), Resource: att('Key') }),
    ]));
  });

  test('queues and bucket use the customer key; the deadline alarm follows the longer retention (72 h - 6 h) / 2; alarms notify the topic', () => {
    template.hasResourceProperties('AWS::SQS::Queue', { KmsMasterKeyId: getAtt('Key'), MessageRetentionPeriod: 7 * 86_400, VisibilityTimeout: 3600 });
    template.hasResourceProperties('AWS::S3::Bucket', {
      BucketEncryption: { ServerSideEncryptionConfiguration: [{ BucketKeyEnabled: true, ServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms', KMSMasterKeyID: getAtt('Key') } }] },
      LoggingConfiguration: { DestinationBucketName: { Ref: Match.stringLikeRegexp('^AccessLogs') }, LogFilePrefix: 'hydrating-dlq/' },
    });
    template.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'ApproximateAgeOfOldestMessage', Threshold: (72 - 6) * 3600 / 2 });
    const alarms = Object.values<any>(template.findResources('AWS::CloudWatch::Alarm'));
    expect(alarms).toHaveLength(6);
    for (const alarm of alarms) expect(alarm.Properties.AlarmActions).toEqual([{ Ref: expect.stringMatching(/^Alarms/) }]);
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', { BatchSize: 5 });
    template.hasResourceProperties('AWS::Lambda::Function', { Timeout: 600, Environment: { Variables: Match.objectLike({ OBJECT_PREFIX: 'failed/' }) } });
  });

  test('no unacknowledged cdk-nag findings', () => {
    const app = new App();
    fullestHydratingDlq(newStack(app));
    expect(formatFindings(synthNagFindings(app))).toBe('');
  });
});

describe('HydratingDlq targets and passed-in resources', () => {
  test.each([
    ['a Lambda function', (s: Stack) => PipeTarget.lambdaFunction(lambda.Function.fromFunctionArn(s, 'Fn', 'arn:aws:lambda:eu-west-1:111111111111:function:orders')),
      { LambdaFunctionParameters: { InvocationType: 'REQUEST_RESPONSE' } }, 'lambda:InvokeFunction'],
    ['a state machine', (s: Stack) => PipeTarget.stateMachine(sfn.StateMachine.fromStateMachineArn(s, 'Sm', 'arn:aws:states:eu-west-1:111111111111:stateMachine:orders')),
      { StepFunctionStateMachineParameters: { InvocationType: 'FIRE_AND_FORGET' } }, 'states:StartExecution'],
    ['a FIFO queue', (s: Stack) => PipeTarget.queue(sqs.Queue.fromQueueArn(s, 'Q', 'arn:aws:sqs:eu-west-1:111111111111:orders.fifo'), { messageGroupId: '$.partitionKey' }),
      { SqsQueueParameters: { MessageGroupId: '$.partitionKey' } }, 'sqs:SendMessage'],
    ['an API destination with HTTP parameters', (s: Stack) => PipeTarget.apiDestination(events.ApiDestination.fromApiDestinationAttributes(s, 'Dest', {
      apiDestinationArn: 'arn:aws:events:eu-west-1:111111111111:api-destination/orders/abc',
      connection: events.Connection.fromEventBusArn(s, 'Conn', 'arn:aws:events:eu-west-1:111111111111:connection/c/abc', 'arn:aws:secretsmanager:eu-west-1:111111111111:secret:c'),
    }), { headerParameters: { 'x-key': '$.partitionKey' } }), { HttpParameters: { HeaderParameters: { 'x-key': '$.partitionKey' } } }, 'events:InvokeApiDestination'],
  ])('%s: its parameters and the one permission it needs', (_name, makeTarget, parameters, action) => {
    const stack = newStack();
    new HydratingDlq(stack, 'Orders', { target: makeTarget(stack) });
    const template = Template.fromStack(stack);
    expect(pipeOf(template).Properties.TargetParameters).toEqual(parameters);
    expect(roleStatements(template, 'OrdersPipeRole').flatMap((s) => [s.Action].flat())).toContain(action);
  });

  test('a passed-in stream and bucket are used, not created; the stream\'s retention bounds the record age', () => {
    const stack = newStack();
    const stream = kinesis.Stream.fromStreamArn(stack, 'Existing', 'arn:aws:kinesis:eu-west-1:111111111111:stream/orders');
    const bucket = s3.Bucket.fromBucketName(stack, 'Hydrated', 'hydrated-orders');
    const dlq = new HydratingDlq(stack, 'Orders', {
      stream,
      bucket,
      streamRetention: Duration.days(7),
      maximumRecordAge: Duration.days(2),
      target: PipeTarget.queue(sqs.Queue.fromQueueArn(stack, 'Q', 'arn:aws:sqs:eu-west-1:111111111111:orders')),
    });
    const template = Template.fromStack(stack);
    // Only the replay stream is created.
    expect(Object.keys(template.findResources('AWS::Kinesis::Stream'))).toEqual([expect.stringMatching(/^OrdersReplayStream/)]);
    template.resourceCountIs('AWS::S3::Bucket', 0);
    expect(dlq.stream).toBe(stream);
    expect(pipeOf(template).Properties.Source).toBe('arn:aws:kinesis:eu-west-1:111111111111:stream/orders');
    expect(roleStatements(template, 'OrdersHydratorFunctionRole')).toEqual(expect.arrayContaining([
      expect.objectContaining({ Action: 's3:PutObject', Resource: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':s3:::hydrated-orders/hydrated/*']] } }),
    ]));
    template.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'ApproximateAgeOfOldestMessage', Threshold: (7 - 2) * 86_400 / 2 });
  });
});

describe('HydratingDlq scale', () => {
  test(`one HydratingDlq adds ${HydratingDlq.RESOURCES_PER_HYDRATING_DLQ} resources in the default configuration`, () => {
    const one = newStack();
    defaultHydratingDlq(one);
    // The fixture's own API key secret is not the construct's.
    expect(resourceCount(one) - 1).toBe(HydratingDlq.RESOURCES_PER_HYDRATING_DLQ);
    expect(resourcesByType(one)).toEqual({
      'AWS::SecretsManager::Secret': 1,
      'AWS::Kinesis::Stream': 2,
      'AWS::Pipes::Pipe': 2,
      'AWS::SQS::Queue': 2,
      'AWS::SQS::QueuePolicy': 2,
      'AWS::S3::Bucket': 1,
      'AWS::S3::BucketPolicy': 1,
      'AWS::Events::Connection': 1,
      'AWS::Events::ApiDestination': 1,
      'AWS::Logs::LogGroup': 3,
      'AWS::IAM::Role': 3,
      'AWS::IAM::Policy': 3,
      'AWS::Lambda::Function': 2,
      'AWS::Lambda::EventSourceMapping': 1,
      'AWS::CloudWatch::Alarm': 6,
    });
  });

  test('a stack over CloudFormation\'s 500 resources fails synth and says how many fit', () => {
    const app = new App();
    const stack = newStack(app);
    const target = PipeTarget.queue(sqs.Queue.fromQueueArn(stack, 'Q', 'arn:aws:sqs:eu-west-1:111111111111:orders'));
    for (let i = 0; i < 18; i++) new HydratingDlq(stack, `Orders${i}`, { target });
    expect(() => app.synth()).toThrow(/holds \d+ CloudFormation resources, over the limit of 500\. Each HydratingDlq adds about 30 resources, so one stack fits about 16/);
  });
});

describe('HydratingDlq prop validation', () => {
  const target = (s: Stack) => PipeTarget.queue(sqs.Queue.fromQueueArn(s, 'Q', 'arn:aws:sqs:eu-west-1:111111111111:orders'));
  const cases: [string, (s: Stack) => Partial<HydratingDlqProps>, string][] = [
    ['neither target nor endpoint', () => ({ target: undefined }), 'invalid target/endpoint {}; allowed: exactly one of them'],
    ['both target and endpoint', () => ({ endpoint: 'https://a.example.com' }), 'invalid target/endpoint {"target":"queue","endpoint":"https://a.example.com"}'],
    ['an http endpoint', () => ({ target: undefined, endpoint: 'http://a.example.com' }), 'invalid endpoint "http://a.example.com"; allowed: an absolute https:// URL'],
    ['an endpoint without authorization', () => ({ target: undefined, endpoint: 'https://a.example.com' }),
      'invalid authorization/connection {"authorization":false,"connection":false}; allowed: exactly one of them with `endpoint`'],
    ['httpMethod with a target', () => ({ httpMethod: events.HttpMethod.PUT }), 'invalid httpMethod "(given)"; allowed: only with `endpoint`'],
    ['shardCount on demand', () => ({ shardCount: 2 }), 'invalid shardCount 2; allowed: only with streamMode PROVISIONED'],
    ['streamMode with a passed-in stream', (s) => ({
      stream: kinesis.Stream.fromStreamArn(s, 'S', 'arn:aws:kinesis:eu-west-1:111111111111:stream/x'),
      streamMode: kinesis.StreamMode.ON_DEMAND,
    }), 'invalid streamMode/shardCount {"streamMode":"ON_DEMAND"}; allowed: only for the created stream'],
    ['a retention under 24 hours', () => ({ streamRetention: Duration.hours(12) }), 'invalid streamRetention "12 hours"; allowed: whole hours from 24 hours to 365 days'],
    ['batchSize 0', () => ({ batchSize: 0 }), 'invalid batchSize 0; allowed: an integer from 1 to 10000 records'],
    ['a batching window over 300 s', () => ({ maximumBatchingWindow: Duration.minutes(6) }), 'invalid maximumBatchingWindow 360; allowed: an integer from 0 to 300 seconds'],
    ['infinite retries', () => ({ maximumRetryAttempts: -1 }), 'invalid maximumRetryAttempts -1; allowed: an integer from 0 to 10000 (never -1, infinite)'],
    ['a record age under a minute', () => ({ maximumRecordAge: Duration.seconds(30) }), 'invalid maximumRecordAge 30; allowed: an integer from 60 to 604800 seconds'],
    ['a record age as long as the retention', () => ({ maximumRecordAge: Duration.hours(24) }),
      'invalid maximumRecordAge "1 day"; allowed: shorter than the stream\'s retention (1 day), so a failed batch\'s records are still in the stream'],
    ['parallelization 11', () => ({ parallelizationFactor: 11 }), 'invalid parallelizationFactor 11; allowed: an integer from 1 to 10'],
    ['a pipe name with a slash', () => ({ pipeName: 'orders/api' }), 'invalid pipeName "orders/api"; allowed: 1 to 57 characters of A-Z a-z 0-9 . _ -, not ending in "-replay"'],
    ['a prefix without a trailing slash', () => ({ objectPrefix: 'hydrated' }), 'invalid objectPrefix "hydrated"; allowed: empty, or up to 100 characters'],
    ['a filter that is not JSON', () => ({ filterPatterns: ['{data'] }), 'invalid filterPatterns "{data"; allowed: JSON event patterns'],
    ['an empty filter', () => ({ filterPatterns: ['{}'] }), 'invalid filterPatterns "{}"; allowed: JSON event patterns'],
    ['6 filters', () => ({ filterPatterns: Array(6).fill('{"a":[1]}') }), `invalid filterPatterns ${JSON.stringify(Array(6).fill('{"a":[1]}'))}; allowed: at most 5 patterns`],
    ['a template over 8,192 characters', () => ({ inputTemplate: 'x'.repeat(8193) }), 'invalid inputTemplate "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx..."; allowed: at most 8,192 characters'],
    ['hydratorBatchSize 11', () => ({ hydratorBatchSize: 11 }), 'invalid hydratorBatchSize 11; allowed: an integer from 1 to 10 messages'],
    ['a hydrator timeout over 15 minutes', () => ({ hydratorTimeout: Duration.minutes(16) }), 'invalid hydratorTimeout 960; allowed: an integer from 30 to 900 seconds'],
    ['a DLQ retention over 14 days', () => ({ deadLetterQueueRetention: Duration.days(15) }), 'invalid deadLetterQueueRetention 1296000; allowed: an integer from 7200 to 1209600 seconds (at least 4 visibility timeouts'],
  ];
  test.each(cases)('%s', (_name, props, message) => {
    const stack = newStack();
    expect(() => new HydratingDlq(stack, 'Orders', { target: target(stack), ...props(stack) })).toThrow(`Test/Orders: ${message}`);
  });
});
