// Roofline micro-benchmark (src/bench/roofline.ts measureGemvStream): the decode GEMV's W stream without the rest of
// the GEMV. It runs the decode kernels' own streaming loop, lib/linear_gemv_partial.wgsl (same rows per workgroup,
// same per-lane loads in the same order), with X replaced by the constant 1 (no X loads; x·w folds to w) and
// no cross-lane reduction:
//   WIDEN false: W's 32-bit words summed as they are (f32 weights: the values; f16 weights: the raw bits of two
//                halves per word): the bytes-only cost of the pattern;
//   WIDEN true:  f16 weights, 16-byte loads widened with unpack2x16float as lib/linear_load_vec8_f16.wgsl does, then
//                summed: bytes + widening, without the X loads and FMAs.
// The host fills W with the word 0x3f800000 (1.0f; as halves 0 and 1.875), so every lane's sum is exact and known.
// Interface generated from the spec in src/bench/roofline.ts (P: the partial's fields, groups_x; W, Out).
const W_QUADS = select(1u, 2u, WIDEN);

fn x4(e: u32) -> vec4f { return vec4f(1.0); }
fn x1(e: u32) -> f32 { return 1.0; }
fn w_quads(e: u32) -> array<vec4f, W_QUADS> {
  var v: array<vec4f, W_QUADS>;
  if (WIDEN) {
    let p = W[e >> 3u];
    v[0] = vec4f(unpack2x16float(p.x), unpack2x16float(p.y));
    v[W_QUADS - 1u] = vec4f(unpack2x16float(p.z), unpack2x16float(p.w));
  } else {
    v[0] = bitcast<vec4f>(W[e >> 2u]);
  }
  return v;
}
fn w1(e: u32) -> f32 { return 0.0; } // the host sizes K so that the partial has no K tail

@compute @workgroup_size(WG_X, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let g = wid.x + wid.y * P.groups_x;
  var acc = array<array<f32, ROWS>, MROWS>();
  gemv_partial(0u, g * ROWS, lid.x, WG_X, &acc);
  var s = 0.0;
  for (var r = 0u; r < ROWS; r++) { s += acc[0][r]; }
  Out[g * WG_X + lid.x] = s;
}
