// Plain f64 CPU references of the elementwise ops (src/ops/elementwise.ts).
import { applyAct, silu } from './activations.js';
import type { Activation } from '../ops/activations.js';

type Arr = ArrayLike<number>;

/** y[i] = a[i] + b[i mod b.length] (b broadcasts over leading rows). */
export function addRef(a: Arr, b: Arr): Float64Array {
  const y = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) y[i] = a[i] + b[i % b.length];
  return y;
}

/** y[i] = a[i] · b[i mod b.length]. */
export function mulRef(a: Arr, b: Arr): Float64Array {
  const y = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) y[i] = a[i] * b[i % b.length];
  return y;
}

export function unaryRef(x: Arr, act: Activation): Float64Array {
  const y = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) y[i] = applyAct(act, x[i]);
  return y;
}

/** silu(gate) · up */
export function swigluRef(gate: Arr, up: Arr): Float64Array {
  const y = new Float64Array(gate.length);
  for (let i = 0; i < gate.length; i++) y[i] = silu(gate[i]) * up[i];
  return y;
}

/** y + alpha · x (· mask[i mod mask.length]) */
export function axpyRef(y: Arr, x: Arr, alpha: number, mask?: Arr): Float64Array {
  const r = new Float64Array(y.length);
  for (let i = 0; i < y.length; i++) r[i] = y[i] + alpha * x[i] * (mask ? mask[i % mask.length] : 1);
  return r;
}

export function scaleRef(x: Arr, s: number): Float64Array {
  const y = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) y[i] = s * x[i];
  return y;
}
