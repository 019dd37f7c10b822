// Shared activation functions (included by kernels whose spec lists `includes: ['activations']`).
// ACT codes, also used by src/ops/activations.ts: 0 none, 1 silu, 2 gelu-tanh, 3 gelu-erf, 4 relu,
// 5 sigmoid, 6 softplus (PyTorch: x above 20).

// erf with |error| < 1.2e-7 (Numerical Recipes erfc Chebyshev fit); WGSL has no erf builtin.
fn erf_approx(x: f32) -> f32 {
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.5 * z);
  let r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 +
          t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return select(r - 1.0, 1.0 - r, x >= 0.0);
}

fn sigmoid_f(v: f32) -> f32 { return 1.0 / (1.0 + exp(-v)); }

// tanh written with exp of a non-positive argument: no overflow for large |v|.
fn tanh_stable(v: f32) -> f32 {
  let e = exp(-2.0 * abs(v));
  return sign(v) * (1.0 - e) / (1.0 + e);
}

fn softplus_f(v: f32) -> f32 { return select(log(1.0 + exp(v)), v, v > 20.0); }

fn apply_act(code: u32, v: f32) -> f32 {
  switch code {
    case 1u: { return v * sigmoid_f(v); }
    case 2u: { return 0.5 * v * (1.0 + tanh_stable(0.7978845608028654 * (v + 0.044715 * v * v * v))); }
    case 3u: { return 0.5 * v * (1.0 + erf_approx(v * 0.7071067811865476)); }
    case 4u: { return max(v, 0.0); }
    case 5u: { return sigmoid_f(v); }
    case 6u: { return softplus_f(v); }
    default: { return v; }
  }
}
