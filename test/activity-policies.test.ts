// One retry policy per activity (workflows/session/activities.ts): every activity the session
// workflow schedules has exactly one entry in the policy table, the workflow reaches activities only
// through that table, and the policies that carry the lifecycle's rules say what those rules need.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { ACTIVITY_POLICIES, activityTypeOf, type Policy } from '../workflows/session/activities';
import { DEFAULT_TIMING } from '../workflows/types';
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
