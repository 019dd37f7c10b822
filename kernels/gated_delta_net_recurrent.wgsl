// Gated delta rule, recurrent form (docs/architecture.md §5.4–§5.5), token by token (decode).
// Per v-head j the state S is [dk, dv] (f32, S[i, v] at i·dv + v). The rule is independent per value
// column given k, q, g, β, so a workgroup owns one head and a block of BV columns; its WG_Y = RG row
// groups split the dk rows (thread (tv, tr) keeps rows tr, tr+RG, … of column tv in registers: NSR floats).
// DKB is dk rounded up to a bucket (128 or 256), so one pipeline serves every dk in it; rows ≥ P.dk are masked.
//
// One cross-thread reduction per token: with k̂ = k/|k|, q̂ = q·scale/|q|, and S the state before the token,
//   mem = e^g · (kᵀS)/|k|,   δ = β (v − mem),   S' = e^g S + k̂ ⊗ δ,
//   o   = q̂ᵀS' = (scale/|q|) · (e^g · qᵀS + (q·k)/|k| · δ)
// so the partial sums kᵀS, qᵀS (per column) and |k|², |q|², q·k (per head) are reduced together.
// The reduction buffers are double-buffered by token parity: one barrier per token.
// ROLLED (software adapters only): the NSR loops take their trip count from Params so llvmpipe keeps them
// rolled (unrolled, one variant costs it seconds to compile); on GPUs the const folds in and they unroll.
// Interface generated from the spec in src/ops/gatedDeltaNet.ts (see its `*_IO` declarations).

const BV: u32 = WG_X;   // value columns per workgroup
const RG: u32 = WG_Y;   // row groups
const NSR: u32 = (DKB + RG - 1u) / RG;
fn trip(c: u32, p: u32) -> u32 { return select(c, p, ROLLED); }

var<workgroup> redC: array<vec2f, 2u * RG * BV>;   // (kᵀS, qᵀS) partials per row group and column
var<workgroup> redH: array<vec3f, 2u * RG>;        // (|k|², |q|², q·k) partials per row group

@compute @workgroup_size(WG_X, WG_Y, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let tv = lid.x;
  let tr = lid.y;
  let j = wid.y;
  let col = wid.x * BV + tv;
  let live = col < P.dv;
  let colc = min(col, P.dv - 1u);
  let hk = j / (P.Hv / P.Hk);
  let sbase = P.s_off + j * P.dk * P.dv + colc;

  var S: array<f32, NSR>;
  for (var m = 0u; m < trip(NSR, P.nsr); m++) {
    let i = tr + RG * m;
    S[m] = select(0.0, St[sbase + min(i, P.dk - 1u) * P.dv], live && i < P.dk);
  }

  for (var t = 0u; t < P.L; t++) {
    let qb = P.q_off + t * P.q_row + hk * P.q_head;
    let kb = P.k_off + t * P.k_row + hk * P.k_head;
    var kr: array<f32, NSR>;
    var qr: array<f32, NSR>;
    var kS = 0.0; var qS = 0.0; var k2 = 0.0; var q2 = 0.0; var qk = 0.0;
    for (var m = 0u; m < trip(NSR, P.nsr); m++) {
      let i = tr + RG * m;
      let ok = i < P.dk;
      let ic = min(i, P.dk - 1u);
      kr[m] = select(0.0, K[kb + ic], ok);
      qr[m] = select(0.0, Q[qb + ic], ok);
      k2 += kr[m] * kr[m];
      q2 += qr[m] * qr[m];
      qk += qr[m] * kr[m];
      kS += kr[m] * S[m];
      qS += qr[m] * S[m];
    }
    let buf = t & 1u;
    redC[(buf * RG + tr) * BV + tv] = vec2f(kS, qS);
    if (tv == 0u) { redH[buf * RG + tr] = vec3f(k2, q2, qk); }
    workgroupBarrier();
    // Every thread of a column sums in the same order, so they all get the same δ.
    var sc = vec2f(0.0);
    var sh = vec3f(0.0);
    for (var r = 0u; r < RG; r++) {
      sc += redC[(buf * RG + r) * BV + tv];
      sh += redH[buf * RG + r];
    }
    let nk = inverseSqrt(sh.x + 1e-6);
    let nq = inverseSqrt(sh.y + 1e-6) * P.scale;
    let eg = exp(G[P.g_off + t * P.Hv + j]);
    let bt = Beta[P.beta_off + t * P.Hv + j];
    let vt = V[P.v_off + t * P.v_row + j * P.v_head + colc];
    let delta = bt * (vt - eg * sc.x * nk);
    if (tr == 0u && live) {
      O[P.o_off + (t * P.Hv + j) * P.dv + col] = nq * (eg * sc.y + sh.z * nk * delta);
    }
    let kd = nk * delta;
    for (var m = 0u; m < trip(NSR, P.nsr); m++) { S[m] = eg * S[m] + kr[m] * kd; }
  }

  for (var m = 0u; m < trip(NSR, P.nsr); m++) {
    let i = tr + RG * m;
    if (live && i < P.dk) { St[sbase + i * P.dv] = S[m]; }
  }
}
