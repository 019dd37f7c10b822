// The policy API: one `act()` call from camera frames + instruction + embodiment + state to executable actions.
//
//   const policy = await Policy.load('weights/tiny');
//   const r = await policy.act({ images: [{ data, width, height, camera: 'image_0' }], instruction: 'pick up the cup',
//                                embodiment: 'widowx', state, seed: 0 });
//   r.actions.actions  // Float32Array [H_e, K_e], physical units, channel names in r.actions.names
//
// Stages: preprocess (CPU) → vision tower → prompt prefill (hybrid decoder) → decoder context (vl_norm + cross
// K/V, once per observation) → N denoising steps (the chosen solver) → readback + unnormalisation (CPU).
// GPU buffers come from the pool (released at the end of the call), so steady-state calls allocate no new GPU
// buffers.
//
// Batching: `actBatch(requests)` runs many independent observations in one pass, and `act(r)` is
// `actBatch([r])[0]` — one code path, so a row is bit-identical alone and in any batch. Layout (actPass):
// - vision: every image of every row through the tower at once (one attention segment per image);
// - prompts: concatenated along the token axis (cu_seqlens); a cache-free ragged prefill (TextDecoder.prefillRows):
//   causal attention per prompt, Gated DeltaNet conv / chunked rule per prompt from a zero state — no KV cache,
//   no per-row state buffers (act() never decodes, so nothing is kept);
// - decoder context: vl_norm + cross K/V over the concatenated VLM tokens; row r's cross-attention keys are its
//   own range of them;
// - denoising: rows grouped by (solver, steps, grid, shift); a group is one [B_g·h_max, k_max] chunk and one
//   network evaluation per solver stage for all its rows ([state; actions] token blocks of 1 + h_max per row,
//   self-attention per row with its embodiment's key mask, τ-only parts computed once);
// - one readback of every chunk + per-group NaN-guard counts.
// Bit-identity rests on every kernel computing a row from that row alone in a fixed order: linears pinned to the
// tiled kernel (`tiled`: GEMV would reduce in another order for ≤ 4 rows), attention query tiles that never cross
// a segment with key tiles starting at the segment's first key, conv blocks and delta-rule chunks aligned to each
// prompt's first token. Huge batches run in passes of ≤ maxBatchTokens prompt tokens (same bits).
//
// Reliability (tests in test/reliability/):
// - NaN guard: the final chunk's non-finite values are counted on the GPU (src/ops/countNonFinite) into a
//   word read back in the same mapAsync as the chunk; any → PolicyError("… (NaN guard)"), never garbage.
// - Device loss: every act()/chat() is raced against the device's loss (Gpu.guard), so a call in flight when
//   the device goes away rejects with GpuError kind 'lost' (no hang, whatever Dawn does with the pending
//   mapAsync / onSubmittedWorkDone). recover() re-creates the device and re-uploads the weights from the same,
//   still-open checkpoint, reusing the parsed config, tokenizer and embodiments; with `autoRecover` (default)
//   a policy that owns its device does that itself at the start of the next call. Everything device-bound
//   (Gpu, weights, VLM, decoder) lives in one `DeviceState` that a call captures at its
//   start, so an abandoned call that is still unwinding on the dead device never touches the new one.
import { Gpu, GpuError } from '../gpu/device.js';
import { Tensor } from '../tensor.js';
import { openCheckpoint, type Checkpoint } from '../io/checkpoint.js';
import { CheckpointError } from '../io/errors.js';
import type { UploadProgress } from '../io/upload.js';
import type { QvlaConfig, PreprocessorConfig } from '../model/config.js';
import { loadWeights } from '../model/load.js';
import type { WeightStore } from '../model/weights.js';
import { QwenVLM, type VlmImage, type VlmInput, type GenerateOptions } from '../model/vlm.js';
import { ActionDecoder, type DiTRows } from '../model/actionDecoder.js';
import { QvlaTokenizer, SPECIAL_TOKENS } from '../text/tokenizer.js';
import { buildActionPrompt, buildChatPrompt, type ChatMessage } from '../text/prompt.js';
import {
  parseEmbodiments, normalizeState, actionMask, unnormalizeActions,
  type EmbodimentRegistry, type Embodiment, type UnnormalizedActions,
} from './embodiments.js';
import { integrate, evaluationTimes, SOLVERS, GRIDS, evaluations, type SolverName, type GridName } from './samplers.js';
import { preprocessImage, decodeImageFile, type RawImage } from '../preprocess/image.js';
import { Rng } from '../util/rng.js';
import { countNonFinite } from '../ops/checkFinite.js';
import { releaseSegmentTables } from '../ops/segments.js';

