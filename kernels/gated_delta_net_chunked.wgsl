// Gated delta rule, chunked form (docs/architecture.md §5.6), part 2 of 2: the state pass.
// A workgroup owns v-head j and a block of BV = WG_X value columns (the rule is independent per column),
// keeps that S block [dk, BV] in workgroup memory and walks the chunks in order. Per chunk, with T, P, aux
// from gated_delta_net_chunked_prep.wgsl and raw q/k/v rows (the normalisation lives in aux):
//   R  = β ⊙ V − (β e^γ ⊙ K̂) S            (= U − W S of the WY form, before applying (I+M)⁻¹)
//   V' = T R                                (U − W S = (I+M)⁻¹(βV − βe^γ K̂ S): one solve, C × BV)
//   O  = (e^γ ⊙ Q̂) S + P V'
//   S  ← e^{γ_C} S + (e^{γ_C−γ} ⊙ K̂)ᵀ V'
// Thread (tv, tr) owns column tv and chunk rows tr, tr+RG, … (NRM of them) for R, V', O, and state rows
// tr, tr+RG, … (NSR) for the update. q/k rows are read straight from global memory: a warp shares tr, so
// those loads are broadcasts.
// Segments (nseg > 0, a ragged batch of independent sequences, cache-free prefill): z = segment; Seg as in
// gated_delta_net_chunked_prep.wgsl; each sequence starts from a zero state, or (P.seg_state = 1) from its own
// initial state St[z] ([nseg, Hv, dk, dv], read only: a cached prompt prefix), and its final state is not stored.
// DKB is dk rounded up to a bucket (128 or 256): it sizes Ss and the per-thread state rows NSR, so one
// pipeline serves every dk in the bucket (rows ≥ P.dk are masked). Long loops run to runtime bounds (P.dk,
// row/chunk counts), short register-block loops (NRM, NSR) are const: constant long loops make llvmpipe
// unroll everything and take minutes to compile. ROLLED (software adapters only) also gives the NRM / NSR
// loops their trip counts from Params, so llvmpipe keeps those rolled too; on GPUs the consts fold in.
// Interface generated from the spec in src/ops/gatedDeltaNet.ts (see its `*_IO` declarations).

const BV: u32 = WG_X;
const RG: u32 = WG_Y;
const NRM: u32 = (CH + RG - 1u) / RG;
const NSR: u32 = (DKB + RG - 1u) / RG;
fn trip(c: u32, p: u32) -> u32 { return select(c, p, ROLLED); }
const_assert NRM <= 8u;   // X, Y hold 8 rows per thread (CH ≤ 64, RG ≥ 8)
fn pick(a: vec4f, b: vec4f, m: u32) -> f32 { return select(b[m & 3u], a[m & 3u], m < 4u); }
const_assert NSR <= 16u;  // the state update holds 16 rows per thread (DKB / RG)
// Four state rows of column tv (rows ≥ dk read as whatever the block holds and are never stored).
fn ss4(i: vec4u, tv: u32) -> vec4f {
  let c = min(i, vec4u(DKB - 1u)) * BV + tv;
  return vec4f(Ss[c.x], Ss[c.y], Ss[c.z], Ss[c.w]);
}
fn put_ss(i: vec4u, tv: u32, v: vec4f) {
  if (i.x < P.dk) { Ss[i.x * BV + tv] = v.x; }
  if (i.y < P.dk) { Ss[i.y * BV + tv] = v.y; }
  if (i.z < P.dk) { Ss[i.z * BV + tv] = v.z; }
  if (i.w < P.dk) { Ss[i.w * BV + tv] = v.w; }
}
// k[i] of the key row at kr for four i (clamped into the row: rows ≥ dk are computed and never stored).
fn k4(kr: u32, i: vec4u) -> vec4f {
  let c = kr + min(i, vec4u(P.dk - 1u));
  return vec4f(K[c.x], K[c.y], K[c.z], K[c.w]);
}

var<workgroup> Ss: array<f32, DKB * BV>;   // S block, [i][v]
var<workgroup> RV: array<f32, CH * BV>;   // R, then V'
var<workgroup> ax: array<vec4f, CH + 1u>;

