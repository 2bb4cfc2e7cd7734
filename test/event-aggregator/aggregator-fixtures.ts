import { CreateTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { marshall } from '@aws-sdk/util-dynamodb';
import type { DynamoDBRecord, DynamoDBStreamEvent } from 'aws-lambda';
import { eventKey } from '../../src/event-aggregator/aggregator-contract';
import type { AggregatorConfig, AggregatorMetric } from '../../src/event-aggregator/aggregator-core';

/** A fixed clock for the unit tests: 2027-01-15T08:00:00Z. */
export const NOW = 1_800_000_000;
export const DAY = 86_400;
export const ACCOUNT_CHECK = 'Account Check';
export const IN_STOCK = 'In Stock';

export const CONFIG: AggregatorConfig = {
  tableName: 'aggregates',
  outputBusName: 'orders',
  source: 'cdk-event-fabric.aggregator',
  requiredEvents: [ACCOUNT_CHECK, IN_STOCK],
  emitOnEveryChange: false,
  deadlineSeconds: 0,
  itemTtlSeconds: 7 * DAY,
};

export const SCHEDULE = {
  groupName: 'aggregator-deadlines',
  targetArn: 'arn:aws:lambda:us-east-1:111111111111:function:aggregator',
  roleArn: 'arn:aws:iam::111111111111:role/scheduler-invoke',
  dlqArn: 'arn:aws:sqs:us-east-1:111111111111:deadline-dlq',
};

/** An event item as the recorder writes it: keyed by name, U+001F and event id; the detail as JSON text. */
export function eventItem(correlationId: string, eventName: string, payload: unknown = { ok: true },
  options: { receivedAt?: string; now?: number; eventId?: string; recordedAt?: string } = {}) {
  const eventId = options.eventId ?? `evt-${correlationId}-${eventName.replace(/\s/g, '-')}`;
  return {
    correlationId,
    eventName: eventKey(eventName, eventId),
    eventId,
    receivedAt: options.receivedAt ?? new Date((options.now ?? NOW) * 1000).toISOString(),
    ...(options.recordedAt ? { recordedAt: options.recordedAt } : {}),
    payloadJson: JSON.stringify(payload),
    expiresAt: (options.now ?? NOW) + 7 * DAY,
  };
}

let sequence = 1000;

/** A stream record of a write to the table, as Lambda receives it (NEW_IMAGE view). */
export function streamRecord(kind: 'INSERT' | 'MODIFY' | 'REMOVE', item: Record<string, unknown>): DynamoDBRecord {
  sequence++;
  const keys = marshall({ correlationId: item.correlationId, eventName: item.eventName });
  return {
    eventID: `ev-${sequence}`,
    eventName: kind,
    eventSource: 'aws:dynamodb',
    eventSourceARN: 'arn:aws:dynamodb:us-east-1:111111111111:table/aggregates/stream/2027-01-01T00:00:00.000',
    dynamodb: {
      Keys: keys as any,
      ...(kind === 'REMOVE' ? {} : { NewImage: marshall(item, { removeUndefinedValues: true }) as any }),
      SequenceNumber: String(sequence).padStart(21, '0'),
      StreamViewType: 'NEW_IMAGE',
    },
  };
}

export const streamEvent = (...records: DynamoDBRecord[]): DynamoDBStreamEvent => ({ Records: records });

/** Metrics summed by name. */
export function captureMetrics(): { metric: (name: AggregatorMetric, value: number) => void; totals: Partial<Record<AggregatorMetric, number>> } {
  const totals: Partial<Record<AggregatorMetric, number>> = {};
  return { totals, metric: (name, value) => { totals[name] = (totals[name] ?? 0) + value; } };
}

export { captureLogger } from '../support/capture-logger';

/** Creates the aggregator's table layout (keys only) on moto; returns its name. */
export async function createAggregatesTable(dynamoDb: Pick<DynamoDBClient, 'send'>, tableName: string): Promise<string> {
  await dynamoDb.send(new CreateTableCommand({
    TableName: tableName,
    BillingMode: 'PAY_PER_REQUEST',
    KeySchema: [{ AttributeName: 'correlationId', KeyType: 'HASH' }, { AttributeName: 'eventName', KeyType: 'RANGE' }],
    AttributeDefinitions: [{ AttributeName: 'correlationId', AttributeType: 'S' }, { AttributeName: 'eventName', AttributeType: 'S' }],
  }));
  return tableName;
}

/** The seed's two checks, no deadline, a week of item lifetime, on the given table and bus. */
export function seedConfig(tableName: string, outputBusName: string): AggregatorConfig {
  return { ...CONFIG, tableName, outputBusName };
}
