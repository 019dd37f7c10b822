// Flow-matching ODE solvers under the `tau1_noise` convention: Y(τ=1) is noise, Y(τ=0) the action chunk,
// dY/dτ = v(Y, τ), integrated from τ=1 down to τ=0 on a time grid. Every update is multiplied by the
// channel/horizon mask, so padded entries (zero noise) stay exactly zero.
import { Tensor } from '../tensor.js';
import { axpy, copyInto, mul } from '../ops/elementwise.js';

export const SOLVERS = ['euler', 'heun', 'midpoint', 'rk4'] as const;
export type SolverName = (typeof SOLVERS)[number];
export const GRIDS = ['uniform', 'cosine', 'shift'] as const;
export type GridName = (typeof GRIDS)[number];

/** Network evaluations a solver spends for `steps` steps (Heun's last step is a plain Euler step). */
export function evaluations(solver: SolverName, steps: number): number {
  switch (solver) {
    case 'euler': return steps;
    case 'heun': return 2 * steps - 1;
    case 'midpoint': return 2 * steps;
    case 'rk4': return 4 * steps;
  }
}

/**
 * τ_0 = 1 > τ_1 > … > τ_N = 0.
 * uniform: τ_n = 1 − n/N; cosine: τ_n = (1 + cos(πn/N))/2 (dense at both ends);
 * shift: τ_n = s·u/(1 + (s−1)·u), u = 1 − n/N (dense near τ = 0 for s < 1, near 1 for s > 1).
 */
export function timeGrid(steps: number, grid: GridName = 'uniform', shift = 3): number[] {
  if (!Number.isInteger(steps) || steps < 1) throw new Error(`steps must be a positive integer, got ${steps}`);
  const out: number[] = [];
  for (let n = 0; n <= steps; n++) {
    const u = 1 - n / steps;
    if (grid === 'uniform') out.push(u);
    else if (grid === 'cosine') out.push((1 + Math.cos((Math.PI * n) / steps)) / 2);
    else out.push((shift * u) / (1 + (shift - 1) * u));
  }
  out[0] = 1;
  out[steps] = 0;
  return out;
}

/**
 * The τ of every network evaluation `integrate` makes, in order (same arithmetic as the solver loop), so the
 * τ-only parts of the network can be computed for the whole loop before it starts.
 */
export function evaluationTimes(opts: Pick<SampleOptions, 'steps' | 'solver' | 'grid' | 'shift'>): number[] {
  const taus = timeGrid(opts.steps, opts.grid ?? 'uniform', opts.shift ?? 3);
  const out: number[] = [];
  for (let n = 0; n < opts.steps; n++) {
    const t = taus[n];
    const dt = taus[n + 1] - t;
    const last = n === opts.steps - 1;
    out.push(t);
    switch (opts.solver) {
      case 'euler': break;
      case 'heun': if (!last) out.push(t + dt); break;
      case 'midpoint': out.push(t + dt / 2); break;
      case 'rk4': out.push(t + dt / 2, t + dt / 2, t + dt); break;
    }
  }
  return out;
}

/** One network evaluation: write v(Y, τ) into `out`. */
export type VelocityFn = (Y: Tensor, tau: number, out: Tensor) => void;

export interface SampleOptions {
  steps: number;
  solver: SolverName;
  grid?: GridName;
  shift?: number;
  /** Awaited after every step with the current chunk (research: the whole trajectory; timing: a GPU sync). */
  onStep?: (step: number, tau: number, Y: Tensor) => void | Promise<void>;
}

/** Integrate Y (in place; it holds the noise, which is masked first) from τ=1 to τ=0. */
export async function integrate(f: VelocityFn, Y: Tensor, mask: Tensor, opts: SampleOptions): Promise<void> {
  const taus = timeGrid(opts.steps, opts.grid ?? 'uniform', opts.shift ?? 3);
  const gpu = Y.gpu;
  const shape = Y.shape;
  const k1 = Tensor.empty(gpu, shape, 'f32', 'sampler.k1');
  const needs2 = opts.solver !== 'euler';
  const k2 = needs2 ? Tensor.empty(gpu, shape, 'f32', 'sampler.k2') : null;
  const tmp = needs2 ? Tensor.empty(gpu, shape, 'f32', 'sampler.tmp') : null;
  const k3 = opts.solver === 'rk4' ? Tensor.empty(gpu, shape, 'f32', 'sampler.k3') : null;
  const k4 = opts.solver === 'rk4' ? Tensor.empty(gpu, shape, 'f32', 'sampler.k4') : null;
  // tmp = Y + a·k
  const offset = (k: Tensor, a: number) => {
    copyInto(Y, tmp!);
    axpy(tmp!, k, a, mask);
  };
  mul(Y, mask, Y); // padded entries start (and, with masked updates, stay) exactly zero
  try {
  for (let n = 0; n < opts.steps; n++) {
    const t = taus[n];
    const dt = taus[n + 1] - t; // negative
    const last = n === opts.steps - 1;
    f(Y, t, k1);
    switch (opts.solver) {
      case 'euler':
        axpy(Y, k1, dt, mask);
        break;
      case 'heun':
        if (last) {
          axpy(Y, k1, dt, mask);
          break;
        }
        offset(k1, dt);
        f(tmp!, t + dt, k2!);
        axpy(Y, k1, dt / 2, mask);
        axpy(Y, k2!, dt / 2, mask);
        break;
      case 'midpoint':
        offset(k1, dt / 2);
        f(tmp!, t + dt / 2, k2!);
        axpy(Y, k2!, dt, mask);
        break;
      case 'rk4':
        offset(k1, dt / 2);
        f(tmp!, t + dt / 2, k2!);
        offset(k2!, dt / 2);
        f(tmp!, t + dt / 2, k3!);
        offset(k3!, dt);
        f(tmp!, t + dt, k4!);
        axpy(Y, k1, dt / 6, mask);
        axpy(Y, k2!, dt / 3, mask);
        axpy(Y, k3!, dt / 3, mask);
        axpy(Y, k4!, dt / 6, mask);
        break;
    }
    await opts.onStep?.(n, taus[n + 1], Y);
  }
  } finally {
    for (const t of [k1, k2, tmp, k3, k4]) t?.release();
  }
}
