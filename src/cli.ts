// avatar-sessions: start, inspect, end, list and watch sessions from a terminal. It talks to
// Temporal directly (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE… through envconfig, as the workers do) with
// the same history key (SESSION_SECRETS_KEY; in the embedded dev stack it is read from
// .data/dev-secrets.json).
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { SessionEndedError, SessionsClient } from './client/sessions';
import { codecKeys, oldKeys } from './config';
import { PROJECT_ROOT } from './dev/tools';
import { redactString } from './redact';
import { RUNWAY_PRESET_IDS } from './runway/types';
import { InvalidInputError, sessionInputSchema, validateSessionInput } from './session-input';
import { SESSION_PHASES, type ConversationTranscript, type SessionInput, type SessionPhase, type SessionState } from '../workflows/types';
import { encryptedDataConverter } from './secrets/payload-codec';
import { temporalConnectConfig } from './temporal';

export const USAGE = `usage: avatar-sessions <command> [options]

  start   --conversation ID --room ROOM [--preset ID | --avatar-id ID] [--mode auto|direct|relay]
          [--agent IDENTITY] [--end-user IDENTITY] [--max-duration SECONDS]
          [--wait [--timeout SECONDS]]        with --wait: until the session is live (default 60 s)
          [--restart]                         a new session even if the conversation's last one ended
  status  CONVERSATION_ID [--json]
  end     CONVERSATION_ID
  list    [--phase PHASE] [--running] [--room ROOM] [--limit N] [--json]
  watch   CONVERSATION_ID [--interval MS]     phases with elapsed times; exits when the session ends
  transcript CONVERSATION_ID [--json] [--wait [--timeout SECONDS]]
                                              what was said, every Runway session in order; with --wait:
                                              until it is fetched (default 300 s)

Temporal: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE (default localhost:7233, default), or a temporal.toml profile.
History key: SESSION_SECRETS_KEY (else .data/dev-secrets.json of the embedded stack).
Exit codes: 0 ok · 1 failed (session failed, Temporal unreachable) · 2 bad usage · 3 no such session
            · 4 start --wait timed out before the session was live; transcript: not fetched yet
            · 5 start: the conversation's session already ended (--restart starts a new one).`;

export const EXIT = { ok: 0, failed: 1, usage: 2, notFound: 3, timeout: 4, ended: 5 } as const;

export class UsageError extends Error {}

const ORDER: readonly SessionPhase[] = SESSION_PHASES;
const MODES = ['auto', 'direct', 'relay'];

/** Input fields of the session schema, and the flag that sets each. */
const FLAG_FOR_FIELD: Record<string, string> = {
  conversationId: '--conversation',
  'livekit.roomName': '--room',
  'avatar.presetId': '--preset',
  'avatar.avatarId': '--avatar-id',
  avatar: '--preset/--avatar-id',
  mode: '--mode',
  'livekit.agentIdentity': '--agent',
  'livekit.endUserIdentity': '--end-user',
  maxDurationSeconds: '--max-duration',
};

function secretsKeys(): Buffer[] {
  const fromEnv = process.env.SESSION_SECRETS_KEY;
  if (fromEnv) {
    const keys = codecKeys({
      secretsKey: Buffer.from(fromEnv, 'base64'),
      secretsOldKeys: oldKeys({ SESSION_SECRETS_OLD_KEYS: process.env.SESSION_SECRETS_OLD_KEYS }),
    });
    if (keys.some((k) => k.length !== 32)) throw new UsageError('SESSION_SECRETS_KEY (and SESSION_SECRETS_OLD_KEYS) must be 32 bytes, base64-encoded');
    return keys;
  }
  const dev = path.join(PROJECT_ROOT, '.data', 'dev-secrets.json');
  if (existsSync(dev)) return [Buffer.from((JSON.parse(readFileSync(dev, 'utf8')) as { secretsKey: string }).secretsKey, 'base64')];
  throw new UsageError('SESSION_SECRETS_KEY is not set (the key the workers use to encrypt history), and there is no embedded stack in .data/');
}

