// The media relay (relay mode): one process-local object per live session that sits in two LiveKit
// rooms at once. From Runway's room it takes the avatar's camera and microphone and republishes them
// in the customer's room as the bridge participant (same track sources, so front ends and agents see
// the agent's avatar); from the customer's room it mixes the chosen participants' microphones into
// one track that Runway's character hears (src/media/mixer.ts). Runway's data messages (client
// events, transcripts) are re-sent in the customer's room on RUNWAY_EVENTS_TOPIC; data sent in the
// customer's room on RUNWAY_CONTROL_TOPIC goes to Runway's room. rtc-node decodes and re-encodes video.
//
// Resources: every stream is read through an explicit reader so stop() can cancel it (cancel() on a
// stream that a `for await` holds is rejected and never reaches the native side); every local track
// is closed with its source. rtc-node's process-wide dispose() is the process's business, not ours.
import {
  AudioFrame, AudioSource, AudioStream, DisconnectReason, LocalAudioTrack, LocalVideoTrack, ParticipantKind, Room, RoomEvent,
  TrackKind, TrackPublishOptions, TrackSource, VideoSource, VideoStream,
  type RemoteParticipant, type RemoteTrack, type RemoteTrackPublication, type VideoFrameEvent,
} from '@livekit/rtc-node';
import { MIX_FRAME_MS, MIX_SAMPLE_RATE, MixClock, PcmMixer } from './mixer';

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

export interface RelayStats {
  videoFramesForwarded: number;
  audioFramesForwarded: number;
  mixedFramesSent: number;
  dataMessagesForwarded: number;
  controlMessagesForwarded: number;
  /** Epoch ms of the last avatar video frame forwarded. */
  lastVideoFrameAt?: number;
  mixedSources: number;
}

export type RelayEnd = 'runway_ended' | 'room_closed' | 'stalled';

/** The relay lost a room for a reason a retry may fix (kind is the Temporal failure type the activity uses). */
export class RelayError extends Error {
  constructor(readonly kind: 'relay_replaced' | 'relay_disconnected' | 'relay_media_failed', message: string) {
    super(message);
    this.name = 'RelayError';
  }
}

export interface MediaRelayOptions {
  /** Runway's room: the consumed credentials. */
  runway: { url: string; token: string };
  /** The customer's room: a token for the bridge participant. */
  customer: { url: string; token: string };
  /** Whose microphones Runway hears; default: every standard (non-agent) participant. */
  listenTo?: string[];
  /** Identities never mixed (the customer's agent). */
  exclude?: string[];
  /** Only these identities may send on RUNWAY_CONTROL_TOPIC; default: anyone in the customer's room. */
  controlFrom?: string[];
  /** No avatar video for this long ends the relay as 'stalled' (counted from when both rooms are joined). */
  stallSeconds: number;
  /** Called once, when the avatar's video is first published in the customer's room. */
  onBridged?: () => void;
}

type Reader = ReadableStreamDefaultReader<unknown>;

export class MediaRelay {
  private readonly runwayRoom = new Room();
  private readonly customerRoom = new Room();
  private readonly stats_: RelayStats = {
    videoFramesForwarded: 0, audioFramesForwarded: 0, mixedFramesSent: 0, dataMessagesForwarded: 0, controlMessagesForwarded: 0, mixedSources: 0,
  };
  private readonly readers = new Set<Reader>();
  /** Customer audio readers by mixer id (participant/track sid), to cancel on unsubscribe. */
  private readonly mixReaders = new Map<string, Reader>();
  /**
   * The avatar's readers by track sid. rtc-node does not end a VideoStream when its track is
   * unsubscribed, and the SFU may reuse the receiver for a republished track, so an old stream
   * would go on delivering the new track's frames next to the new stream: cancel it on unsubscribe.
   */
  private readonly avatarReaders = new Map<string, Reader>();
  private readonly mixer = new PcmMixer();
  private readonly localTracks: (LocalAudioTrack | LocalVideoTrack)[] = [];
  private video?: Promise<VideoSource | undefined>;
  private audio?: Promise<AudioSource | undefined>;
  private mixOut?: AudioSource;
  private mixTimer?: NodeJS.Timeout;
  private stallTimer?: NodeJS.Timeout;
  private avatarIdentity?: string;
  private avatarLeft?: () => void;
  private bridged = false;
  private stopped = false;
  private starting?: Promise<void>;
  private stopping?: Promise<void>;
  private joinedAt = Date.now();
  private resolveEnd!: (r: RelayEnd) => void;
  private rejectEnd!: (e: Error) => void;
  /** Settles when the relay ends by itself: Runway's side ended, the customer's room closed, a stall, or a lost room. */
  readonly ended: Promise<RelayEnd>;

  constructor(private readonly opts: MediaRelayOptions) {
    this.ended = new Promise<RelayEnd>((res, rej) => {
      this.resolveEnd = res;
      this.rejectEnd = rej;
    });
    this.ended.catch(() => undefined);
  }

  stats(): RelayStats {
    return { ...this.stats_, mixedSources: this.mixer.size };
  }

