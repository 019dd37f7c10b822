/**
 * safetensors dtypes and float conversion routines.
 *
 * All conversions are table-free bit manipulation on 32-bit integers and handle signed zeros, subnormals,
 * infinities and NaNs. Narrowing conversions (f32 → f16, f32 → bf16) round to nearest, ties to even, exactly
 * as IEEE 754 (and PyTorch's `.to(torch.float16 / torch.bfloat16)`) do; values too large for f16 become ±inf.
 * NaNs stay NaNs (quiet; the top payload bits are kept).
 *
 * The array routines work on whole chunks: `dst` must have at least `src.length` elements. They assume the
 * host is little-endian (as safetensors data is), which holds for every platform Node and WebGPU run on.
 */

/** Every dtype the safetensors format defines (and that this reader accepts). */
export const SAFETENSORS_DTYPES = [
  'F64', 'F32', 'F16', 'BF16', 'I64', 'I32', 'I16', 'I8', 'U8', 'BOOL', 'U16', 'U32', 'U64',
] as const;

export type Dtype = (typeof SAFETENSORS_DTYPES)[number];

/** The float dtypes a weight may be stored in (any of them per tensor). */
export type FloatDtype = 'F32' | 'F16' | 'BF16';

/** Bytes per element of each dtype. */
export const DTYPE_SIZES: Readonly<Record<Dtype, number>> = Object.freeze({
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1, U16: 2, U32: 4, U64: 8,
});

export function isDtype(s: unknown): s is Dtype {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_SIZES, s);
}

export function dtypeSize(d: Dtype): number {
  return DTYPE_SIZES[d];
}

/** True for F32, F16 and BF16 (the dtypes weights may use). F64 is deliberately not a weight dtype. */
export function isFloatDtype(d: string): d is FloatDtype {
  return d === 'F32' || d === 'F16' || d === 'BF16';
}

// ---------------------------------------------------------------------------------------------------------
// Scalar bit conversions.

/** bf16 bits → f32 bits (exact). */
export function bf16BitsToF32Bits(h: number): number {
  return (h << 16) >>> 0;
}

/** f16 bits → f32 bits (exact; subnormals are normalised, NaN payloads kept). */
export function f16BitsToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  const man = h & 0x3ff;
  let bits: number;
  if (exp === 0) {
    if (man === 0) {
      bits = sign;
    } else {
      // Subnormal: value = man * 2^-24. Shift the leading one up to bit 10 (the implicit bit).
      const shift = Math.clz32(man) - 21; // clz32(0x400) = 21
      bits = sign | ((113 - shift) << 23) | (((man << shift) & 0x3ff) << 13);
    }
  } else if (exp === 31) {
    bits = sign | 0x7f800000 | (man << 13);
  } else {
    bits = sign | ((exp + 112) << 23) | (man << 13);
  }
  return bits >>> 0;
}

/** f32 bits → f16 bits, round to nearest even; overflow → ±inf; underflow → subnormal or ±0. */
export function f32BitsToF16Bits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const a = x & 0x7fffffff;
  if (a >= 0x7f800000) {
    // inf or NaN (NaN: keep the top 10 payload bits, force quiet so it cannot become inf)
    return a === 0x7f800000 ? sign | 0x7c00 : sign | 0x7e00 | ((a >>> 13) & 0x3ff);
  }
  if (a >= 0x477ff000) return sign | 0x7c00; // >= 65520 rounds to inf
  if (a >= 0x38800000) {
    // Normal f16 range (>= 2^-14): rebias the exponent (127 → 15) and round the 13 dropped bits.
    const m = a - 0x38000000;
    return sign | ((m + 0xfff + ((m >>> 13) & 1)) >>> 13);
  }
  if (a >= 0x33000000) {
    // Subnormal f16: value = q * 2^-24 with q = mant >> (126 - e); e in 102..112 → shift 14..24.
    const e = a >>> 23;
    const shift = 126 - e;
    const mant = (a & 0x7fffff) | 0x800000;
    const q = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    return sign | (q + (rem > half || (rem === half && (q & 1) !== 0) ? 1 : 0));
  }
  return sign; // |x| <= 2^-25 rounds to zero (2^-25 itself is a tie → even → 0)
}

