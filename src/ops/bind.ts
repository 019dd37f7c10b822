// Binding helpers for ops that take arbitrary (unaligned, aliased) tensor views.
//
// A storage binding's byte offset must be a multiple of minStorageBufferOffsetAlignment (256), so a view is
// bound from the aligned-down start of its bytes and the kernel gets the view's element offset inside that
// binding through Params. A buffer may not be bound read-only and read-write in one dispatch, so an input that
// lives in the same GPUBuffer as the output is read through the output's binding instead (the kernel's
// `*_IS_Y` flags); `span` then covers both views.
import type { BufferRange } from '../gpu/stream.js';
import { DTYPE_BYTES, type Tensor } from '../tensor.js';

export interface Span {
  range: BufferRange;
  /** Element offset of each tensor (in its own dtype) from the start of `range`. */
  offs: number[];
}

/** One binding covering all of `ts` (which must share one GPUBuffer), and each one's element offset in it. */
export function span(op: string, ...ts: Tensor[]): Span {
  const t0 = ts[0];
  const gpu = t0.gpu;
  const align = gpu.limits.minStorageBufferOffsetAlignment;
  let lo = Infinity;
  let hi = 0;
  for (const t of ts) {
    if (t.buffer !== t0.buffer) throw new Error(`${op}: internal error, span over different buffers`);
    lo = Math.min(lo, t.offset);
    hi = Math.max(hi, t.offset + t.byteLength);
  }
  const base = Math.floor(lo / align) * align;
  const size = Math.min(Math.max(4, Math.ceil((hi - base) / 4) * 4), t0.buffer.size - base);
  if (size > gpu.limits.maxStorageBufferBindingSize) {
    throw new Error(`${op}: binding of ${size} bytes exceeds maxStorageBufferBindingSize ${gpu.limits.maxStorageBufferBindingSize} (split the tensor)`);
  }
  const offs = ts.map((t) => {
    const d = t.offset - base;
    if (d % DTYPE_BYTES[t.dtype] !== 0) throw new Error(`${op}: view byte offset ${t.offset} is not a multiple of its ${t.dtype} element size`);
    return d / DTYPE_BYTES[t.dtype];
  });
  return { range: { buffer: t0.buffer, offset: base, size }, offs };
}

/** Byte ranges [offset, offset+bytes) of the two views intersect (same buffer). */
export function overlaps(a: Tensor, aElemOff: number, aCount: number, b: Tensor, bElemOff: number, bCount: number): boolean {
  if (a.buffer !== b.buffer) return false;
  const a0 = a.offset + aElemOff * DTYPE_BYTES[a.dtype];
  const b0 = b.offset + bElemOff * DTYPE_BYTES[b.dtype];
  const a1 = a0 + aCount * DTYPE_BYTES[a.dtype];
  const b1 = b0 + bCount * DTYPE_BYTES[b.dtype];
  return a0 < b1 && b0 < a1;
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
