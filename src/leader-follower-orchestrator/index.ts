export * from './leader-follower-orchestrator';
export * from './leader-follower-orchestrator-props';
