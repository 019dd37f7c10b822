// The output store shared by the attention kernels (attention.wgsl, attention_rows.wgsl, attention_decode_reduce.wgsl):
// 4 values of query row qi, head h, from element 4·c of the head (hd elements per head), times sigmoid(gate) when the
// call has a gate (Qwen3.5's gated attention), written to Out.
fn store_out4(v: vec4f, qi: u32, h: u32, c: u32, hd: u32) {
  var y = v;
  if (P.has_gate != 0u) {
    let gi = P.g_off + qi * P.g_rs + h * P.g_hs + c * 4u;
    let g = vec4f(Gt[gi], Gt[gi + 1u], Gt[gi + 2u], Gt[gi + 3u]);
    y *= 1.0 / (1.0 + exp(-g));   // exp overflow → +inf → factor 0, never NaN
  }
  let oi = P.o_off + qi * (P.H * hd) + h * hd + c * 4u;
  Out[oi] = y.x;
  Out[oi + 1u] = y.y;
  Out[oi + 2u] = y.z;
  Out[oi + 3u] = y.w;
}
