import { PutItemCommand } from '@aws-sdk/client-dynamodb';
import { CreateBucketCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { marshall } from '@aws-sdk/util-dynamodb';
import { ACCOUNT_CHECK, DAY, eventItem, IN_STOCK, seedConfig, streamEvent, streamRecord } from './aggregator-fixtures';
import { createAggregatorMotoWorld } from './aggregator-moto-world';
import { Aggregator } from '../../src/event-aggregator/aggregator-core';
import { redriveFailedBatches } from '../../src/event-aggregator/failed-batch-redrive-core';
import { drainMotoQueue, motoClients, uniqueName } from '../support/moto';

const { dynamoDb, eventBridge, s3, sqs } = motoClients();

const key = 'aws/lambda/8f3a0c1e-xmpl-4f4e-9d5c-2f1b0f6f1e01/shardId-00000001573689847184-864758bb/2027/01/12/2027-01-12T08.00.00-0b8d1c6e-xmpl-4c59-9a1f-000000000001';

/**
 * Found by review. Docs (Recovery): "A batch stays ... when the items of a set still waiting expired before the
 * redrive"; the alarm text: redrive "before the items expire (itemTtl)" — i.e. within itemTtl
 * of the alarm. But the check only looks at the expiresAt of the failed batch's OWN records.
 *
 * Order 9: Account Check recorded 8 days ago (handed off fine by its own batch: waiting),
 * In Stock recorded 3 days ago; the batch of In Stock failed — at that moment the set was
 * complete and Completed should have gone out. Redrive today, 3 days after the alarm (well
 * within itemTtl = 7 days of it): Account Check's item has expired, so the set reads as
 * waiting; In Stock's record has not expired, so the redrive declares the batch redriven and
 * moves it away. Order 9's Completed is lost for good, and the report says all is well.
 */
test('a batch whose set lost an earlier item to expiry before the redrive is kept with the reason, not reported redriven (found by review)', async () => {
  const { tableName, busName, capture } = await createAggregatorMotoWorld({ dynamoDb, eventBridge, sqs });
  const bucketName = uniqueName('failed-batches');
  await s3.send(new CreateBucketCommand({ Bucket: bucketName }));
  const now = Math.floor(Date.now() / 1000);
  const accountCheck = eventItem('9', ACCOUNT_CHECK, { status: 'APPROVED' }, { now: now - 8 * DAY });
  const inStock = eventItem('9', IN_STOCK, { sku: 'A-1' }, { now: now - 3 * DAY });
  for (const item of [accountCheck, inStock]) await dynamoDb.send(new PutItemCommand({ TableName: tableName, Item: marshall(item) }));
  const batch = streamEvent(streamRecord('INSERT', inStock));
  await s3.send(new PutObjectCommand({ Bucket: bucketName, Key: key, Body: JSON.stringify({ payload: JSON.stringify(batch) }) }));

  const aggregator = new Aggregator({ dynamoDb, eventBridge, owner: uniqueName('redrive') }, seedConfig(tableName, busName));
  const report = await redriveFailedBatches({ s3, aggregator, bucketName }, { redriveFailedBatches: {} });
  const emitted = await drainMotoQueue(sqs, capture.url);
  const keys = ((await s3.send(new ListObjectsV2Command({ Bucket: bucketName }))).Contents ?? []).map((o) => o.Key);

  // Either the aggregate that the failure withheld goes out, or the batch stays with a reason. Never "redriven" with nothing emitted.
  expect({ emitted: emitted.length, redriven: report.redriven }).not.toEqual({ emitted: 0, redriven: [key] });
  expect(emitted.length > 0 || keys.includes(key)).toBe(true);
  expect(report.failed).toEqual([{ key, reason: expect.stringMatching(/^items of 9 expired \(itemTtl\) before this redrive/) }]);
});
