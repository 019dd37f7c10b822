// qvla tune: time the kernel variants / tile shapes of each tuning family (src/tune/tune.ts; linear today) at the
// shapes of a checkpoint on this adapter and write the fastest per shape class into the tuning table
// (src/tune/table.ts), which the engine reads at start (src/tune/load.ts). Measures; asserts nothing.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Gpu } from '../gpu/device.js';
import { loadQvlaConfig, qwen35_4bConfig, smallConfig, type QvlaConfig } from '../model/config.js';
import { pinLpNumThreads, benchHeader, formatHeader } from '../bench/env.js';
import { TINY_DIR } from '../testing/fixtures.js';
import { emptyTable, mergeTables } from '../tune/table.js';
import { readTuneTable, tuneFilePath, TUNE_FILE_ENV } from '../tune/load.js';
import { tune, tuneFamilies } from '../tune/tune.js';
import '../tune/linearFamily.js'; // registers the linear family
import '../tune/deltaRuleFamily.js'; // registers the gated_delta_net family (chunk size)
import '../tune/attentionFamily.js'; // registers the attention family (prefill kernel)
import { HELP_OPT, UsageError, getList, getNumber, getString, type CommandSpec, type Parsed } from './args.js';
import { writeFileAtomic } from '../io/safetensorsWriter.js';

export const TUNE_SPEC: CommandSpec = {
  name: 'tune',
  usage: 'tune [--config full|small|tiny | --checkpoint DIR] [--out FILE] [options]',
  summary: 'Time kernel variants at a checkpoint\'s shapes on this adapter; write the fastest into the tuning table.',
  description: [
    'For each kernel family (linear: GEMM plain/tiled tile shapes, GEMV gemv/gemv_sg; gated_delta_net: chunk size;',
    'attention: prefill kernel tiles / rows) and each shape class the checkpoint runs, every candidate gets one',
    'warm-up and is then timed round-robin (GPU timestamps, median). A row-stable linear class (rows:…, M-free)',
    'is timed at the largest M that uses it (text prefill and DiT cross K/V at --prefill-rows, vision at its',
    'patch count, the DiT at 1 + h_max).',
    'The winners are merged into the table, keyed by adapter description + family + shape class; other adapters\'',
    'entries in the same file are kept. The engine reads the table when a Policy loads (src/tune/load.ts).',
    `Table path: --out, else $${TUNE_FILE_ENV}, else $XDG_CACHE_HOME/qvla/tune.json or ~/.cache/qvla/tune.json.`,
    `Without a table (or with ${TUNE_FILE_ENV}=off) ops use their documented defaults (src/ops/linear.ts LINEAR_DEFAULTS).`,
    'Shapes: full = Qwen3.5-4B + full DiT (random weights at real shapes: nothing is read), small = the 0.8B-shaped',
    'bench config, tiny = weights/tiny, or the config.json of --checkpoint DIR.',
  ].join('\n'),
  options: [
    { name: 'config', type: 'string', choices: ['full', 'small', 'tiny'], help: 'model shapes to tune for', defaultText: 'full' },
    { name: 'checkpoint', type: 'string', metavar: 'DIR', help: 'tune for the shapes of this checkpoint (its config.json)' },
    { name: 'out', type: 'string', metavar: 'FILE', help: 'tuning table to update', defaultText: `$${TUNE_FILE_ENV} or the cache dir` },
    { name: 'family', type: 'list', metavar: 'NAME', help: 'kernel families to tune (repeatable)', defaultText: 'all' },
    { name: 'reps', type: 'int', min: 1, max: 100, help: 'timed rounds per shape after the warm-up', defaultText: '3' },
    { name: 'prefill-rows', type: 'int', min: 5, max: 100_000, help: 'rows of a prefill GEMM (prompt tokens)', defaultText: '600' },
    { name: 'linear-shape', type: 'list', metavar: 'MxNxK', help: 'also tune this linear shape (repeatable; "rows:MxNxK" for the row-stable class), e.g. a benchmark case' },
    { name: 'weight-dtype', type: 'string', choices: ['f32', 'f16'], help: 'weight storage on the GPU', defaultText: 'f32' },
    { name: 'max-mib', type: 'int', min: 1, help: 'skip shapes needing more device memory than this', defaultText: '1024' },
    { name: 'classes', type: 'string', metavar: 'REGEX', help: 'only shape classes matching this (e.g. "^gemv")' },
    { name: 'variants', type: 'string', metavar: 'REGEX', help: 'only candidates whose name matches (e.g. "^gemv wg8 |tiled")' },
    { name: 'json', type: 'string', metavar: 'FILE', help: 'also write every timing as JSON' },
    HELP_OPT,
  ],
  examples: [
    'qvla tune                                   # full-size shapes, table in ~/.cache/qvla/tune.json',
    'qvla tune --config small --reps 5 --json bench/out/tune.json',
    'qvla tune --linear-shape 1024x1024x1024 --classes "^gemm:f32:m1024:n1024:k1024$"   # one benchmark shape',
    'qvla tune --checkpoint /models/qwen-vla --weight-dtype f16 --out /tmp/tune.json',
  ],
};

