// A Runway realtime-session API simulator: the same endpoints, validation, error bodies and status
// machine as the contract (shared/runway-realtime-api.md), with seeded fault injection, a ledger of
// every request and session, and invariant checks. Its avatars are real LiveKit participants.
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import type { AddressInfo, Socket } from 'node:net';
import { AccessToken, RoomServiceClient } from 'livekit-server-sdk';
import type { AvatarMedia, SimAvatar, StartSimAvatar } from './avatar-api';

// Runway's preset list as the simulator's own copy, not src/runway/constants.ts's: a stand-in that
// agreed with our list by construction could not catch it drifting from Runway's.
export const SIM_PRESET_IDS = [
  'game-character',
  'music-superstar',
  'game-character-man',
  'cat-character',
  'influencer',
  'tennis-coach',
  'human-resource',
  'fashion-designer',
  'cooking-teacher',
];

export type SimEndpoint =
  'create' | 'status' | 'consume' | 'cancel' | 'connect_backend' | 'conversation' | 'conversations' | 'delete_conversation' | 'organization';

export interface SessionBehavior {
  /** Time in NOT_READY after any queueing. */
  provisioningMs: number;
  /** Time in NOT_READY with queued:true first. */
  queuedMs: number;
  /** How long READY lasts before it expires unconsumed. */
  readyTtlMs: number;
  /** Inject FAILED this long after create. */
  failAfterMs?: number;
  failureCode: string;
  avatarMedia: AvatarMedia;
  /** Integration sessions: false = the avatar never joins the customer's room. */
  joinCustomerRoom: boolean;
  /** Runway cuts a RUNNING session after this long, whatever maxDuration says. */
  runtimeCapSeconds: number;
  /**
   * Simulated seconds per real second for maxDuration, the runtime cap and the reported `duration`
   * (default 1). 100 lets a test see a 10 s maxDuration end after 100 ms.
   */
  timeScale?: number;
  /** Create succeeds but its answer is lost (the connection drops): exactly this session, deterministically. */
  loseAnswer?: boolean;
  /**
   * Relay sessions (consumed): simulated seconds between two exchanges (a user turn and the
   * character's answer), each recorded in the session's transcript and sent as transcript segments on
   * the data channel, as Runway's character does (default 20; 0: none). Scaled by timeScale.
   */
  turnIntervalSeconds?: number;
  /** How long after the session ended its conversation still reads `in_progress` (Runway finalizing the transcript). */
  transcriptFinalizeMs?: number;
  /** false: an `in_progress` conversation shows no transcript yet (whether Runway shows it early is unverified). Default true. */
  transcriptWhileInProgress?: boolean;
}

export interface FaultSpec {
  status5xxRate?: number;
  status429Rate?: number;
  /** With a 429: Retry-After in seconds (header `retry-after`)… */
  retryAfterSeconds?: number;
  /** …or in ms (header `retry-after-ms`). */
  retryAfterMs?: number;
  resetRate?: number;
  latencyMs?: number;
  /** create only: the session is created, then the connection drops before the answer. */
  loseAnswerRate?: number;
  /**
   * A 4xx answer without acting on the request, e.g. 401 while an API key is being rotated, or 400 for
   * a DELETE racing the session's own end.
   */
  clientError?: { status: 400 | 401 | 403 | 404 | 409; rate: number; error?: string };
}

export interface Account {
  livekitIntegration: boolean;
  maxConcurrentSessions: number;
  concurrencyLimitStatus: 429 | 400;
  /**
   * What `GET /v1/organization` answers (the contract calls it a hint that may be missing or refused):
   * `full` the tier with `gwm1_avatars`' limit; `not_found` 404; `forbidden` 403 (a key without the
   * scope); `without_avatars` a tier that lists other models only; `malformed` a body that is not
   * the organization shape.
   */
  organization: 'full' | 'not_found' | 'forbidden' | 'without_avatars' | 'malformed';
}

export interface SimConfig {
  defaults: Partial<SessionBehavior>;
  faults: Partial<Record<SimEndpoint | '*', FaultSpec>>;
}

export interface RunwaySimulatorOptions {
  port?: number;
  host?: string;
  apiKey?: string;
  controlToken?: string;
  /** "Runway's LiveKit": where consumed sessions' rooms live. */
  livekit?: { url: string; apiKey: string; apiSecret: string };
  seed?: number;
  defaults?: Partial<SessionBehavior>;
  faults?: SimConfig['faults'];
  account?: Partial<Account>;
  /** The avatar implementation (default: the real rtc-node one). */
  startAvatar?: StartSimAvatar;
}

type Status = 'NOT_READY' | 'READY' | 'RUNNING' | 'COMPLETED' | 'FAILED' | 'CANCELLED';
const TERMINAL: Status[] = ['COMPLETED', 'FAILED', 'CANCELLED'];

export interface SimSession {
  id: string;
  createdAt: string;
  body: Record<string, unknown>;
  behavior: SessionBehavior;
  status: Status;
  queued: boolean;
  history: { status: Status; at: string }[];
  sessionKey?: string;
  expiresAt?: string;
  consumedAt?: string;
  runningAt?: string;
  endedAt?: string;
  endedBy?: 'END_CALL' | 'DELETE' | 'max_duration' | 'runtime_cap' | 'failure' | 'expiry' | 'avatar_left';
  failure?: string;
  failureCode?: string;
  roomName?: string;
  integration?: { url: string; token: string; roomName: string; agentIdentity?: string };
  /** What was said (relay sessions): the opening line, then simulated exchanges. */
  transcript: { role: 'user' | 'assistant'; content: string; timestamp: string }[];
}

