// Gated DeltaNet short conv (docs/architecture.md §5.3): depthwise causal conv1d over time, no bias,
// then SiLU.   y[t, c] = silu( Σ_k W[c, k] · in[t − (KS−1) + k, c] ),  `in` = conv state rows then x rows.
// KS (kernel size, 4 in Qwen3.5) is a const so the sliding window stays in registers.
//
// `main`: invocation (channel c, TT-token block): loads the KS−1 inputs before its block once, then slides
// the window one token at a time (each x element is read ~once). When one block covers all L (decode,
// P.single = 1) the same invocation also rewrites the state of its channel — nobody else touches it. With
// several blocks the state is rewritten by `state_update` in a second dispatch, because blocks of other
// workgroups still read the old state (no grid-wide ordering inside one dispatch).
// Segments (nseg > 0, a ragged batch of independent sequences, cache-free prefill): z = segment, Seg holds
// cu_seqlens; each sequence starts from a zero history, or (P.seg_state = 1) from its own history St[z] (rows
// of [nseg, H, C], read only: a cached prompt prefix), the state is never written, and its blocks start at its
// own first token, so its output is the same wherever it sits in the batch.
// Interface generated from the spec in src/ops/gatedDeltaNet.ts (see its `*_IO` declarations).

const H: u32 = KS - 1u;

// The last H inputs before time L, given the old state of channel c in `hist`: new state row r is input
// L − H + r, which is an x row when non-negative and old state row L + r otherwise (only when L < H).
fn write_state(c: u32, hist: array<f32, H>) {
  for (var r = 0u; r < H; r++) {
    let t = i32(P.L) - i32(H) + i32(r);
    var v: f32;
    if (t >= 0) { v = X[P.x_off + u32(t) * P.x_row + c]; } else { v = hist[P.L + r]; }
    St[P.s_off + r * P.C + c] = v;
  }
}

@compute @workgroup_size(WG_X, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let c = gid.x;
  if (c >= P.C) { return; }
  // This invocation's sequence [start, end) and block [t0, t1).
  var start = 0u;
  var end = P.L;
  if (P.nseg > 0u) {
    start = Seg[gid.z];
    end = Seg[gid.z + 1u];
  }
  let t0 = start + gid.y * TT;
  if (t0 >= end) { return; }
  let t1 = min(end, t0 + TT);
  var w: array<f32, KS>;
  for (var k = 0u; k < KS; k++) { w[k] = f32(W[P.w_off + c * KS + k]); }
  var hist = array<f32, H>();   // zeros: the history of a segment without an initial state
  if (P.nseg == 0u || P.seg_state == 1u) {
    let sb = P.s_off + select(0u, gid.z * H * P.C, P.nseg > 0u);
    for (var r = 0u; r < H; r++) { hist[r] = St[sb + r * P.C + c]; }
  }
  // win[k] = input at time t − H + k; slots 0..H−1 hold the H inputs before t0 (tt: relative to the sequence).
  var win: array<f32, KS>;
  for (var r = 0u; r < H; r++) {
    let tt = i32(t0 - start) - i32(H) + i32(r);
    if (tt >= 0) { win[r] = X[P.x_off + (start + u32(tt)) * P.x_row + c]; } else { win[r] = hist[u32(i32(H) + tt)]; }
  }
  for (var t = t0; t < t1; t++) {
    win[H] = X[P.x_off + t * P.x_row + c];
    var acc = 0.0;
    for (var k = 0u; k < KS; k++) { acc += w[k] * win[k]; }
    Y[P.y_off + t * P.C + c] = acc * sigmoid_f(acc);
    for (var k = 0u; k < H; k++) { win[k] = win[k + 1u]; }
  }
  if (P.single == 1u && P.nseg == 0u) { write_state(c, hist); }
}

@compute @workgroup_size(WG_X, 1, 1)
fn state_update(@builtin(global_invocation_id) gid: vec3u) {
  let c = gid.x;
  if (c >= P.C) { return; }
  var hist: array<f32, H>;
  for (var r = 0u; r < H; r++) { hist[r] = St[P.s_off + r * P.C + c]; }
  write_state(c, hist);
}
