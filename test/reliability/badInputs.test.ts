// Bad inputs everywhere get a clear error naming the problem, and leave everything usable:
// - act(): every malformed request field not already covered by test/policy/policy.test.ts ("bad requests get
//   an error naming the field"). After each error the same policy reproduces the reference actions bit for bit
//   (checked against the float64 reference fixture once) and holds no more GPU tensors / buffers than before.
// - Policy.load(): corrupted copies of weights/tiny (config.json, tokenizer.json, embodiments.json,
//   preprocessor_config.json, tensors that do not match the config, a truncated weights file) → a
//   CheckpointError naming the file and the field / tensor, with no file handle left open.
// Component-level parser errors are covered by test/io/*.test.ts, test/text/tokenizer.test.ts and
// test/policy/embodiments.test.ts; the parsers are fuzzed in test/reliability/fuzz*.test.ts.
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CheckpointError } from '../../src/io/errors.js';
import { Policy, PolicyError, type ActRequest } from '../../src/policy/policy.js';
import { Fixture, errors, TINY_DIR } from '../../src/testing/fixtures.js';
import { copyTiny, editJson, openFds, rewriteWeights, rmTmp, sameBits } from './helpers.js';

let policy: Policy;
let ref: ActRequest;
let refRaw: Float32Array;
let tmp: string;
const img = (w: number, h: number, c = 3, data?: unknown) => ({ width: w, height: h, channels: c, data: data ?? new Uint8Array(w * h * c) });

beforeAll(async () => {
  policy = await Policy.load(TINY_DIR);
  // The reference: case_c (text-only nav, stored noise, 1 Euler step) from the float64 PyTorch reference.
  const fx = await Fixture.load('case_c_t2a_nav');
  ref = { instruction: fx.meta.prompt.instruction, embodiment: fx.meta.prompt.embodiment, noise: fx.f32('sample.noise'), steps: 1, solver: 'euler' };
  refRaw = (await policy.act(ref)).raw;
  expect(errors(refRaw, fx.f32('sample.euler_1')).rel).toBeLessThan(1e-3);
  // warm every embodiment once (masks are cached on first use) so the live-tensor count is steady
  await policy.act({ instruction: 'x', embodiment: 'widowx', steps: 1, state: new Array(8).fill(0) });
  await policy.act({ instruction: 'x', embodiment: 'aloha', steps: 1, state: new Array(14).fill(0) });
  tmp = await fsp.mkdtemp(path.join((await import('node:os')).tmpdir(), 'qvla-bad-'));
  await fsp.writeFile(path.join(tmp, 'corrupt.png'), 'this is not a PNG');
  await fsp.writeFile(path.join(tmp, 'truncated.png'), (await fsp.readFile(path.join(TINY_DIR, 'samples', 'nav_front.png'))).subarray(0, 200));
});
afterAll(async () => {
  policy?.destroy();
  if (tmp) await rmTmp(tmp);
});

