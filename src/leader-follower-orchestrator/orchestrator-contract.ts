/**
 * What the LeaderFollowerOrchestrator construct, its leader and route-writer handlers, and
 * the followers agree on: the follower JSON contract, the route item, the progress item, the
 * parked-event message and the handlers' environment. No AWS SDK here: construct code imports it.
 */

/**
 * Lambda's recursive loop detection counts, for each function, how many times one triggering
 * event has invoked it, and stops the invocation after the 16th (Lambda developer guide,
 * "Lambda recursive loop detection"; What's New, 2023-07-13). It counts per function, not the
 * length of the chain. In one run the leader is invoked once for the record and once for each
 * step's result: 1 + n times for n steps; a follower once for each time it appears in the route,
 * at most n. So a route of 15 steps invokes the leader 16 times, the most the detection lets
 * through. Routes longer than this are refused at synth, by the route writer and when the leader reads them.
 */
export const MAX_ROUTE_LENGTH = 15;
/** Invocations of one function by one triggering event that Lambda's recursive loop detection lets through. */
export const LAMBDA_RECURSION_LIMIT = 16;

/** Follower names: they appear in routes, metrics and construct ids. */
export const FOLLOWER_NAME_PATTERN = '^[A-Za-z0-9_-]{1,64}$';
/**
 * Channel names: printable ASCII with at least one non-space character, at most 256: a channel
 * is a CloudWatch dimension value of the leader's metrics, and those must be ASCII.
 */
export const CHANNEL_NAME_PATTERN = '^[ -~]*[!-~][ -~]*$';
export const MAX_CHANNEL_LENGTH = 256;

/** The input a follower receives (`FollowerRequest` in the docs' JSON contract). */
export interface FollowerRequest<E = unknown> {
  /** The channel whose route is running. */
  readonly channel: string;
  /** This follower's 1-based position in the route. */
  readonly step: number;
  /** The event as the previous step returned it (the record's payload at step 1). */
  readonly event: E;
  /**
   * This step's parameters, from the route (`{ "follower": name, "parameters": ... }`): any JSON,
   * so one generic follower can serve many channels (an endpoint name, a template id, a locale).
   * Absent when the route names the follower alone.
   */
  readonly parameters?: unknown;
  /**
   * The run's state, kept by the leader and read back from the destination record when the
   * follower returns; followers may read it but need not pass it on.
   */
  readonly orchestration: StepContext;
}

/** The leader's state for one run of a route, carried in every follower request. */
export interface StepContext {
  /** Id of the orchestrator (its construct address). */
  readonly orchestrator: string;
  /** Deterministic id of this run: the orchestrator, the record's tenant and id, the channel and the hops before the run. */
  readonly runId: string;
  /** The follower names of the route, as read when the run started (a run keeps its route). */
  readonly route: string[];
  /**
   * Each step's parameters, in route order (null for a step without), when any step of the
   * route has them: a run keeps them with its route.
   */
  readonly routeParameters?: unknown[];
  /** The follower this request is for. */
  readonly follower: string;
  /** Follower invocations of this record so far, this one included (the hop count). */
  readonly hops: number;
  /** Epoch milliseconds when the run started. */
  readonly startedAt: number;
  /** The curated record's metadata: the envelope without its payload. */
  readonly record: Record<string, unknown>;
  /**
   * Id of this dispatch of the step: a retry or a redrive of the step is a new dispatch. A
   * failure counts only for the dispatch the step is at, so a late copy of an old failure
   * record cannot park a step that was resumed since.
   */
  readonly dispatchId: string;
  /**
   * The function ARN the leader invoked for this step: its result is taken from that function
   * even after a deploy replaced it. Absent in requests of versions before it.
   */
  readonly followerArn?: string;
  /**
   * Largest result (JSON bytes) that can return to the leader: Lambda's destination record
   * carries this request and the result within its 1 MB asynchronous payload limit. A larger
   * result cannot be delivered and would stop the event at this step (`defineFollower` fails
   * the step instead, so the event is parked with the reason).
   */
  readonly maxResultBytes: number;
}

/**
 * What a follower returns: the processed event, and `finish: true` to end the route after
 * this step (the leader then puts the event on the curated bus).
 */
export interface FollowerResult<E = unknown> {
  readonly event: E;
  readonly finish?: boolean;
}

/** A step of a route that gives its follower parameters. */
export interface RouteStepItem {
  readonly follower: string;
  /** Any JSON: the follower receives it as the request's `parameters`. */
  readonly parameters?: unknown;
}

/**
 * Route item in the routes table (partition key `channel`). A route for one tenant or event
 * type of a channel is stored under its route key (`routeKey`), not under the channel alone.
 */
