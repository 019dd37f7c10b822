// Few-row linear (decode): Y[b, m, n] = act( Σ_k X[b, m, k] · W[n, k] + bias[n] ), m < MROWS.
// Memory-bound on W, so every W element is read exactly once: a workgroup owns ROWS outputs n, its WG_X
// invocations stride over K (adjacent invocations read adjacent elements), then a shared-memory tree reduces.
struct Params {
  M: u32, N: u32, K: u32,
  x_batch: u32, w_batch: u32, y_batch: u32,
  x_off: u32, w_off: u32, y_off: u32, b_off: u32,
  ldx: u32, ldw: u32, ldy: u32,                // row strides of X, W, Y in elements (K, K, N when contiguous)
  groups_x: u32,   // workgroups along x (the grid is folded into y when N/ROWS > 65535)
}
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> W: array<WT>;
@group(0) @binding(3) var<storage, read> Bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> Y: array<f32>;

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
