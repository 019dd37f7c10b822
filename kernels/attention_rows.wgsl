// Flash attention, query rows per invocation (the prefill variant for SIMD-on-CPU adapters such as lavapipe;
// same semantics as attention.wgsl: GQA, causal limit, cu_seqlens segments with key ranges, key mask, gate).
//
// Why a second prefill kernel: lavapipe runs the invocations of a workgroup as SIMD lanes (8 f32 lanes on AVX2)
// and a storage load costs far more than an FMA: a lane-uniform address is one bounds-checked scalar load +
// broadcast, a per-lane address a branchy loop over the lanes. attention.wgsl (shared-memory tiles, TPQ threads
// per query row) reads its tiles at per-lane addresses and pays ~3 barriers per key tile; here every K/V read is
// lane-uniform, serves NQL query rows per lane, and there is no shared memory or barrier:
//   lanes = (head of HPW heads of one GQA group, NQL consecutive queries), so all lanes share the kv head and the
//   keys; the workgroup covers BQ = (WG_X / HPW)·NQL queries;
//   per key step of BK keys: S[i][j] = q_i·K[kt+j] (a mat4x4 of 4 key rows per vec4 column, q_i from private
//   memory), the online-softmax update of each row (one exp per score, no redundancy), then
//   O_i[c] = alpha_i·O_i[c] + Σ_j p_ij·V[kt+j][c] (V loaded once for the NQL rows; O in private memory).
// Masking is -inf-free as in attention.wgsl (masked score NEG, p = 0; a row with no visible key writes zeros).
// Causal: global indices, or aligned to each segment's bottom right (P.causal = 2, lib/attention_tile.wgsl).
// Segments: a workgroup's queries never cross a segment (tile table of the wrapper, tiles of BQ queries); the key
// steps start at the segment's `lo` and keys at or past the tile's `hi` are clamped loads with p = 0, so a row's
// arithmetic (the same key steps, the same order) never depends on the other rows of the batch or on NQL, BQ, HPW.
// Consts: HD (head dim, multiple of 4), BQ, NQL (query rows per lane), HPW (heads per workgroup, divides G), BK
// (keys per step: 4 or 8), ROLLED (the head-dim loops take their trip count from Params: lib/attention_keys.wgsl).
// Interface generated from ATTENTION_IO in src/ops/attention.ts.

const HD4: u32 = HD / 4u;
const NEG: f32 = -1.0e30;
const NEG_T: f32 = -1.0e29;

// q · (4 key rows at element offsets r).
fn qk4(qv: vec4f, r: vec4u) -> vec4f {
  return vec4f(dot(qv, ldk(r.x)), dot(qv, ldk(r.y)), dot(qv, ldk(r.z)), dot(qv, ldk(r.w)));
}

// Σ p_i · (V row at element offset r_i), 4 rows.
fn pv4(p: vec4f, r: vec4u) -> vec4f {
  return p.x * ldv(r.x) + p.y * ldv(r.y) + p.z * ldv(r.z) + p.w * ldv(r.w);
}

// Keys j that exist in the tile's range and pass the key mask (lane-uniform).
fn keys_ok(j: vec4u, hi: u32) -> vec4<bool> {
  return vec4<bool>(key_ok(j.x), key_ok(j.y), key_ok(j.z), key_ok(j.w)) & (j < vec4u(hi));
}

// Online-softmax step of one query row over BK scores (s0: keys kt..kt+3, s1: kt+4..kt+7; unscaled dots).
struct Step { p0: vec4f, p1: vec4f, alpha: f32, m: f32, l: f32 }
fn softmax_step(s0: vec4f, s1: vec4f, ok0: vec4<bool>, ok1: vec4<bool>, m: f32, l: f32) -> Step {
  let t0 = select(vec4f(NEG), s0 * P.scale, ok0);
  let t1 = select(vec4f(NEG), s1 * P.scale, ok1);
  let t01 = max(t0, t1);
  let mt = max(m, max(max(t01.x, t01.y), max(t01.z, t01.w)));
  let alpha = exp(m - mt);   // 1 while nothing was seen (NEG − NEG); 0 at the first visible key
  let p0 = select(vec4f(), exp(t0 - mt), t0 > vec4f(NEG_T));
  let p1 = select(vec4f(), exp(t1 - mt), t1 > vec4f(NEG_T));
  return Step(p0, p1, alpha, mt, l * alpha + dot(p0, vec4f(1.0)) + dot(p1, vec4f(1.0)));
}

// The normalised, gated output row of query qi, head h.
fn store_row(o: ptr<function, array<vec4f, HD4>>, l: f32, qi: u32, h: u32) {
  let inv = select(0.0, 1.0 / l, l > 0.0);
  for (var c = 0u; c < trip(HD4, P.n_hd4); c++) { store_out4((*o)[c] * inv, qi, h, c, HD); }
}

