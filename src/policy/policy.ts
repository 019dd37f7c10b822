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
//
// Reliability (tests in test/reliability/):
// - NaN guard: the final chunk's non-finite values are counted on the GPU (src/ops/countNonFinite) into a
//   word read back in the same mapAsync as the chunk; any → PolicyError("… (NaN guard)"), never garbage.
// - Device loss: every act()/chat() is raced against the device's loss (Gpu.guard), so a call in flight when
//   the device goes away rejects with GpuError kind 'lost' (no hang, whatever Dawn does with the pending
//   mapAsync / onSubmittedWorkDone). recover() re-creates the device and re-uploads the weights from the same,
//   still-open checkpoint, reusing the parsed config, tokenizer and embodiments; with `autoRecover` (default)
//   a policy that owns its device does that itself at the start of the next call. Everything device-bound
//   (Gpu, weights, VLM, decoder, text cache, masks) lives in one `DeviceState` that a call captures at its
//   start, so an abandoned call that is still unwinding on the dead device never touches the new one.
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
import { QvlaTokenizer, SPECIAL_TOKENS } from '../text/tokenizer.js';
import { buildActionPrompt, buildChatPrompt, type ChatMessage } from '../text/prompt.js';
import {
  parseEmbodiments, normalizeState, actionMask, unnormalizeActions,
  type EmbodimentRegistry, type Embodiment, type UnnormalizedActions,
} from './embodiments.js';
import { integrate, SOLVERS, GRIDS, evaluations, type SolverName, type GridName } from './samplers.js';
import { preprocessImage, decodeImageFile, type RawImage } from '../preprocess/image.js';
import { Rng } from '../util/rng.js';
import { countNonFinite } from '../ops/checkFinite.js';

const INSTRUCTION_FORBIDDEN = [
  SPECIAL_TOKENS.imStart, SPECIAL_TOKENS.imEnd, SPECIAL_TOKENS.endOfText, SPECIAL_TOKENS.visionStart,
  SPECIAL_TOKENS.visionEnd, SPECIAL_TOKENS.imagePad, SPECIAL_TOKENS.videoPad,
];

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
  /**
   * Ablation: the embodiment whose prompt text goes into the prompt (default: `embodiment`). Action space,
   * normalisation, state and cameras stay `embodiment`'s (qvla eval --prompt-as).
   */
  promptAs?: string;
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
  /**
   * After a device loss, let the next act()/chat() call recover() by itself (re-create the device, re-upload
   * the weights) before running. Default true. Only for a policy that owns its device: with a caller-supplied
   * `gpu`, calls keep failing with GpuError('lost') until `recover(newGpu)`. With false, calls fail with
   * GpuError('lost') until `recover()` is called.
   */
  autoRecover?: boolean;
}

/** Everything bound to one GPU device; replaced whole by recover(). */
interface DeviceState {
  gpu: Gpu;
  weights: WeightStore;
  vlm: QwenVLM;
  decoder: ActionDecoder;
  cache: TextCache;
  masks: Map<string, { action: Tensor; rows: Tensor }>;
  disposed: boolean;
}

export interface PolicyStats {
  /** Device losses seen (a call failed on, or started with, a lost device). */
  deviceLosses: number;
  /** Successful recover() runs (explicit or automatic). */
  recoveries: number;
  /** act() calls stopped by the NaN guard. */
  nanGuardTrips: number;
}

function nowMs(): number {
  return performance.now();
}

export class Policy {
  private dev: DeviceState;
  private busy = false;
  private destroyed = false;
  private lossCounted: Gpu | null = null;
  readonly stats: PolicyStats = { deviceLosses: 0, recoveries: 0, nanGuardTrips: 0 };

  private constructor(
    dev: DeviceState,
    private ownsGpu: boolean,
    readonly ckpt: Checkpoint,
    readonly config: QvlaConfig,
    readonly preprocessor: PreprocessorConfig,
    readonly tokenizer: QvlaTokenizer,
    readonly embodiments: EmbodimentRegistry,
    readonly options: PolicyOptions,
  ) {
    this.dev = dev;
  }

