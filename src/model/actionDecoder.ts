// QVLA-DiT, the flow-matching action decoder (docs/action-decoder.md §4–§6): the VLM tokens are normalised once per
// observation and every cross block's K/V is computed once (`prepareContext`) and reused by all denoising steps.
// One `velocityRows` call is one network evaluation: [state; action tokens] through interleaved cross/self blocks
// → output norm → proj_out → action MLP, giving v(Y, τ) for [h_max, k_max] per row.
//
// What depends on τ alone is not computed per evaluation: `timeConditioning(taus)` computes, for every time bucket
// a request's solver will visit (all steps, all stages), the timestep embedding, every block's adaLN modulation
// and the output modulation, and the τ half of the action encoder, in a few batched GEMMs before the loop (the
// modulation weights of all blocks are concatenated once, at construction). An evaluation then issues per block:
// norm1 folded into Q (cross) or fused Q/K/V (self: the three weights concatenated at construction) — one
// `normLinear`; attention; out-projection + residual (linear's accumulate epilogue); norm2 folded into FFN fc1;
// fc2 + residual: five dispatches. Checkpoint tensor names are unchanged; fusion happens here, at load.
// Scratch for an evaluation (`DiTWorkspace`) is allocated once per denoising loop and reused by every step, so
// a loop needs no submit to recycle temporaries (the policy encodes the whole loop and submits it once).
//
// Batches (`velocityRows`): B rows (observations) that share τ run as one token matrix [B·(1+h_max), D]. Each row
// has its own state token, self-attention key mask and cross-attention key range (its own VLM tokens in the
// context of the whole batch: `prepareContext` over the concatenated tokens with `segments`); attention runs per
// row (segments), every token-wise linear takes the tiled kernel (normLinear has the same tiling), and the τ-only
// parts are shared. A row's velocity is bit-identical to computing it alone (B = 1).
import type { Gpu } from '../gpu/device.js';
import { Tensor } from '../tensor.js';
import type { ActionExpertConfig } from './config.js';
import type { WeightStore } from './weights.js';
import { linear } from '../ops/linear.js';
import { layerNorm, modulatedLayerNorm } from '../ops/norm.js';
import { isQuantized } from '../quant/index.js';
import { gatherRows } from '../ops/gather.js';
import { attention } from '../ops/attention.js';
import { sinusoidalEmbedding } from '../ops/sinusoid.js';
import { normLinear } from './prologueLinear.js';
import { bindDitWeights, ditWeightDecl, type DitWeights, type LinearOf } from './ditWeights.js';


/** Per-observation decoder inputs: cross-attention K/V of the VLM tokens and their key mask. */
export class DiTContext {
  constructor(
    readonly S: number,
    readonly kv: Map<number, { k: Tensor; v: Tensor }>,
    readonly keyMask: Tensor | null,
    /** cu_seqlens of the observations whose tokens the context concatenates ([0, S] for one) */
    readonly segments: Int32Array = Int32Array.of(0, S),
  ) {}

  /** Key ranges (pairs) of observations `rows` (indices into `segments`), for the cross-attention. */
  keyRanges(rows: readonly number[]): Int32Array {
    const out = new Int32Array(2 * rows.length);
    rows.forEach((r, k) => {
      out[2 * k] = this.segments[r];
      out[2 * k + 1] = this.segments[r + 1];
    });
    return out;
  }

  release(): void {
    for (const { k, v } of this.kv.values()) {
      k.release();
      v.release();
    }
    this.keyMask?.release();
  }
}

/** Integer time bucket of a flow time τ ∈ [0, 1] (computed in float64 on the host). */
export function timeBucket(tau: number, numBuckets: number): number {
  return Math.floor(tau * (numBuckets - 1));
}

/** The rows of one batched network evaluation (see `velocityRows`). */
export interface DiTRows {
  B: number;
  /** [B·T, D], T = 1 + h_max: per row its state token then the action position embeddings (from `tokenBase`) */
  base: Tensor;
  /** f32 [B·T]: self-attention keys (1 = valid): per row the state token and the embodiment's H_e action rows */
  rowMask: Tensor;
  /** [lo, hi) of each row's keys in the context (DiTContext.keyRanges) */
  keyRanges: Int32Array;
}

