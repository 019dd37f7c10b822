// Op cases for the rotary embeddings (src/ops/rope.ts): text M-RoPE (Qwen3.5 4B and tiny shapes, interleaved and
// chunked, q inside the fused [q|gate] projection, positions from a realistic ropeIndex with an image in the
// middle, large decode positions) and the vision 2-D rope (q and k inside the fused qkv output).
import { ropeText, ropeVision } from '../../ops/rope.js';
import { ropeTextRef, ropeVisionRef } from '../../ref/rope.js';
import { decodePositions, ropeIndex, visionPatchCoords } from '../../model/positions.js';
import { Tensor } from '../../tensor.js';
import { TOL, type OpCase } from '../opHarness.js';

/** A realistic [3, L] position table: text, one image of grid 1×gh×gw in the middle, text. */
export function mixedPositions(L: number): { positions: Int32Array; ropeDelta: number; desc: string } {
  // Largest image (gh, gw) from this list whose merged token count fits in L with ≥ 1 text token on each side.
  const grids: [number, number][] = [[16, 22], [8, 12], [4, 4], [2, 2]];
  const g = grids.find(([h, w]) => (h * w) / 4 + 2 <= L);
  if (!g) {
    const types = new Array(L).fill(0);
    return { ...ropeIndex(types, [], 2), desc: 'text' };
  }
  const n = (g[0] * g[1]) / 4;
  const pre = Math.max(1, Math.floor((L - n) / 4));
  const types = [...new Array(pre).fill(0), ...new Array(n).fill(1), ...new Array(L - pre - n).fill(0)];
  return { ...ropeIndex(types, [{ t: 1, h: g[0], w: g[1] }], 2), desc: `img ${g[0]}×${g[1]}` };
}

interface TextShape {
  L: number;
  numHeads: number;
  headDim: number;
  rotaryDim: number;
  sec: [number, number, number];
  theta?: number;
  interleaved?: boolean;
  /** heads interleaved with same-size gate heads ([q_h | g_h], headStride 2·headDim) */
  fusedGate?: boolean;
  /** extra leading positions columns skipped with positionOffset */
  posOffset?: number;
  /** decode positions starting at this absolute index (instead of ropeIndex positions) */
  decodeStart?: number;
  perf?: boolean;
  tag?: string;
}

export function ropeTextCase(s: TextShape): OpCase {
  const theta = s.theta ?? 1e7;
  const interleaved = s.interleaved ?? true;
  const hs = s.fusedGate ? 2 * s.headDim : s.headDim;
  const rowStride = s.numHeads * hs;
  const off = s.posOffset ?? 0;
  const name = `ropeText L=${s.L} H=${s.numHeads} d=${s.headDim} rot=${s.rotaryDim} sec=[${s.sec}] ${interleaved ? 'interleaved' : 'chunked'}` +
    `${s.fusedGate ? ' [q|gate]' : ''}${off ? ` posOff=${off}` : ''}${s.decodeStart !== undefined ? ` decode@${s.decodeStart}` : ''}${s.tag ? ` [${s.tag}]` : ''}`;
  return {
    name,
    op: 'rope',
    perf: s.perf,
    tol: TOL.f32,
    setup(gpu, rng) {
      const Lp = off + s.L;
      let pos: Int32Array;
      if (s.decodeStart !== undefined) pos = decodePositions(s.decodeStart, Lp, -992);
      else pos = mixedPositions(Lp).positions;
      const x0 = rng.normals(s.L * rowStride);
      const x = Tensor.from(gpu, x0, [s.L, rowStride]);
      const p = Tensor.from(gpu, pos, [3, Lp], 'i32');
      const opts = { L: s.L, numHeads: s.numHeads, headDim: s.headDim, rotaryDim: s.rotaryDim, theta, mropeSection: s.sec, interleaved, positionOffset: off };
      const view = { tensor: x, rowStride, headStride: hs };
      const encode = () => ropeText(view, p, opts);
      return {
        encode,
        async run() { x.write(x0); encode(); return x.read() as Promise<Float32Array>; },
        reference: () => ropeTextRef(x0, pos, Lp, { L: s.L, numHeads: s.numHeads, headDim: s.headDim, rowStride, headStride: hs }, opts),
        flops: s.L * s.numHeads * (s.rotaryDim / 2) * 6,
        bytes: s.L * s.numHeads * s.rotaryDim * 8 + s.L * 12,
        dispose() { x.release(); p.release(); },
      };
    },
  };
}

interface VisionShape {
  grids: { t: number; h: number; w: number }[];
  numHeads: number;
  headDim: number;
  /** q and k inside a fused qkv buffer [Np, 3·H·d] (q at 0, k at H·d) instead of a contiguous [Np, H·d] */
  fused?: boolean;
  /** rotate the k part of the fused buffer */
  k?: boolean;
  /** x is a view at this many rows into a larger buffer (not 256-byte aligned) */
  rowOffset?: number;
  perf?: boolean;
  tag?: string;
}

