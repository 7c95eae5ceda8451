// Validation of a session's input: the API, the typed client and the session workflow (through a
// local activity, activities/input.ts) all call this, so a bad request is rejected with the same
// message wherever it enters. Not imported by workflow code: zod is about 460 KB of code, and every
// module a workflow imports is evaluated again for each run a worker holds.
import { z } from 'zod';
import { RUNWAY_PRESET_IDS } from './runway/constants';
import type { SessionInput } from '../workflows/types';

const identity = z.string().min(1).max(128);

const avatarSchema = z.discriminatedUnion(
  'type',
  [
    z
      .object({
        type: z.literal('runway-preset'),
        presetId: z.string().refine((v) => (RUNWAY_PRESET_IDS as readonly string[]).includes(v), {
          message: `unknown preset; use one of: ${RUNWAY_PRESET_IDS.join(', ')}`,
        }),
      })
      .strict(),
    z.object({ type: z.literal('custom'), avatarId: z.string().min(1).max(256) }).strict(),
  ],
  { error: "must be {type:'runway-preset', presetId} or {type:'custom', avatarId}" },
);

const toolSchema = z
  .object({
    type: z.enum(['client_event', 'backend_rpc']),
    name: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must start with a letter or _ and contain only letters, digits and _'),
    description: z.string().min(1).max(1024),
    parameters: z.array(z.unknown()).optional(),
    timeoutSeconds: z.number().int().positive().optional(),
  })
  .strict();

const timingSchema = z
  .object({
    readyDeadlineSeconds: z.number().positive().max(3600),
    avatarJoinTimeoutSeconds: z.number().positive().max(600),
    maxCreateAttempts: z.number().int().min(1).max(10),
    monitorIntervalSeconds: z.number().positive().max(300),
    endCallGraceSeconds: z.number().min(0).max(60),
    heartbeatTimeoutSeconds: z.number().min(1).max(300),
    capacityWaitSeconds: z
      .number()
      .positive()
      .max(24 * 3600),
    sessionCapSeconds: z.number().min(0).max(3600),
    renewalLeadSeconds: z.number().min(1).max(600),
    transcriptWaitSeconds: z.number().min(0).max(3600),
  })
  .partial()
  .strict();

export const sessionInputSchema = z
  .object({
    conversationId: z.string().regex(/^[A-Za-z0-9._:-]{1,128}$/, 'must be 1-128 characters of A-Z a-z 0-9 . _ : -'),
    avatar: avatarSchema,
    livekit: z
      .object({
        roomName: z.string().min(1).max(256),
        agentIdentity: identity.optional(),
        listenTo: z.array(identity).max(32).optional(),
        endUserIdentity: identity.optional(),
      })
      .strict(),
    // Resolved here, once: every later reader sees the mode (a missing mode used to skip the fallback).
    mode: z.enum(['auto', 'direct', 'relay']).default('auto'),
    maxDurationSeconds: z.number().int('must be a whole number of seconds').positive('must be a positive number of seconds').max(86_400).optional(),
    personality: z.string().max(10_000).optional(),
    startScript: z.string().max(10_000).optional(),
    tools: z.array(toolSchema).max(32).optional(),
    timing: timingSchema.optional(),
  })
  .strict();

export class InvalidInputError extends Error {
  override readonly name = 'InvalidInputError';
  constructor(
    message: string,
    readonly issues: { field: string; message: string }[],
  ) {
    super(message);
  }
}

/** Returns the input with defaults applied, or throws InvalidInputError naming every bad field. */
export function validateSessionInput(raw: unknown): SessionInput {
  const res = sessionInputSchema.safeParse(raw);
  if (res.success) return res.data;
  const issues = res.error.issues.map((i) => ({
    field: i.path.length ? i.path.join('.') : '(body)',
    message: i.code === 'unrecognized_keys' ? `unknown field(s) ${i.keys.join(', ')}: remove them` : i.message,
  }));
  throw new InvalidInputError(issues.map((i) => `${i.field}: ${i.message}`).join('; '), issues);
}
