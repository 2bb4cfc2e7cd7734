export * from './api-destination-channel';
