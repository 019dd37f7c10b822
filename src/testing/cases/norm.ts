// Op cases for the row norms (src/ops/norm.ts): awkward row counts and dims, f32 and f16 weights, in place,
// unaligned views, a large-mean LayerNorm (two-pass stability), and the Qwen3.5-4B / DiT / tiny shapes for perf.
import { layerNorm, modulatedLayerNorm, rmsNorm, rmsNormGated } from '../../ops/norm.js';
import { layerNormRef, modulatedLayerNormRef, rmsNormGatedRef, rmsNormRef } from '../../ref/norm.js';
import { Tensor, f16ToF32Array, f32ToF16Array } from '../../tensor.js';
import type { Rng } from '../../util/rng.js';
import type { Gpu } from '../../gpu/device.js';
import type { OpCase } from '../opHarness.js';
import { simpleCase, viewOf } from './elementwise.js';

type WDt = 'f32' | 'f16';

/** A weight vector on the GPU plus the values the reference must see (f16-rounded for f16). */
function weight(gpu: Gpu, rng: Rng, n: number, dt: WDt, center: number, spread: number): { t: Tensor; v: Float32Array } {
  const raw = rng.normals(n, spread).map((v) => v + center);
  if (dt === 'f32') return { t: Tensor.from(gpu, raw, [n]), v: raw };
  const h = f32ToF16Array(raw);
  // queue.writeBuffer needs a multiple of 4 bytes: write an odd-length f16 vector with one pad value
  const t = Tensor.empty(gpu, [n], 'f16');
  t.write(n % 2 ? Uint16Array.from([...h, 0]) : h);
  return { t, v: f16ToF32Array(h) };
}

interface RmsOpts { wdt?: WDt | null; addOne?: boolean; inplace?: boolean; unaligned?: boolean; dimOpt?: boolean; perf?: boolean; tag?: string }

/** rmsNorm of x [rows, dim] (or, with dimOpt, x [rows, 4·dim] normalised per dim-wide head). */
function rmsCase(rows: number, dim: number, o: RmsOpts = {}): OpCase {
  const wdt = o.wdt === undefined ? 'f32' : o.wdt;
  const width = o.dimOpt ? 4 * dim : dim;
  const name = `rmsNorm ${wdt ?? 'no-w'} rows=${rows} dim=${dim}${o.dimOpt ? ` (x ${rows}×${width})` : ''}${o.addOne ? ' 1+w' : ''}` +
    `${o.inplace ? ' in-place' : ''}${o.unaligned ? ' unaligned' : ''}${o.tag ? ` [${o.tag}]` : ''}`;
  return simpleCase(name, 'rmsNorm', (gpu, rng) => {
    const xs = rng.normals(rows * width, 2);
    const w = wdt ? weight(gpu, rng, dim, wdt, o.addOne ? 0 : 1, o.addOne ? 0.1 : 0.5) : null;
    const tensors: Tensor[] = w ? [w.t] : [];
    let x: Tensor, out: Tensor;
    if (o.unaligned) {
      const parent = Tensor.empty(gpu, [7 + 2 * xs.length + 1]);
      tensors.push(parent);
      x = viewOf(parent, 7, [rows, width]);
      out = o.inplace ? x : viewOf(parent, 7 + xs.length + 1, [rows, width]);
    } else {
      x = Tensor.from(gpu, xs, [rows, width]);
      out = o.inplace ? x : Tensor.empty(gpu, [rows, width]);
      tensors.push(x);
      if (!o.inplace) tensors.push(out);
    }
    return {
      encode() {
        if (o.inplace || o.unaligned) x.write(xs);
        rmsNorm(x, w?.t ?? null, { eps: 1e-6, addOne: o.addOne, dim: o.dimOpt || !w ? dim : undefined, out });
      },
      outs: [out],
      reference: () => rmsNormRef(xs, w?.v ?? null, dim, 1e-6, o.addOne),
      tensors,
      flops: 4 * xs.length,
      bytes: 2 * xs.length * 4 + dim * (wdt === 'f16' ? 2 : 4),
    };
  }, { perf: o.perf });
}

