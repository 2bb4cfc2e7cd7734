import { AttributeValue, DeleteItemCommand, DynamoDBClient, GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { marshall, unmarshall } from '@aws-sdk/util-dynamodb';
import { FOLLOWER_NAME_PATTERN, FOLLOWERS_ITEM_KEY, FollowersItem, ROUTE_KEY_ATTRIBUTE, RouteItem } from './orchestrator-contract';

/**
 * Where routes live. The leader and the route writer only use this interface, so another
 * store (a relational table, as in the seed architecture) can be added without changing them.
 * `get` returns the item as stored, unvalidated: callers check it with `checkRoute`.
 */
export interface RouteStore {
  get(channel: string): Promise<unknown | undefined>;
  put(item: RouteItem | FollowersItem): Promise<void>;
  delete(channel: string): Promise<void>;
}

/** Routes in a DynamoDB table with partition key `channel`, read with strongly consistent GetItem. */
export class DynamoRouteStore implements RouteStore {
  /** Table reads made, for the benchmark and tests. */
  public reads = 0;

  constructor(private readonly client: DynamoDBClient, private readonly tableName: string) {}

  public async get(channel: string): Promise<unknown | undefined> {
    this.reads++;
    const result = await this.client.send(new GetItemCommand({
      TableName: this.tableName,
      Key: { [ROUTE_KEY_ATTRIBUTE]: { S: channel } },
      ConsistentRead: true,
    }));
    return result.Item ? unmarshall(result.Item) : undefined;
  }

  public async put(item: RouteItem | FollowersItem): Promise<void> {
    await this.client.send(new PutItemCommand({ TableName: this.tableName, Item: marshallRoute(item) }));
  }

  public async delete(channel: string): Promise<void> {
    await this.client.send(new DeleteItemCommand({ TableName: this.tableName, Key: { [ROUTE_KEY_ATTRIBUTE]: { S: channel } } }));
  }
}

/** What the leader reads routes through: `get`, and `forget` to read a channel fresh. */
export interface RouteReader {
  get(channel: string): Promise<unknown | undefined>;
  forget(channel: string): void;
}

/**
 * Caches `get` per channel for `ttlMs` in the leader's execution environment, misses (unknown
 * channels) included, so neither a step nor a flood of events for an unknown channel costs a
 * table read each. A ttl of 0 turns the cache off. Concurrent lookups of one channel share a read.
 */
export class CachedRouteStore implements RouteReader {
  private readonly entries = new Map<string, { value: Promise<unknown | undefined>; expiresAt: number }>();

  constructor(private readonly inner: Pick<RouteStore, 'get'>, private readonly ttlMs: number, private readonly now: () => number = Date.now) {}

  public get(channel: string): Promise<unknown | undefined> {
    if (this.ttlMs <= 0) return this.inner.get(channel);
    const now = this.now();
    const cached = this.entries.get(channel);
    if (cached && cached.expiresAt > now) return cached.value;
    const value = this.inner.get(channel);
    this.entries.set(channel, { value, expiresAt: now + this.ttlMs });
    // A failed read is not cached: the next lookup tries the table again.
    value.catch(() => {
      if (this.entries.get(channel)?.value === value) this.entries.delete(channel);
    });
    return value;
  }

  /** Drops a channel's cached route, so the next lookup reads the table (redrive reads fresh routes). */
  public forget(channel: string): void {
    this.entries.delete(channel);
  }
}

/**
 * A route or followers item as DynamoDB stores it. A follower map keyed by a name such as
 * "constructor" is still a map (not taken for a class instance).
 */
export function marshallRoute(item: RouteItem | FollowersItem): Record<string, AttributeValue> {
  return marshall(item, { removeUndefinedValues: true, convertClassInstanceToMap: true });
}

/**
 * The registered followers (name to function ARN), from the routes table's followers item
 * (FOLLOWERS_ITEM_KEY), read through the route cache. `fresh` reads the table again: a route
 * naming a follower the cached item does not have may have been written by a newer deploy.
 */
export async function registeredFollowers(routes: Pick<RouteReader, 'get'> & Partial<Pick<RouteReader, 'forget'>>,
  fresh = false): Promise<Record<string, string>> {
  if (fresh) routes.forget?.(FOLLOWERS_ITEM_KEY);
  return followersOfItem(await routes.get(FOLLOWERS_ITEM_KEY));
}

/** Checked follower maps by the item they came from: a cached item is checked once. */
const checkedFollowers = new WeakMap<object, Record<string, string>>();

/** The follower map of a followers item, or an error saying what is wrong with it. */
export function followersOfItem(item: unknown): Record<string, string> {
  const checked = typeof item === 'object' && item !== null ? checkedFollowers.get(item) : undefined;
  if (checked) return checked;
  const followers = checkFollowersItem(item);
  if (typeof item === 'object' && item !== null) checkedFollowers.set(item, followers);
  return followers;
}

function checkFollowersItem(item: unknown): Record<string, string> {
  if (item === undefined) {
    throw new Error(`the routes table has no followers item (key ${JSON.stringify(FOLLOWERS_ITEM_KEY)}); the orchestrator's routes `
      + 'custom resource writes it when its followers or routes change: deploy such a change (a route\'s description will do)');
  }
  const followers = (item as Partial<FollowersItem>).followers;
  const pattern = new RegExp(FOLLOWER_NAME_PATTERN);
  const valid = typeof followers === 'object' && followers !== null && !Array.isArray(followers)
    && Object.entries(followers).every(([name, arn]) => pattern.test(name) && name !== '__proto__' && typeof arn === 'string' && arn.startsWith('arn:'));
  if (!valid) {
    throw new Error(`the followers item of the routes table is malformed: ${JSON.stringify(followers)?.slice(0, 200)}; allowed: `
      + '{ "followers": { "<follower name>": "<function ARN>", ... } }, as the routes custom resource writes it');
  }
  // No prototype: a name such as "toString" is registered only if the item has it.
  return Object.assign(Object.create(null) as Record<string, string>, followers);
}
