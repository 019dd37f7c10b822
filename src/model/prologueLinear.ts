// Linears with the row transform before them folded in (kernels/prologue_linear.wgsl): Y = act(x̂·Wᵀ + b) with
// - normLinear: x̂ = LayerNorm(X) (no affine) over each row's K values, optionally modulated adaLN-style by one
//   shared vector pair: x̂·(1 + scale) + shift. The DiT's LayerNorms all feed straight into a linear (norm1 →
//   Q/K/V, norm2 → FFN fc1, output norm → proj_out_2);
// - swigluLinear: X rows are [gate | up] (the text decoder's gate/up projections fused into one GEMM at load),
//   x̂ = silu(gate)·up, then down_proj.
// Folding the transform saves a dispatch and a round trip of the activations. Same tiling and K order as the tiled
// `linear` kernel, so a row's result depends on that row alone (batched rows stay bit-identical to unbatched
// ones); the result equals transform-then-linear within f32 rounding, not bit for bit (LayerNorm statistics are
// computed per invocation from the row, in two passes).
//
// Lives with the model code (it serves the DiT and the text MLP); checked against an f64 reference on odd shapes
// in test/model/prologueLinear.test.ts.
import type { KernelSpec } from '../gpu/pipelines.js';
import { Tensor } from '../tensor.js';
import { ACT, type Activation } from '../ops/activations.js';
import { bind, bindOptional } from '../ops/views.js';
import { linear } from '../ops/linear.js';
import { layerNorm, modulatedLayerNorm } from '../ops/norm.js';
import { isQuantized } from '../quant/index.js';

/**
 * Whether the transform is folded into the linear: 'auto' = folded on GPUs, where these small linears are bound by
 * dispatch overhead and memory traffic, and not on software adapters (lavapipe), where the per-element transform
 * is recomputed for every column block on the CPU's ALUs and costs more than the dispatch it saves (measured on
 * tiny: the DiT step and the prompt prefill got slower folded). Unfolded, `normLinear` runs the norm into
 * `scratch` and then the tiled linear (same results within f32 rounding).
 */
export const prologueConfig: { fold: 'auto' | boolean } = { fold: 'auto' };

export function foldPrologue(gpu: Tensor['gpu']): boolean {
  return prologueConfig.fold === 'auto' ? !gpu.isSoftware : prologueConfig.fold;
}

const PROLOGUE_LINEAR_IO = {
  params: {
    M: 'u32', N: 'u32', K: 'u32',
    x_off: 'u32', w_off: 'u32', y_off: 'u32', b_off: 'u32', sc_off: 'u32', sh_off: 'u32',
    ldx: 'u32', ldw: 'u32', ldy: 'u32',
    eps: 'f32',
  },
  bindings: { X: 'read f32', W: 'read WT', Bias: 'read f32', Mod: 'read f32', Y: 'write f32' },
} satisfies Pick<KernelSpec, 'params' | 'bindings'>;

export interface NormLinearOptions {
  eps: number;
  bias?: Tensor;
  /** adaLN: [scale | shift] ('scale-shift') or [shift | scale] ('shift-scale'), 2·K values shared by every row. */
  mod?: { tensor: Tensor; order: 'scale-shift' | 'shift-scale' };
  act?: Activation;
  /** [M, K] f32 for the normalised rows when the norm is not folded (see prologueConfig); else a pooled temporary. */
  scratch?: Tensor;
  /** Add into `out` instead of overwriting it. Requires `out`. */
  accumulate?: boolean;
  out?: Tensor;
  label?: string;
}

/** x: [M, K] f32 (any leading dims flattened into M); w: [N, K] f32 / f16. Returns [M, N] f32 (or `out`). */
export function normLinear(x: Tensor, w: Tensor, opts: NormLinearOptions): Tensor {
  // quantised weights (docs/quantization.md) take the unfolded path: the quantised GEMMs dequantise in their own kernels
  if (foldPrologue(x.gpu) && !isQuantized(w)) return prologueLinear('normLinear', x, w, opts);
  const h = opts.scratch ?? Tensor.empty(x.gpu, x.shape, 'f32', 'normLinear.x');
  if (h.size !== x.size || h.dtype !== 'f32') throw new Error(`normLinear${opts.label ? ` (${opts.label})` : ''}: scratch [${h.shape}] must be f32 with x's ${x.size} values`);
  if (opts.mod) modulatedLayerNorm(x, opts.mod.tensor, { eps: opts.eps, order: opts.mod.order, out: h });
  else layerNorm(x, null, null, { eps: opts.eps, out: h });
  const y = linear(h, w, { bias: opts.bias, act: opts.act, accumulate: opts.accumulate, out: opts.out, tiled: true, label: opts.label });
  if (!opts.scratch) h.release();
  return y;
}

