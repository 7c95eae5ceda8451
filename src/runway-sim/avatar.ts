// The simulator's avatar participant: publishes a camera track whose frames carry a counter and a
// microphone track, listens to what others publish, sends the data messages the simulator gives it (server.ts), and ends on END_CALL.
// In Runway's room (relay path) its microphone carries a 440 Hz tone: Runway's own character speaking.
// In the customer's room (direct mode) it behaves like LiveKit avatar workers: it plays the audio the
// customer's agent streams to it on `lk.audio_stream` (avatar-speech.ts), silence otherwise, and
// marks its video while it speaks (a red bottom band, frame-code.ts).
// It releases every native handle once and in order (stream readers, then the room, then its tracks
// with their sources, after the audio loop has ended): rtc-node throws an uncaught `trying to drop an
// invalid handle` for a handle released twice or after its owner, which ends the whole process.
// src/runway-sim/avatar-process.ts runs these avatars in a child process, as Runway's run apart.
import {
  AudioFrame,
  AudioSource,
  AudioStream,
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
  type RemoteTrack,
} from '@livekit/rtc-node';
import { makeI420Frame, markSpeaking } from '../media/frame-code';
import { guardRtcHandleErrors } from '../media/rtc-guard';
import { toneFrame } from '../media/tone';
import type { SimAvatar, SimAvatarOptions, SimAvatarStats, StartSimAvatar } from './avatar-api';
import { AvatarSpeech, SPEECH_FRAME_SAMPLES, SPEECH_SAMPLE_RATE } from './avatar-speech';

/** `lk.publish_on_behalf`: the agent an avatar speaks for (set on its token by whoever minted it). */
const PUBLISH_ON_BEHALF = 'lk.publish_on_behalf';

const MEDIA = {
  full: { width: 640, height: 360, fps: 30, audio: true },
  light: { width: 64, height: 64, fps: 5, audio: false },
} as const;

