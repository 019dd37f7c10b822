// KV-cache append: copy `rows` rows of per-head K and V vectors from strided views into the contiguous cache
// rows of Kc / Vc starting at element kc_off / vc_off ([maxLen, Hkv·HD] each). One invocation per element, K and V both.
// The grid is 2-D (x folded into y) so any row count fits the 65535-workgroups-per-dimension limit.
// Interface (P: rows, Hkv, HD, source views, cache offsets, groups_x; Ks Vs → Kc Vc) generated from KV_APPEND_IO in
// src/ops/attention.ts.

@compute @workgroup_size(WG_X, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) t: u32) {
  let W = P.Hkv * P.HD;
  let idx = (wid.x + wid.y * P.groups_x) * WG_X + t;
  if (idx >= P.rows * W) { return; }
  let r = idx / W;
  let hw = idx % W;
  let hh = hw / P.HD;
  let e = hw % P.HD;
  let d = r * W + hw;
  Kc[P.kc_off + d] = Ks[P.k_off + r * P.k_rs + hh * P.k_hs + e];
  Vc[P.vc_off + d] = Vs[P.v_off + r * P.v_rs + hh * P.v_hs + e];
}
