// The VLM on the GPU against the PyTorch reference fixtures: preprocessing, vision tower, every layer's hidden
// states, logits, and cached greedy decoding — f32 weights tightly, f16 weights within a looser bound.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Gpu } from '../../src/gpu/device.js';
import { openCheckpoint } from '../../src/io/checkpoint.js';
import { loadWeights } from '../../src/model/load.js';
import { QwenVLM, type VlmImage } from '../../src/model/vlm.js';
import { preprocessImage } from '../../src/preprocess/image.js';
import { Fixture, errors } from '../../src/testing/fixtures.js';
import { Tensor } from '../../src/tensor.js';

let gpu: Gpu;
beforeAll(async () => { gpu = await Gpu.create(); });
afterAll(() => gpu?.destroy());

const report: string[] = [];
afterAll(() => console.log(`VLM parity (max abs / rel to max|ref|):\n${report.join('\n')}`));

async function setup(fx: Fixture, weightDtype: 'f32' | 'f16') {
  const ckpt = await openCheckpoint(fx.checkpointDir);
  const weights = await loadWeights(gpu, ckpt, { weightDtype, actionExpert: false });
  const vlm = new QwenVLM(gpu, ckpt.config, weights);
  const images: VlmImage[] = [];
  const nImages = fx.meta.images.length as number;
  for (let i = 0; i < nImages; i++) {
    const img = fx.get(`input.image.${i}`);
    const [h, w, c] = img.shape;
    const p = preprocessImage({ width: w, height: h, channels: c as 3, data: img.data as Uint8Array }, ckpt.preprocessor);
    images.push({ pixels: p.pixelValues, grid: p.grid });
  }
  return { ckpt, weights, vlm, images };
}

const cases: { name: string; dtype: 'f32' | 'f16'; tol: number }[] = [
  { name: 'case_a_tiny_widowx', dtype: 'f32', tol: 1e-3 },
  { name: 'case_b_two_images', dtype: 'f32', tol: 1e-3 },
  { name: 'case_c_t2a_nav', dtype: 'f32', tol: 1e-3 },
  { name: 'case_e_tiny_chat', dtype: 'f32', tol: 1e-3 },
  { name: 'case_a_tiny_widowx', dtype: 'f16', tol: 5e-2 },
  { name: 'case_b_two_images', dtype: 'f16', tol: 5e-2 },
];

