// The Runway simulator as a black box over real sockets, driven by this project's RunwayClient (and
// raw fetch where exact bodies matter): the contract's endpoints, validation, state machine, auth,
// limits, fault injection and its ledger; and its avatar's media on a real LiveKit server.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Room, RoomEvent, TrackKind, VideoBufferType, VideoStream, type RemoteTrack } from '@livekit/rtc-node';
import { RunwayClient } from '../src/runway/client';
import { isRunwayError, type RunwayError } from '../src/runway/errors';
import { RUNWAY_API_VERSION, type RealtimeSessionCreateParams } from '../src/runway/types';
import { decodeCounter } from '../src/media/frame-code';
import { startRunwaySimulator, type RunwaySimulator } from '../src/runway-sim/server';
import { startTestLiveKit, type LiveKitServer } from './helpers/livekit';
import { eventually } from './helpers/wait';
import { dispose } from '@livekit/rtc-node';

const body = (over: Partial<RealtimeSessionCreateParams> = {}): RealtimeSessionCreateParams => ({
  model: 'gwm1_avatars',
  avatar: { type: 'runway-preset', presetId: 'cooking-teacher' },
  ...over,
});

async function kindOf(p: Promise<unknown>): Promise<RunwayError> {
  try {
    await p;
  } catch (err) {
    if (isRunwayError(err)) return err;
    throw err;
  }
  throw new Error('expected a RunwayError');
}

