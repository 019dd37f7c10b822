// The one epilogue of every linear kernel (src/ops/linear.ts): + bias, activation, then store or accumulate
// (fused residual) into Y[b, m, n]. HAS_BIAS / ACT / ACCUM are pipeline constants.
fn linear_store(b: u32, m: u32, n: u32, acc: f32) {
  var v = acc;
  if (HAS_BIAS) { v += Bias[P.b_off + n]; }
  v = apply_act(ACT, v);
  let o = P.y_off + b * P.y_batch + m * P.ldy + n;
  if (ACCUM) { Y[o] += v; } else { Y[o] = v; }
}