  /** The avatar's identity in Runway's room, once its first track arrived. */
  get avatar(): string | undefined {
    return this.avatarIdentity;
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
    const { customerRoom, runwayRoom } = this;
    // The customer's room first: the bridge must be able to publish the moment the avatar's tracks arrive.
    customerRoom.on(RoomEvent.TrackSubscribed, (track, pub, p) => this.onCustomerTrack(track, pub, p));
    customerRoom.on(RoomEvent.TrackUnsubscribed, (_t, pub, p) => this.dropMixSource(`${p.identity}/${pub.sid}`));
    customerRoom.on(RoomEvent.ParticipantDisconnected, (p) => {
      for (const pub of p.trackPublications.values()) this.dropMixSource(`${p.identity}/${pub.sid}`);
    });
    customerRoom.on(RoomEvent.DataReceived, (payload, p, _kind, topic) => {
      if (topic !== RUNWAY_CONTROL_TOPIC || this.stopped || !runwayRoom.isConnected) return;
      if (this.opts.controlFrom?.length && !(p && this.opts.controlFrom.includes(p.identity))) return;
      this.stats_.controlMessagesForwarded++;
      void runwayRoom.localParticipant?.publishData(payload, { reliable: true, topic: RUNWAY_TOPIC }).catch(() => undefined);
    });
    customerRoom.on(RoomEvent.Disconnected, (reason) => {
      if (this.stopped) return;
      if (reason === DisconnectReason.ROOM_DELETED || reason === DisconnectReason.ROOM_CLOSED) this.finish('room_closed');
      else if (reason === DisconnectReason.DUPLICATE_IDENTITY) this.finish(new RelayError('relay_replaced', "another bridge joined the customer's room with this bridge's identity"));
      else this.finish(new RelayError('relay_disconnected', `left the customer's room unexpectedly (${DisconnectReason[reason] ?? reason})`));
    });
    await customerRoom.connect(this.opts.customer.url, this.opts.customer.token, { autoSubscribe: true, dynacast: false });
    if (this.stopped) return;

    runwayRoom.on(RoomEvent.TrackSubscribed, (track, pub, p) => this.onAvatarTrack(track, pub, p));
    runwayRoom.on(RoomEvent.TrackUnsubscribed, (_t, pub) => this.dropAvatarTrack(pub.sid));
    runwayRoom.on(RoomEvent.ParticipantDisconnected, (p) => {
      if (p.identity !== this.avatarIdentity) return;
      this.avatarLeft?.();
      this.finish('runway_ended');
    });
    runwayRoom.on(RoomEvent.DataReceived, (payload, p) => {
      if (!p || this.stopped || !customerRoom.isConnected) return;
      this.stats_.dataMessagesForwarded++;
      void customerRoom.localParticipant?.publishData(payload, { reliable: true, topic: RUNWAY_EVENTS_TOPIC }).catch(() => undefined);
    });
    runwayRoom.on(RoomEvent.Disconnected, (reason) => {
      if (this.stopped) return;
      // Our consumed credentials used by another process (a retry of this relay that connected later).
      if (reason === DisconnectReason.DUPLICATE_IDENTITY) this.finish(new RelayError('relay_replaced', "another bridge joined Runway's room with these credentials"));
      else this.finish('runway_ended');
    });
    await runwayRoom.connect(this.opts.runway.url, this.opts.runway.token, { autoSubscribe: true, dynacast: false });
    if (this.stopped) return;

    // What Runway's character hears: one mixed microphone track, paced by the wall clock.
    const mixOut = (this.mixOut = new AudioSource(MIX_SAMPLE_RATE, 1, 200));
    const mixTrack = LocalAudioTrack.createAudioTrack('customer_mix', mixOut);
    this.localTracks.push(mixTrack);
    await runwayRoom.localParticipant!.publishTrack(mixTrack, new TrackPublishOptions({ source: TrackSource.SOURCE_MICROPHONE }));
    if (this.stopped) return;
    const clock = new MixClock();
    this.mixTimer = setInterval(() => this.mixTick(clock), MIX_FRAME_MS);
    // Tracks published before we joined arrive as subscriptions too (autoSubscribe).
    this.joinedAt = Date.now();
    this.stallTimer = setInterval(() => this.checkStall(), 500);
  }

  private checkStall(): void {
    const last = this.stats_.lastVideoFrameAt ?? this.joinedAt;
    if (Date.now() - last > this.opts.stallSeconds * 1000) this.finish('stalled');
  }

