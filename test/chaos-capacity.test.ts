// The chaos harness's admission check (src/chaos/capacity.ts) on made-up ledgers: a wait while
// Runway was full is fine, a wait while it had room is measured, outages (plus their grace) do not
// count, and a capacity_timeout is named as such.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { capacityWaits, waitIntervals } from '../src/chaos/capacity';
import type { SessionState } from '../workflows/types';

const T0 = Date.parse('2026-12-01T00:00:00Z');
const iso = (s: number) => new Date(T0 + s * 1000).toISOString();

function waited(from: number, to: number, then: string, error?: string): SessionState {
  return {
    conversationId: 'c',
    phase: error ? 'failed' : 'completed',
    requestedMode: 'direct',
    runwaySessionIds: [],
    roomName: 'r',
    phaseTimes: error ? { tearing_down: iso(to) } : {},
    ambiguousCreates: [],
    events: [{ at: iso(from), type: 'waiting_capacity', message: '' }, ...(error ? [] : [{ at: iso(to), type: then, message: '' }])],
    ...(error ? { error: { code: error, message: '' } } : {}),
  } as unknown as SessionState;
}

/** `n` Runway sessions active over [from, to) seconds. */
const active = (n: number, from: number, to: number) => Array.from({ length: n }, () => ({ createdAt: iso(from), endedAt: iso(to) }));

/** A session whose events are these (seconds, type). */
const withEvents = (conversationId: string, events: [number, string][]) => ({
  conversationId,
  state: { ...waited(0, 1, 'slot_granted'), events: events.map(([at, type]) => ({ at: iso(at), type, message: '' })) },
});

describe('the chaos admission check', () => {
  it('reads waits from the events, to the next other event or the teardown', () => {
    assert.deepEqual(
      waitIntervals(waited(1, 4, 'slot_granted'), T0 + 99_000).map((w) => [(w.from - T0) / 1000, (w.to - T0) / 1000, w.how]),
      [[1, 4, 'then slot_granted']],
    );
    assert.equal(waitIntervals(waited(1, 30, '', 'capacity_timeout'), T0 + 99_000)[0]!.how, 'failed capacity_timeout');
  });

  it('a wait while Runway is full does not count; one while it has room does', () => {
    const ledger = [...active(2, 0, 10), ...active(1, 0, 4)]; // 3 until 4 s, then 2
    const { waits, longest } = capacityWaits({
      sessions: [{ conversationId: 'a', state: waited(1, 9, 'slot_granted') }],
      ledger,
      limit: 3,
      outages: [],
      outageGraceMs: 0,
      endMs: T0 + 20_000,
    });
    assert.ok(Math.abs(waits[0]!.roomSeconds - 5) < 0.2, `room from 4 s to 9 s: ${waits[0]!.roomSeconds}`);
    assert.equal(waits[0]!.activeDuring, 2);
    assert.equal(longest.conversationId, 'a');
  });

  it('a slot granted to a session still on its way to Runway is taken, not room', () => {
    const ledger = active(2, 0, 20); // 2 of 3 at Runway throughout
    const onItsWay = withEvents('b', [
      [1, 'slot_granted'],
      [12, 'runway_session_created'],
    ]);
    const { waits } = capacityWaits({
      sessions: [{ conversationId: 'a', state: waited(2, 15, 'slot_granted') }, onItsWay],
      ledger,
      limit: 3,
      outages: [],
      outageGraceMs: 0,
      endMs: T0 + 30_000,
    });
    const a = waits.find((w) => w.conversationId === 'a')!;
    assert.ok(Math.abs(a.roomSeconds - 3) < 0.2, `room only once b is at Runway (12 s to 15 s): ${a.roomSeconds}`);
    assert.ok(Math.abs(a.runwayRoomSeconds - 13) < 0.2, `by Runway's count alone, 2 s to 15 s: ${a.runwayRoomSeconds}`);
  });

  it('a slot a waiting renewal takes is not room for a new session (renewals are granted first)', () => {
    const ledger = active(2, 0, 20); // 2 of 3 at Runway throughout: one slot free
    const renewal = withEvents('r', [
      [1, 'live'],
      [3, 'renewing'],
      [10, 'slot_granted'],
      [11, 'runway_session_created'],
    ]);
    const { waits } = capacityWaits({
      sessions: [{ conversationId: 'a', state: waited(2, 15, 'slot_granted') }, renewal],
      ledger,
      limit: 3,
      outages: [],
      outageGraceMs: 0,
      endMs: T0 + 30_000,
    });
    const a = waits.find((w) => w.conversationId === 'a')!;
    assert.ok(Math.abs(a.roomSeconds - 4) < 0.2, `room only after the renewal reached Runway (11 s to 15 s): ${a.roomSeconds}`);
    assert.ok(Math.abs(a.runwayRoomSeconds - 13) < 0.2, `by Runway's count alone, 2 s to 15 s: ${a.runwayRoomSeconds}`);
  });

  it('time while a process is down (and its grace) does not count, except in the raw figure', () => {
    const { waits } = capacityWaits({
      sessions: [{ conversationId: 'a', state: waited(0, 20, '', 'capacity_timeout') }],
      ledger: active(1, 0, 30),
      limit: 3,
      outages: [{ kind: 'temporal', from: T0 + 2000, to: T0 + 8000 }],
      outageGraceMs: 5000,
      endMs: T0 + 30_000,
    });
    assert.ok(Math.abs(waits[0]!.roomSeconds - 7) < 0.2, `13 s to 20 s counts: ${waits[0]!.roomSeconds}`);
    assert.ok(Math.abs(waits[0]!.rawRoomSeconds - 20) < 0.2);
    assert.equal(waits[0]!.how, 'failed capacity_timeout');
  });
});
