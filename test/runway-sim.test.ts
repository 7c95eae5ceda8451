// The Runway simulator as a black box over real sockets, driven by this project's RunwayClient (and
// raw fetch where exact status codes, headers and bodies matter): the contract's endpoints,
// validation, state machine, auth, limits, fault injection, its ledger and control API; its avatar's
// media on a real LiveKit server; and the standalone entry (`npm run runway-sim`) as a child process.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { dispose, Room, RoomEvent, RpcError, TrackKind, VideoStream, type RemoteTrack } from '@livekit/rtc-node';
import { RunwayClient } from '../src/runway/client';
import { isRunwayError, type RunwayError } from '../src/runway/errors';
import { RUNWAY_API_VERSION, type RealtimeSession, type RealtimeSessionCreateParams } from '../src/runway/types';
import { counterOfFrame, decodeCounter, makeI420Frame } from '../src/media/frame-code';
import { startRunwaySimulator, type RunwaySimulator } from '../src/runway-sim/server';
import { joinToken, roomService, startTestLiveKit, type LiveKitServer } from './helpers/livekit';
import { eventually, withTimeout } from './helpers/wait';

const ROOT = path.resolve(__dirname, '..');

const body = (over: Partial<RealtimeSessionCreateParams> = {}): RealtimeSessionCreateParams => ({
  model: 'gwm1_avatars',
  avatar: { type: 'runway-preset', presetId: 'cooking-teacher' },
  ...over,
});

/** The RunwayError a call fails with (and a failure of the test if it succeeds). */
async function errorOf(p: Promise<unknown>): Promise<RunwayError> {
  try {
    await p;
  } catch (err) {
    if (isRunwayError(err)) return err;
    throw err;
  }
  throw new Error('expected the call to fail with a RunwayError');
}

/** The payload of a LiveKit JWT (not verified: only to read what the simulator granted). */
function jwtClaims(token: string): { sub?: string; video?: { room?: string; hidden?: boolean; roomJoin?: boolean } } {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8'));
}

type Status = RealtimeSession['status'];

let lk: LiveKitServer;
let sim: RunwaySimulator;
let runway: RunwayClient;
const extraSims: RunwaySimulator[] = [];
const children: ChildProcess[] = [];

/** A raw request to the shared simulator: API key and version header unless told otherwise. */
function raw(
  p: string,
  init: { method?: string; body?: unknown; key?: string | null; version?: string | null; contentType?: string | null; to?: RunwaySimulator } = {},
) {
  const target = init.to ?? sim;
  const headers: Record<string, string> = {};
  if (init.key !== null) headers.authorization = `Bearer ${init.key ?? target.apiKey}`;
  if (init.version !== null) headers['x-runway-version'] = init.version ?? RUNWAY_API_VERSION;
  if (init.contentType !== null) headers['content-type'] = init.contentType ?? 'application/json';
  return fetch(target.baseUrl + p, {
    method: init.method ?? 'GET',
    headers,
    body: init.body === undefined ? undefined : typeof init.body === 'string' ? init.body : JSON.stringify(init.body),
  });
}

/** Polls the session through the API until it is in `status`. */
async function untilStatus<S extends Status>(id: string, status: S, timeoutMs = 10_000): Promise<Extract<RealtimeSession, { status: S }>> {
  return eventually(
    `session ${id} ${status}`,
    async () => {
      const s = await runway.getSession(id);
      return s.status === status ? (s as Extract<RealtimeSession, { status: S }>) : undefined;
    },
    timeoutMs,
    25,
  );
}

async function readySession(over: Partial<RealtimeSessionCreateParams> = {}) {
  const { id } = await runway.createSession(body(over));
  const ready = await untilStatus(id, 'READY');
  return { id, ready };
}

/** A sim of its own (no LiveKit) for tests that change global state (seed, reset, account). */
async function ownSim(opts: Parameters<typeof startRunwaySimulator>[0] = {}): Promise<{ s: RunwaySimulator; c: RunwayClient }> {
  const s = await startRunwaySimulator({ defaults: { provisioningMs: 50, avatarMedia: 'off' }, ...opts });
  extraSims.push(s);
  return { s, c: new RunwayClient({ apiKey: s.apiKey, baseUrl: s.baseUrl }) };
}

before(async () => {
  lk = await startTestLiveKit('runway-sim');
  sim = await startRunwaySimulator({
    livekit: { url: lk.url, apiKey: lk.apiKey, apiSecret: lk.apiSecret },
    seed: 7,
    defaults: { provisioningMs: 50, avatarMedia: 'off' },
  });
  runway = new RunwayClient({ apiKey: sim.apiKey, baseUrl: sim.baseUrl });
});

after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await runway?.close();
  for (const s of extraSims) await s.stop();
  await sim?.stop();
  await lk?.stop();
  await dispose();
});

