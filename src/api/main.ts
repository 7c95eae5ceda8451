// The HTTP API as its own process (`node --import tsx src/api/main.ts`), for deployments that run
// it apart from the workers (docker-compose.yml). It talks to Temporal only; it never calls Runway
// (and is not given the Runway key). No demo page, no viewer tokens; the codec endpoint only with
// SESSION_CODEC_TOKEN; metrics on API_METRICS_PORT, not on the API's port.
import { ConfigError, codecKeys, loadEnv, oldKeys } from '../config';
import { SessionsClient } from '../client/sessions';
import { createLogger } from '../log';
import { AesGcmPayloadCodec, encryptedDataConverter } from '../secrets/payload-codec';
import { connectClient } from '../temporal';
import { startApiServer } from './server';
import { startTracing, tracingSettings } from '../tracing';

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
  const tracing = await startTracing(tracingSettings(env), { serviceName: 'avatar-sessions-api', log });
  const client = await connectClient(undefined, encryptedDataConverter(keys, { allowPlaintext: env.SESSION_ALLOW_PLAINTEXT_PAYLOADS }), tracing);
  const host = process.env.API_HOST ?? '0.0.0.0';
  if (!env.SESSION_CODEC_TOKEN) log.info('SESSION_CODEC_TOKEN is not set: no /codec endpoint (operators decrypt history with it)');
  const api = await startApiServer({
    config: {
      apiToken: env.SESSION_API_TOKEN,
      apiPort: env.API_PORT,
      livekit: {
        url: env.LIVEKIT_URL!,
        publicUrl: env.LIVEKIT_PUBLIC_URL ?? env.LIVEKIT_URL!,
        apiKey: env.LIVEKIT_API_KEY!,
        apiSecret: env.LIVEKIT_API_SECRET!,
      },
    },
    sessions: new SessionsClient(client),
    log,
    tracer: tracing?.tracer,
    host,
    metricsPort: env.API_METRICS_PORT || undefined,
    allowTimingOverrides: env.API_ALLOW_TIMING_OVERRIDES,
    // Plaintext (pre-encryption) payloads pass through the codec unchanged: showing them reveals nothing.
    codec: env.SESSION_CODEC_TOKEN
      ? {
          codec: new AesGcmPayloadCodec(keys, { allowPlaintext: true }),
          allowedOrigins: env.CODEC_CORS_ORIGINS.split(',').map((o) => o.trim()),
          token: env.SESSION_CODEC_TOKEN,
        }
      : undefined,
  });
  log.info({ url: api.url, metrics: api.metricsUrl ?? 'off', codec: env.SESSION_CODEC_TOKEN ? 'on' : 'off', tracing: tracing ? 'on' : 'off' }, 'api started');
  const stop = async () => {
    await api.close();
    await client.connection.close();
    await tracing?.shutdown().catch((err: unknown) => log.warn({ err }, 'trace export at shutdown failed'));
    process.exit(0);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
}

main().catch((err) => {
  // eslint-disable-next-line no-console -- the process failed before (or while) building its logger: stderr is all there is
  console.error(err instanceof ConfigError ? err.message : err);
  process.exit(1);
});
