// What a conversation cost at Runway: billed seconds, the sum of each Runway session's final
// `duration` (renewals and failed attempts included), against the simulator's own ledger, in the
// state, the HTTP API's answer, the search attribute, the typed client's listing and the worker's
// Prometheus counter. And a billing read that fails degrades the report, never the session.
// The simulator's time scale makes Runway's minutes pass in seconds (durations are simulated seconds).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { startApiServer } from '../src/api/server';
import { freePort } from '../src/dev/net';
import { createLogger } from '../src/log';
import { installRuntime } from '../src/temporal';
import { BilledSecondsKey, sessionWorkflowId } from '../workflows/shared';
import type { SessionInput } from '../workflows/types';
import { startSessionStack, uniqueId, type SessionStack } from './helpers/session-stack';
import { eventually, withTimeout } from './helpers/wait';

/** Real seconds of a Runway session before the simulator's runtime cap cuts it. */
const CAP = 16;
/** Simulated seconds per real second: the cap is 160 s of Runway time. */
const SCALE = 10;

function input(over: Partial<SessionInput['timing']> = {}): SessionInput {
  const conversationId = uniqueId('billing');
  return {
    conversationId,
    avatar: { type: 'runway-preset', presetId: 'tennis-coach' },
    livekit: { roomName: `room-${conversationId}` },
    mode: 'direct',
    timing: {
      readyDeadlineSeconds: 20,
      avatarJoinTimeoutSeconds: 4,
      monitorIntervalSeconds: 0.5,
      endCallGraceSeconds: 3,
      heartbeatTimeoutSeconds: 5,
      sessionCapSeconds: CAP,
      renewalLeadSeconds: 2,
      ...over,
    },
  };
}

