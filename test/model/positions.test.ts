// src/model/positions.ts: the rope index of docs/architecture.md §6.2 (worked examples and the Python reference fixtures), merge-block patch
// coordinates, decode positions.
import { describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { openSafetensors } from '../../src/io/safetensors.js';
import { decodePositions, ropeIndex, visionPatchCoords } from '../../src/model/positions.js';

const text = (n: number) => new Array<number>(n).fill(0);
const image = (n: number) => new Array<number>(n).fill(1);

describe('ropeIndex', () => {
  it('256×256 image: 64 tokens, rope_delta −56 (worked example)', () => {
    // <|im_start|>user\n<|vision_start|> (4) · 64 image pads · <|vision_end|> + 9 text tokens
    const types = [...text(4), ...image(64), ...text(10)];
    const { positions: p, ropeDelta } = ropeIndex(types, [{ t: 1, h: 16, w: 16 }], 2);
    const L = types.length;
    expect(ropeDelta).toBe(-56);
    for (let k = 0; k < 4; k++) for (let a = 0; a < 3; a++) expect(p[a * L + k]).toBe(k);
    for (let r = 0; r < 8; r++) {
      for (let c = 0; c < 8; c++) {
        const k = 4 + r * 8 + c;
        expect([p[k], p[L + k], p[2 * L + k]]).toEqual([4, 4 + r, 4 + c]);
      }
    }
    for (let k = 68; k < L; k++) for (let a = 0; a < 3; a++) expect(p[a * L + k]).toBe(12 + (k - 68)); // vision_end = 12
  });

  it('1024×1024 image: 1024 tokens, rope_delta −992', () => {
    const types = [...text(4), ...image(1024), ...text(6)];
    const { positions: p, ropeDelta } = ropeIndex(types, [{ t: 1, h: 64, w: 64 }], 2);
    expect(ropeDelta).toBe(-992);
    const L = types.length;
    expect([p[4 + 1023], p[L + 4 + 1023], p[2 * L + 4 + 1023]]).toEqual([4, 35, 35]);
    expect(p[4 + 1024]).toBe(36);
  });

  it('non-square image advances by max(gh, gw)/2; delta independent of surrounding text', () => {
    const types = [...text(3), ...image(6 * 11), ...text(2)];
    const { positions: p, ropeDelta } = ropeIndex(types, [{ t: 1, h: 12, w: 22 }], 2);
    expect(ropeDelta).toBe(3 + 11 + 2 - types.length);
    const L = types.length;
    expect(p[3 + 66]).toBe(14); // text after the image resumes at 3 + 11
    expect([p[3 + 65], p[L + 3 + 65], p[2 * L + 3 + 65]]).toEqual([3, 3 + 5, 3 + 10]);
  });

  it('text only: all axes 0..L−1, delta 0; empty sequence', () => {
    const { positions, ropeDelta } = ropeIndex(text(5), [], 2);
    expect(Array.from(positions)).toEqual([0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1, 2, 3, 4]);
    expect(ropeDelta).toBe(0);
    expect(ropeIndex([], [], 2)).toEqual({ positions: new Int32Array(0), ropeDelta: 0 });
  });

  it('image at the very end (max comes from the image positions)', () => {
    const { positions: p, ropeDelta } = ropeIndex([...text(2), ...image(4 * 2)], [{ t: 1, h: 8, w: 4 }], 2);
    expect(ropeDelta).toBe(2 + 4 - 10);
    expect(Math.max(...p) + 1 - 10).toBe(ropeDelta);
  });

  it('rejects mismatched runs, missing or extra grids, and videos', () => {
    expect(() => ropeIndex([...text(1), ...image(5)], [{ t: 1, h: 4, w: 4 }], 2)).toThrow(/needs 4/);
    expect(() => ropeIndex([...text(1), ...image(4)], [], 2)).toThrow(/only 0 image grid/);
    expect(() => ropeIndex(text(3), [{ t: 1, h: 4, w: 4 }], 2)).toThrow(/1 image grids given/);
    expect(() => ropeIndex([0, 2, 0], [], 2)).toThrow(/not supported/);
    expect(() => ropeIndex([0, 1, 0], [{ t: 1, h: 3, w: 2 }], 2)).toThrow(/divisible/);
  });

  const fixtures = ['case_a_tiny_widowx', 'case_b_two_images', 'case_c_t2a_nav', 'case_d_tiny_aloha', 'case_e_tiny_chat'];
  for (const name of fixtures) {
    const path = `test/fixtures/${name}.safetensors`;
    it.skipIf(!existsSync(path))(`matches the Python reference fixture ${name}`, async () => {
      const f = await openSafetensors(path);
      try {
        const i32 = async (k: string) => { const b = await f.readTensor(k); return new Int32Array(b.slice().buffer); };
        const mm = await i32('input.mm_token_type_ids');
        const g = await i32('input.image_grid_thw');
        const grids = [];
        for (let k = 0; k < g.length; k += 3) grids.push({ t: g[k], h: g[k + 1], w: g[k + 2] });
        const { positions, ropeDelta } = ropeIndex(mm, grids, 2);
        expect(Array.from(positions)).toEqual(Array.from(await i32('input.position_ids')));
        expect(ropeDelta).toBe((await i32('input.rope_delta'))[0]);
      } finally {
        await f.close();
      }
    });
  }
});

describe('visionPatchCoords', () => {
  it('merge-block order (bh, bw, ih, iw), [2, Np] rows then cols', () => {
    const c = visionPatchCoords([{ t: 1, h: 4, w: 4 }]);
    expect(Array.from(c.subarray(0, 16))).toEqual([0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 3, 3, 2, 2, 3, 3]);
    expect(Array.from(c.subarray(16))).toEqual([0, 1, 0, 1, 2, 3, 2, 3, 0, 1, 0, 1, 2, 3, 2, 3]);
  });

  it('repeats per t and concatenates images; patch k of row-major block order covers its pixel block', () => {
    const grids = [{ t: 2, h: 2, w: 4 }, { t: 1, h: 6, w: 2 }];
    const c = visionPatchCoords(grids);
    const np = 2 * 8 + 12;
    expect(c.length).toBe(2 * np);
    expect(Array.from(c.subarray(0, 8))).toEqual(Array.from(c.subarray(8, 16)));
    // every (r, c) of each frame appears exactly once
    const seen = new Set<string>();
    for (let k = 16; k < np; k++) seen.add(`${c[k]},${c[np + k]}`);
    expect(seen.size).toBe(12);
    // second image, patch 4 = block (bh=1, bw=0), sub-patch (0, 0)
    expect([c[16 + 4], c[np + 16 + 4]]).toEqual([2, 0]);
  });

  it('other merge sizes and errors', () => {
    const c = visionPatchCoords([{ t: 1, h: 3, w: 3 }], 3);
    expect(Array.from(c.subarray(0, 9))).toEqual([0, 0, 0, 1, 1, 1, 2, 2, 2]);
    expect(() => visionPatchCoords([{ t: 1, h: 5, w: 4 }])).toThrow(/divisible/);
  });
});

describe('decodePositions', () => {
  it('n + ropeDelta on all three axes', () => {
    expect(Array.from(decodePositions(78, 2, -56))).toEqual([22, 23, 22, 23, 22, 23]);
    expect(decodePositions(5, 0, 0).length).toBe(0);
  });
});
