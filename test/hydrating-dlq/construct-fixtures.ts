import { Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as cloudwatchActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as events from 'aws-cdk-lib/aws-events';
import * as kinesis from 'aws-cdk-lib/aws-kinesis';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sns from 'aws-cdk-lib/aws-sns';
import { ChannelAuthorization, HydratingDlq, HydratingDlqProps, PipeLogLevel, PipeStartingPosition, PipeTarget } from '../../src';

/** The default configuration: an API destination to an endpoint with an API key. */
export function defaultHydratingDlq(stack: Stack, extra: Partial<HydratingDlqProps> = {}): HydratingDlq {
  const secret = new secretsmanager.Secret(stack, 'ApiKey');
  // The user's secret, not the construct's: rotation is theirs to schedule.
  Validations.of(secret).acknowledge({ id: 'AwsSolutions-SMG4', reason: 'A test fixture\'s API key; its rotation belongs to the API\'s owner.' });
  return new HydratingDlq(stack, 'Orders', {
    endpoint: 'https://api.example.com/orders',
    authorization: ChannelAuthorization.apiKey({ headerName: 'x-api-key', secret }),
    ...extra,
  });
}

/** Every prop set: a customer key, a provisioned stream, an event bus target, filters, logs, alarms. */
export function fullestHydratingDlq(stack: Stack): HydratingDlq {
  const key = new kms.Key(stack, 'Key', { enableKeyRotation: true });
  const bus = new events.EventBus(stack, 'Bus');
  const logs = new s3.Bucket(stack, 'AccessLogs', { enforceSSL: true, encryption: s3.BucketEncryption.S3_MANAGED });
  const topic = new sns.Topic(stack, 'Alarms', { masterKey: key, enforceSSL: true });
  return new HydratingDlq(stack, 'Orders', {
    streamMode: kinesis.StreamMode.PROVISIONED,
    shardCount: 2,
    streamRetention: Duration.days(3),
    encryptionKey: key,
    target: PipeTarget.eventBus(bus, { detailType: 'Order', source: 'orders.stream' }),
    pipeName: 'orders-to-bus',
    batchSize: 10,
    maximumBatchingWindow: Duration.seconds(5),
    maximumRetryAttempts: 5,
    maximumRecordAge: Duration.hours(6),
    bisectBatchOnFailure: true,
    parallelizationFactor: 2,
    startingPosition: PipeStartingPosition.LATEST,
    inputTemplate: '{"order": <$.data>, "key": "<$.partitionKey>"}',
    filterPatterns: ['{"data":{"type":["order"]}}'],
    logLevel: PipeLogLevel.INFO,
    logExecutionData: true,
    deadLetterQueueRetention: Duration.days(7),
    objectPrefix: 'failed/',
    serverAccessLogsBucket: logs,
    hydratorBatchSize: 5,
    hydratorTimeout: Duration.minutes(10),
    removalPolicy: RemovalPolicy.DESTROY,
    alarmActions: [new cloudwatchActions.SnsAction(topic)],
    replayEventBus: new events.EventBus(stack, 'ReplayBus'),
  });
}
