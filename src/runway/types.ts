// Runway's realtime-session contract (see shared/runway-realtime-api.md): request and answer types that
// match @runwayml/sdk exactly (test/runway-types.typecheck.ts proves it in both directions), and zod
// schemas that validate every answer at the boundary. Each schema is annotated with its interface, so
// the two cannot drift apart either.
import { z } from 'zod';

export * from './constants';
import { RUNWAY_MODEL, type RunwayPresetId } from './constants';

// ---------------------------------------------------------------------------------------------------
// Create
// ---------------------------------------------------------------------------------------------------

export interface PresetAvatar {
  type: 'runway-preset';
  presetId: RunwayPresetId;
}
export interface CustomAvatar {
  type: 'custom';
  avatarId: string;
}
export type AvatarRef = PresetAvatar | CustomAvatar;

/** Runway's avatar worker joins YOUR LiveKit room with YOUR token; your agent supplies audio. */
export interface LivekitIntegration {
  type: 'livekit';
  /** Public wss:// or https:// URL of your LiveKit server. */
  url: string;
  token: string;
  roomName: string;
  /** When set, the worker trusts audio published by this participant. */
  agentIdentity?: string;
}
/** ElevenLabs runs the conversation; Runway renders the avatar. */
export interface ElevenlabsIntegration {
  type: 'elevenlabs';
  signedUrl: string;
}
export type Integration = LivekitIntegration | ElevenlabsIntegration;

/** @deprecated The older top-level spelling of the livekit integration. */
export interface DeprecatedLivekit {
  url: string;
  token: string;
  roomName: string;
  agentIdentity?: string;
}

interface ToolParameterBase {
  name: string;
  description: string;
  required?: boolean;
}
export type ToolParameter =
  | (ToolParameterBase & { type: 'string'; enum?: string[] })
  | (ToolParameterBase & { type: 'integer' })
  | (ToolParameterBase & { type: 'number' })
  | (ToolParameterBase & { type: 'boolean' })
  | (ToolParameterBase & { type: 'array'; items: { type: 'string' | 'integer' | 'number' | 'boolean' } })
  | (ToolParameterBase & { type: 'object'; properties: unknown[] });

/** Fire-and-forget: the arguments are sent to the session's clients as a data message. */
export interface ClientEventTool {
  type: 'client_event';
  name: string;
  description: string;
  parameters?: ToolParameter[];
}
/** Round trip to a backend participant (see connect_backend). */
export interface BackendRpcTool {
  type: 'backend_rpc';
  name: string;
  description: string;
  parameters?: ToolParameter[];
  timeoutSeconds?: number;
}
export type RunwayTool = ClientEventTool | BackendRpcTool;

export interface RealtimeSessionCreateParams {
  model: typeof RUNWAY_MODEL;
  avatar: AvatarRef;
  integration?: Integration;
  /** @deprecated use `integration: { type: 'livekit', ... }` */
  livekit?: DeprecatedLivekit;
  /** Seconds, RUNWAY_MAX_DURATION.min..max (default 300). */
  maxDuration?: number;
  personality?: string;
  startScript?: string;
  tools?: RunwayTool[];
}

export interface RealtimeSessionCreateResponse {
  id: string;
}
export const createResponseSchema = z.object({ id: z.string().min(1) }) satisfies z.ZodType<RealtimeSessionCreateResponse>;

// ---------------------------------------------------------------------------------------------------
// Status
// ---------------------------------------------------------------------------------------------------

interface SessionBase {
  id: string;
  createdAt: string;
}
/** Provisioning; `queued: true` = waiting for capacity. */
export interface NotReadySession extends SessionBase {
  status: 'NOT_READY';
  queued?: boolean;
}
/** Consume (with `sessionKey`) before `expiresAt`. */
export interface ReadySession extends SessionBase {
  status: 'READY';
  expiresAt: string;
  sessionKey: string;
}
/** A WebRTC client is connected. */
export interface RunningSession extends SessionBase {
  status: 'RUNNING';
}
export interface CompletedSession extends SessionBase {
  status: 'COMPLETED';
  /** Seconds. */
  duration: number;
}
/** `failure` is human text and not stable: match on `failureCode`. */
export interface FailedSession extends SessionBase {
  status: 'FAILED';
  failure: string;
  failureCode: string;
}
export interface CancelledSession extends SessionBase {
  status: 'CANCELLED';
}
export type RealtimeSession = NotReadySession | ReadySession | RunningSession | CompletedSession | FailedSession | CancelledSession;
export type RealtimeSessionStatus = RealtimeSession['status'];

