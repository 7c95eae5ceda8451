// The chaos harness (`npm run chaos`, and test/chaos.test.ts with a small N): sessions in every mode
// while the orchestration worker, the media worker and the Temporal dev server are SIGKILLed and
// restarted at seeded random points and the Runway simulator injects 5xx, 429, connection resets and
// lost create answers. At the end, after the reaper has run: every session completed or failed with a
// reason, no Runway session left billing, no simulator invariant violated, no participant of this
// service left in any room of either LiveKit server, and admission kept up: from the simulator's
// ledger, no session waited for capacity (or failed capacity_timeout) through a stretch of more than
// CAPACITY_SLACK_SECONDS while Runway's active sessions were below the account limit and every
// process was up. The harness never dies without a verdict: an error of its own (or an uncaught one
// in this process, e.g. from the simulator's rtc-node avatars) is a failed check, and the checks it
// can still make are made.
import { isInvalidHandleError } from '../media/rtc-guard';
import type { ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { RoomServiceClient } from 'livekit-server-sdk';
import { SessionsClient } from '../client/sessions';
import { startLiveKitServer, type LiveKitServer } from '../dev/livekit-server';
import { stablePort } from '../dev/net';
import { spawnServiceProcess } from '../dev/service-process';
import { startTemporalDevServer, type TemporalDevServer } from '../dev/temporal-server';
import { mulberry32, startRunwaySimulator, type RunwaySimulator, type SimConfig } from '../runway-sim/server';
import { FAILURE_CONVERTER_PATH, encryptedDataConverter } from '../secrets/payload-codec';

const quietLogger = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} };
import { DefaultLogger, Runtime, Worker, bundleWorkflowCode } from '@temporalio/worker';
import { EndReasonKey, PhaseKey, SESSION_TASK_QUEUE, SESSION_WORKFLOW_TYPE, sessionWorkflowId } from '../../workflows/shared';
import type { SessionInput, SessionMode, SessionState } from '../../workflows/types';
import { capacityWaits, type Outage } from './capacity';
import { NO_TRACING_SINKS, WORKFLOW_INTERCEPTOR_MODULES } from '../tracing';

const ROOT = path.resolve(__dirname, '..', '..');

export type ProcessKind = 'worker' | 'media-worker' | 'temporal';
const KINDS: ProcessKind[] = ['worker', 'media-worker', 'temporal'];

export interface ChaosOptions {
  sessions: number;
  seed: number;
  /** SIGKILLs of each process kind, spread over the chaos window (default: one per 6 sessions, at least 2). */
  killsPerKind?: number;
  /** How long sessions are started and processes killed (default: grows with the number of sessions). */
  chaosSeconds?: number;
  /** Each session ends (by request) after this long live, picked at random in the range. */
  liveSeconds?: [number, number];
  /** How long, after the chaos window, sessions may take to finish before the run fails. */
  drainSeconds?: number;
  /** Runway's runtime cap in the simulator (and the sessions' sessionCapSeconds): renewals happen. */
  runtimeCapSeconds?: number;
  /** The simulator's faults (default: see DEFAULT_FAULTS). */
  faults?: SimConfig['faults'];
  /** Where logs of the servers and workers go (default test-artifacts/chaos/<seed>-<time>). */
  logDir?: string;
  log?: (line: string) => void;
}

export const DEFAULT_FAULTS: SimConfig['faults'] = {
  '*': { status5xxRate: 0.03, status429Rate: 0.02, retryAfterMs: 300, resetRate: 0.02 },
  create: { status5xxRate: 0.05, status429Rate: 0.03, retryAfterMs: 300, resetRate: 0.03, loseAnswerRate: 0.08 },
};

