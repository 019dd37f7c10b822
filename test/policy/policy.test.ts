// act() end to end on weights/tiny: parity with the reference chunk through the whole pipeline, the
// conformance properties of docs/action-decoder.md §13, determinism, steady-state allocation, and clear errors for bad requests.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { Policy, PolicyError } from '../../src/policy/policy.js';
import { Fixture, errors, TINY_DIR } from '../../src/testing/fixtures.js';

let policy: Policy;
beforeAll(async () => { policy = await Policy.load(TINY_DIR); });
afterAll(() => policy?.destroy());

const sample = (name: string) => path.join(TINY_DIR, 'samples', `${name}.png`);
const report: string[] = [];
afterAll(() => console.log(`act() vs reference chunk (max abs / rel):\n${report.join('\n')}`));

function fixtureImages(fx: Fixture) {
  return (fx.meta.images as { camera: string }[]).map((im, i) => {
    const t = fx.get(`input.image.${i}`);
    return { width: t.shape[1], height: t.shape[0], channels: t.shape[2] as 3, data: t.data as Uint8Array, camera: im.camera };
  });
}

describe('act() against the reference', () => {
  for (const name of ['case_a_tiny_widowx', 'case_c_t2a_nav', 'case_d_tiny_aloha']) {
    it(`${name}: Euler 1/4/10 and Heun 4 from the stored noise`, async () => {
      const fx = await Fixture.load(name);
      const noise = fx.f32('sample.noise');
      const state = fx.has('dit.state_raw') ? Array.from(fx.f32('dit.state_raw')) : undefined;
      const line: string[] = [];
      for (const [key, solver, steps] of [['euler_1', 'euler', 1], ['euler_4', 'euler', 4], ['euler_10', 'euler', 10], ['heun_4', 'heun', 4]] as const) {
        const r = await policy.act({
          images: fixtureImages(fx), instruction: fx.meta.prompt.instruction, embodiment: fx.meta.prompt.embodiment,
          state, noise, steps, solver,
        });
        expect(r.promptTokens).toBe(fx.i32('input.input_ids').length);
        const e = errors(r.raw, fx.f32(`sample.${key}`));
        line.push(`${key} ${e.maxAbs.toExponential(2)}/${e.rel.toExponential(2)}`);
        expect(e.rel, key).toBeLessThan(1e-3);
        if (key === 'euler_10' && fx.has('action.euler_10.unnormalized')) {
          // The fixture is sliced + unnormalised only; apply the two documented post-steps (relative channels add
          // the current state channel of the same name; grippers binarise at 0.5) to get the expected actions.
          const emb = policy.embodiment(fx.meta.prompt.embodiment);
          const want = Float32Array.from(fx.f32('action.euler_10.unnormalized'));
          const K = emb.action.names.length;
          for (let row = 0; row < emb.control.chunk; row++) for (let c = 0; c < K; c++) {
            if (emb.action.relative[c]) want[row * K + c] += state![emb.state!.names.indexOf(emb.action.names[c])];
            if (emb.action.binarizeGripper && emb.action.gripper.includes(c)) want[row * K + c] = want[row * K + c] >= 0.5 ? 1 : 0;
          }
          const u = errors(r.actions.actions, want);
          expect(u.rel, 'unnormalised actions').toBeLessThan(1e-3);
        }
      }
      report.push(`${name}: ${line.join(', ')}`);
    });
  }
});