const INSTRUCTION_FORBIDDEN = [
  SPECIAL_TOKENS.imStart, SPECIAL_TOKENS.imEnd, SPECIAL_TOKENS.endOfText, SPECIAL_TOKENS.visionStart,
  SPECIAL_TOKENS.visionEnd, SPECIAL_TOKENS.imagePad, SPECIAL_TOKENS.videoPad,
];

export class PolicyError extends Error {
  /** the message without the field prefix */
  readonly reason: string;
  constructor(message: string, readonly field?: string) {
    super(field ? `${field}: ${message}` : message);
    this.name = 'PolicyError';
    this.reason = message;
  }
}

/** An error of request i of a batch: a PolicyError whose field is prefixed with `requests[i]`. */
function rowError(e: unknown, i: number): PolicyError {
  if (e instanceof PolicyError) return new PolicyError(e.reason, `requests[${i}]${e.field ? `.${e.field}` : ''}`);
  return new PolicyError(e instanceof Error ? e.message : String(e), `requests[${i}]`);
}

function rowHasNonFinite(all: Float32Array, slot: number, n: number): boolean {
  for (let k = slot * n; k < (slot + 1) * n; k++) if (!Number.isFinite(all[k])) return true;
  return false;
}

/** One request after validation and its CPU work (actBatch). */
interface PreparedRow {
  req: ActRequest;
  emb: Embodiment;
  steps: number;
  solver: SolverName;
  grid: GridName;
  seed: number;
  shift: number;
  normState: Float32Array | null;
  /** masked initial noise [h_max·k_max] */
  noise: Float32Array;
  input: VlmInput;
}

/** Rows of a batch sharing (solver, steps, grid, shift): integrated together. */
interface Group {
  /** indices into the batch */
  rows: number[];
  first: PreparedRow;
  stepMs: number[];
  trajectory: Map<number, Float32Array[]>;
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
  /** Longest prompt (tokens) of a request. Default 4096. */
  maxContext?: number;
  /**
   * actBatch runs the rows in GPU passes of at most this many prompt tokens (a bound on activation buffer sizes;
   * a longer single row still runs alone). Default 16384.
   */
  maxBatchTokens?: number;
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
  /** longest prompt (tokens) a request may have */
  maxContext: number;
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

const DEFAULT_MAX_BATCH_TOKENS = 16384;

function nowMs(): number {
  return performance.now();
}

export class Policy {
  private dev: DeviceState;
  private busy = false;
  private readonly maskCache = new Map<string, { action: Float32Array; rows: Float32Array }>();
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
      await gpu.sync();
      return { gpu, weights, vlm, decoder, maxContext: opts.maxContext ?? 4096, disposed: false };
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
   * open) and rebuilds the VLM and decoder. Config, tokenizer, preprocessor and embodiments
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
   * `act(r)` is `actBatch([r])[0]` (one code path), with error fields named without the `requests[i].` prefix.
   */
  async act(req: ActRequest): Promise<ActResult> {
    return (await this.runCall('act()', [req], false))[0];
  }

  /**
   * Many observations in one pass (closed-loop evaluation, a fleet server). Requests are independent: each has
   * its own embodiment, images, instruction, state, seed / noise, solver, steps and grid. Row i of the result is
   * bit-identical to `act(requests[i])` alone (same `raw` bits, same actions). Work is batched on the GPU: one
   * vision pass over every image, one ragged prompt prefill, one decoder context, and one network evaluation per
   * step for every group of rows sharing (solver, steps, grid, shift). Timings are the batch's (each row gets
   * its group's step times). A bad request fails the whole call with a PolicyError naming `requests[i].field`;
   * the NaN guard likewise names the first bad row. An empty array returns [] without touching the GPU.
   */
  async actBatch(requests: ActRequest[]): Promise<ActResult[]> {
    if (!Array.isArray(requests)) throw new PolicyError('actBatch() needs an array of requests');
    return this.runCall('actBatch()', requests, true);
  }

  private async runCall(what: string, reqs: ActRequest[], batch: boolean): Promise<ActResult[]> {
    if (this.busy) throw new PolicyError(`${what} cannot start: act() / actBatch() is already running on this policy (or chat() / recover()); await the previous call (or use one Policy per caller)`);
    if (reqs.length === 0) return [];
    this.busy = true;
    try {
      const d = await this.ensureDevice(what);
      return await this.guarded(what, d, () => this.actRows(reqs, d, batch));
    } finally {
      this.busy = false;
    }
  }