export interface ChaosReport {
  seed: number;
  sessions: number;
  outcomes: { completed: number; failed: number; unfinished: number };
  reasons: Record<string, number>;
  modes: Record<string, number>;
  renewals: number;
  ambiguousCreates: number;
  kills: Record<ProcessKind, number>;
  /** Processes that exited on their own (not killed by the harness) and were restarted. */
  unexpectedExits: Record<ProcessKind, number>;
  faults: Record<string, number>;
  reaped: number;
  runwaySessions: number;
  orphans: string[];
  invariantViolations: string[];
  repeatConsumes: number;
  leftoverParticipants: string[];
  /** Session histories that do not replay with the workflow code (nondeterminism). */
  replayFailures: string[];
  /** Sessions that failed capacity_timeout. */
  capacityTimeouts: number;
  /**
   * The longest stretch (s) a session waited for capacity while Runway's active sessions (plus slots
   * granted to sessions on their way there) were below the account limit and every process was up;
   * the check fails above CAPACITY_SLACK_SECONDS. `runwaySeconds`: by Runway's count alone; `raw`:
   * by Runway's count, counting outages too.
   */
  longestCapacityWait: { seconds: number; rawSeconds: number; runwaySeconds: number; conversationId?: string };
  /** Sessions that waited (or failed capacity_timeout) while Runway had room: the admission invariant. */
  capacityViolations: string[];
  /** Processes that died on their own (worker, media worker, Temporal) or errors uncaught in the harness, with the error when known. */
  crashes: string[];
  elapsedSeconds: number;
  failures: string[];
  ok: boolean;
}

/** Deterministic PRNG: the simulator's, so a seed means the same thing in both. */
export const seededRandom = mulberry32;

/** A session may wait this long while Runway has room (a slot is being handed over: release, grant, create). */
export const CAPACITY_SLACK_SECONDS = 10;
/** After a process is back, time to catch up (a killed worker's workflow tasks time out after 10 s) before waits count again. */
const OUTAGE_GRACE_MS = 15_000;

/** Least time a restarted process is up before its next kill (plus up to as much again, at random). */
const MIN_UP_MS = 5000;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)));

/** Polls `fn` until it returns a value other than undefined, or gives up (undefined) at the deadline. */
async function until<T>(fn: () => Promise<T | undefined> | T | undefined, timeoutMs: number, intervalMs = 250): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch {
      // not yet (a server restarting)
    }
    if (Date.now() >= deadline) return undefined;
    await sleep(intervalMs);
  }
}

/** A worker process the harness can SIGKILL; restarted by the harness, and if it exits on its own. */
class WorkerSupervisor {
  child?: ChildProcess;
  kills = 0;
  unexpectedExits = 0;
  /** Exits on its own, with the last error its log shows. */
  readonly crashes: string[] = [];
  /** When it was down (a kill, or an exit on its own) until it polled again. */
  readonly outages: Outage[] = [];
  private generation = 0;
  private stopping = false;

  constructor(
    readonly kind: 'worker' | 'media-worker',
    private readonly env: () => NodeJS.ProcessEnv,
    private readonly logDir: string,
    private readonly log: (line: string) => void,
  ) {}

  private ready = false;

  private spawn(): void {
    const gen = ++this.generation;
    const logFile = path.join(this.logDir, `${this.kind}-${gen}.log`);
    const { child, started } = spawnServiceProcess(this.kind, this.env(), logFile);
    this.child = child;
    this.ready = false;
    void started.then(
      () => {
        if (this.child !== child) return;
        this.ready = true;
        const open = this.outages.at(-1);
        if (open && open.to === undefined) open.to = Date.now();
      },
      () => undefined,
    );
    child.once('exit', (code, signal) => {
      if (this.stopping || this.child !== child || signal === 'SIGKILL') return;
      // Exited on its own (Temporal unreachable at start, a crash): count it and start another.
      this.unexpectedExits++;
      if (this.outages.at(-1)?.to !== undefined || !this.outages.length) this.outages.push({ kind: this.kind, from: Date.now() });
      this.crashes.push(`${this.kind} #${gen} exited on its own (${code ?? signal}): ${lastErrorLine(logFile)}`);
      this.log(`${this.kind} #${gen} exited on its own (${code ?? signal}); restarting`);
      setTimeout(() => {
        if (!this.stopping && this.child === child) this.spawn();
      }, 1000);
    });
  }

  /** Starts the process and resolves once it polls (restarting it if it exits first); rejects after 90 s. */
  async start(): Promise<void> {
    this.spawn();
    if (!(await until(() => (this.ready ? true : undefined), 90_000, 100))) throw new Error(`${this.kind} did not start within 90 s`);
  }

  async kill(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    this.outages.push({ kind: this.kind, from: Date.now() });
    child.kill('SIGKILL');
    await exited;
    this.kills++;
  }

  /** Waits until the current process polls (after restarts by itself). */
  async ensureRunning(timeoutMs: number): Promise<boolean> {
    return (await until(() => (this.ready && this.child?.exitCode === null && this.child.signalCode === null ? true : undefined), timeoutMs)) === true;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(t);
  }
}

