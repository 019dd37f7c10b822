import { describe, expect, it } from 'vitest';
import {
  DTYPE_SIZES,
  SAFETENSORS_DTYPES,
  bf16BitsToF32Bits,
  bf16ToF16,
  bf16ToF32,
  bitsToF32,
  f16BitsToF32Bits,
  f16ToF32,
  f32BitsToBf16Bits,
  f32BitsToF16Bits,
  f32ToBf16,
  f32ToBits,
  f32ToF16,
  isDtype,
  numberToF16,
  f16ToNumber,
} from '../../src/io/dtypes.js';
import { rng } from './helpers.js';

/** Reference f16 decode by arithmetic. */
function refF16Value(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m === 0 ? s * Infinity : NaN;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Reference f32 → f16 by searching the (monotonic) finite positive f16 values. */
const F16_POS: number[] = Array.from({ length: 0x7c00 }, (_, h) => refF16Value(h));
function refF32ToF16(x: number): number {
  if (Number.isNaN(x)) return -1; // caller checks NaN separately
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a >= 65520) return sign | 0x7c00;
  let lo = 0;
  let hi = 0x7bff;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (F16_POS[mid]! <= a) lo = mid;
    else hi = mid - 1;
  }
  if (F16_POS[lo] === a || lo === 0x7bff) return sign | lo;
  const dl = a - F16_POS[lo]!;
  const dh = F16_POS[lo + 1]! - a;
  if (dl < dh) return sign | lo;
  if (dh < dl) return sign | (lo + 1);
  return sign | (lo % 2 === 0 ? lo : lo + 1);
}

function refF32ToBf16(bits: number): number {
  const x = bitsToF32(bits);
  if (Number.isNaN(x)) return -1;
  const lo = bits >>> 16;
  const vlo = bitsToF32(lo << 16);
  if (vlo === x) return lo;
  const hiBits = (lo + 1) & 0xffff;
  // the value after the largest finite one is 2^128 for rounding purposes (IEEE overflow rule)
  const vhi = (hiBits & 0x7f80) === 0x7f80 ? Math.sign(x) * 2 ** 128 : bitsToF32(hiBits << 16);
  const dl = Math.abs(x - vlo);
  const dh = Math.abs(vhi - x);
  if (dl < dh) return lo;
  if (dh < dl) return hiBits;
  return lo % 2 === 0 ? lo : hiBits;
}

