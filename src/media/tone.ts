// A sine tone in 10 ms frames: what the simulated avatar, test participants and benchmarks say, so
// a receiver can tell sound from silence.
import { AudioFrame } from '@livekit/rtc-node';

export const TONE_SAMPLE_RATE = 48_000;
export const TONE_FRAME_SAMPLES = 480;

/** The 10 ms frame of a `hz` tone that starts at sample `start` (mono, 48 kHz, int16). */
export function toneFrame(start: number, hz: number, amplitude: number): AudioFrame {
  const samples = new Int16Array(TONE_FRAME_SAMPLES);
  for (let i = 0; i < samples.length; i++) samples[i] = Math.round(amplitude * Math.sin(((start + i) * 2 * Math.PI * hz) / TONE_SAMPLE_RATE));
  return new AudioFrame(samples, TONE_SAMPLE_RATE, 1, samples.length);
}
