// The simulator's avatar participant: publishes a camera track whose frames carry a counter and a
// microphone tone, listens to what others publish, sends Runway-style data messages, and ends on END_CALL.
import {
  AudioSource, AudioStream, LocalAudioTrack, LocalVideoTrack, Room, RoomEvent, TrackKind, TrackPublishOptions,
  TrackSource, VideoBufferType, VideoCodec, VideoFrame, VideoSource, type RemoteTrack,
} from '@livekit/rtc-node';
import { makeI420Frame } from '../media/frame-code';
import { toneFrame } from '../media/tone';
import type { SimAvatar, SimAvatarOptions, SimAvatarStats, StartSimAvatar } from './avatar-api';

const MEDIA = {
  full: { width: 640, height: 360, fps: 30, audio: true },
  light: { width: 64, height: 64, fps: 5, audio: false },
} as const;

export const startSimAvatar: StartSimAvatar = async (opts: SimAvatarOptions): Promise<SimAvatar> => {
  const spec = MEDIA[opts.media === 'pion' ? 'light' : opts.media];
  const room = new Room();
  const stats: SimAvatarStats = { framesSent: 0, audioFramesSent: 0, audioFramesHeard: 0, dataMessagesSent: 0 };
  let stopped = false;
  let frozen = false;
  let peerSeen = false;
  let endCallSeen = false;
  const timers: NodeJS.Timeout[] = [];
  const streams: AudioStream[] = [];

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
    if (track.kind !== TrackKind.KIND_AUDIO) return;
    const stream = new AudioStream(track, { sampleRate: 16000, numChannels: 1 });
    streams.push(stream);
    void (async () => {
      try {
        for await (const frame of stream) {
          if (stopped) break;
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
  const release = async () => {
    stopped = true;
    clearTimeout(greet);
    for (const t of timers) clearTimeout(t);
    for (const s of streams) await s.cancel().catch(() => undefined);
    await room.disconnect().catch(() => undefined);
    await video?.close().catch(() => undefined);
    await audio?.close().catch(() => undefined);
  };
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
    await room.localParticipant!.publishTrack(
      LocalVideoTrack.createVideoTrack('avatar_video', video),
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
      await room.localParticipant!.publishTrack(LocalAudioTrack.createAudioTrack('avatar_audio', tone), new TrackPublishOptions({ source: TrackSource.SOURCE_MICROPHONE }));
      void (async () => {
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
    async stop() {
      if (stopped) return;
      await release();
    },
  };
};
