// Roofline micro-benchmarks: the device's own measured peaks, against which kernel timings are judged.
//
// - FMA throughput (kernels/bench_fma.wgsl): 8 independent vec4 FMA chains per invocation, thousands of
//   iterations, a launch far larger than the device's lanes. FLOPs = invocations × iters × chains × 8.
// - Streaming read bandwidth (kernels/bench_read.wgsl): a read-only block-stride reduction over buffers much
//   larger than the last-level cache, each binding ≤ maxStorageBufferBindingSize (several chunks, one
//   dispatch each, when the total is larger). Bytes = bytes read + the small per-invocation output.
// - copyBufferToBuffer bandwidth: the memcpy ceiling, counted as bytes read + bytes written.
// Each is timed with timestamp queries (wall clock from submit to completion as a cross-check): one warm-up,
// then the median of ≥ 5 runs. Sizes are chosen so each measurement takes ≲ 2 s on lavapipe.
import { readFileSync } from 'node:fs';
import type { Gpu } from '../gpu/device.js';
import type { KernelSpec } from '../gpu/pipelines.js';
import type { DevicePeaks } from '../testing/opHarness.js';
import { fmt } from './env.js';
import { summarize, type Summary } from './stats.js';

/** Independent vec4 FMA chains per invocation in bench_fma.wgsl; one iteration = FMA_CHAINS × 8 FLOPs. */
export const FMA_CHAINS = 8;
export const FMA_FLOPS_PER_ITER = FMA_CHAINS * 4 * 2;
const MiB = 2 ** 20;

export interface RooflineOptions {
  /** Timed runs per measurement after the warm-up (default 5; fewer than 5 only for smoke tests). */
  reps?: number;
  /** Untimed runs first (default 1). */
  warmup?: number;
  /** FMA: invocations (default 8192 on a software adapter, 2^20 on a GPU). */
  fmaInvocations?: number;
  /** FMA: iterations; default: calibrated from a 1024-iteration pilot run to take `fmaTargetMs`. */
  fmaIters?: number;
  /** FMA: target time of one run in ms (default 150 software, 30 GPU). */
  fmaTargetMs?: number;
  /** Read: total bytes streamed per run (default 2 × LLC clamped to [256 MiB, 1 GiB] on software, 1 GiB on a GPU). */
  readBytes?: number;
  /** Read: invocations (default 4096 software, 2^18 GPU). */
  readInvocations?: number;
  /**
   * Read: workgroup size (default 8 on software, 256 on a GPU). lavapipe runs a workgroup's invocations in SIMD
   * chunks of 8, each chunk to completion, so a workgroup of 8 walks its block strictly forwards; wider ones
   * make each chunk skip through the block (measured ~2× slower here).
   */
  readWorkgroup?: number;
  /** Copy: bytes copied per run (default = readBytes); traffic counted is 2 × this. */
  copyBytes?: number;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
}

export interface Measurement {
  what: 'fma' | 'read' | 'copy';
  unit: 'GFLOPS' | 'GB/s';
  /** rate from the median timed run (GPU timestamps when available) */
  value: number;
  /** rate from the median wall-clock run (submit → completion) */
  wallValue: number;
  gpuTimed: boolean;
  /** per-run timings in ms (GPU timestamps, or wall clock without timestamp-query) */
  time: Summary;
  wall: Summary;
  /** FLOPs or bytes of one run */
  work: number;
  config: Record<string, number>;
}

export interface PeakDetails {
  adapter: string;
  software: boolean;
  lpNumThreads: string;
  /** last-level cache of the host CPU in bytes (software adapters; 0 when unknown) */
  hostLlcBytes: number;
  fma: Measurement;
  read: Measurement;
  copy: Measurement;
  /** ridge point of the roofline, FLOP/byte = gflops / gbps */
  ridge: number;
}

export type PeakReport = DevicePeaks & { copyGBps: number; details: PeakDetails };

