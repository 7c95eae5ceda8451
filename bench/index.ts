// Benchmarks (`npm run bench`, `npm run bench -- --json`): what durability costs. The same sessions on
// the Runway simulator, once through this service (Temporal workflow + activities) and once through a
// plain script doing the same HTTP calls in a loop; then a burst to see throughput and history size.
// Real servers: a Temporal dev server, LiveKit, the simulator over HTTP. Not part of the test suite.
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { dispose } from '@livekit/rtc-node';
import { Runtime, DefaultLogger } from '@temporalio/worker';
import { SessionsClient } from '../src/client/sessions';
import { startLiveKitServer } from '../src/dev/livekit-server';
import { startTemporalDevServer } from '../src/dev/temporal-server';
import { RunwayClient } from '../src/runway/client';
import { startRunwaySimulator } from '../src/runway-sim/server';
import { encryptedDataConverter } from '../src/secrets/payload-codec';
import { connectClient, connectWorker } from '../src/temporal';
import { createMediaWorker, createSessionWorker, workerSettings, type RunnableWorker } from '../src/workers';
import { loadEnv } from '../src/config';
import { sessionWorkflowId } from '../workflows/shared';
import type { SessionInput, SessionState } from '../workflows/types';

const { values } = parseArgs({ options: { json: { type: 'boolean' }, sessions: { type: 'string' }, burst: { type: 'string' } }, strict: true });
const N = Number(values.sessions ?? 10);
const BURST = Number(values.burst ?? 50);

