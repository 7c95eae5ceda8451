// The HTTP API backends and operators use: start, read, end and list sessions, LiveKit webhooks,
// health, and the remote codec for the Temporal UI and CLI. Metrics are served on a port of their own.
//
// Auth: every route under /v1 but the LiveKit webhook needs `Authorization: Bearer $SESSION_API_TOKEN`,
// checked in constant time against the matched route (not the raw URL, so percent-encoding cannot
// dodge it). The webhook is authenticated by LiveKit's signature instead, and a signed event is acted
// on once (replays within the signature's lifetime are answered, not acted on). `GET /healthz` needs
// no token. `/metrics` is not on this port at all: `metricsPort` serves it on its own listener (keep
// that port private), with the visibility counts behind it cached (src/metrics.ts). The codec routes
// take a token of their own, the operator's SESSION_CODEC_TOKEN (src/api/codec-routes.ts): the API
// token cannot decrypt history. With `demo.open` (the fully embedded dev stack without
// SESSION_API_TOKEN) the demo page's own same-origin requests from a loopback browser pass without a
// token (src/api/demo-routes.ts); a request that sends a token is always checked. The demo page and
// its viewer-token route exist only with `demo`.
//
// Input is validated by the workflow's own schema (workflows/input.ts) before anything reaches
// Temporal or Runway, plus what only the HTTP edge refuses: `timing` (operator configuration, not
// request input, unless `allowTimingOverrides`), room names outside a plain character set, control
// and formatting characters in identities. A rejected request (400/401/413/415) makes no Temporal call.
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { TrackType, WebhookReceiver, type WebhookEvent } from 'livekit-server-sdk';
import type { Logger } from 'pino';
import type { Tracer } from '@opentelemetry/api';
import type { PayloadCodec } from '@temporalio/common';
import { z } from 'zod';
import { InvalidInputError, sessionInputSchema, validateSessionInput } from '../session-input';
import { SESSION_PHASES, type LiveInfo, type SessionInput } from '../../workflows/types';
import { conversationOfIdentity } from '../../workflows/shared';
import { SessionEndedError, type SessionsClient } from '../client/sessions';
import type { ServiceConfig } from '../config';
import { demoAgentIdentity, mintDemoAgentToken, mintViewerToken } from '../livekit/tokens';
import { ApiMetrics, visibilityPhaseCounter } from '../metrics';
import { pinSecret } from '../redact';
import { bearerChecker } from './auth';
import { registerCodecRoutes } from './codec-routes';
import { loopbackBrowserRequest, registerDemoRoutes } from './demo-routes';
import { traceRequests } from './request-spans';

export interface ApiServerOptions {
  config: Pick<ServiceConfig, 'apiToken' | 'apiPort' | 'livekit'>;
  sessions: SessionsClient;
  log: Logger;
  host?: string;
  /** Overrides config.apiPort (0 picks a free port). */
  port?: number;
  /** How long `?wait=live` holds the answer before a 202 (default 30 s). */
  waitLiveMs?: number;
  /** Largest accepted request body in bytes (default 64 KiB); larger bodies get 413. */
  bodyLimit?: number;
  /**
   * Serve the remote codec (Temporal UI, `temporal --codec-endpoint`) under /codec: with the
   * operator's `token` (SESSION_CODEC_TOKEN, never the API token), or `openOnLoopback` (the fully
   * embedded dev stack only, whose UI cannot send a token). Leave it out and there is no /codec.
   */
  codec?: { codec: PayloadCodec; allowedOrigins: string[]; token?: string; openOnLoopback?: boolean };
  /** Default: a fresh registry whose running-session gauge reads Temporal visibility (cached 15 s). */
  metrics?: ApiMetrics;
  /** Serve GET /metrics on this port (0: a free one), on a listener of its own; not served when unset. */
  metricsPort?: number;
  /** Where the metrics listener binds (default: `host`). */
  metricsHost?: string;
  /**
   * Serve the demo page under /demo/ and its `POST /v1/sessions/:id/viewer-token`. `open`: the fully
   * embedded dev stack without SESSION_API_TOKEN, where the page's own same-origin requests from a
   * loopback browser need no token (src/api/demo-routes.ts).
   */
  demo?: { open: boolean };
  /** Lifetime of the tokens `POST /v1/sessions/:id/viewer-token` mints (default 300 s). */
  viewerTokenTtlSeconds?: number;
  /** Accept `timing` in POST /v1/sessions (API_ALLOW_TIMING_OVERRIDES=1; tests). Default: 400. */
  allowTimingOverrides?: boolean;
  /** How long a client may take to send its whole request, headers and body (default 15 s; then 408). */
  requestTimeoutMs?: number;
  /** How long a signed webhook event is remembered so a replay of it is not acted on (default 10 min). */
  webhookReplayWindowMs?: number;
  /** OpenTelemetry (src/tracing.ts): a server span per request, active in its handler. Unset: no tracing hooks at all. */
  tracer?: Tracer;
}

