// Runway's realtime-session contract (see shared/runway-realtime-api.md), typed to match @runwayml/sdk
// exactly (test/runway-types.typecheck.ts proves it), plus zod schemas that validate answers at the boundary.
import { z } from 'zod';

export const RUNWAY_PRESET_IDS = [
  'game-character',
  'music-superstar',
  'game-character-man',
  'cat-character',
  'influencer',
  'tennis-coach',
  'human-resource',
  'fashion-designer',
  'cooking-teacher',
] as const;
export type RunwayPresetId = (typeof RUNWAY_PRESET_IDS)[number];

export const RUNWAY_MAX_DURATION = { min: 10, max: 1800, default: 300 } as const;
export const RUNWAY_API_VERSION = '2024-11-06';
export const RUNWAY_DEFAULT_BASE_URL = 'https://api.dev.runwayml.com';

export interface LivekitIntegration {
  type: 'livekit';
  url: string;
  token: string;
  roomName: string;
  agentIdentity?: string;
}
export interface ElevenlabsIntegration {
  type: 'elevenlabs';
  signedUrl: string;
}
export interface DeprecatedLivekit {
  url: string;
  token: string;
  roomName: string;
  agentIdentity?: string;
}
export interface ToolParameter {
  name: string;
  description: string;
  type: 'string' | 'integer' | 'number' | 'boolean' | 'array' | 'object';
  required?: boolean;
  enum?: string[];
  items?: { type: 'string' | 'integer' | 'number' | 'boolean' };
  properties?: unknown[];
}
export interface ClientEventTool {
  type: 'client_event';
  name: string;
  description: string;
  parameters?: ToolParameter[];
}
export interface BackendRpcTool {
  type: 'backend_rpc';
  name: string;
  description: string;
  parameters?: ToolParameter[];
  timeoutSeconds?: number;
}

export interface RealtimeSessionCreateParams {
  model: 'gwm1_avatars';
  avatar: { type: 'runway-preset'; presetId: RunwayPresetId } | { type: 'custom'; avatarId: string };
  integration?: LivekitIntegration | ElevenlabsIntegration;
  livekit?: DeprecatedLivekit;
  maxDuration?: number;
  personality?: string;
  startScript?: string;
  tools?: Array<ClientEventTool | BackendRpcTool>;
}

const base = { id: z.string().min(1), createdAt: z.string() };
export const realtimeSessionSchema = z.discriminatedUnion('status', [
  z.object({ ...base, status: z.literal('NOT_READY'), queued: z.boolean().optional() }),
  z.object({ ...base, status: z.literal('READY'), expiresAt: z.string(), sessionKey: z.string().min(1) }),
  z.object({ ...base, status: z.literal('RUNNING') }),
  z.object({ ...base, status: z.literal('COMPLETED'), duration: z.number() }),
  z.object({ ...base, status: z.literal('FAILED'), failure: z.string(), failureCode: z.string() }),
  z.object({ ...base, status: z.literal('CANCELLED') }),
]);
export type RealtimeSession = z.infer<typeof realtimeSessionSchema>;
export type RealtimeSessionStatus = RealtimeSession['status'];
export const TERMINAL_STATUSES: readonly RealtimeSessionStatus[] = ['COMPLETED', 'FAILED', 'CANCELLED'];

export const createResponseSchema = z.object({ id: z.string().min(1) });
export const credentialsSchema = z.object({ url: z.string().min(1), token: z.string().min(1), roomName: z.string().min(1) });
export type RoomCredentials = z.infer<typeof credentialsSchema>;

const conversationAvatar = z
  .union([
    z.object({ type: z.literal('runway-preset'), presetId: z.string() }),
    z.object({ type: z.literal('custom'), id: z.string().nullable(), imageUrl: z.string().nullable().optional(), name: z.string().nullable().optional() }),
  ])
  .nullable();
export const conversationSchema = z.object({
  id: z.string(),
  status: z.enum(['in_progress', 'ended', 'failed']),
  avatar: conversationAvatar.optional(),
  createdAt: z.string(),
  startedAt: z.string().nullable().optional(),
  endedAt: z.string().nullable().optional(),
  duration: z.number().nullable().optional(),
  maxDuration: z.number().nullable().optional(),
  name: z.string().optional(),
  recordingUrl: z.string().nullable().optional(),
  failure: z.string().nullable().optional(),
  failureCode: z.string().nullable().optional(),
  tools: z.array(z.unknown()).optional(),
  transcript: z.array(z.unknown()).optional(),
}).passthrough();
export type Conversation = z.infer<typeof conversationSchema>;
export const conversationListSchema = z.object({ data: z.array(conversationSchema), nextCursor: z.string().nullable().optional() });
export interface ConversationListParams {
  cursor?: string;
  limit?: number;
  avatar?: string;
  startDate?: string;
  endDate?: string;
}

export const organizationSchema = z.object({
  creditBalance: z.number().optional(),
  tier: z.object({
    maxMonthlyCreditSpend: z.number().optional(),
    models: z.record(z.string(), z.object({ maxConcurrentGenerations: z.number().nullable(), maxDailyGenerations: z.number().nullable() })),
  }),
  usage: z.unknown().optional(),
}).passthrough();
export type Organization = z.infer<typeof organizationSchema>;
