// Stage 1 of act(): observation encoding on the CPU — validation of a request, camera frames (decoded and
// preprocessed), the prompt (tokenised, checked against the context limit), the normalised state and the masked
// initial noise. No GPU: everything here is testable (and usable by a request validator, e.g. the server's)
// without a device. Errors are PolicyErrors naming the field.
import type { QvlaConfig, PreprocessorConfig } from '../model/config.js';
import type { VlmImage, VlmInput } from '../model/vlm.js';
import { QvlaTokenizer, SPECIAL_TOKENS } from '../text/tokenizer.js';
import { buildActionPrompt } from '../text/prompt.js';
import { normalizeState, actionMask, type EmbodimentRegistry, type Embodiment } from './embodiments.js';
import { SOLVERS, GRIDS, type SolverName, type GridName } from './samplers.js';
import { preprocessImage, decodeImageFile, type RawImage } from '../preprocess/image.js';
import { Rng } from '../util/rng.js';
import { PolicyError } from './errors.js';

const INSTRUCTION_FORBIDDEN = [
  SPECIAL_TOKENS.imStart, SPECIAL_TOKENS.imEnd, SPECIAL_TOKENS.endOfText, SPECIAL_TOKENS.visionStart,
  SPECIAL_TOKENS.visionEnd, SPECIAL_TOKENS.imagePad, SPECIAL_TOKENS.videoPad,
];

/** A camera frame: raw pixels as a driver hands them over, or a PNG/JPEG file path. */
export type ImageInput = (RawImage & { camera?: string }) | string;

/** How to sample a chunk from an encoded observation (the sampling half of an ActRequest). */
export interface SampleRequest {
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

/** An observation: what `Policy.encode` takes (the encoding half of an ActRequest). */
export interface ObservationRequest {
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
}

export interface ActRequest extends ObservationRequest, SampleRequest {}

/** A validated sampling configuration. */
export interface SamplingPlan {
  steps: number;
  solver: SolverName;
  grid: GridName;
  seed: number;
  shift: number;
  /** masked initial noise [h_max·k_max] */
  noise: Float32Array;
  returnTrajectory: boolean;
}

/** One observation after its CPU work: what the GPU stages need. */
export interface EncodedInput {
  req: ObservationRequest;
  emb: Embodiment;
  normState: Float32Array | null;
  input: VlmInput;
}

/** Host masks of an embodiment: action mask [h_max·k_max] and self-attention key mask [1 + h_max]. */
export interface HostMasks {
  action: Float32Array;
  rows: Float32Array;
}

export interface ObservationContext {
  config: QvlaConfig;
  preprocessor: PreprocessorConfig;
  tokenizer: QvlaTokenizer;
  embodiments: EmbodimentRegistry;
  /** longest prompt (tokens) a request may have */
  maxContext: number;
}

/** The CPU side of observations and sampling requests for one checkpoint. */
export class ObservationEncoder {
  private readonly maskCache = new Map<string, HostMasks>();

  constructor(readonly ctx: ObservationContext) {}

  /** Host masks of an embodiment (cached). */
  masks(emb: Embodiment): HostMasks {
    let m = this.maskCache.get(emb.key);
    if (!m) {
      const ae = this.ctx.config.actionExpert!;
      const rows = new Float32Array(1 + ae.hMax);
      rows.fill(1, 0, 1 + emb.control.chunk);
      m = { action: actionMask(emb, ae.hMax, ae.kMax), rows };
      this.maskCache.set(emb.key, m);
    }
    return m;
  }

  /** Checks the fields of an observation that need no lookup (instruction, embodiment, promptAs). */
  private checkObservationFields(req: ObservationRequest): void {
    if (req === null || typeof req !== 'object') throw new PolicyError('act() needs a request object');
    if (typeof req.instruction !== 'string') throw new PolicyError('must be a string', 'instruction');
    // Chat-template and vision tokens written into the instruction would be read as structure (a stray
    // <|video_pad|> reaches the rope index as a video; <|image_pad|> miscounts the images): refuse them here.
    for (const t of INSTRUCTION_FORBIDDEN) {
      if (req.instruction.includes(t)) throw new PolicyError(`must not contain the special token ${t} (chat-template and vision tokens are structure, not text)`, 'instruction');
    }
    if (typeof req.embodiment !== 'string') throw new PolicyError('must be a string naming an embodiment', 'embodiment');
    const { embodiments } = this.ctx;
    if (req.promptAs !== undefined && (typeof req.promptAs !== 'string' || !embodiments.has(req.promptAs))) {
      throw new PolicyError(`must name an embodiment of this checkpoint (${embodiments.keys().join(', ')}), got ${JSON.stringify(req.promptAs)}`, 'promptAs');
    }
  }

