// Policy.encode / Policy.sample (the overlap API for controllers): sample(encode(r), r) is bit-identical to act(r);
// one encoding serves several samples (seeds, solvers); a released or stale handle is refused with a clear error;
// a steady act() loop issues few submits and at most the readback's CPU wait (stageTimings off), and so does a call
// whose prompt shapes are new (segment tables uploaded without a submit).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { Policy, PolicyError, type ActRequest } from '../../src/policy/policy.js';
import { TINY_DIR } from '../../src/testing/fixtures.js';

let policy: Policy;
beforeAll(async () => { policy = await Policy.load(TINY_DIR, { stageTimings: false }); });
afterAll(() => policy?.destroy());

const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));
const req: ActRequest = {
  images: [path.join(TINY_DIR, 'samples', 'widowx_image_0.png')], instruction: 'put the spoon in the bowl', embodiment: 'widowx',
  state: [0.1, -0.3, 0.6, -0.9, 0.2, 0, 0, 0.7], seed: 3, steps: 4,
};

describe('encode / sample', () => {
  it('sample(encode(r), r) equals act(r) bit for bit; one encoding serves several samples', async () => {
    const want = await policy.act(req);
    const wantHeun = await policy.act({ ...req, solver: 'heun', seed: 9 });
    const obs = await policy.encode(req);
    try {
      expect(obs.embodiment).toBe('widowx');
      expect(obs.promptTokens).toBe(want.promptTokens);
      const got = await policy.sample(obs, req);
      expect(bits(got.raw)).toEqual(bits(want.raw));
      expect(bits(got.actions.actions)).toEqual(bits(want.actions.actions));
      expect(got.timings.stepMs).toHaveLength(4);
      expect(got.work.vision.dispatches).toBeGreaterThan(0);
      expect(got.work.denoise.dispatches).toBeGreaterThan(0);
      const again = await policy.sample(obs, { ...req, solver: 'heun', seed: 9 });
      expect(bits(again.raw)).toEqual(bits(wantHeun.raw));
    } finally {
      obs.release();
    }
    await expect(policy.sample(obs, req)).rejects.toThrow(/released; encode it again/);
    await expect(policy.sample({} as never, req)).rejects.toThrow(PolicyError);
    await expect(policy.encode({ ...req, instruction: 3 } as never)).rejects.toThrow(/^instruction: /);
    const obs2 = await policy.encode(req);
    await expect(policy.sample(obs2, { steps: 0 })).rejects.toThrow(/^steps: /);
    obs2.release();
  });

  it('a steady act() loop: one denoising loop per submit, one readback, no buffers created', async () => {
    await policy.act(req);
    const created = policy.gpu.buffers.stats.created;
    const r = await policy.act(req);
    // encoding ends in one submit; the loop, the readback copy and its count in one more (plus the read itself)
    expect(r.work.vision.submits + r.work.prefill.submits + r.work.context.submits).toBe(1);
    expect(r.work.denoise.submits).toBe(0);
    expect(r.work.readback.submits).toBe(1);
    expect(policy.gpu.buffers.stats.created).toBe(created);
  });

  it('a call with new prompt shapes (its segment tables uploaded) submits its encoding once, like a repeated call', async () => {
    // If uploading a table submitted mid-stage, a call's temporaries would be recycled at points that depend on
    // whether the previous call had equal shapes, and the pool's peak on the order of requests (the soak's guard).
    const a = await policy.act(req);
    const b = await policy.act({ ...req, instruction: 'put the spoon in the bowl, then wait for the next command' });
    expect(b.promptTokens).not.toBe(a.promptTokens);
    expect(b.work.vision.submits + b.work.prefill.submits + b.work.context.submits).toBe(1);
    expect(b.work.denoise.submits).toBe(0);
  });
});
