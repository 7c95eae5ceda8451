// Long conversations that feel like one, and what they said: a relay conversation three Runway caps
// long whose later Runway sessions got the conversation so far and no opening line (read from what the
// simulator's create received), then its transcript, stitched in order, through the typed client, the
// HTTP API and the CLI; and a transcript Runway does not finalize (or will not give) in time is stored
// `incomplete` while the session's outcome stays what it was. The simulator runs Runway's time 30x
// faster (its 300 s cap is 10 s here), so three caps take about half a minute.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { temporal } from '@temporalio/proto';
import path from 'node:path';
import { CONTEXT_MAX_CHARS, TRANSCRIPT_MAX_BYTES, contextText, stitch } from '../activities/transcript';
import { createLogger } from '../src/log';
import type { AvatarConversation } from '../src/runway/types';
import { startApiServer } from '../src/api/server';
import { startProcessAvatar, stopAvatarRunner } from '../src/runway-sim/avatar-process';
import { SIM_DEFAULT_GREETING } from '../src/runway-sim/server';
import { sessionWorkflowId } from '../workflows/shared';
import type { ConversationTranscript, SessionInput, SessionState } from '../workflows/types';
import { startSessionStack, uniqueId, type SessionStack } from './helpers/session-stack';
import { eventually, withTimeout } from './helpers/wait';

const BIN = path.resolve(__dirname, '..', 'bin', 'avatar-sessions.js');
/** Runway's seconds per real second in the simulator. */
const SCALE = 30;
/** The runtime cap in real seconds (300 simulated). */
const CAP = 300 / SCALE;
const PERSONALITY = 'You are a patient tennis coach.';
const OPENING = 'Welcome to your tennis lesson!';

function input(over: Partial<SessionInput> = {}): SessionInput {
  const conversationId = uniqueId('cont');
  return {
    conversationId,
    avatar: { type: 'runway-preset', presetId: 'tennis-coach' },
    livekit: { roomName: `room-${conversationId}` },
    mode: 'relay',
    personality: PERSONALITY,
    startScript: OPENING,
    timing: {
      readyDeadlineSeconds: 20,
      avatarJoinTimeoutSeconds: 8,
      monitorIntervalSeconds: 0.5,
      endCallGraceSeconds: 3,
      heartbeatTimeoutSeconds: 5,
      sessionCapSeconds: CAP,
      renewalLeadSeconds: 4,
      transcriptWaitSeconds: 30,
    },
    ...over,
  };
}