describe('dtypes', () => {
  it('knows every safetensors dtype and its size', () => {
    expect(SAFETENSORS_DTYPES.length).toBe(13);
    expect(DTYPE_SIZES).toMatchObject({ F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1, U16: 2, U32: 4, U64: 8 });
    expect(isDtype('BF16')).toBe(true);
    expect(isDtype('F8_E4M3')).toBe(false);
    expect(isDtype('toString')).toBe(false);
  });

  it('f16 → f32 is exact for all 65536 patterns and f32 → f16 round-trips them', () => {
    const bad: number[] = [];
    for (let h = 0; h < 65536; h++) {
      const v = bitsToF32(f16BitsToF32Bits(h));
      const ref = refF16Value(h);
      const back = f32BitsToF16Bits(f16BitsToF32Bits(h));
      const ok = Number.isNaN(ref)
        ? Number.isNaN(v) && (back & 0x7c00) === 0x7c00 && (back & 0x3ff) !== 0 && (back & 0x8000) === (h & 0x8000)
        : Object.is(v, ref) && back === h;
      if (!ok) bad.push(h);
    }
    expect(bad).toEqual([]);
  });

  it('f32 → f16 rounds to nearest even at every midpoint, including subnormals and overflow', () => {
    const bad: string[] = [];
    const check = (x: number): void => {
      const bits = f32ToBits(x);
      const got = f32BitsToF16Bits(bits);
      const ref = refF32ToF16(bitsToF32(bits));
      if (got !== ref) bad.push(`x=${x}: got ${got.toString(16)}, want ${ref.toString(16)}`);
    };
    for (let h = 0; h < 0x7bff; h++) {
      const mid = (F16_POS[h]! + F16_POS[h + 1]!) / 2; // exactly representable in f32
      const mb = f32ToBits(mid);
      for (const b of [mb - 1, mb, mb + 1]) {
        check(bitsToF32(b));
        check(-bitsToF32(b));
      }
    }
    for (const x of [0, -0, 65504, 65519.99, 65520, 65536, 1e9, -1e9, Infinity, -Infinity, 2 ** -24, 2 ** -25, 2 ** -25 * 1.0001, 2 ** -26, 1e-45, 2 ** -14, 2 ** -14 - 2 ** -25]) {
      check(x);
    }
    const r = rng(7);
    for (let i = 0; i < 100000; i++) {
      const bits = Math.floor(r() * 2 ** 32);
      if ((bits & 0x7fffffff) > 0x7f800000) continue;
      check(bitsToF32(bits));
    }
    expect(bad.slice(0, 10)).toEqual([]);
    expect(f32BitsToF16Bits(0x7fc00000) & 0x7e00).toBe(0x7e00); // NaN stays NaN
    expect(f32BitsToF16Bits(0x7f800001) & 0x7c00).toBe(0x7c00);
    expect(f32BitsToF16Bits(0x7f800001) & 0x3ff).not.toBe(0);
    expect(numberToF16(1)).toBe(0x3c00);
    expect(f16ToNumber(0x3555)).toBeCloseTo(0.333, 3);
  });

  it('bf16 ↔ f32: exact widening, round-to-nearest-even narrowing, NaN kept', () => {
    let bad = 0;
    for (let h = 0; h < 65536; h++) if (bf16BitsToF32Bits(h) !== (h << 16) >>> 0) bad++;
    const r = rng(11);
    for (let i = 0; i < 100000; i++) {
      const bits = Math.floor(r() * 2 ** 32);
      const ref = refF32ToBf16(bits);
      const got = f32BitsToBf16Bits(bits);
      if (ref < 0 ? !Number.isNaN(bitsToF32(got << 16)) : got !== ref) bad++;
    }
    expect(bad).toBe(0);
    // exact midpoints (ties → even) and overflow to inf
    for (const lo of [0x3f80, 0x3f81, 0x0001, 0x7f7f, 0xff7f, 0x8000]) {
      const mid = ((lo << 16) | 0x8000) >>> 0;
      expect(f32BitsToBf16Bits(mid)).toBe(refF32ToBf16(mid));
    }
    expect(f32BitsToBf16Bits(0x7f7fffff)).toBe(0x7f80);
    expect(f32BitsToBf16Bits(0xff7fffff)).toBe(0xff80);
  });

  it('array routines agree with the scalar ones; bf16 → f16 equals bf16 → f32 → f16', () => {
    const n = 65536;
    const bf = new Uint16Array(n);
    for (let i = 0; i < n; i++) bf[i] = i;
    const f = new Float32Array(n);
    bf16ToF32(bf, f);
    const viaF32 = new Uint16Array(n);
    f32ToF16(f, viaF32);
    const direct = new Uint16Array(n);
    bf16ToF16(bf, direct);
    expect(direct).toEqual(viaF32);
    const back = new Uint16Array(n);
    f32ToBf16(f, back);
    let bad = 0;
    for (let i = 0; i < n; i++) if (!Number.isNaN(f[i]!) && back[i] !== i) bad++;
    expect(bad).toBe(0);
    const f2 = new Float32Array(n);
    f16ToF32(bf, f2);
    for (let i = 0; i < n; i += 97) expect(Object.is(f2[i], bitsToF32(f16BitsToF32Bits(i))) || Number.isNaN(f2[i]!)).toBe(true);
    expect(() => bf16ToF32(bf, new Float32Array(3))).toThrow(RangeError);
    // partial count
    const part = new Float32Array(4).fill(9);
    bf16ToF32(new Uint16Array([0x3f80, 0x4000, 0x4040, 0x4080]), part, 2);
    expect([...part]).toEqual([1, 2, 9, 9]);
  });

  it('converts fast (reports throughput; best of 3 must exceed 5 M elements/s even on a loaded machine)', () => {
    const n = 1 << 22;
    const src = new Uint16Array(n);
    const r = rng(3);
    for (let i = 0; i < n; i++) src[i] = Math.floor(r() * 65536);
    const dst = new Uint16Array(n);
    const f = new Float32Array(n);
    let best16 = Infinity;
    let best32 = Infinity;
    for (let k = 0; k < 3; k++) {
      const t0 = performance.now();
      bf16ToF16(src, dst);
      const t1 = performance.now();
      bf16ToF32(src, f);
      const t2 = performance.now();
      best16 = Math.min(best16, t1 - t0);
      best32 = Math.min(best32, t2 - t1);
    }
    console.log(`bf16→f16: ${(n / best16 / 1000).toFixed(0)} M elem/s; bf16→f32: ${(n / best32 / 1000).toFixed(0)} M elem/s`);
    expect(n / best16 / 1000).toBeGreaterThan(5);
  });
});
