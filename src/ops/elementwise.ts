// Elementwise ops (kernels/elementwise.wgsl): add, mul, unary activations, swiglu, axpy, scale, copy, fill; and
// copyRows, the offset-correct buffer-to-buffer row copy.
//
// One grid-stride kernel; the op and activation are compile-time constants (OP, ACT), shapes and offsets go in
// Params. All tensors are f32 (copy/fill also take i32/u32). Views may be unaligned (bound from the
// aligned-down start, element offsets in Params) and may alias the output:
// - `out === a` (in place) is allowed; an input in the output's buffer is read through the output binding;
// - an input that overlaps the output other than exactly (shifted) is rejected, since it would race.
import type { KernelSpec } from '../gpu/pipelines.js';
import type { BufferRange } from '../gpu/stream.js';
import { DTYPE_BYTES, Tensor, f32ToF16 } from '../tensor.js';
import { ACT, type Activation } from './activations.js';
import { bind, bindShared, checkSameIndexAlias, overlaps, shapeStr } from './views.js';

// Inputs A, B, M and output Y as raw 32-bit words (copy/fill move any 4-byte dtype unchanged); element offsets
// into each binding, broadcast periods of B and M, the scale and the fill word.
const ELEMENTWISE_IO = {
  params: { n: 'u32', a_off: 'u32', b_off: 'u32', b_n: 'u32', m_off: 'u32', m_n: 'u32', y_off: 'u32', alpha: 'f32', bits: 'u32' },
  bindings: { A: 'read u32', B: 'read u32', M: 'read u32', Y: 'write u32' },
} satisfies Pick<KernelSpec, 'params' | 'bindings'>;

const OP = { add: 0, mul: 1, unary: 2, swiglu: 3, axpy: 4, scale: 5, copy: 6, fill: 7 } as const;
type OpName = keyof typeof OP;

const WG = 256;
/** Grid cap: beyond this many workgroups each invocation loops (grid-stride). */
const MAX_GROUPS = 65535;

interface Operand {
  t: Tensor;
  /** extra element offset inside `t` */
  off?: number;
  /** broadcast period (elements); default n */
  period?: number;
}

interface Launch {
  op: OpName;
  n: number;
  a?: Operand;
  b?: Operand;
  m?: Operand;
  y: Operand;
  alpha?: number;
  bits?: number;
  act?: Activation;
  label?: string;
}

function launch(L: Launch): void {
  const y = L.y.t;
  const gpu = y.gpu;
  if (L.n === 0) return;
  // Inputs in the output's buffer are read through Y; everything else gets its own read-only binding.
  const inputs = [L.a, L.b, L.m];
  const viaY = inputs.map((o) => !!o && o.t.buffer === y.buffer);
  const ySpan = bindShared(L.op, y, ...inputs.filter((o, k) => o && viaY[k]).map((o) => o!.t));
  let yk = 1;
  const offs: number[] = [];
  const ranges: BufferRange[] = [];
  inputs.forEach((o, k) => {
    if (!o) {
      offs.push(0);
      ranges.push({ buffer: gpu.dummy });
    } else if (viaY[k]) {
      offs.push(ySpan.offs[yk++] + (o.off ?? 0));
      ranges.push({ buffer: gpu.dummy });
    } else {
      const s = bind(L.op, 'abm'[k], o.t);
      offs.push(s.off + (o.off ?? 0));
      ranges.push(s.range);
    }
  });
  const spec: KernelSpec = {
    file: 'elementwise',
    ...ELEMENTWISE_IO,
    consts: {
      OP: OP[L.op],
      ACT: ACT[L.act ?? 'none'],
      HAS_MASK: !!L.m,
      A_IS_Y: viaY[0],
      B_IS_Y: viaY[1],
      M_IS_Y: viaY[2],
    },
    includes: ['activations'],
    workgroup: [WG],
  };
  const groups = Math.min(Math.ceil(L.n / WG), MAX_GROUPS);
  const params = {
    n: L.n,
    a_off: offs[0],
    b_off: offs[1], b_n: L.b?.period ?? L.n,
    m_off: offs[2], m_n: L.m?.period ?? L.n,
    y_off: ySpan.offs[0] + (L.y.off ?? 0),
    alpha: L.alpha ?? 0,
    bits: L.bits ?? 0,
  };
  const [A, B, M] = ranges;
  gpu.stream.dispatch(gpu.pipelines.get(spec), { A, B, M, Y: ySpan.range }, params, [groups], L.label ?? L.op);
}

function needF32(op: string, what: string, t: Tensor): void {
  if (t.dtype !== 'f32') throw new Error(`${op}: ${what} must be f32, got ${shapeStr(t)}`);
}

