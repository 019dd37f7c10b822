// Scene → RGBA pixels → PNG (fast-png). A small anti-aliased rasteriser: lines and circles by distance
// coverage, text with the built-in 5×7 bitmap font (src/plot/font5x7.ts).
import { encode } from 'fast-png';
import { FONT_ADVANCE, FONT_H, FONT_W, glyph, glyphPixel, textWidth } from './font5x7.js';
import { parseColor, type Scene, type Color } from './scene.js';

export class Raster {
  readonly data: Uint8Array;
  /** Coverage scratch buffer (one float per pixel) for drawing a shape once, whatever its overlaps. */
  private cov: Float32Array;

  constructor(readonly width: number, readonly height: number, background: Color = '#ffffff') {
    if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1 || width * height > 64e6) {
      throw new Error(`plot: bad image size ${width}×${height}`);
    }
    this.data = new Uint8Array(width * height * 4);
    this.cov = new Float32Array(width * height);
    const [r, g, b] = parseColor(background);
    for (let i = 0; i < width * height; i++) {
      this.data[4 * i] = r;
      this.data[4 * i + 1] = g;
      this.data[4 * i + 2] = b;
      this.data[4 * i + 3] = 255;
    }
  }

  private blend(i: number, rgb: [number, number, number], a: number): void {
    if (a <= 0) return;
    if (a > 1) a = 1;
    const d = this.data;
    const o = 4 * i;
    d[o] = Math.round(d[o]! + (rgb[0] - d[o]!) * a);
    d[o + 1] = Math.round(d[o + 1]! + (rgb[1] - d[o + 1]!) * a);
    d[o + 2] = Math.round(d[o + 2]! + (rgb[2] - d[o + 2]!) * a);
  }

  /** Blends the accumulated coverage inside the box with `color`, clearing it. */
  private flush(x0: number, y0: number, x1: number, y1: number, color: Color): void {
    const rgb = parseColor(color);
    for (let y = y0; y <= y1; y++) {
      for (let x = x0; x <= x1; x++) {
        const i = y * this.width + x;
        const c = this.cov[i]!;
        if (c > 0) {
          this.blend(i, rgb, c);
          this.cov[i] = 0;
        }
      }
    }
  }

  private clampBox(x0: number, y0: number, x1: number, y1: number): [number, number, number, number] | null {
    const a = Math.max(0, Math.floor(x0));
    const b = Math.max(0, Math.floor(y0));
    const c = Math.min(this.width - 1, Math.ceil(x1));
    const d = Math.min(this.height - 1, Math.ceil(y1));
    return a > c || b > d ? null : [a, b, c, d];
  }

  fillRect(x: number, y: number, w: number, h: number, color: Color): void {
    const box = this.clampBox(x, y, x + w - 1, y + h - 1);
    if (!box) return;
    const rgb = parseColor(color);
    for (let py = box[1]; py <= box[3]; py++) {
      for (let px = box[0]; px <= box[2]; px++) {
        // pixel centre coverage in x and y (box filter)
        const cx = Math.min(px + 1, x + w) - Math.max(px, x);
        const cy = Math.min(py + 1, y + h) - Math.max(py, y);
        if (cx > 0 && cy > 0) this.blend(py * this.width + px, rgb, Math.min(1, cx) * Math.min(1, cy));
      }
    }
  }

  strokeRect(x: number, y: number, w: number, h: number, color: Color, width = 1): void {
    this.polyline([[x, y], [x + w, y], [x + w, y + h], [x, y + h], [x, y]], color, width);
  }

  /** Anti-aliased polyline of the given width (round caps and joins). */
  polyline(points: [number, number][], color: Color, width: number): void {
    const pts = points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
    if (pts.length === 0) return;
    const hw = Math.max(width, 0.5) / 2;
    let bx0 = Infinity, by0 = Infinity, bx1 = -Infinity, by1 = -Infinity;
    const segs = pts.length === 1 ? [[pts[0]!, pts[0]!]] : pts.slice(1).map((p, k) => [pts[k]!, p]);
    for (const [[ax, ay], [bx, by]] of segs as [[number, number], [number, number]][]) {
      const box = this.clampBox(Math.min(ax, bx) - hw - 1, Math.min(ay, by) - hw - 1, Math.max(ax, bx) + hw + 1, Math.max(ay, by) + hw + 1);
      if (!box) continue;
      bx0 = Math.min(bx0, box[0]); by0 = Math.min(by0, box[1]); bx1 = Math.max(bx1, box[2]); by1 = Math.max(by1, box[3]);
      const dx = bx - ax, dy = by - ay;
      const len2 = dx * dx + dy * dy;
      for (let py = box[1]; py <= box[3]; py++) {
        for (let px = box[0]; px <= box[2]; px++) {
          const cx = px + 0.5, cy = py + 0.5;
          let t = len2 > 0 ? ((cx - ax) * dx + (cy - ay) * dy) / len2 : 0;
          t = t < 0 ? 0 : t > 1 ? 1 : t;
          const ex = ax + t * dx - cx, ey = ay + t * dy - cy;
          const d = Math.sqrt(ex * ex + ey * ey);
          const c = hw + 0.5 - d;
          if (c > 0) {
            const i = py * this.width + px;
            const v = c > 1 ? 1 : c;
            if (v > this.cov[i]!) this.cov[i] = v;
          }
        }
      }
    }
    if (bx0 <= bx1) this.flush(bx0, by0, bx1, by1, color);
  }

  circle(cx: number, cy: number, r: number, fill?: Color, stroke?: Color, strokeWidth = 1): void {
    const box = this.clampBox(cx - r - strokeWidth - 1, cy - r - strokeWidth - 1, cx + r + strokeWidth + 1, cy + r + strokeWidth + 1);
    if (!box) return;
    const frgb = fill ? parseColor(fill) : null;
    const srgb = stroke ? parseColor(stroke) : null;
    for (let py = box[1]; py <= box[3]; py++) {
      for (let px = box[0]; px <= box[2]; px++) {
        const d = Math.hypot(px + 0.5 - cx, py + 0.5 - cy);
        const i = py * this.width + px;
        if (frgb) this.blend(i, frgb, r + 0.5 - d);
        if (srgb) this.blend(i, srgb, strokeWidth / 2 + 0.5 - Math.abs(d - r));
      }
    }
  }

  /** Bitmap text; (x, y) is the anchor point. */
  text(x: number, y: number, text: string, scale: number, color: Color, anchor: 'start' | 'middle' | 'end' = 'start', baseline: 'top' | 'middle' | 'bottom' = 'bottom'): void {
    const s = Math.max(1, Math.round(scale));
    const w = textWidth(text) * s;
    const h = FONT_H * s;
    let x0 = anchor === 'start' ? x : anchor === 'middle' ? x - w / 2 : x - w;
    const y0 = Math.round(baseline === 'top' ? y : baseline === 'middle' ? y - h / 2 : y - h);
    x0 = Math.round(x0);
    const rgb = parseColor(color);
    let cx = x0;
    for (const ch of text) {
      const g = glyph(ch);
      for (let col = 0; col < FONT_W; col++) {
        for (let row = 0; row < FONT_H; row++) {
          if (!glyphPixel(g, col, row)) continue;
          for (let sy = 0; sy < s; sy++) {
            const py = y0 + row * s + sy;
            if (py < 0 || py >= this.height) continue;
            for (let sx = 0; sx < s; sx++) {
              const px = cx + col * s + sx;
              if (px < 0 || px >= this.width) continue;
              this.blend(py * this.width + px, rgb, 1);
            }
          }
        }
      }
      cx += FONT_ADVANCE * s;
    }
  }

  toPng(): Uint8Array {
    return encode({ width: this.width, height: this.height, data: this.data, channels: 4, depth: 8 });
  }
}

export function rasterize(scene: Scene): Raster {
  const r = new Raster(Math.round(scene.width), Math.round(scene.height), scene.background);
  for (const it of scene.items) {
    switch (it.kind) {
      case 'line':
        r.polyline(it.points, it.color, it.width);
        break;
      case 'rect':
        if (it.fill) r.fillRect(it.x, it.y, it.w, it.h, it.fill);
        if (it.stroke) r.strokeRect(it.x, it.y, it.w, it.h, it.stroke, it.strokeWidth ?? 1);
        break;
      case 'circle':
        r.circle(it.cx, it.cy, it.r, it.fill, it.stroke, it.strokeWidth ?? 1);
        break;
      case 'text':
        r.text(it.x, it.y, it.text, it.scale, it.color, it.anchor, it.baseline);
        break;
    }
  }
  return r;
}

export function renderPng(scene: Scene): Uint8Array {
  return rasterize(scene).toPng();
}
