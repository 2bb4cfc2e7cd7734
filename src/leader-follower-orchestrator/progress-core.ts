import { ConditionalCheckFailedException, DynamoDBClient, GetItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { PROGRESS_EXPIRES_AT_ATTRIBUTE, PROGRESS_KEY_ATTRIBUTE } from './orchestrator-contract';

/**
 * Outcome of claiming a step of a run:
 * - `claimed`: this invocation runs the step.
 * - `replay`: the step was already claimed and the run has moved on; a duplicate delivery.
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
  /** A redrive may resume a run whose progress item has expired. */
  readonly resume?: boolean;
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
      ':stale': { N: String(now - this.leaseMs) },
      ':now': { N: String(now) },
      ':exp': { N: String(Math.floor(now / 1000) + this.ttlSeconds) },
      ':channel': { S: claim.channel },
    };
    const conditions = ['(#step = :k AND #claimedAt < :stale AND attribute_not_exists(#dispatched))'];
    const names: Record<string, string> = {
      '#step': 'step', '#claimedAt': 'claimedAt', '#dispatched': 'dispatched', '#channel': 'channel', '#expiresAt': PROGRESS_EXPIRES_AT_ATTRIBUTE,
    };
    if (claim.step === 1 || claim.resume) {
      conditions.push('attribute_not_exists(#run)');
      names['#run'] = PROGRESS_KEY_ATTRIBUTE;
    }
    if (claim.step > 1) {
      conditions.push('#step = :prev');
      values[':prev'] = { N: String(claim.step - 1) };
    }
    // A redrive re-runs the parked step, even though its follower was invoked (and failed).
    if (claim.resume) conditions.push('#step = :k');
    this.writes++;
    try {
      await this.client.send(new UpdateItemCommand({
        TableName: this.tableName,
        Key: { [PROGRESS_KEY_ATTRIBUTE]: { S: claim.runId } },
        UpdateExpression: 'SET #step = :k, #claimedAt = :now, #channel = :channel, #expiresAt = :exp REMOVE #dispatched',
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
    if (step > claim.step || (step === claim.step && current.Item.dispatched?.BOOL === true)) return 'replay';
    // The same step, claimed within its lease and not yet dispatched: that invocation may still invoke it.
    if (step === claim.step) return 'busy';
    return 'out-of-order';
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
