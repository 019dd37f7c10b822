// NaN guard (kernels/check_finite.wgsl): count the non-finite values (NaN, ±Inf) of a tensor on the GPU.
//
// countNonFinite(t) → a u32 tensor [1] holding the count (0 = all finite). `t` is f32 or f16, any (unaligned)
// view. The count is a bit test on the exponent field (WGSL has no isnan), so it holds whatever the
// compiler's float assumptions. With `out` + `outOffset` the count goes to word `outOffset` of `out` (any
// 4-byte dtype; the word is a u32), e.g. right behind data that is read back in the same mapAsync — that is how
// Policy.act() reads the flag together with the action chunk.
//
// Dispatch: up to SMALL elements one workgroup counts everything (one dispatch); beyond, the elements are
// split into ≤ MAX_GROUPS contiguous slices (one workgroup each) whose partial counts a second dispatch of the
// same kernel (MODE 1) adds up. The partials come from the pool (released right after), so steady-state calls
// allocate nothing but the output.
import type { KernelSpec } from '../gpu/pipelines.js';
import { DTYPE_BYTES, Tensor } from '../tensor.js';
import { bind, shapeStr } from './views.js';

const WG = 256;
/** Up to this many elements: one workgroup, one dispatch. */
const SMALL = WG * 16;
const MAX_GROUPS = 1024;

function spec(mode: 0 | 1, f16: boolean): KernelSpec {
  return {
    file: 'check_finite',
    // X as u32 words whatever the dtype (f16: two halves a word), counts as u32 words.
    params: { n: 'u32', x_off: 'u32', y_off: 'u32', groups: 'u32' },
    bindings: { X: 'read u32', Y: 'write u32' },
    consts: { MODE: mode, F16: f16 }, workgroup: [WG] };
}

export function countNonFinite(t: Tensor, opts: { out?: Tensor; outOffset?: number } = {}): Tensor {
  const op = 'countNonFinite';
  const gpu = t.gpu;
  if (t.dtype !== 'f32' && t.dtype !== 'f16') throw new Error(`${op}: input must be f32 or f16 (integers are always finite), got ${shapeStr(t)}`);
  const out = opts.out ?? Tensor.empty(gpu, [1], 'u32', op);
  const outOffset = opts.outOffset ?? 0;
  if (DTYPE_BYTES[out.dtype] !== 4) throw new Error(`${op}: out must have a 4-byte dtype (the count is a u32 word), got ${shapeStr(out)}`);
  if (!Number.isInteger(outOffset) || outOffset < 0 || outOffset >= out.size) {
    throw new Error(`${op}: outOffset ${outOffset} is outside out ${shapeStr(out)}`);
  }
  if (out.buffer === t.buffer) throw new Error(`${op}: out shares a buffer with the input ${shapeStr(t)}`);
  const n = t.size;
  const xs = bind(op, 'input', t);
  const ys = bind(op, 'out', out);
  const yOff = ys.off + outOffset;
  const f16 = t.dtype === 'f16';
  if (n <= SMALL) {
    gpu.stream.dispatch(gpu.pipelines.get(spec(0, f16)), { X: xs.range, Y: ys.range }, { n, x_off: xs.off, y_off: yOff, groups: 1 }, [1], op);
    return out;
  }
  const groups = Math.min(MAX_GROUPS, Math.ceil(n / SMALL));
  gpu.scope(() => {
    const ps = bind(op, 'partials', Tensor.empty(gpu, [groups], 'u32', `${op}.partials`));
    gpu.stream.dispatch(gpu.pipelines.get(spec(0, f16)), { X: xs.range, Y: ps.range }, { n, x_off: xs.off, y_off: ps.off, groups }, [groups], op);
    gpu.stream.dispatch(gpu.pipelines.get(spec(1, false)), { X: ps.range, Y: ys.range }, { n: groups, x_off: ps.off, y_off: yOff, groups: 1 }, [1], `${op}.sum`);
  });
  return out;
}
