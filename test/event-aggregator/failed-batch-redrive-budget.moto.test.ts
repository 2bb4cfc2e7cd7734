import { PutItemCommand } from '@aws-sdk/client-dynamodb';
import { CreateBucketCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { marshall } from '@aws-sdk/util-dynamodb';
import type { DynamoDBStreamEvent } from 'aws-lambda';
import { ACCOUNT_CHECK, DAY, eventItem, IN_STOCK, seedConfig, streamEvent, streamRecord } from './aggregator-fixtures';
import { createAggregatorMotoWorld } from './aggregator-moto-world';
import { Aggregator } from '../../src/event-aggregator/aggregator-core';
import { redriveFailedBatches } from '../../src/event-aggregator/failed-batch-redrive-core';
import { motoClients, uniqueName } from '../support/moto';

const { dynamoDb, eventBridge, s3, sqs } = motoClients();

const keyOf = (day: number) => `aws/lambda/8f3a0c1e-xmpl-4f4e-9d5c-2f1b0f6f1e01/shardId-00000001573689847184-864758bb/2027/01/${day}/`
  + `2027-01-${day}T08.00.00-0b8d1c6e-xmpl-4c59-9a1f-0000000000${day}`;

/**
 * Found by review. Docs (Recovery): invoke again "until `remaining` is 0", continuing after the report's `continueAfter`.
 * Batches whose sets expired are kept by design (up to 90 days) and every run starts again
 * from the top of the listing, re-reading them; the function has 30 s and an object is only
 * started with 20 s left, so ~10 s of work per invocation. Three kept batches of old expired
 * ids that take 4 s each (a batch of up to 100 ids is 100 sequential Queries) use up every
 * invocation: a newer failed batch listed after them is never started, and `remaining` never
 * reaches 0 however often the operator invokes again.
 */
test('kept (expired) batches do not starve a newer failed batch: redrives continued after the last key reach remaining 0 (found by review)', async () => {
  const { tableName, busName } = await createAggregatorMotoWorld({ dynamoDb, eventBridge, sqs });
  const bucketName = uniqueName('failed-batches');
  await s3.send(new CreateBucketCommand({ Bucket: bucketName }));
  const now = Math.floor(Date.now() / 1000);
  // Three old batches: their sets expired (recorded 8 days ago, itemTtl 7 days) — kept for good.
  for (const [i, day] of [10, 11, 12].entries()) {
    const item = eventItem(`old-${i}`, ACCOUNT_CHECK, { status: 'APPROVED' }, { now: now - 8 * DAY });
    await dynamoDb.send(new PutItemCommand({ TableName: tableName, Item: marshall(item) }));
    await s3.send(new PutObjectCommand({ Bucket: bucketName, Key: keyOf(day), Body: JSON.stringify({ payload: JSON.stringify(streamEvent(streamRecord('INSERT', item))) }) }));
  }
  // A fresh failure: order 7 complete in the table, its batch failed today.
  const fresh = [eventItem('7', ACCOUNT_CHECK, { status: 'APPROVED' }, { now }), eventItem('7', IN_STOCK, { sku: 'A-1' }, { now })];
  for (const item of fresh) await dynamoDb.send(new PutItemCommand({ TableName: tableName, Item: marshall(item) }));
  await s3.send(new PutObjectCommand({ Bucket: bucketName, Key: keyOf(14), Body: JSON.stringify({ payload: JSON.stringify(streamEvent(streamRecord('INSERT', fresh[1]))) }) }));

  const reports = [];
  let continueAfter: string | undefined;
  for (let invocation = 0; invocation < 5; invocation++) {
    // A fresh 30 s invocation; each batch takes 4 s to aggregate again.
    let remaining = 29_500;
    const core = new Aggregator({ dynamoDb, eventBridge, owner: uniqueName('redrive') }, seedConfig(tableName, busName));
    const timed = {
      processStreamBatch: async (batch: DynamoDBStreamEvent) => {
        const report = await core.processStreamBatch(batch);
        remaining -= 4_000;
        return report;
      },
    };
    const startAfter = continueAfter ? { startAfter: continueAfter } : {};
    const report = await redriveFailedBatches({ s3, aggregator: timed, bucketName, remainingMs: () => remaining },
      { redriveFailedBatches: startAfter });
    reports.push({ redriven: report.redriven.length, failed: report.failed.length, remaining: report.remaining });
    continueAfter = report.continueAfter;
    if (report.remaining === 0) break;
  }
  // Each run re-reads the three kept batches and stops: [{ redriven: 0, failed: 3, remaining: 1 }, ...] five times.
  expect(reports[reports.length - 1].remaining).toBe(0);
  expect(reports.some((r) => r.redriven === 1)).toBe(true);
});