@compute @workgroup_size(WG_X, WG_Y, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let tv = lid.x;
  let tr = lid.y;
  let tid = tr * BV + tv;
  let j = wid.y;
  let col = wid.x * BV + tv;
  let live = col < P.dv;
  let colc = min(col, P.dv - 1u);
  let hk = j / (P.Hv / P.Hk);
  let sbase = P.s_off + j * P.dk * P.dv + colc;
  let kh = P.k_off + hk * P.k_head;
  let qh = P.q_off + hk * P.q_head;
  let vh = P.v_off + j * P.v_head + colc;

  var start = 0u;
  var L = P.L;
  var nc = P.nC;      // this sequence's chunks
  var cbase = 0u;     // global index of its first chunk
  if (P.nseg > 0u) {
    start = Seg[wid.z];
    L = Seg[wid.z + 1u] - start;
    cbase = Seg[P.nseg + 1u + wid.z];
    nc = Seg[P.nseg + 2u + wid.z] - cbase;
  }
  let read_state = P.nseg == 0u || P.seg_state == 1u;   // else: a segment from a zero state
  let sin = sbase + select(0u, wid.z * P.Hv * P.dk * P.dv, P.nseg > 0u);
  for (var m = 0u; m < trip(NSR, P.nsr); m++) {
    let i = tr + RG * m;
    if (i < P.dk) {
      var v = 0.0;
      if (live && read_state) { v = St[sin + i * P.dv]; }
      Ss[i * BV + tv] = v;
    }
  }

  for (var cc = 0u; cc < nc; cc++) {
    let c = cbase + cc;
    let t0 = start + cc * CH;
    let n = min(CH, L - cc * CH);
    let mbase = (j * P.nC + c) * CH * CH;
    workgroupBarrier();   // the previous chunk's update of Ss and its reads of RV / ax are done
    for (var e = tid; e <= CH; e += BV * RG) { ax[e] = Aux[(j * P.nC + c) * (CH + 1u) + e]; }
    workgroupBarrier();

    // X = K S and Y = Q S for this thread's rows m = 0..NRM-1 (raw rows; padded rows clamp to a real one, their
    // aux is 0), in vec4 registers for m = 0..3 and 4..7 (rows past the chunk are computed and never used): a
    // private array indexed in a loop lives in memory on llvmpipe, one load + store per FMA.
    let mr = vec4u(0u, 1u, 2u, 3u) * RG + tr;
    let tk0 = t0 + min(mr, vec4u(n - 1u));
    let tk1 = t0 + min(mr + 4u * RG, vec4u(n - 1u));
    let rk0 = kh + tk0 * P.k_row;
    let rk1 = kh + tk1 * P.k_row;
    let rq0 = qh + tk0 * P.q_row;
    let rq1 = qh + tk1 * P.q_row;
    var X0 = vec4f(0.0); var X1 = vec4f(0.0);
    var Y0 = vec4f(0.0); var Y1 = vec4f(0.0);
    for (var i = 0u; i < P.dk; i++) {
      let s = Ss[i * BV + tv];
      X0 += vec4f(K[rk0.x + i], K[rk0.y + i], K[rk0.z + i], K[rk0.w + i]) * s;
      Y0 += vec4f(Q[rq0.x + i], Q[rq0.y + i], Q[rq0.z + i], Q[rq0.w + i]) * s;
      if (NRM > 4u) {
        X1 += vec4f(K[rk1.x + i], K[rk1.y + i], K[rk1.z + i], K[rk1.w + i]) * s;
        Y1 += vec4f(Q[rq1.x + i], Q[rq1.y + i], Q[rq1.z + i], Q[rq1.w + i]) * s;
      }
    }
    for (var m = 0u; m < trip(NRM, P.nrm); m++) {
      let r = tr + RG * m;
      if (r < CH) {
        let a = ax[r];
        let vv = V[vh + (t0 + min(r, n - 1u)) * P.v_row];
        RV[r * BV + tv] = a.y * vv - a.x * pick(X0, X1, m);
      }
    }
    workgroupBarrier();

    // V' = T R (T unit lower triangular).
    var Vp: array<f32, NRM>;
    for (var m = 0u; m < trip(NRM, P.nrm); m++) {
      let r = tr + RG * m;
      if (r < CH) {
        var acc = 0.0;
        for (var s = 0u; s <= r; s++) { acc += Tm[mbase + r * CH + s] * RV[s * BV + tv]; }
        Vp[m] = acc;
      }
    }
    workgroupBarrier();
    for (var m = 0u; m < trip(NRM, P.nrm); m++) {
      let r = tr + RG * m;
      if (r < CH) { RV[r * BV + tv] = Vp[m]; }
    }
    workgroupBarrier();

    // O = e^γ Q̂ S + P V'.
    for (var m = 0u; m < trip(NRM, P.nrm); m++) {
      let r = tr + RG * m;
      if (r < n) {
        var o = ax[r].z * pick(Y0, Y1, m);
        for (var s = 0u; s <= r; s++) { o += Pm[mbase + r * CH + s] * RV[s * BV + tv]; }
        if (live) { O[P.o_off + ((t0 + r) * P.Hv + j) * P.dv + col] = o; }
      }
    }

    // S ← e^{γ_C} S + (e^{γ_C−γ} ⊙ K̂)ᵀ V'  (this thread's own elements of Ss): rows i = tr + RG·m, m = 0..15, in
    // four vec4 registers (a block whose rows are all ≥ dk is skipped), tokens outermost so each V'[r] is read once.
    let eC = ax[CH].x;
    let i0 = vec4u(0u, 1u, 2u, 3u) * RG + tr;
    let i1 = i0 + 4u * RG;
    let i2 = i0 + 8u * RG;
    let i3 = i0 + 12u * RG;
    let on1 = 4u * RG < P.dk;
    let on2 = 8u * RG < P.dk;
    let on3 = 12u * RG < P.dk;
    var S0 = eC * ss4(i0, tv);
    var S1 = vec4f(0.0); var S2 = vec4f(0.0); var S3 = vec4f(0.0);
    if (on1) { S1 = eC * ss4(i1, tv); }
    if (on2) { S2 = eC * ss4(i2, tv); }
    if (on3) { S3 = eC * ss4(i3, tv); }
    for (var r = 0u; r < n; r++) {
      let a = ax[r].w;
      let rv = RV[r * BV + tv];
      let kr = kh + (t0 + r) * P.k_row;
      S0 += a * k4(kr, i0) * rv;
      if (on1) { S1 += a * k4(kr, i1) * rv; }
      if (on2) { S2 += a * k4(kr, i2) * rv; }
      if (on3) { S3 += a * k4(kr, i3) * rv; }
    }
    put_ss(i0, tv, S0);
    if (on1) { put_ss(i1, tv, S1); }
    if (on2) { put_ss(i2, tv, S2); }
    if (on3) { put_ss(i3, tv, S3); }
  }
  workgroupBarrier();

  for (var m = 0u; m < trip(NSR, P.nsr); m++) {
    let i = tr + RG * m;
    if (live && i < P.dk && P.nseg == 0u) { St[sbase + i * P.dv] = Ss[i * BV + tv]; }
  }
}