export interface RouteItem {
  readonly channel: string;
  /** Only records of this tenant (the record's `tenant`). @default - any tenant */
  readonly tenant?: string;
  /** Only records of this event type (the record's `detailType`). @default - any event type */
  readonly eventType?: string;
  /** The steps, in order (step 1 is the first): a follower name, or `{ "follower": name, "parameters": any JSON }`. */
  readonly followers: Array<string | RouteStepItem>;
  readonly description?: string;
  /** ISO time of the last write (set by the route writer). */
  readonly updatedAt?: string;
  /** Who wrote it: "deploy" (the custom resource) or "api" (an invocation of the route writer). */
  readonly updatedBy?: string;
}

export const ROUTE_KEY_ATTRIBUTE = 'channel';

/**
 * Key of the routes table item that registers the followers: `{ channel: "⟨followers⟩",
 * followers: { name: function ARN, ... } }`. Written by the routes custom resource at every
 * deploy (before the routes), read by the leader and the route writer through the route cache.
 * Never a channel: channel names are ASCII. It keeps the follower ARNs out of the leader's
 * environment (4 KB), so an orchestrator can have up to MAX_FOLLOWERS followers.
 */
export const FOLLOWERS_ITEM_KEY = '\u27e8followers\u27e9';

/** The routes table item that registers the followers (key FOLLOWERS_ITEM_KEY). */
export interface FollowersItem {
  readonly channel: typeof FOLLOWERS_ITEM_KEY;
  /** Follower name to the function ARN the leader invokes (and the only sender it accepts results from). */
  readonly followers: Record<string, string>;
  readonly updatedAt?: string;
  readonly updatedBy?: string;
}

/**
 * Most followers one orchestrator registers: the leader's and the redrive function's roles list
 * every follower ARN in one statement, within IAM's 10,240-character limit on a role's inline policies.
 */
export const MAX_FOLLOWERS = 50;
export const PROGRESS_KEY_ATTRIBUTE = 'runId';
/**
 * Sparse index of the progress table: the steps awaiting a follower's result (partition key
 * `runId`, sort key `stallAt`, the epoch milliseconds after which the step counts as stalled).
 */
export const PROGRESS_STALLED_INDEX = 'stalled-steps';
export const PROGRESS_STALL_AT_ATTRIBUTE = 'stallAt';
/** TTL attribute (epoch seconds) of progress items. */
export const PROGRESS_EXPIRES_AT_ATTRIBUTE = 'expiresAt';

/** Why an event was parked in the dead-letter queue. */
export type ParkReason =
  | 'invalid-input'
  | 'no-channel'
  | 'unknown-channel'
  | 'bad-route'
  | 'unregistered-follower'
  | 'hop-limit'
  | 'oversized'
  | 'out-of-order'
  | 'follower-failed'
  | 'invalid-follower-result'
  | 'publish-failed'
  | 'stalled';

/** Body of a message the leader parks in the dead-letter queue. */
export interface ParkedEvent {
  /** Marks the message as parked by the leader (redrive resumes it at `step`). */
  readonly parkedBy: 'cdk-event-fabric.leader';
  readonly reason: ParkReason;
  /** What was wrong and what is allowed. */
  readonly message: string;
  readonly orchestrator: string;
  /** The channel, or null when the record had none. */
  readonly channel: string | null;
  /** The step that failed (1-based); 0 before the first step, route length + 1 at FINISH. */
  readonly step: number;
  readonly follower?: string;
  readonly runId?: string;
  readonly hops: number;
  readonly route?: string[];
  /** The route's step parameters, when it has any (see StepContext). */
  readonly routeParameters?: unknown[];
  readonly startedAt?: number;
  /** The record, with `payload` as it was before the failed step. Absent for invalid input. */
  readonly record?: Record<string, unknown>;
  /** Token that lets this message, and no duplicate of it, resume the parked step. */
  readonly parkToken?: string;
  /** The input as received, when it was not a usable record. */
  readonly input?: unknown;
  readonly parkedAt: string;
}

/**
 * Invocation that makes the leader resume parked events from its dead-letter queue: up to
 * `maxMessages` (1 to 1000, default 10) messages matching every filter given.
 */
export interface RedriveRequest {
  readonly redrive: {
    readonly maxMessages?: number;
    /** Only events parked with this reason. */
    readonly reason?: ParkReason;
    /** Only events parked from this channel. */
    readonly channel?: string;
    /** Only the events of this run. */
    readonly runId?: string;
  };
}

/**
 * Invocation of the redrive function (every 15 minutes, by the orchestrator's schedule) that parks
 * the steps dispatched longer than the step result timeout ago with no result, as `stalled`.
 */
export interface StallSweepRequest {
  readonly sweepStalled: { readonly maxItems?: number };
}

/** Which route: a channel's, or the route of one tenant and/or event type of it. */
export interface RouteSelector {
  readonly channel: string;
  readonly tenant?: string;
  readonly eventType?: string;
}

