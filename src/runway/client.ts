// The Runway realtime-session API over undici: one keep-alive agent, bounded timeouts, every answer
// validated, every failure classified into a RunwayError kind. No retries here: Temporal retries.
import { Agent, request, type Dispatcher } from 'undici';
import type { ZodType } from 'zod';
import { registerSecret } from '../redact';
import { RunwayError, classifyHttpError } from './errors';
import {
  RUNWAY_API_VERSION, RUNWAY_DEFAULT_BASE_URL, conversationListSchema, conversationSchema, createResponseSchema,
  credentialsSchema, organizationSchema, realtimeSessionSchema,
  type Conversation, type ConversationListParams, type Organization, type RealtimeSession, type RealtimeSessionCreateParams, type RoomCredentials,
} from './types';

export interface RunwayClientOptions {
  apiKey: string;
  /** Default: RUNWAYML_BASE_URL, else https://api.dev.runwayml.com */
  baseUrl?: string;
  dispatcher?: Dispatcher;
  /** Connect / headers / body timeouts in ms (default 5 s / 15 s / 15 s). */
  timeouts?: { connectMs?: number; headersMs?: number; bodyMs?: number };
  /** Metrics hook, called once per request. */
  onRequest?: (info: { endpoint: string; method: string; status?: number; durationMs: number; errorKind?: string }) => void;
}

let sharedAgent: Agent | undefined;
function defaultAgent(connectMs: number): Agent {
  sharedAgent ??= new Agent({ keepAliveTimeout: 30_000, connections: 64, connect: { timeout: connectMs } });
  return sharedAgent;
}

/** Errors that prove the request never reached the server. */
const NOT_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT', 'EHOSTUNREACH', 'ENETUNREACH']);

export class RunwayClient {
  private readonly baseUrl: string;
  private readonly dispatcher: Dispatcher;
  private readonly headersMs: number;
  private readonly bodyMs: number;

  constructor(private readonly opts: RunwayClientOptions) {
    if (!opts.apiKey) throw new Error('RunwayClient needs an API key (RUNWAYML_API_SECRET)');
    registerSecret(opts.apiKey);
    this.baseUrl = (opts.baseUrl ?? process.env.RUNWAYML_BASE_URL ?? RUNWAY_DEFAULT_BASE_URL).replace(/\/+$/, '');
    this.dispatcher = opts.dispatcher ?? defaultAgent(opts.timeouts?.connectMs ?? 5000);
    this.headersMs = opts.timeouts?.headersMs ?? 15_000;
    this.bodyMs = opts.timeouts?.bodyMs ?? 15_000;
  }

  async createSession(params: RealtimeSessionCreateParams): Promise<{ id: string }> {
    return this.call('create', 'POST', '/v1/realtime_sessions', { body: params, schema: createResponseSchema, ambiguousOnLoss: true });
  }

  async getSession(id: string): Promise<RealtimeSession> {
    const s = await this.call('status', 'GET', `/v1/realtime_sessions/${encodeURIComponent(id)}`, { schema: realtimeSessionSchema });
    if (s.status === 'READY') registerSecret(s.sessionKey);
    return s;
  }

  /** Consumes a READY session with its session key (not the API key). Works once per session. */
  async consumeSession(id: string, sessionKey: string): Promise<RoomCredentials> {
    registerSecret(sessionKey);
    const creds = await this.call('consume', 'POST', `/v1/realtime_sessions/${encodeURIComponent(id)}/consume`, {
      body: {},
      bearer: sessionKey,
      schema: credentialsSchema,
    });
    registerSecret(creds.token);
    return creds;
  }

  async cancelSession(id: string): Promise<void> {
    await this.call('cancel', 'DELETE', `/v1/realtime_sessions/${encodeURIComponent(id)}`, {});
  }

  async connectBackend(id: string): Promise<RoomCredentials> {
    const creds = await this.call('connect_backend', 'POST', `/v1/realtime_sessions/${encodeURIComponent(id)}/connect_backend`, { body: {}, schema: credentialsSchema });
    registerSecret(creds.token);
    return creds;
  }

  async getConversation(id: string): Promise<Conversation> {
    return this.call('conversation', 'GET', `/v1/avatar_conversations/${encodeURIComponent(id)}`, { schema: conversationSchema });
  }

  async listConversations(params: ConversationListParams = {}): Promise<{ data: Conversation[]; nextCursor?: string | null }> {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') qs.set(k, String(v));
    const q = qs.toString();
    return this.call('conversations', 'GET', `/v1/avatar_conversations${q ? `?${q}` : ''}`, { schema: conversationListSchema });
  }

  /** Every conversation matching `params`, following cursors until the last page. */
  async *iterateConversations(params: Omit<ConversationListParams, 'cursor'> = {}): AsyncGenerator<Conversation> {
    let cursor: string | undefined;
    do {
      const page = await this.listConversations({ ...params, cursor });
      yield* page.data;
      cursor = page.nextCursor || undefined;
    } while (cursor);
  }

  async deleteConversation(id: string): Promise<void> {
    await this.call('delete_conversation', 'DELETE', `/v1/avatar_conversations/${encodeURIComponent(id)}`, {});
  }

  async getOrganization(): Promise<Organization> {
    return this.call('organization', 'GET', '/v1/organization', { schema: organizationSchema });
  }

  private async call<T>(
    endpoint: string,
    method: Dispatcher.HttpMethod,
    path: string,
    opts: { body?: unknown; bearer?: string; schema?: ZodType<T>; ambiguousOnLoss?: boolean },
  ): Promise<T> {
    const started = Date.now();
    const report = (status?: number, errorKind?: string) => this.opts.onRequest?.({ endpoint, method, status, durationMs: Date.now() - started, errorKind });
    const headers: Record<string, string> = {
      authorization: `Bearer ${opts.bearer ?? this.opts.apiKey}`,
      'x-runway-version': RUNWAY_API_VERSION,
      accept: 'application/json',
    };
    if (opts.body !== undefined) headers['content-type'] = 'application/json';

    let res: Dispatcher.ResponseData;
    let text: string;
    try {
      res = await request(this.baseUrl + path, {
        method,
        headers,
        body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined,
        dispatcher: this.dispatcher,
        headersTimeout: this.headersMs,
        bodyTimeout: this.bodyMs,
      });
      text = await res.body.text();
    } catch (err) {
      const code = (err as { code?: string }).code ?? (err as Error).name;
      const sent = !NOT_SENT.has(code);
      const kind = opts.ambiguousOnLoss && sent ? 'ambiguous' : 'unavailable';
      report(undefined, kind);
      throw new RunwayError({
        kind,
        endpoint,
        retryable: kind === 'unavailable',
        message: kind === 'ambiguous'
          ? `Runway ${endpoint}: the connection failed after the request was sent (${code}); a session may have been created`
          : `Runway ${endpoint}: ${code} (${(err as Error).message})`,
      });
    }

    let body: unknown = undefined;
    if (text) {
      try {
        body = JSON.parse(text);
      } catch {
        body = text;
      }
    }
    if (res.statusCode >= 400) {
      const error = classifyHttpError(endpoint, res.statusCode, body, res.headers);
      report(res.statusCode, error.kind);
      throw error;
    }
    report(res.statusCode);
    if (!opts.schema) return undefined as T;
    const parsed = opts.schema.safeParse(body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new RunwayError({
        kind: 'invalid_response',
        endpoint,
        status: res.statusCode,
        retryable: false,
        message: `Runway ${endpoint} answered ${res.statusCode} with an unexpected body: ${issue.path.join('.') || '(root)'}: ${issue.message}`,
      });
    }
    return parsed.data;
  }
}
