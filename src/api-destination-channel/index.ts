export * from './api-destination-channel';
export * from './api-destination-channel-props';
export * from './channel-authorization';
