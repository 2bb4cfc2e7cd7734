import { App, Aws, Annotations as CdkAnnotations, CfnCondition, CfnElement, Fn, Lazy, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as events from 'aws-cdk-lib/aws-events';
import { defaultChannel } from './fixtures';
import { ApiDestinationChannel, ApiDestinationChannelProps } from '../../src';
import {
  REPLAY_DETAIL_TYPE,
  REPLAY_EVENT_WITHOUT_DETAIL_PATH,
  REPLAY_ORIGINAL_EVENT_PATH,
  REPLAY_RULE_ARN_PATH,
  REPLAY_RULE_NAME_PATH,
  REPLAY_SOURCE,
  replayDetail,
} from '../../src/api-destination-channel/replay-contract';
import { DeliveryContext, RenderedRequest, RuleTargetInputConfig, evaluateJsonPath, renderInputTemplate, renderTarget } from '../support/input-transformer';

/*
 * A replay must send the remote API the same request as the first delivery: same body, same
 * headers (the idempotency key above all), same query string and path. Each test synthesizes
 * a real stack, reads the channel rule's target and the replay rule's target from the
 * template, resolves their deploy-time tokens to concrete values, and renders both with an
 * evaluator of AWS's documented input-transformer semantics (test/support/input-transformer.ts):
 * the channel target on the original event, the replay target on the replay event that
 * `replayDetail()` builds around it, as EventBridge delivers it on the replay bus.
 */

const ACCOUNT = '123456789012';
const REGION = 'us-east-1';

/**
 * The example Amazon EC2 event from "Input transform examples" on
 * https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-transform-target-input.html
 */
const EC2_EVENT: Record<string, unknown> = {
  'version': '0',
  'id': '7bf73129-1428-4cd3-a780-95db273d1602',
  'detail-type': 'EC2 Instance State-change Notification',
  'source': 'aws.ec2',
  'account': '123456789012',
  'time': '2015-11-11T21:29:54Z',
  'region': 'us-east-1',
  'resources': [
    'arn:aws:ec2:us-east-1:123456789012:instance/i-abcd1111',
  ],
  'detail': {
    'instance-id': 'i-0123456789',
    'state': 'RUNNING',
  },
};

/** When EventBridge received the original event, and (later) the replay event. */
const ORIGINAL_INGESTION_TIME = '2015-11-11T21:29:55Z';
const REPLAY_INGESTION_TIME = '2026-12-01T08:00:01Z';

/** A user's own RuleTargetInput returning an InputTransformer as AWS's examples write it. */
class RawTemplateInput extends events.RuleTargetInput {
  constructor(private readonly inputTemplate: string, private readonly inputPathsMap: Record<string, string>) {
    super();
  }

  public bind(_rule: events.IRule): events.RuleTargetInputProperties {
    return { inputTemplate: this.inputTemplate, inputPathsMap: this.inputPathsMap };
  }
}

/**
 * Concrete values for a synthesized template's tokens, as one deployment would give them:
 * the stack's env for pseudo parameters, and a fixed physical name per resource (the
 * template's `Name` where it sets one, else a CloudFormation-style generated name).
 * Only the intrinsics the channel's rules use are supported; any other one throws.
 */
class Deployment {
  constructor(private readonly template: any, private readonly stackName: string) {}

  public value(node: unknown): unknown {
    if (Array.isArray(node)) return node.map((v) => this.value(v));
    if (node === null || typeof node !== 'object') return node;
    const entries = Object.entries(node);
    if (entries.length === 1) {
      const [key, arg] = entries[0] as [string, any];
      if (key === 'Ref') return this.ref(arg);
      if (key === 'Fn::GetAtt') return this.getAtt(arg[0], arg[1]);
      if (key === 'Fn::Join') {
        const parts = this.value(arg[1]) as unknown[];
        if (parts.some((p) => typeof p !== 'string')) throw new Error(`Fn::Join of a non-string: ${JSON.stringify(arg)}`);
        return parts.join(arg[0]);
      }
    }
    const intrinsic = entries.find(([k]) => k.startsWith('Fn::') || k === 'Ref' || k === 'Condition');
    if (intrinsic) throw new Error(`No concrete value for ${JSON.stringify(node)}`);
    return Object.fromEntries(entries.map(([k, v]) => [k, this.value(v)]));
  }

  public ruleName(logicalId: string): string {
    return this.physicalName(logicalId);
  }

  public ruleArn(logicalId: string): string {
    const bus = this.busOf(logicalId);
    return `arn:aws:events:${REGION}:${ACCOUNT}:rule/${bus === 'default' ? '' : `${bus}/`}${this.ruleName(logicalId)}`;
  }

  private resource(logicalId: string): any {
    const resource = this.template.Resources?.[logicalId];
    if (!resource) throw new Error(`No resource ${logicalId} in the template`);
    return resource;
  }

  private physicalName(logicalId: string): string {
    const name = this.resource(logicalId).Properties?.Name;
    if (name !== undefined) return this.value(name) as string;
    return `${this.stackName}-${logicalId}`.slice(0, 51) + '-1A2B3C4D5E6F';
  }

  private busOf(ruleLogicalId: string): string {
    const bus = this.resource(ruleLogicalId).Properties?.EventBusName;
    return bus === undefined ? 'default' : this.value(bus) as string;
  }

  private ref(name: string): string {
    switch (name) {
      case 'AWS::Region': return REGION;
      case 'AWS::AccountId': return ACCOUNT;
      case 'AWS::Partition': return 'aws';
      case 'AWS::URLSuffix': return 'amazonaws.com';
      case 'AWS::StackName': return this.stackName;
    }
    if (this.resource(name).Type === 'AWS::Events::Rule') {
      // Ref of a rule on a custom bus is "bus-name|rule-name" (AWS::Events::Rule return values).
      const bus = this.busOf(name);
      return bus === 'default' ? this.ruleName(name) : `${bus}|${this.ruleName(name)}`;
    }
    return this.physicalName(name);
  }

  private getAtt(logicalId: string, attribute: string): string {
    if (attribute !== 'Arn') throw new Error(`No concrete value for ${logicalId}.${attribute}`);
    const type: string = this.resource(logicalId).Type;
    const name = this.physicalName(logicalId);
    switch (type) {
      case 'AWS::Events::Rule': return this.ruleArn(logicalId);
      case 'AWS::Events::EventBus': return `arn:aws:events:${REGION}:${ACCOUNT}:event-bus/${name}`;
      case 'AWS::Events::ApiDestination': return `arn:aws:events:${REGION}:${ACCOUNT}:api-destination/${name}/0f4a3e0c-0000-4000-8000-000000000001`;
      case 'AWS::IAM::Role': return `arn:aws:iam::${ACCOUNT}:role/${name}`;
      case 'AWS::SQS::Queue': return `arn:aws:sqs:${REGION}:${ACCOUNT}:${name}`;
      default: throw new Error(`No concrete ARN for a ${type}`);
    }
  }
}

interface SynthesizedChannel {
  readonly stack: Stack;
  readonly channel: ApiDestinationChannel;
  /** The channel rule's target and replay rule's target, as synthesized (tokens unresolved). */
  readonly rawOriginal: any;
  readonly rawReplay: any;
  /** The same targets with every token given its concrete value. */
  readonly original: RuleTargetInputConfig;
  readonly replay: RuleTargetInputConfig;
  readonly originalContext: DeliveryContext;
  readonly replayContext: DeliveryContext;
  /** The replay rule's pattern with concrete values. */
  readonly replayPattern: any;
  /** ARN of the channel rule: the RULE_ARN attribute of its dead letters. */
  readonly channelRuleArn: string;
}

function synthChannel(
  overrides: (stack: Stack) => Partial<ApiDestinationChannelProps> = () => ({}),
  beforeSynth: (channel: ApiDestinationChannel) => void = () => {},
): SynthesizedChannel {
  const stack = new Stack(new App(), 'ReplayTransformer', { env: { account: ACCOUNT, region: REGION } });
  const channel = defaultChannel(stack, overrides(stack));
  beforeSynth(channel);
  const template = Template.fromStack(stack).toJSON();
  const deployment = new Deployment(template, stack.stackName);
  const ruleId = stack.getLogicalId(channel.rule.node.defaultChild as CfnElement);
  const replayRuleId = stack.getLogicalId(channel.replayRule.node.defaultChild as CfnElement);
  const targetOf = (id: string) => {
    const targets = template.Resources[id].Properties.Targets;
    expect(targets).toHaveLength(1);
    return targets[0];
  };
  const concrete = (target: any): RuleTargetInputConfig => deployment.value({
    Input: target.Input,
    InputPath: target.InputPath,
    InputTransformer: target.InputTransformer,
    HttpParameters: target.HttpParameters,
  }) as RuleTargetInputConfig;
  const rawOriginal = targetOf(ruleId);
  const rawReplay = targetOf(replayRuleId);
  return {
    stack,
    channel,
    rawOriginal,
    rawReplay,
    original: concrete(rawOriginal),
    replay: concrete(rawReplay),
    originalContext: { ruleArn: deployment.ruleArn(ruleId), ruleName: deployment.ruleName(ruleId), ingestionTime: ORIGINAL_INGESTION_TIME },
    replayContext: { ruleArn: deployment.ruleArn(replayRuleId), ruleName: deployment.ruleName(replayRuleId), ingestionTime: REPLAY_INGESTION_TIME },
    replayPattern: deployment.value(template.Resources[replayRuleId].Properties.EventPattern),
    channelRuleArn: deployment.ruleArn(ruleId),
  };
}

/**
 * The replay event for a dead letter of `event`: the dead letter's body is the original
 * event's JSON and its RULE_ARN attribute the channel rule's ARN; the replay function puts
 * `replayDetail(RULE_ARN, body)` on the replay bus, and EventBridge delivers it with the
 * envelope fields of any event (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-events-structure.html).
 */
function replayEventFor(event: Record<string, unknown>, channelRuleArn: string): Record<string, unknown> {
  const deadLetterBody = JSON.stringify(event);
  return {
    'version': '0',
    'id': 'c5f1e2d3-8a4b-4c6d-9e0f-1a2b3c4d5e6f',
    'detail-type': REPLAY_DETAIL_TYPE,
    'source': REPLAY_SOURCE,
    'account': ACCOUNT,
    'time': '2026-12-01T08:00:00Z',
    'region': REGION,
    'resources': [],
    'detail': replayDetail(channelRuleArn, JSON.parse(deadLetterBody)),
  };
}

/** Renders the first delivery of `event` and the delivery of its replay. */
function deliverTwice(s: SynthesizedChannel, event: Record<string, unknown> = EC2_EVENT): { first: RenderedRequest; replay: RenderedRequest } {
  const replayEvent = replayEventFor(event, s.channelRuleArn);
  // The replay event reaches this channel's replay rule (and only the rule whose ARN it names).
  expect(s.replayPattern).toEqual({ 'source': [REPLAY_SOURCE], 'detail-type': [REPLAY_DETAIL_TYPE], 'detail': { ruleArn: [s.channelRuleArn] } });
  return {
    first: renderTarget(s.original, event, s.originalContext),
    replay: renderTarget(s.replay, replayEvent, s.replayContext),
  };
}

/** Asserts the replay sends exactly the first delivery's request, and returns that request. */
function expectSameRequest(s: SynthesizedChannel, event: Record<string, unknown> = EC2_EVENT): RenderedRequest {
  const { first, replay } = deliverTwice(s, event);
  expect(replay).toEqual(first);
  return first;
}

/** Literal (string) parts of a synthesized value, intrinsics' arguments included. */
function literalParts(node: unknown): string[] {
  if (typeof node === 'string') return [node];
  if (Array.isArray(node)) return node.flatMap(literalParts);
  if (node !== null && typeof node === 'object') return Object.values(node).flatMap(literalParts);
  return [];
}

/** The channel's bus (the fixture reuses a child named 'Bus'), for templates that reference it. */
function busOf(stack: Stack): events.IEventBus {
  return (stack.node.tryFindChild('Bus') as events.IEventBus | undefined) ?? new events.EventBus(stack, 'Bus');
}

const WITHOUT_DETAIL = (() => {
  const { detail: _detail, ...rest } = EC2_EVENT;
  return rest;
})();

describe('the evaluator reproduces the documented examples (eb-transform-target-input.html)', () => {
  const context: DeliveryContext = {
    ruleArn: 'arn:aws:events:us-east-2:123456789012:rule/example',
    ruleName: 'example',
    ingestionTime: '2015-11-11T21:29:55Z',
  };
  const paths = { timestamp: '$.time', instance: '$.detail.instance-id', state: '$.detail.state', resource: '$.resources[0]' };
  const render = (template: string, map: Record<string, string> = paths) => renderInputTemplate(template, map, EC2_EVENT, context);

  test.each([
    ['Simple string', '"instance <instance> is in <state>"', '"instance i-0123456789 is in RUNNING"'],
    ['String with escaped quotes', '"instance \\"<instance>\\" is in <state>"', '"instance \\"i-0123456789\\" is in RUNNING"'],
    ['Simple JSON', '{"instance" : <instance>, "state": <state>}', '{"instance" : "i-0123456789", "state": "RUNNING"}'],
    ['JSON with strings and variables',
      '{"instance" : <instance>, "state": "<state>", "instanceStatus": "instance \\"<instance>\\" is in <state>"}',
      '{"instance" : "i-0123456789", "state": "RUNNING", "instanceStatus": "instance \\"i-0123456789\\" is in RUNNING"}'],
    ['JSON with a mix of variables and static information',
      '{"instance" : <instance>, "state": [ 9, <state>, true ], "Transformed" : "Yes"}',
      '{"instance" : "i-0123456789", "state": [ 9, "RUNNING", true ], "Transformed" : "Yes"}'],
    ['Including reserved variables in a string', '"<aws.events.rule-name> triggered"', '"example triggered"'],
  ])('%s', (_name, template, expected) => {
    expect(render(template)).toBe(expected);
  });

  test('Including reserved variables in JSON: rule ARN and name, and <aws.events.event> without its detail', () => {
    const out = JSON.parse(render('{"instance" : <instance>, "state": <state>, "ruleArn" : <aws.events.rule-arn>, ' +
      '"ruleName" : <aws.events.rule-name>, "originalEvent" : <aws.events.event>, "full": <aws.events.event.json>}'));
    expect(out).toEqual({
      instance: 'i-0123456789',
      state: 'RUNNING',
      ruleArn: 'arn:aws:events:us-east-2:123456789012:rule/example',
      ruleName: 'example',
      originalEvent: WITHOUT_DETAIL,
      full: EC2_EVENT,
    });
  });

  test('Common issues: an object in a string loses its quotes; unquoted it stays JSON; a missing path renders nothing', () => {
    expect(render('"Detail is <detail>"', { detail: '$.detail' })).toBe('"Detail is {instance-id:i-0123456789,state:RUNNING}"');
    expect(render('{"detail": <detail>}', { detail: '$.detail' })).toBe('{"detail": {"instance-id":"i-0123456789","state":"RUNNING"}}');
    expect(render('{"a": "<missing>", "b": <resource>}', { missing: '$.detail.nothing', resource: '$.resources[0]' }))
      .toBe('{"a": "", "b": "arn:aws:ec2:us-east-1:123456789012:instance/i-abcd1111"}');
  });

  test('JSONPath subset: dashes, array indices, wildcards; other syntax is rejected', () => {
    expect(evaluateJsonPath(EC2_EVENT, '$.detail-type')).toEqual({ found: true, value: 'EC2 Instance State-change Notification' });
    expect(evaluateJsonPath(EC2_EVENT, '$.resources[0]')).toEqual({ found: true, value: 'arn:aws:ec2:us-east-1:123456789012:instance/i-abcd1111' });
    expect(evaluateJsonPath(EC2_EVENT, '$.detail.*')).toEqual({ found: true, value: ['i-0123456789', 'RUNNING'] });
    expect(evaluateJsonPath(EC2_EVENT, '$.resources[*]')).toEqual({ found: true, value: ['arn:aws:ec2:us-east-1:123456789012:instance/i-abcd1111'] });
    expect(evaluateJsonPath(EC2_EVENT, '$.resources[1]')).toEqual({ found: false });
    expect(() => evaluateJsonPath(EC2_EVENT, "$['detail']")).toThrow(/Unsupported JSONPath/);
    expect(() => evaluateJsonPath(EC2_EVENT, '$..state')).toThrow(/Unsupported JSONPath/);
  });

  test('a static Input is not a template: nothing in it is replaced', () => {
    expect(renderTarget({ Input: '"<aws.events.rule-name>"' }, EC2_EVENT, context).body).toBe('"<aws.events.rule-name>"');
  });
});

describe('a replay sends the first delivery\'s request', () => {
  test('default input ($.detail) and Idempotency-Key from $.id', () => {
    const request = expectSameRequest(synthChannel());
    expect(request).toEqual({
      body: '{"instance-id":"i-0123456789","state":"RUNNING"}',
      headers: { 'Idempotency-Key': '7bf73129-1428-4cd3-a780-95db273d1602' },
      queryString: {},
      pathParameters: [],
    });
  });

  test.each([
    ['$', JSON.stringify(EC2_EVENT)],
    ['$.detail.instance-id', '"i-0123456789"'],
    ['$.detail-type', '"EC2 Instance State-change Notification"'],
    ['$.resources[0]', '"arn:aws:ec2:us-east-1:123456789012:instance/i-abcd1111"'],
    ['$.detail.*', '["i-0123456789","RUNNING"]'],
  ])('fromEventPath(%s)', (path, body) => {
    const s = synthChannel(() => ({ input: events.RuleTargetInput.fromEventPath(path) }));
    expect(s.rawOriginal.InputPath).toBe(path);
    expect(expectSameRequest(s).body).toBe(body);
  });

  test('fromObject with nested paths, arrays, dashes, wildcards and a field inside a string', () => {
    const s = synthChannel(() => ({
      input: events.RuleTargetInput.fromObject({
        instance: events.EventField.fromPath('$.detail.instance-id'),
        type: events.EventField.detailType,
        nested: {
          state: events.EventField.fromPath('$.detail.state'),
          resources: [events.EventField.fromPath('$.resources[0]'), events.EventField.fromPath('$.resources'), 'static'],
          all: events.EventField.fromPath('$.detail.*'),
        },
        summary: `${events.EventField.source} in ${events.EventField.region} at ${events.EventField.time}`,
        detailInText: `detail ${events.EventField.fromPath('$.detail')}`,
      }),
    }));
    expect(JSON.parse(expectSameRequest(s).body)).toEqual({
      instance: 'i-0123456789',
      type: 'EC2 Instance State-change Notification',
      nested: {
        state: 'RUNNING',
        resources: ['arn:aws:ec2:us-east-1:123456789012:instance/i-abcd1111', ['arn:aws:ec2:us-east-1:123456789012:instance/i-abcd1111'], 'static'],
        all: ['i-0123456789', 'RUNNING'],
      },
      summary: 'aws.ec2 in us-east-1 at 2015-11-11T21:29:54Z',
      detailInText: 'detail {instance-id:i-0123456789,state:RUNNING}',
    });
  });

  test('fromObject with EventField.fromPath("$"): the whole original event', () => {
    const s = synthChannel(() => ({ input: events.RuleTargetInput.fromObject({ whole: events.EventField.fromPath('$'), id: events.EventField.eventId }) }));
    expect(JSON.parse(expectSameRequest(s).body)).toEqual({ whole: EC2_EVENT, id: EC2_EVENT.id });
  });

  test('fromText with fields', () => {
    const s = synthChannel(() => ({
      input: events.RuleTargetInput.fromText(`instance ${events.EventField.fromPath('$.detail.instance-id')} is in ${events.EventField.fromPath('$.detail.state')}`),
    }));
    expect(expectSameRequest(s).body).toBe('"instance i-0123456789 is in RUNNING"');
  });

  test('fromMultilineText with fields', () => {
    const s = synthChannel(() => ({
      input: events.RuleTargetInput.fromMultilineText(`instance ${events.EventField.fromPath('$.detail.instance-id')}\nstate ${events.EventField.fromPath('$.detail.state')}`),
    }));
    expect(expectSameRequest(s).body).toBe('"instance i-0123456789"\n"state RUNNING"');
  });

  test.each([
    ['fromText', () => events.RuleTargetInput.fromText('ping'), '"ping"'],
    ['fromObject', () => events.RuleTargetInput.fromObject({ ping: true, n: 1 }), '{"ping":true,"n":1}'],
  ])('static %s', (_name, input, body) => {
    const s = synthChannel(() => ({ input: input() }));
    expect(s.rawReplay.Input).toBe(s.rawOriginal.Input);
    expect(expectSameRequest(s).body).toBe(body);
  });

  test('static text with a deploy-time token: sent as it is, <aws.events.*> included', () => {
    const s = synthChannel((stack) => ({ input: events.RuleTargetInput.fromText(`bus ${busOf(stack).eventBusName} <aws.events.rule-name>`) }));
    expect(s.rawOriginal.Input).toEqual({ 'Fn::Join': expect.any(Array) });
    expect(expectSameRequest(s).body).toMatch(/^"bus ReplayTransformer\S+ <aws\.events\.rule-name>"$/);
  });

  test('an input that binds to nothing: the whole event, the original one on replay', () => {
    class WholeEvent extends events.RuleTargetInput {
      constructor() {
        super();
      }
      public bind(_rule: events.IRule): events.RuleTargetInputProperties {
        return {};
      }
    }
    const s = synthChannel(() => ({ input: new WholeEvent() }));
    expect(s.original.InputPath ?? s.original.Input ?? s.original.InputTransformer).toBeUndefined();
    expect(expectSameRequest(s).body).toBe(JSON.stringify(EC2_EVENT));
  });

  test('header, query-string and path parameters: JSONPaths (dashes, indices) and static values', () => {
    const s = synthChannel(() => ({
      endpoint: 'https://crm.example.com/instances/*/states/*',
      headerParameters: { 'x-region': '$.region', 'x-detail-type': '$.detail-type', 'x-static': 'cdk-event-fabric' },
      queryStringParameters: { instance: '$.detail.instance-id', resource: '$.resources[0]', version: 'v1' },
      pathParameterValues: ['$.detail.instance-id', '$.detail.state'],
    }));
    expect(expectSameRequest(s)).toEqual({
      body: '{"instance-id":"i-0123456789","state":"RUNNING"}',
      headers: {
        'x-region': 'us-east-1',
        'x-detail-type': 'EC2 Instance State-change Notification',
        'x-static': 'cdk-event-fabric',
        'Idempotency-Key': '7bf73129-1428-4cd3-a780-95db273d1602',
      },
      queryString: { instance: 'i-0123456789', resource: 'arn:aws:ec2:us-east-1:123456789012:instance/i-abcd1111', version: 'v1' },
      pathParameters: ['i-0123456789', 'RUNNING'],
    });
  });
});

describe('parameters and event paths given as tokens (EventField) are re-aimed on replay', () => {
  // `EventField.fromPath(...)`, `EventField.eventId` etc. are tokens when the construct sees
  // them, and resolve to their JSONPath at synth. Kept as they are, they would name the replay
  // event's own fields on replay (its detail is the wrapper), not the original event's.

  test('a header from EventField.fromPath is sent on replay too; static and deploy-time headers are unchanged', () => {
    const s = synthChannel((stack) => ({
      headerParameters: {
        'x-instance': events.EventField.fromPath('$.detail.instance-id'),
        'x-static': 'cdk-event-fabric',
        'x-bus': busOf(stack).eventBusName,
      },
    }));
    const request = expectSameRequest(s);
    expect(request.headers).toEqual({
      'x-instance': 'i-0123456789',
      'x-static': 'cdk-event-fabric',
      'x-bus': expect.stringMatching(/^ReplayTransformer/),
      'Idempotency-Key': EC2_EVENT.id,
    });
    // The deploy-time value (a Ref) is the same on the replay rule's target.
    expect(s.rawReplay.HttpParameters.HeaderParameters['x-bus']).toEqual(s.rawOriginal.HttpParameters.HeaderParameters['x-bus']);
    expect(s.rawReplay.HttpParameters.HeaderParameters['x-bus']).toEqual({ Ref: s.stack.getLogicalId(busOf(s.stack).node.defaultChild as CfnElement) });
  });

  test('a custom idempotency header from EventField.eventId carries the ORIGINAL event id on replay', () => {
    const s = synthChannel(() => ({ idempotencyKey: false, headerParameters: { 'x-request-id': events.EventField.eventId } }));
    expect(expectSameRequest(s).headers).toEqual({ 'x-request-id': EC2_EVENT.id });
  });

  test('a query-string parameter from EventField.fromPath is sent on replay too', () => {
    const s = synthChannel(() => ({ queryStringParameters: { state: events.EventField.fromPath('$.detail.state'), version: 'v1' } }));
    expect(expectSameRequest(s).queryString).toEqual({ state: 'RUNNING', version: 'v1' });
  });

  test.each([
    ['EventField.fromPath values', () => [events.EventField.fromPath('$.detail.instance-id'), 'static']],
    ['a lazy list', () => Lazy.list({ produce: () => [events.EventField.fromPath('$.detail.instance-id'), 'static'] })],
  ])('path parameters from %s build the same URL on replay', (_name, values) => {
    const s = synthChannel(() => ({ endpoint: 'https://crm.example.com/instances/*/kinds/*', pathParameterValues: values() }));
    expect(expectSameRequest(s).pathParameters).toEqual(['i-0123456789', 'static']);
  });

  test('an input from RuleTargetInput.fromEventPath(EventField.fromPath(...)) sends the same body on replay', () => {
    const s = synthChannel(() => ({ input: events.RuleTargetInput.fromEventPath(events.EventField.fromPath('$.detail')) }));
    expect(expectSameRequest(s).body).toBe('{"instance-id":"i-0123456789","state":"RUNNING"}');
  });

  test('a JSONPath completed by a deploy-time value (Fn::Join) is re-aimed by its literal start', () => {
    const event = { ...EC2_EVENT, detail: { ...(EC2_EVENT.detail as object), [REGION]: 'east' } };
    const s = synthChannel(() => ({ headerParameters: { 'x-by-region': `${events.EventField.fromPath('$.detail')}.${Aws.REGION}` } }));
    expect(s.rawReplay.HttpParameters.HeaderParameters['x-by-region']).toEqual({ 'Fn::Join': ['', [`${REPLAY_ORIGINAL_EVENT_PATH}.detail.`, { Ref: 'AWS::Region' }]] });
    expect(expectSameRequest(s, event).headers['x-by-region']).toBe('east');
  });

  test.each([
    ['"$" followed by a deploy-time value', () => `$${Aws.REGION}`, /starts with "\$" followed by a deploy-time value/],
    ['a condition with a JSONPath branch', (stack: Stack) => {
      new CfnCondition(stack, 'InEast', { expression: Fn.conditionEquals(Aws.REGION, 'us-east-1') });
      return Fn.conditionIf('InEast', '$.detail.state', 'none').toString();
    }, /\{"Fn::If":\["InEast","\$\.detail\.state","none"\]\} is a deploy-time value holding text that starts with "\$"/],
  ])('a value whose JSONPath cannot be re-aimed fails synth: %s', (_name, value, reason) => {
    expect(() => synthChannel((stack) => ({ headerParameters: { 'x-state': value(stack) } })))
      .toThrow(new RegExp(`ReplayRule\\] invalid headerParameters\\['x-state'\\]: .*${reason.source}.*allowed: `, 's'));
  });
});

describe('predefined variables on replay render the original event and rule', () => {
  test('<aws.events.event> renders the original event WITHOUT its detail (AWS\'s documented template)', () => {
    const s = synthChannel(() => ({
      input: new RawTemplateInput(
        '{"instance" : <instance>, "state": <state>, "ruleArn" : <aws.events.rule-arn>, "ruleName" : <aws.events.rule-name>, "originalEvent" : <aws.events.event>}',
        { instance: '$.detail.instance-id', state: '$.detail.state' }),
    }));
    expect(JSON.parse(expectSameRequest(s).body)).toEqual({
      instance: 'i-0123456789',
      state: 'RUNNING',
      ruleArn: s.channelRuleArn,
      ruleName: s.originalContext.ruleName,
      originalEvent: WITHOUT_DETAIL,
    });
    expect(s.rawReplay.InputTransformer.InputPathsMap).toEqual({
      instance: '$.detail.event.detail.instance-id',
      state: '$.detail.event.detail.state',
      cef_original_event_without_detail: REPLAY_EVENT_WITHOUT_DETAIL_PATH,
      cef_original_rule_arn: REPLAY_RULE_ARN_PATH,
      cef_original_rule_name: REPLAY_RULE_NAME_PATH,
    });
  });

  test('<aws.events.event> inside a string (CDK\'s fromMultilineText quotes its lines): re-aimed, and a synth warning', () => {
    // AWS documents the whole-event variables only as the value of a JSON field, "not inline in
    // other strings", so what the first delivery sends is unknown and equality cannot be shown.
    const s = synthChannel(() => ({
      input: events.RuleTargetInput.fromMultilineText(`{"id": "${events.EventField.eventId}", "original": <aws.events.event>}`),
    }));
    expect(() => deliverTwice(s)).toThrow(/only be used as the value of a JSON field/);
    expect(s.rawReplay.InputTransformer.InputPathsMap).toEqual({
      id: '$.detail.event.id',
      cef_original_event_without_detail: REPLAY_EVENT_WITHOUT_DETAIL_PATH,
    });
    expect(s.rawReplay.InputTransformer.InputTemplate).toBe(
      s.rawOriginal.InputTransformer.InputTemplate.replace('<aws.events.event>', '<cef_original_event_without_detail>'));
    const warnings = Annotations.fromStack(s.stack).findWarning('*', Match.stringLikeRegexp('<aws\\.events\\.event> inside a JSON string'));
    expect(warnings.map((w) => w.id)).toEqual([`/${s.stack.stackName}/Channel/ReplayRule`]);
  });

  test('<aws.events.event.json> renders the whole original event', () => {
    const s = synthChannel(() => ({ input: new RawTemplateInput('{"event": <aws.events.event.json>}', {}) }));
    expect(JSON.parse(expectSameRequest(s).body)).toEqual({ event: EC2_EVENT });
    expect(s.rawReplay.InputTransformer.InputPathsMap).toEqual({ cef_original_event: REPLAY_ORIGINAL_EVENT_PATH });
  });

  test('<aws.events.rule-arn> and <aws.events.rule-name> in fromObject render the channel rule, not the replay rule', () => {
    const s = synthChannel(() => ({
      input: events.RuleTargetInput.fromObject({ id: events.EventField.eventId, rule: '<aws.events.rule-name>', arn: 'rule <aws.events.rule-arn>' }),
    }));
    expect(JSON.parse(expectSameRequest(s).body)).toEqual({ id: EC2_EVENT.id, rule: s.originalContext.ruleName, arn: `rule ${s.channelRuleArn}` });
  });

  test('our variables never take a user\'s variable name, nor text the template already holds', () => {
    const s = synthChannel(() => ({
      input: new RawTemplateInput(
        '{"mine": <cef_original_event>, "event": <aws.events.event.json>, "text": "<cef_original_rule_name> <aws.events.rule-name>"}',
        { cef_original_event: '$.detail.state' }),
    }));
    expect(JSON.parse(expectSameRequest(s).body)).toEqual({
      mine: 'RUNNING',
      event: EC2_EVENT,
      text: `<cef_original_rule_name> ${s.originalContext.ruleName}`,
    });
  });

  test('more than 100 input-path variables once ours are added fails synth, naming the limit', () => {
    const fields = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, events.EventField.fromPath(`$.detail.k${i}`)]));
    const withPredefined = (n: number) => events.RuleTargetInput.fromObject({ ...fields(n), e: '<aws.events.event.json>', r: '<aws.events.rule-name>' });
    const ok = synthChannel(() => ({ input: withPredefined(98) }));
    expect(Object.keys(ok.rawReplay.InputTransformer.InputPathsMap)).toHaveLength(100);
    expect(() => synthChannel(() => ({ input: withPredefined(99) })))
      .toThrow(/ReplayRule\] invalid input: 99 input-path variables.*2 more.*<aws\.events\.event\.json>, <aws\.events\.rule-name>.*limit of 100.*allowed: at most 98/s);
  });
});