function gatedCase(rows: number, heads: number, dv: number, o: { wdt?: WDt; inplace?: boolean; oneBuffer?: boolean; perf?: boolean; tag?: string } = {}): OpCase {
  const wdt = o.wdt ?? 'f32';
  return simpleCase(`rmsNormGated ${wdt} rows=${rows} heads=${heads} dv=${dv}${o.inplace ? ' in-place' : ''}${o.oneBuffer ? ' x,z,out in one buffer' : ''}${o.tag ? ` [${o.tag}]` : ''}`, 'rmsNormGated', (gpu, rng) => {
    const n = rows * heads * dv;
    const xs = rng.normals(n);
    const zs = rng.normals(n, 2);
    const w = weight(gpu, rng, dv, wdt, 1, 0.3);
    const shape = [rows, heads * dv];
    let x: Tensor, z: Tensor, out: Tensor;
    const tensors: Tensor[] = [w.t];
    if (o.oneBuffer) {
      // x, z and out at odd offsets of one buffer: both inputs are read through the output's binding
      const parent = Tensor.empty(gpu, [3 * n + 4]);
      tensors.push(parent);
      z = viewOf(parent, 1, shape);
      x = viewOf(parent, n + 2, shape);
      out = viewOf(parent, 2 * n + 3, shape);
    } else {
      x = Tensor.from(gpu, xs, shape);
      z = Tensor.from(gpu, zs, shape);
      out = o.inplace ? x : Tensor.empty(gpu, shape);
      tensors.push(x, z);
      if (!o.inplace) tensors.push(out);
    }
    return {
      encode() {
        if (o.inplace || o.oneBuffer) { x.write(xs); z.write(zs); }
        rmsNormGated(x, z, w.t, { eps: 1e-6, out });
      },
      outs: [out],
      reference: () => rmsNormGatedRef(xs, zs, w.v, 1e-6),
      tensors,
      flops: 10 * n,
      bytes: 3 * n * 4,
    };
  }, { perf: o.perf });
}

interface LnOpts { wdt?: WDt; affine?: 'wb' | 'w' | 'none'; mean?: number; inplace?: boolean; perf?: boolean; tag?: string }

function lnCase(rows: number, dim: number, o: LnOpts = {}): OpCase {
  const wdt = o.wdt ?? 'f32';
  const affine = o.affine ?? 'wb';
  return simpleCase(`layerNorm ${affine === 'none' ? 'no-affine' : `${wdt} ${affine}`} rows=${rows} dim=${dim}${o.mean ? ` mean=${o.mean}` : ''}${o.inplace ? ' in-place' : ''}${o.tag ? ` [${o.tag}]` : ''}`, 'layerNorm', (gpu, rng) => {
    const xs = rng.normals(rows * dim).map((v) => v + (o.mean ?? 0));
    const w = affine !== 'none' ? weight(gpu, rng, dim, wdt, 1, 0.5) : null;
    const b = affine === 'wb' ? weight(gpu, rng, dim, wdt, 0, 0.5) : null;
    const x = Tensor.from(gpu, xs, [rows, dim]);
    const out = o.inplace ? x : Tensor.empty(gpu, [rows, dim]);
    const tensors = [x, ...(o.inplace ? [] : [out]), ...(w ? [w.t] : []), ...(b ? [b.t] : [])];
    return {
      encode() { if (o.inplace) x.write(xs); layerNorm(x, w?.t ?? null, b?.t ?? null, { eps: 1e-6, dim: w ? undefined : dim, out }); },
      outs: [out],
      reference: () => layerNormRef(xs, w?.v ?? null, b?.v ?? null, dim, 1e-6),
      tensors,
      flops: 7 * xs.length,
      bytes: 2 * xs.length * 4,
    };
  }, { perf: o.perf });
}

