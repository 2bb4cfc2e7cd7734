import { Logger } from '@aws-lambda-powertools/logger';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { RouteWriteRequest } from './orchestrator-contract';
import { DynamoRouteStore } from './route-store-core';
import {
  handleRoutesResource, handleRouteWriteRequest, RoutesResourceEvent, routeWriterConfigFromEnv,
} from './route-writer-core';

const logger = new Logger();
const store = new DynamoRouteStore(new DynamoDBClient({}), process.env.ROUTES_TABLE_NAME ?? '');

/**
 * Writes routes after validating them: at deploy as the routes custom resource (through the
 * CDK Provider framework), and at run time when invoked with
 * `{ "putRoutes": [...], "deleteChannels": [...] }`. An invalid route fails the deploy or
 * the invocation with every problem listed, and nothing is written.
 */
export async function handler(event: RoutesResourceEvent | RouteWriteRequest): Promise<unknown> {
  const config = routeWriterConfigFromEnv(process.env);
  try {
    const result = 'RequestType' in event
      ? await handleRoutesResource(event, store, config)
      : await handleRouteWriteRequest(event, store, config);
    logger.info('routes written', { result });
    return result;
  } catch (error) {
    logger.error('routes not written', error as Error);
    throw error;
  }
}
