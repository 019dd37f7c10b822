// Where the tuning table lives and how the engine picks it up at start (src/tune/table.ts has the format).
//
// Path, first that applies:
//   1. an explicit path (`qvla tune --out FILE`, `loadTuning(gpu, { file })`),
//   2. $QVLA_TUNE_FILE (`off` or `none`: no table, the documented defaults),
//   3. $XDG_CACHE_HOME/qvla/tune.json, else ~/.cache/qvla/tune.json (%LOCALAPPDATA%\qvla\tune.json on Windows).
// In a browser there is no cache directory: no table unless a URL is given explicitly.
// Uses only the platform file system (src/platform), so it is in the browser bundle too.
import type { Gpu } from '../gpu/device.js';
import { platform } from '../platform/index.js';
import { installTuning, parseTable, tuningSource, TuneTableVersionError, TUNE_TABLE_VERSION, type TuneTable } from './table.js';

export const TUNE_FILE_ENV = 'QVLA_TUNE_FILE';

function env(name: string): string | undefined {
  const p = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  const v = p?.env?.[name];
  return v === undefined || v === '' ? undefined : v;
}

/** The table path to use (null: tuning switched off, or no cache directory on this platform). */
export function tuneFilePath(explicit?: string | null): string | null {
  if (explicit) return explicit;
  const e = env(TUNE_FILE_ENV);
  if (e !== undefined) return /^(off|none)$/i.test(e) ? null : e;
  const p = platform();
  if (p.name === 'browser') return null; // no cache directory (even when the browser platform runs under Node, as in tests)
  const fs = p.fs;
  const xdg = env('XDG_CACHE_HOME');
  if (xdg) return fs.join(xdg, 'qvla', 'tune.json');
  const local = env('LOCALAPPDATA');
  if (local) return fs.join(local, 'qvla', 'tune.json');
  const home = env('HOME') ?? env('USERPROFILE');
  return home ? fs.join(home, '.cache', 'qvla', 'tune.json') : null;
}

/** Reads a table; null when the file does not exist. A malformed file is an error naming it. */
export async function readTuneTable(path: string): Promise<TuneTable | null> {
  const fs = platform().fs;
  if ((await fs.kind(path)) !== 'file') return null;
  return parseTable(await fs.readText(path), path);
}

export interface LoadTuningResult {
  /** The file read, or null when none applied (the defaults are in use). */
  source: string | null;
  /** Tuned entries for this adapter (all families). */
  entries: number;
  /** Why no table is in use, when none is. */
  reason?: string;
}

/**
 * Installs the tuning table for `gpu` (call once at engine start, before the first op). A missing file means
 * the defaults; a table from an older format version is ignored with the reason reported; a malformed file
 * throws, naming it.
 */
export async function loadTuning(gpu: Gpu, opts: { file?: string | null } = {}): Promise<LoadTuningResult> {
  const path = tuneFilePath(opts.file);
  if (!path) {
    installTuning(gpu, null);
    return { source: null, entries: 0, reason: `tuning off (${TUNE_FILE_ENV})` };
  }
  let table: TuneTable | null;
  try {
    table = await readTuneTable(path);
  } catch (e) {
    if (e instanceof TuneTableVersionError) {
      installTuning(gpu, null);
      return { source: null, entries: 0, reason: `${(e as Error).message}; using defaults (format version ${TUNE_TABLE_VERSION} expected)` };
    }
    throw e;
  }
  if (!table) {
    installTuning(gpu, null);
    return { source: null, entries: 0, reason: `no table at ${path}` };
  }
  installTuning(gpu, table, path);
  const mine = table.adapters[gpu.description] ?? {};
  const entries = Object.values(mine).reduce((s, f) => s + Object.keys(f).length, 0);
  return { source: path, entries, reason: entries ? undefined : `${path} has no entries for adapter '${gpu.description}'` };
}

const attempted = new WeakSet<Gpu>();

/**
 * loadTuning once per Gpu (the engine calls this at start: Policy.load / recover). A Gpu whose table was already
 * installed by its owner (loadTuning / installTuning) keeps it.
 */
export async function ensureTuning(gpu: Gpu): Promise<void> {
  if (attempted.has(gpu) || tuningSource(gpu) !== null) return;
  attempted.add(gpu);
  await loadTuning(gpu);
}
