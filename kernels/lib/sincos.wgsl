// sincos_reduced(a) = vec2f(sin(a), cos(a)) for large f32 angles (rope positions up to ~10^5, sinusoid buckets).
// WGSL only bounds sin/cos error on [-π, π] (and GPU fast paths degrade quickly outside it), so the angle is
// first reduced by a three-part Cody–Waite split of 2π: C1 = 25/4 and C2 = 17/512 have 5 significant bits, so
// k·C1 and k·C2 are exact for |k| < 2^19 (|a| < ~3.3e6), and a − k·C1 is exact by Sterbenz; only the last two
// steps round, leaving |error| ≲ 5e-7 on the reduced angle (vs ~|a|·6e-8 for a one-constant reduction).
// The angle `a` itself must already be the f32 value PyTorch would use (computed by the caller).
const RR_INV_2PI: f32 = 0.15915494309189535;
const RR_C1: f32 = 6.25;
const RR_C2: f32 = 0.033203125;
const RR_C3: f32 = -1.7817820413523e-5; // 2π − C1 − C2

fn sincos_reduced(a: f32) -> vec2f {
  let k = round(a * RR_INV_2PI);
  var r = a - k * RR_C1;
  r = r - k * RR_C2;
  r = r - k * RR_C3;
  return vec2f(sin(r), cos(r));
}

// Returns x, but through an integer op on a uniform that is always 0 (`zero`), so the driver cannot contract the
// product that produced x into a later fma: PyTorch rounds the angle pos·inv_freq to f32 before cos/sin, and an
// unrounded (fused) angle would differ by up to ulp(angle)/2 (≈3e-5 at angle 600).
fn round_barrier(x: f32, zero: u32) -> f32 {
  return bitcast<f32>(bitcast<u32>(x) ^ zero);
}