export type SwigluLinearOptions = Omit<NormLinearOptions, 'eps' | 'mod'>;

/** x: [M, 2K] f32 rows [gate | up]; w: [N, K]. Returns act(silu(gate)·up·Wᵀ + b), [M, N] f32 (or `out`). */
export function swigluLinear(x: Tensor, w: Tensor, opts: SwigluLinearOptions = {}): Tensor {
  return prologueLinear('swigluLinear', x, w, { ...opts, eps: 1, swiglu: true });
}

function prologueLinear(op: string, x: Tensor, w: Tensor, opts: NormLinearOptions & { swiglu?: boolean }): Tensor {
  const gpu = x.gpu;
  const what = `${op}${opts.label ? ` (${opts.label})` : ''}`;
  if (w.shape.length !== 2) throw new Error(`${what}: w [${w.shape}] must be 2-D [N, K]`);
  const [N, K] = w.shape;
  const ldx = opts.swiglu ? 2 * K : K;
  if (x.dtype !== 'f32') throw new Error(`${what}: x must be f32`);
  if (x.shape[x.shape.length - 1] !== ldx) throw new Error(`${what}: x [${x.shape}] and w [${w.shape}] disagree on K${opts.swiglu ? ' (x rows are [gate | up], 2·K wide)' : ''}`);
  if (w.dtype !== 'f32' && w.dtype !== 'f16') throw new Error(`${what}: w must be f32 or f16, got ${w.dtype}`);
  if (!(opts.eps > 0)) throw new Error(`${what}: eps ${opts.eps} must be positive`);
  const M = x.size / ldx;
  if (opts.bias && (opts.bias.size !== N || opts.bias.dtype !== 'f32')) throw new Error(`${what}: bias must be f32 with ${N} values`);
  if (opts.mod && (opts.mod.tensor.size !== 2 * K || opts.mod.tensor.dtype !== 'f32')) throw new Error(`${what}: mod must be f32 with 2·K = ${2 * K} values`);
  if (opts.accumulate && !opts.out) throw new Error(`${what}: accumulate needs out`);
  const out = opts.out ?? Tensor.empty(gpu, [...x.shape.slice(0, -1), N], 'f32', opts.label);
  if (out.dtype !== 'f32' || out.size !== M * N) throw new Error(`${what}: out [${out.shape}] must be f32 with ${M}×${N} values`);
  for (const [n, t] of [['x', x], ['w', w], ['bias', opts.bias], ['mod', opts.mod?.tensor]] as const) {
    if (t && t.buffer === out.buffer) throw new Error(`${what}: out shares a GPUBuffer with ${n}`);
  }
  if (M === 0) return out;
  const xs = bind(what, 'x', x);
  const ws = bind(what, 'w', w);
  const ys = bind(what, 'out', out);
  const bs = bindOptional(gpu, what, 'bias', opts.bias);
  const ms = bindOptional(gpu, what, 'mod', opts.mod?.tensor);
  const scaleFirst = opts.mod?.order !== 'shift-scale';
  const mOff = ms.off;
  // as the tiled linear: TM×TN outputs per invocation, 8×8 invocations; WG_X ≥ TM (one statistics invocation per row)
  const TM = 4, TN = 4, wg = [8, 8] as const;
  const spec: KernelSpec = {
    file: 'prologue_linear', ...PROLOGUE_LINEAR_IO,
    aliases: { WT: w.dtype === 'f16' ? 'f16' : 'f32' },
    includes: ['activations'],
    consts: { PROLOGUE: opts.swiglu ? 1 : 0, HAS_BIAS: !!opts.bias, HAS_MOD: !!opts.mod, ACCUM: !!opts.accumulate, ACT: ACT[opts.act ?? 'none'], TM, TN },
    workgroup: [wg[0], wg[1]],
  };
  gpu.stream.dispatch(
    gpu.pipelines.get(spec),
    { X: xs.range, W: ws.range, Bias: bs.range, Mod: ms.range, Y: ys.range },
    {
      M, N, K, x_off: xs.off, w_off: ws.off, y_off: ys.off, b_off: bs.off,
      sc_off: mOff + (scaleFirst ? 0 : K), sh_off: mOff + (scaleFirst ? K : 0), ldx, ldw: K, ldy: N, eps: opts.eps,
    },
    [Math.ceil(N / (TN * wg[0])), Math.ceil(M / (TM * wg[1])), 1],
    opts.label,
  );
  return out;
}