  /** Host arrays of an embodiment: action mask [h_max·k_max] and self-attention key mask [1 + h_max]. */
  private hostMasks(emb: Embodiment): { action: Float32Array; rows: Float32Array } {
    let m = this.maskCache.get(emb.key);
    if (!m) {
      const ae = this.config.actionExpert!;
      const rows = new Float32Array(1 + ae.hMax);
      rows.fill(1, 0, 1 + emb.control.chunk);
      m = { action: actionMask(emb, ae.hMax, ae.kMax), rows };
      this.maskCache.set(emb.key, m);
    }
    return m;
  }

  /** Validation and the CPU side of one request: state, images, prompt, masked initial noise. */
  private async prepareRow(req: ActRequest, d: DeviceState): Promise<PreparedRow> {
    const { steps, solver, grid, seed } = this.validate(req);
    const emb = this.embodiments.get(req.embodiment);
    const ae = this.config.actionExpert!;
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
    let prompt;
    try {
      prompt = buildActionPrompt(
        this.tokenizer, req.promptAs === undefined ? emb : this.embodiments.get(req.promptAs), req.instruction,
        images.map((im, k) => ({ camera: frames[k].camera, gridH: im.grid.h, gridW: im.grid.w })),
        { maxTokens: d.maxContext, mergeSize: this.config.vision.spatialMergeSize },
      );
    } catch (e) {
      throw new PolicyError(e instanceof Error ? e.message : String(e), 'instruction');
    }
    const noise = req.noise ? Float32Array.from(req.noise) : new Rng(seed).normals(ae.hMax * ae.kMax);
    const m = this.hostMasks(emb).action;
    for (let k = 0; k < noise.length; k++) noise[k] *= m[k];
    return {
      req, emb, steps, solver, grid, seed, shift: req.shift ?? ae.timeShift, normState, noise,
      input: { ids: prompt.ids, mmTokenTypeIds: prompt.mmTokenTypeIds, images },
    };
  }

  /**
   * The batched act. Row layout: prompts concatenated along the token axis (cu_seqlens `pre.segments`) through
   * the vision tower, the ragged prefill and the decoder context; rows grouped by (solver, steps, grid, shift),
   * each group one [B_g·h_max, k_max] chunk integrated with one network evaluation per solver stage for all its
   * rows. Every kernel keeps a row's arithmetic independent of the other rows (see src/model/*: tiled linears,
   * per-segment attention / conv / delta rule), which is what makes a row bit-identical alone and batched.
   */
  private async actRows(reqs: ActRequest[], d: DeviceState, batch: boolean): Promise<ActResult[]> {
    const t0 = nowMs();
    const rows: PreparedRow[] = [];
    for (const [i, req] of reqs.entries()) {
      try {
        rows.push(await this.prepareRow(req, d));
      } catch (e) {
        throw batch ? rowError(e, i) : e;
      }
    }
    // Passes of at most maxBatchTokens prompt tokens (a row's bits do not depend on its pass).
    const budget = this.options.maxBatchTokens ?? DEFAULT_MAX_BATCH_TOKENS;
    const out: ActResult[] = [];
    for (let start = 0; start < rows.length; ) {
      let end = start + 1;
      let tokens = rows[start].input.ids.length;
      while (end < rows.length && tokens + rows[end].input.ids.length <= budget) tokens += rows[end++].input.ids.length;
      out.push(...(await this.actPass(rows.slice(start, end), start, d, batch, t0)));
      start = end;
    }
    return out;
  }