/** The last line of a log that names an error (what a process died of), or a note that none does. */
function lastErrorLine(file: string): string {
  try {
    const lines = readFileSync(file, 'utf8').split('\n').slice(-200);
    const line = [...lines].reverse().find((l) => /error|panic|fatal|invalid handle/i.test(l));
    return line ? line.slice(0, 300) : 'no error in its log';
  } catch {
    return 'no log';
  }
}

interface SessionRun {
  conversationId: string;
  mode: SessionMode;
  startAtMs: number;
  liveMs: number;
  state?: SessionState;
  closed: boolean;
  /** The closed workflow's state query failed (its history did not replay): the outcome comes from its search attributes. */
  queryFailed?: string;
}

export async function runChaos(opts: ChaosOptions): Promise<ChaosReport> {
  const t0 = Date.now();
  const log = opts.log ?? ((line: string) => console.log(line)); // eslint-disable-line no-console -- the chaos run's progress lines, for the person running it
  const rng = seededRandom(opts.seed);
  const n = opts.sessions;
  const killsPerKind = opts.killsPerKind ?? Math.max(2, Math.ceil(n / 6));
  const chaosMs = (opts.chaosSeconds ?? Math.max(25, Math.round(n * 1.5))) * 1000;
  const [liveMin, liveMax] = opts.liveSeconds ?? [3, 40];
  const cap = opts.runtimeCapSeconds ?? 30;
  const logDir = opts.logDir ?? path.join(ROOT, 'test-artifacts', 'chaos', `${opts.seed}-${new Date(t0).toISOString().replace(/[:.]/g, '-')}`);
  mkdirSync(logDir, { recursive: true });
  log(
    `chaos: seed ${opts.seed}, ${n} sessions, ${killsPerKind} kills per process kind over ${chaosMs / 1000} s; logs in ${path.relative(process.cwd(), logDir) || logDir}`,
  );

  const failures: string[] = [];
  let customer: LiveKitServer | undefined;
  let runwayLk: LiveKitServer | undefined;
  let temporal: TemporalDevServer | undefined;
  let sim: RunwaySimulator | undefined;
  let connection: Connection | undefined;
  const supervisors: WorkerSupervisor[] = [];
  const kills: Record<ProcessKind, number> = { worker: 0, 'media-worker': 0, temporal: 0 };
  const unexpectedExits: Record<ProcessKind, number> = { worker: 0, 'media-worker': 0, temporal: 0 };
  const runs: SessionRun[] = [];
  let reaped = 0;
  let orphans: string[] = [];
  let leftover: string[] = [];
  // Derived from the seed, so a run's histories (kept in its SQLite file) can be decrypted and replayed.
  const secretsKey = createHash('sha256').update(`chaos-secrets-${opts.seed}`).digest();
  const replayFailures: string[] = [];
  const outages: Outage[] = [];
  const crashes: string[] = [];
  let accountLimit = 0;
  // Errors nothing caught in this process (the simulator's avatars run here, on rtc-node): a failed
  // check and a crash in the report, not the end of the run.
  const onUncaught = (err: unknown) => {
    // rtc-node's invalid-handle error from a finalizer is contained by src/media/rtc-guard.ts (the
    // process goes on, nothing else ends): logged, not a crash.
    if (isInvalidHandleError(err)) return log('harness process: rtc-node dropped an already released handle (contained)');
    const line = `harness process: uncaught ${(err as Error)?.stack?.split('\n').slice(0, 2).join(' ') ?? String(err)}`;
    crashes.push(line);
    log(line);
  };
  process.on('uncaughtException', onUncaught);
  process.on('unhandledRejection', onUncaught);

  try {
    [customer, runwayLk] = await Promise.all([
      startLiveKitServer({ label: 'customer', logFile: path.join(logDir, 'livekit-customer.log') }),
      startLiveKitServer({ label: 'runway', logFile: path.join(logDir, 'livekit-runway.log') }),
    ]);
    // Below the ephemeral range: the same port must be free again after every kill of Temporal.
    const temporalPort = await stablePort();
    const dbFile = path.join(logDir, 'temporal.sqlite');
    let temporalStarts = 0;
    const startTemporal = async () => {
      temporal = await startTemporalDevServer({ port: temporalPort, dbFile, logFile: path.join(logDir, `temporal-${++temporalStarts}.log`) });
    };
    await startTemporal();
    sim = await startRunwaySimulator({
      livekit: { url: runwayLk.url, apiKey: runwayLk.apiKey, apiSecret: runwayLk.apiSecret },
      seed: opts.seed,
      defaults: { provisioningMs: 300, avatarMedia: 'light', runtimeCapSeconds: cap },
    });
    accountLimit = sim.setAccount({}).maxConcurrentSessions;
    const simNow = sim;
    const lkCustomer = customer;
    // The workflow code bundled once, as `npm run build` does for production: a restarted worker
    // loads it instead of bundling again (seconds to minutes on a loaded machine, every restart).
    const bundlePath = path.join(logDir, 'workflow-bundle.js');
    writeFileSync(
      bundlePath,
      (await bundleWorkflowCode({ workflowsPath: require.resolve('../../workflows'), failureConverterPath: FAILURE_CONVERTER_PATH, logger: quietLogger })).code,
    );
    const workerEnv = (): NodeJS.ProcessEnv => ({
      WORKFLOW_BUNDLE_PATH: bundlePath,
      ...process.env,
      NODE_ENV: process.env.NODE_ENV ?? 'production',
      TEMPORAL_ADDRESS: `127.0.0.1:${temporalPort}`,
      TEMPORAL_NAMESPACE: 'default',
      RUNWAYML_API_SECRET: simNow.apiKey,
      RUNWAYML_BASE_URL: simNow.baseUrl,
      LIVEKIT_URL: lkCustomer.url,
      LIVEKIT_API_KEY: lkCustomer.apiKey,
      LIVEKIT_API_SECRET: lkCustomer.apiSecret,
      SESSION_SECRETS_KEY: secretsKey.toString('base64'),
      RUNWAY_POLL_INITIAL_MS: '100',
      RUNWAY_POLL_MAX_MS: '500',
      METRICS_PORT: '0',
      REAPER_INTERVAL_SECONDS: '0', // the harness runs the reaper itself, at the end
      LOG_LEVEL: 'info',
    });
    for (const kind of ['worker', 'media-worker'] as const) supervisors.push(new WorkerSupervisor(kind, workerEnv, logDir, log));
    await Promise.all(supervisors.map((s) => s.start()));

    connection = await Connection.connect({ address: `127.0.0.1:${temporalPort}` });
    const client = new Client({ connection, dataConverter: encryptedDataConverter([secretsKey]) });
    const sessions = new SessionsClient(client);
    sim.configure({ faults: opts.faults ?? DEFAULT_FAULTS });
    const chaosStart = Date.now();

    // ---- the kill schedule: per kind, kills at sorted random points of the window, one after another;
    // a restarted process gets some time up before its next kill (a worker takes seconds to start:
    // it bundles the workflow code), else kills bunch up and the process is simply down.
    const killLoop = async (kind: ProcessKind) => {
      const times = Array.from({ length: killsPerKind }, () => 2000 + rng() * (chaosMs - 4000)).sort((a, b) => a - b);
      const downtimes = times.map(() => 300 + rng() * 2500);
      const upFor = times.map(() => MIN_UP_MS + rng() * MIN_UP_MS);
      let upSince = chaosStart;
      for (const [i, at] of times.entries()) {
        await sleep(Math.max(chaosStart + at, upSince + upFor[i]!) - Date.now());
        const down = downtimes[i]!;
        // A kill or restart that goes wrong is a failed check; the next kills still happen.
        try {
          await killOnce(kind, down);
        } catch (err) {
          failures.push(`${kind}: kill ${i + 1} or its restart failed: ${(err as Error).message}`);
          log(`${kind}: kill ${i + 1} or its restart failed: ${(err as Error).message}`);
        }
        upSince = Date.now();
      }
    };
    const killOnce = async (kind: ProcessKind, down: number) => {
      {
        if (kind === 'temporal') {
          const old = temporal!;
          try {
            process.kill(-old.process.child.pid!, 'SIGKILL');
          } catch {
            old.process.child.kill('SIGKILL');
          }
          const outage: Outage = { kind: 'temporal', from: Date.now() };
          outages.push(outage);
          await old.process.exited;
          kills.temporal++;
          log(`+${((Date.now() - t0) / 1000).toFixed(1)} s  SIGKILL temporal (down ${(down / 1000).toFixed(1)} s)`);
          await sleep(down);
          // Same port, same SQLite file: the restarted server carries on every workflow.
          for (let attempt = 1; ; attempt++) {
            try {
              await startTemporal();
              break;
            } catch (err) {
              if (attempt >= 5) throw err;
              log(`temporal restart attempt ${attempt} failed: ${(err as Error).message}`);
              await sleep(1000);
            }
          }
          outage.to = Date.now();
        } else {
          const sup = supervisors.find((s) => s.kind === kind)!;
          await sup.kill();
          kills[kind]++;
          log(`+${((Date.now() - t0) / 1000).toFixed(1)} s  SIGKILL ${kind} (down ${(down / 1000).toFixed(1)} s)`);
          await sleep(down);
          await sup.start();
        }
      }
    };

    // ---- the sessions: started over the window, each ended by request after a random live time
    const modes: SessionMode[] = ['direct', 'relay', 'auto'];
    for (let i = 0; i < n; i++) {
      const conversationId = `chaos-${opts.seed}-${i}-${randomBytes(3).toString('hex')}`;
      runs.push({
        conversationId,
        mode: modes[i % 3]!,
        startAtMs: rng() * chaosMs * 0.6,
        liveMs: (liveMin + rng() * (liveMax - liveMin)) * 1000,
        closed: false,
      });
    }
    // Sessions get drainSeconds after the last kill (kills wait for restarts, so on a loaded machine
    // the chaos outlasts its window; a deadline from the window's end would cut sessions mid-chaos).
    const drainMs = (opts.drainSeconds ?? 150) * 1000;
    let chaosOverAt: number | undefined;
    const drainDeadlineNow = () => (chaosOverAt ?? Math.max(Date.now(), chaosStart + chaosMs)) + drainMs;
    const drive = async (run: SessionRun) => {
      await sleep(chaosStart + run.startAtMs - Date.now());
      const input: SessionInput = {
        conversationId: run.conversationId,
        avatar: { type: 'runway-preset', presetId: 'influencer' },
        livekit: { roomName: `room-${run.conversationId}` },
        mode: run.mode,
        maxDurationSeconds: 90,
        timing: {
          readyDeadlineSeconds: 30,
          avatarJoinTimeoutSeconds: 15,
          monitorIntervalSeconds: 1,
          endCallGraceSeconds: 2,
          heartbeatTimeoutSeconds: 3,
          capacityWaitSeconds: 120,
          sessionCapSeconds: cap,
          renewalLeadSeconds: 6,
        },
      };
      const started = await until(() => sessions.startSession(input), Math.max(0, drainDeadlineNow() - Date.now()), 500);
      if (!started) return;
      const handle = client.workflow.getHandle(sessionWorkflowId(run.conversationId));
      let liveSince: number | undefined;
      let endSent = false;
      while (Date.now() < drainDeadlineNow()) {
        const desc = await handle.describe().catch(() => undefined);
        if (desc && desc.status.name !== 'RUNNING' && desc.status.name !== 'CONTINUED_AS_NEW') {
          // Closed: its final state (a closed workflow's query replays its history on a worker).
          let lastErr: unknown;
          for (let i = 0; i < 5; i++) {
            try {
              run.state = await sessions.getSession(run.conversationId);
              run.closed = true;
              return;
            } catch (err) {
              lastErr = err;
              await sleep(1000);
            }
          }
          run.queryFailed = String((lastErr as Error)?.message ?? lastErr);
          const phase = desc.typedSearchAttributes.get(PhaseKey);
          const endReason = desc.typedSearchAttributes.get(EndReasonKey);
          run.state = {
            ...(run.state ?? ({ events: [], ambiguousCreates: [], runwaySessionIds: [] } as unknown as SessionState)),
            phase: phase as SessionState['phase'],
            endReason: endReason as SessionState['endReason'],
          };
          run.closed = true;
          return;
        }
        // The phase from the workflow's search attribute (describe needs no worker; a state query on a
        // busy worker can time out and would add load): live starts the clock to the end request.
        if (desc?.typedSearchAttributes.get(PhaseKey) === 'live' && liveSince === undefined) liveSince = Date.now();
        if (!endSent && liveSince !== undefined && Date.now() - liveSince >= run.liveMs) {
          endSent = await sessions.endSession(run.conversationId).then(
            () => true,
            () => false,
          );
        }
        await sleep(400);
      }
    };

    const chaos = Promise.all(KINDS.map((k) => killLoop(k))).finally(() => {
      chaosOverAt = Date.now();
    });
    await Promise.all([chaos, ...runs.map((r) => drive(r))]);
    // Sessions still open: their state as it is now (the admission check reads their waits).
    await Promise.all(
      runs
        .filter((r) => !r.closed && !r.state)
        .map(async (r) => {
          r.state = await sessions.getSession(r.conversationId).catch(() => undefined);
        }),
    );
    const drained = runs.filter((r) => r.closed).length;
    log(`+${((Date.now() - t0) / 1000).toFixed(1)} s  chaos over; ${drained}/${n} sessions closed`);

    // ---- the end checks: every process up, faults off, the reaper, then the ledgers
    for (const s of supervisors) {
      if (!(await s.ensureRunning(90_000))) failures.push(`${s.kind} is not running at the end`);
    }
    sim.configure({ faults: {} });
    const report = await until(
      () =>
        client.workflow.execute('reconcileRunwaySessions', {
          taskQueue: SESSION_TASK_QUEUE,
          workflowId: `chaos-reaper-${opts.seed}-${Date.now()}`,
          args: [{ graceSeconds: 0 }],
          workflowExecutionTimeout: '2m',
        }) as Promise<{ reaped: unknown[] }>,
      120_000,
      1000,
    );
    if (!report) failures.push('the reaper did not complete');
    reaped = report?.reaped.length ?? 0;
    log(`+${((Date.now() - t0) / 1000).toFixed(1)} s  reaper ran: ${reaped} Runway session(s) reaped`);
    // Cancels are synchronous in the simulator; avatars that END_CALL may take a moment.
    await until(() => (simNow.orphans().length === 0 ? true : undefined), 20_000);
    orphans = simNow.orphans().map((s) => `${s.id} (${s.status})`);

    // Every session history (each run of each workflow) must replay with the workflow code: a
    // nondeterminism left by a crash would break queries and any later workflow task.
    const histories = async function* () {
      for await (const wf of client.workflow.list({ query: `WorkflowType = '${SESSION_WORKFLOW_TYPE}'` })) {
        yield { workflowId: `${wf.workflowId}/${wf.runId}`, history: await client.workflow.getHandle(wf.workflowId, wf.runId).fetchHistory() };
      }
    };
    try {
      // The replayer's worker logs only warnings (its bundle and state changes are noise here).
      Runtime.install({ logger: new DefaultLogger('WARN') });
    } catch {
      // a runtime is in place already
    }
    for await (const r of Worker.runReplayHistories(
      {
        workflowsPath: require.resolve('../../workflows'),
        interceptors: { workflowModules: [...WORKFLOW_INTERCEPTOR_MODULES] },
        sinks: NO_TRACING_SINKS,
        replayName: 'chaos',
        dataConverter: encryptedDataConverter([secretsKey]),
      },
      histories(),
    )) {
      if (r.error) replayFailures.push(`${r.workflowId}: ${r.error.message.split('\n')[0]}`);
    }
    log(`+${((Date.now() - t0) / 1000).toFixed(1)} s  histories replayed: ${replayFailures.length} failure(s)`);

    const rooms = [
      new RoomServiceClient(customer.httpUrl, customer.apiKey, customer.apiSecret),
      new RoomServiceClient(runwayLk.httpUrl, runwayLk.apiKey, runwayLk.apiSecret),
    ];
    const ours = async () => {
      const left: string[] = [];
      for (const [i, rs] of rooms.entries()) {
        for (const room of await rs.listRooms()) {
          for (const p of await rs.listParticipants(room.name)) {
            // Runway's own avatar worker in its room is Runway's, not this service's.
            if (i === 1 && p.identity.startsWith('worker:')) continue;
            left.push(`${i === 0 ? 'customer' : 'runway'}:${room.name}/${p.identity}`);
          }
        }
      }
      return left;
    };
    leftover =
      (await until(async () => ((await ours()).length === 0 ? [] : undefined), 30_000)) ?? (await ours().catch((err) => [`listing failed: ${String(err)}`]));
  } catch (err) {
    failures.push(`harness error: ${(err as Error).stack ?? String(err)}`);
  } finally {
    // Each stop is bounded: a stop that hangs (rtc-node avatars after an invalid-handle error) is a
    // failed check, not a run without a verdict.
    const bounded = async (what: string, fn: () => Promise<unknown> | undefined) => {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), 60_000)));
      const result = await Promise.race([
        Promise.resolve(fn()).then(
          () => 'done',
          () => 'done',
        ),
        timeout,
      ]);
      clearTimeout(timer);
      if (result === 'timeout') failures.push(`stopping ${what} took over 60 s; left behind`);
    };
    await bounded('the workers', () => Promise.allSettled(supervisors.map((s) => s.stop())));
    await bounded('the Temporal client', () => connection?.close());
    await bounded('the Runway simulator', () => sim?.stop());
    await bounded('Temporal', () => temporal?.stop());
    await bounded('the LiveKit servers', () => Promise.allSettled([customer?.stop(), runwayLk?.stop()]));
  }

  // The verdict: every check that can still be made is made, whatever failed above.
  const reasons: Record<string, number> = {};
  const modes: Record<string, number> = {};
  let renewals = 0;
  let ambiguousCreates = 0;
  let capacityTimeouts = 0;
  let longestCapacityWait: ChaosReport['longestCapacityWait'] = { seconds: 0, rawSeconds: 0, runwaySeconds: 0 };
  const capacityViolations: string[] = [];
  const outcomes = { completed: 0, failed: 0, unfinished: 0 };
  for (const s of supervisors) {
    unexpectedExits[s.kind] = s.unexpectedExits;
    crashes.push(...s.crashes);
    outages.push(...s.outages.filter((o) => o.kind === 'worker'));
  }
  const step = (what: string, fn: () => void) => {
    try {
      fn();
    } catch (err) {
      failures.push(`harness error in ${what}: ${(err as Error).stack ?? String(err)}`);
    }
  };
  step('the session outcomes', () => {
    for (const r of runs) {
      const st = r.state;
      const terminal = r.closed && st && (st.phase === 'completed' || st.phase === 'failed');
      if (!terminal) {
        outcomes.unfinished++;
        failures.push(
          `session ${r.conversationId} (${r.mode}) did not finish: ${r.closed ? `closed in phase ${st?.phase}` : 'its workflow was still open at the deadline'}`,
        );
        continue;
      }
      outcomes[st.phase as 'completed' | 'failed']++;
      const reason = `${st.phase}: ${st.endReason ?? '(no reason)'}${st.error ? ` (${st.error.code})` : ''}`;
      if (r.queryFailed) failures.push(`session ${r.conversationId}: state query of the closed workflow failed: ${r.queryFailed.split('\n')[0]}`);
      else if (!st.endReason || (st.phase === 'failed' && !st.error)) failures.push(`session ${r.conversationId} ended without a reason`);
      if (st.error?.code === 'capacity_timeout') capacityTimeouts++;
      reasons[reason] = (reasons[reason] ?? 0) + 1;
      const m = `${r.mode}→${st.mode ?? 'none'}`;
      modes[m] = (modes[m] ?? 0) + 1;
      renewals += st.renewals ?? 0;
      ambiguousCreates += st.ambiguousCreates?.length ?? 0;
    }
  });
  step('the admission check', () => {
    if (!sim) return void failures.push('admission check not made: no simulator ledger');
    const result = capacityWaits({
      sessions: runs.filter((r) => r.state).map((r) => ({ conversationId: r.conversationId, state: r.state! })),
      ledger: sim.sessions(),
      limit: accountLimit,
      outages,
      outageGraceMs: OUTAGE_GRACE_MS,
      endMs: Date.now(),
    });
    longestCapacityWait = result.longest;
    for (const w of result.waits) {
      if (w.roomSeconds > CAPACITY_SLACK_SECONDS) {
        capacityViolations.push(
          `${w.conversationId} waited ${w.roomSeconds.toFixed(1)} s for capacity from ${w.roomFrom} while Runway had ${w.activeDuring} of ${accountLimit} sessions active and no other session a slot on its way there (${w.how})`,
        );
      }
    }
    for (const v of capacityViolations) failures.push(`admission fell behind: ${v}`);
  });
  step('the run files', () => {
    // Every session's final state (events included), for reading a run afterwards.
    writeFileSync(path.join(logDir, 'sessions.json'), JSON.stringify(runs, null, 2));
    writeFileSync(
      path.join(logDir, 'runway-ledger.json'),
      JSON.stringify(
        { sessions: sim?.sessions().map((s) => ({ ...s, sessionKey: undefined, integration: undefined })), violations: sim?.invariantViolations(), outages },
        null,
        2,
      ),
    );
  });
  process.off('uncaughtException', onUncaught);
  process.off('unhandledRejection', onUncaught);
  const invariantViolations = sim?.invariantViolations() ?? [];
  for (const f of replayFailures) failures.push(`history does not replay: ${f}`);
  if (orphans.length) failures.push(`${orphans.length} Runway session(s) still billing: ${orphans.join(', ')}`);
  if (invariantViolations.length) failures.push(`${invariantViolations.length} simulator invariant violation(s)`);
  if (leftover.length) failures.push(`${leftover.length} participant(s) of this service left: ${leftover.join(', ')}`);
  for (const c of crashes) failures.push(`process crash: ${c}`);
  for (const k of KINDS) if (kills[k] < killsPerKind) failures.push(`${k}: ${kills[k]} of ${killsPerKind} kills happened`);
  return {
    seed: opts.seed,
    sessions: n,
    outcomes,
    reasons,
    modes,
    renewals,
    ambiguousCreates,
    kills,
    unexpectedExits,
    faults: sim?.faultCounts() ?? {},
    reaped,
    runwaySessions: sim?.sessions().length ?? 0,
    orphans,
    invariantViolations,
    repeatConsumes: sim?.repeatConsumes ?? 0,
    leftoverParticipants: leftover,
    replayFailures,
    capacityTimeouts,
    longestCapacityWait,
    capacityViolations,
    crashes,
    elapsedSeconds: Math.round((Date.now() - t0) / 100) / 10,
    failures,
    ok: failures.length === 0,
  };
}

