// qvla bench: a dispatch table to the benchmark modules (under src/bench/, loaded on demand).
//
// Every benchmark module exports its command the way src/cli/ commands do: a `CommandSpec` (its options and
// help) and a run function `(args: string[]) => Promise<number>` (returning the exit code), under the names its
// entry below gives. `kernels` adapts src/bench/ops.ts's API (parseOpBenchArgs + runOpBench(options) +
// OP_BENCH_USAGE), which has no spec yet.
import { HELP_OPT, UsageError, formatHelp, type CommandSpec } from './args.js';

type BenchFn = (args: string[]) => Promise<number>;
type Mod = Record<string, unknown>;

export interface BenchEntry {
  /** Module path relative to this file's directory (compiled: dist/src/cli/ → dist/src/bench/). */
  module: string;
  summary: string;
  /** The entry point found in the loaded module, or null. */
  entry(mod: Mod): BenchFn | null;
  /** What `entry` looks for (for the error message). */
  wants: string;
}

/** A benchmark module exporting `specName: CommandSpec` and `runName: (args) => Promise<number>`. */
function command(specName: string, runName: string): Pick<BenchEntry, 'entry' | 'wants'> {
  return {
    wants: `${specName} (a CommandSpec) and ${runName} as (args: string[]) => Promise<number>`,
    entry: (mod) => {
      const spec = mod[specName] as CommandSpec | undefined;
      return spec && typeof spec.name === 'string' && typeof mod[runName] === 'function' ? (mod[runName] as BenchFn) : null;
    },
  };
}

function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0]!;
}

const kernels: BenchEntry = {
  module: '../bench/ops.js',
  summary: 'per-kernel GPU timings vs measured peaks (src/bench/ops.ts)',
  wants: 'runOpBench(options) (and parseOpBenchArgs(args))',
  entry: (mod) => {
    const run = mod['runOpBench'];
    if (typeof run !== 'function') return null;
    const parse = mod['parseOpBenchArgs'];
    const usage = typeof mod['OP_BENCH_USAGE'] === 'string' ? (mod['OP_BENCH_USAGE'] as string) : '';
    return async (args: string[]) => {
      if (args.includes('-h') || args.includes('--help')) {
        process.stdout.write(`usage: qvla bench kernels [options]\n\n${usage}\n`);
        return 0;
      }
      let opts: unknown = {};
      if (typeof parse === 'function') {
        try {
          opts = (parse as (a: string[]) => unknown)(args);
        } catch (e) {
          throw new UsageError(`qvla bench kernels: ${firstLine(e)}; see 'qvla bench kernels --help'`);
        }
      } else if (args.length > 0) {
        throw new UsageError('qvla bench kernels takes no options in this build');
      }
      await (run as (o: unknown) => Promise<unknown>)(opts);
      return 0;
    };
  },
};

export const BENCHES: Record<string, BenchEntry> = {
  kernels,
  e2e: { module: '../bench/e2e.js', summary: 'end-to-end act() latency per stage (src/bench/e2e.ts)', ...command('E2E_SPEC', 'runE2eBench') },
  steps: { module: '../bench/steps.js', summary: 'latency and action error vs denoising steps / solver (src/bench/steps.ts)', ...command('STEPS_SPEC', 'runStepsBench') },
  batch: { module: '../bench/batch.js', summary: 'Policy.actBatch(B) vs B sequential act() calls (src/bench/batch.ts)', ...command('BATCH_SPEC', 'runBatchBench') },
  serve: { module: '../bench/serve.js', summary: 'qvla serve throughput and p50/p99 latency vs clients, batched vs unbatched (src/bench/serve.ts)', ...command('SERVE_BENCH_SPEC', 'runServeBench') },
};

export const BENCH_SPEC: CommandSpec = {
  name: 'bench',
  usage: 'bench <kernels|e2e|steps|batch|serve> [benchmark options]',
  summary: 'Benchmarks. `qvla bench <name> --help` shows the options of one benchmark.',
  description: `benchmarks:\n${Object.entries(BENCHES).map(([k, b]) => `  ${k.padEnd(10)}${b.summary}`).join('\n')}`,
  options: [HELP_OPT],
};

function sourceOf(b: BenchEntry): string {
  return b.module.replace(/^\.\.\//, 'src/').replace(/\.js$/, '.ts');
}

/** Loads a benchmark's entry point; null when its module is not built. */
export async function loadBench(name: string): Promise<BenchFn | null> {
  const b = BENCHES[name];
  if (!b) throw new UsageError(`qvla bench: unknown benchmark ${JSON.stringify(name)} (known: ${Object.keys(BENCHES).join(', ')})`);
  const url = new URL(b.module, import.meta.url);
  let mod: Mod;
  try {
    mod = (await import(url.href)) as Mod;
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    // Only "this very module is missing" means not built; a missing dependency of it is a real error.
    const base = url.pathname.split('/').pop()!;
    if (err.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes(`/bench/${base}'`)) return null;
    throw e;
  }
  const fn = b.entry(mod);
  if (!fn) throw new Error(`${sourceOf(b)} is there but exports no ${b.wants}`);
  return fn;
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
    process.stderr.write(`qvla bench ${name}: not built (${sourceOf(BENCHES[name]!)} is not there yet, or run \`npm run build\`)\n`);
    return 1;
  }
  return fn(argv.slice(1));
}
