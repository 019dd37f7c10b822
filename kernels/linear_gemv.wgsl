// Few-row linear (decode): Y[b, m, n] = act( Σ_k X[b, m, k] · W[n, k] + bias[n] ), m < MROWS = M (1…4).
// Memory-bound on W, so every W element is read exactly once: a workgroup owns ROWS outputs n; invocation t
// reads the k-quads t, t + WG_X, … of each of those W rows (x4/w4: one 16-byte load each when 4-aligned), so a
// run of WG_X invocations streams 16·WG_X contiguous bytes of a row per step (coalesced on a GPU; on lavapipe a
// workgroup of 8 is one SIMD chunk that walks the row strictly forwards). Partial sums meet in a shared-memory
// tree (lib/gemv_tree_reduce.wgsl); the subgroup twin is linear_gemv_sg.wgsl.
// Interface generated from LINEAR_IO in src/ops/linear.ts (+ groups_x: workgroups along x; the grid folds into y
// past 65535).

@compute @workgroup_size(WG_X, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let n0 = (wid.x + wid.y * P.groups_x) * ROWS;
  let b = wid.z;
  let t = lid.x;
  var acc = array<array<f32, ROWS>, MROWS>();
  gemv_partial(b, n0, t, WG_X, &acc);
  gemv_tree_reduce(t, &acc);
  for (var q = t; q < MROWS * ROWS; q += WG_X) {
    let n = n0 + q % ROWS;
    if (n < P.N) { linear_store(b, q / ROWS, n, red[q * WG_X]); }
  }
}
