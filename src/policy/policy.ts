// The policy API: one `act()` call from camera frames + instruction + embodiment + state to executable actions.
//
//   const policy = await Policy.load('weights/tiny');
//   const r = await policy.act({ images: [{ data, width, height, camera: 'image_0' }], instruction: 'pick up the cup',
//                                embodiment: 'widowx', state, seed: 0 });
//   r.actions.actions  // Float32Array [H_e, K_e], physical units, channel names in r.actions.names
//
// act() is a list of stages, each in its own module:
//   1. observation encoding, CPU (./observation.ts): validation, frames, prompt, normalised state, noise;
//   2. observation encoding, GPU (./sampling.ts encodeOnDevice): vision tower → prompt prefill (hybrid
//      decoder) → decoder context (vl_norm + cross K/V, once per observation);
//   3. sampling (./sampling.ts sampleOnDevice): τ-only time conditioning for the whole loop, N denoising steps
//      (the chosen solver), one readback of the chunk with its NaN-guard count;
//   4. action post-processing (./postprocess.ts): NaN guard, unnormalisation (CPU).
// The device session (./session.ts) owns everything device-bound (load, loss, recover).
//
// Overlap for controllers: `encode(obs)` runs stages 1–2 and returns a handle; `sample(handle, opts)` runs 3–4.
// A controller encodes observation t+1 while chunk t is executing and samples when it needs the next chunk
// (docs/action-decoder.md "Controller loop", examples/controller.ts). act(r) = sample(encode(r), r), bit for bit.
//
// Batching: `actBatch(requests)` runs many independent observations in one pass, and `act(r)` is
// `actBatch([r])[0]` — one code path, so a row is bit-identical alone and in any batch. Layout:
// - vision: every image of every row through the tower at once (one attention segment per image);
// - prompts: concatenated along the token axis (cu_seqlens); a ragged prefill (TextDecoder.prefillRows): causal
//   attention per prompt, Gated DeltaNet conv / chunked rule per prompt. With the prompt-prefix cache (default,
//   ./prefixCache.ts) a prompt's embodiment prefix (the tokens before its first image) is computed alone once and
//   every row runs only its suffix from that state (hit or miss alike: same bits); without it, every prompt runs
//   whole from zero states;
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
// - Device loss: see ./session.ts; every act()/encode()/sample()/chat() is raced against the device's loss.
// GPU buffers come from the pool (released at the end of the call), so steady-state calls allocate no new GPU
// buffers.
import { Gpu, GpuError } from '../gpu/device.js';
import { openCheckpoint, type Checkpoint } from '../io/checkpoint.js';
import { CheckpointError } from '../io/errors.js';
import type { UploadProgress } from '../io/upload.js';
import type { QvlaConfig, PreprocessorConfig } from '../model/config.js';
import type { WeightStore } from '../model/weights.js';
import type { QwenVLM, GenerateOptions } from '../model/vlm.js';
import type { ActionDecoder, DiTContext } from '../model/actionDecoder.js';
import { QvlaTokenizer } from '../text/tokenizer.js';
import { buildChatPrompt, type ChatMessage } from '../text/prompt.js';
import { parseEmbodiments, type EmbodimentRegistry, type Embodiment, type UnnormalizedActions } from './embodiments.js';
import { evaluations, type SolverName } from './samplers.js';
import { preprocessImage, decodeImageFile, type RawImage } from '../preprocess/image.js';
import { PolicyError, rowError } from './errors.js';
import {
  ObservationEncoder, type ActRequest, type EncodedInput, type ImageInput, type ObservationRequest, type SampleRequest, type SamplingPlan,
} from './observation.js';
import { DeviceSession, createDeviceState, type DeviceState } from './session.js';
import { StageMeter, encodeOnDevice, sampleOnDevice, emptyWork, nowMs, type SampleRow, type StageWorkMap, type SampledRows } from './sampling.js';
import { rowActions } from './postprocess.js';
import { releaseSegmentTables } from '../ops/segments.js';
import { promptPrefixLength, type PrefixCacheOptions, type PrefixCacheStats } from './prefixCache.js';

export { PolicyError };
export type { ActRequest, ImageInput, ObservationRequest, SampleRequest, StageWorkMap };
export { ObservationEncoder };

