import { ConditionalCheckFailedException, DynamoDBClient, GetItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { PROGRESS_EXPIRES_AT_ATTRIBUTE, PROGRESS_KEY_ATTRIBUTE } from './orchestrator-contract';

/**
 * Outcome of claiming a step of a run:
 * - `claimed`: this invocation runs the step.
 * - `replay`: the step was already applied (or parked, or resumed by another copy); a duplicate delivery.
 * - `busy`: another invocation claimed the step moments ago and may still be running it;
 *   the caller retries later (a claim older than the lease is taken over, so a crash is not fatal).
 * - `out-of-order`: the run is not at the previous step (its progress is behind or gone).
 */
export type ClaimOutcome = 'claimed' | 'replay' | 'busy' | 'out-of-order';

/** A step claim: `step` is 1-based; FINISH is claimed as the step after the last one run. */
export interface StepClaim {
  readonly runId: string;
  readonly step: number;
  readonly channel: string;
  /** A redrive resuming a parked step: it needs the step's park token (or an expired progress item). */
  readonly resume?: boolean;
  /** The parked message's token, for a resume. */
  readonly parkToken?: string;
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
    const values: Record<string, { N: string } | { S: string }> = {
      ':k': { N: String(claim.step) },
      ':now': { N: String(now) },
      ':exp': { N: String(Math.floor(now / 1000) + this.ttlSeconds) },
      ':channel': { S: claim.channel },
    };
    const names: Record<string, string> = {
      '#step': 'step',
      '#claimedAt': 'claimedAt',
      '#dispatched': 'dispatched',
      '#parked': 'parked',
      '#parkSent': 'parkSent',
      '#channel': 'channel',
      '#expiresAt': PROGRESS_EXPIRES_AT_ATTRIBUTE,
    };
    const conditions: string[] = [];
    if (claim.resume) {
      // Only the holder of the parked message resumes the step (its token is consumed), or
      // anyone once the progress has expired.
      conditions.push('attribute_not_exists(#run)');
      names['#run'] = PROGRESS_KEY_ATTRIBUTE;
      if (claim.parkToken) {
        conditions.push('#parked = :token');
        values[':token'] = { S: claim.parkToken };
      }
    } else {
      // A stale claim whose follower was never invoked (the invocation crashed) is taken over;
      // a parked step belongs to its parked message.
      conditions.push('(#step = :k AND #claimedAt < :stale AND attribute_not_exists(#dispatched) AND attribute_not_exists(#parked))');
      values[':stale'] = { N: String(now - this.leaseMs) };
      if (claim.step === 1) {
        conditions.push('attribute_not_exists(#run)');
        names['#run'] = PROGRESS_KEY_ATTRIBUTE;
      } else {
        conditions.push('#step = :prev');
        values[':prev'] = { N: String(claim.step - 1) };
      }
    }
    this.writes++;
    try {
      await this.client.send(new UpdateItemCommand({
        TableName: this.tableName,
        Key: { [PROGRESS_KEY_ATTRIBUTE]: { S: claim.runId } },
        UpdateExpression: 'SET #step = :k, #claimedAt = :now, #channel = :channel, #expiresAt = :exp REMOVE #dispatched, #parked, #parkSent',
        ConditionExpression: conditions.join(' OR '),
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: values,
      }));
      return 'claimed';
    } catch (error) {
      if (!isConditionalCheckFailure(error)) throw error;
    }
    const current = await this.client.send(new GetItemCommand({
      TableName: this.tableName,
      Key: { [PROGRESS_KEY_ATTRIBUTE]: { S: claim.runId } },
      ConsistentRead: true,
    }));
    const step = Number(current.Item?.step?.N ?? NaN);
    if (!current.Item || Number.isNaN(step)) return 'out-of-order';
    const settled = current.Item.dispatched?.BOOL === true || current.Item.parked !== undefined;
    if (step > claim.step || (step === claim.step && (settled || claim.resume))) return 'replay';
    // The same step, claimed within its lease and not yet dispatched: that invocation may still invoke it.
    if (step === claim.step) return 'busy';
    return 'out-of-order';
  }

  /**
   * Marks step `step` of a run as parked with `token` (derived from the run, step and reason),
   * before the parked message is sent. False when the run has moved past the step or the step is
   * parked already (`markParkSent`): a duplicate, which must not park a second message. The same
   * token before the message was sent is allowed, so a retry after a failed send parks it.
   */
  public async markParked(runId: string, step: number, channel: string, token: string): Promise<boolean> {
    const now = this.now();
    this.writes++;
    try {
      await this.client.send(new UpdateItemCommand({
        TableName: this.tableName,
        Key: { [PROGRESS_KEY_ATTRIBUTE]: { S: runId } },
        UpdateExpression: 'SET #step = :k, #parked = :token, #claimedAt = :now, #channel = :channel, #expiresAt = :exp REMOVE #dispatched',
        ConditionExpression: 'attribute_not_exists(#run) OR #step < :k '
          + 'OR (#step = :k AND (attribute_not_exists(#parked) OR (#parked = :token AND attribute_not_exists(#parkSent))))',
        ExpressionAttributeNames: {
          '#run': PROGRESS_KEY_ATTRIBUTE,
          '#step': 'step',
          '#parked': 'parked',
          '#claimedAt': 'claimedAt',
          '#channel': 'channel',
          '#expiresAt': PROGRESS_EXPIRES_AT_ATTRIBUTE,
          '#dispatched': 'dispatched',
          '#parkSent': 'parkSent',
        },
        ExpressionAttributeValues: {
          ':k': { N: String(step) },
          ':token': { S: token },
          ':now': { N: String(now) },
          ':channel': { S: channel },
          ':exp': { N: String(Math.floor(now / 1000) + this.ttlSeconds) },
        },
      }));
      return true;
    } catch (error) {
      if (!isConditionalCheckFailure(error)) throw error;
      return false;
    }
  }

  /** Records that the parked message of a step was sent, so a duplicate does not send another. */
  public async markParkSent(runId: string, token: string): Promise<void> {
    this.writes++;
    try {
      await this.client.send(new UpdateItemCommand({
        TableName: this.tableName,
        Key: { [PROGRESS_KEY_ATTRIBUTE]: { S: runId } },
        UpdateExpression: 'SET #parkSent = :true',
        ConditionExpression: '#parked = :token',
        ExpressionAttributeNames: { '#parkSent': 'parkSent', '#parked': 'parked' },
        ExpressionAttributeValues: { ':true': { BOOL: true }, ':token': { S: token } },
      }));
    } catch (error) {
      // Already resumed by its message: nothing to mark.
      if (!isConditionalCheckFailure(error)) throw error;
    }
  }

  /** Records that the claimed step's follower was invoked (or, at FINISH, the event put on the bus). */
  public async markDispatched(runId: string, step: number): Promise<void> {
    this.writes++;
    try {
      await this.client.send(new UpdateItemCommand({
        TableName: this.tableName,
        Key: { [PROGRESS_KEY_ATTRIBUTE]: { S: runId } },
        UpdateExpression: 'SET #dispatched = :true',
        ConditionExpression: '#step = :k',
        ExpressionAttributeNames: { '#step': 'step', '#dispatched': 'dispatched' },
        ExpressionAttributeValues: { ':k': { N: String(step) }, ':true': { BOOL: true } },
      }));
    } catch (error) {
      // The run already moved on (its follower answered first): nothing to mark.
      if (!isConditionalCheckFailure(error)) throw error;
    }
  }
}

function isConditionalCheckFailure(error: unknown): boolean {
  return error instanceof ConditionalCheckFailedException || (error as Error | undefined)?.name === 'ConditionalCheckFailedException';
}
