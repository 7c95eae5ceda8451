// `npm start` after a hard stop (src/main.ts as a child process, as the demo test runs it): SIGKILL it and
// start it again on the same data directory and the same ports; the second start is up and serves a
// session, and nothing of the first start is left running, whether the first start's watcher stopped
// its servers (src/dev/child.ts) or the pid file did (src/dev/pid-file.ts). And a port held by an
// unrelated process is named on stderr with the variable that moves it, and the start fails at once.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { identify, PID_FILE, type ProcessIdentity } from '../src/dev/pid-file';
import { assertPortsFree, type PortSpec } from '../src/dev/ports';
import { descendants, embeddedStackEnv, startEmbeddedStack, type EmbeddedStack } from './helpers/embedded-stack';
import { eventually } from './helpers/wait';

const ROOT = path.resolve(__dirname, '..');
const ARTIFACTS = path.resolve(ROOT, 'test-artifacts', 'restart');

/** A port `p` in 20000-29999 (below the ephemeral range) with p..p+width-1 free for TCP and UDP. */
async function freeRun(width: number, avoid: Set<number>): Promise<number> {
  for (;;) {
    const p = 20000 + Math.floor(Math.random() * (10000 - width));
    const range = Array.from({ length: width }, (_, i) => p + i);
    if (range.some((x) => avoid.has(x))) continue;
    const specs: PortSpec[] = range.flatMap((port) =>
      (['tcp', 'udp'] as const).map((protocol) => ({ port, protocol, variable: '', what: '', fix: '', host: '0.0.0.0' })),
    );
    try {
      await assertPortsFree(specs);
      for (const x of range) avoid.add(x);
      return p;
    } catch {
      /* taken: another try */
    }
  }
}

/** Every port of the stack pinned to a free one (the LiveKit servers take port, +1 and +2). */
async function pinnedPorts(): Promise<Record<string, string>> {
  const avoid = new Set<number>();
  const env: Record<string, string> = {};
  for (const v of ['DEV_TEMPORAL_PORT', 'TEMPORAL_UI_PORT', 'RUNWAY_SIM_PORT', 'API_PORT', 'METRICS_PORT']) env[v] = String(await freeRun(1, avoid));
  for (const v of ['DEV_LIVEKIT_PORT', 'DEV_RUNWAY_LIVEKIT_PORT']) env[v] = String(await freeRun(3, avoid));
  return env;
}

/** Still the same process (not a zombie, not a pid reused since). */
const running = (p: ProcessIdentity) => identify(p.pid)?.start === p.start;

type Recorded = ProcessIdentity & { name: string };
const recordedServers = (dataDir: string): Recorded[] => (JSON.parse(readFileSync(path.join(dataDir, PID_FILE), 'utf8')) as { servers: Recorded[] }).servers;

/** src/main.ts run to its end: exit code and what it wrote. */
async function runMain(env: NodeJS.ProcessEnv, timeoutMs = 60_000): Promise<{ code: number | null; stderr: string; stdout: string; ms: number }> {
  const t0 = Date.now();
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  clearTimeout(timer);
  return { code, stderr, stdout, ms: Date.now() - t0 };
}

/** A session through the HTTP API: started with ?wait=live, ended, completed. */
async function serveSession(stack: EmbeddedStack, id: string): Promise<void> {
  const headers = { authorization: `Bearer ${stack.secrets.apiToken}`, 'content-type': 'application/json' };
  const res = await fetch(`${stack.apiUrl}/v1/sessions?wait=live`, {
    method: 'POST',
    headers,
    body: JSON.stringify({
      conversationId: id,
      avatar: { type: 'runway-preset', presetId: 'cooking-teacher' },
      livekit: { roomName: `room-${id}` },
      mode: 'direct',
    }),
  });
  const body = (await res.json()) as { phase: string };
  assert.equal(res.status, 201, JSON.stringify(body));
  assert.equal(body.phase, 'live');
  assert.equal((await fetch(`${stack.apiUrl}/v1/sessions/${id}/end`, { method: 'POST', headers: { authorization: headers.authorization } })).status, 202);
  await eventually(
    `session ${id} completed`,
    async () => {
      const s = (await (await fetch(`${stack.apiUrl}/v1/sessions/${id}`, { headers: { authorization: headers.authorization } })).json()) as { phase: string };
      return s.phase === 'completed' ? true : undefined;
    },
    60_000,
    250,
  );
}

