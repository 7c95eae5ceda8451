// The bearer-token check shared by every authenticated route (API and codec endpoints).
import { createHash, timingSafeEqual } from 'node:crypto';

const digest = (s: string) => createHash('sha256').update(s).digest();

/**
 * A checker for `Authorization: Bearer <token>`. Both sides are hashed, so the comparison is
 * constant-time whatever the lengths. Undefined when no token is configured.
 */
export function bearerChecker(token: string | undefined): ((authorization: string | undefined) => boolean) | undefined {
  if (!token) return undefined;
  const expected = digest(token);
  return (authorization) => {
    const m = /^Bearer +(\S+) *$/i.exec(authorization ?? '');
    return !!m && timingSafeEqual(digest(m[1]!), expected);
  };
}
