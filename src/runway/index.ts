export * from './types';
export * from './errors';
export { RunwayClient, type RunwayClientOptions } from './client';
