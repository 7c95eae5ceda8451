// Service configuration from the environment, validated once at start with errors that name the
// variable and the fix. Temporal's own settings (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY,
// TLS) are read by @temporalio/envconfig, so Temporal Cloud works without code changes.
import { z } from 'zod';
import { registerSecret } from './redact';

const port = z.coerce.number().int().min(1).max(65535);
const devPort = z.coerce.number().int().min(0, 'must be a port number (0: any free port)').max(65535, 'must be a port number (0: any free port)');
const optionalString = z.string().min(1).optional();

const schema = z.object({
  RUNWAYML_API_SECRET: optionalString,
  RUNWAYML_BASE_URL: z.url().optional(),
  LIVEKIT_URL: z.string().regex(/^(wss?|https?):\/\//, 'must be a ws://, wss://, http:// or https:// URL').optional(),
  LIVEKIT_API_KEY: optionalString,
  LIVEKIT_API_SECRET: optionalString,
  /** The URL Runway's avatar worker uses to join the customer's room (direct mode); defaults to LIVEKIT_URL. */
  LIVEKIT_PUBLIC_URL: z.string().regex(/^(wss?|https?):\/\//, 'must be a ws(s):// or http(s):// URL').optional(),
  SESSION_SECRETS_KEY: z
    .string()
    .refine((v) => Buffer.from(v, 'base64').length === 32, 'must be 32 random bytes, base64-encoded: openssl rand -base64 32')
    .optional(),
  /** Keys rotated out of SESSION_SECRETS_KEY, comma-separated: still used to decrypt older history. */
  SESSION_SECRETS_OLD_KEYS: z
    .string()
    .refine((v) => v.split(',').every((k) => Buffer.from(k.trim(), 'base64').length === 32), 'each comma-separated key must be 32 bytes, base64-encoded')
    .optional(),
  SESSION_API_TOKEN: z.string().min(16, 'must be at least 16 characters; generate one with: openssl rand -hex 32').optional(),
  API_PORT: port.default(8080),
  /** The embedded dev stack (`npm start` with nothing configured): its ports; 0 picks any free port. */
  DEV_TEMPORAL_PORT: devPort.default(7233),
  TEMPORAL_UI_PORT: devPort.default(8233),
  DEV_LIVEKIT_PORT: devPort.default(7880),
  DEV_RUNWAY_LIVEKIT_PORT: devPort.default(7890),
  RUNWAY_SIM_PORT: devPort.default(8787),
  /** Prometheus endpoint of the worker's Temporal metrics; 0 turns it off. */
  METRICS_PORT: z.coerce.number().int().min(0, 'must be a port number, or 0 to turn metrics off').max(65535).default(9464),
  MEDIA_METRICS_PORT: z.coerce.number().int().min(0, 'must be a port number, or 0 to turn metrics off').max(65535).optional(),
  /** Concurrent Runway sessions allowed at once; default: the account's limit from GET /v1/organization. */
  RUNWAY_SESSION_LIMIT: z.coerce.number().int().positive().optional(),
  /** READY polling: first interval and ceiling (backoff in between; queued sessions poll at the ceiling). */
  RUNWAY_POLL_INITIAL_MS: z.coerce.number().int().positive().optional(),
  RUNWAY_POLL_MAX_MS: z.coerce.number().int().positive().optional(),
  /** Browser origins allowed to call the codec endpoint (the Temporal UI), comma-separated. */
  CODEC_CORS_ORIGINS: z.string().default('http://localhost:8233'),
  /** How often the reaper's Schedule looks for Runway sessions no workflow owns (0: do not create the schedule). */
  REAPER_INTERVAL_SECONDS: z.coerce.number().int().min(0).default(300),
  /**
   * Orchestration worker tuning: each live direct session holds one activity slot (its monitor), so
   * the SDK's default of 100 would cap a worker at about 100 live sessions. Workflow tasks and cache:
   * SDK defaults when unset.
   */
  WORKER_MAX_CONCURRENT_ACTIVITIES: z.coerce.number().int().positive().default(1000),
  WORKER_MAX_CONCURRENT_WORKFLOW_TASKS: z.coerce.number().int().min(2).optional(),
  WORKER_MAX_CACHED_WORKFLOWS: z.coerce.number().int().min(0).optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info'),
});

export type Env = z.infer<typeof schema>;

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Parses and checks `env`; throws ConfigError listing every bad variable. Registers secrets for redaction. */
export function loadEnv(env: NodeJS.ProcessEnv = process.env): Env {
  const res = schema.safeParse(Object.fromEntries(Object.entries(env).filter(([, v]) => v !== '')));
  if (!res.success) {
    const lines = res.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  const cfg = res.data;
  for (const s of [cfg.RUNWAYML_API_SECRET, cfg.LIVEKIT_API_SECRET, cfg.SESSION_SECRETS_KEY, cfg.SESSION_API_TOKEN, ...(cfg.SESSION_SECRETS_OLD_KEYS?.split(',') ?? [])]) registerSecret(s?.trim());
  const lk = [cfg.LIVEKIT_URL, cfg.LIVEKIT_API_KEY, cfg.LIVEKIT_API_SECRET];
  if (lk.some(Boolean) && !lk.every(Boolean)) {
    throw new ConfigError('invalid configuration:\n  LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET must be set together (or none, for the embedded dev stack)');
  }
  return cfg;
}

/** What the workers need, fully resolved (the embedded stack fills the gaps with its own servers). */
export interface ServiceConfig {
  runway: { apiKey: string; baseUrl?: string };
  livekit: { url: string; publicUrl: string; apiKey: string; apiSecret: string };
  secretsKey: Buffer;
  /** Older keys that still decrypt history written before a rotation. */
  secretsOldKeys?: Buffer[];
  apiToken?: string;
  apiPort: number;
  metricsPort: number;
  logLevel: string;
}

export function requireServiceConfig(env: Env): ServiceConfig {
  const missing: string[] = [];
  if (!env.RUNWAYML_API_SECRET) missing.push('RUNWAYML_API_SECRET (your Runway API key)');
  if (!env.LIVEKIT_URL) missing.push('LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET (your LiveKit server)');
  if (!env.SESSION_SECRETS_KEY) missing.push('SESSION_SECRETS_KEY (openssl rand -base64 32; the same on every worker)');
  if (missing.length) throw new ConfigError(`missing configuration:\n${missing.map((m) => `  ${m}`).join('\n')}`);
  return {
    runway: { apiKey: env.RUNWAYML_API_SECRET!, baseUrl: env.RUNWAYML_BASE_URL },
    livekit: { url: env.LIVEKIT_URL!, publicUrl: env.LIVEKIT_PUBLIC_URL ?? env.LIVEKIT_URL!, apiKey: env.LIVEKIT_API_KEY!, apiSecret: env.LIVEKIT_API_SECRET! },
    secretsKey: Buffer.from(env.SESSION_SECRETS_KEY!, 'base64'),
    secretsOldKeys: oldKeys(env),
    apiToken: env.SESSION_API_TOKEN,
    apiPort: env.API_PORT,
    metricsPort: env.METRICS_PORT,
    logLevel: env.LOG_LEVEL,
  };
}

export function oldKeys(env: Pick<Env, 'SESSION_SECRETS_OLD_KEYS'>): Buffer[] {
  return (env.SESSION_SECRETS_OLD_KEYS ?? '').split(',').map((k) => k.trim()).filter(Boolean).map((k) => Buffer.from(k, 'base64'));
}

/** The keys of the history payload codec: the current one first (it encrypts), then the old ones. */
export function codecKeys(config: Pick<ServiceConfig, 'secretsKey' | 'secretsOldKeys'>): Buffer[] {
  return [config.secretsKey, ...(config.secretsOldKeys ?? [])];
}
