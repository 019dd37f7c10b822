// `qvla quantize IN_DIR OUT_DIR`: a checkpoint → a weight-only int8/int4 checkpoint (docs/quantization.md).
//
// Streaming: the output header is decided up front from the input header alone (which tensors are quantised
// depends on name and shape), then tensors are read, quantised and written one row block at a time (at most
// `blockBytes` of source per block) at their final offsets, so memory stays bounded whatever the model size.
// Atomic: everything is written into a fresh `OUT_DIR.tmp-<pid>` next to OUT_DIR, renamed to OUT_DIR only when
// complete; on any error the temporary directory is removed and OUT_DIR never exists half-written.
import { promises as fsp } from 'node:fs';
import * as nodePath from 'node:path';
import { CONFIG_FILE, INDEX_FILE, SINGLE_WEIGHTS_FILE, openCheckpoint } from '../io/checkpoint.js';
import { DTYPE_SIZES, bf16ToF32, f16ToF32, type Dtype } from '../io/dtypes.js';
import { CheckpointError } from '../io/errors.js';
import { encodeSafetensorsHeader, type TensorHeaderEntry } from '../io/safetensorsWriter.js';
import type { TensorInfo } from '../io/safetensors.js';
import { dequantize } from './tensor.js';
import { isQuantizedCheckpoint } from './load.js';
import { QUANT_FORMAT_VERSION, QUANT_METHOD, QWEIGHT, QZEROS, SCALES, quantConfigJson, type QuantConfig } from './format.js';
import { ErrorStats, quantizeRows, schemeProblem, type QuantScheme } from './quantize.js';

/**
 * Tensors left unquantised by default, by name (regular expressions), and why:
 * norms (rank 1 anyway, and tiny), embeddings (read row by row by gather / pos-embed kernels, not by linear),
 * lm_head (tied to the embeddings in Qwen3.5; configurable), and full-attention q_proj (the model de-interleaves
 * its query and gate rows by copying bytes at load: src/model/textDecoder.ts splitQProj).
 */
export const DEFAULT_SKIP: readonly { pattern: RegExp; why: string }[] = [
  { pattern: /norm/, why: 'norm' },
  { pattern: /embed_tokens|position_embedding|pos_embed|patch_embed/, why: 'embedding' },
  { pattern: /(^|\.)self_attn\.q_proj\.weight$/, why: 'q_proj rows are de-interleaved by copy at load' },
];
export const LM_HEAD = /^lm_head\.weight$/;

export interface QuantizeOptions {
  bits: 8 | 4;
  /** int4 group size (32, 64, 128). */
  group?: number;
  zeroPoint?: boolean;
  /** Extra regular expressions: matching tensors stay unquantised. */
  skip?: string[];
  /** Quantise an untied lm_head.weight too (default: keep it). */
  quantizeLmHead?: boolean;
  /** Tensors with fewer elements stay unquantised (default 4096). */
  minElements?: number;
  /** Source bytes per row block (default 16 MiB). */
  blockBytes?: number;
  /** Source bytes done / total, the tensor at hand, tensors finished / total. */
  onProgress?: (done: number, total: number, name: string, tensorsDone: number, tensors: number) => void;
}

export interface TensorReport {
  name: string;
  shape: number[];
  /** 'int8' | 'int4' or why it stayed as it was. */
  action: string;
  quantized: boolean;
  bytesIn: number;
  bytesOut: number;
  relRms?: number;
  maxAbs?: number;
  sqnrDb?: number;
}

export interface QuantizeReport {
  out: string;
  config: QuantConfig;
  tensors: TensorReport[];
  bytesIn: number;
  bytesOut: number;
}

interface Plan {
  info: TensorInfo;
  quantized: boolean;
  why: string;
  entries: TensorHeaderEntry[];
}

function decide(info: TensorInfo, scheme: QuantScheme, opts: QuantizeOptions, skip: { pattern: RegExp; why: string }[]): { quantized: boolean; why: string } {
  const s = info.shape;
  if (!['F32', 'F16', 'BF16'].includes(info.dtype)) return { quantized: false, why: `${info.dtype} (not float)` };
  if (s.length !== 2 || !info.name.endsWith('.weight')) return { quantized: false, why: `rank ${s.length}${s.length === 2 ? ', not a .weight' : ''}` };
  if (LM_HEAD.test(info.name) && !opts.quantizeLmHead) return { quantized: false, why: 'lm_head (--quantize-lm-head)' };
  const hit = skip.find((k) => k.pattern.test(info.name));
  if (hit) return { quantized: false, why: hit.why };
  const n = s[0]! * s[1]!;
  if (n < (opts.minElements ?? 4096)) return { quantized: false, why: `small (${n} < ${opts.minElements ?? 4096} elements)` };
  const p = schemeProblem(scheme, s[1]!);
  if (p) return { quantized: false, why: p };
  return { quantized: true, why: scheme.bits === 8 ? 'int8' : `int4 g${scheme.group}${scheme.zeroPoint ? ' zp' : ''}` };
}

