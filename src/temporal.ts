// Temporal connections from the standard environment configuration (TEMPORAL_ADDRESS,
// TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TLS, or a temporal.toml profile), plus the runtime setup
// (logs through our redacting logger, Prometheus metrics) every worker process shares.
import { Client, Connection, type ClientOptions } from '@temporalio/client';
import { loadClientConnectConfig } from '@temporalio/envconfig';
import { NativeConnection, Runtime, makeTelemetryFilterString, type LogLevel, type LogMetadata, type Logger as TemporalLogger } from '@temporalio/worker';
import type { Logger } from 'pino';

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

export async function connectClient(override?: Partial<TemporalTarget>, dataConverter?: ClientOptions['dataConverter']): Promise<Client> {
  const cfg = temporalConnectConfig(override);
  const connection = await Connection.connect(cfg.connectionOptions);
  return new Client({ connection, namespace: cfg.namespace, dataConverter });
}

export async function connectWorker(override?: Partial<TemporalTarget>): Promise<{ connection: NativeConnection; namespace: string }> {
  const cfg = temporalConnectConfig(override);
  return { connection: await NativeConnection.connect(cfg.connectionOptions), namespace: cfg.namespace };
}

class PinoTemporalLogger implements TemporalLogger {
  constructor(private readonly pino: Logger) {}
  log(level: LogLevel, message: string, meta?: LogMetadata): void {
    const lvl = level.toLowerCase() as 'trace' | 'debug' | 'info' | 'warn' | 'error';
    this.pino[lvl]({ ...meta }, message);
  }
  trace(m: string, meta?: LogMetadata) { this.log('TRACE', m, meta); }
  debug(m: string, meta?: LogMetadata) { this.log('DEBUG', m, meta); }
  info(m: string, meta?: LogMetadata) { this.log('INFO', m, meta); }
  warn(m: string, meta?: LogMetadata) { this.log('WARN', m, meta); }
  error(m: string, meta?: LogMetadata) { this.log('ERROR', m, meta); }
}

/**
 * Installs the Temporal runtime once per process: SDK and core logs go through `logger`, worker metrics
 * are served for Prometheus on `metricsPort`. Signals are left to the caller, which shuts down in order.
 */
export function installRuntime(logger: Logger, metricsPort?: number): void {
  Runtime.install({
    logger: new PinoTemporalLogger(logger.child({ component: 'temporal' })),
    shutdownSignals: [],
    telemetryOptions: {
      logging: { forward: {}, filter: makeTelemetryFilterString({ core: 'WARN', other: 'ERROR' }) },
      ...(metricsPort ? { metrics: { prometheus: { bindAddress: `127.0.0.1:${metricsPort}` }, metricPrefix: 'temporal_' } } : {}),
    },
  });
}
