// Few-row linear with quantised weights (decode): Y[b, m, n] = act( Σ_k X[b, m, k] · W[n, k] + bias[n] ), m < MROWS,
// W dequantised in registers (docs/quantization.md): int4 W[n, k] = s[n, g]·(q − z[n, g]), int8 W[n, k] = s[n]·q.
// Memory-bound on the packed weights, read once: a workgroup owns ROWS outputs n, its WG_X invocations stride
// over the K window one 32-bit word (8 int4 / 4 int8 elements) at a time, then a shared-memory tree reduces (lib/gemv_tree_reduce.wgsl).
// int4 folds the zero point into one term per word: Σ s·(q − z)·x = s·(Σ q·x − z·Σ x), Σ x shared by the ROWS rows.
// Interface generated from LINEAR_Q_IO in src/quant/linear.ts.

@compute @workgroup_size(WG_X, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let group = wid.x + wid.y * P.groups_x;
  let n0 = group * ROWS;
  let b = wid.z;
  let t = lid.x;
  let EPW = 32u / BITS;
  let words = P.K / EPW;
  let wpr = P.ldw / EPW;
  var acc = array<array<f32, ROWS>, MROWS>();
  var qrow: array<u32, ROWS>;
  var srow: array<u32, ROWS>;
  for (var r = 0u; r < ROWS; r++) {
    let n = min(n0 + r, P.N - 1u);
    qrow[r] = n * wpr + P.w_off / EPW;
    srow[r] = n * P.groups_row;
  }
  let xb = P.x_off + b * P.x_batch;
  for (var i = t; i < words; i += WG_X) {
    let k = i * EPW;
    var xa = array<vec4f, MROWS>(); // explicit init (see linear.wgsl)
    var xo = array<vec4f, MROWS>();
    var xs = array<f32, MROWS>();
    for (var m = 0u; m < MROWS; m++) {
      let r = xb + m * P.ldx + k;
      if (BITS == 4u) {
        let lo = vec4f(X[r], X[r + 1u], X[r + 2u], X[r + 3u]);
        let hi = vec4f(X[r + 4u], X[r + 5u], X[r + 6u], X[r + 7u]);
        xa[m] = vec4f(lo.x, lo.z, hi.x, hi.z);
        xo[m] = vec4f(lo.y, lo.w, hi.y, hi.w);
        xs[m] = dot(lo + hi, vec4f(1.0));
      } else {
        xa[m] = vec4f(X[r], X[r + 1u], X[r + 2u], X[r + 3u]);
      }
    }
    for (var r = 0u; r < ROWS; r++) {
      let w = Q[qrow[r] + i];
      if (BITS == 4u) {
        let gi = srow[r] + (P.w_off + k) / P.group;
        let s = q_scale(gi);
        let z = q_zero(gi);
        let qe = q4_even(w);
        let qd = q4_odd(w);
        for (var m = 0u; m < MROWS; m++) { acc[m][r] += s * (dot(qe, xa[m]) + dot(qd, xo[m]) - z * xs[m]); }
      } else {
        let q = q8_vec(w);
        for (var m = 0u; m < MROWS; m++) { acc[m][r] += dot(q, xa[m]); }
      }
    }
  }
  gemv_tree_reduce(t, &acc);
  if (t < MROWS * ROWS) {
    let m = t / ROWS;
    let r = t % ROWS;
    let n = n0 + r;
    if (n < P.N) {
      var v = red[t * WG_X];
      if (BITS == 8u) { v *= q_scale(n * P.groups_row); } // int8: one scale per output row
      linear_store(b, m, n, v);
    }
  }
}
