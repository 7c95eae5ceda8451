// The Runway simulator on its own (`npm run runway-sim`): the realtime-session API on
// RUNWAY_SIM_PORT (8787), its avatars on a LiveKit server of their own ("Runway's LiveKit", started
// here unless RUNWAY_SIM_LIVEKIT_URL/_API_KEY/_API_SECRET name one). Point the service at it with
// RUNWAYML_BASE_URL and RUNWAYML_API_SECRET. Ctrl-C (SIGINT) or SIGTERM stops everything it started.
//
// Every setting is an environment variable; the ones that are not secrets are also flags
// (`npm run runway-sim -- --port 9000 --seed 7`). Secrets (API key, control token, LiveKit secret)
// are read from the environment only, so they never show up in `ps`; they are never printed, except a
// key this process generated itself (you need it to call the simulator).
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { dispose } from '@livekit/rtc-node';
import { z } from 'zod';
import { defaultLogDir, startLiveKitServer } from '../dev/livekit-server';
import { startRunwaySimulator } from './server';

const env = z.object({
  RUNWAY_SIM_PORT: z.coerce.number().int().min(0).max(65535).default(8787),
  RUNWAY_SIM_HOST: z.string().min(1).default('127.0.0.1'),
  RUNWAY_SIM_API_KEY: z.string().min(8).optional(),
  RUNWAY_SIM_CONTROL_TOKEN: z.string().min(8).optional(),
  RUNWAY_SIM_SEED: z.coerce.number().int().default(1),
  RUNWAY_SIM_RUNTIME_CAP_SECONDS: z.coerce.number().positive().default(300),
  RUNWAY_SIM_PROVISIONING_MS: z.coerce.number().min(0).default(1500),
  RUNWAY_SIM_MAX_CONCURRENT: z.coerce.number().int().positive().default(20),
  RUNWAY_SIM_CONCURRENCY_STATUS: z.enum(['429', '400']).default('429'),
  RUNWAY_SIM_LIVEKIT_INTEGRATION: z.enum(['true', 'false']).default('true'),
  RUNWAY_SIM_AVATAR_MEDIA: z.enum(['full', 'light', 'pion', 'off']).default('full'),
  RUNWAY_SIM_LIVEKIT_URL: z
    .string()
    .regex(/^wss?:\/\//, 'a ws:// or wss:// URL')
    .optional(),
  RUNWAY_SIM_LIVEKIT_API_KEY: z.string().min(1).optional(),
  RUNWAY_SIM_LIVEKIT_API_SECRET: z.string().min(1).optional(),
});

/** Flags for the settings that are not secrets. */
const FLAGS = {
  port: 'RUNWAY_SIM_PORT',
  host: 'RUNWAY_SIM_HOST',
  seed: 'RUNWAY_SIM_SEED',
  'runtime-cap': 'RUNWAY_SIM_RUNTIME_CAP_SECONDS',
  'provisioning-ms': 'RUNWAY_SIM_PROVISIONING_MS',
  'max-concurrent': 'RUNWAY_SIM_MAX_CONCURRENT',
  'concurrency-status': 'RUNWAY_SIM_CONCURRENCY_STATUS',
  'livekit-integration': 'RUNWAY_SIM_LIVEKIT_INTEGRATION',
  'avatar-media': 'RUNWAY_SIM_AVATAR_MEDIA',
  'livekit-url': 'RUNWAY_SIM_LIVEKIT_URL',
} as const;

const HELP = `npm run runway-sim [-- flags]

The Runway realtime-session API simulator, with avatars on a LiveKit server.

  --port N                  RUNWAY_SIM_PORT (8787; 0 = any free port)
  --host H                  RUNWAY_SIM_HOST (127.0.0.1)
  --seed N                  RUNWAY_SIM_SEED (1): fault injection is deterministic under a seed
  --runtime-cap S           RUNWAY_SIM_RUNTIME_CAP_SECONDS (300): RUNNING sessions end after this
  --provisioning-ms MS      RUNWAY_SIM_PROVISIONING_MS (1500): time in NOT_READY
  --max-concurrent N        RUNWAY_SIM_MAX_CONCURRENT (20): the account's concurrency limit
  --concurrency-status 429|400   RUNWAY_SIM_CONCURRENCY_STATUS (429): the answer past the limit
  --livekit-integration true|false   RUNWAY_SIM_LIVEKIT_INTEGRATION (true): false rejects
                            integration:{type:'livekit'} with 400 "Unrecognized key: integration"
  --avatar-media full|light|pion|off   RUNWAY_SIM_AVATAR_MEDIA (full); pion: light avatars in one
                            Go process (scripts/install-tools.sh --light-avatars builds it)
  --livekit-url ws://…      RUNWAY_SIM_LIVEKIT_URL, with RUNWAY_SIM_LIVEKIT_API_KEY and
                            RUNWAY_SIM_LIVEKIT_API_SECRET: the avatars' LiveKit server (default:
                            a livekit-server started here, from .tools/bin or LIVEKIT_SERVER_PATH)
  environment only (secrets):
    RUNWAY_SIM_API_KEY        the API key clients must send (default: generated and printed)
    RUNWAY_SIM_CONTROL_TOKEN  the x-sim-control token of /_sim/* (default: generated and printed)
`;

type Stop = { name: string; stop: () => Promise<void> };

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { help: { type: 'boolean', short: 'h' }, ...Object.fromEntries(Object.keys(FLAGS).map((f) => [f, { type: 'string' as const }])) },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  const fromFlags = Object.fromEntries(
    Object.entries(FLAGS).flatMap(([flag, name]) =>
      typeof values[flag as keyof typeof values] === 'string' ? [[name, values[flag as keyof typeof values]]] : [],
    ),
  );
  const parsed = env.safeParse({ ...process.env, ...fromFlags });
  if (!parsed.success) {
    console.error(`invalid configuration:\n${parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`).join('\n')}`);
    process.exit(2);
  }
  const cfg = parsed.data;
  if (cfg.RUNWAY_SIM_LIVEKIT_URL && (!cfg.RUNWAY_SIM_LIVEKIT_API_KEY || !cfg.RUNWAY_SIM_LIVEKIT_API_SECRET)) {
    console.error('RUNWAY_SIM_LIVEKIT_URL needs RUNWAY_SIM_LIVEKIT_API_KEY and RUNWAY_SIM_LIVEKIT_API_SECRET too');
    process.exit(2);
  }

  // Everything started so far, stopped in reverse order: on a signal, and on a failed start.
  const started: Stop[] = [];
  let stopping: Promise<void> | undefined;
  const stopAll = (code: number): Promise<void> =>
    (stopping ??= (async () => {
      for (const s of [...started].reverse()) {
        try {
          await s.stop();
        } catch (err) {
          console.error(`stopping ${s.name} failed: ${(err as Error).message}`);
        }
      }
      await dispose().catch(() => undefined);
      process.exit(code);
    })());
  // Installed before anything starts, so a Ctrl-C during startup still stops what did start.
  process.once('SIGINT', () => void stopAll(0));
  process.once('SIGTERM', () => void stopAll(0));

  try {
    let livekit: { url: string; apiKey: string; apiSecret: string };
    let livekitNote: string;
    if (cfg.RUNWAY_SIM_LIVEKIT_URL) {
      livekit = { url: cfg.RUNWAY_SIM_LIVEKIT_URL, apiKey: cfg.RUNWAY_SIM_LIVEKIT_API_KEY!, apiSecret: cfg.RUNWAY_SIM_LIVEKIT_API_SECRET! };
      livekitNote = 'from RUNWAY_SIM_LIVEKIT_URL';
    } else {
      const logDir = defaultLogDir();
      mkdirSync(logDir, { recursive: true });
      const logFile = path.join(logDir, 'livekit-runway-sim.log');
      const lk = await startLiveKitServer({ label: 'livekit-runway-sim', logFile });
      started.push({ name: 'livekit-server', stop: () => lk.stop() });
      livekit = { url: lk.url, apiKey: lk.apiKey, apiSecret: lk.apiSecret };
      livekitNote = `livekit-server started here, log ${logFile}`;
    }
    const sim = await startRunwaySimulator({
      port: cfg.RUNWAY_SIM_PORT,
      host: cfg.RUNWAY_SIM_HOST,
      apiKey: cfg.RUNWAY_SIM_API_KEY ?? `key_${randomBytes(24).toString('hex')}`,
      controlToken: cfg.RUNWAY_SIM_CONTROL_TOKEN,
      seed: cfg.RUNWAY_SIM_SEED,
      livekit,
      defaults: {
        provisioningMs: cfg.RUNWAY_SIM_PROVISIONING_MS,
        runtimeCapSeconds: cfg.RUNWAY_SIM_RUNTIME_CAP_SECONDS,
        avatarMedia: cfg.RUNWAY_SIM_AVATAR_MEDIA,
      },
      account: {
        maxConcurrentSessions: cfg.RUNWAY_SIM_MAX_CONCURRENT,
        concurrencyLimitStatus: cfg.RUNWAY_SIM_CONCURRENCY_STATUS === '400' ? 400 : 429,
        livekitIntegration: cfg.RUNWAY_SIM_LIVEKIT_INTEGRATION === 'true',
      },
    });
    started.push({ name: 'runway simulator', stop: () => sim.stop() });
    if (stopping) return; // a signal arrived while starting: stopAll is already running
    process.stdout.write(
      [
        `Runway simulator on ${sim.baseUrl}`,
        `  avatars on ${livekit.url} (${livekitNote})`,
        `  account: ${cfg.RUNWAY_SIM_MAX_CONCURRENT} concurrent sessions (then ${cfg.RUNWAY_SIM_CONCURRENCY_STATUS}), livekit integration ${cfg.RUNWAY_SIM_LIVEKIT_INTEGRATION === 'true' ? 'on' : 'off'}, runtime cap ${cfg.RUNWAY_SIM_RUNTIME_CAP_SECONDS} s, seed ${cfg.RUNWAY_SIM_SEED}`,
        'Point the service (or any Runway client) at it:',
        `  export RUNWAYML_BASE_URL=${sim.baseUrl}`,
        // A key given in the environment is a secret of the caller's: name it, never print it.
        cfg.RUNWAY_SIM_API_KEY
          ? '  export RUNWAYML_API_SECRET="$RUNWAY_SIM_API_KEY"'
          : `  export RUNWAYML_API_SECRET=${sim.apiKey}   # generated; set RUNWAY_SIM_API_KEY to choose it`,
        cfg.RUNWAY_SIM_CONTROL_TOKEN
          ? `Control API: ${sim.baseUrl}/_sim/{ledger,invariants,configure,account,next-sessions,reset} with header x-sim-control: $RUNWAY_SIM_CONTROL_TOKEN`
          : `Control API: ${sim.baseUrl}/_sim/{ledger,invariants,configure,account,next-sessions,reset} with header x-sim-control: ${sim.controlToken}`,
        'Ctrl-C stops it.',
        '',
      ].join('\n'),
    );
  } catch (err) {
    console.error(`runway-sim failed to start: ${(err as Error).message}`);
    await stopAll(1);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
