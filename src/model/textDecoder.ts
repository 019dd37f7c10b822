// The Qwen3.5 hybrid text decoder (docs/architecture.md §5): per layer, a (1+w) RMSNorm, then either a
// Gated DeltaNet (linear attention with a carried fp32 state) or gated full attention (q/k norm, partial
// interleaved M-RoPE, GQA, sigmoid output gate), a residual, a (1+w) RMSNorm and a SwiGLU MLP. The layer kind
// comes from config `layer_types`. Caches (KV for full layers, conv + recurrent state for linear layers) are
// preallocated once per TextCache and reused across calls.
//
// `prefillRows` is the cache-free prefill of a ragged batch (several prompts concatenated along the token axis,
// cu_seqlens `segments`), for callers that need hidden states only (the policy): full attention reads K/V straight
// from the projections (causal within each prompt), the Gated DeltaNet conv and delta rule start every prompt from
// a zero state and keep no final state, and every projection takes the tiled linear kernel. Each kernel keeps a
// prompt's arithmetic independent of the other prompts, so a prompt's hidden states are bit-identical in any batch.
// A prompt may continue a cached prefix (`prefixes`: the TextCache after its first P tokens, computed alone by
// `forward`; the policy's prompt-prefix cache, src/policy/prefixCache.ts): its rows are then only the suffix, the
// conv and delta rule start from the prefix's states, and full attention sees [prefix K/V ++ own K/V] (query and
// key cu_seqlens, causal aligned to each prompt's bottom right).
import type { Gpu } from '../gpu/device.js';
import { Tensor, DTYPE_BYTES } from '../tensor.js';
import type { TextConfig } from './config.js';
import type { WeightStore } from './weights.js';
import { bindTextWeights, textWeightDecl, type FullAttentionOf, type GatedDeltaNetOf, type TextWeightDecl, type TextWeights } from './textWeights.js';
import { linear } from '../ops/linear.js';
import { rmsNorm, rmsNormGated } from '../ops/norm.js';
import { swiglu, fill, copyRows } from '../ops/elementwise.js';
import { swigluLinear, foldPrologue } from './prologueLinear.js';
import { isQuantized } from '../quant/index.js';
import { gatherRows } from '../ops/gather.js';
import { attention, KVCache } from '../ops/attention.js';
import { ropeText } from '../ops/rope.js';
import { causalConv1dSilu, gatedDeltaNetGates, gatedDeltaRule } from '../ops/gatedDeltaNet.js';

/** prefillRows submits after every layer above this many tokens (see there). */
const FLUSH_PER_LAYER_TOKENS = 2048;

/** Per-sequence decoder state: what makes decode after prefill equal to recomputing the whole sequence. */
export class TextCache {
  readonly kv: (KVCache | null)[];
  readonly conv: (Tensor | null)[];
  readonly recurrent: (Tensor | null)[];
  /** tokens processed so far */
  length = 0;

  constructor(gpu: Gpu, cfg: TextConfig, readonly maxLen: number) {
    const convDim = 2 * cfg.linearNumKeyHeads * cfg.linearKeyHeadDim + cfg.linearNumValueHeads * cfg.linearValueHeadDim;
    this.kv = cfg.layerTypes.map((t) => (t === 'full_attention' ? new KVCache(gpu, maxLen, cfg.numKeyValueHeads, cfg.headDim) : null));
    this.conv = cfg.layerTypes.map((t) => (t === 'linear_attention' ? Tensor.empty(gpu, [cfg.linearConvKernelDim - 1, convDim], 'f32', 'cache.conv') : null));
    this.recurrent = cfg.layerTypes.map((t) =>
      t === 'linear_attention'
        ? Tensor.empty(gpu, [cfg.linearNumValueHeads, cfg.linearKeyHeadDim, cfg.linearValueHeadDim], 'f32', 'cache.state')
        : null,
    );
    this.reset();
  }

  reset(): void {
    this.length = 0;
    for (const kv of this.kv) kv?.reset();
    for (const t of [...this.conv, ...this.recurrent]) if (t) fill(t, 0);
  }

  release(): void {
    for (const t of [...this.conv, ...this.recurrent]) t?.release();
    for (const kv of this.kv) kv?.release?.();
  }
}

export interface PrefillOptions {
  /** HF hidden_states indices to return (0 = embeddings, i = output of layer i, N = final normed). */
  collect?: number[];
}

