// Tensor views → storage bindings: the one place that turns tensors (and strided views of them) into the
// `BufferRange` + element offset a kernel reads, and that checks views against each other.
//
// A storage binding's byte offset must be a multiple of minStorageBufferOffsetAlignment (256 on every adapter we
// target), but a view may start anywhere (a row window, a column block of a fused projection). So every view is
// bound from the aligned-down start of the bytes it touches, and the kernel gets the view's remaining element
// offset inside that binding as a param (`x_off`, …). The binding covers only the bytes the view touches, never
// a whole (possibly huge) buffer.
//
// Aliasing: WebGPU rejects one buffer bound read-only and read-write in the same dispatch, and two writable
// bindings whose ranges overlap. Ops that allow in-place use read an input that lives in the output's buffer
// through the output's binding (`bindShared`, the kernel's `*_IS_Y` consts); ops that do not reject it
// (`checkDistinct`). `overlaps` / `checkSameIndexAlias` reject overlaps that would race.
import type { BufferRange } from '../gpu/stream.js';
import { DTYPE_BYTES, type Tensor } from '../tensor.js';

/** A binding and the element offset (in the tensor's dtype) of the view's first element inside it. */
export interface Bound {
  range: BufferRange;
  off: number;
}

/**
 * A strided view of per-head vectors: element (token t, head h, dim e) is at
 * `offset + t*rowStride + h*headStride + e`, in elements counted from the tensor's first element
 * (`tensor.offset` bytes into `tensor.buffer`). `headStride` defaults to the head dim. The Qwen3.5 q_proj output,
 * where q and gate interleave per head ([q₀ | g₀ | q₁ | g₁ | …]), is q = {rowStride: H·2d, headStride: 2d} and
 * gate = {offset: d, rowStride: H·2d, headStride: 2d}.
 */
export interface HeadView {
  tensor: Tensor;
  rowStride: number;
  offset?: number;
  headStride?: number;
}

/** A bound HeadView: `off` plus the strides the kernel needs (`row`, `head`), all in elements. */
export interface BoundHeads extends Bound {
  row: number;
  head: number;
}

/** One binding over the byte ranges [lo, hi) of `buffer` (aligned down, rounded up to 4 bytes, clamped to the buffer). */
function rangeOf(op: string, what: string, t: Tensor, lo: number, hi: number): BufferRange {
  const lim = t.gpu.limits;
  const base = Math.floor(lo / lim.minStorageBufferOffsetAlignment) * lim.minStorageBufferOffsetAlignment;
  const size = Math.min(Math.max(4, Math.ceil((hi - base) / 4) * 4), t.buffer.size - base);
  if (size > lim.maxStorageBufferBindingSize) {
    throw new Error(`${op}: ${what} binding of ${size} bytes exceeds maxStorageBufferBindingSize ${lim.maxStorageBufferBindingSize} (split the tensor)`);
  }
  return { buffer: t.buffer, offset: base, size };
}

function elemBytes(op: string, what: string, t: Tensor): number {
  if (t.isReleased) throw new Error(`${op}: ${what} ${t.label ? `'${t.label}' ` : ''}used after release`);
  t.checkBindable(op);
  const bpe = DTYPE_BYTES[t.dtype];
  if (t.offset % bpe !== 0) throw new Error(`${op}: ${what} byte offset ${t.offset} is not a multiple of its ${t.dtype} element size`);
  return bpe;
}

/**
 * Bind elements [elemOff, elemOff + count) of `t` (default: all of it). `off` is elemOff's position inside the
 * binding. Works for any element offset: no view needs 256-byte alignment.
 */
export function bind(op: string, what: string, t: Tensor, elemOff = 0, count = t.size - elemOff): Bound {
  const bpe = elemBytes(op, what, t);
  const start = t.offset + elemOff * bpe;
  const range = rangeOf(op, what, t, start, start + Math.max(count, 1) * bpe);
  return { range, off: (start - range.offset!) / bpe };
}

/** `bind` for an optional input: absent → the device's dummy buffer (fills a read-only slot), offset 0. */
export function bindOptional(gpu: Tensor['gpu'], op: string, what: string, t: Tensor | null | undefined): Bound {
  return t ? bind(op, what, t) : { range: { buffer: gpu.dummy }, off: 0 };
}

/**
 * One binding covering all of `ts` (which must share one GPUBuffer) and each one's element offset in it: the
 * output's binding through which inputs in the same buffer are read (`*_IS_Y`).
 */
