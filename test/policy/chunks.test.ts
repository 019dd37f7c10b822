import { describe, expect, it } from 'vitest';
import { ActionQueue, TemporalEnsembler } from '../../src/policy/chunks.js';

describe('ActionQueue', () => {
  it('hands out one action per tick, asks for a refill at the threshold, skips elapsed actions', () => {
    const q = new ActionQueue(2, 1);
    expect(q.needsRefill).toBe(true);
    q.push(Float32Array.from([0, 0, 1, 1, 2, 2, 3, 3]), 4);
    expect(Array.from(q.next()!.values)).toEqual([0, 0]);
    expect(q.needsRefill).toBe(false);
    q.next();
    q.next();
    expect(q.remaining).toBe(1);
    expect(q.needsRefill).toBe(true);
    q.push(Float32Array.from([10, 10, 11, 11, 12, 12]), 3, 2); // arrived 2 ticks late
    expect(Array.from(q.next()!.values)).toEqual([12, 12]);
    expect(q.next()).toBeNull();
    expect(() => q.push(new Float32Array(5), 3)).toThrow(/expected 3×2/);
  });
});

describe('TemporalEnsembler', () => {
  it('averages overlapping predictions for the same tick with exponential weights', () => {
    const e = new TemporalEnsembler(1, { mode: 'exponential', m: Math.log(2) });
    e.push(Float32Array.from([0, 10, 20]), 3);
    expect(e.next()!.values[0]).toBeCloseTo(0);
    e.push(Float32Array.from([40, 50]), 2); // predicts tick 1 = 40, tick 2 = 50
    // tick 1: old 10 (w=1), new 40 (w=1/2) → (10 + 20)/1.5 = 20
    expect(e.next()!.values[0]).toBeCloseTo(20);
    // tick 2: old 20 (w=1), new 50 (w=1/2) → 30
    expect(e.next()!.values[0]).toBeCloseTo(30);
    expect(e.next()).toBeNull();
  });

  it('adaptive weights favour predictions similar to the newest', () => {
    const e = new TemporalEnsembler(2, { mode: 'adaptive', alpha: 5 });
    e.push(Float32Array.from([1, 0, 1, 0]), 2);
    e.next();
    e.push(Float32Array.from([0, 1]), 1);
    const a = e.next()!.values; // old [1,0] (cos 0 → w=1), new [0,1] (cos 1 → w=e^5)
    expect(a[1]).toBeGreaterThan(0.99);
  });
});
