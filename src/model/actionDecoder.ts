// QVLA-DiT, the flow-matching action decoder (docs/action-decoder.md §4–§6): the VLM tokens are normalised once per
// observation and every cross block's K/V is computed once (`prepareContext`) and reused by all denoising steps.
// One `velocity` call is one network evaluation: time embedding → adaLN modulations → [state; action tokens]
// through interleaved cross/self blocks → output norm → proj_out → action MLP, giving v(Y, τ) for [h_max, k_max].
//
// Batches (`velocityRows`): B rows (observations) that share τ run as one token matrix [B·(1+h_max), D]. Each row
// has its own state token, self-attention key mask and cross-attention key range (its own VLM tokens in the
// context of the whole batch: `prepareContext` over the concatenated tokens with `segments`); attention runs per
// row (segments), every token-wise linear takes the tiled kernel, and the τ-only parts (time embedding, adaLN
// modulations) are computed once and broadcast. A row's velocity is bit-identical to computing it alone (B = 1).
import type { Gpu } from '../gpu/device.js';
import { Tensor } from '../tensor.js';
import type { ActionExpertConfig } from './config.js';
import type { WeightStore } from './weights.js';
import { linear } from '../ops/linear.js';
import { layerNorm, modulatedLayerNorm } from '../ops/norm.js';
import { unary } from '../ops/elementwise.js';
import { gatherRows } from '../ops/gather.js';
import { attention } from '../ops/attention.js';
import { sinusoidalEmbedding } from '../ops/sinusoid.js';

const P = 'action_expert.';

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

export class ActionDecoder {
  /** position_embedding rows 0..h_max-1 as f32 (added to the action tokens) */
  private readonly positions: Tensor;
  /** state_null_token as f32 [1, D] */
  private readonly nullState: Tensor;
  private readonly ids: Tensor;

  constructor(
    readonly gpu: Gpu,
    readonly cfg: ActionExpertConfig,
    readonly weights: WeightStore,
  ) {
    const idx = Int32Array.from({ length: cfg.hMax }, (_, k) => k);
    this.ids = Tensor.from(gpu, idx, [cfg.hMax], 'i32', 'dit.pos_ids');
    this.positions = gatherRows(this.w('position_embedding.weight'), this.ids);
    const zero = Tensor.from(gpu, new Int32Array(1), [1], 'i32');
    this.nullState = gatherRows(this.w('state_null_token').reshape([1, cfg.hiddenSize]), zero);
    zero.release();
  }

