// What the embedded dev stack's open modes (the demo page without a token, the codec for the
// embedded Temporal UI) require of a request: it comes straight from this machine. A reverse proxy on
// the same host would make every outside request look local, so any sign of one (the headers
// proxies add) disqualifies it.
import type { FastifyRequest } from 'fastify';

export function isLoopbackAddress(addr: string | undefined): boolean {
  if (!addr) return false;
  return addr === '::1' || /^(::ffff:)?127\.\d+\.\d+\.\d+$/.test(addr);
}

/** Forwarded, X-Forwarded-*, X-Real-IP, Via and the like: the request passed through a proxy. */
export function viaProxy(req: Pick<FastifyRequest, 'headers'>): boolean {
  return Object.keys(req.headers).some(
    (h) =>
      h === 'forwarded' ||
      h === 'via' ||
      h.startsWith('x-forwarded-') ||
      h === 'x-real-ip' ||
      h === 'x-client-ip' ||
      h === 'true-client-ip' ||
      h === 'cf-connecting-ip',
  );
}

/** A request from a process on this machine that did not pass through a proxy. */
export function directLocalRequest(req: Pick<FastifyRequest, 'headers' | 'socket'>): boolean {
  return isLoopbackAddress(req.socket.remoteAddress) && !viaProxy(req);
}
