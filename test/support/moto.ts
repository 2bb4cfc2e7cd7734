import { randomUUID } from 'crypto';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';

/** AWS SDK clients pointed at the moto server started by the jest global setup. */
export interface MotoClients {
  readonly endpoint: string;
  readonly sqs: SQSClient;
  readonly eventBridge: EventBridgeClient;
  readonly s3: S3Client;
  readonly dynamoDb: DynamoDBClient;
}

/** The moto server's endpoint; throws if the global setup did not start one. */
export function motoEndpoint(): string {
  const endpoint = process.env.MOTO_ENDPOINT;
  if (!endpoint) {
    throw new Error('MOTO_ENDPOINT is not set: moto tests need jest\'s globalSetup (test/support/moto-global-setup.ts) to start the moto server');
  }
  return endpoint;
}

/** SQS, EventBridge, S3 and DynamoDB clients for the moto server, with dummy credentials. */
export function motoClients(): MotoClients {
  const endpoint = motoEndpoint();
  const config = {
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
    maxAttempts: 1,
  };
  return {
    endpoint,
    sqs: new SQSClient(config),
    eventBridge: new EventBridgeClient(config),
    s3: new S3Client({ ...config, forcePathStyle: true }),
    dynamoDb: new DynamoDBClient(config),
  };
}

/** A resource name unique to this run, so tests never share moto state. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}