for (const c of cases) {
  describe(`${c.name} (${c.dtype} weights)`, () => {
    it('pixels, vision tower, per-layer hidden states and logits match the reference', async () => {
      const fx = await Fixture.load(c.name);
      const { ckpt, weights, vlm, images } = await setup(fx, c.dtype);
      try {
        images.forEach((im, i) => {
          if (fx.has(`vision.pixel_values.${i}`)) expect(errors(im.pixels, fx.f32(`vision.pixel_values.${i}`)).maxAbs).toBe(0);
        });
        const ids = fx.i32('input.input_ids');
        const types = Uint8Array.from(fx.i32('input.mm_token_type_ids'));
        const N = ckpt.config.text.numHiddenLayers;
        const cache = vlm.newCache(ids.length + 16);
        const all = Array.from({ length: N + 1 }, (_, i) => i);
        const pre = await vlm.prefill({ ids, mmTokenTypeIds: types, images }, cache, { collect: all });
        expect(pre.ropeDelta).toBe(fx.i32('input.rope_delta')[0]);
        const line: string[] = [];
        if (pre.vision) {
          const got = await pre.vision.readF32();
          let o = 0;
          for (let i = 0; i < images.length; i++) {
            const ref = fx.f32(`vision.output.${i}`);
            const e = errors(got.subarray(o, o + ref.length), ref);
            o += ref.length;
            line.push(`vision[${i}] ${e.maxAbs.toExponential(2)}/${e.rel.toExponential(2)}`);
            expect(e.rel, `vision output ${i}`).toBeLessThan(c.tol);
          }
          pre.vision.release();
        }
        for (let i = 0; i <= N; i++) {
          const got = await pre.layers.get(i)!.readF32();
          const e = errors(got, fx.f32(`text.hidden_states.${i}`));
          line.push(`h[${i}] ${e.maxAbs.toExponential(2)}/${e.rel.toExponential(2)}`);
          expect(e.rel, `hidden_states[${i}]`).toBeLessThan(c.tol);
          pre.layers.get(i)!.release();
        }
        const logits = vlm.text.logits(pre.hidden, ids.length - 4, 4);
        const gl = await logits.readF32();
        const el = errors(gl, fx.f32('text.logits_last4'));
        line.push(`logits ${el.maxAbs.toExponential(2)}/${el.rel.toExponential(2)}`);
        if (c.dtype === 'f32') expect(el.maxAbs, 'f32 logits within 1e-3 absolute').toBeLessThan(1e-3);
        else expect(el.rel).toBeLessThan(c.tol);
        report.push(`${c.name} ${c.dtype}: ${line.join(', ')}`);
        logits.release();
        pre.hidden.release();
        cache.release();
      } finally {
        weights.destroy();
        await ckpt.close();
      }
    });

    if (c.dtype === 'f32') {
      it('greedy decoding with caches reproduces the reference tokens', async () => {
        const fx = await Fixture.load(c.name);
        const { ckpt, weights, vlm, images } = await setup(fx, c.dtype);
        try {
          const ids = fx.i32('input.input_ids');
          const types = Uint8Array.from(fx.i32('input.mm_token_type_ids'));
          const want = Array.from(fx.i32('decode.tokens'));
          const got = await vlm.generate({ ids, mmTokenTypeIds: types, images }, { maxNewTokens: want.length });
          expect(got).toEqual(want);
        } finally {
          weights.destroy();
          await ckpt.close();
        }
      });
    }
  });
}

describe('decode with caches equals recomputing the whole sequence', () => {
  it('32 tokens on the tiny checkpoint', async () => {
    const fx = await Fixture.load('case_e_tiny_chat');
    const { ckpt, weights, vlm, images } = await setup(fx, 'f32');
    try {
      const ids = fx.i32('input.input_ids');
      const types = Uint8Array.from(fx.i32('input.mm_token_type_ids'));
      const steps = 32;
      const cache = vlm.newCache(ids.length + steps + 1);
      const pre = await vlm.prefill({ ids, mmTokenTypeIds: types, images }, cache);
      pre.vision?.release();
      let logits = vlm.text.logits(pre.hidden, ids.length - 1, 1);
      pre.hidden.release();
      const seq = Array.from(ids);
      const seqTypes = Array.from(types);
      let worst = 0;
      for (let n = 0; n < steps; n++) {
        const row = await logits.readF32();
        logits.release();
        let id = 0;
        for (let k = 1; k < row.length; k++) if (row[k] > row[id]) id = k;
        // recompute from scratch over the whole sequence so far and compare the last row's logits
        if (n % 8 === 7 || n === 0) {
          const fresh = vlm.newCache(seq.length + 1);
          const full = await vlm.prefill({ ids: Int32Array.from(seq), mmTokenTypeIds: Uint8Array.from(seqTypes), images }, fresh);
          full.vision?.release();
          const lf = vlm.text.logits(full.hidden, seq.length - 1, 1);
          const ref = await lf.readF32();
          const e = errors(row, ref);
          worst = Math.max(worst, e.maxAbs);
          expect(e.maxAbs, `step ${n}`).toBeLessThan(1e-3);
          lf.release();
          full.hidden.release();
          fresh.release();
        }
        seq.push(id);
        seqTypes.push(0);
        logits = vlm.decodeStep(id, cache, pre.ropeDelta);
      }
      logits.release();
      cache.release();
      report.push(`decode-vs-recompute over ${steps} tokens: max |Δlogit| ${worst.toExponential(2)}`);
    } finally {
      weights.destroy();
      await ckpt.close();
    }
  });
});
void Tensor;
