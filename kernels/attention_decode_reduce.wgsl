// Flash-decoding, pass 2 of 2: combine the per-split partials of attention_decode.wgsl and apply the gate.
//   M = max over splits with l > 0 of m_s;  L = Σ_s l_s·exp(m_s − M);  out = Σ_s exp(m_s − M)·O_s / L
// Splits that saw no key (l = 0) are skipped; a row with L = 0 (everything masked) writes zeros.
// One workgroup per (query row, head); threads stride over the vec4 columns. No consts: shapes are in Params.
// Interface (P: Lq, H, HD4, nsplit, gate view, o_off; Part, Meta, Gt → Out) generated from DECODE_REDUCE_IO in
// src/ops/attention.ts.

const NEG: f32 = -1.0e30;

@compute @workgroup_size(WG_X, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) t: u32) {
  let r = wid.x;
  let h = wid.y;
  let row = (h * P.Lq + r) * P.nsplit;
  var mx = NEG;
  for (var s = 0u; s < P.nsplit; s++) {
    let ml = Meta[row + s];
    if (ml.y > 0.0) { mx = max(mx, ml.x); }
  }
  var L = 0.0;
  for (var s = 0u; s < P.nsplit; s++) {
    let ml = Meta[row + s];
    if (ml.y > 0.0) { L += ml.y * exp(ml.x - mx); }
  }
  let inv = select(0.0, 1.0 / L, L > 0.0);
  let HD = P.HD4 * 4u;
  for (var c = t; c < P.HD4; c += WG_X) {
    var acc = vec4f(0.0);
    for (var s = 0u; s < P.nsplit; s++) {
      let ml = Meta[row + s];
      if (ml.y > 0.0) { acc += exp(ml.x - mx) * Part[(row + s) * P.HD4 + c]; }
    }
    store_out4(acc * inv, r, h, c, HD);
  }
}
