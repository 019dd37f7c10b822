// The decode step's W load (lib/linear_gemv_partial.wgsl) for the load libraries whose widest W load is one quad
// (4 elements: lib/linear_load_{scalar,vec4}{,_f16}.wgsl); lib/linear_load_vec8_f16.wgsl has its own, two quads.
const W_QUADS = 1u;
fn w_quads(e: u32) -> array<vec4f, W_QUADS> { return array<vec4f, W_QUADS>(w4(e)); }