export interface PrefillResult {
  /** final hidden states after model.norm, [L, D] (caller releases) */
  hidden: Tensor;
  /** requested hidden_states[i] (caller releases) */
  layers: Map<number, Tensor>;
}

type FullAttention = FullAttentionOf<Tensor>;
/** A ragged batch: cu_seqlens of the prompts and, per prompt, the state after its cached prefix (or null). */
interface Rows { segments: Int32Array; prefixes?: readonly (TextCache | null)[] }
type GatedDeltaNet = GatedDeltaNetOf<Tensor>;

export class TextDecoder {
  /** Every checkpoint tensor of the decoder, declared in src/model/textWeights.ts (the names: `decl`). */
  private readonly decl: TextWeightDecl;
  private readonly W: TextWeights;
  /** full-attention q_proj split into its q rows and its gate rows (the checkpoint interleaves them per head) */
  private readonly qWeights = new Map<number, { q: Tensor; gate: Tensor }>();
  /**
   * mlp.gate_proj and mlp.up_proj of every layer stacked into one [2I, D] matrix (one GEMM; SwiGLU folds into
   * down_proj); null for a layer whose stacked matrix would exceed maxStorageBufferBindingSize (kept separate).
   */
  private readonly gateUp: (Tensor | null)[] = [];

  constructor(
    readonly gpu: Gpu,
    readonly cfg: TextConfig,
    readonly weights: WeightStore,
    readonly tiedEmbeddings: boolean,
  ) {
    this.decl = textWeightDecl(cfg, tiedEmbeddings);
    this.W = bindTextWeights(this.decl, weights);
    this.W.layers.forEach((layer, i) => {
      const declared = this.decl.layers[i].attn;
      if (layer.attn.kind === 'full_attention' && declared.kind === 'full_attention') {
        this.qWeights.set(i, this.splitQProj(i, layer.attn.qProj.w, declared.qProj.w.name));
      }
      this.gateUp.push(this.stackGateUp(i));
    });
  }

  /** [gate_proj; up_proj] of layer i as one [2I, D] matrix (the originals are dropped: nothing else reads them). */
  private stackGateUp(layer: number): Tensor | null {
    const names = this.decl.layers[layer].mlp;
    for (const n of [names.gate.w.name, names.up.w.name]) if (this.weights.parts(n).length !== 1) return null;
    const { gate: { w: g }, up: { w: u } } = this.W.layers[layer].mlp;
    if (isQuantized(g) || isQuantized(u)) return null; // packed rows + scales (docs/quantization.md): kept apart
    // too large for one binding, or an up half that could not be bound on its own (unfolded path): keep separate
    if (g.byteLength + u.byteLength > this.gpu.limits.maxStorageBufferBindingSize) return null;
    if (g.byteLength % this.gpu.limits.minStorageBufferOffsetAlignment !== 0) return null;
    if (g.dtype !== u.dtype || g.shape[1] !== u.shape[1] || g.shape[0] !== u.shape[0] || g.byteLength % 4 !== 0) {
      throw new Error(`text decoder: ${names.gate.w.name} [${g.shape}] ${g.dtype} and up_proj.weight [${u.shape}] ${u.dtype} cannot be stacked`);
    }
    const t = Tensor.empty(this.gpu, [2 * g.shape[0], g.shape[1]], g.dtype, `layers.${layer}.mlp.gate_up`);
    this.gpu.stream.copy(g.buffer, g.offset, t.buffer, 0, g.byteLength);
    this.gpu.stream.copy(u.buffer, u.offset, t.buffer, g.byteLength, u.byteLength);
    this.weights.drop(names.gate.w.name);
    this.weights.drop(names.up.w.name);
    return t;
  }

  /** h += down_proj(silu(gate_proj(xn))·up_proj(xn)): the stacked gate/up GEMM into `gu` [L, 2I], SwiGLU folded into down_proj. */
  private mlp(i: number, xn: Tensor, h: Tensor, gu: Tensor, tiled: boolean): void {
    const mlp = this.W.layers[i].mlp;
    const gateUp = this.gateUp[i];
    if (gateUp && foldPrologue(this.gpu) && !isQuantized(mlp.down.w)) {
      linear(xn, gateUp, { out: gu, tiled, label: `text.${i}.gate_up_proj` });
      swigluLinear(gu, mlp.down.w, { accumulate: true, out: h, label: `text.${i}.down_proj` });
      return;
    }
    // Unfolded (software adapters, see prologueConfig; or a layer too large to stack): gate, up, SwiGLU, down.
    const [L, I] = [xn.shape[0], this.cfg.intermediateSize];
    const half = (k: number) => (gateUp ? gateUp.rows(k * I, I) : k ? mlp.up.w : mlp.gate.w);
    const gate = linear(xn, half(0), { tiled, label: `text.${i}.gate_proj` });
    const up = linear(xn, half(1), { tiled, label: `text.${i}.up_proj` });
    swiglu(gate.reshape([L, I]), up.reshape([L, I]), gate);
    linear(gate, mlp.down.w, { accumulate: true, out: h, tiled, label: `text.${i}.down_proj` });
    gate.release();
    up.release();
  }

