// The Runway HTTP client against undici's MockAgent: every endpoint's request (method, path, headers,
// body) and answer, every error kind, and that no secret reaches an error's message, stack or JSON.
import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { MockAgent, errors as undiciErrors } from 'undici';
import type { MockInterceptor } from 'undici/types/mock-interceptor';
import {
  RUNWAY_MAX_DURATION,
  RUNWAY_PRESET_IDS,
  RunwayClient,
  RunwayError,
  TERMINAL_STATUSES,
  isRunwayError,
  isTerminalStatus,
  parseRetryAfter,
  type RealtimeSessionCreateParams,
  type RunwayErrorJSON,
  type RunwayErrorKind,
  type RunwayRequestInfo,
} from '../src/runway';

const ORIGIN = 'https://runway.test';
// Opaque values that match none of redact.ts's patterns: only registerSecret() can hide them.
const API_KEY = 'rw-api-secret-0123456789abcdef';
const SESSION_KEY = 'rw-session-key-fedcba9876543210';
const CONSUME_TOKEN = 'lk-room-token-opaque-1122334455';
const INTEGRATION_TOKEN = 'customer-lk-token-5566778899';

let agents: MockAgent[] = [];
afterEach(async () => {
  await Promise.all(agents.map((a) => a.close()));
  agents = [];
});

function setup(opts: { timeoutMs?: number } = {}) {
  const agent = new MockAgent();
  agent.disableNetConnect();
  agents.push(agent);
  const calls: RunwayRequestInfo[] = [];
  const client = new RunwayClient({ apiKey: API_KEY, baseUrl: `${ORIGIN}/`, dispatcher: agent, timeoutMs: opts.timeoutMs, onRequest: (i) => calls.push(i) });
  return { agent, pool: agent.get(ORIGIN), client, calls };
}

/** Replies with `status`/`data` and records what the client sent. */
function capture(status: number, data?: object | string, headers?: Record<string, string>) {
  const seen: { method?: string; path?: string; headers: Record<string, string>; body?: string } = { headers: {} };
  const reply: MockInterceptor.MockReplyOptionsCallback = (o) => {
    seen.method = o.method;
    seen.path = o.path;
    seen.headers = Object.fromEntries(Object.entries(o.headers ?? {}).map(([k, v]) => [k.toLowerCase(), String(v)]));
    seen.body = typeof o.body === 'string' ? o.body : undefined;
    return { statusCode: status, data: data ?? '', responseOptions: { headers } };
  };
  return { seen, reply };
}

function assertNoSecrets(err: RunwayError): void {
  const texts = [err.message, err.stack ?? '', err.runwayMessage ?? '', JSON.stringify(err), String(err)];
  for (const secret of [API_KEY, SESSION_KEY, CONSUME_TOKEN, INTEGRATION_TOKEN]) {
    for (const t of texts) assert.ok(!t.includes(secret), `secret leaked into ${JSON.stringify(t)}`);
  }
}

/** Awaits a rejection, checks it is a RunwayError with the expected fields and no secrets. */
async function expectError(
  p: Promise<unknown>,
  want: { kind: RunwayErrorKind; status?: number; retryable?: boolean; retryAfterMs?: number },
): Promise<RunwayError> {
  const err = await p.then(
    () => assert.fail(`expected a ${want.kind} RunwayError`),
    (e: unknown) => e,
  );
  assert.ok(isRunwayError(err), `not a RunwayError: ${String(err)}`);
  assert.equal(err.kind, want.kind, err.message);
  if ('status' in want) assert.equal(err.status, want.status);
  if ('retryable' in want) assert.equal(err.retryable, want.retryable, `retryable of ${err.message}`);
  if ('retryAfterMs' in want) assert.equal(err.retryAfterMs, want.retryAfterMs);
  assertNoSecrets(err);
  return err;
}

const createParams: RealtimeSessionCreateParams = {
  model: 'gwm1_avatars',
  avatar: { type: 'runway-preset', presetId: 'cooking-teacher' },
  integration: { type: 'livekit', url: 'wss://lk.example.com', token: INTEGRATION_TOKEN, roomName: 'room-1', agentIdentity: 'agent-1' },
  maxDuration: 120,
  personality: 'Cheerful',
  startScript: 'Hello!',
  tools: [
    {
      type: 'backend_rpc',
      name: 'lookup_order',
      description: 'Looks up an order',
      parameters: [{ type: 'string', name: 'orderId', description: 'id', required: true }],
      timeoutSeconds: 5,
    },
  ],
};

