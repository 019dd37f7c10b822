// f64 references of the activation functions (PyTorch definitions).
import type { Activation } from '../ops/activations.js';

export function erf(x: number): number {
  // Abramowitz–Stegun 7.1.26 is too coarse for a reference; use a series / continued fraction in f64.
  const ax = Math.abs(x);
  if (ax < 3) {
    // Maclaurin series converges fast for |x| < 3 in f64.
    let sum = ax, term = ax;
    for (let n = 1; n < 200; n++) {
      term *= (-ax * ax) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    const r = (2 / Math.sqrt(Math.PI)) * sum;
    return x < 0 ? -r : r;
  }
  // erfc continued fraction (Lentz) for |x| ≥ 3.
  let f = ax, C = ax, D = 0;
  for (let n = 1; n < 300; n++) {
    const an = n / 2;
    D = ax + an * D; D = 1 / D;
    C = ax + an / C;
    const delta = C * D;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
  return x < 0 ? erfc - 1 : 1 - erfc;
}

export const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));
export const silu = (v: number) => v * sigmoid(v);
export const softplus = (v: number) => (v > 20 ? v : Math.log1p(Math.exp(v)));
export const geluTanh = (v: number) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
export const geluErf = (v: number) => 0.5 * v * (1 + erf(v / Math.SQRT2));

export function applyAct(a: Activation, v: number): number {
  switch (a) {
    case 'none': return v;
    case 'silu': return silu(v);
    case 'gelu_tanh': return geluTanh(v);
    case 'gelu_erf': return geluErf(v);
    case 'relu': return Math.max(v, 0);
    case 'sigmoid': return sigmoid(v);
    case 'softplus': return softplus(v);
  }
}
