// Kernel interfaces are declared once, by name, in the KernelSpec: the WGSL `struct Params` and `@binding`
// lines are generated from it and the stream packs values by the same names. A wrong, missing or extra name
// must fail loudly and name itself, never silently shift the other fields.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Gpu } from '../../src/gpu/device.js';
import { kernelInterface, paramLayout, type KernelSpec } from '../../src/gpu/pipelines.js';
import { linear } from '../../src/ops/linear.js';
import { Tensor } from '../../src/tensor.js';

let gpu: Gpu;
beforeAll(async () => { gpu = await Gpu.create(); });
afterAll(() => gpu?.destroy());

const SCALE: KernelSpec = {
  file: 'linear', // any file: these tests only use the generated interface
  params: { n: 'u32', shift: 'i32', alpha: 'f32', table: 'vec4f[2]', tail: 'u32' },
  bindings: { X: 'read f32', Y: 'write f32' },
  workgroup: [64],
};

describe('kernel interface generated from the spec', () => {
  it('lays out scalars in order and aligns vec4f arrays to 16 bytes', () => {
    const { fields, words } = paramLayout(SCALE);
    expect(fields.map((f) => [f.name, f.word])).toEqual([['n', 0], ['shift', 1], ['alpha', 2], ['table', 4], ['tail', 12]]);
    expect(words).toBe(13);
    const wgsl = kernelInterface(SCALE);
    expect(wgsl).toContain('struct Params {\n  n: u32,\n  shift: i32,\n  alpha: f32,\n  _pad3: u32,\n  table: array<vec4f, 2>,\n  tail: u32,\n}');
    expect(wgsl).toContain('@group(0) @binding(1) var<storage, read> X: array<f32>;');
    expect(wgsl).toContain('@group(0) @binding(2) var<storage, read_write> Y: array<f32>;');
  });

  it('rejects bad declarations with the kernel and field named', () => {
    expect(() => paramLayout({ ...SCALE, params: { 'not-a-name': 'u32' } })).toThrow(/linear: param name 'not-a-name'/);
    expect(() => paramLayout({ ...SCALE, params: { n: 'u64' as 'u32' } })).toThrow(/param 'n' has unknown type 'u64'/);
    expect(() => kernelInterface({ ...SCALE, bindings: { X: 'readonly f32' as 'read f32' } })).toThrow(/binding X: 'readonly f32'/);
    expect(() => paramLayout({ ...SCALE, params: { big: 'vec4f[16]', one: 'u32' } })).toThrow(/65 words/);
  });

  it('a dispatch with a wrong, missing or extra param/buffer name throws naming it', () => {
    const k = gpu.pipelines.get({
      file: 'linear',
      params: { M: 'u32', N: 'u32', K: 'u32', x_batch: 'u32', w_batch: 'u32', y_batch: 'u32', x_off: 'u32', w_off: 'u32', y_off: 'u32', b_off: 'u32', ldx: 'u32', ldw: 'u32', ldy: 'u32' },
      bindings: { X: 'read f32', W: 'read WT', Bias: 'read f32', Y: 'write f32' },
      aliases: { WT: 'f32' }, includes: ['activations'], consts: { HAS_BIAS: false, ACCUM: false, ACT: 0, TM: 4, TN: 4 }, workgroup: [8, 8],
    });
    const b = { buffer: gpu.dummy };
    const bufs = { X: b, W: b, Bias: b, Y: { buffer: gpu.device.createBuffer({ size: 256, usage: GPUBufferUsage.STORAGE }) } };
    const p = { M: 1, N: 1, K: 1, x_batch: 0, w_batch: 0, y_batch: 0, x_off: 0, w_off: 0, y_off: 0, b_off: 0, ldx: 1, ldw: 1, ldy: 1 };
    const { ldy: _, ...missing } = p;
    expect(() => gpu.stream.dispatch(k, bufs, missing, [1])).toThrow(/missing param 'ldy'/);
    expect(() => gpu.stream.dispatch(k, bufs, { ...missing, ldY: 1 }, [1])).toThrow(/missing param 'ldy'/);
    expect(() => gpu.stream.dispatch(k, bufs, { ...p, lda: 1 }, [1])).toThrow(/unknown param 'lda'/);
    expect(() => gpu.stream.dispatch(k, bufs, { ...p, M: -1 }, [1])).toThrow(/param 'M' = -1 is not a u32/);
    const { Bias: __, ...noBias } = bufs;
    expect(() => gpu.stream.dispatch(k, noBias, p, [1])).toThrow(/missing buffer 'Bias'/);
    expect(() => gpu.stream.dispatch(k, { ...bufs, Z: b }, p, [1])).toThrow(/unknown buffer 'Z'/);
    expect(() => gpu.stream.dispatch(k, [b, b, b, b], p, [1])).toThrow(/buffers must be given by name/);
  });

  it('a declared kernel computes through the generated interface (linear)', async () => {
    const x = Tensor.from(gpu, Float32Array.from([1, 2, 3, 4, 5, 6]), [2, 3]);
    const w = Tensor.from(gpu, Float32Array.from([1, 0, -1, 0.5, 0.5, 0.5]), [2, 3]);
    const y = linear(x, w);
    expect(Array.from(await y.read())).toEqual([-2, 3, -2, 7.5]);
    for (const t of [x, w, y]) t.release();
  });
});

describe('kernels/ hold no hand-written interface', () => {
  // Every WGSL file, new ones included: none is left on the positional form.
  const files = fs.readdirSync('kernels', { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.wgsl')).map((f) => f.split(path.sep).join('/')).sort();
  it('finds the kernels', () => expect(files.length).toBeGreaterThan(20));
  for (const file of files) {
    it(`${file} has no struct Params or @binding line`, () => {
      const src = fs.readFileSync(path.join('kernels', file), 'utf8');
      expect(src).not.toMatch(/struct Params|@binding/);
    });
  }
});
