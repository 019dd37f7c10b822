// Linear with quantised weights, any number of rows: Y[b, m, n] = act( Σ_k X[b, m, k] · W[n, k] + bias[n] ) (or +=),
// W dequantised in registers (docs/quantization.md). Each invocation owns a TM×TN block of Y and walks the K
// window in order, group by group: Σ over a group of q·x (and Σ x for the int4 zero point), then one
// multiply-add by the group's scale — so a row's result depends only on its X row and W (bit-stable whatever
// the number of rows, as kernels/linear.wgsl). Out-of-range rows are clamped on load and discarded on store.
// int8 has one group spanning the window (P.group = K) and its per-row scale.
// Interface generated from LINEAR_Q_IO in src/quant/linear.ts.

@compute @workgroup_size(WG_X, WG_Y, WG_Z)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let n0 = gid.x * TN;
  let m0 = gid.y * TM;
  let b = gid.z;
  if (m0 >= P.M || n0 >= P.N) { return; }
  let EPW = 32u / BITS;
  let wpr = P.ldw / EPW;
  var xr: array<u32, TM>;
  var qrow: array<u32, TN>;
  var srow: array<u32, TN>;
  for (var i = 0u; i < TM; i++) { xr[i] = P.x_off + b * P.x_batch + min(m0 + i, P.M - 1u) * P.ldx; }
  for (var j = 0u; j < TN; j++) {
    let n = min(n0 + j, P.N - 1u);
    qrow[j] = n * wpr + P.w_off / EPW;
    srow[j] = n * P.groups_row + P.w_off / P.sgroup;
  }
  var acc = array<array<f32, TN>, TM>();
  let gw = P.group / EPW;
  let ng = P.K / P.group;
  for (var g = 0u; g < ng; g++) {
    var part = array<array<f32, TN>, TM>(); // explicit init: Dawn/lavapipe zeroes an uninitialised loop-body var only once
    var xs = array<f32, TM>();
    for (var u = 0u; u < gw; u++) {
      let wi = g * gw + u;
      let k = wi * EPW;
      var xa = array<vec4f, TM>();
      var xo = array<vec4f, TM>();
      for (var i = 0u; i < TM; i++) {
        let r = xr[i] + k;
        if (BITS == 4u) {
          let lo = vec4f(X[r], X[r + 1u], X[r + 2u], X[r + 3u]);
          let hi = vec4f(X[r + 4u], X[r + 5u], X[r + 6u], X[r + 7u]);
          xa[i] = vec4f(lo.x, lo.z, hi.x, hi.z);
          xo[i] = vec4f(lo.y, lo.w, hi.y, hi.w);
          xs[i] += dot(lo + hi, vec4f(1.0));
        } else {
          xa[i] = vec4f(X[r], X[r + 1u], X[r + 2u], X[r + 3u]);
        }
      }
      for (var j = 0u; j < TN; j++) {
        let w = Q[qrow[j] + wi];
        if (BITS == 4u) {
          let qe = q4_even(w);
          let qd = q4_odd(w);
          for (var i = 0u; i < TM; i++) { part[i][j] += dot(qe, xa[i]) + dot(qd, xo[i]); }
        } else {
          let q = q8_vec(w);
          for (var i = 0u; i < TM; i++) { part[i][j] += dot(q, xa[i]); }
        }
      }
    }
    for (var j = 0u; j < TN; j++) {
      let gi = srow[j] + select(g, 0u, BITS == 8u);
      let s = q_scale(gi);
      let z = select(0.0, q_zero(gi), BITS == 4u);
      for (var i = 0u; i < TM; i++) { acc[i][j] += s * (part[i][j] - z * xs[i]); }
    }
  }
  for (var i = 0u; i < TM; i++) {
    let m = m0 + i;
    if (m >= P.M) { break; }
    for (var j = 0u; j < TN; j++) {
      let n = n0 + j;
      if (n >= P.N) { break; }
      linear_store(b, m, n, acc[i][j]);
    }
  }
}
