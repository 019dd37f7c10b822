// The prompt-prefix cache (src/policy/prefixCache.ts) on weights/tiny: the prefill with cached prefixes matches
// the whole-prompt prefill within f32 tolerance (hidden states and actions, several embodiments in one batch), a
// hit is bit-identical to a miss, rows keep their bits in any batch, the LRU bound evicts without changing a bit,
// and the cache is per device state (cleared by recover(), off with prefixCache: false).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { Gpu } from '../../src/gpu/device.js';
import { Policy, type ActRequest, type ActResult } from '../../src/policy/policy.js';
import { ObservationEncoder } from '../../src/policy/observation.js';
import { promptPrefixLength } from '../../src/policy/prefixCache.js';
import { TINY_DIR, errors } from '../../src/testing/fixtures.js';

let gpu: Gpu;
let on: Policy;
let off: Policy;
beforeAll(async () => {
  gpu = await Gpu.create();
  on = await Policy.load(TINY_DIR, { gpu });
  off = await Policy.load(TINY_DIR, { gpu, prefixCache: false });
});
afterAll(() => {
  on?.destroy();
  off?.destroy();
  gpu?.destroy();
});

const sample = (name: string) => path.join(TINY_DIR, 'samples', `${name}.png`);
const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

const ROWS: ActRequest[] = [
  { images: [sample('widowx_image_0')], instruction: 'put the red block in the blue bowl', embodiment: 'widowx', state: [0.1, -0.3, 0.6, -0.9, 0.2, 0, 0, 0.7], seed: 0, steps: 3 },
  {
    instruction: 'fold the towel', embodiment: 'aloha', steps: 2, seed: 3, state: new Array(14).fill(0.1),
    images: { cam_high: sample('aloha_cam_high'), cam_left_wrist: sample('aloha_cam_left_wrist'), cam_right_wrist: sample('aloha_cam_right_wrist') },
  },
  { instruction: 'go to the door', embodiment: 'nav', steps: 2, seed: 7 }, // text only: no prefix
  { images: [sample('widowx_image_0')], instruction: 'open the drawer', embodiment: 'widowx', state: [0, 0, 0, 0, 0, 0, 0, 0.5], seed: 9, steps: 3 },
];

describe('prompt-prefix cache', () => {
  it('prefill hidden states with cached prefixes = the whole-prompt prefill (f32 tolerance), 2 embodiments in one batch', async () => {
    const enc = on.observationEncoder as ObservationEncoder;
    const inputs = [];
    for (const r of ROWS) inputs.push((await enc.encode(r)).input);
    const lens = inputs.map(promptPrefixLength);
    expect(lens[0]).toBeGreaterThan(0);
    expect(lens[1]).toBeGreaterThan(0);
    expect(lens[1]).not.toBe(lens[0]);
    expect(lens[2]).toBe(0);
    const vlm = on.vlm;
    const layer = on.decoder.cfg.vlmLayer;
    const prefixes = inputs.map((x, r) => (lens[r] ? vlm.encodePrefix(x.ids.subarray(0, lens[r]), layer) : null));
    const whole = await vlm.prefillRows(inputs, layer);
    const cached = await vlm.prefillRows(inputs, layer, { prefixes });
    expect(Array.from(cached.segments)).toEqual(Array.from(whole.segments));
    const a = (await whole.hidden.read()) as Float32Array;
    const b = (await cached.hidden.read()) as Float32Array;
    const e = errors(b, a);
    expect(e.rel, `max |Δ| ${e.maxAbs}`).toBeLessThan(1e-4);
    // the rows differ from what a wrong state would give: the suffix from zero states is far off
    const zero = await vlm.prefillRows(inputs.map((x, r) => ({ ...x, ids: x.ids.subarray(lens[r]), mmTokenTypeIds: x.mmTokenTypeIds.subarray(lens[r]) })), layer);
    const z = (await zero.hidden.read()) as Float32Array;
    const D = on.config.text.hiddenSize;
    const suffixRows = b.subarray((whole.segments[0] + lens[0]) * D, whole.segments[1] * D);
    expect(errors(z.subarray(0, suffixRows.length), suffixRows).rel).toBeGreaterThan(1e-2);
    for (const t of [whole.hidden, cached.hidden, zero.hidden]) t.release();
    for (const p of prefixes) if (p) { p.cache.release(); p.hidden.release(); }
  });

  it('actions with the cache = without it (f32 tolerance); a hit = a miss bit for bit; rows keep their bits in any batch', async () => {
    const first: ActResult[] = [];
    const before = on.prefixCacheStats!;
    for (const r of ROWS) first.push(await on.act(r));
    const after = on.prefixCacheStats!;
    expect(after.misses + after.hits - before.misses - before.hits).toBe(3); // the text-only row has no prefix
    expect(first[0].prefixTokens).toBeGreaterThan(0);
    expect(first[2].prefixTokens).toBe(0);
    const ref = await off.actBatch(ROWS);
    ref.forEach((r, i) => {
      expect(r.prefixTokens).toBe(0);
      const e = errors(first[i].raw, r.raw);
      expect(e.rel, `row ${i}: max |Δ| ${e.maxAbs}`).toBeLessThan(1e-3);
    });
    const hits = on.prefixCacheStats!.hits;
    const batch = await on.actBatch([ROWS[3], ROWS[1], ROWS[0], ROWS[2]]);
    expect(on.prefixCacheStats!.hits - hits).toBe(3);
    [3, 1, 0, 2].forEach((i, k) => expect(bits(batch[k].raw), `row ${i} in a batch`).toEqual(bits(first[i].raw)));
  });

  it('an LRU bound of one entry evicts, and evicted prefixes come back with the same bits', async () => {
    const small = await Policy.load(TINY_DIR, { gpu, prefixCache: { maxEntries: 1 } });
    try {
      const a = await small.act(ROWS[0]); // miss
      const widowxBytes = small.prefixCacheStats!.bytes;
      expect(widowxBytes).toBeGreaterThan(0);
      const b = await small.act(ROWS[1]); // miss, evicts widowx
      // widowx misses again, aloha hits; both are held until the pass is encoded, then widowx (least recent) goes
      const a2 = await small.actBatch([ROWS[0], ROWS[1]]);
      const s = small.prefixCacheStats!;
      expect([s.misses, s.hits, s.entries, s.evictions]).toEqual([3, 1, 1, 2]);
      expect(bits(a2[0].raw)).toEqual(bits(a.raw));
      expect(bits(a2[1].raw)).toEqual(bits(b.raw));
      await small.act(ROWS[0]); // a miss that evicts aloha: the cache holds one entry's bytes again
      expect(small.prefixCacheStats!.evictions).toBe(3);
      expect(small.prefixCacheStats!.bytes).toBe(widowxBytes);
    } finally {
      small.destroy();
    }
  });

  it('is per device state: recover() starts empty; off reports null', async () => {
    expect(off.prefixCacheStats).toBeNull();
    const own = await Policy.load(TINY_DIR);
    try {
      const a = await own.act(ROWS[0]);
      expect(own.prefixCacheStats!.entries).toBe(1);
      await own.recover();
      expect(own.prefixCacheStats!.entries).toBe(0);
      const b = await own.act(ROWS[0]);
      expect(bits(b.raw)).toEqual(bits(a.raw));
    } finally {
      own.destroy();
    }
  });
});
