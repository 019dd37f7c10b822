// qvla inspect: a checkpoint summary without touching the GPU.
import { promises as fsp } from 'node:fs';
import * as nodePath from 'node:path';
import { CHECKPOINT_FILE_ROLES, missingCheckpointFiles, openCheckpoint } from '../io/checkpoint.js';
import { parseEmbodiments, type EmbodimentRegistry } from '../policy/embodiments.js';
import { expectedTensors, isIgnoredTensor, numel, type TensorGroup } from '../model/expectedTensors.js';
import { getFlag, DEVICE_INFO_OPT, HELP_OPT, type CommandSpec, type Parsed } from './args.js';
import { CHECKPOINT_OPT, checkpointDir, isTinyCheckpoint } from './common.js';
import { fmtBytes, fmtCount, fmtParams, oneLine, prettyJson, table } from './format.js';
import { bindQuantized, isQuantizedCheckpoint, type QuantizedCheckpointView } from '../quant/load.js';
import { quantizedBytes } from '../quant/format.js';
import { keepsF32 } from '../io/upload.js';

export const INSPECT_SPEC: CommandSpec = {
  name: 'inspect',
  usage: 'inspect [--checkpoint DIR | DIR] [--json]',
  summary: 'Summarise a checkpoint without loading it to the GPU: config, tensors, parameters per module, dtypes, files, embodiments.',
  positionals: 1,
  positionalHelp: '  DIR                       checkpoint directory (instead of --checkpoint)',
  description: [
    'checkpoint files (weights/README.md) and what inspect does when one is missing:',
    ...CHECKPOINT_FILE_ROLES.map((r) => `  ${r.file.padEnd(26)}${`${r.level}:`.padEnd(10)}${r.neededBy}`),
    '',
    'exit status: 0 when the checkpoint is usable; 1 when a required file is missing (a missing config.json or',
    'weights fail outright; a missing tokenizer.json is named after the summary: no command can run the model',
    'without it), when an expected tensor is missing or mis-shaped, when embodiments.json is invalid, or when a quantised checkpoint is malformed (docs/quantization.md).',
    'A missing embodiments.json is a warning with exit 0: the checkpoint is complete as a VLM, but the commands',
    'listed above need it. A missing preprocessor_config.json is a note (defaults apply).',
  ].join('\n'),
  options: [CHECKPOINT_OPT, { name: 'json', type: 'flag', help: 'print the summary as JSON' }, DEVICE_INFO_OPT, HELP_OPT],
};

type Module = TensorGroup | 'ignored' | 'unexpected';

