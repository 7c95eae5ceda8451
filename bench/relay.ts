// Relay benchmark (`npm run bench:relay`, `-- --json`, `-- --soak-minutes 10`): what relaying
// 640x360@30 video + audio costs. A publisher stands for Runway's avatar in one LiveKit server
// (frames carry a counter, so the receiver knows when each was sent), MediaRelay bridges it into a
// second server, and a viewer there decodes the counters. Figures: CPU-seconds per minute of relay,
// latency added by the relay hop (relayed minus direct), and the frame rate kept as relays are added.
// Everything runs in this one process, so CPU figures are differences against a no-relay baseline.
import os from 'node:os';
import path from 'node:path';
import { mkdirSync } from 'node:fs';
import { parseArgs } from 'node:util';
import {
  AudioSource, LocalAudioTrack, LocalVideoTrack, Room, RoomEvent, TrackKind, TrackPublishOptions, TrackSource,
  VideoBufferType, VideoCodec, VideoFrame, VideoSource, VideoStream, dispose, type RemoteTrack,
} from '@livekit/rtc-node';
import { AccessToken } from 'livekit-server-sdk';
import { startLiveKitServer, type LiveKitServer } from '../src/dev/livekit-server';
import { counterOfFrame, makeI420Frame } from '../src/media/frame-code';
import { toneFrame } from '../src/media/tone';
import { MediaRelay } from '../src/media/relay';

const { values } = parseArgs({ options: { json: { type: 'boolean' }, 'soak-minutes': { type: 'string' }, seconds: { type: 'string' }, max: { type: 'string' } }, strict: true });
const SECONDS = Number(values.seconds ?? 20);
const W = 640, H = 360, FPS = 30;
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
  await r.localParticipant!.publishTrack(LocalVideoTrack.createVideoTrack('cam', video), new TrackPublishOptions({ source: TrackSource.SOURCE_CAMERA, simulcast: false, videoCodec: VideoCodec.VP8, videoEncoding: { maxBitrate: 1_500_000n, maxFramerate: FPS } }));
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
    reset() { latencies.length = 0; frames = 0; },
    stats: () => ({ latencies: [...latencies], frames }),
    async stop() {
      for (const s of streams) await s.cancel().catch(() => undefined);
      streams = [];
      await r.disconnect();
    },
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
    const pubs = [], views = [], bridges: MediaRelay[] = [], direct = [];
    for (let i = 0; i < relays; i++) {
      const room = `bench-${relays}-${i}`;
      const pub = await publisher(runwayLk, room);
      pubs.push(pub);
      if (i === 0) direct.push(await viewer(runwayLk, room, pub.sentAt)); // the avatar's own hop, for the difference
      const relay = new MediaRelay({ runway: { url: runwayLk.url, token: await token(runwayLk, room, `relay-${room}`) }, customer: { url: customerLk.url, token: await token(customerLk, room, `bridge-${room}`) }, stallSeconds: 60 });
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
      relayed_latency_p50_ms: pct(relayed.flatMap((r) => r.latencies), 50),
      relayed_latency_p95_ms: pct(relayed.flatMap((r) => r.latencies), 95),
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
  if (values['soak-minutes']) {
    const minutes = Number(values['soak-minutes']);
    console.log(`relay soak, ${minutes} min, one 640x360@30 relay — ${machine}`);
    const pub = await publisher(runwayLk, 'soak');
    const relay = new MediaRelay({ runway: { url: runwayLk.url, token: await token(runwayLk, 'soak', 'relay-soak') }, customer: { url: customerLk.url, token: await token(customerLk, 'soak', 'bridge-soak') }, stallSeconds: 60 });
    await relay.start();
    const v = await viewer(customerLk, 'soak', pub.sentAt);
    const rows = [];
    for (let m = 1; m <= minutes; m++) {
      v.reset();
      await sleep(60_000);
      const s = v.stats();
      const row = { minute: m, rss_mb: Math.round(process.memoryUsage().rss / 1e6), fps: Number((s.frames / 60).toFixed(1)), latency_p95_ms: pct(s.latencies, 95), forwarded: relay.stats().videoFramesForwarded };
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
