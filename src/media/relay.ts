// The media relay (relay mode): one process-local object per live session that sits in two LiveKit
// rooms at once. From Runway's room it takes the avatar's camera and microphone and republishes them
// in the customer's room as the bridge participant (same track sources, so front ends and agents see
// the agent's avatar); from the customer's room it mixes the chosen participants' microphones into
// one track that Runway's character hears. Runway's data messages (client events, transcripts) are
// re-sent in the customer's room on RUNWAY_EVENTS_TOPIC. rtc-node decodes and re-encodes video.
import {
  AudioFrame, AudioSource, AudioStream, DisconnectReason, LocalAudioTrack, LocalVideoTrack, ParticipantKind, Room, RoomEvent,
  TrackKind, TrackPublishOptions, TrackSource, VideoSource, VideoStream,
  type RemoteParticipant, type RemoteTrack, type RemoteTrackPublication,
} from '@livekit/rtc-node';

/** Runway's data messages (client events, transcript segments) arrive in the customer's room on this topic. */
export const RUNWAY_EVENTS_TOPIC = 'runway.events';
/** Data the customer's side sends on this topic is passed to Runway's room as is. */
export const RUNWAY_CONTROL_TOPIC = 'runway.control';

const SAMPLE_RATE = 48_000;
const MIX_FRAME_MS = 20;
const MIX_SAMPLES = (SAMPLE_RATE * MIX_FRAME_MS) / 1000;

export interface RelayStats {
  videoFramesForwarded: number;
  audioFramesForwarded: number;
  mixedFramesSent: number;
  dataMessagesForwarded: number;
  lastVideoFrameAt?: number;
  mixedSources: number;
}

export type RelayEnd = 'runway_ended' | 'room_closed' | 'stalled';

export interface MediaRelayOptions {
  /** Runway's room: the consumed credentials. */
  runway: { url: string; token: string };
  /** The customer's room: a token for the bridge participant. */
  customer: { url: string; token: string };
  /** Whose microphones Runway hears; default: every standard (non-agent) participant. */
  listenTo?: string[];
  /** Identities never mixed (the customer's agent). */
  exclude?: string[];
  /** No avatar video for this long ends the relay as 'stalled'. */
  stallSeconds: number;
  /** Called once, when the avatar's video is first published in the customer's room. */
  onBridged?: () => void;
}

/** Mixes 48 kHz mono int16 sources into fixed frames: sum with clipping, silence where a source lags. */
class Mixer {
  private readonly queues = new Map<string, Int16Array[]>();
  add(id: string): void {
    if (!this.queues.has(id)) this.queues.set(id, []);
  }
  remove(id: string): void {
    this.queues.delete(id);
  }
  get size(): number {
    return this.queues.size;
  }
  push(id: string, samples: Int16Array): void {
    const q = this.queues.get(id);
    if (!q) return;
    q.push(samples);
    // Never let a source run ahead by more than ~200 ms: drop its oldest audio instead of adding delay.
    let queued = q.reduce((n, s) => n + s.length, 0);
    while (queued > SAMPLE_RATE / 5 && q.length > 1) queued -= q.shift()!.length;
  }
  /** The next mixed frame, or undefined when no source has anything. */
  next(): Int16Array | undefined {
    const acc = new Int32Array(MIX_SAMPLES);
    let any = false;
    for (const q of this.queues.values()) {
      let filled = 0;
      while (filled < MIX_SAMPLES && q.length) {
        const head = q[0]!;
        const take = Math.min(head.length, MIX_SAMPLES - filled);
        for (let i = 0; i < take; i++) acc[filled + i]! += head[i]!;
        filled += take;
        any = true;
        if (take === head.length) q.shift();
        else q[0] = head.subarray(take);
      }
    }
    if (!any) return undefined;
    const out = new Int16Array(MIX_SAMPLES);
    for (let i = 0; i < MIX_SAMPLES; i++) out[i] = Math.max(-32768, Math.min(32767, acc[i]!));
    return out;
  }
}

