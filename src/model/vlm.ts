// The Qwen3.5 vision-language model on the GPU: vision tower → image tokens scattered into the embedded prompt
// at the <|image_pad|> positions → hybrid text decoder with 3-D rope positions. Used by the policy (hidden states
// for the action decoder) and by `chat` (text generation with caches).
import type { Gpu } from '../gpu/device.js';
import { Tensor } from '../tensor.js';
import type { QvlaConfig } from './config.js';
import type { WeightStore } from './weights.js';
import { VisionTower, type ImageGrid } from './vision.js';
import { TextDecoder, TextCache } from './textDecoder.js';
import { ropeIndex, decodePositions } from './positions.js';
import { Rng } from '../util/rng.js';
import { gatherRows } from '../ops/gather.js';
import { copyRows } from '../ops/elementwise.js';

export interface VlmImage {
  /** [Np, C·T·P·P] rows in merge-block order (src/preprocess/image.ts) */
  pixels: Float32Array;
  grid: ImageGrid;
}

export interface VlmInput {
  ids: Int32Array;
  /** 1 on image-pad tokens, 0 elsewhere */
  mmTokenTypeIds: Uint8Array;
  images: VlmImage[];
}

export interface VlmPrefill {
  /** final hidden states (after model.norm) [L, D]; caller releases */
  hidden: Tensor;
  /** requested HF hidden_states[i]; caller releases */
  layers: Map<number, Tensor>;
  ropeDelta: number;
  L: number;
  /** the vision tower output [Σ tokens, D] when images were given (caller releases) */
  vision: Tensor | null;
}

/**
 * The decoder state after a prompt's first `length` tokens (text only), computed alone (`QwenVLM.encodePrefix`):
 * what a later prompt with the same first tokens continues from (the policy's prompt-prefix cache,
 * src/policy/prefixCache.ts). Read only once made.
 */
export interface PromptPrefix {
  /** the prefix token ids */
  ids: Int32Array;
  length: number;
  /** conv history + delta-rule state per linear-attention layer, K/V per full-attention layer */
  cache: TextCache;
  /** HF hidden_states[layer] of the prefix rows [length, D] */
  hidden: Tensor;
  /** the `layer` of `hidden` */
  layer: number;
}

export interface VlmRowsPrefill {
  /** HF hidden_states[layer] of every prompt, concatenated [Σ L_r, D] (caller releases) */
  hidden: Tensor;
  /** cu_seqlens of the prompts in `hidden` */
  segments: Int32Array;
}

export interface GenerateOptions {
  maxNewTokens?: number;
  /** 0 or undefined: greedy */
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
  stopIds?: number[];
  onToken?: (id: number) => void;
  /**
   * Which ids may be picked: `allowed[id] === 1`; ids with 0 or at/after `allowed.length` count as -inf for argmax
   * and sampling. The model's vocab_size is often padded beyond the tokenizer's ids (weights/tiny: 3328 rows for
   * 3282 ids; real Qwen3.5 checkpoints pad too), and those rows have no text. Default: every row; `Policy.chat`
   * passes `QvlaTokenizer.decodableMask()`.
   */
  allowed?: Uint8Array;
}

export class QwenVLM {
  readonly vision: VisionTower;
  readonly text: TextDecoder;

  constructor(
    readonly gpu: Gpu,
    readonly cfg: QvlaConfig,
    readonly weights: WeightStore,
  ) {
    this.vision = new VisionTower(gpu, cfg.vision, weights);
    this.text = new TextDecoder(gpu, cfg.text, weights, cfg.tieWordEmbeddings);
  }

  newCache(maxLen: number): TextCache {
    return new TextCache(this.gpu, this.cfg.text, maxLen);
  }

