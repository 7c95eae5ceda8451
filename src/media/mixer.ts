// The relay's audio mixer: what Runway's character hears is ONE track, the sum of the chosen customer
// microphones. 48 kHz mono int16 in, fixed 10 ms frames out, samples summed in 32 bits and clipped to
// int16. Pull-based: the relay asks for a frame every 10 ms of wall clock (see MixClock), a source
// that has nothing yet counts as silence for that frame, and a source that runs ahead is trimmed so it
// never adds more than `maxQueuedMs` of delay. No rtc-node here: it is plain PCM, unit-tested alone.

export const MIX_SAMPLE_RATE = 48_000;
export const MIX_FRAME_MS = 10;
export const MIX_FRAME_SAMPLES = (MIX_SAMPLE_RATE * MIX_FRAME_MS) / 1000;

export interface PcmMixerOptions {
  frameSamples?: number;
  /** A source queued beyond this drops its oldest audio (bounded latency, not a growing backlog). */
  maxQueuedMs?: number;
  sampleRate?: number;
}

interface SourceQueue {
  chunks: Int16Array[];
  /** Read position in chunks[0]. */
  offset: number;
  queued: number;
}

export class PcmMixer {
  readonly frameSamples: number;
  private readonly maxQueued: number;
  private readonly sources = new Map<string, SourceQueue>();
  private readonly acc: Int32Array;
  /** Samples dropped because a source ran ahead (diagnostics). */
  dropped = 0;

  constructor(opts: PcmMixerOptions = {}) {
    this.frameSamples = opts.frameSamples ?? MIX_FRAME_SAMPLES;
    this.maxQueued = Math.max(this.frameSamples, Math.round(((opts.sampleRate ?? MIX_SAMPLE_RATE) * (opts.maxQueuedMs ?? 100)) / 1000));
    this.acc = new Int32Array(this.frameSamples);
  }

  get size(): number {
    return this.sources.size;
  }

  has(id: string): boolean {
    return this.sources.has(id);
  }

  add(id: string): void {
    if (!this.sources.has(id)) this.sources.set(id, { chunks: [], offset: 0, queued: 0 });
  }

  remove(id: string): void {
    this.sources.delete(id);
  }

  /** Queues a source's samples (mono, the mixer's rate). The array is kept, not copied: do not reuse it. */
  push(id: string, samples: Int16Array): void {
    const q = this.sources.get(id);
    if (!q || samples.length === 0) return;
    q.chunks.push(samples);
    q.queued += samples.length;
    // Trim from the front, whole chunks first, so the source never lags by more than maxQueued.
    while (q.queued > this.maxQueued) {
      const head = q.chunks[0]!;
      const left = head.length - q.offset;
      const excess = q.queued - this.maxQueued;
      if (excess >= left) {
        q.chunks.shift();
        q.offset = 0;
        q.queued -= left;
        this.dropped += left;
      } else {
        q.offset += excess;
        q.queued -= excess;
        this.dropped += excess;
      }
    }
  }

  /**
   * The next mixed frame (a fresh Int16Array that owns its buffer, as rtc-node's AudioFrame needs),
   * or undefined when no source had any audio for it.
   */
  next(): Int16Array | undefined {
    const n = this.frameSamples;
    const acc = this.acc;
    acc.fill(0);
    let any = false;
    for (const q of this.sources.values()) {
      let filled = 0;
      while (filled < n && q.chunks.length) {
        const head = q.chunks[0]!;
        const take = Math.min(head.length - q.offset, n - filled);
        for (let i = 0; i < take; i++) acc[filled + i]! += head[q.offset + i]!;
        filled += take;
        q.offset += take;
        q.queued -= take;
        any = true;
        if (q.offset >= head.length) {
          q.chunks.shift();
          q.offset = 0;
        }
      }
    }
    if (!any) return undefined;
    const out = new Int16Array(n);
    for (let i = 0; i < n; i++) {
      const v = acc[i]!;
      out[i] = v > 32767 ? 32767 : v < -32768 ? -32768 : v;
    }
    return out;
  }
}

/**
 * Wall-clock pacing for the mixer: how many frames are due since the last call. Timers in Node fire
 * late under load; counting frames against the clock keeps the output at real time (and after a
 * long stall it skips ahead instead of bursting more than `maxBurst` frames).
 */
export class MixClock {
  private readonly t0: number;
  private produced = 0;
  constructor(
    private readonly frameMs = MIX_FRAME_MS,
    private readonly maxBurst = 10,
    now = performance.now(),
  ) {
    this.t0 = now;
  }
  due(now = performance.now()): number {
    const total = Math.floor((now - this.t0) / this.frameMs);
    let n = total - this.produced;
    if (n > this.maxBurst) {
      this.produced = total - this.maxBurst;
      n = this.maxBurst;
    }
    this.produced += Math.max(0, n);
    return Math.max(0, n);
  }
}