export interface SimRequest {
  endpoint: SimEndpoint | 'unknown';
  method: string;
  path: string;
  status: number | 'reset';
  sessionId?: string;
  at: string;
  faultInjected?: string;
}

const DEFAULT_BEHAVIOR: SessionBehavior = {
  provisioningMs: 1000,
  queuedMs: 0,
  readyTtlMs: 60_000,
  failureCode: 'INTERNAL.SIMULATED',
  avatarMedia: 'light',
  joinCustomerRoom: true,
  runtimeCapSeconds: 300,
  timeScale: 1,
  turnIntervalSeconds: 20,
  transcriptFinalizeMs: 0,
};

/** What the simulated character says when a session has no startScript (Runway: the avatar's default opening line). */
export const SIM_DEFAULT_GREETING = 'Hello! I am a simulated Runway avatar.';

/** Runway's own avatar worker: its identity in its room starts with `worker:` (contract). */
const WORKER_IDENTITY_PREFIX = 'worker:';
const BACKEND_IDENTITY_PREFIX = 'backend-';

/** Deterministic PRNG (mulberry32): the same seed gives the same fault sequence. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const INVALID_JSON = Symbol.for('invalid-json');
const CREATE_KEYS = ['model', 'avatar', 'integration', 'livekit', 'maxDuration', 'personality', 'startScript', 'tools'];

function identityOf(token: string): string | undefined {
  try {
    return (JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as { sub?: string }).sub;
  } catch {
    return undefined;
  }
}

export async function startRunwaySimulator(opts: RunwaySimulatorOptions = {}) {
  const apiKey = opts.apiKey ?? `key_${randomBytes(24).toString('hex')}`;
  const controlToken = opts.controlToken ?? randomBytes(16).toString('hex');
  const config: SimConfig = { defaults: { ...opts.defaults }, faults: { ...opts.faults } };
  const account: Account = { livekitIntegration: true, maxConcurrentSessions: 20, concurrencyLimitStatus: 429, organization: 'full', ...opts.account };
  let random = mulberry32(opts.seed ?? 1);
  const sessions = new Map<string, SimSession>();
  const requests: SimRequest[] = [];
  const violations: string[] = [];
  const timers = new Map<string, NodeJS.Timeout[]>();
  /** A session's avatars: one, or two when an integration session is also consumed. */
  const avatars = new Map<string, SimAvatar[]>();
  const queue: Partial<SessionBehavior>[] = [];
  let createIndex = 0;
  let maxConcurrentObserved = 0;
  /** Create answers still to hold (holdCreateAnswers), and the ones held now. */
  let holdCreates = 0;
  const held: { sessionId: string; release: (how: 'deliver' | 'reset') => void }[] = [];
  /** Sessions this client cancelled (DELETE), to catch operations on them afterwards. */
  const cancelledByClient = new Set<string>();
  /** Consume answers delivered (200 sent), by session: a later consume of the same session is a repeat. */
  const consumeDelivered = new Set<string>();
  let repeatConsumes = 0;
  /** Set by stop(): no new timers, no new avatars. */
  let closed = false;
  /** Set once a pion avatar started: stop() then stops the shared light-avatars process. */
  let pionUsed = false;
  const lazyAvatar = async (media: AvatarMedia): Promise<StartSimAvatar> => {
    if (media === 'pion') {
      pionUsed = true;
      return (await import('./pion-avatar')).startPionAvatar;
    }
    return opts.startAvatar ?? (await import('./avatar')).startSimAvatar;
  };
  const rooms = opts.livekit ? new RoomServiceClient(opts.livekit.url.replace(/^ws/, 'http'), opts.livekit.apiKey, opts.livekit.apiSecret) : undefined;

  const active = () => [...sessions.values()].filter((s) => !TERMINAL.includes(s.status));
  const now = () => new Date().toISOString();
  const later = (id: string, ms: number, fn: () => void) => {
    if (closed) return;
    const t = setTimeout(fn, Math.max(0, ms));
    timers.set(id, [...(timers.get(id) ?? []), t]);
  };

  function transition(s: SimSession, status: Status, extra: Partial<SimSession> = {}): void {
    if (TERMINAL.includes(s.status) || s.status === status) return;
    Object.assign(s, extra);
    s.status = status;
    s.history.push({ status, at: now() });
    if (status === 'RUNNING') {
      s.runningAt = now();
      const maxDuration = Number(s.body.maxDuration ?? 300);
      const capped = s.behavior.runtimeCapSeconds < maxDuration;
      later(s.id, (Math.min(maxDuration, s.behavior.runtimeCapSeconds) * 1000) / scaleOf(s), () =>
        end(s, 'COMPLETED', capped ? 'runtime_cap' : 'max_duration'),
      );
      later(s.id, 300, () => converse(s));
    }
  }

  /** Something the session's avatar says on the data channel (topic 'runway'); a transcript segment is also recorded. */
  function say(s: SimSession, msg: { type: string; role?: 'user' | 'assistant'; content?: string; [k: string]: unknown }): void {
    if (TERMINAL.includes(s.status)) return;
    if (msg.type === 'transcript' && msg.role && msg.content) s.transcript.push({ role: msg.role, content: msg.content, timestamp: now() });
    void avatars
      .get(s.id)
      ?.at(-1)
      ?.sendData(msg)
      .catch(() => undefined);
  }

  /**
   * Once RUNNING: a client_event tool call; and in Runway's own room (relay, where Runway's character
   * converses) the opening line (startScript; absent: the avatar's default; '': none), then an exchange
   * every turnIntervalSeconds.
   */
  function converse(s: SimSession): void {
    // The client can join (RUNNING) while the avatar is still publishing its tracks: it speaks once it is up.
    if (s.behavior.avatarMedia !== 'off' && !avatars.get(s.id)?.length) return void later(s.id, 100, () => converse(s));
    say(s, { type: 'client_event', name: 'show_card', args: { title: 'simulated' } });
    if (!s.consumedAt) return;
    const opening =
      s.body.startScript === undefined
        ? SIM_DEFAULT_GREETING
        : typeof s.body.startScript === 'string'
          ? s.body.startScript
          : JSON.stringify(s.body.startScript);
    if (opening) say(s, { type: 'transcript', role: 'assistant', content: opening, final: true });
    const every = ((s.behavior.turnIntervalSeconds ?? 0) * 1000) / scaleOf(s);
    if (!(every > 0)) return;
    let n = 0;
    const exchange = () => {
      n++;
      say(s, { type: 'transcript', role: 'user', content: `Simulated user turn ${n} in session ${s.id.slice(0, 8)}`, final: true });
      say(s, { type: 'transcript', role: 'assistant', content: `Simulated answer ${n} in session ${s.id.slice(0, 8)}`, final: true });
      later(s.id, every, exchange);
    };
    later(s.id, every, exchange);
  }

  function scaleOf(s: SimSession): number {
    const k = s.behavior.timeScale ?? 1;
    return Number.isFinite(k) && k > 0 ? k : 1;
  }

  /** Seconds RUNNING, in simulated seconds (timeScale). */
  function durationOf(s: SimSession): number | undefined {
    if (!s.runningAt || !s.endedAt) return undefined;
    return Math.round(((Date.parse(s.endedAt) - Date.parse(s.runningAt)) / 1000) * scaleOf(s));
  }

  function end(s: SimSession, status: 'COMPLETED' | 'FAILED' | 'CANCELLED', by: SimSession['endedBy'], extra: Partial<SimSession> = {}): void {
    if (TERMINAL.includes(s.status)) return;
    transition(s, status, { ...extra, endedAt: now(), endedBy: by });
    for (const t of timers.get(s.id) ?? []) clearTimeout(t);
    timers.delete(s.id);
    const list = avatars.get(s.id) ?? [];
    avatars.delete(s.id);
    for (const a of list) void a.stop().catch(() => undefined);
  }

  async function startAvatar(s: SimSession, where: 'runway-room' | 'customer-room', url: string, token: string, roomName: string): Promise<void> {
    if (s.behavior.avatarMedia === 'off' || closed) return;
    try {
      const start = await lazyAvatar(s.behavior.avatarMedia);
      const avatar = await start({
        url,
        token,
        roomName,
        where,
        identity: identityOf(token) ?? `avatar-${s.id}`,
        media: s.behavior.avatarMedia,
        agentIdentity: s.integration?.agentIdentity,
        onPeerJoined: () => {
          if (where === 'runway-room' && s.status === 'READY') transition(s, 'RUNNING');
        },
        onEndCall: () => end(s, 'COMPLETED', 'END_CALL'),
        onDisconnected: () => end(s, 'COMPLETED', 'avatar_left'),
      });
      if (closed || TERMINAL.includes(s.status)) return void (await avatar.stop().catch(() => undefined));
      avatars.set(s.id, [...(avatars.get(s.id) ?? []), avatar]);
      if (where === 'customer-room' && s.status === 'READY') transition(s, 'RUNNING');
    } catch (err) {
      if (closed) return;
      end(s, 'FAILED', 'failure', { failure: `avatar could not join: ${(err as Error).message}`, failureCode: 'AVATAR.JOIN_FAILED' });
    }
  }

  /**
   * A consumed session turns RUNNING when a WebRTC client (anyone but Runway's worker and the hidden
   * backend participant) is in its room, as LiveKit's RoomService sees it. This runs with or without
   * an avatar: the avatar's own participant events can miss a client that joined while it connected.
   */
  function watchRoom(s: SimSession): void {
    const poll = async () => {
      if (closed || s.status !== 'READY' || !rooms || !s.roomName) return;
      try {
        // A hidden backend participant (connect_backend) is not a WebRTC client of the session.
        const clients = (await rooms.listParticipants(s.roomName)).filter(
          (p) => !p.identity.startsWith(BACKEND_IDENTITY_PREFIX) && !p.identity.startsWith(WORKER_IDENTITY_PREFIX),
        );
        // (Re-checked after the await: the avatar may have seen the client first.)
        if (clients.length) return void (s.status === 'READY' && transition(s, 'RUNNING'));
      } catch {
        // room not there yet
      }
      later(s.id, 150, () => void poll());
    };
    later(s.id, 150, () => void poll());
  }

  // ---- request handling -------------------------------------------------------------------------
  function validateCreate(body: unknown): Record<string, unknown> {
    if (typeof body !== 'object' || body === null || Array.isArray(body))
      throw new HttpError(400, 'Expected object, received ' + (Array.isArray(body) ? 'array' : typeof body));
    const b = body as Record<string, unknown>;
    for (const k of Object.keys(b)) if (!CREATE_KEYS.includes(k)) throw new HttpError(400, `Unrecognized key: ${k}`);
    if (!account.livekitIntegration) {
      if (b.integration !== undefined && (b.integration as { type?: string })?.type === 'livekit') throw new HttpError(400, 'Unrecognized key: integration');
      if (b.livekit !== undefined) throw new HttpError(400, 'Unrecognized key: livekit');
    }
    if (b.model !== 'gwm1_avatars') throw new HttpError(400, "model: Invalid literal value, expected 'gwm1_avatars'");
    const avatar = b.avatar as Record<string, unknown> | undefined;
    if (!avatar || typeof avatar !== 'object') throw new HttpError(400, 'avatar: Required');
    if (avatar.type === 'runway-preset') {
      if (!SIM_PRESET_IDS.includes(avatar.presetId as string))
        throw new HttpError(400, `avatar.presetId: Invalid enum value. Expected ${SIM_PRESET_IDS.map((p) => `'${p}'`).join(' | ')}`);
    } else if (avatar.type === 'custom') {
      if (typeof avatar.avatarId !== 'string' || !avatar.avatarId) throw new HttpError(400, 'avatar.avatarId: Required');
    } else throw new HttpError(400, 'avatar.type: Invalid discriminator value');
    if (b.maxDuration !== undefined && (!Number.isInteger(b.maxDuration) || (b.maxDuration as number) < 10 || (b.maxDuration as number) > 1800)) {
      throw new HttpError(400, 'maxDuration: Number must be an integer between 10 and 1800');
    }
    for (const k of ['personality', 'startScript']) if (b[k] !== undefined && typeof b[k] !== 'string') throw new HttpError(400, `${k}: Expected string`);
    if (b.tools !== undefined) {
      if (!Array.isArray(b.tools)) throw new HttpError(400, 'tools: Expected array');
      for (const [i, t] of (b.tools as Record<string, unknown>[]).entries()) {
        if (!['client_event', 'backend_rpc'].includes(t?.type as string)) throw new HttpError(400, `tools.${i}.type: Invalid discriminator value`);
        if (typeof t.name !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(t.name)) throw new HttpError(400, `tools.${i}.name: Invalid`);
        if (typeof t.description !== 'string') throw new HttpError(400, `tools.${i}.description: Required`);
      }
    }
    const integ = (b.integration ?? b.livekit) as Record<string, unknown> | undefined;
    if (integ !== undefined) {
      if (b.integration !== undefined && !['livekit', 'elevenlabs'].includes(integ.type as string))
        throw new HttpError(400, 'integration.type: Invalid discriminator value');
      if (integ.type !== 'elevenlabs')
        for (const k of ['url', 'token', 'roomName'])
          if (typeof integ[k] !== 'string' || !integ[k]) throw new HttpError(400, `${b.integration ? 'integration' : 'livekit'}.${k}: Required`);
    }
    return b;
  }

  function redactBody(b: Record<string, unknown>): Record<string, unknown> {
    const copy = JSON.parse(JSON.stringify(b)) as Record<string, Record<string, unknown>>;
    for (const k of ['integration', 'livekit']) if (copy[k]?.token) copy[k].token = '[REDACTED]';
    if (copy.integration?.signedUrl) copy.integration.signedUrl = '[REDACTED]';
    return copy;
  }

  function statusView(s: SimSession): Record<string, unknown> {
    const base = { id: s.id, createdAt: s.createdAt, status: s.status };
    switch (s.status) {
      case 'NOT_READY':
        return { ...base, ...(s.queued ? { queued: true } : {}) };
      case 'READY':
        return { ...base, expiresAt: s.expiresAt, sessionKey: s.sessionKey };
      case 'COMPLETED':
        return { ...base, duration: durationOf(s) ?? 0 };
      case 'FAILED':
        return { ...base, failure: s.failure, failureCode: s.failureCode };
      default:
        return base;
    }
  }

  /** Ended sessions read `in_progress` until Runway has finalized their transcript (transcriptFinalizeMs). */
  const conversationStatus = (s: SimSession) => {
    if (!TERMINAL.includes(s.status)) return 'in_progress';
    if (s.endedAt && Date.now() < Date.parse(s.endedAt) + (s.behavior.transcriptFinalizeMs ?? 0)) return 'in_progress';
    return s.status === 'FAILED' ? 'failed' : 'ended';
  };
  const toolsOf = (s: SimSession) =>
    ((s.body.tools as { type: string; name: string; description: string }[] | undefined) ?? []).map(({ type, name, description }) => ({
      type,
      name,
      description,
    }));

  /** GET /v1/avatar_conversations/{id} (@runwayml/sdk AvatarConversationRetrieveResponse). */
  function conversationView(s: SimSession): Record<string, unknown> {
    const avatar = s.body.avatar as Record<string, string>;
    const status = conversationStatus(s);
    return {
      id: s.id,
      name: `Conversation ${s.id.slice(0, 8)}`,
      status,
      avatar:
        avatar.type === 'runway-preset'
          ? { type: 'runway-preset', presetId: avatar.presetId }
          : { type: 'custom', id: avatar.avatarId, imageUrl: null, name: null },
      createdAt: s.createdAt,
      startedAt: s.runningAt ?? null,
      ...(status !== 'in_progress' ? { endedAt: s.endedAt ?? null } : {}),
      duration: durationOf(s) ?? null,
      maxDuration: s.body.maxDuration ?? 300,
      recordingUrl: null,
      tools: toolsOf(s),
      transcript: status === 'in_progress' && s.behavior.transcriptWhileInProgress === false ? [] : s.transcript.map((e) => ({ ...e })),
      ...(status === 'failed' ? { failure: s.failure, failureCode: s.failureCode } : {}),
    };
  }

  /** An item of GET /v1/avatar_conversations (@runwayml/sdk AvatarConversationListResponse). */
  function conversationSummary(s: SimSession): Record<string, unknown> {
    const avatar = s.body.avatar as Record<string, string>;
    return {
      id: s.id,
      name: `Conversation ${s.id.slice(0, 8)}`,
      status: conversationStatus(s),
      avatar:
        avatar.type === 'runway-preset'
          ? { type: 'runway-preset', presetId: avatar.presetId, name: avatar.presetId }
          : { type: 'custom', id: avatar.avatarId, name: null },
      createdAt: s.createdAt,
      duration: durationOf(s) ?? null,
      hasTools: toolsOf(s).length > 0,
    };
  }

  function mint(roomName: string, identity: string, hidden = false): Promise<string> {
    const lk = opts.livekit!;
    const at = new AccessToken(lk.apiKey, lk.apiSecret, { identity, ttl: '30m' });
    at.addGrant({ roomJoin: true, room: roomName, canPublish: true, canSubscribe: true, canPublishData: true, hidden });
    return at.toJwt();
  }

  function sessionOr404(id: string): SimSession {
    const s = sessions.get(id);
    if (!s) throw new HttpError(404, 'Not found');
    return s;
  }

  async function route(
    req: http.IncomingMessage,
    body: unknown,
    url: URL,
    bearer: string | undefined,
    ctx: { endpoint: SimEndpoint | 'unknown'; sessionId?: string; createdId?: string },
  ): Promise<[number, unknown]> {
    const m = req.method!;
    const p = url.pathname;
    let match: RegExpMatchArray | null;
    const needApiKey = () => {
      if (bearer !== apiKey) throw new HttpError(401, 'Invalid API key');
      if (req.headers['x-runway-version'] !== '2024-11-06') {
        violations.push(`${ctx.endpoint}: missing or wrong X-Runway-Version header`);
        throw new HttpError(400, 'Missing or invalid X-Runway-Version header');
      }
    };

    if (m === 'POST' && p === '/v1/realtime_sessions') {
      ctx.endpoint = 'create';
      needApiKey();
      if (body === INVALID_JSON) throw new HttpError(400, 'Invalid JSON body');
      const b = validateCreate(body);
      if (active().length >= account.maxConcurrentSessions) {
        throw new HttpError(
          account.concurrencyLimitStatus,
          `Concurrency limit reached: you have ${active().length} active realtime sessions (limit ${account.maxConcurrentSessions})`,
        );
      }
      const behavior: SessionBehavior = { ...DEFAULT_BEHAVIOR, ...config.defaults, ...(queue.shift() ?? {}) };
      createIndex++;
      const id = randomBytes(16)
        .toString('hex')
        .replace(/^(.{8})(.{4})(.{4})(.{4})/, '$1-$2-$3-$4-');
      const s: SimSession = {
        id,
        createdAt: now(),
        body: redactBody(b),
        behavior,
        status: 'NOT_READY',
        queued: behavior.queuedMs > 0,
        history: [{ status: 'NOT_READY', at: now() }],
        transcript: [],
      };
      const integ = (b.integration ?? b.livekit) as (SimSession['integration'] & { type?: string }) | undefined;
      if (integ && integ.type !== 'elevenlabs')
        s.integration = { url: integ.url, token: integ.token, roomName: integ.roomName, agentIdentity: integ.agentIdentity };
      sessions.set(id, s);
      ctx.sessionId = ctx.createdId = id;
      maxConcurrentObserved = Math.max(maxConcurrentObserved, active().length);
      if (active().length > account.maxConcurrentSessions)
        violations.push(`${active().length} sessions active at once, above the account limit of ${account.maxConcurrentSessions}`);
      later(id, behavior.queuedMs, () => {
        s.queued = false;
      });
      later(id, behavior.queuedMs + behavior.provisioningMs, () => {
        if (s.status !== 'NOT_READY') return;
        transition(s, 'READY', { sessionKey: `sk_${randomBytes(24).toString('hex')}`, expiresAt: new Date(Date.now() + behavior.readyTtlMs).toISOString() });
        later(id, behavior.readyTtlMs, () => {
          if (s.status === 'READY' && !s.consumedAt && !s.integration)
            end(s, 'FAILED', 'expiry', { failure: 'Session expired before it was used', failureCode: 'SESSION_EXPIRED' });
        });
        if (s.integration && behavior.joinCustomerRoom) void startAvatar(s, 'customer-room', s.integration.url, s.integration.token, s.integration.roomName);
      });
      if (behavior.failAfterMs !== undefined)
        later(id, behavior.failAfterMs, () => end(s, 'FAILED', 'failure', { failure: 'Simulated failure', failureCode: behavior.failureCode }));
      return [200, { id }];
    }
    if ((match = p.match(/^\/v1\/realtime_sessions\/([^/]+)\/consume$/)) && m === 'POST') {
      ctx.endpoint = 'consume';
      ctx.sessionId = match[1];
      const s = sessionOr404(match[1]!);
      if (cancelledByClient.has(s.id)) violations.push(`consume of ${s.id} after the client cancelled it`);
      if (consumeDelivered.has(s.id)) repeatConsumes++;
      if (bearer === apiKey) {
        violations.push(`consume of ${s.id} with the API key instead of the session key`);
        throw new HttpError(401, 'Invalid session key');
      }
      // @runwayml/avatars sends Content-Type: application/json (the contract); not enforced, recorded.
      if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) violations.push(`consume of ${s.id} without Content-Type: application/json`);
      if (s.status === 'NOT_READY') {
        violations.push(`consume of ${s.id} before READY`);
        throw new HttpError(400, 'Session is not ready');
      }
      if (s.consumedAt) throw new HttpError(400, 'Session already consumed');
      if (s.status === 'FAILED' && s.endedBy === 'expiry') throw new HttpError(400, 'Session expired');
      if (s.status !== 'READY') throw new HttpError(400, `Session is ${s.status.toLowerCase()}`);
      if (bearer !== s.sessionKey) throw new HttpError(401, 'Invalid session key');
      if (Date.parse(s.expiresAt!) <= Date.now()) {
        end(s, 'FAILED', 'expiry', { failure: 'Session expired before it was used', failureCode: 'SESSION_EXPIRED' });
        throw new HttpError(400, 'Session expired');
      }
      if (!opts.livekit) throw new HttpError(503, 'Simulator has no LiveKit server configured');
      s.consumedAt = now();
      s.roomName = `runway-${s.id}`;
      const [clientToken, avatarToken] = await Promise.all([
        mint(s.roomName, `client-${s.id.slice(0, 8)}`),
        mint(s.roomName, `${WORKER_IDENTITY_PREFIX}avatar-${s.id.slice(0, 8)}`),
      ]);
      watchRoom(s);
      void startAvatar(s, 'runway-room', opts.livekit.url, avatarToken, s.roomName);
      return [200, { url: opts.livekit.url, token: clientToken, roomName: s.roomName }];
    }
    if ((match = p.match(/^\/v1\/realtime_sessions\/([^/]+)\/connect_backend$/)) && m === 'POST') {
      ctx.endpoint = 'connect_backend';
      ctx.sessionId = match[1];
      needApiKey();
      const s = sessionOr404(match[1]!);
      if (!opts.livekit || !s.roomName) throw new HttpError(400, 'Session has no room yet');
      return [200, { url: opts.livekit.url, token: await mint(s.roomName, `${BACKEND_IDENTITY_PREFIX}${s.id.slice(0, 8)}`, true), roomName: s.roomName }];
    }
    if ((match = p.match(/^\/v1\/realtime_sessions\/([^/]+)$/))) {
      ctx.sessionId = match[1];
      if (m === 'GET') {
        ctx.endpoint = 'status';
        needApiKey();
        return [200, statusView(sessionOr404(match[1]!))];
      }
      if (m === 'DELETE') {
        ctx.endpoint = 'cancel';
        needApiKey();
        const s = sessionOr404(match[1]!);
        cancelledByClient.add(s.id);
        end(s, 'CANCELLED', 'DELETE');
        return [204, undefined];
      }
    }
    if (p === '/v1/avatar_conversations' && m === 'GET') {
      ctx.endpoint = 'conversations';
      needApiKey();
      const limit = Number(url.searchParams.get('limit') ?? 20);
      if (!Number.isInteger(limit) || limit < 1 || limit > 100) throw new HttpError(400, 'limit: Number must be an integer between 1 and 100');
      const cursor = url.searchParams.get('cursor');
      const offset = cursor ? Number(Buffer.from(cursor, 'base64url').toString()) : 0;
      if (!Number.isInteger(offset) || offset < 0) throw new HttpError(400, 'cursor: Invalid cursor');
      // startDate inclusive, endDate exclusive (@runwayml/sdk AvatarConversationListParams).
      const date = (name: string): number | undefined => {
        const v = url.searchParams.get(name);
        if (!v) return undefined;
        const t = Date.parse(v);
        if (Number.isNaN(t)) throw new HttpError(400, `${name}: Invalid datetime`);
        return t;
      };
      const start = date('startDate');
      const endD = date('endDate');
      const avatar = url.searchParams.get('avatar');
      const all = [...sessions.values()]
        .filter((s) => (start === undefined || Date.parse(s.createdAt) >= start) && (endD === undefined || Date.parse(s.createdAt) < endD))
        .filter(
          (s) => !avatar || (s.body.avatar as Record<string, string>).presetId === avatar || (s.body.avatar as Record<string, string>).avatarId === avatar,
        )
        .sort((a, b) => b.createdAt.localeCompare(a.createdAt));
      const page = all.slice(offset, offset + limit);
      return [
        200,
        { data: page.map(conversationSummary), nextCursor: offset + limit < all.length ? Buffer.from(String(offset + limit)).toString('base64url') : '' },
      ];
    }
    if ((match = p.match(/^\/v1\/avatar_conversations\/([^/]+)$/))) {
      ctx.sessionId = match[1];
      if (m === 'GET') {
        ctx.endpoint = 'conversation';
        needApiKey();
        return [200, conversationView(sessionOr404(match[1]!))];
      }
      if (m === 'DELETE') {
        ctx.endpoint = 'delete_conversation';
        needApiKey();
        const s = sessionOr404(match[1]!);
        if (!TERMINAL.includes(s.status)) throw new HttpError(400, 'Conversation is still in progress');
        sessions.delete(s.id);
        return [204, undefined];
      }
    }
    if (p === '/v1/organization' && m === 'GET') {
      ctx.endpoint = 'organization';
      needApiKey();
      if (account.organization === 'not_found') throw new HttpError(404, 'Not found');
      if (account.organization === 'forbidden') throw new HttpError(403, 'This API key cannot read the organization');
      if (account.organization === 'malformed') return [200, { organization: { name: 'simulated' }, tier: 'build' }];
      if (account.organization === 'without_avatars') {
        return [
          200,
          {
            creditBalance: 100000,
            tier: { maxMonthlyCreditSpend: 1000000, models: { gen4_turbo: { maxConcurrentGenerations: 2, maxDailyGenerations: 200 } } },
            usage: { models: {} },
          },
        ];
      }
      return [
        200,
        {
          creditBalance: 100000,
          tier: {
            maxMonthlyCreditSpend: 1000000,
            models: { gwm1_avatars: { maxConcurrentGenerations: account.maxConcurrentSessions, maxDailyGenerations: 10000 } },
          },
          usage: { models: { gwm1_avatars: { dailyGenerations: createIndex } } },
        },
      ];
    }
    throw new HttpError(404, 'Not found');
  }

  function pickFault(endpoint: SimEndpoint | 'unknown'): FaultSpec {
    return { ...config.faults['*'], ...(endpoint !== 'unknown' ? config.faults[endpoint] : {}) };
  }

  function endpointOf(method: string, path: string): SimEndpoint | 'unknown' {
    if (path === '/v1/realtime_sessions') return method === 'POST' ? 'create' : 'unknown';
    if (/^\/v1\/realtime_sessions\/[^/]+\/consume$/.test(path)) return method === 'POST' ? 'consume' : 'unknown';
    if (/^\/v1\/realtime_sessions\/[^/]+\/connect_backend$/.test(path)) return method === 'POST' ? 'connect_backend' : 'unknown';
    if (/^\/v1\/realtime_sessions\/[^/]+$/.test(path)) return method === 'DELETE' ? 'cancel' : method === 'GET' ? 'status' : 'unknown';
    if (path === '/v1/avatar_conversations') return method === 'GET' ? 'conversations' : 'unknown';
    if (/^\/v1\/avatar_conversations\/[^/]+$/.test(path)) return method === 'DELETE' ? 'delete_conversation' : method === 'GET' ? 'conversation' : 'unknown';
    if (path === '/v1/organization') return method === 'GET' ? 'organization' : 'unknown';
    return 'unknown';
  }

  async function control(req: http.IncomingMessage, res: http.ServerResponse, url: URL, body: unknown): Promise<void> {
    const send = (status: number, data: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(data));
    };
    if (req.headers['x-sim-control'] !== controlToken) return send(401, { error: 'x-sim-control header required' });
    if (body === INVALID_JSON) return send(400, { error: 'Invalid JSON body' });
    const what = url.pathname.slice('/_sim/'.length);
    // Over HTTP the ledger never carries credentials: session keys and the customer's tokens are redacted.
    const redacted = (s: SimSession): SimSession => ({
      ...s,
      ...(s.sessionKey ? { sessionKey: '[REDACTED]' } : {}),
      ...(s.integration ? { integration: { ...s.integration, token: '[REDACTED]' } } : {}),
    });
    if (req.method === 'GET' && what === 'ledger') return send(200, { sessions: [...sessions.values()].map(redacted), requests, maxConcurrentObserved });
    if (req.method === 'GET' && what === 'invariants') return send(200, { violations: sim.invariantViolations(), orphans: sim.orphans().map((s) => s.id) });
    const isObject = typeof body === 'object' && body !== null && !Array.isArray(body);
    if (req.method === 'POST' && (what === 'configure' || what === 'account') && !isObject) return send(400, { error: 'Expected a JSON object body' });
    if (req.method === 'POST' && what === 'next-sessions' && !Array.isArray(body)) return send(400, { error: 'Expected a JSON array body' });
    if (req.method === 'POST' && what === 'configure') return send(200, sim.configure(body as Partial<SimConfig>));
    if (req.method === 'POST' && what === 'account') return send(200, sim.setAccount(body as Partial<Account>));
    if (req.method === 'POST' && what === 'next-sessions') return send(200, { queued: sim.nextSessions(body as Partial<SessionBehavior>[]) });
    if (req.method === 'POST' && what === 'reset') return send(200, { ok: sim.reset() });
    return send(404, { error: 'Not found' });
  }

  const sockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const url = new URL(req.url ?? '/', 'http://sim');
        const raw = Buffer.concat(chunks).toString('utf8');
        let body: unknown;
        try {
          body = raw ? JSON.parse(raw) : undefined;
        } catch {
          body = INVALID_JSON;
        }
        if (url.pathname.startsWith('/_sim/')) return control(req, res, url, body);

        const ctx: { endpoint: SimEndpoint | 'unknown'; sessionId?: string; createdId?: string } = { endpoint: endpointOf(req.method!, url.pathname) };
        const record: SimRequest = { endpoint: ctx.endpoint, method: req.method!, path: url.pathname, status: 0, at: now() };
        requests.push(record);
        const fault = pickFault(ctx.endpoint);
        if (fault.latencyMs) await new Promise((r) => setTimeout(r, fault.latencyMs));
        if (fault.resetRate && random() < fault.resetRate) {
          record.status = 'reset';
          record.faultInjected = 'reset';
          return req.socket.destroy();
        }
        if (fault.status429Rate && random() < fault.status429Rate) {
          record.status = 429;
          record.faultInjected = '429';
          const headers: Record<string, string> = { 'content-type': 'application/json' };
          if (fault.retryAfterMs !== undefined) headers['retry-after-ms'] = String(fault.retryAfterMs);
          else headers['retry-after'] = String(fault.retryAfterSeconds ?? 1);
          res.writeHead(429, headers);
          return res.end(JSON.stringify({ error: 'Too many requests' }));
        }
        if (fault.status5xxRate && random() < fault.status5xxRate) {
          const status = [500, 502, 503][Math.floor(random() * 3)]!;
          record.status = status;
          record.faultInjected = String(status);
          res.writeHead(status, { 'content-type': 'application/json' });
          return res.end(JSON.stringify({ error: 'Internal server error' }));
        }
        if (fault.clientError && random() < fault.clientError.rate) {
          const { status, error } = fault.clientError;
          record.status = status;
          record.faultInjected = String(status);
          res.writeHead(status, { 'content-type': 'application/json' });
          return res.end(JSON.stringify({ error: error ?? (status === 401 ? 'Unauthorized' : 'Bad request') }));
        }
        const auth = req.headers.authorization;
        const bearer = auth?.startsWith('Bearer ') ? auth.slice(7) : undefined;
        let status: number;
        let payload: unknown;
        try {
          [status, payload] = await route(req, body, url, bearer, ctx);
        } catch (err) {
          status = err instanceof HttpError ? err.status : 500;
          payload = { error: err instanceof HttpError ? err.message : 'Internal server error' };
        }
        record.status = status;
        record.sessionId = ctx.sessionId;
        if (ctx.createdId && holdCreates > 0) {
          // Runway handled the create; its answer waits until the test releases it (or the client is gone).
          holdCreates--;
          const how = await new Promise<'deliver' | 'reset'>((resolve) => held.push({ sessionId: ctx.createdId!, release: resolve }));
          if (how === 'reset') {
            record.status = 'reset';
            record.faultInjected = 'lost_answer';
            return req.socket.destroy();
          }
        }
        if (ctx.createdId && (sessions.get(ctx.createdId)?.behavior.loseAnswer || (fault.loseAnswerRate && random() < fault.loseAnswerRate))) {
          record.status = 'reset';
          record.faultInjected = 'lost_answer';
          return req.socket.destroy();
        }
        if (ctx.endpoint === 'consume' && status === 200 && ctx.sessionId) consumeDelivered.add(ctx.sessionId);
        if (status === 204) {
          res.writeHead(204);
          return res.end();
        }
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(payload));
      })().catch((err) => {
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: String(err) }));
      });
    });
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  const sim = {
    baseUrl: `http://${opts.host ?? '127.0.0.1'}:${port}`,
    apiKey,
    controlToken,
    get maxConcurrentObserved() {
      return maxConcurrentObserved;
    },
    configure(patch: Partial<SimConfig>): SimConfig {
      if (patch.defaults) config.defaults = { ...config.defaults, ...patch.defaults };
      if (patch.faults) config.faults = { ...patch.faults };
      return config;
    },
    setAccount(patch: Partial<Account>): Account {
      Object.assign(account, patch);
      return account;
    },
    /** Behaviours for the next creates, in order. */
    nextSessions(behaviors: Partial<SessionBehavior>[]): number {
      queue.push(...behaviors);
      return queue.length;
    },
    session: (id: string) => sessions.get(id),
    /** The session's final duration as Runway reports (and bills) it: simulated seconds RUNNING; undefined if it never ran or still runs. */
    durationOf: (id: string): number | undefined => {
      const s = sessions.get(id);
      return s ? durationOf(s) : undefined;
    },
    sessions: () => [...sessions.values()],
    requests: () => [...requests],
    activeCount: () => active().length,
    /** Sessions not in a terminal state. */
    orphans: () => active(),
    invariantViolations: () => [...violations],
    /**
     * Consumes of a session whose earlier consume answer was delivered (a retry after a worker died
     * between Runway's answer and the activity's completion: refused by Runway, not a violation).
     */
    get repeatConsumes() {
      return repeatConsumes;
    },
    /** Faults injected so far, by kind ('reset', '429', '500', 'lost_answer', …). */
    faultCounts(): Record<string, number> {
      const counts: Record<string, number> = {};
      for (const r of requests) if (r.faultInjected) counts[r.faultInjected] = (counts[r.faultInjected] ?? 0) + 1;
      return counts;
    },
    /**
     * Holds the answers of the next `n` creates: Runway creates the session, then the answer waits
     * (releaseHeldCreates) — a client that dies meanwhile never learns the session's id.
     */
    holdCreateAnswers(n = 1): void {
      holdCreates += n;
    },
    /** Sessions whose create answer is held now. */
    heldCreates: (): string[] => held.map((h) => h.sessionId),
    /** Releases every held create answer: delivered (if the client is still there) or reset. */
    releaseHeldCreates(how: 'deliver' | 'reset' = 'deliver'): number {
      const list = held.splice(0);
      for (const h of list) h.release(how);
      return list.length;
    },
    /** The session's avatar (the latest started, when there are two). */
    avatar: (id: string): SimAvatar | undefined => avatars.get(id)?.at(-1),
    /** Fails a session now, as Runway's own failure mid-session would (its avatars leave). False if it already ended. */
    fail(id: string, failureCode = 'INTERNAL.SIMULATED'): boolean {
      const s = sessions.get(id);
      if (!s || TERMINAL.includes(s.status)) return false;
      end(s, 'FAILED', 'failure', { failure: 'Simulated failure', failureCode });
      return true;
    },
    reset(): boolean {
      for (const s of active()) end(s, 'CANCELLED', 'DELETE');
      sessions.clear();
      requests.length = 0;
      violations.length = 0;
      queue.length = 0;
      maxConcurrentObserved = 0;
      holdCreates = 0;
      for (const h of held.splice(0)) h.release('reset');
      cancelledByClient.clear();
      consumeDelivered.clear();
      repeatConsumes = 0;
      random = mulberry32(opts.seed ?? 1);
      return true;
    },
    async stop(): Promise<void> {
      closed = true;
      for (const h of held.splice(0)) h.release('reset');
      for (const [, list] of timers) for (const t of list) clearTimeout(t);
      timers.clear();
      await Promise.all([...avatars.values()].flat().map((a) => a.stop().catch(() => undefined)));
      avatars.clear();
      if (pionUsed) await (await import('./pion-avatar')).stopLightAvatars();
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  return sim;
}

export type RunwaySimulator = Awaited<ReturnType<typeof startRunwaySimulator>>;
