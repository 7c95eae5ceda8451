// The HTTP API backends and operators use: start, read, end and list sessions, LiveKit webhooks,
// health and metrics, and the remote codec for the Temporal UI.
//
// Auth: every route under /v1 but the LiveKit webhook needs `Authorization: Bearer $SESSION_API_TOKEN`,
// checked in constant time against the matched route (not the raw URL, so percent-encoding cannot
// dodge it). The webhook is authenticated by LiveKit's signature instead. `GET /healthz` and
// `GET /metrics` need no token (probes and Prometheus scrapers; the metrics carry no session data
// beyond counts) — keep the API port off the public internet or put /metrics behind your proxy.
// The codec routes check the token themselves (src/api/codec-routes.ts). With `demo.open` (the
// embedded stack without SESSION_API_TOKEN) the demo page's own same-origin requests from a loopback
// browser pass without a token (src/api/demo-routes.ts); a request that sends a token is always checked.
//
// Input is validated by the workflow's own schema (workflows/input.ts) before anything reaches
// Temporal or Runway; a rejected request (400/401/413/415) makes no Temporal call at all.
import { randomBytes } from 'node:crypto';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { TrackType, WebhookReceiver, type WebhookEvent } from 'livekit-server-sdk';
import type { Logger } from 'pino';
import type { PayloadCodec } from '@temporalio/common';
import { z } from 'zod';
import { InvalidInputError, sessionInputSchema, validateSessionInput } from '../../workflows/input';
import { SESSION_PHASES, type LiveInfo } from '../../workflows/types';
import { conversationOfIdentity } from '../../workflows/shared';
import type { SessionsClient } from '../client/sessions';
import type { ServiceConfig } from '../config';
import { demoAgentIdentity, mintDemoAgentToken, mintViewerToken } from '../livekit/tokens';
import { ApiMetrics, visibilityPhaseCounter } from '../metrics';
import { registerSecret } from '../redact';
import { bearerChecker } from './auth';
import { registerCodecRoutes } from './codec-routes';
import { loopbackBrowserRequest, registerDemoRoutes } from './demo-routes';

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
  /** Serve the remote codec for the Temporal UI under /codec. */
  codec?: { codec: PayloadCodec; allowedOrigins: string[]; requireToken: boolean };
  /** Default: a fresh registry whose running-session gauge reads Temporal visibility on scrape. */
  metrics?: ApiMetrics;
  /**
   * Serve the demo page under /demo/. `open`: the embedded dev stack without SESSION_API_TOKEN, where
   * the page's own same-origin requests from a loopback browser need no token (src/api/demo-routes.ts).
   */
  demo?: { open: boolean };
  /** Lifetime of the tokens `POST /v1/sessions/:id/viewer-token` mints (default 300 s). */
  viewerTokenTtlSeconds?: number;
}

const conversationIdParam = z.object({ conversationId: sessionInputSchema.shape.conversationId });
const listQuery = z.object({
  phase: z.enum(SESSION_PHASES, { message: `must be one of ${SESSION_PHASES.join(', ')}` }).optional(),
  running: z.enum(['true', 'false'], { message: 'must be true or false' }).optional(),
  room: z.string().min(1).max(256).optional(),
  limit: z.coerce.number({ message: 'must be a number' }).int('must be a whole number').min(1, 'must be at least 1').max(1000, 'must be at most 1000').default(100),
}).strict();
const startQuery = z.object({ wait: z.enum(['live'], { message: "the only value is 'live'" }).optional() }).strict();

const DEFAULT_BODY_LIMIT = 64 * 1024;
/** Routes anyone may call: probes, scrapers, and LiveKit (which signs its webhooks). */
const PUBLIC_ROUTES = new Set(['/healthz', '/metrics', '/v1/livekit/webhook']);

