// One op harness for every kernel (ggml test-backend-ops style).
//
// An OpCase builds random inputs on the GPU, runs the kernel, and computes the same thing with the plain f64
// CPU reference in src/ref/. Mode `test` compares element-wise with |got − ref| ≤ atol + rtol·|ref| plus a
// normalised-MSE bound and reports the first mismatches; mode `perf` times the kernel (timestamp queries when
// available, else wall clock) and reports GFLOPS / GB/s against the measured device peaks.
import type { Gpu } from '../gpu/device.js';
import { Rng } from '../util/rng.js';

export interface Tolerance {
  atol: number;
  rtol: number;
  /** normalised mean squared error bound, Σ(got−ref)² / Σref² */
  nmse?: number;
}

export const TOL = {
  f32: { atol: 1e-5, rtol: 1e-4, nmse: 1e-9 } as Tolerance,
  f16: { atol: 2e-3, rtol: 5e-3, nmse: 1e-5 } as Tolerance,
};

export interface OpInstance {
  /** Encode the kernel(s) once; returns the output read back as f32. */
  run(): Promise<ArrayLike<number>>;
  /** Encode without reading back (perf mode). */
  encode(): void;
  /** The f64 reference result. */
  reference(): ArrayLike<number>;
  /** FLOPs and bytes moved by one run, for the perf report. */
  flops?: number;
  bytes?: number;
  dispose(): void;
}

export interface OpCase {
  /** e.g. `linear f16 M=7 N=13 K=257` */
  name: string;
  /** op family, for filtering (`--op linear`) */
  op: string;
  tol: Tolerance;
  /** Only these cases run in perf mode by default (the shapes of the real configs). */
  perf?: boolean;
  setup(gpu: Gpu, rng: Rng): OpInstance;
}

export interface CompareResult {
  ok: boolean;
  maxAbs: number;
  maxRel: number;
  nmse: number;
  mismatches: number;
  report: string;
}

export function compare(got: ArrayLike<number>, ref: ArrayLike<number>, tol: Tolerance, label = ''): CompareResult {
  if (got.length !== ref.length) {
    return { ok: false, maxAbs: Infinity, maxRel: Infinity, nmse: Infinity, mismatches: Math.max(got.length, ref.length), report: `${label}: length ${got.length} != reference ${ref.length}` };
  }
  let maxAbs = 0, maxRel = 0, se = 0, sr = 0, mismatches = 0;
  const first: string[] = [];
  for (let k = 0; k < ref.length; k++) {
    const g = got[k], r = ref[k];
    const d = Math.abs(g - r);
    const bad = !(d <= tol.atol + tol.rtol * Math.abs(r)) || !Number.isFinite(g) !== !Number.isFinite(r);
    if (Number.isFinite(d)) {
      maxAbs = Math.max(maxAbs, d);
      if (Math.abs(r) > tol.atol) maxRel = Math.max(maxRel, d / Math.abs(r));
      se += d * d;
      sr += r * r;
    }
    if (bad) {
      mismatches++;
      if (first.length < 8) first.push(`  [${k}] got ${g} expected ${r} (diff ${d.toExponential(3)})`);
    }
  }
  const nmse = sr > 0 ? se / sr : se;
  const nmseBad = tol.nmse !== undefined && nmse > tol.nmse;
  const ok = mismatches === 0 && !nmseBad;
  const head = `${label}: max|Δ| ${maxAbs.toExponential(3)}, max rel ${maxRel.toExponential(3)}, nmse ${nmse.toExponential(3)}`;
  const report = ok
    ? head
    : `${head}\n  ${mismatches}/${ref.length} elements outside atol ${tol.atol} + rtol ${tol.rtol}·|ref|` +
      (nmseBad ? `; nmse above ${tol.nmse}` : '') + (first.length ? `\n  first mismatches:\n${first.join('\n')}` : '');
  return { ok, maxAbs, maxRel, nmse, mismatches, report };
}

export async function checkCase(gpu: Gpu, c: OpCase, seed = 1234): Promise<CompareResult> {
  const mark = gpu.lifetimes.mark();
  const inst = c.setup(gpu, new Rng(seed));
  let result: CompareResult;
  try {
    const got = await inst.run();
    result = compare(got, inst.reference(), c.tol, c.name);
  } finally {
    inst.dispose();
  }
  // Every pooled tensor the case and its op made must be gone after dispose (cache-owned tables aside).
  const leaked = gpu.lifetimes.leakedSince(mark);
  if (leaked.length) return { ...result, ok: false, report: `${result.report}\n  leaked tensors: ${leaked.join('; ')}` };
  return result;
}

export interface PerfResult {
  name: string;
  op: string;
  medianMs: number;
  minMs: number;
  maxMs: number;
  gpuTimed: boolean;
  gflops?: number;
  gbps?: number;
  /** fraction of the measured peak of the bound that applies (compute or bandwidth) */
  peakFraction?: number;
}

export interface DevicePeaks {
  gflops: number;
  gbps: number;
}

/** Time one case: warm-up, then `reps` runs; GPU time from timestamp queries when the adapter has them. */
export async function perfCase(gpu: Gpu, c: OpCase, reps = 7, peaks?: DevicePeaks): Promise<PerfResult> {
  const inst = c.setup(gpu, new Rng(1));
  try {
    inst.encode();
    await gpu.sync();
    const times: number[] = [];
    const useGpu = gpu.features.timestamps;
    for (let r = 0; r < reps; r++) {
      if (useGpu) {
        gpu.stream.profiler.enable(true);
        inst.encode();
        await gpu.sync();
        const t = await gpu.stream.profiler.collect();
        gpu.stream.profiler.enable(false);
        times.push(t.reduce((s, x) => s + x.ns, 0) / 1e6);
      } else {
        const t0 = performance.now();
        inst.encode();
        await gpu.sync();
        times.push(performance.now() - t0);
      }
    }
    times.sort((a, b) => a - b);
    const med = times[Math.floor(times.length / 2)];
    const res: PerfResult = { name: c.name, op: c.op, medianMs: med, minMs: times[0], maxMs: times[times.length - 1], gpuTimed: useGpu };
    if (inst.flops && med > 0) res.gflops = inst.flops / (med * 1e6);
    if (inst.bytes && med > 0) res.gbps = inst.bytes / (med * 1e6);
    if (peaks) {
      const fc = res.gflops !== undefined ? res.gflops / peaks.gflops : 0;
      const fb = res.gbps !== undefined ? res.gbps / peaks.gbps : 0;
      res.peakFraction = Math.max(fc, fb);
    }
    return res;
  } finally {
    inst.dispose();
  }
}
