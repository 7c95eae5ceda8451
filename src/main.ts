// `npm start`: the whole service on one machine. With nothing configured it brings up an embedded
// stack (Temporal dev server with its Web UI, LiveKit dev servers, the Runway simulator) and runs the
// orchestration worker, the media worker and the HTTP API against it. Anything configured in the
// environment (TEMPORAL_ADDRESS, LIVEKIT_URL…, RUNWAYML_API_SECRET) is used instead of starting it.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { dispose } from '@livekit/rtc-node';
import { guardRtcHandleErrors } from './media/rtc-guard';
import { ConfigError, codecKeys, codecOptions, loadEnv, oldKeys, type ServiceConfig } from './config';
import { REAPER_SCHEDULE_ID, ensureReaperSchedule } from './reaper-schedule';
import { AesGcmPayloadCodec, encryptedDataConverter } from './secrets/payload-codec';
import { SessionsClient } from './client/sessions';
import { onProcessStart } from './dev/child';
import { startLiveKitServer, type LiveKitServer } from './dev/livekit-server';
import { DataDirClaim, DataDirInUseError } from './dev/pid-file';
import { assertPortsFree, PortsTakenError, type PortSpec } from './dev/ports';
import { startTemporalDevServer, type TemporalDevServer } from './dev/temporal-server';
import { embeddedOpenModes } from './dev/open-modes';
import { PROJECT_ROOT } from './dev/tools';
import { createLogger } from './log';
import { pinSecret } from './redact';
import { connectClient, connectWorker, installRuntime } from './temporal';
import { createMediaWorker, createSessionWorker, workerSettings, type RunnableWorker } from './workers';
import { startRunwaySimulator } from './runway-sim/server';
import type { AvatarMedia } from './runway-sim/avatar-api';
import { startApiServer } from './api/server';
import { startTracing, tracingSettings } from './tracing';

// DEV_DATA_DIR and the DEV_*_PORT overrides (src/config.ts) let a second stack (the demo test) run next
// to a developer's own without touching its .data or its ports.
const DATA_DIR = process.env.DEV_DATA_DIR ? path.resolve(process.env.DEV_DATA_DIR) : path.join(PROJECT_ROOT, '.data');
/** The simulated avatar's media: 'full' (640x360@30 video + a tone, the default) or 'light' (64x64@5, silent). */
const simAvatarMedia = (): Exclude<AvatarMedia, 'off'> => {
  const raw = process.env.RUNWAY_SIM_AVATAR_MEDIA || 'full';
  // 'off' (no avatar participant at all) would leave every session short of live here.
  if (raw !== 'full' && raw !== 'light')
    throw new ConfigError('invalid configuration:\n  RUNWAY_SIM_AVATAR_MEDIA: must be full or light in the embedded stack');
  return raw;
};

/** Every fixed port this start will bind, with the variable that moves it (0: the server picks one later). */
function portsToCheck(env: ReturnType<typeof loadEnv>): PortSpec[] {
  const specs: PortSpec[] = [];
  const free = (v: string) => `${v}=<another port> (0: any free port)`;
  const add = (port: number, variable: string, what: string, fix: string, protocol: 'tcp' | 'udp' = 'tcp', host?: string) => {
    if (port > 0) specs.push({ port, variable, what, fix, protocol, host });
  };
  if (!process.env.TEMPORAL_ADDRESS) {
    add(env.DEV_TEMPORAL_PORT, 'DEV_TEMPORAL_PORT', "the Temporal dev server's gRPC port", free('DEV_TEMPORAL_PORT'));
    add(env.TEMPORAL_UI_PORT, 'TEMPORAL_UI_PORT', "the Temporal Web UI's port", free('TEMPORAL_UI_PORT'));
  }
  const livekit = (variable: string, port: number, label: string) => {
    const fix = `${variable}=<another port> (it takes that port, +1 and +2; 0: any free ports)`;
    add(port, variable, `${label}'s HTTP/WebSocket port`, fix);
    // ICE over TCP and the UDP mux listen on every interface (rtc.tcp_port, rtc.udp_port).
    if (port > 0) {
      add(port + 1, `${variable}+1`, `${label}'s ICE/TCP port`, fix, 'tcp', '0.0.0.0');
      add(port + 2, `${variable}+2`, `${label}'s WebRTC UDP port`, fix, 'udp', '0.0.0.0');
    }
  };
  if (!env.LIVEKIT_URL) livekit('DEV_LIVEKIT_PORT', env.DEV_LIVEKIT_PORT, 'the LiveKit dev server');
  if (!env.RUNWAYML_API_SECRET) {
    livekit('DEV_RUNWAY_LIVEKIT_PORT', env.DEV_RUNWAY_LIVEKIT_PORT, "the Runway simulator's LiveKit server");
    add(env.RUNWAY_SIM_PORT, 'RUNWAY_SIM_PORT', "the Runway simulator's API port", free('RUNWAY_SIM_PORT'));
  }
  add(env.API_PORT, 'API_PORT', "the service's HTTP API", 'API_PORT=<another port>');
  add(env.METRICS_PORT, 'METRICS_PORT', "the workers' Prometheus metrics", 'METRICS_PORT=<another port> (0: no metrics endpoint)');
  return specs;
}