const CREATED = '2025-01-01T00:00:00.000Z';
const STATUSES = [
  { id: 's1', createdAt: CREATED, status: 'NOT_READY', queued: true },
  { id: 's1', createdAt: CREATED, status: 'READY', expiresAt: '2025-01-01T00:01:00.000Z', sessionKey: SESSION_KEY },
  { id: 's1', createdAt: CREATED, status: 'RUNNING' },
  { id: 's1', createdAt: CREATED, status: 'COMPLETED', duration: 42 },
  { id: 's1', createdAt: CREATED, status: 'FAILED', failure: 'Something broke', failureCode: 'INTERNAL' },
  { id: 's1', createdAt: CREATED, status: 'CANCELLED' },
] as const;

describe('RunwayClient: endpoints', () => {
  it('createSession POSTs the body with the API key and version header, returns {id}', async () => {
    const { pool, client, calls, agent } = setup();
    const { seen, reply } = capture(200, { id: 'sess-1' });
    pool.intercept({ path: '/v1/realtime_sessions', method: 'POST' }).reply(reply);
    assert.deepEqual(await client.createSession(createParams), { id: 'sess-1' });
    assert.equal(seen.method, 'POST');
    assert.equal(seen.headers.authorization, `Bearer ${API_KEY}`);
    assert.equal(seen.headers['x-runway-version'], '2024-11-06');
    assert.equal(seen.headers['content-type'], 'application/json');
    assert.deepEqual(JSON.parse(seen.body!), createParams);
    assert.equal(calls.length, 1);
    assert.deepEqual({ ...calls[0], durationMs: 0 }, { endpoint: 'create', method: 'POST', status: 200, durationMs: 0, errorKind: undefined });
    agent.assertNoPendingInterceptors();
  });

  it('getSession GETs /v1/realtime_sessions/{id} (encoded) and parses all six status shapes', async () => {
    const { pool, client } = setup();
    for (const body of STATUSES) {
      const { seen, reply } = capture(200, body);
      pool.intercept({ path: '/v1/realtime_sessions/a%2Fb', method: 'GET' }).reply(reply);
      assert.deepEqual(await client.getSession('a/b'), body);
      assert.equal(seen.headers.authorization, `Bearer ${API_KEY}`);
      assert.equal(seen.headers['x-runway-version'], '2024-11-06');
    }
  });

  it('consumeSession POSTs with the session key as bearer (not the API key) and JSON content type', async () => {
    const { pool, client, agent } = setup();
    const creds = { url: 'wss://runway-lk.example.com', token: CONSUME_TOKEN, roomName: 'runway-room' };
    const { seen, reply } = capture(200, creds);
    pool.intercept({ path: '/v1/realtime_sessions/s1/consume', method: 'POST' }).reply(reply);
    assert.deepEqual(await client.consumeSession('s1', SESSION_KEY), creds);
    assert.equal(seen.headers.authorization, `Bearer ${SESSION_KEY}`);
    assert.equal(seen.headers['content-type'], 'application/json');
    assert.ok(!JSON.stringify(seen.headers).includes(API_KEY), 'the API key must not be sent to consume');
    agent.assertNoPendingInterceptors();
  });

  it('cancelSession DELETEs and accepts 204', async () => {
    const { pool, client, calls } = setup();
    const { seen, reply } = capture(204);
    pool.intercept({ path: '/v1/realtime_sessions/s1', method: 'DELETE' }).reply(reply);
    assert.equal(await client.cancelSession('s1'), undefined);
    assert.equal(seen.headers.authorization, `Bearer ${API_KEY}`);
    assert.equal(calls[0]!.status, 204);
  });

  it('connectBackend POSTs with the API key and returns LiveKit credentials', async () => {
    const { pool, client } = setup();
    const creds = { url: 'wss://runway-lk.example.com', token: 'backend-token-abcdef123', roomName: 'runway-room' };
    const { seen, reply } = capture(200, creds);
    pool.intercept({ path: '/v1/realtime_sessions/s1/connect_backend', method: 'POST' }).reply(reply);
    assert.deepEqual(await client.connectBackend('s1'), creds);
    assert.equal(seen.headers.authorization, `Bearer ${API_KEY}`);
    assert.equal(seen.headers['x-runway-version'], '2024-11-06');
  });

  it('getConversation parses a transcript and defaults absent descriptive fields', async () => {
    const { pool, client } = setup();
    const transcript = [
      { role: 'user', content: 'Hi', timestamp: CREATED },
      {
        role: 'assistant',
        content: null,
        timestamp: null,
        toolCalls: [{ name: 'lookup_order', arguments: { orderId: '7' }, id: 'c1' }],
        toolResults: [{ name: 'lookup_order', id: 'c1', result: 'shipped', durationMs: 12 }],
      },
    ];
    const { seen, reply } = capture(200, {
      id: 's1',
      status: 'failed',
      createdAt: CREATED,
      failure: 'boom',
      failureCode: 'INTERNAL',
      transcript,
      avatar: { type: 'runway-preset', presetId: 'influencer' },
    });
    pool.intercept({ path: '/v1/avatar_conversations/s1', method: 'GET' }).reply(reply);
    const conv = await client.getConversation('s1');
    assert.equal(seen.headers['x-runway-version'], '2024-11-06');
    assert.equal(conv.status, 'failed');
    assert.equal(conv.status === 'failed' && conv.failureCode, 'INTERNAL');
    assert.deepEqual(conv.transcript, transcript);
    assert.deepEqual(
      {
        name: conv.name,
        recordingUrl: conv.recordingUrl,
        duration: conv.duration,
        maxDuration: conv.maxDuration,
        startedAt: conv.startedAt,
        tools: conv.tools,
      },
      { name: '', recordingUrl: null, duration: null, maxDuration: null, startedAt: null, tools: [] },
    );
  });

  it('listConversations sends the filters as a query string and returns {data, nextCursor}', async () => {
    const { pool, client } = setup();
    const item = {
      id: 'c1',
      status: 'in_progress',
      createdAt: CREATED,
      avatar: { type: 'custom', id: 'av1', name: 'Ann' },
      duration: null,
      hasTools: true,
      name: 'Call',
    };
    const { seen, reply } = capture(200, { data: [item], nextCursor: 'next-1' });
    pool.intercept({ path: (p) => p.startsWith('/v1/avatar_conversations?'), method: 'GET' }).reply(reply);
    const page = await client.listConversations({ limit: 50, avatar: 'av1', startDate: '2025-01-01T00:00:00Z', endDate: '2025-01-02T00:00:00Z', cursor: 'c0' });
    const q = new URL(seen.path!, ORIGIN).searchParams;
    assert.deepEqual(Object.fromEntries(q), { cursor: 'c0', limit: '50', avatar: 'av1', startDate: '2025-01-01T00:00:00Z', endDate: '2025-01-02T00:00:00Z' });
    assert.deepEqual(page, { data: [item], nextCursor: 'next-1' });
  });

  it('listConversations without filters has no query string; a null nextCursor means the last page', async () => {
    const { pool, client } = setup();
    pool.intercept({ path: '/v1/avatar_conversations', method: 'GET' }).reply(200, { data: [], nextCursor: null });
    assert.deepEqual(await client.listConversations(), { data: [], nextCursor: '' });
  });

  it('iterateConversations follows cursors until an empty one', async () => {
    const { pool, client, agent } = setup();
    const item = (id: string) => ({ id, status: 'ended', createdAt: CREATED, avatar: null, duration: 3, hasTools: false, name: id });
    pool.intercept({ path: '/v1/avatar_conversations?startDate=2025-01-01', method: 'GET' }).reply(200, { data: [item('a'), item('b')], nextCursor: 'p2' });
    pool.intercept({ path: '/v1/avatar_conversations?cursor=p2&startDate=2025-01-01', method: 'GET' }).reply(200, { data: [item('c')], nextCursor: 'p3' });
    pool.intercept({ path: '/v1/avatar_conversations?cursor=p3&startDate=2025-01-01', method: 'GET' }).reply(200, { data: [], nextCursor: '' });
    const ids: string[] = [];
    for await (const c of client.iterateConversations({ startDate: '2025-01-01' })) ids.push(c.id);
    assert.deepEqual(ids, ['a', 'b', 'c']);
    agent.assertNoPendingInterceptors();
  });

  it('iterateConversations stops with invalid_response when a cursor repeats', async () => {
    const { pool, client } = setup();
    pool.intercept({ path: '/v1/avatar_conversations', method: 'GET' }).reply(200, { data: [], nextCursor: 'loop' });
    pool.intercept({ path: '/v1/avatar_conversations?cursor=loop', method: 'GET' }).reply(200, { data: [], nextCursor: 'loop' }).persist();
    const drain = async () => {
      for await (const _ of client.iterateConversations()) void _;
    };
    const err = await expectError(drain(), { kind: 'invalid_response', retryable: false });
    assert.match(err.message, /nextCursor/);
  });

  it('deleteConversation DELETEs /v1/avatar_conversations/{id}', async () => {
    const { pool, client, agent } = setup();
    const { seen, reply } = capture(204);
    pool.intercept({ path: '/v1/avatar_conversations/c1', method: 'DELETE' }).reply(reply);
    await client.deleteConversation('c1');
    assert.equal(seen.headers.authorization, `Bearer ${API_KEY}`);
    agent.assertNoPendingInterceptors();
  });

  it('getOrganization returns the tier limits', async () => {
    const { pool, client } = setup();
    const org = {
      creditBalance: 10,
      tier: { maxMonthlyCreditSpend: 100, models: { gwm1_avatars: { maxConcurrentGenerations: 2, maxDailyGenerations: null } } },
      usage: { models: { gwm1_avatars: { dailyGenerations: 4 } } },
    };
    const { seen, reply } = capture(200, org);
    pool.intercept({ path: '/v1/organization', method: 'GET' }).reply(reply);
    assert.deepEqual(await client.getOrganization(), org);
    assert.equal(seen.headers['x-runway-version'], '2024-11-06');
  });

  it("takes the base URL from RUNWAYML_BASE_URL, else Runway's", () => {
    const saved = process.env.RUNWAYML_BASE_URL;
    try {
      delete process.env.RUNWAYML_BASE_URL;
      assert.equal(new RunwayClient({ apiKey: API_KEY, dispatcher: new MockAgent() }).baseUrl, 'https://api.dev.runwayml.com');
      process.env.RUNWAYML_BASE_URL = 'http://127.0.0.1:9999/';
      assert.equal(new RunwayClient({ apiKey: API_KEY, dispatcher: new MockAgent() }).baseUrl, 'http://127.0.0.1:9999');
    } finally {
      if (saved === undefined) delete process.env.RUNWAYML_BASE_URL;
      else process.env.RUNWAYML_BASE_URL = saved;
    }
  });

  it('refuses an empty API key and an empty id', async () => {
    assert.throws(() => new RunwayClient({ apiKey: '' }), /API key/);
    const { client } = setup();
    await expectError(client.getSession(''), { kind: 'invalid_request', retryable: false });
  });

  it('exports the contract constants', () => {
    assert.equal(RUNWAY_PRESET_IDS.length, 9);
    assert.deepEqual(RUNWAY_MAX_DURATION, { min: 10, max: 1800, default: 300 });
    assert.deepEqual([...TERMINAL_STATUSES], ['COMPLETED', 'FAILED', 'CANCELLED']);
    assert.ok(isTerminalStatus('CANCELLED') && !isTerminalStatus('RUNNING'));
  });
});

