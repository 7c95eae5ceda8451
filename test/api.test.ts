// The HTTP API over a real socket, in front of the real stack (Temporal dev server, two LiveKit
// servers, the Runway simulator, in-process workers). Most of this file's sessions send short
// `timing`, which the API takes only because these servers enable allowTimingOverrides (a test of
// its own checks the default refuses it).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { Writable } from 'node:stream';
import { AccessToken } from 'livekit-server-sdk';
import { defaultPayloadConverter } from '@temporalio/common';
import { startApiServer } from '../src/api/server';
import type { SessionsClient } from '../src/client/sessions';
import { embeddedOpenModes } from '../src/dev/open-modes';
import { createLogger } from '../src/log';
import { ApiMetrics, RUNNING_PHASES, visibilityPhaseCounter, type PhaseCounter } from '../src/metrics';
import { AesGcmPayloadCodec } from '../src/secrets/payload-codec';
import { sessionWorkflowId } from '../workflows/shared';
import { startSessionStack, uniqueId, type SessionStack } from './helpers/session-stack';
import { eventually, withTimeout } from './helpers/wait';

const timing = { readyDeadlineSeconds: 20, avatarJoinTimeoutSeconds: 8, monitorIntervalSeconds: 0.5, endCallGraceSeconds: 3, heartbeatTimeoutSeconds: 5 };

type ErrorBody = { error: { code: string; message: string } };
type StartBody = {
  conversationId: string;
  workflowId: string;
  runId: string;
  phase?: string;
  endReason?: string;
  error?: { code: string; message: string };
  live?: { roomName: string; mode: string; avatarIdentity: string; runwaySessionId: string; livekitUrl: string };
};

/** Every SessionsClient method the API calls, by name: a rejected request must add nothing here. */
function countingSessions(inner: SessionsClient, calls: string[]): SessionsClient {
  return new Proxy(inner, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== 'function' || prop === 'constructor') return value;
      return (...args: unknown[]) => {
        calls.push(String(prop));
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}

/** A PhaseCounter that counts its calls (each one a visibility COUNT query against Temporal). */
function countingPhases(inner: PhaseCounter): { countPhase: PhaseCounter; calls: () => number } {
  let n = 0;
  return { countPhase: (phase) => (n++, inner(phase)), calls: () => n };
}

/**
 * Writes `text` and then nothing more, like a stalled or deliberately slow client; resolves with what
 * the server answered and when it closed the socket, or `closedAfterMs: undefined` if it still held
 * it open after `waitMs`.
 */
function stalledRequest(port: number, text: string, waitMs: number): Promise<{ closedAfterMs?: number; response: string }> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    let response = '';
    const socket = net.connect(port, '127.0.0.1', () => socket.write(text));
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ response });
    }, waitMs);
    socket.on('data', (d: Buffer) => (response += d.toString()));
    socket.on('error', (err) => (clearTimeout(timer), reject(err)));
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ closedAfterMs: Date.now() - t0, response });
    });
  });
}

/** A raw HTTP/1.1 request, so the path reaches the server exactly as written (no client normalization). */
function rawRequest(port: number, requestLine: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      const head = Object.entries({ host: 'localhost', connection: 'close', ...headers })
        .map(([k, v]) => `${k}: ${v}`)
        .join('\r\n');
      socket.write(`${requestLine} HTTP/1.1\r\n${head}\r\n\r\n`);
    });
    let buf = '';
    socket.on('data', (d: Buffer) => (buf += d.toString()));
    socket.on('error', reject);
    socket.on('end', () => resolve({ status: Number(buf.split(' ')[1]), body: buf.split('\r\n\r\n').slice(1).join('\r\n\r\n') }));
  });
}