describe('npm start after a hard stop', () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  const cleanups: (() => Promise<void> | void)[] = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });
  /** Whatever a test left running (a failed assertion mid-way) is killed at the end. */
  const killAtEnd = (procs: ProcessIdentity[]) =>
    cleanups.push(() => {
      for (const p of procs)
        if (running(p))
          try {
            process.kill(p.pid, 'SIGKILL');
          } catch {
            /* gone */
          }
    });
  const tempDir = () => {
    const d = mkdtempSync(path.join(os.tmpdir(), 'avatar-restart-'));
    cleanups.push(() => rmSync(d, { recursive: true, force: true }));
    return d;
  };

  it('SIGKILL of npm start: its servers stop with it, and a second start on the same data directory and ports is up and serves a session', async () => {
    const dataDir = tempDir();
    const env = await pinnedPorts();
    const first = await startEmbeddedStack({ env, dataDir, logDir: ARTIFACTS });
    cleanups.push(() => first.stop(5000));
    const servers = recordedServers(dataDir);
    assert.deepEqual(servers.map((s) => s.name).sort(), ['livekit', 'livekit-runway-sim', 'temporal']);
    const firstProcs = descendants(first.pid)
      .map((pid) => identify(pid))
      .filter((p): p is ProcessIdentity => !!p);
    for (const s of servers)
      assert.ok(
        firstProcs.some((p) => p.pid === s.pid),
        `${s.name} (pid ${s.pid}) is a child of npm start`,
      );
    killAtEnd(firstProcs);

    // While it runs, a second npm start on its data directory is refused and changes nothing.
    const refused = await runMain(embeddedStackEnv(dataDir, env));
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, new RegExp(`another npm start \\(pid ${first.pid}\\) is running with the data directory`));
    for (const s of servers) assert.ok(running(s), `${s.name} still running`);
    assert.equal((await fetch(`${first.apiUrl}/healthz`)).status, 200);

    process.kill(first.pid, 'SIGKILL');
    const second = await startEmbeddedStack({ env, dataDir, logDir: ARTIFACTS });
    cleanups.push(() => second.stop());
    assert.equal(second.apiUrl, first.apiUrl);
    assert.equal(second.endpoints['Temporal gRPC'], `127.0.0.1:${env.DEV_TEMPORAL_PORT}`);
    await serveSession(second, `restart-${Date.now()}`);

    // Nothing of the first start is left: its servers, its watcher, its esbuild service.
    await eventually('every process of the first start gone', async () => (firstProcs.some(running) ? undefined : true), 20_000, 200).catch((err: Error) => {
      throw new Error(
        `${err.message}: ${firstProcs
          .filter(running)
          .map((p) => `${p.pid} ${p.exe}`)
          .join(', ')}`,
      );
    });
    const now = recordedServers(dataDir);
    assert.equal(now.length, 3);
    for (const s of now) assert.ok(!servers.some((o) => o.pid === s.pid) && running(s), `${s.name} is the second start's`);
  });

  it('SIGKILL of npm start and of its watcher: the next start stops the servers its pid file names, then serves a session', async () => {
    const dataDir = tempDir();
    const env = await pinnedPorts();
    const first = await startEmbeddedStack({ env, dataDir, logDir: ARTIFACTS });
    cleanups.push(() => first.stop(5000));
    const servers = recordedServers(dataDir);
    killAtEnd(servers);
    // Everything but the servers dies at once, as a kill of every process of the session would do.
    const others = descendants(first.pid).filter((pid) => !servers.some((s) => s.pid === pid));
    assert.ok(others.length >= 1, 'the watcher runs beside the servers');
    for (const pid of [first.pid, ...others]) process.kill(pid, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 2000));
    // The old failure: servers outlive them. (One may still die on its own, e.g. of SIGPIPE when it
    // writes to the dead watcher's pipe; the next start must cope with both.)
    const survivors = servers.filter(running);
    assert.ok(survivors.length >= 1, `some server outlives them: ${servers.map((s) => `${s.name} ${running(s) ? 'up' : 'gone'}`).join(', ')}`);

    const second = await startEmbeddedStack({ env, dataDir, logDir: ARTIFACTS });
    cleanups.push(() => second.stop());
    for (const s of survivors) {
      assert.ok(!running(s), `${s.name} (pid ${s.pid}) of the first start was stopped`);
      assert.ok(second.log().includes(`stopping ${s.name} (pid ${s.pid}), left running by an earlier npm start`), `the terminal says it stopped ${s.name}`);
    }
    await serveSession(second, `restart-pidfile-${Date.now()}`);
  });

  it('a port held by an unrelated process: named on stderr with its variable and holder, npm start exits non-zero at once and the holder lives on', async () => {
    const env = await pinnedPorts();
    const variables = ['DEV_TEMPORAL_PORT', 'TEMPORAL_UI_PORT', 'DEV_LIVEKIT_PORT', 'DEV_RUNWAY_LIVEKIT_PORT', 'RUNWAY_SIM_PORT', 'API_PORT', 'METRICS_PORT'];
    // For a second run: a LiveKit port whose +1 (ICE/TCP, bound on every interface) alone is held.
    const lkBase = await freeRun(3, new Set(variables.map((v) => Number(env[v]))));
    const lkPlus1 = lkBase + 1;
    const held = [...variables.map((v) => Number(env[v])), lkPlus1];
    const holder = spawn(
      process.execPath,
      [
        '-e',
        `
      const net = require('net');
      const ports = process.argv.slice(1).map(Number);
      let n = 0;
      for (const p of ports) net.createServer().listen(p, p === ${lkPlus1} ? '0.0.0.0' : '127.0.0.1', () => { if (++n === ports.length) console.log('listening'); });
    `,
        ...held.map(String),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    cleanups.push(() => {
      holder.kill('SIGKILL');
    });
    await new Promise<void>((resolve, reject) => {
      holder.stdout.on('data', (d: Buffer) => {
        if (d.toString().includes('listening')) resolve();
      });
      holder.once('exit', () => reject(new Error('the holder exited')));
    });

    const dataDir = tempDir();
    const all = await runMain(embeddedStackEnv(dataDir, env));
    assert.equal(all.code, 1, all.stderr);
    for (const v of variables) {
      assert.match(
        all.stderr,
        new RegExp(`port ${env[v]} \\(${v}, [^)]*\\) is already in use, held by pid ${holder.pid} \\(${process.execPath.replace(/[/\\.]/g, '\\$&')} -e`),
        `${v} named with its holder`,
      );
      assert.match(all.stderr, new RegExp(`set ${v}=<another port>`));
    }
    assert.ok(!existsSync(path.join(dataDir, 'logs', 'temporal.log')), 'no server was started');
    assert.ok(!existsSync(path.join(dataDir, PID_FILE)), 'the data directory is released');
    console.log(`all ports held: npm start exited ${all.code} after ${all.ms} ms`);

    // Only LiveKit's +1 port held; the rest free: that one alone is named.
    const others = await pinnedPorts();
    const one = await runMain(embeddedStackEnv(tempDir(), { ...others, DEV_LIVEKIT_PORT: String(lkBase) }));
    assert.equal(one.code, 1, one.stderr);
    assert.match(
      one.stderr,
      new RegExp(`port ${lkPlus1} \\(DEV_LIVEKIT_PORT\\+1, the LiveKit dev server's ICE/TCP port\\) is already in use, held by pid ${holder.pid}`),
    );
    assert.doesNotMatch(one.stderr, /DEV_TEMPORAL_PORT|API_PORT|METRICS_PORT/, 'free ports are not named');

    assert.equal(holder.exitCode, null, 'the unrelated holder was not touched');
    holder.kill('SIGKILL');
  });
});
