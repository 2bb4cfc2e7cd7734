import { SecretValue } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';

/** Options for `ChannelAuthorization.apiKey()`. */
export interface ApiKeyAuthorizationOptions {
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
export interface BasicAuthorizationOptions {
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
export interface OAuthClientCredentialsOptions {
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
 * EventBridge copies the values into the connection's own secret at deploy time, so after
 * rotating your secret, redeploy (or update the connection) to pick up the new value.
 */
export class ChannelAuthorization {
  /** API key sent in a header on every request. */
  public static apiKey(options: ApiKeyAuthorizationOptions): ChannelAuthorization {
    return new ChannelAuthorization(() => events.Authorization.apiKey(options.headerName, secretValue(options.secret, options.jsonField)));
  }

  /** HTTP Basic authentication. */
  public static basic(options: BasicAuthorizationOptions): ChannelAuthorization {
    return new ChannelAuthorization(() => events.Authorization.basic(options.username, secretValue(options.secret, options.jsonField)));
  }

  /** OAuth 2.0 client-credentials grant; EventBridge fetches and refreshes the token. */
  public static oauthClientCredentials(options: OAuthClientCredentialsOptions): ChannelAuthorization {
    return new ChannelAuthorization(() => events.Authorization.oauth({
      authorizationEndpoint: options.authorizationEndpoint,
      httpMethod: options.httpMethod ?? events.HttpMethod.POST,
      clientId: options.clientId,
      clientSecret: secretValue(options.clientSecret, options.clientSecretJsonField),
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

function secretValue(secret: secretsmanager.ISecret, jsonField?: string): SecretValue {
  return jsonField ? secret.secretValueFromJson(jsonField) : secret.secretValue;
}