describe('HTTP API', () => {
  let stack: SessionStack;
  let base: string;
  let port: number;
  let close: () => Promise<void>;
  let metricsUrl: string;
  const token = randomBytes(24).toString('hex');
  const codecToken = randomBytes(24).toString('hex');
  const logLines: string[] = [];
  const calls: string[] = [];

  before(async () => {
    stack = await startSessionStack({ sim: { defaults: { provisioningMs: 100, avatarMedia: 'light' } } });
    const sink = new Writable({
      write(chunk, _enc, cb) {
        logLines.push(String(chunk));
        cb();
      },
    });
    const api = await startApiServer({
      config: { apiToken: token, apiPort: 0, livekit: stack.config.livekit },
      sessions: countingSessions(stack.sessions, calls),
      log: createLogger({ level: 'debug', destination: sink }),
      port: 0,
      waitLiveMs: 20_000,
      allowTimingOverrides: true,
      // Counts refreshed every second here, so the test sees a session's phase change soon.
      metrics: new ApiMetrics({ countPhase: visibilityPhaseCounter(stack.env.client), countCacheMs: 1000 }),
      metricsPort: 0,
      codec: { codec: new AesGcmPayloadCodec([stack.config.secretsKey], { allowPlaintext: true }), allowedOrigins: [], token: codecToken },
    });
    base = api.url;
    port = Number(new URL(api.url).port);
    metricsUrl = api.metricsUrl!;
    close = api.close;
  });
  after(async () => {
    await close?.();
    await stack?.stop();
  });

  const auth = { authorization: `Bearer ${token}` };
  const call = (method: string, path: string, body?: unknown, headers: Record<string, string> = auth) =>
    fetch(base + path, {
      method,
      headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
  const session = (over: Record<string, unknown> = {}) => {
    const conversationId = uniqueId('api');
    return {
      conversationId,
      avatar: { type: 'runway-preset', presetId: 'cooking-teacher' },
      livekit: { roomName: `room-${conversationId}` },
      mode: 'direct',
      timing,
      ...over,
    };
  };
  const runwaySessionsFor = (room: string) => stack.sim.sessions().filter((s) => JSON.stringify(s.body).includes(room));
  const ended = (conversationId: string) =>
    withTimeout(stack.env.client.workflow.getHandle(sessionWorkflowId(conversationId)).result(), 30_000, `session ${conversationId} to end`);
  const visible = (room: string) =>
    eventually(`session in ${room} visible`, async () =>
      (await stack.sessions.listSessions({ running: true, roomName: room })[Symbol.asyncIterator]().next()).done ? undefined : true,
    );

  /** Asserts that `fn`'s requests made no call to Temporal (through SessionsClient) and none to Runway. */
  async function reachesNothing(fn: () => Promise<void>): Promise<void> {
    // Requests about sessions that already exist (a monitor's last status poll of a session an
    // earlier test ended, the admission controller reading the account's limit) are not this
    // request's: what a request that reached Runway would add is a new session.
    const runwayRequests = () => stack.sim.requests().filter((r) => r.endpoint === 'create' || r.endpoint === 'unknown');
    const [callsBefore, runwayBefore] = [calls.length, runwayRequests().length];
    await fn();
    assert.deepEqual(calls.slice(callsBefore), [], 'no SessionsClient call (nothing sent to Temporal)');
    assert.deepEqual(runwayRequests().slice(runwayBefore), [], 'no request to Runway');
  }

  it("health needs no token; metrics are on their own port, not the API's; everything under /v1 needs the token, whatever the URL spelling", async () => {
    const health = await call('GET', '/healthz', undefined, {});
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { ok: true });
    assert.equal((await call('GET', '/metrics', undefined, {})).status, 404, 'no /metrics on the API port');
    assert.equal((await call('GET', '/metrics')).status, 404, 'not even with the token');
    assert.notEqual(new URL(metricsUrl).port, String(port));
    const metrics = await fetch(metricsUrl);
    assert.equal(metrics.status, 200);
    assert.match(metrics.headers.get('content-type') ?? '', /text\/plain/);
    assert.match(await metrics.text(), /avatar_api_request_seconds/);
    assert.equal((await fetch(metricsUrl.replace('/metrics', '/v1/sessions'))).status, 404, 'the metrics port serves nothing else');

    await reachesNothing(async () => {
      const none = await call('GET', '/v1/sessions', undefined, {});
      assert.equal(none.status, 401);
      const body = (await none.json()) as ErrorBody;
      assert.equal(body.error.code, 'unauthorized');
      assert.match(body.error.message, /Authorization: Bearer/);
      for (const header of [`Bearer ${token}x`, token, `Basic ${token}`, `Bearer ${token.slice(0, -1)}`, 'Bearer ', `Bearer ${token} extra`]) {
        const res = await call('GET', '/v1/sessions', undefined, { authorization: header });
        assert.equal(res.status, 401, `authorization: ${header.replace(token, '<token>')}`);
        assert.ok(!(await res.text()).includes(token), 'the error body never echoes the token');
      }
      // A valid body with no token: refused before the body is even looked at.
      assert.equal((await call('POST', '/v1/sessions', session(), {})).status, 401);
      assert.equal((await call('POST', `/v1/sessions/${uniqueId('x')}/end`, undefined, { authorization: 'Bearer nope' })).status, 401);
      assert.equal((await call('GET', `/v1/sessions/${uniqueId('x')}`, undefined, {})).status, 401);
      // Percent-encoded paths route to the same handlers: the token check follows the route, not the raw URL.
      for (const path of ['/%761/sessions', '/v1/%73essions', '/%76%31/sessions?phase=live']) {
        const res = await rawRequest(port, `GET ${path}`);
        assert.equal(res.status, 401, `GET ${path} without a token`);
      }
    });
    assert.equal((await call('GET', '/v1/sessions', undefined, { authorization: `bearer ${token}` })).status, 200, 'the scheme is case-insensitive');
    assert.equal((await rawRequest(port, 'GET /%761/sessions', auth)).status, 200);
  });

  it('rejects bad input with 400 naming the field, and nothing reaches Temporal or Runway', async () => {
    const bad = session({ avatar: { type: 'runway-preset', presetId: 'nope' } });
    await reachesNothing(async () => {
      const res = await call('POST', '/v1/sessions', bad);
      assert.equal(res.status, 400);
      const body = (await res.json()) as ErrorBody;
      assert.equal(body.error.code, 'invalid_input');
      assert.match(body.error.message, /avatar\.presetId: unknown preset; use one of: /);
      const cases: [string, string, unknown, RegExp][] = [
        ['POST', '/v1/sessions', { ...session(), livekit: {} }, /livekit\.roomName/],
        ['POST', '/v1/sessions', { ...session(), mode: 'sideways' }, /^mode: /],
        ['POST', '/v1/sessions', { ...session(), maxDurationSeconds: 1.5 }, /maxDurationSeconds: must be a whole number/],
        ['POST', '/v1/sessions', { ...session(), conversationId: 'has space' }, /conversationId: must be 1-128 characters/],
        ['POST', '/v1/sessions', { ...session(), colour: 'blue' }, /unknown field\(s\) colour/],
        ['POST', '/v1/sessions', [session()], /body: send the session as a JSON object/],
        ['POST', '/v1/sessions', 'not json', /body: not valid JSON/],
        ['POST', '/v1/sessions?wait=soon', session(), /query\.wait: the only value is 'live'/],
        ['POST', '/v1/sessions?hurry=1', session(), /query\.hurry: unknown parameter/],
        ['GET', '/v1/sessions/has%20space', undefined, /path\.conversationId: must be 1-128/],
        ['POST', '/v1/sessions/has%20space/end', undefined, /path\.conversationId/],
        ['GET', '/v1/sessions?phase=dancing', undefined, /query\.phase: must be one of waiting_capacity/],
        ['GET', '/v1/sessions?limit=0', undefined, /query\.limit: must be at least 1/],
        ['GET', '/v1/sessions?running=maybe', undefined, /query\.running: must be true or false/],
      ];
      for (const [method, path, body, message] of cases) {
        const r = await call(method, path, body);
        assert.equal(r.status, 400, `${method} ${path} ${JSON.stringify(body)}`);
        const e = (await r.json()) as ErrorBody;
        assert.match(e.error.message, message, `${method} ${path}`);
        assert.ok(e.error.code, 'an error code');
      }
      const noBody = await fetch(`${base}/v1/sessions`, { method: 'POST', headers: auth });
      assert.equal(noBody.status, 400);
      const wrongType = await call('POST', '/v1/sessions', JSON.stringify(session()), { ...auth, 'content-type': 'text/plain' });
      assert.equal(wrongType.status, 415);
      assert.equal(((await wrongType.json()) as ErrorBody).error.code, 'unsupported_media_type');
    });
    assert.equal(await stack.sessions.getSession(bad.conversationId), undefined, 'no workflow was started');
  });

  it('refuses bodies over 64 KiB (413) and answers unknown routes with 404 JSON', async () => {
    const s = session({ personality: 'x'.repeat(70 * 1024) });
    await reachesNothing(async () => {
      const big = await call('POST', '/v1/sessions', s);
      assert.equal(big.status, 413);
      assert.deepEqual(await big.json(), { error: { code: 'payload_too_large', message: 'the body is over 64 KiB' } });
      const webhookBig = await fetch(`${base}/v1/livekit/webhook`, {
        method: 'POST',
        headers: { 'content-type': 'application/webhook+json' },
        body: 'x'.repeat(70 * 1024),
      });
      assert.equal(webhookBig.status, 413);
      for (const [method, path] of [
        ['GET', '/v1/nothing-here'],
        ['DELETE', '/v1/sessions'],
        ['GET', '/nope'],
        ['PUT', '/v1/sessions/abc'],
      ]) {
        const missing = await call(method!, path!);
        assert.equal(missing.status, 404, `${method} ${path}`);
        assert.match(missing.headers.get('content-type') ?? '', /application\/json/);
        const body = (await missing.json()) as ErrorBody;
        assert.equal(body.error.code, 'not_found');
        assert.equal(body.error.message, `no route ${method} ${path}`);
      }
    });
    const justUnder = await call('POST', '/v1/sessions', session({ personality: 'x'.repeat(60 * 1024) }));
    assert.equal(justUnder.status, 400, 'a body under the limit is parsed (and validated: personality is at most 10000 characters)');
    assert.match(((await justUnder.json()) as ErrorBody).error.message, /personality/);
    assert.equal(await stack.sessions.getSession(s.conversationId), undefined);
  });

  it('starts with ?wait=live, is idempotent, reads, lists and ends a session', async () => {
    const s = session();
    const first = await call('POST', '/v1/sessions?wait=live', s);
    assert.equal(first.status, 201);
    const a = (await first.json()) as StartBody;
    assert.equal(a.phase, 'live');
    assert.equal(a.conversationId, s.conversationId);
    assert.equal(a.workflowId, sessionWorkflowId(s.conversationId));
    assert.ok(a.runId);
    assert.equal(a.live!.roomName, s.livekit.roomName);
    assert.equal(a.live!.mode, 'direct');
    assert.equal(a.live!.avatarIdentity, `runway-avatar-${s.conversationId}`);
    assert.equal(a.live!.livekitUrl, stack.config.livekit.publicUrl);

    const again = await call('POST', '/v1/sessions', s);
    assert.equal(again.status, 200);
    assert.deepEqual(await again.json(), { conversationId: s.conversationId, workflowId: a.workflowId, runId: a.runId });
    const againLive = await call('POST', '/v1/sessions?wait=live', s);
    assert.equal(againLive.status, 200);
    assert.equal(((await againLive.json()) as StartBody).live!.runwaySessionId, a.live!.runwaySessionId);
    assert.equal(runwaySessionsFor(s.livekit.roomName).length, 1, 'never a second Runway session');

    const got = await call('GET', `/v1/sessions/${s.conversationId}`);
    assert.equal(got.status, 200);
    const state = (await got.json()) as {
      conversationId: string;
      phase: string;
      mode: string;
      runwaySessionId: string;
      roomName: string;
      phaseTimes: Record<string, string>;
      endReason?: string;
      error?: unknown;
    };
    assert.equal(state.conversationId, s.conversationId);
    assert.equal(state.phase, 'live');
    assert.equal(state.mode, 'direct');
    assert.equal(state.roomName, s.livekit.roomName);
    assert.equal(state.runwaySessionId, a.live!.runwaySessionId);
    assert.ok(state.phaseTimes.creating && state.phaseTimes.live);
    assert.equal(state.endReason, undefined);
    assert.equal(state.error, undefined);
    const unknown = await call('GET', `/v1/sessions/${uniqueId('unknown')}`);
    assert.equal(unknown.status, 404);
    assert.equal(((await unknown.json()) as ErrorBody).error.code, 'not_found');

    type List = { sessions: { conversationId: string; workflowId: string; status: string; phase: string; roomName: string }[] };
    const listed = await eventually('listed as live through visibility', async () => {
      const list = (await (await call('GET', '/v1/sessions?phase=live')).json()) as List;
      return list.sessions.find((x) => x.conversationId === s.conversationId);
    });
    assert.deepEqual([listed.status, listed.phase, listed.roomName, listed.workflowId], ['RUNNING', 'live', s.livekit.roomName, a.workflowId]);
    const byRoom = (await (await call('GET', `/v1/sessions?room=${encodeURIComponent(s.livekit.roomName)}&running=true`)).json()) as List;
    assert.deepEqual(
      byRoom.sessions.map((x) => x.conversationId),
      [s.conversationId],
    );
    const notLive = (await (await call('GET', '/v1/sessions?phase=creating')).json()) as List;
    assert.ok(!notLive.sessions.some((x) => x.conversationId === s.conversationId));
    const limited = (await (await call('GET', '/v1/sessions?limit=1')).json()) as List;
    assert.equal(limited.sessions.length, 1);

    const endRes = await call('POST', `/v1/sessions/${s.conversationId}/end`);
    assert.equal(endRes.status, 202);
    assert.deepEqual(await endRes.json(), { conversationId: s.conversationId, ending: true });
    assert.equal((await call('POST', `/v1/sessions/${s.conversationId}/end`)).status, 202, 'idempotent');
    await ended(s.conversationId);
    assert.equal((await call('POST', `/v1/sessions/${s.conversationId}/end`)).status, 202, 'ending an ended session is fine');
    const unknownEnd = await call('POST', `/v1/sessions/${uniqueId('unknown')}/end`);
    assert.equal(unknownEnd.status, 404);
    assert.equal(((await unknownEnd.json()) as ErrorBody).error.code, 'not_found');
    const done = (await (await call('GET', `/v1/sessions/${s.conversationId}`)).json()) as {
      phase: string;
      endReason: string;
      phaseTimes: Record<string, string>;
    };
    assert.equal(done.phase, 'completed');
    assert.equal(done.endReason, 'ended_by_request');
    assert.ok(done.phaseTimes.completed);
    assert.equal(runwaySessionsFor(s.livekit.roomName).length, 1);
  });

  it('concurrent starts of one conversation: one 201, the rest 200, one run, exactly one Runway session', async () => {
    const s = session();
    const answers = await Promise.all([1, 2, 3].map(() => call('POST', '/v1/sessions?wait=live', s)));
    const bodies = (await Promise.all(answers.map((r) => r.json()))) as StartBody[];
    assert.deepEqual(answers.map((r) => r.status).sort(), [200, 200, 201]);
    assert.equal(new Set(bodies.map((b) => b.runId)).size, 1, 'the same run');
    assert.ok(bodies.every((b) => b.phase === 'live' && b.live?.runwaySessionId === bodies[0]!.live!.runwaySessionId));
    assert.equal(runwaySessionsFor(s.livekit.roomName).length, 1, 'exactly one Runway session');
    await call('POST', `/v1/sessions/${s.conversationId}/end`);
    await ended(s.conversationId);
  });

  it('?wait=live answers 202 with the phase when the session is not live in time', async () => {
    stack.sim.nextSessions([{ provisioningMs: 60_000 }]);
    const s = session();
    const api = await startApiServer({
      config: { apiToken: token, apiPort: 0, livekit: stack.config.livekit },
      sessions: stack.sessions,
      log: createLogger({ level: 'silent' }),
      port: 0,
      waitLiveMs: 500,
      allowTimingOverrides: true,
    });
    try {
      const t0 = Date.now();
      const res = await fetch(`${api.url}/v1/sessions?wait=live`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json' },
        body: JSON.stringify(s),
      });
      assert.equal(res.status, 202);
      const body = (await res.json()) as StartBody;
      console.log(`?wait=live answered 202 after ${Date.now() - t0} ms (waitLiveMs 500)`);
      // Where it is after 500 ms depends on the machine's load; it is provisioning (60 s), never live.
      assert.ok(['waiting_capacity', 'creating', 'waiting_ready'].includes(body.phase ?? ''), `phase ${body.phase}`);
      assert.equal(body.workflowId, sessionWorkflowId(s.conversationId));
      assert.equal(body.live, undefined);
    } finally {
      await api.close();
      await stack.sessions.endSession(s.conversationId);
      await ended(s.conversationId);
    }
  });

  it('?wait=live answers with the error when the session fails instead of going live', async () => {
    stack.sim.nextSessions([{ provisioningMs: 10_000, failAfterMs: 50, failureCode: 'INTERNAL.GPU_UNAVAILABLE' }]);
    const s = session({ timing: { ...timing, maxCreateAttempts: 1 } });
    const res = await call('POST', '/v1/sessions?wait=live', s);
    assert.equal(res.status, 201);
    const body = (await res.json()) as StartBody;
    assert.notEqual(body.phase, 'live');
    assert.equal(body.live, undefined);
    assert.ok(body.error?.code, `an error code: ${JSON.stringify(body)}`);
    assert.match(body.error.message, /GPU_UNAVAILABLE/);
    await ended(s.conversationId).catch(() => undefined);
    const state = (await (await call('GET', `/v1/sessions/${s.conversationId}`)).json()) as { phase: string; error: { code: string; message: string } };
    assert.equal(state.phase, 'failed');
    assert.equal(state.error.code, body.error.code);
  });

  async function webhook(body: object | string, opts: { secret?: string; signedBody?: string; contentType?: string } = {}) {
    const raw = typeof body === 'string' ? body : JSON.stringify(body);
    // What LiveKit's webhook sender does: a JWT signed with the API secret whose sha256 claim is the body's hash.
    const at = new AccessToken(stack.config.livekit.apiKey, opts.secret ?? stack.config.livekit.apiSecret);
    at.sha256 = createHash('sha256')
      .update(opts.signedBody ?? raw)
      .digest('base64');
    return fetch(`${base}/v1/livekit/webhook`, {
      method: 'POST',
      headers: { 'content-type': opts.contentType ?? 'application/webhook+json', authorization: await at.toJwt() },
      body: raw,
    });
  }

  it('LiveKit webhooks: bad signatures are refused; room_finished and the end user leaving end the session', async () => {
    await reachesNothing(async () => {
      const badSig = await webhook({ event: 'room_finished', room: { name: 'x' } }, { secret: 'not-the-secret-not-the-secret-not-the-secret' });
      assert.equal(badSig.status, 401);
      const badBody = (await badSig.json()) as ErrorBody;
      assert.equal(badBody.error.code, 'bad_signature');
      assert.ok(!JSON.stringify(badBody).includes(stack.config.livekit.apiSecret));
      const tampered = await webhook(
        { event: 'room_finished', room: { name: 'someone-elses-room' } },
        { signedBody: JSON.stringify({ event: 'room_started', room: { name: 'x' } }) },
      );
      assert.equal(tampered.status, 401, 'the signature covers the body');
      const unsigned = await fetch(`${base}/v1/livekit/webhook`, { method: 'POST', headers: { 'content-type': 'application/webhook+json' }, body: '{}' });
      assert.equal(unsigned.status, 401);
      const bearer = await fetch(`${base}/v1/livekit/webhook`, {
        method: 'POST',
        headers: { 'content-type': 'application/webhook+json', ...auth },
        body: '{"event":"room_finished","room":{"name":"x"}}',
      });
      assert.equal(bearer.status, 401, 'the API token is not a webhook signature');
    });

    const s = session();
    assert.equal((await call('POST', '/v1/sessions?wait=live', s)).status, 201);
    await visible(s.livekit.roomName);
    const unrelated = await webhook({ event: 'participant_joined', room: { name: s.livekit.roomName }, participant: { identity: 'x' } });
    assert.equal(unrelated.status, 200);
    assert.deepEqual(await unrelated.json(), { ok: true, ended: [] });
    const otherRoom = await webhook({ event: 'room_finished', room: { name: `room-${uniqueId('nobody')}` } });
    assert.deepEqual(((await otherRoom.json()) as { ended: string[] }).ended, []);
    assert.equal((await stack.sessions.getSession(s.conversationId))?.phase, 'live', 'still live after unrelated webhooks');

    const res = await webhook({ event: 'room_finished', room: { name: s.livekit.roomName } });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { ok: true, ended: [s.conversationId] });
    const done = await ended(s.conversationId);
    assert.equal(done.phase, 'completed');

    // participant_left of the input's livekit.endUserIdentity (sent as plain application/json this time).
    const u = session({ livekit: { roomName: `room-${uniqueId('u')}`, endUserIdentity: 'user-42' } });
    assert.equal((await call('POST', '/v1/sessions?wait=live', u)).status, 201);
    await visible(u.livekit.roomName);
    const other = await webhook(
      { event: 'participant_left', room: { name: u.livekit.roomName }, participant: { identity: 'someone-else' } },
      { contentType: 'application/json' },
    );
    assert.equal(other.status, 200);
    assert.deepEqual(((await other.json()) as { ended: string[] }).ended, []);
    const left = await webhook(
      { event: 'participant_left', room: { name: u.livekit.roomName }, participant: { identity: 'user-42' } },
      { contentType: 'application/json' },
    );
    assert.equal(left.status, 200);
    assert.deepEqual(((await left.json()) as { ended: string[] }).ended, [u.conversationId]);
    await ended(u.conversationId);
    assert.equal(runwaySessionsFor(u.livekit.roomName).length, 1);
  });

  it('/metrics: request latency by route and status, sessions started, wait outcomes, webhooks, running sessions by phase', async () => {
    const s = session();
    assert.equal((await call('POST', '/v1/sessions?wait=live', s)).status, 201);
    const scrape = async () => (await fetch(metricsUrl)).text();
    const value = (text: string, series: string) => {
      const line = text.split('\n').find((l) => l.startsWith(`${series} `));
      return line === undefined ? undefined : Number(line.slice(series.length + 1));
    };
    const text = await scrape();
    assert.ok((value(text, 'avatar_sessions_started_total{mode="direct"}') ?? 0) >= 4, 'every session this file started');
    assert.ok((value(text, 'avatar_api_request_seconds_count{route="/v1/sessions",method="POST",status="201"}') ?? 0) >= 4);
    assert.ok((value(text, 'avatar_api_request_seconds_count{route="/v1/sessions",method="GET",status="401"}') ?? 0) >= 1);
    assert.ok((value(text, 'avatar_api_request_seconds_count{route="(unknown)",method="GET",status="404"}') ?? 0) >= 1);
    assert.ok((value(text, 'avatar_api_wait_live_total{outcome="live"}') ?? 0) >= 4);
    assert.equal(value(text, 'avatar_api_wait_live_total{outcome="not_live"}'), 1);
    assert.ok((value(text, 'avatar_livekit_webhooks_total{event="room_finished",acted="yes"}') ?? 0) >= 1);
    assert.ok((value(text, 'avatar_livekit_webhooks_total{event="participant_left",acted="no"}') ?? 0) >= 1);
    await eventually('the live session counted by phase', async () =>
      (value(await scrape(), 'avatar_sessions_running{phase="live"}') ?? 0) >= 1 ? true : undefined,
    );
    await call('POST', `/v1/sessions/${s.conversationId}/end`);
    await ended(s.conversationId);
    await eventually('no live session counted once it ended', async () =>
      value(await scrape(), 'avatar_sessions_running{phase="live"}') === 0 ? true : undefined,
    );
    assert.equal(value(await scrape(), 'avatar_sessions_visibility_errors_total'), 0);
  });

  it('viewer-token exists only with the demo page: the production API mints no token that hears the room', async () => {
    const s = session();
    assert.equal((await call('POST', '/v1/sessions?wait=live', s)).status, 201);
    const none = await call('POST', `/v1/sessions/${s.conversationId}/viewer-token`);
    assert.equal(none.status, 404, 'no such route without the demo, even with the API token and a live session');
    assert.equal(((await none.json()) as ErrorBody).error.code, 'not_found');
    assert.equal((await call('POST', `/v1/sessions/${s.conversationId}/viewer-token`, undefined, {})).status, 404);
    assert.equal((await call('GET', '/demo/', undefined, {})).status, 404, 'no demo page either');
    // The demo's open mode is off here: a browser-looking request still needs the token.
    assert.equal((await call('GET', '/v1/sessions', undefined, { 'sec-fetch-site': 'same-origin', 'x-avatar-demo': '1' })).status, 401);

    // With the demo (token mode): a subscribe-only token for a live session, 404 unknown, 409 not live, never logged.
    const demoLog: string[] = [];
    const demo = await startApiServer({
      config: { apiToken: token, apiPort: 0, livekit: stack.config.livekit },
      sessions: stack.sessions,
      port: 0,
      demo: { open: false },
      log: createLogger({
        level: 'debug',
        destination: new Writable({
          write(c, _e, cb) {
            demoLog.push(String(c));
            cb();
          },
        }),
      }),
    });
    try {
      const demoCall = (p: string, headers: Record<string, string> = auth) => fetch(demo.url + p, { method: 'POST', headers });
      assert.equal((await demoCall(`/v1/sessions/${uniqueId('x')}/viewer-token`, {})).status, 401);
      assert.equal((await demoCall(`/v1/sessions/${uniqueId('x')}/viewer-token`)).status, 404);
      const res = await demoCall(`/v1/sessions/${s.conversationId}/viewer-token`);
      assert.equal(res.status, 200);
      const body = (await res.json()) as { url: string; token: string; roomName: string };
      assert.equal(body.url, stack.config.livekit.publicUrl);
      assert.equal(body.roomName, s.livekit.roomName);
      const claims = JSON.parse(Buffer.from(body.token.split('.')[1]!, 'base64url').toString()) as { sub: string; video: Record<string, unknown> };
      assert.match(claims.sub, /^viewer-/);
      assert.deepEqual(claims.video, {
        roomJoin: true,
        room: s.livekit.roomName,
        canSubscribe: true,
        canPublish: false,
        canPublishData: false,
        canUpdateOwnMetadata: false,
      });
      await call('POST', `/v1/sessions/${s.conversationId}/end`);
      await ended(s.conversationId);
      assert.equal((await demoCall(`/v1/sessions/${s.conversationId}/viewer-token`)).status, 409);
      assert.ok(!demoLog.join('\n').includes(body.token.split('.')[2]!), 'the viewer token is not logged');
    } finally {
      await demo.close();
    }
  });

  it('timing is operator configuration: without allowTimingOverrides the API answers 400 naming the field, and nothing reaches Temporal or Runway', async () => {
    const strict = await startApiServer({
      config: { apiToken: token, apiPort: 0, livekit: stack.config.livekit },
      sessions: countingSessions(stack.sessions, calls),
      log: createLogger({ level: 'silent' }),
      port: 0,
    });
    try {
      const abusive = [{ monitorIntervalSeconds: 0.001 }, { sessionCapSeconds: 1, renewalLeadSeconds: 1 }, { avatarJoinTimeoutSeconds: 600 }, {}];
      await reachesNothing(async () => {
        for (const t of abusive) {
          const res = await fetch(`${strict.url}/v1/sessions?wait=live`, {
            method: 'POST',
            headers: { ...auth, 'content-type': 'application/json' },
            body: JSON.stringify(session({ timing: t })),
          });
          assert.equal(res.status, 400, JSON.stringify(t));
          const body = (await res.json()) as ErrorBody;
          assert.equal(body.error.code, 'invalid_input');
          assert.match(body.error.message, /^timing: not accepted by this API/);
        }
      });
      // The same request without `timing` starts (the operator's timing applies).
      const { timing: _timing, ...plain } = session();
      const res = await fetch(`${strict.url}/v1/sessions`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json' },
        body: JSON.stringify(plain),
      });
      assert.equal(res.status, 201);
      await stack.sessions.endSession(plain.conversationId);
      await ended(plain.conversationId);
    } finally {
      await strict.close();
    }
  });

  it('room names are plain (no quotes, spaces, control characters); identities carry no control or formatting characters', async () => {
    await reachesNothing(async () => {
      const cases: [Record<string, unknown>, RegExp][] = [
        [{ livekit: { roomName: "a'b" } }, /livekit\.roomName: must be 1-256 characters of A-Z a-z 0-9/],
        [{ livekit: { roomName: 'a b' } }, /livekit\.roomName/],
        [{ livekit: { roomName: 'room\u001b[2J' } }, /livekit\.roomName/],
        [
          { livekit: { roomName: 'ok-room', agentIdentity: 'agent\u001b]0;pwned\u0007' } },
          /livekit\.agentIdentity: must not contain control or invisible formatting characters/,
        ],
        [{ livekit: { roomName: 'ok-room', endUserIdentity: 'user\u202egnp.exe' } }, /livekit\.endUserIdentity: must not contain control/],
        [{ livekit: { roomName: 'ok-room', listenTo: ['fine', 'line\nbreak'] } }, /livekit\.listenTo\.1: must not contain control/],
        [{ avatar: { type: 'custom', avatarId: 'a\u0000b' } }, /avatar\.avatarId: must not contain control/],
      ];
      for (const [over, message] of cases) {
        const res = await call('POST', '/v1/sessions', session(over));
        assert.equal(res.status, 400, JSON.stringify(over));
        assert.match(((await res.json()) as ErrorBody).error.message, message);
      }
      const listed = await call('GET', `/v1/sessions?room=${encodeURIComponent("a'b")}`);
      assert.equal(listed.status, 400);
      assert.match(((await listed.json()) as ErrorBody).error.message, /query\.room: must be 1-256 characters/);
    });
    const fine = session({ livekit: { roomName: `Room_1.x:y@z=w+${uniqueId('v')}`, agentIdentity: 'agent-1', endUserIdentity: 'Ünïcode user@example.com' } });
    assert.equal((await call('POST', '/v1/sessions', fine)).status, 201, 'ordinary names and identities are fine');
    await call('POST', `/v1/sessions/${fine.conversationId}/end`);
    await ended(fine.conversationId);
  });

  it('LiveKit webhooks: a signed event is acted on once (a replay does not end the next session in the room); a room name is compared exactly', async () => {
    const room = `room-${uniqueId('wh')}`;
    const signed = async (body: object) => {
      const raw = JSON.stringify(body);
      const at = new AccessToken(stack.config.livekit.apiKey, stack.config.livekit.apiSecret);
      at.sha256 = createHash('sha256').update(raw).digest('base64');
      return { raw, authorization: await at.toJwt() };
    };
    const send = async (req: { raw: string; authorization: string }) => {
      const res = await fetch(`${base}/v1/livekit/webhook`, {
        method: 'POST',
        headers: { 'content-type': 'application/webhook+json', authorization: req.authorization },
        body: req.raw,
      });
      assert.equal(res.status, 200);
      return (await res.json()) as { ok: boolean; ended: string[]; duplicate?: boolean };
    };

    const first = session({ livekit: { roomName: room } });
    assert.equal((await call('POST', '/v1/sessions?wait=live', first)).status, 201);
    await visible(room);
    // `room'-wh-…` would be queried as `room-wh-…` (visibility queries cannot hold the quote): no session of that room ends.
    const quoted = await send(await signed({ id: `EV_${uniqueId('q')}`, event: 'room_finished', room: { name: room.replace('room-', "room'-") } }));
    assert.deepEqual(quoted.ended, []);
    assert.equal((await stack.sessions.getSession(first.conversationId))?.phase, 'live');

    const finished = await signed({ id: `EV_${uniqueId('f')}`, event: 'room_finished', room: { name: room } });
    assert.deepEqual((await send(finished)).ended, [first.conversationId]);
    await ended(first.conversationId);

    // The room is used again; someone who captured the room_finished above sends it again, signature and all.
    const second = session({ livekit: { roomName: room } });
    assert.equal((await call('POST', '/v1/sessions?wait=live', second)).status, 201);
    await visible(room);
    const replay = await send(finished);
    assert.deepEqual(replay, { ok: true, ended: [], duplicate: true });
    assert.equal((await stack.sessions.getSession(second.conversationId))?.phase, 'live', 'the replay ended nothing');
    // An event without an id is recognised by its body.
    const noId = await signed({ event: 'participant_joined', room: { name: room }, participant: { identity: `p-${uniqueId('p')}` } });
    assert.equal((await send(noId)).duplicate, undefined);
    assert.equal((await send(noId)).duplicate, true);

    await call('POST', `/v1/sessions/${second.conversationId}/end`);
    await ended(second.conversationId);
  });

  it('a client that stalls while sending its request gets 408 and the socket closes (requestTimeoutMs)', async () => {
    const timed = await startApiServer({
      config: { apiToken: token, apiPort: 0, livekit: stack.config.livekit },
      sessions: stack.sessions,
      log: createLogger({ level: 'silent' }),
      port: 0,
      requestTimeoutMs: 1000,
    });
    try {
      const p = Number(new URL(timed.url).port);
      const [headersOnly, bodyTrickle] = await Promise.all([
        stalledRequest(p, 'GET /v1/sessions HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer x', 8000),
        stalledRequest(
          p,
          `POST /v1/sessions HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 1000\r\nauthorization: Bearer ${token}\r\n\r\n{"conv`,
          8000,
        ),
      ]);
      for (const [what, r] of [
        ['unfinished headers', headersOnly],
        ['an unfinished body', bodyTrickle],
      ] as const) {
        // Closed by the server while the client still stalled (8 s), with its 408: the server's own deadline.
        assert.ok(r.closedAfterMs !== undefined, `${what}: the server closed the connection (${r.closedAfterMs} ms)`);
        assert.match(r.response, /^HTTP\/1\.1 408/, what);
      }
      // A long ?wait=live is not a slow request: the request itself arrived at once.
      assert.equal((await fetch(`${timed.url}/healthz`)).status, 200);
    } finally {
      await timed.close();
    }
  });

  it("/codec takes the operator's codec token only: the API token cannot decrypt history, the codec token cannot drive sessions; no token configured, no /codec", async () => {
    const wire = (value: unknown) => {
      const p = defaultPayloadConverter.toPayload(value);
      return {
        metadata: Object.fromEntries(Object.entries(p.metadata!).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
        data: Buffer.from(p.data!).toString('base64'),
      };
    };
    const codec = (op: string, authorization: string | undefined, body: unknown, url = base) =>
      fetch(`${url}/codec/${op}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) },
        body: JSON.stringify(body),
      });
    const encoded = await codec('encode', `Bearer ${codecToken}`, { payloads: [wire({ personality: 'private' })] });
    assert.equal(encoded.status, 200);
    const secretPayloads = await encoded.json();
    assert.equal((await codec('decode', `Bearer ${token}`, secretPayloads)).status, 401, 'the API token does not decrypt history');
    assert.equal((await codec('decode', undefined, secretPayloads)).status, 401);
    const decoded = await codec('decode', `Bearer ${codecToken}`, secretPayloads);
    assert.equal(decoded.status, 200);
    assert.deepEqual(JSON.parse(Buffer.from(((await decoded.json()) as { payloads: { data: string }[] }).payloads[0]!.data, 'base64').toString()), {
      personality: 'private',
    });
    assert.equal(
      (await call('GET', '/v1/sessions', undefined, { authorization: `Bearer ${codecToken}` })).status,
      401,
      'the codec token does not drive sessions',
    );

    const noCodec = await startApiServer({
      config: { apiToken: token, apiPort: 0, livekit: stack.config.livekit },
      sessions: stack.sessions,
      log: createLogger({ level: 'silent' }),
      port: 0,
    });
    try {
      assert.equal((await codec('decode', `Bearer ${token}`, secretPayloads, noCodec.url)).status, 404);
      assert.equal((await codec('decode', `Bearer ${codecToken}`, secretPayloads, noCodec.url)).status, 404);
    } finally {
      await noCodec.close();
    }
  });

  it('metrics: however often and however many scrape, the running-session counts cost one set of visibility queries per period', async () => {
    const counter = countingPhases(visibilityPhaseCounter(stack.env.client));
    const api = await startApiServer({
      config: { apiToken: token, apiPort: 0, livekit: stack.config.livekit },
      sessions: stack.sessions,
      log: createLogger({ level: 'silent' }),
      port: 0,
      metrics: new ApiMetrics({ countPhase: counter.countPhase }),
      metricsPort: 0,
    });
    try {
      assert.ok(api.metricsUrl, 'metrics served');
      const scrape = async () => {
        const res = await fetch(api.metricsUrl!);
        assert.equal(res.status, 200);
        return res.text();
      };
      const texts = await Promise.all(Array.from({ length: 20 }, scrape)); // at once: one refresh in flight
      for (let i = 0; i < 20; i++) texts.push(await scrape()); // one after another: cached
      assert.equal(counter.calls(), RUNNING_PHASES.length, `${counter.calls()} visibility queries for 40 scrapes`);
      assert.ok(
        texts.every((t) => /avatar_sessions_running\{phase="live"\} \d+/.test(t)),
        'every scrape has the counts',
      );
    } finally {
      await api.close();
    }
  });

  it('open demo mode: only on a fully embedded stack, and never for a request that came through a proxy', async () => {
    assert.deepEqual(embeddedOpenModes({}), { fullyEmbedded: true, demoOpen: true, codecOpen: true });
    for (const real of [{ LIVEKIT_URL: 'wss://lk.example.test' }, { RUNWAYML_API_SECRET: 'key_x' }, { TEMPORAL_ADDRESS: 'temporal.example:7233' }]) {
      assert.deepEqual(embeddedOpenModes(real), { fullyEmbedded: false, demoOpen: false, codecOpen: false }, JSON.stringify(real));
    }
    assert.deepEqual(embeddedOpenModes({ SESSION_API_TOKEN: token, SESSION_CODEC_TOKEN: codecToken }), {
      fullyEmbedded: true,
      demoOpen: false,
      codecOpen: false,
    });

    const open = await startApiServer({
      config: { apiToken: token, apiPort: 0, livekit: stack.config.livekit },
      sessions: stack.sessions,
      log: createLogger({ level: 'silent' }),
      port: 0,
      demo: { open: true },
    });
    try {
      const browserish = { 'sec-fetch-site': 'same-origin', 'x-avatar-demo': '1' };
      const list = (headers: Record<string, string>) => fetch(`${open.url}/v1/sessions?limit=1`, { headers });
      assert.equal((await list(browserish)).status, 200, 'the page itself, from this machine');
      for (const proxied of [
        { 'x-forwarded-for': '203.0.113.9' },
        { 'x-forwarded-host': '127.0.0.1' },
        { forwarded: 'for=203.0.113.9;proto=https' },
        { via: '1.1 nginx' },
        { 'x-real-ip': '203.0.113.9' },
      ] as Record<string, string>[]) {
        assert.equal((await list({ ...browserish, ...proxied })).status, 401, `through a proxy: ${JSON.stringify(proxied)}`);
      }
    } finally {
      await open.close();
    }
  });

  it('never writes the API token or LiveKit secret to its logs, even when a client sends it in the URL', async () => {
    assert.equal((await call('GET', `/v1/sessions?token=${token}`)).status, 400);
    assert.equal((await call('GET', `/v1/sessions/${token}`, undefined, { authorization: `Bearer ${token}0` })).status, 401);
    assert.equal((await call('GET', `/nowhere/${token}`)).status, 404);
    const requestLines = logLines.filter((l) => l.includes('"msg":"request"'));
    assert.ok(requestLines.length > 10, 'the API logged its requests');
    assert.ok(requestLines.some((l) => l.includes('"route":"/v1/sessions/:conversationId"') && l.includes('"status":401')));
    const all = logLines.join('\n');
    assert.ok(!all.includes(token), 'no API token in the logs');
    assert.ok(!all.includes(stack.config.livekit.apiSecret), 'no LiveKit secret in the logs');
    assert.ok(!/authorization/i.test(all), 'no authorization header in the logs');
  });
});
