// Every function exported here is a workflow type the worker registers.
export { avatarSession } from './session/index';
export { reconcileRunwaySessions } from './reaper';
export { admissionController } from './admission';
export { avatarTranscript } from './transcript';