/** Invocation of the route writer outside CloudFormation: validates, then writes or deletes. */
export interface RouteWriteRequest {
  readonly putRoutes?: RouteItem[];
  /** Channels whose route (for any tenant and event type) to delete. */
  readonly deleteChannels?: string[];
  /** Routes to delete, each by its channel, tenant and event type. */
  readonly deleteRoutes?: RouteSelector[];
}

/** Largest partition key DynamoDB takes (bytes): the longest route key. */
export const MAX_ROUTE_KEY_BYTES = 2048;

/**
 * The routes table key of a route: its channel, when it matches any tenant and event type;
 * otherwise `<channel> ⟨tenant=<JSON string or *> eventType=<JSON string or *>⟩`, for example
 * `email ⟨tenant="acme" eventType=*⟩`. Channels are ASCII, so a channel's own key never
 * contains "⟨"; JSON strings keep any tenant or event type unambiguous.
 */
export function routeKey(route: RouteSelector): string {
  if (route.tenant === undefined && route.eventType === undefined) return route.channel;
  const part = (value: string | undefined) => (value === undefined ? '*' : JSON.stringify(value));
  return `${route.channel} \u27e8tenant=${part(route.tenant)} eventType=${part(route.eventType)}\u27e9`;
}

/**
 * The route keys a record may match, most specific first: its tenant and event type, its
 * tenant, its event type, its channel. Keys of an empty tenant or event type are left out, and
 * so are keys longer than DynamoDB takes (no route can be stored there).
 */
export function routeKeysOf(channel: string, tenant: unknown, eventType: unknown): string[] {
  const t = typeof tenant === 'string' && tenant !== '' ? tenant : undefined;
  const e = typeof eventType === 'string' && eventType !== '' ? eventType : undefined;
  const selectors: RouteSelector[] = [
    ...(t !== undefined && e !== undefined ? [{ channel, tenant: t, eventType: e }] : []),
    ...(t !== undefined ? [{ channel, tenant: t }] : []),
    ...(e !== undefined ? [{ channel, eventType: e }] : []),
    { channel },
  ];
  return selectors.map(routeKey).filter((key) => Buffer.byteLength(key, 'utf8') <= MAX_ROUTE_KEY_BYTES);
}

/** Environment variables of the leader function. */
export const LEADER_ENV = {
  ROUTES_TABLE_NAME: 'ROUTES_TABLE_NAME',
  PROGRESS_TABLE_NAME: 'PROGRESS_TABLE_NAME',
  CURATED_BUS_NAME: 'CURATED_BUS_NAME',
  DEAD_LETTER_QUEUE_URL: 'DEAD_LETTER_QUEUE_URL',
  MAX_HOPS: 'MAX_HOPS',
  ROUTE_CACHE_TTL_SECONDS: 'ROUTE_CACHE_TTL_SECONDS',
  MAX_EVENT_BYTES: 'MAX_EVENT_BYTES',
  PROGRESS_TTL_SECONDS: 'PROGRESS_TTL_SECONDS',
  ORCHESTRATOR_ID: 'ORCHESTRATOR_ID',
  /** Seconds after its dispatch a step without a result counts as stalled. */
  STEP_RESULT_TIMEOUT_SECONDS: 'STEP_RESULT_TIMEOUT_SECONDS',
  /**
   * What the function takes: `events` (the leader: curated events and follower results) or
   * `redrive` (the redrive function: `{ "redrive": {...} }` requests only). One bundle, two functions.
   */
  ENTRY: 'LEADER_ENTRY',
} as const;

/** The leader bundle's two entries (`LEADER_ENV.ENTRY`). */
export type LeaderEntry = 'events' | 'redrive';

/** Environment variables of the route writer function. */
export const ROUTE_WRITER_ENV = {
  ROUTES_TABLE_NAME: 'ROUTES_TABLE_NAME',
  MAX_HOPS: 'MAX_HOPS',
  /**
   * What the function takes: `api` (run-time route writes, for operators) or `deploy` (the
   * routes custom resource's events, which also write the followers item). One bundle, two functions.
   */
  ENTRY: 'ROUTE_WRITER_ENTRY',
} as const;

/** The route writer bundle's two entries (`ROUTE_WRITER_ENV.ENTRY`). */
export type RouteWriterEntry = 'api' | 'deploy';

/**
 * Lambda's asynchronous payload limit is 1 MB, and a destination record carries the follower's
 * request and its result, so one event must stay under half of it to come back to the leader.
 */
export const MAX_STEP_EVENT_BYTES = 480_000;
/** Lambda's asynchronous payload limit (1 MB), less room for the destination record's own fields. */
export const DESTINATION_RECORD_BUDGET_BYTES = 1_000_000 - 4096;
export const DEFAULT_STEP_EVENT_BYTES = 256_000;