  /** The current device (a new one after recover()). */
  get gpu(): Gpu {
    return this.dev.gpu;
  }

  get weights(): WeightStore {
    return this.dev.weights;
  }

  get vlm(): QwenVLM {
    return this.dev.vlm;
  }

  get decoder(): ActionDecoder {
    return this.dev.decoder;
  }

  /** Uploads the weights to `gpu` and builds the device-bound state (on failure, frees what it made). */
  private static async deviceState(gpu: Gpu, ckpt: Checkpoint, opts: PolicyOptions): Promise<DeviceState> {
    const cfg = ckpt.config;
    const weights = await loadWeights(gpu, ckpt, { weightDtype: opts.weightDtype, onProgress: opts.onProgress });
    try {
      const vlm = new QwenVLM(gpu, cfg, weights);
      const decoder = new ActionDecoder(gpu, cfg.actionExpert!, weights);
      const cache = vlm.newCache(opts.maxContext ?? 4096);
      await gpu.sync();
      return { gpu, weights, vlm, decoder, cache, masks: new Map(), disposed: false };
    } catch (e) {
      weights.destroy();
      throw e;
    }
  }

  static async load(dir: string, opts: PolicyOptions = {}): Promise<Policy> {
    const ckpt = await openCheckpoint(dir, { requireEmbodiments: true });
    // Any failure below closes the checkpoint's files (a bad checkpoint must not leak file handles).
    let gpu: Gpu | null = null;
    try {
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
      gpu = opts.gpu ?? (await Gpu.create());
      const dev = await Policy.deviceState(gpu, ckpt, opts);
      return new Policy(dev, !opts.gpu, ckpt, cfg, pre, tokenizer, embodiments, opts);
    } catch (e) {
      if (gpu && !opts.gpu) gpu.destroy();
      await ckpt.close().catch(() => undefined);
      throw e;
    }
  }

  /** True when the device is lost (the next call recovers first, with autoRecover, or fails). */
  get deviceLost(): boolean {
    return this.dev.gpu.isLost;
  }

  /**
   * Re-creates the device state after a device loss: frees what is left of the old one, creates a new Gpu (or
   * takes `gpu`, which the caller then keeps owning), re-uploads the weights from the same checkpoint (still
   * open) and rebuilds the VLM, decoder, text cache and masks. Config, tokenizer, preprocessor and embodiments
   * are reused as parsed. Same device kind → bit-identical actions for the same seed. Also works on a healthy
   * device (a fresh start). On failure the policy stays unrecovered and the next call tries again.
   */
  async recover(gpu?: Gpu): Promise<void> {
    if (this.destroyed) throw new PolicyError('this policy was destroyed; load a new one');
    if (this.busy) throw new PolicyError('recover() cannot run while act()/chat() is running on this policy; await it first');
    this.busy = true;
    try {
      await this.recoverInner(gpu);
    } finally {
      this.busy = false;
    }
  }

  private async recoverInner(gpu?: Gpu): Promise<void> {
    if (!gpu && !this.ownsGpu) {
      throw new PolicyError(
        'this policy runs on a caller-supplied Gpu (PolicyOptions.gpu), which it cannot re-create: create a new Gpu and call policy.recover(gpu)',
      );
    }
    this.noteLoss();
    this.disposeDevice(this.dev, this.ownsGpu);
    const next = gpu ?? (await Gpu.create());
    try {
      this.dev = await Policy.deviceState(next, this.ckpt, this.options);
    } catch (e) {
      if (!gpu) next.destroy();
      throw e;
    }
    this.ownsGpu = !gpu;
    this.stats.recoveries++;
  }

  /** Frees one device state (idempotent; fine on a lost device, where it only drops the handles). */
  private disposeDevice(d: DeviceState, ownsGpu: boolean): void {
    if (d.disposed) return;
    d.disposed = true;
    for (const m of d.masks.values()) {
      m.action.release();
      m.rows.release();
    }
    d.masks.clear();
    d.cache.release();
    d.decoder.destroy();
    d.vlm.text.destroy();
    d.weights.destroy();
    if (ownsGpu) d.gpu.destroy();
  }

