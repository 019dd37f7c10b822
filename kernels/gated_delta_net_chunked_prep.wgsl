// Gated delta rule, chunked form (docs/architecture.md §5.6), part 1 of 2: the per-chunk matrices.
// One workgroup per (chunk c, v-head j); independent of the state, so all chunks run in parallel.
// With r, s the in-chunk token indices, γ_r = Σ_{s≤r} g_s, k̂ = k/|k|, q̂ = q·scale/|q| and padded tokens
// (t ≥ L) having k = q = β = g = 0:
//   M[r, s] = β_r (k̂_r·k̂_s) e^{γ_r−γ_s}   (s < r)
//   T       = (I + M)⁻¹                    unit lower triangular, by forward substitution (one column per
//                                          invocation: T[:, s] solves (I+M) x = e_s top-down)
//   P[r, s] = (q̂_r·k̂_s) e^{γ_r−γ_s}       (s ≤ r; the (QKᵀ ⊙ D) of the WY form)
//   aux[r]  = (β_r e^{γ_r}/|k_r|, β_r, e^{γ_r}·scale/|q_r|, e^{γ_C−γ_r}/|k_r|),  aux[CH] = (e^{γ_C}, 0, 0, 0)
// Every exponent is a difference γ_r − γ_s with s ≤ r (or γ itself), so all factors are ≤ 1: no overflow.
// part 2 (gated_delta_net_chunked.wgsl) applies T, P and aux to raw q/k/v rows and the state.
// The Gram products k·k, q·k go through dk in TI-wide tiles staged in workgroup memory.
// Segments (nseg > 0, a ragged batch of independent sequences): z = segment; Seg = [cu_seqlens (nseg+1) |
// cumulative chunk counts (nseg+1)]; chunks start at each sequence's first token and are numbered globally
// (nC = the total), so a sequence's matrices are the same wherever it sits in the batch.
// dk is a runtime value and long loops have runtime bounds: with constant trip counts llvmpipe unrolls them
// completely and compiling one variant takes minutes. The short register blocks are written out by hand (vec4
// accumulators), so no ROLLED variant is needed.
// Interface generated from the spec in src/ops/gatedDeltaNet.ts (see its `*_IO` declarations).

const TIP: u32 = TI + 1u;                        // padded tile row: no bank conflicts on column walks
var<workgroup> sh: array<f32, max(2u * CH * TIP, CH * CH)>;  // K/Q tiles, then M
var<workgroup> gam: array<f32, CH>;
var<workgroup> bet: array<f32, CH>;
var<workgroup> ikn: array<f32, CH>;   // 1/|k_r|   (0 for padded rows)
var<workgroup> iqn: array<f32, CH>;   // scale/|q_r| (0 for padded rows)

