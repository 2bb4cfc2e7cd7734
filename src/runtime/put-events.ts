import { EventBridgeClient, PutEventsCommand, PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';

/** PutEvents accepts at most this many entries per call. */
export const MAX_ENTRIES_PER_PUT_EVENTS = 10;
/** The PutEvents entry (and request) size limit, 1 MiB since 2026-01-29 (256 KiB before). */
export const DEFAULT_MAX_ENTRY_BYTES = 1_048_576;
/** Entry error codes worth retrying; every other code is permanent. */
const RETRYABLE_ERROR_CODES = new Set(['ThrottlingException', 'InternalFailure', 'InternalException']);

/**
 * Size of a PutEvents entry as EventBridge counts it: 14 bytes for Time if set, plus the
 * UTF-8 bytes of Source, DetailType, Detail and each Resource.
 * https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-putevent-size.html
 */
export function putEventsEntrySize(entry: PutEventsRequestEntry): number {
  let size = entry.Time ? 14 : 0;
  size += Buffer.byteLength(entry.Source ?? '', 'utf8');
  size += Buffer.byteLength(entry.DetailType ?? '', 'utf8');
  size += Buffer.byteLength(entry.Detail ?? '', 'utf8');
  for (const resource of entry.Resources ?? []) size += Buffer.byteLength(resource, 'utf8');
  return size;
}

/**
 * An entry built only for the PutEvents call that carries it (again for a retry), so a big
 * Detail is not held while the entries before it are put.
 */
export interface DeferredPutEventsEntry {
  /** The entry's size as `putEventsEntrySize` counts it. */
  readonly size: number;
  readonly build: () => PutEventsRequestEntry;
}

function isDeferred(entry: PutEventsRequestEntry | DeferredPutEventsEntry): entry is DeferredPutEventsEntry {
  return typeof (entry as DeferredPutEventsEntry).build === 'function';
}

function built(entry: PutEventsRequestEntry | DeferredPutEventsEntry): PutEventsRequestEntry {
  return isDeferred(entry) ? entry.build() : entry;
}

/** Outcome of one entry of `putEventsReliably`, in input order. */
export interface PutEntryOutcome {
  readonly ok: boolean;
  readonly eventId?: string;
  readonly errorCode?: string;
  readonly errorMessage?: string;
  /** The whole PutEvents call failed (after the SDK's retries), not this entry. */
  readonly callFailed?: boolean;
}

export interface PutEventsOptions {
  /** Attempts per entry for retryable failures. @default 4 */
  readonly maxAttempts?: number;
  /** Base of the exponential backoff with full jitter, ms. @default 100 */
  readonly baseDelayMs?: number;
  /** Request size cap used to group entries. @default DEFAULT_MAX_ENTRY_BYTES */
  readonly maxRequestBytes?: number;
  /** Longest wait between two attempts, ms. @default 5000 */
  readonly maxDelayMs?: number;
  /**
   * Asked before each wait: true stops retrying, and the entries still failing keep their
   * last error. Lets a caller back off for as long as its invocation has time, then stop.
   * @default - never stops early
   */
  readonly shouldStop?: () => boolean;
  /** Injected for tests. @default setTimeout */
  readonly sleep?: (ms: number) => Promise<void>;
}

/**
 * Puts entries in calls of at most 10 entries and `maxRequestBytes`, retrying only the
 * entries that failed with a retryable code (with backoff and full jitter). Returns one
 * outcome per input entry; nothing is dropped without an outcome.
 */
export async function putEventsReliably(
  client: EventBridgeClient,
  entries: readonly (PutEventsRequestEntry | DeferredPutEventsEntry)[],
  options: PutEventsOptions = {},
): Promise<PutEntryOutcome[]> {
  const maxAttempts = options.maxAttempts ?? 4;
  const baseDelayMs = options.baseDelayMs ?? 100;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const maxDelayMs = options.maxDelayMs ?? 5000;
  const outcomes: PutEntryOutcome[] = new Array(entries.length);
  let pending = entries.map((_, i) => i);

  for (let attempt = 1; pending.length > 0; attempt++) {
    const retry: number[] = [];
    const lastError = new Map<number, PutEntryOutcome>();
    for (const group of groupBySize(pending, entries, options.maxRequestBytes ?? DEFAULT_MAX_ENTRY_BYTES)) {
      let results: { EventId?: string; ErrorCode?: string; ErrorMessage?: string; callFailed?: boolean }[];
      try {
        const response = await client.send(new PutEventsCommand({ Entries: group.map((i) => built(entries[i])) }));
        results = response.Entries ?? [];
      } catch (err) {
        // The whole call failed after the SDK's own retries: every entry of it failed.
        const e = err as Error;
        results = group.map(() => ({ ErrorCode: e.name || 'PutEventsError', ErrorMessage: e.message, callFailed: true }));
      }
      group.forEach((entryIndex, k) => {
        const result = results[k] ?? { ErrorCode: 'MissingResult', ErrorMessage: 'PutEvents returned fewer results than entries' };
        if (!result.ErrorCode) {
          outcomes[entryIndex] = { ok: true, eventId: result.EventId };
        } else if (RETRYABLE_ERROR_CODES.has(result.ErrorCode) && attempt < maxAttempts) {
          retry.push(entryIndex);
          lastError.set(entryIndex, { ok: false, errorCode: result.ErrorCode, errorMessage: result.ErrorMessage });
        } else {
          const failure = { ok: false, errorCode: result.ErrorCode, errorMessage: result.ErrorMessage };
          outcomes[entryIndex] = result.callFailed ? { ...failure, callFailed: true } : failure;
        }
      });
    }
    pending = retry;
    if (pending.length > 0 && options.shouldStop?.()) {
      for (const i of pending) outcomes[i] = lastError.get(i)!;
      break;
    }
    if (pending.length > 0) await sleep(Math.random() * Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1)));
  }
  return outcomes;
}

/** Groups entry indexes into PutEvents calls: at most 10 entries and `maxBytes` each. */
function groupBySize(indexes: number[], entries: readonly (PutEventsRequestEntry | DeferredPutEventsEntry)[], maxBytes: number): number[][] {
  const groups: number[][] = [];
  let current: number[] = [];
  let bytes = 0;
  for (const i of indexes) {
    const entry = entries[i];
    const size = isDeferred(entry) ? entry.size : putEventsEntrySize(entry);
    if (current.length === MAX_ENTRIES_PER_PUT_EVENTS || (current.length > 0 && bytes + size > maxBytes)) {
      groups.push(current);
      current = [];
      bytes = 0;
    }
    current.push(i);
    bytes += size;
  }
  if (current.length > 0) groups.push(current);
  return groups;
}