describe('Runway simulator: API', () => {
  it('validates create like Runway: unknown keys, maxDuration 10-1800, presets, model, tools, JSON', async () => {
    const unknown = await raw('/v1/realtime_sessions', { method: 'POST', body: { ...body(), colour: 'blue' } });
    assert.equal(unknown.status, 400);
    assert.deepEqual(await unknown.json(), { error: 'Unrecognized key: colour' });

    for (const maxDuration of [9, 1801, 12.5, '60']) {
      const res = await raw('/v1/realtime_sessions', { method: 'POST', body: body({ maxDuration: maxDuration as number }) });
      assert.equal(res.status, 400, `maxDuration ${maxDuration}`);
      assert.match(((await res.json()) as { error: string }).error, /^maxDuration: /);
    }
    for (const maxDuration of [10, 1800]) {
      const { id } = await runway.createSession(body({ maxDuration }));
      await runway.cancelSession(id);
    }
    const preset = await errorOf(runway.createSession(body({ avatar: { type: 'runway-preset', presetId: 'nope' } as never })));
    assert.equal(preset.kind, 'invalid_request');
    assert.equal(preset.status, 400);
    assert.match(preset.runwayMessage!, /presetId/);
    assert.equal((await errorOf(runway.createSession(body({ model: 'gen4_turbo' as never })))).kind, 'invalid_request');
    assert.equal((await errorOf(runway.createSession({ model: 'gwm1_avatars' } as never))).kind, 'invalid_request', 'avatar is required');
    assert.equal((await errorOf(runway.createSession(body({ avatar: { type: 'custom' } as never })))).kind, 'invalid_request', 'custom needs avatarId');
    const badTool = await errorOf(runway.createSession(body({ tools: [{ type: 'client_event', name: '1st', description: 'x' }] })));
    assert.match(badTool.runwayMessage!, /^tools\.0\.name/);
    const notJson = await raw('/v1/realtime_sessions', { method: 'POST', body: '{"model":' });
    assert.equal(notJson.status, 400);
    assert.deepEqual(await notJson.json(), { error: 'Invalid JSON body' });

    // A custom avatar and valid tools are accepted.
    const custom = await runway.createSession(
      body({ avatar: { type: 'custom', avatarId: 'av_1' }, tools: [{ type: 'backend_rpc', name: 'look_up', description: 'd', timeoutSeconds: 5 }] }),
    );
    const conv = await runway.getConversation(custom.id);
    assert.deepEqual(
      conv.tools.map((t) => t.name),
      ['look_up'],
    );
    await runway.cancelSession(custom.id);
  });

  it('switches the livekit integration per account: off → 400 Unrecognized key: integration (and: livekit)', async () => {
    const integration = { type: 'livekit' as const, url: 'wss://lk.example.com', token: 'customer-token', roomName: 'room-1' };
    sim.setAccount({ livekitIntegration: false });
    try {
      const i = await raw('/v1/realtime_sessions', { method: 'POST', body: body({ integration }) });
      assert.equal(i.status, 400);
      assert.deepEqual(await i.json(), { error: 'Unrecognized key: integration' });
      const l = await raw('/v1/realtime_sessions', { method: 'POST', body: body({ livekit: { url: integration.url, token: 't', roomName: 'r' } }) });
      assert.equal(l.status, 400);
      assert.deepEqual(await l.json(), { error: 'Unrecognized key: livekit' });
      assert.equal((await errorOf(runway.createSession(body({ integration })))).kind, 'integration_unsupported');
      // Other integrations are not affected.
      const el = await runway.createSession(body({ integration: { type: 'elevenlabs', signedUrl: 'wss://el.example.com/x' } }));
      await runway.cancelSession(el.id);
    } finally {
      sim.setAccount({ livekitIntegration: true });
    }
    // On: both spellings are accepted (avatar media is off here, so nobody joins the fake room).
    const a = await runway.createSession(body({ integration }));
    const b = await runway.createSession(body({ livekit: { url: integration.url, token: 't', roomName: 'r' } }));
    assert.equal(sim.session(a.id)?.integration?.roomName, 'room-1');
    assert.equal(sim.session(b.id)?.integration?.roomName, 'r');
    // The ledger keeps the request body with the customer's token redacted.
    assert.equal((sim.session(a.id)!.body.integration as { token: string }).token, '[REDACTED]');
    await runway.cancelSession(a.id);
    await runway.cancelSession(b.id);
    const bad = await errorOf(runway.createSession(body({ integration: { type: 'livekit', url: 'wss://x' } as never })));
    assert.match(bad.runwayMessage!, /^integration\.token: Required/);
  });

  it('needs the API key (401) and the version header (400, recorded as an invariant violation)', async () => {
    for (const key of ['key_wrong', null] as const) {
      const res = await raw('/v1/organization', { key });
      assert.equal(res.status, 401);
      assert.deepEqual(await res.json(), { error: 'Invalid API key' });
    }
    const wrong = new RunwayClient({ apiKey: 'key_not_the_one', baseUrl: sim.baseUrl });
    try {
      assert.equal((await errorOf(wrong.createSession(body()))).kind, 'unauthorized');
    } finally {
      await wrong.close();
    }
    const before = sim.invariantViolations().length;
    const noVersion = await raw('/v1/organization', { version: null });
    assert.equal(noVersion.status, 400);
    assert.match(((await noVersion.json()) as { error: string }).error, /X-Runway-Version/);
    assert.equal((await raw('/v1/organization', { version: '2020-01-01' })).status, 400);
    const added = sim.invariantViolations().slice(before);
    assert.equal(added.length, 2);
    assert.match(added[0]!, /^organization: .*X-Runway-Version/);
    // Unknown ids and paths are 404.
    assert.equal((await errorOf(runway.getSession('00000000-0000-0000-0000-000000000000'))).kind, 'not_found');
    assert.equal((await raw('/v1/nothing-here')).status, 404);
  });

  it('serves every endpoint: create, status, consume, connect_backend, conversation(s), cancel, delete, organization', async () => {
    const created = await raw('/v1/realtime_sessions', { method: 'POST', body: body({ maxDuration: 60, personality: 'calm', startScript: 'Hi' }) });
    assert.equal(created.status, 200);
    const { id } = (await created.json()) as { id: string };
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);

    // connect_backend needs a room, which exists once the session is consumed.
    assert.equal((await errorOf(runway.connectBackend(id))).status, 400);
    const ready = await untilStatus(id, 'READY');
    const readyRaw = (await (await raw(`/v1/realtime_sessions/${id}`)).json()) as Record<string, unknown>;
    assert.deepEqual(Object.keys(readyRaw).sort(), ['createdAt', 'expiresAt', 'id', 'sessionKey', 'status']);

    const creds = await runway.consumeSession(id, ready.sessionKey);
    assert.equal(creds.url, lk.url);
    assert.equal(jwtClaims(creds.token).video?.room, creds.roomName);
    const backend = await runway.connectBackend(id);
    assert.equal(backend.roomName, creds.roomName);
    assert.equal(jwtClaims(backend.token).video?.hidden, true, 'the backend participant is hidden');
    assert.notEqual(jwtClaims(backend.token).sub, jwtClaims(creds.token).sub);
    assert.equal(
      (await raw(`/v1/realtime_sessions/${id}/connect_backend`, { method: 'POST', key: ready.sessionKey })).status,
      401,
      'connect_backend takes the API key',
    );

    const conv = await runway.getConversation(id);
    assert.equal(conv.id, id);
    assert.equal(conv.status, 'in_progress');
    assert.equal(conv.maxDuration, 60);
    const page = await runway.listConversations({ limit: 100 });
    const summary = page.data.find((c) => c.id === id);
    assert.ok(summary, 'the session is listed');
    assert.deepEqual(summary.avatar, { type: 'runway-preset', presetId: 'cooking-teacher', name: 'cooking-teacher' });

    const del = await raw(`/v1/realtime_sessions/${id}`, { method: 'DELETE' });
    assert.equal(del.status, 204);
    assert.equal(await del.text(), '');
    const cancelled = (await (await raw(`/v1/realtime_sessions/${id}`)).json()) as Record<string, unknown>;
    assert.deepEqual(Object.keys(cancelled).sort(), ['createdAt', 'id', 'status']);
    assert.equal(cancelled.status, 'CANCELLED');
    assert.equal((await runway.getConversation(id)).status, 'ended');

    assert.equal((await raw(`/v1/avatar_conversations/${id}`, { method: 'DELETE' })).status, 204);
    assert.equal((await errorOf(runway.getConversation(id))).kind, 'not_found');
    assert.equal((await errorOf(runway.getSession(id))).kind, 'not_found');

    const org = await runway.getOrganization();
    assert.equal(org.tier.models.gwm1_avatars?.maxConcurrentGenerations, 20);
    assert.ok((org.tier.models.gwm1_avatars?.maxDailyGenerations ?? 0) > 0);
  });

  it('runs the state machine: NOT_READY queued → NOT_READY → READY → RUNNING (client joins) → COMPLETED at maxDuration', async () => {
    // timeScale 100: the 10 s maxDuration passes in 100 ms of RUNNING.
    sim.nextSessions([{ queuedMs: 400, provisioningMs: 400, timeScale: 100 }]);
    const { id } = await runway.createSession(body({ maxDuration: 10 }));
    const first = await runway.getSession(id);
    assert.equal(first.status, 'NOT_READY');
    assert.equal((first as { queued?: boolean }).queued, true);
    await eventually(
      'provisioning (no longer queued)',
      async () => {
        const s = await runway.getSession(id);
        assert.notEqual(s.status, 'READY', 'the provisioning phase was skipped');
        return s.status === 'NOT_READY' && !s.queued ? true : undefined;
      },
      10_000,
      25,
    );
    const ready = await untilStatus(id, 'READY');
    assert.ok(Date.parse(ready.expiresAt) > Date.now(), 'expiresAt is in the future');
    const creds = await runway.consumeSession(id, ready.sessionKey);
    assert.equal((await runway.getSession(id)).status, 'READY', 'consumed but nobody joined yet');
    const room = new Room();
    await room.connect(creds.url, creds.token);
    try {
      const done = await untilStatus(id, 'COMPLETED');
      assert.ok(done.duration >= 10, `duration ${done.duration} (simulated seconds)`);
      assert.equal(sim.session(id)?.endedBy, 'max_duration');
      assert.equal(
        sim
          .session(id)
          ?.history.map((h) => h.status)
          .join('>'),
        'NOT_READY>READY>RUNNING>COMPLETED',
      );
      const conv = await runway.getConversation(id);
      assert.equal(conv.status, 'ended');
      assert.ok(conv.startedAt && conv.status === 'ended' && conv.endedAt);
    } finally {
      await room.disconnect();
    }
  });

  it('ends sessions COMPLETED at the runtime cap, FAILED with the failureCode, CANCELLED on DELETE', async () => {
    sim.nextSessions([{ provisioningMs: 10_000, failAfterMs: 50, failureCode: 'INTERNAL.GPU_UNAVAILABLE' }]);
    const failed = await runway.createSession(body());
    const f = await untilStatus(failed.id, 'FAILED');
    assert.equal(f.failureCode, 'INTERNAL.GPU_UNAVAILABLE');
    assert.ok(f.failure);
    const conv = await runway.getConversation(failed.id);
    assert.equal(conv.status, 'failed');
    assert.equal(conv.status === 'failed' && conv.failureCode, 'INTERNAL.GPU_UNAVAILABLE');

    sim.nextSessions([{ runtimeCapSeconds: 0.3 }]);
    const capped = await readySession({ maxDuration: 1800 });
    const creds = await runway.consumeSession(capped.id, capped.ready.sessionKey);
    const room = new Room();
    await room.connect(creds.url, creds.token);
    try {
      await untilStatus(capped.id, 'COMPLETED');
      assert.equal(sim.session(capped.id)?.endedBy, 'runtime_cap');
    } finally {
      await room.disconnect();
    }

    sim.nextSessions([{ provisioningMs: 60_000 }]);
    const pending = await runway.createSession(body());
    await runway.cancelSession(pending.id);
    assert.equal((await runway.getSession(pending.id)).status, 'CANCELLED');
    assert.equal(sim.session(pending.id)?.endedBy, 'DELETE');
    // Terminal states stay terminal.
    await runway.cancelSession(failed.id);
    assert.equal((await runway.getSession(failed.id)).status, 'FAILED');
  });

  it('consume: with the session key only, once, never before READY or after expiry', async () => {
    sim.nextSessions([{ provisioningMs: 60_000 }]);
    const early = await runway.createSession(body());
    let before = sim.invariantViolations().length;
    const tooEarly = await raw(`/v1/realtime_sessions/${early.id}/consume`, { method: 'POST', key: 'sk_guess', version: null });
    assert.equal(tooEarly.status, 400);
    assert.deepEqual(await tooEarly.json(), { error: 'Session is not ready' });
    assert.match(sim.invariantViolations().slice(before).join('\n'), /before READY/);
    await runway.cancelSession(early.id);

    const { id, ready } = await readySession();
    before = sim.invariantViolations().length;
    const withApiKey = await raw(`/v1/realtime_sessions/${id}/consume`, { method: 'POST', version: null });
    assert.equal(withApiKey.status, 401);
    assert.match(sim.invariantViolations().slice(before).join('\n'), /with the API key/);
    assert.equal((await raw(`/v1/realtime_sessions/${id}/consume`, { method: 'POST', key: 'sk_wrong', version: null })).status, 401);
    assert.equal((await runway.getSession(id)).status, 'READY', 'failed attempts do not consume');

    before = sim.invariantViolations().length;
    const creds = await runway.consumeSession(id, ready.sessionKey);
    assert.ok(creds.token && creds.roomName);
    assert.deepEqual(sim.invariantViolations().slice(before), [], 'the project client consumes as the contract says');
    const again = await errorOf(runway.consumeSession(id, ready.sessionKey));
    assert.equal(again.kind, 'already_consumed');
    assert.equal(again.retryable, false);
    await runway.cancelSession(id);

    // Without Content-Type: application/json it still works, and is recorded.
    const second = await readySession();
    before = sim.invariantViolations().length;
    assert.equal(
      (await raw(`/v1/realtime_sessions/${second.id}/consume`, { method: 'POST', key: second.ready.sessionKey, version: null, contentType: null })).status,
      200,
    );
    assert.match(sim.invariantViolations().slice(before).join('\n'), /Content-Type/);
    await runway.cancelSession(second.id);

    sim.nextSessions([{ readyTtlMs: 150 }]);
    const exp = await readySession();
    const expired = await untilStatus(exp.id, 'FAILED');
    assert.equal(expired.failureCode, 'SESSION_EXPIRED');
    const late = await errorOf(runway.consumeSession(exp.id, exp.ready.sessionKey));
    assert.equal(late.kind, 'session_expired');
    assert.equal(late.status, 400);
  });

  it('enforces the account concurrency limit (429 or 400) on create and reports it in /v1/organization', async () => {
    const { s, c } = await ownSim({ account: { maxConcurrentSessions: 2 }, defaults: { provisioningMs: 60_000, avatarMedia: 'off' } });
    try {
      assert.equal((await c.getOrganization()).tier.models.gwm1_avatars?.maxConcurrentGenerations, 2);
      const a = (await c.createSession(body())).id;
      await c.createSession(body());
      const r429 = await raw('/v1/realtime_sessions', { method: 'POST', body: body(), to: s });
      assert.equal(r429.status, 429);
      assert.match(((await r429.json()) as { error: string }).error, /concurrency limit/i);
      const e429 = await errorOf(c.createSession(body()));
      assert.equal(e429.kind, 'concurrency_limited');
      assert.equal(e429.retryable, true);

      s.setAccount({ concurrencyLimitStatus: 400 });
      const r400 = await raw('/v1/realtime_sessions', { method: 'POST', body: body(), to: s });
      assert.equal(r400.status, 400);
      assert.match(((await r400.json()) as { error: string }).error, /concurrency limit/i);
      const e400 = await errorOf(c.createSession(body()));
      assert.equal(e400.kind, 'concurrency_limited');
      assert.equal(e400.status, 400);
      assert.equal(s.sessions().length, 2, 'rejected creates made no session');

      // A cancelled session frees its slot; the peak stays at the limit.
      await c.cancelSession(a);
      await c.createSession(body());
      assert.equal(s.activeCount(), 2);
      assert.equal(s.maxConcurrentObserved, 2);
      s.setAccount({ maxConcurrentSessions: 3 });
      await c.createSession(body());
      assert.equal((await c.getOrganization()).tier.models.gwm1_avatars?.maxConcurrentGenerations, 3);
      assert.equal(s.maxConcurrentObserved, 3);
    } finally {
      await c.close();
    }
  });

  it('lists conversations with cursor paging and date filters (startDate inclusive, endDate exclusive)', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await runway.createSession(body({ avatar: { type: 'custom', avatarId: 'av_paging' } }))).id);
    const page = await runway.listConversations({ limit: 2, avatar: 'av_paging' });
    assert.equal(page.data.length, 2);
    assert.ok(page.nextCursor);
    const rest = await runway.listConversations({ limit: 2, avatar: 'av_paging', cursor: page.nextCursor });
    assert.equal(rest.data.length, 1);
    assert.equal(rest.nextCursor, '');
    assert.deepEqual([...page.data, ...rest.data].map((c) => c.id).sort(), [...ids].sort());
    const all: string[] = [];
    for await (const c of runway.iterateConversations({ limit: 1, avatar: 'av_paging' })) all.push(c.id);
    assert.deepEqual(all.sort(), [...ids].sort());

    const createdAt = sim.session(ids[0]!)!.createdAt;
    const from = await runway.listConversations({ limit: 100, startDate: createdAt });
    assert.ok(
      from.data.some((c) => c.id === ids[0]),
      'startDate is inclusive',
    );
    const until = await runway.listConversations({ limit: 100, endDate: createdAt });
    assert.ok(!until.data.some((c) => c.id === ids[0]), 'endDate is exclusive');
    assert.equal((await raw('/v1/avatar_conversations?limit=0')).status, 400);
    assert.equal((await raw('/v1/avatar_conversations?startDate=yesterday')).status, 400);

    assert.equal((await errorOf(runway.deleteConversation(ids[0]!))).kind, 'invalid_request', 'in progress');
    for (const id of ids) await runway.cancelSession(id);
    await runway.deleteConversation(ids[0]!);
    assert.equal(sim.session(ids[0]!), undefined);
  });

  it('keeps a ledger of sessions and requests, and lists orphans (sessions not yet terminal)', async () => {
    for (const s of sim.orphans()) await runway.cancelSession(s.id);
    assert.deepEqual(sim.orphans(), []);
    const before = sim.requests().length;
    sim.nextSessions([{ provisioningMs: 60_000 }]);
    const { id } = await runway.createSession(body());
    await runway.getSession(id);
    assert.deepEqual(
      sim.orphans().map((s) => s.id),
      [id],
    );
    const reqs = sim.requests().slice(before);
    assert.deepEqual(
      reqs.map((r) => [r.endpoint, r.method, r.status, r.sessionId]),
      [
        ['create', 'POST', 200, id],
        ['status', 'GET', 200, id],
      ],
    );
    await runway.cancelSession(id);
    assert.deepEqual(sim.orphans(), []);
    const s = sim.session(id)!;
    assert.equal(s.status, 'CANCELLED');
    assert.ok(s.endedAt);
    assert.equal(sim.sessions().filter((x) => x.id === id).length, 1);
  });
});

