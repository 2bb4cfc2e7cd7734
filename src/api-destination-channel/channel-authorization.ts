import { SecretValue, Token } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';

/**
 * Which version of the Secrets Manager secret the connection reads.
 *
 * CloudFormation resolves the secret's `{{resolve:secretsmanager:...}}` dynamic reference
 * only when it creates or updates the connection, and EventBridge then keeps its own copy of
 * the value in a secret it manages (`events!connection/...`). Rotating your secret therefore
 * changes nothing for the connection, and neither does redeploying an unchanged template.
 * Pinning a version puts it into the dynamic reference: changing the pin changes the
 * template, so the next deploy updates the connection and EventBridge stores the value of
 * that version.
 *
 * Give at most one of `secretVersionId` and `secretVersionStage`.
 */
export interface ChannelSecretVersionOptions {
  /**
   * The version id of the secret version the connection uses, for example the `VersionId`
   * that `aws secretsmanager put-secret-value` or `aws secretsmanager describe-secret` prints.
   *
   * After rotating, set it to the new version's id and deploy: the changed dynamic reference
   * makes CloudFormation update the connection with that version's value. Keep the pinned
   * version until a later deploy has moved off it, because a rollback re-reads it.
   *
   * Allowed: 32 to 64 characters without whitespace, `:`, `{` or `}`.
   * Unresolved tokens (for example a `CfnParameter`) are passed through unchecked.
   *
   * @default - no version: the `AWSCURRENT` version when CloudFormation last created or updated the connection
   */
  readonly secretVersionId?: string;

  /**
   * The staging label of the secret version the connection uses, for example `AWSCURRENT`
   * or a label of your own.
   *
   * A label that moves to another version does not change the template, so a label alone
   * does not make a deploy pick up a rotated value; change the label you give (or use
   * `secretVersionId`) to make CloudFormation update the connection.
   *
   * Allowed: 1 to 256 characters without whitespace, `:`, `{` or `}`.
   * Unresolved tokens are passed through unchecked.
   *
   * @default - no label: `AWSCURRENT` when CloudFormation last created or updated the connection
   */
  readonly secretVersionStage?: string;
}

/** Options for `ChannelAuthorization.apiKey()`. */
export interface ApiKeyAuthorizationOptions extends ChannelSecretVersionOptions {
  /** Name of the header that carries the key, for example `x-api-key`. */
  readonly headerName: string;
  /** The Secrets Manager secret that holds the key. */
  readonly secret: secretsmanager.ISecret;
  /**
   * JSON field of the secret that holds the key.
   * @default - the whole secret string is the key
   */
  readonly jsonField?: string;
}

/** Options for `ChannelAuthorization.basic()`. */
export interface BasicAuthorizationOptions extends ChannelSecretVersionOptions {
  /** The user name (not a secret; it appears in the template). */
  readonly username: string;
  /** The Secrets Manager secret that holds the password. */
  readonly secret: secretsmanager.ISecret;
  /**
   * JSON field of the secret that holds the password.
   * @default - the whole secret string is the password
   */
  readonly jsonField?: string;
}

/** Options for `ChannelAuthorization.oauthClientCredentials()`. */
export interface OAuthClientCredentialsOptions extends ChannelSecretVersionOptions {
  /** HTTPS URL of the token endpoint. */
  readonly authorizationEndpoint: string;
  /**
   * HTTP method of the token request (POST, GET or PUT).
   * @default events.HttpMethod.POST
   */
  readonly httpMethod?: events.HttpMethod;
  /** The OAuth client id (not a secret; it appears in the template). */
  readonly clientId: string;
  /** The Secrets Manager secret that holds the client secret. */
  readonly clientSecret: secretsmanager.ISecret;
  /**
   * JSON field of `clientSecret` that holds the client secret.
   * @default - the whole secret string is the client secret
   */
  readonly clientSecretJsonField?: string;
  /**
   * Extra non-secret body parameters of the token request, for example `{ scope: 'orders:write' }`.
   * @default - none
   */
  readonly bodyParameters?: { [name: string]: string };
}

/**
 * How a channel's connection authenticates to the remote API.
 *
 * Every secret value comes from AWS Secrets Manager and reaches the template only as a
 * `{{resolve:secretsmanager:...}}` dynamic reference, never as plain text.
 * EventBridge copies the value into the connection's own secret when CloudFormation creates
 * or updates the connection. Rotating your secret, or redeploying an unchanged template,
 * does not change that copy: after a rotation, bump `secretVersionId` and deploy, or call
 * EventBridge's `UpdateConnection` with the new value.
 */
