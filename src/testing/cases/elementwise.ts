// Op cases for the elementwise ops (src/ops/elementwise.ts): odd sizes, broadcasting, in place, unaligned views,
// bit-exact copies of i32, and the Qwen3.5-4B / tiny shapes for perf.
import type { Gpu } from '../../gpu/device.js';
import { add, axpy, copyInto, fill, mul, scale, swiglu, unary } from '../../ops/elementwise.js';
import type { Activation } from '../../ops/activations.js';
import { addRef, axpyRef, mulRef, scaleRef, swigluRef, unaryRef } from '../../ref/elementwise.js';
import { DTYPE_BYTES, Tensor, numel, type DType } from '../../tensor.js';
import type { Rng } from '../../util/rng.js';
import { TOL, type OpCase, type Tolerance } from '../opHarness.js';

/** What a case body builds: an encode step, the tensors to read back (concatenated), the f64 reference. */
export interface Built {
  /** Re-writes any input that the op modifies in place, then encodes the op (idempotent across runs). */
  encode(): void;
  outs: Tensor[];
  reference(): ArrayLike<number>;
  tensors: Tensor[];
  flops?: number;
  bytes: number;
}

/** An OpCase from a builder; the outputs are read back (as f32 or as integers) and concatenated. */
export function simpleCase(name: string, op: string, build: (gpu: Gpu, rng: Rng) => Built, opts: { tol?: Tolerance; perf?: boolean } = {}): OpCase {
  return {
    name,
    op,
    perf: opts.perf,
    tol: opts.tol ?? TOL.f32,
    setup(gpu, rng) {
      const b = build(gpu, rng);
      return {
        encode: b.encode,
        async run() {
          b.encode();
          const parts: ArrayLike<number>[] = [];
          for (const t of b.outs) parts.push(t.dtype === 'f16' ? await t.readF32() : await t.read());
          if (parts.length === 1) return parts[0];
          const all = new Float64Array(parts.reduce((s, p) => s + p.length, 0));
          let o = 0;
          for (const p of parts) for (let k = 0; k < p.length; k++) all[o++] = p[k];
          return all;
        },
        reference: b.reference,
        flops: b.flops,
        bytes: b.bytes,
        dispose() { for (const t of b.tensors) t.release(); },
      };
    },
  };
}

/** A view of `count` elements at element offset `off` inside `parent` (usually not 256-byte aligned). */
export function viewOf(parent: Tensor, off: number, shape: readonly number[], dtype: DType = parent.dtype): Tensor {
  if (parent.offset + off * DTYPE_BYTES[dtype] + numel(shape) * DTYPE_BYTES[dtype] > parent.offset + parent.byteLength) throw new Error('viewOf: out of range');
  return new Tensor(parent.gpu, parent.buffer, shape, dtype, parent.offset + off * DTYPE_BYTES[dtype], false);
}

const sh = (s: readonly number[]) => `[${s.join('×')}]`;

function binaryCase(kind: 'add' | 'mul', aShape: number[], bShape: number[], o: { inplace?: boolean; unaligned?: boolean; perf?: boolean; tag?: string } = {}): OpCase {
  const name = `${kind} ${sh(aShape)} ${kind === 'add' ? '+' : '·'} ${sh(bShape)}${o.inplace ? ' in-place' : ''}${o.unaligned ? ' unaligned' : ''}${o.tag ? ` [${o.tag}]` : ''}`;
  return simpleCase(name, kind, (gpu, rng) => {
    const as = rng.normals(numel(aShape));
    const bs = rng.normals(numel(bShape));
    const tensors: Tensor[] = [];
    let a: Tensor, b: Tensor;
    if (o.unaligned) {
      // a, b and out all inside one parent buffer at odd element offsets
      const parent = Tensor.empty(gpu, [3 + as.length + 5 + bs.length + 7 + as.length]);
      tensors.push(parent);
      a = viewOf(parent, 3, aShape);
      b = viewOf(parent, 3 + as.length + 5, bShape);
    } else {
      a = Tensor.from(gpu, as, aShape);
      b = Tensor.from(gpu, bs, bShape);
      tensors.push(a, b);
    }
    let out: Tensor;
    if (o.inplace) out = a;
    else if (o.unaligned) out = viewOf(tensors[0], 3 + as.length + 5 + bs.length + 7, aShape);
    else tensors.push((out = Tensor.empty(gpu, aShape)));
    const fn = kind === 'add' ? add : mul;
    return {
      encode() {
        if (o.inplace || o.unaligned) { a.write(as); b.write(bs); }
        fn(a, b, out);
      },
      outs: [out],
      reference: () => (kind === 'add' ? addRef(as, bs) : mulRef(as, bs)),
      tensors,
      flops: as.length,
      bytes: (2 * as.length + bs.length) * 4,
    };
  }, { perf: o.perf });
}

