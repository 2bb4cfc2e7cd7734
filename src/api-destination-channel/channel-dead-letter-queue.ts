import { Lazy, Names, Stack, Token } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct, IConstruct } from 'constructs';
import { allowEventBridgeToUseKey, queueDepth, thresholdAlarm } from '../common/construct-defaults';

/** SQS's limits on one queue policy. */
export const QUEUE_POLICY_MAX_BYTES = 8_192;
export const QUEUE_POLICY_MAX_STATEMENTS = 20;

// Conservative lengths of the parts of an ARN that are still tokens at synth.
const PARTITION_MAX = 10; // aws-us-gov
const REGION_MAX = 16; // the longest region names have 14 characters (ap-southeast-7, us-isob-east-1)
const ACCOUNT_ID = 12;
const BUS_NAME_MAX = 256; // EventBridge's limit on an event bus name
const RULE_NAME_MAX = 64; // EventBridge's limit; CloudFormation generates rule names up to it
const TOKEN_MAX = 256; // any other unresolved value in the policy, such as the queue's ARN
const PSEUDO_PARAMETER_MAX: { [name: string]: number } = {
  'AWS::Partition': PARTITION_MAX, 'AWS::Region': REGION_MAX, 'AWS::AccountId': ACCOUNT_ID, 'AWS::URLSuffix': 16,
};

/** A channel's rule and the bus it is on (its ARN has the form `arn:…:rule/<bus>/<rule>`). */
export interface ChannelRuleOnBus {
  readonly rule: events.Rule;
  readonly bus: events.IEventBus;
}

/**
 * One per dead-letter queue per stack, shared by the stack's channels that use that queue:
 * ONE queue-policy statement that lets all their rules send to it, the EventBridge grant on
 * the queue's key, and one depth alarm.
 *
 * aws-events-targets would add one statement per rule (two per channel), and SQS allows
 * 20 statements and 8,192 bytes per queue policy; so the channels' targets set their
 * `deadLetterConfig` themselves (`withDeadLetterQueue`), and this construct checks the
 * estimated policy size at synth.
 */
export class ChannelDeadLetterQueue extends Construct {
  /** The construct for `queue` in `scope`'s stack, created on first use. */
  public static of(scope: IConstruct, queue: sqs.IQueue): ChannelDeadLetterQueue {
    const stack = Stack.of(scope);
    const id = `CdkEventFabricChannelDlq${Names.nodeUniqueId(queue.node)}`;
    return (stack.node.tryFindChild(id) as ChannelDeadLetterQueue | undefined) ?? new ChannelDeadLetterQueue(stack, id, queue);
  }

  public readonly queue: sqs.IQueue;
  /** Alarm: the queue holds at least one visible message. */
  public readonly depthAlarm: cloudwatch.Alarm;
  /** False for an imported queue, whose policy this app cannot change. */
  public readonly policyAdded: boolean;
  /**
   * The queue's KMS key (ARN, or construct path) when its policy cannot be changed here
   * (an imported or AWS managed key); undefined without a key, or once it is granted.
   */
  public readonly ungrantedKey?: string;

  private readonly policy?: sqs.QueuePolicy;
  private readonly rules: ChannelRuleOnBus[] = [];
  private channels = 0;
  private readonly alarmActionArns = new Set<string>();

  private constructor(scope: Construct, id: string, queue: sqs.IQueue) {
    super(scope, id);
    this.queue = queue;
    const statement = new iam.PolicyStatement({
      // One statement per stack on a queue; Sids are alphanumeric.
      sid: `ApiDestinationChannels${Stack.of(this).node.path.replace(/[^A-Za-z0-9]/g, '')}`,
      principals: [new iam.ServicePrincipal('events.amazonaws.com')],
      actions: ['sqs:SendMessage'],
      resources: [queue.queueArn],
      conditions: { ArnEquals: { 'aws:SourceArn': Lazy.list({ produce: () => this.rules.map((r) => r.rule.ruleArn) }) } },
    });
    const added = queue.addToResourcePolicy(statement);
    this.policyAdded = added.statementAdded;
    this.policy = added.policyDependable instanceof sqs.QueuePolicy ? added.policyDependable : undefined;
    // aws-cdk-lib adds no key policy for EventBridge (without it every parked event is lost).
    const key = queue.encryptionMasterKey;
    if (key && !allowEventBridgeToUseKey(this, key)) {
      this.ungrantedKey = Token.isUnresolved(key.keyArn) ? key.node.path : key.keyArn;
    } else if (queue instanceof sqs.Queue && queue.encryptionType === sqs.QueueEncryption.KMS_MANAGED) {
      this.ungrantedKey = 'alias/aws/sqs';
    }
    this.depthAlarm = thresholdAlarm(this, 'DepthAlarm', queueDepth(queue),
      `Events are parked in the dead-letter queue ${queue.node.path} of ApiDestinationChannels; fix the cause, then replay them`, undefined);
    this.node.addValidation({ validate: () => this.validatePolicy() });
  }

  /** Lets a channel's rules send to the queue, and adds the channel's alarm actions to the depth alarm. */
  public addChannel(rules: ChannelRuleOnBus[], alarmActions: cloudwatch.IAlarmAction[] | undefined): void {
    this.channels++;
    this.rules.push(...rules);
    for (const action of alarmActions ?? []) {
      // Channels sharing the queue often pass the same topic: notify it once.
      const arn = JSON.stringify(Stack.of(this).resolve(action.bind(this, this.depthAlarm).alarmActionArn));
      if (this.alarmActionArns.has(arn)) continue;
      this.alarmActionArns.add(arn);
      this.depthAlarm.addAlarmAction(action);
    }
  }

