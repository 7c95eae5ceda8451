// What a conversation said, from Runway's `GET /v1/avatar_conversations/{id}` (the session id is the
// conversation id there). Two uses: after the conversation ends, its transcript (every Runway session,
// in order, stitched) for GET /v1/sessions/:id/transcript; and at a relay renewal, the conversation so
// far as context for the next Runway session (createRunwaySession's `continuation`). Both are side
// dependencies: a Runway that does not answer makes the transcript `incomplete` or the context
// shorter, never a failed session.
import { activityInfo, heartbeat, sleep, log } from '@temporalio/activity';
import type { RunwayClient } from '../src/runway/client';
import { isRunwayError } from '../src/runway/errors';
import type { AvatarConversation, TranscriptEntry } from '../src/runway/types';
import { redactString } from '../src/redact';
import type { ConversationTranscript, TranscriptSession, TranscriptTurn } from '../workflows/types';

/**
 * Bound of a stored transcript (JSON bytes): it is one payload in Temporal history, whose hard limit
 * is 2 MB per payload (and which warns from 512 KB). Turns past it are left out (`truncated`).
 */
export const TRANSCRIPT_MAX_BYTES = 256 * 1024;

/**
 * Bound of the conversation context a renewal adds to `personality`. Runway documents no length limit
 * for `personality` (@runwayml/sdk types it as a plain string); the service accepts 10,000 characters
 * of the caller's own, and the two together stay under 16,000.
 */
export const CONTEXT_MAX_CHARS = 6000;
export const PERSONALITY_MAX_CHARS = 16_000;

export interface TranscriptRequest {
  conversationId: string;
  /** The conversation's Runway sessions, in the order they were created. */
  runwaySessionIds: string[];
  /** How long to wait for Runway to finalize every session's transcript before answering `incomplete`. */
  waitSeconds: number;
  /** Poll interval while waiting (default 2 s, growing to 10 s). */
  pollMs?: number;
}

export interface TranscriptDeps {
  runway: RunwayClient;
}

const FINAL = new Set(['ended', 'failed']);

function turnsOf(runwaySessionId: string, entries: TranscriptEntry[]): TranscriptTurn[] {
  return entries.map((e) => ({
    runwaySessionId,
    role: e.role,
    content: e.content,
    timestamp: e.timestamp,
    ...(e.toolCalls?.length ? { toolCalls: e.toolCalls } : {}),
    ...(e.toolResults?.length ? { toolResults: e.toolResults } : {}),
  }));
}

/** Reads one conversation; undefined (with the reason) when Runway would not say. */
async function readConversation(deps: TranscriptDeps, id: string): Promise<{ conversation?: AvatarConversation; error?: string; final?: boolean }> {
  try {
    const conversation = await deps.runway.getConversation(id);
    return { conversation, final: FINAL.has(conversation.status) };
  } catch (err) {
    const message = redactString(err instanceof Error ? err.message : String(err));
    // 404 and other non-retryable answers will not change: stop waiting for this one.
    return { error: message, final: isRunwayError(err) && !err.retryable };
  }
}

/**
 * Stitches the sessions' transcripts in creation order, within TRANSCRIPT_MAX_BYTES.
 * Exported for tests.
 */
export function stitch(
  conversationId: string,
  ids: string[],
  read: Map<string, { conversation?: AvatarConversation; error?: string; final?: boolean }>,
): ConversationTranscript {
  const sessions: TranscriptSession[] = [];
  const turns: TranscriptTurn[] = [];
  let bytes = 0;
  let truncated = false;
  let complete = true;
  for (const id of ids) {
    const r = read.get(id);
    const c = r?.conversation;
    if (!c || c.status === 'in_progress') complete = false;
    const own = c ? turnsOf(id, c.transcript) : [];
    let kept = 0;
    for (const t of own) {
      const size = Buffer.byteLength(JSON.stringify(t));
      if (truncated || bytes + size > TRANSCRIPT_MAX_BYTES) {
        truncated = true;
        continue;
      }
      bytes += size;
      turns.push(t);
      kept++;
    }
    sessions.push({
      runwaySessionId: id,
      status: c ? c.status : 'unavailable',
      recordingUrl: c?.recordingUrl ?? null,
      startedAt: c?.startedAt ?? null,
      endedAt: c && c.status !== 'in_progress' ? c.endedAt : null,
      turns: kept,
      ...(r?.error ? { error: r.error } : {}),
    });
  }
  return { conversationId, status: complete ? 'complete' : 'incomplete', sessions, turns, truncated, fetchedAt: new Date().toISOString() };
}

