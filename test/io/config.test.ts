import { describe, expect, it } from 'vitest';
import { CheckpointError } from '../../src/io/errors.js';
import {
  fullActionExpertJson,
  parsePreprocessorConfig,
  parseQvlaConfig,
  qwen35_4bConfig,
  qwen35_4bConfigJson,
  smallConfig,
} from '../../src/model/config.js';
import {
  actionExpertTensors,
  bindTensors,
  countParams,
  expectedTensors,
  IGNORED_TENSOR_PREFIXES,
  numel,
  textTensors,
  visionTensors,
  type AvailableTensor,
} from '../../src/model/expectedTensors.js';

type J = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function cfg4b(): J {
  return qwen35_4bConfigJson() as J;
}

function rejects(raw: unknown, re: RegExp): CheckpointError {
  let err: unknown;
  try {
    parseQvlaConfig(raw, '/ckpt/config.json');
  } catch (e) {
    err = e;
  }
  expect(err, `expected a CheckpointError matching ${String(re)}`).toBeInstanceOf(CheckpointError);
  expect((err as Error).message).toMatch(/^\/ckpt\/config\.json: /);
  expect((err as Error).message).toMatch(re);
  return err as CheckpointError;
}

describe('config.json', () => {
  it('parses the Qwen3.5-4B config with the full decoder', () => {
    const c = qwen35_4bConfig();
    expect(c.text.hiddenSize).toBe(2560);
    expect(c.text.layerTypes.filter((t) => t === 'full_attention').length).toBe(8);
    expect(c.text.layerTypes[3]).toBe('full_attention');
    expect(c.text.rope).toEqual({ ropeType: 'default', ropeTheta: 1e7, partialRotaryFactor: 0.25, rotaryDim: 64, mropeSection: [11, 11, 10], mropeInterleaved: true });
    expect(c.text.eosTokenIds).toEqual([248044]);
    expect(c.vision).toMatchObject({ depth: 24, hiddenSize: 1024, headDim: 64, numGridPerSide: 48, outHiddenSize: 2560 });
    expect(c.tieWordEmbeddings).toBe(true);
    expect(c.imageTokenId).toBe(248056);
    expect(c.actionExpert).toMatchObject({ dVlm: 2560, hiddenSize: 1536, numLayers: 32, crossEvery: 2, vlmLayer: 32, timeConvention: 'tau1_noise', defaultSolver: 'euler' });
  });

  it('applies defaults: layer_types from the interval, legacy rope fields, action_expert defaults, no decoder', () => {
    const j = cfg4b();
    delete j.text_config.layer_types;
    j.text_config.full_attention_interval = 2;
    const c1 = parseQvlaConfig(j);
    expect(c1.text.layerTypes.slice(0, 4)).toEqual(['linear_attention', 'full_attention', 'linear_attention', 'full_attention']);
    delete j.text_config.full_attention_interval;
    expect(parseQvlaConfig(j).text.layerTypes.filter((t) => t === 'full_attention').length).toBe(8); // HF default 4

    const legacy = cfg4b();
    delete legacy.text_config.rope_parameters;
    legacy.text_config.rope_theta = 5e6;
    legacy.text_config.rope_scaling = { type: 'mrope', mrope_section: [11, 11, 10] };
    const c2 = parseQvlaConfig(legacy);
    expect(c2.text.rope).toMatchObject({ ropeTheta: 5e6, partialRotaryFactor: 0.25, mropeInterleaved: true });

    const ae = cfg4b();
    const minimal = fullActionExpertJson();
    for (const k of ['cross_every', 'alt_vl', 'norm_eps', 'out_norm_eps', 'vl_norm_eps', 'time_convention', 'num_buckets', 'timestep_channels', 'default_steps', 'default_solver', 'vlm_layer']) delete minimal[k];
    ae.action_expert = minimal;
    expect(parseQvlaConfig(ae).actionExpert).toEqual(parseQvlaConfig(cfg4b()).actionExpert);

    const vlm = cfg4b();
    delete vlm.action_expert;
    delete vlm.tie_word_embeddings;
    delete vlm.text_config.tie_word_embeddings;
    const c3 = parseQvlaConfig(vlm);
    expect(c3.actionExpert).toBeNull();
    expect(c3.tieWordEmbeddings).toBe(false);
    expect(smallConfig().text.layerTypes.length).toBe(24);
  });

  it('names the field path in every error', () => {
    const e = cfg4b();
    e.text_config.num_key_value_heads = 3;
    expect(rejects(e, /text_config\.num_key_value_heads must divide num_attention_heads \(got 3 and 16\)/).field).toBe('text_config.num_key_value_heads');

    const cases: [(j: J) => void, RegExp][] = [
      [(j) => delete j.text_config.hidden_size, /text_config\.hidden_size is required but missing/],
      [(j) => (j.text_config.head_dim = '256'), /text_config\.head_dim must be an integer, got "256"/],
      [(j) => (j.text_config.rope_parameters.mrope_section = [11, 11, 11]), /text_config\.rope_parameters\.mrope_section must sum to head_dim × partial_rotary_factor \/ 2 \(got 33 and 256 × 0.25 \/ 2 = 32\)/],
      [(j) => (j.text_config.rope_parameters.mrope_interleaved = false), /mrope_interleaved must be true/],
      [(j) => (j.text_config.layer_types = ['full_attention']), /text_config\.layer_types must have num_hidden_layers entries \(got 1 and 32\)/],
      [(j) => (j.text_config.layer_types[5] = 'sliding'), /text_config\.layer_types\[5\]/],
      [(j) => (j.text_config.hidden_act = 'gelu'), /text_config\.hidden_act must be "silu"/],
      [(j) => (j.text_config.attention_bias = true), /text_config\.attention_bias must be false/],
      [(j) => (j.text_config.linear_num_value_heads = 24), /text_config\.linear_num_key_heads must divide linear_num_value_heads \(got 16 and 24\)/],
      [(j) => (j.text_config.rms_norm_eps = 0), /text_config\.rms_norm_eps must be > 0/],
      [(j) => (j.vision_config.out_hidden_size = 2048), /vision_config\.out_hidden_size must equal text_config\.hidden_size \(got 2048 and 2560\)/],
      [(j) => (j.vision_config.num_position_embeddings = 2300), /vision_config\.num_position_embeddings must be a perfect square \(got 2300\)/],
      [(j) => (j.vision_config.num_heads = 3), /vision_config\.num_heads must divide hidden_size/],
      [(j) => (j.vision_config.deepstack_visual_indexes = [5]), /deepstack_visual_indexes must be empty/],
      [(j) => (j.image_token_id = 300000), /image_token_id must be < text_config\.vocab_size/],
      [(j) => (j.text_config.tie_word_embeddings = false), /tie_word_embeddings disagrees with text_config\.tie_word_embeddings/],
      [(j) => delete j.vision_config, /vision_config is required but missing/],
      [(j) => (j.action_expert.d_vlm = 2048), /action_expert\.d_vlm must equal text_config\.hidden_size \(got 2048 and 2560\)/],
      [(j) => (j.action_expert.hidden_size = 1500), /action_expert\.hidden_size must equal num_heads × head_dim \(got 1500 and 32 × 48 = 1536\)/],
      [(j) => (j.action_expert.vlm_layer = 33), /action_expert\.vlm_layer must be in 0\.\.text_config\.num_hidden_layers \(got 33 and 32\)/],
      [(j) => (j.action_expert.vlm_layer = -1), /action_expert\.vlm_layer must be ≥ 0/],
      [(j) => (j.action_expert.cross_evry = 2), /action_expert\.cross_evry is not a known action_expert key/],
      [(j) => delete j.action_expert.ff_inner, /action_expert\.ff_inner is required but missing/],
      [(j) => (j.action_expert.h_max = 2000), /action_expert\.h_max must be ≤ max_seq_len/],
      [(j) => (j.action_expert.time_convention = 'tau0_noise'), /action_expert\.time_convention must be "tau1_noise"/],
      [(j) => (j.action_expert.default_solver = 'dopri5'), /action_expert\.default_solver must be "euler" or "heun" or "midpoint" or "rk4"/],
      [(j) => (j.action_expert.alt_vl = 'no'), /action_expert\.alt_vl must be true or false/],
      [(j) => (j.action_expert.time_shift = 0), /action_expert\.time_shift must be > 0/],
      [(j) => (j.action_expert = [1]), /action_expert must be an object/],
    ];
    for (const [mut, re] of cases) {
      const j = cfg4b();
      mut(j);
      rejects(j, re);
    }
    rejects(null, /\(root\) must be an object/);
  });

  it('preprocessor_config.json: defaults and validation', () => {
    expect(parsePreprocessorConfig(undefined)).toEqual({ minPixels: 65536, maxPixels: 16777216, imageMean: [0.5, 0.5, 0.5], imageStd: [0.5, 0.5, 0.5], patchSize: 16, temporalPatchSize: 2, mergeSize: 2 });
    expect(parsePreprocessorConfig({ size: { shortest_edge: 100, longest_edge: 1000 }, image_mean: 0.4, image_std: [1, 2, 3] })).toMatchObject({ minPixels: 100, maxPixels: 1000, imageMean: [0.4, 0.4, 0.4], imageStd: [1, 2, 3] });
    expect(parsePreprocessorConfig({ min_pixels: 10, max_pixels: 20 })).toMatchObject({ minPixels: 10, maxPixels: 20 });
    expect(() => parsePreprocessorConfig({ image_std: [1, 0, 1] }, 'pp.json')).toThrow(/pp\.json: image_std\[1\] must be a finite positive number/);
    expect(() => parsePreprocessorConfig({ size: { shortest_edge: 10, longest_edge: 5 } })).toThrow(/must be ≤/);
  });
});

