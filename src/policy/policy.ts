// The policy API: one `act()` call from camera frames + instruction + embodiment + state to executable actions.
//
//   const policy = await Policy.load('weights/tiny');
//   const r = await policy.act({ images: [{ data, width, height, camera: 'image_0' }], instruction: 'pick up the cup',
//                                embodiment: 'widowx', state, seed: 0 });
//   r.actions.actions  // Float32Array [H_e, K_e], physical units, channel names in r.actions.names
//
// Stages: preprocess (CPU) → vision tower → prompt prefill (hybrid decoder) → decoder context (vl_norm + cross
// K/V, once per observation) → N denoising steps (the chosen solver) → readback + unnormalisation (CPU).
// GPU buffers come from the pool and the text cache is preallocated, so steady-state calls allocate no new
// GPU buffers.
import { Gpu, GpuError } from '../gpu/device.js';
import { Tensor } from '../tensor.js';
import { openCheckpoint, type Checkpoint } from '../io/checkpoint.js';
import { CheckpointError } from '../io/errors.js';
import type { UploadProgress } from '../io/upload.js';
import type { QvlaConfig, PreprocessorConfig } from '../model/config.js';
import { loadWeights } from '../model/load.js';
import type { WeightStore } from '../model/weights.js';
import { QwenVLM, type VlmImage, type GenerateOptions } from '../model/vlm.js';
import type { TextCache } from '../model/textDecoder.js';
import { ActionDecoder } from '../model/actionDecoder.js';
import { QvlaTokenizer } from '../text/tokenizer.js';
import { buildActionPrompt, buildChatPrompt, type ChatMessage } from '../text/prompt.js';
import {
  parseEmbodiments, normalizeState, actionMask, unnormalizeActions,
  type EmbodimentRegistry, type Embodiment, type UnnormalizedActions,
} from './embodiments.js';
import { integrate, SOLVERS, GRIDS, evaluations, type SolverName, type GridName } from './samplers.js';
import { preprocessImage, decodeImageFile, type RawImage } from '../preprocess/image.js';
import { Rng } from '../util/rng.js';

export class PolicyError extends Error {
  constructor(message: string, readonly field?: string) {
    super(field ? `${field}: ${message}` : message);
    this.name = 'PolicyError';
  }
}

/** A camera frame: raw pixels as a driver hands them over, or a PNG/JPEG file path. */
export type ImageInput = (RawImage & { camera?: string }) | string;

export interface ActRequest {
  /** Camera frames in the embodiment's camera order, or keyed by camera name. Empty / absent: text-only (T2A). */
  images?: ImageInput[] | Record<string, ImageInput>;
  instruction: string;
  embodiment: string;
  /** Raw proprioceptive state (physical units, the embodiment's state.names order). */
  state?: ArrayLike<number> | null;
  /** Noise seed (portable generator, src/util/rng.ts). Default 0. Ignored when `noise` is given. */
  seed?: number;
  /** Caller-supplied initial noise [h_max · k_max] (masked entries are zeroed). */
  noise?: Float32Array;
  steps?: number;
  solver?: SolverName;
  grid?: GridName;
  /** Shift parameter of the `shift` grid. */
  shift?: number;
  /** Return the raw chunk after every step (research). */
  returnTrajectory?: boolean;
}

export interface StageTimings {
  preprocessMs: number;
  visionMs: number;
  prefillMs: number;
  contextMs: number;
  /** wall time of each denoising step (GPU work included) */
  stepMs: number[];
  readbackMs: number;
  postprocessMs: number;
  totalMs: number;
}

export interface ActResult {
  embodiment: string;
  actions: UnnormalizedActions;
  /** the padded normalised chunk [h_max, k_max] as the decoder produced it */
  raw: Float32Array;
  rawShape: [number, number];
  trajectory?: Float32Array[];
  timings: StageTimings;
  steps: number;
  solver: SolverName;
  evaluations: number;
  seed: number;
  promptTokens: number;
}

export interface PolicyOptions {
  /** Matrix storage on the GPU (f16 halves memory and bandwidth; accumulation stays f32). Default f32. */
  weightDtype?: 'f32' | 'f16';
  /** Lower the preprocessor's max_pixels (fewer vision tokens per image). */
  maxPixels?: number;
  /** Longest prompt (tokens) the preallocated cache holds. Default 4096. */
  maxContext?: number;
  /** Reuse an existing device (otherwise one is created and owned by the policy). */
  gpu?: Gpu;
  onProgress?: (p: UploadProgress) => void;
  /** Sync the GPU between stages so timings are per stage (default true; false = lowest latency, total only). */
  stageTimings?: boolean;
}

function nowMs(): number {
  return performance.now();
}

