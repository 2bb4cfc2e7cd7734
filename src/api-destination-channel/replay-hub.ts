import { Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct, IConstruct } from 'constructs';
import { ReplayFunction } from './replay-function';

const HUB_ID = 'CdkEventFabricChannelReplay';

/**
 * One per stack, shared by every ApiDestinationChannel in it: a private replay bus and
 * the function that moves a dead-letter queue's events onto it. Each channel adds one
 * rule on this bus that matches only its own replays.
 */
export class ChannelReplayHub extends Construct {
  /** The hub of `scope`'s stack, created on first use. */
  public static of(scope: IConstruct): ChannelReplayHub {
    const stack = Stack.of(scope);
    return (stack.node.tryFindChild(HUB_ID) as ChannelReplayHub | undefined) ?? new ChannelReplayHub(stack, HUB_ID);
  }

  public readonly bus: events.EventBus;
  public readonly replayFunction: lambda.Function;
  public readonly logGroup: logs.LogGroup;

  private constructor(scope: Construct, id: string) {
    super(scope, id);
    this.bus = new events.EventBus(this, 'Bus', {
      description: 'cdk-event-fabric: private bus that replays ApiDestinationChannel dead letters to their own channel only',
    });
    this.logGroup = new logs.LogGroup(this, 'Logs', {
      retention: logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    // An explicit role, so logging is granted on this log group only (no managed policy).
    const role = new iam.Role(this, 'FunctionRole', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: 'cdk-event-fabric ApiDestinationChannel replay function',
    });
    this.logGroup.grantWrite(role);
    this.replayFunction = new ReplayFunction(this, 'Function', {
      role,
      description: 'cdk-event-fabric: replays an ApiDestinationChannel dead-letter queue to its own channel',
      memorySize: 256,
      timeout: Duration.minutes(5),
      tracing: lambda.Tracing.ACTIVE,
      logGroup: this.logGroup,
      environment: {
        REPLAY_BUS_NAME: this.bus.eventBusName,
        POWERTOOLS_SERVICE_NAME: 'api-destination-channel-replay',
      },
    });
    this.bus.grantPutEventsTo(this.replayFunction);
    // A dead letter leaves its queue only if an enabled replay rule with a target takes it:
    // the function reads the replay bus's rules and their targets.
    role.addToPrincipalPolicy(new iam.PolicyStatement({
      actions: ['events:ListRules'],
      resources: ['*'],
    }));
    role.addToPrincipalPolicy(new iam.PolicyStatement({
      actions: ['events:ListTargetsByRule'],
      resources: [Stack.of(this).formatArn({ service: 'events', resource: 'rule', resourceName: `${this.bus.eventBusName}/*` })],
    }));

    Validations.of(role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason: 'Only the X-Ray actions (xray:PutTraceSegments, xray:PutTelemetryRecords) and events:ListRules use Resource "*", the only resource they support; '
        + 'queue, bus, rule-target and log grants are scoped.',
    });
    Validations.of(role).acknowledge({
      id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:events:<AWS::Region>:<AWS::AccountId>:rule/<${Stack.of(this).getLogicalId(this.bus.node.defaultChild as events.CfnEventBus)}>/*]`,
      reason: 'events:ListTargetsByRule on the rules of the private replay bus only: the function checks that a replay rule with a target takes a dead letter before deleting it.',
    });
    Validations.of(this.replayFunction).acknowledge({
      id: 'Serverless-LambdaDLQ',
      reason: 'Invoked synchronously by an operator (RequestResponse); it reports every message it could not replay in its result, and those stay in the channel DLQ.',
    });
    Validations.of(this.replayFunction).acknowledge({
      id: 'Serverless-LambdaAsyncFailureDestination',
      reason: 'Invoked synchronously by an operator; there is no asynchronous invocation whose failure could be lost.',
    });
  }
}
