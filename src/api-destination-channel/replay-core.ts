import { EventBridgeClient, ListRulesCommand, ListTargetsByRuleCommand, PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';
import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageBatchCommand,
  GetQueueAttributesCommand,
  Message,
  ReceiveMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { parse as parseExactly, stringify as stringifyExactly } from 'lossless-json';
import { REPLAY_DETAIL_TYPE, REPLAY_SOURCE, replayDetail, ruleNameOf } from './replay-contract';
import { putEventsEntrySize, putEventsReliably, PutEventsOptions } from '../runtime/put-events';

/** What the replay function is invoked with. */
export interface ReplayRequest {
  /** URL of the dead-letter queue to replay. */
  readonly queueUrl: string;
  /**
   * Stop after trying to replay this many messages (messages left for another reason do not
   * count). @default all messages, within the invocation's time
   */
  readonly maxMessages?: number;
}

/** A message that was not replayed; it stays in the queue. */
export interface ReplayFailure {
  readonly messageId: string;
  readonly reason: string;
}

/** What the replay function returns. */
export interface ReplayResult {
  readonly queueUrl: string;
  /** Messages received from the queue. */
  readonly received: number;
  /** Messages put on the replay bus and deleted from the queue. */
  readonly replayed: number;
  /**
   * Messages that arrived after the run started (among them replays that failed again):
   * left in the queue, untouched, for the next run.
   */
  readonly deferred: number;
  /** Messages left in the queue with a reason. received = replayed + deferred + failedCount. */
  readonly failedCount: number;
  /** How many messages were left for each reason (at most 100 reasons; the rest under one key). */
  readonly failureReasons: { [reason: string]: number };
  /**
   * The first 100 messages left, each with its reason (the whole list could exceed
   * Lambda's 6 MB response limit).
   */
  readonly failed: ReplayFailure[];
}

/** How many failures and reasons a result lists. */
export const RESULT_LIST_LIMIT = 100;
const OTHER_REASONS = '(other reasons, not listed)';

/**
 * A replay that fails again is parked back in the queue as the whole replay event, with
 * EventBridge's message attributes: keep this much of the queue's maximum message size for
 * the event's envelope and the attributes.
 */
export const PARK_HEADROOM_BYTES = 4_096;

export interface ReplayDependencies {
  readonly sqs: SQSClient;
  readonly eventBridge: EventBridgeClient;
  readonly replayBusName: string;
  /** PutEvents entry size limit (a replay must also fit the queue, less PARK_HEADROOM_BYTES). */
  readonly maxEntryBytes: number;
  /** Milliseconds left in the invocation; the loop stops with a margin. @default unlimited */
  readonly remainingTimeMs?: () => number;
  /** The wall clock, in ms since the epoch, compared with SQS's SentTimestamp. @default Date.now */
  readonly now?: () => number;
  /**
   * How long a received message stays hidden; failed ones reappear after it. Keep it longer
   * than the invocation (the function's timeout is 5 minutes), so a run sees each message once.
   * @default 900
   */
  readonly visibilityTimeoutSeconds?: number;
  /** Long-poll wait of each receive; the run ends at the first empty receive. @default 1 */
  readonly receiveWaitTimeSeconds?: number;
  readonly putEventsOptions?: PutEventsOptions;
  readonly log?: (message: string, fields: Record<string, unknown>) => void;
}

/** Leave this much of the invocation for the last batch's puts and deletes. */
const TIME_MARGIN_MS = 20_000;

/** Parses and checks the invocation payload; throws an error that says what is allowed. */
export function parseReplayRequest(payload: unknown): ReplayRequest {
  const p = payload as Partial<ReplayRequest> | undefined;
  if (!p || typeof p.queueUrl !== 'string' || !/^https?:\/\//.test(p.queueUrl)) {
    throw new Error(`Invalid replay request ${JSON.stringify(payload)}: expected {"queueUrl": "<SQS queue URL>", "maxMessages"?: <positive integer>}`);
  }
  if (p.maxMessages !== undefined && (!Number.isInteger(p.maxMessages) || p.maxMessages < 1)) {
    throw new Error(`Invalid replay request: maxMessages ${JSON.stringify(p.maxMessages)} must be a positive integer`);
  }
  return { queueUrl: p.queueUrl, maxMessages: p.maxMessages };
}

/** A dead letter turned into its replay entry, with the channel rule it must reach. */
export interface ReplayEntry {
  readonly ruleArn: string;
  readonly entry: PutEventsRequestEntry;
}

/**
 * Turns a dead letter into a replay entry, or says why it cannot be replayed.
 * An EventBridge dead letter's body is the original event and its RULE_ARN attribute
 * names the rule that failed it. A failed replay comes back as a replay event, which is
 * wrapped again around the same original event and rule, so it still routes to that rule.
 */
export function toReplayEntry(message: Message, replayBusName: string, maxEntryBytes: number): ReplayEntry | LeftReason {
  // maxEntryBytes: the largest replay entry allowed (see replayDeadLetters).
  const attribute = message.MessageAttributes?.RULE_ARN?.StringValue;
  if (!attribute) {
    return leftFor('no RULE_ARN message attribute: not an EventBridge dead letter, so its channel is unknown');
  }
  let ruleArn: string;
  let detail: string;
  if (attribute.includes(`:rule/${replayBusName}/`)) {
    // A replay that failed again: it came back from a rule on this replay bus, wrapped. Its
    // original event is read without converting numbers (an integer beyond 2^53 keeps its digits).
    let body: any;
    try {
      body = parseExactly(message.Body ?? '');
    } catch (err) {
      return leftFor(`body cannot be read exactly as JSON (${(err as Error).message})`, 'body cannot be read exactly as JSON');
    }
    if (body?.source !== REPLAY_SOURCE || body?.['detail-type'] !== REPLAY_DETAIL_TYPE
      || typeof body.detail?.ruleArn !== 'string' || !isEvent(body.detail?.event)) {
      return leftFor('a dead letter of the replay bus that is not a replay event with detail.ruleArn and detail.event');
    }
    ruleArn = body.detail.ruleArn;
    try {
      detail = stringifyExactly(replayDetail(ruleArn, body.detail.event))!;
    } catch (err) {
      return leftFor(`the replay event cannot be written as JSON (${(err as Error).message})`, 'the replay event cannot be written as JSON');
    }
  } else {
    // The rule that failed it routes it, whatever its body says (a body that looks like a
    // replay event must not choose another channel). The body is the original event's text:
    // it goes into the replay as it is, so every number replays exactly. It is read the same
    // way as a parked replay (above), so an event that one path refuses (a repeated key) is
    // refused by both, never replayed once and then stuck.
    const text = (message.Body ?? '').trim();
    let body: any;
    try {
      body = parseExactly(text);
    } catch (err) {
      return leftFor(`body cannot be read exactly as JSON (${(err as Error).message})`, 'body cannot be read exactly as JSON');
    }
    if (!isEvent(body)) {
      return leftFor('body is not an EventBridge event (no id or source)');
    }
    ruleArn = attribute;
    const { detail: _detail, ...eventWithoutDetail } = body;
    detail = `{"ruleArn":${JSON.stringify(ruleArn)},"ruleName":${JSON.stringify(ruleNameOf(ruleArn))},"event":${text},`
      + `"eventWithoutDetail":${stringifyExactly(eventWithoutDetail)}}`;
  }
  if (jsonDepth(detail) > MAX_EVENT_DEPTH) {
    return leftFor(`the replay event nests deeper than the ${MAX_EVENT_DEPTH} levels PutEvents processes (the replay wrapper adds 2)`);
  }
  const entry: PutEventsRequestEntry = { EventBusName: replayBusName, Source: REPLAY_SOURCE, DetailType: REPLAY_DETAIL_TYPE, Detail: detail };
  const size = putEventsEntrySize(entry);
  if (size > maxEntryBytes) {
    const why = `over the ${maxEntryBytes} bytes a replay may have (the PutEvents entry limit, and the queue's `
      + `maximum message size less ${PARK_HEADROOM_BYTES} bytes, so that a replay that fails again can be parked back in the queue)`;
    return leftFor(`replay event is ${size} bytes, ${why}`, `replay event ${why}`);
  }
  return { ruleArn, entry };
}

/** Why a message stays in the queue, and the key it is counted under in `failureReasons`. */
export interface LeftReason {
  readonly reason: string;
  /** The reason without per-message detail. */
  readonly kind: string;
}

function leftFor(reason: string, kind = reason): LeftReason {
  return { reason, kind };
}

/** PutEvents "will only process nested JSON up to 1000 levels deep" (PutEvents API reference). */
const MAX_EVENT_DEPTH = 1_000;

/** How deeply a JSON text nests objects and arrays (strings skipped). */
function jsonDepth(json: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < json.length; i++) {
    const c = json[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') {
      inString = true;
    } else if (c === '{' || c === '[') {
      max = Math.max(max, ++depth);
    } else if (c === '}' || c === ']') {
      depth--;
    }
  }
  return max;
}