  /** q_proj rows are [q_0 | g_0 | q_1 | g_1 | …] (d rows each); copy them once into a q matrix and a gate matrix. */
  private splitQProj(layer: number, w: Tensor, name: string): { q: Tensor; gate: Tensor } {
    const { numAttentionHeads: H, headDim: d, hiddenSize: D } = this.cfg;
    const rowBytes = D * DTYPE_BYTES[w.dtype];
    const q = Tensor.empty(this.gpu, [H * d, D], w.dtype, `layers.${layer}.q_proj.q`);
    const gate = Tensor.empty(this.gpu, [H * d, D], w.dtype, `layers.${layer}.q_proj.gate`);
    for (let h = 0; h < H; h++) {
      this.gpu.stream.copy(w.buffer, (2 * h) * d * rowBytes, q.buffer, h * d * rowBytes, d * rowBytes);
      this.gpu.stream.copy(w.buffer, (2 * h + 1) * d * rowBytes, gate.buffer, h * d * rowBytes, d * rowBytes);
    }
    this.weights.drop(name); // the interleaved original is no longer needed
    return { q, gate };
  }

  /** Token embeddings [L, D] (the table may be split into row blocks). */
  embed(ids: Tensor, out?: Tensor): Tensor {
    const L = ids.size;
    const dst = out ?? Tensor.empty(this.gpu, [L, this.cfg.hiddenSize], 'f32', 'text.embeds');
    for (const part of this.W.embedTokens) {
      gatherRows(part.tensor, ids, { out: dst, rowOffset: part.rowStart });
    }
    return dst;
  }

  /**
   * Run all layers over `h` ([L, D] embeddings, consumed: it becomes the residual stream) at 3-D rope
   * `positions` (i32 [3, L]), appending to `cache`.
   */
  forward(h: Tensor, positions: Tensor, cache: TextCache, opts: PrefillOptions = {}): PrefillResult {
    const cfg = this.cfg;
    const gpu = this.gpu;
    const L = h.shape[0];
    const D = cfg.hiddenSize;
    const N = cfg.numHiddenLayers;
    if (cache.length + L > cache.maxLen) {
      throw new Error(`text decoder: ${cache.length} cached + ${L} new tokens exceed the cache of ${cache.maxLen}`);
    }
    const eps = cfg.rmsNormEps;
    const collect = new Set(opts.collect ?? []);
    const layers = new Map<number, Tensor>();
    const snapshot = (i: number) => {
      if (!collect.has(i)) return;
      const c = Tensor.empty(gpu, [L, D], 'f32', `hidden_states[${i}]`);
      gpu.stream.copy(h.buffer, h.offset, c.buffer, 0, L * D * 4);
      layers.set(i, c);
    };

    const xn = Tensor.empty(gpu, [L, D], 'f32', 'text.xn');
    const I = cfg.intermediateSize;
    const gu = Tensor.empty(gpu, [L, 2 * I], 'f32', 'text.mlp.gate_up');
    for (let i = 0; i < N; i++) {
      snapshot(i);
      const layer = this.W.layers[i];
      rmsNorm(h, layer.inputLayernorm.w, { eps, addOne: true, out: xn });
      if (layer.attn.kind === 'linear_attention') this.deltaNetBlock(i, layer.attn, xn, h, cache, L);
      else this.attentionBlock(i, layer.attn, xn, h, positions, cache, L);
      rmsNorm(h, layer.postAttentionLayernorm.w, { eps, addOne: true, out: xn });
      this.mlp(i, xn, h, gu, false);
    }
    gu.release();
    const hidden = rmsNorm(h, this.W.norm.w, { eps, addOne: true, out: xn });
    if (collect.has(N)) {
      const c = Tensor.empty(gpu, [L, D], 'f32', `hidden_states[${N}]`);
      gpu.stream.copy(xn.buffer, 0, c.buffer, 0, L * D * 4);
      layers.set(N, c);
    }
    h.release();
    cache.length += L;
    return { hidden, layers };
  }

