// Y[m, n] = act( Σ_k x̂[m, k] · W[n, k] + bias[n] )   (or Y += that, when ACCUM)
// x̂ = LayerNorm(X[m]) over its K values without affine, then with HAS_MOD the adaLN modulation shared by every
// row: x̂·(1 + Mod[sc_off + k]) + Mod[sh_off + k]. A LayerNorm folded into the linear after it (the DiT's
// norm1 → Q/K/V and norm2 → FFN fc1, docs/action-decoder.md), so the normalised rows never go to memory.
// Same tiling as linear.wgsl (TM×TN outputs per invocation, K walked in order), so a row's result depends on
// that row alone whatever the number of rows (batched inference relies on it). Each invocation computes its
// rows' statistics itself (two passes over K: mean, then the mean squared deviation).
// Interface (P.*, X, W, Bias, Mod, Y) generated from NORM_LINEAR_IO in src/model/normLinear.ts.

@compute @workgroup_size(WG_X, WG_Y, WG_Z)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let n0 = gid.x * TN;
  let m0 = gid.y * TM;
  if (m0 >= P.M || n0 >= P.N) { return; }
  var xr: array<u32, TM>;
  var wr: array<u32, TN>;
  var mean: array<f32, TM>;
  var rstd: array<f32, TM>;
  let kf = f32(P.K);
  for (var i = 0u; i < TM; i++) {
    let r = P.x_off + min(m0 + i, P.M - 1u) * P.ldx;
    xr[i] = r;
    var s = 0.0;
    for (var k = 0u; k < P.K; k++) { s += X[r + k]; }
    let mu = s / kf;
    var v = 0.0;
    for (var k = 0u; k < P.K; k++) {
      let d = X[r + k] - mu;
      v += d * d;
    }
    mean[i] = mu;
    rstd[i] = inverseSqrt(v / kf + P.eps);
  }
  for (var j = 0u; j < TN; j++) { wr[j] = P.w_off + min(n0 + j, P.N - 1u) * P.ldw; }
  var acc = array<array<f32, TN>, TM>();
  let K4 = P.K & ~3u;
  var k = 0u;
  for (; k < K4; k += 4u) {
    var sc = vec4f(1.0);
    var sh = vec4f(0.0);
    if (HAS_MOD) {
      sc += vec4f(Mod[P.sc_off + k], Mod[P.sc_off + k + 1u], Mod[P.sc_off + k + 2u], Mod[P.sc_off + k + 3u]);
      sh = vec4f(Mod[P.sh_off + k], Mod[P.sh_off + k + 1u], Mod[P.sh_off + k + 2u], Mod[P.sh_off + k + 3u]);
    }
    var xv = array<vec4f, TM>(); // explicit init: Dawn/lavapipe zeroes an uninitialised loop-body var only once
    for (var i = 0u; i < TM; i++) {
      let r = xr[i] + k;
      xv[i] = (vec4f(X[r], X[r + 1u], X[r + 2u], X[r + 3u]) - mean[i]) * rstd[i] * sc + sh;
    }
    for (var j = 0u; j < TN; j++) {
      let r = wr[j] + k;
      let wv = vec4f(f32(W[r]), f32(W[r + 1u]), f32(W[r + 2u]), f32(W[r + 3u]));
      for (var i = 0u; i < TM; i++) { acc[i][j] += dot(xv[i], wv); }
    }
  }
  for (; k < P.K; k++) {
    var sc = 1.0;
    var sh = 0.0;
    if (HAS_MOD) {
      sc += Mod[P.sc_off + k];
      sh = Mod[P.sh_off + k];
    }
    for (var j = 0u; j < TN; j++) {
      let wv = f32(W[wr[j] + k]);
      for (var i = 0u; i < TM; i++) { acc[i][j] += ((X[xr[i] + k] - mean[i]) * rstd[i] * sc + sh) * wv; }
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
      let o = P.y_off + m * P.ldy + n;
      if (ACCUM) { Y[o] += v; } else { Y[o] = v; }
    }
  }
}
