// Long-running steady-state soak of Policy.act() (the engine is src/bench/soak.ts):
//
//   npm run build && node --expose-gc dist/tools/soak.js --calls 10000
//
// Options: --calls N (measured calls, default 10000), --max-minutes M (stop early, reported), --window K
// (latency window, default calls/20), --sample-every K, --seed S, --weights DIR (default weights/tiny),
// --warmup-extra N, --stage-timings (sync between stages, as the default Policy does), --small (fewer
// scenarios), --json FILE (the full report), --plot FILE (.svg / .png: latency and memory over the calls),
// --from-json FILE (print and plot a saved report instead of running), bounds: --max-heap-growth-mb, --max-rss-growth-mb,
// --max-external-growth-mb, --max-p50-drift, --max-p99-drift (0 = not checked), --max-new-buffers.
// Prints the per-window latency and the memory samples as it goes, then PASS/FAIL per check; exits 1 on FAIL.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { writeFileAtomic } from '../src/io/safetensorsWriter.js';
import { plotFormat, writePlot } from '../src/plot/index.js';
import { DEFAULT_BOUNDS, formatSoakReport, runSoak, soakChart, type SoakBounds, type SoakReport } from '../src/bench/soak.js';
import { TINY_DIR } from '../src/testing/fixtures.js';

const OPTIONS = {
  calls: { type: 'string', default: '10000' },
  'max-minutes': { type: 'string' },
  window: { type: 'string' },
  'sample-every': { type: 'string' },
  seed: { type: 'string', default: '1' },
  weights: { type: 'string', default: TINY_DIR },
  'warmup-extra': { type: 'string' },
  'stage-timings': { type: 'boolean', default: false },
  small: { type: 'boolean', default: false },
  json: { type: 'string' },
  plot: { type: 'string' },
  'from-json': { type: 'string' },
  'max-heap-growth-mb': { type: 'string' },
  'max-rss-growth-mb': { type: 'string' },
  'max-external-growth-mb': { type: 'string' },
  'max-p50-drift': { type: 'string' },
  'max-p99-drift': { type: 'string' },
  'max-new-buffers': { type: 'string' },
  help: { type: 'boolean', short: 'h', default: false },
} as const;
type Args = ReturnType<typeof parseArgs<{ options: typeof OPTIONS }>>['values'];

/** A bad command line or input file: printed as one line, without a stack. */
class UsageError extends Error {}

/** A report saved by --json (re-printed and re-plotted without running). */
function readReport(file: string): SoakReport {
  let report: SoakReport;
  try {
    report = JSON.parse(readFileSync(file, 'utf8')) as SoakReport;
  } catch (e) {
    throw new UsageError(`--from-json ${file}: cannot read a soak report: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (!Array.isArray(report.windows) || !Array.isArray(report.samples) || report.samples.length === 0 || !Array.isArray(report.checks)) {
    throw new UsageError(`--from-json ${file}: not a soak report (needs windows, samples and checks, as written by --json)`);
  }
  return report;
}

async function runFromArgs(values: Args): Promise<SoakReport> {
  const num = (name: string, v: string | undefined): number | undefined => {
    if (v === undefined) return undefined;
    const x = Number(v);
    if (!Number.isFinite(x) || x < 0) throw new UsageError(`--${name} must be a non-negative number, got ${v}`);
    return x;
  };
  const bounds: Partial<SoakBounds> = {};
  const b = (k: keyof SoakBounds, name: string, drift = false) => {
    const x = num(name, values[name as keyof typeof values] as string | undefined);
    if (x !== undefined) (bounds as Record<string, number | null>)[k] = drift && x === 0 ? null : x;
  };
  b('heapGrowthMB', 'max-heap-growth-mb');
  b('rssGrowthMB', 'max-rss-growth-mb');
  b('externalGrowthMB', 'max-external-growth-mb');
  b('p50Drift', 'max-p50-drift', true);
  b('p99Drift', 'max-p99-drift', true);
  b('newBuffers', 'max-new-buffers');
  if (!(globalThis as { gc?: unknown }).gc) console.log('WARNING: run with node --expose-gc for heap numbers after garbage collection');
  const calls = num('calls', values.calls)!;
  console.log(`soak: ${calls} calls on ${values.weights}; bounds ${JSON.stringify({ ...DEFAULT_BOUNDS, ...bounds })}`);
  return runSoak({
    weights: values.weights!,
    calls,
    maxMinutes: num('max-minutes', values['max-minutes']),
    window: num('window', values.window),
    sampleEvery: num('sample-every', values['sample-every']),
    seed: num('seed', values.seed),
    warmupExtra: num('warmup-extra', values['warmup-extra']),
    stageTimings: values['stage-timings'],
    small: values.small,
    bounds,
    log: (l) => console.log(l),
  });
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: OPTIONS });
  if (values.help) {
    console.log('usage: node --expose-gc dist/tools/soak.js [--calls 10000] [--max-minutes M] [--window K] [--seed S] [--weights DIR] [--json FILE] [--plot FILE] [--small] [--stage-timings]\n' +
      '       node dist/tools/soak.js --from-json FILE [--plot FILE]');
    return 0;
  }
  // Checked before an hour-long run, not after it.
  if (values.plot && !plotFormat(values.plot)) throw new UsageError(`--plot must name a .svg or .png file, got ${values.plot}`);
  const report = values['from-json'] ? readReport(values['from-json']) : await runFromArgs(values);
  console.log(formatSoakReport(report));
  // tmp + rename: an interrupted write never leaves a truncated report behind
  if (values.json) await writeFileAtomic(values.json, (h) => h.writeFile(JSON.stringify(report, null, 2)));
  if (values.plot) {
    await writePlot(values.plot, soakChart(report));
    console.log(`wrote ${values.plot}`);
  }
  return report.pass ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    if (e instanceof UsageError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) console.error(`soak: ${(e as Error).message}`);
    else console.error(e instanceof Error ? e.stack ?? e.message : String(e));
    process.exit(2);
  },
);
