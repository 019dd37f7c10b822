// RGB frames → PNG files (fast-png), for `qvla worlds show` and rollouts.
import { encode } from 'fast-png';
import type { RgbImage } from '../preprocess/image.js';

export function encodeRgbPng(img: RgbImage): Uint8Array {
  return encode({ width: img.width, height: img.height, data: img.data, channels: 3, depth: 8 });
}

/** Frames side by side (same height), separated by `gap` white pixels. */
export function hstack(frames: RgbImage[], gap = 4): RgbImage {
  const h = Math.max(...frames.map((f) => f.height));
  const w = frames.reduce((s, f) => s + f.width, 0) + gap * (frames.length - 1);
  const data = new Uint8Array(w * h * 3).fill(255);
  let x0 = 0;
  for (const f of frames) {
    for (let y = 0; y < f.height; y++) data.set(f.data.subarray(y * f.width * 3, (y + 1) * f.width * 3), (y * w + x0) * 3);
    x0 += f.width + gap;
  }
  return { width: w, height: h, channels: 3, data };
}
