// The Runway realtime-session API over undici: one keep-alive agent, bounded timeouts, every answer
// validated, every failure classified into a RunwayError kind. No retries here: Temporal activities
// retry, using `retryable`, `retryAfterMs` and `kind`.
import { Agent, request, type Dispatcher } from 'undici';
import type { Logger } from 'pino';
import type { ZodType } from 'zod';
import { pinSecret, registerSecret } from '../redact';
import { RunwayError, classifyHttpError, type RunwayErrorKind } from './errors';
import {
  RUNWAY_CALL_DEADLINE_MS,
  RUNWAY_API_VERSION,
  RUNWAY_DEFAULT_BASE_URL,
  conversationPageSchema,
  conversationSchema,
  createResponseSchema,
  credentialsSchema,
  organizationSchema,
  realtimeSessionSchema,
  type AvatarConversation,
  type BackendCredentials,
  type ConsumeSessionResponse,
  type ConversationListParams,
  type ConversationPage,
  type ConversationSummary,
  type Organization,
  type RealtimeSession,
  type RealtimeSessionCreateParams,
  type RealtimeSessionCreateResponse,
} from './types';

export type RunwayEndpoint =
  'create' | 'status' | 'consume' | 'cancel' | 'connect_backend' | 'conversation' | 'conversations' | 'delete_conversation' | 'organization';

export interface RunwayRequestInfo {
  endpoint: RunwayEndpoint;
  method: string;
  /** HTTP status, when an answer arrived. */
  status?: number;
  durationMs: number;
  /** Set when the call failed. */
  errorKind?: RunwayErrorKind;
}

export interface RunwayClientOptions {
  apiKey: string;
  /** Default: RUNWAYML_BASE_URL, else https://api.dev.runwayml.com */
  baseUrl?: string;
  /** Replaces the client's own keep-alive Agent (tests pass a MockAgent). Not closed by close(). */
  dispatcher?: Dispatcher;
  /** Deadline for a whole call, headers and body (default 30 s). */
  timeoutMs?: number;
  /** Finer timeouts in ms: connect (default 5 s), time to response headers and between body chunks (default 15 s). */
  timeouts?: { connectMs?: number; headersMs?: number; bodyMs?: number };
  logger?: Logger;
  /** Metrics hook, called once per call. Exceptions it throws are ignored. */
  onRequest?: (info: RunwayRequestInfo) => void;
}

/** Failure codes that prove the request never reached Runway (safe to repeat, even a create). */
const NOT_SENT = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_CONNECT_TIMEOUT',
  'CERT_HAS_EXPIRED',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);
const TIMEOUTS = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'TimeoutError', 'AbortError', 'UND_ERR_ABORTED']);

interface Call<T> {
  endpoint: RunwayEndpoint;
  method: Dispatcher.HttpMethod;
  path: string;
  /** JSON request body. */
  body?: unknown;
  /** consume: the session key instead of the API key, and no version header (as @runwayml/avatars does). */
  sessionKey?: string;
  /** Absent for 204 endpoints. */
  schema?: ZodType<T>;
}

export class RunwayClient {
  readonly baseUrl: string;
  private readonly apiKey: string;
  private readonly dispatcher: Dispatcher;
  private readonly ownAgent?: Agent;
  private readonly timeoutMs: number;
  private readonly headersMs: number;
  private readonly bodyMs: number;
  private readonly logger?: Logger;
  private readonly onRequest?: (info: RunwayRequestInfo) => void;

  constructor(opts: RunwayClientOptions) {
    if (!opts.apiKey) throw new Error('RunwayClient needs an API key (RUNWAYML_API_SECRET)');
    this.apiKey = opts.apiKey;
    pinSecret(opts.apiKey);
    this.baseUrl = (opts.baseUrl ?? process.env.RUNWAYML_BASE_URL ?? RUNWAY_DEFAULT_BASE_URL).replace(/\/+$/, '');
    this.timeoutMs = opts.timeoutMs ?? RUNWAY_CALL_DEADLINE_MS;
    this.headersMs = opts.timeouts?.headersMs ?? 15_000;
    this.bodyMs = opts.timeouts?.bodyMs ?? 15_000;
    this.logger = opts.logger;
    this.onRequest = opts.onRequest;
    if (opts.dispatcher) {
      this.dispatcher = opts.dispatcher;
    } else {
      this.ownAgent = new Agent({ keepAliveTimeout: 30_000, connections: 64, connect: { timeout: opts.timeouts?.connectMs ?? 5_000 } });
      this.dispatcher = this.ownAgent;
    }
  }

