// Flash attention (prefill / general): out[t, h, :] = softmax_j(scale · q[t,h]·k[j,hk] + mask) · v[j, hk]
// with hk = h / G (GQA), optional causal limit, cu_seqlens segments, key-padding mask and output gate.
//
// One workgroup per (tile of BQ queries, query head). The tile's queries live in shared memory (pre-scaled); the
// workgroup walks its key range in tiles of BK keys staged in shared memory (K and V), with an online softmax:
// a running row max m and row sum l, O rescaled by exp(m_old − m_new) whenever the max grows; f32 throughout.
// Thread (r, s) = (t / TPQ, t % TPQ) serves query row r: it computes the scores S[r][j] for j ≡ s (mod TPQ),
// and after a barrier owns the vec4 columns c ≡ s (mod TPQ) of O[r] (kept in registers, DPT4 of them).
// Masking is -inf-free: a masked score is stored as NEG and contributes p = 0 explicitly, so a row that sees no
// key ends with l = 0 and writes zeros (never NaN).
// The masking modes (causal, segments, key mask, gate) are uniform flags, not consts: the branches are uniform
// and this keeps the pipeline count to one per head dim.
// Segments (nseg > 0, ragged batches): the query tiles never cross a segment. The grid walks a tile table
// (segment, first query) that the wrapper builds, and each segment has its own key range [lo, hi) (the segment
// itself for self-attention; any range, e.g. a per-row context, for cross-attention). A tile's key tiles start
// at its segment's `lo`, and key rows at or past the tile's `hi` load as zeros, so a query's arithmetic is the
// same wherever its segment sits in the batch: a row's output never depends on the other rows.
// Consts: HD (head dim, multiple of 4, ≤ 256), BQ, BK, TPQ = WG_X / BQ, DPT4 = ceil(HD/4 / TPQ), ROLLED.
// Causal: global indices, or aligned to each segment's bottom right (P.causal = 2: tile_causal_hi in
// lib/attention_tile.wgsl). key_ok / seg_of / causal_hi / trip / ldq·ldk·ldv come from lib/attention_keys.wgsl (shared with the decode kernel).
// ROLLED (software adapters only): the constant-trip loops take their trip counts from Params (`trip()`), so the
// compiler keeps them rolled. lavapipe's LLVM otherwise spends 5–25 s unrolling one variant; GPUs get the
// constants (select on a false const folds away) so the loops unroll and O / the scores stay in registers.
// Interface (P: shapes, view strides, flags, ROLLED trip counts; Q K V Gt Mk Seg → Out) generated from ATTENTION_IO
// in src/ops/attention.ts.

const HD4: u32 = HD / 4u;
const STR: u32 = HD4 + 1u;     // padded vec4 row stride of Qs / Ks: rows of a tile start in different banks
const KPT: u32 = BK / TPQ;     // scores per thread per key tile
const NEG: f32 = -1.0e30;      // "masked" score; valid scores are far above NEG_T
const NEG_T: f32 = -1.0e29;

var<workgroup> Qs: array<vec4f, BQ * STR>;
var<workgroup> Ks: array<vec4f, BK * STR>;
var<workgroup> Vs: array<vec4f, BK * HD4>;
var<workgroup> Ss: array<f32, BQ * BK>;
var<workgroup> kok: array<u32, BK>;

@compute @workgroup_size(WG_X, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) t: u32) {
  let h = wid.y;
  let hk = h / P.G;
  // This tile's queries [q0, qend ∩ q0 + BQ) and its key range [lo, hi).
  let range = tile_range(wid.x);
  let q0 = range.x;
  let qend = range.y;
  let lo = range.z;
  var hi = range.w;
  let r = t / TPQ;
  let s = t % TPQ;
  let qlast = min(q0 + BQ, qend) - 1u;
  let qi = min(q0 + r, qlast);   // padding rows of the last tile shadow the last query (never stored)

  for (var idx = t; idx < BQ * HD4; idx += WG_X) {
    let rr = idx / HD4;
    let c = idx % HD4;
    let qq = min(q0 + rr, qlast);
    Qs[rr * STR + c] = ldq(P.q_off + qq * P.q_rs + h * P.q_hs + c * 4u) * P.scale;
  }

  // Key range of the whole tile (uniform) and of this thread's row.
  var my_lo = lo;
  var my_hi = hi;
  if (P.causal != 0u) {
    hi = min(hi, tile_causal_hi(qlast, qend, range.w));
    my_hi = min(my_hi, tile_causal_hi(qi, qend, range.w));
  }

  var m = NEG;
  var l = 0.0;
  var o = array<vec4f, DPT4>();
  for (var kt = lo; kt < hi; kt += BK) {
    workgroupBarrier();   // the previous tile's Ks / Vs / Ss are no longer read
    for (var idx = t; idx < BK * HD4; idx += WG_X) {
      let j = idx / HD4;
      let c = idx % HD4;
      let kj = kt + j;
      var kv = vec4f();
      var vv = vec4f();
      if (kj < hi) {   // keys past the tile's range are zeros (never another segment's rows: see the header)
        kv = ldk(P.k_off + kj * P.k_rs + hk * P.k_hs + c * 4u);
        vv = ldv(P.v_off + kj * P.v_rs + hk * P.v_hs + c * 4u);
      }
      Ks[j * STR + c] = kv;
      Vs[j * HD4 + c] = vv;
    }
    if (t < BK) { kok[t] = select(0u, 1u, key_ok(kt + t)); }
    workgroupBarrier();

    // Scores S[r][s + a·TPQ]: one Qs read per vec4 column serves all KPT keys of this thread.
    // An explicit initializer: a loop-local `var x: T;` is zeroed only once per invocation on Dawn (Tint hoists it).
    var sc = array<f32, KPT>();
    for (var c = 0u; c < trip(HD4, P.n_hd4); c++) {
      let qv = Qs[r * STR + c];
      for (var a = 0u; a < trip(KPT, P.n_kpt); a++) { sc[a] += dot(qv, Ks[(s + a * TPQ) * STR + c]); }
    }
    for (var a = 0u; a < trip(KPT, P.n_kpt); a++) {
      let j = s + a * TPQ;
      let kj = kt + j;
      let ok = kok[j] != 0u && kj >= my_lo && kj < my_hi;
      Ss[r * BK + j] = select(NEG, sc[a], ok);
    }
    workgroupBarrier();

    var mt = m;
    for (var j = 0u; j < trip(BK, P.n_bk); j++) { mt = max(mt, Ss[r * BK + j]); }
    let alpha = exp(m - mt);   // 1 while nothing was seen (NEG − NEG); 0 at the first visible key
    l *= alpha;
    for (var k = 0u; k < trip(DPT4, P.n_dpt4); k++) { o[k] *= alpha; }
    for (var j = 0u; j < trip(BK, P.n_bk); j++) {
      let sv = Ss[r * BK + j];
      let p = select(0.0, exp(sv - mt), sv > NEG_T);
      l += p;
      for (var k = 0u; k < trip(DPT4, P.n_dpt4); k++) {
        let c = s + k * TPQ;
        if (c < HD4) { o[k] += p * Vs[j * HD4 + c]; }
      }
    }
    m = mt;
  }

  if (q0 + r > qlast) { return; }
  let inv = select(0.0, 1.0 / l, l > 0.0);
  for (var k = 0u; k < trip(DPT4, P.n_dpt4); k++) {
    let c = s + k * TPQ;
    if (c >= HD4) { break; }
    store_out4(o[k] * inv, qi, h, c, HD);
  }
}