function outFor(op: string, like: Tensor, out?: Tensor): Tensor {
  if (!out) return Tensor.empty(like.gpu, like.shape, 'f32', op);
  needF32(op, 'out', out);
  if (out.size !== like.size) throw new Error(`${op}: out ${shapeStr(out)} does not hold ${shapeStr(like)}`);
  return out;
}

/** Broadcast period of `b` against `a`: same size, or b.size divides a.size (b = trailing dims, repeated over leading rows). */
function period(op: string, a: Tensor, b: Tensor, what = 'b'): number {
  if (b.size === a.size) return a.size;
  if (b.size === 0 || a.size % b.size !== 0) {
    throw new Error(`${op}: ${what} ${shapeStr(b)} neither matches nor broadcasts over a ${shapeStr(a)} (its size must divide a's)`);
  }
  return b.size;
}

/** A broadcast input (period < n) in the output's buffer must not overlap the output at all. */
function checkBroadcastAlias(op: string, what: string, b: Tensor, per: number, y: Tensor): void {
  if (per === y.size) checkSameIndexAlias(op, what, b, y);
  else if (overlaps(b, 0, b.size, y, 0, y.size)) throw new Error(`${op}: broadcast ${what} ${shapeStr(b)} overlaps the output ${shapeStr(y)}`);
}

function binary(op: 'add' | 'mul', a: Tensor, b: Tensor, out?: Tensor): Tensor {
  needF32(op, 'a', a);
  needF32(op, 'b', b);
  const per = period(op, a, b);
  const y = outFor(op, a, out);
  checkSameIndexAlias(op, 'a', a, y);
  checkBroadcastAlias(op, 'b', b, per, y);
  launch({ op, n: a.size, a: { t: a }, b: { t: b, period: per }, y: { t: y } });
  return y;
}

/** out = a + b; b is the same size as a or broadcasts over a's leading rows (b.size divides a.size). */
export function add(a: Tensor, b: Tensor, out?: Tensor): Tensor {
  return binary('add', a, b, out);
}

/** out = a · b, broadcasting like `add`. */
export function mul(a: Tensor, b: Tensor, out?: Tensor): Tensor {
  return binary('mul', a, b, out);
}

/** out = act(x). */
export function unary(x: Tensor, act: Activation, out?: Tensor): Tensor {
  needF32(`unary ${act}`, 'x', x);
  if (!(act in ACT)) throw new Error(`unary: unknown activation '${act}'`);
  const y = outFor(`unary ${act}`, x, out);
  checkSameIndexAlias(`unary ${act}`, 'x', x, y);
  launch({ op: 'unary', act, n: x.size, a: { t: x }, y: { t: y }, label: `unary ${act}` });
  return y;
}

/** out = silu(gate) · up (same sizes). */
export function swiglu(gate: Tensor, up: Tensor, out?: Tensor): Tensor {
  needF32('swiglu', 'gate', gate);
  needF32('swiglu', 'up', up);
  if (gate.size !== up.size) throw new Error(`swiglu: gate ${shapeStr(gate)} and up ${shapeStr(up)} differ in size`);
  const y = outFor('swiglu', gate, out);
  checkSameIndexAlias('swiglu', 'gate', gate, y);
  checkSameIndexAlias('swiglu', 'up', up, y);
  launch({ op: 'swiglu', n: gate.size, a: { t: gate }, b: { t: up }, y: { t: y } });
  return y;
}

/** y += alpha · x (· mask), in place. mask is y's size or broadcasts like `add`. */
export function axpy(y: Tensor, x: Tensor, alpha: number, mask?: Tensor): void {
  needF32('axpy', 'y', y);
  needF32('axpy', 'x', x);
  if (x.size !== y.size) throw new Error(`axpy: x ${shapeStr(x)} and y ${shapeStr(y)} differ in size`);
  checkSameIndexAlias('axpy', 'x', x, y);
  let per: number | undefined;
  if (mask) {
    needF32('axpy', 'mask', mask);
    per = period('axpy', y, mask, 'mask');
    checkBroadcastAlias('axpy', 'mask', mask, per, y);
  }
  launch({ op: 'axpy', n: y.size, a: { t: x }, m: mask ? { t: mask, period: per } : undefined, y: { t: y }, alpha });
}

/** out = s · x. */
export function scale(x: Tensor, s: number, out?: Tensor): Tensor {
  needF32('scale', 'x', x);
  const y = outFor('scale', x, out);
  checkSameIndexAlias('scale', 'x', x, y);
  launch({ op: 'scale', n: x.size, a: { t: x }, y: { t: y }, alpha: s });
  return y;
}

/**
 * dst[dstOffset + k] = src[srcOffset + k] for k < count (default: the rest of src). Bit-exact for any 4-byte
 * dtype (f32, i32, u32; src and dst the same). Works on unaligned views; src and dst may share a buffer when
 * the two ranges do not overlap.
 */