  /** POST /v1/realtime_sessions. Not idempotent: a lost answer is `ambiguous` (the session may exist). */
  async createSession(params: RealtimeSessionCreateParams): Promise<RealtimeSessionCreateResponse> {
    // Tokens we hand to Runway could be echoed back in an error text.
    registerSecret(params.integration?.type === 'livekit' ? params.integration.token : params.integration?.signedUrl);
    registerSecret(params.livekit?.token);
    return this.call({ endpoint: 'create', method: 'POST', path: '/v1/realtime_sessions', body: params, schema: createResponseSchema });
  }

  /** GET /v1/realtime_sessions/{id}: one of the six status shapes. */
  async getSession(id: string): Promise<RealtimeSession> {
    const s = await this.call({ endpoint: 'status', method: 'GET', path: `/v1/realtime_sessions/${seg('status', id)}`, schema: realtimeSessionSchema });
    if (s.status === 'READY') registerSecret(s.sessionKey);
    return s;
  }

  /** POST /v1/realtime_sessions/{id}/consume with the session key (not the API key). Works once per session. */
  async consumeSession(id: string, sessionKey: string): Promise<ConsumeSessionResponse> {
    registerSecret(sessionKey);
    const creds = await this.call({
      endpoint: 'consume',
      method: 'POST',
      path: `/v1/realtime_sessions/${seg('consume', id)}/consume`,
      sessionKey,
      schema: credentialsSchema,
    });
    registerSecret(creds.token);
    return creds;
  }

  /** DELETE /v1/realtime_sessions/{id}: the session ends CANCELLED. */
  async cancelSession(id: string): Promise<void> {
    await this.call({ endpoint: 'cancel', method: 'DELETE', path: `/v1/realtime_sessions/${seg('cancel', id)}` });
  }

  /** POST /v1/realtime_sessions/{id}/connect_backend: credentials for a hidden backend participant. */
  async connectBackend(id: string): Promise<BackendCredentials> {
    const creds = await this.call({
      endpoint: 'connect_backend',
      method: 'POST',
      path: `/v1/realtime_sessions/${seg('connect_backend', id)}/connect_backend`,
      schema: credentialsSchema,
    });
    registerSecret(creds.token);
    return creds;
  }

  /** GET /v1/avatar_conversations/{id} (the session id): transcript, recording, failure. */
  async getConversation(id: string): Promise<AvatarConversation> {
    return this.call({ endpoint: 'conversation', method: 'GET', path: `/v1/avatar_conversations/${seg('conversation', id)}`, schema: conversationSchema });
  }

  /** GET /v1/avatar_conversations: one page; `nextCursor` is '' on the last one. */
  async listConversations(params: ConversationListParams = {}): Promise<ConversationPage> {
    const qs = new URLSearchParams();
    for (const key of ['cursor', 'limit', 'avatar', 'startDate', 'endDate'] as const) {
      const v = params[key];
      if (v !== undefined && v !== '') qs.set(key, String(v));
    }
    const q = qs.toString();
    return this.call({ endpoint: 'conversations', method: 'GET', path: `/v1/avatar_conversations${q ? `?${q}` : ''}`, schema: conversationPageSchema });
  }

  /** Every conversation matching `params`, following cursors to the last page. */
  async *iterateConversations(params: ConversationListParams = {}): AsyncGenerator<ConversationSummary, void, undefined> {
    const seen = new Set<string>();
    let cursor = params.cursor;
    for (;;) {
      const page = await this.listConversations({ ...params, cursor });
      yield* page.data;
      if (!page.nextCursor) return;
      // A cursor that comes back again would loop forever.
      if (seen.has(page.nextCursor)) {
        throw new RunwayError({
          kind: 'invalid_response',
          endpoint: 'conversations',
          retryable: false,
          message: 'Runway conversations returned a cursor it had returned before (nextCursor)',
        });
      }
      seen.add(page.nextCursor);
      cursor = page.nextCursor;
    }
  }

  /** DELETE /v1/avatar_conversations/{id}: the conversation and its data. */
  async deleteConversation(id: string): Promise<void> {
    await this.call({ endpoint: 'delete_conversation', method: 'DELETE', path: `/v1/avatar_conversations/${seg('delete_conversation', id)}` });
  }

  /** GET /v1/organization: tier limits per model (gwm1_avatars' maxConcurrentGenerations = the concurrency limit). */
  async getOrganization(): Promise<Organization> {
    return this.call({ endpoint: 'organization', method: 'GET', path: '/v1/organization', schema: organizationSchema });
  }

  /** Closes the client's own connection pool (an injected dispatcher is left alone). */
  async close(): Promise<void> {
    await this.ownAgent?.close();
  }

