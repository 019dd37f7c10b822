// Operand loads for the linear kernels, any alignment, f16 weights: X binds as array<f32>, W as array<u32>
// (two halves per word, widened by lib/linear_half.wgsl). Same function names as lib/linear_load_scalar.wgsl.
fn x4(e: u32) -> vec4f { return vec4f(X[e], X[e + 1u], X[e + 2u], X[e + 3u]); }
fn w_half(e: u32) -> u32 { return (W[e >> 1u] >> (16u * (e & 1u))) & 0xffffu; }
fn w4(e: u32) -> vec4f { return halves_to_f32(vec4u(w_half(e), w_half(e + 1u), w_half(e + 2u), w_half(e + 3u))); }
fn x1(e: u32) -> f32 { return X[e]; }
fn w1(e: u32) -> f32 { return half_to_f32(w_half(e)); }
