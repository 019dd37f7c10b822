// Variant choice by measurement (`qvla tune`): for each registered kernel family, time its candidate configs at
// the shapes a checkpoint runs, on this adapter, and keep the fastest per shape class (src/tune/table.ts).
//
// A family (TuneFamily) says which shapes a model config needs (with their shape classes), which configs are
// candidates on this adapter, and how to time one. `linear` is registered here (src/tune/linearFamily.ts);
// another family (attention) registers itself with registerTuneFamily() and the table, the command and the
// engine's lookup (tunedConfig) need no change.
//
// Timing: every candidate of a shape gets one warm-up (compile), then they are timed round-robin for `reps`
// rounds (a drift in machine load hits all alike), GPU timestamps when available, median. Measures only; it
// asserts nothing about speed.
import type { Gpu } from '../gpu/device.js';
import type { QvlaConfig } from '../model/config.js';
import { setEntry, type TuneTable } from './table.js';

export interface TuneShape {
  /** Shape class: the table key (family-specific, e.g. `gemm:f32:m1024:n4096:k4096`). */
  shapeClass: string;
  /** Human label of the representative shape that is timed, e.g. `M=600 N=2560 K=2560 f32`. */
  label: string;
  /** Family-specific description of the shape. */
  shape: Record<string, unknown>;
  /** Bytes of device memory the timing needs (lets the runner skip shapes above a budget). */
  bytes: number;
}

/** One timing session of a config at a shape: `run()` encodes the op once and resolves when it is done. */
export interface TuneInstance {
  run(): Promise<number>;
  dispose(): void;
}

export interface TuneFamily {
  name: string;
  /** The shapes (one per shape class) a model with this config runs. */
  shapes(cfg: QvlaConfig, opts: TuneShapeOptions): TuneShape[];
  /** Candidate configs for a shape on this adapter (each valid here). */
  candidates(gpu: Gpu, s: TuneShape): Record<string, unknown>[];
  /** Inputs for timing a shape, shared by its candidates. */
  prepare(gpu: Gpu, s: TuneShape): { instance(config: Record<string, unknown>): TuneInstance; dispose(): void };
  /** Short name of a config (for reports). */
  configName(config: Record<string, unknown>): string;
}

export interface TuneShapeOptions {
  /** Rows of a prefill GEMM (prompt tokens); default 600. */
  prefillRows: number;
  /** Weight dtype the checkpoint uses on the device. */
  weightDtype: 'f32' | 'f16';
  /** Extra linear shapes to tune besides the checkpoint's (benchmark shapes, `qvla tune --linear-shape`). */
  linearShapes?: { M: number; N: number; K: number; rowStable?: boolean }[];
}

const families = new Map<string, TuneFamily>();

export function registerTuneFamily(f: TuneFamily): void {
  families.set(f.name, f);
}

export function tuneFamilies(): TuneFamily[] {
  return [...families.values()];
}

export interface TuneOptions extends TuneShapeOptions {
  /** Families to tune (default: all registered). */
  families?: string[];
  /** Timed rounds per shape after the warm-up (default 3). */
  reps: number;
  /** Skip shapes whose timing needs more device memory than this (bytes). */
  maxBytes: number;
  /** Only shape classes matching this. */
  classFilter?: RegExp;
  /** Only candidates whose config name (TuneFamily.configName) matches this. */
  configFilter?: RegExp;
  log?: (line: string) => void;
}

export interface TuneResultRow {
  family: string;
  shapeClass: string;
  shape: string;
  config: string;
  /** median ms, or null when the candidate failed */
  ms: number | null;
  best: boolean;
  error?: string;
}

export interface TuneReport {
  adapter: string;
  rows: TuneResultRow[];
  skipped: { family: string; shapeClass: string; shape: string; reason: string }[];
}

