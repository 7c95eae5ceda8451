// The media relay (relay mode): one process-local object per live session that sits in two LiveKit
// rooms at once. From Runway's room it takes the avatar's camera and microphone and republishes them
// in the customer's room as the bridge participant (same track sources, so front ends and agents see
// the agent's avatar); from the customer's room it mixes the chosen participants' microphones into
// one track that Runway's character hears (src/media/mixer.ts). Runway's data messages (client
// events, transcripts) are re-sent in the customer's room on RUNWAY_EVENTS_TOPIC; data sent in the
// customer's room on RUNWAY_CONTROL_TOPIC goes to Runway's room. rtc-node decodes and re-encodes video.
//
// Renewal: switchSource() joins the next Runway session's room and subscribes to its avatar while the
// current one still plays; once the new avatar's video is decoded steadily (a few frames over a
// quarter of a second: a fresh subscription's first frames come in bursts while its jitter buffer and
// decoder settle) it becomes the source of the same published tracks (nothing is unpublished in the
// customer's room), and the old room gets END_CALL and is left. The viewer never waits for a room
// join or a first keyframe: the old avatar is forwarded until then (bench:relay --renewals).
//
// Resources: every stream is read through an explicit reader so stop() can cancel it (cancel() on a
// stream that a `for await` holds is rejected and never reaches the native side); every local track
// is closed with its source; each room is left once. What rtc-node itself releases twice is survived
// (src/media/rtc-guard.ts). rtc-node's process-wide dispose() is the process's business, not ours.
import {
  AudioFrame,
  AudioSource,
  AudioStream,
  DisconnectReason,
  LocalAudioTrack,
  LocalVideoTrack,
  ParticipantKind,
  Room,
  RoomEvent,
  TrackKind,
  TrackPublishOptions,
  TrackSource,
  VideoSource,
  VideoStream,
  type RemoteParticipant,
  type RemoteTrack,
  type RemoteTrackPublication,
  type VideoFrameEvent,
} from '@livekit/rtc-node';
import { MIX_FRAME_MS, MIX_SAMPLE_RATE, MixClock, PcmMixer } from './mixer';
import { guardRtcHandleErrors } from './rtc-guard';

/** Runway's data messages (client events, transcript segments) arrive in the customer's room on this topic. */
export const RUNWAY_EVENTS_TOPIC = 'runway.events';
/** Data the customer's side sends on this topic is passed to Runway's room as is (e.g. {"type":"END_CALL"}). */
export const RUNWAY_CONTROL_TOPIC = 'runway.control';
/** The topic Runway's room uses for its JSON messages (END_CALL included). */
export const RUNWAY_TOPIC = 'runway';

const END_CALL = new TextEncoder().encode(JSON.stringify({ type: 'END_CALL' }));
/** How long stop() waits, after END_CALL, for Runway's avatar to leave before disconnecting anyway. */
const END_CALL_WAIT_MS = 1000;
/** How long stop() waits for a start() still connecting (so a late connect cannot leave us in a room). */
const START_SETTLE_MS = 20_000;
/** The next avatar takes over once this many of its frames were decoded over at least WARM_MS (or at once if the current one is gone). */
const WARM_FRAMES = 3;
const WARM_MS = 250;

export interface RelayStats {
  /** The Runway session whose avatar is being relayed (when the relay was given its id). */
  source?: string;
  /** Source switches done (renewals); the longest pause between forwarded video frames during the last one, and during any. */
  switches: number;
  lastSwitchGapMs?: number;
  longestSwitchGapMs?: number;
  videoFramesForwarded: number;
  audioFramesForwarded: number;
  mixedFramesSent: number;
  dataMessagesForwarded: number;
  controlMessagesForwarded: number;
  /** Epoch ms of the last avatar video frame forwarded. */
  lastVideoFrameAt?: number;
  mixedSources: number;
}

export type RelayEnd = 'runway_ended' | 'room_closed' | 'stalled' | 'source_gone';

