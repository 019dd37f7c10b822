// numpy arrays as openpi's msgpack_numpy puts them on the wire: raw bytes + a numpy dtype string + a shape.
import * as os from 'node:os';

export type ElemKind = 'f' | 'i' | 'u' | 'b';

export interface DtypeInfo {
  /** The dtype string as received (e.g. "<f4", "|u1"). */
  str: string;
  kind: ElemKind;
  itemsize: number;
  littleEndian: boolean;
}

const LITTLE = os.endianness() === 'LE';

/** Parses a numpy dtype string (`<f4`, `|u1`, `>i2`, `=f8`, `|b1`); null for anything else (object, void, complex, strings…). */
export function parseDtype(s: unknown): DtypeInfo | null {
  if (typeof s !== 'string') return null;
  const m = /^([<>|=]?)([fiub])(\d+)$/.exec(s);
  if (!m) return null;
  const order = m[1] ?? '';
  const kind = m[2] as ElemKind;
  const itemsize = Number(m[3]);
  const ok =
    (kind === 'f' && (itemsize === 2 || itemsize === 4 || itemsize === 8)) ||
    ((kind === 'i' || kind === 'u') && (itemsize === 1 || itemsize === 2 || itemsize === 4 || itemsize === 8)) ||
    (kind === 'b' && itemsize === 1);
  if (!ok) return null;
  const littleEndian = order === '>' ? false : order === '<' ? true : LITTLE;
  return { str: s, kind, itemsize, littleEndian };
}

/** A decoded ndarray: `data` holds exactly prod(shape) · itemsize bytes. */
export class NdArray {
  constructor(
    readonly dtype: DtypeInfo,
    readonly shape: number[],
    readonly data: Uint8Array,
  ) {}

  get size(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  /** e.g. `uint8[3,224,224]` */
  describe(): string {
    return `${dtypeName(this.dtype)}[${this.shape.join(',')}]`;
  }

  /** Every element as a float64 (any numeric dtype, any byte order). */
  toFloat64(): Float64Array {
    const n = this.size;
    const out = new Float64Array(n);
    const dv = new DataView(this.data.buffer, this.data.byteOffset, this.data.byteLength);
    const { kind, itemsize, littleEndian: le } = this.dtype;
    for (let i = 0; i < n; i++) {
      const o = i * itemsize;
      let v: number;
      if (kind === 'f') v = itemsize === 4 ? dv.getFloat32(o, le) : itemsize === 8 ? dv.getFloat64(o, le) : halfToFloat(dv.getUint16(o, le));
      else if (kind === 'b') v = dv.getUint8(o) ? 1 : 0;
      else if (kind === 'u') v = itemsize === 1 ? dv.getUint8(o) : itemsize === 2 ? dv.getUint16(o, le) : itemsize === 4 ? dv.getUint32(o, le) : Number(dv.getBigUint64(o, le));
      else v = itemsize === 1 ? dv.getInt8(o) : itemsize === 2 ? dv.getInt16(o, le) : itemsize === 4 ? dv.getInt32(o, le) : Number(dv.getBigInt64(o, le));
      out[i] = v;
    }
    return out;
  }

  /** A float32 ndarray (native little-endian bytes) wrapping a copy of `values`. */
  static fromFloat32(values: Float32Array, shape: number[]): NdArray {
    checkShape(shape, values.length);
    const copy = new Float32Array(values);
    const bytes = new Uint8Array(copy.buffer, copy.byteOffset, copy.byteLength);
    if (!LITTLE) swapInPlace(bytes, 4);
    return new NdArray(parseDtype('<f4')!, shape.slice(), bytes);
  }

  static fromUint8(values: Uint8Array, shape: number[]): NdArray {
    checkShape(shape, values.length);
    return new NdArray(parseDtype('|u1')!, shape.slice(), values);
  }

  static fromFloat64(values: Float64Array, shape: number[]): NdArray {
    checkShape(shape, values.length);
    const copy = new Float64Array(values);
    const bytes = new Uint8Array(copy.buffer, copy.byteOffset, copy.byteLength);
    if (!LITTLE) swapInPlace(bytes, 8);
    return new NdArray(parseDtype('<f8')!, shape.slice(), bytes);
  }
}

function checkShape(shape: number[], n: number): void {
  const p = shape.reduce((a, b) => a * b, 1);
  if (p !== n) throw new RangeError(`ndarray: shape [${shape.join(', ')}] holds ${p} values, got ${n}`);
}

function swapInPlace(b: Uint8Array, size: number): void {
  for (let o = 0; o + size <= b.length; o += size) b.subarray(o, o + size).reverse();
}

export function dtypeName(d: DtypeInfo): string {
  if (d.kind === 'b') return 'bool';
  const base = d.kind === 'f' ? 'float' : d.kind === 'u' ? 'uint' : 'int';
  return `${base}${d.itemsize * 8}`;
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}