@compute @workgroup_size(WG_X, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) t: u32) {
  // Lane-uniform values come from the workgroup id only (the compiler then keeps their loads scalar).
  let h0 = wid.y * HPW;
  let hk = h0 / P.G;
  let range = tile_range(wid.x);
  let q0 = range.x;
  let qend = range.y;
  let lo = range.z;
  var hi = range.w;
  let qlast = min(q0 + BQ, qend) - 1u;
  if (P.causal != 0u) { hi = min(hi, tile_causal_hi(qlast, qend, range.w)); }
  let kb = P.k_off + hk * P.k_hs;
  let vb = P.v_off + hk * P.v_hs;

  // This lane's NQL query rows: r·NQL + i of the tile (padding rows shadow the last query and are never stored).
  // Every K/V value loaded serves all NQL rows (the loads, not the FMAs, bound this kernel on lavapipe).
  let r = (t % (BQ / NQL)) * NQL;
  let h = h0 + t / (BQ / NQL);
  var qi = array<u32, NQL>();
  var rhi = array<u32, NQL>();
  // The rows' queries, loaded once (a per-lane load is a gather; these are read once per key step).
  var x = array<array<vec4f, HD4>, NQL>();
  for (var i = 0u; i < NQL; i++) {
    qi[i] = min(q0 + r + i, qlast);
    rhi[i] = hi;
    if (P.causal != 0u) { rhi[i] = min(hi, tile_causal_hi(qi[i], qend, range.w)); }
    let qb = P.q_off + qi[i] * P.q_rs + h * P.q_hs;
    for (var c = 0u; c < trip(HD4, P.n_hd4); c++) { x[i][c] = ldq(qb + c * 4u); }
  }

  var m = array<f32, NQL>();
  var l = array<f32, NQL>();
  for (var i = 0u; i < NQL; i++) { m[i] = NEG; }
  var o = array<array<vec4f, HD4>, NQL>();
  for (var kt = lo; kt < hi; kt += BK) {
    // The step's keys kt + (0..BK) in groups of 4 (a vec4 of scores per row and group). Keys at or past `hi`
    // read row hi − 1 (clamped, lane-uniform) and get p = 0.
    let hm = hi - 1u;
    let j0 = vec4u(kt, kt + 1u, kt + 2u, kt + 3u);
    let j1 = j0 + 4u;
    let ka = kb + min(j0, vec4u(hm)) * P.k_rs;
    let va = vb + min(j0, vec4u(hm)) * P.v_rs;
    let kc = kb + min(j1, vec4u(hm)) * P.k_rs;
    let vc = vb + min(j1, vec4u(hm)) * P.v_rs;
    var s0 = array<vec4f, NQL>();
    var s1 = array<vec4f, NQL>();
    for (var c = 0u; c < trip(HD4, P.n_hd4); c++) {
      let c4 = c * 4u;
      let k0 = mat4x4f(ldk(ka.x + c4), ldk(ka.y + c4), ldk(ka.z + c4), ldk(ka.w + c4));
      for (var i = 0u; i < NQL; i++) { s0[i] += x[i][c] * k0; }
      if (BK == 8u) {
        let k1 = mat4x4f(ldk(kc.x + c4), ldk(kc.y + c4), ldk(kc.z + c4), ldk(kc.w + c4));
        for (var i = 0u; i < NQL; i++) { s1[i] += x[i][c] * k1; }
      }
    }
    let ok0 = keys_ok(j0, hi);
    let ok1 = keys_ok(j1, hi) & vec4<bool>(BK == 8u);
    var st = array<Step, NQL>();
    for (var i = 0u; i < NQL; i++) {
      st[i] = softmax_step(s0[i], s1[i], ok0 & (j0 < vec4u(rhi[i])), ok1 & (j1 < vec4u(rhi[i])), m[i], l[i]);
      m[i] = st[i].m;
      l[i] = st[i].l;
    }
    for (var c = 0u; c < trip(HD4, P.n_hd4); c++) {
      let c4 = c * 4u;
      let v0 = mat4x4f(ldv(va.x + c4), ldv(va.y + c4), ldv(va.z + c4), ldv(va.w + c4));
      if (BK == 8u) {
        let v1 = mat4x4f(ldv(vc.x + c4), ldv(vc.y + c4), ldv(vc.z + c4), ldv(vc.w + c4));
        for (var i = 0u; i < NQL; i++) { o[i][c] = o[i][c] * st[i].alpha + v0 * st[i].p0 + v1 * st[i].p1; }
      } else {
        for (var i = 0u; i < NQL; i++) { o[i][c] = o[i][c] * st[i].alpha + v0 * st[i].p0; }
      }
    }
  }

  for (var i = 0u; i < NQL; i++) {
    if (q0 + r + i <= qlast) { store_row(&o[i], l[i], qi[i], h); }
  }
}
