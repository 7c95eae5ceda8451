// Relay benchmark (`npm run bench:relay`, `-- --json`, `-- --soak-minutes 10`): what relaying
// 640x360@30 video + audio costs. A publisher stands for Runway's avatar in one LiveKit server
// (frames carry a counter, so the receiver knows when each was sent), MediaRelay bridges it into a
// second server, and a viewer there decodes the counters. Figures: CPU-seconds per minute of relay,
// latency added by the relay hop (relayed minus direct), and the frame rate kept as relays are added.
// Everything runs in this one process, so CPU figures are differences against a no-relay baseline.
//
// `-- --renewals N` measures instead what a viewer in the customer's room sees at a renewal, the way
// production runs: the simulator's avatars (640x360@30 with counters, src/runway-sim/avatar.ts) in a
// child process of their own (`--avatars inline` puts them in this process, as the tests used to),
// the viewer in another child (bench/relay-viewer.ts), the relay alone in this process. Relay mode:
// the next session's avatar joins its Runway room and switchSource() is called at once, like the
// workflow's renewal after consume; the old avatar leaves on END_CALL. Direct mode: the next avatar
// joins the customer's room under the same identity (LiveKit drops the old one). Per renewal: the
// viewer's longest pause between decoded frames from the start of the renewal to 1.5 s after it
// finished; the same figure over windows without any renewal is the noise floor. `--mode relay|direct|both`.
import os from 'node:os';
import path from 'node:path';
import { mkdirSync } from 'node:fs';
import { parseArgs } from 'node:util';
import {
  AudioSource,
  LocalAudioTrack,
  LocalVideoTrack,
  Room,
  RoomEvent,
  TrackKind,
  TrackPublishOptions,
  TrackSource,
  VideoBufferType,
  VideoCodec,
  VideoFrame,
  VideoSource,
  VideoStream,
  dispose,
  type RemoteTrack,
} from '@livekit/rtc-node';
import { AccessToken } from 'livekit-server-sdk';
import { startLiveKitServer, type LiveKitServer } from '../src/dev/livekit-server';
import { counterOfFrame, makeI420Frame } from '../src/media/frame-code';
import { toneFrame } from '../src/media/tone';
import { fork } from 'node:child_process';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { MediaRelay } from '../src/media/relay';
import { startSimAvatar } from '../src/runway-sim/avatar';
import type { SimAvatar, StartSimAvatar } from '../src/runway-sim/avatar-api';
import { startProcessAvatar, stopAvatarRunner } from '../src/runway-sim/avatar-process';

const { values } = parseArgs({
  options: {
    json: { type: 'boolean' },
    'soak-minutes': { type: 'string' },
    seconds: { type: 'string' },
    max: { type: 'string' },
    renewals: { type: 'string' },
    mode: { type: 'string' },
    avatars: { type: 'string' },
    'hold-seconds': { type: 'string' },
  },
  strict: true,
});
const SECONDS = Number(values.seconds ?? 20);
const W = 640,
  H = 360,
  FPS = 30;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pct = (xs: number[], p: number) => (xs.length ? [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)]! : NaN);

async function token(lk: LiveKitServer, room: string, identity: string): Promise<string> {
  const at = new AccessToken(lk.apiKey, lk.apiSecret, { identity, ttl: '1h' });
  at.addGrant({ roomJoin: true, room, canPublish: true, canSubscribe: true, canPublishData: true });
  return at.toJwt();
}

/** Runway's avatar stand-in: 640x360@30 with counters, and a tone. Records when each counter was sent. */
async function publisher(lk: LiveKitServer, room: string) {
  const r = new Room();
  await r.connect(lk.url, await token(lk, room, `avatar-${room}`), { autoSubscribe: false, dynacast: false });
  const video = new VideoSource(W, H);
  await r.localParticipant!.publishTrack(
    LocalVideoTrack.createVideoTrack('cam', video),
    new TrackPublishOptions({
      source: TrackSource.SOURCE_CAMERA,
      simulcast: false,
      videoCodec: VideoCodec.VP8,
      videoEncoding: { maxBitrate: 1_500_000n, maxFramerate: FPS },
    }),
  );
  const audio = new AudioSource(48000, 1, 200);
  await r.localParticipant!.publishTrack(LocalAudioTrack.createAudioTrack('mic', audio), new TrackPublishOptions({ source: TrackSource.SOURCE_MICROPHONE }));
  const sentAt = new Map<number, number>();
  let n = 0;
  let stopped = false;
  const t0 = Date.now();
  const tick = () => {
    if (stopped) return;
    n++;
    sentAt.set(n, Date.now());
    if (sentAt.size > 2000) sentAt.delete(n - 2000);
    video.captureFrame(new VideoFrame(makeI420Frame(W, H, n), W, H, VideoBufferType.I420));
    setTimeout(tick, Math.max(1, t0 + (n * 1000) / FPS - Date.now()));
  };
  tick();
  void (async () => {
    let phase = 0;
    while (!stopped) {
      const frame = toneFrame(phase, 440, 6000);
      phase += frame.samplesPerChannel;
      await audio.captureFrame(frame).catch(() => undefined);
    }
  })();
  return {
    sentAt,
    async stop() {
      stopped = true;
      await r.disconnect();
      await video.close();
      await audio.close();
    },
  };
}

