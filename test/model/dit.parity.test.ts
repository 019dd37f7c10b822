// The QVLA-DiT decoder on the GPU against the PyTorch reference, from the stored (F32-rounded) VLM hidden states:
// vl_norm + cached cross K/V, the state token, the velocity at fixed (noise, τ), and sampled chunks for every
// solver from the stored noise. Also the conformance checks (docs/action-decoder.md §13) that need the decoder alone.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Gpu } from '../../src/gpu/device.js';
import { openCheckpoint } from '../../src/io/checkpoint.js';
import { loadWeights } from '../../src/model/load.js';
import { ActionDecoder } from '../../src/model/actionDecoder.js';
import type { WeightStore } from '../../src/model/weights.js';
import type { ActionExpertConfig } from '../../src/model/config.js';
import { integrate, type SolverName, type GridName } from '../../src/policy/samplers.js';
import { Fixture, errors } from '../../src/testing/fixtures.js';
import { Tensor } from '../../src/tensor.js';

let gpu: Gpu;
beforeAll(async () => { gpu = await Gpu.create(); });
afterAll(() => gpu?.destroy());
const report: string[] = [];
afterAll(() => console.log(`DiT parity (max abs / rel to max|ref|):\n${report.join('\n')}`));

interface Loaded { weights: WeightStore; dec: ActionDecoder; ae: ActionExpertConfig; close(): Promise<void> }
async function load(fx: Fixture, weightDtype: 'f32' | 'f16' = 'f32'): Promise<Loaded> {
  const ckpt = await openCheckpoint(fx.checkpointDir);
  const weights = await loadWeights(gpu, ckpt, { weightDtype, vision: false });
  const ae = ckpt.config.actionExpert!;
  const dec = new ActionDecoder(gpu, ae, weights);
  return { weights, dec, ae, close: async () => { dec.destroy(); weights.destroy(); await ckpt.close(); } };
}

function inputs(fx: Fixture, L: Loaded) {
  const { ae } = L;
  const vlm = fx.get('dit.vlm_hidden');
  const C = Tensor.from(gpu, vlm.data as Float32Array, vlm.shape);
  const ctx = L.dec.prepareContext(C);
  C.release();
  const state = fx.has('dit.state') ? Tensor.from(gpu, fx.f32('dit.state'), [ae.sMax]) : null;
  const stateTok = L.dec.stateToken(state);
  const he = fx.i32('dit.h_e')[0];
  const rows = new Float32Array(1 + ae.hMax);
  rows.fill(1, 0, 1 + he);
  const rowMask = Tensor.from(gpu, rows, [1 + ae.hMax]);
  const mask = Tensor.from(gpu, fx.f32('dit.action_mask'), [ae.hMax, ae.kMax]);
  return { ctx, state, stateTok, rowMask, mask, dispose() { ctx.release(); state?.release(); if (state) stateTok.release(); rowMask.release(); mask.release(); } };
}

const SAMPLES: [string, SolverName, number, GridName][] = [
  ['euler_1', 'euler', 1, 'uniform'], ['euler_4', 'euler', 4, 'uniform'], ['euler_10', 'euler', 10, 'uniform'],
  ['heun_4', 'heun', 4, 'uniform'], ['midpoint_4', 'midpoint', 4, 'uniform'], ['rk4_4', 'rk4', 4, 'uniform'],
  ['euler_4_cosine', 'euler', 4, 'cosine'], ['euler_4_shift', 'euler', 4, 'shift'],
];

for (const name of ['case_a_tiny_widowx', 'case_b_two_images', 'case_c_t2a_nav', 'case_d_tiny_aloha']) {
  describe(name, () => {
    it('cross K/V, state token, velocity and sampled chunks match the reference (f32 weights)', async () => {
      const fx = await Fixture.load(name);
      const L = await load(fx);
      const io = inputs(fx, L);
      const line: string[] = [];
      try {
        for (const [i, kv] of io.ctx.kv) {
          if (!fx.has(`dit.cross_k.${i}`)) continue;
          const ek = errors(await kv.k.readF32(), fx.f32(`dit.cross_k.${i}`));
          const ev = errors(await kv.v.readF32(), fx.f32(`dit.cross_v.${i}`));
          expect(ek.rel, `cross_k.${i}`).toBeLessThan(1e-5);
          expect(ev.rel, `cross_v.${i}`).toBeLessThan(1e-5);
        }
        const et = errors(await io.stateTok.readF32(), fx.f32('dit.state_token'));
        expect(et.rel, 'state token').toBeLessThan(1e-5);
        const taus = fx.f32('dit.vel.tau');
        const y = Tensor.from(gpu, fx.f32('dit.vel.y'), [L.ae.hMax, L.ae.kMax]);
        const out = Tensor.empty(gpu, [L.ae.hMax, L.ae.kMax]);
        for (let t = 0; t < taus.length; t++) {
          L.dec.velocity(y, taus[t], io.ctx, io.stateTok, io.rowMask, out);
          const e = errors(await out.readF32(), fx.f32(`dit.vel.out.${t}`));
          line.push(`v(τ=${taus[t]}) ${e.maxAbs.toExponential(2)}/${e.rel.toExponential(2)}`);
          expect(e.rel, `velocity at τ=${taus[t]}`).toBeLessThan(1e-4);
        }
        y.release();
        out.release();
        const noise = fx.f32('sample.noise');
        for (const [key, solver, steps, grid] of SAMPLES) {
          const Y = Tensor.from(gpu, noise, [L.ae.hMax, L.ae.kMax]);
          await integrate((yy, tau, o) => L.dec.velocity(yy, tau, io.ctx, io.stateTok, io.rowMask, o), Y, io.mask, { steps, solver, grid, shift: L.ae.timeShift });
          const got = await Y.readF32();
          const e = errors(got, fx.f32(`sample.${key}`));
          line.push(`${key} ${e.maxAbs.toExponential(2)}/${e.rel.toExponential(2)}`);
          expect(e.rel, `sample ${key}`).toBeLessThan(1e-4);
          const m = fx.f32('dit.action_mask');
          for (let k = 0; k < m.length; k++) if (m[k] === 0) expect(got[k] === 0, `padded entry ${k} of ${key}`).toBe(true);
          Y.release();
        }
        report.push(`${name} f32: ${line.join(', ')}`);
      } finally {
        io.dispose();
        await L.close();
      }
    });
  });
}

