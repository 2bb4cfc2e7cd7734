import { createHash } from 'crypto';
import { Lazy, Names, Resource, Stack, Token } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { RegionInfo } from 'aws-cdk-lib/region-info';
import { Construct, IConstruct } from 'constructs';
import { allowEventBridgeToUseKey, queueDepth, thresholdAlarm } from '../common/construct-defaults';
import { PropValidationError } from '../common/validation';

/** SQS's limits on one queue policy. */
export const QUEUE_POLICY_MAX_BYTES = 8_192;
export const QUEUE_POLICY_MAX_STATEMENTS = 20;

// Conservative lengths of the parts of an ARN that are still tokens at synth.
const PARTITION_MAX = 10; // aws-us-gov
const REGION_MAX = 16; // the longest region names have 14 characters (ap-southeast-7, us-isob-east-1)
const ACCOUNT_ID = 12;
const BUS_NAME_MAX = 256; // EventBridge's limit on an event bus name
const RULE_NAME_MAX = 64; // EventBridge's limit; CloudFormation generates rule names up to it
const QUEUE_NAME_MAX = 80; // SQS's limit; CloudFormation generates queue names up to it
const TOKEN_MAX = 256; // any other unresolved value in the policy
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
    validateQueueStack(scope, queue);
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
      sid: statementSid(Stack.of(this)),
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

  /**
   * An error when the queue policy (estimated) would exceed SQS's limits. Channels in several
   * stacks (nested stacks under the queue's) add their statements to the same policy, so the
   * estimate counts every ChannelDeadLetterQueue of this queue in the app, each rule ARN at its
   * own estimated length (in the queue's stack another stack's ARN is a token, a nested stack
   * output, whose value is that rule's ARN). The first of them in the app reports the error.
   */
  private validatePolicy(): string[] {
    if (!this.policy) return [];
    const sharing = this.node.root.node.findAll()
      .filter((c): c is ChannelDeadLetterQueue => c instanceof ChannelDeadLetterQueue && c.queue === this.queue);
    if (sharing[0] !== this) return [];
    const rules = sharing.flatMap((c) => c.rules);
    if (rules.length === 0) return [];
    const channels = sharing.reduce((sum, c) => sum + c.channels, 0);
    const stack = Stack.of(this.policy);
    const document = stack.resolve(this.policy.document);
    // Every rule ARN (another stack's too: a nested stack output) and the queue's ARN at their own estimates.
    const arnLengths = new Map(rules.map((r) => [JSON.stringify(stack.resolve(r.rule.ruleArn)), ruleArnLength(r)] as const));
    arnLengths.set(JSON.stringify(stack.resolve(this.queue.queueArn)), queueArnLength(this.queue));
    const pseudo = { ...PSEUDO_PARAMETER_MAX, 'AWS::Partition': partitionLength(stack) };
    const bytes = jsonLength(document, (intrinsic) => arnLengths.get(JSON.stringify(intrinsic)) ?? intrinsicLength(intrinsic, pseudo));
    const statements: number = document?.Statement?.length ?? 0;
    if (bytes <= QUEUE_POLICY_MAX_BYTES && statements <= QUEUE_POLICY_MAX_STATEMENTS) return [];

    const arnBytes = rules.reduce((sum, r) => sum + ruleArnLength(r) + 3, 0); // quotes and comma
    const fits = Math.max(0, Math.floor((QUEUE_POLICY_MAX_BYTES - (bytes - arnBytes)) / (arnBytes / channels)));
    const stacks = sharing.filter((c) => c.channels > 0).map((c) => `'${Stack.of(c).node.path}'`);
    const where = stacks.length === 1
      ? [`of stack ${stacks[0]}`, 'channels of one stack on this queue']
      : [`of stacks ${stacks.join(', ')}`, 'channels on this queue in all its stacks'];
    const advice = stacks.length === 1 ? '' : ', for example one per nested stack';
    return [
      `${this.queue.node.path}: invalid deadLetterQueue shared by ${channels} ApiDestinationChannels ${where[0]} ` +
      `(${rules.length} rules): its queue policy would have ${statements} statements and about ${bytes} bytes (estimated), ` +
      `over SQS's limits of ${QUEUE_POLICY_MAX_STATEMENTS} statements and ${QUEUE_POLICY_MAX_BYTES} bytes; ` +
      `allowed: about ${fits} ${where[1]}. Give some channels their own queue ` +
      `(leave deadLetterQueue unset so each creates one, or pass a second queue${advice}).`,
    ];
  }
}

