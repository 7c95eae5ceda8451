// The activities a session calls, each with exactly one retry policy, declared here next to its
// name. The workflow reaches activities only through `sessionActivities()`, so a call site cannot
// pick another activity's policy (the old per-"personality" proxies let `create.waitUntilReady` run
// with one attempt). `test/activity-policies.test.ts` checks that every activity a session schedules
// has its entry here.
import * as wf from '@temporalio/workflow';
import type { MediaActivities, SessionActivities } from '../../activities';
// eslint-disable-next-line no-restricted-imports -- src/runway/constants.ts is constants only: deterministic, and light
import { RUNWAY_CALL_DEADLINE_MS } from '../../src/runway/constants';
import { MEDIA_TASK_QUEUE } from '../shared';
import { NON_RETRYABLE_KINDS, type SessionTiming } from '../types';

type AllActivities = SessionActivities & MediaActivities;

/** Failure types no retry fixes: the activity's own word, or a Runway answer that stays the same. */
const NON_RETRYABLE = [
  ...NON_RETRYABLE_KINDS,
  'invalid_input',
  'session_failed',
  'session_ended',
  'ready_timeout',
  'avatar_not_joined',
  'not_ready',
  'relay_unavailable',
];

/** How an activity runs: a regular activity (on a task queue) or a local one (inside the workflow task). */
export type Policy =
  | {
      local?: false;
      options: (t: SessionTiming) => wf.ActivityOptions;
      /**
       * Usually done in well under a second: pending search attribute changes wait for the next longer
       * wait instead of costing an upsert event of their own (a phase that brief is not worth showing).
       */
      brief?: true;
    }
  | { local: true; options: (t: SessionTiming) => wf.LocalActivityOptions };

const heartbeat = (t: SessionTiming) => t.heartbeatTimeoutSeconds * 1000;

/**
 * An attempt's start-to-close bound for an activity that makes up to `calls` Runway calls one after
 * another (each may take the client's whole deadline) on top of `ms` of its own waiting: an attempt
 * never times out while the call it waits on may still answer. (Heartbeating activities heartbeat
 * while a call is in flight: activities/heartbeat.ts.)
 */
export const outlastingRunwayCalls = (calls: number, ms = 0) => ms + calls * RUNWAY_CALL_DEADLINE_MS + 10_000;

/**
 * One entry per activity the session workflow calls. The media activities pinned to one media
 * worker (`adoptRelay`, `switchRelaySource`, `relayTranscript`) take that worker's queue at the call.
 */