function isEvent(value: any): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && typeof value.id === 'string' && typeof value.source === 'string';
}

/**
 * The replay rules on the replay bus, read again for every batch (a rule deleted during a
 * run must not be trusted for the rest of it): which channel rules have an enabled replay
 * rule with a target. PutEvents accepts an event whether or not a rule matches it, so a dead
 * letter leaves the queue only when such a rule is certain to take it.
 */
export class ReplayRoutes {
  /** Reads the bus's rules (all pages). A failure throws: the run then touches no message. */
  public static async load(eventBridge: EventBridgeClient, replayBusName: string): Promise<ReplayRoutes> {
    const routes = new Map<string, string[]>();
    let nextToken: string | undefined;
    do {
      const page = await eventBridge.send(new ListRulesCommand({ EventBusName: replayBusName, NextToken: nextToken }));
      for (const rule of page.Rules ?? []) {
        if (rule.State !== 'ENABLED' || !rule.Name) continue;
        for (const ruleArn of replayedRuleArns(rule.EventPattern)) {
          routes.set(ruleArn, [...routes.get(ruleArn) ?? [], rule.Name]);
        }
      }
      nextToken = page.NextToken;
    } while (nextToken);
    return new ReplayRoutes(eventBridge, replayBusName, routes);
  }

