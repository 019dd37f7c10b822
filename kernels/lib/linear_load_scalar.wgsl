// Operand loads for the linear kernels, any alignment, f32 weights: X and W bind as array<f32>. Same function
// names as lib/linear_load_vec4.wgsl (the aligned, vectorised twin); src/ops/linear.ts picks one per pipeline.
fn x4(e: u32) -> vec4f { return vec4f(X[e], X[e + 1u], X[e + 2u], X[e + 3u]); }
fn w4(e: u32) -> vec4f { return vec4f(W[e], W[e + 1u], W[e + 2u], W[e + 3u]); }
fn x1(e: u32) -> f32 { return X[e]; }
fn w1(e: u32) -> f32 { return W[e]; }