/**
 * The conversation so far as text for the next Runway session's `personality`: the most recent turns
 * first in priority (older ones are dropped when the budget is spent), written in order.
 * Exported for tests.
 */
export function contextText(turns: { role: string; content: string | null }[], maxChars = CONTEXT_MAX_CHARS): string {
  const header =
    '\n\n[This conversation continues from an earlier session of yours. Do not greet the user again or restart; carry on from where it was. The conversation so far, oldest first:]\n';
  const lines: string[] = [];
  let used = header.length;
  for (let i = turns.length - 1; i >= 0; i--) {
    const t = turns[i]!;
    const text = (t.content ?? '').replace(/\s+/g, ' ').trim();
    if (!text) continue;
    const line = `${t.role === 'user' ? 'User' : 'You'}: ${text}\n`;
    if (used + line.length > maxChars) break;
    used += line.length;
    lines.unshift(line);
  }
  return lines.length ? header + lines.join('') : '';
}

export function createTranscriptActivities(deps: TranscriptDeps) {
  return {
    /**
     * The conversation's transcript: reads every Runway session's conversation, again and again while
     * some are not final yet (Runway may take a while), until `waitSeconds` pass; then answers with
     * what it has (`incomplete`). Never fails on Runway's answers: the caller stores whatever comes.
     */
    async fetchConversationTranscript(req: TranscriptRequest): Promise<ConversationTranscript> {
      const deadline = Date.now() + req.waitSeconds * 1000;
      const read = new Map<string, { conversation?: AvatarConversation; error?: string; final?: boolean }>();
      let delay = req.pollMs ?? 2000;
      for (;;) {
        for (const id of req.runwaySessionIds) {
          if (read.get(id)?.final) continue;
          read.set(id, await readConversation(deps, id));
        }
        const waiting = req.runwaySessionIds.filter((id) => !read.get(id)?.final);
        if (!waiting.length || Date.now() + delay > deadline) {
          if (waiting.length)
            log.warn('transcript incomplete: Runway did not finalize every session in time', { waiting: waiting.length, waitSeconds: req.waitSeconds });
          return stitch(req.conversationId, req.runwaySessionIds, read);
        }
        if (!activityInfo().isLocal) heartbeat({ waiting: waiting.length });
        await sleep(delay);
        delay = Math.min(10_000, Math.round(delay * 1.5));
      }
    },
  };
}

/** How long a renewal's create may spend reading the context (create has 45 s, one attempt: a timeout there is an ambiguous create). */
export const CONTEXT_READ_BUDGET_MS = 5000;

/**
 * The conversation so far, from the Runway sessions before the next one (newest first, each read
 * once, after `latest`, stopping once the budget of characters or of time is spent), as context text; '' when Runway
 * gives nothing. Errors are logged and skipped: a renewal without context is better than no renewal.
 */
export async function conversationSoFar(
  runway: RunwayClient,
  previousIds: string[],
  maxChars = CONTEXT_MAX_CHARS,
  budgetMs = CONTEXT_READ_BUDGET_MS,
  latest: { role: string; content: string | null }[] = [],
): Promise<string> {
  // `latest`: the turns of the session being replaced as the relay saw them (the newest part).
  const turns: { role: string; content: string | null }[] = [...latest];
  const deadline = Date.now() + budgetMs;
  let chars = latest.reduce((n, e) => n + (e.content?.length ?? 0), 0);
  for (const id of [...previousIds].reverse()) {
    const left = deadline - Date.now();
    if (chars >= maxChars || left <= 0) break;
    let timer: NodeJS.Timeout | undefined;
    try {
      const c = await Promise.race([
        runway.getConversation(id),
        new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${budgetMs} ms`)), left))),
      ]);
      turns.unshift(...c.transcript);
      chars += c.transcript.reduce((n, e) => n + (e.content?.length ?? 0), 0);
    } catch (err) {
      log.warn('could not read an earlier Runway session for the renewal context', { runwaySessionId: id, error: redactString(String(err)) });
    } finally {
      clearTimeout(timer);
    }
  }
  return contextText(turns, maxChars);
}
