// KV-cache append: copy `rows` rows of per-head K and V vectors from strided views into the contiguous cache
// rows [dst_row, dst_row + rows) of Kc / Vc ([maxLen, Hkv·HD] each). One invocation per element, K and V both.
// The grid is 2-D (x folded into y) so any row count fits the 65535-workgroups-per-dimension limit.
struct Params {
  rows: u32, Hkv: u32, HD: u32, dst_row: u32,
  k_off: u32, k_rs: u32, k_hs: u32,
  v_off: u32, v_rs: u32, v_hs: u32,
  kc_off: u32, vc_off: u32,
  groups_x: u32,
}
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> Ks: array<f32>;
@group(0) @binding(2) var<storage, read> Vs: array<f32>;
@group(0) @binding(3) var<storage, read_write> Kc: array<f32>;
@group(0) @binding(4) var<storage, read_write> Vc: array<f32>;

@compute @workgroup_size(WG_X, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) t: u32) {
  let W = P.Hkv * P.HD;
  let idx = (wid.x + wid.y * P.groups_x) * WG_X + t;
  if (idx >= P.rows * W) { return; }
  let r = idx / W;
  let hw = idx % W;
  let hh = hw / P.HD;
  let e = hw % P.HD;
  let d = (P.dst_row + r) * W + hw;
  Kc[P.kc_off + d] = Ks[P.k_off + r * P.k_rs + hh * P.k_hs + e];
  Vc[P.vc_off + d] = Vs[P.v_off + r * P.v_rs + hh * P.v_hs + e];
}
