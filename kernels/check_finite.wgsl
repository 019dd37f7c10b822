// Count the non-finite values (NaN, +Inf, −Inf) of a tensor: Y[y_off + wid] = #{ i in this workgroup's slice :
// X[i] is not finite }. The cheap NaN guard on the action chunk (src/ops/checkFinite.ts).
//
// WGSL has no isnan/isinf (and compilers may assume finite floats and fold a `x != x` test away), so the test
// is on the bits: an IEEE value is non-finite iff its exponent field is all ones — f32: (w & 0x7f800000) ==
// 0x7f800000; f16: (h & 0x7c00) == 0x7c00. X is bound as u32 words either way, so no shader-f16 is needed:
// an f16 element i is the low (even i) or high (odd i) half of word i >> 1 (little-endian packing).
//
// MODE 0 (test): the n elements are split into P.groups contiguous slices, one per workgroup; each invocation
//   strides over its workgroup's slice, then a tree reduction in workgroup memory gives the slice's count.
// MODE 1 (sum): X holds n u32 partial counts (the MODE 0 output); one workgroup adds them up into Y[y_off].
// A count saturates at 0xffffffff (it cannot: n < 2^32), and is written as a plain u32 word, so Y may be a
// u32 slot inside any 4-byte buffer (the policy puts it right after the chunk it read back).
// Interface generated from CHECK_FINITE_IO in src/ops/checkFinite.ts: n elements (MODE 0) or partial counts
// (MODE 1); x_off in X's elements (f16: halves); y_off the word of the first output; groups the MODE 0 slices.

var<workgroup> partial: array<u32, WG_X>;

fn non_finite(i: u32) -> u32 {
  let e = P.x_off + i;
  if (F16) {
    let w = X[e >> 1u];
    let h = select(w & 0xffffu, w >> 16u, (e & 1u) == 1u);
    return select(0u, 1u, (h & 0x7c00u) == 0x7c00u);
  }
  return select(0u, 1u, (X[e] & 0x7f800000u) == 0x7f800000u);
}

@compute @workgroup_size(WG_X, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  var count = 0u;
  if (MODE == 0u) {
    let per = (P.n + P.groups - 1u) / P.groups; // slice length
    let lo = wid.x * per;
    let hi = min(lo + per, P.n);
    for (var i = lo + lid.x; i < hi; i += WG_X) { count += non_finite(i); }
  } else {
    for (var i = lid.x; i < P.n; i += WG_X) { count += X[P.x_off + i]; }
  }
  partial[lid.x] = count;
  workgroupBarrier();
  for (var s = WG_X / 2u; s > 0u; s >>= 1u) {
    if (lid.x < s) { partial[lid.x] += partial[lid.x + s]; }
    workgroupBarrier();
  }
  if (lid.x == 0u) { Y[P.y_off + wid.x] = partial[0]; }
}
