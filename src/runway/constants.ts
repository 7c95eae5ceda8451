// Runway's contract constants (shared/runway-realtime-api.md), without zod: workflow code imports
// them, and everything a workflow module imports is evaluated again for every workflow run the worker
// holds (Temporal's reusable V8 context keeps module state per run), so this file must stay light.
// src/runway/types.ts re-exports them with the request and answer types.

/**
 * The Runway client's deadline for one whole call (headers and body). Activity timeouts are derived
 * from it (workflows/session/activities.ts): an activity always outlasts the calls it makes.
 */
export const RUNWAY_CALL_DEADLINE_MS = 30_000;

export const RUNWAY_MODEL = 'gwm1_avatars';
export const RUNWAY_API_VERSION = '2024-11-06';
export const RUNWAY_DEFAULT_BASE_URL = 'https://api.dev.runwayml.com';

/** Runway's preset avatars: the one place this list lives. */
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

/** `maxDuration` bounds in seconds. Runway has been seen cutting sessions at ~5 min regardless. */
export const RUNWAY_MAX_DURATION = { min: 10, max: 1800, default: 300 } as const;

/** Tool names: a letter or `_`, then letters, digits and `_`. */
export const RUNWAY_TOOL_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
