// The live session's long activity, run in its own cancellation scope: direct mode's monitor (a slow
// safety check on Runway and the room) or relay mode's relay (the media itself). After a renewal the
// relay was handed over inside the media worker that holds it, so it is asked there first (it adopts
// the running relay: no new join); if that worker is gone, any media worker starts it afresh.
import * as wf from '@temporalio/workflow';
import { directAvatarIdentity } from '../shared';
import { notPickedUp } from './failures';
import type { Serving, SessionRun } from './run';

export type ServingEnd = { reason: string; status?: string; failureCode?: string };

export interface ServingActivity {
  outcome?: ServingEnd;
  /** What the activity's promise rejected with (Temporal rejects with an ActivityFailure or a CancelledFailure). */
  failure?: Error;
  settled: () => boolean;
  /** Cancels it if it still runs and waits until it is done (the relay sends END_CALL, or hands over). */
  stop(): Promise<void>;
}

export function startServingActivity(run: SessionRun, serving: Serving): ServingActivity {
  const scope = new wf.CancellationScope();
  const act: ServingActivity = {
    settled: () => act.outcome !== undefined || act.failure !== undefined,
    stop: async () => {
      if (!act.settled()) scope.cancel();
      await running;
    },
  };
  const running = scope
    .run((): Promise<ServingEnd> =>
      serving.mode === 'direct'
        ? run.acts.monitorDirectSession({
            runwaySessionId: serving.id,
            roomName: run.room,
            avatarIdentity: serving.avatarIdentity ?? directAvatarIdentity(run.input.conversationId),
            intervalSeconds: run.timing.monitorIntervalSeconds,
          })
        : relayMedia(run, serving),
    )
    .then(
      (o) => void (act.outcome = o),
      (err: Error) => void (act.failure = err),
    );
  return act;
}

/** The media worker queue holding the relay of this Runway session, if one is known. */
export function relayQueueOf(run: SessionRun, serving: Serving): string | undefined {
  return run.relayQueues.get(serving.id) ?? serving.relayQueue;
}

async function relayMedia(run: SessionRun, serving: Serving): Promise<ServingEnd> {
  const req = {
    conversationId: run.input.conversationId,
    runwaySessionId: serving.id,
    sealedCredentials: serving.sealedCredentials!,
    roomName: run.room,
    bridgeIdentity: run.bridgeIdentity,
    agentIdentity: run.input.livekit.agentIdentity,
    listenTo: run.input.livekit.listenTo,
    maxSeconds: run.input.maxDurationSeconds ?? 24 * 3600,
  };
  const queue = relayQueueOf(run, serving);
  if (queue) {
    try {
      return await run.acts.adoptRelay(queue, req);
    } catch (err) {
      if (!notPickedUp(err)) throw err;
      run.event('relay_moved', `the media worker holding the relay (${queue}) did not take it back; relaying on any media worker`);
      // That worker is gone: a renewal must not send the switch there (the new relay reports its own queue).
      run.relayQueues.delete(serving.id);
      serving.relayQueue = undefined;
    }
  }
  return await run.acts.relayMedia(req);
}
