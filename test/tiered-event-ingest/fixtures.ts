import { Duration, RemovalPolicy, Size, Stack, Validations } from 'aws-cdk-lib';
import * as cloudwatchActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { TieredEventIngest, TieredEventIngestProps } from '../../src';

/** The default configuration: no props at all. */
export function defaultIngest(stack: Stack, overrides: TieredEventIngestProps = {}, id = 'Ingest'): TieredEventIngest {
  return new TieredEventIngest(stack, id, overrides);
}

/** Every option set: customer key, routes, tuning, retention, access logs, alarm actions. */
export function fullestIngest(stack: Stack): TieredEventIngest {
  const key = new kms.Key(stack, 'IngestKey', { enableKeyRotation: true });
  const topic = new sns.Topic(stack, 'Alarms', { enforceSSL: true, masterKey: key });
  const logs = accessLogsBucket(stack);
  const audit = new sqs.Queue(stack, 'AuditQueue', { encryption: sqs.QueueEncryption.KMS, encryptionMasterKey: key, enforceSSL: true });
  Validations.of(audit).acknowledge({ id: 'AwsSolutions-SQS3', reason: 'Test fixture: a route target owned by the user.' });
  Validations.of(audit).acknowledge({ id: 'Serverless-SQSRedrivePolicy', reason: 'Test fixture: a route target owned by the user.' });
  const ingest = new TieredEventIngest(stack, 'FullIngest', {
    encryptionKey: key,
    archiveRetention: Duration.days(365),
    envelopePaths: { tenantIdPath: '$.detail.tenant.id', channelPath: '$.detail.route', correlationIdPath: '$.detail.traceId' },
    fastRoutes: [
      { id: 'Orders', eventPattern: { source: ['shop.orders'] }, description: 'Orders, relayed' },
      { id: 'Audit', eventPattern: { source: ['shop.audit'] }, target: new targets.SqsQueue(audit) },
    ],
    fastLaneRetryAttempts: 20,
    fastLaneMaxEventAge: Duration.hours(2),
    slowLaneEventPattern: { source: ['shop.clicks', 'shop.views'] },
    partitionKeyQuery: '.tenant // "unknown"',
    bufferingSize: Size.mebibytes(64),
    bufferingInterval: Duration.seconds(300),
    compressObjects: false,
    dataRetention: Duration.days(7),
    quarantineRetention: Duration.days(180),
    serverAccessLogsBucket: logs,
    removalPolicy: RemovalPolicy.DESTROY,
    publisherTimeout: Duration.minutes(10),
    publisherMemorySize: 2048,
    publisherMaxReceiveCount: 3,
    maxEntryBytes: 262_144,
    maxRecordsPerEvent: 500,
    alarmActions: [new cloudwatchActions.SnsAction(topic)],
  });
  ingest.addFastRoute('Payments', { eventPattern: { source: ['shop.payments'], detailType: ['PaymentCaptured'] } });
  return ingest;
}

/** An SSE-S3 bucket for server access logs (S3 cannot log to an SSE-KMS bucket). */
export function accessLogsBucket(stack: Stack): s3.Bucket {
  const bucket = new s3.Bucket(stack, 'AccessLogs', {
    encryption: s3.BucketEncryption.S3_MANAGED,
    enforceSSL: true,
    blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
  });
  Validations.of(bucket).acknowledge({ id: 'AwsSolutions-S1', reason: 'Test fixture: this bucket holds the access logs; logging it to itself would loop.' });
  return bucket;
}

/** A bus the user owns, for the tests that pass existing buses. */
export function userBus(stack: Stack, id: string): events.EventBus {
  return new events.EventBus(stack, id);
}
