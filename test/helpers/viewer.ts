// A participant in the customer's room that watches and listens like a user's browser would, and
// decodes the simulated avatar's frame counters from the video it receives.
import { AudioStream, Room, RoomEvent, TrackKind, VideoStream, type AudioFrame, type RemoteTrack, type VideoFrameEvent } from '@livekit/rtc-node';
import { counterOfFrame } from '../../src/media/frame-code';
import { joinToken, type LiveKitServer } from './livekit';
import { uniqueId } from './session-stack';

/** An rtc-node participant in the customer's room, like a user's browser (or, with kind agent, the customer's agent). */
export async function viewer(lk: LiveKitServer, room: string, identity = uniqueId('user'), kind?: 'agent' | 'standard') {
  const r = new Room();
  /** Decoded frame counters of the video it receives, with when each arrived. */
  const counters: number[] = [];
  const arrivals: number[] = [];
  const data: { topic?: string; text: string }[] = [];
  let audioFrames = 0;
  // Explicit readers: cancel() on a stream that a `for await` holds is rejected and never reaches rtc-node.
  const readers: ReadableStreamDefaultReader<unknown>[] = [];
  const bySid = new Map<string, ReadableStreamDefaultReader<unknown>>();
  // rtc-node does not end a VideoStream when its track is unsubscribed (and a reused receiver can feed
  // it the next track's frames): end it ourselves.
  r.on(
    RoomEvent.TrackUnsubscribed,
    (_t, pub) =>
      void bySid
        .get(pub.sid!)
        ?.cancel()
        .catch(() => undefined),
  );
  r.on(RoomEvent.TrackSubscribed, (track: RemoteTrack, pub) => {
    const video = track.kind === TrackKind.KIND_VIDEO;
    const reader = ((video ? new VideoStream(track) : new AudioStream(track, { sampleRate: 48000, numChannels: 1 })) as ReadableStream<unknown>).getReader();
    readers.push(reader);
    bySid.set(pub.sid!, reader);
    void (async () => {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        if (video) {
          const { frame } = value as VideoFrameEvent;
          const n = counterOfFrame(frame);
          if (n !== undefined) {
            counters.push(n);
            arrivals.push(Date.now());
          }
        } else {
          const f = value as AudioFrame;
          let sum = 0;
          for (const x of f.data) sum += x * x;
          if (Math.sqrt(sum / f.data.length) > 200) audioFrames++;
        }
      }
    })().catch(() => undefined);
  });
  r.on(RoomEvent.DataReceived, (payload, _p, _k, topic) => data.push({ topic, text: new TextDecoder().decode(payload) }));
  await r.connect(lk.url, await joinToken(lk, room, identity, { kind }), { autoSubscribe: true, dynacast: false });
  return {
    identity,
    room: r,
    counters,
    arrivals,
    data,
    audioFrames: () => audioFrames,
    async close() {
      for (const reader of readers) await reader.cancel().catch(() => undefined);
      await r.disconnect();
    },
  };
}
