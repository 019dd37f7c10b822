import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as nodePath from 'node:path';
import { DTYPE_SIZES, type Dtype } from '../../src/io/dtypes.js';
import type { TensorToWrite } from '../../src/io/safetensorsWriter.js';

/** Deterministic PRNG (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randInt(r: () => number, lo: number, hi: number): number {
  return lo + Math.floor(r() * (hi - lo + 1));
}

export function randomBytes(r: () => number, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(r() * 256);
  return b;
}

export async function tmpDir(prefix = 'qvla-io-'): Promise<string> {
  return fsp.mkdtemp(nodePath.join(os.tmpdir(), prefix));
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** A tensor with random bytes; for float dtypes, finite random values of that dtype. */
export function randomTensor(r: () => number, name: string, dtype: Dtype, shape: number[]): TensorToWrite {
  const n = numel(shape);
  const bytes = new Uint8Array(n * DTYPE_SIZES[dtype]);
  if (dtype === 'F32') {
    const f = new Float32Array(bytes.buffer);
    for (let i = 0; i < n; i++) f[i] = (r() * 2 - 1) * 4;
  } else if (dtype === 'F64') {
    const f = new Float64Array(bytes.buffer);
    for (let i = 0; i < n; i++) f[i] = (r() * 2 - 1) * 4;
  } else if (dtype === 'BF16' || dtype === 'F16') {
    const u = new Uint16Array(bytes.buffer);
    const f = new Float32Array(1);
    const fu = new Uint32Array(f.buffer);
    for (let i = 0; i < n; i++) {
      f[0] = (r() * 2 - 1) * 4;
      if (dtype === 'BF16') u[i] = fu[0]! >>> 16;
      else {
        // a random finite f16: sign, exponent 0..30, mantissa
        u[i] = (randInt(r, 0, 1) << 15) | (randInt(r, 0, 30) << 10) | randInt(r, 0, 1023);
      }
    }
  } else if (dtype === 'BOOL') {
    for (let i = 0; i < n; i++) bytes[i] = r() < 0.5 ? 0 : 1;
  } else {
    bytes.set(randomBytes(r, bytes.length));
  }
  return { name, dtype, shape, data: bytes };
}
