import { ChangeMessageVisibilityCommand, SQSClient } from '@aws-sdk/client-sqs';
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
        for (const e of call.input.Entries ?? []) this.hide(call.input.QueueUrl, e.ReceiptHandle, e.VisibilityTimeout);
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
