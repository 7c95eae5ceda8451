import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';

export interface ManagedProcess {
  readonly name: string;
  readonly child: ChildProcess;
  /** Resolves with the exit code (or signal) once the process is gone. */
  readonly exited: Promise<number | NodeJS.Signals | null>;
  /** SIGTERM, then SIGKILL after `graceMs`. Safe to call twice. */
  stop(graceMs?: number): Promise<void>;
}

const live = new Set<ManagedProcess>();
let hooked = false;
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  // Last resort: never leave a child server behind if this process exits without stopping it.
  process.on('exit', () => {
    for (const p of live) p.child.kill('SIGKILL');
  });
}

/**
 * Starts a child process in its own process group. Output goes to `logFile` when given
 * (else it is discarded), so a chatty server never floods the parent's terminal.
 */
export function startProcess(name: string, cmd: string, args: string[], opts: { logFile?: string; env?: NodeJS.ProcessEnv } = {}): ManagedProcess {
  hookExit();
  const child = spawn(cmd, args, {
    stdio: ['ignore', opts.logFile ? 'pipe' : 'ignore', opts.logFile ? 'pipe' : 'ignore'],
    env: opts.env ?? process.env,
    detached: true,
  });
  if (opts.logFile) {
    const out = createWriteStream(opts.logFile, { flags: 'a' });
    child.stdout?.pipe(out);
    child.stderr?.pipe(out);
  }
  const exited = new Promise<number | NodeJS.Signals | null>((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? signal));
    child.once('error', () => resolve(null));
  });
  const proc: ManagedProcess = {
    name,
    child,
    exited,
    async stop(graceMs = 5000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const kill = (sig: NodeJS.Signals) => {
        try {
          process.kill(-child.pid!, sig); // the whole group: the temporal CLI has no children, but be sure
        } catch {
          child.kill(sig);
        }
      };
      kill('SIGTERM');
      const timer = setTimeout(() => kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
  live.add(proc);
  void exited.then(() => live.delete(proc));
  return proc;
}

let reaping = false;
/**
 * For test and tool processes: a SIGTERM/SIGINT (a test runner's timeout, Ctrl-C) exits the process,
 * and on exit every direct child still running is killed, including servers spawned by libraries
 * (the Temporal SDK's dev server), so an interrupted run leaves no stray processes.
 */
export function reapChildrenOnExit(): void {
  if (reaping) return;
  reaping = true;
  process.on('exit', () => {
    spawnSync('pkill', ['-KILL', '-P', String(process.pid)], { stdio: 'ignore' });
  });
  for (const [sig, code] of [['SIGTERM', 143], ['SIGINT', 130]] as const) {
    process.once(sig, () => process.exit(code));
  }
}
