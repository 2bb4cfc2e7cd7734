/**
 * Deployed check of ApiDestinationChannel: an event put on the bus reaches a real HTTPS
 * endpoint (API Gateway + Lambda echo that records each request in DynamoDB) with the
 * transformed body, the API key from Secrets Manager and the idempotency key; and a dead
 * letter replayed by the channel's replay function reaches it with its original event id.
 *
 * Offline, `integ/snapshot.ts` compares this app's synthesized templates with the
 * committed snapshot; with an AWS account, deploy it with integ-runner or `cdk deploy`.
 */
import { ExpectedResult, IntegTest } from '@aws-cdk/integ-tests-alpha';
import { App, Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as apigateway from 'aws-cdk-lib/aws-apigateway';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { ApiDestinationChannel, ChannelAuthorization } from '../src';

/** Test scaffolding: an HTTPS endpoint that records what it receives. Not part of the library. */
class EchoEndpoint extends Construct {
  public readonly table: dynamodb.Table;
  public readonly apiKey: secretsmanager.Secret;
  public readonly url: string;

  constructor(scope: Construct, id: string) {
    super(scope, id);
    this.table = new dynamodb.Table(this, 'Requests', {
      partitionKey: { name: 'orderId', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.apiKey = new secretsmanager.Secret(this, 'ApiKey', {
      generateSecretString: { excludePunctuation: true, passwordLength: 32 },
    });
    const handler = new lambda.Function(this, 'Handler', {
      runtime: lambda.Runtime.NODEJS_24_X,
      handler: 'index.handler',
      timeout: Duration.seconds(4),
      tracing: lambda.Tracing.ACTIVE,
      environment: { TABLE_NAME: this.table.tableName, API_KEY_SECRET_ARN: this.apiKey.secretArn },
      code: lambda.Code.fromInline(ECHO_HANDLER),
    });
    this.table.grantWriteData(handler);
    this.apiKey.grantRead(handler);
    const api = new apigateway.LambdaRestApi(this, 'Api', {
      handler,
      deployOptions: { tracingEnabled: true },
      cloudWatchRole: false,
    });
    this.url = api.urlForPath('/orders');

    for (const [ruleId, reason] of Object.entries(ECHO_ACKNOWLEDGEMENTS)) {
      Validations.of(this).acknowledge({ id: ruleId, reason });
    }
  }
}

const ECHO_HANDLER = `
const { DynamoDBClient, PutItemCommand } = require('@aws-sdk/client-dynamodb');
const { SecretsManagerClient, GetSecretValueCommand } = require('@aws-sdk/client-secrets-manager');
const ddb = new DynamoDBClient({});
const sm = new SecretsManagerClient({});
exports.handler = async (request) => {
  const headers = Object.fromEntries(Object.entries(request.headers || {}).map(([k, v]) => [k.toLowerCase(), v]));
  const key = (await sm.send(new GetSecretValueCommand({ SecretId: process.env.API_KEY_SECRET_ARN }))).SecretString;
  if (headers['x-api-key'] !== key) return { statusCode: 401, body: 'wrong api key' };
  const body = JSON.parse(request.body || '{}');
  await ddb.send(new PutItemCommand({
    TableName: process.env.TABLE_NAME,
    Item: {
      orderId: { S: String(body.orderId) },
      amount: { N: String(body.amount) },
      channel: { S: String(body.channel) },
      method: { S: request.httpMethod },
      idempotencyKey: { S: headers['idempotency-key'] || 'missing' },
    },
  }));
  return { statusCode: 200, body: '{"ok":true}' };
};
`;

// Findings on the test scaffolding only (the channel itself needs none here).
const ECHO_ACKNOWLEDGEMENTS: Record<string, string> = {
  'AwsSolutions-APIG1': 'Test echo endpoint: no access logs for a short-lived integ stack.',
  'AwsSolutions-APIG2': 'Test echo endpoint: the handler validates the request itself.',
  'AwsSolutions-APIG3': 'Test echo endpoint: no WAF for a short-lived integ stack.',
  'AwsSolutions-APIG4': 'Test echo endpoint: the handler checks the API key header itself (that is what the test asserts).',
  'AwsSolutions-APIG6': 'Test echo endpoint: no execution logs for a short-lived integ stack.',
  'AwsSolutions-COG4': 'Test echo endpoint: EventBridge API destinations cannot use Cognito; the handler checks the API key.',
  'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]': 'Test echo endpoint: the basic execution managed policy is fine for scaffolding.',
  'AwsSolutions-IAM5[Resource::*]': 'Test echo endpoint: X-Ray actions support only Resource "*".',
  'AwsSolutions-SMG4': 'Test echo endpoint: a generated test API key, deleted with the stack.',
  'Serverless-LambdaDLQ': 'Test echo endpoint: invoked synchronously by API Gateway.',
  'Serverless-LambdaDefaultMemorySize': 'Test echo endpoint: default memory is enough.',
  'Serverless-APIGWAccessLogging': 'Test echo endpoint: no access logs for a short-lived integ stack.',
  'Serverless-APIGWDefaultThrottling': 'Test echo endpoint: default throttling is fine for one request.',
};

/** Builds the integ app into `app`; returns the test for more assertions. */
export function buildApp(app: App): IntegTest {
  const stack = new Stack(app, 'ApiDestinationChannelInteg');
  const echo = new EchoEndpoint(stack, 'Echo');
  const bus = new events.EventBus(stack, 'Bus');

  const channel = new ApiDestinationChannel(stack, 'CrmChannel', {
    eventBus: bus,
    eventPattern: { source: ['integ.orders'], detailType: ['OrderPlaced'] },
    endpoint: echo.url,
    authorization: ChannelAuthorization.apiKey({ headerName: 'x-api-key', secret: echo.apiKey }),
    input: events.RuleTargetInput.fromObject({
      orderId: events.EventField.fromPath('$.detail.orderId'),
      amount: events.EventField.fromPath('$.detail.amount'),
      channel: 'crm',
    }),
    maxRetryAttempts: 3,
    maxEventAge: Duration.minutes(10),
  });

  const integ = new IntegTest(app, 'ApiDestinationChannelTest', { testCases: [stack] });

  // 1. An event on the bus arrives, transformed and authorized, with the idempotency key.
  const put = integ.assertions.awsApiCall('EventBridge', 'putEvents', {
    Entries: [{
      EventBusName: bus.eventBusName,
      Source: 'integ.orders',
      DetailType: 'OrderPlaced',
      Detail: JSON.stringify({ orderId: 'order-live-1', amount: 42, ignored: 'not sent' }),
    }],
  });
  put.expect(ExpectedResult.objectLike({ FailedEntryCount: 0 }));
  const delivered = integ.assertions.awsApiCall('DynamoDB', 'getItem', {
    TableName: echo.table.tableName,
    Key: { orderId: { S: 'order-live-1' } },
    ConsistentRead: true,
  }).expect(ExpectedResult.objectLike({
    Item: { orderId: { S: 'order-live-1' }, amount: { N: '42' }, channel: { S: 'crm' }, method: { S: 'POST' } },
  })).waitForAssertions({ totalTimeout: Duration.minutes(5), interval: Duration.seconds(10) });
  put.next(delivered);

  // 2. A dead letter of this channel, replayed, arrives with its original event id as the key.
  const deadLetter = integ.assertions.awsApiCall('SQS', 'sendMessage', {
    QueueUrl: channel.deadLetterQueue.queueUrl,
    MessageBody: JSON.stringify({
      'version': '0',
      'id': 'original-event-id-7',
      'detail-type': 'OrderPlaced',
      'source': 'integ.orders',
      'account': stack.account,
      'time': '2026-11-22T10:00:00Z',
      'region': stack.region,
      'resources': [],
      'detail': { orderId: 'order-replayed-1', amount: 7 },
    }),
    MessageAttributes: { RULE_ARN: { DataType: 'String', StringValue: channel.rule.ruleArn } },
  });
  const replay = integ.assertions.invokeFunction({
    functionName: channel.replayFunction.functionName,
    payload: channel.replayPayload,
  });
  replay.expect(ExpectedResult.objectLike({ Payload: ExpectedResult.stringLikeRegexp('"replayed":1') as any }));
  const replayed = integ.assertions.awsApiCall('DynamoDB', 'getItem', {
    TableName: echo.table.tableName,
    Key: { orderId: { S: 'order-replayed-1' } },
    ConsistentRead: true,
  }).expect(ExpectedResult.objectLike({
    Item: { orderId: { S: 'order-replayed-1' }, amount: { N: '7' }, idempotencyKey: { S: 'original-event-id-7' } },
  })).waitForAssertions({ totalTimeout: Duration.minutes(5), interval: Duration.seconds(10) });
  delivered.next(deadLetter).next(replay).next(replayed);

  return integ;
}

if (require.main === module) {
  const app = new App();
  buildApp(app);
  app.synth();
}
