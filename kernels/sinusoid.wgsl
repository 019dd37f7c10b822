// Sinusoidal embedding of scalar values (diffusers get_timestep_embedding / GR00T action-encoder τ features):
//   a = f32(v_row · ω_i) (rounded to f32, as PyTorch's f32 tensor), i < half
//   out[row] = [sin a, cos a]   or, with flip, [cos a, sin a]
// ω comes precomputed in f32 from the CPU (src/ops/sinusoid.ts): WGSL exp is far too loose (ulps ∝ |x|) for
// angles up to ~10^3. The values (at most 48 per dispatch) travel in the uniform, so no per-call upload.
// Interface generated from SINUSOID_IO in src/ops/sinusoid.ts: dim is the output row stride, flip 1 = [cos, sin],
// vals the (≤ 48) values of this dispatch, `zero` always 0 (see round_barrier).

@compute @workgroup_size(WG_X, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let idx = gid.x;
  if (idx >= P.rows * P.half) { return; }
  let i = idx % P.half;
  let row = idx / P.half;
  let v = P.vals[row / 4u][row % 4u];
  let sc = sincos_reduced(round_barrier(v * Omega[i], P.zero));
  let o = P.out_off + row * P.dim + i;
  let flip = P.flip != 0u;
  Out[o] = select(sc.x, sc.y, flip);
  Out[o + P.half] = select(sc.y, sc.x, flip);
}
