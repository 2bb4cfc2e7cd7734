import { randomUUID } from 'crypto';
import { gunzipSync, gzipSync } from 'zlib';
import type { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { DeleteMessageCommand, ReceiveMessageCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import Ajv2020, { ValidateFunction } from 'ajv/dist/2020';
import { FOLLOWER_RESULT_SCHEMA } from './follower-contract-schema';
import {
  DESTINATION_RECORD_BUDGET_BYTES, FollowerRequest, LEADER_ENV, LeaderEntry, MAX_ROUTE_LENGTH, ParkedEvent, ParkReason, RouteItem, routeKey,
  routeKeysOf, StepContext,
} from './orchestrator-contract';
import type { ClaimOutcome, ProgressStore, StepClaim } from './progress-core';
import { checkRoute, followerNames, routeParameters, unregisteredFollowers } from './route-schema';
import { registeredFollowers, RouteReader } from './route-store-core';
import { DELIVERABLE_ENTRY_BYTES } from '../common/event-limits';
import { describeValue as describe, isIntegerWithin, isObject } from '../runtime/argument-checks';
import type { CoreLogger } from '../runtime/core-logger';
import {
  BATCH_DETAIL_TYPE, checkEnvelope, checkRecord, CURATED_SOURCE, deterministicId, Envelope, RECORD_DETAIL_TYPE, RecordEnvelope,
} from '../runtime/curated-envelope';
import { positiveIntegerEnv, requiredEnv } from '../runtime/env-settings';
import { putEventsEntrySize, putEventsReliably } from '../runtime/put-events';

/** The leader's settings, from its environment. */
export interface LeaderConfig {
  readonly orchestratorId: string;
  readonly curatedBusName: string;
  readonly deadLetterQueueUrl: string;
  /**
   * Registered followers: name to function ARN. Only these may be invoked.
   * @default - the routes table's followers item (FOLLOWERS_ITEM_KEY), read through the route cache
   */
  readonly followers?: Record<string, string>;
  readonly maxHops: number;
  readonly maxEventBytes: number;
  /**
   * Milliseconds after its dispatch a step without a result counts as stalled: longer than
   * Lambda can still return it (the follower's maximum event age plus its last attempt).
   */
  readonly stepResultTimeoutMs: number;
}

/** Per-channel counts and latencies; the handler publishes them as EMF metrics. */
export interface LeaderMetrics {
  count(channel: string, name: 'Steps' | 'Completions' | 'Failures' | 'Replays', value?: number): void;
  latency(channel: string, milliseconds: number): void;
}

export interface LeaderDependencies {
  readonly routes: RouteReader;
  /**
   * Where the followers item is read: cached longer than routes (`routeCacheTtl` may be 0),
   * since it changes only at deploy, and a name it lacks, an ARN Lambda refuses or a sender it
   * does not know makes the leader read it again. @default - `routes`
   */
  readonly followers?: RouteReader;
  readonly progress: Pick<ProgressStore, 'claim' | 'markDispatched' | 'markParked' | 'markParkSent' | 'findStalled'>
    & Partial<Pick<ProgressStore, 'dispatchedTo'>>;
  readonly lambda: Pick<LambdaClient, 'send'>;
  readonly eventBridge: Pick<EventBridgeClient, 'send'>;
  readonly sqs: Pick<SQSClient, 'send'>;
  readonly metrics: LeaderMetrics;
  readonly logger: CoreLogger;
  readonly now?: () => number;
  /** Records of a batch handled at once. @default 16 */
  readonly concurrency?: number;
  /** Backoff of PutEvents retries, injected by tests. */
  readonly sleep?: (ms: number) => Promise<void>;
  /** Milliseconds left in the invocation (Lambda's context); a redrive stops receiving when it runs low. */
  readonly remainingTimeMs?: () => number;
  /**
   * What this function takes: `events` (the leader) refuses redrive requests, `redrive` (the
   * redrive function) takes nothing else, so a principal allowed to redrive cannot inject events
   * or forge follower results. @default - both (tests)
   */
  readonly entry?: LeaderEntry;
}

/** What the leader did with one record or follower result. */
export type LeaderOutcome = 'dispatched' | 'finished' | 'parked' | 'replay';

/** Summary of one invocation. */
export interface LeaderReport {
  readonly outcomes: Record<LeaderOutcome, number>;
  /** What a redrive did with the dead-letter queue's messages. */
  readonly redrive?: RedriveReport;
  /** What a sweep for stalled steps did: steps found past their time, and parked. */
  readonly sweep?: { readonly found: number; readonly parked: number };
}

/**
 * A redrive's count of dead-letter queue messages. Every message received ends in exactly one
 * of the last five.
 */
export interface RedriveReport {
  /** Messages received. */
  readonly received: number;
  /** Resumed: a step dispatched or the record put on the bus; the message deleted. */
  readonly resumed: number;
  /**
   * Parked again, because the cause is not fixed: a new message with the new reason is in the
   * queue (hidden for 15 minutes), and the old one is deleted.
   */
  readonly reparked: number;
  /**
   * Deleted with nothing to resume: a duplicate of a message that was resumed or parked again
   * already (its step has moved on), or the on-failure record of a failed redrive request.
   */
  readonly dropped: number;
  /** Not matching the request's filter: left in the queue (visible again after 2 minutes). */
  readonly skipped: number;
  /** Could not be resumed now (AWS failing, or the step busy): left in the queue for the next redrive. */
  readonly failed: number;
}

/** Channel dimension for events with no routable channel, so bad input cannot add metric dimensions without bound. */
export const UNROUTED_CHANNEL = '(unrouted)';
const LEADER_MARKER = 'cdk-event-fabric.leader';

/**
 * Raised when a step is claimed by an invocation that may still be running it: the leader's
 * invocation fails, and Lambda retries it after its lease has passed.
 */
export class StepBusyError extends Error {
  constructor(runId: string, step: number) {
    super(`step ${step} of run ${runId} is being dispatched by another invocation; retried later`);
    this.name = 'StepBusyError';
  }
}

/** A run at one step: the context a follower request carries, minus the follower and hop of that step. */
interface RunState {
  readonly channel: string;
  readonly runId: string;
  readonly route: string[];
  /** Each step's parameters (null for a step without), when the route has any. */
  readonly routeParameters?: unknown[];
  /** Follower invocations completed before this step. */
  readonly hops: number;
  readonly startedAt: number;
  /** The record's metadata: the envelope without the payload. */
  readonly record: Record<string, unknown>;
}

/**
 * The leader: starts a route for each curated record (alone, or from a batch), invokes the
 * route's followers one step at a time (asynchronously; their results come back as Lambda
 * destination records), puts the processed record on the curated bus at FINISH, and parks
 * what it cannot route in its dead-letter queue with the channel, step and reason.
 */
export class Leader {
  private readonly now: () => number;
  private readonly outcomes: Record<LeaderOutcome, number> = { dispatched: 0, finished: 0, parked: 0, replay: 0 };
  private redriving = false;

  constructor(private readonly deps: LeaderDependencies, private readonly config: LeaderConfig) {
    this.now = deps.now ?? Date.now;
  }

  /** Handles one invocation of any kind the leader accepts. */
  public async handle(input: unknown): Promise<LeaderReport> {
    // An operator's request is an object with exactly one of these keys; anything else carrying
    // one of them is refused by both functions, so it can never pass for events at the redrive function.
    const operatorKeys = isObject(input) ? OPERATOR_REQUEST_KEYS.filter((key) => key in input) : [];
    const isRedrive = operatorKeys.length > 0;
    const wellFormed = operatorKeys.length === 1 && Object.keys(input as object).length === 1 && isObject((input as any)[operatorKeys[0]]);
    if (isRedrive && !wellFormed) {
      throw new Error(`not a redrive or sweep request: ${describe(input)}; allowed: { "redrive": { ... } } or { "sweepStalled": { ... } }, `
        + 'nothing else in the object');
    }
    if (this.deps.entry === 'events' && isRedrive) {
      throw new Error('the leader does not take redrive requests; invoke the orchestrator\'s redrive function '
        + '(LeaderFollowerOrchestrator.redriveFunction) with { "redrive": {...} }');
    }
    if (this.deps.entry === 'redrive' && !isRedrive) {
      throw new Error('the redrive function takes { "redrive": { "maxMessages"?, "reason"?, "channel"?, "runId"? } } '
        + `or { "sweepStalled": { "maxItems"? } } only, got ${describe(input)}`);
    }
    if (isObject(input) && isObject(input.sweepStalled)) {
      const sweep = await this.sweepStalled(sweepLimit(input.sweepStalled));
      return { outcomes: { ...this.outcomes }, sweep };
    }
    if (isObject(input) && isObject(input.redrive)) {
      const redrive = await this.redrive(redriveFilter(input.redrive));
      return { outcomes: { ...this.outcomes }, redrive };
    }
    await this.route(input, false);
    return { outcomes: { ...this.outcomes } };
  }

  private async route(input: unknown, fresh: boolean): Promise<void> {
    if (isDestinationRecord(input)) return this.onFollowerResult(input);
    const detail = isObject(input) && typeof input['detail-type'] === 'string' && 'detail' in input ? input.detail : input;
    const check = checkEnvelope(detail);
    if (!check.valid) {
      return this.park({
        reason: 'invalid-input',
        channel: null,
        step: 0,
        hops: 0,
        input,
        message: `not a curated envelope (a ${RECORD_DETAIL_TYPE} or ${BATCH_DETAIL_TYPE} event, a record or batch envelope, `
          + `a follower's destination record, or { "redrive": {...} }): ${check.errors.join('; ')}`,
      });
    }
    const envelope = detail as Envelope;
    const records = envelope.kind === 'batch' ? envelope.records : [envelope];
    await this.forEach(records, (record) => this.start(record, fresh));
  }

  /** Starts a record's route at step 1, after checking its channel, route, followers and hops. */
  private async start(record: RecordEnvelope, fresh: boolean): Promise<void> {
    // A record that was orchestrated before (it came back through a bus) keeps counting its hops.
    const { payload, ...metadata } = record;
    const priorHops = Number.isInteger(record.orchestration?.hops) ? record.orchestration!.hops : 0;
    const channel = typeof record.channel === 'string' && record.channel.trim() ? record.channel : null;
    const parkAtStart = (reason: ParkReason, message: string, extra: Partial<ParkedEvent> = {}) =>
      this.park({ reason, message, channel, step: 0, hops: priorHops, record: { ...metadata, payload }, ...extra });
    if (channel === null) return parkAtStart('no-channel', 'the record has no channel; allowed: a record whose channel has a route');
    // The most specific route of the record: its tenant and event type, its tenant, its event type, its channel.
    const keys = routeKeysOf(channel, record.tenant, record.detailType);
    if (fresh) keys.forEach((key) => this.deps.routes.forget(key));
    const found = await Promise.all(keys.map((key) => this.deps.routes.get(key)));
    const index = found.findIndex((item) => item !== undefined);
    if (index < 0) {
      return parkAtStart('unknown-channel', `no route for channel ${JSON.stringify(channel)}; add one to the routes table (or the routes prop)`);
    }
    const key = keys[index];
    const which = key === channel ? `of channel ${JSON.stringify(channel)}` : JSON.stringify(key);
    // A route of a tenant or event type is stored under its route key; it is checked as the route it is.
    const stored = isObject(found[index]) ? { ...found[index] as object, channel } : found[index];
    const check = checkRoute(stored, this.config.maxHops);
    const misfiled = check.valid && routeKey(stored as RouteItem) !== key
      ? `the route stored under ${JSON.stringify(key)} is for ${JSON.stringify(routeKey(stored as RouteItem))}` : undefined;
    if (!check.valid || misfiled) {
      return parkAtStart('bad-route', `the route ${which} is invalid: ${misfiled ?? check.errors.join('; ')}`);
    }
    const route = stored as RouteItem;
    const names = followerNames(route);
    const parameters = routeParameters(route);
    const followers = await this.followersFor(names, fresh);
    const unknown = unregisteredFollowers(route, Object.keys(followers));
    if (unknown.length > 0) {
      return parkAtStart('unregistered-follower', `the route ${which} names unregistered followers `
        + `${JSON.stringify(unknown)}; allowed: ${JSON.stringify(Object.keys(followers).sort())}`, { route: names });
    }
    if (priorHops + names.length > this.config.maxHops) {
      return parkAtStart('hop-limit', `the record has made ${priorHops} hops and the route needs ${names.length} more; `
        + `the hop limit is ${this.config.maxHops}`, { route: names });
    }
    const run: RunState = {
      channel,
      runId: deterministicId(this.config.orchestratorId, String(record.tenant), record.id, channel, String(priorHops)),
      route: names,
      ...(parameters ? { routeParameters: parameters } : {}),
      hops: priorHops,
      startedAt: this.now(),
      record: metadata,
    };
    await this.dispatch(run, 1, payload);
  }

  /** Claims step `step` of a run and invokes its follower asynchronously. */
  private async dispatch(run: RunState, step: number, event: unknown, parkToken?: string): Promise<void> {
    const follower = run.route[step - 1];
    const park = (reason: ParkReason, message: string) => this.parkRun(run, step, event, reason, message, parkToken);
    const followers = await this.followersFor([follower], parkToken !== undefined);
    const arn = followers[follower];
    const dispatchId = randomUUID();
    if (!arn) {
      return park('unregistered-follower', `step ${step} names follower ${JSON.stringify(follower)}, which is not registered; `
        + `allowed: ${JSON.stringify(Object.keys(followers).sort())}`);
    }
    if (run.hops + 1 > this.config.maxHops) {
      return park('hop-limit', `step ${step} would be hop ${run.hops + 1}; the hop limit is ${this.config.maxHops}`);
    }
    const parameters = run.routeParameters?.[step - 1] ?? null;
    const request: FollowerRequest = {
      channel: run.channel,
      step,
      event,
      ...(parameters !== null ? { parameters } : {}),
      orchestration: {
        orchestrator: this.config.orchestratorId,
        runId: run.runId,
        route: run.route,
        ...(run.routeParameters ? { routeParameters: run.routeParameters } : {}),
        follower,
        hops: run.hops + 1,
        startedAt: run.startedAt,
        record: run.record,
        dispatchId,
        followerArn: arn,
        maxResultBytes: 0,
      },
    };
    // The result may use what the destination record leaves once it carries this request.
    // `maxResultBytes` is the request's last field, so it is written into the one serialization.
    const placeholder = JSON.stringify(request);
    if (!placeholder.endsWith('"maxResultBytes":0}}')) throw new Error('maxResultBytes must be the last field of the follower request');
    const maxResultBytes = DESTINATION_RECORD_BUDGET_BYTES - Buffer.byteLength(placeholder, 'utf8') - 16;
    const payload = `${placeholder.slice(0, -'0}}'.length)}${maxResultBytes}}}`;
    const bytes = Buffer.byteLength(payload, 'utf8');
    if (bytes > this.config.maxEventBytes) {
      return park('oversized', `the request for step ${step} is ${bytes} bytes; allowed: at most ${this.config.maxEventBytes} `
        + '(a destination record carries the request and the result within Lambda\'s 1 MB asynchronous payload limit)');
    }
    // Kept with the step until its result comes back, so a step whose result is lost can be parked with its event.
    const kept = gzipSync(payload);
    if (kept.length > MAX_KEPT_INPUT_BYTES) {
      return park('oversized', `the request for step ${step} is ${kept.length} bytes gzipped; allowed: at most ${MAX_KEPT_INPUT_BYTES} `
        + '(the progress item keeps it until the step\'s result returns, within DynamoDB\'s 400 KB item limit)');
    }
    const claim = { runId: run.runId, step, channel: run.channel, resume: parkToken !== undefined, parkToken, dispatchId };
    if (!(await this.claim(claim, run, step, event))) return;
    if (!(await this.invokeFollower(follower, arn, payload))) {
      return park('unregistered-follower', `step ${step} names follower ${JSON.stringify(follower)}, which a deploy unregistered `
        + 'since this leader read the followers; register it again or change the route, then redrive');
    }
    await this.deps.progress.markDispatched(run.runId, step, dispatchId, { input: kept, stallAt: this.now() + this.config.stepResultTimeoutMs },
      parkToken);
    this.outcomes.dispatched++;
    this.deps.metrics.count(run.channel, 'Steps');
    this.deps.logger.info('step dispatched', { ...this.logFields(run), step, follower });
  }

  /** A follower's destination record: its result (next step or FINISH), or its failure (parked). */
  private async onFollowerResult(record: DestinationRecord): Promise<void> {
    const request = record.requestPayload;
    const context = request.orchestration;
    const run = runOf(request);
    const step = request.step;
    const mismatch = step < 1 || step > run.route.length || run.route[step - 1] !== context.follower
      ? `a follower result for step ${step} (follower ${JSON.stringify(context.follower)}) does not match its route `
        + `${JSON.stringify(run.route)}; allowed: a step from 1 to ${run.route.length} naming the route's follower at that step`
      : context.orchestrator !== this.config.orchestratorId
        ? `a follower result of orchestrator ${JSON.stringify(context.orchestrator)} reached orchestrator `
          + `${JSON.stringify(this.config.orchestratorId)}; allowed: results of this orchestrator's own followers`
        : undefined;
    const sender = await this.senderMismatch(record, step, context);
    if (mismatch || sender) {
      return this.park({ reason: 'invalid-input', channel: request.channel, step, hops: context.hops, input: record, message: (mismatch ?? sender)! });
    }
    // A request sent by a version before dispatch ids has none: `null` parks only a step with none.
    if (record.requestContext.condition !== 'Success') {
      const response = isObject(record.responsePayload) ? record.responsePayload : {};
      const error = [response.errorType, response.errorMessage].filter((p) => typeof p === 'string').join(': ') || 'no error message';
      return this.parkRun(run, step, request.event, 'follower-failed', `follower ${JSON.stringify(context.follower)} failed at step ${step} `
        + `(${record.requestContext.condition}, ${record.requestContext.approximateInvokeCount ?? '?'} attempts): ${error}`,
      undefined, context.dispatchId ?? null);
    }
    const result = record.responsePayload;
    if (!isFollowerResult(result)) {
      return this.parkRun(run, step, request.event, 'invalid-follower-result', `follower ${JSON.stringify(context.follower)} returned `
        + `${describe(result)} at step ${step}; allowed: { "event": <the processed event>, "finish"?: true | false }`, undefined, context.dispatchId ?? null);
    }
    const done = { ...run, hops: context.hops };
    // An early finish drops the rest of the route, so FINISH is always the step after the route's end.
    if (result.finish === true || step >= run.route.length) {
      return this.finish({ ...done, route: run.route.slice(0, step) }, step + 1, result.event);
    }
    return this.dispatch(done, step + 1, result.event);
  }

  /**
   * Invokes a follower asynchronously. A deploy may have changed its ARN (a new version, a
   * replaced function) since this environment cached the followers item; the old ARN is then
   * refused (the role may invoke the new one only) or gone: the item is read again, and the
   * follower invoked at its new ARN.
   */
  private async invokeFollower(follower: string, arn: string, payload: string): Promise<boolean> {
    const invoke = (functionName: string) => this.deps.lambda.send(new InvokeCommand({
      FunctionName: functionName, InvocationType: 'Event', Payload: Buffer.from(payload, 'utf8'),
    }));
    try {
      await invoke(arn);
      return true;
    } catch (error) {
      if (!STALE_FOLLOWER_ERRORS.has((error as Error).name)) throw error;
      const current = (await this.followersFor([follower], true))[follower];
      // Unregistered since: the step is parked with that reason (false).
      if (current === undefined) return false;
      if (current === arn) throw error;
      this.deps.logger.warn('follower ARN changed by a deploy; invoking the new one', { follower, previous: arn, current });
      await invoke(current);
      return true;
    }
  }

  /**
   * The registered followers (name to ARN), read again from the table when one of `names` is
   * missing from the cached followers item (a deploy may have registered it since), or when `fresh`.
   */
  private async followersFor(names: string[], fresh: boolean): Promise<Record<string, string>> {
    // No prototype: only registered names are found ("toString" is not, unless registered).
    if (this.config.followers) return Object.assign(Object.create(null) as Record<string, string>, this.config.followers);
    const items = this.deps.followers ?? this.deps.routes;
    const cached = await registeredFollowers(items, fresh);
    if (fresh || names.every((name) => Object.prototype.hasOwnProperty.call(cached, name))) return cached;
    return registeredFollowers(items, true);
  }

  /**
   * Why a destination record was not sent by the follower of the step it claims, or undefined
   * when it was. Lambda names the sender in `requestContext.functionArn` (with its qualifier).
   */
  private async senderMismatch(record: DestinationRecord, step: number, context: StepContext): Promise<string | undefined> {
    const follower = context.follower;
    const sender = record.requestContext.functionArn;
    const sentBy = (arn: string | undefined) => typeof arn === 'string' && typeof sender === 'string' && unqualified(sender) === unqualified(arn);
    let registered = (await this.followersFor([follower], false))[follower];
    if (sentBy(registered)) return undefined;
    // A deploy may have replaced the follower's function since the followers item was cached.
    registered = (await this.followersFor([follower], true))[follower];
    if (sentBy(registered)) return undefined;
    // The function the leader invoked for this dispatch, as the request it kept says (a deploy may have replaced
    // it since): the request's own followerArn is only a claim, which anyone invoking a follower can write.
    if (sentBy(context.followerArn) && context.dispatchId !== undefined
      && sentBy(await this.deps.progress.dispatchedTo?.(context.runId, step, context.dispatchId))) return undefined;
    return `a follower result sent by ${JSON.stringify(sender ?? null)}, but step ${step} of the route is follower ${JSON.stringify(follower)} `
      + `(${registered ?? 'not registered with this orchestrator'}); allowed: results sent by the step's own follower function`;
  }

  /**
   * Parks, as `stalled`, the steps dispatched longer than the step result timeout ago whose
   * result never came back (a result over Lambda's asynchronous payload limit cannot return,
   * and Lambda only counts a `DestinationDeliveryFailures`). The parked message has the step's
   * event, so a redrive runs the step again. A result that does arrive later still advances
   * the run, and the parked message is then dropped by the redrive.
   */
  private async sweepStalled(limit: number): Promise<{ found: number; parked: number }> {
    const stalled = await this.deps.progress.findStalled(this.now(), limit);
    const parkedBefore = this.outcomes.parked;
    await this.forEach(stalled, async (item) => {
      const request = JSON.parse(gunzipSync(item.input).toString('utf8')) as FollowerRequest & { orchestration: StepContext };
      const context = request.orchestration;
      await this.parkRun(runOf(request), item.step, request.event, 'stalled', `step ${item.step} (follower ${JSON.stringify(context.follower)}) was `
        + `dispatched at ${new Date(item.stallAt - this.config.stepResultTimeoutMs).toISOString()} and no result came back within `
        + `${Math.round(this.config.stepResultTimeoutMs / 60_000)} minutes: a result over Lambda's asynchronous payload limit cannot `
        + 'return (see the follower\'s DestinationDeliveryFailures); redrive runs the step again with this event', undefined, context.dispatchId ?? null);
    });
    return { found: stalled.length, parked: this.outcomes.parked - parkedBefore };
  }

  /** FINISH: puts the processed record on the curated bus, once per run. */
  private async finish(run: RunState, step: number, event: unknown, parkToken?: string): Promise<void> {
    const park = (reason: ParkReason, message: string) => this.parkRun(run, step, event, reason, message, parkToken);
    const completedAt = this.now();
    const output = {
      ...run.record,
      payload: event,
      orchestration: {
        orchestrator: this.config.orchestratorId,
        runId: run.runId,
        route: run.route,
        hops: run.hops,
        startedAt: new Date(run.startedAt).toISOString(),
        completedAt: new Date(completedAt).toISOString(),
      },
    };
    const check = checkRecord(output);
    if (!check.valid) return park('invalid-follower-result', `the processed record is not a valid curated record: ${check.errors.join('; ')}`);
    const entry = {
      EventBusName: this.config.curatedBusName, Source: CURATED_SOURCE, DetailType: RECORD_DETAIL_TYPE, Detail: JSON.stringify(output),
    };
    const size = putEventsEntrySize(entry);
    if (size > DELIVERABLE_ENTRY_BYTES) {
      return park('oversized', `the processed record is a ${size}-byte PutEvents entry; allowed: at most ${DELIVERABLE_ENTRY_BYTES}`);
    }
    const dispatchId = randomUUID();
    const claim = { runId: run.runId, step, channel: run.channel, resume: parkToken !== undefined, parkToken, dispatchId };
    if (!(await this.claim(claim, run, step, event))) return;
    const [outcome] = await putEventsReliably(this.deps.eventBridge as EventBridgeClient, [entry], { sleep: this.deps.sleep });
    if (!outcome.ok && (outcome.callFailed || RETRYABLE_PUT_CODES.has(outcome.errorCode ?? ''))) {
      // AWS is failing, not the event: fail the invocation so Lambda retries it (the claim is taken over after its lease).
      throw new Error(`PutEvents failed for run ${run.runId}: ${outcome.errorCode}: ${outcome.errorMessage ?? ''}`);
    }
    if (!outcome.ok) return park('publish-failed', `PutEvents rejected the processed record: ${outcome.errorCode}: ${outcome.errorMessage ?? ''}`);
    await this.deps.progress.markDispatched(run.runId, step, dispatchId, undefined, parkToken);
    this.outcomes.finished++;
    this.deps.metrics.count(run.channel, 'Completions');
    this.deps.metrics.latency(run.channel, completedAt - run.startedAt);
    this.deps.logger.info('route finished', { ...this.logFields(run), step, eventId: outcome.eventId });
  }

  /** Claims a step; false when it must not run here (a replay, or out of order and parked). Throws when busy. */
  private async claim(claim: StepClaim, run: RunState, step: number, event: unknown): Promise<boolean> {
    const outcome: ClaimOutcome = await this.deps.progress.claim(claim);
    if (outcome === 'claimed') return true;
    if (outcome === 'busy') throw new StepBusyError(run.runId, step);
    if (outcome === 'superseded') {
      this.outcomes.replay++;
      this.deps.metrics.count(run.channel, 'Replays');
      this.deps.logger.warn('not resumed: the parked message no longer holds its step (it was resumed, or parked again with a newer message)',
        { ...this.logFields(run), step });
      return false;
    }
    if (outcome === 'replay') {
      this.outcomes.replay++;
      this.deps.metrics.count(run.channel, 'Replays');
      this.deps.logger.warn('replay detected: step already applied, not applied again', { ...this.logFields(run), step });
      return false;
    }
    await this.parkRun(run, step, event, 'out-of-order', `step ${step} arrived but run ${run.runId} is not at step ${step - 1} `
      + '(its progress is behind or has expired); redrive resumes it at this step');
    return false;
  }

  /**
   * Parks a run at a step, once: the step is marked parked with a token first, so a duplicate
   * (a second failure record, a late result) does not park it again, and only this message can
   * resume it. A redrive whose step fails again (`previousToken`, the redriven message's token)
   * parks it again with a new token derived from the old one: the new message takes over the step.
   * A follower's failure (`resultOf`, the id of the dispatch that failed) parks with a token of
   * that dispatch, and only while the step is at it (`null`: a dispatch with no id, sent by a
   * version before dispatch ids).
   */
  private async parkRun(run: RunState, step: number, event: unknown, reason: ParkReason, message: string, previousToken?: string,
    resultOf?: string | null): Promise<void> {
    const parkToken = previousToken !== undefined
      ? deterministicId(run.runId, String(step), reason, previousToken)
      : deterministicId(run.runId, String(step), reason, ...(resultOf ? [resultOf] : []));
    if (!(await this.deps.progress.markParked(run.runId, step, run.channel, parkToken, previousToken, resultOf))) {
      this.outcomes.replay++;
      this.deps.metrics.count(run.channel, 'Replays');
      this.deps.logger.warn('not parked again: the step is already parked or the run has moved on', { ...this.logFields(run), step, reason });
      return;
    }
    await this.park({
      reason,
      message,
      channel: run.channel,
      step,
      hops: run.hops,
      runId: run.runId,
      route: run.route,
      ...(run.routeParameters ? { routeParameters: run.routeParameters } : {}),
      startedAt: run.startedAt,
      follower: run.route[step - 1],
      record: { ...run.record, payload: event },
      parkToken,
    });
    await this.deps.progress.markParkSent(run.runId, parkToken);
  }

  private async park(fields: Omit<ParkedEvent, 'parkedBy' | 'orchestrator' | 'parkedAt'>): Promise<void> {
    const parked: ParkedEvent = {
      parkedBy: LEADER_MARKER,
      orchestrator: this.config.orchestratorId,
      parkedAt: new Date(this.now()).toISOString(),
      ...fields,
    };
    const body = JSON.stringify(parked);
    if (Buffer.byteLength(body, 'utf8') > MAX_PARKED_BYTES) {
      // Too big for an SQS message: fail the invocation instead, so Lambda's on-failure
      // destination keeps the whole request with this error.
      throw new Error(`cannot park a ${Buffer.byteLength(body, 'utf8')}-byte message (${fields.reason}: ${fields.message})`);
    }
    await this.deps.sqs.send(new SendMessageCommand({
      QueueUrl: this.config.deadLetterQueueUrl,
      MessageBody: body,
      // Parked again during a redrive: hidden for 15 minutes, so the same redrive does not pick it up again.
      ...(this.redriving ? { DelaySeconds: REPARK_DELAY_SECONDS } : {}),
    }));
    this.outcomes.parked++;
    const routed = fields.reason !== 'invalid-input' && fields.reason !== 'no-channel' && fields.reason !== 'unknown-channel';
    this.deps.metrics.count(routed && fields.channel ? fields.channel : UNROUTED_CHANNEL, 'Failures');
    this.deps.logger.error('event parked', {
      reason: fields.reason,
      message: fields.message,
      channel: fields.channel,
      step: fields.step,
      runId: fields.runId,
      correlationId: fields.record?.correlationId,
    });
  }

  /**
   * Resumes up to `maxMessages` messages of the dead-letter queue that match the filter: a
   * parked event at its failed step (or from its route lookup, with a fresh read, when it failed
   * before step 1), a failed leader invocation's request, or an event EventBridge could not
   * deliver. A message is deleted only once its hand-off is certain: its step dispatched, its
   * record on the bus, or a new parked message sent (the cause is not fixed), or when it holds
   * nothing any more (dropped). Anything else leaves it in the queue for the next redrive.
   */
  private async redrive(filter: RedriveFilter): Promise<RedriveReport> {
    const counts = { received: 0, resumed: 0, reparked: 0, dropped: 0, skipped: 0, failed: 0 };
    this.redriving = true;
    while (counts.received - counts.skipped < filter.maxMessages) {
      if ((this.deps.remainingTimeMs?.() ?? Infinity) < REDRIVE_TIME_RESERVE_MS) {
        this.deps.logger.warn('redrive stopped early: the invocation is running out of time; invoke it again for the rest', { ...counts });
        break;
      }
      const batch = await this.deps.sqs.send(new ReceiveMessageCommand({
        QueueUrl: this.config.deadLetterQueueUrl,
        MaxNumberOfMessages: Math.min(10, filter.maxMessages - (counts.received - counts.skipped)),
        WaitTimeSeconds: 0,
        VisibilityTimeout: REDRIVE_VISIBILITY_SECONDS,
      }));
      const messages = batch.Messages ?? [];
      if (messages.length === 0) break;
      counts.received += messages.length;
      for (const message of messages) {
        const body = parseJson(message.Body ?? '');
        if (!matches(body, filter)) {
          counts.skipped++;
          continue;
        }
        const before = { ...this.outcomes };
        try {
          await this.resume(body);
        } catch (error) {
          counts.failed++;
          this.deps.logger.error('redrive failed; the message stays in the queue', { messageId: message.MessageId, error: String(error) });
          continue;
        }
        try {
          await this.deps.sqs.send(new DeleteMessageCommand({ QueueUrl: this.config.deadLetterQueueUrl, ReceiptHandle: message.ReceiptHandle }));
        } catch (error) {
          // Its hand-off is done; a later redrive finds nothing left in it and drops it.
          this.deps.logger.warn('handed off, but not deleted; a later redrive drops it', { messageId: message.MessageId, error: String(error) });
        }
        if (this.outcomes.dispatched + this.outcomes.finished > before.dispatched + before.finished) {
          counts.resumed++;
        } else if (this.outcomes.parked > before.parked) {
          counts.reparked++;
        } else {
          counts.dropped++;
          this.deps.logger.warn('redrive dropped a message that had nothing left to resume', { messageId: message.MessageId });
        }
      }
    }
    this.redriving = false;
    return counts;
  }

  private async resume(body: unknown): Promise<void> {
    if (isObject(body) && body.parkedBy === LEADER_MARKER) {
      const parked = body as unknown as ParkedEvent;
      if (!parked.record) return this.route(parked.input, true);
      const { payload, ...metadata } = parked.record;
      if (parked.step === 0 || !parked.runId || !parked.route || parked.channel === null) {
        return this.start(parked.record as unknown as RecordEnvelope, true);
      }
      const run: RunState = {
        channel: parked.channel,
        runId: parked.runId,
        route: parked.route,
        ...(Array.isArray(parked.routeParameters) ? { routeParameters: parked.routeParameters } : {}),
        hops: parked.hops,
        startedAt: parked.startedAt ?? this.now(),
        record: metadata,
      };
      // Without a token, only the expired-progress rule lets the step be resumed.
      const token = parked.parkToken ?? '';
      if (parked.step > parked.route.length) return this.finish(run, parked.step, payload, token);
      return this.dispatch(run, parked.step, payload, token);
    }
    // The leader's own on-failure record: its request, handled again (progress makes that idempotent);
    // a failed redrive request is dropped (its messages are still in the queue).
    if (isObject(body) && isObject(body.requestContext) && 'requestPayload' in body) {
      if (isObject(body.requestPayload) && isObject(body.requestPayload.redrive)) return;
      return this.route(body.requestPayload, true);
    }
    return this.route(body, true);
  }

  /** Runs `work` over items with bounded concurrency; every item runs, then the first error is thrown. */
  private async forEach<T>(items: T[], work: (item: T) => Promise<void>): Promise<void> {
    const errors: unknown[] = [];
    let next = 0;
    const worker = async () => {
      while (next < items.length) {
        const item = items[next++];
        try {
          await work(item);
        } catch (error) {
          errors.push(error);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(Math.max(1, this.deps.concurrency ?? 16), items.length) }, worker));
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) throw new AggregateError(errors, `${errors.length} of ${items.length} records failed; the invocation is retried`);
  }

  private logFields(run: RunState): Record<string, unknown> {
    return { channel: run.channel, runId: run.runId, correlationId: run.record.correlationId, recordId: run.record.id };
  }
}

/** Reads `{ maxItems? }` of a sweep request (1 to 1000, default 100), failing with what is allowed. */
function sweepLimit(request: Record<string, unknown>): number {
  const unknown = Object.keys(request).filter((key) => key !== 'maxItems');
  const maxItems = request.maxItems ?? 100;
  if (unknown.length > 0 || !isIntegerWithin(maxItems, 1, 1000)) {
    throw new Error(`invalid sweep request: ${describe(request)}; allowed: { "sweepStalled": { "maxItems"?: 1 to 1000 (default 100) } }`);
  }
  return maxItems;
}

/** Invoke errors of a follower ARN a deploy has changed: the role may no longer invoke it, or the function is gone. */
const STALE_FOLLOWER_ERRORS = new Set(['AccessDeniedException', 'ResourceNotFoundException']);

/** Keys of the requests only the redrive function takes. */
const OPERATOR_REQUEST_KEYS = ['redrive', 'sweepStalled'];

/** Largest gzipped follower request a progress item keeps (DynamoDB items are at most 400 KB). */
const MAX_KEPT_INPUT_BYTES = 350_000;

/** A redrive's request: how many messages, and which. */
interface RedriveFilter {
  readonly maxMessages: number;
  readonly reason?: string;
  readonly channel?: string;
  readonly runId?: string;
}

const REDRIVE_FILTER_KEYS = ['reason', 'channel', 'runId'] as const;

/** Reads `{ maxMessages?, reason?, channel?, runId? }`, failing with what is allowed. */
function redriveFilter(request: Record<string, unknown>): RedriveFilter {
  const allowed = ['maxMessages', ...REDRIVE_FILTER_KEYS];
  const unknown = Object.keys(request).filter((key) => !allowed.includes(key));
  const errors = unknown.map((key) => `unknown field ${JSON.stringify(key)}`);
  const maxMessages = request.maxMessages ?? 10;
  if (!isIntegerWithin(maxMessages, 1, 1000)) errors.push(`maxMessages is ${JSON.stringify(maxMessages)}`);
  for (const key of REDRIVE_FILTER_KEYS) {
    if (request[key] !== undefined && (typeof request[key] !== 'string' || request[key] === '')) errors.push(`${key} is ${JSON.stringify(request[key])}`);
  }
  if (errors.length > 0) {
    throw new Error(`invalid redrive request: ${errors.join('; ')}; allowed: { "redrive": { "maxMessages"?: 1 to 1000 (default 10), `
      + '"reason"?: a park reason, "channel"?: a channel, "runId"?: a run id } }');
  }
  return { ...(request as Omit<RedriveFilter, 'maxMessages'>), maxMessages: maxMessages as number };
}

/**
 * Whether a dead-letter queue message matches a redrive's filter. With a filter, only events
 * the leader parked can match (they carry a reason, channel and run id).
 */
function matches(body: unknown, filter: RedriveFilter): boolean {
  const keys = REDRIVE_FILTER_KEYS.filter((key) => filter[key] !== undefined);
  if (keys.length === 0) return true;
  if (!isObject(body) || body.parkedBy !== LEADER_MARKER) return false;
  return keys.every((key) => body[key] === filter[key]);
}

/** How long a redrive hides the messages it received: resumed ones are deleted, the rest come back. */
const REDRIVE_VISIBILITY_SECONDS = 120;
/** SQS's message size limit (1 MiB), less room for the queue's own attributes. */
const MAX_PARKED_BYTES = 1_000_000;
/** Time a redrive leaves itself to finish the messages it received (of the leader's 30 s). */
const REDRIVE_TIME_RESERVE_MS = 10_000;
/** SQS's longest message delay. */
const REPARK_DELAY_SECONDS = 900;
const RETRYABLE_PUT_CODES = new Set(['ThrottlingException', 'InternalFailure', 'InternalException']);

/** The record Lambda sends to a follower's success or failure destination. */
interface DestinationRecord {
  readonly requestContext: { readonly condition: string; readonly functionArn?: string; readonly approximateInvokeCount?: number };
  readonly requestPayload: FollowerRequest & { orchestration: StepContext };
  readonly responsePayload?: any;
}

function isDestinationRecord(value: unknown): value is DestinationRecord {
  if (!isObject(value) || !isObject(value.requestContext) || typeof value.requestContext.condition !== 'string') return false;
  const request = value.requestPayload;
  if (!isObject(request) || typeof request.channel !== 'string' || !Number.isInteger(request.step) || !isObject(request.orchestration)) return false;
  const context = request.orchestration;
  return typeof context.runId === 'string' && Array.isArray(context.route) && context.route.length <= MAX_ROUTE_LENGTH
    && typeof context.follower === 'string' && Number.isInteger(context.hops) && typeof context.startedAt === 'number'
    && isObject(context.record) && typeof context.orchestrator === 'string';
}

/** The run a follower request belongs to, at the step before it (the request counts its own hop). */
function runOf(request: FollowerRequest & { orchestration: StepContext }): RunState {
  const context = request.orchestration;
  return {
    channel: request.channel,
    runId: context.runId,
    route: context.route,
    ...(Array.isArray(context.routeParameters) ? { routeParameters: context.routeParameters } : {}),
    hops: context.hops - 1,
    startedAt: context.startedAt,
    record: context.record,
  };
}

/** A function ARN without its version or alias: arn:aws:lambda:region:account:function:name. */
function unqualified(arn: string): string {
  return arn.split(':').slice(0, 7).join(':');
}

let resultValidator: ValidateFunction | undefined;

/** Whether a follower's response is a result: `schemas/follower-result.v1.schema.json`. */
function isFollowerResult(value: unknown): value is { event: unknown; finish?: boolean } {
  resultValidator ??= new Ajv2020({ strict: true, allErrors: false }).compile(FOLLOWER_RESULT_SCHEMA);
  return resultValidator(value);
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** Reads the leader's settings from its environment, failing with the variable's name. */
export function leaderConfigFromEnv(env: NodeJS.ProcessEnv): LeaderConfig {
  return {
    orchestratorId: requiredEnv(env, LEADER_ENV.ORCHESTRATOR_ID),
    curatedBusName: requiredEnv(env, LEADER_ENV.CURATED_BUS_NAME),
    deadLetterQueueUrl: requiredEnv(env, LEADER_ENV.DEAD_LETTER_QUEUE_URL),
    // A malformed limit stops the handler rather than turn the limit off.
    maxHops: positiveIntegerEnv(env, LEADER_ENV.MAX_HOPS),
    maxEventBytes: positiveIntegerEnv(env, LEADER_ENV.MAX_EVENT_BYTES),
    stepResultTimeoutMs: positiveIntegerEnv(env, LEADER_ENV.STEP_RESULT_TIMEOUT_SECONDS) * 1000,
  };
}