export interface StageTimings {
  preprocessMs: number;
  visionMs: number;
  prefillMs: number;
  contextMs: number;
  /** wall time of each denoising step (GPU work included when stage-synced; else the loop's encoding time, split evenly) */
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
  /** GPU dispatches, queue submits and CPU encoding time per stage (a batch's totals for each of its rows) */
  work: StageWorkMap;
  /** prompt tokens this row took from the prompt-prefix cache (its embodiment prefix; 0 with the cache off) */
  prefixTokens: number;
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
  /**
   * Sync the GPU between stages and denoising steps so timings are per stage and per step (default true);
   * false = lowest latency: no CPU wait before the readback, stage times are CPU encoding times.
   */
  stageTimings?: boolean;
  /**
   * After a device loss, let the next call recover() by itself (re-create the device, re-upload the weights)
   * before running. Default true. Only for a policy that owns its device: with a caller-supplied `gpu`, calls keep
   * failing with GpuError('lost') until `recover(newGpu)`. With false, calls fail with GpuError('lost') until
   * `recover()` is called.
   */
  autoRecover?: boolean;
  /**
   * The prompt-prefix cache (./prefixCache.ts): each embodiment's prompt prefix (the tokens before the first
   * image) is prefilled once and every call continues from its decoder state. Default on (16 entries, 256 MiB);
   * false = every prompt prefilled whole (the reference path). Actions differ between on and off only by f32
   * rounding; with either setting a row's bits never depend on the batch or the call history.
   */
  prefixCache?: boolean | PrefixCacheOptions;
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

/**
 * An observation encoded on the device (`Policy.encode`): the decoder context of its VLM tokens, ready for any
 * number of `Policy.sample` calls. Holds GPU buffers until `release()`; bound to the device state it was made
 * on (after a device loss / recover() it must be encoded again).
 */
export class EncodedObservation {
  private released = false;

  /** @internal */
  constructor(
    /** @internal */ readonly dev: DeviceState,
    /** @internal */ readonly input: EncodedInput,
    /** @internal */ readonly ctx: DiTContext,
    /** CPU + GPU encoding times and work of this observation (stages preprocess … context) */
    readonly timings: Pick<StageTimings, 'preprocessMs' | 'visionMs' | 'prefillMs' | 'contextMs'>,
    /** @internal */ readonly work: StageWorkMap,
    /** prompt tokens taken from the prompt-prefix cache */
    readonly prefixTokens = 0,
  ) {}

  get embodiment(): string {
    return this.input.emb.key;
  }

  get promptTokens(): number {
    return this.input.input.ids.length;
  }

  get isReleased(): boolean {
    return this.released;
  }

  /** Frees the observation's GPU buffers (idempotent). */
  release(): void {
    if (this.released) return;
    this.released = true;
    if (!this.dev.disposed) this.ctx.release();
  }
}

export class Policy {
  private readonly session: DeviceSession;
  private busy = false;
  private destroyed = false;
  private readonly observations: ObservationEncoder;
  readonly stats: PolicyStats = { deviceLosses: 0, recoveries: 0, nanGuardTrips: 0 };

  private constructor(
    dev: DeviceState,
    ownsGpu: boolean,
    readonly ckpt: Checkpoint,
    readonly config: QvlaConfig,
    readonly preprocessor: PreprocessorConfig,
    readonly tokenizer: QvlaTokenizer,
    readonly embodiments: EmbodimentRegistry,
    readonly options: PolicyOptions,
  ) {
    this.session = new DeviceSession(dev, ownsGpu, ckpt, options, this.stats);
    this.observations = new ObservationEncoder({
      config, preprocessor, tokenizer, embodiments, maxContext: options.maxContext ?? 4096,
    });
  }

  /** The current device (a new one after recover()). */
  get gpu(): Gpu {
    return this.session.dev.gpu;
  }

  get weights(): WeightStore {
    return this.session.dev.weights;
  }

  get vlm(): QwenVLM {
    return this.session.dev.vlm;
  }

  get decoder(): ActionDecoder {
    return this.session.dev.decoder;
  }

  /** Hits, misses, evictions, entries and bytes of the prompt-prefix cache of the current device state (null: off). */
  get prefixCacheStats(): PrefixCacheStats | null {
    return this.session.dev.prefixes?.info ?? null;
  }