/** The relay lost a room for a reason a retry may fix (kind is the Temporal failure type the activity uses). */
export class RelayError extends Error {
  constructor(
    readonly kind: 'relay_replaced' | 'relay_disconnected' | 'relay_media_failed' | 'relay_switch_failed',
    message: string,
  ) {
    super(message);
    this.name = 'RelayError';
  }
}

export interface RunwayRoom {
  url: string;
  token: string;
  sessionId?: string;
}

export interface MediaRelayOptions {
  /** Runway's room: the consumed credentials (and the Runway session's id, for stats and switches). */
  runway: RunwayRoom;
  /** The customer's room: a token for the bridge participant. */
  customer: { url: string; token: string };
  /** Whose microphones Runway hears; default: every standard (non-agent) participant. */
  listenTo?: string[];
  /** Identities never mixed (the customer's agent). */
  exclude?: string[];
  /** Only these identities may send on RUNWAY_CONTROL_TOPIC; default: anyone in the customer's room. */
  controlFrom?: string[];
  /** No avatar video for this long ends the relay as 'stalled', or 'source_gone' when nobody is in Runway's room (counted from when both rooms are joined). */
  stallSeconds: number;
  /** Called once, when the avatar's video is first published in the customer's room. */
  onBridged?: () => void;
}

type Reader = ReadableStreamDefaultReader<unknown>;

/** One Runway room the relay takes the avatar from. A renewal brings in the next one before this one is left. */
class RunwaySide {
  readonly room = new Room();
  avatarIdentity?: string;
  /**
   * The avatar's readers by track sid. rtc-node does not end a VideoStream when its track is
   * unsubscribed, and the SFU may reuse the receiver for a republished track, so an old stream
   * would go on delivering the new track's frames next to the new stream: cancel it on unsubscribe.
   */
  readonly avatarReaders = new Map<string, Reader>();
  /** What Runway's character hears in this room: the customer mix. */
  mixOut?: AudioSource;
  readonly tracks: LocalAudioTrack[] = [];
  /** Resolves when the avatar leaves (END_CALL waits on it). */
  avatarLeft?: () => void;
  /** The room ended, or the avatar left it. */
  lost = false;
  connecting?: Promise<void>;
  /** leave()'s one run: every handle of this side is released once. */
  leaving?: Promise<void>;
  /** Incoming side: its avatar's video frames decoded so far, and when the first one came. */
  warmFrames = 0;
  firstFrameAt?: number;
  constructor(readonly target: RunwayRoom) {}
  get id(): string | undefined {
    return this.target.sessionId;
  }
}

interface PendingSwitch {
  side: RunwaySide;
  promise: Promise<Promise<void>>;
  /** Resolved with the old side's retirement when the new side takes over. */
  resolve: (retired: Promise<void>) => void;
  reject: (err: Error) => void;
}

/** A transcript segment Runway's character sent on the data channel, as the relay saw it. */
export interface RelayedTurn {
  runwaySessionId?: string;
  role: 'user' | 'assistant';
  content: string;
}

/** How much of what was said the relay keeps (characters): a renewal's context needs the recent part only. */
const TRANSCRIPT_KEEP_CHARS = 8000;

/**
 * A final transcript segment in a Runway data message, if it is one: `{type:'transcript', role,
 * content}` (`final: false` marks an interim segment, skipped). Runway's exact shape is not
 * documented; anything else is ignored, and a renewal then reads Runway's conversation endpoint.
 */
export function transcriptSegment(payload: Uint8Array): { role: 'user' | 'assistant'; content: string } | undefined {
  try {
    const m = JSON.parse(new TextDecoder().decode(payload)) as { type?: unknown; role?: unknown; content?: unknown; text?: unknown; final?: unknown };
    const content = typeof m.content === 'string' ? m.content : typeof m.text === 'string' ? m.text : undefined;
    if (m.type !== 'transcript' || m.final === false || !content?.trim()) return undefined;
    return { role: m.role === 'user' ? 'user' : 'assistant', content };
  } catch {
    return undefined;
  }
}

