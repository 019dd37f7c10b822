// Embedding row gather: Y[out_row_offset + l, :] = f32(T[ids[l] − row_offset, :]) for every l < L whose id lies
// in [row_offset, row_offset + V); other rows of Y are left untouched. Big tables are split along rows into
// parts that each fit one storage binding; one dispatch per part then fills every row.
// One workgroup per id (folded into y past the per-dimension limit); its invocations stride over the D values.
// Interface generated from GATHER_IO in src/ops/gather.ts.

@compute @workgroup_size(WG_X, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let l = wid.x + wid.y * P.groups_x;
  if (l >= P.L) { return; }
  let r = Ids[P.ids_off + l] - P.row_offset;
  if (r < 0 || u32(r) >= P.V) { return; } // id in another part of the table (or invalid): skip
  let tb = P.t_off + u32(r) * P.D;
  let yb = P.y_off + (P.out_row_offset + l) * P.D;
  for (var j = lid.x; j < P.D; j += WG_X) { Y[yb + j] = f32(T[tb + j]); }
}
