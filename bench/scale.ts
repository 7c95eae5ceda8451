// Throughput and scale (`npm run bench:scale -- --sessions 1000 --hold-seconds 300 [--no-renewal] [--json]`):
//  1. start-rate ramp: sessions started per second, stepping up (--rates 2,5,10,20), each ended as soon
//     as it is live, until the first error or until p95 time-to-live doubles against the first step;
//  2. hold: N direct-mode sessions brought live and held on ONE orchestration worker (its own process,
//     src/worker.ts, so RSS and CPU are its own), sampled from /proc; then ended, and orphans counted.
// Real servers: a Temporal dev server, the customer's LiveKit, the Runway simulator (in this process)
// whose avatars are light pion participants of one Go process (tools/light-avatars). The worker's
// LiveKit RoomService calls go through a counting proxy here. Not part of the test suite.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, createWriteStream, readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Runtime, DefaultLogger } from '@temporalio/worker';
import { RoomServiceClient } from 'livekit-server-sdk';
import { SessionsClient } from '../src/client/sessions';
import { startLiveKitServer } from '../src/dev/livekit-server';
import { startTemporalDevServer } from '../src/dev/temporal-server';
import { startRunwaySimulator } from '../src/runway-sim/server';
import { lightAvatarDisconnects, lightAvatarsInfo } from '../src/runway-sim/pion-avatar';
import { encryptedDataConverter } from '../src/secrets/payload-codec';
import { connectClient } from '../src/temporal';
import { sessionWorkflowId } from '../workflows/shared';
import type { SessionInput, SessionTiming } from '../workflows/types';

