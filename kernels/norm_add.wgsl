// Fused residual add + RMSNorm (the pre-norm decoder skeleton: h = r + x; x' = RMSNorm(h)):
//   R[row] += X[row] (in place: R becomes the new residual stream), Y[row] = R·rsqrt(mean(R²) + eps) · w
//   (ADD_ONE: · (1 + w), Qwen's zero-centred weight). Same layout as norm.wgsl: WG_Y rows × WG_X invocations,
//   tree reduction (lib/row_reduce.wgsl), f32 statistics. Each invocation re-reads only the R elements it wrote.
// Inputs that share a GPUBuffer are reached through one binding (WebGPU rejects a read-only and a read-write
// binding of one buffer, and two read-write bindings whose ranges overlap): X_IS_Y / X_IS_R read x through Y / R,
// R_IS_Y keeps the residual inside Y's binding.
struct Params {
  rows: u32, dim: u32,
  x_off: u32, w_off: u32, r_off: u32, y_off: u32,
  eps: f32,
  groups_x: u32,
}
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> W: array<WT>;
@group(0) @binding(3) var<storage, read_write> R: array<f32>;
@group(0) @binding(4) var<storage, read_write> Y: array<f32>;

fn ld_r(i: u32) -> f32 {
  if (R_IS_Y) { return Y[i]; }
  return R[i];
}

fn st_r(i: u32, v: f32) {
  if (R_IS_Y) { Y[i] = v; } else { R[i] = v; }
}

fn ld_x(i: u32) -> f32 {
  if (X_IS_Y) { return Y[i]; }
  if (X_IS_R) { return ld_r(i); }
  return X[i];
}

@compute @workgroup_size(WG_X, WG_Y, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let tx = lid.x;
  let ty = lid.y;
  let row = (wid.x + wid.y * P.groups_x) * WG_Y + ty;
  let n = select(0u, P.dim, row < P.rows); // slots past the last row only join the barriers
  let xb = P.x_off + row * P.dim;
  let rb = P.r_off + row * P.dim;
  let yb = P.y_off + row * P.dim;
  var q = 0.0;
  for (var j = tx; j < n; j += WG_X) {
    let h = ld_r(rb + j) + ld_x(xb + j);
    st_r(rb + j, h);
    q += h * h;
  }
  let inv = inverseSqrt(row_sum(q, tx, ty) / f32(P.dim) + P.eps);
  for (var j = tx; j < n; j += WG_X) {
    let w = f32(W[P.w_off + j]);
    Y[yb + j] = ld_r(rb + j) * inv * select(w, 1.0 + w, ADD_ONE);
  }
}
