// A real LiveKit agent drives the avatar in direct mode: `npm start`'s embedded stack (src/main.ts as a
// child process), and examples/agent.py — LiveKit Agents for Python's DataStreamAudioOutput, installed
// by `scripts/install-tools.sh --agents` — as the customer's agent. The agent streams a phrase (a tone
// sequence) on `lk.audio_stream`, waits for the avatar's lk.playback_started / lk.playback_finished,
// then interrupts a second phrase with lk.clear_buffer. A viewer in the room (rtc-node) listens to the
// avatar's own audio track: it must hear the agent's tones in order, never the simulator's 440 Hz tone,
// and see the speaking marker in the video. Without an avatar (a start refused), the same agent falls
// back to its own audio track, and the user hears the same phrases from it. The README's agent example
// is an excerpt of this very file.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { AudioStream, Room, RoomEvent, TrackKind, VideoStream, dispose, type RemoteTrack } from '@livekit/rtc-node';
import { RoomServiceClient } from 'livekit-server-sdk';
import { speakingOfFrame } from '../src/media/frame-code';
import { startEmbeddedStack, type EmbeddedStack } from './helpers/embedded-stack';
import { eventually, withTimeout } from './helpers/wait';

const ROOT = path.resolve(__dirname, '..');
const ARTIFACTS = path.resolve(ROOT, 'test-artifacts', 'livekit-agent');
const EXAMPLE = path.join(ROOT, 'examples', 'agent.py');
const PYTHON = process.env.AGENTS_PYTHON ?? path.join(ROOT, '.tools', 'agents', 'bin', 'python');

/** The frequencies the agent's phrases use, and the simulator's own tone (which must not be heard). */
const CANDIDATES = [300, 440, 600, 900, 1200] as const;
const WINDOW = 1920; // 40 ms at 48 kHz: 25 Hz resolution
const SILENT_RMS = 300;

