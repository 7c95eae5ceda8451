// The avatar side of LiveKit's data-stream avatar protocol, as LiveKit avatar workers speak it
// (livekit-agents' DataStreamAudioReceiver + AvatarRunner): the customer's agent sends each spoken
// segment as one byte stream on topic `lk.audio_stream` (attributes `sample_rate`, `num_channels`;
// int16 little-endian PCM; the stream's end ends the segment). The avatar plays segments in order at
// real time, calls the sender's `lk.playback_started` RPC when a segment starts playing (agents that
// wait for it register the method; for others the call fails and is ignored) and `lk.playback_finished`
// with `{"playback_position": seconds, "interrupted": bool}` when it ends. The agent's
// `lk.clear_buffer` RPC stops playback at once: every unfinished segment of that sender is dropped and
// reported interrupted. The simulated avatar (avatar.ts) pulls 10 ms frames from here for its track.
import { AudioFrame, AudioResampler, RpcError, type ByteStreamReader, type Room, type RpcInvocationData } from '@livekit/rtc-node';

export const AUDIO_STREAM_TOPIC = 'lk.audio_stream';
export const RPC_CLEAR_BUFFER = 'lk.clear_buffer';
export const RPC_PLAYBACK_STARTED = 'lk.playback_started';
export const RPC_PLAYBACK_FINISHED = 'lk.playback_finished';

export const SPEECH_SAMPLE_RATE = 48_000;
export const SPEECH_FRAME_SAMPLES = 480; // 10 ms
const MAX_SEGMENT_SECONDS = 600; // a sender that streams more than this per segment is cut off (memory bound)

interface Segment {
  id: string;
  sender: string;
  /** 48 kHz mono PCM not yet played, in arrival order. */
  chunks: Int16Array[];
  /** Samples of chunks[0] already played. */
  offset: number;
  buffered: number;
  received: number;
  played: number;
  /** The sender closed the stream: nothing more will come. */
  ended: boolean;
  started: boolean;
  /** Dropped by clear_buffer (or close): whatever still arrives is discarded. */
  dropped: boolean;
}

export interface SpeechStats {
  segmentsReceived: number;
  segmentsFinished: number;
  segmentsInterrupted: number;
  /** 10 ms frames of received speech played (48 kHz). */
  speechFramesPlayed: number;
  /** Streams refused: wrong sender or missing/invalid attributes. */
  streamsRefused: number;
}

export interface SpeechLog {
  warn(msg: string): void;
}

export class AvatarSpeech {
  private readonly queue: Segment[] = [];
  private readonly notifications = new Map<string, Promise<void>>();
  private closed = false;
  private seq = 0;
  readonly stats: SpeechStats = { segmentsReceived: 0, segmentsFinished: 0, segmentsInterrupted: 0, speechFramesPlayed: 0, streamsRefused: 0 };
  /** Called after clear_buffer emptied the queue, e.g. to drop audio already handed to the track. */
  onCleared?: () => void;

  /**
   * @param trustedSender the agent whose audio the avatar plays (direct mode: `lk.publish_on_behalf`);
   *   undefined: any participant.
   */
  constructor(
    private readonly room: Room,
    private readonly trustedSender: string | undefined,
    private readonly log: SpeechLog = { warn: () => undefined },
  ) {}

  /** Registers the byte stream handler and the clear_buffer RPC; call after the room is connected. */
  start(): void {
    this.room.registerByteStreamHandler(AUDIO_STREAM_TOPIC, (reader, { identity }) => void this.receive(reader, identity));
    this.room.localParticipant!.registerRpcMethod(RPC_CLEAR_BUFFER, async (data) => this.clearBuffer(data));
  }

  /** True while a segment is playing (the video shows it). */
  get speaking(): boolean {
    const s = this.queue[0];
    return !!s && s.started;
  }

  /**
   * The next 10 ms of what the avatar says (48 kHz mono), or undefined for silence. Called at real
   * time by the track's pump: each call plays 10 ms of the current segment.
   */
  nextFrame(): Int16Array | undefined {
    for (;;) {
      const s = this.queue[0];
      if (!s) return undefined;
      if (s.buffered === 0) {
        if (!s.ended) return undefined; // the sender is slower than real time: a gap, not the end
        this.queue.shift();
        this.finish(s, false);
        continue;
      }
      if (!s.started) {
        s.started = true;
        this.notify(s.sender, RPC_PLAYBACK_STARTED, '');
      }
      const out = new Int16Array(SPEECH_FRAME_SAMPLES);
      let filled = 0;
      while (filled < out.length && s.chunks.length) {
        const c = s.chunks[0]!;
        const n = Math.min(out.length - filled, c.length - s.offset);
        out.set(c.subarray(s.offset, s.offset + n), filled);
        filled += n;
        s.offset += n;
        if (s.offset === c.length) {
          s.chunks.shift();
          s.offset = 0;
        }
      }
      s.buffered -= filled;
      s.played += filled;
      this.stats.speechFramesPlayed++;
      return out;
    }
  }

