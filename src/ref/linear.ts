// Plain f64 CPU reference of linear (the spec the GPU kernels are checked against).
import { applyAct } from './activations.js';
import type { Activation } from '../ops/activations.js';

/** y[b,m,n] = act(Σ_k x[b,m,k]·w[b?,n,k] + bias[n]) (+ acc[b,m,n]). */
export function linearRef(
  x: ArrayLike<number>, w: ArrayLike<number>, B: number, M: number, N: number, K: number,
  opts: { bias?: ArrayLike<number>; act?: Activation; wBatched?: boolean; accumulate?: ArrayLike<number> } = {},
): Float64Array {
  const y = new Float64Array(B * M * N);
  for (let b = 0; b < B; b++) {
    const wb = opts.wBatched ? b * N * K : 0;
    for (let m = 0; m < M; m++) {
      const xr = (b * M + m) * K;
      for (let n = 0; n < N; n++) {
        let s = 0;
        const wr = wb + n * K;
        for (let k = 0; k < K; k++) s += x[xr + k] * w[wr + k];
        if (opts.bias) s += opts.bias[n];
        s = applyAct(opts.act ?? 'none', s);
        const o = (b * M + m) * N + n;
        y[o] = opts.accumulate ? opts.accumulate[o] + s : s;
      }
    }
  }
  return y;
}
