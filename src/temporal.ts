// Temporal connections from the standard environment configuration (TEMPORAL_ADDRESS,
// TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TLS, or a temporal.toml profile), plus the runtime setup
// (logs through our redacting logger, Prometheus metrics) every worker process shares.
import { Client, Connection, type ClientOptions } from '@temporalio/client';
import { loadClientConnectConfig } from '@temporalio/envconfig';
import { NativeConnection, Runtime, makeTelemetryFilterString, type LogLevel, type LogMetadata, type Logger as TemporalLogger } from '@temporalio/worker';
import type { Logger } from 'pino';
import type { Tracing } from './tracing';

export interface TemporalTarget {
  address?: string;
  namespace: string;
}

/** The connect config from envconfig; `override` (the embedded stack) wins over the environment. */
export function temporalConnectConfig(override?: Partial<TemporalTarget>) {
  const cfg = loadClientConnectConfig();
  return {
    connectionOptions: { ...cfg.connectionOptions, ...(override?.address ? { address: override.address } : {}) },
    namespace: override?.namespace ?? cfg.namespace ?? 'default',
  };
}

/** A Temporal client; with `tracing`, its calls (start, signal, update, query…) are spans whose context travels in headers. */
export async function connectClient(override?: Partial<TemporalTarget>, dataConverter?: ClientOptions['dataConverter'], tracing?: Tracing): Promise<Client> {
  const cfg = temporalConnectConfig(override);
  const connection = await Connection.connect(cfg.connectionOptions);
  return new Client({ connection, namespace: cfg.namespace, dataConverter, ...(tracing ? { interceptors: tracing.clientInterceptors() } : {}) });
}

/**
 * The worker's connection. With `waitFor`, a Temporal that cannot be reached yet (a deploy that starts
 * workers before the server, a restarting cluster) is waited for, retrying with backoff up to 10 s and
 * logging each miss, instead of the process exiting.
 */
export async function connectWorker(
  override?: Partial<TemporalTarget>,
  waitFor?: { log: Logger; stopped?: () => boolean },
): Promise<{ connection: NativeConnection; namespace: string }> {
  const cfg = temporalConnectConfig(override);
  for (let delayMs = 500; ; delayMs = Math.min(10_000, delayMs * 2)) {
    try {
      return { connection: await NativeConnection.connect(cfg.connectionOptions), namespace: cfg.namespace };
    } catch (err) {
      if (!waitFor || waitFor.stopped?.()) throw err;
      waitFor.log.warn({ address: cfg.connectionOptions.address, retryInMs: delayMs, error: String(err) }, 'Temporal is not reachable yet; waiting for it');
      await new Promise((r) => setTimeout(r, delayMs));
    }
  }
}

class PinoTemporalLogger implements TemporalLogger {
  constructor(private readonly pino: Logger) {}
  log(level: LogLevel, message: string, meta?: LogMetadata): void {
    const lvl = level.toLowerCase() as 'trace' | 'debug' | 'info' | 'warn' | 'error';
    this.pino[lvl]({ ...meta }, message);
  }
  trace(m: string, meta?: LogMetadata) {
    this.log('TRACE', m, meta);
  }
  debug(m: string, meta?: LogMetadata) {
    this.log('DEBUG', m, meta);
  }
  info(m: string, meta?: LogMetadata) {
    this.log('INFO', m, meta);
  }
  warn(m: string, meta?: LogMetadata) {
    this.log('WARN', m, meta);
  }
  error(m: string, meta?: LogMetadata) {
    this.log('ERROR', m, meta);
  }
}

/**
 * Installs the Temporal runtime once per process: SDK and core logs go through `logger`, worker metrics
 * are served for Prometheus on `metricsPort`. Signals are left to the caller, which shuts down in order.
 */
export function installRuntime(logger: Logger, metricsPort?: number, metricsHost = '127.0.0.1'): void {
  Runtime.install({
    logger: new PinoTemporalLogger(logger.child({ component: 'temporal' })),
    shutdownSignals: [],
    telemetryOptions: {
      logging: { forward: {}, filter: makeTelemetryFilterString({ core: 'WARN', other: 'ERROR' }) },
      ...(metricsPort
        ? {
            metrics: {
              prometheus: { bindAddress: `${metricsHost.includes(':') ? `[${metricsHost}]` : metricsHost}:${metricsPort}` },
              metricPrefix: 'temporal_',
            },
          }
        : {}),
    },
  });
}