describe('continuity across renewals, and the transcript after the call', () => {
  let stack: SessionStack;
  let api: Awaited<ReturnType<typeof startApiServer>>;
  const token = 'continuity-test-token-0123456789';
  before(async () => {
    // An exchange every 20 simulated seconds (0.67 s here): each Runway session says a few things before its renewal.
    stack = await startSessionStack({
      // Runway shows a conversation's transcript only once it ended: the session being replaced is
      // known from what the relay saw on the data channel, the ones before it from Runway.
      sim: {
        defaults: {
          provisioningMs: 200,
          avatarMedia: 'light',
          runtimeCapSeconds: 300,
          timeScale: SCALE,
          turnIntervalSeconds: 20,
          transcriptWhileInProgress: false,
        },
        startAvatar: startProcessAvatar,
      },
    });
    api = await startApiServer({
      config: { apiToken: token, apiPort: 0, livekit: stack.config.livekit },
      sessions: stack.sessions,
      log: createLogger({ level: 'silent' }),
      port: 0,
      allowTimingOverrides: true,
    });
  });
  after(async () => {
    await api?.close();
    await stack?.stop();
    await stopAvatarRunner();
  });

  let renewed: { inp: SessionInput; ids: string[] } | undefined;

  it('relay, three caps long: each later Runway session gets the earlier turns in its personality and no opening line', async () => {
    const inp = input();
    const { live } = await stack.sessions.startAndWaitLive(inp);
    assert.equal(live.mode, 'relay');
    await eventually(
      'three renewals',
      async () => (((await stack.sessions.getSession(inp.conversationId))?.renewals ?? 0) >= 3 ? true : undefined),
      CAP * 3 * 1000 + 120_000,
      500,
    );
    await stack.sessions.endSession(inp.conversationId);
    const final = (await withTimeout(
      stack.env.client.workflow.getHandle(sessionWorkflowId(inp.conversationId)).result(),
      60_000,
      'the session to end',
    )) as SessionState;
    assert.equal(final.endReason, 'ended_by_request');
    // The Runway sessions that served (a failed renewal attempt would be in the list too, never live).
    const served = final.runwaySessionIds.filter((id) => stack.sim.session(id)?.runningAt);
    assert.ok(served.length >= 4, `${served.length} Runway sessions served`);
    const [first, ...later] = served.map((id) => stack.sim.session(id)!);
    assert.equal(first!.body.startScript, OPENING);
    assert.equal(first!.body.personality, PERSONALITY);
    assert.equal(first!.transcript[0]?.content, OPENING, 'the first Runway session opened the conversation');
    let carried = 0;
    for (const [i, s] of later.entries()) {
      const previous = stack.sim.session(served[i]!)!;
      assert.equal(s.body.startScript, '', `Runway session ${s.id} was asked for no opening line (an absent one is the avatar's default)`);
      assert.ok(
        !s.transcript.some((e) => e.content === OPENING || e.content === SIM_DEFAULT_GREETING),
        `Runway session ${s.id} did not greet again: ${JSON.stringify(s.transcript)}`,
      );
      const personality = String(s.body.personality);
      assert.ok(personality.startsWith(PERSONALITY), "the caller's personality comes first");
      assert.ok(personality.length <= 16_000, `personality bounded (${personality.length})`);
      // What the session being replaced said well before this one was created (the relay saw it on
      // the data channel; Runway shows no transcript of a conversation in progress here) is in it.
      const before = previous.transcript.filter((e) => Date.parse(e.timestamp) < Date.parse(s.createdAt) - 2000);
      for (const e of before) assert.ok(personality.includes(e.content), `Runway session ${s.id} got "${e.content}" of ${previous.id}: ${personality}`);
      carried += before.length;
    }
    assert.ok(carried >= 3, `the later sessions got ${carried} earlier turns`);
    // The last one got the conversation from its start (the budget holds it all here), in order.
    const last = String(later.at(-1)!.body.personality);
    const firstTurn = last.indexOf(`Simulated user turn 1 in session ${served[0]!.slice(0, 8)}`);
    assert.ok(firstTurn > 0, "the last Runway session got the first session's turns");
    assert.ok(firstTurn < last.indexOf(`Simulated user turn 1 in session ${served[1]!.slice(0, 8)}`), 'oldest first in the text');
    assert.deepEqual(stack.sim.orphans(), []);
    assert.deepEqual(stack.sim.invariantViolations(), []);
    renewed = { inp, ids: final.runwaySessionIds };
  });

  it("the renewed conversation's transcript, stitched in order, through the client, the API and the CLI", async () => {
    assert.ok(renewed, 'the renewal test ran first');
    const { inp, ids } = renewed;
    const transcript = await eventually(
      'the transcript',
      async () => {
        const t = await stack.sessions.getTranscript(inp.conversationId);
        return t && t.status !== 'pending' ? t : undefined;
      },
      60_000,
      300,
    );
    assert.equal(transcript.status, 'complete', JSON.stringify(transcript).slice(0, 500));
    const t = transcript;
    assert.deepEqual(
      t.sessions.map((s) => s.runwaySessionId),
      ids,
      'every Runway session, in creation order',
    );
    // Exactly what each Runway session said, one after the other.
    const expected = ids.flatMap((id) => stack.sim.session(id)!.transcript.map((e) => `${id}|${e.role}|${e.content}`));
    assert.deepEqual(
      t.turns.map((x) => `${x.runwaySessionId}|${x.role}|${x.content}`),
      expected,
    );
    assert.equal(t.turns[0]?.content, OPENING);
    assert.ok(t.turns.length >= 4 * 3, `${t.turns.length} turns`);
    assert.equal(t.truncated, false);
    // Encrypted in history like every payload: the transcript workflow's history holds none of the words.
    const state = await stack.sessions.getSession(inp.conversationId);
    const history = await stack.env.client.workflow.getHandle(state!.transcript!.workflowId).fetchHistory();
    const raw = Buffer.from(temporal.api.history.v1.History.encode(history).finish());
    assert.ok(!raw.includes(Buffer.from(OPENING)) && !raw.includes(Buffer.from('Simulated user turn')), 'transcript text in plaintext in history');
    assert.ok(raw.includes(Buffer.from('binary/encrypted')));

    const res = await fetch(`${api.url}/v1/sessions/${inp.conversationId}/transcript`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(res.status, 200);
    const body = (await res.json()) as ConversationTranscript;
    assert.deepEqual(body.turns, t.turns);
    const unknown = await fetch(`${api.url}/v1/sessions/no-such-conversation/transcript`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(unknown.status, 404);

    const cli = await runCli(['transcript', inp.conversationId], stack);
    assert.equal(cli.code, 0, cli.err);
    const lines = cli.out.trim().split('\n');
    assert.match(lines[0]!, /: complete, \d+ Runway session\(s\)/);
    assert.ok(
      lines.some((l) => l.endsWith(`assistant: ${OPENING}`)),
      cli.out,
    );
    // Each Runway session's header comes before its turns, in order.
    const headers = ids.map((id) => lines.findIndex((l) => l.startsWith(`-- Runway session ${id}`)));
    assert.deepEqual(
      [...headers].sort((a, b) => a - b),
      headers,
    );
    const json = await runCli(['transcript', inp.conversationId, '--json'], stack);
    assert.deepEqual((JSON.parse(json.out) as ConversationTranscript).turns, t.turns);
  });

  it('a transcript Runway does not finalize in time, or will not give, is stored incomplete; the session ended as it would have', async () => {
    // Runway still finalizing well past the wait.
    stack.sim.nextSessions([{ transcriptFinalizeMs: 120_000 }]);
    const slow = input({ timing: { ...input().timing, sessionCapSeconds: 0, transcriptWaitSeconds: 2 } });
    await stack.sessions.startAndWaitLive(slow);
    await stack.sessions.endSession(slow.conversationId);
    const state = await withTimeout(stack.env.client.workflow.getHandle(sessionWorkflowId(slow.conversationId)).result(), 60_000, 'the session to end');
    assert.deepEqual([state.phase, state.endReason], ['completed', 'ended_by_request']);
    const t = await eventually(
      'the transcript',
      async () => {
        const a = await stack.sessions.getTranscript(slow.conversationId);
        return a && a.status !== 'pending' ? a : undefined;
      },
      60_000,
      300,
    );
    assert.equal(t.status, 'incomplete');
    assert.equal(t.sessions[0]?.status, 'in_progress');

    // Runway refusing the conversation endpoint altogether (e.g. a key without that scope).
    const refusing = input({ timing: { ...input().timing, sessionCapSeconds: 0, transcriptWaitSeconds: 2 } });
    await stack.sessions.startAndWaitLive(refusing);
    stack.sim.configure({ faults: { conversation: { clientError: { status: 403, rate: 1, error: 'Forbidden' } } } });
    try {
      await stack.sessions.endSession(refusing.conversationId);
      const s = await withTimeout(stack.env.client.workflow.getHandle(sessionWorkflowId(refusing.conversationId)).result(), 60_000, 'the session to end');
      assert.deepEqual([s.phase, s.endReason], ['completed', 'ended_by_request']);
      const r = await eventually(
        'the transcript',
        async () => {
          const a = await stack.sessions.getTranscript(refusing.conversationId);
          return a && a.status !== 'pending' ? a : undefined;
        },
        60_000,
        300,
      );
      assert.equal(r.status, 'incomplete');
      const session = r.sessions[0]!;
      assert.equal(session.status, 'unavailable');
      assert.match(session.error ?? '', /403|Forbidden|unauthorized|permission/i);
    } finally {
      stack.sim.configure({ faults: {} });
    }
    assert.deepEqual(stack.sim.orphans(), []);
  });
});

describe('bounds of what is carried and stored', () => {
  it('the renewal context keeps the most recent turns within its budget, written oldest first', () => {
    const turns = Array.from({ length: 500 }, (_, i) => ({ role: i % 2 ? 'assistant' : 'user', content: `turn ${i} ${'x'.repeat(40)}` }));
    const text = contextText(turns);
    assert.ok(text.length <= CONTEXT_MAX_CHARS, `${text.length} characters`);
    assert.match(text, /You: turn 499 /, 'the last turn is in');
    assert.doesNotMatch(text, /: turn 0 /, 'the oldest ones are left out');
    assert.ok(text.indexOf('turn 498 ') < text.indexOf('turn 499 '), 'oldest first');
    assert.equal(
      contextText([
        { role: 'user', content: '  ' },
        { role: 'assistant', content: null },
      ]),
      '',
      'nothing said: no context',
    );
  });

  it('a stored transcript is bounded: turns past the bound are left out and it says so', () => {
    const big = (id: string): AvatarConversation => ({
      id,
      status: 'ended',
      endedAt: null,
      avatar: null,
      createdAt: '',
      duration: 1,
      maxDuration: 300,
      name: '',
      recordingUrl: `https://r/${id}`,
      startedAt: null,
      tools: [],
      transcript: Array.from({ length: 400 }, (_, i) => ({ role: 'user' as const, content: `${id} ${i} ${'y'.repeat(500)}`, timestamp: null })),
    });
    const ids = ['a', 'b'];
    const t = stitch('c', ids, new Map(ids.map((id) => [id, { conversation: big(id), final: true }])));
    assert.equal(t.truncated, true);
    assert.equal(t.status, 'complete', 'every session was final');
    assert.ok(Buffer.byteLength(JSON.stringify(t.turns)) <= TRANSCRIPT_MAX_BYTES + 1000);
    assert.equal(t.turns[0]?.content?.startsWith('a 0 '), true, 'from the start, in order');
    assert.deepEqual(
      t.sessions.map((s) => s.recordingUrl),
      ['https://r/a', 'https://r/b'],
    );
  });
});

function runCli(args: string[], stack: SessionStack): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: {
      ...process.env,
      TEMPORAL_ADDRESS: stack.env.address,
      TEMPORAL_NAMESPACE: 'default',
      SESSION_SECRETS_KEY: stack.config.secretsKey.toString('base64'),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  return withTimeout(new Promise((r) => child.on('close', (code) => r({ code, out, err }))), 60_000, `avatar-sessions ${args.join(' ')}`);
}