export class MediaRelay {
  private readonly runwayRoom = new Room();
  private readonly customerRoom = new Room();
  private readonly stats_: RelayStats = { videoFramesForwarded: 0, audioFramesForwarded: 0, mixedFramesSent: 0, dataMessagesForwarded: 0, mixedSources: 0 };
  private readonly streams: (VideoStream | AudioStream)[] = [];
  private readonly mixer = new Mixer();
  private video?: VideoSource;
  private audio?: AudioSource;
  private mixOut?: AudioSource;
  private mixTimer?: NodeJS.Timeout;
  private stallTimer?: NodeJS.Timeout;
  private avatarIdentity?: string;
  private bridged = false;
  private stopped = false;
  private startedAt = Date.now();
  private resolveEnd!: (r: RelayEnd) => void;
  private rejectEnd!: (e: Error) => void;
  /** Settles when the relay ends by itself: Runway's side ended, the customer's room closed, or a stall. */
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

  private finish(r: RelayEnd | Error): void {
    if (this.stopped) return;
    if (r instanceof Error) this.rejectEnd(r);
    else this.resolveEnd(r);
  }

  async start(): Promise<void> {
    const { customerRoom, runwayRoom } = this;
    // The customer's room first: the bridge must be able to publish the moment the avatar's tracks arrive.
    customerRoom.on(RoomEvent.TrackSubscribed, (track, pub, p) => this.onCustomerTrack(track, pub, p));
    customerRoom.on(RoomEvent.TrackUnsubscribed, (_t, pub, p) => this.mixer.remove(`${p.identity}/${pub.sid}`));
    customerRoom.on(RoomEvent.ParticipantDisconnected, (p) => {
      for (const pub of p.trackPublications.values()) this.mixer.remove(`${p.identity}/${pub.sid}`);
    });
    customerRoom.on(RoomEvent.DataReceived, (payload, _p, _kind, topic) => {
      if (topic !== RUNWAY_CONTROL_TOPIC || !runwayRoom.isConnected) return;
      void runwayRoom.localParticipant?.publishData(payload, { reliable: true, topic: 'runway' }).catch(() => undefined);
    });
    customerRoom.on(RoomEvent.Disconnected, (reason) => {
      if (this.stopped) return;
      if (reason === DisconnectReason.ROOM_DELETED || reason === DisconnectReason.ROOM_CLOSED) this.finish('room_closed');
      else this.finish(new Error(`left the customer's room unexpectedly (${DisconnectReason[reason] ?? reason})`));
    });
    await customerRoom.connect(this.opts.customer.url, this.opts.customer.token, { autoSubscribe: true, dynacast: false });

    runwayRoom.on(RoomEvent.TrackSubscribed, (track, _pub, p) => this.onAvatarTrack(track, p));
    runwayRoom.on(RoomEvent.ParticipantDisconnected, (p) => {
      if (p.identity === this.avatarIdentity) this.finish('runway_ended');
    });
    runwayRoom.on(RoomEvent.DataReceived, (payload, p) => {
      if (!p || p.identity === runwayRoom.localParticipant?.identity || !customerRoom.isConnected) return;
      this.stats_.dataMessagesForwarded++;
      void customerRoom.localParticipant?.publishData(payload, { reliable: true, topic: RUNWAY_EVENTS_TOPIC }).catch(() => undefined);
    });
    runwayRoom.on(RoomEvent.Disconnected, () => {
      if (!this.stopped) this.finish('runway_ended');
    });
    await runwayRoom.connect(this.opts.runway.url, this.opts.runway.token, { autoSubscribe: true, dynacast: false });

    // What Runway's character hears: one mixed microphone track.
    this.mixOut = new AudioSource(SAMPLE_RATE, 1, 200);
    await runwayRoom.localParticipant!.publishTrack(LocalAudioTrack.createAudioTrack('customer_mix', this.mixOut), new TrackPublishOptions({ source: TrackSource.SOURCE_MICROPHONE }));
    this.mixTimer = setInterval(() => void this.mixTick(), MIX_FRAME_MS);
    // Tracks published before we joined arrive as subscriptions too; participants already present are mixed as they subscribe.
    this.startedAt = Date.now();
    this.stallTimer = setInterval(() => this.checkStall(), 500);
  }

  private checkStall(): void {
    const last = this.stats_.lastVideoFrameAt ?? this.startedAt;
    if (Date.now() - last > this.opts.stallSeconds * 1000) this.finish('stalled');
  }

  private async mixTick(): Promise<void> {
    const frame = this.mixer.next();
    if (!frame || !this.mixOut || this.stopped) return;
    try {
      await this.mixOut.captureFrame(new AudioFrame(frame, SAMPLE_RATE, 1, frame.length));
      this.stats_.mixedFramesSent++;
    } catch {
      // the source closed while stopping
    }
  }