describe('Runway simulator: faults', () => {
  it('injects 5xx at a rate, with an error body', async () => {
    sim.configure({ faults: { organization: { status5xxRate: 1 } } });
    try {
      const res = await raw('/v1/organization');
      assert.ok([500, 502, 503].includes(res.status), `status ${res.status}`);
      assert.ok(typeof ((await res.json()) as { error: unknown }).error === 'string');
      const e = await errorOf(runway.getOrganization());
      assert.equal(e.kind, 'unavailable');
      assert.equal(e.retryable, true);
      // Other endpoints are not affected by an endpoint's faults.
      sim.nextSessions([{ provisioningMs: 60_000 }]);
      const { id } = await runway.createSession(body());
      await runway.cancelSession(id);
    } finally {
      sim.configure({ faults: {} });
    }
    await runway.getOrganization();
  });

  it('injects 429 with Retry-After in seconds or retry-after-ms', async () => {
    try {
      sim.configure({ faults: { organization: { status429Rate: 1, retryAfterSeconds: 3 } } });
      const s = await raw('/v1/organization');
      assert.equal(s.status, 429);
      assert.equal(s.headers.get('retry-after'), '3');
      assert.equal(s.headers.get('retry-after-ms'), null);
      const limited = await errorOf(runway.getOrganization());
      assert.equal(limited.kind, 'rate_limited');
      assert.equal(limited.retryAfterMs, 3000);

      sim.configure({ faults: { organization: { status429Rate: 1, retryAfterMs: 250 } } });
      const ms = await raw('/v1/organization');
      assert.equal(ms.status, 429);
      assert.equal(ms.headers.get('retry-after-ms'), '250');
      assert.equal((await errorOf(runway.getOrganization())).retryAfterMs, 250);
    } finally {
      sim.configure({ faults: {} });
    }
  });

  it('injects connection resets and latency', async () => {
    try {
      sim.configure({ faults: { status: { resetRate: 1 } } });
      await assert.rejects(raw('/v1/realtime_sessions/some-id'), 'the connection is reset without an answer');
      assert.equal((await errorOf(runway.getSession('some-id'))).kind, 'unavailable');
      // A create whose connection is reset before it is handled created nothing, but the client cannot know.
      sim.configure({ faults: { create: { resetRate: 1 } } });
      const count = sim.sessions().length;
      assert.equal((await errorOf(runway.createSession(body()))).kind, 'ambiguous');
      assert.equal(sim.sessions().length, count);

      sim.configure({ faults: { organization: { latencyMs: 300 } } });
      const t0 = Date.now();
      await runway.getOrganization();
      assert.ok(Date.now() - t0 >= 290, `latency applied (${Date.now() - t0} ms)`);
    } finally {
      sim.configure({ faults: {} });
    }
    assert.deepEqual(sim.configure({}).faults, {}, 'latency removed');
    await runway.getOrganization();
  });

  it('loses create answers: the session exists, the client sees ambiguous, the ledger says lost_answer', async () => {
    sim.configure({ faults: { create: { loseAnswerRate: 1 } } });
    const before = new Set(sim.sessions().map((s) => s.id));
    const reqs = sim.requests().length;
    try {
      const e = await errorOf(runway.createSession(body()));
      assert.equal(e.kind, 'ambiguous');
      assert.equal(e.retryable, false);
    } finally {
      sim.configure({ faults: {} });
    }
    const lost = sim.sessions().filter((s) => !before.has(s.id));
    assert.equal(lost.length, 1, 'the session exists although the answer was lost');
    assert.ok(
      sim.orphans().some((s) => s.id === lost[0]!.id),
      'and it is an orphan until cancelled',
    );
    const rec = sim
      .requests()
      .slice(reqs)
      .find((r) => r.endpoint === 'create')!;
    assert.equal(rec.faultInjected, 'lost_answer');
    assert.equal(rec.status, 'reset');
    assert.equal(rec.sessionId, lost[0]!.id);
    // The conversations listing finds it (how a reaper would).
    const listed = await runway.listConversations({ limit: 100, startDate: lost[0]!.createdAt });
    assert.ok(listed.data.some((c) => c.id === lost[0]!.id));
    await runway.cancelSession(lost[0]!.id);
    assert.ok(!sim.orphans().some((s) => s.id === lost[0]!.id));
  });

  it("applies '*' to every endpoint, with per-endpoint specs overriding it", async () => {
    sim.configure({ faults: { '*': { status5xxRate: 1 }, organization: { status5xxRate: 0 } } });
    try {
      assert.equal((await errorOf(runway.getSession('x'))).kind, 'unavailable');
      assert.equal((await errorOf(runway.listConversations())).kind, 'unavailable');
      await runway.getOrganization();
    } finally {
      sim.configure({ faults: {} });
    }
  });

  it('is deterministic under a seed: the same seed gives the same fault sequence, another seed another', async () => {
    const run = async (seed: number) => {
      const { s, c } = await ownSim({ seed, faults: { '*': { status5xxRate: 0.4, status429Rate: 0.2, retryAfterMs: 1 } } });
      try {
        for (let i = 0; i < 16; i++) await c.getOrganization().catch(() => undefined);
        return s
          .requests()
          .map((r) => r.faultInjected ?? 'ok')
          .join(',');
      } finally {
        await c.close();
      }
    };
    const a = await run(42);
    assert.equal(await run(42), a);
    assert.notEqual(await run(43), a);
    assert.match(a, /ok/);
    assert.match(a, /50[023]/);
    assert.match(a, /429/);
  });
});