export class Policy {
  private cache: TextCache;
  private maskCache = new Map<string, { action: Tensor; rows: Tensor }>();
  private busy = false;

  private constructor(
    readonly gpu: Gpu,
    private readonly ownsGpu: boolean,
    readonly ckpt: Checkpoint,
    readonly config: QvlaConfig,
    readonly preprocessor: PreprocessorConfig,
    readonly tokenizer: QvlaTokenizer,
    readonly embodiments: EmbodimentRegistry,
    readonly weights: WeightStore,
    readonly vlm: QwenVLM,
    readonly decoder: ActionDecoder,
    readonly options: PolicyOptions,
  ) {
    this.cache = vlm.newCache(options.maxContext ?? 4096);
  }

  static async load(dir: string, opts: PolicyOptions = {}): Promise<Policy> {
    const ckpt = await openCheckpoint(dir, { requireEmbodiments: true });
    const cfg = ckpt.config;
    if (!cfg.actionExpert) throw new CheckpointError('has no action_expert section: this checkpoint is a VLM only (use `qvla chat`)', { file: `${dir}/config.json`, field: 'action_expert' });
    const ae = cfg.actionExpert;
    const embodiments = parseEmbodiments(ckpt.embodiments, { kMax: ae.kMax, sMax: ae.sMax, hMax: ae.hMax }, `${dir}/embodiments.json`);
    const tokenizer = await QvlaTokenizer.load(dir);
    const pre = { ...ckpt.preprocessor };
    if (opts.maxPixels !== undefined) {
      if (!(opts.maxPixels >= pre.minPixels)) throw new PolicyError(`must be ≥ min_pixels ${pre.minPixels}`, 'maxPixels');
      pre.maxPixels = opts.maxPixels;
    }
    const gpu = opts.gpu ?? (await Gpu.create());
    try {
      const weights = await loadWeights(gpu, ckpt, { weightDtype: opts.weightDtype, onProgress: opts.onProgress });
      const vlm = new QwenVLM(gpu, cfg, weights);
      const decoder = new ActionDecoder(gpu, ae, weights);
      await gpu.sync();
      return new Policy(gpu, !opts.gpu, ckpt, cfg, pre, tokenizer, embodiments, weights, vlm, decoder, opts);
    } catch (e) {
      if (!opts.gpu) gpu.destroy();
      throw e;
    }
  }

  embodiment(key: string): Embodiment {
    return this.embodiments.get(key);
  }

  /** Masks for an embodiment: action [h_max, k_max] and self-attention keys [1 + h_max]. */
  private masks(emb: Embodiment): { action: Tensor; rows: Tensor } {
    let m = this.maskCache.get(emb.key);
    if (!m) {
      const ae = this.config.actionExpert!;
      const rows = new Float32Array(1 + ae.hMax);
      rows.fill(1, 0, 1 + emb.control.chunk);
      m = {
        action: Tensor.from(this.gpu, actionMask(emb, ae.hMax, ae.kMax), [ae.hMax, ae.kMax], 'f32', `mask.${emb.key}`),
        rows: Tensor.from(this.gpu, rows, [1 + ae.hMax], 'f32', `rowmask.${emb.key}`),
      };
      this.maskCache.set(emb.key, m);
    }
    return m;
  }

  private async loadImages(req: ActRequest, emb: Embodiment): Promise<{ image: RawImage; camera: string }[]> {
    const imgs = req.images;
    if (imgs === undefined || imgs === null) return [];
    const list: { input: ImageInput; camera: string }[] = [];
    if (Array.isArray(imgs)) {
      imgs.forEach((im, k) => {
        const cam = typeof im === 'string' ? undefined : im.camera;
        list.push({ input: im, camera: cam ?? emb.cameras[k] ?? `view${k}` });
      });
    } else if (typeof imgs === 'object') {
      const known = new Set(emb.cameras);
      for (const key of Object.keys(imgs)) {
        if (!known.has(key)) throw new PolicyError(`unknown camera ${JSON.stringify(key)} for embodiment ${emb.key} (cameras: ${emb.cameras.join(', ')})`, 'images');
      }
      for (const cam of emb.cameras) if (cam in imgs) list.push({ input: imgs[cam], camera: cam });
    } else {
      throw new PolicyError('must be an array of images or an object keyed by camera name', 'images');
    }
    const out: { image: RawImage; camera: string }[] = [];
    for (const [k, { input, camera }] of list.entries()) {
      const field = `images[${Array.isArray(imgs) ? k : JSON.stringify(camera)}]`;
      try {
        out.push({ image: typeof input === 'string' ? await decodeImageFile(input) : input, camera });
      } catch (e) {
        throw new PolicyError(e instanceof Error ? e.message : String(e), field);
      }
    }
    return out;
  }

