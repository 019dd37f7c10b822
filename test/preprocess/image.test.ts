// Image preprocessing, bit-exact against tools/reference/qvla_ref/preprocess.py:
// test/fixtures/preprocess.safetensors (tools/reference/make_preprocess_fixtures.py) and, when present, the
// resized images / pixel_values of the golden case fixtures.
import { existsSync, readFileSync } from 'node:fs';
import { encode as encodePng } from 'fast-png';
import jpeg from 'jpeg-js';
import { describe, expect, it } from 'vitest';
import { parseSafetensorsHeader } from '../../src/io/safetensors.js';
import { defaultPreprocessorConfig, parsePreprocessorConfig, type PreprocessorConfig } from '../../src/model/config.js';
import {
  decodeImageBytes,
  decodeImageFile,
  preprocessImage,
  resampleWeights,
  resizeBicubic,
  roundHalfEven,
  smartResize,
  toRgb,
  validateImage,
  type RawImage,
} from '../../src/preprocess/image.js';

function openFixture(path: string) {
  const bytes = new Uint8Array(readFileSync(path));
  const h = parseSafetensorsHeader(bytes, bytes.length, path);
  const raw = (n: string): Uint8Array => {
    const t = h.tensors.get(n);
    if (!t) throw new Error(`${path}: no tensor ${n}`);
    return bytes.slice(t.byteOffset, t.byteOffset + t.byteLength);
  };
  return {
    has: (n: string) => h.tensors.has(n),
    shape: (n: string) => h.tensors.get(n)!.shape,
    u8: (n: string) => raw(n),
    f32: (n: string) => new Float32Array(raw(n).buffer),
    meta: h.metadata!,
  };
}

function countDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let n = 0;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) n++;
  return n;
}

function sameF32Bits(a: Float32Array, b: Float32Array): number {
  return countDiff(new Uint32Array(a.buffer, a.byteOffset, a.length), new Uint32Array(b.buffer, b.byteOffset, b.length));
}

describe('roundHalfEven / smartResize', () => {
  it('rounds like Python round()', () => {
    const cases: [number, number][] = [[0.5, 0], [1.5, 2], [2.5, 2], [3.5, 4], [-0.5, 0], [-1.5, -2], [2.4999999999999996, 2],
      [2.5000000000000004, 3], [14.0625, 14], [0.49999999999999994, 0], [254.5, 254], [255.5, 256], [7, 7]];
    for (const [x, want] of cases) expect(roundHalfEven(x) === want, `${x} → ${roundHalfEven(x)}`).toBe(true);
  });

  it('spec examples', () => {
    const d = { factor: 32, minPixels: 65536, maxPixels: 16777216 };
    expect(smartResize(480, 640, d)).toEqual({ height: 480, width: 640 });
    expect(smartResize(224, 224, d)).toEqual({ height: 256, width: 256 });
    expect(smartResize(1080, 1920, d)).toEqual({ height: 1088, width: 1920 });
    expect(smartResize(480, 640)).toEqual({ height: 480, width: 640 }); // defaults
  });

  it('half-to-even ties: 48 → 64 (1.5 → 2), 80 → 64 (2.5 → 2), 16 → 0 → upscale', () => {
    expect(smartResize(48, 80, { factor: 32, minPixels: 1024, maxPixels: 1 << 24 })).toEqual({ height: 64, width: 64 });
    expect(smartResize(112, 144, { factor: 32, minPixels: 0, maxPixels: 1 << 24 })).toEqual({ height: 128, width: 128 });
    expect(smartResize(16, 48, { factor: 32, minPixels: 1024, maxPixels: 1 << 24 }).height).toBeGreaterThanOrEqual(32);
  });

  it('aspect ratio > 200 is an error; = 200 is not', () => {
    expect(() => smartResize(1, 201)).toThrow(/absolute aspect ratio must be smaller than 200/);
    expect(() => smartResize(1500, 5)).toThrow(/aspect ratio/);
    expect(() => smartResize(10, 2000)).not.toThrow();
    expect(() => smartResize(0, 10)).toThrow(/positive integers/);
  });

  it('all fixture examples (Python smart_resize)', () => {
    const fx = openFixture('test/fixtures/preprocess.safetensors');
    const ex = JSON.parse(fx.meta['smart_resize']!) as { h: number; w: number; factor: number; min: number; max: number; out?: number[]; error?: string }[];
    expect(ex.length).toBeGreaterThan(15);
    for (const e of ex) {
      const o = { factor: e.factor, minPixels: e.min, maxPixels: e.max };
      const label = JSON.stringify(e);
      if (e.error !== undefined) expect(() => smartResize(e.h, e.w, o), label).toThrow(/aspect ratio/);
      else if (e.out![0] === 0 || e.out![1] === 0) expect(() => smartResize(e.h, e.w, o), label).toThrow(/empty/);
      else expect(smartResize(e.h, e.w, o), label).toEqual({ height: e.out![0], width: e.out![1] });
    }
  });
});