/** A receiver that decodes counters: latency per frame and frames per second. */
async function viewer(lk: LiveKitServer, room: string, sentAt: Map<number, number>) {
  const r = new Room();
  const latencies: number[] = [];
  let frames = 0;
  let streams: VideoStream[] = [];
  r.on(RoomEvent.TrackSubscribed, (track: RemoteTrack) => {
    if (track.kind !== TrackKind.KIND_VIDEO) return;
    const s = new VideoStream(track);
    streams.push(s);
    void (async () => {
      for await (const ev of s) {
        const n = counterOfFrame(ev.frame);
        if (n === undefined) continue;
        frames++;
        const t = sentAt.get(n);
        if (t) latencies.push(Date.now() - t);
      }
    })().catch(() => undefined);
  });
  await r.connect(lk.url, await token(lk, room, `viewer-${room}-${Math.random().toString(36).slice(2, 6)}`), { autoSubscribe: true, dynacast: false });
  return {
    reset() {
      latencies.length = 0;
      frames = 0;
    },
    stats: () => ({ latencies: [...latencies], frames }),
    async stop() {
      for (const s of streams) await s.cancel().catch(() => undefined);
      streams = [];
      await r.disconnect();
    },
  };
}

/** The viewer process (bench/relay-viewer.ts) in the customer's room. */
async function viewerProcess(lk: LiveKitServer, room: string) {
  const child = fork(path.join(__dirname, 'relay-viewer.ts'), [lk.url, await token(lk, room, `viewer-${room}`)], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    env: { ...process.env, NODE_ENV: 'production' },
  });
  const ask = <T>(msg: object, key: string) =>
    new Promise<T>((resolve) => {
      const on = (m: Record<string, unknown>) => {
        if (!(key in m)) return;
        child.off('message', on);
        resolve(m as T);
      };
      child.on('message', on);
      child.send(msg);
    });
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve());
    child.once('exit', (code) => reject(new Error(`viewer exited (${code})`)));
  });
  return {
    frames: () => ask<{ frames: number; last?: number }>({ op: 'frames' }, 'frames'),
    gaps: async (windows: [number, number][]) => (await ask<{ gaps: number[] }>({ op: 'gaps', windows }, 'gaps')).gaps,
    async stop() {
      const done = new Promise((r) => child.once('exit', r));
      child.send({ op: 'stop' });
      await done;
    },
  };
}