  /**
   * Cache-free prefill of a ragged batch (see the header): `h` [L, D] embeddings of all prompts (consumed),
   * `positions` i32 [3, L] (each prompt's own rope positions), `segments` cu_seqlens of the prompts. Runs only the
   * layers needed for HF hidden_states[layer] and returns it [L, D] (layer N: after the final norm; caller releases).
   * `prefixes[s]` (optional, null = none): the read-only state after prompt s's cached prefix (`h` and
   * `positions` then hold only its suffix; positions continue the full prompt's).
   */
  prefillRows(h: Tensor, positions: Tensor, segments: Int32Array, layer: number, prefixes?: readonly (TextCache | null)[]): Tensor {
    const cfg = this.cfg;
    const gpu = this.gpu;
    const L = h.shape[0];
    const D = cfg.hiddenSize;
    const N = cfg.numHiddenLayers;
    if (!Number.isInteger(layer) || layer < 0 || layer > N) throw new Error(`text decoder: hidden_states[${layer}] does not exist (0..${N})`);
    if (segments[segments.length - 1] !== L) throw new Error(`text decoder: segments end at ${segments[segments.length - 1]}, the batch has ${L} tokens`);
    if (prefixes && prefixes.length !== segments.length - 1) throw new Error(`text decoder: ${prefixes.length} prefixes for ${segments.length - 1} prompts`);
    const pre = prefixes?.some((c) => c && c.length > 0) ? prefixes : undefined;
    const eps = cfg.rmsNormEps;
    const xn = Tensor.empty(gpu, [L, D], 'f32', 'text.xn');
    const I = cfg.intermediateSize;
    const gu = layer > 0 ? Tensor.empty(gpu, [L, 2 * I], 'f32', 'text.mlp.gate_up') : null;
    const rows: Rows = { segments, prefixes: pre };
    for (let i = 0; i < Math.min(layer, N); i++) {
      const layer = this.W.layers[i];
      rmsNorm(h, layer.inputLayernorm.w, { eps, addOne: true, out: xn });
      if (layer.attn.kind === 'linear_attention') this.deltaNetBlock(i, layer.attn, xn, h, null, L, rows);
      else this.attentionBlock(i, layer.attn, xn, h, positions, null, L, rows);
      rmsNorm(h, layer.postAttentionLayernorm.w, { eps, addOne: true, out: xn });
      this.mlp(i, xn, h, gu!, true);
      // Submit per layer for large batches: the pool hands out what a layer released only after a submit, so
      // without this every layer's temporaries would be live at once (B = 100 on tiny: ~1 GiB instead of ~0.1).
      // A single observation's few hundred tokens stay in one submit for the whole prefill.
      if (L > FLUSH_PER_LAYER_TOKENS) gpu.stream.flush();
    }
    gu?.release();
    if (layer < N) {
      xn.release();
      return h; // the residual stream after `layer` layers = hidden_states[layer]
    }
    rmsNorm(h, this.W.norm.w, { eps, addOne: true, out: xn });
    h.release();
    return xn;
  }

  /**
   * The prompts' per-segment initial states of one layer ([n, …] f32, segment s at s·size): the prefix's tensor
   * itself for a single prompt (read only: no copy), else a batch tensor the prefixes are copied into (zeros for a
   * prompt without one). null when no prompt has a prefix. `owned`: the caller releases it.
   */
  private segmentStates(rows: Rows, of: (c: TextCache) => Tensor | null, size: number, label: string): { t: Tensor | null; owned: boolean } {
    const parts = (rows.prefixes ?? []).map((c) => (c && c.length > 0 ? of(c) : null));
    if (!parts.some(Boolean)) return { t: null, owned: false };
    if (parts.length === 1) return { t: parts[0], owned: false };
    const t = Tensor.empty(this.gpu, [parts.length * size], 'f32', label);
    if (parts.some((p) => !p)) fill(t, 0);
    const perSegment = t.reshape([parts.length, size]); // a view: `t` keeps the buffer the caller releases
    parts.forEach((p, s) => { if (p) copyRows(p.reshape([1, size]), perSegment, { dstRow: s }); });
    return { t, owned: true };
  }