function modLnCase(rows: number, dim: number, order: 'scale-shift' | 'shift-scale', o: { perRow?: boolean; inplace?: boolean; perf?: boolean; tag?: string } = {}): OpCase {
  return simpleCase(`modulatedLayerNorm ${order} rows=${rows} D=${dim}${o.perRow ? ' per-row mod' : ''}${o.inplace ? ' in-place' : ''}${o.tag ? ` [${o.tag}]` : ''}`, 'modulatedLayerNorm', (gpu, rng) => {
    const xs = rng.normals(rows * dim, 1.5).map((v) => v + 0.3);
    const ms = rng.normals((o.perRow ? rows : 1) * 2 * dim, 0.5);
    const x = Tensor.from(gpu, xs, [rows, dim]);
    const mod = Tensor.from(gpu, ms, o.perRow ? [rows, 2 * dim] : [2 * dim]);
    const out = o.inplace ? x : Tensor.empty(gpu, [rows, dim]);
    return {
      encode() { if (o.inplace) x.write(xs); modulatedLayerNorm(x, mod, { eps: 1e-5, order, out }); },
      outs: [out],
      reference: () => modulatedLayerNormRef(xs, ms, dim, 1e-5, order),
      tensors: o.inplace ? [x, mod] : [x, mod, out],
      flops: 9 * xs.length,
      bytes: (2 * xs.length + ms.length) * 4,
    };
  }, { perf: o.perf });
}

const DIMS = [1, 3, 48, 64, 128, 257, 2560, 4096];

export const normCases: OpCase[] = [
  // rmsNorm: every awkward dim at 7 rows, rows 1 / 257 on a few, both weight dtypes, zero-centred, no weight
  ...DIMS.map((d, k) => rmsCase(7, d, { addOne: k % 2 === 1 })),
  ...[1, 257].flatMap((r) => [rmsCase(r, 64), rmsCase(r, 2560, { wdt: 'f16', addOne: true })]),
  rmsCase(7, 128, { wdt: 'f16' }),
  rmsCase(257, 257, { wdt: 'f16', addOne: true }),
  rmsCase(7, 48, { wdt: null }),
  rmsCase(3, 257, { wdt: null }),
  rmsCase(7, 64, { dimOpt: true, addOne: true, tag: 'per-head q_norm' }),
  rmsCase(7, 2560, { inplace: true, addOne: true }),
  rmsCase(9, 33, { unaligned: true }),
  rmsCase(9, 300, { unaligned: true, inplace: true, wdt: 'f16' }),
  // rmsNormGated over dv-wide value heads
  gatedCase(1, 1, 128),
  gatedCase(7, 4, 32),
  gatedCase(7, 3, 48, { wdt: 'f16' }),
  gatedCase(257, 2, 128),
  gatedCase(5, 2, 257, { wdt: 'f16' }),
  gatedCase(7, 4, 128, { inplace: true }),
  gatedCase(3, 2, 40, { oneBuffer: true }),
  // layerNorm
  ...[1, 3, 64, 257, 1024, 4096].map((d) => lnCase(7, d)),
  lnCase(1, 1024, { wdt: 'f16' }),
  lnCase(257, 64, { wdt: 'f16' }),
  lnCase(7, 257, { affine: 'w' }),
  lnCase(7, 48, { affine: 'none' }),
  lnCase(257, 1024, { mean: 30 }),
  lnCase(7, 128, { mean: 100, affine: 'none' }),
  lnCase(7, 1024, { inplace: true }),
  // modulatedLayerNorm (adaLN)
  modLnCase(1, 48, 'scale-shift'),
  modLnCase(51, 128, 'scale-shift'),
  modLnCase(51, 128, 'shift-scale'),
  modLnCase(7, 257, 'shift-scale'),
  modLnCase(7, 1536, 'scale-shift'),
  modLnCase(7, 64, 'scale-shift', { perRow: true }),
  modLnCase(7, 300, 'shift-scale', { inplace: true }),
];

export const normPerfCases: OpCase[] = [
  rmsCase(600, 2560, { addOne: true, perf: true, tag: '4B layer norm' }),
  rmsCase(600, 2560, { wdt: 'f16', addOne: true, perf: true, tag: '4B layer norm' }),
  rmsCase(600, 256, { dimOpt: true, addOne: true, perf: true, tag: '4B q_norm 600×4 heads' }),
  gatedCase(600, 32, 128, { perf: true, tag: '4B GDN' }),
  lnCase(2400, 1024, { perf: true, tag: 'vision' }),
  modLnCase(51, 1536, 'scale-shift', { perf: true, tag: 'DiT adaLN' }),
  rmsCase(64, 128, { addOne: true, perf: true, tag: 'tiny' }),
  gatedCase(64, 4, 32, { perf: true, tag: 'tiny GDN' }),
  lnCase(256, 64, { perf: true, tag: 'tiny vision' }),
  modLnCase(17, 128, 'scale-shift', { perf: true, tag: 'tiny DiT' }),
];