/** Viewer-side gaps at N renewals, relay or direct mode (see the header). */
async function renewalGaps(runwayLk: LiveKitServer, customerLk: LiveKitServer, mode: 'relay' | 'direct', n: number, start: StartSimAvatar, holdMs: number) {
  const tag = `${mode}-${Math.random().toString(36).slice(2, 6)}`;
  const customerRoom = `conv-${tag}`;
  const avatars = new Set<SimAvatar>();
  const avatarIn = async (k: number): Promise<{ url: string; token: string; avatar: Promise<SimAvatar> }> => {
    const where = mode === 'relay' ? 'runway-room' : 'customer-room';
    const lk = mode === 'relay' ? runwayLk : customerLk;
    const roomName = mode === 'relay' ? `rw-${tag}-${k}` : customerRoom;
    const identity = mode === 'relay' ? `worker:avatar-${k}` : `runway-avatar-${tag}`;
    let self: SimAvatar | undefined;
    const leave = () => void self?.stop().catch(() => undefined);
    // Like the simulator: the avatar starts when the session is consumed (relay) or created (direct), unawaited.
    const avatar = start({
      url: lk.url,
      token: await token(lk, roomName, identity),
      roomName,
      identity,
      where,
      media: 'full',
      onEndCall: leave,
      onDisconnected: leave,
    }).then((a) => {
      self = a;
      avatars.add(a);
      return a;
    });
    return { url: runwayLk.url, token: await token(runwayLk, roomName, `client-${k}`), avatar };
  };
  const first = await avatarIn(0);
  await first.avatar;
  let relay: MediaRelay | undefined;
  if (mode === 'relay') {
    relay = new MediaRelay({
      runway: { url: first.url, token: first.token, sessionId: 's0' },
      customer: { url: customerLk.url, token: await token(customerLk, customerRoom, 'bridge') },
      stallSeconds: 60,
    });
    await relay.start();
  }
  const view = await viewerProcess(customerLk, customerRoom);
  const deadline = Date.now() + 20_000;
  while ((await view.frames()).frames < 30 && Date.now() < deadline) await sleep(200);
  await sleep(holdMs);
  const windows: [number, number][] = [];
  const quiet: [number, number][] = [];
  const relaySide: number[] = [];
  const durations: number[] = [];
  const loopDelays: number[] = [];
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  for (let k = 1; k <= n; k++) {
    loop.reset();
    const t0 = Date.now();
    const next = await avatarIn(k);
    if (relay) {
      relaySide.push((await relay.switchSource({ url: next.url, token: next.token, sessionId: `s${k}` }, { timeoutMs: 20_000 })).gapMs);
    } else {
      await next.avatar;
      // The new avatar's video reached the viewer: the renewal is done from the room's point of view.
      const deadline2 = Date.now() + 20_000;
      while (Date.now() < deadline2 && ((await view.frames()).last ?? 0) < Date.now() - 100) await sleep(50);
    }
    const t1 = Date.now();
    durations.push(t1 - t0);
    windows.push([t0, t1 + 1500]);
    await sleep(1500);
    loopDelays.push(Math.round(loop.max / 1e6));
    await sleep(holdMs - 1500);
    quiet.push([Date.now() - Math.min(holdMs - 500, t1 + 1500 - t0), Date.now()]);
  }
  await sleep(500);
  const gaps = await view.gaps(windows);
  const floor = await view.gaps(quiet);
  await view.stop();
  await relay?.stop({ endCall: false });
  for (const a of avatars) await a.stop().catch(() => undefined);
  return {
    mode,
    renewals: n,
    viewer_gap_p50_ms: pct(gaps, 50),
    viewer_gap_p95_ms: pct(gaps, 95),
    viewer_gap_max_ms: Math.max(...gaps),
    quiet_gap_p50_ms: pct(floor, 50),
    quiet_gap_p95_ms: pct(floor, 95),
    ...(relay ? { relay_gap_p50_ms: pct(relaySide, 50), relay_gap_p95_ms: pct(relaySide, 95) } : {}),
    renewal_ms_p50: pct(durations, 50),
    // This process's worst event-loop delay per renewal (the relay's, in relay mode).
    loop_delay_max_p95_ms: pct(loopDelays, 95),
    gaps_ms: gaps,
  };
}