  /** Embeds the prompt, runs the vision tower, scatters image tokens, and prefills `cache` (which is reset). */
  async prefill(input: VlmInput, cache: TextCache, opts: { collect?: number[]; afterVision?: () => Promise<void> } = {}): Promise<VlmPrefill> {
    const gpu = this.gpu;
    const L = input.ids.length;
    const D = this.cfg.text.hiddenSize;
    if (input.mmTokenTypeIds.length !== L) throw new Error(`vlm: ${input.mmTokenTypeIds.length} token types for ${L} ids`);
    const ids = Tensor.from(gpu, input.ids, [L], 'i32', 'vlm.ids');
    const h = this.text.embed(ids);
    ids.release();

    let vision: Tensor | null = null;
    const grids = input.images.map((i) => i.grid);
    const m2 = this.cfg.vision.spatialMergeSize ** 2;
    const padCount = input.mmTokenTypeIds.reduce((s, t) => s + (t === 1 ? 1 : 0), 0);
    const visTokens = grids.reduce((s, g) => s + (g.t * g.h * g.w) / m2, 0);
    if (padCount !== visTokens) {
      throw new Error(`vlm: the prompt has ${padCount} image-pad tokens but the images give ${visTokens} vision tokens`);
    }
    if (input.images.length > 0) {
      const rowLen = input.images[0].pixels.length / VisionTower.patches(grids[0]);
      const Np = grids.reduce((s, g) => s + VisionTower.patches(g), 0);
      const all = new Float32Array(Np * rowLen);
      let o = 0;
      for (const im of input.images) {
        all.set(im.pixels, o);
        o += im.pixels.length;
      }
      const pixels = Tensor.from(gpu, all, [Np, rowLen], 'f32', 'vlm.pixels');
      vision = this.vision.forward(pixels, grids);
      pixels.release();
      // Overwrite the embeddings of each run of image-pad tokens with the next vision tokens, in order.
      let src = 0;
      for (let k = 0; k < L; ) {
        if (input.mmTokenTypeIds[k] !== 1) {
          k++;
          continue;
        }
        let e = k;
        while (e < L && input.mmTokenTypeIds[e] === 1) e++;
        gpu.stream.copy(vision.buffer, src * D * 4, h.buffer, k * D * 4, (e - k) * D * 4);
        src += e - k;
        k = e;
      }
    }

    await opts.afterVision?.();
    const { positions, ropeDelta } = ropeIndex(input.mmTokenTypeIds, grids, this.cfg.vision.spatialMergeSize);
    const pos = Tensor.from(gpu, positions, [3, L], 'i32', 'vlm.positions');
    cache.reset();
    const r = this.text.forward(h, pos, cache, { collect: opts.collect });
    pos.release();
    return { hidden: r.hidden, layers: r.layers, ropeDelta, L, vision };
  }

