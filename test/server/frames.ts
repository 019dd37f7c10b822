// Camera frames as openpi clients send them (for the server tests).
import type { RawImage } from '../../src/preprocess/image.js';
import { NdArray } from '../../src/server/ndarray.js';

/** Any decoded image → RGB (grey / RGBA channels mapped onto 3). */
export function toRgb(im: RawImage): RawImage {
  if (im.channels === 3) return im;
  const n = im.width * im.height;
  const d = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) for (let c = 0; c < 3; c++) d[3 * i + c] = im.data[im.channels * i + Math.min(c, im.channels - 1)]!;
  return { width: im.width, height: im.height, channels: 3, data: d };
}

/** HWC RGB → numpy uint8 [3,H,W] (what openpi's ALOHA client sends). */
export function chw(im: RawImage): NdArray {
  const { width: W, height: H } = im;
  const out = new Uint8Array(3 * H * W);
  for (let i = 0; i < H * W; i++) for (let c = 0; c < 3; c++) out[c * H * W + i] = im.data[3 * i + c]!;
  return NdArray.fromUint8(out, [3, H, W]);
}

/** HWC RGB → numpy uint8 [H,W,3] (the LIBERO client's layout). */
export function hwc(im: RawImage): NdArray {
  return NdArray.fromUint8(im.data, [im.height, im.width, 3]);
}
