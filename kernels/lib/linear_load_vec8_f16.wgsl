// Operand loads for the wide f16-weight decode kernels (a `wide` gemv / gemv_sg config, src/ops/linear.ts): every
// operand 4-aligned as for lib/linear_load_vec4_f16.wgsl and W additionally 8-aligned (K, its row stride and offset),
// so W binds as array<vec4u>: eight halves, 16 bytes, per load (w8), the same load width as an f32 vec4. X binds as
// array<vec4f>. w4 / w1 serve the K % 8 tail.
fn x4(e: u32) -> vec4f { return X[e >> 2u]; }
fn x1(e: u32) -> f32 { return X[e >> 2u][e & 3u]; }
fn w8(e: u32) -> array<vec4f, 2> {
  let p = W[e >> 3u];
  return array<vec4f, 2>(
    halves_to_f32(vec4u(p.x & 0xffffu, p.x >> 16u, p.y & 0xffffu, p.y >> 16u)),
    halves_to_f32(vec4u(p.z & 0xffffu, p.z >> 16u, p.w & 0xffffu, p.w >> 16u)),
  );
}
fn w4(e: u32) -> vec4f {
  let v = w8(e & ~7u);
  return select(v[0], v[1], (e & 4u) != 0u);
}
fn w1(e: u32) -> f32 { return w4(e & ~3u)[e & 3u]; }