  private async call<T = void>(c: Call<T>): Promise<T> {
    const started = Date.now();
    const finish = (status?: number, error?: RunwayError): void => {
      const info: RunwayRequestInfo = { endpoint: c.endpoint, method: c.method, status, durationMs: Date.now() - started, errorKind: error?.kind };
      try {
        this.onRequest?.(info);
      } catch {
        // metrics must never break a call
      }
      if (error) this.logger?.warn({ ...info, retryable: error.retryable, err: error }, 'runway call failed');
      else this.logger?.debug(info, 'runway call');
    };
    const fail = (error: RunwayError): never => {
      finish(error.status, error);
      throw error;
    };

    const headers: Record<string, string> = { accept: 'application/json' };
    if (c.sessionKey !== undefined) {
      headers.authorization = `Bearer ${c.sessionKey}`;
      headers['content-type'] = 'application/json';
    } else {
      headers.authorization = `Bearer ${this.apiKey}`;
      headers['x-runway-version'] = RUNWAY_API_VERSION;
    }
    if (c.body !== undefined) headers['content-type'] = 'application/json';

    let res: Dispatcher.ResponseData;
    try {
      res = await request(this.baseUrl + c.path, {
        method: c.method,
        headers,
        body: c.body !== undefined ? JSON.stringify(c.body) : undefined,
        dispatcher: this.dispatcher,
        headersTimeout: this.headersMs,
        bodyTimeout: this.bodyMs,
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      return fail(transportError(c.endpoint, err, undefined));
    }

    let text: string;
    try {
      text = await res.body.text();
    } catch (err) {
      // Headers arrived, the body did not: an error status is still classifiable without it.
      if (res.statusCode >= 400) return fail(classifyHttpError(c.endpoint, res.statusCode, undefined, res.headers));
      return fail(transportError(c.endpoint, err, res.statusCode));
    }

    let body: unknown;
    let isJson = true;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = text;
      isJson = false;
    }
    if (res.statusCode >= 400) return fail(classifyHttpError(c.endpoint, res.statusCode, body, res.headers));
    if (res.statusCode < 200 || res.statusCode >= 300) {
      // 1xx/3xx (redirects are not followed): nothing was done, even for a create.
      return fail(
        new RunwayError({
          kind: 'invalid_response',
          endpoint: c.endpoint,
          status: res.statusCode,
          retryable: false,
          message: `Runway ${c.endpoint} answered with unexpected status ${res.statusCode}`,
        }),
      );
    }
    if (!c.schema) {
      finish(res.statusCode);
      return undefined as T;
    }
    if (!isJson) return fail(invalidResponse(c.endpoint, res.statusCode, 'body is not JSON'));
    const parsed = c.schema.safeParse(body);
    if (!parsed.success) {
      const what = parsed.error.issues
        .slice(0, 3)
        .map((i) => `${i.path.length ? i.path.join('.') : '(body)'}: ${i.message}`)
        .join('; ');
      return fail(invalidResponse(c.endpoint, res.statusCode, what));
    }
    finish(res.statusCode);
    return parsed.data;
  }
}

/** A path segment; an empty id would silently address the collection instead. */
function seg(endpoint: RunwayEndpoint, id: string): string {
  if (!id) throw new RunwayError({ kind: 'invalid_request', endpoint, retryable: false, message: `Runway ${endpoint} needs a non-empty id` });
  return encodeURIComponent(id);
}

/** A 2xx whose body is unusable. For create it is `ambiguous`: Runway said yes, so a session may exist. */
function invalidResponse(endpoint: RunwayEndpoint, status: number, what: string): RunwayError {
  if (endpoint === 'create') {
    return new RunwayError({
      kind: 'ambiguous',
      endpoint,
      status,
      retryable: false,
      message: `Runway create answered ${status} with an invalid body (${what}); a session may have been created`,
    });
  }
  return new RunwayError({
    kind: 'invalid_response',
    endpoint,
    status,
    retryable: false,
    message: `Runway ${endpoint} answered ${status} with an invalid body: ${what}`,
  });
}

/**
 * A call that got no (complete) answer. If the request provably never left (connection refused, DNS,
 * connect timeout) it is `unavailable` for every endpoint. Otherwise a create may have happened:
 * `ambiguous`; every other call is safe to repeat: `unavailable`.
 */
function transportError(endpoint: RunwayEndpoint, err: unknown, status: number | undefined): RunwayError {
  const e = err as { code?: unknown; name?: string; message?: string };
  // A DOMException (our deadline's TimeoutError) has a numeric legacy code: use its name.
  const code = typeof e.code === 'string' ? e.code : (e.name ?? 'Error');
  const timedOut = TIMEOUTS.has(code) || TIMEOUTS.has(e.name ?? '');
  const what = timedOut ? `timed out (${code})` : `connection failed (${code}${e.message ? `: ${e.message}` : ''})`;
  if (endpoint === 'create' && !NOT_SENT.has(code)) {
    return new RunwayError({
      kind: 'ambiguous',
      endpoint,
      status,
      retryable: false,
      message: `Runway create ${what} after the request was sent; a session may have been created`,
    });
  }
  return new RunwayError({ kind: 'unavailable', endpoint, status, retryable: true, message: `Runway ${endpoint} ${what}` });
}
