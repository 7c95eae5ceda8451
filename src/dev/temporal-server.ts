// Starts the real Temporal dev server (`temporal server start-dev`: SQLite, Web UI) as a child process.
import { Connection } from '@temporalio/client';
import { TypedSearchAttributes } from '@temporalio/common';
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { startProcess, type ManagedProcess } from './child';
import { freePort, waitFor } from './net';
import { temporalCliPath } from './tools';
import { SEARCH_ATTRIBUTES } from '../../workflows/shared';

export interface TemporalDevServerOptions {
  port?: number;
  uiPort?: number;
  /** SQLite file; state survives restarts. Omit for in-memory. */
  dbFile?: string;
  codecEndpoint?: string;
  logFile?: string;
  namespace?: string;
}

export interface TemporalDevServer {
  address: string;
  uiUrl?: string;
  namespace: string;
  process: ManagedProcess;
  stop(): Promise<void>;
}

export function temporalDevServerArgs(opts: TemporalDevServerOptions & { port: number }): string[] {
  const args = ['server', 'start-dev', '--ip', '127.0.0.1', '--port', String(opts.port), '--log-level', 'error'];
  args.push('--dynamic-config-value', 'frontend.enableServerVersionCheck=false');
  if (opts.namespace && opts.namespace !== 'default') args.push('--namespace', opts.namespace);
  if (opts.dbFile) {
    mkdirSync(path.dirname(opts.dbFile), { recursive: true });
    args.push('--db-filename', opts.dbFile);
  }
  if (opts.uiPort) {
    args.push('--ui-port', String(opts.uiPort), '--ui-ip', '127.0.0.1');
    if (opts.codecEndpoint) args.push('--ui-codec-endpoint', opts.codecEndpoint);
  } else {
    args.push('--headless');
  }
  for (const key of SEARCH_ATTRIBUTES) {
    args.push('--search-attribute', `${key.name}=${TypedSearchAttributes.toMetadataType(key.type)}`);
  }
  return args;
}

/** The last line the server logged (its reason for exiting), for the error message. */
function lastLogLine(logFile?: string): string {
  if (!logFile) return '';
  try {
    const lines = readFileSync(logFile, 'utf8').trim().split('\n');
    const line = lines[lines.length - 1]?.trim();
    return line ? `: ${line.length > 300 ? `${line.slice(0, 297)}...` : line}` : '';
  } catch {
    return '';
  }
}

export async function startTemporalDevServer(opts: TemporalDevServerOptions = {}): Promise<TemporalDevServer> {
  const port = opts.port ?? (await freePort());
  const namespace = opts.namespace ?? 'default';
  const proc = startProcess('temporal', temporalCliPath(), temporalDevServerArgs({ ...opts, port }), { logFile: opts.logFile });
  const address = `127.0.0.1:${port}`;
  let exited = false;
  // An early exit fails the start at once (waitFor would take it for one more failed probe).
  const early = proc.exited.then((code) => {
    exited = true;
    throw new Error(`temporal server start-dev exited early (${code})${lastLogLine(opts.logFile)}; see ${opts.logFile ?? 'its output'}`);
  });
  early.catch(() => undefined);
  await Promise.race([
    early,
    waitFor(
      `Temporal dev server on ${address}`,
      async () => {
        if (exited) return false;
        const conn = await Connection.connect({ address, connectTimeout: 1000 });
        try {
          await conn.workflowService.describeNamespace({ namespace });
          return true;
        } finally {
          await conn.close();
        }
      },
      30_000,
      200,
    ),
  ]);
  return {
    address,
    uiUrl: opts.uiPort ? `http://127.0.0.1:${opts.uiPort}` : undefined,
    namespace,
    process: proc,
    stop: () => proc.stop(10_000),
  };
}
