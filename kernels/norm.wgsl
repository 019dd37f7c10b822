// Row norms over rows of `dim` contiguous f32 values. Workgroup = WG_Y rows × WG_X invocations per row: the
// WG_X invocations of a row stride over its elements and tree-reduce in workgroup memory (row_sum of
// lib/row_reduce.wgsl; short rows use a narrow WG_X and several rows per workgroup). Statistics in f32;
// LayerNorm takes the mean first and then Σ(x − μ)² in a second pass over the (cached) row, which stays
// accurate when |μ| ≫ σ.
//   MODE 0 RMSNorm        y = x·rsqrt(mean(x²) + eps) · w     (ADD_ONE: · (1 + w), Qwen's zero-centred
//                                                              weight; HAS_W false: no weight)
//   MODE 1 RMSNormGated   y = x·rsqrt(mean(x²) + eps) · w · silu(z)          (Qwen3.5 GDN output norm)
//   MODE 2 LayerNorm      y = (x − μ)·rsqrt(var + eps) · w + b               (HAS_W / HAS_B)
//   MODE 3 modulated LN   y = (x − μ)·rsqrt(var + eps) · (1 + scale) + shift (DiT adaLN; no affine; scale
//                                                              and shift read from Z at sc_off / sh_off)
// Z row r starts at z_off + r·z_stride (z_stride 0: one vector for every row).
// X_IS_Y / Z_IS_Y: that input lives in the output's buffer and is read through Y (in-place norms).
// Interface generated from NORM_IO in src/ops/norm.ts (groups_x: workgroups along x; rows/WG_Y is folded into y
// beyond the per-dimension limit).

fn ld_x(i: u32) -> f32 {
  if (X_IS_Y) { return Y[i]; }
  return X[i];
}

fn ld_z(i: u32) -> f32 {
  if (Z_IS_Y) { return Y[i]; }
  return Z[i];
}

@compute @workgroup_size(WG_X, WG_Y, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let tx = lid.x;
  let ty = lid.y;
  let row = (wid.x + wid.y * P.groups_x) * WG_Y + ty;
  // Row slots past the last row take part in the barriers but touch no memory.
  let n = select(0u, P.dim, row < P.rows);
  let xb = P.x_off + row * P.dim;
  let zb = P.z_off + row * P.z_stride;
  let yb = P.y_off + row * P.dim;
  let inv_dim = 1.0 / f32(P.dim);

  var mean = 0.0;
  if (MODE >= 2u) {
    var s = 0.0;
    for (var j = tx; j < n; j += WG_X) { s += ld_x(xb + j); }
    mean = row_sum(s, tx, ty) * inv_dim;
  }
  var q = 0.0;
  for (var j = tx; j < n; j += WG_X) {
    let d = ld_x(xb + j) - mean;
    q += d * d;
  }
  let inv = inverseSqrt(row_sum(q, tx, ty) * inv_dim + P.eps);

  // Each invocation rewrites only the elements it read, so in place (X_IS_Y) is safe after the reductions.
  for (var j = tx; j < n; j += WG_X) {
    var v = (ld_x(xb + j) - mean) * inv;
    switch MODE {
      case 0u: {
        if (HAS_W) {
          let w = f32(W[P.w_off + j]);
          v = v * select(w, 1.0 + w, ADD_ONE);
        }
      }
      case 1u: {
        let g = ld_z(zb + j);
        v = v * f32(W[P.w_off + j]) * (g * sigmoid_f(g));
      }
      case 2u: {
        if (HAS_W) { v = v * f32(W[P.w_off + j]); }
        if (HAS_B) { v = v + f32(Bv[P.b_off + j]); }
      }
      default: {
        v = v * (1.0 + ld_z(zb + P.sc_off + j)) + ld_z(zb + P.sh_off + j);
      }
    }
    Y[yb + j] = v;
  }
}