describe('Runway simulator (black box)', () => {
  let lk: LiveKitServer;
  let sim: RunwaySimulator;
  let runway: RunwayClient;
  const raw = (path: string, init: RequestInit & { key?: string | null; version?: string | null } = {}) =>
    fetch(sim.baseUrl + path, {
      ...init,
      headers: {
        'content-type': 'application/json',
        ...(init.key === null ? {} : { authorization: `Bearer ${init.key ?? sim.apiKey}` }),
        ...(init.version === null ? {} : { 'x-runway-version': init.version ?? RUNWAY_API_VERSION }),
      },
    });

  before(async () => {
    lk = await startTestLiveKit('runway-sim');
    sim = await startRunwaySimulator({ livekit: { url: lk.url, apiKey: lk.apiKey, apiSecret: lk.apiSecret }, seed: 7, defaults: { provisioningMs: 50, avatarMedia: 'off' } });
    runway = new RunwayClient({ apiKey: sim.apiKey, baseUrl: sim.baseUrl });
  });
  after(async () => {
    await runway?.close();
    await sim?.stop();
    await dispose();
    await lk?.stop();
  });

  it('validates create exactly like Runway: unknown keys, the livekit key, maxDuration, presets', async () => {
    const unknown = await raw('/v1/realtime_sessions', { method: 'POST', body: JSON.stringify({ ...body(), colour: 'blue' }) });
    assert.equal(unknown.status, 400);
    assert.deepEqual(await unknown.json(), { error: 'Unrecognized key: colour' });
    sim.setAccount({ livekitIntegration: false });
    try {
      const e = await kindOf(runway.createSession(body({ livekit: { url: 'wss://x', token: 't', roomName: 'r' } } as never)));
      assert.equal(e.kind, 'integration_unsupported');
      assert.match(e.message, /Unrecognized key: livekit/);
      const i = await kindOf(runway.createSession(body({ integration: { type: 'livekit', url: 'wss://x', token: 't', roomName: 'r' } } as never)));
      assert.equal(i.kind, 'integration_unsupported');
    } finally {
      sim.setAccount({ livekitIntegration: true });
    }
    for (const maxDuration of [9, 1801, 12.5]) assert.equal((await kindOf(runway.createSession(body({ maxDuration })))).kind, 'invalid_request');
    const preset = await kindOf(runway.createSession(body({ avatar: { type: 'runway-preset', presetId: 'nope' } as never })));
    assert.match(preset.message, /presetId/);
  });

  it('needs the API key and the version header; the ledger records the missing header', async () => {
    assert.equal((await raw('/v1/organization', { key: 'key_wrong' })).status, 401);
    assert.equal((await raw('/v1/organization', { key: null })).status, 401);
    const before = sim.invariantViolations().length;
    assert.equal((await raw('/v1/organization', { version: null })).status, 400);
    assert.equal(sim.invariantViolations().length, before + 1);
    assert.equal((await kindOf(runway.getSession('00000000-0000-0000-0000-000000000000'))).kind, 'not_found');
  });

  it('runs the state machine: NOT_READY (queued) → READY with expiresAt → RUNNING → COMPLETED at maxDuration', async () => {
    sim.nextSessions([{ queuedMs: 150, provisioningMs: 100, avatarMedia: 'off' }]);
    const { id } = await runway.createSession(body({ maxDuration: 10 }));
    const first = await runway.getSession(id);
    assert.equal(first.status, 'NOT_READY');
    assert.equal((first as { queued?: boolean }).queued, true);
    const ready = await eventually('READY', async () => {
      const s = await runway.getSession(id);
      return s.status === 'READY' ? s : undefined;
    });
    assert.ok(Date.parse(ready.expiresAt) > Date.now());
    const creds = await runway.consumeSession(id, ready.sessionKey);
    assert.equal(creds.url, lk.url);
    assert.ok(creds.roomName && creds.token);
    // Joining the room makes it RUNNING (nobody else is there with avatar media off).
    const room = new Room();
    await room.connect(creds.url, creds.token);
    try {
      await eventually('RUNNING', async () => ((await runway.getSession(id)).status === 'RUNNING' ? true : undefined));
      const conv = await runway.getConversation(id);
      assert.equal(conv.status, 'in_progress');
    } finally {
      await room.disconnect();
    }
    assert.equal(sim.session(id)?.history.map((h) => h.status).join('>'), 'NOT_READY>READY>RUNNING');
  });

  it('consume: only with the session key, only once, never before READY or after expiry', async () => {
    sim.nextSessions([{ provisioningMs: 5_000 }]);
    const early = await runway.createSession(body());
    const before = sim.invariantViolations().length;
    assert.equal((await raw(`/v1/realtime_sessions/${early.id}/consume`, { method: 'POST', key: 'sk_guess' })).status, 400);
    assert.equal(sim.invariantViolations().length, before + 1, 'consume before READY is a violation');
    await runway.cancelSession(early.id);
    assert.equal((await runway.getSession(early.id)).status, 'CANCELLED');

    const { id } = await runway.createSession(body());
    const ready = await eventually('READY', async () => {
      const s = await runway.getSession(id);
      return s.status === 'READY' ? s : undefined;
    });
    const withApiKey = await raw(`/v1/realtime_sessions/${id}/consume`, { method: 'POST' });
    assert.equal(withApiKey.status, 401);
    assert.ok(sim.invariantViolations().some((v) => v.includes('with the API key')));
    await runway.consumeSession(id, ready.sessionKey);
    assert.equal((await kindOf(runway.consumeSession(id, ready.sessionKey))).kind, 'already_consumed');
    await runway.cancelSession(id);

    sim.nextSessions([{ readyTtlMs: 100 }]);
    const exp = await runway.createSession(body());
    const expReady = await eventually('READY', async () => {
      const s = await runway.getSession(exp.id);
      return s.status === 'READY' ? s : undefined;
    });
    await eventually('expired', async () => ((await runway.getSession(exp.id)).status === 'FAILED' ? true : undefined));
    assert.equal((await kindOf(runway.consumeSession(exp.id, expReady.sessionKey))).kind, 'session_expired');
  });

  it('FAILED with the configured failureCode; the runtime cap completes a session whatever maxDuration says', async () => {
    sim.nextSessions([{ provisioningMs: 10_000, failAfterMs: 50, failureCode: 'INTERNAL.GPU_UNAVAILABLE' }]);
    const failed = await runway.createSession(body());
    const f = await eventually('FAILED', async () => {
      const s = await runway.getSession(failed.id);
      return s.status === 'FAILED' ? s : undefined;
    });
    assert.equal(f.failureCode, 'INTERNAL.GPU_UNAVAILABLE');

    sim.nextSessions([{ runtimeCapSeconds: 0.3 }]);
    const { id } = await runway.createSession(body({ maxDuration: 1800 }));
    const ready = await eventually('READY', async () => {
      const s = await runway.getSession(id);
      return s.status === 'READY' ? s : undefined;
    });
    const creds = await runway.consumeSession(id, ready.sessionKey);
    const room = new Room();
    await room.connect(creds.url, creds.token);
    try {
      await eventually('COMPLETED by the cap', async () => ((await runway.getSession(id)).status === 'COMPLETED' ? true : undefined));
      assert.equal(sim.session(id)?.endedBy, 'runtime_cap');
    } finally {
      await room.disconnect();
    }
  });

  it('enforces the account concurrency limit (429 or 400) and reports it in /v1/organization', async () => {
    for (const s of sim.orphans()) await runway.cancelSession(s.id);
    sim.setAccount({ maxConcurrentSessions: 2 });
    try {
      const org = await runway.getOrganization();
      assert.equal(org.tier.models.gwm1_avatars?.maxConcurrentGenerations, 2);
      sim.nextSessions([{ provisioningMs: 60_000 }, { provisioningMs: 60_000 }]);
      const a = await runway.createSession(body());
      const b = await runway.createSession(body());
      assert.equal((await kindOf(runway.createSession(body()))).kind, 'concurrency_limited');
      sim.setAccount({ concurrencyLimitStatus: 400 });
      const e400 = await kindOf(runway.createSession(body()));
      assert.equal(e400.kind, 'concurrency_limited');
      assert.equal(e400.status, 400);
      await runway.cancelSession(a.id);
      await runway.cancelSession(b.id);
      assert.ok(sim.maxConcurrentObserved >= 2);
    } finally {
      sim.setAccount({ maxConcurrentSessions: 20, concurrencyLimitStatus: 429 });
    }
  });

  it('injects 5xx, 429 with Retry-After (seconds and ms), resets, latency and lost create answers', async () => {
    sim.configure({ faults: { organization: { status5xxRate: 1 } } });
    assert.equal((await kindOf(runway.getOrganization())).kind, 'unavailable');
    sim.configure({ faults: { organization: { status429Rate: 1, retryAfterSeconds: 3 } } });
    const limited = await kindOf(runway.getOrganization());
    assert.equal(limited.kind, 'rate_limited');
    assert.equal(limited.retryAfterMs, 3000);
    sim.configure({ faults: { organization: { status429Rate: 1, retryAfterMs: 250 } } });
    assert.equal((await kindOf(runway.getOrganization())).retryAfterMs, 250);
    sim.configure({ faults: { organization: { resetRate: 1 } } });
    assert.equal((await kindOf(runway.getOrganization())).kind, 'unavailable');
    sim.configure({ faults: { organization: { latencyMs: 300 } } });
    const t0 = Date.now();
    await runway.getOrganization();
    assert.ok(Date.now() - t0 >= 280, 'latency applied');
    sim.configure({ faults: { create: { loseAnswerRate: 1 } } });
    const before = sim.sessions().length;
    assert.equal((await kindOf(runway.createSession(body()))).kind, 'ambiguous');
    assert.equal(sim.sessions().length, before + 1, 'the session exists although the answer was lost');
    sim.configure({ faults: {} });
    for (const s of sim.orphans()) await runway.cancelSession(s.id);
    // 5xx, two 429s, a reset and the lost answer (latency is not a failure)
    assert.equal(sim.requests().filter((r) => r.faultInjected).length, 5);
  });

  it('is deterministic under a seed: the same seed gives the same fault sequence', async () => {
    const run = async () => {
      const s = await startRunwaySimulator({ seed: 42, faults: { '*': { status5xxRate: 0.5 } } });
      const c = new RunwayClient({ apiKey: s.apiKey, baseUrl: s.baseUrl });
      const out: string[] = [];
      for (let i = 0; i < 12; i++) out.push(await c.getOrganization().then(() => 'ok', (e: RunwayError) => e.kind));
      await c.close();
      await s.stop();
      return out.join(',');
    };
    const a = await run();
    assert.equal(await run(), a);
    assert.match(a, /ok/);
    assert.match(a, /unavailable/);
  });

  it('lists conversations with cursor paging, deletes finished ones, and guards its control API', async () => {
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push((await runway.createSession(body())).id);
    const page = await runway.listConversations({ limit: 2 } as never);
    assert.equal(page.data.length, 2);
    assert.ok(page.nextCursor);
    const all = [];
    for await (const c of runway.iterateConversations({ limit: 2 } as never)) all.push(c.id);
    for (const id of ids) assert.ok(all.includes(id));
    assert.equal((await kindOf(runway.deleteConversation(ids[0]!))).kind, 'invalid_request', 'in progress');
    await runway.cancelSession(ids[0]!);
    await runway.deleteConversation(ids[0]!);
    for (const id of ids.slice(1)) await runway.cancelSession(id);
    assert.equal((await fetch(`${sim.baseUrl}/_sim/ledger`)).status, 401);
    const ledger = await fetch(`${sim.baseUrl}/_sim/invariants`, { headers: { 'x-sim-control': sim.controlToken } });
    assert.equal(ledger.status, 200);
    assert.deepEqual(((await ledger.json()) as { orphans: string[] }).orphans, []);
  });

  it("its avatar publishes video with increasing frame counters, and completes on END_CALL", async () => {
    sim.nextSessions([{ avatarMedia: 'light' }]);
    const { id } = await runway.createSession(body());
    const ready = await eventually('READY', async () => {
      const s = await runway.getSession(id);
      return s.status === 'READY' ? s : undefined;
    });
    const creds = await runway.consumeSession(id, ready.sessionKey);
    const room = new Room();
    const counters: number[] = [];
    const streams: VideoStream[] = [];
    room.on(RoomEvent.TrackSubscribed, (track: RemoteTrack) => {
      if (track.kind !== TrackKind.KIND_VIDEO) return;
      const s = new VideoStream(track);
      streams.push(s);
      void (async () => {
        for await (const ev of s) {
          const f = ev.frame.type === VideoBufferType.I420 ? ev.frame : ev.frame.convert(VideoBufferType.I420);
          const n = decodeCounter({ width: f.width, height: f.height, data: f.data });
          if (n !== undefined) counters.push(n);
        }
      })().catch(() => undefined);
    });
    await room.connect(creds.url, creds.token, { autoSubscribe: true, dynacast: false });
    try {
      await eventually('five decoded frames', () => (counters.length >= 5 ? true : undefined), 15_000);
      for (let i = 1; i < 5; i++) assert.ok(counters[i]! > counters[i - 1]!, `increasing: ${counters.slice(0, 5).join(',')}`);
      assert.equal((await runway.getSession(id)).status, 'RUNNING');
      await room.localParticipant!.publishData(new TextEncoder().encode(JSON.stringify({ type: 'END_CALL' })), { reliable: true });
      await eventually('COMPLETED on END_CALL', async () => ((await runway.getSession(id)).status === 'COMPLETED' ? true : undefined));
      assert.equal(sim.session(id)?.endedBy, 'END_CALL');
    } finally {
      for (const s of streams) await s.cancel().catch(() => undefined);
      await room.disconnect();
    }
  });
});
