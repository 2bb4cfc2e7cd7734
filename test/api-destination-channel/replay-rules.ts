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
