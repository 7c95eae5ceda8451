// avatar-sessions: start, inspect, end, list and watch sessions from a terminal. It talks to
// Temporal directly (TEMPORAL_ADDRESS etc., as the workers do) with the same history key
// (SESSION_SECRETS_KEY; in the embedded dev stack it is read from .data/dev-secrets.json).
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { SessionsClient } from './client/sessions';
import { PROJECT_ROOT } from './dev/tools';
import { InvalidInputError } from '../workflows/input';
import type { SessionInput, SessionPhase, SessionState } from '../workflows/types';
import { encryptedDataConverter } from './secrets/payload-codec';
import { connectClient } from './temporal';

const USAGE = `usage: avatar-sessions <command> [options]

  start   --conversation ID --room ROOM [--preset ID | --avatar-id ID] [--mode auto|direct|relay]
          [--agent IDENTITY] [--max-duration SECONDS] [--wait]
  status  CONVERSATION_ID
  end     CONVERSATION_ID
  list    [--phase PHASE] [--running] [--limit N]
  watch   CONVERSATION_ID        live view of the phases; exits when the session ends

Temporal: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE (default localhost:7233, default).
History key: SESSION_SECRETS_KEY (else .data/dev-secrets.json of the embedded stack).`;

class UsageError extends Error {}

const ORDER: SessionPhase[] = ['waiting_capacity', 'creating', 'waiting_ready', 'consuming', 'bridging', 'live', 'tearing_down', 'completed', 'failed'];

function secretsKeys(): Buffer[] {
  const fromEnv = process.env.SESSION_SECRETS_KEY;
  if (fromEnv) {
    const old = (process.env.SESSION_SECRETS_OLD_KEYS ?? '').split(',').map((k) => k.trim()).filter(Boolean);
    return [fromEnv, ...old].map((k) => Buffer.from(k, 'base64'));
  }
  const dev = path.join(PROJECT_ROOT, '.data', 'dev-secrets.json');
  if (existsSync(dev)) return [Buffer.from((JSON.parse(readFileSync(dev, 'utf8')) as { secretsKey: string }).secretsKey, 'base64')];
  throw new UsageError('SESSION_SECRETS_KEY is not set (the key the workers use to encrypt history), and there is no embedded stack in .data/');
}

