// The charts qvla draws: action channels over a chunk (one small line plot per named channel), navigation
// waypoints on the ground plane (x forward = up, y left = left, yaw arrows), and stacked panels of (x, y)
// series with a shared x axis (soak latency / memory over calls).
import { PALETTE, type Color, type Item, type Scene } from './scene.js';
import { textWidth } from './font5x7.js';

const INK = '#222222';
const MUTED = '#666666';
const GRID = '#e3e3e3';
const FRAME = '#999999';

/** About `count` round tick values covering [lo, hi]; returns the ticks and their step. */
export function niceTicks(lo: number, hi: number, count = 5): { ticks: number[]; step: number } {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return { ticks: [0], step: 1 };
  if (hi < lo) [lo, hi] = [hi, lo];
  if (hi === lo) {
    const d = lo === 0 ? 1 : Math.abs(lo) * 0.1;
    lo -= d;
    hi += d;
  }
  const raw = (hi - lo) / Math.max(1, count);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const r = raw / mag;
  const step = (r <= 1 ? 1 : r <= 2 ? 2 : r <= 2.5 ? 2.5 : r <= 5 ? 5 : 10) * mag;
  const start = Math.floor(lo / step + 1e-9) * step;
  const end = Math.ceil(hi / step - 1e-9) * step;
  const ticks: number[] = [];
  for (let k = 0, v = start; v <= end + step * 1e-6 && k < 1000; k++, v = start + k * step) ticks.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return { ticks, step };
}

/** A tick label with just enough decimals for `step`. */
export function formatTick(v: number, step: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-4) return v.toExponential(1);
  const dec = Math.min(6, Math.max(0, -Math.floor(Math.log10(step) + 1e-9) + (step / Math.pow(10, Math.floor(Math.log10(step) + 1e-9)) === 2.5 ? 1 : 0)));
  return v.toFixed(dec);
}

function text(x: number, y: number, s: string, opts: Partial<Extract<Item, { kind: 'text' }>> = {}): Item {
  return { kind: 'text', x, y, text: s, scale: 1, color: INK, anchor: 'start', baseline: 'bottom', ...opts };
}

function line(points: [number, number][], color: string, width = 1): Item {
  return { kind: 'line', points, color, width };
}

/** Horizontal grid lines at the y ticks across [L, R], labelled left of L. */
function yGrid(items: Item[], yt: { ticks: number[]; step: number }, L: number, R: number, sy: (v: number) => number): void {
  for (const t of yt.ticks) {
    const y = sy(t);
    items.push(line([[L, y], [R, y]], GRID, 1));
    items.push(text(L - 5, y, formatTick(t, yt.step), { anchor: 'end', baseline: 'middle', color: MUTED }));
  }
}

export interface ChannelChartInput {
  title: string;
  subtitle?: string;
  /** One per channel. */
  names: string[];
  /** [rows, names.length] row-major. */
  values: ArrayLike<number>;
  rows: number;
  /** Label of the x axis (default "step"). */
  xLabel?: string;
}

/** One line plot per channel (small multiples), channel name above each. */
export function channelChart(inp: ChannelChartInput): Scene {
  const K = inp.names.length;
  const H = inp.rows;
  if (K < 1 || H < 1 || inp.values.length < H * K) throw new Error(`plot: need [${H}, ${K}] values, got ${inp.values.length}`);
  const cols = K <= 3 ? K : K <= 8 ? Math.min(4, K) : 4;
  const rowsN = Math.ceil(K / cols);
  const PW = 250, PH = 170, TOP = inp.subtitle ? 52 : 38, PAD = 12;
  const width = PAD * 2 + cols * PW;
  const height = TOP + rowsN * PH + PAD;
  const items: Item[] = [];
  items.push(text(PAD, 10, inp.title, { scale: 2, baseline: 'top' }));
  if (inp.subtitle) items.push(text(PAD, 32, inp.subtitle, { color: MUTED, baseline: 'top' }));
  for (let c = 0; c < K; c++) {
    const ox = PAD + (c % cols) * PW;
    const oy = TOP + Math.floor(c / cols) * PH;
    const L = ox + 58, R = ox + PW - 12, T = oy + 20, B = oy + PH - 30;
    const vals: number[] = [];
    for (let r = 0; r < H; r++) vals.push(Number(inp.values[r * K + c]));
    const finite = vals.filter(Number.isFinite);
    let lo = finite.length ? Math.min(...finite) : 0;
    let hi = finite.length ? Math.max(...finite) : 1;
    const pad = (hi - lo) * 0.05;
    lo -= pad;
    hi += pad;
    const yt = niceTicks(lo, hi, 4);
    const y0 = yt.ticks[0]!, y1 = yt.ticks[yt.ticks.length - 1]!;
    const xt = niceTicks(0, Math.max(1, H - 1), Math.min(6, Math.max(1, H - 1)));
    const xStep = Math.max(1, Math.round(xt.step));
    const sx = (i: number) => L + (H === 1 ? 0.5 : i / (H - 1)) * (R - L);
    const sy = (v: number) => B - ((v - y0) / (y1 - y0 || 1)) * (B - T);
    yGrid(items, yt, L, R, sy);
    for (let i = 0; i < H; i += xStep) {
      const x = sx(i);
      items.push(line([[x, B], [x, B + 4]], FRAME, 1));
      items.push(text(x, B + 7, String(i), { anchor: 'middle', baseline: 'top', color: MUTED }));
    }
    items.push({ kind: 'rect', x: L, y: T, w: R - L, h: B - T, stroke: FRAME, strokeWidth: 1 });
    const color = PALETTE[c % PALETTE.length]!;
    const pts: [number, number][] = vals.map((v, i) => [sx(i), sy(Number.isFinite(v) ? v : y0)]);
    items.push(line(pts, color, 2));
    for (const [x, y] of pts) items.push({ kind: 'circle', cx: x, cy: y, r: 2.5, fill: color });
    items.push(text(L, oy + 4, inp.names[c]!, { baseline: 'top' }));
    if (c === K - 1 || Math.floor(c / cols) === rowsN - 1) {
      items.push(text(R, B + 18, inp.xLabel ?? 'step', { anchor: 'end', baseline: 'top', color: MUTED }));
    }
  }
  return { width, height, background: '#ffffff', items };
}