describe('bicubic resize and pixel_values vs preprocess.py', () => {
  const fx = openFixture('test/fixtures/preprocess.safetensors');
  const cases = JSON.parse(fx.meta['cases']!) as {
    name: string; height: number; width: number; resized: [number, number]; grid_thw: number[]; pv: boolean;
    pp: { min_pixels: number; max_pixels: number; patch_size: number; temporal_patch_size: number; merge_size: number; image_mean: number[]; image_std: number[] };
  }[];
  it('covers upscale, downscale, mixed and one-axis cases', () => {
    expect(cases.length).toBeGreaterThanOrEqual(3);
    expect(cases.some((c) => c.resized[0] > c.height && c.resized[1] > c.width)).toBe(true);
    expect(cases.some((c) => c.resized[0] < c.height && c.resized[1] < c.width)).toBe(true);
  });
  cases.forEach((c, k) => {
    it(`${c.name}: ${c.height}×${c.width} → ${c.resized[0]}×${c.resized[1]}`, () => {
      const input = fx.u8(`case.${k}.input`);
      const want = fx.u8(`case.${k}.resized`);
      const rs = resizeBicubic(input, c.width, c.height, c.resized[1], c.resized[0]);
      expect(countDiff(rs, want)).toBe(0);
      const cfg: PreprocessorConfig = {
        minPixels: c.pp.min_pixels, maxPixels: c.pp.max_pixels, patchSize: c.pp.patch_size,
        temporalPatchSize: c.pp.temporal_patch_size, mergeSize: c.pp.merge_size,
        imageMean: c.pp.image_mean as [number, number, number], imageStd: c.pp.image_std as [number, number, number],
      };
      const out = preprocessImage({ width: c.width, height: c.height, channels: 3, data: input }, cfg);
      expect(out.grid).toEqual({ t: 1, h: c.grid_thw[1], w: c.grid_thw[2] });
      expect(countDiff(out.resized, want)).toBe(0);
      const dim = 3 * cfg.temporalPatchSize * cfg.patchSize * cfg.patchSize;
      expect(out.patchDim).toBe(dim);
      expect(out.pixelValues.length).toBe(c.grid_thw[1]! * c.grid_thw[2]! * dim);
      expect(out.numTokens).toBe((c.grid_thw[1]! * c.grid_thw[2]!) / cfg.mergeSize ** 2);
      if (c.pv) {
        expect(fx.shape(`case.${k}.pixel_values`)).toEqual([c.grid_thw[1]! * c.grid_thw[2]!, dim]);
        expect(sameF32Bits(out.pixelValues, fx.f32(`case.${k}.pixel_values`))).toBe(0);
      }
    });
  });

  it('RGBA and greyscale inputs give the RGB result', () => {
    const input = fx.u8('case.1.input');
    const c = cases[1]!;
    const cfg = { ...defaultPreprocessorConfig(), minPixels: c.pp.min_pixels, maxPixels: c.pp.max_pixels };
    const n = c.width * c.height;
    const rgba = new Uint8Array(n * 4);
    for (let i = 0; i < n; i++) {
      rgba.set(input.subarray(i * 3, i * 3 + 3), i * 4);
      rgba[i * 4 + 3] = i % 256;
    }
    const a = preprocessImage({ width: c.width, height: c.height, channels: 4, data: rgba }, cfg);
    const b = preprocessImage({ width: c.width, height: c.height, channels: 3, data: input }, cfg);
    expect(sameF32Bits(a.pixelValues, b.pixelValues)).toBe(0);
    const grey = new Uint8Array(n);
    for (let i = 0; i < n; i++) grey[i] = input[i * 3]!;
    const g = toRgb({ width: c.width, height: c.height, channels: 1, data: grey });
    expect(g.channels).toBe(3);
    expect(g.data[3 * 5 + 1]).toBe(grey[5]);
    expect(g.data[3 * 5 + 2]).toBe(grey[5]);
  });

  it('pixel_values layout: merge-block rows, [c][t][py][px], x = p/255·2 − 1', () => {
    // 64×32 image whose pixel (y, x, c) = (y + 2x + 50c) % 256; resize is the identity
    const H = 64, W = 32;
    const data = new Uint8Array(H * W * 3);
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) for (let c = 0; c < 3; c++) data[(y * W + x) * 3 + c] = (y + 2 * x + 50 * c) % 256;
    const cfg = { ...defaultPreprocessorConfig(), minPixels: 1024, maxPixels: 4096 };
    const out = preprocessImage({ width: W, height: H, channels: 3, data }, cfg);
    expect(out.grid).toEqual({ t: 1, h: 4, w: 2 });
    expect(out.numTokens).toBe(2);
    const gw = 2;
    const row = (gy: number, gx: number): number => {
      const bh = gy >> 1, ih = gy & 1, bw = gx >> 1, iw = gx & 1;
      return ((bh * (gw / 2) + bw) * 2 + ih) * 2 + iw;
    };
    for (let gy = 0; gy < 4; gy++) {
      for (let gx = 0; gx < 2; gx++) {
        const r = row(gy, gx);
        for (const [c, t, py, px] of [[0, 0, 0, 0], [2, 1, 15, 15], [1, 0, 3, 9], [1, 1, 3, 9], [2, 0, 7, 1]] as const) {
          const p = data[((gy * 16 + py) * W + gx * 16 + px) * 3 + c]!;
          expect(out.pixelValues[r * 1536 + ((c * 2 + t) * 16 + py) * 16 + px]).toBe(Math.fround((p / 255) * 2 - 1));
        }
      }
    }
  });

  it('filter weights are normalised and the resize is fast', () => {
    const t = resampleWeights(640, 224);
    for (let i = 0; i < t.nOut; i++) {
      let s = 0;
      for (let k = 0; k < t.count[i]!; k++) s += t.weights[i * t.stride + k]!;
      expect(Math.abs(s - 1)).toBeLessThan(1e-12);
    }
    const W = 640, H = 480;
    const data = new Uint8Array(W * H * 3);
    for (let i = 0; i < data.length; i++) data[i] = (i * 2654435761) >>> 24;
    const cfg = { ...defaultPreprocessorConfig(), minPixels: 16384, maxPixels: 65536 };
    preprocessImage({ width: W, height: H, channels: 3, data }, cfg); // warm-up
    const t0 = performance.now();
    const out = preprocessImage({ width: W, height: H, channels: 3, data }, cfg);
    const ms = performance.now() - t0;
    expect(out.grid).toEqual({ t: 1, h: 12, w: 18 }); // 480×640 → 192×288
    expect(ms).toBeLessThan(1500); // ~10 ms on an idle core; loose bound for loaded CI machines
  });
});