export function ropeVisionCase(s: VisionShape): OpCase {
  const coordsArr = visionPatchCoords(s.grids, 2);
  const L = coordsArr.length / 2;
  const width = s.numHeads * s.headDim;
  const rowStride = s.fused ? 3 * width : width;
  const offset = s.fused && s.k ? width : 0;
  const r0 = s.rowOffset ?? 0;
  const name = `ropeVision L=${L} H=${s.numHeads} d=${s.headDim} grids=${s.grids.map((g) => `${g.t}×${g.h}×${g.w}`).join('+')}` +
    `${s.fused ? (s.k ? ' k in qkv' : ' q in qkv') : ''}${r0 ? ` rows+${r0}` : ''}${s.tag ? ` [${s.tag}]` : ''}`;
  return {
    name,
    op: 'rope',
    perf: s.perf,
    tol: TOL.f32,
    setup(gpu, rng) {
      const x0 = rng.normals((r0 + L) * rowStride);
      const base = Tensor.from(gpu, x0, [r0 + L, rowStride]);
      const x = base.rows(r0, L);
      const c = Tensor.from(gpu, coordsArr, [2, L], 'i32');
      const view = { tensor: x, rowStride, offset };
      const encode = () => ropeVision(view, c, { L, numHeads: s.numHeads, headDim: s.headDim, theta: 10000 });
      return {
        encode,
        async run() { base.write(x0); encode(); return base.read() as Promise<Float32Array>; },
        reference: () => ropeVisionRef(x0, coordsArr, L, { L, numHeads: s.numHeads, headDim: s.headDim, rowStride, offset: r0 * rowStride + offset }, 10000),
        flops: L * s.numHeads * (s.headDim / 2) * 6,
        bytes: L * width * 8 + L * 8,
        dispose() { base.release(); c.release(); },
      };
    },
  };
}

const QWEN = { headDim: 256, rotaryDim: 64, sec: [11, 11, 10] as [number, number, number] };
const TINY = { headDim: 64, rotaryDim: 16, sec: [3, 3, 2] as [number, number, number] };

export const ropeCases: OpCase[] = [
  ...[1, 7, 64, 257].flatMap((L) => [
    ropeTextCase({ L, numHeads: 3, ...QWEN, fusedGate: true }),
    ropeTextCase({ L, numHeads: 2, ...TINY }),
  ]),
  ropeTextCase({ L: 64, numHeads: 4, ...QWEN }),
  ropeTextCase({ L: 7, numHeads: 2, ...TINY, interleaved: false }),
  ropeTextCase({ L: 64, numHeads: 3, headDim: 64, rotaryDim: 64, sec: [12, 10, 10], interleaved: false }),
  ropeTextCase({ L: 7, numHeads: 2, ...TINY, fusedGate: true, posOffset: 57 }),
  ropeTextCase({ L: 1, numHeads: 4, ...QWEN, fusedGate: true, posOffset: 300 }),
  ropeTextCase({ L: 7, numHeads: 2, ...QWEN, decodeStart: 120000 }),
  ropeTextCase({ L: 5, numHeads: 2, ...TINY, theta: 10000, decodeStart: 4000 }),
  ropeVisionCase({ grids: [{ t: 1, h: 2, w: 2 }], numHeads: 1, headDim: 64 }),
  ropeVisionCase({ grids: [{ t: 1, h: 6, w: 10 }], numHeads: 3, headDim: 64, fused: true }),
  ropeVisionCase({ grids: [{ t: 1, h: 6, w: 10 }], numHeads: 3, headDim: 64, fused: true, k: true }),
  ropeVisionCase({ grids: [{ t: 1, h: 14, w: 22 }, { t: 2, h: 4, w: 2 }], numHeads: 2, headDim: 64 }),
  ropeVisionCase({ grids: [{ t: 1, h: 6, w: 10 }], numHeads: 1, headDim: 32, rowOffset: 3 }),
  ropeVisionCase({ grids: [{ t: 1, h: 16, w: 16 }, { t: 1, h: 2, w: 2 }], numHeads: 2, headDim: 32, fused: true, k: true }),
];

export const ropePerfCases: OpCase[] = [
  ropeTextCase({ L: 600, numHeads: 16, ...QWEN, fusedGate: true, perf: true, tag: '4B q' }),
  ropeTextCase({ L: 600, numHeads: 4, ...QWEN, perf: true, tag: '4B k' }),
  ropeTextCase({ L: 1, numHeads: 16, ...QWEN, fusedGate: true, decodeStart: 600, perf: true, tag: '4B q decode' }),
  ropeVisionCase({ grids: [{ t: 1, h: 40, w: 60 }], numHeads: 16, headDim: 64, fused: true, perf: true, tag: '4B vision q' }),
  ropeTextCase({ L: 600, numHeads: 4, ...TINY, fusedGate: true, perf: true, tag: 'tiny q' }),
  ropeTextCase({ L: 600, numHeads: 2, ...TINY, perf: true, tag: 'tiny k' }),
  ropeVisionCase({ grids: [{ t: 1, h: 16, w: 16 }], numHeads: 2, headDim: 32, fused: true, perf: true, tag: 'tiny vision q' }),
];