  private shouldMix(p: RemoteParticipant): boolean {
    if (p.identity === this.customerRoom.localParticipant?.identity) return false;
    if (this.opts.exclude?.includes(p.identity)) return false;
    if (this.opts.listenTo?.length) return this.opts.listenTo.includes(p.identity);
    return p.kind === ParticipantKind.STANDARD;
  }

  private onCustomerTrack(track: RemoteTrack, pub: RemoteTrackPublication, p: RemoteParticipant): void {
    if (track.kind !== TrackKind.KIND_AUDIO || !this.shouldMix(p)) return;
    const id = `${p.identity}/${pub.sid}`;
    this.mixer.add(id);
    const stream = new AudioStream(track, { sampleRate: SAMPLE_RATE, numChannels: 1 });
    this.streams.push(stream);
    void (async () => {
      try {
        for await (const frame of stream) {
          if (this.stopped) break;
          this.mixer.push(id, frame.data);
        }
      } catch {
        // stream closed
      }
      this.mixer.remove(id);
    })();
  }

  private onAvatarTrack(track: RemoteTrack, p: RemoteParticipant): void {
    this.avatarIdentity ??= p.identity;
    if (p.identity !== this.avatarIdentity) return;
    if (track.kind === TrackKind.KIND_VIDEO) void this.forwardVideo(track);
    else if (track.kind === TrackKind.KIND_AUDIO) void this.forwardAudio(track);
  }

  private async forwardVideo(track: RemoteTrack): Promise<void> {
    const stream = new VideoStream(track);
    this.streams.push(stream);
    try {
      for await (const ev of stream) {
        if (this.stopped) break;
        if (!this.video) {
          // The first frame sets the size; the bridge publishes its camera track now.
          this.video = new VideoSource(ev.frame.width, ev.frame.height);
          await this.customerRoom.localParticipant!.publishTrack(
            LocalVideoTrack.createVideoTrack('avatar_video', this.video),
            new TrackPublishOptions({ source: TrackSource.SOURCE_CAMERA, simulcast: false }),
          );
          if (!this.bridged) {
            this.bridged = true;
            this.opts.onBridged?.();
          }
        }
        this.video.captureFrame(ev.frame, ev.timestampUs, ev.rotation);
        this.stats_.videoFramesForwarded++;
        this.stats_.lastVideoFrameAt = Date.now();
      }
    } catch (err) {
      if (!this.stopped) this.finish(err instanceof Error ? err : new Error(String(err)));
    }
  }

  private async forwardAudio(track: RemoteTrack): Promise<void> {
    const stream = new AudioStream(track, { sampleRate: SAMPLE_RATE, numChannels: 1 });
    this.streams.push(stream);
    try {
      for await (const frame of stream) {
        if (this.stopped) break;
        if (!this.audio) {
          this.audio = new AudioSource(SAMPLE_RATE, 1, 200);
          await this.customerRoom.localParticipant!.publishTrack(LocalAudioTrack.createAudioTrack('avatar_audio', this.audio), new TrackPublishOptions({ source: TrackSource.SOURCE_MICROPHONE }));
        }
        await this.audio.captureFrame(frame);
        this.stats_.audioFramesForwarded++;
      }
    } catch {
      // stream or source closed
    }
  }

  /**
   * Leaves both rooms and releases every native resource. With `endCall`, Runway's character is told
   * to end the call first (END_CALL in its room), so Runway completes the session cleanly.
   */
  async stop(opts: { endCall: boolean }): Promise<void> {
    if (this.stopped) return;
    if (opts.endCall && this.runwayRoom.isConnected) {
      await this.runwayRoom.localParticipant?.publishData(new TextEncoder().encode(JSON.stringify({ type: 'END_CALL' })), { reliable: true, topic: 'runway' }).catch(() => undefined);
    }
    this.stopped = true;
    clearInterval(this.mixTimer);
    clearInterval(this.stallTimer);
    this.resolveEnd('runway_ended');
    for (const s of this.streams) await s.cancel().catch(() => undefined);
    // A moment for END_CALL to leave before the room goes.
    if (opts.endCall) await new Promise((r) => setTimeout(r, 200));
    await Promise.allSettled([this.runwayRoom.disconnect(), this.customerRoom.disconnect()]);
    await Promise.allSettled([this.video?.close(), this.audio?.close(), this.mixOut?.close()]);
  }
}
