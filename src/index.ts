export * from './api-destination-channel';
export * from './envelope';
export * from './event-aggregator';
export * from './hydrating-dlq';
export * from './leader-follower-orchestrator';
export * from './tiered-event-ingest';
