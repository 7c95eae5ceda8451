// The HTTP API over a real socket, in front of the real stack (Temporal dev server, two LiveKit
// servers, the Runway simulator, in-process workers).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { AccessToken } from 'livekit-server-sdk';
import { startApiServer } from '../src/api/server';
import { createLogger } from '../src/log';
import { sessionWorkflowId } from '../workflows/shared';
import { startSessionStack, uniqueId, type SessionStack } from './helpers/session-stack';
import { eventually, withTimeout } from './helpers/wait';

const timing = { readyDeadlineSeconds: 20, avatarJoinTimeoutSeconds: 8, monitorIntervalSeconds: 0.5, endCallGraceSeconds: 3, heartbeatTimeoutSeconds: 5 };

describe('HTTP API', () => {
  let stack: SessionStack;
  let base: string;
  let close: () => Promise<void>;
  const token = randomBytes(24).toString('hex');
  const logLines: string[] = [];

  before(async () => {
    stack = await startSessionStack({ sim: { defaults: { provisioningMs: 100, avatarMedia: 'light' } } });
    const sink = new Writable({ write(chunk, _enc, cb) { logLines.push(String(chunk)); cb(); } });
    const api = await startApiServer({
      config: { apiToken: token, apiPort: 0, livekit: stack.config.livekit },
      sessions: stack.sessions,
      log: createLogger({ level: 'debug', destination: sink }),
      port: 0,
      waitLiveMs: 20_000,
    });
    base = api.url;
    close = api.close;
  });
  after(async () => {
    await close?.();
    await stack?.stop();
  });

  const auth = { authorization: `Bearer ${token}` };
  const call = (method: string, path: string, body?: unknown, headers: Record<string, string> = auth) =>
    fetch(base + path, { method, headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers }, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body) });
  const session = (over: Record<string, unknown> = {}) => {
    const conversationId = uniqueId('api');
    return { conversationId, avatar: { type: 'runway-preset', presetId: 'cooking-teacher' }, livekit: { roomName: `room-${conversationId}` }, mode: 'direct', timing, ...over };
  };
  const runwaySessionsFor = (room: string) => stack.sim.sessions().filter((s) => JSON.stringify(s.body).includes(room));

  it('health and metrics need no token; everything under /v1 does', async () => {
    assert.equal((await call('GET', '/healthz', undefined, {})).status, 200);
    const metrics = await call('GET', '/metrics', undefined, {});
    assert.equal(metrics.status, 200);
    assert.match(await metrics.text(), /avatar_api_request_seconds/);
    const none = await call('GET', '/v1/sessions', undefined, {});
    assert.equal(none.status, 401);
    assert.equal(((await none.json()) as { error: { code: string } }).error.code, 'unauthorized');
    assert.equal((await call('GET', '/v1/sessions', undefined, { authorization: `Bearer ${token}x` })).status, 401);
    assert.equal((await call('GET', '/v1/sessions', undefined, { authorization: token })).status, 401);
  });

  it('rejects bad input naming the field, and nothing reaches Temporal or Runway', async () => {
    const before = stack.sim.requests().length;
    const bad = session({ avatar: { type: 'runway-preset', presetId: 'nope' } });
    const res = await call('POST', '/v1/sessions', bad);
    assert.equal(res.status, 400);
    const body = (await res.json()) as { error: { code: string; message: string } };
    assert.equal(body.error.code, 'invalid_input');
    assert.match(body.error.message, /avatar\.presetId: unknown preset; use one of: /);
    const noRoom = await call('POST', '/v1/sessions', { ...session(), livekit: {} });
    assert.match(((await noRoom.json()) as { error: { message: string } }).error.message, /livekit\.roomName/);
    assert.equal((await call('POST', '/v1/sessions', 'not json')).status, 400);
    assert.equal((await call('POST', '/v1/sessions?wait=soon', session())).status, 400);
    assert.equal((await call('GET', '/v1/sessions/has%20space')).status, 400);
    assert.equal((await call('GET', '/v1/sessions?phase=dancing')).status, 400);
    assert.equal(stack.sim.requests().length, before);
    assert.equal(await stack.sessions.getSession(bad.conversationId), undefined, 'no workflow was started');
  });

  it('refuses bodies over the limit (413) and unknown routes (404)', async () => {
    const big = await call('POST', '/v1/sessions', { ...session(), personality: 'x'.repeat(70 * 1024) });
    assert.equal(big.status, 413);
    assert.equal(((await big.json()) as { error: { code: string } }).error.code, 'payload_too_large');
    const missing = await call('GET', '/v1/nothing-here');
    assert.equal(missing.status, 404);
    assert.equal(((await missing.json()) as { error: { code: string } }).error.code, 'not_found');
  });

  it('starts with ?wait=live, is idempotent, reads, lists and ends a session', async () => {
    const s = session();
    const first = await call('POST', '/v1/sessions?wait=live', s);
    assert.equal(first.status, 201);
    const a = (await first.json()) as { conversationId: string; workflowId: string; runId: string; phase: string; live: { roomName: string; avatarIdentity: string; livekitUrl: string } };
    assert.equal(a.phase, 'live');
    assert.equal(a.workflowId, sessionWorkflowId(s.conversationId));
    assert.equal(a.live.roomName, s.livekit.roomName);
    assert.equal(a.live.livekitUrl, stack.config.livekit.publicUrl);

    const again = await call('POST', '/v1/sessions', s);
    assert.equal(again.status, 200);
    assert.equal(((await again.json()) as { runId: string }).runId, a.runId);
    assert.equal(runwaySessionsFor(s.livekit.roomName).length, 1, 'never a second Runway session');

    const got = await call('GET', `/v1/sessions/${s.conversationId}`);
    assert.equal(got.status, 200);
    const state = (await got.json()) as { phase: string; mode: string; runwaySessionId: string; roomName: string; phaseTimes: Record<string, string> };
    assert.equal(state.phase, 'live');
    assert.equal(state.mode, 'direct');
    assert.ok(state.runwaySessionId && state.phaseTimes.live);
    assert.equal((await call('GET', `/v1/sessions/${uniqueId('unknown')}`)).status, 404);

    await eventually('listed as live through visibility', async () => {
      const list = (await (await call('GET', '/v1/sessions?phase=live')).json()) as { sessions: { conversationId: string }[] };
      return list.sessions.some((x) => x.conversationId === s.conversationId) ? true : undefined;
    });

    assert.equal((await call('POST', `/v1/sessions/${s.conversationId}/end`)).status, 202);
    assert.equal((await call('POST', `/v1/sessions/${s.conversationId}/end`)).status, 202, 'idempotent');
    await withTimeout(stack.env.client.workflow.getHandle(a.workflowId).result(), 30_000, 'session to end');
    assert.equal((await call('POST', `/v1/sessions/${s.conversationId}/end`)).status, 202, 'ending an ended session is fine');
    assert.equal((await call('POST', `/v1/sessions/${uniqueId('unknown')}/end`)).status, 404);
    const done = (await (await call('GET', `/v1/sessions/${s.conversationId}`)).json()) as { phase: string; endReason: string };
    assert.equal(done.phase, 'completed');
    assert.equal(done.endReason, 'ended_by_request');
  });

  it('?wait=live answers 202 when the session is not live in time', async () => {
    stack.sim.nextSessions([{ provisioningMs: 60_000 }]);
    const s = session();
    const api = await startApiServer({ config: { apiToken: token, apiPort: 0, livekit: stack.config.livekit }, sessions: stack.sessions, log: createLogger({ level: 'silent' }), port: 0, waitLiveMs: 500 });
    try {
      const res = await fetch(`${api.url}/v1/sessions?wait=live`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify(s) });
      assert.equal(res.status, 202);
      assert.equal(((await res.json()) as { phase: string }).phase, 'waiting_ready');
    } finally {
      await api.close();
      await stack.sessions.endSession(s.conversationId);
      await withTimeout(stack.env.client.workflow.getHandle(sessionWorkflowId(s.conversationId)).result(), 30_000, 'session to end');
    }
  });

  async function webhook(body: object, secret = stack.config.livekit.apiSecret) {
    const raw = JSON.stringify(body);
    const at = new AccessToken(stack.config.livekit.apiKey, secret);
    at.sha256 = createHash('sha256').update(raw).digest('base64');
    return fetch(`${base}/v1/livekit/webhook`, { method: 'POST', headers: { 'content-type': 'application/webhook+json', authorization: await at.toJwt() }, body: raw });
  }

  it('LiveKit webhooks: a bad signature is refused; room_finished and the end user leaving end the session', async () => {
    const badSig = await webhook({ event: 'room_finished', room: { name: 'x' } }, 'not-the-secret-not-the-secret-not-the-secret');
    assert.equal(badSig.status, 401);
    assert.equal((await fetch(`${base}/v1/livekit/webhook`, { method: 'POST', headers: { 'content-type': 'application/webhook+json' }, body: '{}' })).status, 401);

    const s = session();
    await call('POST', '/v1/sessions?wait=live', s);
    await eventually('visible', async () => ((await stack.sessions.listSessions({ running: true, roomName: s.livekit.roomName })[Symbol.asyncIterator]().next()).done ? undefined : true));
    const res = await webhook({ event: 'room_finished', room: { name: s.livekit.roomName } });
    assert.equal(res.status, 200);
    assert.deepEqual(((await res.json()) as { ended: string[] }).ended, [s.conversationId]);
    const done = await withTimeout(stack.env.client.workflow.getHandle(sessionWorkflowId(s.conversationId)).result(), 30_000, 'session to end');
    assert.equal(done.phase, 'completed');

    const u = session({ livekit: { roomName: `room-${uniqueId('u')}`, endUserIdentity: 'user-42' } });
    await call('POST', '/v1/sessions?wait=live', u);
    await eventually('visible', async () => ((await stack.sessions.listSessions({ running: true, roomName: u.livekit.roomName })[Symbol.asyncIterator]().next()).done ? undefined : true));
    const other = await webhook({ event: 'participant_left', room: { name: u.livekit.roomName }, participant: { identity: 'someone-else' } });
    assert.deepEqual(((await other.json()) as { ended: string[] }).ended, []);
    const left = await webhook({ event: 'participant_left', room: { name: u.livekit.roomName }, participant: { identity: 'user-42' } });
    assert.deepEqual(((await left.json()) as { ended: string[] }).ended, [u.conversationId]);
    await withTimeout(stack.env.client.workflow.getHandle(sessionWorkflowId(u.conversationId)).result(), 30_000, 'session to end');
  });

  it('never writes the API token or LiveKit secret to its logs', () => {
    assert.ok(logLines.length > 0, 'the API logged something');
    const all = logLines.join('\n');
    assert.ok(!all.includes(token));
    assert.ok(!all.includes(stack.config.livekit.apiSecret));
  });
});
