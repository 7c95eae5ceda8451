// bench:relay's viewer, in its own process like a user's browser: joins the customer's room, decodes
// the simulated avatar's frame counters from whatever video it receives (any participant, any track,
// so a direct-mode identity swap is followed too) and answers, over IPC, the longest pause between
// two decoded frames within given time windows. Arguments: <ws url> <token>.
import { Room, RoomEvent, TrackKind, VideoStream, dispose, type RemoteTrack, type VideoFrameEvent } from '@livekit/rtc-node';
import { counterOfFrame } from '../src/media/frame-code';
import { guardRtcHandleErrors } from '../src/media/rtc-guard';

guardRtcHandleErrors();
const [url, token] = process.argv.slice(2);
const arrivals: number[] = [];
const room = new Room();
const readers = new Map<string, ReadableStreamDefaultReader<VideoFrameEvent>>();
room.on(
  RoomEvent.TrackUnsubscribed,
  (_t, pub) =>
    void readers
      .get(pub.sid!)
      ?.cancel()
      .catch(() => undefined),
);
room.on(RoomEvent.TrackSubscribed, (track: RemoteTrack, pub) => {
  if (track.kind !== TrackKind.KIND_VIDEO) return;
  const reader = new VideoStream(track).getReader();
  readers.set(pub.sid!, reader);
  void (async () => {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      if (counterOfFrame(value.frame) !== undefined) arrivals.push(Date.now());
    }
  })().catch(() => undefined);
});

/** Longest pause between frames within [from, to], counting the edges (a window with no frame is all gap). */
function longestGap(from: number, to: number): number {
  let prev = from;
  let longest = 0;
  for (const t of arrivals) {
    if (t < from) continue;
    if (t > to) break;
    longest = Math.max(longest, t - prev);
    prev = t;
  }
  return Math.max(longest, to - prev);
}

process.on('message', (m: { op: 'gaps'; windows: [number, number][] } | { op: 'frames' } | { op: 'stop' }) => {
  if (m.op === 'gaps') process.send!({ gaps: m.windows.map(([a, b]) => longestGap(a, b)) });
  else if (m.op === 'frames') process.send!({ frames: arrivals.length, last: arrivals.at(-1) });
  else if (m.op === 'stop') {
    void (async () => {
      for (const r of readers.values()) await r.cancel().catch(() => undefined);
      await room.disconnect().catch(() => undefined);
      await dispose().catch(() => undefined);
      process.exit(0);
    })();
  }
});
process.on('disconnect', () => process.exit(0));

room.connect(url!, token!, { autoSubscribe: true, dynacast: false }).then(
  () => process.send!({ ready: true }),
  (err: unknown) => {
    process.stderr.write(`viewer could not join: ${String(err)}\n`);
    process.exit(1);
  },
);