/**
 * Room names the API accepts: what LiveKit rooms are usually called (ids, slugs), nothing a query,
 * a terminal or a markdown renderer would read as anything but text.
 */
export const ROOM_NAME = /^[A-Za-z0-9._:@=+-]{1,256}$/;
const ROOM_NAME_RULE = 'must be 1-256 characters of A-Z a-z 0-9 . _ : @ = + -';

const conversationIdParam = z.object({ conversationId: sessionInputSchema.shape.conversationId });
const listQuery = z
  .object({
    phase: z.enum(SESSION_PHASES, { message: `must be one of ${SESSION_PHASES.join(', ')}` }).optional(),
    running: z.enum(['true', 'false'], { message: 'must be true or false' }).optional(),
    room: z.string().regex(ROOM_NAME, ROOM_NAME_RULE).optional(),
    limit: z.coerce
      .number({ message: 'must be a number' })
      .int('must be a whole number')
      .min(1, 'must be at least 1')
      .max(1000, 'must be at most 1000')
      .default(100),
  })
  .strict();
const startQuery = z.object({ wait: z.enum(['live'], { message: "the only value is 'live'" }).optional() }).strict();

const DEFAULT_BODY_LIMIT = 64 * 1024;
const DEFAULT_REQUEST_TIMEOUT_MS = 15_000;
/** Routes anyone may call: probes, and LiveKit (which signs its webhooks). */
const PUBLIC_ROUTES = new Set(['/healthz', '/v1/livekit/webhook']);

/** Control, formatting (bidi overrides, zero-width) and line/paragraph separator characters. */
const UNPRINTABLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u;

/** What only the HTTP edge refuses, beyond the workflow's schema (which the typed client shares). */
function edgeIssues(input: SessionInput): string[] {
  const issues: string[] = [];
  if (!ROOM_NAME.test(input.livekit.roomName)) issues.push(`livekit.roomName: ${ROOM_NAME_RULE}`);
  const texts: [string, string | undefined][] = [
    ['livekit.agentIdentity', input.livekit.agentIdentity],
    ['livekit.endUserIdentity', input.livekit.endUserIdentity],
    ...(input.livekit.listenTo ?? []).map((v, i): [string, string] => [`livekit.listenTo.${i}`, v]),
    ['avatar.avatarId', input.avatar.type === 'custom' ? input.avatar.avatarId : undefined],
  ];
  for (const [field, v] of texts)
    if (v !== undefined && UNPRINTABLE.test(v)) issues.push(`${field}: must not contain control or invisible formatting characters`);
  return issues;
}

/** Signed webhook events already acted on, remembered for `windowMs` (at most `max` of them, newest kept). */
class SeenEvents {
  private readonly seen = new Map<string, number>();
  constructor(
    private readonly windowMs: number,
    private readonly max = 10_000,
  ) {}

