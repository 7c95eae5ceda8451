// The demo page end to end: `npm start`'s embedded stack (src/main.ts as a child process, the
// simulator's avatar publishing real video and audio) driven through headless Chromium. The avatar's
// frame counter is read from screenshots of the page's video element: it must advance. In relay mode
// the avatar's audio is Runway's tone; in direct mode it is silent until "Say something" streams a
// phrase to it as a LiveKit agent would, which it then plays (and marks its video red while speaking).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { Writable } from 'node:stream';
import { TokenVerifier } from 'livekit-server-sdk';
import type { Browser, Page } from 'playwright-core';
import { SessionsClient } from '../src/client/sessions';
import { createLogger } from '../src/log';
import { decodeCounter } from '../src/media/frame-code';
import { encryptedDataConverter } from '../src/secrets/payload-codec';
import { connectClient } from '../src/temporal';
import { startApiServer } from '../src/api/server';
import { launchChromium } from './helpers/chromium';
import { pngBottomRedness, pngLuma } from './helpers/png';
import { startEmbeddedStack, type EmbeddedStack } from './helpers/embedded-stack';
import { eventually } from './helpers/wait';

const ARTIFACTS = path.resolve(__dirname, '..', 'test-artifacts', 'demo');

// Page-side code is passed as strings: functions compiled by tsx may carry helpers the page lacks.
const STATE = 'window.avatarDemo.state()';

/** The frame counter in the video element as the browser rendered it (a screenshot of the element, kept in `file`). */
async function frameCounter(page: Page, file: string): Promise<number | undefined> {
  const png = await page.locator('#video').screenshot({ path: file });
  return decodeCounter(pngLuma(png));
}

type PageState = {
  conversationId?: string;
  phase?: string;
  video: string;
  audio: string;
  level: number;
  roomConnected: boolean;
  speech: string;
  playback: { playback_position: number; interrupted: boolean } | null;
};
const pageState = (page: Page) => page.evaluate<PageState>(STATE);

/** Polls the page until `pred` holds for its state; the error names what it last saw. */
async function untilState(page: Page, what: string, pred: (s: PageState) => boolean, timeoutMs: number): Promise<PageState> {
  let last: PageState | undefined;
  return eventually(
    `${what} (last: ${JSON.stringify(last)})`,
    async () => {
      last = await pageState(page);
      return pred(last) ? last : undefined;
    },
    timeoutMs,
    200,
  ).catch((err: Error) => {
    throw new Error(`${err.message}; page state ${JSON.stringify(last)}`);
  });
}

