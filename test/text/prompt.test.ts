// Prompt builders against token ids produced by the Python reference (tools/reference/qvla_ref/prompt.py):
// test/fixtures/prompts.json (tools/reference/make_prompt_fixtures.py) and, when present, the input ids of the
// golden case fixtures (test/fixtures/case_*.safetensors).
import { existsSync, readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseSafetensorsHeader } from '../../src/io/safetensors.js';
import { parseEmbodiments, type Embodiment, type EmbodimentRegistry } from '../../src/policy/embodiments.js';
import {
  buildActionPrompt,
  buildChatPrompt,
  embodimentText,
  formatNumber,
  imageTokenCount,
  type ChatMessage,
  type PromptResult,
} from '../../src/text/prompt.js';
import { QvlaTokenizer } from '../../src/text/tokenizer.js';

interface ActionCase { kind: 'action'; embodiment: string; instruction: string; images: { camera: string | null; gridH: number; gridW: number }[]; text: string; ids: number[]; mm: number[] }
interface ChatCase { kind: 'chat'; messages: ChatMessage[]; images: { gridH: number; gridW: number }[]; thinking: boolean; text: string; ids: number[]; mm: number[] }
const fx = JSON.parse(readFileSync('test/fixtures/prompts.json', 'utf8')) as {
  embodiments: Record<string, unknown>;
  cases: (ActionCase | ChatCase | { kind: 'encode' })[];
};
const LIMITS = { kMax: 80, sMax: 80, hMax: 50 };

let tok: QvlaTokenizer;
let reg: EmbodimentRegistry;
beforeAll(async () => {
  tok = await QvlaTokenizer.load('weights/tiny');
  reg = parseEmbodiments({ version: 1, embodiments: fx.embodiments }, LIMITS);
});

function checkResult(r: PromptResult, c: { text: string; ids: number[]; mm: number[] }, images: { gridH: number; gridW: number }[]): void {
  expect(r.text).toBe(c.text);
  expect(Array.from(r.ids)).toEqual(c.ids);
  expect(Array.from(r.mmTokenTypeIds)).toEqual(c.mm);
  expect(r.imagePadRuns.length).toBe(images.length);
  r.imagePadRuns.forEach((run, i) => {
    expect(run.count).toBe((images[i]!.gridH * images[i]!.gridW) / 4);
    for (let k = 0; k < run.count; k++) expect(r.ids[run.start + k]).toBe(tok.specialIds.imagePad);
    expect(r.ids[run.start - 1]).toBe(tok.specialIds.visionStart);
    expect(r.ids[run.start + run.count]).toBe(tok.specialIds.visionEnd);
  });
}

describe('action prompt (vs prompt.py)', () => {
  const cases = fx.cases.filter((c): c is ActionCase => c.kind === 'action');
  it('has cases with 0, 1 and 3 images', () => {
    const n = new Set(cases.map((c) => c.images.length));
    expect([...n].sort()).toEqual([0, 1, 2, 3]);
  });
  cases.forEach((c, k) => {
    it(`case ${k}: ${c.embodiment}, ${c.images.length} image(s), ${JSON.stringify(c.instruction)}`, () => {
      const r = buildActionPrompt(tok, reg.get(c.embodiment), c.instruction, c.images);
      checkResult(r, c, c.images);
    });
  });

  it('exact ids for widowx + one 4×6 image (literal, from prompt.py)', () => {
    // /usr/bin/python3: action_prompt(widowx, "put the carrot in the pot", [("image_0", 6)], tiny tokenizer)
    const want = [3257, 872, 198, 2269, 65, 347, 318, 306, 25, 467, 307, 363, 55, 220, 17, 20, 15, 11, 3175, 220, 21,
      12, 35, 78, 37, 796, 76, 448, 264, 1346, 278, 273, 75, 342, 461, 602, 261, 389, 264, 1965, 83, 453, 13, 356, 309,
      261, 300, 25, 2168, 62, 15, 13, 2093, 1080, 25, 835, 12, 68, 542, 1256, 1594, 2565, 281, 960, 11, 220, 22, 12,
      35, 284, 508, 87, 11, 379, 11, 1147, 11, 926, 654, 11, 281, 1610, 11, 379, 672, 11, 342, 461, 602, 261, 1125,
      220, 20, 472, 89, 11, 521, 3122, 220, 19, 624, 1805, 62, 15, 25, 220, 3265, 3268, 3268, 3268, 3268, 3268, 3268,
      3266, 198, 51, 1073, 25, 2182, 279, 1803, 299, 83, 304, 279, 281, 354, 3258, 198, 3257, 395, 380, 517, 198, 3280,
      271, 3281, 271];
    const r = buildActionPrompt(tok, reg.get('widowx'), 'put the carrot in the pot', [{ camera: 'image_0', gridH: 4, gridW: 6 }]);
    expect(Array.from(r.ids)).toEqual(want);
    expect(r.imagePadRuns).toEqual([{ start: want.indexOf(3268), count: 6 }]);
    expect(Array.from(r.mmTokenTypeIds)).toEqual(want.map((id) => (id === 3268 ? 1 : 0)));
  });
});

