// Y[b, m, n] = act( Σ_k X[b, m, k] · W[b, n, k] + bias[n] )   (or Y += that, when ACCUM)
// Shared-memory tiled, register-blocked GEMM. A workgroup of WG_X × WG_Y invocations owns a BM × BN tile of Y
// (BM = WG_Y·TM, BN = WG_X·TN) and walks K in slabs of BK: all its invocations first copy the slab's X rows and
// W rows into workgroup memory with 4-wide loads (x4/w4: 16-byte loads when the operands are 4-aligned, see
// lib/linear_load_vec4.wgsl; f16 weights are widened here, once), transposed to [k][m] / [k][n] so the inner
// loop reads TM + TN values per k and does TM·TN FMAs from registers. Invocation (tx, ty) owns rows
// ty + i·WG_Y and columns tx + j·WG_X (strided, so neighbours read neighbouring words of the tile).
// Reduction order per output: one accumulator, k = 0, 1, …, K−1 in order (slab padding past K adds exact
// zeros: both operands are zeroed there), so a row's bits depend on K and its own X row only, never on M or on
// the other rows (the `tiled` / row-stable contract of src/ops/linear.ts).
// Interface generated from LINEAR_IO in src/ops/linear.ts.

const BM = WG_Y * TM;
const BN = WG_X * TN;
const NT = WG_X * WG_Y;
var<workgroup> xs: array<f32, BK * BM>; // [k][m]
var<workgroup> ws: array<f32, BK * BN>; // [k][n]

@compute @workgroup_size(WG_X, WG_Y, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) li: u32) {
  let b = wid.z;
  let mBase = wid.y * BM;
  let nBase = wid.x * BN;
  let xb = P.x_off + b * P.x_batch;
  let wb = P.w_off + b * P.w_batch;
  var acc = array<array<f32, TN>, TM>();
  for (var k0 = 0u; k0 < P.K; k0 += BK) {
    // Cooperative copy, one k-quad per step: quad q of row r is element (r, 4·(q % (BK/4))) of the slab.
    for (var e = li; e < BM * (BK / 4u); e += NT) {
      let r = e / (BK / 4u);
      let kk = 4u * (e % (BK / 4u));
      let gm = mBase + r;
      let gk = k0 + kk;
      var v = vec4f(0.0);
      if (gm < P.M) {
        let o = xb + gm * P.ldx + gk;
        if (gk + 4u <= P.K) { v = x4(o); }
        else {
          for (var c = 0u; c < 4u; c++) { if (gk + c < P.K) { v[c] = x1(o + c); } }
        }
      }
      for (var c = 0u; c < 4u; c++) { xs[(kk + c) * BM + r] = v[c]; }
    }
    for (var e = li; e < BN * (BK / 4u); e += NT) {
      let r = e / (BK / 4u);
      let kk = 4u * (e % (BK / 4u));
      let gn = nBase + r;
      let gk = k0 + kk;
      var v = vec4f(0.0);
      if (gn < P.N) {
        let o = wb + gn * P.ldw + gk;
        if (gk + 4u <= P.K) { v = w4(o); }
        else {
          for (var c = 0u; c < 4u; c++) { if (gk + c < P.K) { v[c] = w1(o + c); } }
        }
      }
      for (var c = 0u; c < 4u; c++) { ws[(kk + c) * BN + r] = v[c]; }
    }
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
      var xv = array<f32, TM>();
      var wv = array<f32, TN>();
      for (var i = 0u; i < TM; i++) { xv[i] = xs[kk * BM + lid.y + i * WG_Y]; }
      for (var j = 0u; j < TN; j++) { wv[j] = ws[kk * BN + lid.x + j * WG_X]; }
      for (var i = 0u; i < TM; i++) {
        for (var j = 0u; j < TN; j++) { acc[i][j] = fma(xv[i], wv[j], acc[i][j]); }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < TM; i++) {
    let m = mBase + lid.y + i * WG_Y;
    if (m >= P.M) { break; }
    for (var j = 0u; j < TN; j++) {
      let n = nBase + lid.x + j * WG_X;
      if (n < P.N) { linear_store(b, m, n, acc[i][j]); }
    }
  }
}
