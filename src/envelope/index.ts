export * from './curated-envelope';
