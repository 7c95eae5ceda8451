// The HTTP API as its own process (`node --import tsx src/api/main.ts`), for deployments that run
// it apart from the workers (docker-compose.yml). It talks to Temporal only; it never calls Runway.
import { ConfigError, codecKeys, loadEnv, oldKeys } from '../config';
import { SessionsClient } from '../client/sessions';
import { createLogger } from '../log';
import { AesGcmPayloadCodec, encryptedDataConverter } from '../secrets/payload-codec';
import { connectClient } from '../temporal';
import { startApiServer } from './server';

async function main(): Promise<void> {
  const env = loadEnv();
  const missing = [
    !env.SESSION_API_TOKEN && 'SESSION_API_TOKEN (openssl rand -hex 32)',
    !env.SESSION_SECRETS_KEY && 'SESSION_SECRETS_KEY (the same key as the workers)',
    !env.LIVEKIT_URL && 'LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET (webhook signatures, join URL)',
  ].filter(Boolean);
  if (missing.length) throw new ConfigError(`missing configuration:\n${missing.map((m) => `  ${m}`).join('\n')}`);
  const keys = codecKeys({ secretsKey: Buffer.from(env.SESSION_SECRETS_KEY!, 'base64'), secretsOldKeys: oldKeys(env) });
  const log = createLogger({ level: env.LOG_LEVEL, name: 'api' });
  const client = await connectClient(undefined, encryptedDataConverter(keys));
  const api = await startApiServer({
    config: {
      apiToken: env.SESSION_API_TOKEN,
      apiPort: env.API_PORT,
      livekit: { url: env.LIVEKIT_URL!, publicUrl: env.LIVEKIT_PUBLIC_URL ?? env.LIVEKIT_URL!, apiKey: env.LIVEKIT_API_KEY!, apiSecret: env.LIVEKIT_API_SECRET! },
    },
    sessions: new SessionsClient(client),
    log,
    host: process.env.API_HOST ?? '0.0.0.0',
    codec: { codec: new AesGcmPayloadCodec(keys), allowedOrigins: env.CODEC_CORS_ORIGINS.split(',').map((o) => o.trim()), requireToken: true },
  });
  log.info({ url: api.url }, 'api started');
  const stop = async () => {
    await api.close();
    await client.connection.close();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
}

main().catch((err) => {
  // eslint-disable-next-line no-console
  console.error(err instanceof ConfigError ? err.message : err);
  process.exit(1);
});