/** Host L3 (or largest) cache size from sysfs; 0 when unknown. */
export function hostLlcBytes(): number {
  let best = 0;
  for (let i = 0; i < 8; i++) {
    try {
      const s = readFileSync(`/sys/devices/system/cpu/cpu0/cache/index${i}/size`, 'utf8').trim();
      const m = /^(\d+)([KMG]?)/.exec(s);
      if (m) best = Math.max(best, Number(m[1]) * ({ '': 1, K: 1024, M: MiB, G: 1024 * MiB } as Record<string, number>)[m[2]]);
    } catch {
      break;
    }
  }
  return best;
}

interface Run {
  ms: number; // GPU time (or wall when no timestamps)
  wallMs: number;
}

/** One profiled run of stream dispatches: GPU time = Σ pass durations. */
async function profiledRun(gpu: Gpu, encode: () => void): Promise<Run> {
  const prof = gpu.stream.profiler;
  const useTs = gpu.features.timestamps;
  if (useTs) prof.enable(true);
  try {
    const t0 = performance.now();
    encode();
    await gpu.sync();
    const wallMs = performance.now() - t0;
    if (!useTs) return { ms: wallMs, wallMs };
    const t = await prof.collect();
    return { ms: t.reduce((s, x) => s + x.ns, 0) / 1e6, wallMs };
  } finally {
    if (useTs) prof.enable(false);
  }
}

async function repeat(reps: number, warmup: number, once: () => Promise<Run>): Promise<{ time: Summary; wall: Summary }> {
  for (let k = 0; k < warmup; k++) await once();
  const runs: Run[] = [];
  for (let k = 0; k < reps; k++) runs.push(await once());
  return { time: summarize(runs.map((r) => r.ms)), wall: summarize(runs.map((r) => r.wallMs)) };
}

function measurement(what: Measurement['what'], work: number, t: { time: Summary; wall: Summary }, gpuTimed: boolean, config: Record<string, number>): Measurement {
  // work / ms / 1e6 = GFLOP/s or GB/s
  return {
    what,
    unit: what === 'fma' ? 'GFLOPS' : 'GB/s',
    value: work / (t.time.median * 1e6),
    wallValue: work / (t.wall.median * 1e6),
    gpuTimed,
    time: t.time,
    wall: t.wall,
    work,
    config,
  };
}

function launch(gpu: Gpu, invocations: number, wg: number): { wg: number; groups: number; invocations: number } {
  const groups = Math.max(1, Math.round(invocations / wg));
  if (groups > gpu.limits.maxComputeWorkgroupsPerDimension) throw new Error(`roofline: ${groups} workgroups exceed maxComputeWorkgroupsPerDimension`);
  return { wg, groups, invocations: groups * wg };
}

