// Roofline micro-benchmark (src/bench/roofline.ts): streaming read bandwidth of shader storage loads.
// A read-only reduction. Workgroup w owns the contiguous block [w·B, (w+1)·B) of Src (B = P.block vec4s);
// its invocations walk it with stride WG_X, four independent accumulators at a time, and each stores one vec4.
// Neighbouring invocations read neighbouring 16-byte words on every step (coalesced on a GPU), and each SIMD
// group of a CPU implementation (lavapipe) walks its block forwards in small steps (prefetch-friendly), which a
// grid-wide stride would not give it. The host sizes Src as groups · B with B a multiple of 4·WG_X (no tail)
// and fills it with 1.0, so every output lane must equal B / WG_X: that check proves the pass really ran.
// Interface generated from the spec in src/bench/roofline.ts (P.block: vec4s per workgroup, P.groups_x; Src, Out).

@compute @workgroup_size(WG_X, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let w = wid.x + wid.y * P.groups_x;
  let base = w * P.block;
  let end = base + P.block;
  var s0 = vec4f(0.0);
  var s1 = vec4f(0.0);
  var s2 = vec4f(0.0);
  var s3 = vec4f(0.0);
  for (var i = base + lid.x; i < end; i += 4u * WG_X) {
    s0 += Src[i];
    s1 += Src[i + WG_X];
    s2 += Src[i + 2u * WG_X];
    s3 += Src[i + 3u * WG_X];
  }
  Out[w * WG_X + lid.x] = (s0 + s1) + (s2 + s3);
}
