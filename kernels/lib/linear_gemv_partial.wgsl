// The streaming half of the decode kernels (linear_gemv.wgsl, linear_gemv_sg.wgsl; also bench_gemv_stream.wgsl):
// lane `t` of `lanes` accumulates its share of Σ_k X[b, m, k] · W[n0 + r, k] for the MROWS rows m and ROWS outputs
// n0 + r (rows past N are clamped on load; the caller discards them). A step is one W load per row: W_QUADS quads
// (w_quads: one quad from lib/linear_load_w_quad.wgsl, or eight halves from lib/linear_load_vec8_f16.wgsl), 16
// bytes when vectorised. Lane t takes the steps t, t + lanes, …, then the K % (4·W_QUADS) tail one element per lane.
fn gemv_partial(b: u32, n0: u32, t: u32, lanes: u32, acc: ptr<function, array<array<f32, ROWS>, MROWS>>) {
  var wrow: array<u32, ROWS>;
  for (var r = 0u; r < ROWS; r++) { wrow[r] = P.w_off + b * P.w_batch + min(n0 + r, P.N - 1u) * P.ldw; }
  var xrow: array<u32, MROWS>;
  for (var m = 0u; m < MROWS; m++) { xrow[m] = P.x_off + b * P.x_batch + m * P.ldx; }
  let S = 4u * W_QUADS; // elements per step
  let KS = P.K - P.K % S;
  for (var k = S * t; k < KS; k += S * lanes) {
    var xv = array<array<vec4f, W_QUADS>, MROWS>(); // explicit init (docs/KERNEL_GUIDE.md §4)
    for (var m = 0u; m < MROWS; m++) {
      for (var q = 0u; q < W_QUADS; q++) { xv[m][q] = x4(xrow[m] + k + 4u * q); }
    }
    for (var r = 0u; r < ROWS; r++) {
      let w = w_quads(wrow[r] + k);
      for (var m = 0u; m < MROWS; m++) {
        var s = dot(xv[m][0], w[0]);
        for (var q = 1u; q < W_QUADS; q++) { s += dot(xv[m][q], w[q]); }
        (*acc)[m][r] += s;
      }
    }
  }
  for (var k = KS + t; k < P.K; k += lanes) {
    for (var r = 0u; r < ROWS; r++) {
      let w = w1(wrow[r] + k);
      for (var m = 0u; m < MROWS; m++) { (*acc)[m][r] += x1(xrow[m] + k) * w; }
    }
  }
}