export async function measureFma(gpu: Gpu, opts: RooflineOptions = {}): Promise<Measurement> {
  const sw = gpu.isSoftware;
  const L = launch(gpu, opts.fmaInvocations ?? (sw ? 8192 : 2 ** 20), sw ? 64 : 256);
  const spec: KernelSpec = { file: 'bench_fma', params: { iters: 'u32', mul: 'f32', add: 'f32' }, bindings: { Out: 'write vec4f' }, workgroup: [L.wg] };
  const kernel = gpu.pipelines.get(spec);
  const out = gpu.device.createBuffer({ size: L.invocations * 16, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC, label: 'bench_fma.out' });
  try {
    const encode = (iters: number) => () =>
      gpu.stream.dispatch(kernel, { Out: { buffer: out } }, { iters, mul: 0.999, add: 0.001 }, [L.groups], 'bench_fma');
    let iters = opts.fmaIters ?? 0;
    if (!iters) {
      const pilotIters = 1024;
      await profiledRun(gpu, encode(pilotIters)); // compile + first touch
      const pilot = await profiledRun(gpu, encode(pilotIters));
      const target = opts.fmaTargetMs ?? (sw ? 150 : 30);
      iters = Math.round(Math.min(2 ** 22, Math.max(pilotIters, (pilotIters * target) / Math.max(pilot.ms, 1e-3))));
    }
    const t = await repeat(opts.reps ?? 5, opts.warmup ?? 1, () => profiledRun(gpu, encode(iters)));
    const v = new Float32Array(await gpu.stream.read(out, 0, L.invocations * 16));
    // a = a·m + c from a ∈ [0, 2) with m = 0.999, c = 0.001 stays in (0, 2): 8 chains sum to (0, 16) per lane.
    for (let k = 0; k < v.length; k += Math.max(1, v.length >> 10)) {
      if (!(v[k] > 0 && v[k] < 16)) throw new Error(`roofline fma: output[${k}] = ${v[k]} (the kernel did not run?)`);
    }
    const flops = L.invocations * iters * FMA_FLOPS_PER_ITER;
    const m = measurement('fma', flops, t, gpu.features.timestamps, { invocations: L.invocations, workgroup: L.wg, iters, chains: FMA_CHAINS });
    opts.log?.(`fma:  ${fmt(m.value)} GFLOPS (${L.invocations} invocations × ${iters} iters × ${FMA_FLOPS_PER_ITER} FLOP, median ${fmt(m.time.median)} ms)`);
    return m;
  } finally {
    out.destroy();
  }
}

function defaultReadBytes(gpu: Gpu): number {
  if (!gpu.isSoftware) return 1024 * MiB;
  return Math.min(1024 * MiB, Math.max(256 * MiB, 2 * hostLlcBytes()));
}

interface Chunks {
  buffers: GPUBuffer[];
  chunkBytes: number;
}

/** `total` bytes as buffers of ≤ maxStorageBufferBindingSize, each a multiple of `quantum` bytes, filled with 1.0f. */
function filledChunks(gpu: Gpu, total: number, quantum: number, label: string): Chunks {
  const lim = Math.min(gpu.limits.maxStorageBufferBindingSize, gpu.limits.maxBufferSize);
  const count = Math.max(1, Math.ceil(total / lim));
  const chunkBytes = Math.max(quantum, Math.floor(total / count / quantum) * quantum);
  const pattern = new Float32Array(Math.min(chunkBytes, 16 * MiB) / 4).fill(1);
  const buffers: GPUBuffer[] = [];
  for (let c = 0; c < count; c++) {
    const b = gpu.device.createBuffer({ size: chunkBytes, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST, label: `${label}[${c}]` });
    for (let off = 0; off < chunkBytes; off += pattern.byteLength) {
      const n = Math.min(pattern.byteLength, chunkBytes - off);
      gpu.device.queue.writeBuffer(b, off, pattern.buffer, 0, n);
    }
    buffers.push(b);
  }
  return { buffers, chunkBytes };
}

/**
 * One prepared pass of a streaming benchmark kernel, for callers that interleave it with other work
 * (bench/gpu/gemv_bandwidth.mjs): its buffers stay allocated and filled until release().
 */
export interface BenchPass {
  /** bytes one pass reads plus its small per-invocation output */
  bytes: number;
  /** Encodes one pass on gpu.stream. */
  encode: () => void;
  /** Throws unless the output holds the known result of a pass (run at least one pass first). */
  check: () => Promise<void>;
  release: () => void;
  config: Record<string, number>;
}