export const startSimAvatar: StartSimAvatar = async (opts: SimAvatarOptions): Promise<SimAvatar> => {
  guardRtcHandleErrors();
  const spec = MEDIA[opts.media === 'pion' ? 'light' : opts.media];
  const room = new Room();
  const stats: SimAvatarStats = { framesSent: 0, audioFramesSent: 0, audioFramesHeard: 0, dataMessagesSent: 0 };
  let stopped = false;
  let frozen = false;
  let peerSeen = false;
  let endCallSeen = false;
  let speech: AvatarSpeech | undefined;
  let pumpTimer: NodeJS.Timeout | undefined;
  const timers: NodeJS.Timeout[] = [];
  // Explicit readers: cancel() on a stream a `for await` holds is rejected and never reaches rtc-node,
  // which then releases the stream's handle on its own when the room goes.
  const readers = new Set<ReadableStreamDefaultReader<AudioFrame>>();
  const tracks: (LocalVideoTrack | LocalAudioTrack)[] = [];
  let toneLoop: Promise<void> | undefined;

  const notePeer = (identity: string) => {
    if (peerSeen || identity === room.localParticipant?.identity) return;
    peerSeen = true;
    opts.onPeerJoined?.(identity);
  };
  room.on(RoomEvent.ParticipantConnected, (p) => notePeer(p.identity));
  // rtc-node can miss the ParticipantConnected of a participant that joins while we are connecting
  // (it is then absent from remoteParticipants too); a subscription to our track still proves a peer.
  room.on(RoomEvent.LocalTrackSubscribed, () => notePeer([...room.remoteParticipants.keys()][0] ?? '(subscriber)'));
  room.on(RoomEvent.DataReceived, (payload, participant) => {
    try {
      const msg = JSON.parse(new TextDecoder().decode(payload)) as { type?: string };
      if (msg.type === 'END_CALL' && !endCallSeen) {
        endCallSeen = true;
        opts.onEndCall?.(participant?.identity);
      }
    } catch {
      // not JSON: ignore
    }
  });
  room.on(RoomEvent.TrackSubscribed, (track: RemoteTrack) => {
    if (stopped || track.kind !== TrackKind.KIND_AUDIO) return;
    const reader = new AudioStream(track, { sampleRate: 16000, numChannels: 1 }).getReader();
    readers.add(reader);
    void (async () => {
      try {
        for (;;) {
          const { done, value: frame } = await reader.read();
          if (done || stopped) break;
          let sum = 0;
          for (const s of frame.data) sum += s * s;
          if (Math.sqrt(sum / Math.max(1, frame.data.length)) > 200) stats.audioFramesHeard++;
        }
      } catch {
        // stream closed
      }
    })();
  });
  room.on(RoomEvent.Disconnected, (reason) => {
    if (!stopped) opts.onDisconnected?.(String(reason));
  });

  await room.connect(opts.url, opts.token, { autoSubscribe: true, dynacast: false });
  let video: VideoSource | undefined;
  let audio: AudioSource | undefined;
  let released: Promise<void> | undefined;
  const release = () =>
    (released ??= (async () => {
      stopped = true;
      speech?.close();
      for (const t of timers) clearTimeout(t);
      clearTimeout(pumpTimer);
      // The audio loop's capture in flight settles before its source goes (bounded: the room may be gone).
      if (toneLoop) await Promise.race([toneLoop, new Promise((r) => setTimeout(r, 1000))]);
      for (const r of readers) await r.cancel().catch(() => undefined);
      readers.clear();
      await room.disconnect().catch(() => undefined);
      // Each track once, with its source; a source whose track was never created is closed alone.
      for (const t of tracks) await t.close(true).catch(() => undefined);
      if (!tracks.some((t) => t instanceof LocalVideoTrack)) await video?.close().catch(() => undefined);
      if (!tracks.some((t) => t instanceof LocalAudioTrack)) await audio?.close().catch(() => undefined);
      tracks.length = 0;
    })());
  try {
    for (const p of room.remoteParticipants.values()) notePeer(p.identity);

    if (opts.where === 'customer-room') {
      // Like LiveKit avatar workers: the agent streams its audio to us and may ask us to clear the buffer.
      const trusted = opts.agentIdentity ?? room.localParticipant!.attributes[PUBLISH_ON_BEHALF];
      // eslint-disable-next-line no-console -- the simulator's avatar runs in a child process with no service logger: stderr
      speech = new AvatarSpeech(room, trusted || undefined, { warn: (m) => console.warn(`[runway-sim avatar ${opts.identity}] ${m}`) });
      speech.start();
    }

    video = new VideoSource(spec.width, spec.height);
    const source = video;
    const videoTrack = LocalVideoTrack.createVideoTrack('avatar_video', video);
    tracks.push(videoTrack);
    await room.localParticipant!.publishTrack(
      videoTrack,
      new TrackPublishOptions({
        source: TrackSource.SOURCE_CAMERA,
        simulcast: false,
        videoCodec: VideoCodec.VP8,
        videoEncoding: { maxBitrate: 800_000n, maxFramerate: spec.fps },
      }),
    );
    // Frames follow a clock: when the event loop is late, frames are skipped rather than queued.
    const t0 = Date.now();
    let lastIndex = -1;
    const tick = () => {
      if (stopped) return;
      const index = Math.floor(((Date.now() - t0) * spec.fps) / 1000);
      if (index !== lastIndex && !frozen) {
        lastIndex = index;
        const data = makeI420Frame(spec.width, spec.height, stats.framesSent + 1);
        if (speech?.speaking) markSpeaking({ data, width: spec.width, height: spec.height });
        source.captureFrame(new VideoFrame(data, spec.width, spec.height, VideoBufferType.I420));
        stats.framesSent++;
      }
      timers.push(setTimeout(tick, Math.max(1, t0 + ((index + 1) * 1000) / spec.fps - Date.now())));
      if (timers.length > 4) timers.shift();
    };
    tick();

    if (spec.audio) {
      // The queue rides out event-loop stalls; clear_buffer empties it (clearQueue), so it stops at once.
      const mic = (audio = new AudioSource(SPEECH_SAMPLE_RATE, 1, 300));
      const audioTrack = LocalAudioTrack.createAudioTrack('avatar_audio', mic);
      tracks.push(audioTrack);
      await room.localParticipant!.publishTrack(audioTrack, new TrackPublishOptions({ source: TrackSource.SOURCE_MICROPHONE }));
      if (speech) speech.onCleared = () => mic.clearQueue();
      const silence = new Int16Array(SPEECH_FRAME_SAMPLES);
      toneLoop = (async () => {
        let phase = 0;
        while (!stopped) {
          let frame: AudioFrame;
          if (speech) {
            frame = new AudioFrame(speech.nextFrame() ?? silence, SPEECH_SAMPLE_RATE, 1, SPEECH_FRAME_SAMPLES);
          } else {
            frame = toneFrame(phase, 440, 8000);
            phase += frame.samplesPerChannel;
          }
          try {
            await mic.captureFrame(frame); // resolves when the queue has room: real-time pacing
            stats.audioFramesSent++;
          } catch {
            break;
          }
        }
      })();
    } else if (speech) {
      // No audio track (light media), but agents still wait for playback_finished: play silently on the clock.
      const s = speech;
      const t0 = Date.now();
      let played = 0;
      const pump = () => {
        if (stopped) return;
        const due = Math.floor(((Date.now() - t0) * SPEECH_SAMPLE_RATE) / SPEECH_FRAME_SAMPLES / 1000);
        for (; played < due; played++) s.nextFrame();
        pumpTimer = setTimeout(pump, 20);
      };
      pump();
    }
  } catch (err) {
    // Joined but could not publish: leave the room rather than linger in it as a silent participant.
    await release();
    throw err;
  }

  const publish = async (msg: unknown) => {
    if (stopped || !room.isConnected) return;
    await room.localParticipant!.publishData(new TextEncoder().encode(JSON.stringify(msg)), { reliable: true, topic: 'runway' });
    stats.dataMessagesSent++;
  };
  // What Runway's character says (its opening line, transcript segments, tool calls) comes from the
  // simulator's server (server.ts: converse), which keeps the session's transcript.

  return {
    identity: room.localParticipant?.identity ?? opts.identity,
    stats: () => ({ ...stats, ...(speech ? { speech: { ...speech.stats } } : {}) }),
    sendClientEvent: (name, args) => publish({ type: 'client_event', name, args }),
    sendData: (msg) => publish(msg),
    freezeVideo: () => void (frozen = true),
    stop: () => release(),
  };
};