describe('RunwayClient: HTTP error classification', () => {
  const cases: { name: string; status: number; error: string; kind: RunwayErrorKind; retryable: boolean; call?: 'create' | 'consume' }[] = [
    { name: '400 validation', status: 400, error: 'maxDuration: Number must be less than or equal to 1800', kind: 'invalid_request', retryable: false },
    { name: '422', status: 422, error: 'Unprocessable', kind: 'invalid_request', retryable: false },
    { name: '405', status: 405, error: 'Method not allowed', kind: 'invalid_request', retryable: false },
    {
      name: 'Unrecognized key: integration',
      status: 400,
      error: 'Unrecognized key: integration',
      kind: 'integration_unsupported',
      retryable: false,
      call: 'create',
    },
    { name: 'Unrecognized key: livekit', status: 400, error: 'Unrecognized key: livekit', kind: 'integration_unsupported', retryable: false, call: 'create' },
    {
      name: 'zod-style unrecognized key',
      status: 400,
      error: "Unrecognized key(s) in object: 'integration'",
      kind: 'integration_unsupported',
      retryable: false,
      call: 'create',
    },
    {
      name: 'integration not available',
      status: 400,
      error: 'The LiveKit integration is not available for this organization',
      kind: 'integration_unsupported',
      retryable: false,
      call: 'create',
    },
    { name: '401', status: 401, error: 'Invalid API key', kind: 'unauthorized', retryable: false },
    { name: '403', status: 403, error: 'Forbidden', kind: 'unauthorized', retryable: false },
    { name: '404', status: 404, error: 'Not found', kind: 'not_found', retryable: false },
    { name: '429 rate limit', status: 429, error: 'Too many requests', kind: 'rate_limited', retryable: true },
    {
      name: '429 concurrency',
      status: 429,
      error: 'Concurrency limit reached: 2 active realtime sessions',
      kind: 'concurrency_limited',
      retryable: true,
      call: 'create',
    },
    {
      name: '400 concurrency',
      status: 400,
      error: 'You have reached your maximum concurrent sessions',
      kind: 'concurrency_limited',
      retryable: true,
      call: 'create',
    },
    { name: 'consume expired (400)', status: 400, error: 'Session expired', kind: 'session_expired', retryable: false, call: 'consume' },
    { name: 'consume expired (410)', status: 410, error: 'Session key has expired', kind: 'session_expired', retryable: false, call: 'consume' },
    { name: 'consume twice (400)', status: 400, error: 'Session already consumed', kind: 'already_consumed', retryable: false, call: 'consume' },
    { name: 'consume twice (409)', status: 409, error: 'This session was already consumed', kind: 'already_consumed', retryable: false, call: 'consume' },
    { name: '408', status: 408, error: 'Request timeout', kind: 'unavailable', retryable: true },
    { name: '409 lock', status: 409, error: 'Conflict', kind: 'unavailable', retryable: true },
    { name: '500', status: 500, error: 'Internal server error', kind: 'unavailable', retryable: true },
    { name: '502', status: 502, error: 'Bad gateway', kind: 'unavailable', retryable: true },
    { name: '503', status: 503, error: 'Service unavailable', kind: 'unavailable', retryable: true },
    { name: '500 on create', status: 500, error: 'Internal server error', kind: 'unavailable', retryable: true, call: 'create' },
    { name: '504 on create (the gateway gave up: may exist)', status: 504, error: 'Gateway timeout', kind: 'ambiguous', retryable: false, call: 'create' },
  ];
  for (const c of cases) {
    it(`${c.name} → ${c.kind}${c.retryable ? ' (retryable)' : ''}`, async () => {
      const { pool, client, calls } = setup();
      let p: Promise<unknown>;
      if (c.call === 'create') {
        pool.intercept({ path: '/v1/realtime_sessions', method: 'POST' }).reply(c.status, { error: c.error });
        p = client.createSession(createParams);
      } else if (c.call === 'consume') {
        pool.intercept({ path: '/v1/realtime_sessions/s1/consume', method: 'POST' }).reply(c.status, { error: c.error });
        p = client.consumeSession('s1', SESSION_KEY);
      } else {
        pool.intercept({ path: '/v1/realtime_sessions/s1', method: 'GET' }).reply(c.status, { error: c.error });
        p = client.getSession('s1');
      }
      const err = await expectError(p, { kind: c.kind, status: c.status, retryable: c.retryable });
      assert.equal(err.runwayMessage, c.error);
      assert.equal(err.endpoint, c.call ?? 'status');
      assert.ok(err.message.includes(String(c.status)) && err.message.includes(c.error), err.message);
      assert.deepEqual({ status: calls[0]!.status, errorKind: calls[0]!.errorKind }, { status: c.status, errorKind: c.kind });
    });
  }

  it('uses a plain-text error body as the Runway message', async () => {
    const { pool, client } = setup();
    pool.intercept({ path: '/v1/realtime_sessions/s1', method: 'GET' }).reply(502, '<html>Bad gateway</html>');
    const err = await expectError(client.getSession('s1'), { kind: 'unavailable', status: 502 });
    assert.equal(err.runwayMessage, '<html>Bad gateway</html>');
  });

  it('429 with retry-after-ms → retryAfterMs', async () => {
    const { pool, client } = setup();
    pool
      .intercept({ path: '/v1/realtime_sessions/s1', method: 'GET' })
      .reply(429, { error: 'Too many requests' }, { headers: { 'retry-after-ms': '1500', 'retry-after': '9' } });
    await expectError(client.getSession('s1'), { kind: 'rate_limited', retryable: true, retryAfterMs: 1500 });
  });

  it('429 with Retry-After seconds → retryAfterMs', async () => {
    const { pool, client } = setup();
    pool.intercept({ path: '/v1/realtime_sessions/s1', method: 'GET' }).reply(429, { error: 'Too many requests' }, { headers: { 'retry-after': '3' } });
    await expectError(client.getSession('s1'), { kind: 'rate_limited', retryAfterMs: 3000 });
  });

  it('429 with Retry-After as an HTTP date → retryAfterMs until then', async () => {
    const { pool, client } = setup();
    const at = new Date(Date.now() + 10_000).toUTCString();
    pool.intercept({ path: '/v1/realtime_sessions/s1', method: 'GET' }).reply(429, { error: 'Too many requests' }, { headers: { 'retry-after': at } });
    const err = await expectError(client.getSession('s1'), { kind: 'rate_limited' });
    assert.ok(err.retryAfterMs! > 8_000 && err.retryAfterMs! <= 10_000, `retryAfterMs ${err.retryAfterMs}`);
  });

  it("concurrency_limited keeps the server's delay", async () => {
    const { pool, client } = setup();
    pool.intercept({ path: '/v1/realtime_sessions', method: 'POST' }).reply(429, { error: 'Concurrency limit reached' }, { headers: { 'retry-after': '20' } });
    await expectError(client.createSession(createParams), { kind: 'concurrency_limited', retryable: true, retryAfterMs: 20_000 });
  });

  it('x-should-retry: false overrides a 5xx, x-should-retry: true a 400', async () => {
    const { pool, client } = setup();
    pool
      .intercept({ path: '/v1/realtime_sessions/s1', method: 'GET' })
      .reply(503, { error: 'Down for maintenance' }, { headers: { 'x-should-retry': 'false' } });
    await expectError(client.getSession('s1'), { kind: 'unavailable', retryable: false });
    pool.intercept({ path: '/v1/realtime_sessions/s1', method: 'GET' }).reply(400, { error: 'Try again' }, { headers: { 'x-should-retry': 'true' } });
    await expectError(client.getSession('s1'), { kind: 'invalid_request', retryable: true });
    pool.intercept({ path: '/v1/realtime_sessions/s1', method: 'GET' }).reply(429, { error: 'Slow down' }, { headers: { 'x-should-retry': 'false' } });
    await expectError(client.getSession('s1'), { kind: 'rate_limited', retryable: false });
  });

  it('parseRetryAfter reads retry-after-ms first, then seconds, then a date; ignores garbage', () => {
    const now = Date.parse('2025-01-01T00:00:00Z');
    assert.equal(parseRetryAfter({ 'retry-after-ms': '250.4' }, now), 250);
    assert.equal(parseRetryAfter({ 'retry-after': '0.5' }, now), 500);
    assert.equal(parseRetryAfter({ 'retry-after': 'Wed, 01 Jan 2025 00:00:07 GMT' }, now), 7000);
    assert.equal(parseRetryAfter({ 'retry-after': 'Tue, 31 Dec 2024 00:00:00 GMT' }, now), 0);
    assert.equal(parseRetryAfter({ 'retry-after': 'soon' }, now), undefined);
    assert.equal(parseRetryAfter({}, now), undefined);
  });
});

