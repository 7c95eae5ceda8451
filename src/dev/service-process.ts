// Runs one of the service's entry points (src/worker.ts, src/media-worker.ts) as a child process with
// its output appended to a log file; `started` resolves once it logs that it polls. The tests and the
// chaos harness SIGKILL such processes the way a crash would.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import path from 'node:path';
import { PROJECT_ROOT } from './tools';

export interface ServiceProcess {
  child: ChildProcess;
  /** Resolves once the process logged that its worker started; rejects if it exits first. */
  started: Promise<void>;
  exited: Promise<void>;
}

export function spawnServiceProcess(kind: 'worker' | 'media-worker', env: NodeJS.ProcessEnv, logFile: string): ServiceProcess {
  const out = createWriteStream(logFile, { flags: 'a' });
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(PROJECT_ROOT, 'src', `${kind}.ts`)], {
    cwd: PROJECT_ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stderr.pipe(out);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const started = new Promise<void>((resolve, reject) => {
    let buf = '';
    child.stdout.on('data', (d: Buffer) => {
      out.write(d);
      if (buf.length < 100_000) buf += d.toString();
      if (/worker started/.test(buf)) resolve();
    });
    void exited.then(() => reject(new Error(`${kind} exited before it started (see ${logFile})`)));
  });
  started.catch(() => undefined);
  return { child, started, exited };
}
