// One place that knows what a secret looks like. Used by the logger, error messages and the
// Runway client so API keys, session keys and LiveKit tokens never reach logs or history.
//
// Two kinds of known values: the process's own configuration secrets (`pinSecret`: a handful, kept
// for the life of the process) and the ones seen at runtime (`registerSecret`: Runway session keys,
// the tokens of each session, about three per session). The runtime ones are bounded: the most
// recently registered MAX_RECENT_SECRETS are kept and older ones are forgotten, so a long-running
// worker neither grows without end nor scans more values per log line with every session. A
// forgotten value is one whose session is long over; JWTs (LiveKit tokens), bearer tokens and Runway
// API keys are redacted by pattern whatever their age.

const pinned = new Set<string>();
/** Insertion-ordered: re-registering a value moves it to the end (most recent). */
const recent = new Map<string, true>();

/** How many runtime secrets are remembered at most (the newest win). */
export const MAX_RECENT_SECRETS = 2048;

const usable = (value: string | undefined | null): value is string => !!value && value.length >= 8;

/** A secret of this process's configuration (API keys, tokens, keys): redacted for the life of the process. */
export function pinSecret(value: string | undefined | null): void {
  if (usable(value)) pinned.add(value);
}

/** A secret seen at runtime (a session key, a token): redacted while it is among the newest MAX_RECENT_SECRETS. */
export function registerSecret(value: string | undefined | null): void {
  if (!usable(value) || pinned.has(value)) return;
  recent.delete(value);
  recent.set(value, true);
  while (recent.size > MAX_RECENT_SECRETS) recent.delete(recent.keys().next().value!);
}

/** How many values are known (for tests and the curious): pinned ones and runtime ones. */
export function knownSecretCounts(): { pinned: number; recent: number } {
  return { pinned: pinned.size, recent: recent.size };
}

const PATTERNS: RegExp[] = [
  /\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/g, // JWTs (LiveKit tokens)
  /\bBearer\s+[A-Za-z0-9._~+/=-]{8,}/gi,
  /\bkey_[A-Za-z0-9]{16,}/g, // Runway API keys
];

export const REDACTED = '[REDACTED]';

export function redactString(s: string): string {
  let out = s;
  for (const known of [pinned, recent.keys()]) {
    for (const secret of known) if (out.includes(secret)) out = out.split(secret).join(REDACTED);
  }
  for (const re of PATTERNS) out = out.replace(re, (m) => (m.toLowerCase().startsWith('bearer') ? `Bearer ${REDACTED}` : REDACTED));
  return out;
}

/** Field names whose values are always secret, wherever they appear in a logged object. */
export const SECRET_FIELDS = [
  'apiKey',
  'apiSecret',
  'api_key',
  'apiSecretKey',
  'sessionKey',
  'token',
  'authorization',
  'Authorization',
  'secret',
  'password',
  'signedUrl',
];
