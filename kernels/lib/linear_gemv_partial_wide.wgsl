// The streaming half of the decode kernels for a `wide` config (f16 weights, 8-aligned: lib/linear_load_vec8_f16.wgsl):
// like lib/linear_gemv_partial.wgsl, with lane `t` of `lanes` taking the k-octets t, t + lanes, … (one 16-byte W load
// each, widened to two vec4f), then the K % 8 tail one element per lane.
fn gemv_partial(b: u32, n0: u32, t: u32, lanes: u32, acc: ptr<function, array<array<f32, ROWS>, MROWS>>) {
  var wrow: array<u32, ROWS>;
  for (var r = 0u; r < ROWS; r++) { wrow[r] = P.w_off + b * P.w_batch + min(n0 + r, P.N - 1u) * P.ldw; }
  var xrow: array<u32, MROWS>;
  for (var m = 0u; m < MROWS; m++) { xrow[m] = P.x_off + b * P.x_batch + m * P.ldx; }
  let K8 = P.K & ~7u;
  for (var k = 8u * t; k < K8; k += 8u * lanes) {
    var xlo = array<vec4f, MROWS>(); // explicit init (docs/KERNEL_GUIDE.md §4)
    var xhi = array<vec4f, MROWS>();
    for (var m = 0u; m < MROWS; m++) { xlo[m] = x4(xrow[m] + k); xhi[m] = x4(xrow[m] + k + 4u); }
    for (var r = 0u; r < ROWS; r++) {
      let w = w8(wrow[r] + k);
      for (var m = 0u; m < MROWS; m++) { (*acc)[m][r] += dot(xlo[m], w[0]) + dot(xhi[m], w[1]); }
    }
  }
  for (var k = K8 + t; k < P.K; k += lanes) {
    for (var r = 0u; r < ROWS; r++) {
      let w = w1(wrow[r] + k);
      for (var m = 0u; m < MROWS; m++) { (*acc)[m][r] += x1(xrow[m] + k) * w; }
    }
  }
}
