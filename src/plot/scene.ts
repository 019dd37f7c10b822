// A tiny retained-mode scene: what the charts build and the SVG / PNG back ends draw. Coordinates are pixels,
// origin top-left, y down.

export type Color = string; // '#rrggbb'

export interface LineItem {
  kind: 'line';
  /** Polyline vertices [x, y]. */
  points: [number, number][];
  color: Color;
  width: number;
}

export interface RectItem {
  kind: 'rect';
  x: number;
  y: number;
  w: number;
  h: number;
  fill?: Color;
  stroke?: Color;
  strokeWidth?: number;
}

export interface CircleItem {
  kind: 'circle';
  cx: number;
  cy: number;
  r: number;
  fill?: Color;
  stroke?: Color;
  strokeWidth?: number;
}

export interface TextItem {
  kind: 'text';
  x: number;
  y: number;
  text: string;
  /** Integer scale: one font pixel = `scale` image pixels (the glyph box is 6·scale × 7·scale). */
  scale: number;
  color: Color;
  anchor?: 'start' | 'middle' | 'end';
  baseline?: 'top' | 'middle' | 'bottom';
}

export type Item = LineItem | RectItem | CircleItem | TextItem;

export interface Scene {
  width: number;
  height: number;
  background: Color;
  items: Item[];
}

export function parseColor(c: Color): [number, number, number] {
  const m = /^#([0-9a-fA-F]{6})$/.exec(c);
  if (!m) throw new Error(`plot: colour must be #rrggbb, got ${JSON.stringify(c)}`);
  const v = parseInt(m[1]!, 16);
  return [(v >> 16) & 255, (v >> 8) & 255, v & 255];
}

/** A qualitative palette (Tableau 10). */
export const PALETTE: readonly Color[] = [
  '#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac',
];
