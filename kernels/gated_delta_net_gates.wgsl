// Gated DeltaNet gates (docs/architecture.md §5.4), one invocation per (token t, v-head j):
//   g[t, j]    = −exp(A_log[j]) · softplus(a[t, j] + dt_bias[j])   (PyTorch softplus: x above 20)
//   beta[t, j] = sigmoid(b[t, j])
// a and b are strided views (they come out of one fused projection); A_log / dt_bias are AT / DT (f32|f16).
// Interface generated from the spec in src/ops/gatedDeltaNet.ts (see its `*_IO` declarations).

// softplus with an accurate log1p (x·log(u)/(u−1), u = 1+x, exact when u rounds to 1): the plain
// log(1 + eˣ) loses all relative precision once eˣ < 1e-7, and g feeds an exp() per token.
fn softplus_log1p(v: f32) -> f32 {
  if (v > 20.0) { return v; }
  let x = exp(v);
  let u = 1.0 + x;
  if (u == 1.0) { return x; }
  return log(u) * x / (u - 1.0);
}

@compute @workgroup_size(WG_X, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let e = (wid.x + wid.y * P.groups_x) * WG_X + lid.x;
  if (e >= P.L * P.Hv) { return; }
  let t = e / P.Hv;
  let j = e % P.Hv;
  let a = A[P.a_off + t * P.a_row + j * P.a_head];
  let b = B[P.b_off + t * P.b_row + j * P.b_head];
  let sp = softplus_log1p(a + f32(DtBias[P.dt_off + j]));
  G[P.g_off + e] = -exp(f32(ALog[P.al_off + j])) * sp;
  Beta[P.beta_off + e] = sigmoid_f(b);
}
