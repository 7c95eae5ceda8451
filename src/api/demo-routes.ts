// The demo page (src/api/demo/): start a session, watch its phases, see and hear the avatar in the
// customer's room through livekit-client (served from node_modules, no CDN), end it.
//
// Auth: the page itself is static and public; every API call it makes goes through /v1 and its
// token check. In token mode the page asks for SESSION_API_TOKEN and keeps it in sessionStorage
// (never in a URL). In the embedded stack without SESSION_API_TOKEN ("open" mode) the page works
// without a token, for a browser on this machine only: see loopbackBrowserRequest.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { RUNWAY_PRESET_IDS } from '../runway/types';
import { directLocalRequest } from './local-request';

export interface DemoOptions {
  /**
   * True only for the fully embedded dev stack (embedded Temporal, LiveKit and Runway simulator) with
   * no SESSION_API_TOKEN: same-origin browser requests from loopback need no token. Otherwise the
   * page asks for the token.
   */
  open: boolean;
  /** The customer's LiveKit URL the page connects to (allowed by the page's CSP). */
  livekitUrl: string;
}

/** The header the page sends with every API call in open mode (see loopbackBrowserRequest). */
export const DEMO_HEADER = 'x-avatar-demo';

const DIR = path.join(__dirname, 'demo');
const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);

/**
 * A request the demo page made from a browser on this machine, to this server, same-origin:
 * - the peer is loopback (the embedded stack listens on 127.0.0.1 anyway), and nothing says a proxy
 *   passed it on (Forwarded, X-Forwarded-*, Via…: behind a same-host proxy every client is loopback);
 * - Host is a loopback name (a DNS-rebound evil.example pointing at 127.0.0.1 keeps its own Host);
 * - Sec-Fetch-Site is same-origin (browsers set it and pages cannot; cross-site requests say cross-site);
 * - Origin, when sent, is this very origin;
 * - the custom DEMO_HEADER is present (a cross-origin page would need a CORS preflight, never granted).
 * Any process on this machine can of course send the same headers: open mode trusts local users,
 * like the embedded Temporal UI and codec do. Set SESSION_API_TOKEN when that is not acceptable.
 */
export function loopbackBrowserRequest(req: FastifyRequest): boolean {
  if (!directLocalRequest(req)) return false;
  const host = req.headers.host ?? '';
  const hostname = host.replace(/:\d+$/, '');
  if (!LOOPBACK_HOSTS.has(hostname)) return false;
  if (req.headers['sec-fetch-site'] !== 'same-origin') return false;
  const origin = req.headers.origin;
  if (origin !== undefined && origin !== `http://${host}`) return false;
  return req.headers[DEMO_HEADER] === '1';
}

function wsToHttp(url: string): string {
  return url.replace(/^ws(s?):/, 'http$1:');
}

export function registerDemoRoutes(app: FastifyInstance, opts: DemoOptions): void {
  const files = {
    html: readFileSync(path.join(DIR, 'index.html')),
    js: readFileSync(path.join(DIR, 'demo.js')),
    css: readFileSync(path.join(DIR, 'demo.css')),
  };
  let livekitClient: Buffer | undefined; // read on first use (≈0.5 MB)
  const lk = new URL(opts.livekitUrl);
  const lkOrigins = [`${lk.protocol}//${lk.host}`, `${wsToHttp(lk.protocol)}//${lk.host}`];
  const csp = [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "media-src 'self' blob: mediastream:",
    `connect-src 'self' ${lkOrigins.join(' ')}`,
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "form-action 'none'",
  ].join('; ');

  const send = (reply: FastifyReply, type: string, body: Buffer | string) =>
    reply
      .header('content-type', type)
      .header('cache-control', 'no-store')
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer')
      .header('content-security-policy', csp)
      .send(body);

  app.get('/', (_req, reply) => reply.redirect('/demo/'));
  app.get('/demo', (_req, reply) => reply.redirect('/demo/'));
  app.get('/demo/', (_req, reply) => send(reply, 'text/html; charset=utf-8', files.html));
  app.get('/demo/demo.js', (_req, reply) => send(reply, 'text/javascript; charset=utf-8', files.js));
  app.get('/demo/demo.css', (_req, reply) => send(reply, 'text/css; charset=utf-8', files.css));
  app.get('/demo/livekit-client.umd.js', (_req, reply) => {
    livekitClient ??= readFileSync(require.resolve('livekit-client') /* the package's "require" build: dist/livekit-client.umd.js */);
    return send(reply, 'text/javascript; charset=utf-8', livekitClient);
  });
  // What the page needs to know before its first API call: nothing secret.
  app.get('/demo/config.json', (_req, reply) =>
    send(
      reply,
      'application/json',
      JSON.stringify({ auth: opts.open ? 'open' : 'token', tokenHeader: DEMO_HEADER, presets: RUNWAY_PRESET_IDS, modes: ['auto', 'direct', 'relay'] }),
    ),
  );
}
