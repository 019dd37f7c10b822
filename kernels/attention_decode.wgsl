// Flash-decoding, pass 1 of 2 (partials): few queries (Lq ≤ 4) against a long key range split in chunks.
// Same semantics as attention.wgsl (GQA, causal, segments, key mask; the gate is applied by the reduce pass).
//
// One workgroup per (split, kv head, group of NQ rows). The rows are the (query head of the GQA group, query)
// pairs that share the kv head, so each K/V element is read once per row group (once in total when
// G·Lq ≤ NQ, e.g. Qwen3.5 decode: 4 query heads per kv head, NQ = 4). It walks its chunk in tiles of KT = WG_X keys:
//   S phase: thread t computes the scores of key kt+t for all NQ rows (K row read straight from global memory;
//            the NQ query rows are in shared memory, pre-scaled);
//   softmax: every thread finds the tile max of each row (redundantly, compares only) and writes p for its key;
//   PV phase: thread t owns the vec4 columns c ≡ t (mod WG_X) of O, reading V rows coalesced across threads.
// It writes the unnormalised O, the row max m and the row sum l of its chunk; attention_decode_reduce.wgsl
// combines the splits. A split (or row) that sees no key writes m = NEG, l = 0, O = 0 (-inf-free).
// Consts: HD (head dim, multiple of 4), NQ (rows per workgroup, held in registers), DPT4 = ceil(HD/4 / WG_X), ROLLED
// (software adapters: constant-trip loops read their trip counts from Params so LLVM keeps them rolled; see
// attention.wgsl). key_ok / seg_of / causal_hi / trip / ldq·ldk·ldv come from lib/attention_keys.wgsl.
// Interface (P: shapes, view strides, flags, split sizes, ROLLED trip counts; Q K V Mk Seg → Part [H, Lq, nsplit,
// HD/4] vec4f and Meta [H, Lq, nsplit] (m, l) vec2f) generated from DECODE_IO in src/ops/attention.ts.

const HD4: u32 = HD / 4u;
const KT: u32 = WG_X;
const NEG: f32 = -1.0e30;
const NEG_T: f32 = -1.0e29;

var<workgroup> Qs: array<vec4f, NQ * HD4>;
var<workgroup> Ss: array<f32, NQ * KT>;
var<workgroup> Ps: array<f32, NQ * KT>;

@compute @workgroup_size(WG_X, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) t: u32) {
  let sp = wid.x;
  let hk = wid.y;
  let R = P.G * P.Lq;          // rows sharing this kv head: (head in group, query)
  let r0 = wid.z * NQ;         // this workgroup's first row
  let qlast = P.Lq - 1u;

  for (var idx = t; idx < NQ * HD4; idx += WG_X) {
    let gr = min(r0 + idx / HD4, R - 1u);
    let h = hk * P.G + gr / P.Lq;
    let c = idx % HD4;
    Qs[idx] = ldq(P.q_off + (gr % P.Lq) * P.q_rs + h * P.q_hs + c * 4u) * P.scale;
  }

  // This split's key range (uniform: the union over the queries) and each row's visible range.
  var lo = sp * P.chunk;
  var hi = min(lo + P.chunk, P.Lk);
  var rlo = array<u32, NQ>();
  var rhi = array<u32, NQ>();
  for (var r = 0u; r < trip(NQ, P.n_nq); r++) {
    let qi = min(r0 + r, R - 1u) % P.Lq;
    rlo[r] = 0u;
    rhi[r] = select(0u, P.Lk, r0 + r < R);   // padding rows see nothing
    if (P.causal != 0u) { rhi[r] = min(rhi[r], causal_hi(qi)); }
    if (P.nseg > 0u) {
      let sr = seg_of(qi);
      rlo[r] = Seg[sr];
      rhi[r] = min(rhi[r], Seg[sr + 1u]);
    }
  }
  if (P.causal != 0u) { hi = min(hi, causal_hi(qlast)); }
  if (P.nseg > 0u) {
    lo = max(lo, Seg[seg_of(0u)]);
    hi = min(hi, Seg[seg_of(qlast) + 1u]);
  }

  var m = array<f32, NQ>();
  var l = array<f32, NQ>();
  var o = array<array<vec4f, DPT4>, NQ>();
  for (var r = 0u; r < trip(NQ, P.n_nq); r++) { m[r] = NEG; }
  workgroupBarrier();   // Qs ready
  for (var kt = lo; kt < hi; kt += KT) {
    let j = kt + t;
    let kj = min(j, P.Lk - 1u);
    var acc = array<vec4f, NQ>();   // explicit initializer: a loop-local `var x: T;` is zeroed only once on Dawn
    let kb = P.k_off + kj * P.k_rs + hk * P.k_hs;
    for (var c = 0u; c < trip(HD4, P.n_hd4); c++) {
      let kv = ldk(kb + c * 4u);
      for (var r = 0u; r < trip(NQ, P.n_nq); r++) { acc[r] += Qs[r * HD4 + c] * kv; }
    }
    let kok = j < hi && key_ok(j);
    for (var r = 0u; r < trip(NQ, P.n_nq); r++) {
      let ok = kok && j >= rlo[r] && j < rhi[r];
      Ss[r * KT + t] = select(NEG, acc[r].x + acc[r].y + acc[r].z + acc[r].w, ok);
    }
    workgroupBarrier();

    for (var r = 0u; r < trip(NQ, P.n_nq); r++) {
      var mt = m[r];
      for (var jj = 0u; jj < trip(KT, P.n_kt); jj++) { mt = max(mt, Ss[r * KT + jj]); }
      let sv = Ss[r * KT + t];
      Ps[r * KT + t] = select(0.0, exp(sv - mt), sv > NEG_T);
      let alpha = exp(m[r] - mt);
      l[r] *= alpha;
      for (var k = 0u; k < trip(DPT4, P.n_dpt4); k++) { o[r][k] *= alpha; }
      m[r] = mt;
    }
    workgroupBarrier();

    let nk = min(KT, hi - kt);
    for (var jj = 0u; jj < nk; jj++) {
      let vb = P.v_off + (kt + jj) * P.v_rs + hk * P.v_hs;
      for (var k = 0u; k < trip(DPT4, P.n_dpt4); k++) {
        let c = t + k * WG_X;
        if (c < HD4) {
          let vv = ldv(vb + c * 4u);
          for (var r = 0u; r < trip(NQ, P.n_nq); r++) { o[r][k] += Ps[r * KT + jj] * vv; }
        }
      }
      for (var r = 0u; r < trip(NQ, P.n_nq); r++) { l[r] += Ps[r * KT + jj]; }
    }
  }

  for (var r = 0u; r < min(NQ, R - r0); r++) {
    let gr = r0 + r;
    let h = hk * P.G + gr / P.Lq;
    let row = (h * P.Lq + gr % P.Lq) * P.nsplit + sp;
    for (var k = 0u; k < trip(DPT4, P.n_dpt4); k++) {
      let c = t + k * WG_X;
      if (c < HD4) { Part[row * HD4 + c] = o[r][k]; }
    }
    if (t == 0u) { Meta[row] = vec2f(m[r], l[r]); }
  }
}
