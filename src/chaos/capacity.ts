// The chaos harness's admission check (issue 20): did any session wait for capacity while Runway had
// room? From the simulator's ledger (when each Runway session was active) and each session's events
// (when it waited: from `waiting_capacity` or `concurrency_limited` to the next other event), the
// longest continuous stretch of each wait during which Runway's active sessions were below the
// account limit. Stretches count only while every process admission needs was up (plus a grace for
// catching up after a restart); the raw figure counts outages too. `roomSeconds` also leaves out
// slots already granted to sessions still on their way to Runway (slot_granted, not yet created):
// those are taken, by sessions slow to create, not waiting for admission; `runwayRoomSeconds` is the
// same stretch by Runway's count alone. Renewals waiting for their extra slot are ahead of every new
// session (admission grants them first: a live conversation must not lose its avatar to a new one), so
// a slot a waiting renewal takes is not room for a new session either.
import type { SimSession } from '../runway-sim/server';
import type { SessionState } from '../../workflows/types';

export interface Outage {
  kind: 'worker' | 'media-worker' | 'temporal';
  from: number;
  /** When it was back (undefined: not back). */
  to?: number;
}

export interface CapacityWait {
  conversationId: string;
  /** Longest stretch (s) of this wait with room at Runway, not granted to another session on its way there nor wanted by a waiting renewal, every process up. */
  roomSeconds: number;
  /** The same by Runway's count alone (granted sessions not there yet count as room). */
  runwayRoomSeconds: number;
  /** The same, counting outages. */
  rawRoomSeconds: number;
  /** Where that stretch started (ISO). */
  roomFrom?: string;
  /** The fewest Runway sessions active during that stretch. */
  activeDuring: number;
  how: string;
}

const WAITING = new Set(['waiting_capacity', 'concurrency_limited']);
const STEP_MS = 100;

/** The waits of one session: [from, to] in ms, and how each ended. */
export function waitIntervals(state: SessionState, endMs: number): { from: number; to: number; how: string }[] {
  const out: { from: number; to: number; how: string }[] = [];
  let from: number | undefined;
  for (const e of state.events ?? []) {
    const at = Date.parse(e.at);
    if (WAITING.has(e.type)) {
      from ??= at;
    } else if (from !== undefined) {
      out.push({ from, to: at, how: `then ${e.type}` });
      from = undefined;
    }
  }
  if (from !== undefined) {
    const end = state.phaseTimes?.tearing_down ?? state.phaseTimes?.failed ?? state.phaseTimes?.completed;
    out.push({
      from,
      to: end ? Date.parse(end) : endMs,
      how: state.error?.code === 'capacity_timeout' ? 'failed capacity_timeout' : `ended ${state.error?.code ?? state.endReason ?? 'open'}`,
    });
  }
  return out;
}

type Span = readonly [number, number];

/** How many spans [from, to) hold at t. */
function countAt(spans: Span[]): (t: number) => number {
  return (t) => spans.reduce((n, [a, b]) => n + (a <= t && t < b ? 1 : 0), 0);
}

/** From each event of this type to the session's next event (or `endMs`). */
function eventSpans(sessions: { state: SessionState }[], type: string, endMs: number): Span[] {
  const spans: Span[] = [];
  for (const { state } of sessions) {
    const ev = state.events ?? [];
    ev.forEach((e, i) => {
      if (e.type === type) spans.push([Date.parse(e.at), ev[i + 1] ? Date.parse(ev[i + 1]!.at) : endMs]);
    });
  }
  return spans;
}

export function capacityWaits(input: {
  sessions: { conversationId: string; state: SessionState }[];
  ledger: Pick<SimSession, 'createdAt' | 'endedAt'>[];
  limit: number;
  outages: Outage[];
  outageGraceMs: number;
  endMs: number;
}): { waits: CapacityWait[]; longest: { seconds: number; rawSeconds: number; runwaySeconds: number; conversationId?: string } } {
  const activeAt = countAt(input.ledger.map((s) => [Date.parse(s.createdAt), s.endedAt ? Date.parse(s.endedAt) : Infinity] as const));
  // Granted, not at Runway yet: from slot_granted to the session's next event (its create, or whatever ended it).
  const onTheirWay = countAt(eventSpans(input.sessions, 'slot_granted', input.endMs));
  // Renewals waiting for a slot: from `renewing` to the session's next event (its slot_granted, or whatever came instead).
  const renewalsAhead = countAt(eventSpans(input.sessions, 'renewing', input.endMs));
  const blocked = (t: number) => input.outages.some((o) => o.from <= t && t < (o.to ?? Infinity) + input.outageGraceMs);
  const waits: CapacityWait[] = [];
  const longest = { seconds: 0, rawSeconds: 0, runwaySeconds: 0 } as { seconds: number; rawSeconds: number; runwaySeconds: number; conversationId?: string };
  for (const { conversationId, state } of input.sessions) {
    for (const w of waitIntervals(state, input.endMs)) {
      let run = 0;
      let runway = 0;
      let bestRunway = 0;
      let raw = 0;
      let best = 0;
      let bestRaw = 0;
      let runFrom = 0;
      let bestFrom: number | undefined;
      let runMin = Infinity;
      let bestMin = 0;
      for (let t = w.from; t < w.to; t += STEP_MS) {
        const active = activeAt(t);
        const room = active < input.limit;
        raw = room ? raw + STEP_MS : 0;
        bestRaw = Math.max(bestRaw, raw);
        const up = !blocked(t);
        runway = room && up ? runway + STEP_MS : 0;
        bestRunway = Math.max(bestRunway, runway);
        if (room && up && active + onTheirWay(t) + renewalsAhead(t) < input.limit) {
          if (run === 0) {
            runFrom = t;
            runMin = Infinity;
          }
          run += STEP_MS;
          runMin = Math.min(runMin, active);
          if (run > best) {
            best = run;
            bestFrom = runFrom;
            bestMin = runMin;
          }
        } else run = 0;
      }
      const wait: CapacityWait = {
        conversationId,
        roomSeconds: best / 1000,
        runwayRoomSeconds: bestRunway / 1000,
        rawRoomSeconds: bestRaw / 1000,
        roomFrom: bestFrom !== undefined ? new Date(bestFrom).toISOString() : undefined,
        activeDuring: bestMin,
        how: w.how,
      };
      waits.push(wait);
      if (wait.roomSeconds > longest.seconds) Object.assign(longest, { seconds: wait.roomSeconds, conversationId });
      longest.rawSeconds = Math.max(longest.rawSeconds, wait.rawRoomSeconds);
      longest.runwaySeconds = Math.max(longest.runwaySeconds, wait.runwayRoomSeconds);
    }
  }
  return { waits, longest };
}
