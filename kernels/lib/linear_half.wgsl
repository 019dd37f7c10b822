// f16 weights without shader-f16: halves arrive packed two per u32 and are widened here with integer ops
// (exact for every f16: normals by re-biasing the exponent, subnormals as mantissa · 2⁻²⁴, ±inf / NaN kept).
// On lavapipe this is several times faster than loading vec4<f16> (measured, bench/RESULTS.md), and it lets
// f16 checkpoints run on adapters without the shader-f16 feature. Included by the f16 load libraries.
fn halves_to_f32(h: vec4u) -> vec4f {
  let e = h & vec4u(0x7c00u);
  let normal = bitcast<vec4f>(((h & vec4u(0x7fffu)) << vec4u(13u)) + vec4u(0x38000000u));
  let sub = vec4f(h & vec4u(0x3ffu)) * 5.9604644775390625e-8;
  let special = bitcast<vec4f>(vec4u(0x7f800000u) | ((h & vec4u(0x3ffu)) << vec4u(13u)));
  let v = select(select(normal, sub, e == vec4u(0u)), special, e == vec4u(0x7c00u));
  return bitcast<vec4f>(bitcast<vec4u>(v) | ((h & vec4u(0x8000u)) << vec4u(16u)));
}
fn half_to_f32(h: u32) -> f32 { return halves_to_f32(vec4u(h, 0u, 0u, 0u)).x; }
