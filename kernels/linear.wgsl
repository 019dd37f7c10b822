// Y[b, m, n] = act( Σ_k X[b, m, k] · W[b, n, k] + bias[n] )   (or Y += that, when ACCUM)
// PyTorch Linear layout: W is [N, K] (out, in), so both operands are contiguous along K.
// Each invocation owns a TM×TN block of Y and walks K four at a time; out-of-range rows are clamped on load
// and discarded on store, so any M, N, K work (K need not be a multiple of 4).
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
    for (var i = 0u; i < TM; i++) {
      let r = xr[i] + k;
      xv[i] = vec4f(X[r], X[r + 1u], X[r + 2u], X[r + 3u]);
    }
    for (var j = 0u; j < TN; j++) {
      let r = wr[j] + k;
      let wv = vec4f(f32(W[r]), f32(W[r + 1u]), f32(W[r + 2u]), f32(W[r + 3u]));
      for (var i = 0u; i < TM; i++) { acc[i][j] += dot(xv[i], wv); }
    }
  }
  for (; k < P.K; k++) {
    for (var j = 0u; j < TN; j++) {
      let wv = f32(W[wr[j] + k]);
      for (var i = 0u; i < TM; i++) { acc[i][j] += X[xr[i] + k] * wv; }
    }
  }
  for (var i = 0u; i < TM; i++) {
    let m = m0 + i;
    if (m >= P.M) { break; }
    for (var j = 0u; j < TN; j++) {
      let n = n0 + j;
      if (n >= P.N) { break; }
      var v = acc[i][j];
      if (HAS_BIAS) { v += Bias[P.b_off + n]; }
      v = apply_act(ACT, v);
      let o = P.y_off + b * P.y_batch + m * P.ldy + n;
      if (ACCUM) { Y[o] += v; } else { Y[o] = v; }
    }
  }
}