describe('validation', () => {
  const ok: RawImage = { width: 2, height: 2, channels: 3, data: new Uint8Array(12) };
  it('rejects bad images with clear errors', () => {
    expect(() => validateImage(ok)).not.toThrow();
    expect(() => validateImage({ ...ok, width: 0 })).toThrow(/width must be a positive integer, got 0/);
    expect(() => validateImage({ ...ok, height: 1.5 })).toThrow(/height must be a positive integer, got 1.5/);
    expect(() => validateImage({ ...ok, channels: 2 as 3 })).toThrow(/channels must be 1, 3 or 4, got 2/);
    expect(() => validateImage({ ...ok, data: new Uint8Array(11) })).toThrow(/data has 11 bytes, expected 2×2×3 = 12/);
    expect(() => validateImage({ ...ok, data: new Float32Array(12) as unknown as Uint8Array })).toThrow(/data must be a Uint8Array .*Float32Array/);
    expect(() => preprocessImage({ ...ok, data: new Uint8Array(5) })).toThrow(/data has 5 bytes/);
    expect(() => resizeBicubic(new Uint8Array(5), 2, 2, 4, 4)).toThrow(/expected a Uint8Array of 2×2×3 = 12 bytes/);
  });
});

describe('decoding', () => {
  it('PNG: RGB, RGBA, grey, grey+alpha, 16-bit, palette', () => {
    const w = 5, h = 3, n = w * h;
    const rgb = new Uint8Array(n * 3).map((_, i) => (i * 37) & 255);
    const d1 = decodeImageBytes(encodePng({ width: w, height: h, data: rgb, channels: 3, depth: 8 }));
    expect(d1).toMatchObject({ width: w, height: h, channels: 3 });
    expect(Array.from(d1.data)).toEqual(Array.from(rgb));
    const rgba = new Uint8Array(n * 4).map((_, i) => (i * 11) & 255);
    const d2 = decodeImageBytes(encodePng({ width: w, height: h, data: rgba, channels: 4, depth: 8 }));
    expect(d2.channels).toBe(4);
    expect(Array.from(d2.data)).toEqual(Array.from(rgba));
    expect(Array.from(toRgb(d2).data.subarray(0, 6))).toEqual([rgba[0], rgba[1], rgba[2], rgba[4], rgba[5], rgba[6]]);
    const grey = new Uint8Array(n).map((_, i) => i * 9);
    const d3 = decodeImageBytes(encodePng({ width: w, height: h, data: grey, channels: 1, depth: 8 }));
    expect(d3.channels).toBe(3);
    expect(Array.from(d3.data.subarray(9, 12))).toEqual([27, 27, 27]);
    const ga = new Uint8Array(n * 2).map((_, i) => i);
    const d4 = decodeImageBytes(encodePng({ width: w, height: h, data: ga, channels: 2, depth: 8 }));
    expect(d4.channels).toBe(4);
    expect(Array.from(d4.data.subarray(4, 8))).toEqual([2, 2, 2, 3]);
    const s16 = new Uint16Array(n * 3).map((_, i) => i * 1000 + 255);
    const d5 = decodeImageBytes(encodePng({ width: w, height: h, data: s16, channels: 3, depth: 16 }));
    expect(d5.channels).toBe(3);
    expect(d5.data[7]).toBe((7 * 1000 + 255) >> 8);
    const idx = new Uint8Array(n).map((_, i) => i % 3);
    const d6 = decodeImageBytes(encodePng({ width: w, height: h, data: idx, channels: 1, depth: 8, palette: [[255, 0, 0], [0, 255, 0], [0, 0, 255]] }));
    expect(d6.channels).toBe(3);
    expect(Array.from(d6.data.subarray(0, 9))).toEqual([255, 0, 0, 0, 255, 0, 0, 0, 255]);
  });

  it('JPEG (lossy: close to the source)', () => {
    const w = 16, h = 8;
    const rgba = new Uint8Array(w * h * 4);
    for (let i = 0; i < w * h; i++) rgba.set([100, 150, 200, 255], i * 4);
    const enc = jpeg.encode({ width: w, height: h, data: rgba }, 95);
    const d = decodeImageBytes(new Uint8Array(enc.data));
    expect(d).toMatchObject({ width: w, height: h, channels: 3 });
    for (let i = 0; i < w * h; i++) {
      expect(Math.abs(d.data[i * 3]! - 100)).toBeLessThan(4);
      expect(Math.abs(d.data[i * 3 + 2]! - 200)).toBeLessThan(4);
    }
  });

  it('errors name the source', async () => {
    await expect(decodeImageFile('/nonexistent/x.png')).rejects.toThrow(/\/nonexistent\/x\.png: cannot read image/);
    expect(() => decodeImageBytes(new Uint8Array([1, 2, 3, 4]))).toThrow(/unsupported image format \(expected PNG or JPEG\)/);
    const broken = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0]);
    expect(() => decodeImageBytes(broken, 'cam.png')).toThrow(/cam\.png: cannot decode PNG/);
  });
});