/**
 * The τ-only inputs of the evaluations of one denoising loop, per time bucket (`ActionDecoder.timeConditioning`):
 * every block's adaLN modulation and the output modulation ([E, (L+1)·2D]: row r = block 0 … block L−1, out),
 * and the action encoder's τ bias ([E, Dp], Dp = D rounded up so that each row is a bindable view).
 */
export class DiTTimeConditioning {
  constructor(
    private readonly rowOf: Map<number, number>,
    readonly numBuckets: number,
    /** [E, (L+1)·2D] */
    readonly mods: Tensor,
    /** [E, Dp] */
    readonly tauBias: Tensor,
    private readonly D: number,
    private readonly numLayers: number,
  ) {}

  /** Time buckets covered. */
  get size(): number {
    return this.rowOf.size;
  }

  has(tau: number): boolean {
    return this.rowOf.has(timeBucket(tau, this.numBuckets));
  }

  row(tau: number): number {
    const r = this.rowOf.get(timeBucket(tau, this.numBuckets));
    if (r === undefined) throw new Error(`action decoder: τ = ${tau} (bucket ${timeBucket(tau, this.numBuckets)}) is not in this time conditioning`);
    return r;
  }

  /** The 2D modulation values of block `block` (block = numLayers: the output norm) at table row `row`. */
  mod(row: number, block: number): Tensor {
    const D = this.D;
    const at = (row * (this.numLayers + 1) + block) * 2 * D;
    return new Tensor(this.mods.gpu, this.mods.buffer, [2 * D], 'f32', this.mods.offset + at * 4, false, 'dit.mod');
  }

  /** The action encoder's bias at table row `row`: w2's τ half · sinusoid(τ) + b2, [D]. */
  tauBiasRow(row: number): Tensor {
    const Dp = this.tauBias.shape[1];
    return new Tensor(this.tauBias.gpu, this.tauBias.buffer, [this.D], 'f32', this.tauBias.offset + row * Dp * 4, false, 'dit.tau_bias');
  }

  release(): void {
    this.mods.release();
    this.tauBias.release();
  }
}

/** Scratch of one network evaluation over B rows, reused by every evaluation of a denoising loop. */
export class DiTWorkspace {
  constructor(
    readonly B: number,
    readonly t: {
      X: Tensor; hN: Tensor; q: Tensor; qkv: Tensor; attn: Tensor; f: Tensor; o: Tensor; a: Tensor; aEmb: Tensor; hs: Tensor;
    },
  ) {}

  release(): void {
    for (const x of Object.values(this.t)) x.release();
  }
}

/** A weight and its bias, possibly several checkpoint tensors concatenated along the output dim at load. */
type Proj = LinearOf<Tensor>;

export class ActionDecoder {
  /** Every checkpoint tensor of the decoder, bound by its declaration (src/model/ditWeights.ts). */
  readonly W: DitWeights;
  /** position_embedding rows 0..h_max-1 as f32 (added to the action tokens) */
  private readonly positions: Tensor;
  /** state_null_token as f32 [1, D] */
  private readonly nullState: Tensor;
  private readonly ids: Tensor;
  /** Self blocks: to_q | to_k | to_v concatenated, [3D, D] (index = block). */
  private readonly selfQkv = new Map<number, Proj>();
  /** Every block's norm1.linear then proj_out_1, concatenated: [(L+1)·2D, D] (null: quantised weights, kept apart). */
  private readonly modProj: Proj | null;
  /** Buffers made at load (the concatenated weights), destroyed with the decoder. */
  private readonly fusedBuffers: GPUBuffer[] = [];
  /**
   * Dispatches of the last `velocityRows` call: in all, and inside the blocks (cross and self; what
   * `qvla bench e2e` divides by num_layers for dispatches per layer-step). Counters only, no sync.
   */
  readonly lastEvaluation = { dispatches: 0, blockDispatches: 0 };