  /** Checks the sampling fields (steps, solver, grid, seed, noise, shift); defaults filled in. */
  private checkSamplingFields(req: SampleRequest): Omit<SamplingPlan, 'noise' | 'returnTrajectory'> {
    if (req === null || typeof req !== 'object') throw new PolicyError('sampling options must be an object');
    const ae = this.ctx.config.actionExpert!;
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
    return { steps, solver, grid, seed, shift: req.shift ?? ae.timeShift };
  }

  /** The normalised, zero-padded state of a request (null without one). */
  private stateOf(req: ObservationRequest, emb: Embodiment): Float32Array | null {
    const ae = this.ctx.config.actionExpert!;
    if (req.state !== undefined && req.state !== null) {
      if (!emb.state) throw new PolicyError(`embodiment ${emb.key} takes no state`, 'state');
      try {
        return normalizeState(emb, req.state, ae.sMax);
      } catch (e) {
        throw new PolicyError(e instanceof Error ? e.message : String(e), 'state');
      }
    }
    if (emb.action.relative.some((r) => r)) {
      // checked up front: unnormalising relative actions needs it, and failing after the GPU work wastes a call
      throw new PolicyError(`is required: embodiment ${emb.key} has relative actions and needs the current state (${emb.state?.names.join(', ')})`, 'state');
    }
    return null;
  }

  private plan(fields: Omit<SamplingPlan, 'noise' | 'returnTrajectory'>, req: SampleRequest, emb: Embodiment): SamplingPlan {
    const ae = this.ctx.config.actionExpert!;
    const noise = req.noise ? Float32Array.from(req.noise) : new Rng(fields.seed).normals(ae.hMax * ae.kMax);
    const m = this.masks(emb).action;
    for (let k = 0; k < noise.length; k++) noise[k] *= m[k];
    return { ...fields, noise, returnTrajectory: !!req.returnTrajectory };
  }

  /** Validates an observation's fields (not its images); returns the embodiment and the normalised state. */
  validateObservation(req: ObservationRequest): { emb: Embodiment; normState: Float32Array | null } {
    this.checkObservationFields(req);
    const emb = this.ctx.embodiments.get(req.embodiment);
    return { emb, normState: this.stateOf(req, emb) };
  }

  /** Validates sampling options for an observation of embodiment `emb` and draws its masked initial noise. */
  samplingPlan(req: SampleRequest, emb: Embodiment): SamplingPlan {
    return this.plan(this.checkSamplingFields(req), req, emb);
  }

  /**
   * Every check of a whole act() request that needs no image decoding, in act()'s order (a request validator,
   * e.g. the server's, can run this and reject early with the same field names and messages).
   */
  validate(req: ActRequest): { emb: Embodiment; normState: Float32Array | null; plan: SamplingPlan } {
    this.checkObservationFields(req);
    const fields = this.checkSamplingFields(req);
    const emb = this.ctx.embodiments.get(req.embodiment);
    const normState = this.stateOf(req, emb);
    return { emb, normState, plan: this.plan(fields, req, emb) };
  }

  /** The whole CPU side of an observation: checks, frames (decoded, preprocessed) and the prompt. */
  async encode(req: ObservationRequest, checked?: { emb: Embodiment; normState: Float32Array | null }): Promise<EncodedInput> {
    const { emb, normState } = checked ?? this.validateObservation(req);
    const frames = await this.loadImages(req, emb);
    const images: VlmImage[] = [];
    for (const [k, f] of frames.entries()) {
      try {
        const p = preprocessImage(f.image, this.ctx.preprocessor);
        images.push({ pixels: p.pixelValues, grid: p.grid });
      } catch (e) {
        throw new PolicyError(e instanceof Error ? e.message : String(e), `images[${k}]`);
      }
    }
    let prompt;
    try {
      prompt = buildActionPrompt(
        this.ctx.tokenizer, req.promptAs === undefined ? emb : this.ctx.embodiments.get(req.promptAs), req.instruction,
        images.map((im, k) => ({ camera: frames[k].camera, gridH: im.grid.h, gridW: im.grid.w })),
        { maxTokens: this.ctx.maxContext, mergeSize: this.ctx.config.vision.spatialMergeSize },
      );
    } catch (e) {
      throw new PolicyError(e instanceof Error ? e.message : String(e), 'instruction');
    }
    return { req, emb, normState, input: { ids: prompt.ids, mmTokenTypeIds: prompt.mmTokenTypeIds, images } };
  }

  private async loadImages(req: ObservationRequest, emb: Embodiment): Promise<{ image: RawImage; camera: string }[]> {
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
}