/** The read benchmark's pass (kernels/bench_read.wgsl) over opts.readBytes (default: see RooflineOptions). */
export function readPass(gpu: Gpu, opts: RooflineOptions = {}): BenchPass {
  const sw = gpu.isSoftware;
  const L = launch(gpu, opts.readInvocations ?? (sw ? 4096 : 2 ** 18), opts.readWorkgroup ?? (sw ? 8 : 256));
  const spec: KernelSpec = {
    file: 'bench_read', params: { block: 'u32', groups_x: 'u32' }, bindings: { Src: 'read vec4f', Out: 'write vec4f' }, workgroup: [L.wg],
  };
  const kernel = gpu.pipelines.get(spec);
  gpu.stream.flush();
  const src = filledChunks(gpu, opts.readBytes ?? defaultReadBytes(gpu), 16 * 4 * L.invocations, 'bench_read.src');
  const out = gpu.device.createBuffer({ size: L.invocations * 16, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC, label: 'bench_read.out' });
  const block = src.chunkBytes / 16 / L.groups;
  return {
    bytes: src.buffers.length * (src.chunkBytes + L.invocations * 16),
    encode: () => src.buffers.forEach((b, c) =>
      gpu.stream.dispatch(kernel, { Src: { buffer: b }, Out: { buffer: out } }, { block, groups_x: L.groups }, [L.groups], `bench_read[${c}]`)),
    check: async () => {
      const v = new Float32Array(await gpu.stream.read(out, 0, L.invocations * 16));
      const expect = block / L.wg;
      for (let k = 0; k < v.length; k++) {
        if (v[k] !== expect) throw new Error(`roofline read: output[${k}] = ${v[k]}, expected ${expect} (the pass did not run?)`);
      }
    },
    release: () => {
      for (const b of src.buffers) b.destroy();
      out.destroy();
    },
    config: { invocations: L.invocations, workgroup: L.wg, chunks: src.buffers.length, chunkBytes: src.chunkBytes, totalBytes: src.buffers.length * src.chunkBytes },
  };
}

export async function measureRead(gpu: Gpu, opts: RooflineOptions = {}): Promise<Measurement> {
  const pass = readPass(gpu, opts);
  try {
    const t = await repeat(opts.reps ?? 5, opts.warmup ?? 1, () => profiledRun(gpu, pass.encode));
    await pass.check();
    const m = measurement('read', pass.bytes, t, gpu.features.timestamps, pass.config);
    opts.log?.(`read: ${fmt(m.value)} GB/s (${pass.config.chunks} × ${fmt(pass.config.chunkBytes / MiB)} MiB, median ${fmt(m.time.median)} ms)`);
    return m;
  } finally {
    pass.release();
  }
}

/** The decode GEMV's W stream (kernels/bench_gemv_stream.wgsl) for an [N, K] weight matrix. */
export interface GemvStreamOptions {
  N: number;
  K: number;
  /** f16 weights (N·K·2 bytes) instead of f32 (N·K·4). */
  f16: boolean;
  /** f16 only: widen each 16-byte load to 8 floats (unpack2x16float) before summing; false: sum the raw words. */
  widen: boolean;
  /** The GEMV config's outputs per workgroup (`rows`) and invocations per workgroup (`wg`). */
  rows: number;
  wg: number;
}

/**
 * One pass of the decode GEMV's streaming loop over W only (no X loads, no FMAs, no reduction): the
 * bytes-only time of the GEMV's per-lane load pattern (`widen` false) and, for f16, bytes + widening. Compared
 * with measureRead (same pattern as the read peak?) and with the full GEMV (bench/gpu/gemv_bandwidth.mjs).
 */