  /**
   * Keys of full-attention layer i for prompts that continue cached prefixes: [prefix K ++ own K] per prompt
   * (and V), and their cu_seqlens. `kn`, `v`: the suffix rows [L, Hkv·d] (contiguous).
   */
  private prefixedKeys(i: number, rows: Rows, kn: Tensor, v: Tensor): { k: Tensor; v: Tensor; keySegments: Int32Array; Lk: number } {
    const { numKeyValueHeads: Hkv, headDim: d } = this.cfg;
    const W = Hkv * d;
    const segs = rows.segments;
    const n = segs.length - 1;
    const plen = (s: number) => rows.prefixes?.[s]?.length ?? 0;
    const keySegments = new Int32Array(n + 1);
    for (let s = 0; s < n; s++) keySegments[s + 1] = keySegments[s] + plen(s) + segs[s + 1] - segs[s];
    const Lk = keySegments[n];
    const K = Tensor.empty(this.gpu, [Lk, W], 'f32', `text.${i}.k+prefix`);
    const V = Tensor.empty(this.gpu, [Lk, W], 'f32', `text.${i}.v+prefix`);
    for (let s = 0; s < n; s++) {
      const P = plen(s);
      if (P > 0) {
        const kv = rows.prefixes![s]!.kv[i]!;
        copyRows(kv.k, K, { dstRow: keySegments[s], rows: P });
        copyRows(kv.v, V, { dstRow: keySegments[s], rows: P });
      }
      const m = segs[s + 1] - segs[s];
      copyRows(kn, K, { srcRow: segs[s], dstRow: keySegments[s] + P, rows: m });
      copyRows(v, V, { srcRow: segs[s], dstRow: keySegments[s] + P, rows: m });
    }
    return { k: K, v: V, keySegments, Lk };
  }

  private attentionBlock(i: number, W: FullAttention, xn: Tensor, h: Tensor, positions: Tensor, cache: TextCache | null, L: number, rows?: Rows): void {
    const cfg = this.cfg;
    const { numAttentionHeads: Hq, numKeyValueHeads: Hkv, headDim: d } = cfg;
    const { q: wq, gate: wg } = this.qWeights.get(i)!;
    const tiled = !!rows;
    const q = linear(xn, wq, { tiled, label: `text.${i}.q` });
    const gate = linear(xn, wg, { tiled, label: `text.${i}.gate` });
    const k = linear(xn, W.kProj.w, { tiled, label: `text.${i}.k` });
    const v = linear(xn, W.vProj.w, { tiled, label: `text.${i}.v` });
    const qn = rmsNorm(q, W.qNorm.w, { eps: cfg.rmsNormEps, addOne: true, dim: d });
    const kn = rmsNorm(k, W.kNorm.w, { eps: cfg.rmsNormEps, addOne: true, dim: d });
    const rope = {
      L, headDim: d, rotaryDim: cfg.rope.rotaryDim, theta: cfg.rope.ropeTheta,
      mropeSection: cfg.rope.mropeSection, interleaved: cfg.rope.mropeInterleaved,
    };
    ropeText({ tensor: qn, rowStride: Hq * d }, positions, { ...rope, numHeads: Hq });
    ropeText({ tensor: kn, rowStride: Hkv * d }, positions, { ...rope, numHeads: Hkv });
    let view: { k: { tensor: Tensor; rowStride: number }; v: { tensor: Tensor; rowStride: number }; Lk: number };
    let prefixed: ReturnType<TextDecoder['prefixedKeys']> | null = null;
    if (rows?.prefixes) {
      prefixed = this.prefixedKeys(i, rows, kn, v);
      view = { k: { tensor: prefixed.k, rowStride: Hkv * d }, v: { tensor: prefixed.v, rowStride: Hkv * d }, Lk: prefixed.Lk };
    } else if (cache) {
      const kv = cache.kv[i]!;
      kv.append({ tensor: kn, rowStride: Hkv * d }, { tensor: v, rowStride: Hkv * d }, L);
      view = kv.view();
    } else {
      view = { k: { tensor: kn, rowStride: Hkv * d }, v: { tensor: v, rowStride: Hkv * d }, Lk: L };
    }
    const o = attention({
      q: { tensor: qn, rowStride: Hq * d }, k: view.k, v: view.v, Lq: L, Lk: view.Lk,
      numHeads: Hq, numKvHeads: Hkv, headDim: d, scale: 1 / Math.sqrt(d), causal: true, segments: rows?.segments,
      keySegments: prefixed?.keySegments, gate: { tensor: gate, rowStride: Hq * d }, label: `text.${i}.attn`,
    });
    linear(o, W.oProj.w, { accumulate: true, out: h, tiled, label: `text.${i}.o_proj` });
    for (const t of [q, qn, gate, k, kn, v, o]) t.release();
    prefixed?.k.release();
    prefixed?.v.release();
  }

