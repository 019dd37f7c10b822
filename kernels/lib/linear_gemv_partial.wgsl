// The streaming half of the decode kernels (linear_gemv.wgsl, linear_gemv_sg.wgsl): lane `t` of `lanes`
// accumulates its share of Σ_k X[b, m, k] · W[n0 + r, k] for the MROWS rows m and ROWS outputs n0 + r
// (rows past N are clamped on load; the caller discards them). Quads t, t + lanes, … then the K % 4 tail.
fn gemv_partial(b: u32, n0: u32, t: u32, lanes: u32, acc: ptr<function, array<array<f32, ROWS>, MROWS>>) {
  var wrow: array<u32, ROWS>;
  for (var r = 0u; r < ROWS; r++) { wrow[r] = P.w_off + b * P.w_batch + min(n0 + r, P.N - 1u) * P.ldw; }
  var xrow: array<u32, MROWS>;
  for (var m = 0u; m < MROWS; m++) { xrow[m] = P.x_off + b * P.x_batch + m * P.ldx; }
  let K4 = P.K & ~3u;
  for (var k = 4u * t; k < K4; k += 4u * lanes) {
    var xv = array<vec4f, MROWS>(); // explicit init (docs/KERNEL_GUIDE.md §4)
    for (var m = 0u; m < MROWS; m++) { xv[m] = x4(xrow[m] + k); }
    for (var r = 0u; r < ROWS; r++) {
      let w = w4(wrow[r] + k);
      for (var m = 0u; m < MROWS; m++) { (*acc)[m][r] += dot(xv[m], w); }
    }
  }
  for (var k = K4 + t; k < P.K; k += lanes) {
    for (var r = 0u; r < ROWS; r++) {
      let w = w1(wrow[r] + k);
      for (var m = 0u; m < MROWS; m++) { (*acc)[m][r] += x1(xrow[m] + k) * w; }
    }
  }
}
