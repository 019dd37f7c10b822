// Text output: the action table, the latency breakdown, sizes.
import type { ActResult, StageTimings } from '../policy/policy.js';
import type { Embodiment } from '../policy/embodiments.js';

export function fmtNum(v: number, digits = 4): string {
  if (Number.isNaN(v)) return 'NaN';
  if (!Number.isFinite(v)) return v > 0 ? 'inf' : '-inf';
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e5 || a < 10 ** -digits)) return v.toExponential(2);
  return v.toFixed(digits);
}

export function fmtBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)} ${units[u]}`;
}

export function fmtCount(n: number): string {
  return n.toLocaleString('en-US');
}

/** Short human form of a parameter count: 1.23 M, 4.5 B. */
export function fmtParams(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} K`;
  return String(n);
}

export function fmtMs(ms: number): string {
  return ms >= 100 ? ms.toFixed(1) : ms >= 10 ? ms.toFixed(2) : ms.toFixed(3);
}

/** A plain text table: right-aligned columns, one header row. */
export function table(header: string[], rows: string[][], align?: ('l' | 'r')[]): string {
  const w = header.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
  const a = align ?? header.map(() => 'r' as const);
  const line = (cells: string[]) =>
    cells.map((s, c) => (a[c] === 'l' ? s.padEnd(w[c]!) : s.padStart(w[c]!))).join('  ').replace(/\s+$/, '');
  return [line(header), ...rows.map(line)].join('\n');
}

/** The action chunk as a table: rows = steps (with their time offset), columns = named channels. */
export function actionTable(r: ActResult, emb: Embodiment): string {
  const a = r.actions;
  const header = ['step', 't (s)', ...a.names];
  const rows: string[][] = [];
  for (let i = 0; i < a.rows; i++) {
    const row = [String(i), (i / emb.control.rateHz).toFixed(2)];
    for (let c = 0; c < a.dims; c++) row.push(fmtNum(a.actions[i * a.dims + c]!));
    rows.push(row);
  }
  return table(header, rows);
}

/** One-line description of an act() call. */
export function actHeadline(r: ActResult, emb: Embodiment, extra = ''): string {
  const a = r.actions;
  return `${emb.key} — ${emb.name} (${emb.taskType}, ${emb.control.mode}): ${a.rows} steps × ${a.dims} channels at ${emb.control.rateHz} Hz; ` +
    `${r.solver} × ${r.steps} steps (${r.evaluations} evals), seed ${r.seed}, ${r.promptTokens} prompt tokens${extra}`;
}

/** The latency breakdown, one stage per line. */
export function latencyBreakdown(t: StageTimings, note = ''): string {
  const steps = t.stepMs;
  const denoise = steps.reduce((x, y) => x + y, 0);
  const rows: [string, number, string][] = [
    ['preprocess', t.preprocessMs, 'CPU: state, image resize + patchify, prompt'],
    ['vision', t.visionMs, 'vision tower'],
    ['prefill', t.prefillMs, 'hybrid decoder over the prompt'],
    ['context', t.contextMs, 'decoder context: vl_norm + cross K/V'],
  ];
  const lines: string[] = [`latency (ms)${note}`];
  const row = (name: string, ms: number, what: string) => `  ${name.padEnd(12)}${fmtMs(ms).padStart(10)}   ${what}`;
  for (const [n, ms, w] of rows) lines.push(row(n, ms, w));
  if (steps.length > 0) {
    const mean = denoise / steps.length;
    lines.push(row('DiT steps', denoise, `${steps.length} × ${fmtMs(mean)} mean (min ${fmtMs(Math.min(...steps))}, max ${fmtMs(Math.max(...steps))})`));
    const per = steps.map((s) => fmtMs(s)).join(' ');
    if (steps.length <= 20) lines.push(`  ${''.padEnd(12)}${''.padStart(10)}   per step: ${per}`);
  }
  lines.push(row('readback', t.readbackMs, 'GPU → CPU'));
  lines.push(row('postprocess', t.postprocessMs, 'unnormalise, relative → absolute, grippers'));
  lines.push(row('total', t.totalMs, ''));
  return lines.join('\n').replace(/[ ]+$/gm, '');
}

/** JSON-friendly timings. */
export function timingsJson(t: StageTimings): Record<string, unknown> {
  const r3 = (x: number) => Math.round(x * 1000) / 1000;
  return {
    preprocess: r3(t.preprocessMs),
    vision: r3(t.visionMs),
    prefill: r3(t.prefillMs),
    context: r3(t.contextMs),
    steps: t.stepMs.map(r3),
    denoise: r3(t.stepMs.reduce((a, b) => a + b, 0)),
    readback: r3(t.readbackMs),
    postprocess: r3(t.postprocessMs),
    total: r3(t.totalMs),
  };
}

/** Collapses a (possibly multi-line) message into one line. */
export function oneLine(msg: string): string {
  return msg.split('\n').map((s) => s.trim()).filter((s) => s.length > 0).join('; ');
}

/** JSON with 2-space indentation, but arrays of numbers/strings/booleans on one line (action rows stay readable). */
export function prettyJson(v: unknown, indent = ''): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  const inner = `${indent}  `;
  if (Array.isArray(v)) {
    if (v.length === 0) return '[]';
    if (v.every((x) => x === null || typeof x !== 'object')) return `[${v.map((x) => JSON.stringify(x) ?? 'null').join(', ')}]`;
    return `[\n${v.map((x) => `${inner}${prettyJson(x, inner)}`).join(',\n')}\n${indent}]`;
  }
  const entries = Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined);
  if (entries.length === 0) return '{}';
  return `{\n${entries.map(([k, x]) => `${inner}${JSON.stringify(k)}: ${prettyJson(x, inner)}`).join(',\n')}\n${indent}}`;
}