function toF32(src: Uint8Array, dtype: Dtype, n: number, dst: Float32Array): void {
  const u16 = new Uint16Array(src.buffer, src.byteOffset, n);
  if (dtype === 'F32') dst.set(new Float32Array(src.buffer, src.byteOffset, n));
  else if (dtype === 'F16') f16ToF32(u16, dst, n);
  else bf16ToF32(u16, dst, n);
}

export async function quantizeCheckpoint(inDir: string, outDir: string, opts: QuantizeOptions): Promise<QuantizeReport> {
  const bits = opts.bits;
  if (bits !== 8 && bits !== 4) throw new Error(`--bits must be 8 or 4, got ${String(bits)}`);
  const group = bits === 8 ? -1 : opts.group ?? 64;
  if (bits === 4 && ![32, 64, 128].includes(group)) throw new Error(`--group must be 32, 64 or 128, got ${group}`);
  if (bits === 8 && opts.group !== undefined) throw new Error('--group applies to --bits 4 (int8 has one scale per output channel)');
  if (bits === 8 && opts.zeroPoint) throw new Error('--zero-point applies to --bits 4 (int8 is symmetric)');
  const scheme: QuantScheme = { bits, group: bits === 8 ? 0 : group, zeroPoint: !!opts.zeroPoint };
  const config: QuantConfig = { method: QUANT_METHOD, version: QUANT_FORMAT_VERSION, bits, groupSize: group, zeroPoint: scheme.zeroPoint };
  const skip = [...DEFAULT_SKIP, ...(opts.skip ?? []).map((p) => {
    try {
      return { pattern: new RegExp(p), why: `--skip ${p}` };
    } catch (e) {
      throw new Error(`--skip ${JSON.stringify(p)} is not a regular expression: ${e instanceof Error ? e.message : String(e)}`);
    }
  })];

  const outAbs = nodePath.resolve(outDir);
  if (nodePath.resolve(inDir) === outAbs) throw new Error('OUT_DIR must differ from IN_DIR');
  if (await fsp.stat(outAbs).then(() => true, () => false)) throw new CheckpointError('already exists; qvla quantize writes a new directory', { file: outDir });

  const ckpt = await openCheckpoint(inDir, { requireTokenizer: false });
  const tmp = `${outAbs}.tmp-${process.pid}`;
  try {
    if (isQuantizedCheckpoint(ckpt)) throw new CheckpointError('is already quantised (config.json has a quantization section)', { file: inDir });
    ckpt.bind(); // a checkpoint that does not match its config is rejected before anything is written

    // ---- plan: every output tensor, in input order
    const plans: Plan[] = [];
    for (const info of ckpt.tensorInfos.values()) {
      const d = decide(info, scheme, opts, skip);
      let entries: TensorHeaderEntry[];
      if (d.quantized) {
        const [N, K] = info.shape as [number, number];
        const mod = info.name.slice(0, -'.weight'.length);
        const G = bits === 8 ? 1 : K / group;
        entries = [
          { name: mod + QWEIGHT, dtype: bits === 8 ? 'I8' : 'U8', shape: [N, bits === 8 ? K : K / 2] },
          { name: mod + SCALES, dtype: 'F16', shape: [N, G] },
          ...(scheme.zeroPoint ? [{ name: mod + QZEROS, dtype: 'U8' as Dtype, shape: [N, G] }] : []),
        ];
      } else {
        entries = [{ name: info.name, dtype: info.dtype, shape: [...info.shape] }];
      }
      plans.push({ info, quantized: d.quantized, why: d.why, entries });
    }
    const header = encodeSafetensorsHeader(plans.flatMap((p) => p.entries), { format: 'pt', quantization: `${QUANT_METHOD} int${bits}` }, SINGLE_WEIGHTS_FILE);
    const dataStart = header.bytes.length;

    await fsp.mkdir(tmp);
    // ---- side files: every top-level file but the weights; config.json gets the quantization section
    for (const e of await fsp.readdir(inDir, { withFileTypes: true })) {
      if (!e.isFile() || e.name.endsWith('.safetensors') || e.name === INDEX_FILE || e.name === CONFIG_FILE) continue;
      await fsp.copyFile(nodePath.join(inDir, e.name), nodePath.join(tmp, e.name));
    }
    const raw = ckpt.rawConfig as Record<string, unknown>;
    const quantizedCount = plans.filter((p) => p.quantized).length;
    await fsp.writeFile(nodePath.join(tmp, CONFIG_FILE), `${JSON.stringify({ ...raw, quantization: quantConfigJson(config, { quantized_tensors: quantizedCount }) }, null, 2)}\n`);

    // ---- weights
    const h = await fsp.open(nodePath.join(tmp, SINGLE_WEIGHTS_FILE), 'w');
    const reports: TensorReport[] = [];
    const total = plans.reduce((s, p) => s + p.info.byteLength, 0);
    let done = 0;
    try {
      await h.write(header.bytes, 0, header.bytes.length, 0);
      const blockBytes = Math.max(1 << 16, opts.blockBytes ?? 16 << 20);
      let entryIndex = 0;
      for (const plan of plans) {
        const info = plan.info;
        const offsets = plan.entries.map((_, i) => dataStart + header.dataOffsets[entryIndex + i]![0]);
        entryIndex += plan.entries.length;
        if (!plan.quantized) {
          for (let off = 0; off < info.byteLength; off += blockBytes) {
            const n = Math.min(blockBytes, info.byteLength - off);
            const buf = await ckpt.readRange(info.name, off, n);
            await h.write(buf, 0, n, offsets[0]! + off);
            done += n;
            opts.onProgress?.(done, total, info.name, reports.length, plans.length);
          }
          reports.push({ name: info.name, shape: [...info.shape], action: plan.why, quantized: false, bytesIn: info.byteLength, bytesOut: info.byteLength });
          continue;
        }
        const [N, K] = info.shape as [number, number];
        const srcElem = DTYPE_SIZES[info.dtype];
        const G = bits === 8 ? 1 : K / group;
        const rowsPer = Math.max(1, Math.floor(blockBytes / (K * srcElem)));
        const w = new Float32Array(rowsPer * K);
        const qw = new Uint8Array((rowsPer * K * bits) / 8);
        const sc = new Uint16Array(rowsPer * G);
        const qz = scheme.zeroPoint ? new Uint8Array(rowsPer * G) : null;
        const deq = new Float32Array(rowsPer * K);
        const stats = new ErrorStats();
        for (let r0 = 0; r0 < N; r0 += rowsPer) {
          const rows = Math.min(rowsPer, N - r0);
          const src = await ckpt.readRange(info.name, r0 * K * srcElem, rows * K * srcElem);
          toF32(src, info.dtype, rows * K, w);
          let bad = -1;
          for (let i = 0; i < rows * K; i++) if (!Number.isFinite(w[i]!)) { bad = i; break; }
          if (bad >= 0) throw new CheckpointError(`element [${r0 + Math.floor(bad / K)}, ${bad % K}] is ${w[bad]}: cannot quantise a non-finite weight`, { file: inDir, tensor: info.name });
          quantizeRows(w, rows, K, scheme, qw, sc, qz);
          dequantize({ bits, N: rows, K, group: bits === 8 ? K : group, qweight: qw, scales: sc, qzeros: qz }, deq);
          stats.add(w, deq, rows * K);
          const qBytes = (rows * K * bits) / 8;
          await h.write(qw, 0, qBytes, offsets[0]! + (r0 * K * bits) / 8);
          await h.write(new Uint8Array(sc.buffer, 0, rows * G * 2), 0, rows * G * 2, offsets[1]! + r0 * G * 2);
          if (qz) await h.write(qz, 0, rows * G, offsets[2]! + r0 * G);
          done += rows * K * srcElem;
          opts.onProgress?.(done, total, info.name, reports.length, plans.length);
        }
        const bytesOut = (N * K * bits) / 8 + N * G * 2 + (qz ? N * G : 0);
        reports.push({
          name: info.name, shape: [N, K], action: plan.why, quantized: true, bytesIn: info.byteLength, bytesOut,
          relRms: stats.relRms, maxAbs: stats.maxAbs, sqnrDb: stats.sqnrDb,
        });
      }
      opts.onProgress?.(done, total, '', plans.length, plans.length);
      await h.sync();
    } finally {
      await h.close();
    }
    await fsp.rename(tmp, outAbs);
    const bytesIn = reports.reduce((s, r) => s + r.bytesIn, 0);
    const bytesOut = reports.reduce((s, r) => s + r.bytesOut, 0);
    return { out: outDir, config, tensors: reports, bytesIn, bytesOut };
  } catch (e) {
    await fsp.rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    throw e;
  } finally {
    await ckpt.close();
  }
}