describe('chat prompt (vs prompt.py)', () => {
  const cases = fx.cases.filter((c): c is ChatCase => c.kind === 'chat');
  it('covers thinking on and off', () => {
    expect(cases.some((c) => c.thinking)).toBe(true);
    expect(cases.some((c) => !c.thinking)).toBe(true);
  });
  cases.forEach((c, k) => {
    it(`case ${k}: ${c.messages.length} message(s), ${c.images.length} image(s), thinking ${c.thinking}`, () => {
      const r = buildChatPrompt(tok, c.messages, c.images, { thinking: c.thinking });
      checkResult(r, c, c.images);
    });
  });

  it('generation prompt endings', () => {
    const S = tok.specialIds;
    const on = buildChatPrompt(tok, [{ role: 'user', content: 'hi' }], [], { thinking: true }).ids;
    const off = buildChatPrompt(tok, [{ role: 'user', content: 'hi' }], [], {}).ids;
    expect(Array.from(on.slice(-2))).toEqual([S.thinkStart, 198]);
    expect(Array.from(off.slice(-4))).toEqual([S.thinkStart, 271, S.thinkEnd, 271]);
    expect(buildChatPrompt(tok, [{ role: 'user', content: 'hi' }], []).text).toBe(
      '<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n');
  });

  it('errors: image count mismatch, images without a user turn, misplaced system', () => {
    expect(() => buildChatPrompt(tok, [{ role: 'user', content: 'a', images: 1 }], [])).toThrow(/1 image parts but 0 images/);
    expect(() => buildChatPrompt(tok, [{ role: 'system', content: 'a' }], [{ gridH: 2, gridW: 2 }])).toThrow(/images need a user turn/);
    expect(() => buildChatPrompt(tok, [{ role: 'user', content: 'a' }, { role: 'system', content: 'b' }], [])).toThrow(/system message must be first/);
    expect(() => buildChatPrompt(tok, [{ role: 'user', content: 'a <|image_pad|>' }], [])).toThrow(/more image pads in the prompt than images/);
  });
});

