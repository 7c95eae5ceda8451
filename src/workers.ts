// Worker factories: the orchestration worker (`avatar-sessions`: workflows + Runway/room activities)
// and the media worker (`avatar-media`: the relay). Processes and tests build workers through these.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { RoomServiceClient } from 'livekit-server-sdk';
import { Runtime, Worker, bundleWorkflowCode, type NativeConnection, type WorkflowBundleOption } from '@temporalio/worker';
import { getClient } from '@temporalio/activity';
import { createMediaActivities, createSessionActivities } from '../activities';
import type { RunwayActivityDeps } from '../activities/runway';
import { RelayRegistry } from '../activities/relay';
import { ADMISSION_TASK_QUEUE, MEDIA_TASK_QUEUE, SESSION_TASK_QUEUE, mediaWorkerQueue } from '../workflows/shared';
import { codecKeys, codecOptions, type Env, type ServiceConfig } from './config';
import { FAILURE_CONVERTER_PATH, encryptedDataConverter } from './secrets/payload-codec';
import { CustomerRooms } from './livekit/room-service';
import { RunwayClient, type RunwayRequestInfo } from './runway/client';
import { SealedBox } from './secrets/sealed-box';
import { NO_TRACING_SINKS, WORKFLOW_INTERCEPTOR_MODULES, type Tracing } from './tracing';

export interface WorkerOptions {
  connection: NativeConnection;
  namespace?: string;
  config: Pick<ServiceConfig, 'runway' | 'livekit' | 'secretsKey' | 'secretsOldKeys' | 'allowPlaintextPayloads'>;
  /**
   * A pre-built bundle (production, tests); otherwise the workflows are bundled at start. Bundle it
   * with WORKFLOW_INTERCEPTOR_MODULES (src/tracing.ts), as every bundle of this service is.
   */
  workflowBundle?: WorkflowBundleOption;
  /** OpenTelemetry (src/tracing.ts): activity spans and the exported workflow spans. Unset: workflow spans are dropped. */
  tracing?: Tracing;
  identity?: string;
  poll?: RunwayActivityDeps['poll'];
  presencePollMs?: number;
  shutdownGraceTime?: number | `${number}s` | `${number}ms`;
  /** Admission control: a configured session limit (else the account's), and how often holders are checked. */
  admission?: { sessionLimitOverride?: number; checkIntervalSeconds?: number };
  /** Media worker: no avatar video for this long fails the relay so the workflow re-bridges (default 10 s). */
  relayStallSeconds?: number;
  /** Orchestration worker slots and workflow cache (SDK defaults when unset). */
  tuning?: { maxConcurrentActivities?: number; maxConcurrentWorkflowTasks?: number; maxCachedWorkflows?: number };
}

/**
 * The worker settings that come from the environment (src/config.ts's schema): the one place every
 * process that runs a worker (`npm start`, `npm run worker`, `npm run media-worker`, the benchmarks and
 * the tests' stack) reads them, so they all run with the same settings.
 */
export function workerSettings(env: Env): Pick<WorkerOptions, 'admission' | 'tuning' | 'poll' | 'workflowBundle'> {
  return {
    admission: { sessionLimitOverride: env.RUNWAY_SESSION_LIMIT },
    tuning: {
      maxConcurrentActivities: env.WORKER_MAX_CONCURRENT_ACTIVITIES,
      maxConcurrentWorkflowTasks: env.WORKER_MAX_CONCURRENT_WORKFLOW_TASKS,
      maxCachedWorkflows: env.WORKER_MAX_CACHED_WORKFLOWS,
    },
    ...(env.WORKFLOW_BUNDLE_PATH ? { workflowBundle: { codePath: env.WORKFLOW_BUNDLE_PATH } } : {}),
    poll:
      env.RUNWAY_POLL_INITIAL_MS || env.RUNWAY_POLL_MAX_MS
        ? { initialMs: env.RUNWAY_POLL_INITIAL_MS ?? 250, maxMs: env.RUNWAY_POLL_MAX_MS ?? 2000 }
        : undefined,
  };
}

/** Runway API latency and errors by kind, exported with the worker runtime's metrics. */
function runwayMetrics(): (info: RunwayRequestInfo) => void {
  const meter = Runtime.instance().metricMeter;
  const latency = meter.createHistogram('avatar_runway_request_seconds', 'float', 's', 'Runway API calls by endpoint and status');
  const errors = meter.createCounter('avatar_runway_errors', 'calls', 'Failed Runway API calls by endpoint and error kind');
  return (info) => {
    latency.record(info.durationMs / 1000, { endpoint: info.endpoint, status: String(info.status ?? 'none') });
    if (info.errorKind) errors.add(1, { endpoint: info.endpoint, kind: info.errorKind });
  };
}