  private readonly targeted = new Map<string, Promise<boolean>>();

  private constructor(private readonly eventBridge: EventBridgeClient, private readonly replayBusName: string,
    private readonly routes: Map<string, string[]>) {}

  /** Why a replay of `ruleArn`'s dead letter would reach no rule, or undefined if one takes it. */
  public async whyNot(ruleArn: string): Promise<string | undefined> {
    const replayRules = this.routes.get(ruleArn) ?? [];
    for (const name of replayRules) {
      if (await this.hasTarget(name)) return undefined;
    }
    const found = replayRules.length > 0 ? `replay rule ${replayRules.join(', ')} has no target` : 'no enabled replay rule matches it';
    return `no replay rule on ${this.replayBusName} takes rule ${ruleArn} (${found}): its channel may live in another stack `
      + '(use that stack\'s replay function), or was renamed or removed; the message stays in the queue';
  }

  private hasTarget(ruleName: string): Promise<boolean> {
    let answer = this.targeted.get(ruleName);
    if (!answer) {
      answer = (async () => {
        const response = await this.eventBridge.send(new ListTargetsByRuleCommand({ Rule: ruleName, EventBusName: this.replayBusName, Limit: 1 }));
        return (response.Targets ?? []).length > 0;
      })();
      // A failed look-up is not remembered; the message it was for stays in the queue.
      answer.catch(() => this.targeted.delete(ruleName));
      this.targeted.set(ruleName, answer);
    }
    return answer;
  }
}

/**
 * The channel rule ARNs a replay rule's pattern takes: only the exact pattern the construct
 * writes (source, detail-type and detail.ruleArn, nothing else), so an edited pattern that
 * might not match is not trusted.
 */
function replayedRuleArns(eventPattern: string | undefined): string[] {
  let pattern: any;
  try {
    pattern = JSON.parse(eventPattern ?? '');
  } catch {
    return [];
  }
  const keys = Object.keys(pattern ?? {}).sort().join(',');
  const detailKeys = Object.keys(pattern?.detail ?? {}).join(',');
  const arns = pattern?.detail?.ruleArn;
  const ok = keys === 'detail,detail-type,source' && detailKeys === 'ruleArn'
    && Array.isArray(pattern.source) && pattern.source.includes(REPLAY_SOURCE)
    && Array.isArray(pattern['detail-type']) && pattern['detail-type'].includes(REPLAY_DETAIL_TYPE)
    && Array.isArray(arns) && arns.every((a: unknown) => typeof a === 'string');
  return ok ? arns : [];
}

