// NaN guard: a checkpoint with a NaN planted in one action-decoder weight makes act() throw the NaN-guard
// PolicyError (the count comes from the on-GPU check read back with the chunk) instead of returning garbage;
// the policy stays consistent (no leaked GPU tensors, the same error again). Statistics that overflow float32
// in unnormalisation are caught by the same guard on the CPU side (embodiments.json rejects statistics beyond
// float32 range at load, but in-range ones can still overflow, e.g. mean = FLT_MAX).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Policy, PolicyError, type ActRequest } from '../../src/policy/policy.js';
import path from 'node:path';
import { copyTiny, editJson, rewriteWeights, rmTmp } from './helpers.js';

let dir: string;
let policy: Policy;
const WEIGHT = 'action_expert.action_decoder.fc2.weight'; // [16, 128] BF16: output channel 0 ← NaN

beforeAll(async () => {
  dir = await copyTiny('qvla-nan-');
  await rewriteWeights(dir, (ts) =>
    ts.map((t) => {
      if (t.name !== WEIGHT) return t;
      expect(t.dtype).toBe('BF16');
      const d = new Uint16Array(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength).slice().buffer);
      d[5] = 0x7fc0; // a quiet NaN in row 0 (action channel 0)
      return { ...t, data: d };
    }),
  );
  policy = await Policy.load(dir);
});
afterAll(async () => {
  policy?.destroy();
  await rmTmp(dir);
});

describe('NaN guard', () => {
  const req: ActRequest = { instruction: 'go to the door', embodiment: 'nav', seed: 3 };

  for (const [steps, solver] of [[1, 'euler'], [4, 'heun']] as const) {
    it(`a NaN decoder weight → act() throws the NaN-guard error (${solver} ${steps} step(s)), repeatably, leaking nothing`, async () => {
      await policy.act({ ...req, steps, solver }).catch(() => undefined); // first call: per-embodiment masks etc. are cached
      const live = policy.gpu.buffers.stats.live;
      for (let k = 0; k < 2; k++) {
        const e = await policy.act({ ...req, steps, solver }).then(() => null, (x: unknown) => x);
        expect(e).toBeInstanceOf(PolicyError);
        const m = (e as Error).message;
        expect(m).toMatch(/the action decoder produced (\d+) non-finite values? \(NaN\/Inf\) in the 16×16 chunk, first at chunk\[\d+\]\[\d+\] \(NaN guard\)/);
        const n = Number(/produced (\d+)/.exec(m)![1]);
        expect(n).toBeGreaterThan(0);
        expect(n).toBeLessThanOrEqual(256);
        expect(policy.gpu.buffers.stats.live, 'GPU tensors leaked by the failed call').toBe(live);
      }
      expect(policy.stats.nanGuardTrips).toBeGreaterThan(0);
    });
  }

  it('one step of Euler: channel 0 is NaN in all 16 rows (also the masked ones: NaN·0 = NaN) → exactly 16', async () => {
    const e = await policy.act({ ...req, steps: 1 }).then(() => null, (x: unknown) => x);
    expect((e as Error).message).toMatch(/produced 16 non-finite values .*first at chunk\[0\]\[0\]/);
  });
});

describe('NaN guard after unnormalisation', () => {
  it('statistics at the edge of float32 range (accepted: each one is a float32) that overflow in unnormalisation → PolicyError naming the embodiment, not ±Inf actions', async () => {
    const d = await copyTiny('qvla-nan-stats-');
    try {
      await editJson(path.join(d, 'embodiments.json'), (e) => {
        // mean_std with x = y·std + mean: mean at FLT_MAX, so any decoder output y > ~1e-7 overflows float32
        e.embodiments.widowx.normalization = {
          method: 'mean_std',
          action: { mean: [3.4028234663852886e38, 0, 0, 0, 0, 0, 0], std: [1e38, 1, 1, 1, 1, 1, 1] },
          state: { mean: new Array(8).fill(0), std: new Array(8).fill(1) },
        };
      });
      const p = await Policy.load(d);
      try {
        const e = await p.act({ instruction: 'pick up the cup', embodiment: 'widowx', state: new Array(8).fill(0), steps: 1 }).then(() => null, (x: unknown) => x);
        expect(e).toBeInstanceOf(PolicyError);
        expect((e as Error).message).toMatch(/unnormalised action x of row \d+ is (-)?Infinity \(NaN guard\).*embodiment widowx/);
        // other embodiments of the same policy are unaffected
        const ok = await p.act({ instruction: 'go to the door', embodiment: 'nav', steps: 1 });
        for (const v of ok.actions.actions) expect(Number.isFinite(v)).toBe(true);
      } finally {
        p.destroy();
      }
    } finally {
      await rmTmp(d);
    }
  });
});