export function copyInto(src: Tensor, dst: Tensor, opts: { srcOffset?: number; dstOffset?: number; count?: number } = {}): void {
  const so = opts.srcOffset ?? 0;
  const d0 = opts.dstOffset ?? 0;
  const count = opts.count ?? src.size - so;
  if (src.dtype !== dst.dtype || src.dtype === 'f16') {
    throw new Error(`copyInto: src ${shapeStr(src)} → dst ${shapeStr(dst)}: needs the same 4-byte dtype (f32, i32 or u32)`);
  }
  if (!Number.isInteger(so) || !Number.isInteger(d0) || !Number.isInteger(count) || so < 0 || d0 < 0 || count < 0 ||
      so + count > src.size || d0 + count > dst.size) {
    throw new Error(`copyInto: ${count} elements from offset ${so} of src ${shapeStr(src)} to offset ${d0} of dst ${shapeStr(dst)} is out of range`);
  }
  if (count === 0) return;
  if (src.buffer === dst.buffer && src.offset + so * 4 === dst.offset + d0 * 4) return; // copy onto itself
  if (overlaps(src, so, count, dst, d0, count)) throw new Error('copyInto: source and destination ranges overlap');
  launch({ op: 'copy', n: count, a: { t: src, off: so }, y: { t: dst, off: d0 } });
}

/**
 * Rows [dstRow, dstRow + rows) of dst = rows [srcRow, srcRow + rows) of src (default: all of src's rows, from row
 * 0), a buffer-to-buffer copy in stream order. A row is everything after dim 0; both views' byte offsets are
 * honoured (a raw `gpu.stream.copy(t.buffer, 0, …)` of a view would copy the wrong bytes). Same dtype and row
 * width; the byte ranges must be 4-byte aligned (always true for f32 / i32 / u32) and must not overlap.
 */
export function copyRows(src: Tensor, dst: Tensor, opts: { srcRow?: number; dstRow?: number; rows?: number } = {}): void {
  const op = 'copyRows';
  const width = (t: Tensor) => (t.shape.length ? t.size / t.shape[0] : 1);
  if (src.dtype !== dst.dtype || width(src) !== width(dst)) throw new Error(`${op}: src ${shapeStr(src)} and dst ${shapeStr(dst)} differ in dtype or row width`);
  const s0 = opts.srcRow ?? 0;
  const d0 = opts.dstRow ?? 0;
  const rows = opts.rows ?? (src.shape[0] ?? 1) - s0;
  const total = (t: Tensor) => t.shape[0] ?? 1;
  if (![s0, d0, rows].every((v) => Number.isInteger(v) && v >= 0) || s0 + rows > total(src) || d0 + rows > total(dst)) {
    throw new Error(`${op}: ${rows} rows from row ${s0} of src ${shapeStr(src)} to row ${d0} of dst ${shapeStr(dst)} are out of range`);
  }
  const rowBytes = width(src) * DTYPE_BYTES[src.dtype];
  const from = src.offset + s0 * rowBytes;
  const to = dst.offset + d0 * rowBytes;
  const bytes = rows * rowBytes;
  if (bytes === 0) return;
  if (from % 4 || to % 4 || bytes % 4) throw new Error(`${op}: byte range (${from} → ${to}, ${bytes} bytes) is not 4-byte aligned; use copyInto`);
  for (const t of [src, dst]) if (t.isReleased) throw new Error(`${op}: ${t.label ?? 'tensor'} used after release`);
  if (overlaps(src, s0 * width(src), rows * width(src), dst, d0 * width(dst), rows * width(dst))) throw new Error(`${op}: source and destination rows overlap`);
  src.gpu.stream.copy(src.buffer, from, dst.buffer, to, bytes);
}

/** Every element of t = value (f32, i32, u32; f16 when the view is 4-byte aligned and has an even size). */
export function fill(t: Tensor, value: number): void {
  const w = new DataView(new ArrayBuffer(4));
  let n = t.size;
  let view = t;
  switch (t.dtype) {
    case 'f32': w.setFloat32(0, value, true); break;
    case 'i32':
    case 'u32':
      if (!Number.isInteger(value)) throw new Error(`fill: ${value} is not an integer for ${t.dtype} tensor`);
      w.setUint32(0, value >>> 0, true);
      break;
    case 'f16': {
      if (t.offset % 4 !== 0 || t.size % 2 !== 0) throw new Error(`fill: f16 tensor ${shapeStr(t)} must be 4-byte aligned with an even size`);
      const h = f32ToF16(value);
      w.setUint32(0, (h | (h << 16)) >>> 0, true);
      n = t.size / 2;
      view = new Tensor(t.gpu, t.buffer, [n], 'u32', t.offset, false, t.label);
      break;
    }
  }
  launch({ op: 'fill', n, y: { t: view }, bits: w.getUint32(0, true) });
}