/**
 * Text from a session (room names, identities, error messages: whatever a caller or a remote service
 * chose) made safe for a terminal: control characters (escape sequences that would move the cursor,
 * rewrite the screen or the window title), bidi overrides and other invisible formatting characters
 * are shown as \u{…} escapes instead of being interpreted.
 */
export function printable(text: string | undefined | null, opts: { newlines?: boolean } = {}): string {
  return String(text ?? '').replace(/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu, (c) =>
    opts.newlines && c === '\n' ? c : `\\u{${c.codePointAt(0)!.toString(16).padStart(4, '0')}}`,
  );
}

function elapsed(from?: string, to?: string, now = Date.now()): string {
  if (!from) return '';
  const ms = Math.max(0, (to ? Date.parse(to) : now) - Date.parse(from));
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)}s` : `${Math.round(ms / 1000)}s`;
}

/** One line per phase reached, with the time spent in it (the current one: so far); the current one is marked. */
export function renderPhases(state: SessionState, now = Date.now()): string[] {
  const reached = ORDER.filter((p) => state.phaseTimes[p]).sort((a, b) => Date.parse(state.phaseTimes[a]!) - Date.parse(state.phaseTimes[b]!));
  const started = reached.length ? state.phaseTimes[reached[0]!] : undefined;
  const over = state.phase === 'completed' || state.phase === 'failed';
  const p = printable;
  const lines = [
    `${p(state.conversationId)}  phase=${p(state.phase)}  mode=${p(state.mode ?? state.requestedMode)}  runway=${p(state.runwaySessionId ?? '-')}  room=${p(state.roomName)}` +
      (started ? `  elapsed=${elapsed(started, over ? state.phaseTimes[state.phase] : undefined, now)}` : ''),
  ];
  reached.forEach((p, i) => {
    const next = reached[i + 1];
    const current = p === state.phase;
    const done = p === 'completed' || p === 'failed';
    lines.push(
      `  ${current ? '▶' : '✓'} ${p.padEnd(16)} ${done ? '' : elapsed(state.phaseTimes[p], next ? state.phaseTimes[next] : undefined, now)}`.trimEnd(),
    );
  });
  if (state.endReason) lines.push(`  end reason: ${p(state.endReason)}`);
  if (over && state.billedSeconds !== undefined)
    lines.push(`  billed: ${state.billedSeconds} s of Runway time${state.billedSecondsComplete ? '' : ' (incomplete: see docs/cost.md)'}`);
  if (state.error) lines.push(`  error: ${p(state.error.code)}: ${p(state.error.message)}`);
  return lines;
}

/** Rewrites the last frame in place on a terminal: cursor up over what was drawn, clear to the end, draw. */
/** A transcript as lines: one header per Runway session, then its turns (`HH:MM:SS role: text`). */
export function renderTranscript(t: ConversationTranscript): string[] {
  const lines = [
    `conversation ${t.conversationId}: ${t.status}${t.truncated ? ' (truncated)' : ''}, ${t.sessions.length} Runway session(s), ${t.turns.length} turn(s)`,
  ];
  for (const s of t.sessions) {
    lines.push(`-- Runway session ${s.runwaySessionId} (${s.status}${s.error ? `: ${s.error}` : ''})${s.recordingUrl ? ` recording: ${s.recordingUrl}` : ''}`);
    for (const turn of t.turns.filter((x) => x.runwaySessionId === s.runwaySessionId)) {
      const at = turn.timestamp ? turn.timestamp.slice(11, 19) : '--:--:--';
      const tools = turn.toolCalls?.length ? ` [tools: ${turn.toolCalls.map((c) => c.name).join(', ')}]` : '';
      lines.push(printable(`${at} ${turn.role}: ${turn.content ?? ''}${tools}`));
    }
  }
  return lines;
}

export function redraw(previousLines: number, lines: string[]): string {
  return `${previousLines ? `\x1b[${previousLines}A\x1b[J` : ''}${lines.join('\n')}\n`;
}

function flagError(err: InvalidInputError): UsageError {
  const msgs = err.issues.map((i) => {
    const flag = FLAG_FOR_FIELD[i.field];
    return flag ? `${flag}: ${i.message} (input field ${i.field})` : `${i.field}: ${i.message}`;
  });
  return new UsageError(`start: ${msgs.join('; ')}`);
}

function conversationIdArg(command: string, positionals: string[]): string {
  if (positionals.length === 0) throw new UsageError(`${command}: give the conversation id, e.g. avatar-sessions ${command} conv-123`);
  if (positionals.length > 1) throw new UsageError(`${command}: takes one conversation id, got ${positionals.length} arguments (${positionals.join(' ')})`);
  const id = positionals[0]!;
  const res = sessionInputSchema.shape.conversationId.safeParse(id);
  if (!res.success) throw new UsageError(`${command}: conversation id "${id}": ${res.error.issues[0]?.message ?? 'invalid'}`);
  return id;
}

function positiveInt(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new UsageError(`${flag} must be a positive whole number, got "${value}"`);
  return Number(value);
}

async function connect(): Promise<Client> {
  const cfg = temporalConnectConfig();
  const address = cfg.connectionOptions.address ?? 'localhost:7233';
  const dataConverter = encryptedDataConverter(secretsKeys(), { allowPlaintext: /^(1|true)$/.test(process.env.SESSION_ALLOW_PLAINTEXT_PAYLOADS ?? '') });
  let connection: Connection;
  try {
    connection = await Connection.connect({ ...cfg.connectionOptions, connectTimeout: '5s' });
  } catch (err) {
    throw new Error(`cannot reach Temporal at ${address} (namespace ${cfg.namespace}; set TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE): ${(err as Error).message}`, {
      cause: err,
    });
  }
  return new Client({ connection, namespace: cfg.namespace, dataConverter });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === 'help' || command === '--help' || command === '-h') {
    (command ? console.log : console.error)(USAGE);
    return command ? EXIT.ok : EXIT.usage;
  }
  const options = {
    conversation: { type: 'string' },
    room: { type: 'string' },
    preset: { type: 'string' },
    'avatar-id': { type: 'string' },
    mode: { type: 'string' },
    agent: { type: 'string' },
    'end-user': { type: 'string' },
    'max-duration': { type: 'string' },
    wait: { type: 'boolean' },
    timeout: { type: 'string' },
    restart: { type: 'boolean' },
    phase: { type: 'string' },
    running: { type: 'boolean' },
    limit: { type: 'string' },
    json: { type: 'boolean' },
    interval: { type: 'string' },
  } as const;
  const allowed: Record<string, string[]> = {
    start: ['conversation', 'room', 'preset', 'avatar-id', 'mode', 'agent', 'end-user', 'max-duration', 'wait', 'timeout', 'restart'],
    status: ['json'],
    end: [],
    list: ['phase', 'running', 'room', 'limit', 'json'],
    watch: ['interval'],
    transcript: ['json', 'wait', 'timeout'],
  };
  if (!allowed[command]) throw new UsageError(`unknown command "${command}"; commands: ${Object.keys(allowed).join(', ')}`);
  let parsed;
  try {
    parsed = parseArgs({ args: rest, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError(`${command}: ${(err as Error).message}`);
  }
  const { values: v, positionals } = parsed;
  for (const flag of Object.keys(v)) {
    if (!allowed[command].includes(flag)) throw new UsageError(`${command}: --${flag} is not an option of ${command}`);
  }

  // Every flag is checked before connecting: a bad command line never reaches Temporal.
  let run: (sessions: SessionsClient) => Promise<number>;
  switch (command) {
    case 'start': {
      if (positionals.length) throw new UsageError(`start: unexpected argument "${positionals[0]}"; the conversation id goes in --conversation`);
      if (!v.conversation) throw new UsageError('start: --conversation is required (the conversation id)');
      if (!v.room) throw new UsageError('start: --room is required (the customer LiveKit room)');
      if (v.preset && v['avatar-id']) throw new UsageError('start: give --preset or --avatar-id, not both');
      if (v.mode !== undefined && !MODES.includes(v.mode)) throw new UsageError(`start: --mode must be one of ${MODES.join(', ')}, got "${v.mode}"`);
      if (v.preset !== undefined && !(RUNWAY_PRESET_IDS as readonly string[]).includes(v.preset)) {
        throw new UsageError(`start: --preset "${v.preset}" is not a Runway preset; use one of: ${RUNWAY_PRESET_IDS.join(', ')}`);
      }
      if (v.timeout !== undefined && !v.wait) throw new UsageError('start: --timeout only applies with --wait');
      const maxDuration = v['max-duration'] === undefined ? undefined : positiveInt('start: --max-duration', v['max-duration'], 0);
      const timeoutMs = positiveInt('start: --timeout', v.timeout, 60) * 1000;
      let input: SessionInput;
      try {
        input = validateSessionInput({
          conversationId: v.conversation,
          avatar: v['avatar-id'] ? { type: 'custom', avatarId: v['avatar-id'] } : { type: 'runway-preset', presetId: v.preset ?? 'cooking-teacher' },
          livekit: { roomName: v.room, ...(v.agent ? { agentIdentity: v.agent } : {}), ...(v['end-user'] ? { endUserIdentity: v['end-user'] } : {}) },
          ...(v.mode ? { mode: v.mode } : {}),
          ...(maxDuration !== undefined ? { maxDurationSeconds: maxDuration } : {}),
        });
      } catch (err) {
        throw err instanceof InvalidInputError ? flagError(err) : err;
      }
      run = async (sessions) => {
        let started: Awaited<ReturnType<typeof sessions.startSession>>;
        try {
          started = await sessions.startSession(input, { restart: v.restart === true });
        } catch (err) {
          if (!(err instanceof SessionEndedError)) throw err;
          console.log(JSON.stringify({ conversationId: input.conversationId, previous: err.previous }, null, 2));
          console.error(printable(`${err.message.replace('with restart: true', 'with --restart')}`));
          return EXIT.ended;
        }
        if (!v.wait) {
          console.log(JSON.stringify(started, null, 2));
          return EXIT.ok;
        }
        const outcome = await sessions.waitLiveFor(input.conversationId, timeoutMs);
        if ('live' in outcome) {
          const livekitUrl = process.env.LIVEKIT_PUBLIC_URL || process.env.LIVEKIT_URL;
          console.log(JSON.stringify({ ...started, phase: 'live', live: { ...outcome.live, ...(livekitUrl ? { livekitUrl } : {}) } }, null, 2));
          return EXIT.ok;
        }
        const state = await sessions.getSession(input.conversationId);
        if ('timeout' in outcome) {
          console.log(JSON.stringify({ ...started, phase: state?.phase }, null, 2));
          console.error(
            `not live after ${timeoutMs / 1000} s (phase ${printable(state?.phase ?? 'unknown')}); the session keeps starting: avatar-sessions watch ${input.conversationId}`,
          );
          return EXIT.timeout;
        }
        console.log(JSON.stringify({ ...started, phase: state?.phase ?? 'failed', endReason: state?.endReason, error: state?.error }, null, 2));
        console.error(`the session did not go live: ${printable(state?.error ? `${state.error.code}: ${state.error.message}` : outcome.err.message)}`);
        return EXIT.failed;
      };
      break;
    }
    case 'status': {
      const id = conversationIdArg(command, positionals);
      run = async (sessions) => {
        const state = await sessions.getSession(id);
        if (!state) {
          console.error(`no session for conversation ${id}`);
          return EXIT.notFound;
        }
        console.log(v.json ? JSON.stringify(state, null, 2) : renderPhases(state).join('\n'));
        return EXIT.ok;
      };
      break;
    }
    case 'end': {
      const id = conversationIdArg(command, positionals);
      run = async (sessions) => {
        if (!(await sessions.endSession(id, 'cli'))) {
          console.error(`no session for conversation ${id}`);
          return EXIT.notFound;
        }
        console.log(`ending ${id}`);
        return EXIT.ok;
      };
      break;
    }
    case 'list': {
      if (positionals.length) throw new UsageError(`list: unexpected argument "${positionals[0]}"`);
      if (v.phase !== undefined && !ORDER.includes(v.phase as SessionPhase))
        throw new UsageError(`list: --phase must be one of ${ORDER.join(', ')}, got "${v.phase}"`);
      const limit = positiveInt('list: --limit', v.limit, 50);
      run = async (sessions) => {
        let n = 0;
        if (!v.json) console.log(['CONVERSATION', 'STATUS', 'PHASE', 'MODE', 'ROOM', 'STARTED'].join('\t'));
        const all = [];
        for await (const s of sessions.listSessions({
          phase: v.phase as SessionPhase | undefined,
          running: v.running,
          roomName: v.room,
          pageSize: Math.min(limit, 100),
        })) {
          if (v.json) all.push(s);
          else
            console.log(
              [s.conversationId, s.status, s.phase ?? '-', s.mode ?? '-', s.roomName ?? '-', s.startTime.toISOString()].map((v) => printable(v)).join('\t'),
            );
          if (++n >= limit) break;
        }
        if (v.json) console.log(JSON.stringify(all, null, 2));
        return EXIT.ok;
      };
      break;
    }
    case 'watch': {
      const id = conversationIdArg(command, positionals);
      const intervalMs = positiveInt('watch: --interval', v.interval, 500);
      run = async (sessions) => {
        const tty = process.stdout.isTTY === true;
        let drawn = 0;
        let lastPhase = '';
        for (;;) {
          const state = await sessions.getSession(id);
          if (!state) {
            console.error(`no session for conversation ${id}`);
            return EXIT.notFound;
          }
          const over = state.phase === 'completed' || state.phase === 'failed';
          const lines = renderPhases(state);
          if (tty) {
            process.stdout.write(redraw(drawn, lines));
            drawn = lines.length;
          } else if (state.phase !== lastPhase) {
            // Plain lines for pipes and logs: one per phase change, then the summary.
            const since = state.phaseTimes[state.phase];
            console.log(printable(`${since ?? new Date().toISOString()} ${state.phase}${state.endReason ? ` (${state.endReason})` : ''}`));
            if (over) console.log(lines.join('\n'));
          }
          lastPhase = state.phase;
          if (over) return state.phase === 'completed' ? EXIT.ok : EXIT.failed;
          await sleep(intervalMs);
        }
      };
      break;
    }
    case 'transcript': {
      const id = conversationIdArg(command, positionals);
      const timeoutMs = v.wait ? positiveInt('transcript: --timeout', v.timeout, 300) * 1000 : 0;
      if (v.timeout !== undefined && !v.wait) throw new UsageError('transcript: --timeout needs --wait');
      run = async (sessions) => {
        const until = Date.now() + timeoutMs;
        for (;;) {
          const answer = await sessions.getTranscript(id);
          if (!answer) {
            console.error(`no session for conversation ${id}`);
            return EXIT.notFound;
          }
          if (answer.status === 'none') {
            console.error(printable(`conversation ${id} has no transcript: ${answer.reason}`));
            return EXIT.notFound;
          }
          if (answer.status === 'pending') {
            if (Date.now() < until) {
              await sleep(1000);
              continue;
            }
            console.error(printable(`transcript of ${id} not available yet: ${answer.reason}`));
            return EXIT.timeout;
          }
          console.log(v.json ? JSON.stringify(answer, null, 2) : renderTranscript(answer).join('\n'));
          return EXIT.ok;
        }
      };
      break;
    }
    default:
      throw new UsageError(`unknown command "${command}"`);
  }

  const client = await connect();
  try {
    return await run(new SessionsClient(client));
  } finally {
    await client.connection.close();
  }
}

/** Runs the CLI and exits with its code; errors are printed (without secrets), never thrown. */
export function cli(argv: string[]): void {
  main(argv).then(
    (code) => process.exit(code),
    (err) => {
      if (err instanceof UsageError) {
        console.error(`error: ${printable(redactString(err.message), { newlines: true })}\n\n${USAGE}`);
        process.exit(EXIT.usage);
      }
      console.error(`error: ${printable(redactString((err as Error).message), { newlines: true })}`);
      process.exit(EXIT.failed);
    },
  );
}

if (require.main === module) cli(process.argv.slice(2));
