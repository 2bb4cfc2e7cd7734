export * from './event-aggregator';
export * from './event-aggregator-props';
