// Kernel specs → compute pipelines, cached by a canonical key.
//
// A kernel is one WGSL file in kernels/ plus a spec: compile-time constants and type aliases that are
// prepended as a prelude (`const TM: u32 = 4u;`, `alias WT = f16;`). Everything that varies per call
// (shapes, strides, eps) goes through the per-dispatch uniform `Params` at @binding(0), so one pipeline serves
// all shapes. Bind-group layouts are explicit: binding 0 is the uniform (dynamic offset into the stream's
// arena), bindings 1..n are storage buffers, read-only or read-write as the spec says.
import type { Gpu } from './device.js';
import { GpuError } from './device.js';
import { platform } from '../platform/index.js';

export type BindingAccess = 'read' | 'write';

export interface KernelSpec {
  /** WGSL file name in kernels/ without extension. */
  file: string;
  /** Entry point, default `main`. */
  entry?: string;
  /** Storage bindings 1..n in order. */
  bindings: BindingAccess[];
  /** Compile-time constants: numbers become `const NAME: u32` (or i32 / f32 with a suffix rule below), booleans `bool`. */
  consts?: Record<string, number | boolean>;
  /** Names of consts that are f32 (others numeric ones are u32). */
  floatConsts?: string[];
  /** Type aliases, e.g. `{ WT: 'f16' }`. Any alias to f16 enables the f16 extension. */
  aliases?: Record<string, string>;
  /** Workgroup size; the prelude defines `WG_X`, `WG_Y`, `WG_Z` to match `@workgroup_size(WG_X, WG_Y, WG_Z)`. */
  workgroup: [number, number?, number?];
  /** Needs `enable subgroups;`. */
  subgroups?: boolean;
  /** Shared WGSL from kernels/lib/ (file names without extension), prepended after the prelude. */
  includes?: string[];
}

export interface CompiledKernel {
  key: string;
  spec: KernelSpec;
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
}

// kernels/*.wgsl through the platform (src/platform): read from kernels/ in Node, inlined in the browser bundle.
const sourceCache = new Map<string, string>();
function kernelSource(file: string): string {
  let src = sourceCache.get(file);
  if (src === undefined) {
    src = platform().kernelSource(file);
    sourceCache.set(file, src);
  }
  return src;
}

/** Canonical key: same spec → same string, whatever the object key order. */
export function specKey(spec: KernelSpec): string {
  const sortEntries = (o?: Record<string, unknown>) =>
    o ? Object.keys(o).sort().map((k) => `${k}=${String(o[k])}`).join(',') : '';
  const wg = [spec.workgroup[0], spec.workgroup[1] ?? 1, spec.workgroup[2] ?? 1].join('x');
  return `${spec.file}:${spec.entry ?? 'main'}|i=${(spec.includes ?? []).join('+')}|b=${spec.bindings.join('')}|c=${sortEntries(spec.consts)}|a=${sortEntries(spec.aliases)}|wg=${wg}|sg=${spec.subgroups ? 1 : 0}`;
}

export function kernelPrelude(spec: KernelSpec): string {
  const lines: string[] = [];
  const usesF16 = Object.values(spec.aliases ?? {}).some((t) => t.includes('f16'));
  if (usesF16) lines.push('enable f16;');
  if (spec.subgroups) lines.push('enable subgroups;');
  const [x, y = 1, z = 1] = spec.workgroup;
  lines.push(`const WG_X: u32 = ${x}u;`, `const WG_Y: u32 = ${y}u;`, `const WG_Z: u32 = ${z}u;`);
  const floats = new Set(spec.floatConsts ?? []);
  for (const [k, v] of Object.entries(spec.consts ?? {})) {
    if (typeof v === 'boolean') lines.push(`const ${k}: bool = ${v};`);
    else if (floats.has(k)) lines.push(`const ${k}: f32 = ${Number.isInteger(v) ? v.toFixed(1) : String(v)};`);
    else {
      if (!Number.isInteger(v) || v < 0) throw new Error(`kernel ${spec.file}: const ${k}=${v} must be a u32 (or list it in floatConsts)`);
      lines.push(`const ${k}: u32 = ${v}u;`);
    }
  }
  for (const [k, t] of Object.entries(spec.aliases ?? {})) lines.push(`alias ${k} = ${t};`);
  return lines.join('\n') + '\n';
}

export class PipelineCache {
  private readonly cache = new Map<string, CompiledKernel>();
  private readonly pendingChecks: Promise<void>[] = [];
  private compileErrors: string[] = [];

  constructor(private readonly gpu: Gpu) {}

  get size(): number {
    return this.cache.size;
  }

  get(spec: KernelSpec): CompiledKernel {
    const key = specKey(spec);
    const hit = this.cache.get(key);
    if (hit) return hit;
    const device = this.gpu.device;
    if (spec.aliases && Object.values(spec.aliases).some((t) => t.includes('f16')) && !this.gpu.features.f16) {
      throw new GpuError(`kernel ${key} needs shader-f16, which this adapter lacks (load weights as f32)`, 'validation');
    }
    const libs = (spec.includes ?? []).map((f) => kernelSource(`lib/${f}`)).join('\n');
    const code = kernelPrelude(spec) + libs + '\n' + kernelSource(spec.file);
    device.pushErrorScope('validation');
    const module = device.createShaderModule({ code, label: key });
    const entries: GPUBindGroupLayoutEntry[] = [
      { binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'uniform', hasDynamicOffset: true } },
      ...spec.bindings.map((access, i) => ({
        binding: i + 1,
        visibility: GPUShaderStage.COMPUTE,
        buffer: { type: (access === 'read' ? 'read-only-storage' : 'storage') as GPUBufferBindingType },
      })),
    ];
    const layout = device.createBindGroupLayout({ entries, label: key });
    const pipeline = device.createComputePipeline({
      label: key,
      layout: device.createPipelineLayout({ bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: spec.entry ?? 'main' },
    });
    // Compilation errors arrive asynchronously; they are re-thrown with the kernel key at the next sync.
    this.pendingChecks.push(
      device.popErrorScope().then(async (err) => {
        if (!err) return;
        const info = await module.getCompilationInfo();
        const msgs = info.messages.filter((m) => m.type === 'error').map((m) => `  line ${m.lineNum}: ${m.message}`);
        this.compileErrors.push(`kernel ${key}: ${err.message}\n${msgs.join('\n')}`);
      }),
    );
    const compiled = { key, spec, pipeline, layout };
    this.cache.set(key, compiled);
    return compiled;
  }

  async checkCompilation(): Promise<void> {
    if (this.pendingChecks.length) await Promise.all(this.pendingChecks.splice(0));
    if (this.compileErrors.length) {
      const errs = this.compileErrors.splice(0);
      throw new GpuError(errs.join('\n'), 'validation');
    }
  }
}
