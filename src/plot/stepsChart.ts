// `qvla bench steps`'s chart: sampling error vs cost, log-log, three panels (vs latency, vs network evaluations,
// vs steps N) and a legend with the observed convergence orders. Data: src/bench/steps.ts StepsReport.
import * as path from 'node:path';
import type { StepsReport, StepsRow, ConvergenceOrder } from '../bench/steps.js';
import { fe, fo } from '../bench/env.js';
import { PALETTE, type Item, type Scene } from './scene.js';

function decadeTicks(lo: number, hi: number): number[] {
  const out: number[] = [];
  for (let e = Math.floor(lo); e <= Math.ceil(hi); e++) out.push(e);
  return out;
}

function decadeLabel(e: number): string {
  if (e >= 0 && e <= 4) return String(10 ** e);
  if (e < 0 && e >= -3) return (10 ** e).toFixed(-e);
  return `1e${e}`;
}

const INK = '#222222', MUTED = '#666666', GRID_C = '#e3e3e3', FRAME_C = '#999999', FLOOR_C = '#bb4444';

function label(x: number, y: number, s: string, o: Partial<Extract<Item, { kind: 'text' }>> = {}): Item {
  return { kind: 'text', x, y, text: s, scale: 1, color: INK, anchor: 'start', baseline: 'bottom', ...o };
}

/** Tick positions (log10 units) and labels for a log axis over [lo, hi]: decades, plus 2 and 5 when it spans few. */
function logTicks(lo: number, hi: number, minor: boolean): { v: number; text: string }[] {
  const out: { v: number; text: string }[] = [];
  for (const e of decadeTicks(lo, hi)) {
    for (const m of minor ? [1, 2, 5] : [1]) {
      const v = e + Math.log10(m);
      if (v < lo - 1e-9 || v > hi + 1e-9) continue;
      out.push({ v, text: m === 1 ? decadeLabel(e) : String(+(10 ** v).toPrecision(2)) });
    }
  }
  return out;
}

interface Panel {
  left: number;
  title: string;
  xLabel: string;
  x: (row: StepsRow) => number;
}

/** "p 0.98 (N 1-32)" for the legend. */
function orderLegend(o: ConvergenceOrder | undefined): string {
  if (!o || o.order === null) return 'p n/a (under 2 N above the floor)';
  return `p ${o.order.toFixed(2)} (fit N ${o.fitSteps[0]}-${o.fitSteps.at(-1)})`;
}

/**
 * RMS error vs sampling latency, vs network evaluations and vs steps N (where the slope is −p), log-log, one line per solver,
 * markers labelled by N, the fitted order in the legend and the fit threshold (factor × reference floor) as a
 * red line when it lies in the plotted range. src/plot has no log axes, so values are plotted as log10 with
 * decade ticks labelled by value. A zero error is drawn at a floor a decade below the smallest non-zero one.
 */
