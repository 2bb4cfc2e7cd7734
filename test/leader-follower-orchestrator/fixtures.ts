import { Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as cloudwatchActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import { LeaderFollowerOrchestrator, LeaderFollowerOrchestratorProps } from '../../src';

/**
 * A follower function as a user would write it: inline code, active tracing, its own log
 * group; the orchestrator adds the async configuration.
 */
export function followerFunction(scope: Construct, id: string): lambda.Function {
  const logGroup = new logs.LogGroup(scope, `${id}Logs`, { retention: logs.RetentionDays.ONE_MONTH, removalPolicy: RemovalPolicy.DESTROY });
  const role = new iam.Role(scope, `${id}Role`, { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
  logGroup.grantWrite(role);
  const fn = new lambda.Function(scope, id, {
    runtime: lambda.Runtime.NODEJS_24_X,
    handler: 'index.handler',
    code: lambda.Code.fromInline('exports.handler = async (r) => ({ event: r.event });'),
    role,
    memorySize: 256,
    timeout: Duration.seconds(10),
    tracing: lambda.Tracing.ACTIVE,
    logGroup,
  });
  Validations.of(role).acknowledge({ id: 'AwsSolutions-IAM5[Resource::*]', reason: 'Test fixture: X-Ray actions only support "*".' });
  return fn;
}

/** The default configuration: nothing but the construct. */
export function defaultOrchestrator(stack: Stack, overrides: Partial<LeaderFollowerOrchestratorProps> = {}, id = 'Orchestrator'): LeaderFollowerOrchestrator {
  return new LeaderFollowerOrchestrator(stack, id, overrides);
}

/**
 * Every option set: a customer key, an existing curated bus, three followers (one added by
 * props, one by addFollower, one through an alias), two routes (props and addRoute), a source,
 * tuning and alarm actions to an SNS topic.
 */
export function fullestOrchestrator(stack: Stack): LeaderFollowerOrchestrator {
  const key = new kms.Key(stack, 'OrchestratorKey', { enableKeyRotation: true });
  const topic = new sns.Topic(stack, 'Alarms', { enforceSSL: true, masterKey: key });
  const curated = new events.EventBus(stack, 'CuratedBus');
  const enrich = followerFunction(stack, 'Enrich');
  const render = followerFunction(stack, 'Render');
  const deliver = followerFunction(stack, 'Deliver');
  const alias = new lambda.Alias(stack, 'DeliverLive', { aliasName: 'live', version: deliver.currentVersion });
  const orchestrator = new LeaderFollowerOrchestrator(stack, 'FullOrchestrator', {
    curatedBus: curated,
    followers: [{ name: 'enrich', function: enrich }],
    routes: [{ channel: 'email', followers: ['enrich', 'render', 'deliver'], description: 'Email: enrich, render, deliver' }],
    maxHops: 6,
    routeCacheTtl: Duration.seconds(30),
    maxEventBytes: 400_000,
    followerRetryAttempts: 1,
    followerMaxEventAge: Duration.hours(1),
    progressTtl: Duration.days(3),
    encryptionKey: key,
    alarmActions: [new cloudwatchActions.SnsAction(topic)],
    removalPolicy: RemovalPolicy.DESTROY,
  });
  orchestrator.addFollower('render', render);
  orchestrator.addFollower('deliver', alias);
  orchestrator.addRoute('sms', ['enrich', 'deliver']);
  orchestrator.addSource('Curated', { eventBus: curated });
  return orchestrator;
}