export async function cmdInspect(p: Parsed): Promise<number> {
  const dir = checkpointDir(p, p.positionals[0]);
  const ckpt = await openCheckpoint(dir, { requireTokenizer: false });
  try {
    const cfg = ckpt.config;
    const t = cfg.text;
    const v = cfg.vision;
    const ae = cfg.actionExpert;

    // files
    const files: { name: string; bytes: number }[] = [];
    for (const e of await fsp.readdir(dir, { withFileTypes: true })) {
      const full = nodePath.join(dir, e.name);
      if (e.isFile()) files.push({ name: e.name, bytes: (await fsp.stat(full)).size });
      else if (e.isDirectory()) {
        let bytes = 0, n = 0;
        for (const f of await fsp.readdir(full, { withFileTypes: true })) {
          if (f.isFile()) {
            bytes += (await fsp.stat(nodePath.join(full, f.name))).size;
            n++;
          }
        }
        files.push({ name: `${e.name}/ (${n} files)`, bytes });
      }
    }
    files.sort((a, b) => b.bytes - a.bytes);
    const totalBytes = files.reduce((s, f) => s + f.bytes, 0);

    // tensors by module
    const groupOf = new Map<string, TensorGroup>();
    for (const x of expectedTensors(cfg)) groupOf.set(x.name, x.group);
    // A quantised checkpoint (docs/quantization.md) is checked through its logical tensors; its packed tensors
    // count in the module of the weight they replace.
    const quantized = isQuantizedCheckpoint(ckpt);
    let qview: QuantizedCheckpointView | null = null;
    let qError: string | null = null;
    const logicalParams = new Map<string, number>();
    if (quantized) {
      try {
        qview = bindQuantized(ckpt);
      } catch (e) {
        qError = oneLine(e instanceof Error ? e.message : String(e));
      }
      for (const q of qview?.quantized.values() ?? []) {
        // parameters: the weight's N·K on its packed tensor, none on its scales and zeros
        logicalParams.set(q.qweight.name, q.shape[0] * q.shape[1]);
        logicalParams.set(q.scales.name, 0);
        if (q.qzeros) logicalParams.set(q.qzeros.name, 0);
        const g = groupOf.get(q.name);
        if (g) for (const t of [q.qweight, q.scales, q.qzeros]) if (t) groupOf.set(t.name, g);
      }
    }
    const modules: Record<Module, { tensors: number; params: number; bytes: number }> = {
      vision: { tensors: 0, params: 0, bytes: 0 },
      text: { tensors: 0, params: 0, bytes: 0 },
      lm_head: { tensors: 0, params: 0, bytes: 0 },
      action_expert: { tensors: 0, params: 0, bytes: 0 },
      ignored: { tensors: 0, params: 0, bytes: 0 },
      unexpected: { tensors: 0, params: 0, bytes: 0 },
    };
    const dtypes = new Map<string, { tensors: number; bytes: number; params: number }>();
    for (const [name, info] of ckpt.tensorInfos) {
      const m: Module = groupOf.get(name) ?? (isIgnoredTensor(name) ? 'ignored' : 'unexpected');
      const n = logicalParams.get(name) ?? numel(info.shape);
      modules[m].tensors++;
      modules[m].params += n;
      modules[m].bytes += info.byteLength;
      const d = dtypes.get(info.dtype) ?? { tensors: 0, bytes: 0, params: 0 };
      d.tensors++;
      d.bytes += info.byteLength;
      d.params += n;
      dtypes.set(info.dtype, d);
    }
    const used = (['vision', 'text', 'lm_head', 'action_expert'] as const).reduce((s, k) => s + modules[k].params, 0);
    let check = 'ok: every expected tensor is present with the right shape and dtype';
    let checkOk = true;
    try {
      if (qError !== null) throw new Error(qError);
      if (!quantized) ckpt.bind();
    } catch (e) {
      checkOk = false;
      check = oneLine(e instanceof Error ? e.message : String(e));
    }
    // Weight memory on the GPU: as loaded with f32 / f16 matrices (quantised weights as stored, padded to 4 bytes).
    const gpuBytes = { f32: 0, f16: 0 };
    const quantizedParams = { tensors: 0, params: 0, bytes: 0 };
    const packedNames = new Set<string>();
    for (const q of qview?.quantized.values() ?? []) {
      const b = [q.qweight, q.scales, q.qzeros].reduce((n, t) => n + (t ? Math.ceil(t.byteLength / 4) * 4 : 0), 0);
      gpuBytes.f32 += b;
      gpuBytes.f16 += b;
      quantizedParams.tensors++;
      quantizedParams.params += q.shape[0] * q.shape[1];
      quantizedParams.bytes += quantizedBytes(q);
      for (const t of [q.qweight, q.scales, q.qzeros]) if (t) packedNames.add(t.name);
    }
    for (const [name, info] of ckpt.tensorInfos) {
      if (packedNames.has(name) || !groupOf.has(name)) continue;
      const n = numel(info.shape);
      const float = info.dtype === 'F32' || info.dtype === 'F16' || info.dtype === 'BF16';
      gpuBytes.f32 += float ? n * 4 : info.byteLength;
      gpuBytes.f16 += float ? n * (keepsF32(name, info.shape) ? 4 : 2) : info.byteLength;
    }
    const qc = qview?.config;
    const quantSummary = qc
      ? {
        method: qc.method, bits: qc.bits, group_size: qc.groupSize, zero_point: qc.zeroPoint,
        tensors: quantizedParams.tensors, parameters: quantizedParams.params, stored_bytes: quantizedParams.bytes,
        bits_per_weight: quantizedParams.params > 0 ? (8 * quantizedParams.bytes) / quantizedParams.params : 0,
      }
      : null;

    // embodiments
    let registry: EmbodimentRegistry | null = null;
    let embError: string | null = null;
    if (ckpt.embodiments !== null && ae) {
      try {
        registry = parseEmbodiments(ckpt.embodiments, { kMax: ae.kMax, sMax: ae.sMax, hMax: ae.hMax }, nodePath.join(dir, 'embodiments.json'));
      } catch (e) {
        embError = oneLine(e instanceof Error ? e.message : String(e));
      }
    }
    const embs = registry
      ? registry.keys().map((k) => {
        const e = registry!.get(k);
        return {
          key: k, name: e.name, task_type: e.taskType, cameras: e.cameras, action_dim: e.action.names.length,
          state_dim: e.state ? e.state.names.length : 0, chunk: e.control.chunk, rate_hz: e.control.rateHz,
          control_mode: e.control.mode, relative: e.action.relative.some((r) => r), normalization: e.normalization.method,
        };
      })
      : [];
    const nFull = t.layerTypes.filter((x) => x === 'full_attention').length;

    // missing files: a required one fails the command (after the summary), a warning names what cannot run
    const missing = missingCheckpointFiles(ckpt);
    const requiredMissing = missing.some((m) => m.level === 'required');
    const ok = checkOk && embError === null && !requiredMissing;
    const missingLine = (m: (typeof missing)[number]): string =>
      m.level === 'optional'
        ? `${m.file} is absent (${m.what}); defaults apply`
        : `${m.file} is missing (${m.what}); needed by ${m.neededBy}${m.level === 'required' ? '. No command can run this checkpoint' : ''}`;
    const reportMissing = (): void => {
      for (const m of missing) {
        if (m.level === 'optional') continue;
        process.stderr.write(`qvla inspect: ${m.level === 'required' ? 'error' : 'warning'}: ${dir}: ${missingLine(m)}\n`);
      }
    };

    if (getFlag(p, 'json')) {
      const out = {
        checkpoint: dir,
        random_weights: isTinyCheckpoint(dir),
        config: {
          text: {
            layers: t.numHiddenLayers, full_attention_layers: nFull, linear_attention_layers: t.numHiddenLayers - nFull,
            hidden_size: t.hiddenSize, heads: t.numAttentionHeads, kv_heads: t.numKeyValueHeads, head_dim: t.headDim,
            intermediate_size: t.intermediateSize, vocab_size: t.vocabSize, tie_word_embeddings: cfg.tieWordEmbeddings,
          },
          vision: { depth: v.depth, hidden_size: v.hiddenSize, heads: v.numHeads, patch_size: v.patchSize, merge_size: v.spatialMergeSize, out_hidden_size: v.outHiddenSize },
          action_expert: ae
            ? {
              layers: ae.numLayers, cross_every: ae.crossEvery, hidden_size: ae.hiddenSize, heads: ae.numHeads, head_dim: ae.headDim,
              ff_inner: ae.ffInner, k_max: ae.kMax, s_max: ae.sMax, h_max: ae.hMax, vlm_layer: ae.vlmLayer,
              default_steps: ae.defaultSteps, default_solver: ae.defaultSolver,
            }
            : null,
          preprocessor: { min_pixels: ckpt.preprocessor.minPixels, max_pixels: ckpt.preprocessor.maxPixels },
        },
        tensors: ckpt.tensorInfos.size,
        tensor_check: { ok: checkOk, message: check },
        quantization: quantSummary,
        gpu_weight_bytes: { f32: gpuBytes.f32, f16: gpuBytes.f16 },
        parameters: { ...Object.fromEntries(Object.entries(modules).map(([k, m]) => [k, m.params])), total: used },
        modules,
        dtypes: Object.fromEntries(dtypes),
        files: files.map((f) => ({ name: f.name, bytes: f.bytes })),
        total_bytes: totalBytes,
        embodiments: embs,
        embodiments_error: embError,
        missing: missing.map((m) => ({ file: m.file, level: m.level, needed_by: m.neededBy, what: m.what })),
        ok,
      };
      process.stdout.write(`${prettyJson(out)}\n`);
      reportMissing();
      return ok ? 0 : 1;
    }

    const L: string[] = [];
    L.push(`checkpoint  ${dir}${isTinyCheckpoint(dir) ? '  (the bundled tiny checkpoint: random weights)' : ''}`);
    L.push('');
    L.push('config');
    L.push(`  text            Qwen3.5 hybrid decoder: ${t.numHiddenLayers} layers (${t.numHiddenLayers - nFull} linear-attention + ${nFull} full-attention), hidden ${t.hiddenSize}, ` +
      `${t.numAttentionHeads} heads / ${t.numKeyValueHeads} kv × ${t.headDim}, MLP ${t.intermediateSize}, vocab ${fmtCount(t.vocabSize)}${cfg.tieWordEmbeddings ? ', tied embeddings' : ''}`);
    L.push(`  vision          ${v.depth} blocks, hidden ${v.hiddenSize}, ${v.numHeads} heads, patch ${v.patchSize}, merge ${v.spatialMergeSize}×${v.spatialMergeSize} → ${v.outHiddenSize}`);
    if (ae) {
      L.push(`  action expert   QVLA-DiT: ${ae.numLayers} blocks (cross-attention every ${ae.crossEvery}), hidden ${ae.hiddenSize} (${ae.numHeads} × ${ae.headDim}), FFN ${ae.ffInner}, ` +
        `k_max ${ae.kMax}, s_max ${ae.sMax}, h_max ${ae.hMax}, reads VLM layer ${ae.vlmLayer}, default ${ae.defaultSteps} × ${ae.defaultSolver}`);
    } else {
      L.push('  action expert   none (a VLM-only checkpoint: `qvla chat` only)');
    }
    L.push(`  preprocessor    min_pixels ${fmtCount(ckpt.preprocessor.minPixels)}, max_pixels ${fmtCount(ckpt.preprocessor.maxPixels)}`);
    L.push('');
    L.push(`tensors     ${fmtCount(ckpt.tensorInfos.size)} in ${ckpt.files.length} file(s); check: ${check}`);
    if (quantSummary) {
      L.push('');
      L.push(`quantised   ${quantSummary.method} int${quantSummary.bits}${quantSummary.bits === 4 ? `, groups of ${quantSummary.group_size} along K${quantSummary.zero_point ? ', zero points' : ', symmetric'}` : ', one scale per output channel'}: ` +
        `${fmtCount(quantSummary.tensors)} Linear weights, ${fmtParams(quantSummary.parameters)} parameters in ${fmtBytes(quantSummary.stored_bytes)} ` +
        `(${quantSummary.bits_per_weight.toFixed(2)} bits/weight with scales${quantSummary.zero_point ? ' and zeros' : ''}); docs/quantization.md`);
    } else if (quantized) {
      L.push('');
      L.push(`quantised   INVALID: ${qError ?? check}`);
    }
    L.push(`GPU memory  weights ${fmtBytes(gpuBytes.f32)} as loaded (other matrices f32), ${fmtBytes(gpuBytes.f16)} with --f16`);
    L.push('');
    L.push('parameters');
    const mrows: string[][] = [];
    for (const k of ['vision', 'text', 'lm_head', 'action_expert', 'ignored', 'unexpected'] as const) {
      const m = modules[k];
      if (m.tensors === 0 && (k === 'ignored' || k === 'unexpected')) continue;
      const label = k === 'lm_head' && m.tensors === 0 && cfg.tieWordEmbeddings ? 'lm_head (tied)' : k === 'ignored' ? 'ignored (mtp.*)' : k;
      mrows.push([`  ${label}`, fmtCount(m.tensors), fmtCount(m.params), fmtParams(m.params), fmtBytes(m.bytes)]);
    }
    mrows.push(['  total (used)', '', fmtCount(used), fmtParams(used), '']);
    L.push(table(['  module', 'tensors', 'parameters', '', 'stored'], mrows, ['l', 'r', 'r', 'r', 'r']));
    L.push('');
    L.push('dtypes');
    L.push(table(['  dtype', 'tensors', 'parameters', 'bytes'], [...dtypes].map(([d, x]) => [`  ${d}`, fmtCount(x.tensors), fmtCount(x.params), fmtBytes(x.bytes)]), ['l', 'r', 'r', 'r']));
    L.push('');
    L.push(`files       ${fmtBytes(totalBytes)} in all`);
    L.push(table(['  file', 'size'], files.map((f) => [`  ${f.name}`, fmtBytes(f.bytes)]), ['l', 'r']));
    L.push('');
    if (embError) {
      L.push(`embodiments  INVALID: ${embError}`);
    } else if (!registry) {
      L.push(`embodiments  ${ckpt.embodiments === null ? 'none (no embodiments.json: run, serve, demo and act() are unavailable)' : 'n/a'}`);
    } else {
      L.push(`embodiments  ${registry.keys().length}`);
      L.push(table(
        ['  key', 'name', 'task', 'cameras', 'action', 'state', 'chunk', 'rate', 'control'],
        embs.map((e) => [`  ${e.key}`, e.name, e.task_type, e.cameras.join(','), `${e.action_dim}-D${e.relative ? ' (rel)' : ''}`, e.state_dim ? `${e.state_dim}-D` : '-', String(e.chunk), `${e.rate_hz} Hz`, e.control_mode]),
        ['l', 'l', 'l', 'l', 'r', 'r', 'r', 'r', 'l'],
      ));
    }
    L.push('');
    if (missing.length === 0) {
      L.push('missing     nothing: every checkpoint file is present');
    } else {
      for (const m of missing) L.push(`${{ required: 'MISSING', warning: 'warning', optional: 'note' }[m.level].padEnd(12)}${missingLine(m)}`);
    }
    process.stdout.write(`${L.join('\n')}\n`);
    reportMissing();
    return ok ? 0 : 1;
  } finally {
    await ckpt.close();
  }
}
