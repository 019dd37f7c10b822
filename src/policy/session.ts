// The device session of a Policy: everything bound to one GPU device (Gpu, weights, VLM, decoder) in one
// `DeviceState`, replaced whole by recover(); the start-of-call check (a lost device is recovered with
// autoRecover, or reported), and the race of a call against the device's loss.
//
// Device loss: every call is raced against the device's loss (Gpu.guard), so a call in flight when the device goes
// away rejects with GpuError kind 'lost' (no hang, whatever Dawn does with the pending mapAsync /
// onSubmittedWorkDone). recover() re-creates the device and re-uploads the weights from the same, still-open
// checkpoint; with `autoRecover` (default) a session that owns its device does that itself at the start of the
// next call. A call captures its DeviceState at its start, so an abandoned call still unwinding on the dead device
// never touches the new one.
import { Gpu, GpuError } from '../gpu/device.js';
import type { Checkpoint } from '../io/checkpoint.js';
import type { UploadProgress } from '../io/upload.js';
import { loadWeights } from '../model/load.js';
import type { WeightStore } from '../model/weights.js';
import { QwenVLM } from '../model/vlm.js';
import { ActionDecoder } from '../model/actionDecoder.js';
import { PolicyError } from './errors.js';
import { ensureTuning } from '../tune/load.js';
import { PrefixCache, type PrefixCacheOptions } from './prefixCache.js';

/** Everything bound to one GPU device; replaced whole by recover(). */
export interface DeviceState {
  gpu: Gpu;
  weights: WeightStore;
  vlm: QwenVLM;
  decoder: ActionDecoder;
  /** the prompt-prefix cache (./prefixCache.ts); null when PolicyOptions.prefixCache is false */
  prefixes: PrefixCache | null;
  disposed: boolean;
}

export interface SessionOptions {
  weightDtype?: 'f32' | 'f16';
  onProgress?: (p: UploadProgress) => void;
  autoRecover?: boolean;
  prefixCache?: boolean | PrefixCacheOptions;
}

export interface SessionStats {
  /** Device losses seen (a call failed on, or started with, a lost device). */
  deviceLosses: number;
  /** Successful recover() runs (explicit or automatic). */
  recoveries: number;
}

/** Uploads the weights to `gpu` and builds the device-bound state (on failure, frees what it made). */
export async function createDeviceState(gpu: Gpu, ckpt: Checkpoint, opts: SessionOptions): Promise<DeviceState> {
  const cfg = ckpt.config;
  await ensureTuning(gpu); // the kernel tuning table (src/tune/load.ts), read once per Gpu before any pipeline is built
  const weights = await loadWeights(gpu, ckpt, { weightDtype: opts.weightDtype, onProgress: opts.onProgress });
  try {
    const vlm = new QwenVLM(gpu, cfg, weights);
    const decoder = new ActionDecoder(gpu, cfg.actionExpert!, weights);
    const pc = opts.prefixCache ?? true;
    const prefixes = pc === false ? null : new PrefixCache(gpu, vlm, cfg.actionExpert!.vlmLayer, pc === true ? {} : pc);
    await gpu.sync();
    return { gpu, weights, vlm, decoder, prefixes, disposed: false };
  } catch (e) {
    weights.destroy();
    throw e;
  }
}

export class DeviceSession {
  private lossCounted: Gpu | null = null;

  constructor(
    public dev: DeviceState,
    public ownsGpu: boolean,
    private readonly ckpt: Checkpoint,
    private readonly options: SessionOptions,
    private readonly stats: SessionStats,
  ) {}

  /** Frees one device state (idempotent; fine on a lost device, where it only drops the handles). */
  static dispose(d: DeviceState, ownsGpu: boolean): void {
    if (d.disposed) return;
    d.disposed = true;
    d.prefixes?.clear(); // device-bound: a recovered device state starts with an empty cache
    d.decoder.destroy();
    d.vlm.text.destroy();
    d.weights.destroy();
    if (ownsGpu) d.gpu.destroy();
  }

  dispose(): void {
    DeviceSession.dispose(this.dev, this.ownsGpu);
  }

  /** Re-creates the device state (see Policy.recover). */
  async recover(gpu?: Gpu): Promise<void> {
    if (!gpu && !this.ownsGpu) {
      throw new PolicyError(
        'this policy runs on a caller-supplied Gpu (PolicyOptions.gpu), which it cannot re-create: create a new Gpu and call policy.recover(gpu)',
      );
    }
    this.noteLoss();
    DeviceSession.dispose(this.dev, this.ownsGpu);
    const next = gpu ?? (await Gpu.create());
    try {
      this.dev = await createDeviceState(next, this.ckpt, this.options);
    } catch (e) {
      if (!gpu) next.destroy();
      throw e;
    }
    this.ownsGpu = !gpu;
    this.stats.recoveries++;
  }

  noteLoss(): void {
    const g = this.dev.gpu;
    if (g.isLost && this.lossCounted !== g) {
      this.lossCounted = g;
      this.stats.deviceLosses++;
    }
  }

  lostMessage(what: string, during: boolean, cause: unknown): GpuError {
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
  async ensure(what: string): Promise<DeviceState> {
    const g = this.dev.gpu;
    if (g.isLost || this.dev.disposed) {
      this.noteLoss();
      if (this.ownsGpu && (this.options.autoRecover ?? true)) await this.recover();
      else if (g.isLost) throw this.lostMessage(what, false, g.lostError());
      else throw new PolicyError(`${what}: the last recover() failed, so this policy has no device state; call recover() again`);
    }
    return this.dev;
  }

  /**
   * Runs one call's body on `d`, raced against the loss of d's device: if the device goes away mid-call the
   * call rejects at once with GpuError('lost') (the abandoned body unwinds on the dead device, harmlessly).
   */
  async guarded<T>(what: string, d: DeviceState, body: () => Promise<T>): Promise<T> {
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
}