describe('expected tensors', () => {
  it('Qwen3.5-4B: 426 text + 297 vision tensors, ≈ 4.54 B parameters', () => {
    const c = qwen35_4bConfig();
    const text = textTensors(c.text, c.tieWordEmbeddings).filter((t) => !t.optional);
    const vision = visionTensors(c.vision);
    expect(text.length).toBe(426);
    expect(vision.length).toBe(297);
    const tp = countParams(text);
    const vp = countParams(vision);
    console.log(`Qwen3.5-4B: text ${tp.toLocaleString('en')} + vision ${vp.toLocaleString('en')} = ${(tp + vp).toLocaleString('en')} parameters`);
    expect(Math.abs(tp / 1e9 - 4.21)).toBeLessThan(0.01);
    expect(Math.abs(vp / 1e9 - 0.33)).toBeLessThan(0.01);
    expect(Math.abs((tp + vp) / 1e9 - 4.54)).toBeLessThan(0.01);
    // spot checks against docs/architecture.md §10.1
    const byName = new Map(expectedTensors(c).map((t) => [t.name, t.shape]));
    expect(byName.get('model.language_model.layers.3.self_attn.q_proj.weight')).toEqual([8192, 2560]);
    expect(byName.get('model.language_model.layers.3.self_attn.o_proj.weight')).toEqual([2560, 4096]);
    expect(byName.get('model.language_model.layers.0.linear_attn.in_proj_qkv.weight')).toEqual([8192, 2560]);
    expect(byName.get('model.language_model.layers.0.linear_attn.conv1d.weight')).toEqual([8192, 1, 4]);
    expect(byName.get('model.language_model.layers.0.linear_attn.A_log')).toEqual([32]);
    expect(byName.get('model.language_model.layers.0.linear_attn.norm.weight')).toEqual([128]);
    expect(byName.get('model.visual.patch_embed.proj.weight')).toEqual([1024, 3, 2, 16, 16]);
    expect(byName.get('model.visual.merger.linear_fc1.weight')).toEqual([4096, 4096]);
    expect(byName.get('model.visual.merger.linear_fc2.weight')).toEqual([2560, 4096]);
    // per-layer sizes from docs/architecture.md §10.2
    const layer = (i: number): number => countParams(text.filter((t) => t.name.startsWith(`model.language_model.layers.${i}.`)));
    expect(Math.round(layer(3) / 1e5) / 10).toBe(107.5);
    expect(Math.round(layer(0) / 1e5) / 10).toBe(112.9);
  });

  it('full decoder: exactly 1,128,461,904 parameters; block sizes as in docs/action-decoder.md §2.3', () => {
    const c = qwen35_4bConfig();
    const ae = actionExpertTensors(c.actionExpert!);
    const total = countParams(ae);
    console.log(`QVLA-DiT full: ${ae.length} tensors, ${total.toLocaleString('en')} parameters`);
    expect(total).toBe(1_128_461_904);
    const block = (i: number): number => countParams(ae.filter((t) => t.name.startsWith(`action_expert.dit.blocks.${i}.`)));
    expect(block(0)).toBe(36_192_768);
    expect(block(1)).toBe(33_047_040);
    expect(countParams(ae.filter((t) => t.name.startsWith('action_expert.dit.')))).toBe(1_116_888_064);
    const small = smallConfig();
    console.log(`small config: VLM ${countParams(expectedTensors(small, { actionExpert: false })).toLocaleString('en')} + DiT ${countParams(actionExpertTensors(small.actionExpert!)).toLocaleString('en')} parameters`);
    // the spec tiny decoder of docs/action-decoder.md §2.3 (4.6 M) for a 512-wide VLM
    const tinyJ = cfg4b();
    tinyJ.text_config.hidden_size = 512;
    tinyJ.vision_config.out_hidden_size = 512;
    tinyJ.action_expert = { d_vlm: 512, hidden_size: 256, num_heads: 4, head_dim: 64, num_layers: 4, ff_inner: 1024, d_out: 256, mlp_hidden: 256, state_hidden: 256, k_max: 16, s_max: 16, h_max: 8, max_seq_len: 64 };
    expect(countParams(actionExpertTensors(parseQvlaConfig(tinyJ).actionExpert!))).toBe(4_631_568);
  });

  it('lm_head is required only when embeddings are untied', () => {
    const tied = textTensors(qwen35_4bConfig().text, true).find((t) => t.name === 'lm_head.weight');
    expect(tied?.optional).toBe(true);
    const untied = textTensors(qwen35_4bConfig().text, false).find((t) => t.name === 'lm_head.weight');
    expect(untied?.optional).toBeUndefined();
  });

  it('bindTensors reports missing, unexpected, mis-shaped and wrong-dtype tensors together, ignoring mtp.*', () => {
    const c = smallConfig();
    const expected = expectedTensors(c);
    const avail = new Map<string, AvailableTensor>(expected.filter((t) => !t.optional).map((t, i) => [t.name, { dtype: ['F32', 'F16', 'BF16'][i % 3]!, shape: t.shape }]));
    avail.set('mtp.fc.weight', { dtype: 'BF16', shape: [1, 2] });
    avail.set('mtp.layers.0.mlp.up_proj.weight', { dtype: 'BF16', shape: [1, 2] });
    const ok = bindTensors(expected, avail);
    expect(ok.size).toBe(expected.length - 1); // tied lm_head absent
    expect(ok.has('mtp.fc.weight')).toBe(false);
    expect(IGNORED_TENSOR_PREFIXES).toEqual(['mtp.']);
    // present tied lm_head is bound
    avail.set('lm_head.weight', { dtype: 'BF16', shape: [c.text.vocabSize, c.text.hiddenSize] });
    expect(bindTensors(expected, avail).has('lm_head.weight')).toBe(true);

    const bad = new Map(avail);
    bad.delete('model.visual.pos_embed.weight');
    bad.delete('action_expert.vl_norm.bias');
    bad.set('model.language_model.norm.weight', { dtype: 'BF16', shape: [999] });
    bad.set('model.language_model.layers.0.linear_attn.A_log', { dtype: 'I32', shape: [16] });
    bad.set('model.something_else.weight', { dtype: 'BF16', shape: [1] });
    let err: unknown;
    try {
      bindTensors(expected, bad, { file: '/ckpt' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CheckpointError);
    const m = (err as Error).message;
    expect(m).toMatch(/^\/ckpt: checkpoint tensors do not match the config/);
    expect(m).toMatch(/2 missing tensor\(s\):\n {2}model\.visual\.pos_embed\.weight \[2304, 768\]\n {2}action_expert\.vl_norm\.bias \[1024\]/);
    expect(m).toMatch(/1 mis-shaped tensor\(s\):\n {2}model\.language_model\.norm\.weight: expected \[1024\], found \[999\]/);
    expect(m).toMatch(/1 tensor\(s\) with an unsupported dtype:\n {2}model\.language_model\.layers\.0\.linear_attn\.A_log: I32/);
    expect(m).toMatch(/1 unexpected tensor\(s\) \(ignored prefixes: mtp\.\):\n {2}model\.something_else\.weight/);

    // hundreds of problems are truncated
    let err2: unknown;
    try {
      bindTensors(expected, new Map());
    } catch (e) {
      err2 = e;
    }
    const m2 = (err2 as Error).message;
    const nReq = expected.filter((t) => !t.optional).length;
    expect(m2).toContain(`${nReq} missing tensor(s)`);
    expect(m2).toContain(`… and ${nReq - 20} more`);
    expect(m2.split('\n').length).toBeLessThan(30);
  });

  it('numel', () => {
    expect(numel([])).toBe(1);
    expect(numel([2, 0, 3])).toBe(0);
  });
});
