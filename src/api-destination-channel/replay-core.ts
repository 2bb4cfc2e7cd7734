import { EventBridgeClient, PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';
import { DeleteMessageBatchCommand, Message, ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { REPLAY_DETAIL_TYPE, REPLAY_SOURCE, ReplayDetail } from './replay-contract';
import { putEventsEntrySize, putEventsReliably, PutEventsOptions } from '../runtime/put-events';

/** What the replay function is invoked with. */
export interface ReplayRequest {
  /** URL of the dead-letter queue to replay. */
  readonly queueUrl: string;
  /** Stop after this many messages. @default all messages, within the invocation's time */
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
  /** Messages left in the queue, each with its reason. received = replayed + failed.length. */
  readonly failed: ReplayFailure[];
}

export interface ReplayDependencies {
  readonly sqs: SQSClient;
  readonly eventBridge: EventBridgeClient;
  readonly replayBusName: string;
  /** PutEvents entry size limit. */
  readonly maxEntryBytes: number;
  /** Milliseconds left in the invocation; the loop stops with a margin. @default unlimited */
  readonly remainingTimeMs?: () => number;
  /**
   * How long a received message stays hidden; failed ones reappear after it. Keep it longer
   * than the invocation (the function's timeout is 5 minutes), so a run sees each message once.
   * @default 900
   */
  readonly visibilityTimeoutSeconds?: number;
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

/**
 * Turns a dead letter into a replay entry, or says why it cannot be replayed.
 * An EventBridge dead letter's body is the original event and its RULE_ARN attribute
 * names the rule that failed it. A failed replay comes back as a replay event, which is
 * replayed as it is, so it still routes to the original rule.
 */
export function toReplayEntry(message: Message, replayBusName: string, maxEntryBytes: number): PutEventsRequestEntry | { reason: string } {
  let body: any;
  try {
    body = JSON.parse(message.Body ?? '');
  } catch (err) {
    return { reason: `body is not JSON (${(err as Error).message})` };
  }
  let detail: ReplayDetail;
  if (body?.source === REPLAY_SOURCE && body?.['detail-type'] === REPLAY_DETAIL_TYPE) {
    const event = body.detail?.event;
    if (typeof body.detail?.ruleArn !== 'string' || typeof event !== 'object' || event === null || Array.isArray(event)) {
      return { reason: 'replay event without detail.ruleArn and detail.event' };
    }
    detail = body.detail;
  } else {
    const ruleArn = message.MessageAttributes?.RULE_ARN?.StringValue;
    if (!ruleArn) {
      return { reason: 'no RULE_ARN message attribute: not an EventBridge dead letter, so its channel is unknown' };
    }
    if (typeof body !== 'object' || body === null || typeof body.id !== 'string' || typeof body.source !== 'string') {
      return { reason: 'body is not an EventBridge event (no id or source)' };
    }
    detail = { ruleArn, event: body };
  }
  const entry: PutEventsRequestEntry = {
    EventBusName: replayBusName,
    Source: REPLAY_SOURCE,
    DetailType: REPLAY_DETAIL_TYPE,
    Detail: JSON.stringify(detail),
  };
  const size = putEventsEntrySize(entry);
  if (size > maxEntryBytes) {
    return { reason: `replay event is ${size} bytes, over the PutEvents entry limit of ${maxEntryBytes} bytes` };
  }
  return entry;
}

/**
 * Moves a dead-letter queue's messages onto the replay bus, where each channel's replay
 * rule picks up only its own. A message is deleted only after its event was accepted;
 * every other message stays in the queue and is listed with its reason.
 */
export async function replayDeadLetters(deps: ReplayDependencies, request: ReplayRequest): Promise<ReplayResult> {
  const log = deps.log ?? (() => undefined);
  const limit = request.maxMessages ?? Number.MAX_SAFE_INTEGER;
  const remaining = deps.remainingTimeMs ?? (() => Number.MAX_SAFE_INTEGER);
  const failed: ReplayFailure[] = [];
  let received = 0;
  let replayed = 0;

  while (received < limit && remaining() > TIME_MARGIN_MS) {
    const response = await deps.sqs.send(new ReceiveMessageCommand({
      QueueUrl: request.queueUrl,
      MaxNumberOfMessages: Math.min(10, limit - received),
      WaitTimeSeconds: 1,
      VisibilityTimeout: deps.visibilityTimeoutSeconds ?? 900,
      MessageAttributeNames: ['All'],
    }));
    const messages = response.Messages ?? [];
    if (messages.length === 0) break;
    received += messages.length;

    const replayable: { message: Message; entry: PutEventsRequestEntry }[] = [];
    for (const message of messages) {
      const entry = toReplayEntry(message, deps.replayBusName, deps.maxEntryBytes);
      if ('reason' in entry) {
        failed.push({ messageId: message.MessageId!, reason: entry.reason as string });
        log('dead letter not replayable; left in the queue', { messageId: message.MessageId, reason: entry.reason });
      } else {
        replayable.push({ message, entry });
      }
    }
    if (replayable.length === 0) continue;

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
        const reason = `PutEvents failed: ${outcome.errorCode}: ${outcome.errorMessage ?? ''}`.trim();
        failed.push({ messageId: message.MessageId!, reason });
        log('replay put failed; left in the queue', { messageId: message.MessageId, reason });
      }
    });
    replayed += await deleteMessages(deps.sqs, request.queueUrl, toDelete, failed, log);
  }
  return { queueUrl: request.queueUrl, received, replayed, failed };
}

/**
 * Deletes replayed messages. A message whose delete fails was replayed but will come back;
 * it is reported, and the remote API's idempotency key absorbs the duplicate.
 */
async function deleteMessages(sqs: SQSClient, queueUrl: string, messages: Message[], failed: ReplayFailure[],
  log: (message: string, fields: Record<string, unknown>) => void): Promise<number> {
  if (messages.length === 0) return 0;
  const notDeleted = (message: Message, cause: string) => {
    const reason = `replayed, but delete failed (${cause}); it will be delivered again after the visibility timeout`;
    failed.push({ messageId: message.MessageId!, reason });
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
