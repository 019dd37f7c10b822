/**
 * Image preprocessing of the Qwen3.5 processor (docs/architecture.md §3), bit-exact with
 * tools/reference/qvla_ref/preprocess.py:
 *
 *   decode (PNG / JPEG) → RGB uint8 → smart_resize → bicubic antialiased resize (float64, horizontal pass then
 *   vertical pass, round half to even, clip) → x = (p/255 − mean)/std → two identical temporal frames →
 *   patches in merge-block order: pixel_values [gh·gw, C·T·P·P], rows [c][t][py][px].
 *
 * The resized uint8 image equals preprocess.py's resize_bicubic_u8 bit for bit (same float64 operations in the
 * same order); pixel_values equals the reference's float64 values rounded to float32.
 *
 * Speed: filter tables are computed once per (in, out) size pair and cached; one float64 intermediate per call;
 * normalisation through a 256-entry table per channel.
 */
import { platform } from '../platform/index.js';
import { decode as decodePng } from 'fast-png';
import jpeg from 'jpeg-js';
import { defaultPreprocessorConfig, type PreprocessorConfig } from '../model/config.js';
import { QvlaError } from '../util/errors.js';

/** An 8-bit image, interleaved rows [height][width][channels]. */
export interface RawImage {
  width: number;
  height: number;
  channels: 1 | 3 | 4;
  data: Uint8Array;
}

/** What {@link decodeImageFile} returns (grey → RGB, grey+alpha → RGBA, palette expanded, 16-bit → 8-bit). */
export interface DecodedImage extends RawImage {
  channels: 3 | 4;
}

export interface RgbImage extends RawImage {
  channels: 3;
}

/**
 * FNV-1a 32 over the frames' sizes and bytes, as 8 hex digits: a cheap digest to compare frames across
 * processes and platforms (the browser page and its test, web/src/main.ts and test/web/browser.test.ts).
 */
export function frameHash(frames: RawImage[]): string {
  let h = 0x811c9dc5;
  const eat = (b: number) => { h = Math.imul(h ^ b, 0x01000193) >>> 0; };
  for (const f of frames) {
    for (const v of [f.width, f.height, f.channels]) for (let k = 0; k < 4; k++) eat((v >>> (8 * k)) & 255);
    for (let i = 0; i < f.data.length; i++) eat(f.data[i]!);
  }
  return h.toString(16).padStart(8, '0');
}

export class ImageError extends QvlaError {
  constructor(message: string) {
    super(message, { code: 'image' });
    this.name = 'ImageError';
  }
}

// ---------------------------------------------------------------------------------------------------------
// Decoding

function isPng(b: Uint8Array): boolean {
  return b.length >= 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47 &&
    b[4] === 0x0d && b[5] === 0x0a && b[6] === 0x1a && b[7] === 0x0a;
}

function isJpeg(b: Uint8Array): boolean {
  return b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff;
}