/** The report as a table of counts. */
export function formatChaosReport(r: ChaosReport): string {
  const rows: [string, string][] = [
    ['seed', String(r.seed)],
    ['sessions', String(r.sessions)],
    ['  completed', String(r.outcomes.completed)],
    ['  failed', String(r.outcomes.failed)],
    ['  unfinished', String(r.outcomes.unfinished)],
    ...Object.entries(r.reasons)
      .sort()
      .map(([k, v]): [string, string] => [`  ${k}`, String(v)]),
    [
      'modes (requested→bridged)',
      Object.entries(r.modes)
        .sort()
        .map(([k, v]) => `${k} ${v}`)
        .join(', '),
    ],
    ['renewals', String(r.renewals)],
    ['ambiguous creates recorded', String(r.ambiguousCreates)],
    ...KINDS.map((k): [string, string] => [`kills: ${k}`, `${r.kills[k]}${r.unexpectedExits[k] ? ` (+${r.unexpectedExits[k]} exits on its own)` : ''}`]),
    [
      'faults injected',
      Object.entries(r.faults)
        .sort()
        .map(([k, v]) => `${k} ${v}`)
        .join(', ') || '0',
    ],
    ['Runway sessions created', String(r.runwaySessions)],
    ['reaped by the reaper', String(r.reaped)],
    ['orphaned Runway sessions', String(r.orphans.length)],
    ['invariant violations', String(r.invariantViolations.length)],
    ['repeat consumes (refused)', String(r.repeatConsumes)],
    ['leftover participants', String(r.leftoverParticipants.length)],
    ['histories that do not replay', String(r.replayFailures.length)],
    ['capacity_timeout failures', String(r.capacityTimeouts)],
    [
      'longest capacity wait with room',
      `${r.longestCapacityWait.seconds.toFixed(1)} s${r.longestCapacityWait.conversationId ? ` (${r.longestCapacityWait.conversationId})` : ''}; by Runway's count alone ${r.longestCapacityWait.runwaySeconds.toFixed(1)} s, counting outages ${r.longestCapacityWait.rawSeconds.toFixed(1)} s`,
    ],
    ['admission violations', String(r.capacityViolations.length)],
    ['process crashes', String(r.crashes.length)],
    ['elapsed', `${r.elapsedSeconds} s`],
    ['result', r.ok ? 'OK' : 'FAILED'],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  const lines = rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`);
  for (const v of r.invariantViolations) lines.push(`violation: ${v}`);
  for (const f of r.failures) lines.push(`check failed: ${f}`);
  return lines.join('\n');
}