function unaryCase(act: Activation, shape: number[], o: { inplace?: boolean; spread?: number; perf?: boolean } = {}): OpCase {
  return simpleCase(`unary ${act} ${sh(shape)}${o.inplace ? ' in-place' : ''}`, 'unary', (gpu, rng) => {
    const xs = rng.normals(numel(shape), o.spread ?? 3);
    const x = Tensor.from(gpu, xs, shape);
    const out = o.inplace ? x : Tensor.empty(gpu, shape);
    return {
      encode() { if (o.inplace) x.write(xs); unary(x, act, out); },
      outs: [out],
      reference: () => unaryRef(xs, act),
      tensors: o.inplace ? [x] : [x, out],
      flops: 8 * xs.length,
      bytes: 2 * xs.length * 4,
    };
  }, { perf: o.perf });
}

function swigluCase(shape: number[], o: { inplace?: boolean; perf?: boolean; tag?: string } = {}): OpCase {
  return simpleCase(`swiglu ${sh(shape)}${o.inplace ? ' in-place' : ''}${o.tag ? ` [${o.tag}]` : ''}`, 'swiglu', (gpu, rng) => {
    const gs = rng.normals(numel(shape), 2);
    const us = rng.normals(numel(shape));
    const g = Tensor.from(gpu, gs, shape);
    const up = Tensor.from(gpu, us, shape);
    const out = o.inplace ? g : Tensor.empty(gpu, shape);
    return {
      encode() { if (o.inplace) g.write(gs); swiglu(g, up, out); },
      outs: [out],
      reference: () => swigluRef(gs, us),
      tensors: o.inplace ? [g, up] : [g, up, out],
      flops: 6 * gs.length,
      bytes: 3 * gs.length * 4,
    };
  }, { perf: o.perf });
}

function axpyCase(shape: number[], alpha: number, maskShape?: number[], o: { perf?: boolean; tag?: string } = {}): OpCase {
  return simpleCase(`axpy ${sh(shape)} α=${alpha}${maskShape ? ` mask ${sh(maskShape)}` : ''}${o.tag ? ` [${o.tag}]` : ''}`, 'axpy', (gpu, rng) => {
    const ys = rng.normals(numel(shape));
    const xs = rng.normals(numel(shape));
    const ms = maskShape ? Float32Array.from({ length: numel(maskShape) }, (_, k) => (k % 3 === 0 ? 0 : rng.uniform())) : undefined;
    const y = Tensor.from(gpu, ys, shape);
    const x = Tensor.from(gpu, xs, shape);
    const m = ms ? Tensor.from(gpu, ms, maskShape!) : undefined;
    return {
      encode() { y.write(ys); axpy(y, x, alpha, m); },
      outs: [y],
      reference: () => axpyRef(ys, xs, alpha, ms),
      tensors: m ? [y, x, m] : [y, x],
      flops: 3 * ys.length,
      bytes: (3 * ys.length + (ms?.length ?? 0)) * 4,
    };
  }, { perf: o.perf });
}

function scaleCase(shape: number[], s: number, o: { inplace?: boolean } = {}): OpCase {
  return simpleCase(`scale ${sh(shape)} ×${s}${o.inplace ? ' in-place' : ''}`, 'scale', (gpu, rng) => {
    const xs = rng.normals(numel(shape));
    const x = Tensor.from(gpu, xs, shape);
    const out = o.inplace ? x : Tensor.empty(gpu, shape);
    return {
      encode() { if (o.inplace) x.write(xs); scale(x, s, out); },
      outs: [out],
      reference: () => scaleRef(xs, s),
      tensors: o.inplace ? [x] : [x, out],
      flops: xs.length,
      bytes: 2 * xs.length * 4,
    };
  });
}