export class MediaRelay {
  private readonly customerRoom = new Room();
  /** Recent transcript segments of every Runway session this relay served (bounded: TRANSCRIPT_KEEP_CHARS). */
  private readonly turns: RelayedTurn[] = [];
  private turnChars = 0;
  /** The Runway room whose avatar is relayed now. */
  private active: RunwaySide;
  /** The next Runway room, joined by switchSource() and not relayed until its avatar's video flows. */
  private incoming?: PendingSwitch;
  private readonly sides = new Set<RunwaySide>();
  private readonly retiring = new Set<Promise<void>>();
  private readonly stats_: Omit<RelayStats, 'source' | 'mixedSources'> = {
    switches: 0,
    videoFramesForwarded: 0,
    audioFramesForwarded: 0,
    mixedFramesSent: 0,
    dataMessagesForwarded: 0,
    controlMessagesForwarded: 0,
  };
  private readonly readers = new Set<Reader>();
  /** Customer audio readers by mixer id (participant/track sid), to cancel on unsubscribe. */
  private readonly mixReaders = new Map<string, Reader>();
  private readonly mixer = new PcmMixer();
  /** The bridge's tracks in the customer's room: published once, fed by whichever Runway room is active. */
  private readonly localTracks: (LocalAudioTrack | LocalVideoTrack)[] = [];
  private video?: Promise<VideoSource | undefined>;
  private audio?: Promise<AudioSource | undefined>;
  private mixTimer?: NodeJS.Timeout;
  private stallTimer?: NodeJS.Timeout;
  private bridged = false;
  private stopped = false;
  private starting?: Promise<void>;
  private stopping?: Promise<void>;
  private joinedAt = Date.now();
  /** While a switch is under way: the longest pause between two forwarded video frames. */
  private switchGapMs?: number;
  private resolveEnd!: (r: RelayEnd) => void;
  private rejectEnd!: (e: Error) => void;
  /** Settles when the relay ends by itself: Runway's side ended, the customer's room closed, a stall, or a lost room. */
  readonly ended: Promise<RelayEnd>;

  constructor(private readonly opts: MediaRelayOptions) {
    // A handle rtc-node releases twice must not end every relay of the process (src/media/rtc-guard.ts).
    guardRtcHandleErrors();
    this.active = new RunwaySide(opts.runway);
    this.sides.add(this.active);
    this.ended = new Promise<RelayEnd>((res, rej) => {
      this.resolveEnd = res;
      this.rejectEnd = rej;
    });
    this.ended.catch(() => undefined);
  }

  stats(): RelayStats {
    return { ...this.stats_, ...(this.active.id ? { source: this.active.id } : {}), mixedSources: this.mixer.size };
  }

  /** The avatar's identity in the active Runway room, once its first track arrived. */
  get avatar(): string | undefined {
    return this.active.avatarIdentity;
  }