describe('act() properties', () => {
  const base = { instruction: 'put the red block in the blue bowl', embodiment: 'widowx', images: [sample('widowx_image_0')], state: [0.1, -0.3, 0.6, -0.9, 0.2, 0, 0, 0.7], steps: 4 };

  it('padded channels and rows are exactly zero for any seed; same seed → same chunk, new seed → new chunk', async () => {
    const [hMax, kMax] = [policy.config.actionExpert!.hMax, policy.config.actionExpert!.kMax];
    const emb = policy.embodiment('widowx');
    const runs = [];
    for (const seed of [0, 1, 0, 12345]) {
      const r = await policy.act({ ...base, seed });
      for (let row = 0; row < hMax; row++) for (let c = 0; c < kMax; c++) {
        if (row >= emb.control.chunk || c >= emb.action.names.length) expect(r.raw[row * kMax + c] === 0).toBe(true);
      }
      runs.push(r.raw);
    }
    expect(Array.from(runs[2])).toEqual(Array.from(runs[0]));
    expect(errors(runs[1], runs[0]).maxAbs).toBeGreaterThan(1e-3);
    expect(errors(runs[3], runs[0]).maxAbs).toBeGreaterThan(1e-3);
  });

  it('text-only (T2A) calls and every embodiment produce finite actions with the right layout', async () => {
    const t2a = await policy.act({ instruction: 'go to the door', embodiment: 'nav', steps: 3 });
    expect(t2a.actions.waypoints).toHaveLength(policy.embodiment('nav').control.chunk);
    for (const v of t2a.raw) expect(Number.isFinite(v)).toBe(true);
    const aloha = await policy.act({
      instruction: 'fold the towel', embodiment: 'aloha', steps: 2,
      images: { cam_high: sample('aloha_cam_high'), cam_left_wrist: sample('aloha_cam_left_wrist'), cam_right_wrist: sample('aloha_cam_right_wrist') },
      state: new Array(14).fill(0.1),
    });
    expect(aloha.actions.names).toHaveLength(14);
    expect(aloha.actions.actions).toHaveLength(16 * 14);
    expect(aloha.timings.stepMs).toHaveLength(2);
  });

  it('returns the whole trajectory on request and evaluation counts per solver', async () => {
    const r = await policy.act({ ...base, solver: 'rk4', steps: 3, returnTrajectory: true });
    expect(r.trajectory).toHaveLength(3);
    expect(errors(r.trajectory![2], r.raw).maxAbs).toBe(0);
    expect(r.evaluations).toBe(12);
  });

  it('steady state allocates no new GPU buffers', async () => {
    // Warm-up sees every prompt length of the loop once: a new length may need a pool size class not seen yet
    // (256-byte classes below 64 KiB: the prompt suffix after the cached embodiment prefix is that small on tiny).
    const instructions = [0, 1, 2, 3, 4].map((k) => `task number ${k}`);
    for (let k = 0; k < 3; k++) await policy.act({ ...base, seed: k });
    for (const instruction of instructions) await policy.act({ ...base, seed: 50, instruction });
    const created = policy.gpu.buffers.stats.created;
    const staging = policy.gpu.stream.stats.stagingCreated;
    for (let k = 0; k < 5; k++) await policy.act({ ...base, seed: 100 + k, instruction: instructions[(k + 2) % 5] });
    expect(policy.gpu.buffers.stats.created).toBe(created);
    expect(policy.gpu.stream.stats.stagingCreated).toBe(staging);
  });

  it('bad requests get an error naming the field and leave the policy usable', async () => {
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ embodiment: 'spaceship' }, /unknown embodiment "spaceship".*aloha/],
      [{ steps: 0 }, /steps/],
      [{ steps: 2.5 }, /steps/],
      [{ solver: 'adams' }, /solver/],
      [{ state: [NaN, 0, 0, 0, 0, 0, 0, 0] }, /state/],
      [{ state: [1, 2] }, /state/],
      [{ images: [{ width: 4, height: 4, channels: 3, data: new Uint8Array(5) }] }, /images\[0\]/],
      [{ images: [{ width: 0, height: 4, channels: 3, data: new Uint8Array(0) }] }, /images\[0\]/],
      [{ images: { wrist: sample('widowx_image_0') } }, /unknown camera "wrist"/],
      [{ instruction: 'word '.repeat(5000) }, /context budget/],
      [{ seed: -1 }, /seed/],
      [{ noise: new Float32Array(3) }, /noise/],
    ];
    for (const [patch, re] of bad) {
      await expect(policy.act({ ...base, ...patch } as never), JSON.stringify(Object.keys(patch))).rejects.toThrow(re);
    }
    await expect(policy.act({ ...base, steps: -1 })).rejects.toBeInstanceOf(PolicyError);
    const ok = await policy.act(base);
    expect(ok.actions.rows).toBe(4);
  });
});
