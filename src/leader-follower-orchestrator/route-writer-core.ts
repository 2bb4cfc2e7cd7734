import {
  CHANNEL_NAME_PATTERN, FOLLOWERS_ITEM_KEY, MAX_FOLLOWERS, ROUTE_WRITER_ENV, RouteItem, routeKey, RouteWriteRequest,
} from './orchestrator-contract';
import { checkRoute, unregisteredFollowers } from './route-schema';
import { followersOfItem, marshallRoute, registeredFollowers, RouteStore } from './route-store-core';
import { positiveIntegerEnv } from '../runtime/env-settings';

/** The route writer's settings, from its environment. */
export interface RouteWriterConfig {
  /**
   * Names of the registered followers. Default: at deploy, those of the custom resource's
   * `Followers` property; at run time, those of the routes table's followers item.
   */
  readonly followerNames?: string[];
  readonly maxHops: number;
}

/** `validateRoutes`'s settings: the registered names are known. */
type KnownFollowers = RouteWriterConfig & { readonly followerNames: string[] };

/** The part of a CloudFormation custom resource event (through the CDK Provider framework) the writer reads. */
export interface RoutesResourceEvent {
  readonly RequestType: 'Create' | 'Update' | 'Delete';
  readonly PhysicalResourceId?: string;
  /** `Routes`: JSON list of route items; `Followers`: JSON object of follower name to function ARN. */
  readonly ResourceProperties: { readonly Routes?: string; readonly Followers?: string };
  readonly OldResourceProperties?: { readonly Routes?: string; readonly Followers?: string };
}

/** Physical id of the routes custom resource: stable, so an update never replaces (and deletes) it. */
export const ROUTES_RESOURCE_ID = 'orchestrator-routes';

/** What a write did. */
export interface RouteWriteResult {
  readonly written: string[];
  readonly deleted: string[];
}

/**
 * Validates routes (schema, hop limit, registered followers), all of them before writing any,
 * and throws one error listing every problem. The same checks run when the leader reads a route.
 */
export function validateRoutes(routes: unknown, config: KnownFollowers): RouteItem[] {
  if (!Array.isArray(routes)) throw new Error(`routes must be a list of route items, got ${JSON.stringify(routes)}`);
  const problems: string[] = [];
  const seen = new Set<string>();
  routes.forEach((route, index) => {
    const check = checkRoute(route, config.maxHops);
    const label = `route ${index} (${JSON.stringify((route as RouteItem | undefined)?.channel)})`;
    if (!check.valid) {
      problems.push(`${label}: ${check.errors.join('; ')}`);
      return;
    }
    const item = route as RouteItem;
    try {
      marshallRoute(item);
    } catch (error) {
      problems.push(`${label}: cannot be stored in DynamoDB: ${(error as Error).message}`);
    }
    const unknown = unregisteredFollowers(item, config.followerNames);
    if (unknown.length > 0) {
      problems.push(`${label}: followers ${JSON.stringify(unknown)} are not registered; allowed: ${JSON.stringify([...config.followerNames].sort())}`);
    }
    const key = routeKey(item);
    if (seen.has(key)) problems.push(`${label}: the route of this channel${item.tenant !== undefined || item.eventType !== undefined ? ', tenant and event type' : ''} is given twice`);
    seen.add(key);
  });
  if (problems.length > 0) throw new Error(`invalid routes, nothing written: ${problems.join(' | ')}`);
  return routes as RouteItem[];
}

/**
 * What the routes custom resource answers CloudFormation: counts only. A response is limited to
 * 4,096 bytes, so it never lists the channels (a few hundred routes would fail the deploy);
 * each route item says when and by whom it was written (`updatedAt`, `updatedBy: "deploy"`).
 */
export interface RoutesResourceResponse {
  readonly PhysicalResourceId: string;
  readonly Data: { readonly written: number; readonly deleted: number };
}

/**
 * Writes the routes of the construct's props at deploy: all of them on Create; on Update only
 * those added or changed, and deletes the channels the update removed. Delete leaves the routes
 * to the table's own removal policy.
 */