export async function cmdTune(p: Parsed): Promise<number> {
  const ckpt = getString(p, 'checkpoint');
  const which = getString(p, 'config');
  if (ckpt && which) throw new UsageError('qvla tune: give --config or --checkpoint, not both');
  let cfg: QvlaConfig;
  if (ckpt) cfg = await loadQvlaConfig(path.join(ckpt, 'config.json'));
  else if (which === 'small') cfg = smallConfig();
  else if (which === 'tiny') cfg = await loadQvlaConfig(path.join(TINY_DIR, 'config.json'));
  else cfg = qwen35_4bConfig();
  const out = tuneFilePath(getString(p, 'out') ?? null);
  if (!out) throw new UsageError(`qvla tune: no table path (${TUNE_FILE_ENV} is off and no --out given)`);
  const known = tuneFamilies().map((f) => f.name);
  const fams = getList(p, 'family');
  for (const f of fams) if (!known.includes(f)) throw new UsageError(`qvla tune: unknown family '${f}' (known: ${known.join(', ')})`);
  const classes = getString(p, 'classes');
  const linearShapes = getList(p, 'linear-shape').map((v) => {
    const m = /^(rows:)?(\d+)x(\d+)x(\d+)$/.exec(v);
    if (!m || [m[2], m[3], m[4]].some((d) => Number(d) < 1)) throw new UsageError(`qvla tune: --linear-shape wants MxNxK or rows:MxNxK with positive sizes, got '${v}'`);
    return { M: Number(m[2]), N: Number(m[3]), K: Number(m[4]), rowStable: !!m[1] };
  });

  pinLpNumThreads();
  const gpu = await Gpu.create();
  try {
    for (const l of formatHeader(benchHeader(gpu))) console.log(l);
    console.log(`tuning for ${ckpt ?? which ?? 'full'} shapes; table ${out}`);
    const existing = (await readTuneTable(out)) ?? emptyTable();
    const fresh = emptyTable();
    const report = await tune(gpu, cfg, fresh, {
      families: fams.length ? fams : undefined,
      reps: getNumber(p, 'reps') ?? 3,
      prefillRows: getNumber(p, 'prefill-rows') ?? 600,
      weightDtype: (getString(p, 'weight-dtype') ?? 'f32') as 'f32' | 'f16',
      linearShapes,
      maxBytes: (getNumber(p, 'max-mib') ?? 1024) * 2 ** 20,
      classFilter: classes ? new RegExp(classes) : undefined,
      configFilter: getString(p, 'variants') ? new RegExp(getString(p, 'variants')!) : undefined,
      log: (l) => console.log(l),
    });
    const merged = mergeTables(existing, fresh);
    mkdirSync(path.dirname(path.resolve(out)), { recursive: true });
    // The table may hold other adapters' entries: replaced whole or not at all (an interrupted write loses nothing).
    await writeFileAtomic(out, (h) => h.writeFile(JSON.stringify(merged, null, 2) + '\n'));
    const n = Object.values(fresh.adapters[gpu.description] ?? {}).reduce((s, f) => s + Object.keys(f).length, 0);
    console.log(`wrote ${n} entr${n === 1 ? 'y' : 'ies'} for '${gpu.description}' to ${out}${report.skipped.length ? ` (${report.skipped.length} shape(s) skipped: --max-mib)` : ''}`);
    const json = getString(p, 'json');
    if (json) {
      mkdirSync(path.dirname(path.resolve(json)), { recursive: true });
      writeFileSync(json, JSON.stringify({ header: benchHeader(gpu), table: out, ...report }, null, 2) + '\n');
      console.log(`wrote ${json}`);
    }
    return 0;
  } finally {
    gpu.destroy();
  }
}