/**
 * Moves a dead-letter queue's messages onto the replay bus, where each channel's replay
 * rule picks up only its own. A run takes only the messages sent before it started, and
 * deletes a message only after a replay rule with a target, read for that batch, matches it
 * and its event was accepted; every other message stays in the queue, counted with its
 * reason, and is made visible again when the run ends (also when it fails).
 */
export async function replayDeadLetters(deps: ReplayDependencies, request: ReplayRequest): Promise<ReplayResult> {
  const log = deps.log ?? (() => undefined);
  const limit = request.maxMessages ?? Number.MAX_SAFE_INTEGER;
  const remaining = deps.remainingTimeMs ?? (() => Number.MAX_SAFE_INTEGER);
  const startedAt = (deps.now ?? Date.now)();
  const maxReplayBytes = Math.min(deps.maxEntryBytes, await maxMessageBytes(deps.sqs, request.queueUrl) - PARK_HEADROOM_BYTES);
  const failures = new FailureTally();
  const left: Message[] = [];
  let received = 0;
  let attempted = 0;
  let replayed = 0;
  let deferred = 0;
  const leave = (message: Message, reason: string, logMessage: string, kind = reason) => {
    failures.add(message.MessageId!, reason, kind);
    left.push(message);
    log(logMessage, { messageId: message.MessageId, reason });
  };

  try {
    while (attempted < limit && remaining() > TIME_MARGIN_MS) {
      const response = await deps.sqs.send(new ReceiveMessageCommand({
        QueueUrl: request.queueUrl,
        MaxNumberOfMessages: Math.min(10, limit - attempted),
        WaitTimeSeconds: deps.receiveWaitTimeSeconds ?? 1,
        VisibilityTimeout: deps.visibilityTimeoutSeconds ?? 900,
        MessageAttributeNames: ['All'],
        MessageSystemAttributeNames: ['SentTimestamp'],
      }));
      const messages = response.Messages ?? [];
      if (messages.length === 0) break;
      received += messages.length;

      let routes: ReplayRoutes;
      try {
        routes = await ReplayRoutes.load(deps.eventBridge, deps.replayBusName);
      } catch (err) {
        // Nothing can be certain without the rules: leave this batch and end the run.
        const reason = `could not read the replay rules (${(err as Error).name}: ${(err as Error).message})`;
        for (const message of messages) leave(message, reason, 'replay rules unreadable; left in the queue');
        break;
      }

      const replayable: { message: Message; entry: PutEventsRequestEntry }[] = [];
      for (const message of messages) {
        // A replay that failed again, or a new failure: not this run's (it would loop on it).
        if (Number(message.Attributes?.SentTimestamp) > startedAt) {
          deferred++;
          left.push(message);
          continue;
        }
        const replay = toReplayEntry(message, deps.replayBusName, maxReplayBytes);
        if ('reason' in replay) {
          leave(message, replay.reason, 'dead letter not replayable; left in the queue', replay.kind);
          continue;
        }
        let unroutable: string | undefined;
        try {
          unroutable = await routes.whyNot(replay.ruleArn);
        } catch (err) {
          unroutable = `could not check the replay rules (${(err as Error).name}: ${(err as Error).message})`;
        }
        if (unroutable) {
          leave(message, unroutable, 'dead letter has no replay rule; left in the queue');
        } else {
          replayable.push({ message, entry: replay.entry });
        }
      }
      if (replayable.length === 0) continue;
      attempted += replayable.length;

      const outcomes = await putEventsReliably(deps.eventBridge, replayable.map((r) => r.entry), {
        maxRequestBytes: deps.maxEntryBytes,
        ...deps.putEventsOptions,
      });
      const toDelete: Message[] = [];
      outcomes.forEach((outcome, i) => {
        const { message } = replayable[i];
        if (outcome.ok) {
          toDelete.push(message);
        } else {
          leave(message, `PutEvents failed: ${outcome.errorCode}: ${outcome.errorMessage ?? ''}`.trim(), 'replay put failed; left in the queue',
            `PutEvents failed: ${outcome.errorCode}`);
        }
      });
      replayed += await deleteMessages(deps.sqs, request.queueUrl, toDelete, failures, log);
    }
  } finally {
    await release(deps.sqs, request.queueUrl, left, log);
  }
  return { queueUrl: request.queueUrl, received, replayed, deferred, ...failures.result() };
}

