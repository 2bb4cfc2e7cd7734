import type { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import type { S3Client } from '@aws-sdk/client-s3';
import type { SQSClient } from '@aws-sdk/client-sqs';
import { redriveFastLaneDeadLetters, redriveSlowLaneDeadLetters } from './lane-dead-letter-redrive-core';
import { redriveObjectDeadLetters, redriveParkedObjects } from './parked-records-redrive-core';

/**
 * What an operator sends the ingest's redrive function (`aws lambda invoke --payload`), one
 * command per dead end:
 * - `parked-records`: copy the records of a `quarantine/` or `firehose-errors/` prefix under
 *   `data/redrive/`, where the batch publisher publishes them (or quarantines them again
 *   with their reason). Paged: call again with `continuationToken` until `complete`.
 * - `object-dlq`: move the object dead-letter queue's notifications back to the object queue.
 * - `slow-lane-dlq`: write the events EventBridge could not put to Firehose, as envelopes
 *   with their original ids, under `data/redrive/slow-lane-dlq/` for the publisher.
 * - `fast-lane-dlq`: put the relay's failed records, and the events routes to the relay
 *   could not deliver, on the curated bus; other targets' dead letters stay, with the reason.
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
  | { readonly action: 'object-dlq' | 'slow-lane-dlq' | 'fast-lane-dlq'; readonly maxMessages?: number };

/** The clients and settings the commands run with. */
export interface RedriveCommandDeps {
  readonly s3: S3Client;
  readonly sqs: SQSClient;
  readonly eventBridge: EventBridgeClient;
  readonly remainingMs: () => number;
  readonly env: NodeJS.ProcessEnv;
}

/** The actions a command may name, for the error that lists them. */
export const REDRIVE_ACTIONS = ['parked-records', 'object-dlq', 'slow-lane-dlq', 'fast-lane-dlq'] as const;

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
    case 'object-dlq':
      return redriveObjectDeadLetters({ sqs: deps.sqs, remainingMs: deps.remainingMs }, {
        deadLetterQueueUrl: env('OBJECT_DLQ_URL'), queueUrl: env('OBJECT_QUEUE_URL'), maxMessages: maxMessagesOf(command),
      });
    case 'slow-lane-dlq':
      return redriveSlowLaneDeadLetters({ sqs: deps.sqs, s3: deps.s3, remainingMs: deps.remainingMs }, {
        deadLetterQueueUrl: env('SLOW_LANE_DLQ_URL'), bucket: env('BUCKET_NAME'), paths: envelopePaths(env), maxMessages: maxMessagesOf(command),
      });
    case 'fast-lane-dlq':
      return redriveFastLaneDeadLetters({ sqs: deps.sqs, eventBridge: deps.eventBridge, remainingMs: deps.remainingMs }, {
        deadLetterQueueUrl: env('FAST_LANE_DLQ_URL'),
        curatedBusName: env('CURATED_BUS_NAME'),
        relayFunctionArn: env('RELAY_FUNCTION_ARN'),
        paths: envelopePaths(env),
        maxMessages: maxMessagesOf(command),
      });
    default:
      throw new Error(`unknown redrive command ${JSON.stringify(action ?? command)}; allowed "action": ${REDRIVE_ACTIONS.map((a) => `"${a}"`).join(', ')}`);
  }
}

/** The envelope paths the construct configured (the rules' input transformers use the same). */
function envelopePaths(env: (name: string) => string) {
  return { tenantIdPath: env('TENANT_ID_PATH'), channelPath: env('CHANNEL_PATH'), correlationIdPath: env('CORRELATION_ID_PATH') };
}

function maxMessagesOf(command: unknown): number | undefined {
  const value = isObject(command) ? command.maxMessages : undefined;
  return typeof value === 'number' ? value : undefined;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
