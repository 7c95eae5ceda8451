// The CLI as a user runs it: bin/avatar-sessions.js as a child process against the real stack's
// Temporal (and, for `watch` on a terminal, under a real pseudo-terminal from util-linux `script`).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { sessionWorkflowId } from '../workflows/shared';
import { startSessionStack, uniqueId, type SessionStack } from './helpers/session-stack';
import { eventually, withTimeout } from './helpers/wait';

const BIN = path.resolve(__dirname, '..', 'bin', 'avatar-sessions.js');
const HAS_SCRIPT = spawnSync('script', ['--version']).status === 0;

type Run = { code: number | null; out: string; err: string };

describe('avatar-sessions CLI', () => {
  let stack: SessionStack;
  const outputs: string[] = [];
  before(async () => {
    stack = await startSessionStack({ sim: { defaults: { provisioningMs: 100, avatarMedia: 'light' } } });
  });
  after(async () => {
    await stack?.stop();
  });

  const cliEnv = (over: Record<string, string> = {}) => ({
    ...process.env,
    TEMPORAL_ADDRESS: stack.env.address,
    TEMPORAL_NAMESPACE: 'default',
    SESSION_SECRETS_KEY: stack.config.secretsKey.toString('base64'),
    ...over,
  });

  function run(args: string[], opts: { env?: Record<string, string>; tty?: boolean } = {}): { done: Promise<Run>; output: () => string } {
    // With tty: `script` gives the CLI a pseudo-terminal as stdout (and exits with its code, -e).
    const [cmd, argv] = opts.tty ? ['script', ['-qefc', [process.execPath, BIN, ...args].join(' '), '/dev/null']] : [process.execPath, [BIN, ...args]];
    const child = spawn(cmd, argv, { env: cliEnv(opts.env), stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const done = new Promise<Run>((r) =>
      child.on('close', (code) => {
        outputs.push(out, err);
        r({ code, out, err });
      }),
    );
    return { done, output: () => out };
  }
  const cli = (args: string[], env?: Record<string, string>) => withTimeout(run(args, { env }).done, 60_000, `avatar-sessions ${args.join(' ')}`);
  const runwaySessionsFor = (room: string) => stack.sim.sessions().filter((s) => JSON.stringify(s.body).includes(room));
  const ended = (id: string) => withTimeout(stack.env.client.workflow.getHandle(sessionWorkflowId(id)).result(), 30_000, `session ${id} to end`);

  it('start (idempotent), status, list, watch (plain lines when piped) and end', async () => {
    const id = uniqueId('cli');
    const room = `room-${id}`;
    const runwayBefore = stack.sim.sessions().length;
    const first = await cli(['start', '--conversation', id, '--room', room, '--mode', 'relay', '--end-user', 'user-1']);
    assert.equal(first.code, 0, first.err);
    const a = JSON.parse(first.out) as { conversationId: string; workflowId: string; runId: string; started: boolean };
    assert.deepEqual([a.conversationId, a.workflowId, a.started], [id, sessionWorkflowId(id), true]);
    const second = await cli(['start', '--conversation', id, '--room', room, '--mode', 'relay']);
    assert.equal(second.code, 0, second.err);
    const b = JSON.parse(second.out) as { runId: string; started: boolean };
    assert.deepEqual([b.runId, b.started], [a.runId, false], 'the running session, not a second one');

    await eventually('live', async () => ((await stack.sessions.getSession(id))?.phase === 'live' ? true : undefined), 30_000);
    const status = await cli(['status', id]);
    assert.equal(status.code, 0, status.err);
    assert.match(status.out, new RegExp(`^${id}  phase=live  mode=relay  runway=\\S+  room=${room}  elapsed=`));
    assert.match(status.out, /▶ live/);
    assert.match(status.out, /✓ waiting_ready\s+\d+(\.\d)?s/);
    const json = await cli(['status', id, '--json']);
    const state = JSON.parse(json.out) as { phase: string; endUserIdentity: string; mode: string };
    assert.deepEqual([state.phase, state.endUserIdentity, state.mode], ['live', 'user-1', 'relay']);

    await eventually(
      'listed as live',
      async () => {
        const list = await cli(['list', '--phase', 'live']);
        return list.out.split('\n').some((l) => l.startsWith(`${id}\tRUNNING\tlive\trelay\t${room}\t`)) ? true : undefined;
      },
      20_000,
    );
    const byRoom = await cli(['list', '--room', room, '--json']);
    assert.equal(byRoom.code, 0, byRoom.err);
    assert.deepEqual(
      (JSON.parse(byRoom.out) as { conversationId: string }[]).map((s) => s.conversationId),
      [id],
    );
    const limited = await cli(['list', '--limit', '1']);
    assert.equal(limited.out.trim().split('\n').length, 2, 'a header and one session');

    const watch = run(['watch', id, '--interval', '200']);
    await eventually('watch printed the live phase', () => (/ live\n/.test(watch.output()) ? true : undefined));
    const end = await cli(['end', id]);
    assert.equal(end.code, 0, end.err);
    assert.equal(end.out.trim(), `ending ${id}`);
    const watched = await withTimeout(watch.done, 60_000, 'watch to exit when the session ends');
    assert.equal(watched.code, 0, watched.err);
    assert.ok(!watched.out.includes('\x1b['), 'no escape codes when stdout is not a terminal');
    const phases = watched.out
      .split('\n')
      .filter((l) => /^\d{4}-\d\d-\d\dT\S+ \w+/.test(l))
      .map((l) => l.split(' ')[1]);
    assert.deepEqual(phases.slice(0, 1), ['live']);
    assert.equal(phases.at(-1), 'completed');
    assert.match(watched.out, /end reason: ended_by_request/);
    await ended(id);
    const again = await cli(['end', id]);
    assert.equal(again.code, 0, 'ending an ended session is fine');
    // Relay mode does not name the room to Runway: count every session the simulator created meanwhile.
    assert.equal(stack.sim.sessions().length - runwayBefore, 1, 'exactly one Runway session');
    // A start after the end brings nothing back (exit 5, the previous outcome), unless --restart.
    const late = await cli(['start', '--conversation', id, '--room', room, '--mode', 'relay']);
    assert.equal(late.code, 5, late.err);
    assert.match(late.err, /already had a session, which ended .*--restart/);
    assert.equal((JSON.parse(late.out) as { previous: { endReason: string } }).previous.endReason, 'ended_by_request');
    assert.equal(stack.sim.sessions().length - runwayBefore, 1, 'still one Runway session');
  });

  it(
    'start --wait prints the join info; watch on a terminal redraws in place',
    { skip: !HAS_SCRIPT && 'needs util-linux script for a pseudo-terminal' },
    async () => {
      const id = uniqueId('cli');
      const room = `room-${id}`;
      const started = await cli(['start', '--conversation', id, '--room', room, '--mode', 'direct', '--preset', 'cooking-teacher', '--wait'], {
        LIVEKIT_PUBLIC_URL: 'wss://lk.example.test',
      });
      assert.equal(started.code, 0, started.err);
      const body = JSON.parse(started.out) as {
        started: boolean;
        phase: string;
        live: { roomName: string; mode: string; avatarIdentity: string; livekitUrl: string };
      };
      assert.equal(runwaySessionsFor(room).length, 1);
      assert.equal(body.started, true);
      assert.equal(body.phase, 'live');
      assert.deepEqual(
        [body.live.roomName, body.live.mode, body.live.avatarIdentity, body.live.livekitUrl],
        [room, 'direct', `runway-avatar-${id}`, 'wss://lk.example.test'],
      );

      const watch = run(['watch', id, '--interval', '200'], { tty: true });
      // Drawn at least twice: the second frame starts by moving the cursor up over the first and clearing.
      await eventually('watch redrew in place', () => (/\x1b\[\d+A\x1b\[J/.test(watch.output()) ? true : undefined));
      assert.match(watch.output(), /▶ live/);
      assert.equal((await cli(['end', id])).code, 0);
      const watched = await withTimeout(watch.done, 60_000, 'watch (tty) to exit');
      assert.equal(watched.code, 0, watched.out + watched.err);
      const lastFrame = watched.out.split(/\x1b\[\d+A\x1b\[J/).at(-1)!;
      assert.match(lastFrame, /phase=completed/);
      assert.match(lastFrame, /✓ live/);
      assert.match(lastFrame, /▶ completed/);
      assert.match(lastFrame, /end reason: ended_by_request/);
      await ended(id);
    },
  );

  it('start --wait exits 4 when the session is not live in time, 1 when it fails', async () => {
    stack.sim.nextSessions([{ provisioningMs: 60_000 }]);
    const slow = uniqueId('cli');
    const t = await cli(['start', '--conversation', slow, '--room', `room-${slow}`, '--mode', 'direct', '--wait', '--timeout', '1']);
    assert.equal(t.code, 4, t.err);
    // Where the session is after 1 s depends on the machine's load: provisioning (60 s), never live.
    assert.match(t.err, /not live after 1 s \(phase (waiting_capacity|creating|waiting_ready)\)/);
    assert.ok(['waiting_capacity', 'creating', 'waiting_ready'].includes((JSON.parse(t.out) as { phase: string }).phase), t.out);
    assert.equal((await cli(['end', slow])).code, 0);
    await ended(slow);

    stack.sim.nextSessions([{ provisioningMs: 10_000, failAfterMs: 50, failureCode: 'INTERNAL.GPU_UNAVAILABLE' }]);
    const failing = uniqueId('cli');
    const f = await cli(['start', '--conversation', failing, '--room', `room-${failing}`, '--mode', 'relay', '--wait']);
    assert.equal(f.code, 1, f.out + f.err);
    assert.match(f.err, /did not go live: .*GPU_UNAVAILABLE/);
    await ended(failing).catch(() => undefined);
    const watched = await cli(['watch', failing]);
    assert.equal(watched.code, 1, 'watch exits 1 for a failed session');
    assert.match(watched.out, /failed/);
  });

  it('prints what a session carries (room names, identities, errors) with control characters escaped, never interpreted by the terminal', async () => {
    // The typed client is operator-level and takes any room name; the HTTP API would refuse this one.
    const id = uniqueId('cli');
    const room = `room-${id}\x1b]0;owned\x07\x1b[2J\u202e`;
    await stack.sessions.startSession({
      conversationId: id,
      avatar: { type: 'runway-preset', presetId: 'cooking-teacher' },
      livekit: { roomName: room, endUserIdentity: 'user\x1b[31m' },
      mode: 'relay',
    });
    try {
      const status = await cli(['status', id]);
      assert.equal(status.code, 0, status.err);
      assert.ok(!/[\x00-\x08\x0b-\x1f\x7f\u202e]/.test(status.out), `no raw control characters: ${JSON.stringify(status.out)}`);
      assert.ok(status.out.includes(`room=room-${id}\\u{001b}]0;owned\\u{0007}\\u{001b}[2J\\u{202e}`), status.out);
      const listed = await eventually(
        'listed by room',
        async () => {
          const list = await cli(['list', '--room', room]);
          return list.out.includes(id) ? list : undefined;
        },
        20_000,
      );
      assert.ok(!/[\x00-\x08\x0b-\x1f\x7f\u202e]/.test(listed.out.replace(/\t/g, ' ')), `list: ${JSON.stringify(listed.out)}`);
      // --json stays exact (JSON escapes them itself).
      const json = JSON.parse((await cli(['status', id, '--json'])).out) as { roomName: string; endUserIdentity: string };
      assert.deepEqual([json.roomName, json.endUserIdentity], [room, 'user\x1b[31m']);
    } finally {
      await cli(['end', id]);
      await ended(id).catch(() => undefined);
    }
  });

  it('bad flags are named and exit 2 without contacting Temporal; unknown sessions exit 3', async () => {
    // A dead Temporal address: if any of these tried to connect, it would fail with exit 1 instead.
    const dead = { TEMPORAL_ADDRESS: '127.0.0.1:1' };
    const cases: [string[], RegExp][] = [
      [['start', '--conversation', 'c1'], /start: --room is required/],
      [['start', '--room', 'r'], /start: --conversation is required/],
      [['start', '--conversation', 'c2', '--room', 'r', '--preset', 'nope'], /--preset "nope" is not a Runway preset; use one of: /],
      [['start', '--conversation', 'c2', '--room', 'r', '--mode', 'sideways'], /--mode must be one of auto, direct, relay, got "sideways"/],
      [['start', '--conversation', 'has space', '--room', 'r'], /--conversation: must be 1-128 characters/],
      [['start', '--conversation', 'c3', '--room', 'r', '--max-duration', 'soon'], /--max-duration must be a positive whole number, got "soon"/],
      [['start', '--conversation', 'c3', '--room', 'r', '--max-duration', '999999'], /--max-duration: .*86400/],
      [['start', '--conversation', 'c3', '--room', 'r', '--timeout', '5'], /--timeout only applies with --wait/],
      [['start', '--conversation', 'c3', '--room', 'r', '--wait', '--timeout', '0'], /--timeout must be a positive whole number/],
      [['start', '--conversation', 'c3', '--room', 'r', '--preset', 'cooking-teacher', '--avatar-id', 'a'], /--preset or --avatar-id, not both/],
      [['start', '--conversation'], /--conversation/],
      [['list', '--colour'], /--colour/],
      [['list', '--phase', 'dancing'], /--phase must be one of waiting_capacity.*got "dancing"/],
      [['list', '--limit', 'many'], /--limit must be a positive whole number, got "many"/],
      [['status'], /status: give the conversation id/],
      [['status', 'a', 'b'], /takes one conversation id/],
      [['end', 'x', '--wait'], /--wait is not an option of end/],
      [['watch', 'x', '--interval', '-5'], /--interval/],
      [['launch'], /unknown command "launch"/],
      [[], /usage: avatar-sessions/],
    ];
    const results = await Promise.all(cases.map(([args]) => cli(args, dead)));
    results.forEach((r, i) => {
      const [args, message] = cases[i]!;
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.err}`);
      assert.match(r.err, message, args.join(' '));
      assert.match(r.err, /usage: avatar-sessions/);
    });
    assert.equal((await cli(['--help'], dead)).code, 0);

    const nobody = uniqueId('nobody');
    for (const cmd of ['status', 'end', 'watch']) {
      const r = await cli([cmd, nobody]);
      assert.equal(r.code, 3, `${cmd}: ${r.err}`);
      assert.match(r.err, new RegExp(`no session for conversation ${nobody}`));
    }
    assert.equal(stack.sim.sessions().filter((s) => JSON.stringify(s.body).includes('c3')).length, 0);
  });

  it('an unreachable Temporal is exit 1 naming the address; no secret is ever printed', async () => {
    const r = await cli(['status', 'c1'], { TEMPORAL_ADDRESS: '127.0.0.1:1' });
    assert.equal(r.code, 1);
    assert.match(r.err, /cannot reach Temporal at 127\.0\.0\.1:1 \(namespace default; set TEMPORAL_ADDRESS/);
    const key = stack.config.secretsKey.toString('base64');
    assert.ok(outputs.length > 10);
    assert.ok(
      outputs.every((o) => !o.includes(key)),
      'the history key never appears in any output',
    );
  });
});
