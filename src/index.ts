export * from './api-destination-channel';
export * from './envelope';
export * from './event-aggregator';
export * from './tiered-event-ingest';
