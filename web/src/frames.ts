// Frames in the browser: qvla images (RGB/RGBA bytes) ↔ canvas. The engine takes raw pixels
// ({width, height, channels, data}); these turn a canvas / an uploaded file into one, and draw one onto a canvas.
import type { RawImage } from '../../src/preprocess/image.js';

/** Draws an RGB / RGBA / grey image onto a canvas (resized to the image). */
export function drawImage(canvas: HTMLCanvasElement, img: RawImage): void {
  canvas.width = img.width;
  canvas.height = img.height;
  const ctx = canvas.getContext('2d')!;
  const out = ctx.createImageData(img.width, img.height);
  const n = img.width * img.height;
  const c = img.channels;
  for (let i = 0; i < n; i++) {
    const s = i * c;
    out.data[i * 4] = img.data[s]!;
    out.data[i * 4 + 1] = img.data[c >= 3 ? s + 1 : s]!;
    out.data[i * 4 + 2] = img.data[c >= 3 ? s + 2 : s]!;
    out.data[i * 4 + 3] = c === 4 ? img.data[s + 3]! : 255;
  }
  ctx.putImageData(out, 0, 0);
}

/** The pixels of a canvas-drawable source as an RGB image (alpha dropped), at most `maxSide` pixels a side. */
export function imageFromSource(src: CanvasImageSource & { width: number; height: number }, maxSide = 1024): RawImage {
  const s = Math.min(1, maxSide / Math.max(src.width, src.height));
  const w = Math.max(1, Math.round(src.width * s)), h = Math.max(1, Math.round(src.height * s));
  const cv = new OffscreenCanvas(w, h);
  const ctx = cv.getContext('2d')!;
  ctx.drawImage(src, 0, 0, w, h);
  const rgba = ctx.getImageData(0, 0, w, h).data;
  const rgb = new Uint8Array(w * h * 3);
  for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) {
    rgb[j] = rgba[i]!;
    rgb[j + 1] = rgba[i + 1]!;
    rgb[j + 2] = rgba[i + 2]!;
  }
  return { width: w, height: h, channels: 3, data: rgb };
}

/** Decodes an image file (PNG, JPEG, WebP, … whatever the browser decodes) with createImageBitmap. */
export async function imageFromBlob(blob: Blob, maxSide = 1024): Promise<RawImage> {
  const bmp = await createImageBitmap(blob);
  try {
    return imageFromSource(bmp, maxSide);
  } finally {
    bmp.close();
  }
}
