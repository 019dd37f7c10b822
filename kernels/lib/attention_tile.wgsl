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

// Keys visible to query i of a tile by the causal rule: [0, tile_causal_hi(i, qend, hi)), qend and hi = the end of
// its segment's queries and keys (tile_range). P.causal = 1: global indices (causal_hi); 2: aligned to the bottom
// right of the segment (flash-attn varlen with separate query / key cu_seqlens: the segment's last query sees
// every key up to hi; a suffix attending to its cached prompt prefix ++ its own keys).
fn tile_causal_hi(i: u32, qend: u32, hi: u32) -> u32 {
  if (P.causal == 2u) { return u32(clamp(i32(i) + 1 + i32(hi) - i32(qend), 0, i32(P.Lk))); }
  return causal_hi(i);
}