describe('Runway simulator: control API (/_sim/*)', () => {
  it('requires the x-sim-control token', async () => {
    const { s, c } = await ownSim();
    await c.close();
    for (const headers of [{}, { 'x-sim-control': 'wrong' }, { authorization: `Bearer ${s.apiKey}` }] as Record<string, string>[]) {
      for (const [method, p] of [
        ['GET', 'ledger'],
        ['GET', 'invariants'],
        ['POST', 'reset'],
        ['POST', 'account'],
      ]) {
        const res = await fetch(`${s.baseUrl}/_sim/${p}`, { method, headers, body: method === 'POST' ? '{}' : undefined });
        assert.equal(res.status, 401, `${method} ${p} with ${JSON.stringify(Object.keys(headers))}`);
      }
    }
  });

  it('configures faults, the account and next sessions; serves the ledger (without secrets), invariants and reset', async () => {
    const { s, c } = await ownSim({ seed: 5, controlToken: 'ctl_test_token' });
    const ctl = (p: string, init: { method?: string; body?: unknown } = {}) =>
      fetch(`${s.baseUrl}/_sim/${p}`, {
        method: init.method ?? 'GET',
        headers: { 'x-sim-control': 'ctl_test_token', 'content-type': 'application/json' },
        body: init.body === undefined ? undefined : JSON.stringify(init.body),
      });
    try {
      assert.equal((await ctl('configure', { method: 'POST', body: { faults: { organization: { status5xxRate: 1 } } } })).status, 200);
      assert.equal((await errorOf(c.getOrganization())).kind, 'unavailable');
      assert.equal((await ctl('configure', { method: 'POST', body: { faults: {} } })).status, 200);

      const acc = await ctl('account', { method: 'POST', body: { maxConcurrentSessions: 3 } });
      assert.equal(((await acc.json()) as { maxConcurrentSessions: number }).maxConcurrentSessions, 3);
      assert.equal((await c.getOrganization()).tier.models.gwm1_avatars?.maxConcurrentGenerations, 3);

      assert.equal((await ctl('next-sessions', { method: 'POST', body: [{ provisioningMs: 0, failAfterMs: 10, failureCode: 'CTL.FAIL' }] })).status, 200);
      const { id } = await c.createSession(body());
      await eventually('FAILED via next-sessions', async () => {
        const st = await c.getSession(id);
        return st.status === 'FAILED' ? st.failureCode : undefined;
      }).then((code) => assert.equal(code, 'CTL.FAIL'));

      const { id: readyId } = await c.createSession(body());
      await eventually('READY', async () => ((await c.getSession(readyId)).status === 'READY' ? true : undefined));
      const ledgerRes = await ctl('ledger');
      const ledgerText = await ledgerRes.text();
      const ledger = JSON.parse(ledgerText) as { sessions: { id: string; sessionKey?: string }[]; requests: unknown[]; maxConcurrentObserved: number };
      assert.deepEqual(ledger.sessions.map((x) => x.id).sort(), [id, readyId].sort());
      assert.equal(ledger.sessions.find((x) => x.id === readyId)?.sessionKey, '[REDACTED]');
      assert.ok(!ledgerText.includes(s.session(readyId)!.sessionKey!), 'no session key in the ledger');
      assert.ok(!ledgerText.includes(s.apiKey), 'no API key in the ledger');
      assert.ok(ledger.requests.length >= 4);

      await fetch(`${s.baseUrl}/v1/organization`, { headers: { authorization: `Bearer ${s.apiKey}` } }); // no version header
      const inv = (await (await ctl('invariants')).json()) as { violations: string[]; orphans: string[] };
      assert.equal(inv.violations.length, 1);
      assert.deepEqual(inv.orphans, [readyId]);

      assert.equal((await ctl('configure', { method: 'POST', body: '{not json' })).status, 400);
      assert.equal((await ctl('next-sessions', { method: 'POST', body: { provisioningMs: 1 } })).status, 400, 'next-sessions takes a list');
      assert.equal((await ctl('nope')).status, 404);

      assert.equal((await ctl('reset', { method: 'POST' })).status, 200);
      assert.deepEqual(s.sessions(), []);
      assert.deepEqual(s.invariantViolations(), []);
      assert.equal(s.requests().length, 0);
    } finally {
      await c.close();
    }
  });
});

