import { randomUUID } from 'crypto';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { KinesisClient } from '@aws-sdk/client-kinesis';
import { S3Client } from '@aws-sdk/client-s3';
import { CreateQueueCommand, GetQueueAttributesCommand, ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { NodeHttpHandler } from '@smithy/node-http-handler';

/** AWS SDK clients pointed at the moto server started by the jest global setup. */
export interface MotoClients {
  readonly endpoint: string;
  readonly sqs: SQSClient;
  readonly eventBridge: EventBridgeClient;
  readonly s3: S3Client;
  readonly dynamoDb: DynamoDBClient;
  /** Over HTTP/1.1: the Kinesis client speaks HTTP/2 by default, which moto's server does not. */
  readonly kinesis: KinesisClient;
}

/** The moto server's endpoint; throws if the global setup did not start one. */
export function motoEndpoint(): string {
  const endpoint = process.env.MOTO_ENDPOINT;
  if (!endpoint) {
    throw new Error('MOTO_ENDPOINT is not set: moto tests need jest\'s globalSetup (test/support/moto-global-setup.ts) to start the moto server');
  }
  return endpoint;
}

/** SQS, EventBridge, S3, DynamoDB and Kinesis clients for the moto server, with dummy credentials. */
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
    kinesis: new KinesisClient({ ...config, requestHandler: new NodeHttpHandler() }),
  };
}

/** A resource name unique to this run, so tests never share moto state. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

/** A queue on moto: its URL and ARN. */
export interface MotoQueue {
  readonly url: string;
  readonly arn: string;
}

/**
 * Creates a queue with a unique name (and the given attributes, e.g. a redrive policy).
 * Again when moto answers with a server error: its CreateQueue with a redrive policy iterates
 * its queues unguarded, so a queue another test file creates on the shared server at that
 * moment can make it fail (a 500, which the SDK reports as a deserialization error). Nothing
 * is created then; the retry uses a new name.
 */
export async function createMotoQueue(sqs: SQSClient, prefix: string, attributes: Record<string, string> = {}): Promise<MotoQueue> {
  for (let attempt = 1; ; attempt++) {
    try {
      const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: uniqueName(prefix), Attributes: attributes }));
      const { Attributes } = await sqs.send(new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ['QueueArn'] }));
      return { url: QueueUrl!, arn: Attributes!.QueueArn! };
    } catch (err) {
      const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode
        ?? (err as { $response?: { statusCode?: number } }).$response?.statusCode ?? 0;
      if (attempt >= 3 || status < 500) throw err;
    }
  }
}

/**
 * Every message body in a queue, each received once: they stay hidden for the rest of the
 * test, so read a queue once, at the end.
 */
export async function drainMotoQueue(sqs: SQSClient, queueUrl: string): Promise<string[]> {
  const bodies: string[] = [];
  for (;;) {
    const { Messages } = await sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, VisibilityTimeout: 600 }));
    if (!Messages?.length) return bodies;
    bodies.push(...Messages.map((m) => m.Body!));
  }
}
