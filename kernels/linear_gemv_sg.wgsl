// Few-row linear (decode), subgroup reduction: like linear_gemv.wgsl, but a workgroup is SG_GROUPS subgroups of
// SG_SIZE invocations, each subgroup owns its own ROWS outputs and reduces them with subgroupAdd (no shared
// memory, no barriers). src/ops/linear.ts picks it only on adapters whose subgroup size is fixed
// (subgroupMinSize = subgroupMaxSize = SG_SIZE), where subgroups are the consecutive SG_SIZE-invocation runs.
// Interface generated from LINEAR_IO in src/ops/linear.ts (+ groups_x).

@compute @workgroup_size(WG_X, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let lane = lid.x % SG_SIZE;
  let n0 = ((wid.x + wid.y * P.groups_x) * (WG_X / SG_SIZE) + lid.x / SG_SIZE) * ROWS;
  let b = wid.z;
  var acc = array<array<f32, ROWS>, MROWS>();
  gemv_partial(b, n0, lane, SG_SIZE, &acc);
  for (var m = 0u; m < MROWS; m++) {
    for (var r = 0u; r < ROWS; r++) {
      let s = subgroupAdd(acc[m][r]);
      if (lane == (m * ROWS + r) % SG_SIZE && n0 + r < P.N) { linear_store(b, m, n0 + r, s); }
    }
  }
}
