// The query rows and key range of one prefill tile, shared by attention.wgsl and attention_rows.wgsl. Without
// segments: queries [tile·BQ, Lq), keys [0, Lk). With segments (P.nseg > 0), from the tile table (src/ops/
// attention.ts): entry `tile` holds (segment, first query); the segment's end and its key range [lo, hi) follow.
// Reads only the workgroup id and uniforms, so its values stay lane-uniform. Returns (q0, qend, lo, hi).
fn tile_range(tile: u32) -> vec4u {
  if (P.nseg == 0u) { return vec4u(tile * BQ, P.Lq, 0u, P.Lk); }
  let e = P.tile_base + 2u * tile;
  let sg = Seg[e];
  return vec4u(Seg[e + 1u], Seg[sg + 1u], Seg[P.kr_base + 2u * sg], Seg[P.kr_base + 2u * sg + 1u]);
}