  /** One GPU pass over `rows` (requests first … first + rows.length − 1 of the call). */
  private async actPass(rows: PreparedRow[], first: number, d: DeviceState, batch: boolean, t0: number): Promise<ActResult[]> {
    const gpu = d.gpu;
    gpu.checkHealthy();
    const ae = this.config.actionExpert!;
    const H = ae.hMax, K = ae.kMax, T = 1 + H, n = H * K;
    const sync = this.options.stageTimings ?? true;
    const stage = async () => {
      if (sync) await gpu.sync();
      return nowMs();
    };
    const tPre = nowMs();

    // ---- VLM: every image, every prompt, one pass
    let tVision = tPre;
    const pre = await d.vlm.prefillRows(rows.map((r) => r.input), ae.vlmLayer, { afterVision: async () => { tVision = await stage(); } });
    const tPrefill = await stage();

    // ---- decoder context (once per observation, all rows at once)
    const ctx = d.decoder.prepareContext(pre.hidden, undefined, pre.segments);
    pre.hidden.release();
    const byKey = new Map<string, Group>();
    const groups: Group[] = [];
    rows.forEach((r, i) => {
      const key = `${r.solver}|${r.steps}|${r.grid}|${r.shift}`;
      let g = byKey.get(key);
      if (!g) {
        g = { rows: [], first: r, stepMs: [], trajectory: new Map() };
        byKey.set(key, g);
        groups.push(g);
      }
      g.rows.push(i);
    });
    const owned: Tensor[] = [];
    const scratch: { release(): void }[] = [];
    const groupGpu = groups.map((g) => {
      const Bg = g.rows.length;
      const withState = g.rows.filter((i) => rows[i].normState);
      const stateRow = g.rows.map((i) => (rows[i].normState ? withState.indexOf(i) : -1));
      let states: Tensor | null = null;
      if (withState.length) {
        const s = new Float32Array(withState.length * ae.sMax);
        withState.forEach((i, k) => s.set(rows[i].normState!, k * ae.sMax));
        states = Tensor.from(gpu, s, [withState.length, ae.sMax], 'f32', 'states');
      }
      const base = d.decoder.tokenBase(states, stateRow);
      states?.release();
      const rowMask = new Float32Array(Bg * T);
      const actMask = new Float32Array(Bg * n);
      const noise = new Float32Array(Bg * n);
      g.rows.forEach((i, k) => {
        const hm = this.hostMasks(rows[i].emb);
        rowMask.set(hm.rows, k * T);
        actMask.set(hm.action, k * n);
        noise.set(rows[i].noise, k * n);
      });
      const t = {
        base,
        rowMask: Tensor.from(gpu, rowMask, [Bg * T], 'f32', 'rowmask'),
        mask: Tensor.from(gpu, actMask, [Bg * H, K], 'f32', 'mask'),
        Y: Tensor.from(gpu, noise, [Bg * H, K], 'f32', 'chunk'),
      };
      owned.push(t.base, t.rowMask, t.mask, t.Y);
      const f = g.first;
      const cond = d.decoder.timeConditioning(evaluationTimes({ steps: f.steps, solver: f.solver, grid: f.grid, shift: f.shift }));
      const ws = d.decoder.workspace(Bg);
      scratch.push(cond, ws);
      return { ...t, cond, ws, dit: { B: Bg, base, rowMask: t.rowMask, keyRanges: ctx.keyRanges(g.rows) } as DiTRows };
    });
    const tCtx = await stage();

    // ---- denoising: one network evaluation per solver stage for all rows of a group
    const pendingReads: Promise<void>[] = [];
    let tStep = tCtx;
    let readback: Tensor | null = null;
    let completed = false;
    try {
      for (const [gi, g] of groups.entries()) {
        const G = groupGpu[gi];
        const traj = g.rows.filter((i) => rows[i].req.returnTrajectory);
        for (const i of traj) g.trajectory.set(i, []);
        const f = g.first;
        await integrate(
          (y, tau, out) => d.decoder.velocityRows(y, tau, ctx, G.dit, out, { cond: G.cond, ws: G.ws }),
          G.Y, G.mask,
          {
            steps: f.steps, solver: f.solver, grid: f.grid, shift: f.shift,
            onStep: async (step) => {
              if (traj.length) {
                const copy = Tensor.empty(gpu, G.Y.shape, 'f32');
                gpu.stream.copy(G.Y.buffer, G.Y.offset, copy.buffer, 0, G.Y.byteLength);
                pendingReads.push(copy.readF32().then((v) => {
                  for (const i of traj) {
                    const k = g.rows.indexOf(i);
                    g.trajectory.get(i)![step] = v.slice(k * n, (k + 1) * n);
                  }
                  copy.release();
                }));
              }
              const t = await stage();
              g.stepMs[step] = t - tStep;
              tStep = t;
            },
          },
        );
      }
      // NaN guard: the chunks and, per group, their non-finite count (on the GPU) come back in one readback.
      const B = rows.length;
      readback = Tensor.empty(gpu, [B * n + groups.length], 'u32', 'chunk+flag');
      const slot = new Int32Array(B); // row → chunk slot in the readback (groups in order)
      let o = 0;
      for (const [gi, g] of groups.entries()) {
        const Y = groupGpu[gi].Y;
        gpu.stream.copy(Y.buffer, Y.offset, readback.buffer, readback.offset + o * n * 4, Y.byteLength);
        countNonFinite(Y, { out: readback, outOffset: B * n + gi });
        g.rows.forEach((i, k) => { slot[i] = o + k; });
        o += g.rows.length;
      }
      const bytes = await gpu.stream.read(readback.buffer, readback.offset, (B * n + groups.length) * 4);
      const all = new Float32Array(bytes, 0, B * n);
      const flags = new Uint32Array(bytes, B * n * 4, groups.length);
      await Promise.all(pendingReads);
      const tRead = nowMs();

      const results: ActResult[] = [];
      for (const [i, r] of rows.entries()) {
        const g = groups.find((x) => x.rows.includes(i))!;
        const raw = all.slice(slot[i] * n, (slot[i] + 1) * n);
        // Locating the first bad value (and the CPU's own count, a free cross-check of the GPU's).
        let first = -1;
        let bad = 0;
        for (let k = 0; k < n; k++) {
          if (!Number.isFinite(raw[k])) {
            if (first < 0) first = k;
            bad++;
          }
        }
        // The GPU counts per group; should it see what the CPU does not (it never has), the group's first row fails.
        const gpuBad = flags[groups.indexOf(g)];
        if (bad === 0 && gpuBad > 0 && i === g.rows[0] && !g.rows.some((j) => rowHasNonFinite(all, slot[j], n))) bad = gpuBad;
        if (bad > 0) {
          this.stats.nanGuardTrips++;
          const where = first >= 0 ? `, first at chunk[${Math.floor(first / K)}][${first % K}]` : '';
          throw new PolicyError(
            `${batch ? `requests[${first + i}]: ` : ''}the action decoder produced ${bad} non-finite value${bad === 1 ? '' : 's'} (NaN/Inf) in the ${H}×${K} chunk${where} (NaN guard); ` +
              'no actions were returned. The checkpoint weights (or the inputs) produce NaN/Inf: check the weights, the state values and the image data.',
          );
        }
        const actions = unnormalizeActions(r.emb, raw, K, r.req.state ?? null);
        // The same guard after unnormalisation (CPU, a few hundred values): statistics inside float32 range (all
        // embodiments.json accepts) can still overflow to ±Inf here, e.g. mean = FLT_MAX or a huge std.
        for (let k = 0; k < actions.actions.length; k++) {
          if (!Number.isFinite(actions.actions[k])) {
            this.stats.nanGuardTrips++;
            const ch = actions.names[k % actions.dims] ?? String(k % actions.dims);
            throw new PolicyError(
              `${batch ? `requests[${first + i}]: ` : ''}the unnormalised action ${ch} of row ${Math.floor(k / actions.dims)} is ${actions.actions[k]} (NaN guard): the normalization ` +
                `statistics of embodiment ${r.emb.key} in embodiments.json (or the state added to relative channels) overflow float32; no actions were returned`,
            );
          }
        }
        results.push({
          embodiment: r.emb.key,
          actions,
          raw,
          rawShape: [H, K],
          trajectory: r.req.returnTrajectory ? g.trajectory.get(i) : undefined,
          timings: {
            preprocessMs: tPre - t0, // the CPU work of every row (and earlier passes of the call, if any)
            visionMs: tVision - tPre,
            prefillMs: tPrefill - tVision,
            contextMs: tCtx - tPrefill,
            stepMs: g.stepMs.slice(),
            readbackMs: tRead - tStep,
            postprocessMs: 0,
            totalMs: 0,
          },
          steps: r.steps,
          solver: r.solver,
          evaluations: evaluations(r.solver, r.steps),
          seed: r.seed,
          promptTokens: r.input.ids.length,
        });
      }
      const tEnd = nowMs();
      for (const res of results) {
        res.timings.postprocessMs = tEnd - tRead;
        res.timings.totalMs = tEnd - t0;
      }
      completed = true;
      return results;
    } finally {
      for (const t of owned) t.release();
      for (const t of scratch) t.release();
      ctx.release();
      readback?.release();
      if (completed && !gpu.isLost) {
        // Everything this call encoded was submitted and has completed (the readback waited for it), so what it
        // released can be reused right away: the next call then starts from the same free pool whatever it
        // follows, which keeps steady state at zero new GPU buffers independently of the call order.
        releaseSegmentTables(gpu);
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
      thinking: opts.thinking ?? false, maxTokens: d.maxContext, mergeSize: this.config.vision.spatialMergeSize,
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
