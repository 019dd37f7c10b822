// The tuning table: which variant / tile shape of a kernel family to run, per adapter and shape class.
//
// `qvla tune` (src/cli/cmdTune.ts, src/tune/tune.ts) times the candidates of each registered family at the shapes
// of a checkpoint and writes the winners here; the engine installs the table for its Gpu at start
// (src/tune/store.ts: loadTuning), and each op asks `tunedConfig(gpu, family, shapeClass)`. With no table, or no
// entry for the adapter / family / class, or an entry this adapter cannot run, the op uses its documented
// defaults (for linear, src/ops/linear.ts: LINEAR_DEFAULTS, chosen for GPUs by reasoning, never from lavapipe
// timings; on a software adapter LINEAR_SOFTWARE_DEFAULTS, the untuned pre-variant shapes). A software adapter
// gets tuned values only through a table (bench/gpu/README.md).
//
// File format (JSON, version 1):
//   { "version": 1,
//     "adapters": { "<adapter description>": { "<family>": { "<shape class>": { "config": {…}, "ms": 1.2,
//                                                             "shape": "M=600 N=2560 K=2560", "candidates": 9,
//                                                             "tunedAt": "ISO date" } } } } }
// A family names its own config object (linear: src/ops/linear.ts LinearConfig) and its shape classes.
// This module is pure (no file system): it is also in the browser bundle.
import type { Gpu } from '../gpu/device.js';
import { QvlaError } from '../util/errors.js';

export const TUNE_TABLE_VERSION = 1;

export interface TuneEntry {
  /** Family-specific config (validated by the family before use). */
  config: Record<string, unknown>;
  /** Median time of the winner when it was tuned (ms), for the record only. */
  ms?: number;
  /** The shape it was timed at. */
  shape?: string;
  /** How many candidates were timed. */
  candidates?: number;
  tunedAt?: string;
}

export type FamilyTable = Record<string, TuneEntry>;

export interface TuneTable {
  version: number;
  /** adapter description (Gpu.description) → family → shape class → entry */
  adapters: Record<string, Record<string, FamilyTable>>;
}

export function emptyTable(): TuneTable {
  return { version: TUNE_TABLE_VERSION, adapters: {} };
}

/** A table written by another format version: ignored (defaults), not an error. */
export class TuneTableVersionError extends QvlaError {
  constructor(message: string, file: string) {
    super(message, { code: 'tune_table_version', file });
    this.name = 'TuneTableVersionError';
  }
}

/** Parses and checks a table; `where` names the file in errors. */
export function parseTable(text: string, where: string): TuneTable {
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch (e) {
    throw new Error(`tuning table ${where}: not JSON (${(e as Error).message})`);
  }
  const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!isObj(j)) throw new Error(`tuning table ${where}: expected an object`);
  if (j.version !== TUNE_TABLE_VERSION) throw new TuneTableVersionError(`tuning table ${where}: version ${String(j.version)}, expected ${TUNE_TABLE_VERSION} (re-run qvla tune)`, where);
  if (!isObj(j.adapters)) throw new Error(`tuning table ${where}: field 'adapters' must be an object`);
  for (const [a, fams] of Object.entries(j.adapters)) {
    if (!isObj(fams)) throw new Error(`tuning table ${where}: adapters['${a}'] must be an object`);
    for (const [f, classes] of Object.entries(fams)) {
      if (!isObj(classes)) throw new Error(`tuning table ${where}: adapters['${a}'].${f} must be an object`);
      for (const [c, e] of Object.entries(classes)) {
        if (!isObj(e) || !isObj(e.config)) throw new Error(`tuning table ${where}: adapters['${a}'].${f}['${c}'] needs a 'config' object`);
      }
    }
  }
  return j as unknown as TuneTable;
}

/** `base` with the entries of `add` laid over it (add wins per adapter / family / class). */
export function mergeTables(base: TuneTable, add: TuneTable): TuneTable {
  const out: TuneTable = JSON.parse(JSON.stringify(base));
  for (const [a, fams] of Object.entries(add.adapters)) {
    const oa = (out.adapters[a] ??= {});
    for (const [f, classes] of Object.entries(fams)) Object.assign((oa[f] ??= {}), classes);
  }
  return out;
}

export function setEntry(t: TuneTable, adapter: string, family: string, shapeClass: string, e: TuneEntry): void {
  ((t.adapters[adapter] ??= {})[family] ??= {})[shapeClass] = e;
}

// ------------------------------------------------------------------ the table in use, per Gpu
const installed = new WeakMap<Gpu, { table: TuneTable; source: string }>();

/** Makes `table` the one `gpu` uses (before the first op: a variant must not change under a running model). */
export function installTuning(gpu: Gpu, table: TuneTable | null, source = 'memory'): void {
  if (table) installed.set(gpu, { table, source });
  else installed.delete(gpu);
}

/** Where the installed table came from (a path), or null when the defaults are in use. */
export function tuningSource(gpu: Gpu): string | null {
  return installed.get(gpu)?.source ?? null;
}

/** The tuned config for this adapter / family / shape class, or undefined (then the family's defaults apply). */
export function tunedConfig(gpu: Gpu, family: string, shapeClass: string): Record<string, unknown> | undefined {
  const t = installed.get(gpu);
  return t?.table.adapters[gpu.description]?.[family]?.[shapeClass]?.config;
}

/** Power-of-two bucket (the smallest 2^b ≥ n), the unit of shape classes: nearby sizes share a tuned entry. */
export function pow2Bucket(n: number): number {
  return 2 ** Math.ceil(Math.log2(Math.max(1, n)));
}
