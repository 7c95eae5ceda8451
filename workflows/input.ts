// What a session's input resolves to inside the workflow (its timing, Runway's maxDuration). The input
// was validated before (src/session-input.ts, at the API and client, and by the workflow's first task
// through a local activity); this module stays free of zod on purpose (see that file).
import { DEFAULT_TIMING, type SessionInput, type SessionTiming } from './types';

export function resolveTiming(input: SessionInput): SessionTiming {
  return { ...DEFAULT_TIMING, ...(input.timing ?? {}) };
}

/** What Runway is asked for: Runway accepts 10-1800 s per session. */
export function runwayMaxDuration(input: SessionInput): number | undefined {
  if (input.maxDurationSeconds === undefined) return undefined;
  return Math.min(1800, Math.max(10, input.maxDurationSeconds));
}