  private validate(req: ActRequest): { steps: number; solver: SolverName; grid: GridName; seed: number } {
    if (req === null || typeof req !== 'object') throw new PolicyError('act() needs a request object');
    if (typeof req.instruction !== 'string') throw new PolicyError('must be a string', 'instruction');
    if (typeof req.embodiment !== 'string') throw new PolicyError('must be a string naming an embodiment', 'embodiment');
    const ae = this.config.actionExpert!;
    const steps = req.steps ?? ae.defaultSteps;
    if (!Number.isInteger(steps) || steps < 1 || steps > 1000) throw new PolicyError(`must be an integer in [1, 1000], got ${steps}`, 'steps');
    const solver = req.solver ?? (ae.defaultSolver as SolverName);
    if (!SOLVERS.includes(solver)) throw new PolicyError(`must be one of ${SOLVERS.join(', ')}, got ${String(solver)}`, 'solver');
    const grid = req.grid ?? 'uniform';
    if (!GRIDS.includes(grid)) throw new PolicyError(`must be one of ${GRIDS.join(', ')}, got ${String(grid)}`, 'grid');
    const seed = req.seed ?? 0;
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new PolicyError(`must be an integer in [0, 2^32), got ${seed}`, 'seed');
    if (req.noise !== undefined) {
      if (!(req.noise instanceof Float32Array) || req.noise.length !== ae.hMax * ae.kMax) {
        throw new PolicyError(`must be a Float32Array of h_max·k_max = ${ae.hMax * ae.kMax} values`, 'noise');
      }
      for (const v of req.noise) if (!Number.isFinite(v)) throw new PolicyError('contains NaN or Inf', 'noise');
    }
    if (req.shift !== undefined && !(req.shift > 0 && Number.isFinite(req.shift))) throw new PolicyError(`must be a positive number, got ${req.shift}`, 'shift');
    return { steps, solver, grid, seed };
  }

  /** Observation → actions. Calls are serialised (one at a time per policy). */
  async act(req: ActRequest): Promise<ActResult> {
    if (this.busy) throw new PolicyError('act() is already running on this policy; await the previous call (or use one Policy per caller)');
    this.busy = true;
    try {
      return await this.actInner(req);
    } finally {
      this.busy = false;
    }
  }

