// Tensor lifetimes (src/gpu/lifetimes.ts): gpu.scope releases what it does not return or keep, the live registry
// names a leaked tensor by its label, and ops leave nothing behind. Also the offset-correct row copy and the
// view binder (src/ops/views.ts) on unaligned views.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Gpu } from '../../src/gpu/device.js';
import { countNonFinite } from '../../src/ops/checkFinite.js';
import { add, copyRows } from '../../src/ops/elementwise.js';
import { gatedDeltaRuleChunked } from '../../src/ops/gatedDeltaNet.js';
import { bind, bindHeads } from '../../src/ops/views.js';
import { Tensor } from '../../src/tensor.js';

let gpu: Gpu;
beforeAll(async () => { gpu = await Gpu.create(); });
afterAll(() => gpu?.destroy());

const f32 = (n: number, k = 0) => Float32Array.from({ length: n }, (_, i) => i + k);

describe('gpu.scope', () => {
  it('releases tensors born inside except the returned and kept ones; returned ones join the outer scope', () => {
    let inner: Tensor[] = [];
    let kept!: Tensor;
    let returned!: { a: Tensor; list: Tensor[] };
    const outerTmp = gpu.scope(() => {
      returned = gpu.scope(() => {
        inner = [Tensor.empty(gpu, [4], 'f32', 'tmp0'), Tensor.empty(gpu, [4], 'f32', 'tmp1')];
        kept = gpu.keep(Tensor.empty(gpu, [4], 'f32', 'kept'));
        return { a: Tensor.empty(gpu, [4], 'f32', 'ret.a'), list: [Tensor.empty(gpu, [4], 'f32', 'ret.b')] };
      });
      expect(inner.every((t) => t.isReleased)).toBe(true);
      expect(returned.a.isReleased || returned.list[0].isReleased || kept.isReleased).toBe(false);
      return Tensor.empty(gpu, [2], 'f32', 'outer');
    });
    // the outer scope did not return `returned`, so it released it; `kept` survives both
    expect(returned.a.isReleased && returned.list[0].isReleased).toBe(true);
    expect(kept.isReleased || outerTmp.isReleased).toBe(false);
    kept.release();
    outerTmp.release();
  });

  it('releases everything when the function throws, and refuses an async function', async () => {
    let t!: Tensor;
    expect(() => gpu.scope(() => { t = Tensor.empty(gpu, [3], 'f32', 'doomed'); throw new Error('boom'); })).toThrow('boom');
    expect(t.isReleased).toBe(true);
    const mark = gpu.lifetimes.mark();
    expect(() => gpu.scope(async () => { Tensor.empty(gpu, [3], 'f32', 'async'); })).toThrow(/Promise/);
    expect(gpu.lifetimes.leakedSince(mark)).toEqual([]);
  });

  it('a binding of a released tensor throws naming it', () => {
    const t = Tensor.empty(gpu, [8], 'f32', 'gone');
    t.release();
    expect(() => add(t, t)).toThrow(/'gone' used after release/);
  });
});

describe('live-tensor registry', () => {
  it('names the culprit of a leak by label and shape', () => {
    const mark = gpu.lifetimes.mark();
    const leaky = Tensor.empty(gpu, [2, 3], 'f32', 'forgotten.scratch');
    expect(gpu.lifetimes.leakedSince(mark)).toEqual(['forgotten.scratch [2, 3] f32']);
    leaky.release();
    expect(gpu.lifetimes.leakedSince(mark)).toEqual([]);
  });

  it('ops with internal scratch leave only their outputs alive', async () => {
    const mark = gpu.lifetimes.mark();
    const x = Tensor.from(gpu, f32(20000), [20000], 'f32', 'x');
    const count = countNonFinite(x); // > SMALL elements: two dispatches through pooled partials
    const [L, H, d] = [70, 2, 8];
    const q = Tensor.from(gpu, f32(L * H * d).map((v) => Math.sin(v)), [L, H * d], 'f32', 'q');
    const gb = Tensor.from(gpu, new Float32Array(L * H).fill(-0.1), [L, H], 'f32', 'g');
    const beta = Tensor.from(gpu, new Float32Array(L * H).fill(0.5), [L, H], 'f32', 'beta');
    const state = Tensor.from(gpu, new Float32Array(H * d * d), [H, d, d], 'f32', 'state');
    const view = { tensor: q, rowStride: H * d };
    const out = gatedDeltaRuleChunked({ q: view, k: view, v: view, g: gb, beta, state, L, numKeyHeads: H, numValueHeads: H, keyDim: d, valueDim: d });
    expect((await count.read())[0]).toBe(0);
    expect(gpu.lifetimes.leakedSince(mark)).toEqual(['x [20000] f32', 'countNonFinite [1] u32', 'q [70, 16] f32', 'g [70, 2] f32', 'beta [70, 2] f32', 'state [2, 8, 8] f32', 'gatedDeltaNet.o [70, 2, 8] f32']);
    for (const t of [x, count, q, gb, beta, state, out]) t.release();
    expect(gpu.lifetimes.leakedSince(mark)).toEqual([]);
  });
});

describe('copyRows and views', () => {
  it('copies rows between unaligned views, honouring both offsets', async () => {
    const src = Tensor.from(gpu, f32(5 * 3), [5, 3]);
    const dstParent = Tensor.from(gpu, new Float32Array(7 * 3).fill(-1), [7, 3]);
    const dst = dstParent.rows(1, 6); // byte offset 12: not 256-aligned
    copyRows(src.rows(2, 3), dst, { srcRow: 1, dstRow: 2, rows: 2 }); // src rows 3, 4 → dstParent rows 3, 4
    const got = Array.from(await dstParent.read());
    expect(got).toEqual([...Array(9).fill(-1), 9, 10, 11, 12, 13, 14, ...Array(6).fill(-1)]);
    expect(() => copyRows(src, dst, { rows: 6 })).toThrow(/copyRows: 6 rows/);
    expect(() => copyRows(dstParent.rows(0, 3), dstParent.rows(2, 3))).toThrow(/overlap/);
    src.release();
    dstParent.release();
  });

  it('binds from the aligned-down start and passes the remainder as an element offset', () => {
    const t = Tensor.empty(gpu, [1000]);
    const v = t.rows(70, 900); // byte offset 280
    const b = bind('test', 'v', v, 5, 10);
    expect(b.range.offset).toBe(256);
    expect(b.off).toBe(70 + 5 - 64);
    expect(b.range.size).toBe(Math.ceil((280 + 60 - 256) / 4) * 4);
    const h = bindHeads('test', 'q', { tensor: t, rowStride: 40, offset: 3, headStride: 20 }, 4, 2, 8);
    expect([h.off, h.row, h.head, h.range.offset]).toEqual([3, 40, 20, 0]);
    expect(() => bindHeads('test', 'q', { tensor: t, rowStride: 400, offset: 3 }, 4, 2, 8)).toThrow(/test: q view .* reaches element 1218, past tensor \[1000\]/);
    t.release();
  });
});