export function gemvStream(gpu: Gpu, o: GemvStreamOptions): BenchPass {
  if (o.widen && !o.f16) throw new Error('gemvStream: widen applies to f16 weights only');
  const rowBytes = o.K * (o.f16 ? 2 : 4);
  // The partial walks "elements": 32-bit words (raw) or halves (widened); 16 bytes per load either way.
  const K = o.widen ? o.K : rowBytes / 4;
  if (rowBytes % 16 !== 0) throw new Error(`gemvStream: rows of ${rowBytes} bytes are not whole 16-byte loads (K=${o.K})`);
  if (o.N % o.rows !== 0) throw new Error(`gemvStream: N=${o.N} is not a multiple of rows=${o.rows}`);
  const groups = o.N / o.rows;
  if (groups > gpu.limits.maxComputeWorkgroupsPerDimension) throw new Error(`gemvStream: ${groups} workgroups exceed maxComputeWorkgroupsPerDimension`);
  const spec: KernelSpec = {
    file: 'bench_gemv_stream',
    params: { N: 'u32', K: 'u32', w_off: 'u32', w_batch: 'u32', ldw: 'u32', x_off: 'u32', x_batch: 'u32', ldx: 'u32', groups_x: 'u32' },
    bindings: { W: 'read vec4u', Out: 'write f32' },
    consts: { WIDEN: o.widen, ROWS: o.rows, MROWS: 1 },
    includes: ['linear_gemv_partial'],
    workgroup: [o.wg],
  };
  const kernel = gpu.pipelines.get(spec);
  gpu.stream.flush();
  const src = filledChunks(gpu, o.N * rowBytes, o.N * rowBytes, 'bench_gemv_stream.w');
  if (src.buffers.length !== 1) throw new Error(`gemvStream: ${o.N * rowBytes} bytes of W exceed one binding`);
  const lanes = groups * o.wg;
  const out = gpu.device.createBuffer({ size: lanes * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC, label: 'bench_gemv_stream.out' });
  const params = { N: o.N, K, w_off: 0, w_batch: 0, ldw: K, x_off: 0, x_batch: 0, ldx: 0, groups_x: groups };
  // Each 16-byte load of 1.0f words sums to 4 (raw) or, as eight halves 0 and 1.875, to 7.5 (widened).
  const perLoad = o.widen ? 7.5 : 4;
  const loadsPerRow = rowBytes / 16;
  return {
    bytes: o.N * rowBytes + lanes * 4,
    encode: () => gpu.stream.dispatch(kernel, { W: { buffer: src.buffers[0] }, Out: { buffer: out } }, params, [groups], 'bench_gemv_stream'),
    check: async () => {
      const v = new Float32Array(await gpu.stream.read(out, 0, lanes * 4));
      for (let i = 0; i < lanes; i++) {
        const t = i % o.wg;
        const loads = t < loadsPerRow ? Math.floor((loadsPerRow - t - 1) / o.wg) + 1 : 0;
        const expect = o.rows * loads * perLoad;
        if (v[i] !== expect) throw new Error(`gemvStream: output[${i}] = ${v[i]}, expected ${expect} (the pass did not run?)`);
      }
    },
    release: () => {
      src.buffers[0].destroy();
      out.destroy();
    },
    config: { N: o.N, K: o.K, rows: o.rows, workgroup: o.wg },
  };
}