  constructor(
    readonly gpu: Gpu,
    readonly cfg: ActionExpertConfig,
    readonly weights: WeightStore,
  ) {
    this.W = bindDitWeights(ditWeightDecl(cfg), weights);
    const idx = Int32Array.from({ length: cfg.hMax }, (_, k) => k);
    this.ids = Tensor.from(gpu, idx, [cfg.hMax], 'i32', 'dit.pos_ids');
    this.positions = gatherRows(this.W.positionEmbedding, this.ids);
    const zero = Tensor.from(gpu, new Int32Array(1), [1], 'i32');
    this.nullState = gatherRows(this.W.stateNullToken.reshape([1, cfg.hiddenSize]), zero);
    zero.release();
    for (let i = 0; i < cfg.numLayers; i++) {
      if (this.isCross(i)) continue;
      const a = this.W.blocks[i].attn;
      const fused = this.concat([a.toQ, a.toK, a.toV], `dit.${i}.qkv`);
      if (fused) this.selfQkv.set(i, fused);
    }
    this.modProj = this.concat([...this.W.blocks.map((b) => b.norm1), this.W.projOut1], 'dit.mods');
  }

  /**
   * Linears ([N_k, K] weights of one dtype, f32 biases) concatenated along N into new buffers; null when a weight is
   * quantised (docs/quantization.md: packed rows with separate scales are not concatenated byte-wise) or the
   * dtypes differ — the caller then runs the parts as separate GEMMs into column blocks of one output.
   */
  private concat(parts: Proj[], label: string): Proj | null {
    const gpu = this.gpu;
    const ws = parts.map((p) => p.w);
    const bs = parts.map((p) => p.b);
    if (ws.some((w) => isQuantized(w) || w.dtype !== ws[0].dtype)) return null;
    const K = ws[0].shape[1];
    for (const [k, w] of ws.entries()) {
      if (w.shape.length !== 2 || w.shape[1] !== K) {
        throw new Error(`action decoder: cannot fuse ${w.label} [${w.shape}] ${w.dtype} with ${ws[0].label} [${ws[0].shape}] ${ws[0].dtype}`);
      }
      if (bs[k].dtype !== 'f32' || bs[k].size !== w.shape[0]) throw new Error(`action decoder: ${bs[k].label} must be f32 with ${w.shape[0]} values`);
    }
    const N = ws.reduce((s, w) => s + w.shape[0], 0);
    const join = (parts: Tensor[], shape: number[], dtype: Tensor['dtype'], what: string): Tensor => {
      const bytes = parts.reduce((s, t) => s + t.byteLength, 0);
      const buffer = gpu.device.createBuffer({ size: Math.ceil(bytes / 4) * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC, label: what });
      this.fusedBuffers.push(buffer);
      let at = 0;
      for (const t of parts) {
        // f16 weights with an odd element count would leave a 2-byte tail: copies must be 4-byte multiples
        if (t.byteLength % 4 !== 0 || t.offset % 4 !== 0) throw new Error(`action decoder: ${t.label} cannot be fused (${t.byteLength} bytes)`);
        gpu.stream.copy(t.buffer, t.offset, buffer, at, t.byteLength);
        at += t.byteLength;
      }
      return new Tensor(gpu, buffer, shape, dtype, 0, false, what);
    };
    return { w: join(ws, [N, K], ws[0].dtype, `${label}.weight`), b: join(bs, [N], 'f32', `${label}.bias`) };
  }

  isCross(block: number): boolean {
    return block % this.cfg.crossEvery === 0;
  }

