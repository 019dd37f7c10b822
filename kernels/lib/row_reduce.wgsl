// Row reductions for the "WG_Y rows × WG_X invocations per row" layout of norm.wgsl.
// The including kernel declares WG_X and WG_Y (both powers of two); the scratch array is declared here.
var<workgroup> row_red: array<f32, WG_X * WG_Y>;

// Sum of `v` over the WG_X invocations of row slot `ty`; every invocation of the row gets the result.
// Ends with a barrier so the caller may run the next reduction at once (row_red is reused).
fn row_sum(v: f32, tx: u32, ty: u32) -> f32 {
  let base = ty * WG_X;
  row_red[base + tx] = v;
  workgroupBarrier();
  for (var s = WG_X / 2u; s > 0u; s = s >> 1u) {
    if (tx < s) { row_red[base + tx] += row_red[base + tx + s]; }
    workgroupBarrier();
  }
  let r = row_red[base];
  workgroupBarrier();
  return r;
}
