// Operand loads for the linear kernels, 4-aligned operands, f16 weights: X binds as array<vec4f>, W as
// array<vec2u> (four halves per element, widened by lib/linear_half.wgsl). Same function names as
// lib/linear_load_vec4.wgsl; src/ops/linear.ts picks one per pipeline.
fn x4(e: u32) -> vec4f { return X[e >> 2u]; }
fn w4(e: u32) -> vec4f {
  let p = W[e >> 2u];
  return halves_to_f32(vec4u(p.x & 0xffffu, p.x >> 16u, p.y & 0xffffu, p.y >> 16u));
}
fn x1(e: u32) -> f32 { return X[e >> 2u][e & 3u]; }
fn w1(e: u32) -> f32 { return w4(e & ~3u)[e & 3u]; }
