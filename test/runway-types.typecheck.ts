// Compile-time only (no runtime test): our Runway types and the official SDKs' types must be mutually
// assignable, so an SDK upgrade that changes the contract fails `npx tsc --noEmit -p .`.
// Each line fails with "Type 'false' does not satisfy the constraint 'true'" naming the pair that drifted.
import type { z } from 'zod';
import type {
  DeprecatedLivekit as SdkDeprecatedLivekit,
  RealtimeSessionCreateParams as SdkCreateParams,
  RealtimeSessionCreateResponse as SdkCreateResponse,
  RealtimeSessionRetrieveResponse as SdkStatus,
} from '@runwayml/sdk/resources/realtime-sessions';
import type {
  AvatarConversationListParams as SdkListParams,
  AvatarConversationListResponse as SdkConversationSummary,
  AvatarConversationRetrieveResponse as SdkConversation,
} from '@runwayml/sdk/resources/avatar-conversations';
import type { CursorPageResponse } from '@runwayml/sdk/core/pagination';
import type { OrganizationRetrieveResponse as SdkOrganization } from '@runwayml/sdk/resources/organization/organization';
import type { ConsumeSessionResponse as AvatarsConsumeResponse } from '@runwayml/avatars';
import type {
  AvatarConversation,
  CancelledSession,
  ClientEventTool,
  BackendRpcTool,
  CompletedSession,
  ConversationListParams,
  ConversationPage,
  ConversationSummary,
  CustomAvatar,
  DeprecatedLivekit,
  ElevenlabsIntegration,
  FailedSession,
  LivekitIntegration,
  NotReadySession,
  Organization,
  PresetAvatar,
  ReadySession,
  RealtimeSession,
  RealtimeSessionCreateParams,
  RealtimeSessionCreateResponse,
  RealtimeSessionStatus,
  RoomCredentials,
  RunningSession,
  RunwayPresetId,
  TerminalStatus,
  conversationPageSchema,
  conversationSchema,
  conversationSummarySchema,
  createResponseSchema,
  credentialsSchema,
  organizationSchema,
  realtimeSessionSchema,
} from '../src/runway/types';

type Assert<T extends true> = T;
/** true when A and B are assignable to each other (no distribution over unions). */
type Mutual<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Out<S extends z.ZodType> = z.output<S>;

// Create
export type CreateChecks = [
  Assert<Mutual<RealtimeSessionCreateParams, SdkCreateParams>>,
  Assert<Mutual<RealtimeSessionCreateResponse, SdkCreateResponse>>,
  Assert<Mutual<PresetAvatar, SdkCreateParams.RunwayPreset>>,
  Assert<Mutual<CustomAvatar, SdkCreateParams.Custom>>,
  Assert<Mutual<RunwayPresetId, SdkCreateParams.RunwayPreset['presetId']>>,
  Assert<Mutual<LivekitIntegration, SdkCreateParams.Livekit>>,
  Assert<Mutual<ElevenlabsIntegration, SdkCreateParams.Elevenlabs>>,
  Assert<Mutual<DeprecatedLivekit, SdkDeprecatedLivekit>>,
  Assert<Mutual<ClientEventTool, SdkCreateParams.ClientEvent>>,
  Assert<Mutual<BackendRpcTool, SdkCreateParams.BackendRpc>>,
];

// Status
export type StatusChecks = [
  Assert<Mutual<RealtimeSession, SdkStatus>>,
  Assert<Mutual<RealtimeSessionStatus, SdkStatus['status']>>,
  Assert<Mutual<NotReadySession, SdkStatus.NotReady>>,
  Assert<Mutual<ReadySession, SdkStatus.Ready>>,
  Assert<Mutual<RunningSession, SdkStatus.Running>>,
  Assert<Mutual<CompletedSession, SdkStatus.Completed>>,
  Assert<Mutual<FailedSession, SdkStatus.Failed>>,
  Assert<Mutual<CancelledSession, SdkStatus.Cancelled>>,
  Assert<Mutual<TerminalStatus, 'COMPLETED' | 'FAILED' | 'CANCELLED'>>,
];

// Consume (the avatars SDK's consumeSession answer)
export type ConsumeChecks = [Assert<Mutual<RoomCredentials, AvatarsConsumeResponse>>];

// Conversations
export type ConversationChecks = [
  Assert<Mutual<AvatarConversation, SdkConversation>>,
  Assert<Mutual<Extract<AvatarConversation, { status: 'in_progress' }>, SdkConversation.InProgress>>,
  Assert<Mutual<Extract<AvatarConversation, { status: 'ended' }>, SdkConversation.Ended>>,
  Assert<Mutual<Extract<AvatarConversation, { status: 'failed' }>, SdkConversation.Failed>>,
  Assert<Mutual<ConversationSummary, SdkConversationSummary>>,
  Assert<Mutual<ConversationPage, CursorPageResponse<SdkConversationSummary>>>,
  Assert<Mutual<ConversationListParams, SdkListParams>>,
];

// Organization
export type OrganizationChecks = [Assert<Mutual<Organization, SdkOrganization>>];

// What the zod schemas produce is exactly the SDK's types too.
export type SchemaChecks = [
  Assert<Mutual<Out<typeof createResponseSchema>, SdkCreateResponse>>,
  Assert<Mutual<Out<typeof realtimeSessionSchema>, SdkStatus>>,
  Assert<Mutual<Out<typeof credentialsSchema>, AvatarsConsumeResponse>>,
  Assert<Mutual<Out<typeof conversationSchema>, SdkConversation>>,
  Assert<Mutual<Out<typeof conversationSummarySchema>, SdkConversationSummary>>,
  Assert<Mutual<Out<typeof conversationPageSchema>, CursorPageResponse<SdkConversationSummary>>>,
  Assert<Mutual<Out<typeof organizationSchema>, SdkOrganization>>,
];