export class ChannelAuthorization {
  /** API key sent in a header on every request. */
  public static apiKey(options: ApiKeyAuthorizationOptions): ChannelAuthorization {
    const version = secretVersion('apiKey', options);
    return new ChannelAuthorization(() => events.Authorization.apiKey(options.headerName, secretValue(options.secret, options.jsonField, version)));
  }

  /** HTTP Basic authentication. */
  public static basic(options: BasicAuthorizationOptions): ChannelAuthorization {
    const version = secretVersion('basic', options);
    return new ChannelAuthorization(() => events.Authorization.basic(options.username, secretValue(options.secret, options.jsonField, version)));
  }

  /** OAuth 2.0 client-credentials grant; EventBridge fetches and refreshes the token. */
  public static oauthClientCredentials(options: OAuthClientCredentialsOptions): ChannelAuthorization {
    const version = secretVersion('oauthClientCredentials', options);
    return new ChannelAuthorization(() => events.Authorization.oauth({
      authorizationEndpoint: options.authorizationEndpoint,
      httpMethod: options.httpMethod ?? events.HttpMethod.POST,
      clientId: options.clientId,
      clientSecret: secretValue(options.clientSecret, options.clientSecretJsonField, version),
      bodyParameters: options.bodyParameters
        ? Object.fromEntries(Object.entries(options.bodyParameters).map(([k, v]) => [k, events.HttpParameter.fromString(v)]))
        : undefined,
    }), options.authorizationEndpoint);
  }

  /** The OAuth token endpoint, when this is OAuth authorization (validated as https). */
  public readonly authorizationEndpoint?: string;
  private readonly render: () => events.Authorization;

  // Private: only the factories above create instances, so no subclass (in any language)
  // can hand a plain-text secret to the connection.
  private constructor(render: () => events.Authorization, authorizationEndpoint?: string) {
    this.render = render;
    this.authorizationEndpoint = authorizationEndpoint;
  }

  /** Renders the aws-cdk-lib authorization for an `events.Connection`. */
  public toEventsAuthorization(): events.Authorization {
    return this.render();
  }
}

/** The version pin of a dynamic reference: at most one of the two is set. */
interface SecretVersion {
  readonly versionId?: string;
  readonly versionStage?: string;
}

const VERSION_ID = /^[^\s:{}]{32,64}$/;
const VERSION_STAGE = /^[^\s:{}]{1,256}$/;
const AWS_STAGING_LABELS = ['AWSCURRENT', 'AWSPENDING', 'AWSPREVIOUS'];

/**
 * Validates the version options of a factory when it is called (at synth), so the error
 * points at the call. `:` separates the fields of a dynamic reference and `}}` ends it, so
 * neither may appear in a value.
 */
function secretVersion(factory: string, options: ChannelSecretVersionOptions): SecretVersion {
  const { secretVersionId: versionId, secretVersionStage: versionStage } = options;
  const where = `ChannelAuthorization.${factory}()`;
  if (versionId !== undefined && versionStage !== undefined) {
    throw new Error(`${where}: invalid secretVersionId/secretVersionStage ${JSON.stringify({ secretVersionId: versionId, secretVersionStage: versionStage })}; `
      + 'allowed: at most one of them (secretVersionId pins one version, secretVersionStage follows a staging label)');
  }
  if (versionId !== undefined && !Token.isUnresolved(versionId) && !VERSION_ID.test(versionId)) {
    const hint = AWS_STAGING_LABELS.includes(versionId) ? `; "${versionId}" is a staging label: pass it as secretVersionStage` : '';
    throw new Error(`${where}: invalid secretVersionId ${JSON.stringify(versionId)}; `
      + `allowed: a Secrets Manager version id, 32 to 64 characters without whitespace, ':', '{' or '}' (for example a UUID from \`aws secretsmanager describe-secret\`)${hint}`);
  }
  if (versionStage !== undefined && !Token.isUnresolved(versionStage) && !VERSION_STAGE.test(versionStage)) {
    throw new Error(`${where}: invalid secretVersionStage ${JSON.stringify(versionStage)}; `
      + 'allowed: a Secrets Manager staging label, 1 to 256 characters without whitespace, \':\', \'{\' or \'}\' (for example AWSCURRENT)');
  }
  return { versionId, versionStage };
}

function secretValue(secret: secretsmanager.ISecret, jsonField: string | undefined, version: SecretVersion): SecretValue {
  if (version.versionId === undefined && version.versionStage === undefined) {
    // Unpinned: the secret's own reference, exactly as before versions could be pinned.
    return jsonField ? secret.secretValueFromJson(jsonField) : secret.secretValue;
  }
  // The same reference ISecret.secretValueFromJson() builds, with the version fields filled in.
  return SecretValue.secretsManager(secret.secretArn, {
    jsonField: jsonField || undefined,
    versionId: version.versionId,
    versionStage: version.versionStage,
  });
}