describe('frame codes (src/media/frame-code.ts)', () => {
  it('round-trips counters through a frame and rejects torn or unrelated frames', () => {
    for (const [w, h] of [
      [64, 64],
      [640, 360],
      [66, 50],
    ] as const) {
      for (const n of [0, 1, 255, 65_535, 0xfffffe, 0xffffff]) {
        const data = makeI420Frame(w, h, n);
        assert.equal(data.length, w * h + 2 * Math.ceil(w / 2) * Math.ceil(h / 2));
        assert.equal(decodeCounter({ data, width: w, height: h }), n, `${n} at ${w}x${h}`);
      }
    }
    assert.equal(decodeCounter({ data: makeI420Frame(64, 64, 0x1000005), width: 64, height: 64 }), 5, 'counters wrap at 2^24');
    const torn = makeI420Frame(64, 64, 1234);
    torn.fill(235, 0, 64 * 16); // the first row of cells turns white
    assert.equal(decodeCounter({ data: torn, width: 64, height: 64 }), undefined);
    assert.equal(decodeCounter({ data: new Uint8Array(64 * 96).fill(128), width: 64, height: 64 }), undefined, 'a grey frame');
    assert.equal(decodeCounter({ data: new Uint8Array(8 * 4), width: 8, height: 4 }), undefined, 'too small to carry a code');
  });
});