export const ACTIVITY_POLICIES = {
  // A first run's check of its input (src/session-input.ts), inside the first workflow task.
  checkSessionInput: { local: true, options: () => ({ startToCloseTimeout: '10s', retry: { initialInterval: '200ms', maximumAttempts: 3 } }) },
  // One attempt: a create whose worker died may have reached Runway, and only the workflow can record
  // that for the reaper (workflows/session/create.ts retries clean failures itself). Not a local
  // activity: a local activity lost with its worker would run again unrecorded.
  // Heartbeats while Runway is slow to answer: a worker lost under it is noticed in the heartbeat timeout.
  createRunwaySession: {
    brief: true,
    options: (t) => ({ startToCloseTimeout: outlastingRunwayCalls(1), heartbeatTimeout: heartbeat(t), retry: { maximumAttempts: 1 } }),
  },
  // The first READY polls, inside the workflow task: most sessions are READY in a second or two.
  checkReadySoon: {
    local: true,
    // The window (1.5 s: bring-up.ts) and the call that may start at its very end.
    options: () => ({
      startToCloseTimeout: outlastingRunwayCalls(1, 5000),
      retry: { initialInterval: '500ms', maximumInterval: '5s', maximumAttempts: 3, nonRetryableErrorTypes: NON_RETRYABLE },
    }),
  },
  // Then, if not READY yet (queued sessions can take minutes): polls on a task queue, resuming its
  // backoff from its heartbeat on another worker.
  waitUntilReady: {
    options: (t) => ({
      startToCloseTimeout: outlastingRunwayCalls(1, t.readyDeadlineSeconds * 1000 + 30_000),
      heartbeatTimeout: heartbeat(t),
      retry: { initialInterval: '1s', maximumInterval: '10s', maximumAttempts: 5, nonRetryableErrorTypes: NON_RETRYABLE },
    }),
  },
  // Presence reads until the avatar publishes video (seconds: a local activity would hold the workflow
  // task, and with it queries and signals, that long).
  waitForAvatarInRoom: {
    options: (t) => ({
      startToCloseTimeout: (t.avatarJoinTimeoutSeconds + 60) * 1000,
      heartbeatTimeout: heartbeat(t),
      retry: { initialInterval: '1s', maximumInterval: '10s', maximumAttempts: 5, nonRetryableErrorTypes: NON_RETRYABLE },
    }),
  },
  // Consume works once: a retry only helps when the answer never left (the activity checks status first).
  consumeRunwaySession: {
    brief: true,
    // Two calls: the status (for the session key), then consume.
    options: () => ({
      startToCloseTimeout: outlastingRunwayCalls(2),
      retry: { initialInterval: '500ms', maximumInterval: '5s', maximumAttempts: 3, nonRetryableErrorTypes: NON_RETRYABLE },
    }),
  },
  // A read: safe to run again, so local (no task queue round trip).
  getRunwaySessionStatus: {
    local: true,
    options: () => ({
      startToCloseTimeout: outlastingRunwayCalls(1),
      retry: { initialInterval: '500ms', maximumInterval: '5s', maximumAttempts: 5, nonRetryableErrorTypes: NON_RETRYABLE },
    }),
  },
  // The direct session's slow safety check; TRY_CANCEL so `end` does not wait for its sleep.
  monitorDirectSession: {
    options: (t) => ({
      startToCloseTimeout: '24h',
      heartbeatTimeout: heartbeat(t),
      cancellationType: wf.ActivityCancellationType.TRY_CANCEL,
      retry: { initialInterval: '1s', maximumInterval: '10s', maximumAttempts: 10, nonRetryableErrorTypes: NON_RETRYABLE },
    }),
  },
  // The relay on any media worker. Each media worker crash costs an attempt (heartbeat timeout).
  relayMedia: {
    options: (t) => ({
      taskQueue: MEDIA_TASK_QUEUE,
      startToCloseTimeout: '24h',
      heartbeatTimeout: heartbeat(t),
      cancellationType: wf.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
      retry: { initialInterval: '1s', maximumInterval: '5s', maximumAttempts: 10, nonRetryableErrorTypes: NON_RETRYABLE },
    }),
  },
  // The relay on the media worker that holds it after a renewal; fails fast when that worker is gone.
  adoptRelay: {
    options: (t) => ({
      scheduleToStartTimeout: '10s',
      startToCloseTimeout: '24h',
      heartbeatTimeout: heartbeat(t),
      cancellationType: wf.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
      retry: { initialInterval: '1s', maximumInterval: '5s', maximumAttempts: 3, nonRetryableErrorTypes: [...NON_RETRYABLE, 'relay_not_here'] },
    }),
  },
  switchRelaySource: {
    options: (t) => ({
      scheduleToStartTimeout: '10s',
      startToCloseTimeout: (t.avatarJoinTimeoutSeconds + 30) * 1000,
      heartbeatTimeout: heartbeat(t),
      cancellationType: wf.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
      retry: {
        initialInterval: '1s',
        maximumInterval: '5s',
        maximumAttempts: 3,
        nonRetryableErrorTypes: [...NON_RETRYABLE, 'relay_not_here', 'relay_switch_failed'],
      },
    }),
  },
  // Renewal (relay): what the relay saw said so far, from the media worker holding it; fails fast
  // (the create then reads Runway's conversation endpoint instead).
  relayTranscript: {
    options: () => ({ scheduleToStartTimeout: '5s', startToCloseTimeout: '10s', retry: { maximumAttempts: 1 } }),
  },
  // Short teardown steps, safe to repeat, are local. END_CALL is best effort (cancel is the fallback).
  // The others retry until done, each within its own bound (10 minutes): a step that still fails is
  // recorded (teardown_incomplete) and the next one runs; the reaper ends a Runway session left over.
  sendEndCallToAvatar: {
    local: true,
    options: () => ({ startToCloseTimeout: '10s', scheduleToCloseTimeout: '30s', retry: { initialInterval: '500ms', maximumInterval: '5s' } }),
  },
  // Ending the Runway session and removing our participants retry until they succeed: a leak bills.
  // Local too: it waits at most END_CALL's grace (seconds) for a RUNNING session to complete, and
  // holding the workflow task that long (queries wait) is cheaper than a task-queue round trip.
  endRunwaySession: {
    local: true,
    // Up to four calls past the grace: a status read begun at its end, DELETE, a status read if the
    // DELETE was refused, the final status.
    options: (t) => ({
      startToCloseTimeout: outlastingRunwayCalls(4, t.endCallGraceSeconds * 1000),
      scheduleToCloseTimeout: '10m',
      retry: { initialInterval: '1s', maximumInterval: '30s' },
    }),
  },
  removeServiceParticipants: {
    local: true,
    options: () => ({ startToCloseTimeout: '30s', scheduleToCloseTimeout: '10m', retry: { initialInterval: '1s', maximumInterval: '30s' } }),
  },
  // Billing: reads of ended sessions' final durations, a side step. Local (one marker event per read,
  // batched: one call for all sessions ended since the last). It never fails for one session, and a
  // timed-out read is not retried: what it could not read is read again later or reported unknown.
  readBilledSeconds: { local: true, options: () => ({ startToCloseTimeout: '15s', retry: { maximumAttempts: 1 } }) },
  // Admission: idempotent by request id, so local (asked inside the workflow task that needs the slot).
  requestAdmission: { local: true, options: () => ({ startToCloseTimeout: '20s', retry: { initialInterval: '500ms', maximumInterval: '10s' } }) },
  releaseAdmission: {
    local: true,
    options: () => ({ startToCloseTimeout: '20s', scheduleToCloseTimeout: '10m', retry: { initialInterval: '500ms', maximumInterval: '10s' } }),
  },
  // After the session (its own workflow, avatarTranscript): waits within its bound for Runway to
  // finalize, then answers with what it has; a worker lost mid-wait costs an attempt (heartbeat).
  fetchConversationTranscript: {
    options: () => ({ startToCloseTimeout: '20m', heartbeatTimeout: '2m', retry: { initialInterval: '5s', maximumInterval: '30s', maximumAttempts: 3 } }),
  },
} satisfies Partial<Record<keyof AllActivities | 'adoptRelay', Policy>>;

