// The simulator's avatar participant: publishes a camera track whose frames carry a counter and a
// microphone tone, listens to what others publish, sends Runway-style data messages, and ends on END_CALL.
// It releases every native handle once and in order (stream readers, then the room, then its tracks
// with their sources, after the tone loop has ended): rtc-node throws an uncaught `trying to drop an
// invalid handle` for a handle released twice or after its owner, which ends the whole process.
// src/runway-sim/avatar-process.ts runs these avatars in a child process, as Runway's run apart.
import {
  AudioSource, AudioStream, LocalAudioTrack, LocalVideoTrack, Room, RoomEvent, TrackKind, TrackPublishOptions,
  TrackSource, VideoBufferType, VideoCodec, VideoFrame, VideoSource, type AudioFrame, type RemoteTrack,
} from '@livekit/rtc-node';
import { makeI420Frame } from '../media/frame-code';
import { guardRtcHandleErrors } from '../media/rtc-guard';
import { toneFrame } from '../media/tone';
import type { SimAvatar, SimAvatarOptions, SimAvatarStats, StartSimAvatar } from './avatar-api';

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
  let greet: NodeJS.Timeout | undefined;
  let released: Promise<void> | undefined;
  const release = () => (released ??= (async () => {
    stopped = true;
    clearTimeout(greet);
    for (const t of timers) clearTimeout(t);
    // The tone loop's capture in flight settles before its source goes (bounded: the room may be gone).
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
      room.registerByteStreamHandler('lk.audio_stream', async (reader) => {
        for await (const chunk of reader) if (chunk.length) stats.audioFramesHeard++;
      });
      room.localParticipant!.registerRpcMethod('lk.clear_buffer', async () => 'ok');
    }

    video = new VideoSource(spec.width, spec.height);
    const source = video;
    const videoTrack = LocalVideoTrack.createVideoTrack('avatar_video', video);
    tracks.push(videoTrack);
    await room.localParticipant!.publishTrack(
      videoTrack,
      new TrackPublishOptions({ source: TrackSource.SOURCE_CAMERA, simulcast: false, videoCodec: VideoCodec.VP8, videoEncoding: { maxBitrate: 800_000n, maxFramerate: spec.fps } }),
    );
    // Frames follow a clock: when the event loop is late, frames are skipped rather than queued.
    const t0 = Date.now();
    let lastIndex = -1;
    const tick = () => {
      if (stopped) return;
      const index = Math.floor(((Date.now() - t0) * spec.fps) / 1000);
      if (index !== lastIndex && !frozen) {
        lastIndex = index;
        source.captureFrame(new VideoFrame(makeI420Frame(spec.width, spec.height, stats.framesSent + 1), spec.width, spec.height, VideoBufferType.I420));
        stats.framesSent++;
      }
      timers.push(setTimeout(tick, Math.max(1, t0 + ((index + 1) * 1000) / spec.fps - Date.now())));
      if (timers.length > 4) timers.shift();
    };
    tick();

    if (spec.audio) {
      const tone = (audio = new AudioSource(48000, 1, 200));
      const audioTrack = LocalAudioTrack.createAudioTrack('avatar_audio', tone);
      tracks.push(audioTrack);
      await room.localParticipant!.publishTrack(audioTrack, new TrackPublishOptions({ source: TrackSource.SOURCE_MICROPHONE }));
      toneLoop = (async () => {
        let phase = 0;
        while (!stopped) {
          const frame = toneFrame(phase, 440, 8000);
          phase += frame.samplesPerChannel;
          try {
            await tone.captureFrame(frame);
            stats.audioFramesSent++;
          } catch {
            break;
          }
        }
      })();
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
  // Runway's character greets and calls a client_event tool once it is up (topic 'runway').
  greet = setTimeout(() => {
    void publish({ type: 'transcript', role: 'assistant', content: 'Hello! I am a simulated Runway avatar.', final: true }).catch(() => undefined);
    void publish({ type: 'client_event', name: 'show_card', args: { title: 'simulated' } }).catch(() => undefined);
  }, 300);

  return {
    identity: room.localParticipant?.identity ?? opts.identity,
    stats: () => ({ ...stats }),
    sendClientEvent: (name, args) => publish({ type: 'client_event', name, args }),
    freezeVideo: () => void (frozen = true),
    stop: () => release(),
  };
};
