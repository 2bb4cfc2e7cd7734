import { Logger } from '@aws-lambda-powertools/logger';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { ROUTE_WRITER_ENV, RouteWriteRequest, RouteWriterEntry } from './orchestrator-contract';
import { DynamoRouteStore } from './route-store-core';
import {
  handleRoutesResource, handleRouteWriteRequest, RoutesResourceEvent, RouteWriterConfig, routeWriterConfigFromEnv,
} from './route-writer-core';

const logger = new Logger();
/** Which function this is: only the routes custom resource's (`deploy`) takes its events, which register the followers. */
const entry: RouteWriterEntry = process.env[ROUTE_WRITER_ENV.ENTRY] === 'deploy' ? 'deploy' : 'api';
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
    const result = await handle(event, config);
    logger.info('routes written', { result });
    return result;
  } catch (error) {
    logger.error('routes not written', error as Error);
    throw error;
  }
}

function handle(event: RoutesResourceEvent | RouteWriteRequest, config: RouteWriterConfig): Promise<unknown> {
  const isResourceEvent = typeof event === 'object' && event !== null && 'RequestType' in event;
  if (isResourceEvent && entry !== 'deploy') {
    throw new Error('the route writer takes { "putRoutes", "deleteChannels", "deleteRoutes" } only: custom resource events, which '
      + 'register the followers, are taken by the routes custom resource\'s own function at deploy');
  }
  if (!isResourceEvent && entry === 'deploy') {
    throw new Error('the routes resource function takes the routes custom resource\'s events only; write routes at run time with '
      + 'the route writer function (LeaderFollowerOrchestrator.routeWriterFunction)');
  }
  return isResourceEvent
    ? handleRoutesResource(event as RoutesResourceEvent, store, config)
    : handleRouteWriteRequest(event as RouteWriteRequest, store, config);
}
