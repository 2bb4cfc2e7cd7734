import {
  ConditionalCheckFailedException, DynamoDBClient, GetItemCommand, UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';

/** Where processing of an object stands: lines before `line` are fully accounted for. */
export interface LedgerCursor {
  /** First line not yet accounted for (1 when nothing is). */
  readonly line: number;
  /**
   * Line ranges (`first-last`) of the entries of the flight starting at `line` that were
   * already put. A retry skips only entries with exactly these ranges, so a change of the
   * packing settings in between can repeat records but never skip one.
   */
  readonly publishedInFlight: string[];
}

export type ClaimResult =
  | { readonly state: 'claimed'; readonly cursor: LedgerCursor }
  | { readonly state: 'done' }
  | { readonly state: 'busy'; readonly leaseUntil: number };

/** Counts stored with a finished object. */
export interface LedgerSummary {
  readonly records: number;
  readonly published: number;
  readonly quarantined: number;
  readonly events: number;
}

/**
 * Records, per S3 object version, how far publishing got. A duplicate notification finds
 * the object done (or leased by a live worker) and publishes nothing; a retry after a
 * failure resumes at the cursor instead of re-publishing what was already put.
 */
export interface ObjectLedger {
  claim(objectId: string, owner: string, nowSeconds: number, leaseSeconds: number): Promise<ClaimResult>;
  checkpoint(objectId: string, owner: string, cursor: LedgerCursor, nowSeconds: number, leaseSeconds: number): Promise<void>;
  complete(objectId: string, owner: string, summary: LedgerSummary, nowSeconds: number): Promise<void>;
}

/** Ledger items expire this long after their last write (TTL). */
export const LEDGER_RETENTION_SECONDS = 30 * 24 * 3600;

/** Thrown when another worker took the object over (our lease expired). */
export class LeaseLostError extends Error {
  constructor(objectId: string) {
    super(`lease on ${objectId} was lost to another worker; stopping without publishing more`);
    this.name = 'LeaseLostError';
  }
}

/** The ledger in a DynamoDB table keyed by `objectId`, with TTL on `expiresAt`. */
export class DynamoDbObjectLedger implements ObjectLedger {
  constructor(private readonly client: DynamoDBClient, private readonly tableName: string) {}

  async claim(objectId: string, owner: string, now: number, lease: number): Promise<ClaimResult> {
    try {
      const result = await this.client.send(new UpdateItemCommand({
        TableName: this.tableName,
        Key: { objectId: { S: objectId } },
        ConditionExpression: 'attribute_not_exists(objectId) OR (#status = :inProgress AND leaseUntil < :now)',
        UpdateExpression: 'SET #status = :inProgress, #owner = :owner, leaseUntil = :lease, expiresAt = :expires, '
          + 'cursorLine = if_not_exists(cursorLine, :one), publishedInFlight = if_not_exists(publishedInFlight, :none), '
          + 'claims = if_not_exists(claims, :zero) + :one',
        ExpressionAttributeNames: { '#status': 'status', '#owner': 'owner' },
        ExpressionAttributeValues: {
          ':inProgress': { S: 'IN_PROGRESS' },
          ':owner': { S: owner },
          ':now': { N: String(now) },
          ':lease': { N: String(now + lease) },
          ':expires': { N: String(now + LEDGER_RETENTION_SECONDS) },
          ':one': { N: '1' },
          ':zero': { N: '0' },
          ':none': { S: '' },
        },
        ReturnValues: 'ALL_NEW',
      }));
      const item = result.Attributes ?? {};
      const cursor = { line: Number(item.cursorLine?.N ?? 1), publishedInFlight: parseIndexes(item.publishedInFlight?.S) };
      return { state: 'claimed', cursor };
    } catch (err) {
      if (!(err instanceof ConditionalCheckFailedException) && (err as Error).name !== 'ConditionalCheckFailedException') throw err;
      const existing = await this.client.send(new GetItemCommand({
        TableName: this.tableName, Key: { objectId: { S: objectId } }, ConsistentRead: true,
      }));
      if (existing.Item?.status?.S === 'DONE') return { state: 'done' };
      return { state: 'busy', leaseUntil: Number(existing.Item?.leaseUntil?.N ?? 0) };
    }
  }

  async checkpoint(objectId: string, owner: string, cursor: LedgerCursor, now: number, lease: number): Promise<void> {
    await this.ownedUpdate(objectId, owner, 'SET cursorLine = :line, publishedInFlight = :published, leaseUntil = :lease', {
      ':line': { N: String(cursor.line) }, ':published': { S: cursor.publishedInFlight.join(',') }, ':lease': { N: String(now + lease) },
    });
  }

  async complete(objectId: string, owner: string, summary: LedgerSummary, now: number): Promise<void> {
    await this.ownedUpdate(objectId, owner,
      'SET #status = :done, records = :records, published = :published, quarantined = :quarantined, events = :events, '
      + 'expiresAt = :expires REMOVE leaseUntil, publishedInFlight', {
        ':done': { S: 'DONE' },
        ':records': { N: String(summary.records) },
        ':published': { N: String(summary.published) },
        ':quarantined': { N: String(summary.quarantined) },
        ':events': { N: String(summary.events) },
        ':expires': { N: String(now + LEDGER_RETENTION_SECONDS) },
      });
  }

  private async ownedUpdate(objectId: string, owner: string, update: string, values: Record<string, { S: string } | { N: string }>) {
    try {
      await this.client.send(new UpdateItemCommand({
        TableName: this.tableName,
        Key: { objectId: { S: objectId } },
        ConditionExpression: '#owner = :owner AND #status = :inProgress',
        UpdateExpression: update,
        ExpressionAttributeNames: { '#owner': 'owner', '#status': 'status' },
        ExpressionAttributeValues: { ...values, ':owner': { S: owner }, ':inProgress': { S: 'IN_PROGRESS' } },
      }));
    } catch (err) {
      if ((err as Error).name === 'ConditionalCheckFailedException') throw new LeaseLostError(objectId);
      throw err;
    }
  }
}

interface InMemoryLedgerItem {
  status: string;
  owner: string;
  leaseUntil: number;
  cursor: LedgerCursor;
  summary?: LedgerSummary;
  claims: number;
}

/** The same ledger in memory, for tests and benchmarks. */
export class InMemoryObjectLedger implements ObjectLedger {
  readonly items = new Map<string, InMemoryLedgerItem>();

  async claim(objectId: string, owner: string, now: number, lease: number): Promise<ClaimResult> {
    const item = this.items.get(objectId);
    if (item?.status === 'DONE') return { state: 'done' };
    if (item && item.leaseUntil >= now) return { state: 'busy', leaseUntil: item.leaseUntil };
    const cursor = item?.cursor ?? { line: 1, publishedInFlight: [] };
    this.items.set(objectId, { status: 'IN_PROGRESS', owner, leaseUntil: now + lease, cursor, claims: (item?.claims ?? 0) + 1 });
    return { state: 'claimed', cursor };
  }

  async checkpoint(objectId: string, owner: string, cursor: LedgerCursor, now: number, lease: number): Promise<void> {
    const item = this.owned(objectId, owner);
    item.cursor = cursor;
    item.leaseUntil = now + lease;
  }

  async complete(objectId: string, owner: string, summary: LedgerSummary): Promise<void> {
    const item = this.owned(objectId, owner);
    item.status = 'DONE';
    item.summary = summary;
  }

  private owned(objectId: string, owner: string) {
    const item = this.items.get(objectId);
    if (!item || item.owner !== owner || item.status !== 'IN_PROGRESS') throw new LeaseLostError(objectId);
    return item;
  }
}

function parseIndexes(text: string | undefined): string[] {
  return text ? text.split(',') : [];
}