describe('decoder conformance (docs/action-decoder.md §13)', () => {
  it('f16 weights stay close to the reference chunk (F32 checkpoint, so f16 storage is lossy)', async () => {
    const fx = await Fixture.load('case_b_two_images');
    const L = await load(fx, 'f16');
    const io = inputs(fx, L);
    try {
      const Y = Tensor.from(gpu, fx.f32('sample.noise'), [L.ae.hMax, L.ae.kMax]);
      await integrate((yy, tau, o) => L.dec.velocity(yy, tau, io.ctx, io.stateTok, io.rowMask, o), Y, io.mask, { steps: 10, solver: 'euler' });
      const e = errors(await Y.readF32(), fx.f32('sample.euler_10'));
      report.push(`case_b f16 euler_10: ${e.maxAbs.toExponential(2)}/${e.rel.toExponential(2)}`);
      expect(e.rel).toBeLessThan(2e-2);
      Y.release();
    } finally {
      io.dispose();
      await L.close();
    }
  });

  it('masked-out VLM tokens do not change the output; uncached K/V equal cached', async () => {
    const fx = await Fixture.load('case_a_tiny_widowx');
    const L = await load(fx);
    const io = inputs(fx, L);
    try {
      const vlm = fx.get('dit.vlm_hidden');
      const [S, dv] = vlm.shape;
      // Append 7 garbage tokens and mask them out.
      const extra = new Float32Array((S + 7) * dv);
      extra.set(vlm.data as Float32Array);
      for (let k = S * dv; k < extra.length; k++) extra[k] = Math.sin(k) * 50;
      const C2 = Tensor.from(gpu, extra, [S + 7, dv]);
      const km = new Float32Array(S + 7);
      km.fill(1, 0, S);
      const ctx2 = L.dec.prepareContext(C2, Tensor.from(gpu, km, [S + 7]));
      C2.release();
      const y = Tensor.from(gpu, fx.f32('dit.vel.y'), [L.ae.hMax, L.ae.kMax]);
      const a = Tensor.empty(gpu, [L.ae.hMax, L.ae.kMax]);
      const b = Tensor.empty(gpu, [L.ae.hMax, L.ae.kMax]);
      L.dec.velocity(y, 0.5, io.ctx, io.stateTok, io.rowMask, a);
      L.dec.velocity(y, 0.5, ctx2, io.stateTok, io.rowMask, b);
      const ea = await a.readF32();
      const eb = await b.readF32();
      expect(errors(eb, ea).maxAbs).toBeLessThan(1e-6);
      // "uncached": recompute the context for every evaluation; must equal the cached run bit for bit.
      const c = Tensor.empty(gpu, [L.ae.hMax, L.ae.kMax]);
      const Cagain = Tensor.from(gpu, vlm.data as Float32Array, vlm.shape);
      const fresh = L.dec.prepareContext(Cagain);
      L.dec.velocity(y, 0.5, fresh, io.stateTok, io.rowMask, c);
      expect(Array.from(await c.readF32())).toEqual(Array.from(ea));
      fresh.release();
      Cagain.release();
      ctx2.release();
      for (const t of [y, a, b, c]) t.release();
    } finally {
      io.dispose();
      await L.close();
    }
  });

  it('Euler with N=1 on a known linear field gives the closed form; padded channels stay exactly zero', async () => {
    // v(Y, τ) = A·Y + c elementwise (a linear field); one Euler step from τ=1 to 0: Y1 = Y0 − (A·Y0 + c)·mask.
    const n = 6 * 5;
    const y0 = Float32Array.from({ length: n }, (_, k) => Math.cos(k));
    const m = Float32Array.from({ length: n }, (_, k) => (k % 5 < 3 ? 1 : 0));
    for (let k = 0; k < n; k++) y0[k] *= m[k];
    const A = 0.7, c = 0.3;
    const Y = Tensor.from(gpu, y0, [6, 5]);
    const mask = Tensor.from(gpu, m, [6, 5]);
    await integrate((yy, _tau, out) => {
      // out = A·yy + c, built from ops: out = c; out += A·yy
      const ones = new Float32Array(n).fill(c);
      out.write(ones);
      const { axpy } = ops;
      axpy(out, yy, A);
    }, Y, mask, { steps: 1, solver: 'euler' });
    const got = await Y.readF32();
    for (let k = 0; k < n; k++) {
      const want = m[k] ? y0[k] - (A * y0[k] + c) : 0;
      expect(got[k]).toBeCloseTo(want, 6);
      if (!m[k]) expect(got[k] === 0, `padded entry ${k}`).toBe(true);
    }
    Y.release();
    mask.release();
  });
});

import * as ops from '../../src/ops/elementwise.js';
