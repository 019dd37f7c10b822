// The tuning table (src/tune/): format checks, merge, path resolution, loading at start, the lookup with its
// fallback to the documented defaults, and one real `tune()` pass on tiny shapes (entries written and read
// back). Timings are never asserted: only that a winner of the candidates is recorded and used.
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Gpu } from '../../src/gpu/device.js';
import { loadQvlaConfig } from '../../src/model/config.js';
import { chooseLinearConfig, LINEAR_DEFAULTS, LINEAR_FAMILY, LINEAR_SOFTWARE_DEFAULTS, linearShapeClass, type LinearConfig } from '../../src/ops/linear.js';
import { TINY_DIR } from '../../src/testing/fixtures.js';
import { ensureTuning, loadTuning, tuneFilePath, TUNE_FILE_ENV } from '../../src/tune/load.js';
import { emptyTable, installTuning, mergeTables, parseTable, setEntry, tunedConfig, tuningSource, TuneTableVersionError } from '../../src/tune/table.js';
import { tune } from '../../src/tune/tune.js';
import { linearTuneShapes } from '../../src/tune/linearFamily.js';

let gpu: Gpu;
let dir: string;
beforeAll(async () => {
  gpu = await Gpu.create();
  dir = mkdtempSync(path.join(os.tmpdir(), 'qvla-tune-test-'));
});
afterAll(() => {
  gpu?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const withEnv = <T>(vars: Record<string, string | undefined>, f: () => T): T => {
  const old = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  for (const [k, v] of Object.entries(vars)) v === undefined ? delete process.env[k] : (process.env[k] = v);
  try {
    return f();
  } finally {
    for (const [k, v] of Object.entries(old)) v === undefined ? delete process.env[k] : (process.env[k] = v);
  }
};

const TILED: LinearConfig = { kernel: 'tiled', tm: 2, tn: 4, wg: [8, 4], bk: 8 };
const GEMV: LinearConfig = { kernel: 'gemv', wg: 32, rows: 2 };

describe('tuning table format', () => {
  it('rejects malformed tables naming the file, flags other versions apart', () => {
    expect(() => parseTable('{', 'x.json')).toThrow(/x\.json: not JSON/);
    expect(() => parseTable('[]', 'x.json')).toThrow(/x\.json: expected an object/);
    expect(() => parseTable('{"version":1,"adapters":{"a":{"linear":{"c":{}}}}}', 'x.json')).toThrow(/adapters\['a'\]\.linear\['c'\] needs a 'config'/);
    expect(() => parseTable('{"version":99,"adapters":{}}', 'x.json')).toThrow(TuneTableVersionError);
    const t = parseTable(JSON.stringify({ version: 1, adapters: { a: { linear: { c: { config: { kernel: 'plain' } } } } } }), 'x.json');
    expect(t.adapters.a.linear.c.config.kernel).toBe('plain');
  });

  it('merges per adapter / family / class, the newer entry winning', () => {
    const a = emptyTable();
    setEntry(a, 'gpu A', 'linear', 'c1', { config: { v: 1 } });
    setEntry(a, 'gpu A', 'linear', 'c2', { config: { v: 2 } });
    setEntry(a, 'gpu B', 'linear', 'c1', { config: { v: 3 } });
    const b = emptyTable();
    setEntry(b, 'gpu A', 'linear', 'c1', { config: { v: 4 } });
    setEntry(b, 'gpu A', 'attention', 'c9', { config: { v: 5 } });
    const m = mergeTables(a, b);
    expect(m.adapters['gpu A'].linear).toEqual({ c1: { config: { v: 4 } }, c2: { config: { v: 2 } } });
    expect(m.adapters['gpu A'].attention.c9.config).toEqual({ v: 5 });
    expect(m.adapters['gpu B'].linear.c1.config).toEqual({ v: 3 });
    expect(a.adapters['gpu A'].linear.c1.config).toEqual({ v: 1 }); // inputs untouched
  });

  it('resolves the path: explicit, then $QVLA_TUNE_FILE (off: none), then the cache dir', () => {
    expect(tuneFilePath('/x/t.json')).toBe('/x/t.json');
    withEnv({ [TUNE_FILE_ENV]: '/env/t.json' }, () => expect(tuneFilePath()).toBe('/env/t.json'));
    withEnv({ [TUNE_FILE_ENV]: 'off' }, () => expect(tuneFilePath()).toBeNull());
    withEnv({ [TUNE_FILE_ENV]: undefined, XDG_CACHE_HOME: '/xdg' }, () => expect(tuneFilePath()).toBe(path.join('/xdg', 'qvla', 'tune.json')));
    withEnv({ [TUNE_FILE_ENV]: undefined, XDG_CACHE_HOME: undefined, LOCALAPPDATA: undefined, HOME: '/home/u' }, () =>
      expect(tuneFilePath()).toBe(path.join('/home/u', '.cache', 'qvla', 'tune.json')));
  });
});

describe('the engine reading the table', () => {
  const gemmShape = { M: 37, N: 300, K: 200, f16: false };
  const gemvShape = { M: 1, N: 300, K: 200, f16: true };

  it('uses the defaults without a table, and the tuned entry for this adapter with one', async () => {
    const soft = gpu.isSoftware;
    const missing = await loadTuning(gpu, { file: path.join(dir, 'none.json') });
    expect(missing.source).toBeNull();
    expect(missing.reason).toMatch(/no table/);
    expect(chooseLinearConfig(gpu, gemmShape)).toEqual(soft ? LINEAR_SOFTWARE_DEFAULTS.gemm : LINEAR_DEFAULTS.gemm);

    const t = emptyTable();
    setEntry(t, gpu.description, LINEAR_FAMILY, linearShapeClass(gemmShape), { config: TILED as unknown as Record<string, unknown> });
    setEntry(t, gpu.description, LINEAR_FAMILY, linearShapeClass(gemvShape), { config: GEMV as unknown as Record<string, unknown> });
    setEntry(t, 'some other adapter', LINEAR_FAMILY, linearShapeClass({ ...gemmShape, N: 5000 }), { config: TILED as unknown as Record<string, unknown> });
    const file = path.join(dir, 'tune.json');
    writeFileSync(file, JSON.stringify(t));
    const r = await loadTuning(gpu, { file });
    expect(r).toMatchObject({ source: file, entries: 2 });
    expect(tuningSource(gpu)).toBe(file);
    expect(chooseLinearConfig(gpu, gemmShape)).toEqual(TILED);
    expect(chooseLinearConfig(gpu, { ...gemmShape, M: 40 })).toEqual(TILED); // same M bucket
    expect(chooseLinearConfig(gpu, gemvShape)).toEqual(GEMV);
    // Another class (other adapter's entry, other M bucket, the row-stable class): defaults.
    const dflt = soft ? LINEAR_SOFTWARE_DEFAULTS.gemm : LINEAR_DEFAULTS.gemm;
    expect(chooseLinearConfig(gpu, { ...gemmShape, N: 5000 })).toEqual(dflt);
    expect(chooseLinearConfig(gpu, { ...gemmShape, M: 600 })).toEqual(dflt);
    expect(chooseLinearConfig(gpu, { ...gemmShape, rowStable: true })).toEqual(dflt);
    installTuning(gpu, null);
  });

  it('falls back to the defaults for an entry this adapter cannot run or that does not fit the call', async () => {
    const t = emptyTable();
    const bad: Record<string, unknown>[] = [
      { kernel: 'tiled', tm: 4, tn: 4, wg: [64, 64], bk: 16 }, // 4096 invocations
      { kernel: 'tiled', tm: 16, tn: 16, wg: [16, 16], bk: 128 }, // workgroup memory
      { kernel: 'gemv', wg: 64, rows: 4 }, // a GEMV variant for a GEMM class
      { kernel: 'warp-magic' },
    ];
    const soft = gpu.isSoftware;
    for (const config of bad) {
      setEntry(t, gpu.description, LINEAR_FAMILY, linearShapeClass(gemmShape), { config });
      installTuning(gpu, t);
      expect(chooseLinearConfig(gpu, gemmShape)).toEqual(soft ? LINEAR_SOFTWARE_DEFAULTS.gemm : LINEAR_DEFAULTS.gemm);
    }
    installTuning(gpu, null);
  });

  it('a malformed file is an error naming it; an older format version means defaults', async () => {
    const file = path.join(dir, 'broken.json');
    writeFileSync(file, '{"version": 1, "adapters": 7}');
    await expect(loadTuning(gpu, { file })).rejects.toThrow(/broken\.json: field 'adapters'/);
    writeFileSync(file, '{"version": 0, "adapters": {}}');
    const r = await loadTuning(gpu, { file });
    expect(r.source).toBeNull();
    expect(r.reason).toMatch(/version 0/);
    await withEnv({ [TUNE_FILE_ENV]: 'off' }, async () => {
      const g2 = await Gpu.create();
      try {
        await ensureTuning(g2);
        expect(tuningSource(g2)).toBeNull();
      } finally {
        g2.destroy();
      }
    });
  });
});

describe('linear shapes to tune', () => {
  it('times each row-stable class at the largest M its callers use, gemv / gemm classes at their own M', async () => {
    const cfg = await loadQvlaConfig(path.join(TINY_DIR, 'config.json'));
    const ae = cfg.actionExpert!;
    const ditRows = 1 + ae.hMax;
    const at = (prefillRows: number) => new Map(linearTuneShapes(cfg, { prefillRows, weightDtype: 'f32' }).map((s) => [s.shapeClass, s.shape as { M: number; N: number; K: number; rowStable?: boolean }]));
    const D = cfg.text.hiddenSize, I = cfg.text.intermediateSize;
    const gateUp = `rows:f32:n${2 * I}:k${D}`; // the stacked gate/up projection of the text prefill (a [2I, D] matrix)
    const long = at(3 * ditRows), short = at(ditRows - 10);
    // Text prefill rows (tiled: true in TextDecoder.prefillRows) at --prefill-rows, not at the DiT's 1 + hMax.
    expect(long.get(gateUp)).toMatchObject({ M: 3 * ditRows, rowStable: true });
    expect(long.get(`gemm:f32:m${2 ** Math.ceil(Math.log2(3 * ditRows))}:n${2 * I}:k${D}`)).toMatchObject({ M: 3 * ditRows });
    expect(long.get(`gemv:f32:m1:n${2 * I}:k${D}`)).toMatchObject({ M: 1 });
    // A class the DiT shares with the text prefill (the tiny DiT's fused q|k|v is [3D, D] = q_proj's bucket): the larger M wins.
    const shared = `rows:f32:n${2 ** Math.ceil(Math.log2(3 * ae.hiddenSize))}:k${ae.hiddenSize}`;
    expect(long.get(shared)!.M).toBe(3 * ditRows);
    expect(short.get(shared)!.M).toBe(ditRows);
    // A DiT-only class stays at 1 + hMax; the vision tower's at its patch count.
    expect(long.get(`rows:f32:n${ae.hiddenSize}:k${ae.sMax}`)).toMatchObject({ M: ditRows, rowStable: true });
    expect(long.get(`rows:f32:n64:k64`)!.M).toBe((448 / cfg.vision!.patchSize) ** 2);
    // Every class is row-stable xor carries M; no DiT / vision weight gets a gemm: or gemv: class.
    for (const [c, s] of long) expect(c.startsWith('rows:')).toBe(!!s.rowStable);
    // Given shapes (qvla tune --linear-shape) come first: their class is timed at the given shape.
    const given = linearTuneShapes(cfg, { prefillRows: 24, weightDtype: 'f32', linearShapes: [{ M: 1000, N: 1000, K: 1000 }, { M: 300, N: 2 * I, K: D, rowStable: true }] });
    expect(given.find((s) => s.shapeClass === 'gemm:f32:m1024:n1024:k1024')?.shape).toMatchObject({ M: 1000, N: 1000, K: 1000 });
    expect(given.find((s) => s.shapeClass === gateUp)?.shape).toMatchObject({ M: 300, rowStable: true });
  });
});

describe('qvla tune', () => {
  it('times the candidates of a shape class and records the winner, which the engine then uses', async () => {
    const cfg = await loadQvlaConfig(path.join(TINY_DIR, 'config.json'));
    const t = emptyTable();
    const report = await tune(gpu, cfg, t, {
      reps: 1, prefillRows: 24, weightDtype: 'f32', maxBytes: 2 ** 30,
      classFilter: /^(gemv:f32:m1:n256:k128|rows:f32:n128:k16)$/, configFilter: /^(gemv wg(8|64) rows4|plain 4×4 wg8×8|tiled 4×4 wg16×16)/,
    });
    const mine = t.adapters[gpu.description]?.[LINEAR_FAMILY] ?? {};
    const classes = Object.keys(mine);
    expect(classes.length).toBeGreaterThan(0);
    expect(classes.sort()).toEqual(['gemv:f32:m1:n256:k128', 'rows:f32:n128:k16']);
    for (const c of classes) {
      const rows = report.rows.filter((r) => r.shapeClass === c && r.ms !== null);
      const best = rows.find((r) => r.best)!;
      expect(best).toBeDefined();
      expect(best.ms).toBe(Math.min(...rows.map((r) => r.ms!)));
      expect(rows.length).toBe(2);
      expect(mine[c].candidates).toBe(rows.length);
    }
    const file = path.join(dir, 'tuned.json');
    writeFileSync(file, JSON.stringify(t));
    await loadTuning(gpu, { file });
    const c0 = classes.find((c) => c.startsWith('gemv:'))!;
    const [, , m, n, k] = c0.split(':');
    const shape = { M: Number(m.slice(1)), N: Number(n.slice(1)), K: Number(k.slice(1)), f16: false };
    expect(linearShapeClass(shape)).toBe(c0);
    expect(chooseLinearConfig(gpu, shape)).toEqual(JSON.parse(readFileSync(file, 'utf8')).adapters[gpu.description].linear[c0].config);
    installTuning(gpu, null);
  }, 120_000);
});