  /**
   * Hidden states of a ragged batch of prompts (the policy's observation encoder), in one pass: every image of
   * every prompt through the vision tower at once (one attention segment per image), the image tokens gathered into
   * the concatenated prompt embeddings, then the cache-free ragged prefill (TextDecoder.prefillRows) up to
   * hidden_states[layer]. Each prompt's rows are bit-identical to running it alone (B = 1). `prefixes[r]` (from
   * encodePrefix, read only): prompt r starts with that prefix, so only its suffix is run, from the prefix's state;
   * its rows in `hidden` are still all of its tokens ([prefix rows ++ suffix rows]).
   */
  async prefillRows(inputs: VlmInput[], layer: number, opts: { afterVision?: () => Promise<void>; prefixes?: readonly (PromptPrefix | null)[] } = {}): Promise<VlmRowsPrefill> {
    const gpu = this.gpu;
    const D = this.cfg.text.hiddenSize;
    const m = this.cfg.vision.spatialMergeSize;
    const m2 = m * m;
    if (inputs.length === 0) throw new Error('vlm: prefillRows needs at least one prompt');
    const segments = new Int32Array(inputs.length + 1);
    const grids: ImageGrid[] = [];
    let padTotal = 0;
    inputs.forEach((input, r) => {
      const L = input.ids.length;
      if (input.mmTokenTypeIds.length !== L) throw new Error(`vlm: prompt ${r}: ${input.mmTokenTypeIds.length} token types for ${L} ids`);
      if (L === 0) throw new Error(`vlm: prompt ${r} is empty`);
      const pads = input.mmTokenTypeIds.reduce((a, t) => a + (t === 1 ? 1 : 0), 0);
      const vis = input.images.reduce((a, im) => a + (im.grid.t * im.grid.h * im.grid.w) / m2, 0);
      if (pads !== vis) throw new Error(`vlm: prompt ${r} has ${pads} image-pad tokens but its images give ${vis} vision tokens`);
      for (const im of input.images) grids.push(im.grid);
      segments[r + 1] = segments[r] + L;
      padTotal += pads;
    });
    // Rows continuing a cached prefix run only their suffix: `rowSegs` are the cu_seqlens of the rows computed here.
    const prefixes = opts.prefixes;
    if (prefixes && prefixes.length !== inputs.length) throw new Error(`vlm: ${prefixes.length} prefixes for ${inputs.length} prompts`);
    const plen = (r: number) => prefixes?.[r]?.length ?? 0;
    inputs.forEach((input, r) => {
      const p = prefixes?.[r];
      if (!p) return;
      if (p.layer !== layer) throw new Error(`vlm: prompt ${r}: its prefix holds hidden_states[${p.layer}], not [${layer}]`);
      if (!(p.length < input.ids.length)) throw new Error(`vlm: prompt ${r}: a prefix of ${p.length} tokens leaves no suffix of its ${input.ids.length}`);
      for (let k = 0; k < p.length; k++) {
        if (p.ids[k] !== input.ids[k] || input.mmTokenTypeIds[k] !== 0) throw new Error(`vlm: prompt ${r} does not start with its prefix's text tokens (token ${k})`);
      }
    });
    const rowSegs = new Int32Array(inputs.length + 1);
    inputs.forEach((input, r) => { rowSegs[r + 1] = rowSegs[r] + input.ids.length - plen(r); });
    const Ltot = rowSegs[inputs.length];

    // Host side first (each upload flushes the stream): ids, positions, the image-token map, the pixels.
    const ids = new Int32Array(Ltot);
    const positions = new Int32Array(3 * Ltot);
    const visIdx = new Int32Array(Ltot).fill(-1); // vision-token row of each image-pad token, −1 elsewhere
    let v = 0;
    inputs.forEach((input, r) => {
      const o = rowSegs[r];
      const L = input.ids.length;
      const P = plen(r);
      ids.set(input.ids.subarray(P), o);
      // the suffix keeps its positions in the full prompt
      const p = ropeIndex(input.mmTokenTypeIds, input.images.map((im) => im.grid), m).positions;
      for (let a = 0; a < 3; a++) positions.set(p.subarray(a * L + P, (a + 1) * L), a * Ltot + o);
      for (let k = P; k < L; k++) if (input.mmTokenTypeIds[k] === 1) visIdx[o + k - P] = v++;
    });
    const idsT = Tensor.from(gpu, ids, [Ltot], 'i32', 'vlm.ids');
    const pos = Tensor.from(gpu, positions, [3, Ltot], 'i32', 'vlm.positions');
    let pixels: Tensor | null = null;
    let visT: Tensor | null = null;
    if (grids.length > 0) {
      const first = inputs.find((i) => i.images.length > 0)!.images[0];
      const rowLen = first.pixels.length / VisionTower.patches(first.grid);
      const Np = grids.reduce((a, g) => a + VisionTower.patches(g), 0);
      const all = new Float32Array(Np * rowLen);
      let o = 0;
      for (const input of inputs) {
        for (const im of input.images) {
          all.set(im.pixels, o);
          o += im.pixels.length;
        }
      }
      pixels = Tensor.from(gpu, all, [Np, rowLen], 'f32', 'vlm.pixels');
      visT = Tensor.from(gpu, visIdx, [Ltot], 'i32', 'vlm.image_tokens');
    }

    // The vision tower first: its own host upload (patch coordinates) then goes ahead of every dispatch.
    const vision = pixels ? this.vision.forward(pixels, grids) : null;
    const h = this.text.embed(idsT);
    idsT.release();
    if (pixels && vision) {
      pixels.release();
      if (vision.shape[0] !== padTotal) throw new Error(`vlm: the vision tower gave ${vision.shape[0]} tokens for ${padTotal} image-pad tokens`);
      gatherRows(vision.reshape([padTotal, D]), visT!, { out: h }); // image tokens over the pad embeddings, in order
      visT!.release();
      vision.release();
    }
    await opts.afterVision?.();
    const rowsHidden = this.text.prefillRows(h, pos, rowSegs, layer, prefixes?.map((p) => p?.cache ?? null));
    pos.release();
    if (!prefixes?.some(Boolean)) return { hidden: rowsHidden, segments };
    // Every prompt's rows in the usual layout: [its prefix's hidden states ++ its suffix's].
    const hidden = Tensor.empty(gpu, [segments[inputs.length], D], 'f32', 'vlm.hidden');
    inputs.forEach((_, r) => {
      const P = plen(r);
      if (P > 0) copyRows(prefixes[r]!.hidden, hidden, { dstRow: segments[r], rows: P });
      copyRows(rowsHidden, hidden, { srcRow: rowSegs[r], dstRow: segments[r] + P, rows: rowSegs[r + 1] - rowSegs[r] });
    });
    rowsHidden.release();
    return { hidden, segments };
  }

