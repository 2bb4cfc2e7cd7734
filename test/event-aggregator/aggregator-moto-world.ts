import { CreateEventBusCommand, PutRuleCommand, PutTargetsCommand } from '@aws-sdk/client-eventbridge';
import { createAggregatesTable } from './aggregator-fixtures';
import { DEFAULT_AGGREGATE_SOURCE } from '../../src/event-aggregator/aggregator-contract';
import { createMotoQueue, MotoClients, MotoQueue, uniqueName } from '../support/moto';

/** An aggregator's surroundings on moto: its table, an output bus, and a queue capturing every aggregated event. */
export interface AggregatorMotoWorld {
  readonly tableName: string;
  readonly busName: string;
  readonly capture: MotoQueue;
}

export async function createAggregatorMotoWorld(clients: Pick<MotoClients, 'dynamoDb' | 'eventBridge' | 'sqs'>): Promise<AggregatorMotoWorld> {
  const tableName = await createAggregatesTable(clients.dynamoDb, uniqueName('aggregates'));
  const busName = uniqueName('orders');
  await clients.eventBridge.send(new CreateEventBusCommand({ Name: busName }));
  const capture = await createMotoQueue(clients.sqs, 'aggregates');
  const rule = uniqueName('capture');
  await clients.eventBridge.send(new PutRuleCommand({
    Name: rule, EventBusName: busName, EventPattern: JSON.stringify({ source: [DEFAULT_AGGREGATE_SOURCE] }),
  }));
  await clients.eventBridge.send(new PutTargetsCommand({ Rule: rule, EventBusName: busName, Targets: [{ Id: 'capture', Arn: capture.arn }] }));
  return { tableName, busName, capture };
}
