// Operand loads for the wide f16-weight decode kernels (a `wide` gemv / gemv_sg config, src/ops/linear.ts): every
// operand 4-aligned as for lib/linear_load_vec4_f16.wgsl and W additionally 8-aligned (K, its row stride and offset),
// so W binds as array<vec4u>: eight halves, 16 bytes, per load (w_quads, the step of lib/linear_gemv_partial.wgsl), the
// same load width as an f32 vec4. X binds as array<vec4f>. w4 / w1 serve the K % 8 tail. The halves widen with unpack2x16float, not lib/linear_half.wgsl's
// integer ops: on lavapipe it compiles to the CPU's f16→f32 vector conversion and made the 4096² f16 decode 16 %
// faster (bench/RESULTS.md, issue 15). Its one difference: SPIR-V's UnpackHalf2x16 lets an adapter flush subnormal
// halves (|w| < 6.1e-5) to zero, an error below 6.1e-5·|x_k| per such weight.
fn x4(e: u32) -> vec4f { return X[e >> 2u]; }
fn x1(e: u32) -> f32 { return X[e >> 2u][e & 3u]; }
const W_QUADS = 2u;
fn w_quads(e: u32) -> array<vec4f, W_QUADS> {
  let p = W[e >> 3u];
  return array<vec4f, W_QUADS>(
    vec4f(unpack2x16float(p.x), unpack2x16float(p.y)),
    vec4f(unpack2x16float(p.z), unpack2x16float(p.w)),
  );
}
fn w4(e: u32) -> vec4f {
  let v = w_quads(e & ~7u);
  return select(v[0], v[1], (e & 4u) != 0u);
}
fn w1(e: u32) -> f32 { return w4(e & ~3u)[e & 3u]; }