/**
 * The Sid of a stack's statement, unique among the stacks that share a queue policy: the
 * queue's stack and the stacks nested in it (`validateQueueStack` refuses any other).
 * Sids are alphanumeric, so the path loses its other characters. A stack that is not nested
 * (at most one shares a policy: the queue's) keeps just that, as before; but nested paths such
 * as `P/Channels-1` and `P/Channels1`, or `P/Orders/Eu` and `P/OrdersEu`, would then collide,
 * so a nested stack's Sid also ends with a hash of its full path. A nested Sid is longer than
 * its top-level stack's (whose path begins its own), and two nested Sids are equal only if
 * their alphanumeric paths and their hashes both are.
 */
function statementSid(stack: Stack): string {
  const path = stack.node.path.replace(/[^A-Za-z0-9]/g, '');
  if (!stack.nestedStackParent) return `ApiDestinationChannels${path}`;
  const hash = createHash('sha256').update(stack.node.path).digest('hex').slice(0, 8).toUpperCase();
  return `ApiDestinationChannels${path}${hash}`;
}

/**
 * Refuses a queue created in a stack that is neither the channel's stack nor a parent of it.
 * The queue's policy is created with the queue and names the channel's rules, while the rules
 * name the queue: across two stacks that is only acyclic when the policy's stack deploys
 * after the rules' stack, that is when it is a parent of it (its nested stacks deploy first).
 * An imported queue takes no policy from this app, so it is not checked.
 */
function validateQueueStack(channel: IConstruct, queue: sqs.IQueue): void {
  if (!Resource.isOwnedResource(queue)) return;
  const channelStack = Stack.of(channel);
  const queueStack = Stack.of(queue);
  for (let s: Stack | undefined = channelStack; s; s = s.nestedStackParent) {
    if (s === queueStack) return;
  }
  const where = isNestedIn(queueStack, channelStack)
    ? `is in stack '${queueStack.node.path}', nested in the channel's stack`
    : `is in stack '${queueStack.node.path}', which is not a parent of the channel's stack`;
  throw new PropValidationError(channel, 'deadLetterQueue', queue.node.path,
    `allowed: a queue created in the channel's own stack '${channelStack.node.path}' or in a parent stack of it ` +
    '(a stack it is nested in, as when channels in several nested stacks share one queue of their parent). ' +
    `This queue ${where}: its queue policy, which lives with the queue, would name the channel's rules ` +
    'while the rules name the queue, a circular dependency between the two stacks that CloudFormation cannot deploy. ' +
    'Create the queue in the channel\'s stack or a parent of it, or leave deadLetterQueue unset so the channel creates one.');
}

/** Whether `stack` is nested, at any depth, in `ancestor`. */
function isNestedIn(stack: Stack, ancestor: Stack): boolean {
  for (let s = stack.nestedStackParent; s; s = s.nestedStackParent) {
    if (s === ancestor) return true;
  }
  return false;
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
  return 'arn::events:::rule/'.length + partitionLength(stack) + known(stack.region, REGION_MAX) + ACCOUNT_ID + busPart + RULE_NAME_MAX;
}

/**
 * The longest the ARN of the queue can be, `arn:<partition>:sqs:<region>:<account>:<name>`: the
 * name at its length when known (given to a queue created in this app) and 80 otherwise.
 */
function queueArnLength(queue: sqs.IQueue): number {
  const stack = Stack.of(queue);
  const resource = queue.node.defaultChild;
  const name = resource instanceof sqs.CfnQueue ? stack.resolve(resource.queueName) : undefined;
  const region = Token.isUnresolved(stack.region) ? REGION_MAX : stack.region.length;
  return 'arn::sqs:::'.length + partitionLength(stack) + region + ACCOUNT_ID + (typeof name === 'string' ? name.length : QUEUE_NAME_MAX);
}

/** Length of the stack's partition: known when its region is (for a region aws-cdk-lib knows), else at most 10. */
function partitionLength(stack: Stack): number {
  if (!Token.isUnresolved(stack.partition)) return stack.partition.length;
  const partition = Token.isUnresolved(stack.region) ? undefined : RegionInfo.get(stack.region).partition;
  return partition?.length ?? PARTITION_MAX;
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
function intrinsicLength(intrinsic: { [key: string]: any }, pseudo: { [name: string]: number }): number {
  const join = intrinsic['Fn::Join'];
  if (Array.isArray(join) && Array.isArray(join[1])) {
    const parts: unknown[] = join[1];
    return parts.reduce<number>((sum, part) => sum + (typeof part === 'string' ? part.length : isIntrinsic(part) ? intrinsicLength(part, pseudo) : TOKEN_MAX), 0)
      + String(join[0]).length * Math.max(0, parts.length - 1);
  }
  return pseudo[intrinsic.Ref] ?? TOKEN_MAX;
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
