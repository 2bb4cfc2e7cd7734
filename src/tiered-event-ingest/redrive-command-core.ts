import type { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import type { S3Client } from '@aws-sdk/client-s3';
import type { SQSClient } from '@aws-sdk/client-sqs';
import { redriveObjectDeadLetters, redriveParkedObjects } from './parked-records-redrive-core';

/**
 * What an operator sends the ingest's redrive function (`aws lambda invoke --payload`), one
 * command per dead end:
 * - `parked-records`: copy the records of a `quarantine/` or `firehose-errors/` prefix under
 *   `data/redrive/`, where the batch publisher publishes them (or quarantines them again
 *   with their reason). Paged: call again with `continuationToken` until `complete`.
 * - `object-dlq`: move the object dead-letter queue's notifications back to the object queue.
 */
export type RedriveCommand =
  | {
    readonly action: 'parked-records';
    readonly prefix: string;
    readonly continuationToken?: string;
    readonly maxObjects?: number;
    readonly force?: boolean;
    readonly dryRun?: boolean;
  }
  | { readonly action: 'object-dlq'; readonly maxMessages?: number };

/** The clients and settings the commands run with. */
export interface RedriveCommandDeps {
  readonly s3: S3Client;
  readonly sqs: SQSClient;
  readonly eventBridge: EventBridgeClient;
  readonly remainingMs: () => number;
  readonly env: NodeJS.ProcessEnv;
}

/** The actions a command may name, for the error that lists them. */
export const REDRIVE_ACTIONS = ['parked-records', 'object-dlq'] as const;

/** Runs one redrive command; throws with what is allowed when the command is not one. */
export async function runRedriveCommand(deps: RedriveCommandDeps, command: unknown): Promise<object> {
  const action = isObject(command) ? command.action : undefined;
  const env = (name: string) => {
    const value = deps.env[name];
    if (!value) throw new Error(`environment variable ${name} is not set`);
    return value;
  };
  switch (action) {
    case 'parked-records': {
      const c = command as Extract<RedriveCommand, { action: 'parked-records' }>;
      if (typeof c.prefix !== 'string') throw new Error('a parked-records command needs "prefix": a key prefix under quarantine/ or firehose-errors/');
      return redriveParkedObjects({ s3: deps.s3, bucket: env('BUCKET_NAME'), remainingMs: deps.remainingMs }, {
        prefix: c.prefix, continuationToken: c.continuationToken, maxObjects: c.maxObjects, force: c.force, dryRun: c.dryRun,
      });
    }
    case 'object-dlq': {
      const c = command as Extract<RedriveCommand, { action: 'object-dlq' }>;
      return redriveObjectDeadLetters({ sqs: deps.sqs, remainingMs: deps.remainingMs }, {
        deadLetterQueueUrl: env('OBJECT_DLQ_URL'), queueUrl: env('OBJECT_QUEUE_URL'), maxMessages: c.maxMessages,
      });
    }
    default:
      throw new Error(`unknown redrive command ${JSON.stringify(action ?? command)}; allowed "action": ${REDRIVE_ACTIONS.map((a) => `"${a}"`).join(', ')}`);
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
