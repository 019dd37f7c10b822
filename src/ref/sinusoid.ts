// Plain CPU reference of the sinusoidal embedding (diffusers get_timestep_embedding; docs/action-decoder.md §6.1, §5.3).
// Rounded to f32 where diffusers' fp32 code rounds (the exponent, ω, and the angle v·ω); sin/cos in f64.
const f32 = Math.fround;

/** [values.length, dim]: [sin(v·ω), cos(v·ω)] ([cos, sin] with flip), ω_i = exp(−ln(maxPeriod)·i/(dim/2 − shift)). */
export function sinusoidRef(values: number[], dim: number, o: { flipSinToCos: boolean; downscaleFreqShift: number; maxPeriod?: number }): Float64Array {
  const half = dim / 2;
  const out = new Float64Array(values.length * dim);
  const lnP = f32(-Math.log(o.maxPeriod ?? 10000));
  values.forEach((v, r) => {
    for (let i = 0; i < half; i++) {
      const exponent = f32(f32(lnP * i) / (half - o.downscaleFreqShift));
      const a = f32(f32(v) * f32(Math.exp(exponent)));
      const s = Math.sin(a), c = Math.cos(a);
      out[r * dim + i] = o.flipSinToCos ? c : s;
      out[r * dim + half + i] = o.flipSinToCos ? s : c;
    }
  });
  return out;
}
