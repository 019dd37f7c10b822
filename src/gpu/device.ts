// Adapter/device acquisition and the one object everything GPU hangs off: `Gpu`.
//
// Why a class and not a bare GPUDevice: the device alone cannot tell us that it was lost or that a
// validation error happened asynchronously, and Dawn needs the `create()` object kept alive for the whole
// life of the device (if it is garbage-collected, later calls crash the process). `Gpu` pins it, records
// loss and uncaptured errors, and turns them into thrown `GpuError`s at the next sync point.
import { throttleDawnPolling } from './dawnPolling.js';
import { platform } from '../platform/index.js';
import { PipelineCache } from './pipelines.js';
import { BufferPool } from './buffers.js';
import { CommandStream } from './stream.js';
import { Lifetimes, type Tracked } from './lifetimes.js';

import { GpuError } from './errors.js';
export { GpuError };

export interface GpuOptions {
  /** Ask for `timestamp-query` when the adapter has it (needed by the profiler). Default true. */
  timestamps?: boolean;
  /** Ask for `shader-f16` when present (f16 weight kernels). Default true. */
  f16?: boolean;
  /** Extra Dawn instance toggles, e.g. `enable-dawn-features=disable_workgroup_init`. */
  dawnFlags?: string[];
  powerPreference?: GPUPowerPreference;
  /**
   * Defer dawn.node's GPU-wait polling after its first millisecond (./dawnPolling.ts; process-wide, Node only).
   * Default: on for software adapters, where the spinning JS thread takes a core from the adapter's own worker
   * threads (measured: bench/RESULTS.md, serve "Third look"); off on GPUs (not measured there, so unchanged).
   */
  deferPolling?: boolean;
}

export interface GpuFeatures {
  f16: boolean;
  subgroups: boolean;
  timestamps: boolean;
}

/** The WebGPU entry point of the platform: Dawn's `create()` (pinned per flag set) in Node, navigator.gpu in a browser. */
async function gpuInstance(flags: string[]): Promise<GPU> {
  try {
    return await platform().gpu(flags);
  } catch (e) {
    throw new GpuError(e instanceof Error ? e.message : String(e), 'adapter');
  }
}

export function describeAdapter(info: GPUAdapterInfo): string {
  const parts = [info.vendor, info.architecture, info.device, info.description].filter((s) => s && s.length > 0);
  return parts.join(' / ') || 'unknown adapter';
}

export class Gpu {
  readonly pipelines: PipelineCache;
  readonly buffers: BufferPool;
  readonly stream: CommandStream;
  /** Registry of live pooled tensors and the open scopes (src/gpu/lifetimes.ts). */
  readonly lifetimes = new Lifetimes();
  /** A small storage buffer bound where a kernel's optional input (bias, ...) is absent. */
  readonly dummy: GPUBuffer;
  private lostInfo: GPUDeviceLostInfo | null = null;
  private errors: GPUError[] = [];
  private destroyed = false;
  private deviceDestroyed = false;
  /** Callbacks of pending `guard()` waits; called once when the device is lost. */
  private readonly lostListeners = new Set<(e: GpuError) => void>();

  private constructor(
    private readonly instance: GPU, // pinned: see the header comment
    readonly adapter: GPUAdapter,
    readonly device: GPUDevice,
    readonly features: GpuFeatures,
    readonly adapterInfo: GPUAdapterInfo,
  ) {
    // device.destroy() called by anyone (tests simulate a loss that way) marks the Gpu lost at once; the
    // `lost` promise below only settles a microtask later, after which a call could already have started.
    try {
      const destroyDevice = device.destroy.bind(device);
      device.destroy = () => {
        this.deviceDestroyed = true;
        destroyDevice();
        this.notifyLost();
      };
    } catch {
      /* a non-writable destroy: the lost promise still reports it */
    }
    device.lost.then((info) => {
      this.lostInfo = info;
      this.notifyLost();
    });
    device.onuncapturederror = (ev: GPUUncapturedErrorEvent) => {
      this.errors.push(ev.error);
    };
    this.dummy = device.createBuffer({ size: 256, usage: GPUBufferUsage.STORAGE, label: 'dummy' });
    this.pipelines = new PipelineCache(this);
    this.buffers = new BufferPool(device);
    this.stream = new CommandStream(this);
  }