  private mixTick(clock: MixClock): void {
    const mixOut = this.mixOut;
    if (!mixOut || this.stopped) return;
    for (let n = clock.due(); n > 0; n--) {
      const samples = this.mixer.next();
      if (!samples) continue; // nobody spoke in this frame: send nothing (the receiver plays silence)
      mixOut.captureFrame(new AudioFrame(samples, MIX_SAMPLE_RATE, 1, samples.length)).then(
        () => void this.stats_.mixedFramesSent++,
        () => undefined, // the source closed while stopping
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

  private onAvatarTrack(track: RemoteTrack, pub: RemoteTrackPublication, p: RemoteParticipant): void {
    if (this.stopped) return;
    // Only the avatar's camera and microphone (a screen share would fight the camera for one track).
    const camera = track.kind === TrackKind.KIND_VIDEO && (pub.source === TrackSource.SOURCE_CAMERA || pub.source === TrackSource.SOURCE_UNKNOWN);
    const mic = track.kind === TrackKind.KIND_AUDIO && (pub.source === TrackSource.SOURCE_MICROPHONE || pub.source === TrackSource.SOURCE_UNKNOWN);
    if (!camera && !mic) return;
    this.avatarIdentity ??= p.identity;
    if (p.identity !== this.avatarIdentity || !pub.sid || this.avatarReaders.has(pub.sid)) return;
    if (camera) void this.forwardVideo(track, pub.sid);
    else void this.forwardAudio(track, pub.sid);
  }

  private dropAvatarTrack(sid: string | undefined): void {
    const reader = sid ? this.avatarReaders.get(sid) : undefined;
    if (!reader) return;
    this.avatarReaders.delete(sid!);
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

  private async forwardVideo(track: RemoteTrack, sid: string): Promise<void> {
    const reader = this.reader(new VideoStream(track));
    this.avatarReaders.set(sid, reader);
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done || this.stopped) break;
        const ev = value as VideoFrameEvent;
        // The first frame sets the size; the bridge publishes its camera track now (frames meanwhile are dropped).
        this.video ??= this.publishVideo(ev.frame.width, ev.frame.height);
        const source = await this.video;
        if (!source || this.stopped) break;
        source.captureFrame(ev.frame, ev.timestampUs, ev.rotation);
        this.stats_.videoFramesForwarded++;
        this.stats_.lastVideoFrameAt = Date.now();
      }
    } catch (err) {
      if (!this.stopped) this.finish(new RelayError('relay_media_failed', `avatar video: ${err instanceof Error ? err.message : String(err)}`));
    } finally {
      this.release(reader);
      if (this.avatarReaders.get(sid) === reader) this.avatarReaders.delete(sid);
    }
  }

  private async publishAudio(): Promise<AudioSource | undefined> {
    const source = new AudioSource(MIX_SAMPLE_RATE, 1, 200);
    const track = LocalAudioTrack.createAudioTrack('avatar_audio', source);
    this.localTracks.push(track);
    await this.customerRoom.localParticipant!.publishTrack(track, new TrackPublishOptions({ source: TrackSource.SOURCE_MICROPHONE }));
    return this.stopped ? undefined : source;
  }

  private async forwardAudio(track: RemoteTrack, sid: string): Promise<void> {
    const reader = this.reader(new AudioStream(track, { sampleRate: MIX_SAMPLE_RATE, numChannels: 1 }));
    this.avatarReaders.set(sid, reader);
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done || this.stopped) break;
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
      if (this.avatarReaders.get(sid) === reader) this.avatarReaders.delete(sid);
    }
  }

  /**
   * Leaves both rooms and releases every native resource (streams, tracks, sources). With `endCall`,
   * Runway's character is told to end the call first ({"type":"END_CALL"} in its room, reliable), so
   * Runway completes the session cleanly; without it Runway's session is left running for a retry.
   * Safe at any time, also while start() is still connecting; idempotent.
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
    // A connect in flight cannot be aborted, and disconnect() before it completes is a no-op: let it
    // finish (start() returns early once stopped), then leave.
    if (this.starting) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.starting.catch(() => undefined), new Promise((r) => (timer = setTimeout(r, START_SETTLE_MS)))]);
      clearTimeout(timer);
    }
    if (opts.endCall && this.runwayRoom.isConnected) {
      const avatar = this.avatarIdentity;
      const left = new Promise<void>((resolve) => {
        this.avatarLeft = resolve;
        if (!avatar || !this.runwayRoom.remoteParticipants.has(avatar)) resolve();
      });
      const sent = await this.runwayRoom.localParticipant?.publishData(END_CALL, { reliable: true, topic: RUNWAY_TOPIC }).then(() => true, () => false);
      // Stay until Runway's avatar acts on it (it leaves), briefly: leaving at once can drop the message.
      let timer: NodeJS.Timeout | undefined;
      if (sent) await Promise.race([left, new Promise((r) => (timer = setTimeout(r, END_CALL_WAIT_MS)))]);
      clearTimeout(timer);
    }
    for (const reader of [...this.readers]) await reader.cancel().catch(() => undefined);
    this.readers.clear();
    this.mixReaders.clear();
    this.avatarReaders.clear();
    await Promise.allSettled([this.runwayRoom.disconnect(), this.customerRoom.disconnect()]);
    // Closing a track closes its source too; a source whose track was never created is closed alone.
    await Promise.allSettled(this.localTracks.map((t) => t.close(true)));
    this.localTracks.length = 0;
    this.runwayRoom.removeAllListeners();
    this.customerRoom.removeAllListeners();
  }
}