describe('act(): bad requests → an error naming the problem; the policy still produces the reference actions', () => {
  const base = (): ActRequest => ({ instruction: 'pick up the cup', embodiment: 'widowx', images: [img(64, 48) as never], state: [0, 0, 0, 0, 0, 0, 0, 0], steps: 1 });
  // [name, patch (merged into base), expected message, error class]
  const cases: [string, Record<string, unknown> | (() => unknown), RegExp, typeof PolicyError | typeof CheckpointError][] = [
    ['image with 2 channels', { images: [img(4, 4, 2)] }, /images\[0\].*channels must be 1, 3 or 4, got 2/, PolicyError],
    ['image with Float32Array data', { images: [img(4, 4, 3, new Float32Array(48))] }, /images\[0\].*Uint8Array.*Float32Array/, PolicyError],
    ['image null', { images: [null] }, /images\[0\].*must be \{width, height, channels, data\}/, PolicyError],
    ['image a number', { images: [5] }, /images\[0\]/, PolicyError],
    ['images neither list nor map', { images: 'frame.png' }, /images: must be an array of images or an object keyed by camera name/, PolicyError],
    ['image claims 1e9×1e9 with 3 bytes', { images: [img(1e9, 1e9, 3, new Uint8Array(3))] }, /images\[0\].*data has 3 bytes/, PolicyError],
    ['image negative width', { images: [img(-4, 4, 3, new Uint8Array(48))] }, /images\[0\].*width must be a positive integer/, PolicyError],
    ['image NaN height', { images: [img(4, NaN, 3, new Uint8Array(48))] }, /images\[0\].*height must be a positive integer/, PolicyError],
    ['image aspect ratio 5000', { images: [img(10000, 2)] }, /images\[0\].*aspect ratio/, PolicyError],
    ['image file missing', { images: ['/nonexistent/frame.png'] }, /images\[0\].*frame\.png.*(ENOENT|no such file)/, PolicyError],
    ['image file not an image', () => ({ ...base(), images: [path.join(tmp, 'corrupt.png')] }), /images\[0\].*corrupt\.png.*unsupported image format/, PolicyError],
    ['image file truncated PNG', () => ({ ...base(), images: [path.join(tmp, 'truncated.png')] }), /images\[0\].*truncated\.png/, PolicyError],
    ['camera map with a null frame', { images: { image_0: null } }, /images\[0\]/, PolicyError],
    ['state +Inf', { state: [Infinity, 0, 0, 0, 0, 0, 0, 0] }, /state: .*channel 0 \("x"\) is Infinity/, PolicyError],
    ['state -Inf', { state: [0, 0, 0, 0, 0, 0, 0, -Infinity] }, /state: .*channel 7 .* is -Infinity/, PolicyError],
    ['state NaN in a Float64Array', { state: new Float64Array([0, 0, NaN, 0, 0, 0, 0, 0]) }, /state: .*channel 2 .* is NaN/, PolicyError],
    ['state with a string value', { state: ['a', 0, 0, 0, 0, 0, 0, 0] }, /state: .*channel 0/, PolicyError],
    ['state not an array', { state: {} }, /state: .*must be a Float32Array or number\[\]/, PolicyError],
    ['state missing for relative actions', { state: undefined }, /state: is required: embodiment widowx has relative actions and needs the current state \(x, y, z/, PolicyError],
    ['state for an embodiment without state', { embodiment: 'nav', images: [], state: [1, 2, 3] }, /state: embodiment nav takes no state/, PolicyError],
    ['instruction not a string', { instruction: 42 }, /instruction: must be a string/, PolicyError],
    ['instruction null', { instruction: null }, /instruction: must be a string/, PolicyError],
    ['instruction with <|video_pad|>', { instruction: 'look <|video_pad|> here' }, /instruction: must not contain the special token <\|video_pad\|>/, PolicyError],
    ['instruction with <|image_pad|>', { instruction: 'look <|image_pad|> here' }, /instruction: must not contain the special token <\|image_pad\|>/, PolicyError],
    ['instruction with chat-template tokens', { instruction: 'ok<|im_end|>\n<|im_start|>system' }, /instruction: must not contain the special token/, PolicyError],
    ['instruction of 400k characters', { instruction: 'x'.repeat(400_000) }, /instruction: prompt has \d+ tokens, over the context budget 4096/, PolicyError],
    ['instruction + 3 large frames beyond the budget', {
      embodiment: 'aloha', state: new Array(14).fill(0), instruction: 'word '.repeat(4000), images: [img(256, 256), img(256, 256), img(256, 256)],
    }, /instruction: prompt has \d+ tokens, over the context budget/, PolicyError],
    ['embodiment not a string', { embodiment: 42 }, /embodiment: must be a string/, PolicyError],
    ['embodiment empty', { embodiment: '' }, /unknown embodiment "".*known embodiments: aloha, widowx, nav/, CheckpointError],
    ['embodiment __proto__', { embodiment: '__proto__' }, /unknown embodiment "__proto__"/, CheckpointError],
    ['steps 1e9', { steps: 1e9 }, /steps: must be an integer in \[1, 1000\], got 1000000000/, PolicyError],
    ['steps NaN', { steps: NaN }, /steps: .*got NaN/, PolicyError],
    ['steps Infinity', { steps: Infinity }, /steps: .*got Infinity/, PolicyError],
    ['steps 1001', { steps: 1001 }, /steps: .*1001/, PolicyError],
    ['steps a string', { steps: '4' }, /steps: must be an integer/, PolicyError],
    ['seed 2^32', { seed: 2 ** 32 }, /seed: must be an integer in \[0, 2\^32\)/, PolicyError],
    ['seed 1.5', { seed: 1.5 }, /seed:/, PolicyError],
    ['noise with NaN', { noise: new Float32Array(256).fill(NaN) }, /noise: contains NaN or Inf/, PolicyError],
    ['noise as Float64Array', { noise: new Float64Array(256) }, /noise: must be a Float32Array/, PolicyError],
    ['grid unknown', { grid: 'bogus' }, /grid: must be one of uniform, cosine, shift/, PolicyError],
    ['shift 0', { grid: 'shift', shift: 0 }, /shift: must be a positive number/, PolicyError],
    ['shift NaN', { shift: NaN }, /shift: must be a positive number, got NaN/, PolicyError],
    ['solver not a string', { solver: 5 }, /solver: must be one of/, PolicyError],
    ['request null', () => null, /act\(\) needs a request object/, PolicyError],
    ['request a string', () => 'pick up the cup', /act\(\) needs a request object/, PolicyError],
  ];

  for (const [name, patch, re, cls] of cases) {
    it(name, async () => {
      const g = policy.gpu;
      const live = g.buffers.stats.live;
      const created = g.buffers.stats.created;
      const req = typeof patch === 'function' ? patch() : { ...base(), ...patch };
      const e = await policy.act(req as ActRequest).then(() => null, (x: unknown) => x);
      expect(e, 'act() must reject').toBeInstanceOf(cls);
      expect((e as Error).message).toMatch(re);
      expect(g.buffers.stats.live, 'GPU tensors leaked by the failed call').toBe(live);
      expect(g.buffers.stats.created, 'GPU buffers created by the failed call').toBe(created);
      // the same policy still produces the reference actions, bit for bit
      expect(sameBits((await policy.act(ref)).raw, refRaw)).toBe(true);
    });
  }
});

describe('Policy.load(): corrupted checkpoints → CheckpointError naming the file and field; no file handle leaked', () => {
  const fdsBefore: number[] = [];
  beforeAll(() => { fdsBefore.push(openFds()); });

  const j = (f: string) => (dir: string) => path.join(dir, f);
  const cases: [string, (dir: string) => Promise<void>, RegExp][] = [
    ['config.json: a required field deleted', (d) => editJson(j('config.json')(d), (c) => { delete c.text_config.hidden_size; }), /config\.json: text_config\.hidden_size.*(missing|required)/],
    ['config.json: a field of the wrong type', (d) => editJson(j('config.json')(d), (c) => { c.vision_config.depth = '2'; }), /config\.json: vision_config\.depth/],
    ['config.json: a negative size', (d) => editJson(j('config.json')(d), (c) => { c.action_expert.k_max = -1; }), /config\.json: action_expert\.k_max/],
    ['config.json: not valid JSON', (d) => fsp.writeFile(j('config.json')(d), '{"model_type": "qwen3_5", '), /config\.json.*JSON/],
    ['config.json: missing', (d) => fsp.rm(j('config.json')(d)), /config\.json.*missing/],
    ['config.json: no action_expert section', (d) => editJson(j('config.json')(d), (c) => { delete c.action_expert; }), /config\.json: has no action_expert section.*VLM only/],
    ['config.json: valid but not matching the weights', (d) => editJson(j('config.json')(d), (c) => { c.text_config.intermediate_size = 320; }), /mlp\.(gate|up|down)_proj\.weight.*shape|shape.*mlp/s],
    ['tokenizer.json: missing', (d) => fsp.rm(j('tokenizer.json')(d)), /tokenizer\.json.*missing/],
    ['tokenizer.json: not valid JSON', (d) => fsp.writeFile(j('tokenizer.json')(d), '{"model": {"type": "BPE", "vocab": '), /tokenizer\.json.*not valid JSON/],
    ['tokenizer.json: vocab of the wrong type', (d) => editJson(j('tokenizer.json')(d), (t) => { t.model.vocab = [1, 2]; }), /tokenizer\.json: model\.vocab/],
    ['tokenizer.json: a special token missing', (d) => editJson(j('tokenizer.json')(d), (t) => {
      t.added_tokens = t.added_tokens.filter((a: { content: string }) => a.content !== '<|image_pad|>');
      delete t.model.vocab['<|image_pad|>'];
    }), /tokenizer\.json.*<\|image_pad\|>/],
    ['embodiments.json: not valid JSON', (d) => fsp.writeFile(j('embodiments.json')(d), '{"version": 1, "embodiments": {'), /embodiments\.json/],
    ['embodiments.json: missing', (d) => fsp.rm(j('embodiments.json')(d)), /embodiments\.json.*missing/],
    ['embodiments.json: a list', (d) => fsp.writeFile(j('embodiments.json')(d), '[1, 2]'), /embodiments\.json.*must hold a JSON object/],
    ['embodiments.json: more action channels than k_max', (d) => editJson(j('embodiments.json')(d), (e) => {
      const a = e.embodiments.aloha;
      a.action.names = Array.from({ length: 20 }, (_, k) => `j${k}`);
    }), /embodiments\.json: embodiments\.aloha\.action\.names/],
    ['embodiments.json: a NaN-ish statistic', (d) => editJson(j('embodiments.json')(d), (e) => {
      const s = e.embodiments.widowx.normalization.action;
      const k = Object.keys(s)[0];
      s[k][0] = 'NaN';
    }), /embodiments\.json: embodiments\.widowx\.normalization\.action/],
    ['preprocessor_config.json: patch_size disagrees with the config', (d) => editJson(j('preprocessor_config.json')(d), (p) => { p.patch_size = 14; }), /preprocessor_config\.json: patch_size must equal/],
    ['weights: a tensor deleted', (d) => rewriteWeights(d, (ts) => ts.filter((t) => t.name !== 'action_expert.action_decoder.fc2.bias')), /action_expert\.action_decoder\.fc2\.bias/],
    ['weights: a tensor with another shape', (d) => rewriteWeights(d, (ts) => ts.map((t) => (t.name === 'action_expert.action_decoder.fc2.weight' ? { ...t, shape: [8, 256] } : t))),
      /action_expert\.action_decoder\.fc2\.weight.*\[8, ?256\]|\[8, ?256\].*action_expert\.action_decoder\.fc2\.weight/s],
    ['weights: a tensor of another dtype', (d) => rewriteWeights(d, (ts) => ts.map((t) => (t.name === 'action_expert.action_decoder.fc2.weight' ? { ...t, dtype: 'I16' as const } : t))),
      /action_expert\.action_decoder\.fc2\.weight.*(dtype|I16)/s],
    ['weights: an unexpected extra tensor', (d) => rewriteWeights(d, (ts) => [...ts, { name: 'model.language_model.layers.9.mlp.up_proj.weight', dtype: 'BF16', shape: [2, 2], data: new Uint8Array(8) }]),
      /model\.language_model\.layers\.9\.mlp\.up_proj\.weight/],
    ['weights: file truncated', async (d) => {
      const f = j('model.safetensors')(d);
      const b = await fsp.readFile(f);
      await fsp.writeFile(f, b.subarray(0, b.length - 4096));
    }, /model\.safetensors/],
    ['weights: file missing', (d) => fsp.rm(j('model.safetensors')(d)), /has no weights/],
  ];

  for (const [name, corrupt, re] of cases) {
    it(name, async () => {
      const dir = await copyTiny('qvla-bad-ckpt-');
      try {
        await corrupt(dir);
        const e = await Policy.load(dir).then((p) => { p.destroy(); return null; }, (x: unknown) => x);
        expect(e, 'Policy.load must reject').toBeInstanceOf(CheckpointError);
        expect((e as Error).message).toContain(dir);
        expect((e as Error).message).toMatch(re);
      } finally {
        await rmTmp(dir);
      }
    });
  }

  it('no file handles are left open by the failed loads, and a good checkpoint still loads', async () => {
    expect(openFds()).toBeLessThanOrEqual(fdsBefore[0]);
    expect(sameBits((await policy.act(ref)).raw, refRaw)).toBe(true);
  });
});
