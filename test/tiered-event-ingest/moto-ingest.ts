import { CreateTableCommand } from '@aws-sdk/client-dynamodb';
import { CreateEventBusCommand, PutRuleCommand, PutTargetsCommand } from '@aws-sdk/client-eventbridge';
import { CreateBucketCommand, PutBucketVersioningCommand } from '@aws-sdk/client-s3';
import { createMotoQueue, MotoClients, MotoQueue, uniqueName } from '../support/moto';

/** The resources of a TieredEventIngest that its handlers touch, made in moto. */
export interface MotoIngest {
  /** Versioned, as S3 notifications then carry version ids. */
  readonly bucket: string;
  /** The publisher's ledger table (key `objectId`). */
  readonly table: string;
  /** The curated bus. */
  readonly bus: string;
  /** Receives what the curated bus delivers (the detail-types asked for, or every event of the library). */
  readonly capture: MotoQueue;
}

/** Creates the bucket, the ledger table, and the curated bus with a rule to a capture queue. */
export async function createMotoIngest(clients: MotoClients, captureDetailTypes?: string[]): Promise<MotoIngest> {
  const { s3, dynamoDb, eventBridge, sqs } = clients;
  const bucket = uniqueName('ingest');
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  await s3.send(new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: 'Enabled' } }));
  const table = uniqueName('ledger');
  await dynamoDb.send(new CreateTableCommand({
    TableName: table,
    BillingMode: 'PAY_PER_REQUEST',
    KeySchema: [{ AttributeName: 'objectId', KeyType: 'HASH' }],
    AttributeDefinitions: [{ AttributeName: 'objectId', AttributeType: 'S' }],
  }));
  const bus = uniqueName('curated');
  await eventBridge.send(new CreateEventBusCommand({ Name: bus }));
  const capture = await createMotoQueue(sqs, 'capture');
  const rule = uniqueName('capture');
  const pattern = { source: ['cdk-event-fabric'], ...(captureDetailTypes ? { 'detail-type': captureDetailTypes } : {}) };
  await eventBridge.send(new PutRuleCommand({ Name: rule, EventBusName: bus, EventPattern: JSON.stringify(pattern) }));
  await eventBridge.send(new PutTargetsCommand({ Rule: rule, EventBusName: bus, Targets: [{ Id: 'capture', Arn: capture.arn }] }));
  return { bucket, table, bus, capture };
}
