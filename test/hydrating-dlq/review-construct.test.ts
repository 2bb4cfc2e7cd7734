/**
 * Defects a hostile review found in the HydratingDlq construct (the replay path's settings, names and IAM); each test failed before its fix.
 */
import { App, Duration, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as events from 'aws-cdk-lib/aws-events';
import { defaultHydratingDlq } from './construct-fixtures';
import { HydratingDlq, PipeTarget } from '../../src';

function newStack(app = new App()): Stack {
  return new Stack(app, 'Test', { env: { account: '111111111111', region: 'eu-west-1' } });
}

const resourceOf = (template: Template, type: string, idPrefix: string) =>
  Object.entries<any>(template.findResources(type)).find(([id]) => id.startsWith(idPrefix))![1];

describe('HydratingDlq construct: defects found by a hostile review', () => {
  test('the replay pipe never keeps retrying a record past the replay stream\'s retention (maximumRecordAge < its retention)', () => {
    // DEFECT (records silently missing): validate() only checks maximumRecordAge against the SOURCE stream's
    // retention, but the replay pipe is created with the same maximumRecordAge on a replay stream whose retention
    // is hard-coded to 24 hours. With streamRetention 3 days and maximumRecordAge 2 days (both accepted), a
    // replayed record the target refuses is retried for up to 2 days on a stream that trims it after 1 day: the
    // record is gone before it is dead-lettered, the hydrator then finds nothing (unrecoverable), and its original
    // object is already tagged `replayed`, so no later replay sends it. The one guard the construct applies to the
    // pipe (record age shorter than retention) is violated by its own replay pipe.
    const stack = newStack();
    defaultHydratingDlq(stack, { streamRetention: Duration.days(3), maximumRecordAge: Duration.days(2) });
    const template = Template.fromStack(stack);
    const replayStream = resourceOf(template, 'AWS::Kinesis::Stream', 'OrdersReplayStream');
    const replayPipe = resourceOf(template, 'AWS::Pipes::Pipe', 'OrdersReplayPipe');
    expect(replayPipe.Properties.SourceParameters.KinesisStreamParameters.MaximumRecordAgeInSeconds)
      .toBeLessThan(replayStream.Properties.RetentionPeriodHours * 3600);
  });

  test('the hydration deadline alarm warns before a replay pipe\'s dead-lettered records leave the replay stream', () => {
    // DEFECT (silent loss, alarm too late): the deadline alarm's threshold is derived from the SOURCE stream's
    // retention ((retention - maximumRecordAge) / 2), but the same dead-letter queue also receives the replay
    // pipe's failed batches, whose records live 24 hours only. With streamRetention 7 days the alarm fires after
    // ~3.5 days: a replay pipe's dead-letter message that waits (hydrator failing, throttled) loses its records
    // after 24 hours with no alarm until days later.
    const stack = newStack();
    defaultHydratingDlq(stack, { streamRetention: Duration.days(7) });
    const template = Template.fromStack(stack);
    const replayStream = resourceOf(template, 'AWS::Kinesis::Stream', 'OrdersReplayStream');
    const replayRetentionSeconds = replayStream.Properties.RetentionPeriodHours * 3600;
    const threshold = resourceOf(template, 'AWS::CloudWatch::Alarm', 'OrdersHydrationDeadlineAlarm').Properties.Threshold;
    // Halfway to the earliest trim of a replay pipe's dead-lettered record (maximumRecordAge 1 hour by default).
    expect(threshold).toBeLessThanOrEqual((replayRetentionSeconds - 3600) / 2);
  });

  test('pipe names that would give two pipes one name are refused: over 57 characters, or ending in -replay', () => {
    // Found by a hostile review: replayPipeName was pipeName.slice(0, 57) + '-replay', so names of 58 to 64 characters
    // sharing their first 57, or a pipe named `orders` beside one named `orders-replay`, gave two pipes one name.
    const stack = newStack();
    const bus = new events.EventBus(stack, 'Bus');
    const longest = 'x'.repeat(57);
    const a = new HydratingDlq(stack, 'A', { target: PipeTarget.eventBus(bus), pipeName: longest });
    expect(a.replayPipeName).toBe(`${longest}-replay`);
    expect(a.replayPipeName).toHaveLength(64);
    expect(() => new HydratingDlq(stack, 'B', { target: PipeTarget.eventBus(bus), pipeName: `${longest}x` }))
      .toThrow(`Test/B: invalid pipeName "${longest}x"; allowed: 1 to 57 characters of A-Z a-z 0-9 . _ -, not ending in "-replay"`);
    expect(() => new HydratingDlq(stack, 'D', { target: PipeTarget.eventBus(bus), pipeName: 'orders-replay' }))
      .toThrow('Test/D: invalid pipeName "orders-replay"; allowed: 1 to 57 characters');
    // A generated name leaves room for the suffix too.
    const generated = new HydratingDlq(stack, 'WithAVeryLongConstructIdThatWouldMakeTheGeneratedPipeNameLongerThanTheLimit', { target: PipeTarget.eventBus(bus) });
    expect(generated.replayPipeName.length).toBeLessThanOrEqual(64);
  });

  test('an objectPrefix holding an IAM wildcard does not widen the hydrator\'s and replayer\'s grants beyond the prefix', () => {
    // DEFECT (IAM broader than needed): objectPrefix is checked only for whitespace and a trailing "/", so
    // `hydrated*/` or `h?/` is accepted and pasted raw into `arn:...:bucket/<prefix>*` and the s3:prefix
    // StringLike condition, where * and ? are IAM wildcards: the hydrator may then PutObject, and the replayer
    // Get/Tag/List, any key matching the pattern (other data in a shared, user-given bucket), not just the prefix.
    // Either refuse such a prefix, or escape the characters (IAM's ${*} and ${?}).
    const build = () => {
      const stack = newStack();
      defaultHydratingDlq(stack, { objectPrefix: 'hydrated*/' });
      return Template.fromStack(stack);
    };
    expect(build).toThrow('Test/Orders: invalid objectPrefix "hydrated*/"; allowed: empty, or up to 100 characters of A-Z a-z 0-9 ! _ . \' ( ) -');
  });

  test('a dead-letter message lives long enough for the hydrator\'s retries (retention >= receives x visibility timeout)', () => {
    // DEFECT (records silently lost; validation gap): deadLetterQueueRetention is accepted from 60 seconds, while the
    // queue's visibility timeout is 6 x hydratorTimeout (30 minutes by default) and a message gets 3 receives before
    // it moves to the hydrator's DLQ. With a retention of e.g. 10 minutes, a message whose first hydration fails
    // (throttling, a KMS or S3 error) becomes visible again only after 30 minutes: SQS has deleted it by then. It
    // never reaches the hydrator's DLQ, so that queue's alarm stays silent and nothing records which batch was lost.
    expect(() => defaultHydratingDlq(newStack(), { deadLetterQueueRetention: Duration.minutes(10) }))
      .toThrow('Test/Orders: invalid deadLetterQueueRetention 600; allowed: an integer from 7200 to 1209600 seconds (at least 4 visibility timeouts');
    // With a shorter hydrator timeout, a shorter retention is enough.
    const stack = newStack();
    defaultHydratingDlq(stack, { hydratorTimeout: Duration.minutes(1), deadLetterQueueRetention: Duration.hours(1) });
    const queue = resourceOf(Template.fromStack(stack), 'AWS::SQS::Queue', 'OrdersDeadLetterQueue');
    expect(queue.Properties).toMatchObject({ MessageRetentionPeriod: 3600, VisibilityTimeout: 360 });
  });

  test('the hydrator and the replayer hold only the Kinesis actions they call', () => {
    // LEAST PRIVILEGE (low severity): the hydrator calls GetShardIterator and GetRecords only, but stream.grantRead()
    // gives it (on the source AND the replay stream) SubscribeToShard, DescribeStreamConsumer, ListStreams,
    // DescribeStream, ListShards and DescribeStreamSummary too; the replayer calls PutRecords only but is also
    // granted PutRecord.
    const stack = newStack();
    defaultHydratingDlq(stack);
    const template = Template.fromStack(stack);
    const kinesisActions = (rolePrefix: string) => [...new Set(Object.values<any>(template.findResources('AWS::IAM::Policy'))
      .filter((p) => p.Properties.Roles.some((r: any) => r.Ref.startsWith(rolePrefix)))
      .flatMap((p) => p.Properties.PolicyDocument.Statement)
      .flatMap((st) => [st.Action].flat())
      .filter((a: string) => a.startsWith('kinesis:')))].sort();
    expect(kinesisActions('OrdersHydratorFunctionRole')).toEqual(['kinesis:GetRecords', 'kinesis:GetShardIterator']);
    expect(kinesisActions('OrdersReplayerFunctionRole')).toEqual(['kinesis:PutRecords']);
  });
  test('one replay at a time: the replayer\'s reserved concurrency is 1 (a CLI that retries a long invoke starts no second run)', () => {
    // Found by a second hostile review: the AWS CLI retries an invoke after its 60 s read timeout, and two concurrent
    // replays of one request sent every record twice.
    const stack = newStack();
    defaultHydratingDlq(stack);
    const replayer = resourceOf(Template.fromStack(stack), 'AWS::Lambda::Function', 'OrdersReplayerFunction');
    expect(replayer.Properties.ReservedConcurrentExecutions).toBe(1);
  });
});
