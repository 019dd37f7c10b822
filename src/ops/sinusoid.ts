// Sinusoidal embedding of scalars (kernels/sinusoid.wgsl): the DiT timestep features (diffusers
// Timesteps(256, flip_sin_to_cos=True, downscale_freq_shift=1); docs/action-decoder.md §6.1) and the action encoder's τ
// features ([sin, cos], ω_j = exp(−ln(1e4)·j/half), i.e. flipSinToCos=false, shift=0; §5.3).
//
// Precision: ω_i is computed on the CPU once per (dim, shift, maxPeriod) and cached on the Gpu, rounded step by
// step like diffusers' fp32 code: e = f32(f32(−ln maxPeriod)·i), e = f32(e / (half − shift)), ω = f32(exp e).
// The angle f32(v·ω) and its exact range reduction before sin/cos are done in the kernel (kernels/lib/sincos.wgsl).
// The values ride in the dispatch uniform (48 per dispatch), so a call uploads nothing.
import type { Gpu } from '../gpu/device.js';
import { f, u, type Param } from '../gpu/stream.js';
import type { KernelSpec } from '../gpu/pipelines.js';
import { Tensor } from '../tensor.js';

const VALS_PER_DISPATCH = 48; // the Params header takes 8 of the 64 uniform scalars; 12 vec4f follow it
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
    t = Tensor.from(gpu, sinusoidOmegaF32(dim, shift, maxPeriod), [dim / 2], 'f32', `sinusoid ω ${key}`);
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
  if (out.offset % 4) throw new Error('sinusoidalEmbedding: out byte offset must be a multiple of 4');
  if (n === 0) return out;
  const spec: KernelSpec = { file: 'sinusoid', bindings: ['read', 'write'], includes: ['sincos'], workgroup: [WG] };
  const kernel = gpu.pipelines.get(spec);
  const omega = omegaTable(gpu, dim, opts.downscaleFreqShift, maxPeriod);
  for (let r0 = 0; r0 < n; r0 += VALS_PER_DISPATCH) {
    const rows = Math.min(VALS_PER_DISPATCH, n - r0);
    const params: Param[] = [u(rows), u(dim), u(half), u(opts.flipSinToCos ? 1 : 0), u(out.offset / 4 + r0 * dim), u(0), u(0), u(0)];
    for (let k = 0; k < VALS_PER_DISPATCH; k++) params.push(f(k < rows ? values[r0 + k] : 0));
    // Whole buffer for out: a caller's view need not be 256-byte aligned.
    gpu.stream.dispatch(kernel, [omega.binding(), { buffer: out.buffer }], params, [Math.ceil((rows * half) / WG)], 'sinusoid');
  }
  return out;
}
