// Sinusoidal embedding of scalar values (diffusers get_timestep_embedding / GR00T action-encoder τ features):
//   a = f32(v_row · ω_i) (rounded to f32, as PyTorch's f32 tensor), i < half
//   out[row] = [sin a, cos a]   or, with flip, [cos a, sin a]
// ω comes precomputed in f32 from the CPU (src/ops/sinusoid.ts): WGSL exp is far too loose (ulps ∝ |x|) for
// angles up to ~10^3. The values (at most 48 per dispatch) travel in the uniform, so no per-call upload.
struct Params {
  rows: u32,
  dim: u32,       // output row stride
  half: u32,
  flip: u32,      // 1: [cos, sin]
  out_off: u32,
  zero: u32,      // always 0 (see round_barrier)
  _p0: u32,
  _p1: u32,
  vals: array<vec4f, 12>,
}
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> Omega: array<f32>;
@group(0) @binding(2) var<storage, read_write> Out: array<f32>;

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
