// The HTTP API backends and operators use: start, read, end and list sessions, LiveKit webhooks,
// health and metrics, and the remote codec for the Temporal UI. Every route under /v1 (but the
// webhook, which LiveKit signs) needs `Authorization: Bearer $SESSION_API_TOKEN`. Input is validated
// by the workflow's own schema before anything reaches Temporal or Runway.
import { createHash, timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { WebhookReceiver } from 'livekit-server-sdk';
import type { Logger } from 'pino';
import type { PayloadCodec } from '@temporalio/common';
import { z } from 'zod';
import { InvalidInputError, sessionInputSchema, validateSessionInput } from '../../workflows/input';
import type { LiveInfo, SessionPhase } from '../../workflows/types';
import type { SessionsClient } from '../client/sessions';
import type { ServiceConfig } from '../config';
import { ApiMetrics } from '../metrics';
import { registerCodecRoutes } from './codec-routes';

export interface ApiServerOptions {
  config: Pick<ServiceConfig, 'apiToken' | 'apiPort' | 'livekit'>;
  sessions: SessionsClient;
  log: Logger;
  host?: string;
  /** Overrides config.apiPort (0 picks a free port). */
  port?: number;
  /** How long `?wait=live` holds the answer before a 202 (default 30 s). */
  waitLiveMs?: number;
  /** Serve the remote codec for the Temporal UI under /codec. */
  codec?: { codec: PayloadCodec; allowedOrigins: string[]; requireToken: boolean };
  metrics?: ApiMetrics;
}

const PHASES: SessionPhase[] = ['waiting_capacity', 'creating', 'waiting_ready', 'consuming', 'bridging', 'live', 'tearing_down', 'completed', 'failed'];
const conversationIdParam = z.object({ conversationId: sessionInputSchema.shape.conversationId });
const listQuery = z.object({
  phase: z.enum(PHASES as [SessionPhase, ...SessionPhase[]], { message: `must be one of ${PHASES.join(', ')}` }).optional(),
  running: z.enum(['true', 'false']).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});
const startQuery = z.object({ wait: z.enum(['live'], { message: "the only value is 'live'" }).optional() });

class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

function zodMessage(err: z.ZodError, where: string): string {
  return err.issues.map((i) => `${[where, ...i.path].filter(Boolean).join('.')}: ${i.message}`).join('; ');
}

function parse<T>(schema: z.ZodType<T>, value: unknown, where: string): T {
  const res = schema.safeParse(value);
  if (!res.success) throw new ApiError(400, 'invalid_request', zodMessage(res.error, where));
  return res.data;
}

const digest = (s: string) => createHash('sha256').update(s).digest();

export async function buildApiServer(opts: ApiServerOptions): Promise<FastifyInstance> {
  const { sessions, config } = opts;
  const metrics = opts.metrics ?? new ApiMetrics();
  const app: FastifyInstance = Fastify({ loggerInstance: opts.log.child({ component: 'api' }) as unknown as FastifyBaseLogger, bodyLimit: 64 * 1024, disableRequestLogging: true });
  const expectedAuth = config.apiToken ? digest(`Bearer ${config.apiToken}`) : undefined;
  const webhooks = new WebhookReceiver(config.livekit.apiKey, config.livekit.apiSecret);
  const waitLiveMs = opts.waitLiveMs ?? 30_000;

  // LiveKit signs the raw body: keep it as a string for the webhook route.
  app.addContentTypeParser('application/webhook+json', { parseAs: 'string' }, (_req, body, done) => done(null, body));

  app.addHook('onRequest', async (req: FastifyRequest) => {
    (req as FastifyRequest & { startedAt?: bigint }).startedAt = process.hrtime.bigint();
    if (!req.url.startsWith('/v1/') || req.url.startsWith('/v1/livekit/webhook')) return;
    if (!expectedAuth) throw new ApiError(503, 'not_configured', 'SESSION_API_TOKEN is not set: the API refuses every request until it is');
    if (!timingSafeEqual(digest(req.headers.authorization ?? ''), expectedAuth)) {
      throw new ApiError(401, 'unauthorized', 'missing or wrong bearer token: send Authorization: Bearer $SESSION_API_TOKEN');
    }
  });
  app.addHook('onResponse', async (req: FastifyRequest, reply: FastifyReply) => {
    const started = (req as FastifyRequest & { startedAt?: bigint }).startedAt;
    metrics.observeRequest(req.routeOptions.url ?? 'unknown', req.method, reply.statusCode, started ? Number(process.hrtime.bigint() - started) / 1e9 : 0);
  });

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req, reply) => {
    if (err instanceof ApiError) return reply.code(err.status).send({ error: { code: err.code, message: err.message } });
    if (err instanceof InvalidInputError) return reply.code(400).send({ error: { code: 'invalid_input', message: err.message } });
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return reply.code(413).send({ error: { code: 'payload_too_large', message: 'the body is over 64 KiB' } });
    if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
      return reply.code(err.statusCode).send({ error: { code: 'bad_request', message: err.message } });
    }
    req.log.error({ err }, 'request failed');
    return reply.code(500).send({ error: { code: 'internal', message: 'internal error; see the service logs' } });
  });
  app.setNotFoundHandler((req, reply) => reply.code(404).send({ error: { code: 'not_found', message: `no route ${req.method} ${req.url.split('?')[0]}` } }));

  // ---- health, metrics -------------------------------------------------------------------------
  app.get('/healthz', async () => ({ ok: true }));
  app.get('/metrics', async (_req, reply) => reply.header('content-type', metrics.registry.contentType).send(await metrics.registry.metrics()));

  // ---- sessions --------------------------------------------------------------------------------
  app.post('/v1/sessions', async (req, reply) => {
    const { wait } = parse(startQuery, req.query, 'query');
    if (req.body === undefined || req.body === null || typeof req.body !== 'object') throw new ApiError(400, 'invalid_input', 'body: send the session as a JSON object');
    const input = validateSessionInput(req.body); // the workflow's own schema: fields named, nothing reaches Temporal if bad
    const started = await sessions.startSession(input);
    if (started.started) metrics.sessionsStarted.inc({ mode: input.mode ?? 'auto' });
    const body = { conversationId: started.conversationId, workflowId: started.workflowId, runId: started.runId };
    const status = started.started ? 201 : 200;
    if (wait !== 'live') return reply.code(status).send(body);

    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      sessions.waitLive(input.conversationId).then((live) => ({ live }), (err: Error) => ({ err })),
      new Promise<{ pending: true }>((r) => (timer = setTimeout(() => r({ pending: true }), waitLiveMs))),
    ]).finally(() => clearTimeout(timer));
    if ('pending' in outcome) return reply.code(202).send({ ...body, phase: (await sessions.getSession(input.conversationId))?.phase });
    if ('err' in outcome) {
      const state = await sessions.getSession(input.conversationId);
      return reply.code(status).send({ ...body, phase: state?.phase ?? 'failed', error: state?.error ?? { code: 'not_live', message: outcome.err.message } });
    }
    return reply.code(status).send({ ...body, phase: 'live', live: joinInfo(outcome.live) });
  });

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

  app.get('/v1/sessions', async (req, reply) => {
    const q = parse(listQuery, req.query, 'query');
    const out = [];
    for await (const s of sessions.listSessions({ phase: q.phase, running: q.running === 'true' ? true : undefined })) {
      out.push(s);
      if (out.length >= q.limit) break;
    }
    return reply.send({ sessions: out });
  });

  // ---- LiveKit webhooks: a session's room closing ends the session ----------------------------
  app.post('/v1/livekit/webhook', async (req, reply) => {
    const raw = typeof req.body === 'string' ? req.body : JSON.stringify(req.body ?? {});
    let event;
    try {
      event = await webhooks.receive(raw, req.headers.authorization);
    } catch (err) {
      throw new ApiError(401, 'bad_signature', `webhook signature check failed: ${(err as Error).message}`);
    }
    if (event.event === 'room_finished' && event.room?.name) {
      const ended: string[] = [];
      for await (const s of sessions.listSessions({ running: true, roomName: event.room.name })) {
        await sessions.endSession(s.conversationId, 'room_finished');
        ended.push(s.conversationId);
      }
      metrics.webhooks.inc({ event: event.event, acted: ended.length ? 'yes' : 'no' });
      return reply.send({ ok: true, ended });
    }
    if (event.event === 'participant_left' && event.room?.name && event.participant?.identity) {
      const ended: string[] = [];
      for await (const s of sessions.listSessions({ running: true, roomName: event.room.name })) {
        const state = await sessions.getSession(s.conversationId);
        if (state?.endUserIdentity && state.endUserIdentity === event.participant.identity) {
          await sessions.endSession(s.conversationId, 'end_user_left');
          ended.push(s.conversationId);
        }
      }
      metrics.webhooks.inc({ event: event.event, acted: ended.length ? 'yes' : 'no' });
      return reply.send({ ok: true, ended });
    }
    metrics.webhooks.inc({ event: event.event, acted: 'no' });
    return reply.send({ ok: true, ended: [] });
  });

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