describe('demo page', () => {
  let stack: EmbeddedStack;
  let browser: Browser;
  const auth = () => ({ authorization: `Bearer ${stack.secrets.apiToken}` });
  const api = (method: string, p: string, body?: unknown, headers: Record<string, string> = auth()) =>
    fetch(stack.apiUrl + p, {
      method,
      headers: { ...headers, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  const session = async (id: string) =>
    (await (await api('GET', `/v1/sessions/${id}`)).json()) as { phase: string; endReason?: string; mode?: string; phaseTimes: Record<string, string> };

  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    [browser, stack] = await Promise.all([launchChromium(), startEmbeddedStack({ logDir: ARTIFACTS })]);
  });
  after(async () => {
    await browser?.close();
    await stack?.stop();
  });

  for (const mode of ['direct', 'relay'] as const) {
    it(`${mode}: start on the page, phases advance to live, the avatar's video plays frames and its audio plays, End completes it`, async () => {
      const page = await browser.newPage();
      const consoleErrors: string[] = [];
      page.on('pageerror', (err) => consoleErrors.push(String(err)));
      try {
        await page.goto(`${stack.apiUrl}/demo/`);
        await page.waitForSelector('body[data-ready="true"]');
        assert.equal(await page.isVisible('#controls'), true, 'open mode: no login');
        assert.equal(await page.isVisible('#login'), false);
        await page.selectOption('#mode', mode);
        await page.selectOption('#preset', 'tennis-coach');
        await page.click('#start');

        const live = await untilState(page, 'phase live', (s) => s.phase === 'live', 90_000);
        const id = live.conversationId!;
        const phases = await page.locator('#phases li').allTextContents();
        for (const p of ['creating', 'waiting_ready', 'bridging', 'live'])
          assert.ok(
            phases.some((t) => t.startsWith(p)),
            `phase ${p} shown: ${phases.join(', ')}`,
          );
        assert.equal((await session(id)).mode, mode);

        // Video: the element plays, and the simulator's frame counter, read from its pixels, advances.
        await untilState(page, 'video playing', (s) => s.video === 'playing', 30_000);
        const shot = (n: number) => path.join(ARTIFACTS, `${mode}-video-${n}.png`);
        const first = await eventually('a video frame whose counter decodes', () => frameCounter(page, shot(1)), 15_000, 100);
        const second = await eventually(
          `the frame counter to move past ${first}`,
          async () => {
            const n = await frameCounter(page, shot(2));
            return n !== undefined && n > first ? n : undefined;
          },
          15_000,
          200,
        );
        await page.screenshot({ path: path.join(ARTIFACTS, `${mode}-live.png`) });
        assert.ok(second > first && second - first < 30 * 60, `counter ${first} → ${second}`);

        let spoken = '';
        if (mode === 'direct') {
          // Silent until an agent speaks: then "Say something" streams a phrase (lk.audio_stream) and
          // the avatar plays it, marks its video, and reports playback_started / playback_finished.
          assert.equal(await page.isDisabled('#say'), false, 'Say something is offered in direct mode');
          await untilState(page, 'audio subscribed', (s) => s.audio !== 'none', 20_000);
          await new Promise((r) => setTimeout(r, 500)); // a few level readings
          const quiet = await pageState(page);
          assert.ok(quiet.level < 0.01 && quiet.audio !== 'playing', `silent before anyone speaks: ${JSON.stringify(quiet)}`);
          await page.click('#say');
          await untilState(page, 'the avatar speaking (lk.playback_started)', (s) => s.speech === 'speaking' || s.speech === 'finished', 20_000);
          const red = await eventually(
            'the speaking marker in the video',
            async () => {
              const png = await page.locator('#video').screenshot({ path: path.join(ARTIFACTS, 'direct-speaking.png') });
              const r = pngBottomRedness(png);
              return r > 40 ? r : undefined;
            },
            10_000,
            50,
          );
          const loud = await untilState(page, 'the phrase reaching the page', (s) => s.level > 0.05, 10_000);
          const done = await untilState(page, 'lk.playback_finished', (s) => s.speech === 'finished', 20_000);
          assert.equal(done.playback!.interrupted, false);
          assert.ok(Math.abs(done.playback!.playback_position - 2.2) < 0.05, `played ${done.playback!.playback_position} s of the 2.2 s phrase`);
          assert.match((await page.textContent('#speech')) ?? '', /^played 2\.\d\d s$/);
          await untilState(page, 'silence again', (s) => s.level < 0.01, 10_000);
          const after = await eventually(
            'the marker gone',
            async () => (pngBottomRedness(await page.locator('#video').screenshot()) < 15 ? true : undefined),
            10_000,
            100,
          );
          assert.ok(after);
          spoken = `; said something: marker redness ${red.toFixed(0)}, level ${loud.level.toFixed(3)}, played ${done.playback!.playback_position} s`;
        } else {
          assert.equal(await page.isDisabled('#say'), true, "relay mode: Runway's own character speaks");
        }
        // Audio: subscribed, the <audio> element plays, and the tone (relay) or the phrase (direct) reaches the page's analyser.
        const heard = mode === 'relay' ? await untilState(page, 'audio playing', (s) => s.audio === 'playing', 20_000) : await pageState(page);
        if (mode === 'relay') assert.ok(heard.level > 0.05 && heard.level < 0.5, `tone level ${heard.level}`);
        const audioEl = await page.evaluate<{ paused: boolean; track: string }>(
          `(() => { const a = document.getElementById('audio'); const t = a.srcObject && a.srcObject.getAudioTracks()[0]; return { paused: a.paused, track: t ? t.readyState : 'none' }; })()`,
        );
        assert.deepEqual(audioEl, { paused: false, track: 'live' });
        console.log(
          `${mode}: live after ${((Date.parse((await session(id)).phaseTimes.live!) - Date.parse((await session(id)).phaseTimes.creating!)) / 1000).toFixed(1)} s from creating; frame counter ${first} → ${second}; audio RMS ${heard.level.toFixed(3)}${spoken}`,
        );

        await page.click('#end');
        await untilState(page, 'phase completed', (s) => s.phase === 'completed', 60_000);
        assert.match((await page.textContent('#end-reason')) ?? '', /ended_by_request/);
        const final = await untilState(page, 'viewer left the room', (s) => !s.roomConnected, 10_000);
        assert.equal(final.video, 'none');
        assert.equal((await session(id)).endReason, 'ended_by_request');
        await page.screenshot({ path: path.join(ARTIFACTS, `${mode}-completed.png`) });
        assert.deepEqual(consoleErrors, []);
      } finally {
        await page.close();
      }
    });
  }

  it('viewer-token: 404 unknown, 200 subscribe-only for a live session, 409 once it is not live; never logged', async () => {
    assert.equal((await api('POST', `/v1/sessions/nope-${randomBytes(4).toString('hex')}/viewer-token`)).status, 404);
    assert.equal((await api('POST', '/v1/sessions/x/viewer-token', undefined, {})).status, 401, 'the route needs the token');

    const id = `vt-${randomBytes(4).toString('hex')}`;
    const room = `room-${id}`;
    const started = await api('POST', '/v1/sessions?wait=live', {
      conversationId: id,
      avatar: { type: 'runway-preset', presetId: 'cooking-teacher' },
      livekit: { roomName: room },
      mode: 'direct',
    });
    assert.equal(started.status, 201);
    assert.equal(((await started.json()) as { phase: string }).phase, 'live');

    const res = await api('POST', `/v1/sessions/${id}/viewer-token`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('cache-control'), 'no-store');
    const body = (await res.json()) as { url: string; token: string; roomName: string };
    assert.equal(body.roomName, room);
    assert.equal(body.url, stack.endpoints.LiveKit);
    const claims = await new TokenVerifier('devkey', stack.secrets.livekitSecret).verify(body.token);
    assert.match(claims.sub ?? '', /^viewer-[0-9a-f]{12}$/);
    assert.deepEqual(
      {
        roomJoin: claims.video?.roomJoin,
        room: claims.video?.room,
        canSubscribe: claims.video?.canSubscribe,
        canPublish: claims.video?.canPublish,
        canPublishData: claims.video?.canPublishData,
        roomAdmin: claims.video?.roomAdmin,
        roomCreate: claims.video?.roomCreate,
      },
      { roomJoin: true, room, canSubscribe: true, canPublish: false, canPublishData: false, roomAdmin: undefined, roomCreate: undefined },
    );
    const ttl = Number(claims.exp) - Number(claims.nbf ?? claims.iat);
    assert.ok(ttl > 0 && ttl <= 300, `ttl ${ttl} s`);
    const other = (await (await api('POST', `/v1/sessions/${id}/viewer-token`)).json()) as { token: string };
    assert.notEqual((await new TokenVerifier('devkey', stack.secrets.livekitSecret).verify(other.token)).sub, claims.sub, 'a fresh identity per viewer');

    // The demo's stand-in agent: data only, as demo-agent-<conversationId>, in that room only.
    assert.equal((await api('POST', `/v1/sessions/nope-${randomBytes(4).toString('hex')}/demo-agent-token`)).status, 404);
    const agentRes = await api('POST', `/v1/sessions/${id}/demo-agent-token`);
    assert.equal(agentRes.status, 200);
    const agentBody = (await agentRes.json()) as { token: string; identity: string; avatarIdentity: string };
    assert.equal(agentBody.identity, `demo-agent-${id}`);
    assert.equal(agentBody.avatarIdentity, `runway-avatar-${id}`);
    const agentClaims = await new TokenVerifier('devkey', stack.secrets.livekitSecret).verify(agentBody.token);
    assert.equal(agentClaims.sub, `demo-agent-${id}`);
    assert.deepEqual(
      {
        roomJoin: agentClaims.video?.roomJoin,
        room: agentClaims.video?.room,
        canSubscribe: agentClaims.video?.canSubscribe,
        canPublish: agentClaims.video?.canPublish,
        canPublishData: agentClaims.video?.canPublishData,
        roomAdmin: agentClaims.video?.roomAdmin,
      },
      { roomJoin: true, room, canSubscribe: false, canPublish: false, canPublishData: true, roomAdmin: undefined },
    );

    assert.equal((await api('POST', `/v1/sessions/${id}/end`)).status, 202);
    await eventually('session completed', async () => ((await session(id)).phase === 'completed' ? true : undefined), 60_000, 250);
    assert.equal((await api('POST', `/v1/sessions/${id}/demo-agent-token`)).status, 409);
    const late = await api('POST', `/v1/sessions/${id}/viewer-token`);
    assert.equal(late.status, 409);
    assert.equal(((await late.json()) as { error: { code: string } }).error.code, 'not_live');

    assert.ok(stack.log().includes('/v1/sessions/:conversationId/viewer-token'), 'the route is logged…');
    for (const t of [body.token, other.token, agentBody.token])
      assert.ok(!stack.log().includes(t) && !stack.log().includes(t.split('.')[2]!), '…the token never');
  });

  it('open mode serves the API without a token only to same-origin requests from a loopback browser', async () => {
    const port = new URL(stack.apiUrl).port;
    const browserish = { 'sec-fetch-site': 'same-origin', 'x-avatar-demo': '1' };
    assert.equal((await api('GET', '/v1/sessions?limit=1', undefined, {})).status, 401, 'no browser headers: token needed');
    assert.equal((await api('GET', '/v1/sessions?limit=1', undefined, browserish)).status, 200);
    assert.equal((await api('GET', '/v1/sessions?limit=1', undefined, { ...browserish, origin: `http://127.0.0.1:${port}` })).status, 200);
    assert.equal((await api('GET', '/v1/sessions?limit=1', undefined, { ...browserish, origin: 'http://evil.example' })).status, 401, 'foreign Origin');
    assert.equal((await api('GET', '/v1/sessions?limit=1', undefined, { 'sec-fetch-site': 'cross-site', 'x-avatar-demo': '1' })).status, 401, 'cross-site');
    assert.equal((await api('GET', '/v1/sessions?limit=1', undefined, { 'sec-fetch-site': 'same-origin' })).status, 401, 'no demo header');
    assert.equal(
      (await api('GET', '/v1/sessions?limit=1', undefined, { ...browserish, authorization: 'Bearer wrong-token-wrong-token' })).status,
      401,
      'a wrong token is never overlooked',
    );
    // A DNS-rebound name for 127.0.0.1 keeps its own Host header.
    const rebound = await new Promise<number>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, path: '/v1/sessions?limit=1', headers: { ...browserish, host: `evil.example:${port}` } }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(rebound, 401, 'foreign Host');

    // A page of another origin cannot use it: with the demo header the preflight is never granted;
    // without it the browser marks the request cross-site and the answer is 401.
    const page = await browser.newPage();
    const statuses: number[] = [];
    page.on('response', (r) => {
      if (r.url().includes('/v1/sessions')) statuses.push(r.status());
    });
    try {
      await page.goto(`http://localhost:${port}/healthz`);
      const results = await page.evaluate<{ plain: string; withHeader: number | string }>(`(async () => {
        const out = {};
        try { out.plain = (await fetch('http://127.0.0.1:${port}/v1/sessions?limit=1', { mode: 'no-cors' })).type; } catch (e) { out.plain = 'error: ' + e.message; }
        try { const r = await fetch('http://127.0.0.1:${port}/v1/sessions?limit=1', { headers: { 'x-avatar-demo': '1' } }); out.withHeader = r.status; } catch (e) { out.withHeader = 'blocked'; }
        return out;
      })()`);
      assert.equal(results.withHeader, 'blocked', 'the preflight is never granted');
      assert.equal(results.plain, 'opaque');
      assert.deepEqual(statuses, [401], 'the cross-site request itself was refused');
    } finally {
      await page.close();
    }
  });

  it('token mode: the page asks for the token, keeps it out of URLs, and the API answers 401 without it', async () => {
    const token = randomBytes(24).toString('hex');
    const client = await connectClient(
      { address: stack.endpoints['Temporal gRPC'] },
      encryptedDataConverter([Buffer.from(stack.secrets.secretsKey, 'base64')]),
    );
    const logLines: string[] = [];
    const api2 = await startApiServer({
      config: {
        apiToken: token,
        apiPort: 0,
        livekit: { url: stack.endpoints.LiveKit!, publicUrl: stack.endpoints.LiveKit!, apiKey: 'devkey', apiSecret: stack.secrets.livekitSecret },
      },
      sessions: new SessionsClient(client),
      log: createLogger({
        level: 'debug',
        destination: new Writable({
          write(c, _e, cb) {
            logLines.push(String(c));
            cb();
          },
        }),
      }),
      port: 0,
      demo: { open: false },
    });
    const page = await browser.newPage();
    const urls: string[] = [];
    page.on('request', (r) => urls.push(r.url()));
    try {
      assert.equal(((await fetch(`${api2.url}/demo/config.json`).then((r) => r.json())) as { auth: string }).auth, 'token');
      await page.goto(`${api2.url}/demo/`);
      await page.waitForSelector('body[data-ready="true"]');
      assert.equal(await page.isVisible('#login'), true, 'the page asks for the token');
      assert.equal(await page.isVisible('#controls'), false);
      // The page's own same-origin request, without a token: 401 (open mode is off).
      const status = await page.evaluate(`fetch('/v1/sessions?limit=1', { headers: { 'x-avatar-demo': '1' } }).then((r) => r.status)`);
      assert.equal(status, 401);

      await page.fill('#token', 'not-the-token-not-the-token');
      await page.click('#login button[type="submit"]');
      await page.waitForSelector('#error:not([hidden])');
      assert.match((await page.textContent('#error')) ?? '', /401/);
      assert.equal(await page.isVisible('#login'), true);
      assert.equal(await page.evaluate('sessionStorage.length'), 0, 'a refused token is dropped');

      await page.fill('#token', token);
      await page.click('#login button[type="submit"]');
      await page.waitForSelector('#controls:not([hidden])');
      assert.equal(await page.isVisible('#login'), false);
      assert.equal(await page.evaluate(`Object.values(sessionStorage).includes('${token}')`), true);
      assert.ok(urls.length > 3 && urls.every((u) => !u.includes(token)), 'the token is never in a URL');
      assert.ok(!logLines.join('').includes(token), 'nor in a log line');
    } finally {
      await page.close();
      await api2.close();
      await client.connection.close();
    }
  });
});