  static async create(opts: GpuOptions = {}): Promise<Gpu> {
    const instance = await gpuInstance(opts.dawnFlags ?? []);
    const adapter = await instance.requestAdapter({ powerPreference: opts.powerPreference ?? 'high-performance' });
    if (!adapter) {
      throw new GpuError(
        platform().name === 'browser'
          ? 'No WebGPU adapter found: navigator.gpu.requestAdapter() returned null (WebGPU disabled or blocklisted in this browser).'
          : 'No WebGPU adapter found. On a GPU-less Debian machine run `npm run setup` (installs Mesa 25 lavapipe from ' +
            'bookworm-backports; Dawn refuses the stock Mesa 22).',
        'adapter',
      );
    }
    const want = (f: string) => adapter.features.has(f as GPUFeatureName);
    const features: GpuFeatures = {
      f16: (opts.f16 ?? true) && want('shader-f16'),
      subgroups: want('subgroups'),
      timestamps: (opts.timestamps ?? true) && want('timestamp-query'),
    };
    const requiredFeatures: GPUFeatureName[] = [];
    if (features.f16) requiredFeatures.push('shader-f16');
    if (features.subgroups) requiredFeatures.push('subgroups' as GPUFeatureName);
    if (features.timestamps) requiredFeatures.push('timestamp-query');
    const L = adapter.limits;
    // Explicit limits: the WebGPU defaults (256 MiB buffers, 16 KiB workgroup memory, 256 invocations) are far
    // below what adapters offer and what the 4B model needs.
    const requiredLimits: Record<string, number> = {
      maxBufferSize: L.maxBufferSize,
      maxStorageBufferBindingSize: L.maxStorageBufferBindingSize,
      maxComputeWorkgroupStorageSize: L.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: L.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: L.maxComputeWorkgroupSizeX,
      maxComputeWorkgroupSizeY: L.maxComputeWorkgroupSizeY,
      maxStorageBuffersPerShaderStage: L.maxStorageBuffersPerShaderStage,
      maxComputeWorkgroupsPerDimension: L.maxComputeWorkgroupsPerDimension,
    };
    const device = await adapter.requestDevice({ requiredFeatures, requiredLimits });
    const gpu = new Gpu(instance, adapter, device, features, adapter.info);
    if (platform().name === 'node' && (opts.deferPolling ?? gpu.isSoftware)) throttleDawnPolling();
    return gpu;
  }

  get limits(): GPUSupportedLimits {
    return this.device.limits;
  }

  get description(): string {
    return describeAdapter(this.adapterInfo);
  }

  /** True for CPU implementations (lavapipe / SwiftShader): numbers from them are for relative comparison only. */
  get isSoftware(): boolean {
    const i = this.adapterInfo;
    return i.architecture === 'software' || /llvmpipe|swiftshader|lavapipe/i.test(`${i.device} ${i.description}`);
  }

  get isLost(): boolean {
    return this.lostInfo !== null || this.destroyed || this.deviceDestroyed;
  }

  /** The error describing the loss (only meaningful once `isLost`). */
  lostError(): GpuError {
    if (this.lostInfo) {
      const msg = this.lostInfo.message ? `: ${this.lostInfo.message}` : '';
      return new GpuError(`GPU device lost (${this.lostInfo.reason})${msg}. Re-create the Gpu / Policy to recover.`, 'lost');
    }
    return new GpuError('GPU device was destroyed. Re-create the Gpu / Policy to recover.', 'lost');
  }

  /**
   * `p`, or a GpuError('lost') as soon as the device is lost, whichever comes first: a lost device may reject
   * mapAsync or never resolve onSubmittedWorkDone, and nothing may hang on it. (A listener set, not a
   * Promise.race against `device.lost`: racing a promise that stays pending for the device's whole life would
   * keep one reaction per call alive forever, a leak in a long control loop.)
   */
  guard<T>(p: Promise<T>): Promise<T> {
    if (this.isLost) {
      p.catch(() => undefined); // its late rejection is expected; keep it from being reported as unhandled
      return Promise.reject(this.lostError());
    }
    return new Promise<T>((resolve, reject) => {
      const onLost = (e: GpuError) => reject(e);
      this.lostListeners.add(onLost);
      p.then(
        (v) => {
          this.lostListeners.delete(onLost);
          resolve(v);
        },
        (e: unknown) => {
          this.lostListeners.delete(onLost);
          reject(e);
        },
      );
    });
  }

  private notifyLost(): void {
    if (this.lostListeners.size === 0) return;
    const err = this.lostError();
    for (const l of [...this.lostListeners]) l(err);
    this.lostListeners.clear();
  }

  /** Throw a clear error if the device was lost or an asynchronous validation error was recorded. */
  checkHealthy(): void {
    if (this.isLost) throw this.lostError();
    if (this.errors.length > 0) {
      const errs = this.errors.splice(0);
      const kind = errs[0].constructor.name === 'GPUOutOfMemoryError' ? 'out-of-memory' : 'validation';
      throw new GpuError(`WebGPU error: ${errs.map((e) => e.message).join('\n---\n')}`, kind);
    }
  }

  /**
   * Run fn and release the pooled tensors born inside it, except the ones it returns (directly, or inside
   * returned arrays / plain objects) or passes to `keep`. Synchronous only. See src/gpu/lifetimes.ts.
   */
  scope<R>(fn: () => R): R {
    return this.lifetimes.scope(fn);
  }

  /** Let a tensor born inside a scope outlive it (its owner releases it). */
  keep<T extends Tracked>(t: T): T {
    return this.lifetimes.keep(t);
  }

  /** Waits for all submitted work; throws if the device was lost or an error was recorded. */
  async sync(): Promise<void> {
    this.stream.flush();
    await this.guard(this.device.queue.onSubmittedWorkDone());
    await this.pipelines.checkCompilation();
    this.checkHealthy();
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.notifyLost();
    this.buffers.destroyAll();
    this.stream.destroy();
    this.device.destroy();
  }
}
