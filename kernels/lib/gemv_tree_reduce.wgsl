// The few-row kernels' workgroup reduction (linear_gemv.wgsl, linear_q_gemv.wgsl): each of the WG_X invocations
// holds partial sums for MROWS × ROWS outputs; a shared-memory tree adds them (fixed pairing, so the result does
// not depend on timing). Afterwards red[q * WG_X] holds output q = m · ROWS + r, for every invocation to read.

var<workgroup> red: array<f32, WG_X * ROWS * MROWS>;

fn gemv_tree_reduce(t: u32, acc: ptr<function, array<array<f32, ROWS>, MROWS>>) {
  for (var m = 0u; m < MROWS; m++) {
    for (var r = 0u; r < ROWS; r++) { red[(m * ROWS + r) * WG_X + t] = (*acc)[m][r]; }
  }
  workgroupBarrier();
  for (var s = WG_X / 2u; s > 0u; s = s / 2u) {
    if (t < s) {
      for (var q = 0u; q < MROWS * ROWS; q++) { red[q * WG_X + t] += red[q * WG_X + t + s]; }
    }
    workgroupBarrier();
  }
}
