import type { RunnableWorker } from './workers';
import type { Logger } from 'pino';

/**
 * Runs a worker until SIGINT/SIGTERM, then shuts it down gracefully: polling stops, in-flight
 * activities get the shutdown grace time (heartbeating ones see the cancellation), then it exits.
 */
export async function runUntilSignal(worker: RunnableWorker, log: Logger, onStopped?: () => Promise<void>): Promise<void> {
  const stop = (signal: string) => {
    log.info({ signal }, 'shutting down worker');
    if (worker.getState() === 'RUNNING') worker.shutdown();
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
  await worker.run();
  await onStopped?.();
  log.info('worker stopped');
}
