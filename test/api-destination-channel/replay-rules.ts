import { EventBridgeClient, PutRuleCommand, PutTargetsCommand } from '@aws-sdk/client-eventbridge';
import { REPLAY_DETAIL_TYPE, REPLAY_SOURCE } from '../../src/api-destination-channel/replay-contract';
import { uniqueName } from '../support/moto';

/**
 * A channel's rule on the replay bus, as the construct writes it (the pattern matches only
 * replays of `channelRuleArn`), delivering to `targetArn` (a capture queue standing in for the
 * API destination). Returns the replay rule's name.
 */
export async function putReplayRule(eventBridge: EventBridgeClient, replayBusName: string, channelRuleArn: string,
  targetArn: string): Promise<string> {
  const name = uniqueName('replay-rule');
  await eventBridge.send(new PutRuleCommand({
    Name: name,
    EventBusName: replayBusName,
    EventPattern: JSON.stringify({ 'source': [REPLAY_SOURCE], 'detail-type': [REPLAY_DETAIL_TYPE], 'detail': { ruleArn: [channelRuleArn] } }),
  }));
  await eventBridge.send(new PutTargetsCommand({ Rule: name, EventBusName: replayBusName, Targets: [{ Id: 'api', Arn: targetArn }] }));
  return name;
}

/** An event as EventBridge writes it into a dead-letter queue (the body of a dead letter). */
export function originalEvent(id: string, detail: unknown = { orderId: id, total: 42 }): Record<string, unknown> {
  return {
    'version': '0',
    'id': id,
    'detail-type': 'Order Placed',
    'source': 'shop.orders',
    'account': '111111111111',
    'time': '2026-03-01T12:00:00Z',
    'region': 'us-east-1',
    'resources': [],
    'detail': detail,
  };
}

/** The replay event the handler puts for `event`, as EventBridge would deliver it (and park it again). */
export function replayEvent(ruleArn: string, event: Record<string, unknown>): Record<string, unknown> {
  return {
    'version': '0',
    'id': `replay-of-${String(event.id)}`,
    'detail-type': REPLAY_DETAIL_TYPE,
    'source': REPLAY_SOURCE,
    'account': '111111111111',
    'time': '2026-03-02T12:00:00Z',
    'region': 'us-east-1',
    'resources': [],
    'detail': { ruleArn, event },
  };
}
