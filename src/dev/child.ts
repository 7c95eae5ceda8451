// Child servers (Temporal dev server, livekit-server) run in process groups of their own, so a Ctrl-C
// on the terminal reaches only the parent, which stops them in order. The price: they would outlive a
// parent that dies without stopping them (SIGKILL, a crash, the OOM killer). A watcher process, in a
// group of its own and deaf to the usual signals, holds a pipe from the parent and is told each group
// as it starts; when the pipe closes (the parent is gone, however it ended) it stops every group left.
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

// POSIX sh: "+PGID" / "-PGID" lines add and drop groups; at end of input, SIGTERM to each group left,
// SIGKILL after 5 s to any still there.
const WATCHER_SCRIPT = `trap '' INT TERM HUP QUIT PIPE
groups=' '
while IFS= read -r line; do
  case "$line" in
    +*) groups="$groups\${line#+} " ;;
    -*) kept=' '; for g in $groups; do [ "$g" = "\${line#-}" ] || kept="$kept$g "; done; groups=$kept ;;
  esac
done
[ "$groups" = ' ' ] && exit 0
for g in $groups; do kill -TERM -"$g" 2>/dev/null; done
i=0
while [ $i -lt 50 ]; do
  up=
  for g in $groups; do kill -0 -"$g" 2>/dev/null && up=1; done
  [ -z "$up" ] && exit 0
  sleep 0.1
  i=$((i + 1))
done
for g in $groups; do kill -KILL -"$g" 2>/dev/null; done
`;

let watcher: ChildProcess | undefined;
/** Tells the watcher (started on first use) about a process group: '+' it started, '-' it ended. */
function tellWatcher(line: string): void {
  if (process.platform === 'win32') return;
  if (!watcher) {
    watcher = spawn('/bin/sh', ['-c', WATCHER_SCRIPT], { detached: true, stdio: ['pipe', 'ignore', 'ignore'] });
    watcher.on('error', () => undefined);
    watcher.stdin!.on('error', () => undefined);
    // Neither the watcher nor its pipe keeps this process alive.
    watcher.unref();
    (watcher.stdin as unknown as { unref?: () => void }).unref?.();
  }
  watcher.stdin!.write(`${line}\n`);
}

/** The watcher's pid, if one was started (tests use it to play a kill of every process). */
export const watcherPid = (): number | undefined => watcher?.pid;

type StartListener = (p: ManagedProcess) => void;
const startListeners: StartListener[] = [];
/** Calls `listener` for each process started from now on, right after it was spawned. */
export function onProcessStart(listener: StartListener): void {
  startListeners.push(listener);
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
  if (child.pid) {
    tellWatcher(`+${child.pid}`);
    void exited.then(() => tellWatcher(`-${child.pid}`));
  }
  void exited.then(() => live.delete(proc));
  for (const l of startListeners) l(proc);
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
  for (const [sig, code] of [
    ['SIGTERM', 143],
    ['SIGINT', 130],
  ] as const) {
    process.once(sig, () => process.exit(code));
  }
}
