// Operand loads for the linear kernels when every operand is 4-element aligned (K, row strides and offsets all
// multiples of 4), f32 weights: X and W bind as array<vec4f>, one 16-byte load per x4/w4. `e` is an element
// index; x4/w4 need e % 4 == 0. Twins with the same function names: lib/linear_load_scalar.wgsl (any
// alignment), lib/linear_load_*_f16.wgsl (f16 weights); src/ops/linear.ts picks one per pipeline.
fn x4(e: u32) -> vec4f { return X[e >> 2u]; }
fn w4(e: u32) -> vec4f { return W[e >> 2u]; }
fn x1(e: u32) -> f32 { return X[e >> 2u][e & 3u]; }
fn w1(e: u32) -> f32 { return W[e >> 2u][e & 3u]; }