describe('billed Runway seconds', () => {
  let stack: SessionStack;
  let metricsUrl: string;
  let api: { url: string; close: () => Promise<void> } | undefined;
  const token = randomBytes(24).toString('hex');

  before(async () => {
    const metricsPort = await freePort();
    metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
    const quiet = createLogger({
      level: 'error',
      destination: new Writable({
        write(_c, _e, cb) {
          cb();
        },
      }),
    });
    installRuntime(quiet, metricsPort); // as the worker processes do, before any worker exists here
    stack = await startSessionStack({ sim: { defaults: { provisioningMs: 200, avatarMedia: 'light', runtimeCapSeconds: CAP * SCALE, timeScale: SCALE } } });
    const apiPort = await freePort();
    const started = await startApiServer({
      config: { apiToken: token, apiPort, livekit: stack.config.livekit },
      sessions: stack.sessions,
      log: quiet,
      port: apiPort,
      waitLiveMs: 20_000,
      metricsPort: 0,
    });
    api = { url: started.url, close: started.close };
  });
  after(async () => {
    await api?.close();
    await stack?.stop();
  });

  it('a renewed conversation with a failed renewal attempt: right to the second against the simulator, everywhere it is shown', async () => {
    stack.sim.reset();
    // Runway sessions in create order: the first serves; the second (the first renewal's) never
    // joins the room, so that renewal fails and is retried; the rest serve.
    stack.sim.nextSessions([{}, { joinCustomerRoom: false }]);
    const inp = input();
    const { conversationId } = inp;
    const handle = stack.env.client.workflow.getHandle(sessionWorkflowId(conversationId));
    await stack.sessions.startAndWaitLive(inp);
    await eventually(
      'two renewals, the last one just finished',
      async () => {
        const s = await stack.sessions.getSession(conversationId);
        return (s?.renewals ?? 0) >= 2 && s?.events.at(-1)?.type === 'renewed' ? true : undefined;
      },
      6 * CAP * 1000,
      50,
    );
    const during = await stack.sessions.getSession(conversationId);
    assert.equal(during?.billedSecondsComplete, false, 'not complete while a Runway session still runs');
    await stack.sessions.endSession(conversationId);
    await withTimeout(handle.result(), 60_000, 'the session to end');

    const final = (await stack.sessions.getSession(conversationId))!;
    const simSessions = stack.sim.sessions();
    assert.deepEqual([...final.runwaySessionIds].sort(), simSessions.map((s) => s.id).sort(), 'the conversation knows every Runway session it created');
    assert.ok(
      final.events.some((e) => e.type === 'renewal_failed'),
      'a renewal attempt failed',
    );
    const failed = simSessions.find((s) => !s.runningAt);
    assert.ok(failed && failed.status === 'CANCELLED', 'the failed attempt never ran and was cancelled');
    const ledger = simSessions.map((s) => ({ id: s.id, seconds: stack.sim.durationOf(s.id) ?? 0 }));
    const expected = ledger.reduce((a, b) => a + b.seconds, 0);
    assert.ok(ledger.filter((s) => s.seconds > 0).length >= 3, `three Runway sessions ran: ${JSON.stringify(ledger)}`);

    console.log(
      `billing: ${simSessions.length} Runway sessions, ${final.renewals} renewals, billed ${final.billedSeconds} s (simulator: ${JSON.stringify(ledger)})`,
    );
    assert.equal(final.billedSeconds, expected, `billed seconds against the simulator's ledger ${JSON.stringify(ledger)}`);
    assert.equal(final.billedSecondsComplete, true);
    assert.equal(final.billedSecondsUnknown, undefined);
    // The last run (it began with the last renewal) read once: at its end, after teardown.
    const events = (await handle.fetchHistory()).events ?? [];
    const reads = events.filter((e) => {
      const data = e.markerRecordedEventAttributes?.details?.data?.payloads?.[0]?.data;
      return data && /"activity_type":"readBilledSeconds"/.test(Buffer.from(data).toString());
    }).length;

    console.log(`billing: the last run has ${events.length} history events, ${reads} billing read`);
    assert.equal(reads, 1);
    // The sessions not COMPLETED (their status carries no duration) were read in the conversation
    // record. (The transcript, fetched after the end, reads every session's record too, so the count of
    // record reads says nothing about billing.)
    const recordReads = new Set(
      stack.sim
        .requests()
        .filter((r) => r.endpoint === 'conversation')
        .map((r) => r.sessionId),
    );
    for (const s of simSessions.filter((x) => x.status !== 'COMPLETED')) assert.ok(recordReads.has(s.id), `the record of ${s.id} (${s.status}) was read`);

    // The search attribute operators sort by, the typed client's listing, and the HTTP API's answer.
    assert.equal((await handle.describe()).typedSearchAttributes.get(BilledSecondsKey), expected);
    await eventually(
      'the listing shows the billed seconds (visibility is eventually consistent)',
      async () => {
        for await (const s of stack.sessions.listSessions({ roomName: inp.livekit.roomName }))
          if (s.conversationId === conversationId && s.billedSeconds === expected) return true;
        return undefined;
      },
      15_000,
      250,
    );
    const res = await fetch(`${api!.url}/v1/sessions/${conversationId}`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { billedSeconds: number; billedSecondsComplete: boolean };
    assert.equal(body.billedSeconds, expected);
    assert.equal(body.billedSecondsComplete, true);

    // The worker's Prometheus counter, by end reason and mode (this process ran this one conversation so far).
    const line = await eventually(
      'the billed seconds counter exported',
      async () => {
        const text = await (await fetch(metricsUrl)).text();
        return text.split('\n').find((l) => /^avatar_runway_billed_seconds\w*\{/.test(l) && l.includes('end_reason="ended_by_request"'));
      },
      20_000,
    );
    assert.match(line, /mode="direct"/);
    // The conversation's total, added when it ends. Workflow metrics are at least once: a workflow task
    // that times out on a busy machine and runs again emits its metrics again (the state and the search
    // attribute above are exact).
    const value = Number(line.split(' ').at(-1));
    assert.ok(value >= expected && value % expected === 0, `${line}: the conversation's ${expected} s, once or more`);
  });

  it('a billing read that fails: the session ends as it would, the total says it is incomplete and names the session', async () => {
    stack.sim.reset();
    // A session that never gets live (its avatar never joins), cancelled by teardown: its duration is
    // on the conversation record, which Runway now refuses to give.
    stack.sim.nextSessions([{ joinCustomerRoom: false }]);
    stack.sim.configure({ faults: { conversation: { status5xxRate: 1 } } });
    try {
      const inp = input({ avatarJoinTimeoutSeconds: 2 });
      await stack.sessions.startSession(inp);
      const handle = stack.env.client.workflow.getHandle(sessionWorkflowId(inp.conversationId));
      await assert.rejects(withTimeout(handle.result(), 60_000, 'the session to end'));
      const final = (await stack.sessions.getSession(inp.conversationId))!;
      assert.equal(final.error?.code, 'avatar_not_joined', "the failure is the session's own, not the billing read's");
      assert.equal(stack.sim.session(final.runwaySessionIds[0]!)?.status, 'CANCELLED', 'teardown ended the Runway session');
      assert.equal(final.billedSecondsComplete, false);
      assert.deepEqual(final.billedSecondsUnknown, final.runwaySessionIds);
      assert.equal(final.billedSeconds, 0);
      assert.ok(final.events.some((e) => e.type === 'billing_unknown'));
      assert.ok(
        stack.sim.requests().some((r) => r.endpoint === 'conversation' && r.faultInjected),
        'the conversation record was asked for',
      );
    } finally {
      stack.sim.configure({ faults: {} });
    }
  });
});