  /** Claims `key`: false if it was claimed within the window (a replay). */
  claim(key: string): boolean {
    const now = Date.now();
    for (const [k, expires] of this.seen) {
      if (expires > now) break; // insertion order is expiry order
      this.seen.delete(k);
    }
    if (this.seen.has(key)) return false;
    this.seen.set(key, now + this.windowMs);
    while (this.seen.size > this.max) this.seen.delete(this.seen.keys().next().value!);
    return true;
  }

  /** Forgets `key` (its handling failed: LiveKit's retry of it must be acted on). */
  release(key: string): void {
    this.seen.delete(key);
  }
}

class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function zodMessage(err: z.ZodError, where: string): string {
  return err.issues
    .map((i) => {
      const field = [where, ...(i.code === 'unrecognized_keys' ? [i.keys.join(', ')] : i.path)].filter(Boolean).join('.');
      return `${field}: ${i.code === 'unrecognized_keys' ? 'unknown parameter' : i.message}`;
    })
    .join('; ');
}

function parse<T>(schema: z.ZodType<T>, value: unknown, where: string): T {
  const res = schema.safeParse(value ?? {});
  if (!res.success) throw new ApiError(400, 'invalid_request', zodMessage(res.error, where));
  return res.data;
}

export async function buildApiServer(opts: ApiServerOptions): Promise<FastifyInstance> {
  const { sessions, config } = opts;
  // Whatever path a secret takes into a log line (a client pasting the token into a URL), it is scrubbed.
  pinSecret(config.apiToken);
  pinSecret(config.livekit.apiSecret);
  pinSecret(opts.codec?.token);
  const metrics = opts.metrics ?? new ApiMetrics({ countPhase: visibilityPhaseCounter(sessions.client) });
  const bodyLimit = opts.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const requestTimeout = opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  const log = opts.log.child({ component: 'api' });
  const app: FastifyInstance = Fastify({
    loggerInstance: log as unknown as FastifyBaseLogger,
    bodyLimit,
    // A client gets `requestTimeout` to send its whole request (then 408 and the socket closes), so
    // slow or stalled senders cannot hold sockets open; checked every second, not Node's default 30 s.
    // (The time to answer, e.g. ?wait=live, is not bounded by this.)
    requestTimeout,
    http: { requestTimeout, headersTimeout: requestTimeout, connectionsCheckingInterval: Math.min(1000, requestTimeout) },
    // Fastify's own request lines would carry the raw URL and headers; we log our own (below).
    logController: new LogController({ disableRequestLogging: true }),
  });
  if (opts.tracer) traceRequests(app, opts.tracer);
  const tokenOk = bearerChecker(config.apiToken);
  const webhooks = new WebhookReceiver(config.livekit.apiKey, config.livekit.apiSecret);
  const waitLiveMs = opts.waitLiveMs ?? 30_000;
  // JSON only (the webhook scope below adds LiveKit's type): anything else is 415, not a string body.
  app.removeContentTypeParser('text/plain');

  const needsToken = (req: FastifyRequest): boolean => {
    const route = req.routeOptions.url;
    // Unknown routes fall through to the 404 handler; codec routes check the token themselves.
    return route !== undefined && route.startsWith('/v1/') && !PUBLIC_ROUTES.has(route);
  };

  const demoOpen = opts.demo?.open === true;
  app.addHook('onRequest', async (req: FastifyRequest) => {
    if (!needsToken(req)) return;
    if (demoOpen && req.headers.authorization === undefined && loopbackBrowserRequest(req)) return;
    if (!tokenOk) throw new ApiError(503, 'not_configured', 'SESSION_API_TOKEN is not set: the API refuses every request until it is');
    if (!tokenOk(req.headers.authorization)) {
      throw new ApiError(401, 'unauthorized', 'missing or wrong bearer token: send Authorization: Bearer $SESSION_API_TOKEN');
    }
  });
  app.addHook('onResponse', async (req: FastifyRequest, reply: FastifyReply) => {
    const route = req.routeOptions.url ?? '(unknown)';
    metrics.observeRequest(route, req.method, reply.statusCode, reply.elapsedTime / 1000);
    // The route pattern, never the raw URL or headers: nothing a client sends is echoed into the log.
    const line = { method: req.method, route, status: reply.statusCode, ms: Math.round(reply.elapsedTime) };
    if (route === '/healthz' || route === '/' || route.startsWith('/demo')) req.log.debug(line, 'request');
    else req.log.info(line, 'request');
  });

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req, reply) => {
    if (err instanceof ApiError) return reply.code(err.status).send({ error: { code: err.code, message: err.message } });
    if (err instanceof InvalidInputError) return reply.code(400).send({ error: { code: 'invalid_input', message: err.message } });
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE')
      return reply.code(413).send({ error: { code: 'payload_too_large', message: `the body is over ${Math.round(bodyLimit / 1024)} KiB` } });
    if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE')
      return reply.code(415).send({ error: { code: 'unsupported_media_type', message: 'send the body as content-type: application/json' } });
    if (err.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' || err.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || err instanceof SyntaxError) {
      return reply.code(400).send({ error: { code: 'invalid_json', message: 'body: not valid JSON' } });
    }
    if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
      return reply.code(err.statusCode).send({ error: { code: 'bad_request', message: err.message } });
    }
    req.log.error({ err, route: req.routeOptions.url }, 'request failed');
    return reply.code(500).send({ error: { code: 'internal', message: 'internal error; see the service logs' } });
  });
  app.setNotFoundHandler((req, reply) => reply.code(404).send({ error: { code: 'not_found', message: `no route ${req.method} ${req.url.split('?')[0]}` } }));

  // ---- health (metrics: startMetricsServer, on a port of their own) -------------------------------
  app.get('/healthz', async () => ({ ok: true }));

  // ---- sessions --------------------------------------------------------------------------------
  app.post('/v1/sessions', async (req, reply) => {
    const { wait } = parse(startQuery, req.query, 'query');
    if (req.body === undefined || req.body === null || typeof req.body !== 'object' || Array.isArray(req.body)) {
      throw new ApiError(400, 'invalid_input', 'body: send the session as a JSON object');
    }
    // Internal timeouts and intervals are the operator's: a caller setting monitorIntervalSeconds to
    // 0.001 or sessionCapSeconds to 1 would make the worker hammer Runway and LiveKit or renew (a
    // billed session each time) in a loop.
    if ('timing' in req.body && !opts.allowTimingOverrides) {
      throw new ApiError(400, 'invalid_input', "timing: not accepted by this API (timeouts and intervals are the operator's configuration); remove the field");
    }
    // `restart: true` starts a new session for a conversation whose last one ended (else 409).
    const { restart, ...raw } = req.body as { restart?: unknown };
    if (restart !== undefined && typeof restart !== 'boolean') throw new ApiError(400, 'invalid_input', 'restart: must be true or false');
    const input = validateSessionInput(raw); // the workflow's own schema: fields named, nothing reaches Temporal if bad
    const issues = edgeIssues(input);
    if (issues.length) throw new ApiError(400, 'invalid_input', issues.join('; '));
    let started: Awaited<ReturnType<SessionsClient['startSession']>>;
    try {
      started = await sessions.startSession(input, { restart: restart === true });
    } catch (err) {
      if (!(err instanceof SessionEndedError)) throw err;
      return reply.code(409).send({ error: { code: 'session_ended', message: err.message }, previous: err.previous });
    }
    if (started.started) metrics.sessionsStarted.inc({ mode: input.mode ?? 'auto' });
    const body = { conversationId: started.conversationId, workflowId: started.workflowId, runId: started.runId };
    const status = started.started ? 201 : 200;
    if (wait !== 'live') return reply.code(status).send(body);

    // Hold the answer until the session is live or failed, at most waitLiveMs (a 202 leaves nothing running behind it).
    const outcome = await sessions.waitLiveFor(input.conversationId, waitLiveMs);
    if ('timeout' in outcome) {
      metrics.waitLive.inc({ outcome: 'timeout' });
      return reply.code(202).send({ ...body, phase: (await sessions.getSession(input.conversationId))?.phase });
    }
    if ('err' in outcome) {
      metrics.waitLive.inc({ outcome: 'not_live' });
      const state = await sessions.getSession(input.conversationId);
      return reply.code(status).send({
        ...body,
        phase: state?.phase ?? 'failed',
        endReason: state?.endReason,
        error: state?.error ?? { code: 'not_live', message: 'the session ended before it was live' },
      });
    }
    metrics.waitLive.inc({ outcome: 'live' });
    return reply.code(status).send({ ...body, phase: 'live', live: joinInfo(outcome.live) });
  });

  /** Where and whom to join. No end-user token is minted here: your backend does that for its users. */
  function joinInfo(live: LiveInfo) {
    return { ...live, livekitUrl: config.livekit.publicUrl };
  }

  app.get('/v1/sessions/:conversationId', async (req, reply) => {
    const { conversationId } = parse(conversationIdParam, req.params, 'path');
    const state = await sessions.getSession(conversationId);
    if (!state) throw new ApiError(404, 'not_found', `no session for conversation ${conversationId}`);
    const { events, ambiguousCreates, ...rest } = state;
    return reply.send({ ...rest, events: events.slice(-20), ambiguousCreates: ambiguousCreates.length });
  });

  // The conversation's transcript (every Runway session, stitched), once it ended and Runway finalized
  // it: 200 the transcript (`status` complete or incomplete), 202 not yet, 404 none.
  app.get('/v1/sessions/:conversationId/transcript', async (req, reply) => {
    const { conversationId } = parse(conversationIdParam, req.params, 'path');
    const answer = await sessions.getTranscript(conversationId);
    if (!answer) throw new ApiError(404, 'not_found', `no session for conversation ${conversationId}`);
    if (answer.status === 'none') throw new ApiError(404, 'no_transcript', `conversation ${conversationId} has no transcript: ${answer.reason}`);
    if (answer.status === 'pending') return reply.code(202).send({ conversationId, status: 'pending', reason: answer.reason });
    return reply.send(answer);
  });

  app.post('/v1/sessions/:conversationId/end', async (req, reply) => {
    const { conversationId } = parse(conversationIdParam, req.params, 'path');
    if (!(await sessions.endSession(conversationId, 'api'))) throw new ApiError(404, 'not_found', `no session for conversation ${conversationId}`);
    return reply.code(202).send({ conversationId, ending: true });
  });

  app.get('/v1/sessions', async (req, reply) => {
    const q = parse(listQuery, req.query, 'query');
    const out = [];
    const filter = { phase: q.phase, running: q.running === 'true' ? true : undefined, roomName: q.room, pageSize: Math.min(q.limit, 100) };
    for await (const s of sessions.listSessions(filter)) {
      if (q.running === 'false' && s.status === 'RUNNING') continue;
      out.push(s);
      if (out.length >= q.limit) break;
    }
    return reply.send({ sessions: out });
  });

  /** Signals the session whose direct avatar this webhook is about; true when one was told. */
  async function tellAvatarSession(event: WebhookEvent): Promise<boolean> {
    const identity = event.participant?.identity;
    const room = event.room?.name;
    if (!identity || !room || !identity.startsWith('runway-avatar-')) return false;
    const videoGone = event.event === 'track_unpublished' && event.track?.type === TrackType.VIDEO;
    // A join too: an avatar that is not the session's own (a lost create's ghost) is removed by it.
    if (event.event !== 'participant_left' && event.event !== 'participant_joined' && !videoGone) return false;
    const conversationId = conversationOfIdentity(identity);
    if (!conversationId) return false;
    const kind = videoGone ? 'video_unpublished' : (event.event as 'participant_left' | 'participant_joined');
    return await sessions.notifyAvatarRoomEvent(conversationId, { event: kind, roomName: room, identity, participantSid: event.participant!.sid });
  }

  // ---- LiveKit webhooks: a session's room closing, or its end user leaving, ends the session ----
  // In its own scope: LiveKit signs the raw body, so JSON is kept as the string it arrived as here.
  // A signed event is acted on once: LiveKit's signature stays valid for minutes, and a captured
  // room_finished replayed later would end the next session in that room.
  const seenEvents = new SeenEvents(opts.webhookReplayWindowMs ?? 10 * 60_000);
  await app.register(async (scope) => {
    scope.removeContentTypeParser('application/json');
    scope.addContentTypeParser(['application/json', 'application/webhook+json'], { parseAs: 'string' }, (_req, body, done) => done(null, body));
    scope.post('/v1/livekit/webhook', async (req, reply) => {
      if (typeof req.body !== 'string') throw new ApiError(400, 'invalid_request', 'body: send the webhook as application/webhook+json');
      let event: WebhookEvent;
      try {
        event = await webhooks.receive(req.body, req.headers.authorization);
      } catch {
        // jose's messages are harmless, but nothing about the check is worth telling an unsigned caller.
        throw new ApiError(401, 'bad_signature', 'webhook signature check failed: sign it with the LiveKit API key and secret this service is configured with');
      }
      // LiveKit gives every event an id; the body's hash stands in for one that has none.
      const eventKey = event.id ? `id:${event.id}` : `sha256:${createHash('sha256').update(req.body).digest('base64')}`;
      if (!seenEvents.claim(eventKey)) {
        metrics.webhooks.inc({ event: event.event || 'unknown', acted: 'replay' });
        req.log.warn({ event: event.event }, 'webhook event seen before: not acted on again');
        return reply.send({ ok: true, ended: [], duplicate: true });
      }
      const room = event.room?.name;
      const ended: string[] = [];
      // The direct avatar leaving, or no longer publishing video: its session hears it at once (by id, no lookup).
      // (A service avatar is never a session's end user: nothing more to look up then.)
      const told = await tellAvatarSession(event);
      try {
        // The visibility query cannot hold every character of a room name: only sessions whose room is
        // exactly this one count (`a'b` must not end the sessions of `ab`).
        if (!told && event.event === 'room_finished' && room) {
          for await (const s of sessions.listSessions({ running: true, roomName: room })) {
            if (s.roomName !== room) continue;
            if (await sessions.endSession(s.conversationId, 'room_finished')) ended.push(s.conversationId);
          }
        } else if (!told && event.event === 'participant_left' && room && event.participant?.identity) {
          for await (const s of sessions.listSessions({ running: true, roomName: room })) {
            if (s.roomName !== room) continue;
            const state = await sessions.getSession(s.conversationId);
            if (state?.roomName === room && state.endUserIdentity && state.endUserIdentity === event.participant.identity) {
              if (await sessions.endSession(s.conversationId, 'end_user_left')) ended.push(s.conversationId);
            }
          }
        }
      } catch (err) {
        seenEvents.release(eventKey);
        throw err;
      }
      metrics.webhooks.inc({ event: event.event || 'unknown', acted: ended.length || told ? 'yes' : 'no' });
      if (ended.length) req.log.info({ event: event.event, ended }, 'webhook ended sessions');
      return reply.send({ ok: true, ended });
    });
  });

  if (opts.demo) {
    registerDemoRoutes(app, { open: demoOpen, livekitUrl: config.livekit.publicUrl });
    // A subscribe-only LiveKit token for the session's room: the demo page joins with it. Only with the
    // demo: it hears everyone in the room, the end user's microphone included, so the production API
    // (src/api/main.ts) has no such route. The token is in the answer only, never in a log line.
    const viewerTtl = opts.viewerTokenTtlSeconds ?? 300;
    app.post('/v1/sessions/:conversationId/viewer-token', async (req, reply) => {
      const { conversationId } = parse(conversationIdParam, req.params, 'path');
      const state = await sessions.getSession(conversationId);
      if (!state) throw new ApiError(404, 'not_found', `no session for conversation ${conversationId}`);
      if (state.phase !== 'live') throw new ApiError(409, 'not_live', `the session is ${state.phase}, not live: there is nothing to watch`);
      const identity = `viewer-${randomBytes(6).toString('hex')}`;
      const token = await mintViewerToken(config.livekit, { roomName: state.roomName, identity, ttlSeconds: viewerTtl });
      return reply
        .header('cache-control', 'no-store')
        .send({ url: config.livekit.publicUrl, token, roomName: state.roomName, identity, expiresInSeconds: viewerTtl });
    });
    // A token to speak to a direct-mode avatar as the customer's agent would (byte streams on
    // lk.audio_stream and RPC, data only), for sessions the page started with agentIdentity
    // demo-agent-<conversationId>. The avatar plays audio from its session's agent only, so the token
    // moves nothing in any other session.
    app.post('/v1/sessions/:conversationId/demo-agent-token', async (req, reply) => {
      const { conversationId } = parse(conversationIdParam, req.params, 'path');
      const state = await sessions.getSession(conversationId);
      if (!state) throw new ApiError(404, 'not_found', `no session for conversation ${conversationId}`);
      if (state.phase !== 'live') throw new ApiError(409, 'not_live', `the session is ${state.phase}, not live: there is no avatar to speak to`);
      if (state.mode !== 'direct' || !state.avatarIdentity)
        throw new ApiError(409, 'not_direct', "only a direct-mode avatar takes an agent's audio (relay mode: Runway's own character speaks)");
      const token = await mintDemoAgentToken(config.livekit, { roomName: state.roomName, conversationId, ttlSeconds: viewerTtl });
      return reply.header('cache-control', 'no-store').send({
        url: config.livekit.publicUrl,
        token,
        roomName: state.roomName,
        identity: demoAgentIdentity(conversationId),
        avatarIdentity: state.avatarIdentity,
        expiresInSeconds: viewerTtl,
      });
    });
  }
  if (opts.codec) {
    registerCodecRoutes(app, {
      codec: opts.codec.codec,
      allowedOrigins: opts.codec.allowedOrigins,
      token: opts.codec.token,
      openOnLoopback: opts.codec.openOnLoopback,
    });
  }
  return app;
}

