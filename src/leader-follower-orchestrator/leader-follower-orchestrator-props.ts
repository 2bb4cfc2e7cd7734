import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as events from 'aws-cdk-lib/aws-events';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';

/**
 * How Lambda delivers the steps of one follower: its retries and how long it keeps trying. A
 * delivery step that must not repeat can have 0 retries while an enrichment step has 2.
 */
export interface FollowerOptions {
  /**
   * Lambda's retries of a failed invocation of this follower (0 to 2) before its event is parked.
   * @default - the orchestrator's `followerRetryAttempts`
   */
  readonly retryAttempts?: number;
  /**
   * How long Lambda keeps trying to run an invocation of this follower (1 minute to 6 hours).
   * A step of this follower counts as stalled 30 minutes after that.
   * @default - the orchestrator's `followerMaxEventAge`
   */
  readonly maxEventAge?: Duration;
}

/**
 * A follower: a function the leader may invoke as a step of a route. It receives
 * `{ channel, step, event, orchestration }` and returns `{ event, finish? }` (see the docs'
 * JSON contract); the orchestrator sets its asynchronous invocation configuration (retries,
 * and the leader as its success and failure destination).
 */
export interface FollowerDefinition extends FollowerOptions {
  /** Name the routes use: 1 to 64 letters, digits, `_` or `-`, unique within the orchestrator. */
  readonly name: string;
  /**
   * The function, an alias or a version. It must not have its own asynchronous invocation
   * configuration (`onSuccess`, `onFailure`, `retryAttempts`, `maxEventAge`).
   */
  readonly function: lambda.IFunction;
}

/**
 * A step of a route that gives its follower parameters: the follower receives them as the
 * request's `parameters`, so one generic follower serves many channels by configuration.
 */
export interface RouteStep {
  /** A registered follower name. */
  readonly follower: string;
  /**
   * What the follower receives with this step (an endpoint name, a template id, a locale...),
   * as JSON. It travels in every follower request of the run, so it counts towards `maxEventBytes`.
   * @default - none: the request has no `parameters`
   */
  readonly parameters?: { [key: string]: any };
}

/** A route: the followers an event of a channel goes through, in order. */
export interface RouteDefinition {
  /**
   * The channel (the curated record's `channel`): printable ASCII with at least one non-space
   * character, at most 256 characters (it is a dimension of the per-channel metrics).
   */
  readonly channel: string;
  /**
   * Only records of this tenant (the record's `tenant`, 1 to 256 characters). A record takes
   * the most specific route of its channel: its tenant and event type, then its tenant, then
   * its event type, then the channel's.
   * @default - any tenant
   */
  readonly tenant?: string;
  /**
   * Only records of this event type (the record's `detailType`: the detail-type of the original
   * event, 1 to 256 characters).
   * @default - any event type
   */
  readonly eventType?: string;
  /**
   * Registered follower names, step 1 first. From 1 to `maxHops` (default 7, at most 15) names; a name
   * may appear more than once. Give either `followers` or `steps`.
   * @default - the followers of `steps`
   */
  readonly followers?: string[];
  /**
   * The steps, step 1 first, each a follower and its parameters: for followers that take
   * settings. From 1 to `maxHops` steps. Give either `followers` or `steps`.
   * @default - `followers`, without parameters
   */
  readonly steps?: RouteStep[];
  /**
   * What the route is for.
   * @default - none
   */
  readonly description?: string;
}

/** A bus whose curated events the leader routes (see `addSource`). */
export interface OrchestratorSourceOptions {
  /** The bus, usually the curated bus of a TieredEventIngest. */
  readonly eventBus: events.IEventBus;
  /**
   * Which events of the bus the leader takes. `detail.orchestration` must not exist is added
   * unless the pattern sets it, so the leader's own output never loops back into it.
   * @default - curated records and batches: source `cdk-event-fabric`, detail-type `CuratedRecord` or `CuratedBatch`
   */
  readonly eventPattern?: events.EventPattern;
  /**
   * Description of the rule.
   * @default - derived from the source id and the construct path
   */
  readonly description?: string;
}

/** Properties of a `LeaderFollowerOrchestrator`. */
export interface LeaderFollowerOrchestratorProps {
  /**
   * Bus the leader puts each processed record on at FINISH, as a `CuratedRecord` event with
   * an `orchestration` block.
   * @default - a new bus (encrypted with `encryptionKey` when given)
   */
  readonly curatedBus?: events.IEventBus;

  /**
   * Followers to register; more can be added with `addFollower`. At most 16 in all.
   * @default - none
   */
  readonly followers?: FollowerDefinition[];

  /**
   * Routes written to the routes table at deploy by a custom resource; more can be added
   * with `addRoute`. Routes can also be written at run time (the route writer function, or the
   * table itself) without a deploy. A deploy writes a channel's route again only when it changes here.
   * @default - none
   */
  readonly routes?: RouteDefinition[];

  /**
   * Most follower invocations one record may make, across every orchestrator run it goes
   * through. Routes longer than this are refused. At most 15: a run of n steps invokes the
   * leader 1 + n times, and Lambda's recursive loop detection stops a function invoked more
   * than 16 times by one event.
   * @default 7
   */
  readonly maxHops?: number;

  /**
   * How long the leader caches a channel's route (and a channel's absence). A route written
   * at run time takes effect within this time. `Duration.seconds(0)` reads the table for every record.
   * @default Duration.seconds(60)
   */
  readonly routeCacheTtl?: Duration;

  /**
   * Largest follower request, in bytes (the event plus about 1 KB of context). A larger
   * event is parked as oversized. At most 480,000: a follower's destination record carries
   * its request and its result within Lambda's 1 MB asynchronous payload limit, so results
   * should stay below the same size.
   * @default 256000
   */
  readonly maxEventBytes?: number;

  /**
   * Lambda's retries of a failed follower invocation (0 to 2) before its event is parked.
   * @default 2
   */
  readonly followerRetryAttempts?: number;

  /**
   * How long Lambda keeps trying to run a follower invocation (1 minute to 6 hours).
   * @default Duration.hours(6)
   */
  readonly followerMaxEventAge?: Duration;

  /**
   * How long the progress of a run (its replay-detection item) is kept: at least 1 day, and
   * longer than any redrive should take to resume a parked event.
   * @default Duration.days(14)
   */
  readonly progressTtl?: Duration;

  /**
   * Customer managed key for the tables, the dead-letter queue and a bus the construct creates.
   * @default - AWS managed encryption
   */
  readonly encryptionKey?: kms.IKey;

  /**
   * Actions of every alarm the construct creates.
   * @default - none
   */
  readonly alarmActions?: cloudwatch.IAlarmAction[];

  /**
   * Removal policy of the routes and progress tables.
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
}
