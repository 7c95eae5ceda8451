// `npm start`'s embedded stack (src/main.ts) as a child process, on free ports and with its own
// data directory, so a test drives exactly what a developer runs without touching their .data or ports.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../../src/dev/net';

const ROOT = path.resolve(__dirname, '..', '..');

export interface EmbeddedStack {
  /** The pid of src/main.ts (what `npm start` runs). */
  pid: number;
  /** http://127.0.0.1:PORT of the HTTP API (and the demo page under /demo/). */
  apiUrl: string;
  dataDir: string;
  logFile: string;
  /** What the stack printed when it was up, keyed by the label (`Temporal gRPC`, `LiveKit`, …). */
  endpoints: Record<string, string>;
  /** .data/dev-secrets.json of this stack. */
  secrets: { apiToken: string; livekitSecret: string; secretsKey: string };
  /** Everything the stack logged so far. */
  log(): string;
  /** SIGTERM to the stack (it stops its servers), SIGKILL to whatever is left after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

/** Every process under `pid`, deepest last. */
export function descendants(pid: number): number[] {
  const out: number[] = [];
  const res = spawnSync('ps', ['-e', '-o', 'pid=,ppid='], { encoding: 'utf8' });
  const children = new Map<number, number[]>();
  for (const line of res.stdout.split('\n')) {
    const [c, p] = line.trim().split(/\s+/).map(Number);
    if (c && p) children.set(p, [...(children.get(p) ?? []), c]);
  }
  const walk = (p: number) => {
    for (const c of children.get(p) ?? []) {
      out.push(c);
      walk(c);
    }
  };
  walk(pid);
  return out;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** The variables that would point the stack at someone's real services: never inherited. */
const SCRUBBED =
  /^(TEMPORAL_(ADDRESS|NAMESPACE|API_KEY|TLS.*|PROFILE|CONFIG_FILE|UI_PORT)|LIVEKIT_(URL|PUBLIC_URL|API_KEY|API_SECRET)|RUNWAYML_.*|RUNWAY_SIM_.*|SESSION_.*|API_PORT|API_HOST|API_METRICS_PORT|API_ALLOW_TIMING_OVERRIDES|METRICS_PORT|MEDIA_METRICS_PORT|DEV_.*|REAPER_INTERVAL_SECONDS|CODEC_CORS_ORIGINS)$/;

/** The environment of an embedded stack: nothing of the caller's real services, every port free (0) unless `overrides` pins it. */
export function embeddedStackEnv(dataDir: string, overrides: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !SCRUBBED.test(k)));
  return Object.assign(env, {
    DEV_DATA_DIR: dataDir,
    DEV_TEMPORAL_PORT: '0',
    TEMPORAL_UI_PORT: '0',
    DEV_LIVEKIT_PORT: '0',
    DEV_RUNWAY_LIVEKIT_PORT: '0',
    RUNWAY_SIM_PORT: '0',
    METRICS_PORT: '0',
    API_METRICS_PORT: '0',
    REAPER_INTERVAL_SECONDS: '0',
    NODE_ENV: 'development',
    ...overrides,
  });
}

/**
 * Starts src/main.ts and resolves once it is up. `dataDir`: a directory of the caller's (kept on stop),
 * else a fresh one (removed on stop). `env` overrides the defaults, e.g. pinned ports.
 */
export async function startEmbeddedStack(opts: { env?: Record<string, string>; dataDir?: string; logDir: string; timeoutMs?: number }): Promise<EmbeddedStack> {
  const ownDataDir = !opts.dataDir;
  const dataDir = opts.dataDir ?? mkdtempSync(path.join(os.tmpdir(), 'avatar-embedded-'));
  const apiPort = opts.env?.API_PORT ? Number(opts.env.API_PORT) : await freePort();
  const logFile = path.join(opts.logDir, `embedded-stack-${process.pid}-${Date.now()}.log`);
  const env = embeddedStackEnv(dataDir, { API_PORT: String(apiPort), ...opts.env });
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: ROOT,
    env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out = createWriteStream(logFile);
  let text = '';
  const collect = (d: Buffer) => {
    text += d.toString('utf8');
    out.write(d);
  };
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  let exitCode: number | string | null | undefined;
  const exited = new Promise<void>((resolve) =>
    child.once('exit', (code, signal) => {
      exitCode = code ?? signal;
      resolve();
    }),
  );
  // If this test process dies, the stack must not outlive it.
  const onExit = () => {
    for (const pid of [child.pid!, ...descendants(child.pid!)])
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
  };
  process.on('exit', onExit);

  let stopped = false;
  const stop = async (graceMs = 20_000) => {
    if (stopped) return;
    stopped = true;
    const pids = descendants(child.pid!);
    if (exitCode === undefined) {
      try {
        process.kill(-child.pid!, 'SIGTERM');
      } catch {
        /* gone */
      }
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([exited, new Promise((r) => (timer = setTimeout(r, graceMs)))]);
      clearTimeout(timer);
    }
    // The stack's servers run in process groups of their own: whatever it did not stop goes now.
    for (const pid of [child.pid!, ...pids]) {
      if (!alive(pid)) continue;
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        /* not a group leader */
      }
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    process.off('exit', onExit);
    await new Promise<void>((r) => out.end(r));
    if (ownDataDir) rmSync(dataDir, { recursive: true, force: true });
  };

  const apiUrl = `http://127.0.0.1:${apiPort}`;
  const deadline = Date.now() + (opts.timeoutMs ?? 180_000);
  try {
    for (;;) {
      if (exitCode !== undefined) throw new Error(`the embedded stack exited (${exitCode}) before it was up; see ${logFile}`);
      if (Date.now() > deadline) throw new Error(`the embedded stack was not up within ${opts.timeoutMs ?? 180_000} ms; see ${logFile}`);
      // Up = it printed its summary (the API answers just before that).
      if (text.includes('Runway avatar sessions are up')) {
        const res = await fetch(`${apiUrl}/healthz`).catch(() => undefined);
        if (res?.ok) break;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  } catch (err) {
    await stop(5000);
    throw err;
  }
  const endpoints: Record<string, string> = {};
  for (const m of text.matchAll(/^ {2}([A-Za-z][A-Za-z ]*?) {2,}(\S+)/gm)) endpoints[m[1]!] = m[2]!;
  const secrets = JSON.parse(readFileSync(path.join(dataDir, 'dev-secrets.json'), 'utf8'));
  return { pid: child.pid!, apiUrl, dataDir, logFile, endpoints, secrets, log: () => text, stop };
}