  /**
   * c = vl_norm(C); K_i, V_i of every cross block. vlm: [S, d_vlm] (the tokens of several observations
   * concatenated, with `segments` their cu_seqlens); keyMask: f32 [S] (1 valid, 0 masked).
   */
  prepareContext(vlm: Tensor, keyMask?: Tensor, segments?: Int32Array): DiTContext {
    const cfg = this.cfg;
    const S = vlm.shape[0];
    if (vlm.shape[1] !== cfg.dVlm) throw new Error(`action decoder: VLM tokens are ${vlm.shape[1]} wide, config d_vlm is ${cfg.dVlm}`);
    const c = layerNorm(vlm, this.W.vlNorm.w, this.W.vlNorm.b, { eps: cfg.vlNormEps });
    const kv = new Map<number, { k: Tensor; v: Tensor }>();
    for (let i = 0; i < cfg.numLayers; i++) {
      if (!this.isCross(i)) continue;
      const a = this.W.blocks[i].attn;
      kv.set(i, {
        k: linear(c, a.toK.w, { bias: a.toK.b, tiled: true, label: `dit.${i}.cross_k` }),
        v: linear(c, a.toV.w, { bias: a.toV.b, tiled: true, label: `dit.${i}.cross_v` }),
      });
    }
    c.release();
    if (segments && segments[segments.length - 1] !== S) throw new Error(`action decoder: context segments end at ${segments[segments.length - 1]}, not S = ${S}`);
    return new DiTContext(S, kv, keyMask ?? null, segments);
  }

  /** The state token [1, D]: fc2(relu(fc1(state))) for a normalised, zero-padded [s_max] state; else the null token. */
  stateToken(state: Tensor | null): Tensor {
    if (!state) return this.nullState;
    if (state.size !== this.cfg.sMax) throw new Error(`action decoder: state has ${state.size} values, s_max is ${this.cfg.sMax}`);
    return this.stateTokens(state.reshape([1, this.cfg.sMax]));
  }

  /** State tokens [n, D] of n normalised, zero-padded states [n, s_max] (tiled: a row's token never depends on n). */
  stateTokens(states: Tensor): Tensor {
    const se = this.W.stateEncoder;
    const h = linear(states, se.fc1.w, { bias: se.fc1.b, act: 'relu', tiled: true });
    const t = linear(h, se.fc2.w, { bias: se.fc2.b, tiled: true });
    h.release();
    return t;
  }

  /**
   * The evaluation-independent tokens of B rows, [B·T, D]: row r's block is [state token; position embeddings].
   * `states`: [n, s_max] normalised states (or null when no row has one); `stateRow[r]`: row r's index into them,
   * or −1 for the null state token. Four dispatches whatever B (gathers), once per batch.
   */
  tokenBase(states: Tensor | null, stateRow: readonly number[]): Tensor {
    const gpu = this.gpu;
    const { hMax: H, hiddenSize: D } = this.cfg;
    const T = 1 + H;
    const B = stateRow.length;
    const base = Tensor.empty(gpu, [B * T, D], 'f32', 'dit.base');
    const posIds = new Int32Array(B * T);
    const nullIds = new Int32Array(B * T).fill(-1);
    const stateIds = new Int32Array(B * T).fill(-1);
    for (let r = 0; r < B; r++) {
      posIds[r * T] = -1;
      for (let k = 0; k < H; k++) posIds[r * T + 1 + k] = k;
      if (stateRow[r] < 0) nullIds[r * T] = 0;
      else stateIds[r * T] = stateRow[r];
    }
    const ids = Tensor.from(gpu, Int32Array.from([...posIds, ...nullIds, ...stateIds]), [3 * B * T], 'i32', 'dit.base_ids');
    const n = B * T;
    const view = (k: number) => new Tensor(gpu, ids.buffer, [n], 'i32', ids.offset + k * n * 4);
    gatherRows(this.positions, view(0), { out: base });
    gatherRows(this.nullState, view(1), { out: base });
    if (states) {
      const toks = this.stateTokens(states);
      gatherRows(toks, view(2), { out: base });
      toks.release();
    }
    ids.release();
    return base;
  }