  /** An error when the queue policy (estimated) would exceed SQS's limits. */
  private validatePolicy(): string[] {
    if (!this.policy || this.rules.length === 0) return [];
    const stack = Stack.of(this.policy);
    const document = stack.resolve(this.policy.document);
    const ruleArnLengths = new Map(this.rules.map((r) => [JSON.stringify(stack.resolve(r.rule.ruleArn)), ruleArnLength(r)] as const));
    const bytes = jsonLength(document, (intrinsic) => ruleArnLengths.get(JSON.stringify(intrinsic)) ?? intrinsicLength(intrinsic));
    const statements: number = document?.Statement?.length ?? 0;
    if (bytes <= QUEUE_POLICY_MAX_BYTES && statements <= QUEUE_POLICY_MAX_STATEMENTS) return [];

    const arnBytes = this.rules.reduce((sum, r) => sum + ruleArnLength(r) + 3, 0); // quotes and comma
    const fits = Math.max(0, Math.floor((QUEUE_POLICY_MAX_BYTES - (bytes - arnBytes)) / (arnBytes / this.channels)));
    return [
      `${this.queue.node.path}: invalid deadLetterQueue shared by ${this.channels} ApiDestinationChannels of stack '${Stack.of(this).node.path}' ` +
      `(${this.rules.length} rules): its queue policy would have ${statements} statements and about ${bytes} bytes (estimated), ` +
      `over SQS's limits of ${QUEUE_POLICY_MAX_STATEMENTS} statements and ${QUEUE_POLICY_MAX_BYTES} bytes; ` +
      `allowed: about ${fits} channels of one stack on this queue. Give some channels their own queue ` +
      '(leave deadLetterQueue unset so each creates one, or pass a second queue).',
    ];
  }
}

/**
 * `target` with `queue` as its dead-letter queue, but without the queue-policy statement
 * aws-events-targets adds per rule (ChannelDeadLetterQueue adds one for all channels).
 */
export function withDeadLetterQueue(target: events.IRuleTarget, queue: sqs.IQueue): events.IRuleTarget {
  return {
    bind: (rule, id) => ({ ...target.bind(rule, id), deadLetterConfig: { arn: queue.queueArn } }),
  };
}

/**
 * The longest the ARN of a channel's rule can be, `arn:<partition>:events:<region>:<account>:rule/<bus>/<rule>`:
 * resolved parts at their length, tokens at their maximum, the rule name (generated by
 * CloudFormation) at 64.
 */
function ruleArnLength({ rule, bus }: ChannelRuleOnBus): number {
  const stack = Stack.of(rule);
  const known = (value: string, max: number) => (Token.isUnresolved(value) ? max : value.length);
  const busName = resolvedBusName(bus);
  const busPart = busName === 'default' ? 0 : (busName?.length ?? BUS_NAME_MAX) + 1;
  return 'arn::events:::rule/'.length + known(stack.partition, PARTITION_MAX) + known(stack.region, REGION_MAX) + ACCOUNT_ID + busPart + RULE_NAME_MAX;
}

/** A bus's name if known at synth: a literal, or the name generated for a bus created in this app. */
function resolvedBusName(bus: events.IEventBus): string | undefined {
  if (!Token.isUnresolved(bus.eventBusName)) return bus.eventBusName;
  const resource = bus.node.defaultChild;
  if (resource instanceof events.CfnEventBus) {
    const name = Stack.of(resource).resolve(resource.name);
    if (typeof name === 'string') return name;
  }
  return undefined;
}

/** Estimated length of a CloudFormation intrinsic's value (its string, without quotes). */
function intrinsicLength(intrinsic: { [key: string]: any }): number {
  const join = intrinsic['Fn::Join'];
  if (Array.isArray(join) && Array.isArray(join[1])) {
    const parts: unknown[] = join[1];
    return parts.reduce<number>((sum, part) => sum + (typeof part === 'string' ? part.length : isIntrinsic(part) ? intrinsicLength(part) : TOKEN_MAX), 0)
      + String(join[0]).length * Math.max(0, parts.length - 1);
  }
  return PSEUDO_PARAMETER_MAX[intrinsic.Ref] ?? TOKEN_MAX;
}

/** Length of `value` as minified JSON, each intrinsic counted as a string of its estimated length. */
function jsonLength(value: unknown, lengthOf: (intrinsic: { [key: string]: any }) => number): number {
  const list = (items: number[]) => 2 + Math.max(0, items.length - 1) + items.reduce((a, b) => a + b, 0);
  if (Array.isArray(value)) return list(value.map((v) => jsonLength(v, lengthOf)));
  if (isIntrinsic(value)) return lengthOf(value) + 2;
  if (value !== null && typeof value === 'object') {
    return list(Object.entries(value).map(([k, v]) => JSON.stringify(k).length + 1 + jsonLength(v, lengthOf)));
  }
  return JSON.stringify(value)?.length ?? 0;
}

function isIntrinsic(value: unknown): value is { [key: string]: any } {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const keys = Object.keys(value);
  return keys.length === 1 && (keys[0] === 'Ref' || keys[0].startsWith('Fn::'));
}
