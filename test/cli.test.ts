// The CLI as a user runs it: a child process against the real stack's Temporal.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { sessionWorkflowId } from '../workflows/shared';
import { startSessionStack, uniqueId, type SessionStack } from './helpers/session-stack';
import { eventually, withTimeout } from './helpers/wait';

const BIN = path.resolve(__dirname, '..', 'bin', 'avatar-sessions.js');

describe('avatar-sessions CLI', () => {
  let stack: SessionStack;
  before(async () => {
    stack = await startSessionStack({ sim: { defaults: { provisioningMs: 100, avatarMedia: 'light' } } });
  });
  after(async () => {
    await stack?.stop();
  });

  function run(args: string[]): { done: Promise<{ code: number | null; out: string; err: string }>; output: () => string } {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { ...process.env, TEMPORAL_ADDRESS: stack.env.address, TEMPORAL_NAMESPACE: 'default', SESSION_SECRETS_KEY: stack.config.secretsKey.toString('base64') },
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    return { done: new Promise((r) => child.on('close', (code) => r({ code, out, err }))), output: () => out };
  }
  const cli = (args: string[]) => withTimeout(run(args).done, 60_000, `avatar-sessions ${args.join(' ')}`);

  it('start --wait, status, list, watch and end a session', async () => {
    const id = uniqueId('cli');
    const room = `room-${id}`;
    const started = await cli(['start', '--conversation', id, '--room', room, '--mode', 'direct', '--wait']);
    assert.equal(started.code, 0, started.err);
    const body = JSON.parse(started.out) as { live: { roomName: string; mode: string } };
    assert.equal(body.live.roomName, room);
    assert.equal(body.live.mode, 'direct');

    const status = await cli(['status', id]);
    assert.equal(status.code, 0, status.err);
    assert.match(status.out, /▶ live/);
    assert.match(status.out, /✓ waiting_ready/);

    await eventually('listed as live', async () => {
      const list = await cli(['list', '--phase', 'live']);
      return list.out.split('\n').some((l) => l.startsWith(`${id}\t`)) ? true : undefined;
    }, 20_000);

    const watch = run(['watch', id]);
    await eventually('watch printed the live phase', () => (/live/.test(watch.output()) ? true : undefined));
    const end = await cli(['end', id]);
    assert.equal(end.code, 0, end.err);
    const watched = await withTimeout(watch.done, 60_000, 'watch to exit when the session ends');
    assert.equal(watched.code, 0, watched.err);
    assert.match(watched.out, /completed/);
    assert.match(watched.out, /end reason: ended_by_request/);
    await stack.env.client.workflow.getHandle(sessionWorkflowId(id)).result();
  });

  it('says what is wrong with bad flags and unknown sessions, with distinct exit codes', async () => {
    const noRoom = await cli(['start', '--conversation', 'c1']);
    assert.equal(noRoom.code, 2);
    assert.match(noRoom.err, /--room is required/);
    const badPreset = await cli(['start', '--conversation', 'c2', '--room', 'r', '--preset', 'nope']);
    assert.equal(badPreset.code, 2);
    assert.match(badPreset.err, /avatar\.presetId: unknown preset/);
    const unknownFlag = await cli(['list', '--colour']);
    assert.equal(unknownFlag.code, 2);
    assert.match(unknownFlag.err, /--colour/);
    const missing = await cli(['status', uniqueId('nobody')]);
    assert.equal(missing.code, 3);
    assert.match(missing.err, /no session for conversation/);
  });
});