export async function handleRoutesResource(event: RoutesResourceEvent, store: RouteStore, config: RouteWriterConfig,
  now: () => Date = () => new Date()): Promise<RoutesResourceResponse> {
  if (event.RequestType === 'Delete') {
    return { PhysicalResourceId: event.PhysicalResourceId ?? ROUTES_RESOURCE_ID, Data: { written: 0, deleted: 0 } };
  }
  // The followers item is written first: a route is never readable before the followers it names.
  const followers = event.ResourceProperties.Followers !== undefined
    ? followersOfItem({ followers: JSON.parse(event.ResourceProperties.Followers) }) : undefined;
  if (followers && Object.keys(followers).length > MAX_FOLLOWERS) {
    throw new Error(`${Object.keys(followers).length} followers; allowed: at most ${MAX_FOLLOWERS}`);
  }
  const known = { ...config, followerNames: config.followerNames ?? Object.keys(followers ?? {}) };
  const routes = validateRoutes(JSON.parse(event.ResourceProperties.Routes ?? '[]'), known);
  if (followers) await store.put({ channel: FOLLOWERS_ITEM_KEY, followers, updatedAt: now().toISOString(), updatedBy: 'deploy' });
  const oldRoutes = event.RequestType === 'Update' ? JSON.parse(event.OldResourceProperties?.Routes ?? '[]') as RouteItem[] : [];
  // Only routes added or changed in the props are written, so a deploy keeps run-time edits of the others.
  const before = new Map((Array.isArray(oldRoutes) ? oldRoutes : []).map((r) => [keyOf(r), JSON.stringify(r)]));
  const changed = routes.filter((r) => before.get(routeKey(r)) !== JSON.stringify(r));
  const result = await writeRoutes(store, changed, removedKeys(oldRoutes, routes), 'deploy', now);
  return { PhysicalResourceId: ROUTES_RESOURCE_ID, Data: { written: result.written.length, deleted: result.deleted.length } };
}

/** A direct invocation: `{ putRoutes: [...], deleteChannels: [...] }`, validated like deploy-time routes. */
export async function handleRouteWriteRequest(request: RouteWriteRequest, store: RouteStore, config: RouteWriterConfig,
  now: () => Date = () => new Date()): Promise<RouteWriteResult> {
  if (typeof request !== 'object' || request === null
    || (request.putRoutes === undefined && request.deleteChannels === undefined && request.deleteRoutes === undefined)) {
    throw new Error('expected { "putRoutes": [route, ...], "deleteChannels": [channel, ...], "deleteRoutes": [{ "channel", "tenant"?, '
      + `"eventType"? }, ...] }, got ${JSON.stringify(request)}`);
  }
  const known = { ...config, followerNames: config.followerNames ?? Object.keys(await registeredFollowers(store)) };
  const routes = validateRoutes(request.putRoutes ?? [], known);
  const deletes = request.deleteChannels ?? [];
  // A channel name: the followers item (not ASCII) can never be deleted this way.
  const channel = new RegExp(CHANNEL_NAME_PATTERN);
  if (!Array.isArray(deletes) || deletes.some((c) => typeof c !== 'string' || !channel.test(c))) {
    throw new Error(`deleteChannels must be a list of channel names (printable ASCII), got ${JSON.stringify(deletes)}`);
  }
  const selectors = request.deleteRoutes ?? [];
  const selectorCheck = (r: unknown) => checkRoute({ ...(r as object), followers: ['x'] });
  if (!Array.isArray(selectors) || selectors.some((r) => typeof r !== 'object' || r === null || 'followers' in r || !selectorCheck(r).valid)) {
    throw new Error('deleteRoutes must be a list of { "channel": a channel name, "tenant"?: a tenant, "eventType"?: an event type }, '
      + `got ${JSON.stringify(selectors)}`);
  }
  return writeRoutes(store, routes, [...deletes, ...selectors.map((r) => routeKey(r))], 'api', now);
}

/** Writes each route under its route key (its channel, or its channel, tenant and event type), then deletes the keys. */
async function writeRoutes(store: RouteStore, routes: RouteItem[], deletes: string[], updatedBy: string,
  now: () => Date): Promise<RouteWriteResult> {
  const updatedAt = now().toISOString();
  for (const route of routes) {
    await store.put({ ...route, channel: routeKey(route), updatedAt, updatedBy });
  }
  for (const key of deletes) {
    await store.delete(key);
  }
  return { written: routes.map(routeKey), deleted: deletes };
}

/** The route key of an old route as CloudFormation sent it back (undefined when it is not a route). */
function keyOf(route: unknown): string | undefined {
  return typeof route === 'object' && route !== null && typeof (route as RouteItem).channel === 'string' ? routeKey(route as RouteItem) : undefined;
}

function removedKeys(oldRoutes: RouteItem[], routes: RouteItem[]): string[] {
  const kept = new Set(routes.map(routeKey));
  return (Array.isArray(oldRoutes) ? oldRoutes : []).map(keyOf).filter((k): k is string => k !== undefined && !kept.has(k));
}

/** Reads the route writer's settings from its environment. */
export function routeWriterConfigFromEnv(env: NodeJS.ProcessEnv): RouteWriterConfig {
  return { maxHops: positiveIntegerEnv(env, ROUTE_WRITER_ENV.MAX_HOPS) };
}