// ------------------------------------------------------------------------------------------------------
// The golden case fixtures: samples decoded from PNG, resized and patchified with the checkpoint's processor.

describe('golden case fixtures (preprocess.py through qvla_ref.model)', () => {
  const cases: [string, string][] = [
    ['test/fixtures/case_a_tiny_widowx.safetensors', 'weights/tiny'],
    ['test/fixtures/case_b_two_images.safetensors', 'test/fixtures/fixture_b'],
    ['test/fixtures/case_d_tiny_aloha.safetensors', 'weights/tiny'],
    ['test/fixtures/case_e_tiny_chat.safetensors', 'weights/tiny'],
  ];
  for (const [file, ckpt] of cases) {
    it.skipIf(!existsSync(file) || !existsSync(`${ckpt}/preprocessor_config.json`))(file, async () => {
      const fx = openFixture(file);
      const meta = JSON.parse(fx.meta['case']!) as { images: { source: string; grid_thw: number[] }[] };
      const cfg = parsePreprocessorConfig(JSON.parse(readFileSync(`${ckpt}/preprocessor_config.json`, 'utf8')));
      for (let i = 0; i < meta.images.length; i++) {
        const [H, W] = fx.shape(`input.image.${i}`) as number[];
        const input = fx.u8(`input.image.${i}`);
        const src = meta.images[i]!.source;
        if (src.endsWith('.png') && existsSync(src)) {
          const dec = await decodeImageFile(src);
          expect(countDiff(dec.data, input)).toBe(0);
        }
        const out = preprocessImage({ width: W!, height: H!, channels: 3, data: input }, cfg);
        expect([1, out.grid.h, out.grid.w]).toEqual(meta.images[i]!.grid_thw);
        expect(countDiff(out.resized, fx.u8(`vision.resized.${i}`))).toBe(0);
        if (fx.has(`vision.pixel_values.${i}`)) expect(sameF32Bits(out.pixelValues, fx.f32(`vision.pixel_values.${i}`))).toBe(0);
      }
    });
  }
});