describe('Runway simulator: avatar media on LiveKit', () => {
  it('its avatar (identity worker:…) publishes video with increasing frame counters; END_CALL completes the session', async () => {
    sim.nextSessions([{ avatarMedia: 'light' }]);
    const { id, ready } = await readySession();
    const creds = await runway.consumeSession(id, ready.sessionKey);
    const room = new Room();
    const counters: number[] = [];
    const streams: VideoStream[] = [];
    let publisher: string | undefined;
    room.on(RoomEvent.TrackSubscribed, (track: RemoteTrack, _pub, participant) => {
      if (track.kind !== TrackKind.KIND_VIDEO) return;
      publisher = participant.identity;
      const s = new VideoStream(track);
      streams.push(s);
      void (async () => {
        for await (const ev of s) {
          const n = counterOfFrame(ev.frame);
          if (n !== undefined) counters.push(n);
        }
      })().catch(() => undefined);
    });
    await room.connect(creds.url, creds.token, { autoSubscribe: true, dynacast: false });
    try {
      await eventually('three decoded frames', () => (counters.length >= 3 ? true : undefined), 20_000);
      const seen = counters.slice(0, 3);
      for (let i = 1; i < seen.length; i++) assert.ok(seen[i]! > seen[i - 1]!, `frame counters increase: ${seen.join(',')}`);
      assert.match(publisher ?? '', /^worker:/, "Runway's worker identity starts with worker:");
      assert.ok(sim.avatar(id)!.stats().framesSent >= 3);
      await untilStatus(id, 'RUNNING');
      const running = (await (await raw(`/v1/realtime_sessions/${id}`)).json()) as Record<string, unknown>;
      assert.deepEqual(Object.keys(running).sort(), ['createdAt', 'id', 'status'], 'RUNNING carries no session key');

      await room.localParticipant!.publishData(new TextEncoder().encode(JSON.stringify({ type: 'END_CALL' })), { reliable: true });
      const done = await untilStatus(id, 'COMPLETED');
      assert.equal(typeof done.duration, 'number');
      assert.equal(sim.session(id)?.endedBy, 'END_CALL');
      await eventually('the avatar left the room', () => ([...room.remoteParticipants.keys()].some((k) => k.startsWith('worker:')) ? undefined : true));
      assert.equal(sim.avatar(id), undefined);
    } finally {
      for (const s of streams) await s.cancel().catch(() => undefined);
      await room.disconnect();
    }
  });

  it('direct mode: with integration livekit the avatar joins the customer room (RUNNING without consume); DELETE makes it leave', async () => {
    const rooms = roomService(lk);
    const customerRoom = `customer-${process.pid}-${Date.now()}`;
    const silentRoom = `${customerRoom}-silent`;
    sim.nextSessions([{ avatarMedia: 'light' }, { avatarMedia: 'light', joinCustomerRoom: false }]);
    const joins = await runway.createSession(
      body({
        integration: {
          type: 'livekit',
          url: lk.url,
          token: await joinToken(lk, customerRoom, 'runway-avatar', { kind: 'agent' }),
          roomName: customerRoom,
          agentIdentity: 'agent-1',
        },
      }),
    );
    const stays = await runway.createSession(
      body({ integration: { type: 'livekit', url: lk.url, token: await joinToken(lk, silentRoom, 'runway-avatar-2'), roomName: silentRoom } }),
    );
    await untilStatus(joins.id, 'RUNNING', 20_000);
    assert.deepEqual(
      (await rooms.listParticipants(customerRoom)).map((p) => p.identity),
      ['runway-avatar'],
    );
    // The other one was provisioned alongside, but its avatar never shows up.
    assert.equal((await runway.getSession(stays.id)).status, 'READY');
    assert.equal(sim.avatar(stays.id), undefined);
    assert.deepEqual((await rooms.listParticipants(silentRoom).catch(() => [])).length, 0);

    await runway.cancelSession(joins.id);
    await runway.cancelSession(stays.id);
    assert.equal((await runway.getSession(joins.id)).status, 'CANCELLED');
    await eventually('the avatar left the customer room', async () => ((await rooms.listParticipants(customerRoom)).length === 0 ? true : undefined));
  });
});