function pngToImage(bytes: Uint8Array, where: string): DecodedImage {
  let p;
  try {
    p = decodePng(bytes);
  } catch (e) {
    throw new ImageError(`${where}: cannot decode PNG (${e instanceof Error ? e.message : String(e)})`);
  }
  const { width, height } = p;
  const n = width * height;
  let src: Uint8Array;
  let ch = p.channels;
  if (p.palette) {
    // indexed: expand through the palette (fast-png folds a tRNS chunk into 4-entry palette colours)
    const pal = p.palette;
    const hasAlpha = pal.some((c) => c.length === 4);
    ch = hasAlpha ? 4 : 3;
    const idx = unpackIndices(p.data as Uint8Array, width, height, p.depth);
    src = new Uint8Array(n * ch);
    for (let i = 0; i < n; i++) {
      const k = idx[i]!;
      const c = pal[k];
      if (c === undefined) throw new ImageError(`${where}: PNG palette index ${k} out of range (${pal.length} colours)`);
      src[i * ch] = c[0]!;
      src[i * ch + 1] = c[1]!;
      src[i * ch + 2] = c[2]!;
      if (hasAlpha) src[i * ch + 3] = c.length === 4 ? c[3]! : 255;
    }
  } else if (p.depth === 8) {
    src = p.data instanceof Uint8Array ? p.data : new Uint8Array(p.data);
  } else if (p.depth === 16) {
    const d = p.data as Uint16Array;
    src = new Uint8Array(d.length);
    for (let i = 0; i < d.length; i++) src[i] = d[i]! >>> 8;
  } else {
    // 1/2/4-bit greyscale: scale to 0..255
    const idx = unpackIndices(p.data as Uint8Array, width, height, p.depth);
    const mul = 255 / ((1 << p.depth) - 1);
    src = new Uint8Array(n);
    for (let i = 0; i < n; i++) src[i] = Math.round(idx[i]! * mul);
    ch = 1;
  }
  if (src.length !== n * ch) throw new ImageError(`${where}: PNG decoder returned ${src.length} bytes for ${width}x${height}x${ch}`);
  if (ch === 3 || ch === 4) return { width, height, channels: ch, data: src };
  if (ch === 1) return { width, height, channels: 3, data: greyToRgb(src, n, 1) };
  if (ch === 2) {
    const out = new Uint8Array(n * 4);
    for (let i = 0; i < n; i++) {
      const g = src[i * 2]!;
      out[i * 4] = g;
      out[i * 4 + 1] = g;
      out[i * 4 + 2] = g;
      out[i * 4 + 3] = src[i * 2 + 1]!;
    }
    return { width, height, channels: 4, data: out };
  }
  throw new ImageError(`${where}: unsupported PNG channel count ${ch}`);
}

/** Unpacks 1/2/4/8-bit samples (rows padded to a byte) into one byte per sample. */
function unpackIndices(data: Uint8Array, width: number, height: number, depth: number): Uint8Array {
  if (depth === 8) return data;
  const out = new Uint8Array(width * height);
  const rowBytes = Math.ceil((width * depth) / 8);
  const mask = (1 << depth) - 1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const bit = x * depth;
      const byte = data[y * rowBytes + (bit >> 3)]!;
      out[y * width + x] = (byte >> (8 - depth - (bit & 7))) & mask;
    }
  }
  return out;
}

function greyToRgb(src: Uint8Array, n: number, stride: number): Uint8Array {
  const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    const g = src[i * stride]!;
    out[i * 3] = g;
    out[i * 3 + 1] = g;
    out[i * 3 + 2] = g;
  }
  return out;
}

function jpegToImage(bytes: Uint8Array, where: string): DecodedImage {
  let j;
  try {
    j = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: false, maxMemoryUsageInMB: 2048, maxResolutionInMP: 400 });
  } catch (e) {
    throw new ImageError(`${where}: cannot decode JPEG (${e instanceof Error ? e.message : String(e)})`);
  }
  const data = j.data instanceof Uint8Array ? j.data : new Uint8Array(j.data);
  if (data.length !== j.width * j.height * 3) throw new ImageError(`${where}: JPEG decoder returned ${data.length} bytes for ${j.width}x${j.height}x3`);
  return { width: j.width, height: j.height, channels: 3, data };
}

/** Decodes a PNG or JPEG file (path) or its bytes. */
export async function decodeImageFile(src: string | Uint8Array): Promise<DecodedImage> {
  let bytes: Uint8Array;
  let where: string;
  if (typeof src === 'string') {
    where = src;
    try {
      bytes = await platform().fs.readBytes(src);
    } catch (e) {
      throw new ImageError(`${src}: cannot read image (${e instanceof Error ? e.message : String(e)})`);
    }
  } else if (src instanceof Uint8Array) {
    where = '<image bytes>';
    bytes = src;
  } else {
    throw new ImageError('decodeImageFile: expected a path or a Buffer/Uint8Array');
  }
  return decodeImageBytes(bytes, where);
}