  private noteLoss(): void {
    const g = this.dev.gpu;
    if (g.isLost && this.lossCounted !== g) {
      this.lossCounted = g;
      this.stats.deviceLosses++;
    }
  }

  private lostMessage(what: string, during: boolean, cause: unknown): GpuError {
    const why = cause instanceof GpuError ? cause.message.replace(/\.?\s*Re-create the Gpu \/ Policy to recover\.$/, '') : 'GPU device lost';
    const how = !this.ownsGpu
      ? 'This policy runs on a caller-supplied Gpu: create a new Gpu and call policy.recover(gpu) (or load a new Policy).'
      : (this.options.autoRecover ?? true)
        ? 'The next call re-creates the device and re-uploads the weights by itself (autoRecover), or call policy.recover() now.'
        : 'Call policy.recover() to re-create the device and re-upload the weights (autoRecover is off).';
    const err = new GpuError(
      `${what} ${during ? 'failed: the GPU device was lost during the call' : 'cannot run: the GPU device was lost'} (${why}); no actions were produced. ${how}`,
      'lost',
    );
    (err as Error & { cause?: unknown }).cause = cause;
    return err;
  }

  /** Start of a call: a lost device is recovered (autoRecover, owned device) or reported. */
  private async ensureDevice(what: string): Promise<DeviceState> {
    if (this.destroyed) throw new PolicyError(`${what}: this policy was destroyed; load a new one`);
    const g = this.dev.gpu;
    if (g.isLost || this.dev.disposed) {
      this.noteLoss();
      if (this.ownsGpu && (this.options.autoRecover ?? true)) await this.recoverInner();
      else if (g.isLost) throw this.lostMessage(what, false, g.lostError());
      else throw new PolicyError(`${what}: the last recover() failed, so this policy has no device state; call recover() again`);
    }
    return this.dev;
  }

  /**
   * Runs one call's body on `d`, raced against the loss of d's device: if the device goes away mid-call the
   * call rejects at once with GpuError('lost') (the abandoned body unwinds on the dead device, harmlessly).
   */
  private async guarded<T>(what: string, d: DeviceState, body: () => Promise<T>): Promise<T> {
    try {
      return await d.gpu.guard(body());
    } catch (e) {
      if (d.gpu.isLost) {
        this.noteLoss();
        throw this.lostMessage(what, true, e instanceof GpuError && e.kind === 'lost' ? e : d.gpu.lostError());
      }
      throw e;
    }
  }

  embodiment(key: string): Embodiment {
    return this.embodiments.get(key);
  }

  /** Masks for an embodiment: action [h_max, k_max] and self-attention keys [1 + h_max]. */
  private masks(d: DeviceState, emb: Embodiment): { action: Tensor; rows: Tensor } {
    let m = d.masks.get(emb.key);
    if (!m) {
      const ae = this.config.actionExpert!;
      const rows = new Float32Array(1 + ae.hMax);
      rows.fill(1, 0, 1 + emb.control.chunk);
      m = {
        action: Tensor.from(d.gpu, actionMask(emb, ae.hMax, ae.kMax), [ae.hMax, ae.kMax], 'f32', `mask.${emb.key}`),
        rows: Tensor.from(d.gpu, rows, [1 + ae.hMax], 'f32', `rowmask.${emb.key}`),
      };
      d.masks.set(emb.key, m);
    }
    return m;
  }