  /**
   * The decoder state after the text-only prompt prefix `ids` (see PromptPrefix), computed alone through the
   * cached path (TextDecoder.forward into a TextCache of exactly its length). The caller releases its `cache` and
   * `hidden`.
   */
  encodePrefix(ids: Int32Array, layer: number): PromptPrefix {
    const gpu = this.gpu;
    const P = ids.length;
    if (P < 1) throw new Error('vlm: a prompt prefix needs at least one token');
    const cache = this.newCache(P);
    const idsT = Tensor.from(gpu, ids, [P], 'i32', 'vlm.prefix.ids');
    const pos = Tensor.from(gpu, ropeIndex(new Uint8Array(P), [], this.cfg.vision.spatialMergeSize).positions, [3, P], 'i32', 'vlm.prefix.positions');
    const h = this.text.embed(idsT);
    idsT.release();
    const r = this.text.forward(h, pos, cache, { collect: [layer] });
    pos.release();
    r.hidden.release();
    return { ids: Int32Array.from(ids), length: P, cache, hidden: r.layers.get(layer)!, layer };
  }

  /** One decode step for token `id` at sequence index cache.length: returns logits [1, V] (caller releases). */
  decodeStep(id: number, cache: TextCache, ropeDelta: number): Tensor {
    const gpu = this.gpu;
    const ids = Tensor.from(gpu, Int32Array.of(id), [1], 'i32');
    const h = this.text.embed(ids);
    ids.release();
    const pos = Tensor.from(gpu, decodePositions(cache.length, 1, ropeDelta), [3, 1], 'i32');
    const r = this.text.forward(h, pos, cache);
    pos.release();
    const logits = this.text.logits(r.hidden, 0, 1);
    r.hidden.release();
    return logits;
  }

  /** Greedy or seeded sampling decode with stop tokens; returns the generated ids (stop token excluded). */
  async generate(input: VlmInput, opts: GenerateOptions = {}): Promise<number[]> {
    const maxNew = opts.maxNewTokens ?? 64;
    const cache = this.newCache(input.ids.length + maxNew + 1);
    const rng = new Rng(opts.seed ?? 0);
    const stop = new Set(opts.stopIds ?? []);
    const out: number[] = [];
    try {
      const pre = await this.prefill(input, cache);
      pre.vision?.release();
      let logits = this.text.logits(pre.hidden, pre.L - 1, 1);
      pre.hidden.release();
      for (let n = 0; n < maxNew; n++) {
        const row = (await logits.read()) as Float32Array;
        logits.release();
        const id = pickToken(row, opts, rng);
        if (stop.has(id)) break;
        out.push(id);
        opts.onToken?.(id);
        if (n === maxNew - 1) break;
        logits = this.decodeStep(id, cache, pre.ropeDelta);
      }
    } finally {
      cache.release();
    }
    return out;
  }
}

/**
 * Greedy (argmax, lowest id on ties) or temperature / top-k / top-p sampling with a seeded generator.
 * Only the ids that `opts.allowed` marks (default: every row) are candidates — the others are masked to -inf —
 * so the result is always an allowed id, whatever the logits (NaN rows included).
 */
export function pickToken(logits: Float32Array, opts: GenerateOptions, rng: Rng): number {
  const allowed = opts.allowed;
  const n = Math.min(logits.length, allowed?.length ?? logits.length);
  const cand: number[] = [];
  for (let k = 0; k < n; k++) if (allowed === undefined || allowed[k] === 1) cand.push(k);
  if (cand.length === 0) throw new RangeError(`pickToken: no allowed token among ${logits.length} logits`);
  let best = cand[0];
  for (const k of cand) if (logits[k] > logits[best]) best = k;
  const T = opts.temperature ?? 0;
  if (!(T > 0)) return best;
  let idx = cand.sort((a, b) => logits[b] - logits[a] || a - b);
  if (opts.topK && opts.topK > 0) idx = idx.slice(0, opts.topK);
  const m = logits[idx[0]];
  let p = idx.map((k) => Math.exp((logits[k] - m) / T));
  const z = p.reduce((s, x) => s + x, 0);
  p = p.map((x) => x / z);
  if (opts.topP && opts.topP < 1) {
    let c = 0, cut = p.length;
    for (let k = 0; k < p.length; k++) {
      c += p[k];
      if (c >= opts.topP) { cut = k + 1; break; }
    }
    idx = idx.slice(0, cut);
    p = p.slice(0, cut);
    const z2 = p.reduce((s, x) => s + x, 0);
    p = p.map((x) => x / z2);
  }
  let u = rng.uniform();
  for (let k = 0; k < p.length; k++) {
    u -= p[k];
    if (u <= 0) return idx[k];
  }
  return idx[idx.length - 1];
}