const ROOT = path.resolve(__dirname, '..');
const { values } = parseArgs({
  options: {
    json: { type: 'boolean' },
    sessions: { type: 'string' },
    'hold-seconds': { type: 'string' },
    'no-renewal': { type: 'boolean' },
    'start-rate': { type: 'string' },
    rates: { type: 'string' },
    'step-seconds': { type: 'string' },
    'no-ramp': { type: 'boolean' },
    'no-hold': { type: 'boolean' },
    'provisioning-ms': { type: 'string' },
    'worker-activities': { type: 'string' },
  },
  strict: true,
});
const N = Number(values.sessions ?? 100);
const HOLD_S = Number(values['hold-seconds'] ?? 60);
const RENEWAL = !values['no-renewal'];
const START_RATE = Number(values['start-rate'] ?? 20);
const RATES = (values.rates ?? '2,5,10,20,40').split(',').map(Number);
const STEP_S = Number(values['step-seconds'] ?? 15);
const PROVISIONING_MS = Number(values['provisioning-ms'] ?? 1000);
const WORKER_ACTIVITIES = Number(values['worker-activities'] ?? Math.max(200, 2 * N + 100));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pct = (xs: number[], p: number) => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};
const round = (x: number, d = 1) => Number(x.toFixed(d));
const log = (msg: string) => process.stderr.write(`[scale ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

/** utime+stime in seconds and RSS in MB of a process, from /proc. */
function procSample(pid: number): { cpuS: number; rssMb: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14, 15)
    const rssKb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
    return { cpuS: ticks / 100, rssMb: rssKb / 1024 };
  } catch {
    return undefined;
  }
}

/** Runs `fn` for each item, at most `limit` at a time. */
async function pool<T>(items: T[], limit: number, fn: (t: T) => Promise<void>): Promise<void> {
  let i = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (i < items.length) await fn(items[i++]!);
    }),
  );
}

/** A pass-through HTTP proxy to LiveKit's API that counts Twirp calls by method. */
async function countingProxy(target: string): Promise<{ url: string; counts: Map<string, number>; total: () => number; close: () => void }> {
  const t = new URL(target);
  const counts = new Map<string, number>();
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const server = http.createServer((req, res) => {
    const method = req.url?.split('/').pop() ?? '?';
    counts.set(method, (counts.get(method) ?? 0) + 1);
    const up = http.request({ host: t.hostname, port: t.port, path: req.url, method: req.method, headers: req.headers, agent }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on('error', () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    counts,
    total: () => [...counts.values()].reduce((a, b) => a + b, 0),
    close: () => {
      server.close();
      agent.destroy();
    },
  };
}

async function main(): Promise<void> {
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  const t00 = Date.now();
  const logDir = path.join(ROOT, '.data', 'bench-logs');
  mkdirSync(logDir, { recursive: true });
  execFileSync('bash', [path.join(ROOT, 'scripts', 'install-tools.sh'), '--light-avatars'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  const [temporal, customer] = await Promise.all([
    startTemporalDevServer({ logFile: path.join(logDir, 'scale-temporal.log') }),
    startLiveKitServer({ label: 'customer', logFile: path.join(logDir, 'scale-livekit-customer.log') }),
  ]);
  // Direct mode only: the simulator needs no LiveKit of its own. Renewal off: the runtime cap is lifted
  // so sessions outlive the hold; on: Runway's ~5 min cap and the service renews ahead of it.
  const sim = await startRunwaySimulator({
    defaults: { provisioningMs: PROVISIONING_MS, avatarMedia: 'pion', runtimeCapSeconds: RENEWAL ? 300 : 24 * 3600 },
    account: { maxConcurrentSessions: 2 * N + 100 },
  });
  const proxy = await countingProxy(customer.httpUrl);
  const secretsKey = randomBytes(32);
  const workerLog = createWriteStream(path.join(logDir, 'scale-worker.log'));
  const worker: ChildProcess = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src', 'worker.ts')], {
    cwd: ROOT,
    env: {
      ...process.env,
      TEMPORAL_ADDRESS: temporal.address,
      TEMPORAL_NAMESPACE: 'default',
      RUNWAYML_API_SECRET: sim.apiKey,
      RUNWAYML_BASE_URL: sim.baseUrl,
      LIVEKIT_URL: proxy.url,
      LIVEKIT_PUBLIC_URL: customer.url,
      LIVEKIT_API_KEY: customer.apiKey,
      LIVEKIT_API_SECRET: customer.apiSecret,
      SESSION_SECRETS_KEY: secretsKey.toString('base64'),
      METRICS_PORT: '0',
      REAPER_INTERVAL_SECONDS: '0',
      LOG_LEVEL: 'warn',
      WORKER_MAX_CONCURRENT_ACTIVITIES: String(WORKER_ACTIVITIES),
      WORKER_MAX_CONCURRENT_WORKFLOW_TASKS: process.env.WORKER_MAX_CONCURRENT_WORKFLOW_TASKS ?? '100',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  worker.stdout!.pipe(workerLog);
  worker.stderr!.pipe(workerLog);
  let workerExit: string | undefined;
  worker.once('exit', (code, signal) => {
    workerExit = `worker exited (${signal ?? code})`;
    log(workerExit);
  });
  // The worker logs JSON at warn level; wait until it polls (it answers a describe of its task queue).
  const client = await connectClient({ address: temporal.address }, encryptedDataConverter([secretsKey]));
  const sessions = new SessionsClient(client);
  for (const deadline = Date.now() + 120_000; ;) {
    const raw = await client.workflowService
      .describeTaskQueue({ namespace: 'default', taskQueue: { name: 'avatar-sessions' }, taskQueueType: 1 })
      .catch(() => undefined);
    if (raw?.pollers?.length) break;
    if (workerExit || Date.now() > deadline) throw new Error(workerExit ?? 'worker did not start polling within 120 s');
    await sleep(500);
  }
  log(`worker pid ${worker.pid} polling; setup ${round((Date.now() - t00) / 1000)} s`);
  const machine = `${os.cpus().length} vCPU ${os.cpus()[0]?.model.trim() ?? ''}, ${Math.round(os.totalmem() / 1e9)} GB, Node ${process.version}`;

  // An hour-long conversation (without maxDuration Runway, and the simulator, end a session after 300 s).
  const timing: Partial<SessionTiming> = RENEWAL ? {} : { sessionCapSeconds: 0 };
  const input = (tag: string): SessionInput => {
    const conversationId = `scale-${tag}-${randomBytes(4).toString('hex')}`;
    return {
      conversationId,
      avatar: { type: 'runway-preset', presetId: 'cooking-teacher' },
      livekit: { roomName: `room-${conversationId}`, agentIdentity: 'agent' },
      mode: 'direct',
      timing,
      maxDurationSeconds: 3600,
    };
  };
  /** Starts a session and waits until it is live; time-to-live in ms, or the error. */
  // The customer's room, made before the session: no end user or agent joins here, and LiveKit closes a
  // room whose only participant is an agent (the avatar) after its empty timeout (300 s on the dev server).
  const rooms = new RoomServiceClient(customer.httpUrl, customer.apiKey, customer.apiSecret);
  const bringLive = async (i: SessionInput): Promise<{ ttl?: number; error?: string }> => {
    const t0 = Date.now();
    try {
      await rooms.createRoom({ name: i.livekit.roomName, emptyTimeout: 4 * 3600, departureTimeout: 60 });
      const r = await Promise.race([
        sessions.startAndWaitLive(i),
        sleep(600_000).then(() => {
          throw new Error('not live within 600 s');
        }),
      ]);
      if (!r.live) throw new Error('no live info');
      return { ttl: Date.now() - t0 };
    } catch (err) {
      return { error: (err as Error).message.slice(0, 200) };
    }
  };
  const endAll = async (ids: string[]) => {
    await pool(ids, 50, async (id) => {
      await sessions.endSession(id).catch(() => undefined);
    });
    await pool(ids, 100, async (id) => {
      await client.workflow
        .getHandle(sessionWorkflowId(id))
        .result()
        .catch(() => undefined);
    });
  };
  const historyLen = async (id: string) => (await client.workflow.getHandle(sessionWorkflowId(id)).fetchHistory()).events?.length ?? 0;

  // ---- 1. start-rate ramp -----------------------------------------------------------------------
  const rampRows: Record<string, number | string>[] = [];
  let rampVerdict = 'not run';
  if (!values['no-ramp']) {
    let baseP95: number | undefined;
    rampVerdict = `no error and p95 below 2x the first step up to ${RATES.at(-1)}/s`;
    for (const rate of RATES) {
      const n = Math.max(1, Math.round(rate * STEP_S));
      const inputs = Array.from({ length: n }, () => input(`r${rate}`));
      const results: { ttl?: number; error?: string }[] = [];
      const load0 = os.loadavg()[0]!;
      const s0 = Date.now();
      await Promise.all(
        inputs.map(async (i, k) => {
          await sleep(s0 + (k * 1000) / rate - Date.now());
          const r = await bringLive(i);
          results.push(r);
          await sessions.endSession(i.conversationId).catch(() => undefined);
        }),
      );
      const startedPerS = n / ((Date.now() - s0) / 1000);
      await endAll(inputs.map((i) => i.conversationId));
      const ttls = results.flatMap((r) => (r.ttl !== undefined ? [r.ttl] : []));
      const errors = results.filter((r) => r.error);
      const p95 = pct(ttls, 95);
      baseP95 ??= p95;
      rampRows.push({
        target_per_s: rate,
        sessions: n,
        live: ttls.length,
        errors: errors.length,
        ttl_p50_ms: pct(ttls, 50),
        ttl_p95_ms: p95,
        p95_vs_first: round(p95 / baseP95, 2),
        completed_per_s: round(startedPerS, 1),
        load1: round(load0, 1),
      });
      log(`ramp ${rate}/s: ${JSON.stringify(rampRows.at(-1))}${errors.length ? ` first error: ${errors[0]!.error}` : ''}`);
      if (errors.length) {
        rampVerdict = `first error at ${rate}/s: ${errors[0]!.error}`;
        break;
      }
      if (p95 >= 2 * baseP95) {
        rampVerdict = `p95 time-to-live doubled at ${rate}/s`;
        break;
      }
      if (workerExit) {
        rampVerdict = workerExit;
        break;
      }
    }
  }

  // ---- 2. hold N live sessions ----------------------------------------------------------------------
  let holdRow: Record<string, number | string> | undefined;
  if (!values['no-hold'] && !workerExit) {
    const pid = worker.pid!;
    const samples: { at: number; cpuS: number; rssMb: number }[] = [];
    let peakActive = 0;
    const sample = () => {
      const s = procSample(pid);
      if (s) samples.push({ at: Date.now(), ...s });
      peakActive = Math.max(peakActive, sim.activeCount());
    };
    const sampler = setInterval(sample, 2000);
    sample();
    const rssStart = samples[0]?.rssMb ?? NaN;
    const inputs = Array.from({ length: N }, () => input('hold'));
    const results: { ttl?: number; error?: string }[] = new Array(N);
    let done = 0;
    const r0 = Date.now();
    const load0 = os.loadavg()[0]!;
    let progress = setInterval(
      () =>
        log(
          `ramp-up: ${done} done, ${results.filter((r) => r?.ttl !== undefined).length} live, ${results.filter((r) => r?.error).length} errors, rss ${round(samples.at(-1)?.rssMb ?? 0, 0)} MB`,
        ),
      10_000,
    );
    await Promise.all(
      inputs.map(async (i, k) => {
        await sleep(r0 + (k * 1000) / START_RATE - Date.now());
        results[k] = await bringLive(i);
        done++;
      }),
    );
    clearInterval(progress);
    const rampS = (Date.now() - r0) / 1000;
    const liveIds = inputs.map((i) => i.conversationId);
    const ttls = results.flatMap((r) => (r.ttl !== undefined ? [r.ttl] : []));
    const errors = results.filter((r) => r.error);
    log(`${ttls.length}/${N} live after ${round(rampS)} s (${errors.length} errors${errors.length ? `: ${errors[0]!.error}` : ''}); holding ${HOLD_S} s`);

    // Hold: CPU and RSS of the worker, Runway and LiveKit request rates.
    const simReq0 = sim.requests().length;
    const lk0 = proxy.total();
    const lkBy0 = new Map(proxy.counts);
    const h0 = Date.now();
    const cpu0 = procSample(pid);
    const loads: number[] = [];
    progress = setInterval(() => {
      loads.push(os.loadavg()[0]!);
      log(`holding: rss ${round(samples.at(-1)?.rssMb ?? 0, 0)} MB, sim active ${sim.activeCount()}, ${workerExit ?? 'worker up'}`);
    }, 30_000);
    while (Date.now() - h0 < HOLD_S * 1000 && !workerExit) await sleep(1000);
    clearInterval(progress);
    const holdS = (Date.now() - h0) / 1000;
    const cpu1 = procSample(pid);
    const runwayPerS = (sim.requests().length - simReq0) / holdS;
    const lkPerS = (proxy.total() - lk0) / holdS;
    const lkBy = Object.fromEntries([...proxy.counts].map(([k, v]) => [k, round((v - (lkBy0.get(k) ?? 0)) / holdS, 1)]).filter(([, v]) => (v as number) > 0));
    const liveNow = sim.activeCount();
    // Runway sessions that ended before teardown, by what ended them (avatar_left: the avatar lost its room).
    const endedEarly: Record<string, number> = {};
    for (const s of sim.sessions()) if (s.endedBy && Date.parse(s.createdAt) >= r0) endedEarly[s.endedBy] = (endedEarly[s.endedBy] ?? 0) + 1;
    // History of live sessions (a sample; with renewal, of the current run).
    const sampleIds = liveIds.filter((_, k) => results[k]?.ttl !== undefined).slice(0, 20);
    const liveEvents: number[] = [];
    for (const id of sampleIds) liveEvents.push(await historyLen(id).catch(() => NaN));
    const rssPeakHold = Math.max(...samples.filter((s) => s.at >= r0).map((s) => s.rssMb));
    const rssHoldEnd = samples.at(-1)?.rssMb ?? NaN;

    // Teardown.
    const e0 = Date.now();
    await endAll(inputs.map((i) => i.conversationId));
    const teardownS = (Date.now() - e0) / 1000;
    await sleep(3000);
    clearInterval(sampler);
    sample();
    const endedEvents: number[] = [];
    for (const id of sampleIds) endedEvents.push(await historyLen(id).catch(() => NaN));
    const runs = await (async () => {
      let n = 0;
      for await (const _ of client.workflow.list({ query: `WorkflowType = 'avatarSession' AND ExecutionStatus = 'ContinuedAsNew'` })) n++;
      return n;
    })().catch(() => NaN);
    const info = lightAvatarsInfo();
    holdRow = {
      sessions: N,
      renewal: RENEWAL ? 'on (300 s cap)' : 'off',
      start_rate_per_s: START_RATE,
      ramp_s: round(rampS),
      live: ttls.length,
      errors: errors.length,
      first_error: errors[0]?.error ?? '',
      ttl_p50_ms: pct(ttls, 50),
      ttl_p95_ms: pct(ttls, 95),
      sim_active_peak: peakActive,
      sim_active_after_hold: liveNow,
      runway_sessions_ended_before_teardown: JSON.stringify(endedEarly),
      hold_s: round(holdS, 0),
      rss_start_mb: round(rssStart, 0),
      rss_peak_mb: round(rssPeakHold, 0),
      rss_end_of_hold_mb: round(rssHoldEnd, 0),
      rss_after_teardown_mb: round(samples.at(-1)?.rssMb ?? NaN, 0),
      cpu_pct_of_core_holding: cpu0 && cpu1 ? round(((cpu1.cpuS - cpu0.cpuS) / holdS) * 100) : NaN,
      history_events_live_p50: pct(liveEvents, 50),
      history_events_ended_p50: pct(endedEvents, 50),
      history_events_ended_max: Math.max(...endedEvents),
      continued_as_new_runs: runs,
      runway_requests_per_s: round(runwayPerS),
      livekit_roomservice_calls_per_s: round(lkPerS),
      livekit_calls_by_method_per_s: JSON.stringify(lkBy),
      teardown_s: round(teardownS),
      orphans: sim.orphans().length,
      light_avatars_left: info?.avatars ?? 0,
      light_avatar_disconnects: JSON.stringify(lightAvatarDisconnects()),
      load1_start: round(load0, 1),
      load1_holding_max: round(Math.max(...loads, 0), 1),
      worker: workerExit ?? 'up',
    };
  }

  console.log(
    `\nThroughput and scale — ${machine}, load ${os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}`,
  );
  if (rampRows.length) {
    console.log(`Start-rate ramp (${STEP_S} s per step, each session ended once live; provisioning ${PROVISIONING_MS} ms): ${rampVerdict}`);
    console.table(rampRows);
  }
  if (holdRow) {
    console.log(`Hold: ${N} direct sessions on one worker (process), light pion avatars`);
    console.table(Object.entries(holdRow).map(([k, v]) => ({ figure: k, value: v })));
  }
  if (values.json)
    console.log(
      JSON.stringify({
        machine,
        load: os.loadavg(),
        provisioningMs: PROVISIONING_MS,
        workerMaxConcurrentActivities: WORKER_ACTIVITIES,
        ramp: { stepSeconds: STEP_S, verdict: rampVerdict, steps: rampRows },
        hold: holdRow ?? null,
      }),
    );

  worker.kill('SIGTERM');
  await new Promise((r) => {
    if (worker.exitCode !== null || worker.signalCode) r(undefined);
    else worker.once('exit', r);
    setTimeout(r, 15_000);
  });
  if (worker.exitCode === null && !worker.signalCode) worker.kill('SIGKILL');
  await client.connection.close();
  proxy.close();
  await sim.stop();
  await Promise.all([customer.stop(), temporal.stop()]);
}

main().then(
  // Everything it started is stopped; a lingering handle (one run kept the process up) must not hold it.
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