  private deltaNetBlock(i: number, W: GatedDeltaNet, xn: Tensor, h: Tensor, cache: TextCache | null, L: number, rows?: Rows): void {
    const cfg = this.cfg;
    const Hk = cfg.linearNumKeyHeads, Hv = cfg.linearNumValueHeads;
    const dk = cfg.linearKeyHeadDim, dv = cfg.linearValueHeadDim;
    const convDim = 2 * Hk * dk + Hv * dv;
    const tiled = !!rows;
    const mixed = linear(xn, W.inProjQkv.w, { tiled, label: `text.${i}.in_proj_qkv` });
    const z = linear(xn, W.inProjZ.w, { tiled, label: `text.${i}.in_proj_z` });
    const b = linear(xn, W.inProjB.w, { tiled, label: `text.${i}.in_proj_b` });
    const a = linear(xn, W.inProjA.w, { tiled, label: `text.${i}.in_proj_a` });
    // Ragged rows: each prompt from its cached prefix's conv history and delta-rule state (zeros without one).
    const convIn = rows ? this.segmentStates(rows, (c) => c.conv[i], (cfg.linearConvKernelDim - 1) * convDim, `text.${i}.conv_states`) : null;
    const stateIn = rows ? this.segmentStates(rows, (c) => c.recurrent[i], Hv * dk * dv, `text.${i}.delta_states`) : null;
    const conv = causalConv1dSilu({ tensor: mixed, rowStride: convDim }, W.conv1d.w, cache ? cache.conv[i]! : convIn?.t ?? null, {
      L, channels: convDim, kernel: cfg.linearConvKernelDim, segments: rows?.segments,
    });
    const { g, beta } = gatedDeltaNetGates({ tensor: a, rowStride: Hv }, { tensor: b, rowStride: Hv }, W.aLog, W.dtBias, {
      L, numValueHeads: Hv,
    });
    const o = gatedDeltaRule({
      q: { tensor: conv, rowStride: convDim, offset: 0 },
      k: { tensor: conv, rowStride: convDim, offset: Hk * dk },
      v: { tensor: conv, rowStride: convDim, offset: 2 * Hk * dk },
      g, beta, state: cache ? cache.recurrent[i]! : stateIn?.t ?? null, segments: rows?.segments,
      L, numKeyHeads: Hk, numValueHeads: Hv, keyDim: dk, valueDim: dv,
    });
    const on = rmsNormGated(o.reshape([L * Hv, dv]), z.reshape([L * Hv, dv]), W.norm.w, { eps: cfg.rmsNormEps });
    linear(on.reshape([L, Hv * dv]), W.outProj.w, { accumulate: true, out: h, tiled, label: `text.${i}.out_proj` });
    for (const t of [mixed, z, b, a, conv, g, beta, o, on]) t.release();
    for (const st of [convIn, stateIn]) if (st?.owned) st.t!.release();
  }

  /** Logits for rows [offset, offset+count) of `hidden` ([L, D], already normed): [count, vocab]. */
  logits(hidden: Tensor, offset: number, count: number, out?: Tensor): Tensor {
    const V = this.cfg.vocabSize;
    const dst = out ?? Tensor.empty(this.gpu, [count, V], 'f32', 'text.logits');
    // tied (or a head-less checkpoint): the embeddings are the head, as in HF
    const head = this.tiedEmbeddings || !this.weights.has(this.decl.lmHead.name) ? this.W.embedTokens : this.W.lmHead!;
    for (const part of head) {
      linear(hidden, part.tensor, { xRows: { offset, count }, out: dst, outCols: { offset: part.rowStart }, label: 'text.lm_head' });
    }
    return dst;
  }

  destroy(): void {
    for (const { q, gate } of this.qWeights.values()) {
      q.release();
      gate.release();
    }
    this.qWeights.clear();
    for (const t of this.gateUp) t?.release();
    this.gateUp.length = 0;
  }
}
