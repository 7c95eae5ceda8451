// Everything a session test needs, real: a Temporal dev server, two LiveKit servers ("Runway's" and
// the customer's), the Runway simulator on Runway's LiveKit, and the service's workers in-process.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { after } from 'node:test';
import { bundleWorkflowCode } from '@temporalio/worker';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { dispose } from '@livekit/rtc-node';
import { SessionsClient } from '../../src/client/sessions';
import { TEST_SECRETS_KEY } from './keys';
import { FAILURE_CONVERTER_PATH, encryptedDataConverter } from '../../src/secrets/payload-codec';
import type { ServiceConfig } from '../../src/config';
import { createMediaWorker, createSessionWorker, workerSettings, type RunnableWorker } from '../../src/workers';
import { loadEnv } from '../../src/config';
import { startRunwaySimulator } from '../../src/runway-sim/server';
import { WORKFLOW_INTERCEPTOR_MODULES, type Tracing } from '../../src/tracing';
import { Client } from '@temporalio/client';
import { startTemporal } from './temporal';
import { roomService, startTestLiveKit, type LiveKitServer } from './livekit';

export type RunwaySimulator = Awaited<ReturnType<typeof startRunwaySimulator>>;
type SimOptions = Parameters<typeof startRunwaySimulator>[0];

export interface SessionStack {
  env: TestWorkflowEnvironment;
  customer: LiveKitServer;
  runwayLiveKit: LiveKitServer;
  sim: RunwaySimulator;
  config: Pick<ServiceConfig, 'runway' | 'livekit' | 'secretsKey'>;
  sessions: SessionsClient;
  workflowBundle: { code: string };
  /** (Re)starts the in-process workers (session, and media unless disabled). */
  startWorkers(): Promise<void>;
  stopWorkers(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * `webhookPort`: the customer's LiveKit sends its webhooks to http://127.0.0.1:<port>/v1/livekit/webhook
 * (a test starts the API there). `tracing`: the workers, the bundle and `sessions`' client trace (src/tracing.ts).
 */
export async function startSessionStack(
  opts: { sim?: Partial<SimOptions>; inProcessWorkers?: boolean; webhookPort?: number; tracing?: Tracing } = {},
): Promise<SessionStack> {
  // rtc-node's native side gives up on a room if the event loop stalls right after connect: watch it.
  const loop = monitorEventLoopDelay({ resolution: 20 });
  loop.enable();
  // Every payload in history is encrypted with this key; the test client decrypts with it too.
  // (A fixed test key, so recorded histories stay readable by the replay test.)
  const secretsKey = TEST_SECRETS_KEY;
  const [env, customer, runwayLiveKit, bundle] = await Promise.all([
    startTemporal({ dataConverter: encryptedDataConverter([secretsKey]) }),
    startTestLiveKit('customer', opts.webhookPort ? [`http://127.0.0.1:${opts.webhookPort}/v1/livekit/webhook`] : undefined),
    startTestLiveKit('runway'),
    bundleWorkflowCode({
      workflowsPath: require.resolve('../../workflows'),
      failureConverterPath: FAILURE_CONVERTER_PATH,
      logger: quietBundlerLogger,
      workflowInterceptorModules: [...WORKFLOW_INTERCEPTOR_MODULES],
    }),
  ]);
  const sim = await startRunwaySimulator({
    livekit: { url: runwayLiveKit.url, apiKey: runwayLiveKit.apiKey, apiSecret: runwayLiveKit.apiSecret },
    ...opts.sim,
  });
  const config = {
    runway: { apiKey: sim.apiKey, baseUrl: sim.baseUrl },
    livekit: { url: customer.url, publicUrl: customer.url, apiKey: customer.apiKey, apiSecret: customer.apiSecret },
    secretsKey,
  };
  const workflowBundle = { code: bundle.code };
  let workers: RunnableWorker[] = [];
  let runs: Promise<void>[] = [];

  const stack: SessionStack = {
    env,
    customer,
    runwayLiveKit,
    sim,
    config,
    sessions: new SessionsClient(
      opts.tracing
        ? new Client({ connection: env.connection, dataConverter: encryptedDataConverter([secretsKey]), interceptors: opts.tracing.clientInterceptors() })
        : env.client,
    ),
    workflowBundle,
    async startWorkers() {
      workers = [
        await createSessionWorker({
          connection: env.nativeConnection,
          config,
          workflowBundle,
          tracing: opts.tracing,
          ...workerSettings(loadEnv({})),
          poll: { initialMs: 50, maxMs: 300, queuedMs: 300 },
          presencePollMs: 100,
          shutdownGraceTime: 2000,
          admission: { checkIntervalSeconds: 2 },
        }),
        await createMediaWorker({ connection: env.nativeConnection, config, tracing: opts.tracing, shutdownGraceTime: 5000, relayStallSeconds: 3 }),
      ];
      runs = workers.map((w) => w.run());
    },
    async stopWorkers() {
      for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
      await Promise.allSettled(runs);
      workers = [];
    },
    async stop() {
      loop.disable();
      console.log(`event loop delay: p99 ${(loop.percentile(99) / 1e6).toFixed(1)} ms, max ${(loop.max / 1e6).toFixed(1)} ms`);
      await stack.stopWorkers();
      await sim.stop();
      await env.teardown();
      await Promise.all([customer.stop(), runwayLiveKit.stop()]);
    },
  };
  if (opts.inProcessWorkers !== false) await stack.startWorkers();
  return stack;
}

// rtc-node's native runtime is per process and cannot be used again once disposed: dispose it once,
// after every stack of this test file has stopped (a test file is one process).
after(async () => {
  await dispose();
});

const quietBundlerLogger = {
  log() {},
  trace() {},
  debug() {},
  info() {},
  warn() {},
  error(message: string, meta?: unknown) {
    console.error(message, meta);
  },
};

/** Participants in a customer room, by identity. */
export async function participantsIn(lk: LiveKitServer, room: string): Promise<string[]> {
  return (await roomService(lk).listParticipants(room)).map((p) => p.identity);
}

let counter = 0;
export function uniqueId(prefix: string): string {
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${++counter}`;
}