/** copyInto between views at odd offsets; the whole destination is read back (untouched parts included). */
function copyCase(dtype: 'f32' | 'i32', srcN: number, dstN: number, so: number, d0: number, count: number | undefined, o: { sameBuffer?: boolean } = {}): OpCase {
  return simpleCase(`copyInto ${dtype} src[${srcN}]+${so} → dst[${dstN}]+${d0} n=${count ?? 'rest'}${o.sameBuffer ? ' same-buffer' : ''}`, 'copyInto', (gpu, rng) => {
    const mk = (n: number) => dtype === 'f32' ? rng.normals(n) : Int32Array.from({ length: n }, () => (rng.nextU32() | 0));
    const ss = mk(srcN);
    const ds = mk(dstN);
    const tensors: Tensor[] = [];
    let src: Tensor, dst: Tensor;
    if (o.sameBuffer) {
      const parent = Tensor.empty(gpu, [5 + srcN + 3 + dstN], dtype);
      tensors.push(parent);
      src = viewOf(parent, 5, [srcN]);
      dst = viewOf(parent, 5 + srcN + 3, [dstN]);
    } else {
      src = Tensor.from(gpu, ss, [srcN], dtype);
      dst = Tensor.from(gpu, ds, [dstN], dtype);
      tensors.push(src, dst);
    }
    const n = count ?? srcN - so;
    return {
      encode() { src.write(ss); dst.write(ds); copyInto(src, dst, { srcOffset: so, dstOffset: d0, count }); },
      outs: [dst],
      reference() {
        const r = Float64Array.from(ds);
        for (let k = 0; k < n; k++) r[d0 + k] = ss[so + k];
        return r;
      },
      tensors,
      bytes: 2 * n * 4,
    };
  }, { tol: { atol: 0, rtol: 0 } });
}

function fillCase(dtype: 'f32' | 'i32' | 'f16', n: number, value: number, viewOff = 0): OpCase {
  return simpleCase(`fill ${dtype} [${n}]${viewOff ? ` view+${viewOff}` : ''} = ${value}`, 'fill', (gpu) => {
    const parent = Tensor.empty(gpu, [viewOff + n + 3], dtype);
    const t = viewOf(parent, viewOff, [n]);
    return {
      encode() { fill(t, value); },
      outs: [t],
      reference: () => new Float64Array(n).fill(value),
      tensors: [parent],
      bytes: n * DTYPE_BYTES[dtype],
    };
  }, { tol: { atol: 0, rtol: 0 } });
}

const ACTS: Activation[] = ['none', 'silu', 'sigmoid', 'softplus', 'gelu_tanh', 'gelu_erf', 'relu'];

export const elementwiseCases: OpCase[] = [
  ...[[1], [7], [257], [7, 48], [33, 4099]].map((s) => binaryCase('add', s, s)),
  binaryCase('add', [7, 48], [48]),
  binaryCase('add', [257, 3], [3]),
  binaryCase('add', [5, 4, 64], [4, 64]),
  binaryCase('add', [13], [1]),
  binaryCase('add', [257, 64], [257, 64], { inplace: true }),
  binaryCase('add', [7, 48], [48], { inplace: true }),
  binaryCase('add', [7, 33], [33], { unaligned: true }),
  ...[[1], [257], [7, 48]].map((s) => binaryCase('mul', s, s)),
  binaryCase('mul', [257, 3], [3]),
  binaryCase('mul', [7, 128], [128], { inplace: true }),
  binaryCase('mul', [9, 17], [9, 17], { unaligned: true }),
  ...ACTS.map((a) => unaryCase(a, [257, 3])),
  unaryCase('softplus', [1000], { spread: 10 }),
  unaryCase('sigmoid', [1000], { spread: 30 }),
  unaryCase('gelu_tanh', [7, 64], { inplace: true }),
  swigluCase([1]),
  swigluCase([7, 48]),
  swigluCase([257, 130]),
  swigluCase([7, 64], { inplace: true }),
  axpyCase([257], 0.1),
  axpyCase([7, 48], -0.37, [7, 48]),
  axpyCase([7, 48], 0.5, [48]),
  axpyCase([1], 2),
  scaleCase([1], 3),
  scaleCase([1000], -0.125),
  scaleCase([7, 3], 0.5, { inplace: true }),
  copyCase('f32', 100, 200, 3, 17, 50),
  copyCase('f32', 257, 257, 0, 0, undefined),
  copyCase('i32', 37, 64, 1, 5, 31),
  copyCase('f32', 61, 70, 7, 2, 40, { sameBuffer: true }),
  fillCase('f32', 257, 1.5),
  fillCase('f32', 7, -0.25, 3),
  fillCase('i32', 7, -3, 1),
  fillCase('f16', 64, 0.5, 2),
];

export const elementwisePerfCases: OpCase[] = [
  swigluCase([600, 9216], { perf: true, tag: '4B MLP' }),
  binaryCase('add', [600, 2560], [600, 2560], { perf: true, tag: '4B residual' }),
  binaryCase('add', [2400, 1024], [1024], { perf: true, tag: 'vision bias' }),
  unaryCase('gelu_tanh', [2400, 4096], { perf: true }),
  axpyCase([50, 32], 0.1, [50, 32], { perf: true, tag: 'flow step' }),
  swigluCase([64, 256], { perf: true, tag: 'tiny MLP' }),
  binaryCase('add', [64, 128], [64, 128], { perf: true, tag: 'tiny residual' }),
];
