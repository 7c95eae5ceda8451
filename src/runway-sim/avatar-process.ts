// The simulator's rtc-node avatars in a child process (src/runway-sim/avatar-runner.ts), one process
// shared by every avatar started through it. Runway's avatars never run inside the service that
// relays them: in one process the avatar's frame generation, encoding and room joins share the
// relay's event loop and bias what the relay's figures (the gap at a renewal) say. Select it with the
// simulator's `startAvatar: startProcessAvatar` (the renewal tests, bench:relay --renewals). Only the
// options that cross a process boundary are passed (callbacks become events).
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import type { SimAvatarStats, StartSimAvatar } from './avatar-api';
import type { RunnerCommand, RunnerEvent } from './avatar-runner';

const JOIN_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;

type Handler = (e: RunnerEvent) => void;

class AvatarRunner {
  readonly child: ChildProcess;
  private readonly handlers = new Map<string, Handler>();
  private nextId = 0;
  exited = false;

  constructor() {
    this.child = fork(path.join(__dirname, 'avatar-runner.ts'), [], {
      execArgv: ['--import', 'tsx'],
      // rtc-node's own logger writes to stdout: keep it out of the parent's output.
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      env: { ...process.env, NODE_ENV: process.env.NODE_ENV ?? 'production' },
    });
    this.child.on('message', (e: RunnerEvent) => this.handlers.get(e.id)?.(e));
    this.child.once('exit', (code, signal) => {
      this.exited = true;
      if (runner === this) runner = undefined;
      for (const [id, h] of this.handlers) h({ ev: 'disconnected', id, reason: `avatar runner exited (${signal ?? code})` });
      this.handlers.clear();
    });
  }

  newId(): string {
    return `p${++this.nextId}`;
  }

  on(id: string, h: Handler): void {
    this.handlers.set(id, h);
  }

  off(id: string): void {
    this.handlers.delete(id);
  }

  send(cmd: RunnerCommand): void {
    if (!this.exited && this.child.connected) this.child.send(cmd);
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    const done = new Promise<void>((r) => this.child.once('exit', () => r()));
    this.child.disconnect(); // every avatar leaves its room, then the runner exits
    const t = setTimeout(() => this.child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    await done;
    clearTimeout(t);
  }
}

let runner: AvatarRunner | undefined;

function avatarRunner(): AvatarRunner {
  if (!runner || runner.exited) runner = new AvatarRunner();
  return runner;
}

/** The runner's pid, if it runs (benchmarks measure its CPU apart). */
export function avatarRunnerPid(): number | undefined {
  return runner && !runner.exited ? runner.child.pid : undefined;
}

/** Stops the shared runner process: every avatar it hosts leaves its room. */
export async function stopAvatarRunner(): Promise<void> {
  const r = runner;
  runner = undefined;
  await r?.stop();
}

export const startProcessAvatar: StartSimAvatar = async (opts) => {
  const proc = avatarRunner();
  const id = proc.newId();
  let stats: SimAvatarStats = { framesSent: 0, audioFramesSent: 0, audioFramesHeard: 0, dataMessagesSent: 0 };
  let stopped = false;
  let left!: () => void;
  const gone = new Promise<void>((r) => (left = r));
  const handle = (e: RunnerEvent): void => {
    if (e.ev === 'stats') stats = e.stats;
    else if (e.ev === 'peer') opts.onPeerJoined?.(e.identity);
    else if (e.ev === 'end_call') opts.onEndCall?.(e.from);
    else if (e.ev === 'stopped') {
      proc.off(id);
      left();
    } else if (e.ev === 'disconnected') {
      proc.off(id);
      left();
      if (!stopped) opts.onDisconnected?.(e.reason);
      stopped = true;
    }
  };
  const { onPeerJoined: _p, onEndCall: _e, onDisconnected: _d, ...plain } = opts;
  const identity = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.send({ op: 'stop', id });
      reject(new Error(`the avatar did not join within ${JOIN_TIMEOUT_MS} ms`));
    }, JOIN_TIMEOUT_MS);
    proc.on(id, (e) => {
      if (e.ev === 'started') {
        clearTimeout(timer);
        proc.on(id, handle);
        resolve(e.identity);
      } else if (e.ev === 'failed' || e.ev === 'disconnected') {
        clearTimeout(timer);
        proc.off(id);
        reject(new Error(e.ev === 'failed' ? e.error : e.reason));
      } else handle(e); // a peer seen while publishing
    });
    proc.send({ op: 'start', id, opts: plain });
  });
  return {
    identity,
    stats: () => ({ ...stats }),
    sendClientEvent: async (name, args) => {
      if (stopped) return;
      proc.send({ op: 'event', id, name, args });
      stats = { ...stats, dataMessagesSent: stats.dataMessagesSent + 1 };
    },
    sendData: async (msg) => {
      if (stopped) return;
      proc.send({ op: 'data', id, msg });
      stats = { ...stats, dataMessagesSent: stats.dataMessagesSent + 1 };
    },
    freezeVideo: () => proc.send({ op: 'freeze', id }),
    async stop() {
      if (stopped) return;
      stopped = true;
      proc.send({ op: 'stop', id });
      let t: NodeJS.Timeout | undefined;
      await Promise.race([gone, new Promise((r) => (t = setTimeout(r, STOP_TIMEOUT_MS)))]);
      clearTimeout(t);
      proc.off(id);
    },
  };
};