export interface NavWaypoint {
  x: number;
  y: number;
  yaw: number;
}

export interface NavChartInput {
  title: string;
  subtitle?: string;
  waypoints: NavWaypoint[];
}

/**
 * Waypoints on the ground plane, robot frame: x forward points up, y left points left, the robot at the
 * origin facing up; each waypoint is a numbered dot with an arrow along its yaw.
 */
export function navigationChart(inp: NavChartInput): Scene {
  const W = 560, TOP = inp.subtitle ? 52 : 38, PAD = 12;
  const S = W - 2 * PAD; // square plot box incl. margins
  const width = W, height = TOP + S + PAD;
  const L = PAD + 56, R = PAD + S - 14, T = TOP + 10, B = TOP + S - 40;
  const items: Item[] = [];
  items.push(text(PAD, 10, inp.title, { scale: 2, baseline: 'top' }));
  if (inp.subtitle) items.push(text(PAD, 32, inp.subtitle, { color: MUTED, baseline: 'top' }));
  // screen-right u = −y, screen-up v = x
  const wps = inp.waypoints.filter((w) => Number.isFinite(w.x) && Number.isFinite(w.y));
  const us = [0, ...wps.map((w) => -w.y)];
  const vs = [0, ...wps.map((w) => w.x)];
  let uLo = Math.min(...us), uHi = Math.max(...us), vLo = Math.min(...vs), vHi = Math.max(...vs);
  let span = Math.max(uHi - uLo, vHi - vLo, 0.5) * 1.15;
  const uc = (uLo + uHi) / 2, vc = (vLo + vHi) / 2;
  const t = niceTicks(-span / 2, span / 2, 6);
  span = Math.ceil(span / t.step) * t.step;
  uLo = Math.floor((uc - span / 2) / t.step) * t.step;
  vLo = Math.floor((vc - span / 2) / t.step) * t.step;
  uHi = uLo + span + t.step;
  vHi = vLo + span + t.step;
  const ext = Math.max(uHi - uLo, vHi - vLo);
  const scale = Math.min(R - L, B - T) / ext;
  const px = (u: number) => L + (u - uLo) * scale;
  const py = (v: number) => B - (v - vLo) * scale;
  for (let k = 0; ; k++) {
    const u = uLo + k * t.step;
    if (u > uLo + ext + 1e-9) break;
    items.push(line([[px(u), py(vLo)], [px(u), py(vLo + ext)]], Math.abs(u) < 1e-9 ? '#c8c8c8' : GRID, 1));
    items.push(text(px(u), py(vLo) + 6, formatTick(-u, t.step), { anchor: 'middle', baseline: 'top', color: MUTED }));
  }
  for (let k = 0; ; k++) {
    const v = vLo + k * t.step;
    if (v > vLo + ext + 1e-9) break;
    items.push(line([[px(uLo), py(v)], [px(uLo + ext), py(v)]], Math.abs(v) < 1e-9 ? '#c8c8c8' : GRID, 1));
    items.push(text(px(uLo) - 5, py(v), formatTick(v, t.step), { anchor: 'end', baseline: 'middle', color: MUTED }));
  }
  items.push({ kind: 'rect', x: px(uLo), y: py(vLo + ext), w: ext * scale, h: ext * scale, stroke: FRAME, strokeWidth: 1 });
  items.push(text((px(uLo) + px(uLo + ext)) / 2, py(vLo) + 22, 'y left (m)  <-', { anchor: 'middle', baseline: 'top', color: MUTED }));
  items.push(text(px(uLo), py(vLo + ext) - 4, 'x forward (m) ^', { anchor: 'start', baseline: 'bottom', color: MUTED }));
  // robot at the origin, facing up (x forward)
  const ox = px(0), oy = py(0);
  items.push(line([[ox - 7, oy + 8], [ox, oy - 10], [ox + 7, oy + 8], [ox - 7, oy + 8]], INK, 2));
  // path
  const path: [number, number][] = [[ox, oy], ...wps.map((w): [number, number] => [px(-w.y), py(w.x)])];
  items.push(line(path, '#4e79a7', 2));
  const arrow = Math.max(14, ext * scale * 0.06);
  wps.forEach((w, i) => {
    const x = px(-w.y), y = py(w.x);
    const yaw = Number.isFinite(w.yaw) ? w.yaw : 0;
    // world direction (cos, sin) in (x, y) → screen (dx, dy) = (−sin, −cos)
    const dx = -Math.sin(yaw), dy = -Math.cos(yaw);
    const ex = x + dx * arrow, ey = y + dy * arrow;
    const hx = -dx * 6, hy = -dy * 6; // back along the shaft
    items.push(line([[x, y], [ex, ey]], '#e15759', 2));
    items.push(line([[ex + hx - dy * 4, ey + hy + dx * 4], [ex, ey], [ex + hx + dy * 4, ey + hy - dx * 4]], '#e15759', 2));
    items.push({ kind: 'circle', cx: x, cy: y, r: 3.5, fill: '#4e79a7' });
    items.push(text(x + 6, y - 4, String(i), { color: INK }));
  });
  return { width, height, background: '#ffffff', items };
}

