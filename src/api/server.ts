// The HTTP API (placeholder: health only until the service surface lands).
import Fastify from 'fastify';
import type { Logger } from 'pino';
import type { ServiceConfig } from '../config';

export interface ApiServerOptions {
  config: ServiceConfig;
  temporal?: { address: string; namespace: string };
  log: Logger;
  livekitPublicUrl: string;
  host?: string;
}

export async function startApiServer(opts: ApiServerOptions): Promise<{ url: string; close: () => Promise<void> }> {
  const app = Fastify({ loggerInstance: opts.log.child({ component: 'api' }), bodyLimit: 64 * 1024 });
  app.get('/healthz', async () => ({ ok: true }));
  const address = await app.listen({ port: opts.config.apiPort, host: opts.host ?? '127.0.0.1' });
  return { url: address, close: () => app.close() };
}
