#!/usr/bin/env node
// Short text summary (stdout) + DIR/summary.json of a bench/gpu/run.sh output directory: the adapter, each step's
// exit status and time, the tuned winners, the kernel table (% of measured peak), e2e latencies, and the rivals
// side by side (ours vs the best rival per case, ratio of medians). Reads only what the steps wrote; a missing
// or failed step shows as such.
//   node bench/gpu/summarize.mjs DIR [--dry-run]
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const dir = process.argv[2];
const dry = process.argv.includes('--dry-run');
if (!dir) { console.error('usage: node bench/gpu/summarize.mjs DIR [--dry-run]'); process.exit(2); }
const read = (f) => { try { return JSON.parse(readFileSync(path.join(dir, f), 'utf8')); } catch { return null; } };
const f2 = (x) => (x === undefined || x === null || !Number.isFinite(x) ? '-' : x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
const out = [];
const summary = { dir, dryRun: dry, steps: [], tune: [], kernels: [], e2e: [], rivals: [] };
const say = (l = '') => out.push(l);

say(`${dry ? 'DRY RUN (reduced sizes) — ' : ''}bench/gpu/run.sh summary: ${dir}`);
const dev = existsSync(path.join(dir, 'device.txt')) ? readFileSync(path.join(dir, 'device.txt'), 'utf8').split('\n').filter((l) => l && !l.startsWith('Warning')).slice(0, 2).join(' | ') : '?';
say(`adapter: ${dev}`);
if (existsSync(path.join(dir, 'steps.tsv'))) {
  const steps = readFileSync(path.join(dir, 'steps.tsv'), 'utf8').trim().split('\n').filter(Boolean).map((l) => l.split('\t'));
  summary.steps = steps.map(([name, rc, s]) => ({ name, rc, seconds: Number(s) }));
  say(`steps: ${steps.map(([n, rc, s]) => `${n} ${rc === '0' ? 'ok' : rc === '124' ? 'TIMEOUT' : `exit ${rc}`} ${s ?? ''}s`).join(', ')}`);
}

const tune = read('tune-report.json');
if (tune) {
  const best = tune.rows.filter((r) => r.best);
  summary.tune = best;
  say('');
  say(`tune: ${best.length} shape classes, ${tune.rows.length} candidate timings${tune.skipped?.length ? `, ${tune.skipped.length} skipped` : ''}`);
  for (const r of best.slice(0, 12)) {
    const rest = tune.rows.filter((x) => x.shapeClass === r.shapeClass && x.ms !== null && !x.best).map((x) => x.ms);
    const second = rest.length ? Math.min(...rest) : null;
    say(`  ${r.shapeClass.padEnd(28)} ${r.config.padEnd(26)} ${f2(r.ms)} ms${second ? `  (next ${f2(second)} ms)` : ''}`);
  }
  if (best.length > 12) say(`  … ${best.length - 12} more in tune-report.json`);
}

const k = read('kernels.json');
if (k) {
  say('');
  say(`kernels${k.peaks ? ` (peaks: ${f2(k.peaks.gflops)} GFLOPS, ${f2(k.peaks.gbps)} GB/s)` : ''}:`);
  for (const r of k.rows) {
    summary.kernels.push({ name: r.name, ms: r.time.median, gflops: r.gflops, gbps: r.gbps, bound: r.bound, peakFraction: r.peakFraction });
    say(`  ${r.name.slice(0, 58).padEnd(58)} ${f2(r.time.median).padStart(8)} ms  ${f2(r.gflops)} GFLOPS  ${f2(r.gbps)} GB/s  ${r.peakFraction !== undefined ? `${f2(100 * r.peakFraction)} % of ${r.bound} peak` : ''}`);
  }
}

for (const f of ['e2e.json', 'e2e-small.json']) {
  const e = read(f);
  if (!e) continue;
  say('');
  say(`${f.replace('.json', '')} (${e.weightDtype} weights):`);
  for (const c of e.configs) {
    const p = c.fast?.total ?? c.staged?.stages?.total;
    const row = { config: c.config, dir: c.dir, loadMs: c.loadMs, coldMs: c.cold?.totalMs, p50: p?.p50, p90: p?.p90, calls: c.fast?.calls ?? c.staged?.calls };
    summary.e2e.push(row);
    say(`  ${c.config} ${c.dir}: load ${f2(c.loadMs)} ms, cold act ${f2(c.cold?.totalMs)} ms, act p50 ${f2(p?.p50)} ms p90 ${f2(p?.p90)} ms over ${row.calls} calls`);
  }
}

const rv = read('rivals.json');
if (rv) {
  say('');
  say(`rivals side by side (${rv.reps} reps, medians of wall time${rv.peaks ? `; peaks in this run: ${f2(rv.peaks.gflops)} GFLOPS, ${f2(rv.peaks.gbps)} GB/s` : ''}):`);
  const cases = [...new Set(rv.results.map((r) => r.case))];
  for (const c of cases) {
    const rs = rv.results.filter((r) => r.case === c && r.wall);
    const ours = rs.find((r) => r.engine === 'ours');
    const rivals = rs.filter((r) => r.engine !== 'ours' && r.engine !== 'ort-node cpu');
    const best = rivals.sort((a, b) => a.wall.median - b.wall.median)[0];
    const ratio = ours && best ? best.wall.median / ours.wall.median : null;
    summary.rivals.push({ case: c, ours: ours?.wall.median ?? null, bestRival: best?.engine ?? null, bestRivalMs: best?.wall.median ?? null, ratio, oursPctFmaPeak: ours?.pctFmaPeak, oursPctReadPeak: ours?.pctReadPeak });
    say(`  ${c.padEnd(52)} ours ${f2(ours?.wall.median)} ms  best WebGPU rival ${best ? `${best.engine} ${f2(best.wall.median)} ms` : '-'}  rival/ours ${f2(ratio)}${ours?.pctFmaPeak !== undefined ? `  (ours ${f2(ours.pctFmaPeak)} % FMA peak)` : ''}`);
  }
}
writeFileSync(path.join(dir, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
console.log(out.join('\n'));
