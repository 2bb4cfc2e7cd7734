export * from './api-destination-channel';
export * from './envelope';
export * from './tiered-event-ingest';
