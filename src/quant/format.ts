// The qvla weight-only quantised checkpoint format (docs/quantization.md): what config.json's `quantization`
// section says, which tensors hold a quantised Linear weight, and the checks that turn a malformed checkpoint
// into a CheckpointError naming the tensor (shared by `qvla inspect`, `qvla run` and every Policy.load).
//
// A Linear weight `P.weight` [N, K] (PyTorch [out, in]) is stored as
//   P.qweight  int8: I8 [N, K]         int4: U8 [N, K/2], element k in byte k/2, low nibble first
//   P.scales   F16 [N, K/group]        (int8: one scale per output row, [N, 1])
//   P.qzeros   U8 [N, K/group]         int4 with zero_point only: one zero (0..15) per group
// and dequantises as w = s·q (int8, q ∈ [-127, 127]), w = s·(q − 8) (int4 symmetric), w = s·(q − z) (int4 with
// zero point), q ∈ [0, 15].
import { CheckpointError, describeValue } from '../io/errors.js';
import type { TensorInfo } from '../io/safetensors.js';

export const QUANT_METHOD = 'qvla_weight_only';
export const QUANT_FORMAT_VERSION = 1;
export const QWEIGHT = '.qweight';
export const SCALES = '.scales';
export const QZEROS = '.qzeros';
/** Group sizes along K accepted for int4 (int8 is per output channel). */
export const INT4_GROUPS: readonly number[] = [32, 64, 128];

/** The `quantization` section of config.json. */
export interface QuantConfig {
  method: typeof QUANT_METHOD;
  version: number;
  bits: 8 | 4;
  /** Elements of K per scale; -1 = one scale per output channel (int8). */
  groupSize: number;
  zeroPoint: boolean;
}

/** One quantised Linear weight as stored. */
export interface QuantizedTensorInfo {
  /** The logical weight name (`P.weight`). */
  name: string;
  /** Logical shape [N, K]. */
  shape: [number, number];
  bits: 8 | 4;
  /** Elements of K per scale (int8: K). */
  group: number;
  zeroPoint: boolean;
  qweight: TensorInfo;
  scales: TensorInfo;
  qzeros: TensorInfo | null;
}

export const logicalName = (module: string): string => `${module}.weight`;

/** The module prefix of a quantised tensor name (`a.b.qweight` → `a.b`), or null. */
function moduleOf(name: string): { module: string; suffix: string } | null {
  for (const s of [QWEIGHT, SCALES, QZEROS]) if (name.endsWith(s)) return { module: name.slice(0, -s.length), suffix: s };
  return null;
}

/** Parses config.json's `quantization` section; null when there is none. */
export function parseQuantConfig(rawConfig: unknown, file = 'config.json'): QuantConfig | null {
  if (rawConfig === null || typeof rawConfig !== 'object') return null;
  const q = (rawConfig as Record<string, unknown>)['quantization'];
  if (q === undefined || q === null) return null;
  const err = (field: string, msg: string) => new CheckpointError(msg, { file, field: `quantization.${field}` });
  if (typeof q !== 'object' || Array.isArray(q)) throw new CheckpointError(`must be an object, got ${describeValue(q)}`, { file, field: 'quantization' });
  const o = q as Record<string, unknown>;
  if (o['method'] !== QUANT_METHOD) {
    throw err('method', `unknown quantization method ${describeValue(o['method'])} (qvla reads "${QUANT_METHOD}": docs/quantization.md)`);
  }
  const version = o['version'] ?? QUANT_FORMAT_VERSION;
  if (version !== QUANT_FORMAT_VERSION) throw err('version', `format version ${describeValue(version)} is not supported (this qvla reads ${QUANT_FORMAT_VERSION})`);
  const bits = o['bits'];
  if (bits !== 8 && bits !== 4) throw err('bits', `must be 8 or 4, got ${describeValue(bits)}`);
  const group = o['group_size'];
  if (bits === 8 && group !== -1) throw err('group_size', `int8 is per output channel: group_size must be -1, got ${describeValue(group)}`);
  if (bits === 4 && !(typeof group === 'number' && INT4_GROUPS.includes(group))) {
    throw err('group_size', `int4 group_size must be one of ${INT4_GROUPS.join(', ')}, got ${describeValue(group)}`);
  }
  const zp = o['zero_point'] ?? false;
  if (typeof zp !== 'boolean') throw err('zero_point', `must be true or false, got ${describeValue(zp)}`);
  if (zp && bits === 8) throw err('zero_point', 'int8 is symmetric: zero_point must be false');
  return { method: QUANT_METHOD, version: QUANT_FORMAT_VERSION, bits, groupSize: group as number, zeroPoint: zp };
}

export function quantConfigJson(c: QuantConfig, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { method: c.method, version: c.version, bits: c.bits, group_size: c.groupSize, zero_point: c.zeroPoint, ...extra };
}

const shapeStr = (s: readonly number[]) => `[${s.join(', ')}]`;

