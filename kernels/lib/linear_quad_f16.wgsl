// acc + Σ of four products in f16 arithmetic (LinearOptions.f16Math, shader-f16 only): both quads are rounded
// to f16, their dot product is computed in f16, and the result is accumulated in f32. Error and range: see
// `f16Math` in src/ops/linear.ts.
fn quad(xq: vec4f, wq: vec4f, acc: f32) -> f32 {
  return acc + f32(dot(vec4<f16>(xq), vec4<f16>(wq)));
}
