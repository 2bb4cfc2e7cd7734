import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as events from 'aws-cdk-lib/aws-events';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { ChannelAuthorization } from './channel-authorization';

/** Properties of an `ApiDestinationChannel`. */
export interface ApiDestinationChannelProps {
  /** The bus whose events feed this channel. */
  readonly eventBus: events.IEventBus;

  /**
   * Which events this channel delivers. Must constrain at least one field
   * (an empty pattern would deliver every event on the bus).
   */
  readonly eventPattern: events.EventPattern;

  /**
   * The remote endpoint, an absolute `https://` URL. It may contain `*` wildcards
   * filled from `pathParameterValues`.
   */
  readonly endpoint: string;

  /**
   * HTTP method of the request to the endpoint.
   * @default events.HttpMethod.POST
   */
  readonly httpMethod?: events.HttpMethod;

  /**
   * How to authenticate to the endpoint; the channel creates its own connection from it.
   * Exactly one of `authorization` and `connection` must be given.
   * @default - none; `connection` must be given
   */
  readonly authorization?: ChannelAuthorization;

  /**
   * An existing connection to share between channels that call the same API.
   * Exactly one of `authorization` and `connection` must be given.
   * @default - none; `authorization` must be given
   */
  readonly connection?: events.IConnection;

  /**
   * The request body, as an input transformation of the event.
   * @default - the event's `detail` (`RuleTargetInput.fromEventPath('$.detail')`)
   */
  readonly input?: events.RuleTargetInput;

  /**
   * Maximum invocations per second sent to the endpoint (an integer from 1 to 300).
   * @default - no channel limit; EventBridge's per-destination quota (300/s by default) applies
   */
  readonly rateLimitPerSecond?: number;

  /**
   * Headers to send. A value is either static or a JSONPath into the event, such as `$.detail.tenant`.
   * @default - none besides the idempotency key
   */
  readonly headerParameters?: { [name: string]: string };

  /**
   * Query string parameters to send. A value is either static or a JSONPath into the event.
   * @default - none
   */
  readonly queryStringParameters?: { [name: string]: string };

  /**
   * Values for the `*` wildcards of `endpoint`, in order; static or JSONPaths into the event.
   * @default - none
   */
  readonly pathParameterValues?: string[];

  /**
   * How many times EventBridge retries a failed delivery (429 and 5xx responses, timeouts),
   * an integer from 0 to 185.
   * @default 185
   */
  readonly maxRetryAttempts?: number;

  /**
   * How long EventBridge keeps retrying an event, from 60 seconds to 24 hours (86,400 s).
   * @default Duration.hours(24)
   */
  readonly maxEventAge?: Duration;

  /**
   * Send an idempotency-key header whose value is the event id, so the remote API can
   * discard duplicate deliveries (EventBridge delivers at least once, and replays reuse it).
   * @default true
   */
  readonly idempotencyKey?: boolean;

  /**
   * Name of the idempotency-key header.
   * @default 'Idempotency-Key'
   */
  readonly idempotencyKeyHeader?: string;

  /**
   * The queue that keeps events whose delivery failed. It may be shared by several
   * channels: replay routes each message back to the rule that failed it. The channels of
   * one stack that share a queue add ONE statement to its policy, listing all their rules,
   * and share one depth alarm; synth fails if the policy would exceed SQS's 8,192 bytes
   * (about 20 channels per queue, fewer with long bus names).
   *
   * If the queue is encrypted with a KMS key created in this app, the construct adds a key
   * policy statement that lets EventBridge use it. An imported queue's policy, and an
   * imported key's policy, cannot be changed here: synth warns which statements to add.
   * @default - an encrypted queue is created
   */
  readonly deadLetterQueue?: sqs.IQueue;

  /**
   * Customer managed KMS key for the created dead-letter queue. The construct adds a key
   * policy statement that lets EventBridge use it (the key must be created in this app,
   * or its policy must allow `events.amazonaws.com` `kms:GenerateDataKey` and `kms:Decrypt`;
   * synth warns about an imported key).
   * @default - SQS-managed server-side encryption (SSE-SQS)
   */
  readonly encryptionKey?: kms.IKey;

  /**
   * What happens to the created dead-letter queue, and the events parked in it, when it is
   * removed from the stack or the stack is deleted. Only with a created queue.
   * @default RemovalPolicy.RETAIN
   */
  readonly deadLetterQueueRemovalPolicy?: RemovalPolicy;

  /**
   * How long the created dead-letter queue keeps a message (60 seconds to 14 days).
   * @default Duration.days(14)
   */
  readonly deadLetterRetentionPeriod?: Duration;

  /**
   * Actions (for example an SNS topic action) for every alarm of the channel.
   * @default - none; the alarms are exposed to add actions later
   */
  readonly alarmActions?: cloudwatch.IAlarmAction[];

  /**
   * Description of the rule and API destination.
   * @default - derived from the construct path
   */
  readonly description?: string;

  /**
   * Whether the rule is enabled.
   * @default true
   */
  readonly enabled?: boolean;
}
