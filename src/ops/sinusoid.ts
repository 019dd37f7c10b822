// Sinusoidal embedding of scalars (kernels/sinusoid.wgsl): the DiT timestep features (diffusers
// Timesteps(256, flip_sin_to_cos=True, downscale_freq_shift=1); docs/action-decoder.md §6.1) and the action encoder's τ
// features ([sin, cos], ω_j = exp(−ln(1e4)·j/half), i.e. flipSinToCos=false, shift=0; §5.3).
//
// Precision: ω_i is computed on the CPU once per (dim, shift, maxPeriod) and cached on the Gpu, rounded step by
// step like diffusers' fp32 code: e = f32(f32(−ln maxPeriod)·i), e = f32(e / (half − shift)), ω = f32(exp e).
// The angle f32(v·ω) and its exact range reduction before sin/cos are done in the kernel (kernels/lib/sincos.wgsl).
// The values ride in the dispatch uniform (48 per dispatch), so a call uploads nothing.
import type { Gpu } from '../gpu/device.js';
import type { KernelSpec } from '../gpu/pipelines.js';
import { Tensor } from '../tensor.js';
import { bind } from './views.js';

const VALS_PER_DISPATCH = 48; // 12 vec4f: with the header (8 words once aligned) 56 of a uniform slot's 64 words
// ω table in, rows out; the values themselves ride in the uniform (`vals`), `zero` is the runtime 0 of round_barrier.
const SINUSOID_IO = {
  params: { rows: 'u32', dim: 'u32', half: 'u32', flip: 'u32', out_off: 'u32', zero: 'u32', vals: `vec4f[${VALS_PER_DISPATCH / 4}]` },
  bindings: { Omega: 'read f32', Out: 'write f32' },
} satisfies Pick<KernelSpec, 'params' | 'bindings'>;
const WG = 64;

/** f32 ω_i, i < dim/2, as diffusers' get_timestep_embedding computes it in fp32. */
export function sinusoidOmegaF32(dim: number, downscaleFreqShift: number, maxPeriod = 10000): Float32Array {
  const half = dim / 2;
  const out = new Float32Array(half);
  const nl = Math.fround(-Math.log(maxPeriod));
  for (let i = 0; i < half; i++) out[i] = Math.fround(Math.exp(Math.fround(Math.fround(nl * i) / (half - downscaleFreqShift))));
  return out;
}

const omegas = new WeakMap<Gpu, Map<string, Tensor>>();
function omegaTable(gpu: Gpu, dim: number, shift: number, maxPeriod: number): Tensor {
  let m = omegas.get(gpu);
  if (!m) omegas.set(gpu, (m = new Map()));
  const key = `${dim} ${shift} ${maxPeriod}`;
  let t = m.get(key);
  if (!t) {
    t = gpu.lifetimes.cached(Tensor.from(gpu, sinusoidOmegaF32(dim, shift, maxPeriod), [dim / 2], 'f32', `sinusoid ω ${key}`)); // outlives any scope
    m.set(key, t);
  }
  return t;
}

/**
 * [values.length, dim] f32: row r = [sin(v_r·ω), cos(v_r·ω)] ([cos, sin] with flipSinToCos),
 * ω_i = exp(−ln(maxPeriod)·i/(dim/2 − downscaleFreqShift)), i < dim/2.
 */
export function sinusoidalEmbedding(
  values: number[], dim: number,
  opts: { flipSinToCos: boolean; downscaleFreqShift: number; maxPeriod?: number; out?: Tensor },
  gpu: Gpu,
): Tensor {
  const n = values.length;
  const maxPeriod = opts.maxPeriod ?? 10000;
  const half = dim / 2;
  if (!Number.isInteger(dim) || dim < 2 || dim % 2) throw new Error(`sinusoidalEmbedding: dim ${dim} must be a positive even integer`);
  if (!(half - opts.downscaleFreqShift > 0)) throw new Error(`sinusoidalEmbedding: dim/2 − downscaleFreqShift = ${half - opts.downscaleFreqShift} must be positive`);
  if (!(maxPeriod > 0)) throw new Error(`sinusoidalEmbedding: maxPeriod ${maxPeriod} must be positive`);
  for (const v of values) if (!Number.isFinite(v)) throw new Error(`sinusoidalEmbedding: value ${v} is not finite`);
  const out = opts.out ?? Tensor.empty(gpu, [n, dim], 'f32', 'sinusoid');
  if (out.dtype !== 'f32' || out.size !== n * dim) throw new Error(`sinusoidalEmbedding: out ${out.dtype} [${out.shape}] does not hold f32 [${n}, ${dim}]`);
  if (n === 0) return out;
  const spec: KernelSpec = { file: 'sinusoid', ...SINUSOID_IO, includes: ['sincos'], workgroup: [WG] };
  const kernel = gpu.pipelines.get(spec);
  const omega = omegaTable(gpu, dim, opts.downscaleFreqShift, maxPeriod);
  for (let r0 = 0; r0 < n; r0 += VALS_PER_DISPATCH) {
    const rows = Math.min(VALS_PER_DISPATCH, n - r0);
    const ob = bind('sinusoidalEmbedding', 'out', out, r0 * dim, rows * dim);
    const params = { rows, dim, half, flip: opts.flipSinToCos ? 1 : 0, out_off: ob.off, zero: 0, vals: values.slice(r0, r0 + rows) };
    gpu.stream.dispatch(kernel, { Omega: bind('sinusoidalEmbedding', 'ω', omega).range, Out: ob.range }, params, [Math.ceil((rows * half) / WG)], 'sinusoid');
  }
  return out;
}