describe('RunwayClient: transport failures and timeouts', () => {
  const reset = () => Object.assign(new Error('other side closed'), { code: 'ECONNRESET' });
  const refused = () => Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:443'), { code: 'ECONNREFUSED' });

  it('a reset connection on a status read → unavailable (retryable)', async () => {
    const { pool, client, calls } = setup();
    pool.intercept({ path: '/v1/realtime_sessions/s1', method: 'GET' }).replyWithError(reset());
    const err = await expectError(client.getSession('s1'), { kind: 'unavailable', retryable: true, status: undefined });
    assert.match(err.message, /ECONNRESET/);
    assert.equal(calls[0]!.errorKind, 'unavailable');
  });

  it('a reset connection on create → ambiguous (not retryable: the session may exist)', async () => {
    const { pool, client } = setup();
    pool.intercept({ path: '/v1/realtime_sessions', method: 'POST' }).replyWithError(reset());
    const err = await expectError(client.createSession(createParams), { kind: 'ambiguous', retryable: false });
    assert.match(err.message, /may have been created/);
  });

  it('a refused connection on create → unavailable (the request never left)', async () => {
    const { pool, client } = setup();
    pool.intercept({ path: '/v1/realtime_sessions', method: 'POST' }).replyWithError(refused());
    await expectError(client.createSession(createParams), { kind: 'unavailable', retryable: true });
  });

  it('a reset connection on cancel, consume and listing → unavailable', async () => {
    const { pool, client } = setup();
    pool.intercept({ path: '/v1/realtime_sessions/s1', method: 'DELETE' }).replyWithError(reset());
    pool.intercept({ path: '/v1/realtime_sessions/s1/consume', method: 'POST' }).replyWithError(reset());
    pool.intercept({ path: '/v1/avatar_conversations', method: 'GET' }).replyWithError(reset());
    await expectError(client.cancelSession('s1'), { kind: 'unavailable', retryable: true });
    await expectError(client.consumeSession('s1', SESSION_KEY), { kind: 'unavailable', retryable: true });
    await expectError(client.listConversations(), { kind: 'unavailable', retryable: true });
  });

  it('create timing out (the call deadline) → ambiguous; get timing out → unavailable', async () => {
    const { pool, client } = setup({ timeoutMs: 50 });
    pool.intercept({ path: '/v1/realtime_sessions', method: 'POST' }).reply(200, { id: 'late' }).delay(1000);
    pool.intercept({ path: '/v1/realtime_sessions/s1', method: 'GET' }).reply(200, STATUSES[2]).delay(1000);
    const created = await expectError(client.createSession(createParams), { kind: 'ambiguous', retryable: false });
    assert.match(created.message, /timed out/);
    const got = await expectError(client.getSession('s1'), { kind: 'unavailable', retryable: true });
    // Both replies were 200s: an error that says "timed out" is the deadline's, not the reply's.
    assert.match(got.message, /timed out/);
  });

  it('undici headers/body timeouts: ambiguous on create, unavailable elsewhere', async () => {
    const { pool, client } = setup();
    pool.intercept({ path: '/v1/realtime_sessions', method: 'POST' }).replyWithError(new undiciErrors.HeadersTimeoutError());
    pool.intercept({ path: '/v1/realtime_sessions/s1', method: 'GET' }).replyWithError(new undiciErrors.BodyTimeoutError());
    await expectError(client.createSession(createParams), { kind: 'ambiguous', retryable: false });
    await expectError(client.getSession('s1'), { kind: 'unavailable', retryable: true });
  });
});

