// The Runway realtime-session client: types and schemas of the contract, classified errors, the HTTP client.
export * from './types';
export * from './errors';
export { RunwayClient, type RunwayClientOptions, type RunwayEndpoint, type RunwayRequestInfo } from './client';
