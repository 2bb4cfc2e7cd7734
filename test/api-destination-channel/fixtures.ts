import { Duration, Stack, Validations } from 'aws-cdk-lib';
import * as cloudwatchActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as events from 'aws-cdk-lib/aws-events';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sns from 'aws-cdk-lib/aws-sns';
import { ApiDestinationChannel, ApiDestinationChannelProps, ChannelAuthorization } from '../../src';

/** The smallest valid channel: bus, pattern, endpoint, API key from a secret. */
export function defaultChannel(stack: Stack, overrides: Partial<ApiDestinationChannelProps> = {}, id = 'Channel'): ApiDestinationChannel {
  const bus = (stack.node.tryFindChild('Bus') as events.EventBus) ?? new events.EventBus(stack, 'Bus');
  const secret = (stack.node.tryFindChild('ApiKey') as secretsmanager.Secret) ?? userSecret(stack, 'ApiKey');
  return new ApiDestinationChannel(stack, id, {
    eventBus: bus,
    eventPattern: { source: ['shop.orders'], detailType: ['OrderPlaced'] },
    endpoint: 'https://crm.example.com/orders',
    authorization: ChannelAuthorization.apiKey({ headerName: 'x-api-key', secret }),
    ...overrides,
  });
}

/** Every option on: OAuth, transformation, parameters, limits, customer key, alarm actions. */
export function fullestChannel(stack: Stack): ApiDestinationChannel {
  const bus = new events.EventBus(stack, 'FullBus');
  const clientSecret = userSecret(stack, 'OAuthClient');
  const key = new kms.Key(stack, 'DlqKey', { enableKeyRotation: true });
  const topic = new sns.Topic(stack, 'Alarms', { enforceSSL: true, masterKey: key });
  return new ApiDestinationChannel(stack, 'FullChannel', {
    eventBus: bus,
    eventPattern: { source: ['shop.orders'], detailType: ['OrderPlaced'], detail: { total: [{ numeric: ['>', 0] }] } },
    endpoint: 'https://erp.example.com/tenants/*/orders',
    httpMethod: events.HttpMethod.PUT,
    authorization: ChannelAuthorization.oauthClientCredentials({
      authorizationEndpoint: 'https://auth.example.com/oauth2/token',
      clientId: 'cdk-event-fabric',
      clientSecret,
      clientSecretJsonField: 'clientSecret',
      bodyParameters: { scope: 'orders:write' },
    }),
    input: events.RuleTargetInput.fromObject({
      orderId: events.EventField.fromPath('$.detail.orderId'),
      total: events.EventField.fromPath('$.detail.total'),
      placedAt: events.EventField.time,
    }),
    rateLimitPerSecond: 20,
    headerParameters: { 'x-tenant': '$.detail.tenant', 'x-source': 'cdk-event-fabric' },
    queryStringParameters: { region: '$.region' },
    pathParameterValues: ['$.detail.tenant'],
    maxRetryAttempts: 10,
    maxEventAge: Duration.hours(2),
    idempotencyKeyHeader: 'X-Idempotency-Key',
    encryptionKey: key,
    deadLetterRetentionPeriod: Duration.days(7),
    alarmActions: [new cloudwatchActions.SnsAction(topic)],
    description: 'Orders to the ERP',
    enabled: true,
  });
}

/** A secret the user owns (not part of the construct); its rotation is the user's choice. */
export function userSecret(stack: Stack, id: string): secretsmanager.Secret {
  const secret = new secretsmanager.Secret(stack, id);
  Validations.of(secret).acknowledge({ id: 'AwsSolutions-SMG4', reason: 'Test fixture: the remote API credential is issued by the remote party; rotation is out of scope here.' });
  return secret;
}