class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
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
  registerSecret(config.apiToken);
  registerSecret(config.livekit.apiSecret);
  const metrics = opts.metrics ?? new ApiMetrics({ countPhase: visibilityPhaseCounter(sessions.client) });
  const bodyLimit = opts.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const log = opts.log.child({ component: 'api' });
  const app: FastifyInstance = Fastify({
    loggerInstance: log as unknown as FastifyBaseLogger,
    bodyLimit,
    // Fastify's own request lines would carry the raw URL and headers; we log our own (below).
    logController: new LogController({ disableRequestLogging: true }),
  });
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
    if (route === '/healthz' || route === '/metrics' || route === '/' || route.startsWith('/demo')) req.log.debug(line, 'request');
    else req.log.info(line, 'request');
  });

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req, reply) => {
    if (err instanceof ApiError) return reply.code(err.status).send({ error: { code: err.code, message: err.message } });
    if (err instanceof InvalidInputError) return reply.code(400).send({ error: { code: 'invalid_input', message: err.message } });
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return reply.code(413).send({ error: { code: 'payload_too_large', message: `the body is over ${Math.round(bodyLimit / 1024)} KiB` } });
    if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return reply.code(415).send({ error: { code: 'unsupported_media_type', message: 'send the body as content-type: application/json' } });
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

  // ---- health, metrics -------------------------------------------------------------------------
  app.get('/healthz', async () => ({ ok: true }));
  app.get('/metrics', async (_req, reply) => reply.header('content-type', metrics.registry.contentType).send(await metrics.registry.metrics()));

  // ---- sessions --------------------------------------------------------------------------------
  app.post('/v1/sessions', async (req, reply) => {
    const { wait } = parse(startQuery, req.query, 'query');
    if (req.body === undefined || req.body === null || typeof req.body !== 'object' || Array.isArray(req.body)) {
      throw new ApiError(400, 'invalid_input', 'body: send the session as a JSON object');
    }
    const input = validateSessionInput(req.body); // the workflow's own schema: fields named, nothing reaches Temporal if bad
    const started = await sessions.startSession(input);
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
      return reply.code(status).send({ ...body, phase: state?.phase ?? 'failed', endReason: state?.endReason, error: state?.error ?? { code: 'not_live', message: 'the session ended before it was live' } });
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

  app.post('/v1/sessions/:conversationId/end', async (req, reply) => {
    const { conversationId } = parse(conversationIdParam, req.params, 'path');
    if (!(await sessions.endSession(conversationId, 'api'))) throw new ApiError(404, 'not_found', `no session for conversation ${conversationId}`);
    return reply.code(202).send({ conversationId, ending: true });
  });

  // A subscribe-only LiveKit token for the session's room: the demo page (or any front end of yours
  // that should only watch) joins with it. The token is in the answer only, never in a log line.
  const viewerTtl = opts.viewerTokenTtlSeconds ?? 300;
  app.post('/v1/sessions/:conversationId/viewer-token', async (req, reply) => {
    const { conversationId } = parse(conversationIdParam, req.params, 'path');
    const state = await sessions.getSession(conversationId);
    if (!state) throw new ApiError(404, 'not_found', `no session for conversation ${conversationId}`);
    if (state.phase !== 'live') throw new ApiError(409, 'not_live', `the session is ${state.phase}, not live: there is nothing to watch`);
    const identity = `viewer-${randomBytes(6).toString('hex')}`;
    const token = await mintViewerToken(config.livekit, { roomName: state.roomName, identity, ttlSeconds: viewerTtl });
    return reply.header('cache-control', 'no-store').send({ url: config.livekit.publicUrl, token, roomName: state.roomName, identity, expiresInSeconds: viewerTtl });
  });

  // Demo page only: a token to speak to a direct-mode avatar as the customer's agent would (byte streams
  // on lk.audio_stream and RPC, data only), for sessions the page started with agentIdentity
  // demo-agent-<conversationId>. The avatar plays audio from its session's agent only, so the token
  // moves nothing in any other session.
  if (opts.demo) {
    app.post('/v1/sessions/:conversationId/demo-agent-token', async (req, reply) => {
      const { conversationId } = parse(conversationIdParam, req.params, 'path');
      const state = await sessions.getSession(conversationId);
      if (!state) throw new ApiError(404, 'not_found', `no session for conversation ${conversationId}`);
      if (state.phase !== 'live') throw new ApiError(409, 'not_live', `the session is ${state.phase}, not live: there is no avatar to speak to`);
      if (state.mode !== 'direct' || !state.avatarIdentity) throw new ApiError(409, 'not_direct', 'only a direct-mode avatar takes an agent\'s audio (relay mode: Runway\'s own character speaks)');
      const token = await mintDemoAgentToken(config.livekit, { roomName: state.roomName, conversationId, ttlSeconds: viewerTtl });
      return reply.header('cache-control', 'no-store').send({ url: config.livekit.publicUrl, token, roomName: state.roomName, identity: demoAgentIdentity(conversationId), avatarIdentity: state.avatarIdentity, expiresInSeconds: viewerTtl });
    });
  }

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
    if (event.event !== 'participant_left' && !videoGone) return false;
    const conversationId = conversationOfIdentity(identity);
    if (!conversationId) return false;
    return await sessions.notifyAvatarRoomEvent(conversationId, {
      event: videoGone ? 'video_unpublished' : 'participant_left', roomName: room, identity, participantSid: event.participant!.sid,
    });
  }

  // ---- LiveKit webhooks: a session's room closing, or its end user leaving, ends the session ----
  // In its own scope: LiveKit signs the raw body, so JSON is kept as the string it arrived as here.
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
      const room = event.room?.name;
      const ended: string[] = [];
      // The direct avatar leaving, or no longer publishing video: its session hears it at once (by id, no lookup).
      // (A service avatar is never a session's end user: nothing more to look up then.)
      const told = await tellAvatarSession(event);
      if (!told && event.event === 'room_finished' && room) {
        for await (const s of sessions.listSessions({ running: true, roomName: room })) {
          if (await sessions.endSession(s.conversationId, 'room_finished')) ended.push(s.conversationId);
        }
      } else if (!told && event.event === 'participant_left' && room && event.participant?.identity) {
        for await (const s of sessions.listSessions({ running: true, roomName: room })) {
          const state = await sessions.getSession(s.conversationId);
          if (state?.endUserIdentity && state.endUserIdentity === event.participant.identity) {
            if (await sessions.endSession(s.conversationId, 'end_user_left')) ended.push(s.conversationId);
          }
        }
      }
      metrics.webhooks.inc({ event: event.event || 'unknown', acted: ended.length || told ? 'yes' : 'no' });
      if (ended.length) req.log.info({ event: event.event, ended }, 'webhook ended sessions');
      return reply.send({ ok: true, ended });
    });
  });

  if (opts.demo) registerDemoRoutes(app, { open: demoOpen, livekitUrl: config.livekit.publicUrl });
  if (opts.codec) {
    registerCodecRoutes(app, { codec: opts.codec.codec, allowedOrigins: opts.codec.allowedOrigins, token: opts.codec.requireToken ? config.apiToken : undefined });
  }
  return app;
}

export async function startApiServer(opts: ApiServerOptions): Promise<{ url: string; app: FastifyInstance; close: () => Promise<void> }> {
  const app = await buildApiServer(opts);
  const url = await app.listen({ port: opts.port ?? opts.config.apiPort, host: opts.host ?? '127.0.0.1' });
  return { url, app, close: () => app.close() };
}
