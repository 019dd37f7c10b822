// A tiny RGB rasteriser for the worlds' camera frames. Integer pixel decisions only (a pixel is covered when
// its centre is inside the shape), no anti-aliasing: frames are bit-for-bit reproducible and cheap.
import type { RgbImage } from '../preprocess/image.js';

export type Rgb = readonly [number, number, number];

export class Canvas implements RgbImage {
  readonly channels = 3 as const;
  readonly data: Uint8Array;

  constructor(readonly width: number, readonly height: number, fill: Rgb = [0, 0, 0]) {
    this.data = new Uint8Array(width * height * 3);
    this.clear(fill);
  }

  clear(c: Rgb): void {
    const d = this.data;
    for (let i = 0; i < d.length; i += 3) {
      d[i] = c[0];
      d[i + 1] = c[1];
      d[i + 2] = c[2];
    }
  }

  set(x: number, y: number, c: Rgb): void {
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    const o = 3 * (y * this.width + x);
    this.data[o] = c[0];
    this.data[o + 1] = c[1];
    this.data[o + 2] = c[2];
  }

  /** Blends `c` over the pixel with weight a ∈ [0, 1] (integer result, rounded). */
  blend(x: number, y: number, c: Rgb, a: number): void {
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    const o = 3 * (y * this.width + x);
    for (let k = 0; k < 3; k++) this.data[o + k] = Math.round(this.data[o + k]! * (1 - a) + c[k]! * a);
  }

  /** Axis-aligned rectangle in pixel coordinates [x0, x1) × [y0, y1) (fractional edges: pixel centres). */
  fillRect(x0: number, y0: number, x1: number, y1: number, c: Rgb): void {
    const xa = Math.max(0, Math.ceil(x0 - 0.5)), xb = Math.min(this.width - 1, Math.ceil(x1 - 0.5) - 1);
    const ya = Math.max(0, Math.ceil(y0 - 0.5)), yb = Math.min(this.height - 1, Math.ceil(y1 - 0.5) - 1);
    for (let y = ya; y <= yb; y++) for (let x = xa; x <= xb; x++) this.set(x, y, c);
  }

  /** Outline of a rectangle, `t` pixels thick, inside [x0, x1) × [y0, y1). */
  strokeRect(x0: number, y0: number, x1: number, y1: number, t: number, c: Rgb): void {
    this.fillRect(x0, y0, x1, y0 + t, c);
    this.fillRect(x0, y1 - t, x1, y1, c);
    this.fillRect(x0, y0, x0 + t, y1, c);
    this.fillRect(x1 - t, y0, x1, y1, c);
  }

  /** Disc of radius r (pixels) centred at (cx, cy); `inner` > 0 leaves a hole (a ring). `a` blends. */
  fillCircle(cx: number, cy: number, r: number, c: Rgb, inner = 0, a = 1): void {
    const ya = Math.max(0, Math.floor(cy - r)), yb = Math.min(this.height - 1, Math.ceil(cy + r));
    const xa = Math.max(0, Math.floor(cx - r)), xb = Math.min(this.width - 1, Math.ceil(cx + r));
    for (let y = ya; y <= yb; y++) {
      for (let x = xa; x <= xb; x++) {
        const dx = x + 0.5 - cx, dy = y + 0.5 - cy;
        const d2 = dx * dx + dy * dy;
        if (d2 <= r * r && d2 >= inner * inner) {
          if (a >= 1) this.set(x, y, c);
          else this.blend(x, y, c, a);
        }
      }
    }
  }

  /** Triangle pointing up (y down in pixels) with circumradius r. */
  fillTriangle(cx: number, cy: number, r: number, c: Rgb): void {
    const p = [[cx, cy - r], [cx - 0.866 * r, cy + 0.5 * r], [cx + 0.866 * r, cy + 0.5 * r]] as const;
    const ya = Math.max(0, Math.floor(cy - r)), yb = Math.min(this.height - 1, Math.ceil(cy + r));
    const xa = Math.max(0, Math.floor(cx - r)), xb = Math.min(this.width - 1, Math.ceil(cx + r));
    for (let y = ya; y <= yb; y++) {
      for (let x = xa; x <= xb; x++) {
        const px = x + 0.5, py = y + 0.5;
        let inside = true;
        for (let k = 0; k < 3 && inside; k++) {
          const [ax, ay] = p[k]!, [bx, by] = p[(k + 1) % 3]!;
          if ((bx - ax) * (py - ay) - (by - ay) * (px - ax) < 0) inside = false;
        }
        if (inside) this.set(x, y, c);
      }
    }
  }

  /** Segment of thickness `w` pixels (a capsule) from (x0, y0) to (x1, y1). */
  line(x0: number, y0: number, x1: number, y1: number, w: number, c: Rgb): void {
    const r = w / 2;
    const ya = Math.max(0, Math.floor(Math.min(y0, y1) - r)), yb = Math.min(this.height - 1, Math.ceil(Math.max(y0, y1) + r));
    const xa = Math.max(0, Math.floor(Math.min(x0, x1) - r)), xb = Math.min(this.width - 1, Math.ceil(Math.max(x0, x1) + r));
    const vx = x1 - x0, vy = y1 - y0;
    const len2 = vx * vx + vy * vy || 1;
    for (let y = ya; y <= yb; y++) {
      for (let x = xa; x <= xb; x++) {
        const px = x + 0.5 - x0, py = y + 0.5 - y0;
        const t = Math.max(0, Math.min(1, (px * vx + py * vy) / len2));
        const dx = px - t * vx, dy = py - t * vy;
        if (dx * dx + dy * dy <= r * r) this.set(x, y, c);
      }
    }
  }

  /** A copy of the pixels (frames handed to a policy must not change when the world moves on). */
  snapshot(): RgbImage {
    return { width: this.width, height: this.height, channels: 3, data: this.data.slice() };
  }
}

export const COLORS = {
  red: [220, 45, 45],
  green: [40, 165, 70],
  blue: [45, 90, 225],
  yellow: [235, 200, 35],
  purple: [150, 65, 195],
} as const satisfies Record<string, Rgb>;
export type ColorName = keyof typeof COLORS;
export const COLOR_NAMES = Object.keys(COLORS) as ColorName[];