/** Synchronous decode of PNG/JPEG bytes; `where` names the source in errors. */
export function decodeImageBytes(bytes: Uint8Array, where = '<image bytes>'): DecodedImage {
  if (isPng(bytes)) return pngToImage(bytes, where);
  if (isJpeg(bytes)) return jpegToImage(bytes, where);
  throw new ImageError(`${where}: unsupported image format (expected PNG or JPEG)`);
}

// ---------------------------------------------------------------------------------------------------------
// Validation and RGB conversion

/** Checks dimensions, channel count and data length; throws ImageError with the problem. */
export function validateImage(img: RawImage, what = 'image'): void {
  if (img === null || typeof img !== 'object') throw new ImageError(`${what} must be {width, height, channels, data}`);
  const { width, height, channels, data } = img;
  if (!Number.isInteger(width) || width <= 0) throw new ImageError(`${what}: width must be a positive integer, got ${String(width)}`);
  if (!Number.isInteger(height) || height <= 0) throw new ImageError(`${what}: height must be a positive integer, got ${String(height)}`);
  if (channels !== 1 && channels !== 3 && channels !== 4) throw new ImageError(`${what}: channels must be 1, 3 or 4, got ${String(channels)}`);
  if (!(data instanceof Uint8Array)) {
    throw new ImageError(`${what}: data must be a Uint8Array (8-bit samples), got ${data === null ? 'null' : (data as object)?.constructor?.name ?? typeof data}`);
  }
  if (data.length !== width * height * channels) {
    throw new ImageError(`${what}: data has ${data.length} bytes, expected ${width}×${height}×${channels} = ${width * height * channels}`);
  }
}

/** RGB view of an image: RGB as is, RGBA drops alpha, greyscale is replicated. */
export function toRgb(img: RawImage): RgbImage {
  validateImage(img);
  const { width, height, channels, data } = img;
  if (channels === 3) return { width, height, channels: 3, data };
  const n = width * height;
  if (channels === 1) return { width, height, channels: 3, data: greyToRgb(data, n, 1) };
  const out = new Uint8Array(n * 3);
  for (let i = 0, j = 0; i < n; i++, j += 4) {
    out[i * 3] = data[j]!;
    out[i * 3 + 1] = data[j + 1]!;
    out[i * 3 + 2] = data[j + 2]!;
  }
  return { width, height, channels: 3, data: out };
}

// ---------------------------------------------------------------------------------------------------------
// smart_resize

