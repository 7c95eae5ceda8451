// Activities are created by factories that receive their clients (Temporal samples' DI pattern).
import { createRunwayActivities, type RunwayActivityDeps } from './runway';
import { createRoomActivities, type RoomActivityDeps } from './room';
import { createRelayActivities, type RelayDeps } from './relay';
import { createReaperActivities, type ReaperDeps } from './reaper';
import { createAdmissionActivities, type AdmissionDeps } from './admission';
import { createInputActivities } from './input';
import { createTranscriptActivities } from './transcript';

export type SessionActivityDeps = RunwayActivityDeps &
  Omit<RoomActivityDeps, 'runway'> &
  Pick<ReaperDeps, 'temporal'> &
  Omit<AdmissionDeps, 'runway' | 'temporal'>;

/** Activities of the orchestration worker (task queue `avatar-sessions`). */
export function createSessionActivities(deps: SessionActivityDeps) {
  return {
    ...createRunwayActivities(deps),
    ...createRoomActivities(deps),
    ...createReaperActivities(deps),
    ...createAdmissionActivities(deps),
    ...createTranscriptActivities(deps),
    ...createInputActivities(),
  };
}

/** Activities of the media worker (task queue `avatar-media`). */
export function createMediaActivities(deps: RelayDeps) {
  return createRelayActivities(deps);
}

export type SessionActivities = ReturnType<typeof createSessionActivities>;
export type MediaActivities = ReturnType<typeof createMediaActivities>;
export type ReaperActivities = ReturnType<typeof createReaperActivities>;
export type AdmissionActivities = ReturnType<typeof createAdmissionActivities>;
