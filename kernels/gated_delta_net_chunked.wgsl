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
// gated_delta_net_chunked_prep.wgsl; each sequence starts from a zero state, and its final state is not stored (St unused).
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
  for (var m = 0u; m < trip(NSR, P.nsr); m++) {
    let i = tr + RG * m;
    if (i < P.dk) {
      var v = 0.0;   // a segment starts from a zero state
      if (live && P.nseg == 0u) { v = St[sbase + i * P.dv]; }
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

    // X = K S and Y = Q S for this thread's rows (raw rows; padded rows clamp to a real one, their aux is 0).
    var X: array<f32, NRM>;
    var Y: array<f32, NRM>;
    var rowk: array<u32, NRM>;
    var rowq: array<u32, NRM>;
    for (var m = 0u; m < trip(NRM, P.nrm); m++) {
      X[m] = 0.0;   // explicit: a loop-body `var` is not re-zeroed on every iteration by all compilers
      Y[m] = 0.0;
      let t = t0 + min(tr + RG * m, n - 1u);
      rowk[m] = kh + t * P.k_row;
      rowq[m] = qh + t * P.q_row;
    }
    for (var i = 0u; i < P.dk; i++) {
      let s = Ss[i * BV + tv];
      for (var m = 0u; m < trip(NRM, P.nrm); m++) {
        X[m] += K[rowk[m] + i] * s;
        Y[m] += Q[rowq[m] + i] * s;
      }
    }
    for (var m = 0u; m < trip(NRM, P.nrm); m++) {
      let r = tr + RG * m;
      if (r < CH) {
        let a = ax[r];
        let vv = V[vh + (t0 + min(r, n - 1u)) * P.v_row];
        RV[r * BV + tv] = a.y * vv - a.x * X[m];
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
        var o = ax[r].z * Y[m];
        for (var s = 0u; s <= r; s++) { o += Pm[mbase + r * CH + s] * RV[s * BV + tv]; }
        if (live) { O[P.o_off + ((t0 + r) * P.Hv + j) * P.dv + col] = o; }
      }
    }

    // S ← e^{γ_C} S + (e^{γ_C−γ} ⊙ K̂)ᵀ V'  (this thread's own elements of Ss).
    let eC = ax[CH].x;
    for (var m = 0u; m < trip(NSR, P.nsr); m++) {
      let i = tr + RG * m;
      if (i < P.dk) {
        var acc = eC * Ss[i * BV + tv];
        for (var r = 0u; r < n; r++) {
          acc += ax[r].w * K[kh + (t0 + r) * P.k_row + i] * RV[r * BV + tv];
        }
        Ss[i * BV + tv] = acc;
      }
    }
  }
  workgroupBarrier();

  for (var m = 0u; m < trip(NSR, P.nsr); m++) {
    let i = tr + RG * m;
    if (live && i < P.dk && P.nseg == 0u) { St[sbase + i * P.dv] = Ss[i * BV + tv]; }
  }
}
