// One retry policy per activity (workflows/session/activities.ts): every activity the session
// workflow schedules has exactly one entry in the policy table, the workflow reaches activities only
// through that table, and the policies that carry the lifecycle's rules say what those rules need.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { ACTIVITY_POLICIES, activityTypeOf, type Policy } from '../workflows/session/activities';
import { msToNumber } from '@temporalio/common/lib/time';
import { RUNWAY_CALL_DEADLINE_MS } from '../src/runway/types';
import { DEFAULT_TIMING, type SessionTiming } from '../workflows/types';
import { loadHistories } from './helpers/histories';

const SESSION_DIR = path.join(__dirname, '..', 'workflows', 'session');
const policies = ACTIVITY_POLICIES as Record<string, Policy>;

describe('activity policies of the session workflow', () => {
  it('every proxy is built in workflows/session/activities.ts, from the table', () => {
    for (const f of readdirSync(SESSION_DIR).filter((f) => f.endsWith('.ts') && f !== 'activities.ts')) {
      const src = readFileSync(path.join(SESSION_DIR, f), 'utf8');
      assert.doesNotMatch(src, /proxy(Local)?Activities\s*[<(]/, `${f} builds its own activity proxy: add the activity to ACTIVITY_POLICIES instead`);
    }
  });

  it('every activity a recorded session scheduled has exactly one policy', () => {
    const scheduled = new Set<string>();
    for (const { workflowId, history } of loadHistories()) {
      if (workflowId.startsWith('admission')) continue;
      for (const e of history.events ?? []) {
        const type = e.activityTaskScheduledEventAttributes?.activityType?.name;
        if (type) scheduled.add(type);
        const marker = e.markerRecordedEventAttributes;
        if (marker?.markerName === 'core_local_activity') {
          const data = marker.details?.data?.payloads?.[0]?.data;
          const m = data && /"activity_type":"(\w+)"/.exec(Buffer.from(data).toString());
          if (m) scheduled.add(m[1]!);
        }
      }
    }
    assert.ok(scheduled.size >= 5, `recorded histories scheduled ${[...scheduled].join(', ')}`);
    for (const type of scheduled) {
      const entries = Object.keys(policies).filter((name) => activityTypeOf(name as keyof typeof ACTIVITY_POLICIES) === type && name !== 'adoptRelay');
      assert.equal(entries.length, 1, `${type}: ${entries.length} policies (${entries.join(', ')})`);
    }
  });

  it('every policy resolves with the default timing, with a start-to-close timeout', () => {
    for (const [name, p] of Object.entries(policies)) {
      const options = p.options(DEFAULT_TIMING);
      assert.ok(options.startToCloseTimeout, `${name} has no startToCloseTimeout`);
    }
  });

  it('every activity that calls Runway outlasts its calls: an attempt never ends while a call may still answer', () => {
    // What each attempt may do one after another (activities/runway.ts): Runway calls, each up to the
    // client's deadline, and its own waiting.
    const runway: Record<string, { calls: number; waitMs: (t: SessionTiming) => number }> = {
      createRunwaySession: { calls: 1, waitMs: () => 0 },
      checkReadySoon: { calls: 1, waitMs: () => 1500 }, // its window (bring-up.ts)
      waitUntilReady: { calls: 1, waitMs: (t) => t.readyDeadlineSeconds * 1000 },
      consumeRunwaySession: { calls: 2, waitMs: () => 0 }, // status, consume
      getRunwaySessionStatus: { calls: 1, waitMs: () => 0 },
      endRunwaySession: { calls: 4, waitMs: (t) => t.endCallGraceSeconds * 1000 }, // status at the grace's end, DELETE, status, status
    };
    const short: SessionTiming = { ...DEFAULT_TIMING, readyDeadlineSeconds: 5, endCallGraceSeconds: 1, heartbeatTimeoutSeconds: 2 };
    for (const timing of [DEFAULT_TIMING, short]) {
      for (const [name, { calls, waitMs }] of Object.entries(runway)) {
        const bound = msToNumber(policies[name]!.options(timing).startToCloseTimeout!);
        const needs = waitMs(timing) + calls * RUNWAY_CALL_DEADLINE_MS;
        assert.ok(bound > needs, `${name}: start-to-close ${bound} ms, but its ${calls} Runway call(s) and waiting may take ${needs} ms`);
      }
    }
  });

  it('create runs once per activity (the workflow records a lost answer instead of a blind retry) and is never local', () => {
    const create = policies.createRunwaySession!;
    assert.notEqual(create.local, true);
    assert.equal(create.options(DEFAULT_TIMING).retry?.maximumAttempts, 1);
    // Consume works once at Runway: never run twice by a replayed workflow task.
    assert.notEqual(policies.consumeRunwaySession!.local, true);
  });

  it('teardown steps retry until they succeed (no attempt limit)', () => {
    for (const name of ['endRunwaySession', 'removeServiceParticipants', 'releaseAdmission']) {
      assert.equal(policies[name]!.options(DEFAULT_TIMING).retry?.maximumAttempts, undefined, name);
    }
  });
});