export function stepsChart(r: StepsReport): Scene {
  const rows = r.rows.filter((x) => !x.reference && Number.isFinite(x.latencyMs) && x.latencyMs > 0);
  const PW = 520, LEG = 330, W = 3 * PW + LEG, Hh = 560;
  const T = 78, B = Hh - 60;
  const items: Item[] = [];
  const pos = rows.map((x) => x.rmsErr).filter((e) => e > 0);
  const floorErr = pos.length ? Math.min(...pos) / 10 : 1e-8;
  const ly = rows.map((x) => Math.log10(Math.max(x.rmsErr, floorErr)));
  let y0 = ly.length ? Math.floor(Math.min(...ly)) : -3;
  let y1 = ly.length ? Math.ceil(Math.max(...ly)) : 0;
  if (y1 <= y0) y1 = y0 + 1;
  const yMinor = y1 - y0 <= 2;
  const sy = (v: number) => B - ((v - y0) / (y1 - y0)) * (B - T);
  const solvers = [...new Set(rows.map((x) => x.solver))];
  const thr = r.floor ? r.floor.factor * r.floor.rms : 0;
  const thrV = thr > 0 ? Math.log10(thr) : NaN;
  const nObs = r.observations?.length ?? 1;
  const src = r.source === 'world' && r.world
    ? `${r.world.world}/${r.embodiment} level ${r.world.level}, ${nObs} observation${nObs === 1 ? '' : 's'} (eval seeds ${r.observations[0]!.seed}-${r.observations.at(-1)!.seed})`
    : `${r.embodiment}, image files, ${nObs} noise seed${nObs === 1 ? '' : 's'} from ${r.seed}`;
  const step = r.checkpointStep !== null && r.checkpointStep !== undefined ? ` (step ${r.checkpointStep})` : '';

  items.push(label(16, 12, 'Sampling error vs cost (log-log)', { scale: 2, baseline: 'top' }));
  items.push(label(16, 36, `${path.basename(r.checkpoint)}${step} / ${src}, ${r.grid} grid. y: RMS error (pooled) vs ${r.reference.solver} x ${r.reference.steps} over the valid ${r.chunk[0]}x${r.chunk[1]} normalised chunk; labels: steps N`, { color: MUTED, baseline: 'top' }));
  items.push(label(16, 50, 'latency: sampling only (noise upload, integrate, readback), median; each observation (prefill, decoder context) is encoded once', { color: MUTED, baseline: 'top' }));

  const panels: Panel[] = [
    { left: 0, title: 'vs latency', xLabel: 'sampling latency per chunk (ms, median)', x: (q) => q.latencyMs },
    { left: PW, title: 'vs network evaluations', xLabel: 'network evaluations (NFE)', x: (q) => q.evaluations },
    { left: 2 * PW, title: 'vs steps N (slope = -p)', xLabel: 'steps N', x: (q) => q.steps },
  ];
  for (const p of panels) {
    const L = p.left + 80, R = p.left + PW - 20;
    const lx = rows.map((q) => Math.log10(p.x(q)));
    let x0 = lx.length ? Math.floor(Math.min(...lx) * 2) / 2 : 0;
    let x1 = lx.length ? Math.ceil(Math.max(...lx) * 2) / 2 : 1;
    if (x1 - x0 < 0.5) x1 = x0 + 0.5;
    const sx = (v: number) => L + ((v - x0) / (x1 - x0)) * (R - L);
    for (const t of logTicks(x0, x1, x1 - x0 <= 4)) {
      const x = sx(t.v);
      items.push({ kind: 'line', points: [[x, T], [x, B]], color: GRID_C, width: 1 });
      items.push(label(x, B + 6, t.text, { anchor: 'middle', baseline: 'top', color: MUTED }));
    }
    for (const t of logTicks(y0, y1, yMinor)) {
      const y = sy(t.v);
      items.push({ kind: 'line', points: [[L, y], [R, y]], color: GRID_C, width: 1 });
      items.push(label(L - 6, y, t.text, { anchor: 'end', baseline: 'middle', color: MUTED }));
    }
    if (Number.isFinite(thrV) && thrV >= y0 && thrV <= y1) {
      const y = sy(thrV);
      items.push({ kind: 'line', points: [[L, y], [R, y]], color: FLOOR_C, width: 1 });
      items.push(label(L + 4, y - 2, `fit threshold: ${r.floor.factor} x ref floor`, { color: FLOOR_C }));
    }
    items.push({ kind: 'rect', x: L, y: T, w: R - L, h: B - T, stroke: FRAME_C, strokeWidth: 1 });
    items.push(label((L + R) / 2, B + 24, p.xLabel, { anchor: 'middle', baseline: 'top', color: MUTED }));
    items.push(label(L, T - 6, `RMS error ${p.title}`, { baseline: 'bottom' }));
    solvers.forEach((s, i) => {
      const color = PALETTE[i % PALETTE.length]!;
      const pts = rows.map((q, k) => ({ q, k })).filter(({ q }) => q.solver === s).sort((a, b) => a.q.steps - b.q.steps);
      const xy: [number, number][] = pts.map(({ k }) => [sx(lx[k]!), sy(ly[k]!)]);
      if (xy.length > 1) items.push({ kind: 'line', points: xy, color, width: 2 });
      pts.forEach(({ q }, j) => {
        const [px, py] = xy[j]!;
        items.push({ kind: 'circle', cx: px, cy: py, r: 3.5, fill: color });
        items.push(label(px + 5, py - 3, String(q.steps), { color }));
      });
    });
  }
  const LX = 3 * PW + 10;
  items.push(label(LX, T - 6, 'observed order p (RMS err ~ N^-p)', { baseline: 'bottom' }));
  solvers.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length]!;
    const y = T + 10 + i * 52;
    const o = r.orders?.find((x) => x.solver === s);
    items.push({ kind: 'line', points: [[LX, y], [LX + 24, y]], color, width: 2 });
    items.push({ kind: 'circle', cx: LX + 12, cy: y, r: 3.5, fill: color });
    items.push(label(LX + 30, y, `${s}: ${orderLegend(o)}`, { baseline: 'middle' }));
    const obs = o?.orderObs.filter((v): v is number => v !== null) ?? [];
    const ci = r.control ? r.control.solvers.indexOf(s) : -1;
    const extra = [
      obs.length > 1 ? `per obs ${Math.min(...obs).toFixed(2)}..${Math.max(...obs).toFixed(2)}` : '',
      o?.tailOrder !== null && o?.tailOrder !== undefined ? `last 3 N ${o.tailOrder.toFixed(2)}` : '',
    ].filter(Boolean).join(', ');
    if (extra) items.push(label(LX + 30, y + 14, extra, { baseline: 'middle', color: MUTED }));
    if (ci >= 0) items.push(label(LX + 30, y + 28, `smooth control field: p ${fo(r.control!.orders[ci]!.order)}`, { baseline: 'middle', color: MUTED }));
  });
  let ny = T + 14 + solvers.length * 52;
  if (r.floor) {
    items.push(label(LX, ny, `ref floor: rms(${r.reference.solver} x ${r.floor.steps} - x ${r.reference.steps}) = ${fe(r.floor.rms)}`, { baseline: 'top', color: MUTED }));
    ny += 14;
  }
  if (rows.some((x) => x.rmsErr <= 0)) items.push(label(LX, ny, `0 drawn at ${floorErr.toExponential(0)}`, { baseline: 'top', color: MUTED }));
  return { width: W, height: Hh, background: '#ffffff', items };
}