  /** The CPU observation stage (validation without a GPU, e.g. for a server's request checks). */
  get observationEncoder(): ObservationEncoder {
    return this.observations;
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
      const dev = await createDeviceState(gpu, ckpt, opts);
      return new Policy(dev, !opts.gpu, ckpt, cfg, pre, tokenizer, embodiments, opts);
    } catch (e) {
      if (gpu && !opts.gpu) gpu.destroy();
      await ckpt.close().catch(() => undefined);
      throw e;
    }
  }

  /** True when the device is lost (the next call recovers first, with autoRecover, or fails). */
  get deviceLost(): boolean {
    return this.session.dev.gpu.isLost;
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
      await this.session.recover(gpu);
    } finally {
      this.busy = false;
    }
  }

  embodiment(key: string): Embodiment {
    return this.embodiments.get(key);
  }

  /** One call at a time per policy, on a healthy device, raced against the device's loss. */
  private async call<T>(what: string, body: (d: DeviceState) => Promise<T>): Promise<T> {
    if (this.busy) throw new PolicyError(`${what} cannot start: act() / actBatch() / encode() / sample() is already running on this policy (or chat() / recover()); await the previous call (or use one Policy per caller)`);
    if (this.destroyed) throw new PolicyError(`${what}: this policy was destroyed; load a new one`);
    this.busy = true;
    try {
      const d = await this.session.ensure(what);
      return await this.session.guarded(what, d, () => body(d));
    } finally {
      this.busy = false;
    }
  }

  /**
   * The segment tables of the ragged kernels (attention / Gated DeltaNet cu_seqlens, src/ops/segments.ts) are
   * cached per shape (uploaded without a submit, so a call's submits, and the pool's peak, do not depend on whether
   * they were cached: src/ops/segments.ts). A call whose shapes equal the previous call's reuses them
   * (a controller's steady loop uploads nothing); a call with new shapes first gives the old ones back to the
   * pool, so changing prompts recycle the same buffers instead of growing the cache.
   */
  private tableShapes = { encode: '', sample: '' };
  private refreshTables(d: DeviceState, shapes: { encode?: string; sample?: string }): void {
    const next = { ...this.tableShapes, ...shapes };
    if (next.encode !== this.tableShapes.encode || next.sample !== this.tableShapes.sample) releaseSegmentTables(d.gpu);
    this.tableShapes = next;
  }

  private static encodeShape(inputs: EncodedInput[]): string {
    return inputs.map((r) => `${r.input.ids.length}-${promptPrefixLength(r.input)}:${r.input.images.map((im) => `${im.grid.t}x${im.grid.h}x${im.grid.w}`).join(',')}`).join(';');
  }

  private static sampleShape(rows: { input: EncodedInput; plan: SamplingPlan }[]): string {
    return rows.map((r) => `${r.input.input.ids.length}:${r.plan.solver}|${r.plan.steps}|${r.plan.grid}|${r.plan.shift}`).join(';');
  }

  private get stageSynced(): boolean {
    return this.options.stageTimings ?? true;
  }

  /**
   * Observation → actions. Calls are serialised (one at a time per policy). A device loss during the call
   * rejects it with GpuError('lost'); see PolicyOptions.autoRecover and recover() for what happens next.
   * `act(r)` is `actBatch([r])[0]` (one code path), with error fields named without the `requests[i].` prefix.
   */
  async act(req: ActRequest): Promise<ActResult> {
    return (await this.call('act()', (d) => this.actRows([req], d, false)))[0];
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
    if (requests.length === 0) {
      if (this.busy) throw new PolicyError('actBatch() cannot start: another call is running on this policy; await it first');
      return [];
    }
    return this.call('actBatch()', (d) => this.actRows(requests, d, true));
  }

  /**
   * Stages 1–2 of act() for one observation: CPU encoding, then vision, prefill and the decoder context on the
   * GPU (submitted, not awaited). The handle serves any number of `sample()` calls until `release()`.
   */
  async encode(obs: ObservationRequest): Promise<EncodedObservation> {
    return this.call('encode()', async (d) => {
      const t0 = nowMs();
      const input = await this.observations.encode(obs);
      this.refreshTables(d, { encode: Policy.encodeShape([input]) });
      const meter = new StageMeter(d.gpu, this.stageSynced);
      const tPre = nowMs();
      const enc = await encodeOnDevice(d, [input], meter);
      return new EncodedObservation(d, input, enc.ctx, { preprocessMs: tPre - t0, visionMs: enc.visionMs, prefillMs: enc.prefillMs, contextMs: enc.contextMs }, meter.work, enc.prefixTokens[0]);
    });
  }

  /**
   * Stages 3–4 of act(): a chunk sampled from an encoded observation (`opts`: seed / noise, steps, solver, grid,
   * shift, returnTrajectory, as in ActRequest). `sample(encode(r), r)` is bit-identical to `act(r)`. The handle
   * stays valid (release it when done). Timings: the encoding's stages plus this sampling.
   */
  async sample(obs: EncodedObservation, opts: SampleRequest = {}): Promise<ActResult> {
    if (!(obs instanceof EncodedObservation)) throw new PolicyError('sample() needs the handle returned by encode()');
    return this.call('sample()', async (d) => {
      if (obs.isReleased) throw new PolicyError('sample(): this encoded observation was released; encode it again');
      if (obs.dev !== d) throw new PolicyError('sample(): this observation was encoded on a device state that is gone (device loss / recover()); encode it again');
      const plan = this.observations.samplingPlan(opts, obs.input.emb);
      this.refreshTables(d, { sample: Policy.sampleShape([{ input: obs.input, plan }]) });
      const meter = new StageMeter(d.gpu, this.stageSynced);
      const t0 = nowMs();
      const rows: SampleRow[] = [{ input: obs.input, plan, ctxRow: 0 }];
      const s = await sampleOnDevice(d, obs.ctx, rows, (r) => this.observations.masks(r.input.emb), meter, { stepTimings: this.stageSynced, startMs: t0 });
      const [res] = this.results(rows, s, false, 0, t0);
      const enc = obs.timings;
      res.work = { ...meter.work, vision: { ...obs.work.vision }, prefill: { ...obs.work.prefill }, context: { ...obs.work.context } };
      res.prefixTokens = obs.prefixTokens;
      Object.assign(res.timings, enc);
      res.timings.totalMs += enc.preprocessMs + enc.visionMs + enc.prefillMs + enc.contextMs;
      this.settle(d);
      return res;
    });
  }

  /** Stage 1 for every request, then passes of at most maxBatchTokens prompt tokens through stages 2–4. */
  private async actRows(reqs: ActRequest[], d: DeviceState, batch: boolean): Promise<ActResult[]> {
    const t0 = nowMs();
    const rows: { input: EncodedInput; plan: SamplingPlan }[] = [];
    for (const [i, req] of reqs.entries()) {
      try {
        const { emb, normState, plan } = this.observations.validate(req);
        rows.push({ input: await this.observations.encode(req, { emb, normState }), plan });
      } catch (e) {
        throw batch ? rowError(e, i) : e;
      }
    }
    // Passes of at most maxBatchTokens prompt tokens (a row's bits do not depend on its pass).
    const budget = this.options.maxBatchTokens ?? DEFAULT_MAX_BATCH_TOKENS;
    const out: ActResult[] = [];
    for (let start = 0; start < rows.length; ) {
      let end = start + 1;
      let tokens = rows[start].input.input.ids.length;
      while (end < rows.length && tokens + rows[end].input.input.ids.length <= budget) tokens += rows[end++].input.input.ids.length;
      out.push(...(await this.actPass(rows.slice(start, end), start, d, batch, t0)));
      start = end;
    }
    return out;
  }

  /** Stages 2–4 for one pass over `rows` (requests first … first + rows.length − 1 of the call). */
  private async actPass(pass: { input: EncodedInput; plan: SamplingPlan }[], first: number, d: DeviceState, batch: boolean, t0: number): Promise<ActResult[]> {
    this.refreshTables(d, { encode: Policy.encodeShape(pass.map((r) => r.input)), sample: Policy.sampleShape(pass) });
    const meter = new StageMeter(d.gpu, this.stageSynced);
    const tPre = nowMs();
    const enc = await encodeOnDevice(d, pass.map((r) => r.input), meter, tPre);
    let completed = false;
    try {
      const rows: SampleRow[] = pass.map((r, k) => ({ ...r, ctxRow: k }));
      const s = await sampleOnDevice(d, enc.ctx, rows, (r) => this.observations.masks(r.input.emb), meter, { stepTimings: this.stageSynced, startMs: enc.endMs });
      // the stages partition [t0, end]: preprocess (every row's CPU work, and earlier passes) … postprocess
      const results = this.results(rows, s, batch, first, t0);
      for (const [k, r] of results.entries()) {
        r.work = meter.work;
        r.prefixTokens = enc.prefixTokens[k];
        Object.assign(r.timings, { preprocessMs: tPre - t0, visionMs: enc.visionMs, prefillMs: enc.prefillMs, contextMs: enc.contextMs });
      }
      completed = true;
      return results;
    } finally {
      enc.ctx.release();
      if (completed) this.settle(d);
    }
  }

  /** Stage 4 for every row, and the rows' results (timings of the sampling; the caller adds the encoding's). */
  private results(rows: SampleRow[], s: SampledRows, batch: boolean, first: number, tStart: number): ActResult[] {
    const ae = this.config.actionExpert!;
    const out: ActResult[] = [];
    for (const [i, r] of rows.entries()) {
      const { raw, actions } = rowActions(rows, s, i, { H: ae.hMax, K: ae.kMax }, batch ? `requests[${first + i}]: ` : '', () => { this.stats.nanGuardTrips++; });
      out.push({
        embodiment: r.input.emb.key,
        actions,
        raw,
        rawShape: [ae.hMax, ae.kMax],
        trajectory: r.plan.returnTrajectory ? s.trajectories.get(i) : undefined,
        timings: {
          preprocessMs: 0, visionMs: 0, prefillMs: 0, contextMs: 0,
          stepMs: s.groups[s.groupOf[i]].stepMs.slice(),
          readbackMs: s.readbackEndMs - s.denoiseEndMs,
          postprocessMs: 0,
          totalMs: 0,
        },
        work: emptyWork(),
        prefixTokens: 0,
        steps: r.plan.steps,
        solver: r.plan.solver,
        evaluations: evaluations(r.plan.solver, r.plan.steps),
        seed: r.plan.seed,
        promptTokens: r.input.input.ids.length,
      });
    }
    const tEnd = nowMs();
    for (const res of out) {
      res.timings.postprocessMs = tEnd - s.readbackEndMs;
      res.timings.totalMs = tEnd - tStart;
    }
    return out;
  }

  /**
   * After a completed call: everything it encoded was submitted and has completed (the readback waited for it), so
   * what it released can be reused right away — the next call then starts from the same free pool whatever it
   * follows, which keeps steady state at zero new GPU buffers independently of the call order.
   */
  private settle(d: DeviceState): void {
    if (d.gpu.isLost) return;
    d.gpu.stream.flush();
    d.gpu.buffers.afterSubmit();
  }

  /** VLM text answer about images (the model's language head). */
  async chat(messages: ChatMessage[], images: ImageInput[] = [], opts: GenerateOptions & { thinking?: boolean } = {}): Promise<{ text: string; tokens: number[] }> {
    if (this.busy) throw new PolicyError('chat() cannot run while another call is running on this policy; await it first');
    return this.call('chat()', (d) => this.chatInner(d, messages, images, opts));
  }

  private async chatInner(d: DeviceState, messages: ChatMessage[], images: ImageInput[], opts: GenerateOptions & { thinking?: boolean }): Promise<{ text: string; tokens: number[] }> {
    const frames: RawImage[] = [];
    for (const im of images) frames.push(typeof im === 'string' ? await decodeImageFile(im) : im);
    const pre = frames.map((f) => preprocessImage(f, this.preprocessor));
    const prompt = buildChatPrompt(this.tokenizer, messages, pre.map((p) => ({ gridH: p.grid.h, gridW: p.grid.w })), {
      thinking: opts.thinking ?? false, maxTokens: this.options.maxContext ?? 4096, mergeSize: this.config.vision.spatialMergeSize,
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
    this.session.dispose();
    void this.ckpt.close().catch(() => undefined);
  }
}

export { GpuError };
