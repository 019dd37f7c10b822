// A small Prometheus text exposition writer (format 0.0.4: https://prometheus.io/docs/instrumenting/exposition_formats/),
// no dependency: counters, gauges and histograms with labels, rendered as `# HELP`, `# TYPE` and sample lines.
//
// Rules kept here (the format's, and what Prometheus' own parser checks):
// - metric names match [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]* and never start with `__`;
// - one HELP and one TYPE line per family, before its samples; a family's samples are contiguous;
// - label values escape `\`, `"` and newline; HELP text escapes `\` and newline;
// - a histogram has cumulative `_bucket{le="…"}` samples in increasing `le` order ending with `le="+Inf"` (equal to
//   `_count`), then `_sum` and `_count`; `le` is not a user label;
// - values are Go-style floats: `+Inf`, `-Inf`, `NaN`, otherwise the shortest decimal that round-trips.
// Counters are named with `_total` (the OpenMetrics convention, which Prometheus' parsers accept in both formats).

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export type Labels = Record<string, string>;

/** A sample value as the text format writes it. */
export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v); // shortest round-trip decimal; exponents ("1e-7") are valid Go floats
}

export function escapeLabelValue(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function escapeHelp(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function checkLabels(names: readonly string[], reserved: readonly string[] = []): void {
  for (const n of names) {
    if (!LABEL_NAME.test(n) || n.startsWith('__')) throw new Error(`metrics: invalid label name ${JSON.stringify(n)}`);
    if (reserved.includes(n)) throw new Error(`metrics: label name ${n} is reserved`);
  }
}

function labelKey(labelNames: readonly string[], labels: Labels): string {
  const extra = Object.keys(labels).filter((k) => !labelNames.includes(k));
  if (extra.length) throw new Error(`metrics: unknown label ${extra[0]} (labels: ${labelNames.join(', ') || 'none'})`);
  return JSON.stringify(labelNames.map((n) => labels[n] ?? ''));
}

function renderLabels(pairs: [string, string][]): string {
  if (pairs.length === 0) return '';
  return `{${pairs.map(([k, v]) => `${k}="${escapeLabelValue(v)}"`).join(',')}}`;
}

interface Family {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'gauge' | 'histogram';
  render(out: string[]): void;
}

abstract class Scalar implements Family {
  abstract readonly type: 'counter' | 'gauge';
  protected readonly values = new Map<string, { labels: [string, string][]; v: number }>();
  constructor(readonly name: string, readonly help: string, readonly labelNames: readonly string[] = []) {
    checkLabels(labelNames);
  }

  protected slot(labels: Labels): { v: number } {
    const key = labelKey(this.labelNames, labels);
    let s = this.values.get(key);
    if (!s) {
      s = { labels: this.labelNames.map((n) => [n, labels[n] ?? '']), v: 0 };
      this.values.set(key, s);
    }
    return s;
  }

  /** The current value (0 for a label set never touched). */
  get(labels: Labels = {}): number {
    return this.values.get(labelKey(this.labelNames, labels))?.v ?? 0;
  }

  render(out: string[]): void {
    for (const { labels, v } of this.values.values()) out.push(`${this.name}${renderLabels(labels)} ${formatValue(v)}`);
  }
}

export class Counter extends Scalar {
  readonly type = 'counter' as const;
  /** Declares label sets up front, so they are exposed as 0 before the first increment. */
  init(...labelSets: Labels[]): this {
    for (const l of labelSets.length ? labelSets : [{}]) this.slot(l);
    return this;
  }

  inc(labels: Labels = {}, by = 1): void {
    if (!(by >= 0)) throw new Error(`metrics: counter ${this.name} can only grow (got ${by})`);
    this.slot(labels).v += by;
  }
}

export class Gauge extends Scalar {
  readonly type = 'gauge' as const;
  set(v: number, labels: Labels = {}): void {
    this.slot(labels).v = v;
  }
}

/** Cumulative histogram with fixed upper bounds (`le`), per label set. */
export class Histogram implements Family {
  readonly type = 'histogram' as const;
  readonly buckets: readonly number[];
  private readonly series = new Map<string, { labels: [string, string][]; counts: number[]; sum: number; count: number }>();

  constructor(readonly name: string, readonly help: string, buckets: readonly number[], readonly labelNames: readonly string[] = []) {
    checkLabels(labelNames, ['le']);
    const b = [...buckets].filter((x) => x !== Infinity);
    for (let i = 0; i < b.length; i++) {
      if (!Number.isFinite(b[i]!) || (i > 0 && !(b[i]! > b[i - 1]!))) throw new Error(`metrics: histogram ${name} buckets must be finite and increasing`);
    }
    this.buckets = b;
  }

  private slot(labels: Labels) {
    const key = labelKey(this.labelNames, labels);
    let s = this.series.get(key);
    if (!s) {
      s = { labels: this.labelNames.map((n): [string, string] => [n, labels[n] ?? '']), counts: this.buckets.map(() => 0), sum: 0, count: 0 };
      this.series.set(key, s);
    }
    return s;
  }

  /** Declares label sets up front (exposed with zero counts). */
  init(...labelSets: Labels[]): this {
    for (const l of labelSets.length ? labelSets : [{}]) this.slot(l);
    return this;
  }

  observe(v: number, labels: Labels = {}): void {
    if (!Number.isFinite(v)) return;
    const s = this.slot(labels);
    for (let i = 0; i < this.buckets.length; i++) if (v <= this.buckets[i]!) s.counts[i]!++;
    s.sum += v;
    s.count++;
  }

  /** Observations so far (for one label set). */
  count(labels: Labels = {}): number {
    return this.series.get(labelKey(this.labelNames, labels))?.count ?? 0;
  }

  sum(labels: Labels = {}): number {
    return this.series.get(labelKey(this.labelNames, labels))?.sum ?? 0;
  }

  render(out: string[]): void {
    for (const s of this.series.values()) {
      this.buckets.forEach((le, i) => out.push(`${this.name}_bucket${renderLabels([...s.labels, ['le', formatValue(le)]])} ${s.counts[i]}`));
      out.push(`${this.name}_bucket${renderLabels([...s.labels, ['le', '+Inf']])} ${s.count}`);
      out.push(`${this.name}_sum${renderLabels(s.labels)} ${formatValue(s.sum)}`);
      out.push(`${this.name}_count${renderLabels(s.labels)} ${s.count}`);
    }
  }
}

/** The families of one process, rendered in registration order. */
export class Registry {
  private readonly families: Family[] = [];
  private readonly names = new Set<string>();

  private add<T extends Family>(f: T): T {
    if (!METRIC_NAME.test(f.name)) throw new Error(`metrics: invalid metric name ${JSON.stringify(f.name)}`);
    const clash = f.type === 'histogram' ? [f.name, `${f.name}_bucket`, `${f.name}_sum`, `${f.name}_count`] : [f.name];
    for (const n of clash) if (this.names.has(n)) throw new Error(`metrics: ${n} is registered twice`);
    for (const n of clash) this.names.add(n);
    this.families.push(f);
    return f;
  }

  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return this.add(new Counter(name, help, labelNames));
  }

  gauge(name: string, help: string, labelNames: readonly string[] = []): Gauge {
    return this.add(new Gauge(name, help, labelNames));
  }

  histogram(name: string, help: string, buckets: readonly number[], labelNames: readonly string[] = []): Histogram {
    return this.add(new Histogram(name, help, buckets, labelNames));
  }

  /** The exposition text (Content-Type `text/plain; version=0.0.4; charset=utf-8`). */
  render(): string {
    const out: string[] = [];
    for (const f of this.families) {
      out.push(`# HELP ${f.name} ${escapeHelp(f.help)}`);
      out.push(`# TYPE ${f.name} ${f.type}`);
      f.render(out);
    }
    return out.join('\n') + '\n';
  }
}

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