/**
 * Splits a checkpoint's tensors into the quantised Linear weights (validated: dtypes, shapes, scales, zeros,
 * group size vs K) and the rest, and returns the *logical* tensor map (quantised weights appear under their
 * `.weight` name with shape [N, K]) for binding against the config. Every problem is collected; the first
 * few are thrown together, each naming its tensor.
 */
export function quantizedLayout(
  q: QuantConfig,
  tensors: ReadonlyMap<string, TensorInfo>,
  file: string,
): { quantized: Map<string, QuantizedTensorInfo>; logical: Map<string, { dtype: string; shape: readonly number[] }> } {
  const problems: { tensor: string; msg: string }[] = [];
  const quantized = new Map<string, QuantizedTensorInfo>();
  const logical = new Map<string, { dtype: string; shape: readonly number[] }>();
  const modules = new Set<string>();
  for (const name of tensors.keys()) {
    const m = moduleOf(name);
    if (m) modules.add(m.module);
    else logical.set(name, tensors.get(name)!);
  }
  for (const mod of modules) {
    const qw = tensors.get(mod + QWEIGHT);
    const sc = tensors.get(mod + SCALES);
    const qz = tensors.get(mod + QZEROS) ?? null;
    const bad = (t: string, msg: string) => problems.push({ tensor: t, msg });
    if (!qw) { bad(mod + (sc ? SCALES : QZEROS), `has no ${mod + QWEIGHT} beside it`); continue; }
    if (!sc) { bad(mod + QWEIGHT, `has no ${mod + SCALES} beside it`); continue; }
    if (tensors.has(logicalName(mod))) { bad(logicalName(mod), `is stored both quantised (${mod + QWEIGHT}) and as a plain tensor`); continue; }
    const wantDtype = q.bits === 8 ? 'I8' : 'U8';
    if (qw.dtype !== wantDtype) { bad(mod + QWEIGHT, `dtype ${qw.dtype}, expected ${wantDtype} for int${q.bits}`); continue; }
    if (qw.shape.length !== 2) { bad(mod + QWEIGHT, `shape ${shapeStr(qw.shape)} is not 2-D [N, K${q.bits === 4 ? '/2' : ''}]`); continue; }
    const N = qw.shape[0]!;
    const K = q.bits === 8 ? qw.shape[1]! : 2 * qw.shape[1]!;
    const group = q.bits === 8 ? K : q.groupSize;
    if (K % group !== 0) { bad(mod + QWEIGHT, `group_size ${group} does not divide K = ${K}`); continue; }
    if (K % (q.bits === 8 ? 4 : 8) !== 0) { bad(mod + QWEIGHT, `K = ${K} is not a multiple of ${q.bits === 8 ? 4 : 8} (rows must start on a 32-bit word)`); continue; }
    const G = K / group;
    if (sc.dtype !== 'F16') { bad(mod + SCALES, `dtype ${sc.dtype}, expected F16`); continue; }
    if (sc.shape.length !== 2 || sc.shape[0] !== N || sc.shape[1] !== G) {
      bad(mod + SCALES, `shape ${shapeStr(sc.shape)} does not match ${mod + QWEIGHT} ${shapeStr(qw.shape)} (K = ${K}, group ${group}: expected [${N}, ${G}])`);
      continue;
    }
    if (q.zeroPoint && !qz) { bad(mod + QWEIGHT, `config says zero_point but ${mod + QZEROS} is missing`); continue; }
    if (!q.zeroPoint && qz) { bad(mod + QZEROS, 'is present but config.json quantization.zero_point is false'); continue; }
    if (qz && (qz.dtype !== 'U8' || qz.shape.length !== 2 || qz.shape[0] !== N || qz.shape[1] !== G)) {
      bad(mod + QZEROS, `${qz.dtype} ${shapeStr(qz.shape)}, expected U8 [${N}, ${G}]`);
      continue;
    }
    const name = logicalName(mod);
    quantized.set(name, { name, shape: [N, K], bits: q.bits, group, zeroPoint: q.zeroPoint, qweight: qw, scales: sc, qzeros: qz });
    // Bound against the config as the weight it replaces (shape [N, K]; dtype named for the binder's check).
    logical.set(name, { dtype: 'F16', shape: [N, K] });
  }
  if (problems.length > 0) {
    if (problems.length === 1) throw new CheckpointError(problems[0]!.msg, { file, tensor: problems[0]!.tensor });
    const shown = problems.slice(0, 10).map((p) => `tensor ${JSON.stringify(p.tensor)}: ${p.msg}`);
    if (problems.length > 10) shown.push(`… and ${problems.length - 10} more`);
    throw new CheckpointError(`${problems.length} malformed quantised tensors:\n  ${shown.join('\n  ')}`, { file, field: 'quantization' });
  }
  return { quantized, logical };
}

/** Bytes of one quantised weight as stored (packed data + scales + zeros). */
export function quantizedBytes(t: QuantizedTensorInfo): number {
  return t.qweight.byteLength + t.scales.byteLength + (t.qzeros?.byteLength ?? 0);
}