  /** Drops everything (the avatar leaves); nothing more is played or reported. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.queue.splice(0)) s.dropped = true;
    try {
      this.room.unregisterByteStreamHandler(AUDIO_STREAM_TOPIC);
    } catch {
      // never registered
    }
  }

  private async receive(reader: ByteStreamReader, sender: string): Promise<void> {
    const attrs = reader.info.attributes ?? {};
    const rate = Number(attrs.sample_rate);
    const channels = Number(attrs.num_channels);
    if (this.closed || (this.trustedSender !== undefined && sender !== this.trustedSender)) {
      this.stats.streamsRefused++;
      if (!this.closed) this.log.warn(`lk.audio_stream from ${sender} ignored: the avatar plays ${this.trustedSender}'s audio only`);
      return void (await reader.close().catch(() => undefined));
    }
    if (!Number.isInteger(rate) || rate < 8000 || rate > 192_000 || !Number.isInteger(channels) || channels < 1 || channels > 8) {
      this.stats.streamsRefused++;
      this.log.warn(`lk.audio_stream from ${sender} ignored: attributes sample_rate and num_channels are required (got ${JSON.stringify(attrs)})`);
      return void (await reader.close().catch(() => undefined));
    }
    const s: Segment = {
      id: `${++this.seq}`,
      sender,
      chunks: [],
      offset: 0,
      buffered: 0,
      received: 0,
      played: 0,
      ended: false,
      started: false,
      dropped: false,
    };
    this.queue.push(s);
    this.stats.segmentsReceived++;
    const resampler = rate === SPEECH_SAMPLE_RATE ? undefined : new AudioResampler(rate, SPEECH_SAMPLE_RATE, 1);
    const frameBytes = 2 * channels;
    let carry = new Uint8Array(0);
    const add = (pcm: Int16Array) => {
      if (s.dropped || !pcm.length) return;
      s.chunks.push(pcm);
      s.buffered += pcm.length;
      s.received += pcm.length;
    };
    try {
      for await (const chunk of reader) {
        if (s.dropped) continue; // drain what is left of a cleared stream
        // Chunks may split a sample: keep the remainder for the next one.
        const bytes = new Uint8Array(carry.length + chunk.length);
        bytes.set(carry);
        bytes.set(chunk, carry.length);
        const whole = bytes.length - (bytes.length % frameBytes);
        carry = bytes.slice(whole);
        const frames = whole / frameBytes;
        if (!frames) continue;
        const view = new DataView(bytes.buffer, bytes.byteOffset, whole);
        const mono = new Int16Array(frames);
        for (let i = 0; i < frames; i++) {
          let sum = 0;
          for (let c = 0; c < channels; c++) sum += view.getInt16((i * channels + c) * 2, true);
          mono[i] = Math.round(sum / channels);
        }
        if (resampler) for (const f of resampler.push(new AudioFrame(mono, rate, 1, frames))) add(f.data);
        else add(mono);
        if (s.received > MAX_SEGMENT_SECONDS * SPEECH_SAMPLE_RATE && !s.dropped) {
          this.log.warn(`lk.audio_stream from ${sender}: a segment over ${MAX_SEGMENT_SECONDS} s, the rest is dropped`);
          break;
        }
      }
      if (resampler && !s.dropped) for (const f of resampler.flush()) add(f.data);
    } catch (err) {
      this.log.warn(`lk.audio_stream from ${sender} failed: ${(err as Error).message}`);
    } finally {
      resampler?.close();
      s.ended = true;
    }
  }

  private async clearBuffer(data: RpcInvocationData): Promise<string> {
    if (this.trustedSender !== undefined && data.callerIdentity !== this.trustedSender) {
      throw new RpcError(RpcError.ErrorCode.APPLICATION_ERROR, `the avatar takes clear_buffer from ${this.trustedSender} only`);
    }
    const dropped = this.queue.filter((s) => s.sender === data.callerIdentity);
    for (const s of dropped) {
      this.queue.splice(this.queue.indexOf(s), 1);
      s.dropped = true;
      s.chunks = [];
      s.buffered = 0;
      this.finish(s, true);
    }
    if (dropped.length) this.onCleared?.();
    return 'ok';
  }

  private finish(s: Segment, interrupted: boolean): void {
    if (interrupted) this.stats.segmentsInterrupted++;
    else this.stats.segmentsFinished++;
    // Wire format: livekit-agents' PlaybackFinishedEvent (snake_case keys; agents-js parses the same).
    this.notify(s.sender, RPC_PLAYBACK_FINISHED, JSON.stringify({ playback_position: s.played / SPEECH_SAMPLE_RATE, interrupted }));
  }

  /** RPCs to one sender go out one after another, so playback_started always precedes its playback_finished. */
  private notify(to: string, method: string, payload: string): void {
    const prev = this.notifications.get(to) ?? Promise.resolve();
    const next = prev.then(async () => {
      for (let attempt = 1; ; attempt++) {
        if (!this.room.isConnected) return;
        try {
          await this.room.localParticipant!.performRpc({ destinationIdentity: to, method, payload });
          return;
        } catch (err) {
          const code = (err as RpcError).code;
          // Not registered (an agent that does not wait for playback_started), or the sender is gone.
          if (
            code === RpcError.ErrorCode.UNSUPPORTED_METHOD ||
            code === RpcError.ErrorCode.RECIPIENT_NOT_FOUND ||
            code === RpcError.ErrorCode.RECIPIENT_DISCONNECTED
          )
            return;
          if (attempt >= 3) return void this.log.warn(`${method} to ${to} failed: ${(err as Error).message}`);
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    });
    this.notifications.set(to, next);
  }
}
