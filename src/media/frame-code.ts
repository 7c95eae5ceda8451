// A frame counter drawn into a video frame's luma plane as a grid of 32 black/white cells (24-bit
// counter + 8-bit checksum), big enough to survive VP8 compression and scaling. Tests and benchmarks
// decode it on the receiving side to prove frames flow, in order, end to end.

import { VideoBufferType, type VideoFrame } from '@livekit/rtc-node';

export interface I420Like {
  data: Uint8Array;
  width: number;
  height: number;
}

const COLS = 8;
const ROWS = 4;
const BLACK = 16;
const WHITE = 235;

function checksum(n: number): number {
  return ((n & 0xff) ^ ((n >> 8) & 0xff) ^ ((n >> 16) & 0xff) ^ 0xa5) & 0xff;
}

function bits(n: number): number[] {
  const v = ((n & 0xffffff) << 8) | checksum(n & 0xffffff);
  return Array.from({ length: 32 }, (_, i) => (v >>> (31 - i)) & 1);
}

/** Draws `n` (mod 2^24) into the frame's Y plane; U and V are left as they are. */
export function encodeCounter(frame: I420Like, n: number): void {
  const { data, width, height } = frame;
  const b = bits(n);
  const cw = Math.floor(width / COLS);
  const ch = Math.floor(height / ROWS);
  for (let r = 0; r < ROWS; r++) {
    for (let c = 0; c < COLS; c++) {
      const v = b[r * COLS + c] ? WHITE : BLACK;
      for (let y = r * ch; y < (r + 1) * ch; y++) data.fill(v, y * width + c * cw, y * width + (c + 1) * cw);
    }
  }
}

/** Reads the counter back, or undefined when the checksum does not match (a torn or unrelated frame). */
export function decodeCounter(frame: I420Like): number | undefined {
  const { data, width, height } = frame;
  const cw = Math.floor(width / COLS);
  const ch = Math.floor(height / ROWS);
  if (cw < 2 || ch < 2 || data.length < width * height) return undefined;
  let v = 0;
  for (let r = 0; r < ROWS; r++) {
    for (let c = 0; c < COLS; c++) {
      // Average a patch in the middle half of the cell.
      let sum = 0;
      let count = 0;
      for (let y = r * ch + Math.floor(ch / 4); y < r * ch + Math.ceil((3 * ch) / 4); y++) {
        for (let x = c * cw + Math.floor(cw / 4); x < c * cw + Math.ceil((3 * cw) / 4); x++) {
          sum += data[y * width + x]!;
          count++;
        }
      }
      v = (v << 1) | (sum / count > 125 ? 1 : 0);
    }
  }
  v >>>= 0;
  const n = v >>> 8;
  return (v & 0xff) === checksum(n) ? n : undefined;
}

/** A fresh I420 frame (buffer owned from offset 0) with a mid-grey picture carrying `n`. */
export function makeI420Frame(width: number, height: number, n: number): Uint8Array {
  const data = new Uint8Array(width * height + 2 * Math.ceil(width / 2) * Math.ceil(height / 2));
  data.fill(128);
  encodeCounter({ data, width, height }, n);
  return data;
}

// The speaking marker: while the avatar plays audio it received (LiveKit's avatar protocol), the
// bottom quarter of the picture turns red. Only the chroma planes change, so the counter (luma) still
// decodes; a receiver reads the mark back from the V plane (or a screenshot's red minus green).
const MARK_U = 90;
const MARK_V = 240;

function chromaBand(width: number, height: number): { cw: number; ch: number; y0: number; u: number; v: number } {
  const cw = Math.ceil(width / 2);
  const ch = Math.ceil(height / 2);
  return { cw, ch, y0: Math.floor((ch * 3) / 4), u: width * height, v: width * height + cw * ch };
}

/** Paints the speaking marker into an I420 frame (the bottom quarter turns red). */
export function markSpeaking(frame: I420Like): void {
  const { cw, ch, y0, u, v } = chromaBand(frame.width, frame.height);
  frame.data.fill(MARK_U, u + y0 * cw, u + ch * cw);
  frame.data.fill(MARK_V, v + y0 * cw, v + ch * cw);
}

/** Whether an I420 frame carries the speaking marker (mean V of the bottom quarter well above neutral). */
export function isSpeakingMarked(frame: I420Like): boolean {
  const { cw, ch, y0, v } = chromaBand(frame.width, frame.height);
  if (frame.data.length < v + ch * cw || y0 >= ch) return false;
  let sum = 0;
  for (let i = v + y0 * cw; i < v + ch * cw; i++) sum += frame.data[i]!;
  return sum / ((ch - y0) * cw) > 190;
}

/** The counter carried by a received rtc-node frame (converted to I420 when it arrives in another format). */
export function counterOfFrame(frame: VideoFrame): number | undefined {
  const f = frame.type === VideoBufferType.I420 ? frame : frame.convert(VideoBufferType.I420);
  return decodeCounter({ width: f.width, height: f.height, data: f.data });
}

/** Whether a received rtc-node frame carries the speaking marker. */
export function speakingOfFrame(frame: VideoFrame): boolean {
  const f = frame.type === VideoBufferType.I420 ? frame : frame.convert(VideoBufferType.I420);
  return isSpeakingMarked({ width: f.width, height: f.height, data: f.data });
}
