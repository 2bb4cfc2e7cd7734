/**
 * Deployed check of HydratingDlq: records put on the stream reach a target that fails, so
 * the pipe sends their batches to its dead-letter queue; the hydrator writes each record to
 * the bucket; the target is then fixed, the replayer replays the hydrated records through
 * the replay stream and the replay pipe, and the target records each order as delivered.
 *
 * Offline, `integ/snapshot.ts` compares this app's synthesized templates with the
 * committed snapshot; with an AWS account, deploy it with integ-runner or `cdk deploy`.
 */
import { ExpectedResult, IntegTest } from '@aws-cdk/integ-tests-alpha';
import { App, Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { Construct } from 'constructs';
import { HydratingDlq, PipeTarget } from '../src';

/**
 * Test scaffolding: a Lambda target that fails while the table's `switch` item says so, and
 * otherwise records each order it receives. Not part of the library.
 */
class SwitchableTarget extends Construct {
  public readonly table: dynamodb.Table;
  public readonly fn: lambda.Function;

  constructor(scope: Construct, id: string) {
    super(scope, id);
    this.table = new dynamodb.Table(this, 'Deliveries', {
      partitionKey: { name: 'id', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.fn = new lambda.Function(this, 'Handler', {
      runtime: lambda.Runtime.NODEJS_24_X,
      handler: 'index.handler',
      timeout: Duration.seconds(10),
      tracing: lambda.Tracing.ACTIVE,
      environment: { TABLE_NAME: this.table.tableName },
      code: lambda.Code.fromInline(TARGET_HANDLER),
    });
    this.table.grantReadWriteData(this.fn);
    for (const [ruleId, reason] of Object.entries(TARGET_ACKNOWLEDGEMENTS)) {
      Validations.of(this).acknowledge({ id: ruleId, reason });
    }
  }
}

// A pipe invokes a Lambda target with the batch: Kinesis records whose data is base64.
const TARGET_HANDLER = `
const { DynamoDBClient, GetItemCommand, PutItemCommand } = require('@aws-sdk/client-dynamodb');
const ddb = new DynamoDBClient({});
exports.handler = async (records) => {
  const sw = await ddb.send(new GetItemCommand({ TableName: process.env.TABLE_NAME, Key: { id: { S: 'switch' } }, ConsistentRead: true }));
  if (!sw.Item || sw.Item.failing.BOOL) throw new Error('the target is failing (integ switch)');
  for (const record of records) {
    const order = JSON.parse(Buffer.from(record.data, 'base64').toString('utf8'));
    await ddb.send(new PutItemCommand({
      TableName: process.env.TABLE_NAME,
      Item: { id: { S: order.orderId }, partitionKey: { S: record.partitionKey }, source: { S: record.eventSourceARN } },
    }));
  }
  return {};
};
`;

const TARGET_ACKNOWLEDGEMENTS: Record<string, string> = {
  'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]': 'Test target: the basic execution managed policy is fine for scaffolding.',
  'AwsSolutions-IAM5[Resource::*]': 'Test target: X-Ray actions support only Resource "*".',
  'Serverless-LambdaDLQ': 'Test target: invoked synchronously by the pipe, whose failures are what the test exercises.',
  'Serverless-LambdaDefaultMemorySize': 'Test target: default memory is enough.',
};

const ORDERS = ['order-1', 'order-2', 'order-3'];

/** Builds the integ app into `app`; returns the test for more assertions. */
export function buildApp(app: App): IntegTest {
  const stack = new Stack(app, 'HydratingDlqInteg');
  const target = new SwitchableTarget(stack, 'Target');
  const orders = new HydratingDlq(stack, 'Orders', {
    target: PipeTarget.lambdaFunction(target.fn),
    pipeName: 'integ-orders',
    // Fail fast: no retries, so a failed batch reaches the dead-letter queue at once.
    maximumRetryAttempts: 0,
    maximumRecordAge: Duration.minutes(1),
    removalPolicy: RemovalPolicy.DESTROY,
  });

  const integ = new IntegTest(app, 'HydratingDlqTest', { testCases: [stack] });

  // 1. The target fails; three records go on the stream.
  const failing = integ.assertions.awsApiCall('DynamoDB', 'putItem', {
    TableName: target.table.tableName,
    Item: { id: { S: 'switch' }, failing: { BOOL: true } },
  });
  const put = integ.assertions.awsApiCall('Kinesis', 'putRecords', {
    StreamARN: orders.stream.streamArn,
    Records: ORDERS.map((orderId, i) => ({ Data: JSON.stringify({ orderId }), PartitionKey: `customer-${i}` })),
  });
  put.expect(ExpectedResult.objectLike({ FailedRecordCount: 0 }));

  // 2. Their failed batches are hydrated: one object per record under the pipe's prefix.
  const hydrated = integ.assertions.awsApiCall('S3', 'listObjectsV2', {
    Bucket: orders.bucket.bucketName,
    Prefix: `${orders.objectPrefix}integ-orders/`,
  }).expect(ExpectedResult.objectLike({ KeyCount: ORDERS.length }))
    .waitForAssertions({ totalTimeout: Duration.minutes(10), interval: Duration.seconds(20) });

  // 3. The target is fixed, and the replayer sends the hydrated records to it again.
  const fixed = integ.assertions.awsApiCall('DynamoDB', 'putItem', {
    TableName: target.table.tableName,
    Item: { id: { S: 'switch' }, failing: { BOOL: false } },
  });
  const replay = integ.assertions.invokeFunction({
    functionName: orders.replayerFunction.functionName,
    payload: JSON.stringify({ prefix: `${orders.objectPrefix}integ-orders/` }),
  });
  replay.expect(ExpectedResult.objectLike({
    Payload: ExpectedResult.stringLikeRegexp(`"found":${ORDERS.length},"sent":${ORDERS.length},"failed":0`) as any,
  }));

  // 4. Every order reaches the target, through the replay pipe (its source is the replay stream).
  const delivered = ORDERS.map((orderId) => integ.assertions.awsApiCall('DynamoDB', 'getItem', {
    TableName: target.table.tableName,
    Key: { id: { S: orderId } },
    ConsistentRead: true,
  }).expect(ExpectedResult.objectLike({ Item: { id: { S: orderId }, source: { S: orders.replayStream.streamArn } } }))
    .waitForAssertions({ totalTimeout: Duration.minutes(5), interval: Duration.seconds(15) }));

  let chain = failing.next(put).next(hydrated).next(fixed).next(replay);
  for (const check of delivered) chain = chain.next(check);
  return integ;
}

if (require.main === module) {
  const app = new App();
  buildApp(app);
  app.synth();
}
