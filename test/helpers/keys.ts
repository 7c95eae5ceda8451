import { createHash } from 'node:crypto';

/** The tests' history key: fixed, so recorded histories stay readable by the replay test. Never a real key. */
export const TEST_SECRETS_KEY = createHash('sha256').update('runway-avatar-sessions test history key').digest();
