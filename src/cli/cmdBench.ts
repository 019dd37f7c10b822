// qvla bench: a dispatch table to the benchmark modules (written separately, under src/bench/).
// A module plugs in by existing and exporting `(args: string[]) => Promise<number>` (the exit code) under one
// of the names listed in BENCHES (first match wins; `default` also works).
import { HELP_OPT, UsageError, formatHelp, type CommandSpec } from './args.js';

export interface BenchEntry {
  /** Module path relative to this file's directory (compiled: dist/src/cli/). */
  module: string;
  /** Export names tried in order. */
  exports: string[];
  summary: string;
}

export const BENCHES: Record<string, BenchEntry> = {
  kernels: { module: '../bench/ops.js', exports: ['runOpBench', 'run', 'default'], summary: 'per-kernel GPU timings (src/bench/ops.ts)' },
  e2e: { module: '../bench/e2e.js', exports: ['runE2eBench', 'runE2E', 'run', 'default'], summary: 'end-to-end act() latency (src/bench/e2e.ts)' },
  steps: { module: '../bench/steps.js', exports: ['runStepsBench', 'runSteps', 'run', 'default'], summary: 'latency and action error vs denoising steps / solver (src/bench/steps.ts)' },
};

export const BENCH_SPEC: CommandSpec = {
  name: 'bench',
  usage: 'bench <kernels|e2e|steps> [benchmark options]',
  summary: 'Benchmarks. `qvla bench <name> --help` shows the options of one benchmark.',
  description: `benchmarks:\n${Object.entries(BENCHES).map(([k, b]) => `  ${k.padEnd(10)}${b.summary}`).join('\n')}`,
  options: [HELP_OPT],
};

type BenchFn = (args: string[]) => Promise<number>;

/** Loads a benchmark's entry point; null when its module is not built. */
export async function loadBench(name: string): Promise<BenchFn | null> {
  const b = BENCHES[name];
  if (!b) throw new UsageError(`qvla bench: unknown benchmark ${JSON.stringify(name)} (known: ${Object.keys(BENCHES).join(', ')})`);
  const url = new URL(b.module, import.meta.url);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(url.href)) as Record<string, unknown>;
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if ((err.code === 'ERR_MODULE_NOT_FOUND' || err.code === 'ERR_LOAD_URL') && String(err.message).includes(url.pathname.split('/').pop()!.replace(/\.js$/, ''))) return null;
    throw e;
  }
  for (const k of b.exports) if (typeof mod[k] === 'function') return mod[k] as BenchFn;
  throw new Error(`${b.module.replace(/^\.\.\//, 'src/').replace(/\.js$/, '.ts')} exports none of ${b.exports.join(', ')} as a function (args: string[]) => Promise<number>`);
}

export async function cmdBench(argv: string[]): Promise<number> {
  const name = argv[0];
  if (name === '-h' || name === '--help') {
    process.stdout.write(formatHelp(BENCH_SPEC));
    return 0;
  }
  if (name === undefined || name.startsWith('-')) {
    throw new UsageError(`qvla bench: name a benchmark first (${Object.keys(BENCHES).join(', ')}); see 'qvla bench --help'`);
  }
  const fn = await loadBench(name);
  if (!fn) {
    const src = BENCHES[name]!.module.replace(/^\.\.\//, 'src/').replace(/\.js$/, '.ts');
    process.stderr.write(`qvla bench ${name}: not built (${src} is not there yet, or run \`npm run build\`)\n`);
    return 1;
  }
  return fn(argv.slice(1));
}