  /** The Runway session being relayed (its id as given in the options or to switchSource). */
  get source(): string | undefined {
    return this.active.id;
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /** What Runway's character and the user said in `runwaySessionId` (the recent part), oldest first. */
  transcriptOf(runwaySessionId: string): RelayedTurn[] {
    return this.turns.filter((t) => t.runwaySessionId === runwaySessionId);
  }

  private noteTurn(side: RunwaySide, payload: Uint8Array): void {
    const seg = transcriptSegment(payload);
    if (!seg) return;
    this.turns.push({ runwaySessionId: side.id, ...seg });
    this.turnChars += seg.content.length;
    while (this.turnChars > TRANSCRIPT_KEEP_CHARS && this.turns.length > 1) this.turnChars -= this.turns.shift()!.content.length;
  }

  private finish(r: RelayEnd | Error): void {
    if (this.stopped) return;
    if (r instanceof Error) this.rejectEnd(r);
    else this.resolveEnd(r);
  }

  /** Joins both rooms and starts relaying. Idempotent; stop() may be called at any time, even while this runs. */
  start(): Promise<void> {
    this.starting ??= this.doStart();
    return this.starting;
  }

  private async doStart(): Promise<void> {
    const { customerRoom } = this;
    // The customer's room first: the bridge must be able to publish the moment the avatar's tracks arrive.
    customerRoom.on(RoomEvent.TrackSubscribed, (track, pub, p) => this.onCustomerTrack(track, pub, p));
    customerRoom.on(RoomEvent.TrackUnsubscribed, (_t, pub, p) => this.dropMixSource(`${p.identity}/${pub.sid}`));
    customerRoom.on(RoomEvent.ParticipantDisconnected, (p) => {
      for (const pub of p.trackPublications.values()) this.dropMixSource(`${p.identity}/${pub.sid}`);
    });
    customerRoom.on(RoomEvent.DataReceived, (payload, p, _kind, topic) => {
      const runwayRoom = this.active.room;
      if (topic !== RUNWAY_CONTROL_TOPIC || this.stopped || !runwayRoom.isConnected) return;
      if (this.opts.controlFrom?.length && !(p && this.opts.controlFrom.includes(p.identity))) return;
      this.stats_.controlMessagesForwarded++;
      void runwayRoom.localParticipant?.publishData(payload, { reliable: true, topic: RUNWAY_TOPIC }).catch(() => undefined);
    });
    customerRoom.on(RoomEvent.Disconnected, (reason) => {
      if (this.stopped) return;
      if (reason === DisconnectReason.ROOM_DELETED || reason === DisconnectReason.ROOM_CLOSED) this.finish('room_closed');
      else if (reason === DisconnectReason.DUPLICATE_IDENTITY)
        this.finish(new RelayError('relay_replaced', "another bridge joined the customer's room with this bridge's identity"));
      else this.finish(new RelayError('relay_disconnected', `left the customer's room unexpectedly (${DisconnectReason[reason] ?? reason})`));
    });
    await customerRoom.connect(this.opts.customer.url, this.opts.customer.token, { autoSubscribe: true, dynacast: false });
    if (this.stopped) return;
    await this.joinRunway(this.active);
    if (this.stopped) return;
    const clock = new MixClock();
    this.mixTimer = setInterval(() => this.mixTick(clock), MIX_FRAME_MS);
    // Tracks published before we joined arrive as subscriptions too (autoSubscribe).
    this.joinedAt = Date.now();
    this.stallTimer = setInterval(() => this.checkStall(), 500);
  }

  /** Joins one Runway room: takes its avatar's tracks and publishes the customer mix into it. */
  private joinRunway(side: RunwaySide): Promise<void> {
    side.connecting ??= (async () => {
      const { room } = side;
      room.on(RoomEvent.TrackSubscribed, (track, pub, p) => this.onAvatarTrack(side, track, pub, p));
      room.on(RoomEvent.TrackUnsubscribed, (_t, pub) => this.dropAvatarTrack(side, pub.sid));
      room.on(RoomEvent.ParticipantDisconnected, (p) => {
        if (p.identity !== side.avatarIdentity) return;
        side.avatarLeft?.();
        this.sideLost(side, 'runway_ended');
      });
      room.on(RoomEvent.DataReceived, (payload, p) => {
        if (p && !this.stopped) this.noteTurn(side, payload);
        if (!p || this.stopped || side !== this.active || !this.customerRoom.isConnected) return;
        this.stats_.dataMessagesForwarded++;
        void this.customerRoom.localParticipant?.publishData(payload, { reliable: true, topic: RUNWAY_EVENTS_TOPIC }).catch(() => undefined);
      });
      room.on(RoomEvent.Disconnected, (reason) => {
        if (this.stopped) return;
        // Our consumed credentials used by another process (a retry of this relay that connected later).
        if (reason === DisconnectReason.DUPLICATE_IDENTITY)
          this.sideLost(side, new RelayError('relay_replaced', "another bridge joined Runway's room with these credentials"));
        else this.sideLost(side, 'runway_ended');
      });
      await room.connect(side.target.url, side.target.token, { autoSubscribe: true, dynacast: false });
      if (this.stopped) return;
      // What Runway's character hears: one mixed microphone track, paced by the wall clock.
      const mixOut = new AudioSource(MIX_SAMPLE_RATE, 1, 200);
      const mixTrack = LocalAudioTrack.createAudioTrack('customer_mix', mixOut);
      side.tracks.push(mixTrack);
      await room.localParticipant!.publishTrack(mixTrack, new TrackPublishOptions({ source: TrackSource.SOURCE_MICROPHONE }));
      side.mixOut = mixOut;
    })();
    return side.connecting;
  }

  /** A Runway room ended or its avatar left. Only the active room ends the relay, and not while a switch may replace it. */
  private sideLost(side: RunwaySide, r: 'runway_ended' | RelayError): void {
    side.lost = true;
    if (this.incoming?.side === side) {
      this.incoming.reject(new RelayError('relay_switch_failed', "the next Runway session's room ended before its avatar's video arrived"));
      return;
    }
    if (side !== this.active || this.incoming) return; // a retired room; or a switch under way decides
    this.finish(r);
  }

  private checkStall(): void {
    if (this.incoming) return; // a switch under way has its own deadline
    const last = this.stats_.lastVideoFrameAt ?? this.joinedAt;
    if (Date.now() - last <= this.opts.stallSeconds * 1000) return;
    // No video, and nobody in Runway's room either: its avatar is gone (its session ended while no relay
    // was there to see it leave, e.g. across a media worker's restart), not frozen.
    this.finish(this.sourcePresent(this.active) ? 'stalled' : 'source_gone');
  }

  /** Whether Runway's avatar (or, before its first track, anyone but us) is in this Runway room. */
  private sourcePresent(side: RunwaySide): boolean {
    if (!side.room.isConnected) return false;
    return side.avatarIdentity ? side.room.remoteParticipants.has(side.avatarIdentity) : side.room.remoteParticipants.size > 0;
  }

  private mixTick(clock: MixClock): void {
    const mixOut = this.active.mixOut;
    const due = clock.due();
    if (!mixOut || this.stopped) return;
    for (let n = due; n > 0; n--) {
      const samples = this.mixer.next();
      if (!samples) continue; // nobody spoke in this frame: send nothing (the receiver plays silence)
      mixOut.captureFrame(new AudioFrame(samples, MIX_SAMPLE_RATE, 1, samples.length)).then(
        () => void this.stats_.mixedFramesSent++,
        () => undefined, // the source closed while stopping or switching
      );
    }
  }
  private shouldMix(p: RemoteParticipant): boolean {
    if (p.identity === this.customerRoom.localParticipant?.identity) return false;
    if (this.opts.exclude?.includes(p.identity)) return false;
    if (this.opts.listenTo?.length) return this.opts.listenTo.includes(p.identity);
    return p.kind === ParticipantKind.STANDARD;
  }

  private dropMixSource(id: string): void {
    this.mixer.remove(id);
    const reader = this.mixReaders.get(id);
    if (reader) {
      this.mixReaders.delete(id);
      void reader.cancel().catch(() => undefined);
    }
  }

  private onCustomerTrack(track: RemoteTrack, pub: RemoteTrackPublication, p: RemoteParticipant): void {
    if (this.stopped || track.kind !== TrackKind.KIND_AUDIO || !this.shouldMix(p)) return;
    const id = `${p.identity}/${pub.sid}`;
    if (this.mixer.has(id)) return;
    this.mixer.add(id);
    const reader = this.reader(new AudioStream(track, { sampleRate: MIX_SAMPLE_RATE, numChannels: 1 }));
    this.mixReaders.set(id, reader);
    void (async () => {
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done || this.stopped) break;
          this.mixer.push(id, (value as AudioFrame).data);
        }
      } catch {
        // stream closed
      } finally {
        this.release(reader);
        if (this.mixReaders.get(id) === reader) this.dropMixSource(id);
      }
    })();
  }

  private onAvatarTrack(side: RunwaySide, track: RemoteTrack, pub: RemoteTrackPublication, p: RemoteParticipant): void {
    if (this.stopped) return;
    // Only the avatar's camera and microphone (a screen share would fight the camera for one track).
    const camera = track.kind === TrackKind.KIND_VIDEO && (pub.source === TrackSource.SOURCE_CAMERA || pub.source === TrackSource.SOURCE_UNKNOWN);
    const mic = track.kind === TrackKind.KIND_AUDIO && (pub.source === TrackSource.SOURCE_MICROPHONE || pub.source === TrackSource.SOURCE_UNKNOWN);
    if (!camera && !mic) return;
    side.avatarIdentity ??= p.identity;
    if (p.identity !== side.avatarIdentity || !pub.sid || side.avatarReaders.has(pub.sid)) return;
    if (camera) void this.forwardVideo(side, track, pub.sid);
    else void this.forwardAudio(side, track, pub.sid);
  }

  private dropAvatarTrack(side: RunwaySide, sid: string | undefined): void {
    const reader = sid ? side.avatarReaders.get(sid) : undefined;
    if (!reader) return;
    side.avatarReaders.delete(sid!);
    void reader.cancel().catch(() => undefined);
  }

  private reader(stream: VideoStream | AudioStream): Reader {
    const reader = (stream as ReadableStream<unknown>).getReader();
    this.readers.add(reader);
    return reader;
  }

  private release(reader: Reader): void {
    this.readers.delete(reader);
  }

  private async publishVideo(width: number, height: number): Promise<VideoSource | undefined> {
    const source = new VideoSource(width, height);
    const track = LocalVideoTrack.createVideoTrack('avatar_video', source);
    this.localTracks.push(track);
    await this.customerRoom.localParticipant!.publishTrack(track, new TrackPublishOptions({ source: TrackSource.SOURCE_CAMERA, simulcast: false }));
    if (this.stopped) return undefined;
    if (!this.bridged) {
      this.bridged = true;
      this.opts.onBridged?.();
    }
    return source;
  }

  private async forwardVideo(side: RunwaySide, track: RemoteTrack, sid: string): Promise<void> {
    const reader = this.reader(new VideoStream(track));
    side.avatarReaders.set(sid, reader);
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done || this.stopped) break;
        if (side !== this.active) {
          // A retired room's late frames are dropped; the next avatar's take over once they flow steadily.
          if (this.incoming?.side !== side) continue;
          const now = Date.now();
          side.warmFrames++;
          side.firstFrameAt ??= now;
          const warm = side.warmFrames >= WARM_FRAMES && now - side.firstFrameAt >= WARM_MS;
          if (!warm && !this.active.lost) continue;
          this.promote(side);
        }
        const ev = value as VideoFrameEvent;
        // The first frame sets the size; the bridge publishes its camera track now (frames meanwhile are dropped).
        this.video ??= this.publishVideo(ev.frame.width, ev.frame.height);
        const source = await this.video;
        if (!source || this.stopped) break;
        // Stamped on capture (timestamp 0 = now): the timeline stays monotonic across a switch of Runway rooms.
        source.captureFrame(ev.frame, undefined, ev.rotation);
        const now = Date.now();
        if (this.switchGapMs !== undefined) this.switchGapMs = Math.max(this.switchGapMs, now - (this.stats_.lastVideoFrameAt ?? now));
        this.stats_.videoFramesForwarded++;
        this.stats_.lastVideoFrameAt = now;
      }
    } catch (err) {
      if (!this.stopped && side === this.active)
        this.finish(new RelayError('relay_media_failed', `avatar video: ${err instanceof Error ? err.message : String(err)}`));
    } finally {
      this.release(reader);
      if (side.avatarReaders.get(sid) === reader) side.avatarReaders.delete(sid);
    }
  }

  private async publishAudio(): Promise<AudioSource | undefined> {
    const source = new AudioSource(MIX_SAMPLE_RATE, 1, 200);
    const track = LocalAudioTrack.createAudioTrack('avatar_audio', source);
    this.localTracks.push(track);
    await this.customerRoom.localParticipant!.publishTrack(track, new TrackPublishOptions({ source: TrackSource.SOURCE_MICROPHONE }));
    return this.stopped ? undefined : source;
  }

  private async forwardAudio(side: RunwaySide, track: RemoteTrack, sid: string): Promise<void> {
    const reader = this.reader(new AudioStream(track, { sampleRate: MIX_SAMPLE_RATE, numChannels: 1 }));
    side.avatarReaders.set(sid, reader);
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done || this.stopped) break;
        if (side !== this.active) continue; // the next avatar is heard once its video takes over
        this.audio ??= this.publishAudio();
        const source = await this.audio;
        if (!source || this.stopped) break;
        await source.captureFrame(value as AudioFrame);
        this.stats_.audioFramesForwarded++;
      }
    } catch {
      // stream or source closed
    } finally {
      this.release(reader);
      if (side.avatarReaders.get(sid) === reader) side.avatarReaders.delete(sid);
    }
  }

  /**
   * Renewal: relays the avatar of another Runway session (its consumed room credentials) instead of
   * the current one, without unpublishing anything in the customer's room. Joins the new room, waits
   * for its avatar's first video frame, makes it the source of the bridge's tracks, then sends END_CALL
   * into the old room and leaves it. Resolves with the longest pause between forwarded video frames
   * from the start of the switch until the old room was left.
   * On failure (timeout, the new room ends) the current source goes on, or the relay ends
   * 'runway_ended' if the current source ended meanwhile. Idempotent per target session id.
   */
  async switchSource(target: RunwayRoom, opts: { timeoutMs: number }): Promise<{ gapMs: number }> {
    if (this.stopped) throw new RelayError('relay_switch_failed', 'the relay is stopped');
    if (target.sessionId !== undefined && target.sessionId === this.active.id) return { gapMs: this.stats_.longestSwitchGapMs ?? 0 };
    let pending = this.incoming;
    if (pending && (target.sessionId === undefined || pending.side.id !== target.sessionId)) {
      throw new RelayError('relay_switch_failed', `a switch to Runway session ${pending.side.id ?? '(unnamed)'} is under way`);
    }
    if (!pending) {
      const side = new RunwaySide(target);
      this.sides.add(side);
      let resolve!: PendingSwitch['resolve'];
      let reject!: PendingSwitch['reject'];
      const promise = new Promise<Promise<void>>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      promise.catch(() => undefined);
      pending = this.incoming = { side, promise, resolve, reject };
      this.switchGapMs = 0;
      this.joinRunway(side).catch((err) =>
        reject(new RelayError('relay_switch_failed', `could not join the next Runway room: ${err instanceof Error ? err.message : String(err)}`)),
      );
    }
    const { side } = pending;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>(
      (_, rej) =>
        (timer = setTimeout(
          () => rej(new RelayError('relay_switch_failed', `no video from the next avatar within ${Math.round(opts.timeoutMs / 1000)} s`)),
          opts.timeoutMs,
        )),
    );
    try {
      // pending.promise was resolved with the old side's retirement, and a promise resolved with a promise
      // adopts it: this waits for the old side to be left too (within the same timeout).
      await Promise.race([pending.promise, timeout]);
      const gapMs = this.switchGapMs ?? 0;
      this.switchGapMs = undefined;
      this.stats_.lastSwitchGapMs = gapMs;
      this.stats_.longestSwitchGapMs = Math.max(this.stats_.longestSwitchGapMs ?? 0, gapMs);
      return { gapMs };
    } catch (err) {
      if (this.incoming === pending) {
        this.incoming = undefined;
        this.switchGapMs = undefined;
        await this.leave(side, { endCall: false }); // the workflow cancels that Runway session
        if (this.active.lost) this.finish('runway_ended'); // the old source ended while we waited for the new one
      }
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  /** The incoming room's video flows: it becomes the source; the old room is ended (END_CALL) and left. */
  private promote(side: RunwaySide): void {
    const pending = this.incoming!;
    const old = this.active;
    this.active = side;
    this.incoming = undefined;
    this.stats_.switches++;
    const retired = this.leave(old, { endCall: !old.lost });
    this.retiring.add(retired);
    void retired.finally(() => this.retiring.delete(retired));
    pending.resolve(retired);
  }

  /**
   * Leaves one Runway room: END_CALL first (so Runway completes that session), then its streams, room
   * and tracks. Once per side (a failed switch and stop() may both ask): rtc-node releases native
   * handles as it closes them, and a second release of one is the process-killing invalid-handle error.
   */
  private leave(side: RunwaySide, opts: { endCall: boolean }): Promise<void> {
    side.leaving ??= this.doLeave(side, opts);
    return side.leaving;
  }

  private async doLeave(side: RunwaySide, opts: { endCall: boolean }): Promise<void> {
    if (side.connecting) await settle(side.connecting, START_SETTLE_MS);
    // Its avatar is not relayed any more: stop decoding it and copying its frames into this process
    // now, not after END_CALL's wait (at a renewal that is CPU the new avatar's forwarding needs).
    for (const reader of side.avatarReaders.values()) await reader.cancel().catch(() => undefined);
    side.avatarReaders.clear();
    if (side.room.isConnected) {
      for (const p of side.room.remoteParticipants.values()) {
        for (const pub of p.trackPublications.values()) {
          try {
            if (pub.subscribed) pub.setSubscribed(false);
          } catch {
            // the room is going anyway
          }
        }
      }
    }
    if (opts.endCall) await this.endCall(side);
    await side.room.disconnect().catch(() => undefined);
    await Promise.allSettled(side.tracks.map((t) => t.close(true)));
    side.tracks.length = 0;
    side.mixOut = undefined;
    side.room.removeAllListeners();
    this.sides.delete(side);
  }

  /** Tells Runway's character in this room to end the call, and stays until its avatar leaves (briefly). */
  private async endCall(side: RunwaySide): Promise<void> {
    if (!side.room.isConnected) return;
    const avatar = side.avatarIdentity;
    const left = new Promise<void>((resolve) => {
      side.avatarLeft = resolve;
      if (!avatar || !side.room.remoteParticipants.has(avatar)) resolve();
    });
    const sent = await side.room.localParticipant?.publishData(END_CALL, { reliable: true, topic: RUNWAY_TOPIC }).then(
      () => true,
      () => false,
    );
    // Leaving at once can drop the message.
    if (sent) await settle(left, END_CALL_WAIT_MS);
  }

  /**
   * Leaves both rooms and releases every native resource (streams, tracks, sources). With `endCall`,
   * Runway's character is told to end the call first ({"type":"END_CALL"} in its room, reliable), so
   * Runway completes the session cleanly; without it Runway's session is left running for a retry.
   * Safe at any time, also while start() or a switch is still connecting; idempotent.
   */
  stop(opts: { endCall: boolean }): Promise<void> {
    this.stopping ??= this.doStop(opts);
    return this.stopping;
  }

  private async doStop(opts: { endCall: boolean }): Promise<void> {
    this.stopped = true;
    clearInterval(this.mixTimer);
    clearInterval(this.stallTimer);
    this.resolveEnd('runway_ended'); // no-op if it already settled
    this.incoming?.reject(new RelayError('relay_switch_failed', 'the relay stopped'));
    // A connect in flight cannot be aborted, and disconnect() before it completes is a no-op: let it
    // finish (start() returns early once stopped), then leave.
    if (this.starting) await settle(this.starting, START_SETTLE_MS);
    const active = this.active;
    const others = [...this.sides].filter((s) => s !== active);
    await Promise.allSettled([this.leave(active, { endCall: opts.endCall }), ...others.map((s) => this.leave(s, { endCall: false })), ...this.retiring]);
    for (const reader of [...this.readers]) await reader.cancel().catch(() => undefined);
    this.readers.clear();
    this.mixReaders.clear();
    await this.customerRoom.disconnect().catch(() => undefined);
    // Closing a track closes its source too.
    await Promise.allSettled(this.localTracks.map((t) => t.close(true)));
    this.localTracks.length = 0;
    this.customerRoom.removeAllListeners();
  }
}

/** Waits for a promise to settle, at most `ms`. */
async function settle(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p.catch(() => undefined), new Promise((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
}