  /**
   * The τ-only inputs of evaluations at `taus` (one table row per distinct time bucket): timestep embedding,
   * every block's adaLN modulation + the output modulation (one GEMM over the concatenated weights), and the
   * action encoder's τ bias. Six dispatches whatever the number of τ; pass the result to every evaluation of the
   * loop (`velocityRows(…, { cond })`). Tiled linears: a bucket's row never depends on the other buckets.
   */
  timeConditioning(taus: readonly number[]): DiTTimeConditioning {
    const gpu = this.gpu;
    const cfg = this.cfg;
    const D = cfg.hiddenSize;
    const rowOf = new Map<number, number>();
    for (const tau of taus) {
      if (!(tau >= 0 && tau <= 1)) throw new Error(`action decoder: τ = ${tau} is outside [0, 1]`);
      const k = timeBucket(tau, cfg.numBuckets);
      if (!rowOf.has(k)) rowOf.set(k, rowOf.size);
    }
    const buckets = [...rowOf.keys()];
    const E = buckets.length;
    // Time embedding e(τ) → SiLU → all modulations.
    const tsin = sinusoidalEmbedding(buckets, cfg.timestepChannels, { flipSinToCos: true, downscaleFreqShift: 1 }, gpu);
    const te = this.W.timestepEncoder;
    const e1 = linear(tsin, te.linear1.w, { bias: te.linear1.b, act: 'silu', tiled: true });
    const se = linear(e1, te.linear2.w, { bias: te.linear2.b, act: 'silu', tiled: true });
    let mods: Tensor;
    if (this.modProj) {
      mods = linear(se, this.modProj.w, { bias: this.modProj.b, tiled: true, label: 'dit.mods' });
    } else {
      const parts = [...this.W.blocks.map((b) => b.norm1), this.W.projOut1];
      mods = Tensor.empty(gpu, [E, parts.length * 2 * D], 'f32', 'dit.mods');
      parts.forEach((p, k) => linear(se, p.w, { bias: p.b, out: mods, outCols: { offset: k * 2 * D }, tiled: true, label: 'dit.mods' }));
    }
    // The action encoder's w2 acts on [w1·a ; τ-sinusoid]: its τ half (+ b2) is a per-τ bias of the action half.
    const tauSin = sinusoidalEmbedding(buckets, D, { flipSinToCos: false, downscaleFreqShift: 0 }, gpu);
    const w2 = this.W.actionEncoder.w2.w;
    const align = gpu.limits.minStorageBufferOffsetAlignment / 4;
    const Dp = Math.ceil(D / align) * align;
    const tauBias = Tensor.empty(gpu, [E, Dp], 'f32', 'dit.tau_bias');
    linear(tauSin, w2, { wCols: { offset: w2.shape[1] - D }, bias: this.W.actionEncoder.w2.b, out: tauBias, outCols: { offset: 0 }, tiled: true });
    for (const t of [tsin, e1, se, tauSin]) t.release();
    return new DiTTimeConditioning(rowOf, cfg.numBuckets, mods, tauBias, D, cfg.numLayers);
  }

  /** Scratch for evaluations over B rows (see DiTWorkspace). */
  workspace(B: number): DiTWorkspace {
    const gpu = this.gpu;
    const cfg = this.cfg;
    const D = cfg.hiddenSize;
    const H = cfg.hMax;
    const n = B * (1 + H);
    const e = (shape: number[], label: string) => Tensor.empty(gpu, shape, 'f32', label);
    return new DiTWorkspace(B, {
      X: e([n, D], 'dit.x'),
      hN: e([n, D], 'dit.x_norm'),
      q: e([n, D], 'dit.q'),
      qkv: e([n, 3 * D], 'dit.qkv'),
      attn: e([n, D], 'dit.attn'),
      f: e([n, this.W.blocks[0].ff.fc1.w.shape[0]], 'dit.ff'),
      o: e([n, this.W.projOut2.w.shape[0]], 'dit.proj_out'),
      a: e([B * H, this.W.actionDecoder.fc1.w.shape[0]], 'dit.action_mlp'),
      aEmb: e([B * H, this.W.actionEncoder.w1.w.shape[0]], 'dit.action_emb'),
      hs: e([B * H, D], 'dit.action_hidden'),
    });
  }

