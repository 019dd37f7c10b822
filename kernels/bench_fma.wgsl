// Roofline micro-benchmark (src/bench/roofline.ts): peak f32 FMA throughput.
// Every invocation runs 8 independent vec4 FMA chains for P.iters iterations, so one iteration is
// 8 chains × 4 lanes × 2 FLOPs = 64 FLOPs and the run is invocations × iters × 64 FLOPs. Independent chains
// hide FMA latency (ILP); the launch is sized far above the lanes of the device so occupancy hides the rest.
// The iteration count, multiplier and addend come from the uniform, so nothing folds at compile time, and
// a = a·m + c with |m| < 1 converges to c / (1 − m): no overflow, no denormals. The chains are summed and
// stored so none of them is dead code (the host also checks the stored values are finite).
// Interface generated from the spec in src/bench/roofline.ts (P.iters, P.mul, P.add; Out).

@compute @workgroup_size(WG_X, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = gid.x + gid.y * nwg.x * WG_X;
  let s = f32(idx & 1023u) * 1.0e-3;
  var a0 = vec4f(s, s + 0.01, s + 0.02, s + 0.03);
  var a1 = a0 + 0.1;
  var a2 = a0 + 0.2;
  var a3 = a0 + 0.3;
  var a4 = a0 + 0.4;
  var a5 = a0 + 0.5;
  var a6 = a0 + 0.6;
  var a7 = a0 + 0.7;
  let m = vec4f(P.mul);
  let c = vec4f(P.add);
  for (var i = 0u; i < P.iters; i++) {
    a0 = fma(a0, m, c);
    a1 = fma(a1, m, c);
    a2 = fma(a2, m, c);
    a3 = fma(a3, m, c);
    a4 = fma(a4, m, c);
    a5 = fma(a5, m, c);
    a6 = fma(a6, m, c);
    a7 = fma(a7, m, c);
  }
  Out[idx] = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7));
}
