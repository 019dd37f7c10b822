// QVLA-DiT, the flow-matching action decoder (docs/action-decoder.md §4–§6): the VLM tokens are normalised once per
// observation and every cross block's K/V is computed once (`prepareContext`) and reused by all denoising steps.
// One `velocity` call is one network evaluation: time embedding → adaLN modulations → [state; action tokens]
// through interleaved cross/self blocks → output norm → proj_out → action MLP, giving v(Y, τ) for [h_max, k_max].
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
  ) {}

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

  /** c = vl_norm(C); K_i, V_i of every cross block. vlm: [S, d_vlm]; keyMask: f32 [S] (1 valid, 0 masked). */
  prepareContext(vlm: Tensor, keyMask?: Tensor): DiTContext {
    const cfg = this.cfg;
    const S = vlm.shape[0];
    if (vlm.shape[1] !== cfg.dVlm) throw new Error(`action decoder: VLM tokens are ${vlm.shape[1]} wide, config d_vlm is ${cfg.dVlm}`);
    const c = layerNorm(vlm, this.w('vl_norm.weight'), this.w('vl_norm.bias'), { eps: cfg.vlNormEps });
    const kv = new Map<number, { k: Tensor; v: Tensor }>();
    for (let i = 0; i < cfg.numLayers; i++) {
      if (!this.isCross(i)) continue;
      const a = `dit.blocks.${i}.attn.`;
      kv.set(i, {
        k: linear(c, this.w(a + 'to_k.weight'), { bias: this.w(a + 'to_k.bias'), label: `dit.${i}.cross_k` }),
        v: linear(c, this.w(a + 'to_v.weight'), { bias: this.w(a + 'to_v.bias'), label: `dit.${i}.cross_v` }),
      });
    }
    c.release();
    return new DiTContext(S, kv, keyMask ?? null);
  }

  /** The state token [1, D]: fc2(relu(fc1(state))) for a normalised, zero-padded [s_max] state; else the null token. */
  stateToken(state: Tensor | null): Tensor {
    if (!state) return this.nullState;
    if (state.size !== this.cfg.sMax) throw new Error(`action decoder: state has ${state.size} values, s_max is ${this.cfg.sMax}`);
    const h = linear(state.reshape([1, this.cfg.sMax]), this.w('state_encoder.fc1.weight'), { bias: this.w('state_encoder.fc1.bias'), act: 'relu' });
    const t = linear(h, this.w('state_encoder.fc2.weight'), { bias: this.w('state_encoder.fc2.bias') });
    h.release();
    return t;
  }

  /**
   * v(Y, τ) into `out` [h_max, k_max]. `rowMask` f32 [1 + h_max] marks the valid self-attention keys (the state
   * token and the embodiment's H_e action rows).
   */
  velocity(Y: Tensor, tau: number, ctx: DiTContext, stateTok: Tensor, rowMask: Tensor, out: Tensor): void {
    const gpu = this.gpu;
    const cfg = this.cfg;
    const D = cfg.hiddenSize;
    const H = cfg.hMax;
    const T = 1 + H;
    const k = timeBucket(tau, cfg.numBuckets);

    // Time embedding e(τ) and its SiLU, shared by every adaLN.
    const tsin = sinusoidalEmbedding([k], cfg.timestepChannels, { flipSinToCos: true, downscaleFreqShift: 1 }, gpu);
    const e1 = linear(tsin, this.w('dit.timestep_encoder.linear_1.weight'), { bias: this.w('dit.timestep_encoder.linear_1.bias'), act: 'silu' });
    const e = linear(e1, this.w('dit.timestep_encoder.linear_2.weight'), { bias: this.w('dit.timestep_encoder.linear_2.bias') });
    const se = unary(e, 'silu');

    // X = [state token ; action tokens + positions].
    const X = Tensor.empty(gpu, [T, D], 'f32', 'dit.x');
    gpu.stream.copy(stateTok.buffer, stateTok.offset, X.buffer, 0, D * 4);
    gpu.stream.copy(this.positions.buffer, 0, X.buffer, D * 4, H * D * 4);
    // action encoder: w3·swish(w2·[w1·a ; τ-sinusoid]); the τ half of w2 is one row vector, used as the bias.
    const aEmb = linear(Y, this.w('action_encoder.w1.weight'), { bias: this.w('action_encoder.w1.bias') });
    const tauSin = sinusoidalEmbedding([k], D, { flipSinToCos: false, downscaleFreqShift: 0 }, gpu);
    const w2 = this.w('action_encoder.w2.weight');
    const tauPart = linear(tauSin, w2, { wCols: { offset: D }, bias: this.w('action_encoder.w2.bias') });
    const hs = linear(aEmb, w2, { wCols: { offset: 0 }, bias: tauPart.reshape([D]), act: 'silu' });
    linear(hs, this.w('action_encoder.w3.weight'), { bias: this.w('action_encoder.w3.bias'), accumulate: true, out: X, outRowOffset: 1 });
    for (const t of [tsin, e1, e, aEmb, tauSin, tauPart, hs]) t.release();

    const scale = 1 / Math.sqrt(cfg.headDim);
    for (let i = 0; i < cfg.numLayers; i++) {
      const b = `dit.blocks.${i}.`;
      const mod = linear(se, this.w(b + 'norm1.linear.weight'), { bias: this.w(b + 'norm1.linear.bias') });
      const hN = modulatedLayerNorm(X, mod, { eps: cfg.normEps, order: 'scale-shift' });
      const q = linear(hN, this.w(b + 'attn.to_q.weight'), { bias: this.w(b + 'attn.to_q.bias'), label: `dit.${i}.q` });
      let attn: Tensor;
      const heads = { numHeads: cfg.numHeads, numKvHeads: cfg.numHeads, headDim: cfg.headDim, scale };
      if (this.isCross(i)) {
        const kv = ctx.kv.get(i)!;
        attn = attention({
          q: { tensor: q, rowStride: D }, k: { tensor: kv.k, rowStride: D }, v: { tensor: kv.v, rowStride: D },
          Lq: T, Lk: ctx.S, ...heads, keyMask: ctx.keyMask ?? undefined, label: `dit.${i}.cross`,
        });
      } else {
        const kk = linear(hN, this.w(b + 'attn.to_k.weight'), { bias: this.w(b + 'attn.to_k.bias') });
        const vv = linear(hN, this.w(b + 'attn.to_v.weight'), { bias: this.w(b + 'attn.to_v.bias') });
        attn = attention({
          q: { tensor: q, rowStride: D }, k: { tensor: kk, rowStride: D }, v: { tensor: vv, rowStride: D },
          Lq: T, Lk: T, ...heads, keyMask: rowMask, label: `dit.${i}.self`,
        });
        kk.release();
        vv.release();
      }
      linear(attn, this.w(b + 'attn.to_out.weight'), { bias: this.w(b + 'attn.to_out.bias'), accumulate: true, out: X });
      const h2 = layerNorm(X, null, null, { eps: cfg.normEps });
      const f = linear(h2, this.w(b + 'ff.fc1.weight'), { bias: this.w(b + 'ff.fc1.bias'), act: 'gelu_tanh' });
      linear(f, this.w(b + 'ff.fc2.weight'), { bias: this.w(b + 'ff.fc2.bias'), accumulate: true, out: X });
      for (const t of [mod, hN, q, attn, h2, f]) t.release();
    }

    const mod = linear(se, this.w('dit.proj_out_1.weight'), { bias: this.w('dit.proj_out_1.bias') });
    const y = modulatedLayerNorm(X, mod, { eps: cfg.outNormEps, order: 'shift-scale' });
    const o = linear(y, this.w('dit.proj_out_2.weight'), { bias: this.w('dit.proj_out_2.bias') });
    // The action MLP only on the H action rows (row 0 is the state token).
    const a = linear(o, this.w('action_decoder.fc1.weight'), { bias: this.w('action_decoder.fc1.bias'), act: 'relu', xRows: { offset: 1, count: H } });
    linear(a, this.w('action_decoder.fc2.weight'), { bias: this.w('action_decoder.fc2.bias'), out });
    for (const t of [se, X, mod, y, o, a]) t.release();
  }

  destroy(): void {
    this.positions.release();
    this.nullState.release();
    this.ids.release();
  }
}
