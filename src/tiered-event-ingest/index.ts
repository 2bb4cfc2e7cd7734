export * from './tiered-event-ingest';
export * from './tiered-event-ingest-props';
