// Service configuration from the environment, validated once at start with errors that name the
// variable and the fix. Temporal's own settings (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY,
// TLS) are read by @temporalio/envconfig, so Temporal Cloud works without code changes.
import { z } from 'zod';
import { pinSecret } from './redact';

const port = z.coerce.number().int().min(1).max(65535);
/** An on/off switch: 1/true or 0/false. */
const flag = z
  .enum(['0', '1', 'true', 'false'], { message: 'must be 1 or 0' })
  .default('0')
  .transform((v) => v === '1' || v === 'true');
const devPort = z.coerce.number().int().min(0, 'must be a port number (0: any free port)').max(65535, 'must be a port number (0: any free port)');
const optionalString = z.string().min(1).optional();
/** OTLP's transport: only OTLP/HTTP with protobuf bodies ships with this service. */
const otlpProtocol = z
  .literal('http/protobuf', { message: 'only http/protobuf is supported (the OTLP/HTTP protobuf exporter); set http/protobuf or unset it' })
  .optional();
/** OpenTelemetry's `key=value,key2=value2` lists (values percent-encoded where needed). */
const keyValueList = z
  .string()
  .regex(/^\s*[^=,\s]+\s*=[^,]*(,\s*[^=,\s]+\s*=[^,]*)*$/, 'must be key=value pairs separated by commas, e.g. api-key=abc,team=media')
  .optional();

