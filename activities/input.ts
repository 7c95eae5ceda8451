// The session workflow's check of its own input, as a local activity: the workflow bundle stays free
// of zod (src/session-input.ts says why), the check is the same one the API and the client run.
import { InvalidInputError, validateSessionInput } from '../src/session-input';
import type { SessionInput } from '../workflows/types';

export type InputCheck = { ok: true } | { ok: false; message: string };

export function createInputActivities() {
  return {
    /** Validates a session's input; never throws for bad input (the answer says what is wrong). */
    async checkSessionInput(raw: SessionInput): Promise<InputCheck> {
      try {
        validateSessionInput(raw);
        return { ok: true };
      } catch (err) {
        if (err instanceof InvalidInputError) return { ok: false, message: err.message };
        throw err;
      }
    },
  };
}
