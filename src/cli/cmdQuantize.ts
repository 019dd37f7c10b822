// qvla quantize IN_DIR OUT_DIR: weight-only int8 / int4 checkpoints (docs/quantization.md).
import { getFlag, getList, getNumber, getString, HELP_OPT, UsageError, type CommandSpec, type Parsed } from './args.js';
import { fmtBytes, table } from './format.js';
import { DEFAULT_SKIP, quantizeCheckpoint, type QuantizeReport } from '../quant/convert.js';
import { loadProgress } from './progress.js';

export const QUANTIZE_SPEC: CommandSpec = {
  name: 'quantize',
  usage: 'quantize IN_DIR OUT_DIR --bits 8|4 [--group 64] [--zero-point] [--skip REGEX] [--json FILE]',
  summary: 'Write a weight-only int8 (per output channel) or int4 (groups along K, f16 scales) copy of a checkpoint.',
  positionals: 2,
  positionalHelp: '  IN_DIR                    checkpoint to quantise\n  OUT_DIR                   new directory (must not exist; written atomically)',
  description: [
    'Linear weights ([out, in] matrices ending in .weight) become P.qweight + P.scales (+ P.qzeros); every other',
    'tensor is copied as is. Left unquantised by default: tensors of rank ≠ 2, fewer than --min-elements values,',
    'whose K the scheme does not fit, lm_head.weight (see --quantize-lm-head), and by name:',
    ...DEFAULT_SKIP.map((s) => `  ${String(s.pattern).padEnd(58)}${s.why}`),
    'Tensors are streamed one row block at a time (bounded memory); the output appears only when complete.',
    'Prints, per quantised tensor, ‖ŵ − w‖/‖w‖, max |ŵ − w| and the SQNR. Format: docs/quantization.md.',
  ].join('\n'),
  options: [
    { name: 'bits', type: 'int', choices: ['8', '4'], help: '8: int8, one f16 scale per output channel; 4: int4 in groups along K' },
    { name: 'group', type: 'int', choices: ['32', '64', '128'], help: 'int4 group size along K', defaultText: '64' },
    { name: 'zero-point', type: 'flag', help: 'int4: store a u8 zero point per group (asymmetric) instead of the fixed 8' },
    { name: 'skip', type: 'list', metavar: 'REGEX', help: 'also keep tensors whose name matches (repeatable)' },
    { name: 'quantize-lm-head', type: 'flag', help: 'quantise an untied lm_head.weight too' },
    { name: 'min-elements', type: 'int', min: 1, metavar: 'N', help: 'keep tensors with fewer values', defaultText: '4096' },
    { name: 'json', type: 'string', metavar: 'FILE', help: 'write the per-tensor report as JSON' },
    { name: 'quiet', short: 'q', type: 'flag', help: 'no progress bar or table' },
    HELP_OPT,
  ],
  examples: [
    'qvla quantize weights/toy /tmp/toy-int8 --bits 8',
    'qvla quantize weights/toy /tmp/toy-int4 --bits 4 --group 64',
  ],
};

export async function cmdQuantize(p: Parsed): Promise<number> {
  const [inDir, outDir] = p.positionals;
  if (!inDir || !outDir) throw new UsageError('needs IN_DIR and OUT_DIR');
  const bits = getNumber(p, 'bits');
  if (bits !== 8 && bits !== 4) throw new UsageError('--bits 8 or --bits 4 is required');
  const quiet = getFlag(p, 'quiet');
  const progress = loadProgress(`quantize int${bits}`, process.stderr, quiet);
  let report: QuantizeReport;
  try {
    report = await quantizeCheckpoint(inDir, outDir, {
      bits, group: getNumber(p, 'group'), zeroPoint: getFlag(p, 'zero-point'), skip: getList(p, 'skip'),
      quantizeLmHead: getFlag(p, 'quantize-lm-head'), minElements: getNumber(p, 'min-elements'),
      onProgress: (done, total, name, tensors, totalTensors) => progress.onProgress({ bytes: done, totalBytes: total, tensors, totalTensors, name }),
    });
  } catch (e) {
    progress.fail();
    throw e;
  }
  progress.done();
  const q = report.tensors.filter((t) => t.quantized);
  const kept = report.tensors.filter((t) => !t.quantized);
  if (!quiet) {
    const rows = q.map((t) => [`  ${t.name}`, `[${t.shape.join(', ')}]`, t.action, t.relRms!.toExponential(2), t.maxAbs!.toExponential(2), t.sqnrDb!.toFixed(1), fmtBytes(t.bytesOut)]);
    process.stdout.write(`${table(['  quantised tensor', 'shape', 'scheme', '‖ŵ−w‖/‖w‖', 'max|ŵ−w|', 'SQNR dB', 'stored'], rows, ['l', 'r', 'l', 'r', 'r', 'r', 'r'])}\n`);
    const why = new Map<string, number>();
    for (const t of kept) why.set(t.action, (why.get(t.action) ?? 0) + 1);
    process.stdout.write(`kept as they were: ${kept.length} tensors (${[...why].map(([w, n]) => `${n} ${w}`).join('; ')})\n`);
    const worst = q.reduce((m, t) => Math.max(m, t.relRms!), 0);
    process.stdout.write(`${report.out}: ${q.length} tensors quantised, weights ${fmtBytes(report.bytesIn)} → ${fmtBytes(report.bytesOut)} ` +
      `(${(report.bytesIn / report.bytesOut).toFixed(2)}×), worst ‖ŵ−w‖/‖w‖ ${worst.toExponential(2)}\n`);
  }
  const json = getString(p, 'json');
  if (json) {
    const { writeFileAtomic } = await import('../io/safetensorsWriter.js');
    await writeFileAtomic(json, async (h) => { await h.writeFile(`${JSON.stringify(report, null, 2)}\n`); });
  }
  return 0;
}