export async function measureCopy(gpu: Gpu, opts: RooflineOptions = {}): Promise<Measurement> {
  gpu.stream.flush();
  const dev = gpu.device;
  const src = filledChunks(gpu, opts.copyBytes ?? opts.readBytes ?? defaultReadBytes(gpu), 256, 'bench_copy.src');
  const dst = src.buffers.map((_, c) => dev.createBuffer({ size: src.chunkBytes, usage: GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC, label: `bench_copy.dst[${c}]` }));
  const useTs = gpu.features.timestamps;
  const qs = useTs ? dev.createQuerySet({ type: 'timestamp', count: 2 }) : null;
  const resolve = useTs ? dev.createBuffer({ size: 16, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC }) : null;
  const readback = useTs ? dev.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST }) : null;
  try {
    const once = async (): Promise<Run> => {
      const enc = dev.createCommandEncoder();
      // Copies are not passes: empty compute passes on either side carry the timestamps.
      if (qs) enc.beginComputePass({ timestampWrites: { querySet: qs, endOfPassWriteIndex: 0 } }).end();
      src.buffers.forEach((b, c) => enc.copyBufferToBuffer(b, 0, dst[c], 0, src.chunkBytes));
      if (qs) {
        enc.beginComputePass({ timestampWrites: { querySet: qs, beginningOfPassWriteIndex: 1 } }).end();
        enc.resolveQuerySet(qs, 0, 2, resolve!, 0);
        enc.copyBufferToBuffer(resolve!, 0, readback!, 0, 16);
      }
      const cmd = enc.finish();
      const t0 = performance.now();
      dev.queue.submit([cmd]);
      await dev.queue.onSubmittedWorkDone();
      const wallMs = performance.now() - t0;
      gpu.checkHealthy();
      if (!readback) return { ms: wallMs, wallMs };
      await readback.mapAsync(GPUMapMode.READ);
      const ts = new BigUint64Array(readback.getMappedRange().slice(0));
      readback.unmap();
      return { ms: Number(ts[1] - ts[0]) / 1e6, wallMs };
    };
    const t = await repeat(opts.reps ?? 5, opts.warmup ?? 1, once);
    // The last chunk must now hold the pattern (1.0f = 0x3f800000) at both ends.
    const last = dst[dst.length - 1];
    const head = new Float32Array(await gpu.stream.read(last, 0, 16));
    const tail = new Float32Array(await gpu.stream.read(last, src.chunkBytes - 16, 16));
    if ([...head, ...tail].some((x) => x !== 1)) throw new Error('roofline copy: destination does not hold the source pattern');
    const total = src.buffers.length * src.chunkBytes;
    const m = measurement('copy', 2 * total, t, useTs, { chunks: src.buffers.length, chunkBytes: src.chunkBytes, totalBytes: total });
    opts.log?.(`copy: ${fmt(m.value)} GB/s (read+write of ${fmt(total / MiB)} MiB, median ${fmt(m.time.median)} ms)`);
    return m;
  } finally {
    for (const b of [...src.buffers, ...dst]) b.destroy();
    qs?.destroy();
    resolve?.destroy();
    readback?.destroy();
  }
}

/**
 * Measure the device's FMA peak (GFLOPS), streaming read bandwidth (GB/s, the `gbps` used for roofline % of
 * peak) and copyBufferToBuffer bandwidth. Runs on `gpu` (it flushes the stream and uses the profiler).
 */
export async function measurePeaks(gpu: Gpu, opts: RooflineOptions = {}): Promise<PeakReport> {
  const fma = await measureFma(gpu, opts);
  const read = await measureRead(gpu, opts);
  const copy = await measureCopy(gpu, opts);
  return {
    gflops: fma.value,
    gbps: read.value,
    copyGBps: copy.value,
    details: {
      adapter: gpu.description,
      software: gpu.isSoftware,
      lpNumThreads: process.env.LP_NUM_THREADS ?? '(unset)',
      hostLlcBytes: gpu.isSoftware ? hostLlcBytes() : 0,
      fma,
      read,
      copy,
      ridge: fma.value / read.value,
    },
  };
}

/** Human-readable lines for a peak report. */
export function formatPeaks(p: PeakReport): string[] {
  const d = p.details;
  const row = (m: Measurement, extra: string) =>
    `  ${m.what.padEnd(5)} ${fmt(m.value).padStart(8)} ${m.unit.padEnd(6)}  median ${fmt(m.time.median)} ms (${fmt(m.time.min)}–${fmt(m.time.max)}, MAD ${fmt(m.time.mad)}, n=${m.time.n}, ${m.gpuTimed ? 'timestamps' : 'wall'}); wall ${fmt(m.wallValue)} ${m.unit}  ${extra}`;
  return [
    'measured peaks:',
    row(d.fma, `[${d.fma.config.invocations} inv × ${d.fma.config.iters} iters × ${FMA_CHAINS} vec4 chains]`),
    row(d.read, `[${d.read.config.chunks} × ${fmt(d.read.config.chunkBytes / MiB)} MiB${d.hostLlcBytes ? `, host LLC ${fmt(d.hostLlcBytes / MiB)} MiB` : ''}]`),
    row(d.copy, `[copyBufferToBuffer ${d.copy.config.chunks} × ${fmt(d.copy.config.chunkBytes / MiB)} MiB, read+write counted]`),
    `  ridge point ${fmt(d.ridge)} FLOP/byte (FMA peak / read bandwidth)`,
  ];
}
