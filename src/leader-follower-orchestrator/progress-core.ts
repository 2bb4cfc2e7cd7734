import { gunzipSync } from 'zlib';
import {
  AttributeValue, ConditionalCheckFailedException, DynamoDBClient, GetItemCommand, ScanCommand, UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { PROGRESS_EXPIRES_AT_ATTRIBUTE, PROGRESS_KEY_ATTRIBUTE, PROGRESS_STALL_AT_ATTRIBUTE, PROGRESS_STALLED_INDEX } from './orchestrator-contract';

/**
 * Outcome of claiming a step of a run:
 * - `claimed`: this invocation runs the step.
 * - `replay`: the step was already applied (or parked); a duplicate delivery.
 * - `busy`: another invocation claimed the step moments ago and may still be running it;
 *   the caller retries later (a claim older than the lease is taken over, so a crash is not fatal).
 * - `out-of-order`: the run is not at the previous step (its progress is behind or gone).
 * - `superseded` (a resume only): the parked message no longer holds the step: the step was
 *   resumed (by this message earlier, or a copy of it), or parked again with a newer message.
 */
export type ClaimOutcome = 'claimed' | 'replay' | 'busy' | 'out-of-order' | 'superseded';

/** A dispatched follower step, awaiting its result. */
export interface AwaitedStep {
  /** The follower request as sent, gzipped. */
  readonly input: Uint8Array;
  /** Epoch milliseconds after which the step counts as stalled. */
  readonly stallAt: number;
}

/** A step found awaiting its result past its `stallAt`. */
export interface StalledStep {
  readonly runId: string;
  readonly step: number;
  readonly stallAt: number;
  /** The follower request as sent, gzipped. */
  readonly input: Uint8Array;
}

/** A step claim: `step` is 1-based; FINISH is claimed as the step after the last one run. */
export interface StepClaim {
  readonly runId: string;
  readonly step: number;
  readonly channel: string;
  /**
   * A redrive resuming a parked step: it needs the step's park token (or an expired progress
   * item). The token keeps holding the step until the step is dispatched, so a resume that fails
   * before that (a throttled Invoke, a timeout) can be tried again by the same message.
   */
  readonly resume?: boolean;
  /** The parked message's token, for a resume. */
  readonly parkToken?: string;
  /** Id of the dispatch this claim makes (the follower request carries it). */
  readonly dispatchId?: string;
}

/**
 * Replay detection: one item per run holding the last step claimed and whether its follower
 * was invoked. Claiming step k is a conditional write that succeeds only when the run is at
 * step k - 1 (or, for step 1, has no item), so a duplicate start or a duplicate follower result
 * never applies a step twice. A claim whose invocation crashed before the follower was invoked
 * is taken over once its lease has passed. Two writes per step; a read only when a claim is refused.
 */
export class ProgressStore {
  /** Writes made, for the benchmark and tests. */
  public writes = 0;

  constructor(
    private readonly client: DynamoDBClient,
    private readonly tableName: string,
    private readonly leaseMs: number,
    private readonly ttlSeconds: number,
    private readonly now: () => number = Date.now,
  ) {}

  public async claim(claim: StepClaim): Promise<ClaimOutcome> {
    const now = this.now();
    const values: Record<string, AttributeValue> = {
      ':k': { N: String(claim.step) },
      ':prev': { N: String(claim.step - 1) },
      ':now': { N: String(now) },
      ':stale': { N: String(now - this.leaseMs) },
      ':exp': { N: String(Math.floor(now / 1000) + this.ttlSeconds) },
      ':channel': { S: claim.channel },
      ':token': { S: claim.parkToken ?? '' },
      ':true': { BOOL: true },
      ':dispatch': { S: claim.dispatchId ?? '' },
    };
    // The dispatch id is the run's last; its step says which step it belongs to.
    const dispatch = claim.dispatchId ? ', #dispatchId = :dispatch, #dispatchStep = :k' : '';
    let update: string;
    const conditions: string[] = [];
    if (claim.resume) {
      // Only the holder of the parked message resumes the step, or anyone once the progress has
      // expired. The holder is the message whose token is parked, or the one a newer park
      // replaced before its message was known to be sent. A resume that is still running
      // (within its lease) is not resumed twice. The token is kept until the step is dispatched.
      conditions.push('attribute_not_exists(#run)');
      if (claim.parkToken) conditions.push(`(${HOLDS_PARKED_STEP} AND (attribute_not_exists(#resuming) OR #claimedAt < :stale))`);
      // The token is written too: on an expired run it is what lets this message resume again after a failed attempt.
      const token = claim.parkToken ? ', #parked = :token' : '';
      update = `SET #step = :k, #claimedAt = :now, #channel = :channel, #expiresAt = :exp, #resuming = :true${token}${dispatch} `
        + 'REMOVE #dispatched, #stallAt, #stepInput';
    } else {
      // A stale claim whose follower was never invoked (the invocation crashed) is taken over;
      // a parked step belongs to its parked message, once that message is known to be sent. A
      // park marked but never sent (its invocation died, or lost the answer, before SendMessage)
      // is taken over too: the retry does the step's work again (and parks it again if need be).
      conditions.push('(#step = :k AND #claimedAt < :stale AND attribute_not_exists(#dispatched) '
        + 'AND (attribute_not_exists(#parked) OR attribute_not_exists(#parkSent)))');
      conditions.push(claim.step === 1 ? 'attribute_not_exists(#run)' : '#step = :prev');
      update = `SET #step = :k, #claimedAt = :now, #channel = :channel, #expiresAt = :exp${dispatch} `
        + 'REMOVE #dispatched, #parked, #parkSent, #parkedFrom, #resuming, #stallAt, #stepInput';
    }
    this.writes++;
    try {
      await this.client.send(new UpdateItemCommand({
        TableName: this.tableName,
        Key: { [PROGRESS_KEY_ATTRIBUTE]: { S: claim.runId } },
        ...expressions(update, conditions.join(' OR '), values),
      }));
      return 'claimed';
    } catch (error) {
      if (!isConditionalCheckFailure(error)) throw error;
    }
    const item = await this.read(claim.runId);
    const step = Number(item?.step?.N ?? NaN);
    if (claim.resume) {
      // Refused while the token holds the step: only its lease can have refused it.
      if (!item) return 'busy';
      return step === claim.step && holdsParkedStep(item, claim.parkToken) ? 'busy' : 'superseded';
    }
    if (!item || Number.isNaN(step)) return 'out-of-order';
    const settled = item.dispatched?.BOOL === true || (item.parked !== undefined && item.parkSent?.BOOL === true);
    if (step > claim.step || (step === claim.step && settled)) return 'replay';
    // The same step, claimed within its lease and not yet dispatched: that invocation may still invoke it.
    if (step === claim.step) return 'busy';
    return 'out-of-order';
  }

  /**
   * Marks step `step` of a run as parked with `token` (derived from the run, step and reason),
   * before the parked message is sent. False when the run has moved past the step, or the step
   * is parked already (`markParkSent`), or (a repark) `previousToken` no longer holds it: a
   * duplicate, which must not park a second message. The same token before its message was sent is allowed, so a retry after a failed send parks
   * it. A repark (a redrive whose step fails again) replaces `previousToken`, the token of the
   * message being redriven, with a new one derived from it. A park for a follower's failure
   * (`resultOf`, the id of the dispatch that failed) counts only while the step is at that
   * dispatch; it may replace the token of a resumed step, whose resumed dispatch is what failed.
   * `null` is the result of a dispatch with no id (sent by a version before dispatch ids): it
   * counts unless this version dispatched the step since (`dispatchStep`), as a redrive does.
   */
  public async markParked(runId: string, step: number, channel: string, token: string, previousToken?: string,
    resultOf?: string | null): Promise<boolean> {
    const now = this.now();
    const values: Record<string, AttributeValue> = {
      ':k': { N: String(step) },
      ':token': { S: token },
      ':now': { N: String(now) },
      ':channel': { S: channel },
      ':exp': { N: String(Math.floor(now / 1000) + this.ttlSeconds) },
    };
    let condition = 'attribute_not_exists(#run) OR #step < :k '
      + 'OR (#step = :k AND (attribute_not_exists(#parked) OR (#parked = :token AND attribute_not_exists(#parkSent))))';
    // The step's kept input stays until the parked message is sent (markParkSent): a sweep that
    // dies before sending finds the step again.
    // A new park is not sent yet: an earlier park's parkSent must not make its retry look like a duplicate.
    let update = 'SET #step = :k, #parked = :token, #claimedAt = :now, #channel = :channel, #expiresAt = :exp '
      + 'REMOVE #dispatched, #parkedFrom, #resuming, #parkSent';
    if (resultOf !== undefined) {
      // A result with no dispatch id counts unless this version dispatched the step since (a redrive did).
      const atDispatch = resultOf === null
        ? '(attribute_not_exists(#dispatchId) OR attribute_not_exists(#dispatchStep) OR #dispatchStep <> :k)' : '#dispatchId = :dispatch';
      condition = `attribute_not_exists(#run) OR #step < :k OR (#step = :k AND ${atDispatch} AND (attribute_not_exists(#parked) `
        + 'OR #resuming = :true OR (#parked = :token AND attribute_not_exists(#parkSent))))';
      if (resultOf !== null) values[':dispatch'] = { S: resultOf };
      values[':true'] = { BOOL: true };
    }
    if (previousToken !== undefined) {
      condition = `attribute_not_exists(#run) OR ${HOLDS_PARKED_STEP}`;
      update = 'SET #step = :k, #parked = :new, #parkedFrom = :token, #claimedAt = :now, #channel = :channel, #expiresAt = :exp '
        + 'REMOVE #dispatched, #parkSent, #resuming, #stallAt, #stepInput';
      values[':token'] = { S: previousToken };
      values[':new'] = { S: token };
    }
    this.writes++;
    try {
      await this.client.send(new UpdateItemCommand({
        TableName: this.tableName,
        Key: { [PROGRESS_KEY_ATTRIBUTE]: { S: runId } },
        ...expressions(update, condition, values),
      }));
      return true;
    } catch (error) {
      if (!isConditionalCheckFailure(error)) throw error;
      return false;
    }
  }

  /**
   * Records that the parked message of a step was sent, so a duplicate does not send another;
   * the step's kept input is no longer needed (the message has it).
   */
  public async markParkSent(runId: string, token: string): Promise<void> {
    this.writes++;
    try {
      await this.client.send(new UpdateItemCommand({
        TableName: this.tableName,
        Key: { [PROGRESS_KEY_ATTRIBUTE]: { S: runId } },
        ...expressions('SET #parkSent = :true REMOVE #stallAt, #stepInput', '#parked = :token', { ':true': { BOOL: true }, ':token': { S: token } }),
      }));
    } catch (error) {
      // Already resumed by its message: nothing to mark.
      if (!isConditionalCheckFailure(error)) throw error;
    }
  }

  /**
   * Records that the claimed step's follower was invoked (or, at FINISH, the event put on the
   * bus). A resumed step's park token is consumed here, once its hand-off is certain. A
   * follower's step is `awaiting` its result: the step's input (the follower request, gzipped)
   * is kept with the time after which the step counts as stalled, until the result claims the
   * next step, so a step whose result never comes back can be parked with its event.
   */
  public async markDispatched(runId: string, step: number, dispatchId: string, awaiting?: AwaitedStep, resumeToken?: string): Promise<void> {
    this.writes++;
    const set = awaiting ? 'SET #dispatched = :true, #stallAt = :stallAt, #stepInput = :input' : 'SET #dispatched = :true';
    // Only this dispatch, and never over a park made since the Invoke (its follower failed
    // already): a resumed step consumes its own token, nothing else.
    const condition = `#step = :k AND #dispatchId = :dispatch AND (attribute_not_exists(#parked)${resumeToken ? ' OR #parked = :token' : ''})`;
    try {
      await this.client.send(new UpdateItemCommand({
        TableName: this.tableName,
        Key: { [PROGRESS_KEY_ATTRIBUTE]: { S: runId } },
        ...expressions(`${set} REMOVE #parked, #parkSent, #parkedFrom, #resuming`, condition, {
          ':k': { N: String(step) },
          ':true': { BOOL: true },
          ':dispatch': { S: dispatchId },
          ':token': { S: resumeToken ?? '' },
          ':stallAt': { N: String(awaiting?.stallAt ?? 0) },
          ':input': { B: awaiting?.input ?? new Uint8Array() },
        }),
      }));
    } catch (error) {
      // The run already moved on (its follower answered first): nothing to mark.
      if (!isConditionalCheckFailure(error)) throw error;
    }
  }

  /**
   * Steps awaiting a result past their `stallAt`, at most `limit`. The sparse index holds only
   * the awaited steps, and only their keys, so the scan reads neither finished runs nor kept
   * inputs; each stalled step's item is then read (consistently) for its input.
   */
  public async findStalled(now: number, limit: number): Promise<StalledStep[]> {
    const found: StalledStep[] = [];
    let start: Record<string, AttributeValue> | undefined;
    do {
      const page = await this.client.send(new ScanCommand({
        TableName: this.tableName,
        IndexName: PROGRESS_STALLED_INDEX,
        FilterExpression: '#stallAt < :now',
        ExpressionAttributeNames: { '#stallAt': PROGRESS_STALL_AT_ATTRIBUTE },
        ExpressionAttributeValues: { ':now': { N: String(now) } },
        ExclusiveStartKey: start,
      }));
      for (const key of page.Items ?? []) {
        if (found.length >= limit) break;
        const item = await this.read(key[PROGRESS_KEY_ATTRIBUTE].S!);
        // Its result may have come since the scan read the index.
        if (item?.stepInput?.B === undefined || item.stallAt?.N === undefined || Number(item.stallAt.N) >= now) continue;
        found.push({
          runId: item[PROGRESS_KEY_ATTRIBUTE].S!, step: Number(item.step.N), stallAt: Number(item.stallAt.N), input: item.stepInput.B,
        });
      }
      start = page.LastEvaluatedKey;
    } while (start && found.length < limit);
    return found;
  }

  /**
   * The function ARN the leader invoked for the dispatch `dispatchId` of step `step`, from the
   * request it kept with the step (undefined once the step has moved on or its input is gone).
   * Written by the leader, so a request's own `followerArn` cannot vouch for itself.
   */
  public async dispatchedTo(runId: string, step: number, dispatchId: string): Promise<string | undefined> {
    const item = await this.read(runId);
    if (item?.step?.N !== String(step) || item.dispatchId?.S !== dispatchId || item.stepInput?.B === undefined) return undefined;
    const kept = JSON.parse(gunzipSync(item.stepInput.B).toString('utf8')) as { orchestration?: { followerArn?: unknown } };
    const arn = kept.orchestration?.followerArn;
    return typeof arn === 'string' ? arn : undefined;
  }

  private async read(runId: string): Promise<Record<string, AttributeValue> | undefined> {
    const { Item } = await this.client.send(new GetItemCommand({
      TableName: this.tableName,
      Key: { [PROGRESS_KEY_ATTRIBUTE]: { S: runId } },
      ConsistentRead: true,
    }));
    return Item;
  }
}

/**
 * The message with token `:token` holds parked step `:k`: its token is parked, or a newer park
 * replaced it and that park's message is not known to be sent (so it may never have been).
 */
const HOLDS_PARKED_STEP = '(#step = :k AND attribute_not_exists(#dispatched) '
  + 'AND (#parked = :token OR (#parkedFrom = :token AND attribute_not_exists(#parkSent))))';

function holdsParkedStep(item: Record<string, AttributeValue>, token: string | undefined): boolean {
  if (!token || item.dispatched !== undefined) return false;
  return item.parked?.S === token || (item.parkedFrom?.S === token && item.parkSent === undefined);
}

/** The progress item's attributes, by the names the expressions use. */
const ATTRIBUTES: Record<string, string> = {
  '#run': PROGRESS_KEY_ATTRIBUTE,
  '#step': 'step',
  '#claimedAt': 'claimedAt',
  '#dispatched': 'dispatched',
  '#parked': 'parked',
  '#parkSent': 'parkSent',
  '#parkedFrom': 'parkedFrom',
  '#resuming': 'resuming',
  '#channel': 'channel',
  '#expiresAt': PROGRESS_EXPIRES_AT_ATTRIBUTE,
  '#stallAt': PROGRESS_STALL_AT_ATTRIBUTE,
  '#stepInput': 'stepInput',
  '#dispatchId': 'dispatchId',
  '#dispatchStep': 'dispatchStep',
};

/** An update's expressions with exactly the names and values they use (DynamoDB refuses unused ones). */
function expressions(update: string, condition: string, values: Record<string, AttributeValue>) {
  const text = `${update} ${condition}`;
  const used = (key: string) => new RegExp(`${key}(?![A-Za-z0-9_])`).test(text);
  return {
    UpdateExpression: update,
    ConditionExpression: condition,
    ExpressionAttributeNames: Object.fromEntries(Object.entries(ATTRIBUTES).filter(([key]) => used(key))),
    ExpressionAttributeValues: Object.fromEntries(Object.entries(values).filter(([key]) => used(key))),
  };
}

function isConditionalCheckFailure(error: unknown): boolean {
  return error instanceof ConditionalCheckFailedException || (error as Error | undefined)?.name === 'ConditionalCheckFailedException';
}