export function bindShared(op: string, ...ts: Tensor[]): { range: BufferRange; offs: number[] } {
  const t0 = ts[0];
  let lo = Infinity;
  let hi = 0;
  for (const t of ts) {
    elemBytes(op, 'view', t);
    if (t.buffer !== t0.buffer) throw new Error(`${op}: internal error, shared binding over different buffers`);
    lo = Math.min(lo, t.offset);
    hi = Math.max(hi, t.offset + t.byteLength);
  }
  const range = rangeOf(op, 'shared', t0, lo, hi);
  return { range, offs: ts.map((t) => (t.offset - range.offset!) / DTYPE_BYTES[t.dtype]) };
}

const isNat = (x: number) => Number.isInteger(x) && x >= 0;

/** Validate a HeadView of `rows` tokens × `heads` heads × `dim` values (f32) and bind the elements it touches. */
export function bindHeads(op: string, what: string, v: HeadView, rows: number, heads: number, dim: number): BoundHeads {
  const t = v.tensor;
  if (t.dtype !== 'f32') throw new Error(`${op}: ${what} must be f32, got ${t.dtype}`);
  const off = v.offset ?? 0;
  const head = v.headStride ?? dim;
  for (const [k, x] of [['offset', off], ['rowStride', v.rowStride], ['headStride', head]] as const) {
    if (!isNat(x)) throw new Error(`${op}: ${what}.${k} must be a non-negative integer, got ${x}`);
  }
  const extent = rows === 0 ? 0 : (rows - 1) * v.rowStride + (heads - 1) * head + dim;
  if (off + extent > t.size) {
    throw new Error(
      `${op}: ${what} view (offset ${off}, rowStride ${v.rowStride}, headStride ${head}) of ${rows} rows × ${heads} heads × ${dim} ` +
        `reaches element ${off + extent - 1}, past tensor [${t.shape}] (${t.size} elements)`,
    );
  }
  return { ...bind(op, what, t, Math.min(off, Math.max(0, t.size - 1)), Math.max(extent, 1)), row: v.rowStride, head };
}

/** Byte ranges of elements [aOff, aOff+aCount) of a and [bOff, bOff+bCount) of b intersect (same buffer). */
export function overlaps(a: Tensor, aOff: number, aCount: number, b: Tensor, bOff: number, bCount: number): boolean {
  if (a.buffer !== b.buffer) return false;
  const a0 = a.offset + aOff * DTYPE_BYTES[a.dtype];
  const b0 = b.offset + bOff * DTYPE_BYTES[b.dtype];
  return a0 < b0 + bCount * DTYPE_BYTES[b.dtype] && b0 < a0 + aCount * DTYPE_BYTES[a.dtype];
}

/**
 * An input read at the same element index the kernel writes (x[i] → y[i]) may alias the output only exactly
 * (same start: each invocation reads its element before writing it) or not at all; a shifted overlap races.
 */
export function checkSameIndexAlias(op: string, what: string, x: Tensor, y: Tensor): void {
  if (x.buffer !== y.buffer || x.offset === y.offset) return;
  if (overlaps(x, 0, x.size, y, 0, y.size)) {
    throw new Error(`${op}: ${what} [${x.shape}] partially overlaps the output [${y.shape}] (only exact in-place is allowed)`);
  }
}

/** For ops without in-place support: no written buffer is also read, and no two written ones are the same buffer. */
export function checkDistinct(op: string, reads: [string, Tensor | null | undefined][], writes: [string, Tensor | null | undefined][]): void {
  const w = writes.filter((e): e is [string, Tensor] => !!e[1]);
  for (let k = 0; k < w.length; k++) {
    for (const [rn, r] of reads) {
      if (r && r.buffer === w[k][1].buffer) throw new Error(`${op}: ${w[k][0]} (written) shares a GPU buffer with ${rn} (read); pass separate tensors`);
    }
    for (let k2 = k + 1; k2 < w.length; k2++) {
      if (w[k2][1].buffer === w[k][1].buffer) throw new Error(`${op}: ${w[k][0]} and ${w[k2][0]} share a GPU buffer`);
    }
  }
}

export function shapeStr(t: Tensor): string {
  return `[${t.shape.join(', ')}]${t.dtype === 'f32' ? '' : ` ${t.dtype}`}`;
}

const rwDummies = new WeakMap<object, GPUBuffer>();
/**
 * A small buffer for an unused read_write binding. `gpu.dummy` cannot fill that slot when it also fills a
 * read-only slot of the same dispatch (one buffer may not be both read-only and writable storage there).
 */
export function rwDummy(gpu: Tensor['gpu']): GPUBuffer {
  let b = rwDummies.get(gpu);
  if (!b) {
    b = gpu.device.createBuffer({ size: 256, usage: GPUBufferUsage.STORAGE, label: 'rw-dummy' });
    rwDummies.set(gpu, b);
  }
  return b;
}