export const TERMINAL_STATUSES = ['COMPLETED', 'FAILED', 'CANCELLED'] as const satisfies readonly RealtimeSessionStatus[];
export type TerminalStatus = (typeof TERMINAL_STATUSES)[number];
export function isTerminalStatus(status: string): status is TerminalStatus {
  return (TERMINAL_STATUSES as readonly string[]).includes(status);
}

const sessionBase = { id: z.string().min(1), createdAt: z.string() };
export const realtimeSessionSchema = z.discriminatedUnion('status', [
  z.object({ ...sessionBase, status: z.literal('NOT_READY'), queued: z.boolean().optional() }),
  z.object({ ...sessionBase, status: z.literal('READY'), expiresAt: z.string(), sessionKey: z.string().min(1) }),
  z.object({ ...sessionBase, status: z.literal('RUNNING') }),
  z.object({ ...sessionBase, status: z.literal('COMPLETED'), duration: z.number() }),
  z.object({ ...sessionBase, status: z.literal('FAILED'), failure: z.string(), failureCode: z.string() }),
  z.object({ ...sessionBase, status: z.literal('CANCELLED') }),
]) satisfies z.ZodType<RealtimeSession>;

// ---------------------------------------------------------------------------------------------------
// Consume and connect_backend: LiveKit credentials for a room of Runway's
// ---------------------------------------------------------------------------------------------------

/** Answer of consume (same shape as @runwayml/avatars' ConsumeSessionResponse). */
export interface RoomCredentials {
  url: string;
  token: string;
  roomName: string;
}
export type ConsumeSessionResponse = RoomCredentials;
/** Answer of connect_backend: credentials for a hidden backend participant (serves backend_rpc tools). */
export type BackendCredentials = RoomCredentials;

export const credentialsSchema = z.object({
  url: z.string().min(1),
  token: z.string().min(1),
  roomName: z.string().min(1),
}) satisfies z.ZodType<RoomCredentials>;

// ---------------------------------------------------------------------------------------------------
// Avatar conversations (the conversation id is the session id)
// ---------------------------------------------------------------------------------------------------

export interface ConversationPresetAvatar {
  type: 'runway-preset';
  presetId: string;
}
export interface ConversationCustomAvatar {
  type: 'custom';
  /** null when the avatar was deleted */
  id: string | null;
  imageUrl: string | null;
  name: string | null;
}
export interface ConversationTool {
  type: 'client_event' | 'backend_rpc';
  name: string;
  description: string;
}
export interface TranscriptToolCall {
  name: string;
  arguments: { [key: string]: unknown };
  id?: string;
}
export interface TranscriptToolResult {
  name: string;
  id?: string;
  durationMs?: number | null;
  error?: string | null;
  result?: { [key: string]: unknown } | string | null;
}
export interface TranscriptEntry {
  role: 'user' | 'assistant';
  /** null for tool-only turns */
  content: string | null;
  timestamp: string | null;
  toolCalls?: TranscriptToolCall[];
  toolResults?: TranscriptToolResult[];
}
interface ConversationBase {
  id: string;
  avatar: ConversationPresetAvatar | ConversationCustomAvatar | null;
  createdAt: string;
  /** Seconds, null if not started. */
  duration: number | null;
  maxDuration: number | null;
  name: string;
  /** Expires within 24-48 h: fetch the conversation again for a fresh one. */
  recordingUrl: string | null;
  startedAt: string | null;
  tools: ConversationTool[];
  transcript: TranscriptEntry[];
}
export interface InProgressConversation extends ConversationBase {
  status: 'in_progress';
}
export interface EndedConversation extends ConversationBase {
  status: 'ended';
  endedAt: string | null;
}
export interface FailedConversation extends ConversationBase {
  status: 'failed';
  endedAt: string | null;
  failure: string;
  failureCode: string;
}
export type AvatarConversation = InProgressConversation | EndedConversation | FailedConversation;
export type ConversationStatus = AvatarConversation['status'];

/** An entry of the conversations listing (a summary, no transcript). */
export interface ConversationSummary {
  id: string;
  avatar: { type: 'runway-preset'; presetId: string; name: string } | { type: 'custom'; id: string | null; name: string | null } | null;
  createdAt: string;
  duration: number | null;
  hasTools: boolean;
  name: string;
  status: ConversationStatus;
}
export interface ConversationPage {
  data: ConversationSummary[];
  /** '' on the last page. */
  nextCursor: string;
}
export interface ConversationListParams {
  cursor?: string;
  limit?: number;
  /** A custom avatar id. */
  avatar?: string;
  /** ISO timestamp, inclusive. */
  startDate?: string;
  /** ISO timestamp, exclusive. */
  endDate?: string;
}