describe('embodiment text, numbers, budget', () => {
  it('generated texts', () => {
    expect(embodimentText(reg.get('aloha'))).toBe(
      'Embodiment: AgileX ALOHA, bimanual, two 6-DoF arms with parallel grippers. Cameras: cam_high, cam_left_wrist, ' +
      'cam_right_wrist. Control: absolute joint positions, 14-D = [left_j1, left_j2, left_j3, left_j4, left_j5, left_j6, ' +
      'left_gripper, right_j1, right_j2, right_j3, right_j4, right_j5, right_j6, right_gripper], 50 Hz, chunk 16.');
    expect(embodimentText(reg.get('nav'))).toBe(
      'Embodiment: Wheeled mobile base, differential-drive robot with one forward-facing camera. Cameras: front. ' +
      'Control: waypoints, 8 future waypoints (x forward, y left, yaw) in the current robot frame, meters/radians, 2 Hz.');
    expect(embodimentText(reg.get('testbot'))).toContain('12.5 Hz, chunk 7.');
    expect(embodimentText(reg.get('widowx_explicit'))).toBe('Embodiment: a custom robot described by hand; 7-D actions.');
  });

  it('formatNumber is String(n) without exponents', () => {
    expect(formatNumber(50)).toBe('50');
    expect(formatNumber(2.5)).toBe('2.5');
    expect(formatNumber(0.1)).toBe('0.1');
    expect(formatNumber(-3)).toBe('-3');
    expect(() => formatNumber(1e-7)).toThrow(/exponent/);
    expect(() => formatNumber(1e21)).toThrow(/exponent/);
    expect(() => formatNumber(Number.NaN)).toThrow(/non-finite/);
  });

  it('image token counts and merge size', () => {
    expect(imageTokenCount({ gridH: 30, gridW: 40 })).toBe(300);
    expect(imageTokenCount({ gridH: 68, gridW: 120 })).toBe(2040);
    expect(imageTokenCount({ gridH: 3, gridW: 4 }, 1)).toBe(12);
    expect(() => imageTokenCount({ gridH: 3, gridW: 4 })).toThrow(/not divisible by merge_size 2/);
    expect(() => imageTokenCount({ gridH: 0, gridW: 4 })).toThrow(/gridH must be a positive integer/);
    const r = buildActionPrompt(tok, reg.get('widowx'), 'x', [{ gridH: 3, gridW: 4 }], { mergeSize: 1 });
    expect(r.imagePadRuns[0]!.count).toBe(12);
  });

  it('context budget', () => {
    const emb: Embodiment = reg.get('aloha');
    const imgs = [{ camera: 'cam_high', gridH: 8, gridW: 10 }];
    const n = buildActionPrompt(tok, emb, 'fold', imgs).ids.length;
    expect(buildActionPrompt(tok, emb, 'fold', imgs, { maxTokens: n }).ids.length).toBe(n);
    expect(() => buildActionPrompt(tok, emb, 'fold', imgs, { maxTokens: n - 1 }))
      .toThrow(`prompt has ${n} tokens, over the context budget ${n - 1}`);
    expect(() => buildChatPrompt(tok, [{ role: 'user', content: 'hi' }], [{ gridH: 64, gridW: 64 }], { maxTokens: 100 }))
      .toThrow(/prompt has \d+ tokens, over the context budget 100/);
  });
});

// ------------------------------------------------------------------------------------------------------
// The golden case fixtures (made by tools/reference/make_fixtures.py): same ids from the same inputs.

function readCase(path: string): { meta: Record<string, unknown>; i32: (name: string) => Int32Array } {
  const bytes = new Uint8Array(readFileSync(path));
  const h = parseSafetensorsHeader(bytes, bytes.length, path);
  const i32 = (name: string): Int32Array => {
    const t = h.tensors.get(name)!;
    return new Int32Array(bytes.slice(t.byteOffset, t.byteOffset + t.byteLength).buffer);
  };
  return { meta: JSON.parse(h.metadata!['case']!) as Record<string, unknown>, i32 };
}

describe('golden case fixtures', () => {
  const files = ['case_a_tiny_widowx', 'case_b_two_images', 'case_c_t2a_nav', 'case_d_tiny_aloha', 'case_e_tiny_chat']
    .map((n) => `test/fixtures/${n}.safetensors`);
  for (const f of files) {
    it.skipIf(!existsSync(f))(`${f}: input_ids and mm_token_type_ids`, () => {
      const { meta, i32 } = readCase(f);
      const ckpt = meta['checkpoint'] as string;
      const raw = JSON.parse(readFileSync(`${ckpt}/embodiments.json`, 'utf8')) as unknown;
      const r2 = parseEmbodiments(raw, LIMITS);
      const images = (meta['images'] as { camera: string | null; grid_thw: number[] }[])
        .map((im) => ({ camera: im.camera, gridH: im.grid_thw[1]!, gridW: im.grid_thw[2]! }));
      const p = meta['prompt'] as { kind: string; embodiment?: string; instruction?: string; text?: string };
      const r = p.kind === 'action'
        ? buildActionPrompt(tok, r2.get(p.embodiment!), p.instruction!, images)
        : buildChatPrompt(tok, [{ role: 'user', content: p.text! }], images);
      expect(r.text).toBe(meta['prompt_text']);
      expect(Array.from(r.ids)).toEqual(Array.from(i32('input.input_ids')));
      expect(Array.from(r.mmTokenTypeIds)).toEqual(Array.from(i32('input.mm_token_type_ids')));
    });
  }
});