/** Python 3 round() of a double: nearest integer, ties to even. */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f; // exact for |x| < 2^52
  if (d < 0.5) return f;
  if (d > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

export interface SmartResizeOptions {
  /** patch_size × merge_size (default 32). */
  factor?: number;
  /** Default 65536. */
  minPixels?: number;
  /** Default 16777216. */
  maxPixels?: number;
}

/** Target size (multiples of factor) for an H×W image, as preprocess.py smart_resize (float64 maths). */
export function smartResize(height: number, width: number, opts: SmartResizeOptions = {}): { height: number; width: number } {
  const factor = opts.factor ?? 32;
  const minPixels = opts.minPixels ?? 65536;
  const maxPixels = opts.maxPixels ?? 16777216;
  if (!Number.isInteger(height) || height <= 0 || !Number.isInteger(width) || width <= 0) {
    throw new ImageError(`smartResize: height and width must be positive integers, got ${height}×${width}`);
  }
  if (!Number.isInteger(factor) || factor <= 0) throw new ImageError(`smartResize: factor must be a positive integer, got ${factor}`);
  if (!(minPixels >= 0) || !(maxPixels > 0)) throw new ImageError(`smartResize: bad pixel limits [${minPixels}, ${maxPixels}]`);
  if (Math.max(height, width) / Math.min(height, width) > 200) {
    throw new ImageError(`absolute aspect ratio must be smaller than 200, got ${Math.max(height, width) / Math.min(height, width)} (${width}×${height})`);
  }
  let hBar = roundHalfEven(height / factor) * factor;
  let wBar = roundHalfEven(width / factor) * factor;
  if (hBar * wBar > maxPixels) {
    const beta = Math.sqrt((height * width) / maxPixels);
    hBar = Math.max(factor, Math.floor(height / beta / factor) * factor);
    wBar = Math.max(factor, Math.floor(width / beta / factor) * factor);
  } else if (hBar * wBar < minPixels) {
    const beta = Math.sqrt(minPixels / (height * width));
    hBar = Math.ceil((height * beta) / factor) * factor;
    wBar = Math.ceil((width * beta) / factor) * factor;
  }
  if (hBar <= 0 || wBar <= 0) throw new ImageError(`smartResize: ${width}×${height} resizes to an empty ${wBar}×${hBar} image (min_pixels ${minPixels})`);
  return { height: hBar, width: wBar };
}

// ---------------------------------------------------------------------------------------------------------
// Bicubic antialiased resize (PIL geometry, float64, no intermediate rounding)

/** Per output index: first input index, tap count, and taps (row-major, `stride` taps per output). */
export interface FilterTable {
  nIn: number;
  nOut: number;
  xmin: Int32Array;
  count: Int32Array;
  stride: number;
  weights: Float64Array;
}

function cubic(t: number): number {
  const a = -0.5;
  t = Math.abs(t);
  if (t < 1.0) return ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0;
  if (t < 2.0) return (((t - 5.0) * t + 8.0) * t - 4.0) * a;
  return 0.0;
}

/** preprocess.py resample_weights, exactly (same operations in the same order). */
export function resampleWeights(nIn: number, nOut: number): FilterTable {
  const scale = nIn / nOut;
  const fscale = Math.max(scale, 1.0);
  const support = 2.0 * fscale;
  const xmin = new Int32Array(nOut);
  const count = new Int32Array(nOut);
  const stride = Math.ceil(support) * 2 + 2;
  const weights = new Float64Array(nOut * stride);
  for (let i = 0; i < nOut; i++) {
    const center = (i + 0.5) * scale;
    const lo = Math.max(Math.trunc(center - support + 0.5), 0);
    const hi = Math.min(Math.trunc(center + support + 0.5), nIn);
    const n = Math.max(hi - lo, 0);
    if (n > stride) throw new Error(`resampleWeights: ${n} taps > stride ${stride}`); // cannot happen
    const base = i * stride;
    let ww = 0.0;
    for (let k = 0; k < n; k++) {
      let t = lo + k - center;
      t = t + 0.5;
      t = t / fscale;
      const w = cubic(t);
      weights[base + k] = w;
      ww += w;
    }
    if (ww !== 0.0) for (let k = 0; k < n; k++) weights[base + k] = weights[base + k]! / ww;
    xmin[i] = lo;
    count[i] = n;
  }
  return { nIn, nOut, xmin, count, stride, weights };
}

const tableCache = new Map<string, FilterTable>();
const TABLE_CACHE_MAX = 32;

function cachedWeights(nIn: number, nOut: number): FilterTable {
  const key = `${nIn}:${nOut}`;
  let t = tableCache.get(key);
  if (t === undefined) {
    t = resampleWeights(nIn, nOut);
    if (tableCache.size >= TABLE_CACHE_MAX) tableCache.delete(tableCache.keys().next().value!);
    tableCache.set(key, t);
  }
  return t;
}

/** Horizontal pass: [h][w][3] → [h][nw][3] float64. */
function resampleRows(src: Uint8Array | Float64Array, h: number, w: number, t: FilterTable): Float64Array {
  const nw = t.nOut;
  const out = new Float64Array(h * nw * 3);
  const { xmin, count, stride, weights } = t;
  for (let y = 0; y < h; y++) {
    const rowIn = y * w * 3;
    const rowOut = y * nw * 3;
    for (let i = 0; i < nw; i++) {
      let r = 0.0;
      let g = 0.0;
      let b = 0.0;
      const n = count[i]!;
      const wb = i * stride;
      let p = rowIn + xmin[i]! * 3;
      for (let k = 0; k < n; k++, p += 3) {
        const wk = weights[wb + k]!;
        r += wk * src[p]!;
        g += wk * src[p + 1]!;
        b += wk * src[p + 2]!;
      }
      const o = rowOut + i * 3;
      out[o] = r;
      out[o + 1] = g;
      out[o + 2] = b;
    }
  }
  return out;
}

/** Vertical pass + round half to even + clip: [h][w][3] → uint8 [nh][w][3]. */
function resampleColsToU8(src: Uint8Array | Float64Array, w: number, t: FilterTable): Uint8Array {
  const nh = t.nOut;
  const rowLen = w * 3;
  const out = new Uint8Array(nh * rowLen);
  const acc = new Float64Array(rowLen);
  const { xmin, count, stride, weights } = t;
  for (let i = 0; i < nh; i++) {
    acc.fill(0);
    const n = count[i]!;
    const wb = i * stride;
    for (let k = 0; k < n; k++) {
      const wk = weights[wb + k]!;
      const p = (xmin[i]! + k) * rowLen;
      for (let j = 0; j < rowLen; j++) acc[j] = acc[j]! + wk * src[p + j]!;
    }
    const o = i * rowLen;
    for (let j = 0; j < rowLen; j++) out[o + j] = toU8(acc[j]!);
  }
  return out;
}

function toU8(v: number): number {
  const r = roundHalfEven(v);
  return r < 0 ? 0 : r > 255 ? 255 : r;
}

/**
 * Bicubic antialiased resize of an RGB uint8 image [h][w][3] to [newH][newW][3], bit-exact with
 * preprocess.py resize_bicubic_u8 (horizontal pass first, then vertical; a pass with equal sizes is skipped).
 */
export function resizeBicubic(rgb: Uint8Array, w: number, h: number, newW: number, newH: number): Uint8Array {
  for (const [k, v] of [['w', w], ['h', h], ['newW', newW], ['newH', newH]] as const) {
    if (!Number.isInteger(v) || v <= 0) throw new ImageError(`resizeBicubic: ${k} must be a positive integer, got ${v}`);
  }
  if (!(rgb instanceof Uint8Array) || rgb.length !== w * h * 3) {
    throw new ImageError(`resizeBicubic: expected a Uint8Array of ${w}×${h}×3 = ${w * h * 3} bytes, got ${rgb?.length}`);
  }
  let cur: Uint8Array | Float64Array = rgb;
  if (newW !== w) cur = resampleRows(rgb, h, w, cachedWeights(w, newW));
  if (newH !== h) return resampleColsToU8(cur, newW, cachedWeights(h, newH));
  if (cur === rgb) return rgb.slice();
  const f = cur as Float64Array;
  const out = new Uint8Array(f.length);
  for (let j = 0; j < f.length; j++) out[j] = toU8(f[j]!);
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Full preprocessing

export interface PreprocessedImage {
  /** [gh·gw, C·T·P·P] float32, rows in merge-block order, each row [c][t][py][px]. */
  pixelValues: Float32Array;
  /** image_grid_thw. */
  grid: { t: 1; h: number; w: number };
  /** The resized RGB uint8 image [h̄][w̄][3] (h̄ = grid.h·P, w̄ = grid.w·P). */
  resized: Uint8Array;
  /** Row width of pixelValues (C·T·P·P). */
  patchDim: number;
  /** LLM tokens of this image: gh·gw / merge². */
  numTokens: number;
}

const lutCache = new Map<string, Float32Array>();

/** float32(((p / 255) − mean) / std) for p = 0..255, per channel: [3][256]. */
function normLut(mean: readonly number[], std: readonly number[]): Float32Array {
  const key = `${mean.join(',')}|${std.join(',')}`;
  let lut = lutCache.get(key);
  if (lut === undefined) {
    lut = new Float32Array(3 * 256);
    for (let c = 0; c < 3; c++) for (let p = 0; p < 256; p++) lut[c * 256 + p] = (p / 255 - mean[c]!) / std[c]!;
    if (lutCache.size > 16) lutCache.clear();
    lutCache.set(key, lut);
  }
  return lut;
}

/** Patch flattening of an RGB uint8 image [H][W][3] (H, W multiples of patch·merge) into pixel_values. */
export function patchify(resized: Uint8Array, height: number, width: number, cfg: PreprocessorConfig): Float32Array {
  const P = cfg.patchSize;
  const T = cfg.temporalPatchSize;
  const M = cfg.mergeSize;
  const C = 3;
  const gh = height / P;
  const gw = width / P;
  if (!Number.isInteger(gh / M) || !Number.isInteger(gw / M)) throw new ImageError(`patchify: ${width}×${height} is not a multiple of ${P * M}`);
  const lut = normLut(cfg.imageMean, cfg.imageStd);
  const dim = C * T * P * P;
  const out = new Float32Array(gh * gw * dim);
  const bwN = gw / M;
  let r = 0;
  for (let bh = 0; bh < gh / M; bh++) {
    for (let bw = 0; bw < bwN; bw++) {
      for (let ih = 0; ih < M; ih++) {
        for (let iw = 0; iw < M; iw++, r++) {
          const y0 = (bh * M + ih) * P;
          const x0 = (bw * M + iw) * P;
          const rowBase = r * dim;
          for (let c = 0; c < C; c++) {
            const lb = c * 256;
            const cBase = rowBase + c * T * P * P;
            // t = 0
            for (let py = 0; py < P; py++) {
              let s = ((y0 + py) * width + x0) * 3 + c;
              const o = cBase + py * P;
              for (let px = 0; px < P; px++, s += 3) out[o + px] = lut[lb + resized[s]!]!;
            }
            // t = 1..T-1: identical frames
            const frame = P * P;
            for (let t = 1; t < T; t++) out.copyWithin(cBase + t * frame, cBase, cBase + frame);
          }
        }
      }
    }
  }
  return out;
}

/** Full preprocessing of one image (any of 1/3/4 channels) with the given processor config (default: README defaults). */
export function preprocessImage(img: RawImage, cfg: PreprocessorConfig = defaultPreprocessorConfig()): PreprocessedImage {
  validateImage(img);
  for (const k of ['patchSize', 'temporalPatchSize', 'mergeSize', 'minPixels', 'maxPixels'] as const) {
    const v = cfg[k];
    if (!Number.isInteger(v) || v < (k === 'minPixels' ? 0 : 1)) throw new ImageError(`preprocessImage: config ${k} must be a positive integer, got ${String(v)}`);
  }
  const rgb = toRgb(img);
  const factor = cfg.patchSize * cfg.mergeSize;
  const { height: hb, width: wb } = smartResize(rgb.height, rgb.width, { factor, minPixels: cfg.minPixels, maxPixels: cfg.maxPixels });
  const resized = resizeBicubic(rgb.data, rgb.width, rgb.height, wb, hb);
  const pixelValues = patchify(resized, hb, wb, cfg);
  const gh = hb / cfg.patchSize;
  const gw = wb / cfg.patchSize;
  return {
    pixelValues,
    grid: { t: 1, h: gh, w: gw },
    resized,
    patchDim: 3 * cfg.temporalPatchSize * cfg.patchSize * cfg.patchSize,
    numTokens: (gh * gw) / (cfg.mergeSize * cfg.mergeSize),
  };
}
