// The relay's mixer alone (no servers): sums with clipping, silence for a lagging source, bounded
// queues, and wall-clock pacing.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MIX_FRAME_SAMPLES, MixClock, PcmMixer } from '../src/media/mixer';

const frame = (value: number, n = MIX_FRAME_SAMPLES) => new Int16Array(n).fill(value);

describe('relay mixer', () => {
  it('mixes 10 ms frames of 48 kHz mono', () => {
    assert.equal(MIX_FRAME_SAMPLES, 480);
  });

  it('sums sources sample by sample', () => {
    const m = new PcmMixer();
    m.add('a');
    m.add('b');
    m.push('a', frame(1000));
    m.push('b', frame(2000));
    const out = m.next()!;
    assert.equal(out.length, 480);
    assert.ok(out.every((s) => s === 3000));
    assert.equal(out.byteOffset, 0, 'frames own their buffer (rtc-node ignores byteOffset)');
    assert.equal(out.buffer.byteLength, 480 * 2);
  });

  it('clips to int16 instead of wrapping', () => {
    const m = new PcmMixer();
    for (const id of ['a', 'b', 'c']) m.add(id);
    for (const id of ['a', 'b', 'c']) m.push(id, frame(20000));
    assert.ok(m.next()!.every((s) => s === 32767));
    for (const id of ['a', 'b', 'c']) m.push(id, frame(-20000));
    assert.ok(m.next()!.every((s) => s === -32768));
  });

  it('a source with nothing queued counts as silence; nothing at all gives no frame', () => {
    const m = new PcmMixer();
    m.add('a');
    m.add('b');
    m.push('a', frame(500));
    assert.ok(m.next()!.every((s) => s === 500));
    assert.equal(m.next(), undefined);
  });

  it('reassembles frames of other sizes across chunk boundaries, in order', () => {
    const m = new PcmMixer();
    m.add('a');
    const ramp = Int16Array.from({ length: 1200 }, (_, i) => i);
    m.push('a', ramp.slice(0, 300));
    m.push('a', ramp.slice(300, 1000));
    m.push('a', ramp.slice(1000));
    const got = [...m.next()!, ...m.next()!];
    assert.deepEqual(got, [...ramp.slice(0, 960)]);
    const tail = m.next()!;
    assert.deepEqual([...tail.slice(0, 240)], [...ramp.slice(960)]);
    assert.ok(
      tail.slice(240).every((s) => s === 0),
      'the rest of the last frame is silence',
    );
  });

  it('never lets a source queue more than maxQueuedMs: the oldest audio goes', () => {
    const m = new PcmMixer({ maxQueuedMs: 30 });
    m.add('a');
    for (let i = 1; i <= 10; i++) m.push('a', frame(i));
    assert.equal(m.dropped, 7 * 480);
    assert.deepEqual([m.next()![0], m.next()![0], m.next()![0], m.next()], [8, 9, 10, undefined]);
  });

  it('ignores unknown and removed sources', () => {
    const m = new PcmMixer();
    m.push('ghost', frame(1));
    m.add('a');
    m.push('a', frame(7));
    m.remove('a');
    assert.equal(m.size, 0);
    assert.equal(m.next(), undefined);
  });

  it('paces by the clock: late timers catch up, long stalls skip ahead', () => {
    const c = new MixClock(10, 10, 0);
    assert.equal(c.due(5), 0);
    assert.equal(c.due(10), 1);
    assert.equal(c.due(45), 3);
    assert.equal(c.due(45), 0);
    assert.equal(c.due(1045), 10, 'at most maxBurst frames after a stall');
    assert.equal(c.due(1055), 1);
  });
});
