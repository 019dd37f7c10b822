// Training curves of a tools/train run as one PNG/SVG (our own plot code: no matplotlib on these machines).
//   npm run build && node dist/tools/train/plot_run.js RUN_DIR OUT.png
// Panels: flow-matching and VQA text loss (training batches, mean per 50 steps), then the held-out sampled-chunk
// MSE per world (val.csv) with and without images, against the 'blind' level (2 × the mean-chunk MSE); with the
// auxiliary localisation loss (--aux-weight), its total and the object-cell accuracy.
import { promises as fsp } from 'node:fs';
import * as nodePath from 'node:path';
import { panelChart, type Panel, type Series } from '../../src/plot/charts.js';
import { writePlot } from '../../src/plot/index.js';

function parseCsv(text: string): Record<string, string>[] {
  // Python's csv module ends rows with \r\n
  const [head, ...rows] = text.trim().split(/\r?\n/);
  const keys = head!.split(',').map((k) => k.trim());
  return rows.map((r) => Object.fromEntries(r.split(',').map((v, i) => [keys[i]!, v.trim()])));
}

function binned(rows: Record<string, string>[], key: string, every = 50): [number, number][] {
  const out: [number, number][] = [];
  for (let i = 0; i < rows.length; i += every) {
    // an empty cell (no text loss on that step) is not a zero
    const vals = rows.slice(i, i + every).map((r) => r[key]).filter((v) => v !== undefined && v !== '').map(Number).filter(Number.isFinite);
    if (vals.length) out.push([Number(rows[Math.min(i + every, rows.length) - 1]!['step']), vals.reduce((a, b) => a + b, 0) / vals.length]);
  }
  return out;
}

async function main(): Promise<void> {
  const [run, out] = process.argv.slice(2);
  if (!run || !out) {
    process.stderr.write('usage: node dist/tools/train/plot_run.js RUN_DIR OUT.png|OUT.svg\n');
    process.exit(2);
  }
  const log = parseCsv(await fsp.readFile(nodePath.join(run, 'log.csv'), 'utf8'));
  const panels: Panel[] = [
    { label: 'train loss', series: [{ name: 'flow matching', points: binned(log, 'fm_loss') }, { name: 'VQA text', points: binned(log, 'text_loss') }] },
  ];
  // runs with the auxiliary localisation loss (tools/train/qvla_train/aux.py): its total and the cell accuracy
  if (log.some((r) => r['aux_loss'] !== undefined && r['aux_loss'] !== '')) {
    panels.push({ label: 'aux localisation', series: [{ name: 'aux loss', points: binned(log, 'aux_loss') }, { name: 'cell accuracy', points: binned(log, 'aux_cell_acc') }] });
  }
  const valPath = nodePath.join(run, 'val.csv');
  const val = parseCsv(await fsp.readFile(valPath, 'utf8').catch(() => 'step,group\n'));
  const groups = [...new Set(val.map((r) => r['group']!))].filter((g) => g && g !== 'all');
  for (const g of groups) {
    const rows = val.filter((r) => r['group'] === g);
    const s = (key: string, name: string, scale = 1): Series => ({ name, points: rows.map((r) => [Number(r['step']), scale * Number(r[key])] as [number, number]) });
    panels.push({ label: `${g} val MSE`, series: [s('mse', 'with images'), s('mse_t2a', 'images removed'), s('base', 'blind', 2)] });
  }
  await writePlot(out, panelChart({ title: `training run ${nodePath.basename(nodePath.resolve(run))}`, subtitle: 'val: sampled-chunk MSE (normalised units) on held-out episodes; blind = 2 x the mean-chunk MSE', panels, xLabel: 'step' }));
  process.stdout.write(`${out}\n`);
}

main().catch((e) => {
  process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