/** f32 bits → bf16 bits, round to nearest even; NaN stays (quiet) NaN. */
export function f32BitsToBf16Bits(x: number): number {
  if ((x & 0x7fffffff) > 0x7f800000) return ((x >>> 16) | 0x40) & 0xffff;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** Number → f32 bits (the number is first rounded to f32 the way Math.fround does). */
export function f32ToBits(v: number): number {
  scratchF32[0] = v;
  return scratchU32[0]!;
}

/** f32 bits → number. */
export function bitsToF32(bits: number): number {
  scratchU32[0] = bits >>> 0;
  return scratchF32[0]!;
}

/** Scalar helpers: number ↔ f16 / bf16 bits. */
export function f16ToNumber(h: number): number {
  return bitsToF32(f16BitsToF32Bits(h));
}
export function numberToF16(v: number): number {
  return f32BitsToF16Bits(f32ToBits(v));
}
export function bf16ToNumber(h: number): number {
  return bitsToF32(bf16BitsToF32Bits(h));
}
export function numberToBf16(v: number): number {
  return f32BitsToBf16Bits(f32ToBits(v));
}

// ---------------------------------------------------------------------------------------------------------
// Chunk conversions. `n` defaults to src.length.

function u32View(a: Float32Array): Uint32Array {
  return new Uint32Array(a.buffer, a.byteOffset, a.length);
}

function checkLengths(srcLen: number, dstLen: number, n: number, what: string): void {
  if (!Number.isInteger(n) || n < 0 || n > srcLen || n > dstLen) {
    throw new RangeError(`${what}: count ${n} exceeds source (${srcLen}) or destination (${dstLen}) length`);
  }
}

/** bf16 → f32 (exact). */
export function bf16ToF32(src: Uint16Array, dst: Float32Array, n: number = src.length): void {
  checkLengths(src.length, dst.length, n, 'bf16ToF32');
  const d = u32View(dst);
  for (let i = 0; i < n; i++) d[i] = src[i]! << 16;
}

/** f16 → f32 (exact). */
export function f16ToF32(src: Uint16Array, dst: Float32Array, n: number = src.length): void {
  checkLengths(src.length, dst.length, n, 'f16ToF32');
  const d = u32View(dst);
  for (let i = 0; i < n; i++) d[i] = f16BitsToF32Bits(src[i]!);
}

/** f32 → f16, round to nearest even. */
export function f32ToF16(src: Float32Array, dst: Uint16Array, n: number = src.length): void {
  checkLengths(src.length, dst.length, n, 'f32ToF16');
  const s = u32View(src);
  for (let i = 0; i < n; i++) dst[i] = f32BitsToF16Bits(s[i]!);
}

/** f32 → bf16, round to nearest even. */
export function f32ToBf16(src: Float32Array, dst: Uint16Array, n: number = src.length): void {
  checkLengths(src.length, dst.length, n, 'f32ToBf16');
  const s = u32View(src);
  for (let i = 0; i < n; i++) dst[i] = f32BitsToBf16Bits(s[i]!);
}

/** bf16 → f16 through f32 (exact widening, then one round to nearest even: no double rounding). */
export function bf16ToF16(src: Uint16Array, dst: Uint16Array, n: number = src.length): void {
  checkLengths(src.length, dst.length, n, 'bf16ToF16');
  for (let i = 0; i < n; i++) dst[i] = f32BitsToF16Bits(src[i]! << 16);
}

/** f16 → bf16 through f32 (exact widening, then round to nearest even). */
export function f16ToBf16(src: Uint16Array, dst: Uint16Array, n: number = src.length): void {
  checkLengths(src.length, dst.length, n, 'f16ToBf16');
  for (let i = 0; i < n; i++) dst[i] = f32BitsToBf16Bits(f16BitsToF32Bits(src[i]!));
}
