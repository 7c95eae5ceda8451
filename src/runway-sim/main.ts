// The Runway simulator on its own (`npm run runway-sim`): the realtime-session API on
// RUNWAY_SIM_PORT (8787), its avatars on a LiveKit server of their own ("Runway's LiveKit", started
// here unless RUNWAY_SIM_LIVEKIT_URL/_API_KEY/_API_SECRET name one). Point the service at it with
// RUNWAYML_BASE_URL and RUNWAYML_API_SECRET. Ctrl-C stops everything it started.
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { dispose } from '@livekit/rtc-node';
import { z } from 'zod';
import { defaultLogDir, startLiveKitServer, type LiveKitServer } from '../dev/livekit-server';
import { startRunwaySimulator } from './server';

const env = z.object({
  RUNWAY_SIM_PORT: z.coerce.number().int().min(0).max(65535).default(8787),
  RUNWAY_SIM_HOST: z.string().default('127.0.0.1'),
  RUNWAY_SIM_API_KEY: z.string().min(8).optional(),
  RUNWAY_SIM_SEED: z.coerce.number().int().default(1),
  RUNWAY_SIM_RUNTIME_CAP_SECONDS: z.coerce.number().positive().default(300),
  RUNWAY_SIM_PROVISIONING_MS: z.coerce.number().min(0).default(1500),
  RUNWAY_SIM_MAX_CONCURRENT: z.coerce.number().int().positive().default(20),
  RUNWAY_SIM_LIVEKIT_INTEGRATION: z.enum(['true', 'false']).default('true'),
  RUNWAY_SIM_AVATAR_MEDIA: z.enum(['full', 'light', 'off']).default('full'),
  RUNWAY_SIM_LIVEKIT_URL: z.string().optional(),
  RUNWAY_SIM_LIVEKIT_API_KEY: z.string().optional(),
  RUNWAY_SIM_LIVEKIT_API_SECRET: z.string().optional(),
});

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { port: { type: 'string' }, help: { type: 'boolean' } }, strict: true });
  if (values.help) {
    console.log('npm run runway-sim [-- --port N]   (env: RUNWAY_SIM_* , see src/runway-sim/main.ts)');
    return;
  }
  const parsed = env.safeParse({ ...process.env, ...(values.port ? { RUNWAY_SIM_PORT: values.port } : {}) });
  if (!parsed.success) {
    console.error(`invalid configuration:\n${parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`).join('\n')}`);
    process.exit(2);
  }
  const cfg = parsed.data;
  const stops: (() => Promise<void>)[] = [];
  let livekit: { url: string; apiKey: string; apiSecret: string };
  if (cfg.RUNWAY_SIM_LIVEKIT_URL) {
    if (!cfg.RUNWAY_SIM_LIVEKIT_API_KEY || !cfg.RUNWAY_SIM_LIVEKIT_API_SECRET) {
      console.error('RUNWAY_SIM_LIVEKIT_URL needs RUNWAY_SIM_LIVEKIT_API_KEY and RUNWAY_SIM_LIVEKIT_API_SECRET too');
      process.exit(2);
    }
    livekit = { url: cfg.RUNWAY_SIM_LIVEKIT_URL, apiKey: cfg.RUNWAY_SIM_LIVEKIT_API_KEY, apiSecret: cfg.RUNWAY_SIM_LIVEKIT_API_SECRET };
  } else {
    const logDir = defaultLogDir();
    mkdirSync(logDir, { recursive: true });
    const lk: LiveKitServer = await startLiveKitServer({ label: 'livekit-runway-sim', logFile: path.join(logDir, 'livekit-runway-sim.log') });
    stops.push(() => lk.stop());
    livekit = { url: lk.url, apiKey: lk.apiKey, apiSecret: lk.apiSecret };
  }
  const sim = await startRunwaySimulator({
    port: cfg.RUNWAY_SIM_PORT,
    host: cfg.RUNWAY_SIM_HOST,
    apiKey: cfg.RUNWAY_SIM_API_KEY ?? `key_${randomBytes(24).toString('hex')}`,
    seed: cfg.RUNWAY_SIM_SEED,
    livekit,
    defaults: { provisioningMs: cfg.RUNWAY_SIM_PROVISIONING_MS, runtimeCapSeconds: cfg.RUNWAY_SIM_RUNTIME_CAP_SECONDS, avatarMedia: cfg.RUNWAY_SIM_AVATAR_MEDIA },
    account: { maxConcurrentSessions: cfg.RUNWAY_SIM_MAX_CONCURRENT, livekitIntegration: cfg.RUNWAY_SIM_LIVEKIT_INTEGRATION === 'true' },
  });
  stops.unshift(() => sim.stop());
  console.log(
    [
      `Runway simulator on ${sim.baseUrl} (avatars on ${livekit.url})`,
      `  point the service at it:  RUNWAYML_BASE_URL=${sim.baseUrl} RUNWAYML_API_SECRET=<the key>`,
      cfg.RUNWAY_SIM_API_KEY ? '  API key: $RUNWAY_SIM_API_KEY' : `  API key (generated): ${sim.apiKey}`,
      `  control API: ${sim.baseUrl}/_sim/* with header x-sim-control: ${sim.controlToken}`,
      'Ctrl-C stops it.',
    ].join('\n'),
  );
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    for (const s of stops) await s().catch(() => undefined);
    await dispose();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
