// Y[m, n] = act( Σ_k x̂[m, k] · W[n, k] + bias[n] )   (or Y += that, when ACCUM), x̂ the row's input transform:
// - PROLOGUE 0, LayerNorm: x̂ = LayerNorm(X[m]) over its K values without affine, then with HAS_MOD the adaLN
//   modulation shared by every row: x̂·(1 + Mod[sc_off + k]) + Mod[sh_off + k] (the DiT's norm1 → Q/K/V, norm2 →
//   FFN fc1, output norm → proj_out_2). A row's statistics are computed once per workgroup by one invocation
//   (two passes over K: mean, then the mean squared deviation), the same loop whatever the other rows.
// - PROLOGUE 1, SwiGLU: X rows are [gate (K) | up (K)] (the fused gate/up projection), x̂ = silu(gate)·up (the
//   text decoder's MLP before down_proj).
// The transformed rows never go to memory. Same tiling as linear.wgsl (TM×TN outputs per invocation, K walked
// in order), so a row's result depends on that row alone whatever the number of rows (batched inference
// relies on it).
// Interface (P.*, X, W, Bias, Mod, Y) generated from PROLOGUE_LINEAR_IO in src/model/prologueLinear.ts.

// LayerNorm statistics of the workgroup's WG_Y·TM rows, computed once per workgroup (one invocation per row).
var<workgroup> row_mean: array<f32, WG_Y * TM>;
var<workgroup> row_rstd: array<f32, WG_Y * TM>;

@compute @workgroup_size(WG_X, WG_Y, WG_Z)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let n0 = gid.x * TN;
  let m0 = gid.y * TM;
  if (PROLOGUE == 0u) {
    if (lid.x < TM) {
      let r = P.x_off + min(m0 + lid.x, P.M - 1u) * P.ldx;
      let kf = f32(P.K);
      var s = 0.0;
      for (var k = 0u; k < P.K; k++) { s += X[r + k]; }
      let mu = s / kf;
      var v = 0.0;
      for (var k = 0u; k < P.K; k++) {
        let d = X[r + k] - mu;
        v += d * d;
      }
      row_mean[lid.y * TM + lid.x] = mu;
      row_rstd[lid.y * TM + lid.x] = inverseSqrt(v / kf + P.eps);
    }
    workgroupBarrier();
  }
  if (m0 >= P.M || n0 >= P.N) { return; }
  var xr: array<u32, TM>;
  var wr: array<u32, TN>;
  var mean: array<f32, TM>;
  var rstd: array<f32, TM>;
  for (var i = 0u; i < TM; i++) {
    xr[i] = P.x_off + min(m0 + i, P.M - 1u) * P.ldx;
    if (PROLOGUE == 0u) {
      mean[i] = row_mean[lid.y * TM + i];
      rstd[i] = row_rstd[lid.y * TM + i];
    }
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
      let x = vec4f(X[r], X[r + 1u], X[r + 2u], X[r + 3u]);
      if (PROLOGUE == 0u) {
        xv[i] = (x - mean[i]) * rstd[i] * sc + sh;
      } else {
        let u = r + P.K;
        xv[i] = x * (1.0 / (1.0 + exp(-x))) * vec4f(X[u], X[u + 1u], X[u + 2u], X[u + 3u]);
      }
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
      for (var i = 0u; i < TM; i++) {
        let x = X[xr[i] + k];
        var xn = (x - mean[i]) * rstd[i] * sc + sh;
        if (PROLOGUE != 0u) { xn = x * sigmoid_f(x) * X[xr[i] + P.K + k]; }
        acc[i][j] += xn * wv;
      }
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