/**
 * GET /metrics (Prometheus text) on a listener of its own, so the API's port never serves it: keep
 * this port private to your scraper's network. Anything else is 404.
 */
export async function startMetricsServer(metrics: ApiMetrics, opts: { port: number; host?: string }): Promise<{ url: string; close: () => Promise<void> }> {
  const server = http.createServer({ requestTimeout: 10_000, headersTimeout: 10_000 }, (req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: GET /metrics\n');
      return;
    }
    metrics.registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
      () => res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics failed\n'),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host ?? '127.0.0.1', () => resolve());
  });
  const { address, port } = server.address() as import('node:net').AddressInfo;
  const host = address.includes(':') ? `[${address}]` : address;
  return {
    url: `http://${host}:${port}/metrics`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

export async function startApiServer(opts: ApiServerOptions): Promise<{ url: string; metricsUrl?: string; app: FastifyInstance; close: () => Promise<void> }> {
  const metrics = opts.metrics ?? new ApiMetrics({ countPhase: visibilityPhaseCounter(opts.sessions.client) });
  const app = await buildApiServer({ ...opts, metrics });
  const host = opts.host ?? '127.0.0.1';
  const url = await app.listen({ port: opts.port ?? opts.config.apiPort, host });
  let metricsServer: Awaited<ReturnType<typeof startMetricsServer>> | undefined;
  if (opts.metricsPort !== undefined) {
    try {
      metricsServer = await startMetricsServer(metrics, { port: opts.metricsPort, host: opts.metricsHost ?? host });
    } catch (err) {
      await app.close();
      throw err;
    }
  }
  return {
    url,
    metricsUrl: metricsServer?.url,
    app,
    close: async () => {
      await app.close();
      await metricsServer?.close();
    },
  };
}