  /**
   * v(Y, τ) into `out` [h_max, k_max] for one observation. `rowMask` f32 [1 + h_max] marks the valid self-attention
   * keys (the state token and the embodiment's H_e action rows). (velocityRows with B = 1.)
   */
  velocity(Y: Tensor, tau: number, ctx: DiTContext, stateTok: Tensor, rowMask: Tensor, out: Tensor): void {
    const gpu = this.gpu;
    const { hMax: H, hiddenSize: D } = this.cfg;
    const base = Tensor.empty(gpu, [1 + H, D], 'f32', 'dit.base');
    gpu.stream.copy(stateTok.buffer, stateTok.offset, base.buffer, 0, D * 4);
    gpu.stream.copy(this.positions.buffer, 0, base.buffer, D * 4, H * D * 4);
    this.velocityRows(Y, tau, ctx, { B: 1, base, rowMask, keyRanges: Int32Array.of(0, ctx.S) }, out);
    base.release();
  }

  /**
   * v(Y, τ) into `out` for B rows at one τ: Y and out [B·h_max, k_max] (row r's chunk at rows r·h_max…).
   * Row r attends to its own tokens (rows.rowMask) and to its own context keys (rows.keyRanges).
   * `cond` (timeConditioning over the loop's τ values) and `ws` (workspace(B)) are the loop's; without them this
   * evaluation makes its own and submits at its end (so what it released is reusable by the next one).
   */
  velocityRows(Y: Tensor, tau: number, ctx: DiTContext, rows: DiTRows, out: Tensor, opts: { cond?: DiTTimeConditioning; ws?: DiTWorkspace } = {}): void {
    const gpu = this.gpu;
    const cfg = this.cfg;
    const D = cfg.hiddenSize;
    const H = cfg.hMax;
    const T = 1 + H;
    const B = rows.B;
    const n = B * T;
    if (Y.size !== B * H * cfg.kMax || out.size !== B * H * cfg.kMax) throw new Error(`action decoder: Y [${Y.shape}] / out [${out.shape}] must hold ${B}×${H}×${cfg.kMax}`);
    if (rows.base.size !== n * D || rows.rowMask.size < n || rows.keyRanges.length !== 2 * B) throw new Error(`action decoder: rows of B = ${B} have the wrong base / mask / key-range sizes`);
    if (opts.ws && opts.ws.B !== B) throw new Error(`action decoder: workspace is for B = ${opts.ws.B} rows, not ${B}`);
    const ownCond = !opts.cond?.has(tau);
    const cond = ownCond ? this.timeConditioning([tau]) : opts.cond!;
    const ws = opts.ws ?? this.workspace(B);
    const { X } = ws.t;
    const d0 = gpu.stream.stats.dispatches;
    const r = cond.row(tau);
    const segments = Int32Array.from({ length: B + 1 }, (_, k) => k * T);

    // X = [state token ; action tokens + positions] per row.
    gpu.stream.copy(rows.base.buffer, rows.base.offset, X.buffer, X.offset, n * D * 4);
    // action encoder: w3·swish(w2·[w1·a ; τ-sinusoid]), the τ half precomputed as a bias (cond.tauBiasRow).
    const ae = this.W.actionEncoder;
    linear(Y, ae.w1.w, { bias: ae.w1.b, tiled: true, out: ws.t.aEmb });
    linear(ws.t.aEmb, ae.w2.w, { wCols: { offset: 0 }, bias: cond.tauBiasRow(r), act: 'silu', tiled: true, out: ws.t.hs });
    // into rows 1..H of every row's block of X
    linear(ws.t.hs, ae.w3.w, {
      bias: ae.w3.b, accumulate: true, out: X, outRowOffset: 1,
      xRows: { offset: 0, count: H }, rows: { count: B, xStride: H, outStride: T }, tiled: true,
    });

    const scale = 1 / Math.sqrt(cfg.headDim);
    const b0 = gpu.stream.stats.dispatches;
    const heads = { numHeads: cfg.numHeads, numKvHeads: cfg.numHeads, headDim: cfg.headDim, scale };
    for (let i = 0; i < cfg.numLayers; i++) {
      const blk = this.W.blocks[i];
      // norm1 (adaLN, this τ's modulation) folded into Q (cross) or the fused Q/K/V (self)
      const norm1 = { eps: cfg.normEps, mod: { tensor: cond.mod(r, i), order: 'scale-shift' as const }, scratch: ws.t.hN };
      if (this.isCross(i)) {
        normLinear(X, blk.attn.toQ.w, { ...norm1, bias: blk.attn.toQ.b, out: ws.t.q, label: `dit.${i}.q` });
        const kv = ctx.kv.get(i)!;
        attention({
          q: { tensor: ws.t.q, rowStride: D }, k: { tensor: kv.k, rowStride: D }, v: { tensor: kv.v, rowStride: D },
          Lq: n, Lk: ctx.S, ...heads, segments, keyRanges: rows.keyRanges, keyMask: ctx.keyMask ?? undefined, out: ws.t.attn, label: `dit.${i}.cross`,
        });
      } else {
        const qkv = this.selfQkv.get(i);
        if (qkv) {
          normLinear(X, qkv.w, { ...norm1, bias: qkv.b, out: ws.t.qkv, label: `dit.${i}.qkv` });
        } else {
          // quantised Q/K/V (not concatenated at load): the norm once, three GEMMs into the columns of qkv
          modulatedLayerNorm(X, norm1.mod.tensor, { eps: norm1.eps, order: 'scale-shift', out: ws.t.hN });
          [blk.attn.toQ, blk.attn.toK, blk.attn.toV].forEach((p, k) =>
            linear(ws.t.hN, p.w, { bias: p.b, out: ws.t.qkv, outCols: { offset: k * D }, tiled: true, label: `dit.${i}.qkv` }));
        }
        const view = (offset: number) => ({ tensor: ws.t.qkv, rowStride: 3 * D, offset });
        attention({
          q: view(0), k: view(D), v: view(2 * D),
          Lq: n, Lk: n, ...heads, segments, keyMask: rows.rowMask, out: ws.t.attn, label: `dit.${i}.self`,
        });
      }
      // out-projection + residual in the linear's epilogue; norm2 folded into fc1; fc2 + residual.
      linear(ws.t.attn, blk.attn.toOut.w, { bias: blk.attn.toOut.b, accumulate: true, out: X, tiled: true, label: `dit.${i}.out` });
      normLinear(X, blk.ff.fc1.w, { eps: cfg.normEps, scratch: ws.t.hN, bias: blk.ff.fc1.b, act: 'gelu_tanh', out: ws.t.f, label: `dit.${i}.fc1` });
      linear(ws.t.f, blk.ff.fc2.w, { bias: blk.ff.fc2.b, accumulate: true, out: X, tiled: true, label: `dit.${i}.fc2` });
    }

    this.lastEvaluation.blockDispatches = gpu.stream.stats.dispatches - b0;
    // Output norm (shift-scale modulation) folded into proj_out_2.
    normLinear(X, this.W.projOut2.w, {
      eps: cfg.outNormEps, mod: { tensor: cond.mod(r, cfg.numLayers), order: 'shift-scale' }, scratch: ws.t.hN, bias: this.W.projOut2.b, out: ws.t.o, label: 'dit.proj_out',
    });
    // The action MLP only on the H action rows of every block (row 0 is the state token).
    linear(ws.t.o, this.W.actionDecoder.fc1.w, {
      bias: this.W.actionDecoder.fc1.b, act: 'relu', xRows: { offset: 1, count: H }, rows: { count: B, xStride: T }, tiled: true, out: ws.t.a,
    });
    linear(ws.t.a, this.W.actionDecoder.fc2.w, { bias: this.W.actionDecoder.fc2.b, out, tiled: true });
    this.lastEvaluation.dispatches = gpu.stream.stats.dispatches - d0;
    if (ownCond) cond.release();
    if (!opts.ws) {
      ws.release();
      // A standalone evaluation submits, so what it released is reusable by the next one (without a submit a
      // loop of standalone evaluations would keep every evaluation's scratch live).
      gpu.stream.flush();
    }
  }

  destroy(): void {
    this.gpu.stream.flush(); // encoded work may still read the fused weights
    for (const b of this.fusedBuffers) b.destroy();
    this.positions.release();
    this.nullState.release();
    this.ids.release();
  }
}
