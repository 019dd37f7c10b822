// Few-row linear (decode): Y[b, m, n] = act( Σ_k X[b, m, k] · W[n, k] + bias[n] ), m < MROWS.
// Memory-bound on W, so every W element is read exactly once: a workgroup owns ROWS outputs n, its WG_X
// invocations stride over K (adjacent invocations read adjacent elements), then a shared-memory tree reduces.
// Interface (P.M, P.N, P.K, strides/offsets; X, W, Bias, Y) generated from LINEAR_IO in src/ops/linear.ts (+ groups_x: workgroups along x; the grid folds into y past 65535).

var<workgroup> red: array<f32, WG_X * ROWS * MROWS>;

@compute @workgroup_size(WG_X, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let group = wid.x + wid.y * P.groups_x;
  let n0 = group * ROWS;
  let b = wid.z;
  let t = lid.x;
  var acc = array<array<f32, ROWS>, MROWS>();
  var wrow: array<u32, ROWS>;
  for (var r = 0u; r < ROWS; r++) { wrow[r] = P.w_off + b * P.w_batch + min(n0 + r, P.N - 1u) * P.ldw; }
  let xb = P.x_off + b * P.x_batch;
  for (var k = t; k < P.K; k += WG_X) {
    var xv = array<f32, MROWS>(); // explicit init (see linear.wgsl)
    for (var m = 0u; m < MROWS; m++) { xv[m] = select(0.0, X[xb + min(m, P.M - 1u) * P.ldx + k], m < P.M); }
    for (var r = 0u; r < ROWS; r++) {
      let w = f32(W[wrow[r] + k]);
      for (var m = 0u; m < MROWS; m++) { acc[m][r] += xv[m] * w; }
    }
  }
  for (var m = 0u; m < MROWS; m++) {
    for (var r = 0u; r < ROWS; r++) { red[(m * ROWS + r) * WG_X + t] = acc[m][r]; }
  }
  workgroupBarrier();
  for (var s = WG_X / 2u; s > 0u; s = s / 2u) {
    if (t < s) {
      for (var q = 0u; q < MROWS * ROWS; q++) { red[q * WG_X + t] += red[q * WG_X + t + s]; }
    }
    workgroupBarrier();
  }
  if (t < MROWS * ROWS) {
    let m = t / ROWS;
    let r = t % ROWS;
    let n = n0 + r;
    if (m < P.M && n < P.N) {
      var v = red[t * WG_X];
      if (HAS_BIAS) { v += Bias[P.b_off + n]; }
      v = apply_act(ACT, v);
      let o = P.y_off + b * P.y_batch + m * P.ldy + n;
      if (ACCUM) { Y[o] += v; } else { Y[o] = v; }
    }
  }
}