// Conversations are validated strictly on what the service acts on (id, status, createdAt, avatar ids,
// failureCode) and leniently on descriptive fields, which default when absent (`name` to '', lists to
// [], the rest to null), so a cosmetic change at Runway cannot stop the reaper.
const str = z.string();
const nullableStr = z.string().nullable().default(null);
const nullableNum = z.number().nullable().default(null);

const conversationAvatarSchema = z
  .discriminatedUnion('type', [
    z.object({ type: z.literal('runway-preset'), presetId: str }),
    z.object({ type: z.literal('custom'), id: str.nullable(), imageUrl: nullableStr, name: nullableStr }),
  ])
  .nullable()
  .default(null);
const toolCallSchema = z.object({ name: str, arguments: z.record(z.string(), z.unknown()), id: str.optional() });
const toolResultSchema = z.object({
  name: str,
  id: str.optional(),
  durationMs: z.number().nullable().optional(),
  error: str.nullable().optional(),
  result: z.union([z.record(z.string(), z.unknown()), str, z.null()]).optional(),
});
const transcriptEntrySchema = z.object({
  role: z.enum(['user', 'assistant']),
  content: nullableStr,
  timestamp: nullableStr,
  toolCalls: z.array(toolCallSchema).optional(),
  toolResults: z.array(toolResultSchema).optional(),
});
const conversationBase = {
  id: z.string().min(1),
  avatar: conversationAvatarSchema,
  createdAt: str,
  duration: nullableNum,
  maxDuration: nullableNum,
  name: str.default(''),
  recordingUrl: nullableStr,
  startedAt: nullableStr,
  tools: z.array(z.object({ type: z.enum(['client_event', 'backend_rpc']), name: str, description: str.default('') })).default([]),
  transcript: z.array(transcriptEntrySchema).default([]),
};
export const conversationSchema = z.discriminatedUnion('status', [
  z.object({ ...conversationBase, status: z.literal('in_progress') }),
  z.object({ ...conversationBase, status: z.literal('ended'), endedAt: nullableStr }),
  z.object({ ...conversationBase, status: z.literal('failed'), endedAt: nullableStr, failure: str.default(''), failureCode: str }),
]) satisfies z.ZodType<AvatarConversation>;

export const conversationSummarySchema = z.object({
  id: z.string().min(1),
  avatar: z
    .discriminatedUnion('type', [
      z.object({ type: z.literal('runway-preset'), presetId: str, name: str.default('') }),
      z.object({ type: z.literal('custom'), id: str.nullable(), name: nullableStr }),
    ])
    .nullable()
    .default(null),
  createdAt: str,
  duration: nullableNum,
  hasTools: z.boolean().default(false),
  name: str.default(''),
  status: z.enum(['in_progress', 'ended', 'failed']),
}) satisfies z.ZodType<ConversationSummary>;
export const conversationPageSchema = z.object({
  data: z.array(conversationSummarySchema),
  // Absent or null is read as the last page.
  nextCursor: str.nullish().transform((c) => c ?? ''),
}) satisfies z.ZodType<ConversationPage>;

// ---------------------------------------------------------------------------------------------------
// Organization
// ---------------------------------------------------------------------------------------------------

export interface OrganizationModelTier {
  /** The account's concurrency limit for this model (null = unlimited / not set). */
  maxConcurrentGenerations: number | null;
  maxDailyGenerations: number | null;
}
export interface Organization {
  creditBalance: number;
  tier: {
    maxMonthlyCreditSpend: number;
    models: { [model: string]: OrganizationModelTier };
  };
  usage: { models: { [model: string]: { dailyGenerations: number } } };
}
export const organizationSchema = z.object({
  creditBalance: z.number(),
  tier: z.object({
    maxMonthlyCreditSpend: z.number(),
    models: z.record(z.string(), z.object({ maxConcurrentGenerations: z.number().nullable(), maxDailyGenerations: z.number().nullable() })),
  }),
  // Usage is informational: default it rather than fail the admission check.
  usage: z.object({ models: z.record(z.string(), z.object({ dailyGenerations: z.number() })) }).default({ models: {} }),
}) satisfies z.ZodType<Organization>;

/** The concurrency limit for avatar sessions, if the organization answer states one. */
export function avatarConcurrencyLimit(org: Organization): number | undefined {
  return org.tier.models[RUNWAY_MODEL]?.maxConcurrentGenerations ?? undefined;
}