/** Every variable the service reads; each is documented in docs/configuration.md (test/config.test.ts). */
export const envSchema = z.object({
  RUNWAYML_API_SECRET: optionalString,
  RUNWAYML_BASE_URL: z.url().optional(),
  LIVEKIT_URL: z
    .string()
    .regex(/^(wss?|https?):\/\//, 'must be a ws://, wss://, http:// or https:// URL')
    .optional(),
  LIVEKIT_API_KEY: optionalString,
  LIVEKIT_API_SECRET: optionalString,
  /** The URL Runway's avatar worker uses to join the customer's room (direct mode); defaults to LIVEKIT_URL. */
  LIVEKIT_PUBLIC_URL: z
    .string()
    .regex(/^(wss?|https?):\/\//, 'must be a ws(s):// or http(s):// URL')
    .optional(),
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
  /** The operator's token for the codec endpoint (/codec/decode decrypts any history); unset: no codec endpoint. */
  SESSION_CODEC_TOKEN: z.string().min(16, 'must be at least 16 characters; generate one with: openssl rand -hex 32').optional(),
  /** Read (and decode) payloads that are not encrypted: only to read histories from before encryption. */
  SESSION_ALLOW_PLAINTEXT_PAYLOADS: flag,
  /** Let API callers send `timing` (internal timeouts and intervals): tests only. */
  API_ALLOW_TIMING_OVERRIDES: flag,
  API_PORT: port.default(8080),
  /** The API process's Prometheus endpoint, on a port of its own (not the API's); 0 turns it off. */
  API_METRICS_PORT: z.coerce.number().int().min(0, 'must be a port number, or 0 to turn metrics off').max(65535).default(9465),
  /** The embedded dev stack (`npm start` with nothing configured): its ports; 0 picks any free port. */
  DEV_TEMPORAL_PORT: devPort.default(7233),
  TEMPORAL_UI_PORT: devPort.default(8233),
  DEV_LIVEKIT_PORT: devPort.default(7880),
  DEV_RUNWAY_LIVEKIT_PORT: devPort.default(7890),
  RUNWAY_SIM_PORT: devPort.default(8787),
  /** Prometheus endpoint of the worker's Temporal metrics; 0 turns it off. */
  /**
   * Where the workers' Prometheus endpoints listen (default 127.0.0.1: this host only). In containers,
   * 0.0.0.0 on a network only the scraper shares.
   */
  METRICS_HOST: z.union([z.ipv4(), z.ipv6()], { error: 'must be an IP address to listen on, e.g. 127.0.0.1 or 0.0.0.0' }).default('127.0.0.1'),
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
  /**
   * A workflow bundle built beforehand (bundleWorkflowCode's output, e.g. the chaos harness's): the
   * orchestration worker loads it instead of bundling at start. Unset: the prebuilt bundle of
   * `npm run build`, else bundled at start.
   */
  WORKFLOW_BUNDLE_PATH: z.string().min(1).optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info'),
  // ---- OpenTelemetry traces (src/tracing.ts): the standard OTEL_* variables; off unless they ask ----
  /** true: no tracing whatever else is set (the OpenTelemetry switch). */
  OTEL_SDK_DISABLED: z
    .enum(['true', 'false', 'TRUE', 'FALSE', '1', '0'], { message: 'must be true or false' })
    .optional()
    .transform((v) => v === 'true' || v === 'TRUE' || v === '1'),
  /** otlp (OTLP over HTTP, protobuf), console (span lines on stdout), none; unset: otlp when an OTLP endpoint is set, else off. */
  OTEL_TRACES_EXPORTER: z
    .string()
    .regex(
      /^\s*(otlp|console|none)\s*(,\s*(otlp|console|none)\s*)*$/,
      'must be otlp, console or none (or a comma-separated list of otlp and console); unset it for no tracing',
    )
    .optional(),
  /** Where OTLP goes: the base URL (/v1/traces is added), or the traces URL itself. */
  OTEL_EXPORTER_OTLP_ENDPOINT: z.url({ protocol: /^https?$/, message: 'must be an http(s) URL, e.g. http://otel-collector:4318' }).optional(),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: z.url({ protocol: /^https?$/, message: 'must be an http(s) URL, e.g. http://otel-collector:4318/v1/traces' }).optional(),
  OTEL_EXPORTER_OTLP_PROTOCOL: otlpProtocol,
  OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: otlpProtocol,
  /** Headers sent with every export (e.g. a vendor's API key): key=value pairs, comma-separated; values are secrets. */
  OTEL_EXPORTER_OTLP_HEADERS: keyValueList,
  OTEL_EXPORTER_OTLP_TRACES_HEADERS: keyValueList,
  /** The service name on every span; default per process (avatar-sessions, -worker, -media-worker, -api). */
  OTEL_SERVICE_NAME: optionalString,
  OTEL_RESOURCE_ATTRIBUTES: keyValueList,
  OTEL_TRACES_SAMPLER: z
    .enum(['always_on', 'always_off', 'traceidratio', 'parentbased_always_on', 'parentbased_always_off', 'parentbased_traceidratio'], {
      message: 'must be always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio',
    })
    .optional(),
  OTEL_TRACES_SAMPLER_ARG: z.coerce
    .number({ message: 'must be a number between 0 and 1 (the share of traces kept)' })
    .min(0, 'must be between 0 and 1')
    .max(1, 'must be between 0 and 1')
    .optional(),
});

export type Env = z.infer<typeof envSchema>;

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Parses and checks `env`; throws ConfigError listing every bad variable. Registers secrets for redaction. */
export function loadEnv(env: NodeJS.ProcessEnv = process.env): Env {
  const res = envSchema.safeParse(Object.fromEntries(Object.entries(env).filter(([, v]) => v !== '')));
  if (!res.success) {
    const lines = res.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  const cfg = res.data;
  for (const s of [
    cfg.RUNWAYML_API_SECRET,
    cfg.LIVEKIT_API_SECRET,
    cfg.SESSION_SECRETS_KEY,
    cfg.SESSION_API_TOKEN,
    cfg.SESSION_CODEC_TOKEN,
    ...(cfg.SESSION_SECRETS_OLD_KEYS?.split(',') ?? []),
  ])
    pinSecret(s?.trim());
  // OTLP headers usually carry a tracing vendor's API key: their values never reach a log line.
  for (const list of [cfg.OTEL_EXPORTER_OTLP_HEADERS, cfg.OTEL_EXPORTER_OTLP_TRACES_HEADERS]) {
    for (const pair of list?.split(',') ?? []) pinSecret(pair.slice(pair.indexOf('=') + 1).trim() || undefined);
  }
  const problems: string[] = [];
  const lk = [cfg.LIVEKIT_URL, cfg.LIVEKIT_API_KEY, cfg.LIVEKIT_API_SECRET];
  if (lk.some(Boolean) && !lk.every(Boolean)) {
    problems.push('LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET must be set together (or none, for the embedded dev stack)');
  }
  for (const name of SECRET_VARIABLES) {
    const value = cfg[name];
    if (value && isPlaceholder(value)) problems.push(`${name}: looks like a placeholder from an example file; set a real secret (openssl rand -hex 32)`);
  }
  if (cfg.LIVEKIT_API_SECRET && cfg.LIVEKIT_API_SECRET.length < 32)
    problems.push('LIVEKIT_API_SECRET: must be at least 32 characters (LiveKit refuses shorter secrets); generate one with: openssl rand -base64 32');
  if (cfg.SESSION_CODEC_TOKEN && cfg.SESSION_CODEC_TOKEN === cfg.SESSION_API_TOKEN) {
    problems.push('SESSION_CODEC_TOKEN: must differ from SESSION_API_TOKEN (the codec token decrypts every history; the API token only drives sessions)');
  }
  if (problems.length) throw new ConfigError(`invalid configuration:\n${problems.map((p) => `  ${p}`).join('\n')}`);
  return cfg;
}

/** The variables that hold secrets: never a placeholder. */
const SECRET_VARIABLES = [
  'RUNWAYML_API_SECRET',
  'LIVEKIT_API_SECRET',
  'SESSION_API_TOKEN',
  'SESSION_CODEC_TOKEN',
  'SESSION_SECRETS_KEY',
  'SESSION_SECRETS_OLD_KEYS',
] as const;

/**
 * Values that come from an example or a tutorial rather than a generator: "change-me…", "your_…",
 * "replace-with…", "<secret>", "xxxxxxxx", "secret"/"password"/"devkey"-like words. A value like
 * that may well be accepted by LiveKit or Runway, which is the problem: the service would run with a
 * secret everybody knows.
 */
export function isPlaceholder(value: string): boolean {
  const v = value.trim();
  return (
    /change[-_ .]?me|changeit|replace[-_ .]?(me|with|this)|placeholder|your[-_ .](runway|livekit|api|secret|key|token|own)|<[^>]*>|^\$\{.*\}$/i.test(v) ||
    /(x{8,}|\*{8,}|0{16,})/i.test(v) ||
    /^(secret|password|token|apisecret|api[-_]?key|devsecret|devkey|test|testing|example)\d*$/i.test(v)
  );
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
  /** Read payloads that are not encrypted (SESSION_ALLOW_PLAINTEXT_PAYLOADS): old histories only. */
  allowPlaintextPayloads?: boolean;
}

/**
 * The worker's configuration; throws ConfigError naming whatever is missing. `runway: false` for the
 * media worker, which never calls Runway and so is not given its key.
 */
export function requireServiceConfig(env: Env, opts: { runway?: boolean } = {}): ServiceConfig {
  const missing: string[] = [];
  const needsRunway = opts.runway !== false;
  if (needsRunway && !env.RUNWAYML_API_SECRET) missing.push('RUNWAYML_API_SECRET (your Runway API key)');
  if (!env.LIVEKIT_URL) missing.push('LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET (your LiveKit server)');
  if (!env.SESSION_SECRETS_KEY) missing.push('SESSION_SECRETS_KEY (openssl rand -base64 32; the same on every worker)');
  if (missing.length) throw new ConfigError(`missing configuration:\n${missing.map((m) => `  ${m}`).join('\n')}`);
  return {
    runway: { apiKey: needsRunway ? env.RUNWAYML_API_SECRET! : '', baseUrl: env.RUNWAYML_BASE_URL },
    livekit: { url: env.LIVEKIT_URL!, publicUrl: env.LIVEKIT_PUBLIC_URL ?? env.LIVEKIT_URL!, apiKey: env.LIVEKIT_API_KEY!, apiSecret: env.LIVEKIT_API_SECRET! },
    secretsKey: Buffer.from(env.SESSION_SECRETS_KEY!, 'base64'),
    secretsOldKeys: oldKeys(env),
    apiToken: env.SESSION_API_TOKEN,
    apiPort: env.API_PORT,
    metricsPort: env.METRICS_PORT,
    logLevel: env.LOG_LEVEL,
    allowPlaintextPayloads: env.SESSION_ALLOW_PLAINTEXT_PAYLOADS,
  };
}

export function oldKeys(env: Pick<Env, 'SESSION_SECRETS_OLD_KEYS'>): Buffer[] {
  return (env.SESSION_SECRETS_OLD_KEYS ?? '')
    .split(',')
    .map((k) => k.trim())
    .filter(Boolean)
    .map((k) => Buffer.from(k, 'base64'));
}

/** The keys of the history payload codec: the current one first (it encrypts), then the old ones. */
export function codecKeys(config: Pick<ServiceConfig, 'secretsKey' | 'secretsOldKeys'>): Buffer[] {
  return [config.secretsKey, ...(config.secretsOldKeys ?? [])];
}

/** The payload codec's options from the configuration (plaintext refused unless allowed). */
export function codecOptions(config: Pick<ServiceConfig, 'allowPlaintextPayloads'>): { allowPlaintext: boolean } {
  return { allowPlaintext: config.allowPlaintextPayloads === true };
}
