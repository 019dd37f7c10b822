// A rate chart: success rate (0–100 %) against a cost such as network evaluations, one line per series with
// optional interval whiskers (e.g. Wilson 95 %), horizontal reference lines (e.g. the scripted expert) and the
// legend in a column on the right. The x axis is log₂ (ticks at powers of two) when every x > 0, unless told otherwise.
import { PALETTE, type Color, type Item, type Scene } from './scene.js';
import { formatTick, niceTicks } from './charts.js';
import { textWidth } from './font5x7.js';

const INK = '#222222';
const MUTED = '#666666';
const GRID = '#e3e3e3';
const FRAME = '#999999';

export interface RatePoint {
  x: number;
  /** rate in [0, 1] */
  y: number;
  /** interval ends in [0, 1] (whiskers) */
  lo?: number;
  hi?: number;
}

export interface RateSeries {
  name: string;
  points: RatePoint[];
  color?: Color;
}

export interface RateChartInput {
  title: string;
  subtitle?: string;
  series: RateSeries[];
  /** Horizontal lines across the plot (rate in [0, 1]), drawn grey and named in the legend. */
  references?: { name: string; y: number }[];
  xLabel: string;
  yLabel?: string;
  /** log₂ x axis (default: true when every x > 0). */
  logX?: boolean;
}

function text(x: number, y: number, s: string, opts: Partial<Extract<Item, { kind: 'text' }>> = {}): Item {
  return { kind: 'text', x, y, text: s, scale: 1, color: INK, anchor: 'start', baseline: 'bottom', ...opts };
}

function line(points: [number, number][], color: string, width = 1): Item {
  return { kind: 'line', points, color, width };
}

export function rateChart(inp: RateChartInput): Scene {
  const pts = inp.series.flatMap((s) => s.points).filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
  if (pts.length === 0 && (inp.references ?? []).length === 0) throw new Error('plot: rateChart needs at least one finite point or reference');
  const xsRaw = pts.map((p) => p.x);
  const xMin = xsRaw.length ? Math.min(...xsRaw) : 1, xMax = xsRaw.length ? Math.max(...xsRaw) : 1;
  const logX = inp.logX ?? xMin > 0;
  if (logX && xMin <= 0) throw new Error('plot: a log x axis needs x > 0');
  const fx = (x: number) => (logX ? Math.log2(x) : x);

  const legend: { name: string; color: Color }[] = [
    ...inp.series.map((s, k) => ({ name: s.name, color: s.color ?? PALETTE[k % PALETTE.length]! })),
    ...(inp.references ?? []).map((r) => ({ name: r.name, color: '#9a9a9a' })),
  ];
  const LEG = Math.min(320, Math.max(120, ...legend.map((l) => textWidth(l.name) + 34)));
  const PW = 560, PH = 340, TOP = inp.subtitle ? 56 : 42, PAD = 12;
  const L = PAD + 56, R = L + PW, T = TOP + 14, B = T + PH;
  const width = R + 16 + LEG + PAD;
  const height = Math.max(B + 44, T + legend.length * 16 + 10) + PAD;
  const items: Item[] = [];
  items.push(text(PAD, 10, inp.title, { scale: 2, baseline: 'top' }));
  if (inp.subtitle) items.push(text(PAD, 32, inp.subtitle, { color: MUTED, baseline: 'top' }));

  // x axis
  let x0: number, x1: number;
  const xTicks: { v: number; label: string }[] = [];
  if (logX) {
    x0 = Math.floor(fx(xMin));
    x1 = Math.ceil(fx(xMax));
    // at least two octaves, widened downwards while that stays ≥ 1 (a single value ends up in the middle)
    while (x1 - x0 < 2) {
      if (x0 > 0) x0--;
      if (x1 - x0 < 2) x1++;
    }
    const every = Math.max(1, Math.ceil((x1 - x0) / 8));
    for (let e = x0; e <= x1; e += every) xTicks.push({ v: e, label: String(2 ** e) });
  } else {
    const xt = niceTicks(Math.min(0, xMin), xMax, 6);
    x0 = xt.ticks[0]!;
    x1 = xt.ticks[xt.ticks.length - 1]!;
    for (const t of xt.ticks) xTicks.push({ v: t, label: formatTick(t, xt.step) });
  }
  const span = x1 - x0 || 1;
  // a little room left and right so markers and whiskers at the ends stay inside the frame
  const sx = (v: number) => L + 10 + ((fx(v) - x0) / span) * (R - L - 20);
  const sxRaw = (e: number) => L + 10 + ((e - x0) / span) * (R - L - 20);
  const sy = (v: number) => B - Math.max(0, Math.min(1, v)) * (B - T);

  for (let k = 0; k <= 5; k++) {
    const v = k / 5, y = sy(v);
    items.push(line([[L, y], [R, y]], GRID, 1));
    items.push(text(L - 5, y, `${Math.round(v * 100)}%`, { anchor: 'end', baseline: 'middle', color: MUTED }));
  }
  for (const t of xTicks) {
    const x = sxRaw(t.v);
    items.push(line([[x, T], [x, B]], GRID, 1));
    items.push(line([[x, B], [x, B + 4]], FRAME, 1));
    items.push(text(x, B + 7, t.label, { anchor: 'middle', baseline: 'top', color: MUTED }));
  }
  items.push({ kind: 'rect', x: L, y: T, w: R - L, h: B - T, stroke: FRAME, strokeWidth: 1 });
  items.push(text(R, B + 22, `${inp.xLabel}${logX ? ' (log2 scale)' : ''}`, { anchor: 'end', baseline: 'top', color: MUTED }));
  items.push(text(L, T - 4, inp.yLabel ?? 'success rate'));

  for (const r of inp.references ?? []) {
    if (Number.isFinite(r.y)) items.push(line([[L, sy(r.y)], [R, sy(r.y)]], '#9a9a9a', 2));
  }
  inp.series.forEach((s, k) => {
    const color = legend[k]!.color;
    const ps = s.points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y) && (!logX || p.x > 0)).sort((a, b) => a.x - b.x);
    // whiskers first, nudged sideways per series so overlapping intervals stay readable
    const nudge = (k - (inp.series.length - 1) / 2) * Math.min(3, 12 / Math.max(1, inp.series.length));
    for (const p of ps) {
      if (p.lo === undefined || p.hi === undefined || !Number.isFinite(p.lo) || !Number.isFinite(p.hi)) continue;
      const x = sx(p.x) + nudge, ylo = sy(p.lo), yhi = sy(p.hi);
      items.push(line([[x, ylo], [x, yhi]], color, 1));
      items.push(line([[x - 3, ylo], [x + 3, ylo]], color, 1));
      items.push(line([[x - 3, yhi], [x + 3, yhi]], color, 1));
    }
    const xy = ps.map((p): [number, number] => [sx(p.x) + nudge, sy(p.y)]);
    if (xy.length > 1) items.push(line(xy, color, 2));
    for (const [x, y] of xy) items.push({ kind: 'circle', cx: x, cy: y, r: 3, fill: color });
  });

  const lx = R + 16;
  legend.forEach((l, k) => {
    const y = T + 6 + k * 16;
    items.push(line([[lx, y], [lx + 14, y]], l.color, 2));
    items.push(text(lx + 20, y, l.name, { baseline: 'middle', color: INK }));
  });
  return { width, height, background: '#ffffff', items };
}
