import { App, CfnParameter, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as events from 'aws-cdk-lib/aws-events';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { defaultChannel, userSecret } from './fixtures';
import { ChannelAuthorization } from '../../src';

// Version ids as Secrets Manager returns them (UUIDs, 36 characters).
const V1 = 'a1b2c3d4-5678-90ab-cdef-111111111111';
const V2 = 'a1b2c3d4-5678-90ab-cdef-222222222222';

function newStack(): Stack {
  return new Stack(new App(), 'Test', { env: { account: '111111111111', region: 'eu-west-1' } });
}

/** The one AWS::Events::Connection of a stack, as synthesized. */
function connectionOf(stack: Stack): { logicalId: string; properties: any } {
  const connections = Template.fromStack(stack).findResources('AWS::Events::Connection');
  const ids = Object.keys(connections);
  expect(ids).toHaveLength(1);
  return { logicalId: ids[0], properties: connections[ids[0]].Properties };
}

/**
 * Renders a template value built with Fn::Join as one string, with `${LogicalId}` for each
 * Ref, so a whole dynamic reference can be compared exactly.
 */
function flatten(value: any): string {
  if (typeof value === 'string') return value;
  if (value?.Ref) return `\${${value.Ref}}`;
  if (value?.['Fn::Join']) {
    const [separator, parts] = value['Fn::Join'];
    return parts.map(flatten).join(separator);
  }
  throw new Error(`cannot flatten ${JSON.stringify(value)}`);
}

/** The ${Ref} placeholder of the secret created with `userSecret(stack, id)`. */
function secretRef(stack: Stack, id: string): string {
  const secret = stack.node.findChild(id) as secretsmanager.Secret;
  return `\${${stack.getLogicalId(secret.node.defaultChild as secretsmanager.CfnSecret)}}`;
}

describe('ChannelAuthorization secret version pinning', () => {
  test('apiKey: secretVersionId lands in the version-id field of the connection\'s dynamic reference', () => {
    const stack = newStack();
    const secret = userSecret(stack, 'ApiKey');
    new events.Connection(stack, 'Connection', {
      authorization: ChannelAuthorization.apiKey({ headerName: 'x-api-key', secret, secretVersionId: V1 }).toEventsAuthorization(),
    });
    const { properties } = connectionOf(stack);
    expect(properties.AuthorizationType).toBe('API_KEY');
    expect(properties.AuthParameters.ApiKeyAuthParameters.ApiKeyName).toBe('x-api-key');
    // secret-id:SecretString:json-key:version-stage:version-id
    expect(flatten(properties.AuthParameters.ApiKeyAuthParameters.ApiKeyValue))
      .toBe(`{{resolve:secretsmanager:${secretRef(stack, 'ApiKey')}:SecretString:::${V1}}}`);
  });

  test('apiKey: jsonField and secretVersionId both reach the reference', () => {
    const stack = newStack();
    const secret = userSecret(stack, 'ApiKey');
    new events.Connection(stack, 'Connection', {
      authorization: ChannelAuthorization.apiKey({ headerName: 'x-api-key', secret, jsonField: 'key', secretVersionId: V1 }).toEventsAuthorization(),
    });
    expect(flatten(connectionOf(stack).properties.AuthParameters.ApiKeyAuthParameters.ApiKeyValue))
      .toBe(`{{resolve:secretsmanager:${secretRef(stack, 'ApiKey')}:SecretString:key::${V1}}}`);
  });

  test('basic: secretVersionStage lands in the version-stage field', () => {
    const stack = newStack();
    const secret = userSecret(stack, 'Password');
    new events.Connection(stack, 'Connection', {
      authorization: ChannelAuthorization.basic({ username: 'svc', secret, jsonField: 'password', secretVersionStage: 'CRM_LIVE' }).toEventsAuthorization(),
    });
    const { properties } = connectionOf(stack);
    expect(properties.AuthorizationType).toBe('BASIC');
    expect(properties.AuthParameters.BasicAuthParameters.Username).toBe('svc');
    expect(flatten(properties.AuthParameters.BasicAuthParameters.Password))
      .toBe(`{{resolve:secretsmanager:${secretRef(stack, 'Password')}:SecretString:password:CRM_LIVE:}}`);
  });

  test('oauthClientCredentials: secretVersionId pins the client secret, the client id stays plain', () => {
    const stack = newStack();
    const clientSecret = userSecret(stack, 'OAuthClient');
    new events.Connection(stack, 'Connection', {
      authorization: ChannelAuthorization.oauthClientCredentials({
        authorizationEndpoint: 'https://auth.example.com/oauth2/token',
        clientId: 'event-fabric',
        clientSecret,
        clientSecretJsonField: 'clientSecret',
        secretVersionId: V1,
      }).toEventsAuthorization(),
    });
    const oauth = connectionOf(stack).properties.AuthParameters.OAuthParameters;
    expect(oauth.ClientParameters.ClientID).toBe('event-fabric');
    expect(flatten(oauth.ClientParameters.ClientSecret))
      .toBe(`{{resolve:secretsmanager:${secretRef(stack, 'OAuthClient')}:SecretString:clientSecret::${V1}}}`);
  });

  test('an imported secret (by name) is pinned the same way', () => {
    const stack = newStack();
    const secret = secretsmanager.Secret.fromSecretNameV2(stack, 'Imported', 'crm/api-key');
    new events.Connection(stack, 'Connection', {
      authorization: ChannelAuthorization.apiKey({ headerName: 'x-api-key', secret, secretVersionId: V1 }).toEventsAuthorization(),
    });
    const value = flatten(connectionOf(stack).properties.AuthParameters.ApiKeyAuthParameters.ApiKeyValue);
    expect(value).toMatch(/^\{\{resolve:secretsmanager:arn:\$\{AWS::Partition\}:secretsmanager:eu-west-1:111111111111:secret:crm\/api-key:SecretString:::/);
    expect(value.endsWith(`:SecretString:::${V1}}}`)).toBe(true);
  });

  test('without a version the reference is unchanged: no stage, no id', () => {
    const stack = newStack();
    const secret = userSecret(stack, 'ApiKey');
    new events.Connection(stack, 'Connection', {
      authorization: ChannelAuthorization.apiKey({ headerName: 'x-api-key', secret, jsonField: 'key' }).toEventsAuthorization(),
    });
    expect(flatten(connectionOf(stack).properties.AuthParameters.ApiKeyAuthParameters.ApiKeyValue))
      .toBe(`{{resolve:secretsmanager:${secretRef(stack, 'ApiKey')}:SecretString:key::}}`);
  });

  test('the channel\'s own connection carries the pinned version', () => {
    const stack = newStack();
    const secret = userSecret(stack, 'ApiKey');
    defaultChannel(stack, { authorization: ChannelAuthorization.apiKey({ headerName: 'x-api-key', secret, secretVersionId: V1 }) });
    expect(flatten(connectionOf(stack).properties.AuthParameters.ApiKeyAuthParameters.ApiKeyValue))
      .toBe(`{{resolve:secretsmanager:${secretRef(stack, 'ApiKey')}:SecretString:::${V1}}}`);
  });

  test('a token version id (CfnParameter) is passed through, so it can be bumped at deploy time', () => {
    const stack = newStack();
    const secret = userSecret(stack, 'ApiKey');
    const versionId = new CfnParameter(stack, 'CrmKeyVersion', { type: 'String' }).valueAsString;
    new events.Connection(stack, 'Connection', {
      authorization: ChannelAuthorization.apiKey({ headerName: 'x-api-key', secret, secretVersionId: versionId }).toEventsAuthorization(),
    });
    expect(flatten(connectionOf(stack).properties.AuthParameters.ApiKeyAuthParameters.ApiKeyValue))
      .toBe(`{{resolve:secretsmanager:${secretRef(stack, 'ApiKey')}:SecretString:::\${CrmKeyVersion}}}`);
  });
});

describe('bumping the version changes the template', () => {
  /** The template of a stack with one channel whose API key is pinned to `secretVersionId`. */
  function synth(secretVersionId?: string): { template: any; connection: { logicalId: string; properties: any } } {
    const stack = newStack();
    const secret = userSecret(stack, 'ApiKey');
    defaultChannel(stack, { authorization: ChannelAuthorization.apiKey({ headerName: 'x-api-key', secret, secretVersionId }) });
    return { template: Template.fromStack(stack).toJSON(), connection: connectionOf(stack) };
  }

  test('V1 -> V2 changes only the connection\'s AuthParameters, in place (same logical id)', () => {
    const before = synth(V1);
    const after = synth(V2);
    expect(after.connection.logicalId).toBe(before.connection.logicalId);
    expect(after.connection.properties.AuthParameters).not.toEqual(before.connection.properties.AuthParameters);
    expect(flatten(after.connection.properties.AuthParameters.ApiKeyAuthParameters.ApiKeyValue)).toContain(`:SecretString:::${V2}}}`);

    // Every other resource is identical, so CloudFormation updates the connection and nothing else.
    const changed = Object.keys(after.template.Resources)
      .filter((id) => JSON.stringify(after.template.Resources[id]) !== JSON.stringify(before.template.Resources[id]));
    expect(changed).toEqual([after.connection.logicalId]);
    expect(Object.keys(after.template.Resources).sort()).toEqual(Object.keys(before.template.Resources).sort());
  });

  test('an unchanged pin (or no pin) synthesizes the identical template: a redeploy re-reads nothing', () => {
    expect(synth(V1).template).toEqual(synth(V1).template);
    expect(synth(undefined).template).toEqual(synth(undefined).template);
  });

  test('pinning a version where there was none also changes the connection', () => {
    const before = synth(undefined);
    const after = synth(V1);
    expect(after.connection.logicalId).toBe(before.connection.logicalId);
    expect(after.connection.properties).not.toEqual(before.connection.properties);
  });
});

describe('ChannelAuthorization version validation', () => {
  function secret(): secretsmanager.ISecret {
    return new secretsmanager.Secret(newStack(), 'S');
  }

  test('both secretVersionId and secretVersionStage: rejected, naming both and the allowed form', () => {
    expect(() => ChannelAuthorization.apiKey({ headerName: 'x-api-key', secret: secret(), secretVersionId: V1, secretVersionStage: 'AWSCURRENT' }))
      .toThrow(`ChannelAuthorization.apiKey(): invalid secretVersionId/secretVersionStage {"secretVersionId":"${V1}","secretVersionStage":"AWSCURRENT"}; allowed: at most one of them`);
    expect(() => ChannelAuthorization.basic({ username: 'svc', secret: secret(), secretVersionId: V1, secretVersionStage: 'AWSPENDING' }))
      .toThrow(/^ChannelAuthorization\.basic\(\): invalid secretVersionId\/secretVersionStage .*allowed: at most one of them/);
    expect(() => ChannelAuthorization.oauthClientCredentials({
      authorizationEndpoint: 'https://auth.example.com/token', clientId: 'c', clientSecret: secret(), secretVersionId: V1, secretVersionStage: 'AWSCURRENT',
    })).toThrow(/^ChannelAuthorization\.oauthClientCredentials\(\): invalid secretVersionId\/secretVersionStage/);
  });

  test('a staging label given as secretVersionId: rejected with a pointer to secretVersionStage', () => {
    expect(() => ChannelAuthorization.apiKey({ headerName: 'x-api-key', secret: secret(), secretVersionId: 'AWSCURRENT' }))
      .toThrow('ChannelAuthorization.apiKey(): invalid secretVersionId "AWSCURRENT"; allowed: a Secrets Manager version id, 32 to 64 characters without whitespace, \':\', \'{\' or \'}\''
        + ' (for example a UUID from `aws secretsmanager describe-secret`); "AWSCURRENT" is a staging label: pass it as secretVersionStage');
  });

  test.each([
    ['empty', ''],
    ['too short', 'abc123'],
    ['too long', 'a'.repeat(65)],
    ['a colon (field separator of the reference)', `${V1.slice(0, 35)}:`],
    ['closing braces', `${V1}}}`],
    ['whitespace', ` ${V1}`],
  ])('secretVersionId with %s: rejected', (_, versionId) => {
    expect(() => ChannelAuthorization.basic({ username: 'svc', secret: secret(), secretVersionId: versionId }))
      .toThrow(`ChannelAuthorization.basic(): invalid secretVersionId ${JSON.stringify(versionId)}; allowed: a Secrets Manager version id, 32 to 64 characters`);
  });

  test.each([
    ['empty', ''],
    ['a colon', 'CRM:LIVE'],
    ['whitespace', 'CRM LIVE'],
    ['too long', 'L'.repeat(257)],
  ])('secretVersionStage with %s: rejected', (_, versionStage) => {
    expect(() => ChannelAuthorization.oauthClientCredentials({
      authorizationEndpoint: 'https://auth.example.com/token', clientId: 'c', clientSecret: secret(), secretVersionStage: versionStage,
    })).toThrow(`ChannelAuthorization.oauthClientCredentials(): invalid secretVersionStage ${JSON.stringify(versionStage)}; allowed: a Secrets Manager staging label, 1 to 256 characters`);
  });

  test('the bounds themselves are accepted: 32 and 64 characters, a 256-character label', () => {
    expect(() => ChannelAuthorization.apiKey({ headerName: 'k', secret: secret(), secretVersionId: 'a'.repeat(32) })).not.toThrow();
    expect(() => ChannelAuthorization.apiKey({ headerName: 'k', secret: secret(), secretVersionId: 'a'.repeat(64) })).not.toThrow();
    expect(() => ChannelAuthorization.apiKey({ headerName: 'k', secret: secret(), secretVersionStage: 'L'.repeat(256) })).not.toThrow();
  });
});