  private async actInner(req: ActRequest): Promise<ActResult> {
    const t0 = nowMs();
    const { steps, solver, grid, seed } = this.validate(req);
    const gpu = this.gpu;
    gpu.checkHealthy();
    const emb = this.embodiments.get(req.embodiment);
    const ae = this.config.actionExpert!;
    const sync = this.options.stageTimings ?? true;
    const stage = async () => {
      if (sync) await gpu.sync();
      return nowMs();
    };

    // ---- preprocess (CPU)
    let normState: Float32Array | null = null;
    if (req.state !== undefined && req.state !== null) {
      if (!emb.state) throw new PolicyError(`embodiment ${emb.key} takes no state`, 'state');
      try {
        normState = normalizeState(emb, req.state, ae.sMax);
      } catch (e) {
        throw new PolicyError(e instanceof Error ? e.message : String(e), 'state');
      }
    }
    const frames = await this.loadImages(req, emb);
    const images: VlmImage[] = [];
    for (const [k, f] of frames.entries()) {
      try {
        const p = preprocessImage(f.image, this.preprocessor);
        images.push({ pixels: p.pixelValues, grid: p.grid });
      } catch (e) {
        throw new PolicyError(e instanceof Error ? e.message : String(e), `images[${k}]`);
      }
    }
    const maxTokens = this.cache.maxLen;
    let prompt;
    try {
      prompt = buildActionPrompt(
        this.tokenizer, emb, req.instruction,
        images.map((im, k) => ({ camera: frames[k].camera, gridH: im.grid.h, gridW: im.grid.w })),
        { maxTokens, mergeSize: this.config.vision.spatialMergeSize },
      );
    } catch (e) {
      throw new PolicyError(e instanceof Error ? e.message : String(e), 'instruction');
    }
    const tPre = nowMs();

    // ---- VLM
    const vlmLayer = ae.vlmLayer;
    const N = this.config.text.numHiddenLayers;
    let tVision = tPre;
    const pre = await this.vlm.prefill(
      { ids: prompt.ids, mmTokenTypeIds: prompt.mmTokenTypeIds, images },
      this.cache,
      { collect: vlmLayer === N ? [] : [vlmLayer], afterVision: async () => { tVision = await stage(); } },
    );
    pre.vision?.release();
    const tPrefill = await stage();
    const cond = vlmLayer === N ? pre.hidden : pre.layers.get(vlmLayer)!;
    if (cond !== pre.hidden) pre.hidden.release();

    // ---- decoder context (once per observation)
    const ctx = this.decoder.prepareContext(cond);
    cond.release();
    const stateT = normState ? Tensor.from(gpu, normState, [ae.sMax], 'f32', 'state') : null;
    const stateTok = this.decoder.stateToken(stateT);
    const masks = this.masks(emb);
    const noise = req.noise ? Float32Array.from(req.noise) : new Rng(seed).normals(ae.hMax * ae.kMax);
    const m = actionMask(emb, ae.hMax, ae.kMax);
    for (let k = 0; k < noise.length; k++) noise[k] *= m[k];
    const Y = Tensor.from(gpu, noise, [ae.hMax, ae.kMax], 'f32', 'chunk');
    const tCtx = await stage();

    // ---- denoising
    const stepMs: number[] = [];
    const trajectory: Float32Array[] = [];
    const pendingReads: Promise<void>[] = [];
    let tStep = tCtx;
    try {
      await integrate(
        (y, tau, out) => this.decoder.velocity(y, tau, ctx, stateTok, masks.rows, out),
        Y, masks.action,
        {
          steps, solver, grid, shift: req.shift ?? this.config.actionExpert!.timeShift,
          onStep: async (n, _tau, y) => {
            if (req.returnTrajectory) {
              const idx = trajectory.length;
              trajectory.push(new Float32Array(0));
              const copy = Tensor.empty(gpu, y.shape, 'f32');
              gpu.stream.copy(y.buffer, 0, copy.buffer, 0, y.byteLength);
              pendingReads.push(copy.readF32().then((v) => { trajectory[idx] = v.slice(); copy.release(); }));
            }
            const t = await stage();
            stepMs[n] = t - tStep;
            tStep = t;
          },
        },
      );
      const raw = await Y.readF32();
      await Promise.all(pendingReads);
      const tRead = nowMs();
      for (let k = 0; k < raw.length; k++) {
        if (!Number.isFinite(raw[k])) {
          throw new PolicyError(`the action decoder produced a non-finite value at chunk[${Math.floor(k / ae.kMax)}][${k % ae.kMax}] (NaN guard)`);
        }
      }
      const actions = unnormalizeActions(emb, raw, ae.kMax, req.state ?? null);
      const tEnd = nowMs();
      return {
        embodiment: emb.key,
        actions,
        raw,
        rawShape: [ae.hMax, ae.kMax],
        trajectory: req.returnTrajectory ? trajectory : undefined,
        timings: {
          preprocessMs: tPre - t0,
          visionMs: tVision - tPre,
          prefillMs: tPrefill - tVision,
          contextMs: tCtx - tPrefill,
          stepMs,
          readbackMs: tRead - tStep,
          postprocessMs: tEnd - tRead,
          totalMs: tEnd - t0,
        },
        steps,
        solver,
        evaluations: evaluations(solver, steps),
        seed,
        promptTokens: prompt.ids.length,
      };
    } finally {
      Y.release();
      ctx.release();
      stateT?.release();
      if (stateTok !== null && stateT) stateTok.release();
    }
  }

  /** VLM text answer about images (the model's language head). */
  async chat(messages: ChatMessage[], images: ImageInput[] = [], opts: GenerateOptions & { thinking?: boolean } = {}): Promise<{ text: string; tokens: number[] }> {
    const frames: RawImage[] = [];
    for (const im of images) frames.push(typeof im === 'string' ? await decodeImageFile(im) : im);
    const pre = frames.map((f) => preprocessImage(f, this.preprocessor));
    const prompt = buildChatPrompt(this.tokenizer, messages, pre.map((p) => ({ gridH: p.grid.h, gridW: p.grid.w })), {
      thinking: opts.thinking ?? false, maxTokens: this.cache.maxLen, mergeSize: this.config.vision.spatialMergeSize,
    });
    const sp = this.tokenizer.specialIds;
    const tokens = await this.vlm.generate(
      { ids: prompt.ids, mmTokenTypeIds: prompt.mmTokenTypeIds, images: pre.map((p) => ({ pixels: p.pixelValues, grid: p.grid })) },
      { ...opts, stopIds: opts.stopIds ?? [sp.imEnd, sp.endOfText] },
    );
    return { text: this.tokenizer.decode(tokens), tokens };
  }

  destroy(): void {
    for (const m of this.maskCache.values()) {
      m.action.release();
      m.rows.release();
    }
    this.maskCache.clear();
    this.cache.release();
    this.decoder.destroy();
    this.vlm.text.destroy();
    this.weights.destroy();
    void this.ckpt.close();
    if (this.ownsGpu) this.gpu.destroy();
  }
}

export { GpuError };