async function main(): Promise<void> {
  const logDir = path.resolve(__dirname, '..', '.data', 'bench-logs');
  mkdirSync(logDir, { recursive: true });
  const [runwayLk, customerLk] = await Promise.all([
    startLiveKitServer({ label: 'runway', logFile: path.join(logDir, 'relay-runway.log') }),
    startLiveKitServer({ label: 'customer', logFile: path.join(logDir, 'relay-customer.log') }),
  ]);

  async function measure(relays: number, seconds: number) {
    const pubs = [],
      views = [],
      bridges: MediaRelay[] = [],
      direct = [];
    for (let i = 0; i < relays; i++) {
      const room = `bench-${relays}-${i}`;
      const pub = await publisher(runwayLk, room);
      pubs.push(pub);
      if (i === 0) direct.push(await viewer(runwayLk, room, pub.sentAt)); // the avatar's own hop, for the difference
      const relay = new MediaRelay({
        runway: { url: runwayLk.url, token: await token(runwayLk, room, `relay-${room}`) },
        customer: { url: customerLk.url, token: await token(customerLk, room, `bridge-${room}`) },
        stallSeconds: 60,
      });
      await relay.start();
      bridges.push(relay);
      views.push(await viewer(customerLk, room, pub.sentAt));
    }
    await sleep(3000); // warm up: ICE, first keyframes
    for (const v of [...views, ...direct]) v.reset();
    const cpu0 = process.cpuUsage();
    const t0 = Date.now();
    await sleep(seconds * 1000);
    const cpu = process.cpuUsage(cpu0);
    const wall = (Date.now() - t0) / 1000;
    const relayed = views.map((v) => v.stats());
    const direct0 = direct[0]!.stats();
    const out = {
      relays,
      cpu_s_per_min_total: Number((((cpu.user + cpu.system) / 1e6) * (60 / wall)).toFixed(1)),
      fps_min: Number(Math.min(...relayed.map((r) => r.frames / wall)).toFixed(1)),
      relayed_latency_p50_ms: pct(
        relayed.flatMap((r) => r.latencies),
        50,
      ),
      relayed_latency_p95_ms: pct(
        relayed.flatMap((r) => r.latencies),
        95,
      ),
      direct_latency_p50_ms: pct(direct0.latencies, 50),
      direct_latency_p95_ms: pct(direct0.latencies, 95),
      rss_mb: Math.round(process.memoryUsage().rss / 1e6),
    };
    for (const v of [...views, ...direct]) await v.stop();
    for (const b of bridges) await b.stop({ endCall: false });
    for (const p of pubs) await p.stop();
    return out;
  }

  async function baseline(seconds: number) {
    // Publisher + a direct viewer only: the CPU the relay's figures are compared against.
    const pub = await publisher(runwayLk, 'bench-baseline');
    const v = await viewer(runwayLk, 'bench-baseline', pub.sentAt);
    await sleep(3000);
    const cpu0 = process.cpuUsage();
    const t0 = Date.now();
    await sleep(seconds * 1000);
    const cpu = process.cpuUsage(cpu0);
    const wall = (Date.now() - t0) / 1000;
    await v.stop();
    await pub.stop();
    return ((cpu.user + cpu.system) / 1e6) * (60 / wall);
  }

  const machine = `${os.cpus().length} CPU ${os.cpus()[0]?.model ?? ''}, Node ${process.version}`;
  if (values.renewals) {
    const n = Number(values.renewals);
    const modes = values.mode === 'both' || !values.mode ? (['relay', 'direct'] as const) : [values.mode as 'relay' | 'direct'];
    const inline = values.avatars === 'inline';
    const holdMs = Math.max(2000, Number(values['hold-seconds'] ?? 3) * 1000);
    const rows = [];
    for (const mode of modes) rows.push(await renewalGaps(runwayLk, customerLk, mode, n, inline ? startSimAvatar : startProcessAvatar, holdMs));
    await stopAvatarRunner();
    console.log(`\nViewer-side gap at renewal, 640x360@30 simulated avatars ${inline ? "in the relay's process" : 'in their own process'} — ${machine}`);
    console.table(rows.map(({ gaps_ms: _g, ...r }) => r));
    if (values.json) console.log(JSON.stringify({ machine, avatars: inline ? 'inline' : 'process', rows }));
  } else if (values['soak-minutes']) {
    const minutes = Number(values['soak-minutes']);
    console.log(`relay soak, ${minutes} min, one 640x360@30 relay — ${machine}`);
    const pub = await publisher(runwayLk, 'soak');
    const relay = new MediaRelay({
      runway: { url: runwayLk.url, token: await token(runwayLk, 'soak', 'relay-soak') },
      customer: { url: customerLk.url, token: await token(customerLk, 'soak', 'bridge-soak') },
      stallSeconds: 60,
    });
    await relay.start();
    const v = await viewer(customerLk, 'soak', pub.sentAt);
    const rows = [];
    for (let m = 1; m <= minutes; m++) {
      v.reset();
      await sleep(60_000);
      const s = v.stats();
      const row = {
        minute: m,
        rss_mb: Math.round(process.memoryUsage().rss / 1e6),
        fps: Number((s.frames / 60).toFixed(1)),
        latency_p95_ms: pct(s.latencies, 95),
        forwarded: relay.stats().videoFramesForwarded,
      };
      rows.push(row);
      console.log(JSON.stringify(row));
    }
    await v.stop();
    await relay.stop({ endCall: false });
    await pub.stop();
    if (values.json) console.log(JSON.stringify({ machine, soak: rows }));
  } else {
    const base = await baseline(SECONDS);
    const rows = [];
    for (const n of [1, 2, 3, 4, 6, 8, 10].filter((n) => n <= Number(values.max ?? 4))) {
      const r = await measure(n, SECONDS);
      rows.push({ ...r, relay_cpu_s_per_min_each: Number(((r.cpu_s_per_min_total - base * n) / n).toFixed(1)) });
      if (r.fps_min < FPS * 0.8) break; // frames drop: this machine's limit
    }
    console.log(`\nRelay of 640x360@30 VP8 + 48 kHz audio, ${SECONDS} s per row — ${machine}`);
    console.log(`baseline (publisher + direct viewer, no relay): ${base.toFixed(1)} CPU-s/min`);
    console.table(rows);
    if (values.json) console.log(JSON.stringify({ machine, baseline_cpu_s_per_min: Number(base.toFixed(1)), rows }));
  }
  await dispose();
  await Promise.all([runwayLk.stop(), customerLk.stop()]);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