/** Goertzel power of `hz` in a Hann-windowed block of 48 kHz samples. */
function power(block: Float64Array, hz: number): number {
  const k = (2 * Math.PI * hz) / 48_000;
  const coeff = 2 * Math.cos(k);
  let s1 = 0;
  let s2 = 0;
  for (const x of block) {
    const s0 = x + coeff * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  return s1 * s1 + s2 * s2 - coeff * s1 * s2;
}

/** What a 40 ms block sounds like: 'silence' or the candidate frequency that dominates it. */
function label(samples: Int16Array): string {
  let sum = 0;
  for (const x of samples) sum += x * x;
  if (Math.sqrt(sum / samples.length) < SILENT_RMS) return 'silence';
  const block = new Float64Array(samples.length);
  for (let i = 0; i < samples.length; i++) block[i] = samples[i]! * (0.5 - 0.5 * Math.cos((2 * Math.PI * i) / (samples.length - 1)));
  let best: number = CANDIDATES[0];
  for (const hz of CANDIDATES) if (power(block, hz) > power(block, best)) best = hz;
  return String(best);
}

/** Consecutive equal labels as runs; runs shorter than `min` blocks (transitions) are left out. */
function runs(labels: string[], min = 2): { label: string; blocks: number }[] {
  const out: { label: string; blocks: number }[] = [];
  for (const l of labels) {
    const last = out.at(-1);
    if (last?.label === l) last.blocks++;
    else out.push({ label: l, blocks: 1 });
  }
  const long = out.filter((r) => r.blocks >= min);
  // Merge neighbours that became adjacent.
  return long.reduce<{ label: string; blocks: number }[]>((acc, r) => {
    const last = acc.at(-1);
    if (last?.label === r.label) last.blocks += r.blocks;
    else acc.push({ ...r });
    return acc;
  }, []);
}

/** A participant that watches and listens to one identity in the room, like a user's browser. */
async function listener(url: string, token: string, avatar: string) {
  const room = new Room();
  const labels: string[] = [];
  const marks: boolean[] = [];
  const streams: (AudioStream | VideoStream)[] = [];
  let pending = new Int16Array(0);
  room.on(RoomEvent.TrackSubscribed, (track: RemoteTrack, _pub, participant) => {
    if (participant.identity !== avatar) return;
    if (track.kind === TrackKind.KIND_AUDIO) {
      const s = new AudioStream(track, { sampleRate: 48_000, numChannels: 1 });
      streams.push(s);
      void (async () => {
        for await (const f of s) {
          const joined = new Int16Array(pending.length + f.data.length);
          joined.set(pending);
          joined.set(f.data, pending.length);
          let off = 0;
          for (; off + WINDOW <= joined.length; off += WINDOW) labels.push(label(joined.subarray(off, off + WINDOW)));
          pending = joined.slice(off);
        }
      })().catch(() => undefined);
    } else if (track.kind === TrackKind.KIND_VIDEO) {
      const s = new VideoStream(track);
      streams.push(s);
      void (async () => {
        for await (const ev of s) marks.push(speakingOfFrame(ev.frame));
      })().catch(() => undefined);
    }
  });
  await room.connect(url, token, { autoSubscribe: true, dynacast: false });
  return {
    labels,
    marks,
    async close() {
      for (const s of streams) await s.cancel().catch(() => undefined);
      await room.disconnect();
    },
  };
}

describe('a real LiveKit agent (LiveKit Agents for Python) drives the avatar in direct mode', () => {
  let stack: EmbeddedStack;
  /** Runs examples/agent.py to its end: the JSON events it printed, and its stderr. */
  async function runAgent(
    room: string,
    agent: string,
    env: Record<string, string> = {},
    onEvent?: (e: Record<string, unknown>) => void,
  ): Promise<{ events: Record<string, unknown>[]; err: string }> {
    const child = spawn(PYTHON, [EXAMPLE], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        AVATAR_SESSIONS_URL: stack.apiUrl,
        SESSION_API_TOKEN: stack.secrets.apiToken,
        LIVEKIT_API_KEY: 'devkey',
        LIVEKIT_API_SECRET: stack.secrets.livekitSecret,
        ROOM: room,
        AGENT_IDENTITY: agent,
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    let seenLines = 0;
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const lines = out.split('\n').slice(0, -1);
      for (const l of lines.slice(seenLines)) onEvent?.(JSON.parse(l) as Record<string, unknown>);
      seenLines = lines.length;
    });
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await withTimeout(new Promise<number | null>((resolve) => child.once('exit', resolve)), 120_000, 'examples/agent.py to finish').catch(
      (e: Error) => {
        child.kill('SIGKILL');
        throw new Error(`${e.message}\nstdout:\n${out}\nstderr:\n${err}`);
      },
    );
    assert.equal(code, 0, `examples/agent.py exited ${code}\nstdout:\n${out}\nstderr:\n${err}`);
    const events = out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);

    console.log(events.map((e) => JSON.stringify(e)).join('\n'));
    return { events, err };
  }

  /** Waits until the viewer's audio stops growing (the track ended or went quiet for good). */
  async function untilTrackEnds(labels: string[]): Promise<void> {
    let seen = -1;
    await eventually(
      'the track to end',
      () => {
        const n = labels.length;
        if (n === seen) return true;
        seen = n;
        return undefined;
      },
      30_000,
      1000,
    ).catch(() => undefined);
  }
  const api = (method: string, p: string, body?: unknown) =>
    fetch(stack.apiUrl + p, {
      method,
      headers: { authorization: `Bearer ${stack.secrets.apiToken}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });

  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    assert.ok(existsSync(PYTHON), `no LiveKit Agents for Python at ${PYTHON}: run \`npm run setup\` (scripts/install-tools.sh --agents) or set AGENTS_PYTHON`);
    stack = await startEmbeddedStack({ logDir: ARTIFACTS });
  });
  after(async () => {
    await stack?.stop();
  });

  it('examples/agent.py: phrase played out (playback_started, playback_finished), second phrase cleared (interrupted); a viewer hears the agent, not the tone', async () => {
    const room = `agent-room-${process.pid}-${Date.now().toString(36)}`;
    const agent = 'my-agent';
    // The session first, so a viewer is listening before the agent speaks; the agent's own start then
    // joins this same run (same conversationId: 200, not a second Runway session).
    const started = await api('POST', '/v1/sessions?wait=live', {
      conversationId: room,
      avatar: { type: 'runway-preset', presetId: 'cooking-teacher' },
      livekit: { roomName: room, agentIdentity: agent },
      mode: 'direct',
    });
    assert.equal(started.status, 201);
    const { live } = (await started.json()) as { live: { avatarIdentity: string; mode: string } };
    assert.equal(live.mode, 'direct');
    const vt = (await (await api('POST', `/v1/sessions/${room}/viewer-token`)).json()) as { url: string; token: string };
    const viewer = await listener(vt.url, vt.token, live.avatarIdentity);
    try {
      await eventually('the viewer receives the avatar audio track', () => (viewer.labels.length >= 25 ? true : undefined), 30_000, 100);
      const before = viewer.labels.length;
      assert.deepEqual([...new Set(viewer.labels)], ['silence'], 'direct mode: silence until the agent speaks (no 440 Hz tone)');

      const { events, err } = await runAgent(room, agent);
      assert.deepEqual(
        events.map((e) => `${e.event as string}${e.phrase === undefined ? '' : String(e.phrase as number)}`),
        ['live', 'playback_started1', 'playback_finished1', 'playback_started2', 'playback_finished2', 'ended'],
      );
      assert.deepEqual(events[0], { event: 'live', avatar: live.avatarIdentity, mode: 'direct' });
      // The whole first phrase (3 × 0.4 s), played out; the second (20 s) cut short by clear_buffer.
      const first = events[2]!;
      assert.equal(first.interrupted, false);
      assert.ok(Math.abs(Number(first.playback_position) - 1.2) < 0.05, `phrase 1 position ${first.playback_position} s, of 1.2 s sent`);
      const second = events[4]!;
      assert.equal(second.interrupted, true);
      assert.ok(Number(second.playback_position) > 0 && Number(second.playback_position) < 20, `phrase 2 position ${second.playback_position} s, of 20 s sent`);
      // The agent's own 2 s fallback (which reports everything it pushed) did not stand in for the avatar's answer.
      assert.doesNotMatch(err, /didn't receive playback finished/);

      // What the viewer heard on the avatar's track, in 40 ms blocks: silence, the three tones in
      // order, then the cut second phrase — never the simulator's 440 Hz tone.
      // (The agent ended the session: the avatar leaves, and the track ends.)
      await untilTrackEnds(viewer.labels);
      const heard = runs(viewer.labels.slice(before));
      console.log(`heard (40 ms blocks): ${heard.map((r) => `${r.label}×${r.blocks}`).join(' ')}`);
      // (A busy machine may leave a short gap inside a phrase: the same tone on both sides is one note.)
      const tones = runs(
        heard.filter((r) => r.label !== 'silence').flatMap((r) => Array<string>(r.blocks).fill(r.label)),
        1,
      );
      assert.deepEqual(
        tones.map((r) => r.label),
        ['600', '900', '1200', '300'],
        `heard ${JSON.stringify(heard)}`,
      );
      const cut = tones.at(-1)!.blocks;
      // Stopped at once: the viewer heard no more of it than the avatar reported playing (plus what the
      // network had in flight), far from the 500 blocks sent.
      assert.ok(
        cut * 0.04 < Number(second.playback_position) + 1,
        `the second phrase stops when cleared: ${cut} blocks of 40 ms heard, ${second.playback_position} s reported played, 20 s sent`,
      );
      assert.ok(
        viewer.marks.some((m) => m),
        'the video showed the speaking marker',
      );
      assert.equal(viewer.marks[0], false, 'no marker before the agent spoke');
      assert.equal(viewer.marks.at(-1), false, 'no marker once it stopped');

      // The agent ended the conversation.
      await eventually(
        'the session completed',
        async () => {
          const s = (await (await api('GET', `/v1/sessions/${room}`)).json()) as { phase: string; endReason?: string };
          return s.phase === 'completed' ? s : undefined;
        },
        60_000,
        250,
      );
    } finally {
      await viewer.close();
    }
  });

  it('examples/agent.py without an avatar (its session already ended: the start is refused): it speaks on its own track, and the user hears it', async () => {
    const room = `agent-fallback-${process.pid}-${Date.now().toString(36)}`;
    const agent = 'my-agent';
    // The conversation's avatar session came and went (say the first agent process crashed and the
    // session ended): a new start is refused (409 session_ended), so this agent has no avatar.
    const started = await api('POST', '/v1/sessions?wait=live', {
      conversationId: room,
      avatar: { type: 'runway-preset', presetId: 'cooking-teacher' },
      livekit: { roomName: room, agentIdentity: agent },
      mode: 'direct',
    });
    assert.equal(started.status, 201);
    const vt = (await (await api('POST', `/v1/sessions/${room}/viewer-token`)).json()) as { url: string; token: string };
    assert.equal((await api('POST', `/v1/sessions/${room}/end`)).status, 202);
    await eventually(
      'the session completed',
      async () => {
        const s = (await (await api('GET', `/v1/sessions/${room}`)).json()) as { phase: string };
        return s.phase === 'completed' ? s : undefined;
      },
      60_000,
      250,
    );
    // A user in the room, listening to the agent itself.
    const viewer = await listener(vt.url, vt.token, agent);
    try {
      const { events } = await runAgent(room, agent, { LIVEKIT_URL: vt.url });
      assert.deepEqual(
        events.map((e) => `${e.event}${e.phrase === undefined ? '' : String(e.phrase as number)}`),
        ['fallback', 'playback_started1', 'playback_finished1', 'playback_started2', 'playback_finished2', 'ended'],
      );
      assert.match(String(events[0]!.reason), /409/, 'the refusal is the reason');
      assert.equal(events[2]!.interrupted, false);
      assert.ok(Math.abs(Number(events[2]!.playback_position) - 1.2) < 0.05, `phrase 1 position ${events[2]!.playback_position} s, of 1.2 s sent`);
      assert.equal(events[4]!.interrupted, true);
      await untilTrackEnds(viewer.labels);
      const heard = runs(viewer.labels);

      console.log(`heard on the agent's own track (40 ms blocks): ${heard.map((r) => `${r.label}×${r.blocks}`).join(' ')}`);
      const tones = runs(
        heard.filter((r) => r.label !== 'silence').flatMap((r) => Array<string>(r.blocks).fill(r.label)),
        1,
      );
      assert.deepEqual(
        tones.map((r) => r.label),
        ['600', '900', '1200', '300'],
        `heard ${JSON.stringify(heard)}`,
      );
      // Interrupted about a second in: far less than the 20 s phrase is heard (a behaviour, not a timing).
      assert.ok(tones.at(-1)!.blocks * 0.04 < 10, `the second phrase stops when interrupted (heard ${tones.at(-1)!.blocks * 0.04} s of 20 s)`);
    } finally {
      await viewer.close();
    }
  });

  it('examples/agent.py when the avatar session ends early (the avatar leaves the room): it goes on in its own voice', async () => {
    const room = `agent-early-${process.pid}-${Date.now().toString(36)}`;
    const agent = 'my-agent';
    const started = await api('POST', '/v1/sessions?wait=live', {
      conversationId: room,
      avatar: { type: 'runway-preset', presetId: 'cooking-teacher' },
      livekit: { roomName: room, agentIdentity: agent },
      mode: 'direct',
    });
    assert.equal(started.status, 201);
    const vt = (await (await api('POST', `/v1/sessions/${room}/viewer-token`)).json()) as { url: string; token: string };
    const viewer = await listener(vt.url, vt.token, agent);
    try {
      // The avatar is gone as soon as the agent has the session live (as when Runway's avatar crashes
      // or the cap cuts it with no replacement); its session ends for it.
      const rooms = new RoomServiceClient(vt.url.replace(/^ws/, 'http'), 'devkey', stack.secrets.livekitSecret);
      let removed: Promise<void> | undefined;
      const { events } = await runAgent(room, agent, { AVATAR_START_TIMEOUT: '5' }, (e) => {
        if (e.event === 'live') removed = rooms.removeParticipant(room, String(e.avatar));
      });
      await removed;
      const names = events.map((e) => `${e.event}${e.phrase === undefined ? '' : String(e.phrase as number)}`);
      assert.equal(names[0], 'live');
      const fallback = names.indexOf('fallback');
      assert.ok(fallback > 0, `the agent fell back: ${names.join(' ')}`);
      // Whatever the avatar had started is said again, then the rest, on the agent's own track (the
      // avatar may have played the first phrase out before it left).
      const rest = names.slice(fallback + 1);
      const whole = ['playback_started1', 'playback_finished1', 'playback_started2', 'playback_finished2', 'ended'];
      assert.ok(
        JSON.stringify(rest) === JSON.stringify(whole) || JSON.stringify(rest) === JSON.stringify(whole.slice(2)),
        `after the fallback: ${rest.join(' ')}`,
      );
      await untilTrackEnds(viewer.labels);
      const heard = runs(viewer.labels);

      console.log(`heard on the agent's own track after the avatar left (40 ms blocks): ${heard.map((r) => `${r.label}×${r.blocks}`).join(' ')}`);
      const tones = runs(
        heard.filter((r) => r.label !== 'silence').flatMap((r) => Array<string>(r.blocks).fill(r.label)),
        1,
      ).map((r) => r.label);
      assert.deepEqual(tones.slice(-1), ['300'], `heard ${JSON.stringify(heard)}`);
      if (rest[0] === 'playback_started1') assert.deepEqual(tones, ['600', '900', '1200', '300'], `heard ${JSON.stringify(heard)}`);
    } finally {
      await viewer.close();
    }
  });
});

// rtc-node's native runtime (the viewer) keeps the process alive until disposed: once, at the end.
after(async () => {
  await dispose();
});

describe('README: the agent example', () => {
  it('is an excerpt of examples/agent.py, line for line (indentation aside)', () => {
    const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const block = /<!-- excerpt: examples\/agent\.py -->\n```python\n([\s\S]*?)```\n/.exec(readme)?.[1];
    assert.ok(block, 'README has a ```python block after <!-- excerpt: examples/agent.py -->');
    const lines = (text: string) => text.split('\n').map((l) => l.trim());
    const excerpt = lines(block).filter((l, i, all) => l || i < all.length - 1);
    const file = lines(readFileSync(EXAMPLE, 'utf8'));
    const at = file.findIndex((_, i) => excerpt.every((l, k) => file[i + k] === l));
    assert.ok(excerpt.length > 10 && at >= 0, 'the README excerpt is a contiguous run of examples/agent.py (copy it again from the file)');
  });
});
