// Y[b, m, n] = act( Σ_k X[b, m, k] · W[b, n, k] + bias[n] )   (or Y += that, when ACCUM)
// The plain (reference) GEMM variant: no shared memory. PyTorch Linear layout: W is [N, K] (out, in), so both
// operands are contiguous along K. Each invocation owns a TM×TN block of Y and walks K four at a time
// (x4/w4 from lib/linear_load_*.wgsl); out-of-range rows are clamped on load and discarded on store, so any
// M, N, K work. Reduction order per output: one fma chain, k = 0, 1, …, K−1 in order (quad() from
// lib/linear_quad_f32.wgsl; the same order as linear_tiled.wgsl; fma, not dot + add: a CPU adapter runs it at
// FMA rate); it depends on K only, never on M or on the other rows. With f16 arithmetic (f16Math) quad() comes
// from lib/linear_quad_f16.wgsl instead.
// Interface (P.M, P.N, P.K, strides/offsets; X, W, Bias, Y) generated from LINEAR_IO in src/ops/linear.ts.

@compute @workgroup_size(WG_X, WG_Y, WG_Z)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let n0 = gid.x * TN;
  let m0 = gid.y * TM;
  let b = gid.z;
  if (m0 >= P.M || n0 >= P.N) { return; }
  var xr: array<u32, TM>;
  var wr: array<u32, TN>;
  for (var i = 0u; i < TM; i++) { xr[i] = P.x_off + b * P.x_batch + min(m0 + i, P.M - 1u) * P.ldx; }
  for (var j = 0u; j < TN; j++) { wr[j] = P.w_off + b * P.w_batch + min(n0 + j, P.N - 1u) * P.ldw; }
  var acc = array<array<f32, TN>, TM>();
  let K4 = P.K & ~3u;
  var k = 0u;
  for (; k < K4; k += 4u) {
    var xv = array<vec4f, TM>(); // explicit init: Dawn/lavapipe zeroes an uninitialised loop-body var only once
    for (var i = 0u; i < TM; i++) { xv[i] = x4(xr[i] + k); }
    for (var j = 0u; j < TN; j++) {
      let wv = w4(wr[j] + k);
      for (var i = 0u; i < TM; i++) { acc[i][j] = quad(xv[i], wv, acc[i][j]); }
    }
  }
  for (; k < P.K; k++) {
    for (var j = 0u; j < TN; j++) {
      let wv = w1(wr[j] + k);
      for (var i = 0u; i < TM; i++) { acc[i][j] = fma(x1(xr[i] + k), wv, acc[i][j]); }
    }
  }
  for (var i = 0u; i < TM; i++) {
    if (m0 + i >= P.M) { break; }
    for (var j = 0u; j < TN; j++) {
      if (n0 + j >= P.N) { break; }
      linear_store(b, m0 + i, n0 + j, acc[i][j]);
    }
  }
}
