// Tensor handle: a GPU buffer + byte offset + shape + dtype. Row-major, contiguous.
//
// Activations are f32; weights are f32 or f16 (bf16 checkpoints are converted on load). A tensor either owns
// its buffer (it came from the pool; `release()` gives it back after the next submit, and `gpu.scope` releases
// it for you: src/gpu/lifetimes.ts) or is a view / a weight that someone else owns (`release()` is then a no-op).
// Binding a tensor (or a strided view of one) to a kernel goes through src/ops/views.ts.
import type { Gpu } from './gpu/device.js';

export type DType = 'f32' | 'f16' | 'i32' | 'u32';

export const DTYPE_BYTES: Record<DType, number> = { f32: 4, f16: 2, i32: 4, u32: 4 };

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export class Tensor {
  private released = false;

  constructor(
    readonly gpu: Gpu,
    readonly buffer: GPUBuffer,
    readonly shape: readonly number[],
    readonly dtype: DType = 'f32',
    /** byte offset of element 0 in `buffer` */
    readonly offset = 0,
    readonly owned = false,
    readonly label?: string,
  ) {}

  /** A fresh pooled tensor (contents undefined). */
  static empty(gpu: Gpu, shape: readonly number[], dtype: DType = 'f32', label?: string): Tensor {
    const bytes = Math.max(4, numel(shape) * DTYPE_BYTES[dtype]);
    const t = new Tensor(gpu, gpu.buffers.acquire(bytes, label), shape, dtype, 0, true, label);
    gpu.lifetimes.born(t);
    return t;
  }

  /** A pooled tensor filled from host data. */
  static from(gpu: Gpu, data: Float32Array | Uint16Array | Int32Array | Uint32Array, shape: readonly number[], dtype?: DType, label?: string): Tensor {
    const dt: DType = dtype ?? (data instanceof Float32Array ? 'f32' : data instanceof Int32Array ? 'i32' : data instanceof Uint32Array ? 'u32' : 'f16');
    if (data.length !== numel(shape)) throw new Error(`Tensor.from${label ? ` (${label})` : ''}: ${data.length} values for shape [${shape}]`);
    const t = Tensor.empty(gpu, shape, dt, label);
    t.write(data);
    return t;
  }

  /** Released back to the pool (an owned tensor after `release()`); any further use is a bug. */
  get isReleased(): boolean {
    return this.released;
  }

  get size(): number {
    return numel(this.shape);
  }

  get byteLength(): number {
    return this.size * DTYPE_BYTES[this.dtype];
  }

  /**
   * Called by src/ops/views.ts before binding this tensor's bytes to a kernel (the only way a tensor is bound).
   * Plain tensors always can be; a quantised weight (src/quant/tensor.ts) refuses, naming itself.
   */
  checkBindable(_op: string): void {}

  /** Same bytes, another shape (no copy). */
  reshape(shape: readonly number[]): Tensor {
    if (numel(shape) !== this.size) throw new Error(`reshape [${this.shape}] -> [${shape}]: element count differs`);
    return new Tensor(this.gpu, this.buffer, shape, this.dtype, this.offset, false, this.label);
  }

  /** View of rows [start, start+count) along dim 0 (no copy). */
  rows(start: number, count: number): Tensor {
    const rowElems = this.size / this.shape[0];
    if (start < 0 || start + count > this.shape[0]) throw new Error(`rows(${start}, ${count}) out of range for [${this.shape}]`);
    return new Tensor(this.gpu, this.buffer, [count, ...this.shape.slice(1)], this.dtype, this.offset + start * rowElems * DTYPE_BYTES[this.dtype], false, this.label);
  }

  write(data: ArrayBufferView, elemOffset = 0): void {
    const at = this.offset + elemOffset * DTYPE_BYTES[this.dtype];
    if (data.byteLength % 4 !== 0) {
      // queue.writeBuffer needs whole 4-byte words (an odd number of f16 values): pad, only inside our own buffer.
      if (!this.owned || at + data.byteLength + 2 > this.buffer.size) throw new Error(`tensor ${this.label ?? ''}: write of ${data.byteLength} bytes is not a multiple of 4`);
      const padded = new Uint8Array(data.byteLength + 2);
      padded.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      this.gpu.stream.write(this.buffer, at, padded);
      return;
    }
    this.gpu.stream.write(this.buffer, at, data);
  }

  async read(): Promise<Float32Array | Int32Array | Uint32Array | Uint16Array> {
    const buf = await this.gpu.stream.read(this.buffer, this.offset, Math.ceil(this.byteLength / 4) * 4);
    switch (this.dtype) {
      case 'f32':
        return new Float32Array(buf, 0, this.size);
      case 'i32':
        return new Int32Array(buf, 0, this.size);
      case 'u32':
        return new Uint32Array(buf, 0, this.size);
      case 'f16':
        return new Uint16Array(buf, 0, this.size);
    }
  }

  /** Read as f32 values (f16 is widened). */
  async readF32(): Promise<Float32Array> {
    const v = await this.read();
    if (v instanceof Float32Array) return v;
    if (v instanceof Uint16Array) return f16ToF32Array(v);
    return Float32Array.from(v);
  }

  release(): void {
    if (!this.owned || this.released) return;
    this.released = true;
    this.gpu.buffers.release(this.buffer);
    this.gpu.lifetimes.released(this);
  }
}

/** IEEE half → float, exact. */
export function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

export function f16ToF32Array(a: Uint16Array): Float32Array {
  const out = new Float32Array(a.length);
  for (let k = 0; k < a.length; k++) out[k] = f16ToF32(a[k]);
  return out;
}

const cvtF = new Float32Array(1);
const cvtU = new Uint32Array(cvtF.buffer);
/** float → IEEE half, round to nearest even (subnormals, inf, nan handled). */
export function f32ToF16(x: number): number {
  cvtF[0] = x;
  const b = cvtU[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let r = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    if (rem > half || (rem === half && r & 1)) r++;
    return sign | r;
  }
  let r = mant >>> 13;
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && r & 1)) {
    r++;
    if (r === 0x400) {
      r = 0;
      e++;
      if (e >= 31) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | r;
}

export function f32ToF16Array(a: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(a.length);
  for (let k = 0; k < a.length; k++) out[k] = f32ToF16(a[k]);
  return out;
}
