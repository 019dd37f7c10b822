// The Qwen3.5 vision tower (docs/architecture.md §4): patch embedding → interpolated learned
// positions → blocks of [LayerNorm → attention (2-D rotary, bidirectional within each image) → LayerNorm →
// tanh-GELU MLP] → 2×2 merger (LayerNorm, concat, exact-GELU MLP). Input rows are in merge-block order, so the
// merger's 2×2 concat is a free reshape.
// Batches of images: every linear takes the tiled kernel and attention runs per image (per-frame segments, query
// tiles aligned to each segment), so an image's tokens are bit-identical whatever other images share the call.
import type { Gpu } from '../gpu/device.js';
import { Tensor } from '../tensor.js';
import type { VisionConfig } from './config.js';
import type { WeightStore } from './weights.js';
import { bindVisionWeights, visionWeightDecl, type VisionWeights } from './visionWeights.js';
import { linear } from '../ops/linear.js';
import { layerNorm } from '../ops/norm.js';
import { attention } from '../ops/attention.js';
import { ropeVision } from '../ops/rope.js';
import { addInterpolatedPosEmbed } from '../ops/posEmbed.js';
import { visionPatchCoords } from './positions.js';

export interface ImageGrid {
  t: number;
  h: number;
  w: number;
}

export class VisionTower {
  /** Every checkpoint tensor of the tower, declared in src/model/visionWeights.ts (read lazily: see there). */
  private readonly W: VisionWeights;

  constructor(
    readonly gpu: Gpu,
    readonly cfg: VisionConfig,
    readonly weights: WeightStore,
  ) {
    this.W = bindVisionWeights(visionWeightDecl(cfg), weights);
  }

  /** Number of patch rows (before merging) for a grid. */
  static patches(g: ImageGrid): number {
    return g.t * g.h * g.w;
  }

  /**
   * pixels: [Np, C·T·P·P] for all images concatenated (each image's rows in merge-block order).
   * Returns the merged tokens [Np / merge², outHiddenSize] (images in order).
   */
  forward(pixels: Tensor, grids: ImageGrid[]): Tensor {
    const c = this.cfg;
    const Np = grids.reduce((s, g) => s + VisionTower.patches(g), 0);
    const rowLen = c.inChannels * c.temporalPatchSize * c.patchSize * c.patchSize;
    if (pixels.shape[0] !== Np || pixels.shape[1] !== rowLen) {
      throw new Error(`vision: pixel_values [${pixels.shape}] do not match grids (expected [${Np}, ${rowLen}])`);
    }
    const D = c.hiddenSize;
    const H = c.numHeads;
    const hd = c.headDim;
    const eps = c.layerNormEps;
    const gpu = this.gpu;

    // Conv3d with kernel == stride is a matmul over the flattened patch (c, t, ky, kx) order.
    // (the host upload first: a write submits what is encoded before it, so uploads go ahead of the dispatches)
    const coords = Tensor.from(gpu, visionPatchCoords(grids, c.spatialMergeSize), [2, Np], 'i32', 'vision.coords');
    const W = this.W;
    const x = linear(pixels, W.patchEmbed.w.reshape([D, rowLen]), { tiled: true, bias: W.patchEmbed.b, label: 'vision.patch_embed' });
    addInterpolatedPosEmbed(x, W.posEmbed.w, grids, c.spatialMergeSize);

    const segments = new Int32Array(grids.reduce((a, g) => {
      // one segment per temporal frame of each image (frames of a video do not attend to each other)
      for (let t = 0; t < g.t; t++) a.push(a[a.length - 1] + g.h * g.w);
      return a;
    }, [0]));

    const h = Tensor.empty(gpu, [Np, D], 'f32', 'vision.h');
    const qkv = Tensor.empty(gpu, [Np, 3 * D], 'f32', 'vision.qkv');
    const attn = Tensor.empty(gpu, [Np, D], 'f32', 'vision.attn');
    const mlp = Tensor.empty(gpu, [Np, c.intermediateSize], 'f32', 'vision.mlp');
    for (let j = 0; j < c.depth; j++) {
      const blk = W.blocks[j];
      layerNorm(x, blk.norm1.w, blk.norm1.b, { eps, out: h });
      linear(h, blk.attn.qkv.w, { tiled: true, bias: blk.attn.qkv.b, out: qkv, label: `vision.${j}.qkv` });
      // qkv rows are [q (H·hd) | k (H·hd) | v (H·hd)], heads contiguous inside each third.
      const view = (third: number) => ({ tensor: qkv, rowStride: 3 * D, offset: third * D });
      ropeVision(view(0), coords, { L: Np, numHeads: H, headDim: hd, theta: c.ropeTheta });
      ropeVision(view(1), coords, { L: Np, numHeads: H, headDim: hd, theta: c.ropeTheta });
      attention({
        q: view(0), k: view(1), v: view(2), Lq: Np, Lk: Np, numHeads: H, numKvHeads: H, headDim: hd,
        scale: 1 / Math.sqrt(hd), segments, out: attn, label: `vision.${j}.attn`,
      });
      linear(attn, blk.attn.proj.w, { tiled: true, bias: blk.attn.proj.b, accumulate: true, out: x });
      layerNorm(x, blk.norm2.w, blk.norm2.b, { eps, out: h });
      linear(h, blk.mlp.fc1.w, { tiled: true, bias: blk.mlp.fc1.b, act: 'gelu_tanh', out: mlp });
      linear(mlp, blk.mlp.fc2.w, { tiled: true, bias: blk.mlp.fc2.b, accumulate: true, out: x });
    }
    qkv.release();
    attn.release();
    mlp.release();
    coords.release();

    // Merger: LayerNorm per patch, then each 2×2 block's 4 consecutive rows form one row of 4·D.
    const m2 = c.spatialMergeSize * c.spatialMergeSize;
    layerNorm(x, W.merger.norm.w, W.merger.norm.b, { eps, out: h });
    x.release();
    const merged = h.reshape([Np / m2, m2 * D]);
    const t = linear(merged, W.merger.fc1.w, { tiled: true, bias: W.merger.fc1.b, act: 'gelu_erf', label: 'vision.merger.fc1' });
    h.release();
    const out = linear(t, W.merger.fc2.w, { tiled: true, bias: W.merger.fc2.b, label: 'vision.merger.fc2' });
    t.release();
    return out;
  }
}