const pct = (xs: number[], p: number) => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  const logDir = path.resolve(__dirname, '..', '.data', 'bench-logs');
  mkdirSync(logDir, { recursive: true });
  const [temporal, customer, runwayLk] = await Promise.all([
    startTemporalDevServer({ logFile: path.join(logDir, 'temporal.log') }),
    startLiveKitServer({ label: 'customer', logFile: path.join(logDir, 'livekit-customer.log') }),
    startLiveKitServer({ label: 'runway', logFile: path.join(logDir, 'livekit-runway.log') }),
  ]);
  const sim = await startRunwaySimulator({
    livekit: { url: runwayLk.url, apiKey: runwayLk.apiKey, apiSecret: runwayLk.apiSecret },
    defaults: { avatarMedia: 'off' },
  });
  const secretsKey = randomBytes(32);
  const config = {
    runway: { apiKey: sim.apiKey, baseUrl: sim.baseUrl },
    livekit: { url: customer.url, publicUrl: customer.url, apiKey: customer.apiKey, apiSecret: customer.apiSecret },
    secretsKey,
  };
  const { connection } = await connectWorker({ address: temporal.address });
  // The service's production polling defaults (250 ms first poll, backing off to 2 s).
  const workers: RunnableWorker[] = [
    await createSessionWorker({ connection, config, ...workerSettings(loadEnv()) }),
    await createMediaWorker({ connection, config }),
  ];
  const runs = workers.map((w) => w.run());
  const client = await connectClient({ address: temporal.address }, encryptedDataConverter([secretsKey]));
  const sessions = new SessionsClient(client);
  const runway = new RunwayClient({ apiKey: sim.apiKey, baseUrl: sim.baseUrl });

  const input = (tag: string): SessionInput => {
    const conversationId = `bench-${tag}-${randomBytes(4).toString('hex')}`;
    return { conversationId, avatar: { type: 'runway-preset', presetId: 'cooking-teacher' }, livekit: { roomName: `room-${conversationId}` }, mode: 'relay' };
  };

  /** Through the service: start → READY (the workflow leaves waiting_ready) → end; time-to-ready from the workflow's own clock. */
  async function viaService(n: number, tag: string): Promise<{ ttr: number[]; requests: number; events: number[] }> {
    const before = sim.requests().length;
    const inputs = Array.from({ length: n }, () => input(tag));
    const t0 = new Map<string, number>();
    await Promise.all(
      inputs.map(async (i) => {
        t0.set(i.conversationId, Date.now());
        await sessions.startSession(i);
      }),
    );
    const ttr: number[] = [];
    await Promise.all(
      inputs.map(async (i) => {
        let s: SessionState | undefined;
        for (;;) {
          s = await sessions.getSession(i.conversationId);
          if (s && (s.phaseTimes.consuming || s.phase === 'failed')) break;
          await sleep(50);
        }
        ttr.push(Date.parse(s.phaseTimes.consuming ?? s.phaseTimes.failed!) - t0.get(i.conversationId)!);
        await sessions.endSession(i.conversationId);
      }),
    );
    const events: number[] = [];
    for (const i of inputs) {
      const h = client.workflow.getHandle(sessionWorkflowId(i.conversationId));
      await h.result().catch(() => undefined);
      events.push((await h.fetchHistory()).events?.length ?? 0);
    }
    return { ttr, requests: (sim.requests().length - before) / n, events };
  }

  /** A plain script: create → poll (same 250 ms → 2 s backoff) → consume → cancel, no durability. */
  async function plain(n: number): Promise<{ ttr: number[]; requests: number }> {
    const before = sim.requests().length;
    const ttr: number[] = [];
    await Promise.all(
      Array.from({ length: n }, async () => {
        const t0 = Date.now();
        const { id } = await runway.createSession({ model: 'gwm1_avatars', avatar: { type: 'runway-preset', presetId: 'cooking-teacher' } });
        let wait = 250;
        for (;;) {
          const s = await runway.getSession(id);
          if (s.status === 'READY') {
            ttr.push(Date.now() - t0);
            await runway.consumeSession(id, s.sessionKey);
            break;
          }
          await sleep(wait);
          wait = Math.min(2000, wait * 2);
        }
        await runway.cancelSession(id);
      }),
    );
    return { ttr, requests: (sim.requests().length - before) / n };
  }

  const rows: Record<string, number | string>[] = [];
  // Warm-up, not measured: the first sessions also start the admission controller (which asks for the
  // account's limit before its first grants) and fill the workers' caches; the rows are the steady state.
  sim.configure({ defaults: { provisioningMs: 0, avatarMedia: 'off' } });
  await viaService(N, 'warmup');
  for (const provisioningMs of [0, 2000]) {
    sim.configure({ defaults: { provisioningMs, avatarMedia: 'off' } });
    const s = await viaService(N, `p${provisioningMs}`);
    const p = await plain(N);
    rows.push({
      provisioning_ms: provisioningMs,
      sessions: N,
      service_ttr_p50_ms: pct(s.ttr, 50),
      service_ttr_p95_ms: pct(s.ttr, 95),
      plain_ttr_p50_ms: pct(p.ttr, 50),
      plain_ttr_p95_ms: pct(p.ttr, 95),
      ttr_p50_ratio: Number((pct(s.ttr, 50) / pct(p.ttr, 50)).toFixed(2)),
      service_runway_requests_per_session: Number(s.requests.toFixed(1)),
      plain_runway_requests_per_session: Number(p.requests.toFixed(1)),
      history_events_per_session_p50: pct(s.events, 50),
    });
  }

  // Burst: BURST sessions started at once.
  sim.configure({ defaults: { provisioningMs: 0, avatarMedia: 'off' } });
  const cpu0 = process.cpuUsage();
  const b0 = Date.now();
  const burst = await viaService(BURST, 'burst');
  const burstMs = Date.now() - b0;
  const cpu = process.cpuUsage(cpu0);
  const burstRow = {
    burst_sessions: BURST,
    burst_wall_s: Number((burstMs / 1000).toFixed(2)),
    sessions_per_s: Number((BURST / (burstMs / 1000)).toFixed(1)),
    burst_ttr_p50_ms: pct(burst.ttr, 50),
    burst_ttr_p95_ms: pct(burst.ttr, 95),
    history_events_per_session_p50: pct(burst.events, 50),
    worker_process_rss_mb: Math.round(process.memoryUsage().rss / 1e6),
    worker_process_cpu_s: Number(((cpu.user + cpu.system) / 1e6).toFixed(1)),
    orphans_left: sim.orphans().length,
  };

  const machine = `${os.cpus().length} CPU ${os.cpus()[0]?.model ?? ''}, ${Math.round(os.totalmem() / 1e9)} GB, Node ${process.version}`;
  console.log(`\nOrchestration overhead (time to READY; the service also records state, history, search attributes) — ${machine}`);
  console.table(rows);
  console.log('Burst through the service (start → READY → end):');
  console.table([burstRow]);
  if (values.json) console.log(JSON.stringify({ machine, overhead: rows, burst: burstRow }));

  for (const w of workers) w.shutdown();
  await Promise.allSettled(runs);
  await connection.close();
  await client.connection.close();
  await runway.close();
  await sim.stop();
  await dispose();
  await Promise.all([customer.stop(), runwayLk.stop(), temporal.stop()]);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
