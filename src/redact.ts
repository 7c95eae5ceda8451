// One place that knows what a secret looks like. Used by the logger, error messages and the
// Runway client so API keys, session keys and LiveKit tokens never reach logs or history.

const known = new Set<string>();

/** Remember a secret value (an API key read from config, a session key seen at runtime). */
export function registerSecret(value: string | undefined | null): void {
  if (value && value.length >= 8) known.add(value);
}

const PATTERNS: RegExp[] = [
  /\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/g, // JWTs (LiveKit tokens)
  /\bBearer\s+[A-Za-z0-9._~+/=-]{8,}/gi,
  /\bkey_[A-Za-z0-9]{16,}/g, // Runway API keys
];

export const REDACTED = '[REDACTED]';

export function redactString(s: string): string {
  let out = s;
  for (const secret of known) if (out.includes(secret)) out = out.split(secret).join(REDACTED);
  for (const re of PATTERNS) out = out.replace(re, (m) => (m.toLowerCase().startsWith('bearer') ? `Bearer ${REDACTED}` : REDACTED));
  return out;
}

/** Field names whose values are always secret, wherever they appear in a logged object. */
export const SECRET_FIELDS = ['apiKey', 'apiSecret', 'api_key', 'apiSecretKey', 'sessionKey', 'token', 'authorization', 'Authorization', 'secret', 'password', 'signedUrl'];