/** A reason not to start, said plainly on the terminal (stderr), not only in the JSON log. */
function tellTerminal(text: string): void {
  process.stderr.write(`\nnpm start: ${text.split('\n').join('\n  ')}\n\n`);
}

/** Dev secrets are generated once and kept in .data so a restart can read sessions it started. */
function devSecrets(): { livekitSecret: string; runwaySimSecret: string; livekitRunwaySecret: string; secretsKey: string; apiToken: string } {
  const file = path.join(DATA_DIR, 'dev-secrets.json');
  if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8')) as ReturnType<typeof devSecrets>;
  const s = {
    livekitSecret: randomBytes(32).toString('hex'),
    livekitRunwaySecret: randomBytes(32).toString('hex'),
    runwaySimSecret: `key_${randomBytes(24).toString('hex')}`,
    secretsKey: randomBytes(32).toString('base64'),
    apiToken: randomBytes(24).toString('hex'),
  };
  mkdirSync(DATA_DIR, { recursive: true });
  writeFileSync(file, JSON.stringify(s, null, 2), { mode: 0o600 });
  return s;
}

async function main(): Promise<void> {
  const env = loadEnv();
  const log = createLogger({ level: env.LOG_LEVEL, name: 'avatar-sessions' });
  // OpenTelemetry traces when the OTEL_* variables ask for them (src/tracing.ts); otherwise nothing starts.
  const tracing = await startTracing(tracingSettings(env), { serviceName: 'avatar-sessions', log });
  const logDir = path.join(DATA_DIR, 'logs');
  mkdirSync(logDir, { recursive: true });
  const secrets = devSecrets();
  for (const v of Object.values(secrets)) pinSecret(v);

  // One npm start per data directory; servers a killed one left behind are stopped before their
  // ports are needed, and each server spawned from here on is recorded (src/dev/pid-file.ts).
  const claim = await DataDirClaim.claim(DATA_DIR, (msg) => {
    log.warn(msg);
    process.stderr.write(`npm start: ${msg}\n`);
  });
  onProcessStart((p) => claim.add(p));

  const stops: { name: string; stop: () => Promise<unknown> }[] = [];
  const lines: string[] = [];
  let stopping = false;
  const shutdown = async (code: number) => {
    if (stopping) return;
    stopping = true;
    log.info('shutting down');
    for (const s of stops.reverse()) {
      try {
        await s.stop();
      } catch (err) {
        log.warn({ err, component: s.name }, 'stop failed');
      }
    }
    claim.release();
    await tracing?.shutdown().catch((err: unknown) => log.warn({ err }, 'trace export at shutdown failed'));
    await dispose();
    process.exit(code);
  };
  process.on('SIGINT', () => void shutdown(0));
  process.on('SIGTERM', () => void shutdown(0));
  // A closed terminal: stop like Ctrl-C rather than die with the servers still up.
  process.on('SIGHUP', () => void shutdown(0));

  // Open modes (the demo page without a token, the codec for the embedded UI) only when every piece
  // is this process's own, on loopback: nothing real (a customer's LiveKit, a Runway account, a shared
  // Temporal) is ever reachable without a token.
  const { demoOpen, codecOpen } = embeddedOpenModes({ ...env, TEMPORAL_ADDRESS: process.env.TEMPORAL_ADDRESS });

  try {
    // Every fixed port at once, before anything binds: a taken one is named with its variable at once.
    await assertPortsFree(portsToCheck(env));
    installRuntime(log, env.METRICS_PORT, env.METRICS_HOST);
    // rtc-node's invalid-handle error from a finalizer must not end every relay of the process.
    guardRtcHandleErrors((msg, fields) => log.warn(fields, msg));

    // Temporal
    let temporal: TemporalDevServer | undefined;
    if (!process.env.TEMPORAL_ADDRESS) {
      temporal = await startTemporalDevServer({
        port: env.DEV_TEMPORAL_PORT || undefined,
        uiPort: env.TEMPORAL_UI_PORT || undefined,
        dbFile: path.join(DATA_DIR, 'temporal.db'),
        logFile: path.join(logDir, 'temporal.log'),
        // The UI decrypts history through this service's codec endpoint (served by the API below),
        // open on loopback when the whole stack is embedded; the UI cannot send a codec token.
        codecEndpoint: codecOpen ? `http://127.0.0.1:${env.API_PORT}/codec` : undefined,
      });
      stops.push({ name: 'temporal', stop: () => temporal!.stop() });
      if (temporal.uiUrl) lines.push(`Temporal UI        ${temporal.uiUrl}`);
      lines.push(`Temporal gRPC      ${temporal.address} (dev server, SQLite in ${path.join(DATA_DIR, 'temporal.db')})`);
    } else {
      lines.push(`Temporal           ${process.env.TEMPORAL_ADDRESS} (from TEMPORAL_ADDRESS)`);
    }

    // The customer's LiveKit
    let livekit: ServiceConfig['livekit'];
    if (env.LIVEKIT_URL) {
      livekit = {
        url: env.LIVEKIT_URL,
        publicUrl: env.LIVEKIT_PUBLIC_URL ?? env.LIVEKIT_URL,
        apiKey: env.LIVEKIT_API_KEY!,
        apiSecret: env.LIVEKIT_API_SECRET!,
      };
      lines.push(`LiveKit            ${env.LIVEKIT_URL} (from LIVEKIT_URL)`);
    } else {
      // Its webhooks go to the API below: the avatar leaving reaches its session at once (no polling).
      const lk: LiveKitServer = await startLiveKitServer({
        port: env.DEV_LIVEKIT_PORT || undefined,
        apiKey: 'devkey',
        apiSecret: secrets.livekitSecret,
        logFile: path.join(logDir, 'livekit.log'),
        label: 'livekit',
        webhookUrls: [`http://127.0.0.1:${env.API_PORT}/v1/livekit/webhook`],
      });
      stops.push({ name: 'livekit', stop: () => lk.stop() });
      livekit = { url: lk.url, publicUrl: lk.url, apiKey: lk.apiKey, apiSecret: lk.apiSecret };
      lines.push(`LiveKit            ${lk.url} (dev server, key devkey)`);
    }

    // Runway (or its simulator)
    let runway: ServiceConfig['runway'];
    if (env.RUNWAYML_API_SECRET) {
      runway = { apiKey: env.RUNWAYML_API_SECRET, baseUrl: env.RUNWAYML_BASE_URL };
      lines.push(`Runway             ${env.RUNWAYML_BASE_URL ?? 'https://api.dev.runwayml.com'}`);
    } else {
      log.warn('RUNWAYML_API_SECRET is not set: using the built-in Runway simulator (no real avatars)');
      const avatarMedia = simAvatarMedia();
      const runwayLk = await startLiveKitServer({
        port: env.DEV_RUNWAY_LIVEKIT_PORT || undefined,
        apiKey: 'runwaykey',
        apiSecret: secrets.livekitRunwaySecret,
        logFile: path.join(logDir, 'livekit-runway-sim.log'),
        label: 'livekit-runway-sim',
      });
      stops.push({ name: 'livekit-runway-sim', stop: () => runwayLk.stop() });
      const sim = await startRunwaySimulator({
        port: env.RUNWAY_SIM_PORT,
        apiKey: secrets.runwaySimSecret,
        // Real avatar media by default, so the demo page shows video and plays sound.
        defaults: { avatarMedia },
        livekit: { url: runwayLk.url, apiKey: runwayLk.apiKey, apiSecret: runwayLk.apiSecret },
      });
      stops.push({ name: 'runway-sim', stop: () => sim.stop() });
      runway = { apiKey: sim.apiKey, baseUrl: sim.baseUrl };
      lines.push(`Runway simulator   ${sim.baseUrl} (RUNWAYML_API_SECRET not set; avatar media ${avatarMedia})`);
    }

    const config: ServiceConfig = {
      runway,
      livekit,
      secretsKey: Buffer.from(env.SESSION_SECRETS_KEY ?? secrets.secretsKey, 'base64'),
      secretsOldKeys: oldKeys(env),
      apiToken: env.SESSION_API_TOKEN ?? secrets.apiToken,
      apiPort: env.API_PORT,
      metricsPort: env.METRICS_PORT,
      logLevel: env.LOG_LEVEL,
      allowPlaintextPayloads: env.SESSION_ALLOW_PLAINTEXT_PAYLOADS,
    };

    const { connection, namespace } = await connectWorker(temporal ? { address: temporal.address } : undefined);
    const workers: RunnableWorker[] = [
      await createSessionWorker({ connection, namespace, config, tracing, ...workerSettings(env) }),
      await createMediaWorker({ connection, namespace, config, tracing }),
    ];
    const running = workers.map((w) => w.run());
    stops.push({
      name: 'workers',
      stop: async () => {
        for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
        await Promise.allSettled(running);
        await connection.close();
      },
    });
    if (tracing) lines.push('Traces             on (OTEL_* variables, docs/tracing.md)');
    lines.push(
      `Workers            avatar-sessions + avatar-media (${env.METRICS_PORT ? `metrics http://${env.METRICS_HOST}:${env.METRICS_PORT}/metrics` : 'metrics off: METRICS_PORT=0'})`,
    );
    if (env.REAPER_INTERVAL_SECONDS > 0) {
      const client = await connectClient(temporal ? { address: temporal.address } : undefined, encryptedDataConverter(codecKeys(config), codecOptions(config)));
      await ensureReaperSchedule(client, { everySeconds: env.REAPER_INTERVAL_SECONDS });
      await client.connection.close();
      lines.push(`Reaper             schedule ${REAPER_SCHEDULE_ID}, every ${env.REAPER_INTERVAL_SECONDS} s`);
    }

    const apiClient = await connectClient(
      temporal ? { address: temporal.address } : undefined,
      encryptedDataConverter(codecKeys(config), codecOptions(config)),
      tracing,
    );
    const uiOrigins = temporal?.uiUrl ? [temporal.uiUrl, temporal.uiUrl.replace('127.0.0.1', 'localhost')] : [];
    const codecKeysAll = codecKeys(config);
    const api = await startApiServer({
      config,
      sessions: new SessionsClient(apiClient),
      log,
      tracer: tracing?.tracer,
      // The codec: with SESSION_CODEC_TOKEN, or open to this machine when the whole stack is embedded
      // (the embedded UI cannot send a token); otherwise there is none.
      codec:
        env.SESSION_CODEC_TOKEN || codecOpen
          ? {
              codec: new AesGcmPayloadCodec(codecKeysAll, { allowPlaintext: true }),
              allowedOrigins: uiOrigins,
              ...(env.SESSION_CODEC_TOKEN ? { token: env.SESSION_CODEC_TOKEN } : { openOnLoopback: true }),
            }
          : undefined,
      // The demo page: without SESSION_API_TOKEN, on a fully embedded stack, a browser on this machine uses it without a token.
      demo: { open: demoOpen },
      metricsPort: env.API_METRICS_PORT || undefined,
      allowTimingOverrides: env.API_ALLOW_TIMING_OVERRIDES,
    });
    stops.push({
      name: 'api',
      stop: async () => {
        await api.close();
        await apiClient.connection.close();
      },
    });
    lines.push(
      `HTTP API           ${api.url}  (Authorization: Bearer ${env.SESSION_API_TOKEN ? '$SESSION_API_TOKEN' : `see ${path.join(DATA_DIR, 'dev-secrets.json')} apiToken`})`,
    );
    lines.push(`Demo page          ${api.url}/demo/  (${demoOpen ? 'no token, from this machine' : 'asks for the API token'})`);
    if (api.metricsUrl) lines.push(`API metrics        ${api.metricsUrl}`);
    lines.push(
      `Codec              ${env.SESSION_CODEC_TOKEN ? `${api.url}/codec (Authorization: Bearer $SESSION_CODEC_TOKEN)` : codecOpen ? `${api.url}/codec (open to this machine: embedded stack)` : 'off (set SESSION_CODEC_TOKEN)'}`,
    );

    process.stdout.write(`\nRunway avatar sessions are up:\n  ${lines.join('\n  ')}\nCtrl-C stops everything.\n\n`);
    Promise.race(running).catch((err) => {
      log.error({ err }, 'a worker failed');
      void shutdown(1);
    });
  } catch (err) {
    if (err instanceof ConfigError) log.error(err.message);
    else log.error({ err }, 'start failed');
    if (err instanceof PortsTakenError) tellTerminal(`cannot start: ${err.message}`);
    else if (err instanceof ConfigError) tellTerminal(err.message);
    else tellTerminal(`start failed: ${err instanceof Error ? err.message : String(err)} (logs in ${logDir})`);
    await shutdown(1);
  }
}

main().catch((err) => {
  if (err instanceof DataDirInUseError) tellTerminal(err.message);
  // eslint-disable-next-line no-console -- the process failed before (or while) building its logger: stderr is all there is
  else console.error(err instanceof ConfigError ? err.message : err);
  process.exit(1);
});
