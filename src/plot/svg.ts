// Scene → SVG text (no dependencies).
import { FONT_H } from './font5x7.js';
import type { Scene, Item } from './scene.js';

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function n(v: number): string {
  return Number.isFinite(v) ? String(Math.round(v * 100) / 100) : '0';
}

function item(it: Item): string {
  switch (it.kind) {
    case 'line':
      if (it.points.length < 2) return '';
      return `<polyline points="${it.points.map(([x, y]) => `${n(x)},${n(y)}`).join(' ')}" fill="none" stroke="${it.color}" stroke-width="${n(it.width)}" stroke-linejoin="round" stroke-linecap="round"/>`;
    case 'rect':
      return `<rect x="${n(it.x)}" y="${n(it.y)}" width="${n(it.w)}" height="${n(it.h)}" fill="${it.fill ?? 'none'}"${it.stroke ? ` stroke="${it.stroke}" stroke-width="${n(it.strokeWidth ?? 1)}"` : ''}/>`;
    case 'circle':
      return `<circle cx="${n(it.cx)}" cy="${n(it.cy)}" r="${n(it.r)}" fill="${it.fill ?? 'none'}"${it.stroke ? ` stroke="${it.stroke}" stroke-width="${n(it.strokeWidth ?? 1)}"` : ''}/>`;
    case 'text': {
      // Sized so a monospace glyph covers about the same box as the bitmap font in the PNG back end.
      const size = FONT_H * it.scale * 1.35;
      const anchor = it.anchor ?? 'start';
      const baseline = it.baseline ?? 'bottom';
      const dy = baseline === 'top' ? FONT_H * it.scale : baseline === 'middle' ? (FONT_H * it.scale) / 2 : 0;
      return `<text x="${n(it.x)}" y="${n(it.y + dy)}" font-family="DejaVu Sans Mono, Menlo, Consolas, monospace" font-size="${n(size)}" fill="${it.color}" text-anchor="${anchor}">${esc(it.text)}</text>`;
    }
  }
}

export function renderSvg(scene: Scene): string {
  const out = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<svg xmlns="http://www.w3.org/2000/svg" width="${scene.width}" height="${scene.height}" viewBox="0 0 ${scene.width} ${scene.height}">`,
    `<rect x="0" y="0" width="${scene.width}" height="${scene.height}" fill="${scene.background}"/>`,
  ];
  for (const it of scene.items) {
    const s = item(it);
    if (s) out.push(s);
  }
  out.push('</svg>', '');
  return out.join('\n');
}
