// In-place rotary embedding, "rotate_half" form, for the text M-RoPE and the vision 2-D rope (one kernel).
// For head h of token t, frequency j < HALF pairs dims (j, j + HALF) of that head:
//   a = f32(pos[axis_j, t]) · inv_j   (rounded to f32, as PyTorch's f32 freqs tensor)
//   x[j] ← x[j]·cos a − x[j+HALF]·sin a,   x[j+HALF] ← x[j+HALF]·cos a + x[j]·sin a
// Dims ≥ 2·HALF of each head are not touched. The per-frequency (inv_j, axis_j) table is built on the CPU by
// src/ops/rope.ts (exact f32 inv_freq as PyTorch computes it; the axis encodes the interleaved / chunked M-RoPE
// section layout or the vision row/col split), so text and vision share this kernel.
// One invocation per (t, h, j); the flat index is folded over (x, y) workgroups.
// Interface generated from ROPE_IO in src/ops/rope.ts: total = L·heads·half invocations; strides and offsets in
// elements; Tab = [inv_0..inv_{half-1}, axis_0..axis_{half-1}]; `zero` is always 0 (see round_barrier).

@compute @workgroup_size(WG_X, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let idx = (wid.x + wid.y * P.groups_x) * WG_X + lid.x;
  if (idx >= P.total) { return; }
  let j = idx % P.half;
  let q = idx / P.half;
  let h = q % P.num_heads;
  let t = q / P.num_heads;
  let axis = u32(Tab[P.half + j]);
  let pos = Pos[P.pos_off + axis * P.pos_cols + t];
  let a = round_barrier(f32(pos) * Tab[j], P.zero);
  let sc = sincos_reduced(a);
  let base = P.x_off + t * P.row_stride + h * P.head_stride + j;
  let x1 = X[base];
  let x2 = X[base + P.half];
  X[base] = x1 * sc.y - x2 * sc.x;
  X[base + P.half] = x2 * sc.y + x1 * sc.x;
}