describe("Runway simulator: LiveKit's avatar protocol in the customer's room (direct mode)", () => {
  /** PCM bytes of `seconds` of a tone, 16-bit little-endian, `channels` interleaved. */
  const pcm = (seconds: number, rate: number, channels: number) => {
    const n = Math.round(seconds * rate);
    const b = Buffer.alloc(n * channels * 2);
    for (let i = 0; i < n; i++)
      for (let c = 0; c < channels; c++) b.writeInt16LE(Math.round(8000 * Math.sin((2 * Math.PI * 700 * i) / rate)), (i * channels + c) * 2);
    return b;
  };
  /** Sends one segment as livekit-agents' DataStreamAudioOutput does, in chunks that may split a sample. */
  const send = async (from: Room, to: string, bytes: Buffer, rate: number, channels: number, close = true) => {
    const w = await from.localParticipant!.streamBytes({
      name: `AUDIO_${Date.now()}`,
      topic: 'lk.audio_stream',
      destinationIdentities: [to],
      attributes: { sample_rate: String(rate), num_channels: String(channels) },
    });
    for (let off = 0; off < bytes.length; off += 1001) await w.write(bytes.subarray(off, off + 1001));
    if (close) await w.close();
    return w;
  };

  it('plays lk.audio_stream segments in order, sends lk.playback_started then lk.playback_finished, and lk.clear_buffer interrupts every queued segment; other senders are refused', async () => {
    const room = `speech-${process.pid}-${Date.now()}`;
    sim.nextSessions([{ avatarMedia: 'light' }]);
    const { id } = await runway.createSession(
      body({
        integration: {
          type: 'livekit',
          url: lk.url,
          token: await joinToken(lk, room, 'runway-avatar', { kind: 'agent', attributes: { 'lk.publish_on_behalf': 'agent-1' } }),
          roomName: room,
          agentIdentity: 'agent-1',
        },
      }),
    );
    await untilStatus(id, 'RUNNING', 20_000);
    const agent = new Room();
    const stranger = new Room();
    const calls: { method: string; payload: string }[] = [];
    await agent.connect(lk.url, await joinToken(lk, room, 'agent-1', { kind: 'agent' }), { autoSubscribe: false, dynacast: false });
    await stranger.connect(lk.url, await joinToken(lk, room, 'stranger'), { autoSubscribe: false, dynacast: false });
    for (const method of ['lk.playback_started', 'lk.playback_finished']) {
      agent.localParticipant!.registerRpcMethod(method, async (d) => {
        calls.push({ method, payload: d.payload });
        return 'ok';
      });
    }
    const finished = () =>
      calls.filter((c) => c.method === 'lk.playback_finished').map((c) => JSON.parse(c.payload) as { playback_position: number; interrupted: boolean });
    try {
      // One segment, stereo at 24 kHz, played out in full.
      await send(agent, 'runway-avatar', pcm(0.5, 24_000, 2), 24_000, 2);
      await eventually('playback_finished', () => (finished().length === 1 ? true : undefined), 20_000);
      assert.deepEqual(
        calls.map((c) => c.method),
        ['lk.playback_started', 'lk.playback_finished'],
      );
      assert.deepEqual(Object.keys(JSON.parse(calls[1]!.payload)).sort(), ['interrupted', 'playback_position'], 'livekit-agents parses exactly these keys');
      assert.equal(finished()[0]!.interrupted, false);
      assert.ok(Math.abs(finished()[0]!.playback_position - 0.5) < 0.02, `position ${finished()[0]!.playback_position}`);

      // Someone else's audio is not the agent's: refused, nothing played, nothing reported.
      await send(stranger, 'runway-avatar', pcm(0.3, 48_000, 1), 48_000, 1);
      await eventually('the stranger refused', () => ((sim.avatar(id)!.stats().speech?.streamsRefused ?? 0) >= 1 ? true : undefined));
      await assert.rejects(
        stranger.localParticipant!.performRpc({ destinationIdentity: 'runway-avatar', method: 'lk.clear_buffer', payload: '' }),
        (e: RpcError) => e.code === RpcError.ErrorCode.APPLICATION_ERROR,
      );

      // Two long segments queued (the second still streaming), then clear_buffer: both end interrupted.
      await send(agent, 'runway-avatar', pcm(20, 48_000, 1), 48_000, 1);
      const open = await send(agent, 'runway-avatar', pcm(1, 16_000, 1), 16_000, 1, false);
      await eventually('the first long one playing', () => (calls.filter((c) => c.method === 'lk.playback_started').length === 2 ? true : undefined), 20_000);
      assert.equal(await agent.localParticipant!.performRpc({ destinationIdentity: 'runway-avatar', method: 'lk.clear_buffer', payload: '' }), 'ok');
      await eventually('two interrupted playbacks', () => (finished().length === 3 ? true : undefined), 20_000);
      const [, playing, queued] = finished();
      assert.equal(playing!.interrupted, true);
      assert.ok(playing!.playback_position > 0 && playing!.playback_position < 20, `cut at ${playing!.playback_position} s of 20`);
      assert.deepEqual(queued, { playback_position: 0, interrupted: true });
      await open.close();
      const stats = sim.avatar(id)!.stats().speech!;
      assert.deepEqual(
        { ...stats, speechFramesPlayed: undefined },
        { segmentsReceived: 3, segmentsFinished: 1, segmentsInterrupted: 2, speechFramesPlayed: undefined, streamsRefused: 1 },
      );
    } finally {
      await agent.disconnect();
      await stranger.disconnect();
      await runway.cancelSession(id).catch(() => undefined);
    }
  });
});

