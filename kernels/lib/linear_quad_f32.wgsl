// acc + Σ of four products in f32, one fma chain in k order (kernels/linear.wgsl; the default arithmetic).
fn quad(xq: vec4f, wq: vec4f, acc: f32) -> f32 {
  return fma(xq.w, wq.w, fma(xq.z, wq.z, fma(xq.y, wq.y, fma(xq.x, wq.x, acc))));
}