describe('templates holding a deploy-time token (Fn::Join)', () => {
  test('fromObject({ bus: bus.eventBusName, whole: EventField.fromPath("$") })', () => {
    const s = synthChannel((stack) => ({ input: events.RuleTargetInput.fromObject({ bus: busOf(stack).eventBusName, whole: events.EventField.fromPath('$') }) }));
    expect(s.rawOriginal.InputTransformer.InputTemplate).toEqual({ 'Fn::Join': expect.any(Array) });
    const body = JSON.parse(expectSameRequest(s).body);
    expect(body.whole).toEqual(EC2_EVENT);
    expect(body.bus).toMatch(/^ReplayTransformer/);
  });

  test('fromText with a token, a field and <aws.events.rule-name>', () => {
    const s = synthChannel((stack) => ({
      input: events.RuleTargetInput.fromText(`${events.EventField.fromPath('$.detail.instance-id')} on ${busOf(stack).eventBusName} via <aws.events.rule-name>`),
    }));
    expect(s.rawOriginal.InputTransformer.InputTemplate).toEqual({ 'Fn::Join': expect.any(Array) });
    expect(expectSameRequest(s).body).toMatch(new RegExp(`^"i-0123456789 on ReplayTransformer\\S+ via ${s.originalContext.ruleName}"$`));
    // Honest rewrite: the replay template keeps the token (the same Ref) and no literal part names a predefined variable.
    const replayTemplate = s.rawReplay.InputTransformer.InputTemplate;
    expect(JSON.stringify(replayTemplate)).toContain(JSON.stringify({ Ref: s.stack.getLogicalId(busOf(s.stack).node.defaultChild as CfnElement) }));
    expect(literalParts(replayTemplate).join('')).not.toContain('<aws.events.');
  });

  test('a JSON template with a token, a field, <aws.events.event> and <aws.events.event.json>', () => {
    const s = synthChannel((stack) => ({
      input: new RawTemplateInput(
        `{"bus": "${busOf(stack).eventBusName}", "id": <id>, "original": <aws.events.event>, "event": <aws.events.event.json>}`, { id: '$.id' }),
    }));
    expect(s.rawOriginal.InputTransformer.InputTemplate).toEqual({ 'Fn::Join': expect.any(Array) });
    const body = JSON.parse(expectSameRequest(s).body);
    expect(body).toEqual({ bus: expect.stringMatching(/^ReplayTransformer/), id: EC2_EVENT.id, original: WITHOUT_DETAIL, event: EC2_EVENT });
    expect(literalParts(s.rawReplay.InputTransformer.InputTemplate).join('')).not.toContain('<aws.events.');
    expect(Annotations.fromStack(s.stack).findWarning('*', Match.anyValue())).toEqual([]);
  });
});