describe('npm run runway-sim (src/runway-sim/main.ts)', () => {
  /** Starts main.ts as a child process; resolves once it printed its banner. */
  async function startMain(env: Record<string, string>, args: string[] = []) {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/runway-sim/main.ts'), ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, LIVEKIT_SERVER_PATH: process.env.LIVEKIT_SERVER_PATH, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await eventually(
      'the simulator banner',
      () => {
        if (child.exitCode !== null) throw new Error(`exited early with ${child.exitCode}: ${out}`);
        return /Ctrl-C stops it/.test(out) ? true : undefined;
      },
      60_000,
    );
    const baseUrl = /RUNWAYML_BASE_URL=(\S+)/.exec(out)![1]!;
    return { child, output: () => out, exited, baseUrl };
  }

  it('runs against a given LiveKit: prints where it listens and the generated key; SIGTERM stops it', async () => {
    const m = await startMain({ RUNWAY_SIM_LIVEKIT_URL: lk.url, RUNWAY_SIM_LIVEKIT_API_KEY: lk.apiKey, RUNWAY_SIM_LIVEKIT_API_SECRET: lk.apiSecret }, [
      '--port',
      '0',
      '--max-concurrent',
      '4',
      '--provisioning-ms',
      '20',
      '--avatar-media',
      'off',
    ]);
    const key = /RUNWAYML_API_SECRET=(key_\w+)/.exec(m.output())?.[1];
    assert.ok(key, `a generated key is printed:\n${m.output()}`);
    assert.ok(!m.output().includes(lk.apiSecret), 'the LiveKit secret is never printed');
    const c = new RunwayClient({ apiKey: key, baseUrl: m.baseUrl });
    try {
      assert.equal((await c.getOrganization()).tier.models.gwm1_avatars?.maxConcurrentGenerations, 4);
      const { id } = await c.createSession(body());
      const ready = await eventually('READY', async () => {
        const s = await c.getSession(id);
        return s.status === 'READY' ? s : undefined;
      });
      const creds = await c.consumeSession(id, ready.sessionKey);
      assert.equal(creds.url, lk.url);
    } finally {
      await c.close();
    }
    m.child.kill('SIGTERM');
    assert.equal(await withTimeout(m.exited, 15_000, 'runway-sim to exit'), 0);
    await assert.rejects(fetch(`${m.baseUrl}/v1/organization`), 'the port is closed');
  });

  it('starts its own LiveKit when none is given, never prints a key it was given, and stops that LiveKit on SIGINT', async () => {
    const apiKey = 'key_from_env_0123456789abcdef';
    const m = await startMain({
      RUNWAY_SIM_PORT: '0',
      RUNWAY_SIM_API_KEY: apiKey,
      RUNWAY_SIM_CONTROL_TOKEN: 'ctl_from_env_0123',
      RUNWAY_SIM_AVATAR_MEDIA: 'off',
    });
    assert.ok(!m.output().includes(apiKey), 'the API key from the environment is not printed');
    assert.ok(!m.output().includes('ctl_from_env_0123'), 'nor the control token');
    const lkUrl = /avatars on (ws:\/\/\S+)/.exec(m.output())?.[1];
    assert.ok(lkUrl && lkUrl !== lk.url, `its own LiveKit:\n${m.output()}`);
    const lkHttp = lkUrl.replace(/^ws/, 'http');
    assert.equal((await fetch(lkHttp)).status, 200, 'its LiveKit answers');
    const c = new RunwayClient({ apiKey, baseUrl: m.baseUrl });
    try {
      await c.getOrganization();
    } finally {
      await c.close();
    }
    const inv = await fetch(`${m.baseUrl}/_sim/invariants`, { headers: { 'x-sim-control': 'ctl_from_env_0123' } });
    assert.equal(inv.status, 200);
    m.child.kill('SIGINT');
    assert.equal(await withTimeout(m.exited, 20_000, 'runway-sim to exit'), 0);
    await assert.rejects(fetch(lkHttp), 'the LiveKit server it started is gone');
  });

  it('rejects an invalid configuration with exit code 2', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/runway-sim/main.ts'), '--port', 'many'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await withTimeout(new Promise<number | null>((resolve) => child.once('exit', resolve)), 30_000, 'runway-sim to exit');
    assert.equal(code, 2);
    assert.match(err, /RUNWAY_SIM_PORT/);
  });
});