export type SessionActivityName = keyof typeof ACTIVITY_POLICIES;

/** The activity type each entry schedules (`adoptRelay` is `relayMedia` on a pinned queue). */
export function activityTypeOf(name: SessionActivityName): keyof AllActivities {
  return name === 'adoptRelay' ? 'relayMedia' : name;
}

/**
 * One activity bound to its policy. `beforeBlocking` runs before a regular activity is scheduled (the
 * workflow task completes then, so pending search attribute changes go out with it).
 */
function proxy<K extends keyof AllActivities>(type: K, policy: Policy, t: SessionTiming, beforeBlocking: () => void, taskQueue?: string): AllActivities[K] {
  // Typed through the table above: the proxies' own mapped types do not narrow on a generic K.
  if (policy.local) return (wf.proxyLocalActivities(policy.options(t)) as unknown as AllActivities)[type];
  const fn = (
    wf.proxyActivities({ ...policy.options(t), ...(taskQueue ? { taskQueue } : {}) }) as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>
  )[type]!;
  return ((...args: unknown[]) => {
    if (!policy.brief) beforeBlocking();
    return fn(...args);
  }) as unknown as AllActivities[K];
}

/** The session's activities, each bound to its one policy. */
export function sessionActivities(t: SessionTiming, beforeBlocking: () => void = () => undefined) {
  const p = ACTIVITY_POLICIES as Record<SessionActivityName, Policy>;
  return {
    checkSessionInput: proxy('checkSessionInput', p.checkSessionInput, t, beforeBlocking),
    createRunwaySession: proxy('createRunwaySession', p.createRunwaySession, t, beforeBlocking),
    checkReadySoon: proxy('checkReadySoon', p.checkReadySoon, t, beforeBlocking),
    waitUntilReady: proxy('waitUntilReady', p.waitUntilReady, t, beforeBlocking),
    waitForAvatarInRoom: proxy('waitForAvatarInRoom', p.waitForAvatarInRoom, t, beforeBlocking),
    consumeRunwaySession: proxy('consumeRunwaySession', p.consumeRunwaySession, t, beforeBlocking),
    getRunwaySessionStatus: proxy('getRunwaySessionStatus', p.getRunwaySessionStatus, t, beforeBlocking),
    monitorDirectSession: proxy('monitorDirectSession', p.monitorDirectSession, t, beforeBlocking),
    relayMedia: proxy('relayMedia', p.relayMedia, t, beforeBlocking),
    /** The relay on the media worker queue that holds it (a renewal parked it there). */
    adoptRelay: (queue: string, ...args: Parameters<AllActivities['relayMedia']>) => proxy('relayMedia', p.adoptRelay, t, beforeBlocking, queue)(...args),
    switchRelaySource: (queue: string, ...args: Parameters<AllActivities['switchRelaySource']>) =>
      proxy('switchRelaySource', p.switchRelaySource, t, beforeBlocking, queue)(...args),
    relayTranscript: (queue: string, ...args: Parameters<AllActivities['relayTranscript']>) =>
      proxy('relayTranscript', p.relayTranscript, t, beforeBlocking, queue)(...args),
    sendEndCallToAvatar: proxy('sendEndCallToAvatar', p.sendEndCallToAvatar, t, beforeBlocking),
    endRunwaySession: proxy('endRunwaySession', p.endRunwaySession, t, beforeBlocking),
    removeServiceParticipants: proxy('removeServiceParticipants', p.removeServiceParticipants, t, beforeBlocking),
    readBilledSeconds: proxy('readBilledSeconds', p.readBilledSeconds, t, beforeBlocking),
    requestAdmission: proxy('requestAdmission', p.requestAdmission, t, beforeBlocking),
    releaseAdmission: proxy('releaseAdmission', p.releaseAdmission, t, beforeBlocking),
    fetchConversationTranscript: proxy('fetchConversationTranscript', p.fetchConversationTranscript, t, beforeBlocking),
  };
}

export type SessionActivityCalls = ReturnType<typeof sessionActivities>;
