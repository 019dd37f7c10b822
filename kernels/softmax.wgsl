// y = softmax(scale · x) over rows of `dim` contiguous f32 values, numerically stable.
// Workgroup = WG_Y rows × WG_X invocations per row (as in norm.wgsl). Pass 1: each invocation keeps an online
// (running max m, Σ exp(v − m)) pair over its strided elements; the pairs are merged by a tree reduction in
// workgroup memory. Pass 2 writes exp(v − m) / Σ. Two reads of the row instead of three.
// Masked entries may be -inf (they get 0); a row with every entry -inf gives all zeros (PyTorch gives NaN).
// X_IS_Y: x lives in the output's buffer (in place) and is read through Y.
struct Params {
  rows: u32, dim: u32,
  x_off: u32, y_off: u32,
  scale: f32,
  groups_x: u32,
}
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;

const NEG_BIG: f32 = -3.4028234e38; // finite "-inf" start value: exp(NEG_BIG − NEG_BIG) stays 1, not NaN

var<workgroup> red_m: array<f32, WG_X * WG_Y>;
var<workgroup> red_s: array<f32, WG_X * WG_Y>;

fn ld_x(i: u32) -> f32 {
  if (X_IS_Y) { return Y[i]; }
  return X[i];
}

@compute @workgroup_size(WG_X, WG_Y, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let tx = lid.x;
  let ty = lid.y;
  let row = (wid.x + wid.y * P.groups_x) * WG_Y + ty;
  let n = select(0u, P.dim, row < P.rows); // slots past the last row only join the barriers
  let xb = P.x_off + row * P.dim;
  let yb = P.y_off + row * P.dim;

  var m = NEG_BIG;
  var s = 0.0;
  for (var j = tx; j < n; j += WG_X) {
    let v = ld_x(xb + j) * P.scale;
    if (v > m) {
      s = s * exp(m - v) + 1.0;
      m = v;
    } else {
      s += exp(v - m);
    }
  }
  let base = ty * WG_X;
  red_m[base + tx] = m;
  red_s[base + tx] = s;
  workgroupBarrier();
  for (var k = WG_X / 2u; k > 0u; k = k >> 1u) {
    if (tx < k) {
      let m1 = red_m[base + tx];
      let m2 = red_m[base + tx + k];
      let mm = max(m1, m2);
      red_s[base + tx] = red_s[base + tx] * exp(m1 - mm) + red_s[base + tx + k] * exp(m2 - mm);
      red_m[base + tx] = mm;
    }
    workgroupBarrier();
  }
  let mx = red_m[base];
  let tot = red_s[base];
  let inv = select(0.0, 1.0 / tot, tot > 0.0);
  for (var j = tx; j < n; j += WG_X) {
    Y[yb + j] = exp(ld_x(xb + j) * P.scale - mx) * inv;
  }
}
