import { ChangeMessageVisibilityCommand, DeleteMessageBatchCommand, Message, ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { FakeClock, FaultInjector, InvocationOutcome } from './crash-points';

/**
 * SQS visibility on the harness's fake clock. moto hides a received message in real time,
 * so a visibility timeout of minutes would never end in a test; this model watches every
 * ReceiveMessage and ChangeMessageVisibility(Batch) the handler makes (also those whose
 * answer was lost) and, when the fake clock passes a message's timeout, makes it visible
 * again in moto, exactly as SQS does.
 */
export class SqsVisibility {
  /** Receipt handle → when it becomes visible (fake ms). */
  private readonly hiddenUntil = new Map<string, { queueUrl: string; at: number }>();

  constructor(injector: FaultInjector, private readonly clock: FakeClock, private readonly sqs: SQSClient,
    private readonly defaultVisibilitySeconds = 30) {
    injector.observe((call) => {
      if (call.command === 'ReceiveMessageCommand') {
        const seconds = call.input.VisibilityTimeout ?? this.defaultVisibilitySeconds;
        for (const m of call.output?.Messages ?? []) this.hide(call.input.QueueUrl, m.ReceiptHandle, seconds);
      } else if (call.command === 'ChangeMessageVisibilityCommand') {
        this.hide(call.input.QueueUrl, call.input.ReceiptHandle, call.input.VisibilityTimeout);
      } else if (call.command === 'ChangeMessageVisibilityBatchCommand') {
        // An entry SQS reports failed changed nothing.
        const failed = new Set((call.output?.Failed ?? []).map((f: { Id?: string }) => f.Id));
        for (const e of call.input.Entries ?? []) {
          if (!failed.has(e.Id)) this.hide(call.input.QueueUrl, e.ReceiptHandle, e.VisibilityTimeout);
        }
      }
    });
  }

  private hide(queueUrl: string, receiptHandle: string, seconds: number): void {
    const at = this.clock.now() + seconds * 1000;
    this.hiddenUntil.set(receiptHandle, { queueUrl, at });
    this.clock.at(at, async () => {
      // Only the latest visibility change of a handle counts.
      if (this.hiddenUntil.get(receiptHandle)?.at !== at) return;
      this.hiddenUntil.delete(receiptHandle);
      // A deleted message, or one received again since (a new handle), has nothing to show.
      await this.sqs.send(new ChangeMessageVisibilityCommand({ QueueUrl: queueUrl, ReceiptHandle: receiptHandle, VisibilityTimeout: 0 }))
        .catch(() => undefined);
    });
  }
}

/**
 * A synchronous invocation (RequestResponse), such as an operator's `aws lambda invoke`:
 * nothing is retried by Lambda; the caller sees the error or the timeout and invokes again,
 * up to `attempts` times in all. Returns the last outcome.
 */
export async function synchronousCallerRetries<T>(injector: FaultInjector, first: InvocationOutcome, invoke: () => Promise<T>,
  attempts = 3): Promise<InvocationOutcome> {
  let outcome = first;
  for (let attempt = 1; attempt < attempts && outcome.ended !== 'returned'; attempt++) {
    outcome = await injector.invoke(invoke);
  }
  return outcome;
}

/**
 * An asynchronous invocation (Event): Lambda retries a function error or a timeout twice,
 * then sends the event to the on-failure destination (or DLQ), which `onFailure` models.
 * https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html
 */
export async function asynchronousInvokeRetries<T>(injector: FaultInjector, first: InvocationOutcome, invoke: () => Promise<T>,
  onFailure: (last: InvocationOutcome) => Promise<void>, retries = 2): Promise<InvocationOutcome> {
  let outcome = first;
  for (let retry = 0; retry < retries && outcome.ended !== 'returned'; retry++) {
    outcome = await injector.invoke(invoke);
  }
  if (outcome.ended !== 'returned') await onFailure(outcome);
  return outcome;
}

/** Options of `SqsEventSource`, as on the event source mapping and its queue. */
export interface SqsEventSourceOptions {
  readonly queueUrl: string;
  readonly queueArn: string;
  /** The queue's visibility timeout. */
  readonly visibilityTimeoutSeconds: number;
  /** @default 10 */
  readonly batchSize?: number;
  /** FunctionResponseTypes: ReportBatchItemFailures. @default false */
  readonly reportBatchItemFailures?: boolean;
}

/**
 * Lambda's SQS event source mapping on the fake clock: receives a batch, invokes the
 * handler with it (the documented event shape), deletes what succeeded; a failed batch (an
 * error, a timeout) or the records named in `batchItemFailures` return after the queue's
 * visibility timeout, and the queue's own redrive policy moves a message to its DLQ after
 * maxReceiveCount receives (moto applies it). A `batchItemFailures` naming an id that is not
 * in the batch fails the whole batch, as Lambda does.
 * https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html
 */
export class SqsEventSource {
  private hidden = 0;

  constructor(private readonly sqs: SQSClient, private readonly injector: FaultInjector, private readonly clock: FakeClock,
    private readonly options: SqsEventSourceOptions) {}

  /** Receives the next batch, as the mapping's poller does; undefined when none is visible. */
  public async poll(): Promise<SqsBatch | undefined> {
    const { Messages } = await this.sqs.send(new ReceiveMessageCommand({
      QueueUrl: this.options.queueUrl,
      MaxNumberOfMessages: this.options.batchSize ?? 10,
      VisibilityTimeout: this.options.visibilityTimeoutSeconds,
      MessageSystemAttributeNames: ['All'],
      MessageAttributeNames: ['All'],
    }));
    if (!Messages?.length) return undefined;
    return { messages: Messages, event: { Records: Messages.map((m) => this.record(m)) } };
  }

  /** What the mapping does with a batch after the invocation ended: deletes what succeeded, the rest returns later. */
  public async settle(batch: SqsBatch, outcome: InvocationOutcome): Promise<void> {
    const failedIds = this.failedIds(outcome, batch.messages.map((m) => m.MessageId!));
    const done = batch.messages.filter((m) => !failedIds.has(m.MessageId!));
    if (done.length > 0) {
      await this.sqs.send(new DeleteMessageBatchCommand({
        QueueUrl: this.options.queueUrl,
        Entries: done.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })),
      }));
    }
    for (const m of batch.messages.filter((x) => failedIds.has(x.MessageId!))) this.returnLater(m.ReceiptHandle!);
  }

  /**
   * Delivers until the queue is empty and nothing is in flight, moving the clock over the
   * visibility timeouts; every invocation runs without a fault. Returns the outcomes.
   */
  public async drain(handler: (event: SqsEvent) => Promise<unknown>, maxInvocations = 100): Promise<InvocationOutcome[]> {
    const outcomes: InvocationOutcome[] = [];
    while (outcomes.length < maxInvocations) {
      const batch = await this.poll();
      if (!batch) {
        if (this.hidden === 0) return outcomes;
        await this.clock.advance((this.options.visibilityTimeoutSeconds + 1) * 1000);
        continue;
      }
      const outcome = await this.injector.invoke(() => handler(batch.event));
      outcomes.push(outcome);
      await this.settle(batch, outcome);
    }
    throw new Error(`SqsEventSource: the queue was not empty after ${maxInvocations} invocations`);
  }

  private failedIds(outcome: InvocationOutcome, ids: string[]): Set<string> {
    if (outcome.ended !== 'returned') return new Set(ids);
    if (!this.options.reportBatchItemFailures) return new Set();
    const failures = (outcome.value as { batchItemFailures?: { itemIdentifier?: string }[] } | undefined)?.batchItemFailures ?? [];
    const named = failures.map((f) => f.itemIdentifier ?? '');
    return named.every((id) => ids.includes(id)) ? new Set(named) : new Set(ids);
  }

  private returnLater(receiptHandle: string): void {
    this.hidden++;
    this.clock.at(this.clock.now() + this.options.visibilityTimeoutSeconds * 1000, async () => {
      this.hidden--;
      await this.sqs.send(new ChangeMessageVisibilityCommand({ QueueUrl: this.options.queueUrl, ReceiptHandle: receiptHandle, VisibilityTimeout: 0 }))
        .catch(() => undefined);
    });
  }

  /** An SQS record as Lambda delivers it (the example event of the page above). */
  private record(m: Message): SqsRecord {
    const attributes = m.Attributes ?? {};
    return {
      messageId: m.MessageId!,
      receiptHandle: m.ReceiptHandle!,
      body: m.Body ?? '',
      attributes: {
        ApproximateReceiveCount: attributes.ApproximateReceiveCount ?? '1',
        SentTimestamp: attributes.SentTimestamp ?? String(this.clock.now()),
        SenderId: attributes.SenderId ?? 'AIDAIENQZJOLO23YVJ4VO',
        ApproximateFirstReceiveTimestamp: attributes.ApproximateFirstReceiveTimestamp ?? String(this.clock.now()),
      },
      messageAttributes: Object.fromEntries(Object.entries(m.MessageAttributes ?? {}).map(([k, v]) => [k, {
        dataType: v.DataType!, stringValue: v.StringValue, stringListValues: [], binaryListValues: [],
      }])),
      md5OfBody: m.MD5OfBody ?? '',
      eventSource: 'aws:sqs',
      eventSourceARN: this.options.queueArn,
      awsRegion: this.options.queueArn.split(':')[3],
    };
  }
}

/** A received batch: the SQS messages and the event built from them. */
export interface SqsBatch {
  readonly messages: Message[];
  readonly event: SqsEvent;
}

/** The SQS event Lambda delivers (aws-lambda's SQSEvent, without the dependency in this file's users). */
export interface SqsEvent { readonly Records: SqsRecord[] }
export interface SqsRecord {
  readonly messageId: string;
  readonly receiptHandle: string;
  readonly body: string;
  readonly attributes: Record<string, string>;
  readonly messageAttributes: Record<string, { dataType: string; stringValue?: string; stringListValues: string[]; binaryListValues: string[] }>;
  readonly md5OfBody: string;
  readonly eventSource: string;
  readonly eventSourceARN: string;
  readonly awsRegion: string;
}