/**
 * Where `npm run build` writes the workflow bundle (src/bundle-workflows.ts): <outDir>/workflow-bundle.js,
 * next to the compiled code. Undefined when running from TypeScript source, which always bundles at start.
 */
export const PREBUILT_WORKFLOW_BUNDLE = __filename.endsWith('.js') ? path.resolve(__dirname, '..', 'workflow-bundle.js') : undefined;

/**
 * The workflows a session worker runs: the given bundle, else the prebuilt one when present, else
 * bundled at start; always with the workflow interceptor modules (tracing's, inert for untraced runs).
 */
function sessionWorkflows(
  given: WorkflowBundleOption | undefined,
): { workflowBundle: WorkflowBundleOption } | { workflowsPath: string; workflowModules: string[] } {
  if (given) return { workflowBundle: given };
  if (PREBUILT_WORKFLOW_BUNDLE && existsSync(PREBUILT_WORKFLOW_BUNDLE)) return { workflowBundle: { codePath: PREBUILT_WORKFLOW_BUNDLE } };
  return { workflowsPath: require.resolve('../workflows'), workflowModules: [...WORKFLOW_INTERCEPTOR_MODULES] };
}

export function httpUrl(livekitUrl: string): string {
  return livekitUrl.replace(/^ws(s?):\/\//, 'http$1://');
}

/**
 * The orchestration worker: the session workflows and activities on `avatar-sessions`, and the
 * admission controller on its own queue (`avatar-admission`) with a Worker of its own (its own
 * workflow thread and task slots: a burst of session tasks never delays a grant). Runs and stops as one.
 */
export async function createSessionWorker(opts: WorkerOptions): Promise<SessionWorker> {
  const { config } = opts;
  const runway = new RunwayClient({ apiKey: config.runway.apiKey, baseUrl: config.runway.baseUrl, onRequest: runwayMetrics() });
  const rooms = new CustomerRooms(new RoomServiceClient(httpUrl(config.livekit.url), config.livekit.apiKey, config.livekit.apiSecret));
  const dataConverter = encryptedDataConverter(codecKeys(config), codecOptions(config));
  const activities = createSessionActivities({
    runway,
    rooms,
    sealer: new SealedBox(codecKeys(config)),
    livekit: { ...config.livekit },
    poll: opts.poll,
    presencePollMs: opts.presencePollMs,
    temporal: getClient,
    ...opts.admission,
  });
  const traced = opts.tracing?.workerOptions();
  // Bundled once for both workers, with the workflow interceptor modules (tracing's, inert for untraced runs).
  const chosen = sessionWorkflows(opts.workflowBundle);
  const workflows =
    'workflowsPath' in chosen
      ? {
          workflowBundle: (await bundleWorkflowCode({
            workflowsPath: chosen.workflowsPath,
            failureConverterPath: FAILURE_CONVERTER_PATH,
            workflowInterceptorModules: chosen.workflowModules,
            logger: Runtime.instance().logger,
          })) satisfies WorkflowBundleOption,
        }
      : chosen;
  const common = {
    connection: opts.connection,
    namespace: opts.namespace ?? 'default',
    dataConverter,
    ...(opts.identity ? { identity: opts.identity } : {}),
    ...workflows,
    interceptors: { ...traced?.interceptors, workflowModules: [] },
    sinks: traced?.sinks ?? NO_TRACING_SINKS,
    shutdownGraceTime: opts.shutdownGraceTime ?? 10_000,
  };
  const sessions = await Worker.create({
    ...common,
    taskQueue: SESSION_TASK_QUEUE,
    activities,
    ...(opts.tuning?.maxConcurrentActivities ? { maxConcurrentActivityTaskExecutions: opts.tuning.maxConcurrentActivities } : {}),
    ...(opts.tuning?.maxConcurrentWorkflowTasks ? { maxConcurrentWorkflowTaskExecutions: opts.tuning.maxConcurrentWorkflowTasks } : {}),
    ...(opts.tuning?.maxCachedWorkflows !== undefined ? { maxCachedWorkflows: opts.tuning.maxCachedWorkflows } : {}),
  });
  // One workflow (the controller) and its few activities: small slots, a small cache.
  const admission = await Worker.create({
    ...common,
    taskQueue: ADMISSION_TASK_QUEUE,
    activities: {
      getSessionLimit: () => activities.getSessionLimit(),
      closedWorkflows: (req: { workflowIds: string[] }) => activities.closedWorkflows(req),
      runwayActiveSessions: (req: { lookbackMinutes: number }) => activities.runwayActiveSessions(req),
    },
    maxCachedWorkflows: 4,
    maxConcurrentWorkflowTaskExecutions: 2,
    maxConcurrentActivityTaskExecutions: 4,
  });
  return new SessionWorker([sessions, admission]);
}

/** The orchestration worker's Workers (sessions, admission), run and stopped as one. */
export class SessionWorker implements RunnableWorker {
  constructor(readonly workers: Worker[]) {}

  async run(): Promise<void> {
    const runs = this.workers.map((w) => w.run());
    // One stops, all stop (a fatal error in either must not leave the other polling alone).
    await Promise.race(runs.map((r) => r.catch(() => undefined))).finally(() => this.shutdown());
    await Promise.all(runs);
  }

  /** Runs until `fn` (or the promise) settles, then shuts down; its result. */
  async runUntil<R>(fnOrPromise: Promise<R> | (() => Promise<R>)): Promise<R> {
    const running = this.run();
    try {
      return await (typeof fnOrPromise === 'function' ? fnOrPromise() : fnOrPromise);
    } finally {
      this.shutdown();
      await running;
    }
  }

  shutdown(): void {
    for (const w of this.workers) if (w.getState() === 'RUNNING') w.shutdown();
  }

  getState(): ReturnType<Worker['getState']> {
    const states = this.workers.map((w) => w.getState());
    return states.find((s) => s !== 'STOPPED') ?? 'STOPPED';
  }
}

/** What a process runs: a Temporal worker, or the media worker's pair of them. */
export type RunnableWorker = Pick<Worker, 'run' | 'shutdown' | 'getState'>;

/**
 * The media worker: one set of relay activities polled on two task queues, the shared `avatar-media`
 * (where relays start) and this process's own `avatar-media@<id>` (where a renewal sends the switch
 * of a live relay, and the next run's relay activity that adopts it). Runs and stops as one.
 */
export class MediaWorker implements RunnableWorker {
  private constructor(
    readonly workers: Worker[],
    readonly queue: string,
    private readonly registry: RelayRegistry,
  ) {}

  static async create(opts: Omit<WorkerOptions, 'workflowBundle' | 'poll' | 'presencePollMs'>): Promise<MediaWorker> {
    const queue = mediaWorkerQueue(`${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`);
    const registry = new RelayRegistry();
    const activities = createMediaActivities({ config: opts.config, stallSeconds: opts.relayStallSeconds, workerQueue: queue, registry });
    const workers = await Promise.all(
      [MEDIA_TASK_QUEUE, queue].map((taskQueue) =>
        Worker.create({
          connection: opts.connection,
          namespace: opts.namespace ?? 'default',
          taskQueue,
          dataConverter: encryptedDataConverter(codecKeys(opts.config), codecOptions(opts.config)),
          ...(opts.identity ? { identity: opts.identity } : {}),
          activities,
          ...(opts.tracing ? { interceptors: opts.tracing.workerOptions().interceptors } : {}),
          shutdownGraceTime: opts.shutdownGraceTime ?? 10_000,
          // A relay learns that its session ends (cancellation) from a heartbeat's answer; by default
          // heartbeats reach the server every 0.8 × heartbeat timeout (12 s), so the avatar left the room
          // up to 12 s after `end`. One heartbeat call per relay per second instead (a media worker holds
          // a few relays).
          maxHeartbeatThrottleInterval: '1s',
        }),
      ),
    );
    return new MediaWorker(workers, queue, registry);
  }

  async run(): Promise<void> {
    const runs = this.workers.map((w) => w.run());
    // One stops, both stop (a fatal error in either must not leave the other polling alone).
    await Promise.race(runs.map((r) => r.catch(() => undefined))).finally(() => this.shutdown());
    try {
      await Promise.all(runs);
    } finally {
      await this.registry.stopAll();
    }
  }

  shutdown(): void {
    for (const w of this.workers) if (w.getState() === 'RUNNING') w.shutdown();
  }

  getState(): ReturnType<Worker['getState']> {
    const states = this.workers.map((w) => w.getState());
    return states.find((s) => s !== 'STOPPED') ?? 'STOPPED';
  }
}

export function createMediaWorker(opts: Omit<WorkerOptions, 'workflowBundle' | 'poll' | 'presencePollMs'>): Promise<MediaWorker> {
  return MediaWorker.create(opts);
}
