import { ArnFormat, CustomResource, Duration, Lazy, Names, RemovalPolicy, Stack, Token, Tokenization, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as lambdaDestinations from 'aws-cdk-lib/aws-lambda-destinations';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import * as cr from 'aws-cdk-lib/custom-resources';
import { Construct, IConstruct } from 'constructs';
import {
  FollowerOptions, LeaderFollowerOrchestratorProps, OrchestratorSourceOptions, RouteDefinition,
} from './leader-follower-orchestrator-props';
import { LeaderFunction } from './leader-function';
import {
  DEFAULT_STEP_EVENT_BYTES, FOLLOWER_NAME_PATTERN, LAMBDA_RECURSION_LIMIT, LEADER_ENV, LeaderEntry, MAX_FOLLOWERS, MAX_ROUTE_LENGTH,
  MAX_STEP_EVENT_BYTES, PROGRESS_EXPIRES_AT_ATTRIBUTE, PROGRESS_KEY_ATTRIBUTE, PROGRESS_STALL_AT_ATTRIBUTE, PROGRESS_STALLED_INDEX,
  ROUTE_KEY_ATTRIBUTE, ROUTE_WRITER_ENV, RouteItem, routeKey, RouteWriterEntry,
} from './orchestrator-contract';
import { checkRoute, followerNames } from './route-schema';
import { RouteWriterFunction } from './route-writer-function';
import {
  acknowledgeKeyWildcards, acknowledgeXRay, allowEventBridgeToUseKey, functionLogGroup, functionRole, grantInvokeExactly, handlerMetric,
  METRICS_NAMESPACE, queueDepth, secureDeadLetterQueue, thresholdAlarm, truncate,
} from '../common/construct-defaults';
import { addStackResourceBudgetCheck } from '../common/stack-resource-budget';
import { PropValidationError, validateEventPattern, validateIntegerRange } from '../common/validation';
import { BATCH_DETAIL_TYPE, CURATED_SOURCE, RECORD_DETAIL_TYPE } from '../runtime/curated-envelope';

/** The `service` dimension and Powertools service name of the orchestrator's handlers. */
const SERVICE_NAME = 'leader-follower-orchestrator';
/**
 * Followers a leader can know: their ARNs travel in the leader's environment, which Lambda
 * limits to 4 KB in all (16 × ~180 bytes leaves room for the other variables).
 */
const DEFAULT_ROUTE_CACHE_TTL = Duration.seconds(60);
const DEFAULT_FOLLOWER_MAX_EVENT_AGE = Duration.hours(6);
/** How often the redrive function looks for stalled steps. */
const STALL_SWEEP_INTERVAL = Duration.minutes(15);
/** Hops a record may make by default: under MAX_ROUTE_LENGTH, leaving room for records that re-enter. */
const DEFAULT_MAX_HOPS = 7;
const DEFAULT_PROGRESS_TTL = Duration.days(14);
/**
 * EventBridge's delivery of source events to the leader: an event it cannot hand to Lambda is
 * retried for an hour. Failures inside the leader get Lambda's 2 retries, then its on-failure
 * destination (the dead-letter queue).
 */
const SOURCE_RETRY_ATTEMPTS = 8;
const SOURCE_MAX_EVENT_AGE = Duration.hours(1);
/**
 * Shorter than the 45 s lease on a claimed step (leader.lambda.ts), so a claim outlives its
 * owner. The redrive function claims steps too, so it has the same timeout.
 */
const LEADER_TIMEOUT = Duration.seconds(30);
const REDRIVE_TIMEOUT = LEADER_TIMEOUT;

/**
 * Routes each curated record through an ordered list of follower functions chosen by its
 * channel, read from a routes table that can change without a deploy.
 *
 * The leader invokes a route's followers one step at a time, asynchronously; each follower's
 * result returns to the leader through Lambda destinations (no orchestration code in the
 * followers), and at FINISH the leader puts the processed record on the curated bus. Route
 * lookups are cached; a progress table detects replays so no step is applied twice; a hop
 * limit keeps every chain below Lambda's recursive loop detection. Whatever cannot be routed
 * is parked, with its channel, step and reason, in a dead-letter queue with an alarm, and a
 * redrive resumes it at the failed step.
 */
export class LeaderFollowerOrchestrator extends Construct {
  /**
   * CloudFormation resources one orchestrator adds to its stack in the default configuration
   * (no followers, routes or sources; a new curated bus). Each follower adds 2 (its
   * asynchronous invocation configuration and its delivery alarm); each source adds a rule and a
   * Lambda permission. Asserted by the unit tests.
   */
  public static readonly RESOURCES_PER_ORCHESTRATOR = 32;
  /**
   * Longest route: 15 steps. The leader is invoked once for the record and once per step's
   * result, 16 times, and Lambda's recursive loop detection stops a function invoked more than
   * 16 times by one event.
   */
  public static readonly MAX_ROUTE_LENGTH = MAX_ROUTE_LENGTH;

  /** Bus the processed records are put on. */
  public readonly curatedBus: events.IEventBus;
  /** Routes table: partition key `channel`, attribute `followers` (a list of follower names). */
  public readonly routesTable: dynamodb.Table;
  /** Progress table (replay detection): partition key `runId`, the last step claimed, TTL `expiresAt`. */
  public readonly progressTable: dynamodb.Table;
  /** The leader function: curated events and follower results (it refuses redrive requests). */
  public readonly leaderFunction: lambda.Function;
  /**
   * The redrive function: invoked with `{ "redrive": { "maxMessages"?, "reason"?, "channel"?,
   * "runId"? } }`, it resumes parked events from the dead-letter queue (see `grantRedrive`); every
   * 15 minutes it parks stalled steps. It runs the leader's code with a role of its own (only it
   * consumes the queue), and takes nothing else.
   */
  public readonly redriveFunction: lambda.Function;
  /**
   * Function that validates and writes routes at run time: `{ "putRoutes": [...],
   * "deleteChannels": [...], "deleteRoutes": [...] }` invocations (`grantWriteRoutes`). It refuses
   * custom resource events, so its callers cannot change the registered followers.
   */
  public readonly routeWriterFunction: lambda.Function;
  /**
   * Function of the routes custom resource (the same code): at deploy it writes the followers
   * item and the routes of the props. Only the CDK provider framework invokes it.
   */
  public readonly routesResourceFunction: lambda.Function;
  /**
   * Schedule (every 15 minutes) that has the redrive function park, as `stalled`, the steps
   * dispatched longer ago than a result can still return (`followerMaxEventAge` + 30 minutes)
   * whose result never came (for example one over Lambda's asynchronous payload limit).
   */
  public readonly stalledStepsSweep: events.Rule;
  /** The custom resource that writes the routes of the props at deploy. */
  public readonly routesResource: CustomResource;
  /** The CDK Provider framework that runs the route writer for the routes custom resource. */
  public readonly routesProvider: cr.Provider;
  /**
   * Dead-letter queue of parked events (with channel, step and reason), of leader invocations
   * that failed after Lambda's retries, and of events EventBridge could not deliver to the leader.
   */
  public readonly deadLetterQueue: sqs.Queue;
  /** Alarm: the dead-letter queue holds at least one message (visible or delayed). */
  public readonly deadLetterQueueAlarm: cloudwatch.Alarm;
  /** Alarm: Lambda failed to deliver a leader invocation's failure record to the dead-letter queue. */
  public readonly leaderDeliveryFailuresAlarm: cloudwatch.Alarm;
  /**
   * Alarm: the redrive function failed (Errors ≥ 1 in 5 minutes). A sweep that keeps failing
   * parks no stalled step, and nothing else would say so.
   */
  public readonly redriveErrorsAlarm: cloudwatch.Alarm;
  /** Maximum follower invocations per record. */
  public readonly maxHops: number;

  private readonly props: LeaderFollowerOrchestratorProps;
  private readonly followerArns: Record<string, string> = {};
  /** The maximum event age of each follower: a step counts as stalled after the longest, plus 30 minutes. */
  private readonly followerEventAges: Duration[] = [];
  private readonly followerFunctions = new Map<string, lambda.IFunction>();
  /** The leader's and the redrive function's statement that lets them invoke the followers (made with the first follower). */
  private readonly invokeFollowers: iam.PolicyStatement[] = [];
  private readonly deliveryAlarms = new Map<string, cloudwatch.Alarm>();
  /** The routes written at deploy: as given, and as the route items the custom resource writes. */
  private readonly routes: Array<{ readonly definition: RouteDefinition; readonly item: RouteItem }> = [];
  private readonly sourceRules: events.Rule[] = [];
  private readonly leaderArn: string;

  constructor(scope: Construct, id: string, props: LeaderFollowerOrchestratorProps = {}) {
    super(scope, id);
    this.props = props;
    validateProps(this, props);
    this.maxHops = props.maxHops ?? DEFAULT_MAX_HOPS;
    const key = props.encryptionKey;

    this.curatedBus = props.curatedBus ?? new events.EventBus(this, 'CuratedBus', {
      kmsKey: key,
      description: 'cdk-event-fabric LeaderFollowerOrchestrator: processed records',
    });
    allowEventBridgeToUseKey(this, key);

    this.deadLetterQueue = secureDeadLetterQueue(this, 'DeadLetterQueue', {
      encryptionKey: key,
      holds: 'the orchestrator\'s parked events',
      emptiedBy: 'resumed by the leader\'s redrive',
      // A redrive holds messages while it resumes them.
      visibilityTimeout: Duration.minutes(2),
    });

    const tableProps = {
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: key ? dynamodb.TableEncryption.CUSTOMER_MANAGED : dynamodb.TableEncryption.AWS_MANAGED,
      encryptionKey: key,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    };
    this.routesTable = new dynamodb.Table(this, 'RoutesTable', {
      ...tableProps,
      partitionKey: { name: ROUTE_KEY_ATTRIBUTE, type: dynamodb.AttributeType.STRING },
    });
    this.progressTable = new dynamodb.Table(this, 'ProgressTable', {
      ...tableProps,
      partitionKey: { name: PROGRESS_KEY_ATTRIBUTE, type: dynamodb.AttributeType.STRING },
      timeToLiveAttribute: PROGRESS_EXPIRES_AT_ATTRIBUTE,
    });
    // Sparse: only steps awaiting a follower's result have `stallAt`, so the sweep reads those
    // alone; keys only, so it does not read their kept inputs (it reads a stalled step's item).
    this.progressTable.addGlobalSecondaryIndex({
      indexName: PROGRESS_STALLED_INDEX,
      partitionKey: { name: PROGRESS_KEY_ATTRIBUTE, type: dynamodb.AttributeType.STRING },
      sortKey: { name: PROGRESS_STALL_AT_ATTRIBUTE, type: dynamodb.AttributeType.NUMBER },
      projectionType: dynamodb.ProjectionType.KEYS_ONLY,
    });

    // The leader's name is set, so followers' roles and destinations can name its ARN without
    // referring to it: the leader refers to the followers (environment, policy), not back.
    const leaderName = `${Names.uniqueResourceName(this, { maxLength: 57, separator: '-' })}-leader`;
    this.leaderArn = Stack.of(this).formatArn({
      service: 'lambda', resource: 'function', resourceName: leaderName, arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
    this.leaderFunction = this.createLeader(leaderName);
    this.redriveFunction = this.createRedrive();
    this.stalledStepsSweep = new events.Rule(this, 'StalledStepsSweep', {
      schedule: events.Schedule.rate(STALL_SWEEP_INTERVAL),
      description: truncate(`cdk-event-fabric LeaderFollowerOrchestrator: parks steps whose result never came back (${this.node.path})`, 512),
      targets: [new targets.LambdaFunction(this.redriveFunction, { event: events.RuleTargetInput.fromObject({ sweepStalled: {} }) })],
    });
    Validations.of(this.stalledStepsSweep).acknowledge({
      id: 'Serverless-EventBusDLQ',
      reason: 'A schedule with no event to keep: a sweep that is not delivered is made by the next one 15 minutes later, and the '
        + 'stalled steps stay in the progress table\'s index until then.',
    });
    this.routeWriterFunction = this.createRouteWriter('api');
    this.routesResourceFunction = this.createRouteWriter('deploy');
    this.routesProvider = this.createRoutesProvider();
    this.routesResource = new CustomResource(this, 'Routes', {
      serviceToken: this.routesProvider.serviceToken,
      resourceType: 'Custom::OrchestratorRoutes',
      properties: {
        // Step parameters may hold deploy-time values (a queue URL): resolved by CloudFormation.
        Routes: Lazy.string({ produce: () => Stack.of(this).toJsonString(this.routes.map((r) => r.item)) }),
        // Written as the routes table's followers item, which the leader reads (not its 4 KB environment).
        Followers: Lazy.string({ produce: () => Stack.of(this).toJsonString(this.followerArns) }),
      },
    });
    // The followers item and routes are written once the leader's and the redrive function's roles may invoke
    // every follower they name, and before either function runs new code that reads them.
    for (const dispatcher of [this.leaderFunction, this.redriveFunction]) {
      this.routesResource.node.addDependency(dispatcher.role!);
      (dispatcher.node.defaultChild as lambda.CfnFunction).node.addDependency(this.routesResource);
    }

    for (const follower of props.followers ?? []) this.addFollower(follower.name, follower.function, follower);
    for (const route of props.routes ?? []) this.addRouteDefinition(route);

    // Messages parked again during a redrive are delayed 15 minutes: they count as parked too.
    const parkedMessages = new cloudwatch.MathExpression({
      expression: 'visible + delayed',
      label: 'Parked messages (visible + delayed)',
      usingMetrics: {
        visible: queueDepth(this.deadLetterQueue),
        delayed: this.deadLetterQueue.metricApproximateNumberOfMessagesDelayed({ statistic: cloudwatch.Stats.MAXIMUM, period: Duration.minutes(5) }),
      },
      period: Duration.minutes(5),
    });
    this.deadLetterQueueAlarm = this.alarm('DeadLetterQueueAlarm', parkedMessages,
      'Events are parked in the orchestrator dead-letter queue (each message says its channel, step and reason); '
      + 'fix the cause, then invoke the redrive function with {"redrive":{"maxMessages":10}} to resume them');
    this.leaderDeliveryFailuresAlarm = this.alarm('LeaderDeliveryFailuresAlarm', destinationDeliveryFailures(this.leaderFunction),
      'Lambda could not deliver failed leader invocations to the dead-letter queue');
    this.redriveErrorsAlarm = this.alarm('RedriveErrorsAlarm',
      this.redriveFunction.metricErrors({ statistic: cloudwatch.Stats.SUM, period: Duration.minutes(5) }),
      'The orchestrator redrive function failed: the 15-minute sweep of stalled steps or an operator\'s redrive threw (see its log group); '
      + 'while the sweep fails, steps whose result never came back are not parked');

    this.node.addValidation({ validate: () => this.validateRoutesAgainstFollowers() });
    addStackResourceBudgetCheck(this, 'LeaderFollowerOrchestrator', LeaderFollowerOrchestrator.RESOURCES_PER_ORCHESTRATOR);
  }

  /** Names of the registered followers, in registration order. */
  public get followerNames(): string[] {
    return [...this.followerFunctions.keys()];
  }

  /** The routes written at deploy, in the order added. */
  public get deployedRoutes(): RouteDefinition[] {
    return this.routes.map((r) => copyRoute(r.definition));
  }

  /** The rules added with `addSource`. */
  public get sources(): events.Rule[] {
    return [...this.sourceRules];
  }

  /** Alarms on each follower's `DestinationDeliveryFailures`: results that could not return to the leader. */
  public get followerDeliveryFailuresAlarms(): cloudwatch.Alarm[] {
    return [...this.deliveryAlarms.values()];
  }

  /**
   * Registers a follower under `name`. The leader may invoke it (and only registered
   * followers); its asynchronous invocation configuration is set here: its retries and maximum
   * event age (`options`, or the orchestrator's `followerRetryAttempts` and
   * `followerMaxEventAge`), and the leader as its success and failure destination.
   */
  public addFollower(name: string, fn: lambda.IFunction, options: FollowerOptions = {}): void {
    if (typeof name !== 'string' || !new RegExp(FOLLOWER_NAME_PATTERN).test(name) || name === '__proto__') {
      throw new PropValidationError(this, 'follower name', name, 'allowed: 1 to 64 letters, digits, "_" or "-" (not "__proto__")');
    }
    if (this.followerFunctions.has(name)) {
      throw new PropValidationError(this, 'follower name', name, 'allowed: a name not registered yet in this orchestrator');
    }
    if (this.followerFunctions.size >= MAX_FOLLOWERS) {
      throw new PropValidationError(this, 'followers', [...this.followerFunctions.keys(), name],
        `allowed: at most ${MAX_FOLLOWERS} followers (the leader's role lists their ARNs, within IAM's 10,240-character limit on a role's `
        + 'inline policies)');
    }
    validateIntegerRange(this, `retryAttempts of follower "${name}"`, options.retryAttempts, 0, 2, '(Lambda\'s asynchronous retry range)');
    validateSeconds(this, `maxEventAge of follower "${name}"`, options.maxEventAge, 60, 21_600);
    const target = asyncConfigTarget(fn);
    const prop = `function of follower "${name}"`;
    if (!target) {
      throw new PropValidationError(this, prop, fn.functionArn, 'allowed: a function, a lambda.Alias or a lambda.Version of this app, '
        + 'or an imported function without a qualifier (the orchestrator must set the asynchronous invocation configuration of the '
        + 'exact qualifier it invokes)');
    }
    if (fn.node.tryFindChild('EventInvokeConfig')) {
      throw new PropValidationError(this, prop, fn.node.path,
        'allowed: a function without its own asynchronous invocation configuration (onSuccess, onFailure, retryAttempts, maxEventAge): '
        + 'the orchestrator sets it, with the leader as the destination');
    }
    // One asynchronous invocation configuration per function and qualifier: a second would fail the deploy.
    const registrations = FOLLOWER_REGISTRATIONS.get(target.fn) ?? new Map<string, string>();
    const qualifier = target.qualifier ?? '$LATEST';
    const earlier = registrations.get(qualifier);
    if (earlier) {
      throw new PropValidationError(this, prop, fn.node.path, `allowed: a function (and qualifier) registered once; it is already ${earlier}`);
    }
    registrations.set(qualifier, `follower "${name}" of ${this.node.path}`);
    FOLLOWER_REGISTRATIONS.set(target.fn, registrations);
    this.followerFunctions.set(name, fn);
    this.followerArns[name] = fn.functionArn;
    // Both dispatch steps: the leader, and the redrive function when it resumes one. One statement lists every
    // follower, so 50 fit in a role's inline policy limit.
    if (this.invokeFollowers.length === 0) {
      for (const dispatcher of [this.leaderFunction, this.redriveFunction]) {
        const statement = new iam.PolicyStatement({ actions: ['lambda:InvokeFunction'] });
        dispatcher.addToRolePolicy(statement);
        this.invokeFollowers.push(statement);
      }
    }
    for (const statement of this.invokeFollowers) statement.addResources(fn.functionArn);

    const leaderDestination = new LeaderDestination(this.leaderArn);
    const maxEventAge = options.maxEventAge ?? this.props.followerMaxEventAge ?? DEFAULT_FOLLOWER_MAX_EVENT_AGE;
    this.followerEventAges.push(maxEventAge);
    const config = new lambda.EventInvokeConfig(this, `Follower${name}AsyncConfig`, {
      function: target.fn,
      qualifier: target.qualifier,
      onSuccess: leaderDestination,
      onFailure: leaderDestination,
      retryAttempts: options.retryAttempts ?? this.props.followerRetryAttempts ?? 2,
      maxEventAge,
    });
    // Lambda checks the destination when the configuration is written.
    config.node.addDependency(this.leaderFunction);
    Validations.of(target.fn).acknowledge({
      id: 'Serverless-LambdaDLQ',
      reason: `A follower of ${this.node.path}: its failed asynchronous invocations go to the on-failure destination (the leader), `
        + 'which parks them in the orchestrator dead-letter queue with the error.',
    });
    this.deliveryAlarms.set(name, this.alarm(`Follower${name}DeliveryFailuresAlarm`, destinationDeliveryFailures(fn),
      `Lambda could not return results of follower "${name}" to the leader (a result over the asynchronous payload limit, or a `
      + 'missing permission): those events stopped at that step'));
  }

  /**
   * Adds a route written at deploy. Routes can also be written at run time, with no deploy,
   * by invoking the route writer function or by writing the routes table.
   */
  public addRoute(channel: string, followers: string[], description?: string): void {
    this.addRouteDefinition({ channel, followers, ...(description !== undefined ? { description } : {}) });
  }

  /**
   * Adds a route written at deploy, from its definition: its followers, or its steps with their
   * parameters. Routes can also be written at run time, with no deploy, by invoking the route
   * writer function or by writing the routes table.
   */
  public addRouteDefinition(route: RouteDefinition): void {
    const definition = copyRoute(route);
    const { channel, followers, steps } = definition;
    if ((followers === undefined) === (steps === undefined)) {
      throw new PropValidationError(this, `route of channel ${JSON.stringify(channel)}`, definition,
        'allowed: either followers (names) or steps ({ follower, parameters? } each), not both and not neither');
    }
    const item: RouteItem = {
      channel,
      ...(definition.tenant !== undefined ? { tenant: definition.tenant } : {}),
      ...(definition.eventType !== undefined ? { eventType: definition.eventType } : {}),
      followers: followers ?? steps!.map((step) => (step.parameters === undefined
        ? step.follower : { follower: step.follower, parameters: step.parameters })),
      ...(definition.description !== undefined ? { description: definition.description } : {}),
    };
    if ([channel, item.tenant, item.eventType, ...followerNames(item)].some((f) => Token.isUnresolved(f))) {
      throw new PropValidationError(this, 'route', definition,
        'allowed: literal channel, tenant, event type and follower names (they are validated at synth)');
    }
    // A token hop limit is only known at deploy: here a route is held to the longest allowed
    // (MAX_ROUTE_LENGTH); the route writer checks it against the deployed MAX_HOPS.
    const check = checkRoute(item, Token.isUnresolved(this.maxHops) ? MAX_ROUTE_LENGTH : this.maxHops);
    if (!check.valid) throw new PropValidationError(this, `route of channel ${JSON.stringify(channel)}`, definition, `allowed: ${check.errors.join('; ')}`);
    if (this.routes.some((r) => routeKey(r.item) === routeKey(item))) {
      throw new PropValidationError(this, 'route', routeKey(item),
        'allowed: a channel (with this tenant and event type) without a route yet in this orchestrator');
    }
    this.routes.push({ definition, item });
  }

  /**
   * Routes curated events of a bus through the leader: a rule (by default, every
   * `CuratedRecord` and `CuratedBatch` not yet orchestrated) whose delivery to the leader is
   * retried 8 times within an hour, then parked in the dead-letter queue. Failures inside the
   * leader get Lambda's 2 retries, then go to the same queue.
   */
  public addSource(id: string, options: OrchestratorSourceOptions): events.Rule {
    const pattern = options.eventPattern ?? { source: [CURATED_SOURCE], detailType: [RECORD_DETAIL_TYPE, BATCH_DETAIL_TYPE] };
    validateEventPattern(this, `eventPattern of source "${id}"`, pattern);
    const rule = new events.Rule(this, `Source${id}`, {
      eventBus: options.eventBus,
      eventPattern: { ...pattern, detail: { orchestration: events.Match.doesNotExist(), ...pattern.detail } },
      description: truncate(options.description ?? `cdk-event-fabric LeaderFollowerOrchestrator source ${id} (${this.node.path})`, 512),
    });
    rule.addTarget(this.ruleTarget());
    this.sourceRules.push(rule);
    return rule;
  }

  /**
   * A rule target for the leader with the orchestrator's delivery defaults (EventBridge retries
   * the delivery 8 times within an hour, then the dead-letter queue), for rules made elsewhere, such as a
   * TieredEventIngest fast route. The leader takes curated events, bare envelopes and batches.
   */
  public ruleTarget(): events.IRuleTarget {
    return new targets.LambdaFunction(this.leaderFunction, {
      deadLetterQueue: this.deadLetterQueue,
      retryAttempts: SOURCE_RETRY_ATTEMPTS,
      maxEventAge: SOURCE_MAX_EVENT_AGE,
    });
  }

  /**
   * Lets `grantee` write routes at run time by invoking the route writer (validated writes)
   * with `{ "putRoutes": [...], "deleteChannels": [...] }`.
   */
  public grantWriteRoutes(grantee: iam.IGrantable): iam.Grant {
    return grantInvokeExactly(this.routeWriterFunction, grantee);
  }

  /**
   * Lets `grantee` invoke the redrive function, for example with `{ "redrive": { "maxMessages": 10 } }`.
   * Only that function: the grantee cannot invoke the leader, so it cannot inject events or forge
   * follower results.
   */
  public grantRedrive(grantee: iam.IGrantable): iam.Grant {
    return grantInvokeExactly(this.redriveFunction, grantee);
  }

  /** A metric of the leader (namespace `cdk-event-fabric`, dimensions `orchestrator` and `channel`). */
  public metric(metricName: string, channel: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return handlerMetric(metricName, { service: SERVICE_NAME, orchestrator: this.node.addr, channel }, props);
  }

  /** Follower steps dispatched for a channel (metric `Steps`). */
  public metricSteps(channel: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric('Steps', channel, props);
  }

  /** Records of a channel put on the curated bus at FINISH (metric `Completions`). */
  public metricCompletions(channel: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric('Completions', channel, props);
  }

  /**
   * Events of a channel parked in the dead-letter queue (metric `Failures`). Events without a
   * routable channel (none, unknown, or invalid input) count under the channel `(unrouted)`.
   */
  public metricFailures(channel: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric('Failures', channel, props);
  }

  /** Duplicate deliveries detected and not applied again (metric `Replays`). */
  public metricReplays(channel: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric('Replays', channel, props);
  }

  /** Milliseconds from a run's start at the leader to its FINISH on the curated bus (metric `EndToEndLatency`, p99 by default). */
  public metricEndToEndLatency(channel: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric('EndToEndLatency', channel, { statistic: 'p99', ...props });
  }

  private createLeader(functionName: string): lambda.Function {
    const props = this.props;
    const key = props.encryptionKey;
    const logGroup = functionLogGroup(this, 'LeaderFunctionLogs');
    const role = functionRole(this, 'LeaderFunctionRole', 'cdk-event-fabric LeaderFollowerOrchestrator leader', logGroup);
    const fn = new LeaderFunction(this, 'LeaderFunction', {
      functionName,
      role,
      description: 'cdk-event-fabric LeaderFollowerOrchestrator: routes curated records through their channel\'s followers',
      memorySize: 512,
      timeout: LEADER_TIMEOUT,
      tracing: lambda.Tracing.ACTIVE,
      logGroup,
      // Deliberately left on: a route of at most 15 steps invokes the leader at most 16 times, so the detection never
      // stops a valid chain, and it still stops a loop that escapes the hop limit.
      recursiveLoop: lambda.RecursiveLoop.TERMINATE,
      retryAttempts: 2,
      maxEventAge: Duration.hours(6),
      onFailure: new lambdaDestinations.SqsDestination(this.deadLetterQueue),
      environment: this.leaderEnvironment('events'),
    });
    this.grantStepWork(fn, role);
    acknowledgeKeyWildcards(role, key, 'The leader reads and writes its tables and dead-letter queue with the orchestrator key');
    Validations.of(fn).acknowledge({
      id: 'Serverless-LambdaDLQ',
      reason: 'Invoked asynchronously; failed invocations go to the on-failure destination (the dead-letter queue), which keeps the request '
        + 'with the error. A legacy DLQ would receive the same events twice.',
    });
    return fn;
  }

  /**
   * What the leader and the redrive function both do with a step: read routes, claim and mark
   * progress, put records on the bus, park in the dead-letter queue. Statements on the exact
   * ARNs: Table.grant adds "<table>/index/*" once the table has an index.
   */
  private grantStepWork(fn: lambda.Function, role: iam.Role): void {
    role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ['dynamodb:GetItem'], resources: [this.routesTable.tableArn] }));
    role.addToPrincipalPolicy(new iam.PolicyStatement({
      actions: ['dynamodb:GetItem', 'dynamodb:UpdateItem'], resources: [this.progressTable.tableArn],
    }));
    this.curatedBus.grantPutEventsTo(fn);
    this.deadLetterQueue.grantSendMessages(fn);
    this.props.encryptionKey?.grantEncryptDecrypt(fn);
    acknowledgeXRay(role);
  }

  /**
   * The leader's code with its own role, taking redrive and sweep requests only (`grantRedrive`
   * grants this function). Only it consumes the dead-letter queue and scans for stalled steps.
   */
  private createRedrive(): lambda.Function {
    const logGroup = functionLogGroup(this, 'RedriveFunctionLogs');
    const role = functionRole(this, 'RedriveFunctionRole', 'cdk-event-fabric LeaderFollowerOrchestrator redrive', logGroup);
    const fn = new LeaderFunction(this, 'RedriveFunction', {
      role,
      description: 'cdk-event-fabric LeaderFollowerOrchestrator: resumes parked events from the dead-letter queue',
      memorySize: 512,
      timeout: REDRIVE_TIMEOUT,
      tracing: lambda.Tracing.ACTIVE,
      logGroup,
      environment: this.leaderEnvironment('redrive'),
    });
    this.grantStepWork(fn, role);
    this.deadLetterQueue.grantConsumeMessages(fn);
    role.addToPrincipalPolicy(new iam.PolicyStatement({
      actions: ['dynamodb:Scan'], resources: [`${this.progressTable.tableArn}/index/${PROGRESS_STALLED_INDEX}`],
    }));
    acknowledgeKeyWildcards(role, this.props.encryptionKey, 'The redrive function reads and writes the tables and dead-letter queue with the orchestrator key');
    Validations.of(fn).acknowledge({
      id: 'Serverless-LambdaDLQ',
      reason: 'Invoked synchronously by operators, who see its report and every error, and by the sweep schedule, whose next run '
        + 'repeats a failed sweep; the messages it could not resume stay in the orchestrator dead-letter queue.',
    });
    return fn;
  }

  private leaderEnvironment(entry: LeaderEntry): Record<string, string> {
    const props = this.props;
    return {
      [LEADER_ENV.ROUTES_TABLE_NAME]: this.routesTable.tableName,
      [LEADER_ENV.PROGRESS_TABLE_NAME]: this.progressTable.tableName,
      [LEADER_ENV.CURATED_BUS_NAME]: this.curatedBus.eventBusName,
      [LEADER_ENV.DEAD_LETTER_QUEUE_URL]: this.deadLetterQueue.queueUrl,
      [LEADER_ENV.MAX_HOPS]: String(this.maxHops),
      [LEADER_ENV.ROUTE_CACHE_TTL_SECONDS]: Tokenization.stringifyNumber((props.routeCacheTtl ?? DEFAULT_ROUTE_CACHE_TTL).toSeconds()),
      [LEADER_ENV.MAX_EVENT_BYTES]: Tokenization.stringifyNumber(props.maxEventBytes ?? DEFAULT_STEP_EVENT_BYTES),
      [LEADER_ENV.PROGRESS_TTL_SECONDS]: Tokenization.stringifyNumber((props.progressTtl ?? DEFAULT_PROGRESS_TTL).toSeconds()),
      [LEADER_ENV.ORCHESTRATOR_ID]: this.node.addr,
      [LEADER_ENV.STEP_RESULT_TIMEOUT_SECONDS]: Lazy.string({
        produce: () => String(stepResultTimeoutSeconds(this.followerEventAges.length > 0
          ? this.followerEventAges : [props.followerMaxEventAge ?? DEFAULT_FOLLOWER_MAX_EVENT_AGE])),
      }),
      [LEADER_ENV.ENTRY]: entry,
      POWERTOOLS_SERVICE_NAME: SERVICE_NAME,
      POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE,
    };
  }

  /**
   * The route writer's code in one of its two functions: `api` (run-time writes, for operators)
   * or `deploy` (the routes custom resource, the only writer of the followers item).
   */
  private createRouteWriter(entry: RouteWriterEntry): lambda.Function {
    const key = this.props.encryptionKey;
    const id = entry === 'api' ? 'RouteWriterFunction' : 'RoutesResourceFunction';
    const logGroup = functionLogGroup(this, `${id}Logs`);
    const role = functionRole(this, `${id}Role`, `cdk-event-fabric LeaderFollowerOrchestrator ${entry === 'api' ? 'route writer' : 'routes resource'}`,
      logGroup);
    const fn = new RouteWriterFunction(this, id, {
      role,
      description: entry === 'api' ? 'cdk-event-fabric LeaderFollowerOrchestrator: validates and writes routes at run time'
        : 'cdk-event-fabric LeaderFollowerOrchestrator: writes the followers and routes of the props at deploy',
      memorySize: 256,
      timeout: Duration.seconds(60),
      tracing: lambda.Tracing.ACTIVE,
      logGroup,
      environment: {
        [ROUTE_WRITER_ENV.ROUTES_TABLE_NAME]: this.routesTable.tableName,
        [ROUTE_WRITER_ENV.MAX_HOPS]: String(this.maxHops),
        [ROUTE_WRITER_ENV.ENTRY]: entry,
        POWERTOOLS_SERVICE_NAME: SERVICE_NAME,
      },
    });
    // GetItem: a run-time write checks its routes against the followers item.
    this.routesTable.grant(fn, 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:DeleteItem');
    key?.grantEncryptDecrypt(fn);
    acknowledgeXRay(role);
    acknowledgeKeyWildcards(role, key, 'The route writer writes the routes table with the orchestrator key');
    Validations.of(fn).acknowledge({
      id: 'Serverless-LambdaDLQ',
      reason: `Invoked synchronously only (${entry === 'api' ? 'by operators' : 'by the custom resource provider at deploy'}), so the caller `
        + 'sees every error; there is no asynchronous event to park.',
    });
    return fn;
  }

  private createRoutesProvider(): cr.Provider {
    const logGroup = functionLogGroup(this, 'RoutesProviderLogs');
    const provider = new cr.Provider(this, 'RoutesProvider', { onEventHandler: this.routesResourceFunction, logGroup });
    const framework = provider.node.findChild('framework-onEvent') as lambda.Function;
    Validations.of(framework).acknowledge({
      id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
      reason: 'The CDK custom resource provider framework\'s own function; its role is made by aws-cdk-lib.',
    });
    const writerLogicalId = Stack.of(this).getLogicalId(this.routesResourceFunction.node.defaultChild as lambda.CfnFunction);
    Validations.of(framework).acknowledge({
      id: `AwsSolutions-IAM5[Resource::<${writerLogicalId}.Arn>:*]`,
      reason: 'The provider framework may invoke the routes resource function and its versions; that is the only wildcard.',
    });
    for (const [id, reason] of [
      ['Serverless-LambdaDLQ', 'Invoked synchronously by CloudFormation through the provider; a failure fails the deploy.'],
      ['Serverless-LambdaTracing', 'The CDK provider framework function; the route writer it calls has active tracing.'],
      ['Serverless-LambdaDefaultMemorySize', 'The CDK provider framework function, sized by aws-cdk-lib.'],
      ['Serverless-LambdaLatestVersion', 'The CDK provider framework function; its runtime is chosen by aws-cdk-lib.'],
      ['AwsSolutions-L1', 'The CDK provider framework function; its runtime is chosen by aws-cdk-lib.'],
    ]) {
      Validations.of(framework).acknowledge({ id, reason });
    }
    return provider;
  }

  private validateRoutesAgainstFollowers(): string[] {
    const errors: string[] = [];
    for (const { item: route } of this.routes) {
      const unknown = followerNames(route).filter((f) => !this.followerFunctions.has(f));
      if (unknown.length > 0) {
        errors.push(`${this.node.path}: invalid route of channel ${JSON.stringify(route.channel)}: followers ${JSON.stringify(unknown)} `
          + `are not registered; allowed: ${JSON.stringify(this.followerNames)} (register them with addFollower or the followers prop)`);
      }
    }
    return errors;
  }

  private alarm(id: string, metric: cloudwatch.IMetric, what: string): cloudwatch.Alarm {
    return thresholdAlarm(this, id, metric, what, this.props.alarmActions);
  }
}

/** A copy of a route definition (its lists too), without the fields not given. */
function copyRoute(route: RouteDefinition): RouteDefinition {
  return {
    channel: route.channel,
    ...(route.tenant !== undefined ? { tenant: route.tenant } : {}),
    ...(route.eventType !== undefined ? { eventType: route.eventType } : {}),
    ...(route.followers !== undefined ? { followers: [...route.followers] } : {}),
    ...(route.steps !== undefined ? { steps: route.steps.map((step) => ({ ...step })) } : {}),
    ...(route.description !== undefined ? { description: route.description } : {}),
  };
}

/**
 * The leader as a follower's success and failure destination, named by ARN (not by reference,
 * which would make the follower's role depend on the leader that depends on the follower).
 */
class LeaderDestination implements lambda.IDestination {
  constructor(private readonly leaderArn: string) {}

  public bind(_scope: Construct, fn: lambda.IFunction): lambda.DestinationConfig {
    // Lambda sends destination records with the follower's execution role. For an imported
    // function without a role, aws-cdk-lib warns that the grant could not be added.
    iam.Grant.addToPrincipal({ grantee: fn, actions: ['lambda:InvokeFunction'], resourceArns: [this.leaderArn] });
    return { destination: this.leaderArn };
  }
}

/**
 * Followers registered in this process, by function and qualifier. Weak: it never keeps an app
 * alive, and only finds a function registered twice (in one orchestrator or two).
 */
const FOLLOWER_REGISTRATIONS = new WeakMap<lambda.IFunction, Map<string, string>>();

/**
 * The function and qualifier an asynchronous invocation configuration applies to; undefined for
 * an imported qualified function, whose qualifier cannot be told apart from its name.
 */
function asyncConfigTarget(fn: lambda.IFunction): { fn: lambda.IFunction; qualifier?: string } | undefined {
  if (fn instanceof lambda.Alias) return { fn: fn.version.lambda, qualifier: fn.aliasName };
  if (fn instanceof lambda.Version) return { fn: fn.lambda, qualifier: fn.version };
  if (fn instanceof lambda.QualifiedFunctionBase) return undefined;
  // arn:aws:lambda:region:account:function:name[:qualifier]
  if (!Token.isUnresolved(fn.functionArn) && fn.functionArn.split(':').length > 7) return undefined;
  return { fn };
}

/**
 * How long after its dispatch a step's result can still arrive: Lambda keeps retrying it for up
 * to the follower's maximum event age (the longest of the followers'), and its last attempt may
 * run up to 15 minutes. 15 more minutes of margin. A token event age counts as the longest, 6 hours.
 */
function stepResultTimeoutSeconds(maxEventAges: Duration[]): number {
  const seconds = maxEventAges.map((age) => (age.isUnresolved() ? 21_600 : age.toSeconds()));
  return Math.max(...seconds) + 30 * 60;
}

function destinationDeliveryFailures(fn: lambda.IFunction): cloudwatch.IMetric {
  return fn.metric('DestinationDeliveryFailures', { statistic: cloudwatch.Stats.SUM, period: Duration.minutes(5) });
}

function validateProps(scope: IConstruct, props: LeaderFollowerOrchestratorProps): void {
  validateIntegerRange(scope, 'maxHops', props.maxHops, 1, MAX_ROUTE_LENGTH,
    `(the leader is invoked 1 + ${MAX_ROUTE_LENGTH} = ${MAX_ROUTE_LENGTH + 1} times by a route that long; Lambda's recursive loop `
    + `detection stops a function invoked more than ${LAMBDA_RECURSION_LIMIT} times by one event)`);
  validateIntegerRange(scope, 'maxEventBytes', props.maxEventBytes, 1024, MAX_STEP_EVENT_BYTES,
    'bytes (a destination record carries the request and the result within Lambda\'s 1 MB asynchronous payload limit)');
  validateIntegerRange(scope, 'followerRetryAttempts', props.followerRetryAttempts, 0, 2, '(Lambda\'s asynchronous retry range)');
  validateSeconds(scope, 'routeCacheTtl', props.routeCacheTtl, 0, 3600);
  validateSeconds(scope, 'followerMaxEventAge', props.followerMaxEventAge, 60, 21_600);
  validateSeconds(scope, 'progressTtl', props.progressTtl, 86_400, 365 * 86_400);
}

function validateSeconds(scope: IConstruct, prop: string, value: Duration | undefined, min: number, max: number): void {
  if (value === undefined || value.isUnresolved()) return;
  const seconds = value.toMilliseconds() / 1000;
  if (!Number.isInteger(seconds) || seconds < min || seconds > max) {
    throw new PropValidationError(scope, prop, `${seconds} seconds`, `allowed: a whole number of seconds from ${min} to ${max}`);
  }
}
