// Op cases for countNonFinite (src/ops/checkFinite.ts): f32 and f16, every kind of non-finite bit pattern
// (quiet/signalling NaN with payloads, ±Inf) next to the finite extremes that must not count (±max, ±0,
// subnormals); unaligned views surrounded by NaN junk (a read outside the view would be counted); the
// one-workgroup path, the two-pass path and slices longer than SMALL; the count written at a word offset
// inside a larger buffer (the policy's chunk + flag readback) with the other words untouched.
import { countNonFinite } from '../../ops/checkFinite.js';
import { countNonFiniteRef } from '../../ref/checkFinite.js';
import { Tensor, f16ToF32Array, f32ToF16 } from '../../tensor.js';
import type { Rng } from '../../util/rng.js';
import type { OpCase } from '../opHarness.js';
import { simpleCase } from './elementwise.js';

const EXACT = { atol: 0, rtol: 0 };

const F32_BAD = [0x7fc00000, 0x7f800001, 0xffffffff, 0xffc00000, 0x7f800000, 0xff800000, 0x7fbfffff];
const F32_EDGE = [0x7f7fffff, 0xff7fffff, 0x00000001, 0x80000001, 0x80000000, 0x00000000, 0x00800000];
const F16_BAD = [0x7e00, 0x7c01, 0xffff, 0xfe00, 0x7c00, 0xfc00, 0x7dff];
const F16_EDGE = [0x7bff, 0xfbff, 0x0001, 0x8001, 0x8000, 0x0000, 0x0400];

interface COpts { f16?: boolean; bad?: number; all?: boolean; unaligned?: boolean; outOffset?: number; perf?: boolean; tag?: string }

/** Raw element bits (u32 words for f32, u16 halves for f16) with `bad` non-finite values at random positions. */
function makeBits(rng: Rng, n: number, o: COpts): Uint32Array | Uint16Array {
  const f16 = !!o.f16;
  const bits = f16 ? new Uint16Array(n) : new Uint32Array(n);
  const vals = rng.normals(n, 100);
  const w = new Uint32Array(vals.buffer);
  for (let k = 0; k < n; k++) bits[k] = f16 ? f32ToF16(vals[k]) : w[k];
  const bad = f16 ? F16_BAD : F32_BAD;
  const edge = f16 ? F16_EDGE : F32_EDGE;
  const pick = (xs: number[]) => xs[Math.floor(rng.uniform() * xs.length)];
  // finite extremes first (they must not count), then the non-finite ones (may overwrite some of them)
  for (let k = 0; k < Math.min(n, 2 * edge.length) && !o.all; k++) bits[Math.floor(rng.uniform() * n)] = pick(edge);
  if (o.all) for (let k = 0; k < n; k++) bits[k] = pick(bad);
  else for (let k = 0; k < (o.bad ?? 0); k++) bits[Math.floor(rng.uniform() * n)] = pick(bad);
  return bits;
}

function values(bits: Uint32Array | Uint16Array): Float32Array {
  return bits instanceof Uint16Array ? f16ToF32Array(bits) : new Float32Array(bits.buffer, bits.byteOffset, bits.length);
}

function checkFiniteCase(n: number, o: COpts = {}): OpCase {
  const dt = o.f16 ? 'f16' : 'f32';
  const name = `countNonFinite ${dt} n=${n}${o.all ? ' all-bad' : ` bad≤${o.bad ?? 0}`}${o.unaligned ? ' unaligned' : ''}` +
    `${o.outOffset !== undefined ? ` out@${o.outOffset}` : ''}${o.tag ? ` [${o.tag}]` : ''}`;
  return simpleCase(name, 'countNonFinite', (gpu, rng) => {
    const bits = makeBits(rng, n, o);
    const tensors: Tensor[] = [];
    let x: Tensor;
    if (o.unaligned) {
      // the view sits at an odd element offset inside a parent filled with NaN junk
      const before = 3, after = 5;
      const total = before + n + after + ((before + n + after) % 2); // f16: whole 4-byte words
      const all = o.f16 ? new Uint16Array(total).fill(0x7e00) : new Uint32Array(total).fill(0x7fc00000);
      all.set(bits, before);
      const parent = Tensor.from(gpu, all, [total], dt);
      tensors.push(parent);
      x = new Tensor(gpu, parent.buffer, [n], dt, parent.offset + before * (o.f16 ? 2 : 4), false);
    } else {
      const data = o.f16 && n % 2 ? Uint16Array.from([...bits, 0]) : bits; // pad f16 to whole words
      const t = Tensor.from(gpu, data, [data.length], dt);
      tensors.push(t);
      x = new Tensor(gpu, t.buffer, [n], dt, t.offset, false);
    }
    let out: Tensor;
    let init: Uint32Array | null = null;
    if (o.outOffset !== undefined) {
      init = Uint32Array.from({ length: o.outOffset + 3 }, (_, k) => 1000 + k);
      out = Tensor.from(gpu, init, [init.length], 'u32');
    } else {
      out = Tensor.empty(gpu, [1], 'u32');
    }
    tensors.push(out);
    const v = values(bits);
    return {
      encode() {
        if (init) out.write(init);
        countNonFinite(x, { out, outOffset: o.outOffset });
      },
      outs: [out],
      reference: () => {
        const c = countNonFiniteRef(v);
        if (!init) return [c];
        const r = Array.from(init);
        r[o.outOffset!] = c;
        return r;
      },
      tensors,
      flops: n,
      bytes: n * (o.f16 ? 2 : 4) + 4,
    };
  }, { perf: o.perf, tol: EXACT });
}

export const checkFiniteCases: OpCase[] = [
  checkFiniteCase(1),
  checkFiniteCase(1, { all: true }),
  checkFiniteCase(7, { bad: 3 }),
  checkFiniteCase(256),
  checkFiniteCase(257, { f16: true, bad: 5 }),
  checkFiniteCase(300, { all: true, f16: true }),
  checkFiniteCase(1000, { bad: 17, unaligned: true }),
  checkFiniteCase(999, { bad: 4, unaligned: true, f16: true }),
  checkFiniteCase(256, { bad: 2, outOffset: 256, tag: 'policy chunk + flag' }),
  checkFiniteCase(4097, { bad: 9 }),
  checkFiniteCase(100_003, { bad: 123, f16: true }),
  checkFiniteCase(4_300_001, { bad: 1000, tag: 'slices > SMALL' }),
];

export const checkFinitePerfCases: OpCase[] = [
  checkFiniteCase(16 * 16, { perf: true, outOffset: 256, tag: 'tiny chunk 16×16' }),
  checkFiniteCase(50 * 80, { perf: true, outOffset: 4000, tag: 'full chunk 50×80' }),
  checkFiniteCase(600 * 2560, { perf: true, tag: '4B hidden 600×2560' }),
];