function elapsed(from?: string, to?: string): string {
  if (!from) return '';
  const ms = (to ? Date.parse(to) : Date.now()) - Date.parse(from);
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)}s` : `${Math.round(ms / 1000)}s`;
}

/** One line per phase reached, with the time spent in it; the current one is marked. */
export function renderPhases(state: SessionState): string[] {
  const reached = ORDER.filter((p) => state.phaseTimes[p]).sort((a, b) => Date.parse(state.phaseTimes[a]!) - Date.parse(state.phaseTimes[b]!));
  const lines = [`${state.conversationId}  mode=${state.mode ?? state.requestedMode}  runway=${state.runwaySessionId ?? '-'}  room=${state.roomName}`];
  reached.forEach((p, i) => {
    const next = reached[i + 1];
    const current = p === state.phase;
    const done = p === 'completed' || p === 'failed';
    lines.push(`  ${current ? '▶' : '✓'} ${p.padEnd(16)} ${done ? '' : elapsed(state.phaseTimes[p], next ? state.phaseTimes[next] : undefined)}`);
  });
  if (state.endReason) lines.push(`  end reason: ${state.endReason}`);
  if (state.error) lines.push(`  error: ${state.error.code}: ${state.error.message}`);
  return lines;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === 'help' || command === '--help') {
    console.log(USAGE);
    return command ? 0 : 2;
  }
  const options = {
    conversation: { type: 'string' }, room: { type: 'string' }, preset: { type: 'string' }, 'avatar-id': { type: 'string' },
    mode: { type: 'string' }, agent: { type: 'string' }, 'max-duration': { type: 'string' }, wait: { type: 'boolean' },
    phase: { type: 'string' }, running: { type: 'boolean' }, limit: { type: 'string' }, json: { type: 'boolean' },
  } as const;
  let parsed;
  try {
    parsed = parseArgs({ args: rest, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const { values: v, positionals } = parsed;
  const needId = () => {
    const id = positionals[0];
    if (!id) throw new UsageError(`${command}: give the conversation id, e.g. avatar-sessions ${command} conv-123`);
    return id;
  };
  if (!['start', 'status', 'end', 'list', 'watch'].includes(command)) throw new UsageError(`unknown command "${command}"`);

  const client = await connectClient(undefined, encryptedDataConverter(secretsKeys()));
  const sessions = new SessionsClient(client);
  try {
    switch (command) {
      case 'start': {
        if (!v.conversation) throw new UsageError('start: --conversation is required');
        if (!v.room) throw new UsageError('start: --room is required (the customer LiveKit room)');
        if (v['max-duration'] !== undefined && !/^\d+$/.test(v['max-duration'])) throw new UsageError('start: --max-duration must be a whole number of seconds');
        const input = {
          conversationId: v.conversation,
          avatar: v['avatar-id'] ? { type: 'custom', avatarId: v['avatar-id'] } : { type: 'runway-preset', presetId: v.preset ?? 'cooking-teacher' },
          livekit: { roomName: v.room, ...(v.agent ? { agentIdentity: v.agent } : {}) },
          ...(v.mode ? { mode: v.mode } : {}),
          ...(v['max-duration'] ? { maxDurationSeconds: Number(v['max-duration']) } : {}),
        } as SessionInput;
        if (v.wait) {
          const { workflowId, runId, live } = await sessions.startAndWaitLive(input);
          console.log(JSON.stringify({ conversationId: input.conversationId, workflowId, runId, live }, null, 2));
        } else {
          const started = await sessions.startSession(input);
          console.log(JSON.stringify(started, null, 2));
        }
        return 0;
      }
      case 'status': {
        const state = await sessions.getSession(needId());
        if (!state) {
          console.error(`no session for conversation ${positionals[0]}`);
          return 3;
        }
        console.log(v.json ? JSON.stringify(state, null, 2) : renderPhases(state).join('\n'));
        return 0;
      }
      case 'end': {
        const ok = await sessions.endSession(needId(), 'cli');
        if (!ok) {
          console.error(`no session for conversation ${positionals[0]}`);
          return 3;
        }
        console.log(`ending ${positionals[0]}`);
        return 0;
      }
      case 'list': {
        if (v.phase && !ORDER.includes(v.phase as SessionPhase)) throw new UsageError(`list: --phase must be one of ${ORDER.join(', ')}`);
        const limit = v.limit ? Number(v.limit) : 50;
        if (!Number.isInteger(limit) || limit < 1) throw new UsageError('list: --limit must be a positive whole number');
        let n = 0;
        for await (const s of sessions.listSessions({ phase: v.phase as SessionPhase | undefined, running: v.running })) {
          console.log([s.conversationId, s.status, s.phase ?? '-', s.mode ?? '-', s.roomName ?? '-', s.startTime.toISOString()].join('\t'));
          if (++n >= limit) break;
        }
        return 0;
      }
      case 'watch': {
        const id = needId();
        const tty = process.stdout.isTTY;
        let drawn = 0;
        let lastPhase = '';
        for (;;) {
          const state = await sessions.getSession(id);
          if (!state) {
            console.error(`no session for conversation ${id}`);
            return 3;
          }
          const lines = renderPhases(state);
          if (tty) {
            if (drawn) process.stdout.write(`\x1b[${drawn}A\x1b[J`);
            process.stdout.write(lines.join('\n') + '\n');
            drawn = lines.length;
          } else if (state.phase !== lastPhase) {
            console.log(`${new Date().toISOString()} ${state.phase}${state.endReason ? ` (${state.endReason})` : ''}`);
          }
          lastPhase = state.phase;
          if (state.phase === 'completed' || state.phase === 'failed') {
            if (!tty) console.log(lines.join('\n'));
            return state.phase === 'completed' ? 0 : 1;
          }
          await new Promise((r) => setTimeout(r, 500));
        }
      }
    }
    return 2;
  } finally {
    await client.connection.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    if (err instanceof UsageError || err instanceof InvalidInputError) {
      console.error(`error: ${err.message}\n\n${USAGE}`);
      process.exit(2);
    }
    console.error(`error: ${(err as Error).message}`);
    process.exit(1);
  },
);
