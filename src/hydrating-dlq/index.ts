export * from './hydrating-dlq';
export * from './hydrating-dlq-props';
export * from './pipe-target';
