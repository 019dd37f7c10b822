// Kernel specs → compute pipelines, cached by a canonical key.
//
// A kernel is one WGSL file in kernels/ plus a spec. The spec declares, by name, everything the WGSL may touch:
// its per-call uniform fields (`params`, shapes/strides/eps: one pipeline serves all shapes) and its storage
// bindings (`bindings`, name → access and element type). From that declaration this module generates the WGSL
// `struct Params`, `var<uniform> P` at @binding(0) and one `var<storage, …> Name: array<T>` per binding, in
// declaration order from @binding(1); the stream packs values by the same names (src/gpu/stream.ts), so a
// wrapper can neither misorder a field nor bind a buffer to the wrong slot. Compile-time constants and type
// aliases (`const TM: u32 = 4u;`, `alias WT = f16;`) are prepended as a prelude.

import type { Gpu } from './device.js';
import { GpuError } from './errors.js';
import { platform } from '../platform/index.js';

export type BindingAccess = 'read' | 'write';

/**
 * A uniform field: a 4-byte scalar, or `vec4f[N]` (N vec4f, 16-byte aligned; the value is a flat number[] of at
 * most 4·N floats, zero-filled). Fields are laid out in declaration order; padding is generated.
 */
export type ParamType = 'u32' | 'i32' | 'f32' | `vec4f[${number}]`;

/** `read T` or `write T`, T a WGSL element type (`f32`, `WT`, `u32`, `vec4f`, `atomic<u32>`, …): binds `array<T>`. */
export type BindingDecl = `${BindingAccess} ${string}`;

/** One field of the packed uniform: word offset and type. */
export interface ParamField {
  name: string;
  type: 'u' | 'i' | 'f' | 'v4';
  word: number;
  /** vec4f arrays: number of floats (4·N). */
  floats?: number;
}

export interface KernelSpec {
  /** WGSL file name in kernels/ without extension. */
  file: string;
  /** Entry point, default `main`. */
  entry?: string;
  /** Uniform fields by name, in order (generates `struct Params`). */
  params?: Record<string, ParamType>;
  /** Storage bindings by name, in order (generates `@binding(1..n)`); inputs first, outputs last by convention. */
  bindings: Record<string, BindingDecl>;
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
  /** Binding names in slot order. */
  bindingNames: string[];
  /** Uniform layout. */
  paramFields: ParamField[];
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

/** Canonical key: same spec → same string, whatever the key order of consts/aliases (params/bindings keep theirs: order is layout). */
export function specKey(spec: KernelSpec): string {
  const sortEntries = (o?: Record<string, unknown>) =>
    o ? Object.keys(o).sort().map((k) => `${k}=${String(o[k])}`).join(',') : '';
  const inOrder = (o?: Record<string, unknown>) => (o ? Object.entries(o).map(([k, v]) => `${k}:${String(v)}`).join(',') : '');
  const wg = [spec.workgroup[0], spec.workgroup[1] ?? 1, spec.workgroup[2] ?? 1].join('x');
  const b = inOrder(spec.bindings);
  return `${spec.file}:${spec.entry ?? 'main'}|i=${(spec.includes ?? []).join('+')}|b=${b}|p=${inOrder(spec.params)}|c=${sortEntries(spec.consts)}|a=${sortEntries(spec.aliases)}|wg=${wg}|sg=${spec.subgroups ? 1 : 0}`;
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Word layout of a spec's uniform fields (scalars 4-byte aligned, vec4f arrays 16-byte aligned). */
export function paramLayout(spec: KernelSpec): { fields: ParamField[]; words: number } {
  const fields: ParamField[] = [];
  let word = 0;
  for (const [name, type] of Object.entries(spec.params ?? {})) {
    if (!IDENT.test(name)) throw new Error(`kernel ${spec.file}: param name '${name}' is not a WGSL identifier`);
    if (type === 'u32' || type === 'i32' || type === 'f32') {
      fields.push({ name, type: type[0] as 'u' | 'i' | 'f', word });
      word += 1;
      continue;
    }
    const m = /^vec4f\[(\d+)\]$/.exec(type);
    if (!m || Number(m[1]) < 1) throw new Error(`kernel ${spec.file}: param '${name}' has unknown type '${type}'`);
    word = Math.ceil(word / 4) * 4;
    fields.push({ name, type: 'v4', word, floats: 4 * Number(m[1]) });
    word += 4 * Number(m[1]);
  }
  // One 256-byte uniform slot per dispatch (src/gpu/stream.ts).
  if (word > 64) throw new Error(`kernel ${spec.file}: params take ${word} words, more than the 64 of a uniform slot`);
  return { fields, words: word };
}

/** The generated WGSL declarations of a declared spec: `struct Params`, `P`, and the storage bindings. */
export function kernelInterface(spec: KernelSpec): string {
  const { fields } = paramLayout(spec);
  const members: string[] = [];
  let word = 0;
  for (const f of fields) {
    while (word < f.word) members.push(`  _pad${word}: u32,`), word++;
    if (f.type === 'v4') {
      members.push(`  ${f.name}: array<vec4f, ${f.floats! / 4}>,`);
      word += f.floats!;
    } else {
      members.push(`  ${f.name}: ${f.type === 'u' ? 'u32' : f.type === 'i' ? 'i32' : 'f32'},`);
      word += 1;
    }
  }
  if (!members.length) members.push('  _unused: u32,');
  const lines = ['struct Params {', ...members, '}', '@group(0) @binding(0) var<uniform> P: Params;'];
  Object.entries(spec.bindings).forEach(([name, decl], k) => {
    const m = /^(read|write) (.+)$/.exec(decl);
    if (!IDENT.test(name) || !m) throw new Error(`kernel ${spec.file}: binding ${name}: '${decl}' is not 'read T' or 'write T'`);
    lines.push(`@group(0) @binding(${k + 1}) var<storage, ${m[1] === 'read' ? 'read' : 'read_write'}> ${name}: array<${m[2]}>;`);
  });
  return lines.join('\n') + '\n';
}

/** Access of each storage binding in slot order. */
function bindingAccesses(spec: KernelSpec): BindingAccess[] {
  return Object.values(spec.bindings).map((d) => d.split(' ')[0] as BindingAccess);
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
    const code = kernelPrelude(spec) + kernelInterface(spec) + libs + '\n' + kernelSource(spec.file);
    device.pushErrorScope('validation');
    const module = device.createShaderModule({ code, label: key });
    const entries: GPUBindGroupLayoutEntry[] = [
      { binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'uniform', hasDynamicOffset: true } },
      ...bindingAccesses(spec).map((access, i) => ({
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
    const compiled: CompiledKernel = { key, spec, pipeline, layout, bindingNames: Object.keys(spec.bindings), paramFields: paramLayout(spec).fields };
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