  private w(name: string): Tensor {
    return this.weights.get(P + name);
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
    const c = layerNorm(vlm, this.w('vl_norm.weight'), this.w('vl_norm.bias'), { eps: cfg.vlNormEps });
    const kv = new Map<number, { k: Tensor; v: Tensor }>();
    for (let i = 0; i < cfg.numLayers; i++) {
      if (!this.isCross(i)) continue;
      const a = `dit.blocks.${i}.attn.`;
      kv.set(i, {
        k: linear(c, this.w(a + 'to_k.weight'), { bias: this.w(a + 'to_k.bias'), tiled: true, label: `dit.${i}.cross_k` }),
        v: linear(c, this.w(a + 'to_v.weight'), { bias: this.w(a + 'to_v.bias'), tiled: true, label: `dit.${i}.cross_v` }),
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
    const h = linear(states, this.w('state_encoder.fc1.weight'), { bias: this.w('state_encoder.fc1.bias'), act: 'relu', tiled: true });
    const t = linear(h, this.w('state_encoder.fc2.weight'), { bias: this.w('state_encoder.fc2.bias'), tiled: true });
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
   */
  velocityRows(Y: Tensor, tau: number, ctx: DiTContext, rows: DiTRows, out: Tensor): void {
    const gpu = this.gpu;
    const cfg = this.cfg;
    const D = cfg.hiddenSize;
    const H = cfg.hMax;
    const T = 1 + H;
    const B = rows.B;
    const n = B * T;
    if (Y.size !== B * H * cfg.kMax || out.size !== B * H * cfg.kMax) throw new Error(`action decoder: Y [${Y.shape}] / out [${out.shape}] must hold ${B}×${H}×${cfg.kMax}`);
    if (rows.base.size !== n * D || rows.rowMask.size < n || rows.keyRanges.length !== 2 * B) throw new Error(`action decoder: rows of B = ${B} have the wrong base / mask / key-range sizes`);
    const k = timeBucket(tau, cfg.numBuckets);
    const segments = Int32Array.from({ length: B + 1 }, (_, r) => r * T);

    // Time embedding e(τ) and its SiLU, shared by every row and every adaLN (one row, computed once).
    const tsin = sinusoidalEmbedding([k], cfg.timestepChannels, { flipSinToCos: true, downscaleFreqShift: 1 }, gpu);
    const e1 = linear(tsin, this.w('dit.timestep_encoder.linear_1.weight'), { bias: this.w('dit.timestep_encoder.linear_1.bias'), act: 'silu' });
    const e = linear(e1, this.w('dit.timestep_encoder.linear_2.weight'), { bias: this.w('dit.timestep_encoder.linear_2.bias') });
    const se = unary(e, 'silu');

    // X = [state token ; action tokens + positions] per row.
    const X = Tensor.empty(gpu, [n, D], 'f32', 'dit.x');
    gpu.stream.copy(rows.base.buffer, rows.base.offset, X.buffer, 0, n * D * 4);
    // action encoder: w3·swish(w2·[w1·a ; τ-sinusoid]); the τ half of w2 is one row vector, used as the bias.
    const aEmb = linear(Y, this.w('action_encoder.w1.weight'), { bias: this.w('action_encoder.w1.bias'), tiled: true });
    const tauSin = sinusoidalEmbedding([k], D, { flipSinToCos: false, downscaleFreqShift: 0 }, gpu);
    const w2 = this.w('action_encoder.w2.weight');
    const tauPart = linear(tauSin, w2, { wCols: { offset: D }, bias: this.w('action_encoder.w2.bias') });
    const hs = linear(aEmb, w2, { wCols: { offset: 0 }, bias: tauPart.reshape([D]), act: 'silu', tiled: true });
    // into rows 1..H of every row's block of X
    linear(hs, this.w('action_encoder.w3.weight'), {
      bias: this.w('action_encoder.w3.bias'), accumulate: true, out: X, outRowOffset: 1,
      xRows: { offset: 0, count: H }, rows: { count: B, xStride: H, outStride: T }, tiled: true,
    });
    for (const t of [tsin, e1, e, aEmb, tauSin, tauPart, hs]) t.release();

    const scale = 1 / Math.sqrt(cfg.headDim);
    for (let i = 0; i < cfg.numLayers; i++) {
      const b = `dit.blocks.${i}.`;
      const mod = linear(se, this.w(b + 'norm1.linear.weight'), { bias: this.w(b + 'norm1.linear.bias') });
      const hN = modulatedLayerNorm(X, mod, { eps: cfg.normEps, order: 'scale-shift' });
      const q = linear(hN, this.w(b + 'attn.to_q.weight'), { bias: this.w(b + 'attn.to_q.bias'), tiled: true, label: `dit.${i}.q` });
      let attn: Tensor;
      const heads = { numHeads: cfg.numHeads, numKvHeads: cfg.numHeads, headDim: cfg.headDim, scale };
      if (this.isCross(i)) {
        const kv = ctx.kv.get(i)!;
        attn = attention({
          q: { tensor: q, rowStride: D }, k: { tensor: kv.k, rowStride: D }, v: { tensor: kv.v, rowStride: D },
          Lq: n, Lk: ctx.S, ...heads, segments, keyRanges: rows.keyRanges, keyMask: ctx.keyMask ?? undefined, label: `dit.${i}.cross`,
        });
      } else {
        const kk = linear(hN, this.w(b + 'attn.to_k.weight'), { bias: this.w(b + 'attn.to_k.bias'), tiled: true });
        const vv = linear(hN, this.w(b + 'attn.to_v.weight'), { bias: this.w(b + 'attn.to_v.bias'), tiled: true });
        attn = attention({
          q: { tensor: q, rowStride: D }, k: { tensor: kk, rowStride: D }, v: { tensor: vv, rowStride: D },
          Lq: n, Lk: n, ...heads, segments, keyMask: rows.rowMask, label: `dit.${i}.self`,
        });
        kk.release();
        vv.release();
      }
      linear(attn, this.w(b + 'attn.to_out.weight'), { bias: this.w(b + 'attn.to_out.bias'), accumulate: true, out: X, tiled: true });
      const h2 = layerNorm(X, null, null, { eps: cfg.normEps });
      const f = linear(h2, this.w(b + 'ff.fc1.weight'), { bias: this.w(b + 'ff.fc1.bias'), act: 'gelu_tanh', tiled: true });
      linear(f, this.w(b + 'ff.fc2.weight'), { bias: this.w(b + 'ff.fc2.bias'), accumulate: true, out: X, tiled: true });
      for (const t of [mod, hN, q, attn, h2, f]) t.release();
    }

    const mod = linear(se, this.w('dit.proj_out_1.weight'), { bias: this.w('dit.proj_out_1.bias') });
    const y = modulatedLayerNorm(X, mod, { eps: cfg.outNormEps, order: 'shift-scale' });
    const o = linear(y, this.w('dit.proj_out_2.weight'), { bias: this.w('dit.proj_out_2.bias'), tiled: true });
    // The action MLP only on the H action rows of every block (row 0 is the state token).
    const a = linear(o, this.w('action_decoder.fc1.weight'), {
      bias: this.w('action_decoder.fc1.bias'), act: 'relu', xRows: { offset: 1, count: H }, rows: { count: B, xStride: T }, tiled: true,
    });
    linear(a, this.w('action_decoder.fc2.weight'), { bias: this.w('action_decoder.fc2.bias'), out, tiled: true });
    for (const t of [se, X, mod, y, o, a]) t.release();
    // One submit per evaluation: what it released is reusable by the next one only after a submit (otherwise a
    // whole denoising loop's temporaries stay live: ~B × 15 MiB per evaluation on tiny at B = 100).
    gpu.stream.flush();
  }

  destroy(): void {
    this.positions.release();
    this.nullState.release();
    this.ids.release();
  }
}
