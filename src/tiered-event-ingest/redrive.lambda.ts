import { Logger } from '@aws-lambda-powertools/logger';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import type { Context } from 'aws-lambda';
import { runRedriveCommand } from './redrive-command-core';

const logger = new Logger();
const s3 = new S3Client({});
const sqs = new SQSClient({});
const eventBridge = new EventBridgeClient({});

/**
 * The ingest's redrive, invoked by an operator with one command (see `RedriveCommand`);
 * returns the command's report, which says what was moved, what was left and why.
 */
export async function handler(command: unknown, context: Context): Promise<object> {
  const report = await runRedriveCommand({ s3, sqs, eventBridge, remainingMs: () => context.getRemainingTimeInMillis(), env: process.env }, command);
  logger.info('redrive finished', { command: command as object, report });
  return report;
}
