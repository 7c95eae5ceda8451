// One `npm start` per data directory, and no server left behind by the last one. DATA_DIR/embedded-servers.json
// records the running `npm start` and each embedded server it spawned (pid, start time and executable,
// so a pid the OS has since given to an unrelated process is never mistaken for ours). The next start
// refuses to run beside a live owner and stops the servers a killed one left running before it binds
// their ports. The watcher in src/dev/child.ts normally stops them first; this file covers the case
// where the watcher was killed too (a SIGKILL of every process, the OOM killer, a reboot of a VM).
import { spawnSync } from 'node:child_process';
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { ManagedProcess } from './child';

export interface ProcessIdentity {
  pid: number;
  /** Start time: clock ticks since boot from /proc/PID/stat (Linux), else `ps -o lstart`. */
  start: string;
  /** argv[0]. */
  exe: string;
}

interface Recorded extends ProcessIdentity {
  name: string;
}

interface PidFile {
  owner?: ProcessIdentity & { dataDir: string };
  servers: Recorded[];
}

export const PID_FILE = 'embedded-servers.json';

/** The identity of a running process, or undefined if there is none (or only a zombie). */
export function identify(pid: number): ProcessIdentity | undefined {
  if (process.platform === 'linux') {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      // Fields after the parenthesised command: state is field 3, starttime field 22.
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (rest[0] === 'Z' || rest[0] === 'X') return undefined;
      const exe = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0] ?? '';
      return { pid, start: rest[19]!, exe };
    } catch {
      return undefined;
    }
  }
  const res = spawnSync('ps', ['-o', 'stat=', '-o', 'lstart=', '-o', 'comm=', '-p', String(pid)], { encoding: 'utf8' });
  const m = /^\s*(\S+)\s+(\S+\s+\S+\s+\S+\s+\S+\s+\S+)\s+(.*)$/.exec(res.stdout ?? '');
  if (res.status !== 0 || !m || m[1]!.startsWith('Z')) return undefined;
  return { pid, start: m[2]!, exe: m[3]!.trim() };
}

/** True if `rec` still names the very process it was written for. */
function stillRunning(rec: ProcessIdentity): boolean {
  const now = identify(rec.pid);
  return !!now && now.start === rec.start && (now.exe === rec.exe || path.basename(now.exe) === path.basename(rec.exe));
}

export class DataDirInUseError extends Error {
  constructor(
    readonly ownerPid: number,
    dataDir: string,
  ) {
    super(
      `another npm start (pid ${ownerPid}) is running with the data directory ${dataDir}. Stop it (Ctrl-C in its terminal, or kill ${ownerPid}), or set DEV_DATA_DIR to another directory.`,
    );
    this.name = 'DataDirInUseError';
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig); // started detached: it leads its own process group
  } catch {
    try {
      process.kill(pid, sig);
    } catch {
      /* gone */
    }
  }
}

/** SIGTERM to each process group, SIGKILL to what is left after `graceMs`; resolves once all are gone. */
async function stopAll(recs: Recorded[], graceMs = 5000): Promise<void> {
  for (const r of recs) signal(r.pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (recs.some(stillRunning) && Date.now() < deadline) await sleep(100);
  for (const r of recs.filter(stillRunning)) signal(r.pid, 'SIGKILL');
  const hard = Date.now() + 5000;
  while (recs.some(stillRunning) && Date.now() < hard) await sleep(100);
}

export class DataDirClaim {
  private readonly file: string;
  private state: PidFile;

  private constructor(
    readonly dataDir: string,
    owner: ProcessIdentity,
  ) {
    this.file = path.join(dataDir, PID_FILE);
    this.state = { owner: { ...owner, dataDir }, servers: [] };
  }

  /**
   * Takes the data directory for this process: refuses (DataDirInUseError) if another live `npm start`
   * holds it, and stops each server a dead one left running, telling `report` about it.
   */
  static async claim(dataDir: string, report: (msg: string) => void): Promise<DataDirClaim> {
    const file = path.join(dataDir, PID_FILE);
    let previous: PidFile = { servers: [] };
    try {
      previous = JSON.parse(readFileSync(file, 'utf8')) as PidFile;
    } catch {
      /* none yet, or unreadable: nothing recorded */
    }
    if (previous.owner && previous.owner.pid !== process.pid && stillRunning(previous.owner)) throw new DataDirInUseError(previous.owner.pid, dataDir);
    const stale = (previous.servers ?? []).filter(stillRunning);
    for (const s of stale) report(`stopping ${s.name} (pid ${s.pid}), left running by an earlier npm start of ${dataDir}`);
    await stopAll(stale);
    const left = stale.filter(stillRunning);
    if (left.length)
      throw new Error(`could not stop ${left.map((s) => `${s.name} (pid ${s.pid})`).join(', ')} left running by an earlier npm start of ${dataDir}`);
    const self = identify(process.pid) ?? { pid: process.pid, start: '', exe: process.argv0 };
    const claim = new DataDirClaim(dataDir, self);
    claim.write();
    return claim;
  }

  /** Records a server just spawned; its entry is dropped when it exits. */
  add(proc: ManagedProcess): void {
    const pid = proc.child.pid;
    const id = pid ? identify(pid) : undefined;
    if (!id) return;
    const rec: Recorded = { ...id, name: proc.name };
    this.state.servers.push(rec);
    this.write();
    void proc.exited.then(() => {
      this.state.servers = this.state.servers.filter((s) => s !== rec);
      if (this.state.owner) this.write();
    });
  }

  /** A clean stop: nothing is left to clean up, so the file goes. */
  release(): void {
    this.state.owner = undefined;
    rmSync(this.file, { force: true });
  }

  private write(): void {
    const tmp = `${this.file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(this.state, null, 2) + '\n');
    renameSync(tmp, this.file);
  }
}