  private async loadImages(req: ActRequest, emb: Embodiment): Promise<{ image: RawImage; camera: string }[]> {
    const imgs = req.images;
    if (imgs === undefined || imgs === null) return [];
    const list: { input: ImageInput; camera: string }[] = [];
    if (Array.isArray(imgs)) {
      imgs.forEach((im, k) => {
        const cam = im !== null && typeof im === 'object' ? im.camera : undefined; // null etc.: rejected below, naming the field
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
    // Chat-template and vision tokens written into the instruction would be read as structure (a stray
    // <|video_pad|> reaches the rope index as a video; <|image_pad|> miscounts the images): refuse them here.
    for (const t of INSTRUCTION_FORBIDDEN) {
      if (req.instruction.includes(t)) throw new PolicyError(`must not contain the special token ${t} (chat-template and vision tokens are structure, not text)`, 'instruction');
    }
    if (typeof req.embodiment !== 'string') throw new PolicyError('must be a string naming an embodiment', 'embodiment');
    if (req.promptAs !== undefined && (typeof req.promptAs !== 'string' || !this.embodiments.has(req.promptAs))) {
      throw new PolicyError(`must name an embodiment of this checkpoint (${this.embodiments.keys().join(', ')}), got ${JSON.stringify(req.promptAs)}`, 'promptAs');
    }
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

  /**
   * Observation → actions. Calls are serialised (one at a time per policy). A device loss during the call
   * rejects it with GpuError('lost'); see PolicyOptions.autoRecover and recover() for what happens next.
   */
  async act(req: ActRequest): Promise<ActResult> {
    if (this.busy) throw new PolicyError('act() is already running on this policy (or chat() / recover()); await the previous call (or use one Policy per caller)');
    this.busy = true;
    try {
      const d = await this.ensureDevice('act()');
      return await this.guarded('act()', d, () => this.actInner(req, d));
    } finally {
      this.busy = false;
    }
  }

  private async actInner(req: ActRequest, d: DeviceState): Promise<ActResult> {
    const t0 = nowMs();
    const { steps, solver, grid, seed } = this.validate(req);
    const gpu = d.gpu;
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
    } else if (emb.action.relative.some((r) => r)) {
      // checked up front: unnormalising relative actions needs it, and failing after the GPU work wastes a call
      throw new PolicyError(`is required: embodiment ${emb.key} has relative actions and needs the current state (${emb.state?.names.join(', ')})`, 'state');
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
    const maxTokens = d.cache.maxLen;
    let prompt;
    try {
      prompt = buildActionPrompt(
        this.tokenizer, req.promptAs === undefined ? emb : this.embodiments.get(req.promptAs), req.instruction,
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
    const pre = await d.vlm.prefill(
      { ids: prompt.ids, mmTokenTypeIds: prompt.mmTokenTypeIds, images },
      d.cache,
      { collect: vlmLayer === N ? [] : [vlmLayer], afterVision: async () => { tVision = await stage(); } },
    );
    pre.vision?.release();
    const tPrefill = await stage();
    const cond = vlmLayer === N ? pre.hidden : pre.layers.get(vlmLayer)!;
    if (cond !== pre.hidden) pre.hidden.release();

    // ---- decoder context (once per observation)
    const ctx = d.decoder.prepareContext(cond);
    cond.release();
    const stateT = normState ? Tensor.from(gpu, normState, [ae.sMax], 'f32', 'state') : null;
    const stateTok = d.decoder.stateToken(stateT);
    const masks = this.masks(d, emb);
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
    let readback: Tensor | null = null;
    let completed = false;
    try {
      await integrate(
        (y, tau, out) => d.decoder.velocity(y, tau, ctx, stateTok, masks.rows, out),
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
      // NaN guard: the chunk and its non-finite count (on the GPU) come back in one readback.
      const n = ae.hMax * ae.kMax;
      readback = Tensor.empty(gpu, [n + 1], 'u32', 'chunk+flag');
      gpu.stream.copy(Y.buffer, Y.offset, readback.buffer, readback.offset, n * 4);
      countNonFinite(Y, { out: readback, outOffset: n });
      const bytes = await gpu.stream.read(readback.buffer, readback.offset, (n + 1) * 4);
      const raw = new Float32Array(bytes.slice(0, n * 4));
      let bad = new Uint32Array(bytes, n * 4, 1)[0];
      await Promise.all(pendingReads);
      const tRead = nowMs();
      // Locating the first bad value (and the CPU's own count, a free cross-check of 256-ish values).
      let first = -1;
      let cpuBad = 0;
      for (let k = 0; k < n; k++) {
        if (!Number.isFinite(raw[k])) {
          if (first < 0) first = k;
          cpuBad++;
        }
      }
      bad = Math.max(bad, cpuBad);
      if (bad > 0) {
        this.stats.nanGuardTrips++;
        const where = first >= 0 ? `, first at chunk[${Math.floor(first / ae.kMax)}][${first % ae.kMax}]` : '';
        throw new PolicyError(
          `the action decoder produced ${bad} non-finite value${bad === 1 ? '' : 's'} (NaN/Inf) in the ${ae.hMax}×${ae.kMax} chunk${where} (NaN guard); ` +
            'no actions were returned. The checkpoint weights (or the inputs) produce NaN/Inf: check the weights, the state values and the image data.',
        );
      }
      const actions = unnormalizeActions(emb, raw, ae.kMax, req.state ?? null);
      // The same guard after unnormalisation (CPU, a few hundred values): statistics inside float32 range (all
      // embodiments.json accepts) can still overflow to ±Inf here, e.g. mean = FLT_MAX or a huge std.
      for (let k = 0; k < actions.actions.length; k++) {
        if (!Number.isFinite(actions.actions[k])) {
          this.stats.nanGuardTrips++;
          const ch = actions.names[k % actions.dims] ?? String(k % actions.dims);
          throw new PolicyError(
            `the unnormalised action ${ch} of row ${Math.floor(k / actions.dims)} is ${actions.actions[k]} (NaN guard): the normalization ` +
              `statistics of embodiment ${emb.key} in embodiments.json (or the state added to relative channels) overflow float32; no actions were returned`,
          );
        }
      }
      const tEnd = nowMs();
      const result: ActResult = {
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
      completed = true;
      return result;
    } finally {
      Y.release();
      ctx.release();
      stateT?.release();
      if (stateTok !== null && stateT) stateTok.release();
      readback?.release();
      if (completed && !gpu.isLost) {
        // Everything this call encoded was submitted and has completed (the readback waited for it), so what it
        // released can be reused right away: the next call then starts from the same free pool whatever it
        // follows, which keeps steady state at zero new GPU buffers independently of the call order.
        gpu.stream.flush();
        gpu.buffers.afterSubmit();
      }
    }
  }

  /** VLM text answer about images (the model's language head). */
  async chat(messages: ChatMessage[], images: ImageInput[] = [], opts: GenerateOptions & { thinking?: boolean } = {}): Promise<{ text: string; tokens: number[] }> {
    if (this.busy) throw new PolicyError('chat() cannot run while another call is running on this policy; await it first');
    this.busy = true;
    try {
      const d = await this.ensureDevice('chat()');
      return await this.guarded('chat()', d, () => this.chatInner(d, messages, images, opts));
    } finally {
      this.busy = false;
    }
  }

  private async chatInner(d: DeviceState, messages: ChatMessage[], images: ImageInput[], opts: GenerateOptions & { thinking?: boolean }): Promise<{ text: string; tokens: number[] }> {
    const frames: RawImage[] = [];
    for (const im of images) frames.push(typeof im === 'string' ? await decodeImageFile(im) : im);
    const pre = frames.map((f) => preprocessImage(f, this.preprocessor));
    const prompt = buildChatPrompt(this.tokenizer, messages, pre.map((p) => ({ gridH: p.grid.h, gridW: p.grid.w })), {
      thinking: opts.thinking ?? false, maxTokens: d.cache.maxLen, mergeSize: this.config.vision.spatialMergeSize,
    });
    const sp = this.tokenizer.specialIds;
    // The config's vocab_size may be padded beyond the tokenizer's ids: never pick a row that has no text, and
    // decode with U+FFFD (not an exception) should an unknown id come through anyway.
    const tokens = await d.vlm.generate(
      { ids: prompt.ids, mmTokenTypeIds: prompt.mmTokenTypeIds, images: pre.map((p) => ({ pixels: p.pixelValues, grid: p.grid })) },
      { ...opts, stopIds: opts.stopIds ?? [sp.imEnd, sp.endOfText], allowed: opts.allowed ?? this.tokenizer.decodableMask() },
    );
    return { text: this.tokenizer.decode(tokens, { unknown: 'replace' }), tokens };
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.disposeDevice(this.dev, this.ownsGpu);
    void this.ckpt.close().catch(() => undefined);
  }
}

export { GpuError };