describe('<aws.events.event.ingestion-time> cannot be replayed', () => {
  const WARNING = /<aws\.events\.event\.ingestion-time>.*replay.*ingestion time/s;

  test('a synth warning on the replay rule, and a replay renders the replay\'s ingestion time', () => {
    const s = synthChannel(() => ({
      input: events.RuleTargetInput.fromObject({ id: events.EventField.eventId, receivedAt: '<aws.events.event.ingestion-time>' }),
    }));
    const warnings = Annotations.fromStack(s.stack).findWarning('*', Match.stringLikeRegexp(WARNING.source));
    expect(warnings.map((w) => w.id)).toEqual([`/${s.stack.stackName}/Channel/ReplayRule`]);
    const { first, replay } = deliverTwice(s);
    expect(JSON.parse(first.body)).toEqual({ id: EC2_EVENT.id, receivedAt: ORIGINAL_INGESTION_TIME });
    expect(JSON.parse(replay.body)).toEqual({ id: EC2_EVENT.id, receivedAt: REPLAY_INGESTION_TIME });
    expect(replay.headers).toEqual(first.headers);
  });

  test('the warning can be acknowledged on the replay rule', () => {
    const s = synthChannel(
      () => ({ input: events.RuleTargetInput.fromObject({ receivedAt: '<aws.events.event.ingestion-time>' }) }),
      (channel) => CdkAnnotations.of(channel.replayRule).acknowledgeWarning('cdk-event-fabric:replayIngestionTime', 'The API only logs it'),
    );
    expect(Annotations.fromStack(s.stack).findWarning('*', Match.anyValue())).toEqual([]);
  });

  test('no warning when the template does not use it', () => {
    const s = synthChannel(() => ({ input: events.RuleTargetInput.fromObject({ id: events.EventField.eventId, at: events.EventField.time }) }));
    expect(Annotations.fromStack(s.stack).findWarning('*', Match.stringLikeRegexp(WARNING.source))).toEqual([]);
    expectSameRequest(s);
  });
});
