// The simulator's light avatars at scale: every avatar is a participant of one shared Go process
// (tools/light-avatars, server-sdk-go/pion; built by `scripts/install-tools.sh --light-avatars`)
// instead of an @livekit/rtc-node Room in this process. Each publishes one tiny VP8 track at 1 fps
// (LiveKit lists it as publishing video, which is what the service's presence check needs), reports
// its first peer and END_CALL, and leaves on stop(). Select it with avatarMedia 'pion'.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { SimAvatar, SimAvatarOptions, SimAvatarStats, StartSimAvatar } from './avatar-api';

const ROOT = path.resolve(__dirname, '..', '..');

/** The light-avatars binary: LIGHT_AVATARS_PATH, else .tools/bin/light-avatars. */
export function lightAvatarsPath(): string {
  return process.env.LIGHT_AVATARS_PATH || path.join(ROOT, '.tools', 'bin', 'light-avatars');
}

interface Handlers {
  joined?: (identity: string) => void;
  failed?: (error: string) => void;
  peer?: (identity: string) => void;
  endCall?: (from: string) => void;
  disconnected?: (reason: string) => void;
  left?: () => void;
}

interface Event {
  ev: string;
  id?: string;
  identity?: string;
  error?: string;
  from?: string;
  reason?: string;
  avatars?: number;
  frames?: number;
}

/** One light-avatars process shared by every pion avatar of this Node process. */
class LightAvatarsProcess {
  private readonly handlers = new Map<string, Handlers>();
  private exited = false;
  private nextId = 0;
  /** The process's own latest count (stats event every 10 s). */
  lastStats = { avatars: 0, frames: 0 };

  constructor(private readonly child: ChildProcessWithoutNullStreams) {
    createInterface({ input: child.stdout }).on('line', (line) => {
      let e: Event;
      try {
        e = JSON.parse(line) as Event;
      } catch {
        return;
      }
      if (e.ev === 'stats') return void (this.lastStats = { avatars: e.avatars ?? 0, frames: e.frames ?? 0 });
      const h = e.id ? this.handlers.get(e.id) : undefined;
      if (!h) return;
      if (e.ev === 'joined') h.joined?.(e.identity ?? '');
      else if (e.ev === 'join_failed') h.failed?.(e.error ?? 'join failed');
      else if (e.ev === 'peer') h.peer?.(e.identity ?? '');
      else if (e.ev === 'end_call') h.endCall?.(e.from ?? '');
      else if (e.ev === 'disconnected') h.disconnected?.(e.reason ?? 'disconnected');
      else if (e.ev === 'left') h.left?.();
    });
    child.stderr.resume();
    child.once('exit', (code, signal) => {
      this.exited = true;
      for (const h of this.handlers.values()) {
        h.failed?.(`light-avatars exited (${signal ?? code})`);
        h.disconnected?.('light-avatars exited');
        h.left?.();
      }
      this.handlers.clear();
      if (current === this) current = undefined;
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  send(cmd: Record<string, unknown>): void {
    if (!this.exited) this.child.stdin.write(`${JSON.stringify(cmd)}\n`);
  }

  newId(): string {
    return `a${++this.nextId}`;
  }

  on(id: string, h: Handlers): void {
    this.handlers.set(id, h);
  }

  off(id: string): void {
    this.handlers.delete(id);
  }

  get alive(): boolean {
    return !this.exited;
  }

  /** Closes stdin (every avatar leaves), then waits for the exit; SIGKILL after 10 s. */
  async stop(): Promise<void> {
    if (this.exited) return;
    const done = new Promise<void>((r) => this.child.once('exit', () => r()));
    this.child.stdin.end();
    const t = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await done;
    clearTimeout(t);
  }
}

let current: LightAvatarsProcess | undefined;

function lightAvatars(): LightAvatarsProcess {
  if (current?.alive) return current;
  const bin = lightAvatarsPath();
  if (!existsSync(bin)) throw new Error(`light-avatars not found at ${bin}: run scripts/install-tools.sh --light-avatars (or set LIGHT_AVATARS_PATH)`);
  current = new LightAvatarsProcess(spawn(bin, [], { stdio: ['pipe', 'pipe', 'pipe'] }));
  return current;
}

/** The light-avatars process's pid and its latest self-reported counts, if it runs. */
export function lightAvatarsInfo(): { pid?: number; avatars: number; frames: number } | undefined {
  return current?.alive ? { pid: current.pid, ...current.lastStats } : undefined;
}

/** Stops the shared light-avatars process (every avatar leaves its room). */
export async function stopLightAvatars(): Promise<void> {
  const p = current;
  current = undefined;
  await p?.stop();
}

const JOIN_TIMEOUT_MS = 30_000;

/** Avatars that lost their room without being stopped, by the SDK's reason. */
const disconnects = new Map<string, number>();
export function lightAvatarDisconnects(): Record<string, number> {
  return Object.fromEntries(disconnects);
}

export const startPionAvatar: StartSimAvatar = async (opts: SimAvatarOptions): Promise<SimAvatar> => {
  const proc = lightAvatars();
  const id = proc.newId();
  const stats: SimAvatarStats = { framesSent: 0, audioFramesSent: 0, audioFramesHeard: 0, dataMessagesSent: 0 };
  let stopped = false;
  let peerSeen = false;
  let endCallSeen = false;
  let leftResolve: (() => void) | undefined;
  const left = new Promise<void>((r) => (leftResolve = r));

  const identity = await new Promise<string>((resolve, reject) => {
    const t = setTimeout(() => {
      proc.send({ op: 'leave', id });
      reject(new Error(`light avatar did not join within ${JOIN_TIMEOUT_MS} ms`));
    }, JOIN_TIMEOUT_MS);
    proc.on(id, {
      joined: (ident) => {
        clearTimeout(t);
        resolve(ident || opts.identity);
      },
      failed: (error) => {
        clearTimeout(t);
        proc.off(id);
        reject(new Error(error));
      },
    });
    proc.send({ op: 'join', id, url: opts.url, token: opts.token });
  });

  proc.on(id, {
    peer: (who) => {
      if (peerSeen || stopped) return;
      peerSeen = true;
      opts.onPeerJoined?.(who);
    },
    endCall: (from) => {
      if (endCallSeen || stopped) return;
      endCallSeen = true;
      opts.onEndCall?.(from || undefined);
    },
    disconnected: (reason) => {
      if (stopped) return;
      disconnects.set(reason, (disconnects.get(reason) ?? 0) + 1);
      stopped = true;
      proc.off(id);
      leftResolve?.();
      opts.onDisconnected?.(reason);
    },
    left: () => {
      proc.off(id);
      leftResolve?.();
    },
  });

  const publish = async (msg: unknown) => {
    if (stopped) return;
    proc.send({ op: 'data', id, payload: JSON.stringify(msg), topic: 'runway' });
    stats.dataMessagesSent++;
  };

  return {
    identity,
    stats: () => ({ ...stats }),
    sendClientEvent: (name, args) => publish({ type: 'client_event', name, args }),
    sendData: (msg) => publish(msg),
    freezeVideo: () => proc.send({ op: 'freeze', id }),
    async stop() {
      if (stopped) return;
      stopped = true;
      proc.send({ op: 'leave', id });
      await Promise.race([left, new Promise((r) => setTimeout(r, 10_000))]);
      proc.off(id);
    },
  };
};
