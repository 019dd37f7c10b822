// Y[b, m, n] = act( Σ_k X[b, m, k] · W[b, n, k] + bias[n] )   (or Y += that, when ACCUM)
// The subgroup GEMM variant (`gemm_sg`): a subgroup of SG_SIZE lanes owns a TM × (SG_SIZE·TN) tile of Y; lane l
// owns the TN columns n0 + j·SG_SIZE + l of all TM rows. Per k-quad each lane loads one X row quad (lanes
// l, l + SG_SIZE, … cover the TM rows between them) and its TN W quads; the X quads reach every lane by
// subgroupShuffle, not through workgroup memory (no barrier). Against the plain variant (TM X + TN W loads per lane
// per quad) that is ⌈TM/SG_SIZE⌉ + TN loads: on lavapipe, where each per-lane load is a gather and a shuffle from a
// uniform lane is a register extract, the loads are the cost. Needs subgroups of one fixed size, consecutive runs
// of SG_SIZE invocations (src/ops/linear.ts checks). Reduction order per output: the plain variant's (one fma
// chain, k = 0 … K−1 in order, quad() from lib/linear_quad_f32.wgsl), so it is row-stable (`tiled: true`) and
// gives the plain kernel's bits. No early return: the shuffles need the whole subgroup, so rows / columns past
// M / N are clamped on load and skipped on store.
// Interface (P.M, P.N, P.K, strides/offsets; X, W, Bias, Y) generated from LINEAR_IO in src/ops/linear.ts.

const XL = (TM + SG_SIZE - 1u) / SG_SIZE; // X row quads each lane loads per k-quad

@compute @workgroup_size(WG_X, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let lane = lid.x % SG_SIZE;
  let n0 = wid.x * SG_SIZE * TN;
  let m0 = (wid.y * (WG_X / SG_SIZE) + lid.x / SG_SIZE) * TM;
  let b = wid.z;
  var xr: array<u32, XL>;
  for (var r = 0u; r < XL; r++) { xr[r] = P.x_off + b * P.x_batch + min(m0 + min(r * SG_SIZE + lane, TM - 1u), P.M - 1u) * P.ldx; }
  var wr: array<u32, TN>;
  for (var j = 0u; j < TN; j++) { wr[j] = P.w_off + b * P.w_batch + min(n0 + j * SG_SIZE + lane, P.N - 1u) * P.ldw; }
  var acc = array<array<f32, TN>, TM>();
  let K4 = P.K & ~3u;
  var k = 0u;
  for (; k < K4; k += 4u) {
    var xl = array<vec4f, XL>(); // explicit init (docs/KERNEL_GUIDE.md §4)
    for (var r = 0u; r < XL; r++) { xl[r] = x4(xr[r] + k); }
    var wv = array<vec4f, TN>();
    for (var j = 0u; j < TN; j++) { wv[j] = w4(wr[j] + k); }
    for (var i = 0u; i < TM; i++) {
      let xi = subgroupShuffle(xl[i / SG_SIZE], i % SG_SIZE);
      for (var j = 0u; j < TN; j++) { acc[i][j] = quad(xi, wv[j], acc[i][j]); }
    }
  }
  for (; k < P.K; k++) {
    var xs = array<f32, XL>();
    for (var r = 0u; r < XL; r++) { xs[r] = x1(xr[r] + k); }
    for (var j = 0u; j < TN; j++) {
      let wv1 = w1(wr[j] + k);
      for (var i = 0u; i < TM; i++) { acc[i][j] = fma(subgroupShuffle(xs[i / SG_SIZE], i % SG_SIZE), wv1, acc[i][j]); }
    }
  }
  for (var i = 0u; i < TM; i++) {
    if (m0 + i >= P.M) { break; }
    for (var j = 0u; j < TN; j++) {
      let n = n0 + j * SG_SIZE + lane;
      if (n < P.N) { linear_store(b, m0 + i, n, acc[i][j]); }
    }
  }
}