/** The queue's maximum message size: a replay must fit it when it is parked again. */
async function maxMessageBytes(sqs: SQSClient, queueUrl: string): Promise<number> {
  const { Attributes } = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['MaximumMessageSize'] }));
  const size = Number(Attributes?.MaximumMessageSize);
  if (!Number.isInteger(size) || size <= 0) {
    throw new Error(`Queue ${queueUrl} reported no MaximumMessageSize (${JSON.stringify(Attributes ?? {})})`);
  }
  return size;
}

/** Counts the messages left, by reason, keeping the result within Lambda's response limit. */
class FailureTally {
  private count = 0;
  private readonly sample: ReplayFailure[] = [];
  private readonly reasons: { [reason: string]: number } = {};

  /** Counts a message left for `reason`, under `kind` (the reason without per-message detail). */
  public add(messageId: string, reason: string, kind = reason): void {
    this.count++;
    if (this.sample.length < RESULT_LIST_LIMIT) this.sample.push({ messageId, reason });
    const key = kind in this.reasons || Object.keys(this.reasons).length < RESULT_LIST_LIMIT ? kind : OTHER_REASONS;
    this.reasons[key] = (this.reasons[key] ?? 0) + 1;
  }

  public result(): Pick<ReplayResult, 'failedCount' | 'failureReasons' | 'failed'> {
    return { failedCount: this.count, failureReasons: this.reasons, failed: this.sample };
  }
}

/**
 * Deletes replayed messages. A message whose delete fails was replayed but will come back;
 * it is reported, and the remote API's idempotency key absorbs the duplicate.
 */
async function deleteMessages(sqs: SQSClient, queueUrl: string, messages: Message[], failures: FailureTally,
  log: (message: string, fields: Record<string, unknown>) => void): Promise<number> {
  if (messages.length === 0) return 0;
  const notDeleted = (message: Message, cause: string) => {
    const reason = `replayed, but delete failed (${cause}); it will be delivered again after the visibility timeout`;
    failures.add(message.MessageId!, reason, 'replayed, but delete failed; it will be delivered again after the visibility timeout');
    log('replayed message not deleted', { messageId: message.MessageId, reason });
  };
  let response;
  try {
    response = await sqs.send(new DeleteMessageBatchCommand({
      QueueUrl: queueUrl,
      Entries: messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })),
    }));
  } catch (err) {
    const e = err as Error;
    messages.forEach((m) => notDeleted(m, `${e.name}: ${e.message}`));
    return 0;
  }
  for (const f of response.Failed ?? []) notDeleted(messages[Number(f.Id)], `${f.Code}: ${f.Message ?? ''}`);
  return messages.length - (response.Failed?.length ?? 0);
}

/**
 * Makes the messages this run left visible again, so the operator (or another stack's
 * replay function sharing the queue) sees them at once. Best effort: if it fails, they
 * reappear when their visibility timeout ends.
 */
async function release(sqs: SQSClient, queueUrl: string, messages: Message[],
  log: (message: string, fields: Record<string, unknown>) => void): Promise<void> {
  for (let i = 0; i < messages.length; i += 10) {
    const batch = messages.slice(i, i + 10);
    try {
      const { Failed } = await sqs.send(new ChangeMessageVisibilityBatchCommand({
        QueueUrl: queueUrl,
        Entries: batch.map((m, k) => ({ Id: String(k), ReceiptHandle: m.ReceiptHandle!, VisibilityTimeout: 0 })),
      }));
      if (Failed?.length) {
        log('some left messages could not be made visible again; they reappear after the visibility timeout',
          { count: Failed.length, codes: [...new Set(Failed.map((f) => f.Code))] });
      }
    } catch (err) {
      log('could not make left messages visible again; they reappear after the visibility timeout',
        { count: batch.length, error: (err as Error).message });
    }
  }
}