@compute @workgroup_size(WG_X, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let j = wid.y;
  let tid = lid.x;
  var start = 0u;
  var L = P.L;
  var c = wid.x;                     // global chunk index (Tm / Pm / Aux)
  if (P.nseg > 0u) {
    start = Seg[wid.z];
    L = Seg[wid.z + 1u] - start;
    if (wid.x * CH >= L) { return; }   // uniform: the whole workgroup leaves
    c = Seg[P.nseg + 1u + wid.z] + wid.x;
  }
  let t0 = start + wid.x * CH;       // first token of the chunk
  let n = min(CH, L - wid.x * CH);
  let hk = j / (P.Hv / P.Hk);
  let mbase = (j * P.nC + c) * CH * CH;

  if (tid < CH) {
    let r = tid;
    var gs = 0.0;
    for (var s = 0u; s <= r && s < n; s++) { gs += G[P.g_off + (t0 + s) * P.Hv + j]; }
    var b = 0.0; var ik = 0.0; var iq = 0.0;
    if (r < n) {
      let t = t0 + r;
      b = Beta[P.beta_off + t * P.Hv + j];
      let kb = P.k_off + t * P.k_row + hk * P.k_head;
      let qb = P.q_off + t * P.q_row + hk * P.q_head;
      var sk = 0.0; var sq = 0.0;
      for (var i = 0u; i < P.dk; i++) {
        let kv = K[kb + i];
        let qv = Q[qb + i];
        sk += kv * kv;
        sq += qv * qv;
      }
      ik = inverseSqrt(sk + 1e-6);
      iq = inverseSqrt(sq + 1e-6) * P.scale;
    }
    gam[r] = gs; bet[r] = b; ikn[r] = ik; iqn[r] = iq;
  }

  // Gram: thread (a, b) = (tid / 16, tid % 16) accumulates the 4×4 entries r = a + 16x, s = b + 16y (the
  // whole square, branch-free; only s ≤ r is used), 12 tile loads per 32 FMAs. The accumulators are vec4
  // registers (row x, columns y), written out without loops or arrays: a private array indexed in a loop lives
  // in memory on llvmpipe (one load + store per FMA), and unrolling the loops instead costs seconds of compile.
  let ga = tid / 16u;
  let gb = tid % 16u;
  let ro = vec4u(min(ga, CH - 1u), min(ga + 16u, CH - 1u), min(ga + 32u, CH - 1u), min(ga + 48u, CH - 1u)) * TIP;
  let so = vec4u(min(gb, CH - 1u), min(gb + 16u, CH - 1u), min(gb + 32u, CH - 1u), min(gb + 48u, CH - 1u)) * TIP;
  let qo = ro + CH * TIP;
  var k0 = vec4f(0.0); var k1 = vec4f(0.0); var k2 = vec4f(0.0); var k3 = vec4f(0.0);
  var q0 = vec4f(0.0); var q1 = vec4f(0.0); var q2 = vec4f(0.0); var q3 = vec4f(0.0);
  for (var i0 = 0u; i0 < P.dk; i0 += TI) {
    workgroupBarrier();
    for (var e = tid; e < CH * TI; e += WG_X) {
      let r = e / TI;
      let i = i0 + e % TI;
      var kv = 0.0; var qv = 0.0;
      if (r < n && i < P.dk) {
        let t = t0 + r;
        kv = K[P.k_off + t * P.k_row + hk * P.k_head + i];
        qv = Q[P.q_off + t * P.q_row + hk * P.q_head + i];
      }
      sh[r * TIP + e % TI] = kv;
      sh[CH * TIP + r * TIP + e % TI] = qv;
    }
    workgroupBarrier();
    let w = min(TI, P.dk - i0);
    for (var ii = 0u; ii < w; ii++) {
      let kr = vec4f(sh[ro.x + ii], sh[ro.y + ii], sh[ro.z + ii], sh[ro.w + ii]);
      let qr = vec4f(sh[qo.x + ii], sh[qo.y + ii], sh[qo.z + ii], sh[qo.w + ii]);
      let ks = vec4f(sh[so.x + ii], sh[so.y + ii], sh[so.z + ii], sh[so.w + ii]);
      k0 += kr.x * ks; k1 += kr.y * ks; k2 += kr.z * ks; k3 += kr.w * ks;
      q0 += qr.x * ks; q1 += qr.y * ks; q2 += qr.z * ks; q3 += qr.w * ks;
    }
  }
  workgroupBarrier();

  // M into workgroup memory (over the tiles), P to global.
  put_gram(ga, gb, mbase, k0, q0);
  put_gram(ga + 16u, gb, mbase, k1, q1);
  put_gram(ga + 32u, gb, mbase, k2, q2);
  put_gram(ga + 48u, gb, mbase, k3, q3);
  let abase = (j * P.nC + c) * (CH + 1u);
  let gC = gam[CH - 1u];   // = γ at the last real token (padded g are 0)
  if (tid < CH) {
    let r = tid;
    let eg = exp(gam[r]);
    Aux[abase + r] = vec4f(bet[r] * eg * ikn[r], bet[r], eg * iqn[r], exp(gC - gam[r]) * ikn[r]);
  }
  if (tid == 0u) { Aux[abase + CH] = vec4f(exp(gC), 0.0, 0.0, 0.0); }
  workgroupBarrier();

  // T = (I + M)⁻¹, column s per invocation: x_s = 1, x_r = −Σ_{s≤u<r} M[r, u] x_u. Every invocation runs the
  // same loops (u from 0, with x_u = 0 for u < s, which adds exact zeros): the loop counters are uniform, so
  // M[r, u] is one broadcast read and x[u] one vector access instead of a per-lane gather.
  if (tid < CH) {
    let s = tid;
    var x = array<f32, CH>();
    for (var r = 0u; r < P.ch; r++) {
      var acc = 0.0;
      for (var u = 0u; u < r; u++) { acc += sh[r * CH + u] * x[u]; }
      let v = select(select(0.0, 1.0, r == s), -acc, r > s);
      x[r] = v;
      Tm[mbase + r * CH + s] = v;
    }
  }
}

// Entries (r, gb + 16y), y = 0..3, of the Gram accumulators: M[r, s] into workgroup memory, P[r, s] to global.
fn put_gram(r: u32, gb: u32, mbase: u32, acck: vec4f, accq: vec4f) {
  for (var y = 0u; y < 4u; y++) {
    let s = gb + 16u * y;
    if (r < CH && s < CH) {
      var mv = 0.0; var pv = 0.0;
      if (s <= r) {
        let dec = exp(gam[r] - gam[s]);
        pv = accq[y] * iqn[r] * ikn[s] * dec;
        if (s < r) { mv = bet[r] * acck[y] * ikn[r] * ikn[s] * dec; }
      }
      sh[r * CH + s] = mv;
      Pm[mbase + r * CH + s] = pv;
    }
  }
}