/** Median of the per-run times (ms) from one run: GPU timestamps when the adapter has them, else wall clock. */
export async function timedRun(gpu: Gpu, encode: () => void): Promise<number> {
  const prof = gpu.stream.profiler;
  const ts = gpu.features.timestamps;
  if (ts) prof.enable(true);
  try {
    const t0 = performance.now();
    encode();
    await gpu.sync();
    const wall = performance.now() - t0;
    if (!ts) return wall;
    const k = await prof.collect();
    return k.reduce((s, e) => s + e.ns, 0) / 1e6;
  } finally {
    if (ts) prof.enable(false);
  }
}

const median = (v: number[]) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** Tunes `cfg`'s shapes on `gpu` and writes the winners into `table` (entries for gpu.description). */
export async function tune(gpu: Gpu, cfg: QvlaConfig, table: TuneTable, opts: TuneOptions): Promise<TuneReport> {
  const log = opts.log ?? (() => undefined);
  const report: TuneReport = { adapter: gpu.description, rows: [], skipped: [] };
  const chosen = opts.families ?? tuneFamilies().map((f) => f.name);
  for (const name of chosen) {
    const fam = families.get(name);
    if (!fam) throw new Error(`qvla tune: unknown kernel family '${name}' (known: ${[...families.keys()].join(', ')})`);
    for (const s of fam.shapes(cfg, opts)) {
      if (opts.classFilter && !opts.classFilter.test(s.shapeClass)) continue;
      if (s.bytes > opts.maxBytes) {
        report.skipped.push({ family: name, shapeClass: s.shapeClass, shape: s.label, reason: `needs ${Math.round(s.bytes / 2 ** 20)} MiB > --max-mib` });
        log(`${name} ${s.shapeClass} (${s.label}): skipped, needs ${Math.round(s.bytes / 2 ** 20)} MiB`);
        continue;
      }
      const cands = fam.candidates(gpu, s).filter((c) => !opts.configFilter || opts.configFilter.test(fam.configName(c)));
      const prep = fam.prepare(gpu, s);
      const live: { config: Record<string, unknown>; inst: TuneInstance; times: number[]; error?: string }[] = [];
      try {
        for (const config of cands) {
          const inst = prep.instance(config);
          try {
            await inst.run(); // warm-up: compilation, first touch
            await gpu.pipelines.checkCompilation();
            live.push({ config, inst, times: [] });
          } catch (e) {
            inst.dispose();
            report.rows.push({ family: name, shapeClass: s.shapeClass, shape: s.label, config: fam.configName(config), ms: null, best: false, error: String((e as Error).message ?? e).split('\n')[0] });
          }
        }
        for (let r = 0; r < opts.reps; r++) {
          for (const c of live) {
            if (c.error) continue;
            try {
              c.times.push(await c.inst.run());
            } catch (e) {
              c.error = String((e as Error).message ?? e).split('\n')[0];
            }
          }
        }
      } finally {
        for (const c of live) c.inst.dispose();
        prep.dispose();
      }
      const timed = live.filter((c) => !c.error && c.times.length).map((c) => ({ ...c, ms: median(c.times) }));
      timed.sort((a, b) => a.ms - b.ms);
      const best = timed[0];
      for (const c of live) {
        const t = timed.find((x) => x.config === c.config);
        report.rows.push({ family: name, shapeClass: s.shapeClass, shape: s.label, config: fam.configName(c.config), ms: t ? t.ms : null, best: best !== undefined && c.config === best.config, error: c.error });
      }
      if (best) {
        setEntry(table, gpu.description, name, s.shapeClass, { config: best.config, ms: best.ms, shape: s.label, candidates: timed.length, tunedAt: new Date().toISOString() });
        log(`${name} ${s.shapeClass} (${s.label}): ${fam.configName(best.config)} ${best.ms.toFixed(3)} ms (of ${timed.length}: ${timed.map((t) => `${fam.configName(t.config)} ${t.ms.toFixed(2)}`).join(', ')})`);
      } else {
        log(`${name} ${s.shapeClass} (${s.label}): no candidate ran`);
      }
    }
  }
  return report;
}