describe('RunwayClient: over a real socket (its own keep-alive Agent)', () => {
  it('classifies a reset, a headers timeout, a body timeout and a refused connection', async () => {
    const server = http.createServer((req, res) => {
      req.resume();
      if (req.url === '/v1/realtime_sessions') return void req.on('end', () => req.socket.destroy());
      if (req.url === '/v1/realtime_sessions/slow') return void setTimeout(() => res.end('{}'), 2000).unref();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"id":');
      setTimeout(() => res.end('"s1"}'), 2000).unref();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const client = new RunwayClient({
      apiKey: API_KEY,
      baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      timeouts: { headersMs: 200, bodyMs: 200 },
    });
    const refusing = new RunwayClient({ apiKey: API_KEY, baseUrl: 'http://127.0.0.1:1' });
    try {
      await expectError(client.createSession(createParams), { kind: 'ambiguous', retryable: false });
      assert.match((await expectError(client.getSession('slow'), { kind: 'unavailable', retryable: true })).message, /timed out/);
      assert.match((await expectError(client.getSession('half'), { kind: 'unavailable', retryable: true })).message, /timed out/);
      await expectError(refusing.createSession(createParams), { kind: 'unavailable', retryable: true });
    } finally {
      await Promise.all([client.close(), refusing.close()]);
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('a redirect is an invalid_response, not an ambiguous create', async () => {
    const { pool, client } = setup();
    pool.intercept({ path: '/v1/realtime_sessions', method: 'POST' }).reply(301, '', { headers: { location: 'https://elsewhere.test/' } });
    await expectError(client.createSession(createParams), { kind: 'invalid_response', status: 301, retryable: false });
  });
});

describe('RunwayClient: response validation', () => {
  it('a READY status without sessionKey → invalid_response naming the field', async () => {
    const { pool, client, calls } = setup();
    pool.intercept({ path: '/v1/realtime_sessions/s1', method: 'GET' }).reply(200, { id: 's1', createdAt: CREATED, status: 'READY', expiresAt: CREATED });
    const err = await expectError(client.getSession('s1'), { kind: 'invalid_response', status: 200, retryable: false });
    assert.match(err.message, /sessionKey/);
    assert.equal(calls[0]!.errorKind, 'invalid_response');
  });

  it('an unknown status value → invalid_response naming `status`', async () => {
    const { pool, client } = setup();
    pool.intercept({ path: '/v1/realtime_sessions/s1', method: 'GET' }).reply(200, { id: 's1', createdAt: CREATED, status: 'WARMING_UP' });
    const err = await expectError(client.getSession('s1'), { kind: 'invalid_response' });
    assert.match(err.message, /status/);
  });

  it('consume credentials without a token → invalid_response naming `token`', async () => {
    const { pool, client } = setup();
    pool.intercept({ path: '/v1/realtime_sessions/s1/consume', method: 'POST' }).reply(200, { url: 'wss://x', roomName: 'r' });
    const err = await expectError(client.consumeSession('s1', SESSION_KEY), { kind: 'invalid_response' });
    assert.match(err.message, /token/);
  });

  it('a listing entry without an id → invalid_response naming data.N.id', async () => {
    const { pool, client } = setup();
    pool.intercept({ path: '/v1/avatar_conversations', method: 'GET' }).reply(200, { data: [{ status: 'ended', createdAt: CREATED }], nextCursor: '' });
    const err = await expectError(client.listConversations(), { kind: 'invalid_response' });
    assert.match(err.message, /data\.0\.id/);
  });

  it('a body that is not JSON → invalid_response', async () => {
    const { pool, client } = setup();
    pool.intercept({ path: '/v1/organization', method: 'GET' }).reply(200, '<html>captive portal</html>');
    const err = await expectError(client.getOrganization(), { kind: 'invalid_response' });
    assert.match(err.message, /not JSON/);
  });

  it('a 2xx create without an id → ambiguous (Runway said yes: a session may exist), naming the field', async () => {
    const { pool, client } = setup();
    pool.intercept({ path: '/v1/realtime_sessions', method: 'POST' }).reply(201, { session: 'x' });
    const err = await expectError(client.createSession(createParams), { kind: 'ambiguous', retryable: false });
    assert.match(err.message, /\bid\b/);
  });
});

describe('RunwayClient: secrets', () => {
  it('no error message, stack or JSON contains the API key, session key, consume token or integration token', async () => {
    const { pool, client } = setup();
    const echo = `bad auth ${API_KEY} / ${SESSION_KEY} / ${CONSUME_TOKEN} / ${INTEGRATION_TOKEN}`;
    // consume registers the session key and the room token it returns
    pool.intercept({ path: '/v1/realtime_sessions/s1/consume', method: 'POST' }).reply(200, { url: 'wss://x', token: CONSUME_TOKEN, roomName: 'r' });
    await client.consumeSession('s1', SESSION_KEY);
    pool.intercept({ path: '/v1/realtime_sessions', method: 'POST' }).reply(400, { error: echo });
    const e1 = await expectError(client.createSession(createParams), { kind: 'invalid_request' });
    assert.ok(e1.runwayMessage!.includes('[REDACTED]'));
    pool.intercept({ path: '/v1/realtime_sessions/s1/consume', method: 'POST' }).reply(401, echo);
    await expectError(client.consumeSession('s1', SESSION_KEY), { kind: 'unauthorized' });
    pool.intercept({ path: '/v1/realtime_sessions/s1', method: 'GET' }).replyWithError(Object.assign(new Error(echo), { code: 'ECONNRESET' }));
    await expectError(client.getSession('s1'), { kind: 'unavailable' });
  });

  it('a session key first seen in a READY status is redacted from later errors', async () => {
    const { pool, client } = setup();
    const fresh = 'rw-session-key-seen-in-status-777';
    pool.intercept({ path: '/v1/realtime_sessions/s2', method: 'GET' }).reply(200, { ...STATUSES[1], id: 's2', sessionKey: fresh });
    await client.getSession('s2');
    pool.intercept({ path: '/v1/realtime_sessions/s2/consume', method: 'POST' }).reply(400, { error: `key ${fresh} expired` });
    const err = await expectError(client.consumeSession('s2', fresh), { kind: 'session_expired' });
    assert.ok(!JSON.stringify(err).includes(fresh) && !err.message.includes(fresh));
  });
});

describe('RunwayError', () => {
  it('serialises to a plain shape and back', () => {
    const err = new RunwayError({
      kind: 'rate_limited',
      endpoint: 'status',
      status: 429,
      retryable: true,
      retryAfterMs: 1000,
      runwayMessage: 'slow',
      message: 'Runway status failed with 429',
    });
    const json: RunwayErrorJSON = JSON.parse(JSON.stringify(err));
    assert.deepEqual(json, {
      name: 'RunwayError',
      kind: 'rate_limited',
      endpoint: 'status',
      status: 429,
      retryable: true,
      retryAfterMs: 1000,
      runwayMessage: 'slow',
      message: 'Runway status failed with 429',
    });
    const back = RunwayError.fromJSON(json);
    assert.ok(isRunwayError(back) && back instanceof Error);
    assert.deepEqual(back.toJSON(), json);
    assert.equal(isRunwayError(new Error('x')), false);
  });

  it('a throwing metrics hook does not break a call', async () => {
    const agent = new MockAgent();
    agent.disableNetConnect();
    agents.push(agent);
    agent.get(ORIGIN).intercept({ path: '/v1/realtime_sessions/s1', method: 'DELETE' }).reply(204, '');
    const client = new RunwayClient({
      apiKey: API_KEY,
      baseUrl: ORIGIN,
      dispatcher: agent,
      onRequest: () => {
        throw new Error('metrics down');
      },
    });
    await client.cancelSession('s1');
  });
});
