// `npm start`'s fixed ports, checked before anything is started: a port another process holds is named
// at once on the terminal with the variable that moves it and, where the OS lets us see it, the pid and
// command holding it, instead of a server failing later into its log file.
import { spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import net from 'node:net';
import { redactString } from '../redact';

export interface PortSpec {
  port: number;
  protocol: 'tcp' | 'udp';
  /** The variable that moves it, as the user would write it: `DEV_LIVEKIT_PORT`, `DEV_LIVEKIT_PORT+1`. */
  variable: string;
  /** What uses it: `the Temporal dev server's gRPC port`. */
  what: string;
  /** How to move it: `DEV_LIVEKIT_PORT=<another port> (0: any free port)`. */
  fix: string;
  /** Address the server binds (a holder on the wildcard address conflicts with it too). */
  host?: string;
}

export interface PortHolder {
  pid: number;
  command: string;
}

export interface TakenPort {
  spec: PortSpec;
  /** EADDRINUSE, EACCES… */
  code: string;
  holders: PortHolder[];
}

export class PortsTakenError extends Error {
  constructor(
    readonly taken: TakenPort[],
    readonly duplicates: string[] = [],
  ) {
    super([...duplicates, ...taken.map(describeTakenPort)].join('\n'));
    this.name = 'PortsTakenError';
  }
}

/** Whether `spec`'s port can be bound now: undefined if so, else the error code. */
async function tryBind(spec: PortSpec): Promise<string | undefined> {
  const host = spec.host ?? '127.0.0.1';
  return new Promise((resolve) => {
    if (spec.protocol === 'udp') {
      const sock = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
      sock.once('error', (err: NodeJS.ErrnoException) => {
        sock.close();
        resolve(err.code ?? String(err));
      });
      sock.bind(spec.port, host, () => sock.close(() => resolve(undefined)));
    } else {
      const srv = net.createServer();
      srv.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? String(err)));
      srv.listen({ port: spec.port, host }, () => srv.close(() => resolve(undefined)));
    }
  });
}

/** Linux: the socket inodes bound to `port` (TCP: listening; UDP: bound), from /proc/net/{tcp,udp}{,6}. */
function socketInodes(port: number, protocol: 'tcp' | 'udp'): Set<string> {
  const inodes = new Set<string>();
  for (const file of [`/proc/net/${protocol}`, `/proc/net/${protocol}6`]) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10) continue;
      const localPort = parseInt(f[1]!.split(':').pop()!, 16);
      // st 0A = TCP_LISTEN; UDP sockets are 07 (unconnected) when merely bound.
      if (localPort !== port || (protocol === 'tcp' && f[3] !== '0A')) continue;
      if (f[9] && f[9] !== '0') inodes.add(f[9]);
    }
  }
  return inodes;
}

/** A process's command line, shortened and with this service's secrets (a LiveKit config body) redacted. */
export function processCommand(pid: number): string {
  let cmd: string;
  try {
    cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
  } catch {
    const res = spawnSync('ps', ['-o', 'args=', '-p', String(pid)], { encoding: 'utf8' });
    cmd = res.status === 0 ? res.stdout.trim() : '';
  }
  cmd = redactString(cmd).replace(/\s+/g, ' ').trim();
  return cmd.length > 160 ? `${cmd.slice(0, 157)}...` : cmd;
}

/**
 * Who holds `port`, where it can be known: on Linux by matching the socket's inode in /proc/net against
 * /proc/PID/fd (only processes this user may inspect), else through `lsof` when it is installed.
 */
export function portHolders(port: number, protocol: 'tcp' | 'udp'): PortHolder[] {
  const pids = new Set<number>();
  const inodes = socketInodes(port, protocol);
  if (inodes.size > 0) {
    let procs: string[] = [];
    try {
      procs = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
    } catch {
      /* no /proc */
    }
    for (const pid of procs) {
      let fds: string[];
      try {
        fds = readdirSync(`/proc/${pid}/fd`);
      } catch {
        continue; // gone, or another user's
      }
      for (const fd of fds) {
        try {
          const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
          if (m && inodes.has(m[1]!)) {
            pids.add(Number(pid));
            break;
          }
        } catch {
          /* closed meanwhile */
        }
      }
    }
  }
  if (pids.size === 0 && process.platform !== 'linux') {
    const args = protocol === 'tcp' ? ['-nP', `-iTCP:${port}`, '-sTCP:LISTEN', '-t'] : ['-nP', `-iUDP:${port}`, '-t'];
    const res = spawnSync('lsof', args, { encoding: 'utf8' });
    for (const p of (res.stdout ?? '').split('\n')) if (/^\d+$/.test(p.trim())) pids.add(Number(p.trim()));
  }
  return [...pids].map((pid) => ({ pid, command: processCommand(pid) }));
}

export function describeTakenPort(t: TakenPort): string {
  const { spec } = t;
  const head = `port ${spec.port}${spec.protocol === 'udp' ? '/udp' : ''} (${spec.variable}, ${spec.what})`;
  const why = t.code === 'EADDRINUSE' ? 'is already in use' : t.code === 'EACCES' ? 'may not be bound by this user' : `cannot be bound (${t.code})`;
  const by = t.holders.length
    ? `, held by ${t.holders.map((h) => `pid ${h.pid} (${h.command || 'command unknown'})`).join(', ')}`
    : t.code === 'EADDRINUSE'
      ? ' by a process this user cannot inspect'
      : '';
  return `${head} ${why}${by}. Stop that process, or set ${spec.fix}.`;
}

/**
 * Checks every port at once; throws a PortsTakenError naming each one that cannot be bound (and any
 * port configured twice) so the user sees every conflict in one go.
 */
export async function assertPortsFree(specs: PortSpec[]): Promise<void> {
  const duplicates: string[] = [];
  const seen = new Map<string, PortSpec>();
  for (const s of specs) {
    const key = `${s.protocol}/${s.port}`;
    const first = seen.get(key);
    if (first) duplicates.push(`port ${s.port} is set for both ${first.variable} and ${s.variable}: set ${s.fix}.`);
    else seen.set(key, s);
  }
  const taken: TakenPort[] = [];
  for (const spec of seen.values()) {
    const code = await tryBind(spec);
    if (code) taken.push({ spec, code, holders: code === 'EADDRINUSE' ? portHolders(spec.port, spec.protocol) : [] });
  }
  if (taken.length || duplicates.length) throw new PortsTakenError(taken, duplicates);
}
