// Runs the real worker entry points (src/worker.ts, src/media-worker.ts) as child processes, so tests
// can SIGKILL them like a crash would.
import type { ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { spawnServiceProcess } from '../../src/dev/service-process';
import type { SessionStack } from './session-stack';

const ROOT = path.resolve(__dirname, '..', '..');

export interface WorkerProcess {
  child: ChildProcess;
  /** Resolves once the worker logged that it started polling. */
  ready: Promise<void>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export function workerEnv(stack: SessionStack): NodeJS.ProcessEnv {
  return {
    ...process.env,
    TEMPORAL_ADDRESS: stack.env.address,
    TEMPORAL_NAMESPACE: 'default',
    RUNWAYML_API_SECRET: stack.config.runway.apiKey,
    RUNWAYML_BASE_URL: stack.config.runway.baseUrl,
    LIVEKIT_URL: stack.config.livekit.url,
    LIVEKIT_API_KEY: stack.config.livekit.apiKey,
    LIVEKIT_API_SECRET: stack.config.livekit.apiSecret,
    SESSION_SECRETS_KEY: stack.config.secretsKey.toString('base64'),
    RUNWAY_POLL_INITIAL_MS: '50',
    RUNWAY_POLL_MAX_MS: '300',
    METRICS_PORT: '0',
    LOG_LEVEL: 'info',
  };
}

export function startWorkerProcess(stack: SessionStack, kind: 'worker' | 'media-worker', label: string): WorkerProcess {
  const logDir = path.join(ROOT, 'test-artifacts', 'logs');
  mkdirSync(logDir, { recursive: true });
  const { child, started: ready, exited } = spawnServiceProcess(kind, workerEnv(stack), path.join(logDir, `${label}.log`));
  return {
    child,
    ready,
    async kill(signal: NodeJS.Signals = 'SIGKILL') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}