export interface Series {
  name: string;
  points: [number, number][];
  color?: Color;
}

export interface Panel {
  /** Label above the panel (the y quantity and unit). */
  label: string;
  series: Series[];
  /** Start the y axis at 0 (default true: growth is judged against the whole quantity, not a zoomed band). */
  fromZero?: boolean;
}

export interface PanelChartInput {
  title: string;
  subtitle?: string;
  panels: Panel[];
  xLabel: string;
}

/** Stacked panels sharing one x axis; each panel has several named line series and a legend. */
export function panelChart(inp: PanelChartInput): Scene {
  if (inp.panels.length === 0) throw new Error('plot: panelChart needs at least one panel');
  const W = 760, PH = 200, TOP = inp.subtitle ? 52 : 38, PAD = 12;
  const width = W, height = TOP + inp.panels.length * PH + 24 + PAD;
  const L = PAD + 64, R = W - PAD - 12;
  const items: Item[] = [];
  items.push(text(PAD, 10, inp.title, { scale: 2, baseline: 'top' }));
  if (inp.subtitle) items.push(text(PAD, 32, inp.subtitle, { color: MUTED, baseline: 'top' }));
  const xs = inp.panels.flatMap((p) => p.series.flatMap((s) => s.points.map((q) => q[0]))).filter(Number.isFinite);
  const xt = niceTicks(xs.length ? Math.min(...xs) : 0, xs.length ? Math.max(...xs) : 1, 6);
  const x0 = xt.ticks[0]!, x1 = xt.ticks[xt.ticks.length - 1]!;
  const sx = (v: number) => L + ((v - x0) / (x1 - x0 || 1)) * (R - L);
  inp.panels.forEach((panel, pi) => {
    const T = TOP + pi * PH + 20, B = TOP + (pi + 1) * PH - 14;
    const ys = panel.series.flatMap((s) => s.points.map((q) => q[1])).filter(Number.isFinite);
    let lo = ys.length ? Math.min(...ys) : 0;
    const hi = ys.length ? Math.max(...ys) : 1;
    if (panel.fromZero ?? true) lo = Math.min(0, lo);
    const yt = niceTicks(lo, hi, 4);
    const y0 = yt.ticks[0]!, y1 = yt.ticks[yt.ticks.length - 1]!;
    const sy = (v: number) => B - ((v - y0) / (y1 - y0 || 1)) * (B - T);
    yGrid(items, yt, L, R, sy);
    for (const t of xt.ticks) {
      items.push(line([[sx(t), B], [sx(t), B + 4]], FRAME, 1));
      if (pi === inp.panels.length - 1) items.push(text(sx(t), B + 7, formatTick(t, xt.step), { anchor: 'middle', baseline: 'top', color: MUTED }));
    }
    items.push({ kind: 'rect', x: L, y: T, w: R - L, h: B - T, stroke: FRAME, strokeWidth: 1 });
    items.push(text(L, T - 4, panel.label));
    let lx = R;
    [...panel.series].reverse().forEach((s, k) => {
      const color = s.color ?? PALETTE[(panel.series.length - 1 - k) % PALETTE.length]!;
      lx -= textWidth(s.name) + 22;
      items.push(line([[lx, T - 8], [lx + 14, T - 8]], color, 2));
      items.push(text(lx + 18, T - 4, s.name, { color: MUTED }));
      const pts = s.points.filter((q) => Number.isFinite(q[0]) && Number.isFinite(q[1])).map((q): [number, number] => [sx(q[0]), sy(q[1])]);
      if (pts.length > 1) items.push(line(pts, color, 2));
      if (pts.length <= 60) for (const [x, y] of pts) items.push({ kind: 'circle', cx: x, cy: y, r: 2.5, fill: color });
    });
  });
  items.push(text(R, height - PAD, inp.xLabel, { anchor: 'end', baseline: 'bottom', color: MUTED }));
  return { width, height, background: '#ffffff', items };
}
