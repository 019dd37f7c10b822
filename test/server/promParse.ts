// A strict parser of the Prometheus text exposition format 0.0.4, for tests: it throws on anything the format
// does not allow (or that Prometheus would reject), so `parseExposition(text)` passing means the text parses.
//
// Checked: every line ends with \n; `# HELP name text` / `# TYPE name type` at most once per family, TYPE before
// the family's first sample; metric and label names; label values with only the \\, \" and \n escapes; Go float
// values (+Inf, -Inf, NaN); optional integer timestamps; a family's samples contiguous; no sample (name + labels)
// twice; every sample belongs to a TYPEd family (histogram: _bucket/_sum/_count; summary: name/_sum/_count);
// counters ≥ 0; histograms per label set: `le` parseable and increasing, buckets cumulative (non-decreasing),
// a +Inf bucket equal to _count, and _sum/_count present.

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface MetricFamily {
  name: string;
  type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';
  help: string | null;
  samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const GO_FLOAT = /^(?:[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]?Inf|NaN)$/;
const TYPES = ['counter', 'gauge', 'histogram', 'summary', 'untyped'] as const;

function parseFloatGo(s: string, where: string): number {
  if (!GO_FLOAT.test(s)) throw new Error(`${where}: not a float: ${JSON.stringify(s)}`);
  if (/^[+]?Inf$/.test(s)) return Infinity;
  if (s === '-Inf') return -Infinity;
  if (s === 'NaN') return NaN;
  return Number(s);
}

function familyOf(sample: string, families: Map<string, MetricFamily>): MetricFamily | null {
  const direct = families.get(sample);
  if (direct && direct.type !== 'histogram') return direct;
  for (const suf of ['_bucket', '_sum', '_count']) {
    if (!sample.endsWith(suf)) continue;
    const f = families.get(sample.slice(0, -suf.length));
    if (f && (f.type === 'histogram' || (f.type === 'summary' && suf !== '_bucket'))) return f;
  }
  return null;
}

/** Parses a label set starting right after `{`; returns the labels and the index after `}`. */
function parseLabels(line: string, i: number, where: string): { labels: Record<string, string>; end: number } {
  const labels: Record<string, string> = {};
  for (;;) {
    if (line[i] === '}') return { labels, end: i + 1 };
    const m = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(line.slice(i));
    if (!m) throw new Error(`${where}: bad label name at column ${i}`);
    const name = m[0];
    if (name.startsWith('__')) throw new Error(`${where}: reserved label name ${name}`);
    if (name in labels) throw new Error(`${where}: label ${name} twice`);
    i += name.length;
    if (line[i] !== '=' || line[i + 1] !== '"') throw new Error(`${where}: expected ="…" after label ${name}`);
    i += 2;
    let v = '';
    for (;;) {
      const c = line[i];
      if (c === undefined) throw new Error(`${where}: unterminated label value`);
      if (c === '"') break;
      if (c === '\\') {
        const n = line[i + 1];
        if (n === '\\') v += '\\';
        else if (n === '"') v += '"';
        else if (n === 'n') v += '\n';
        else throw new Error(`${where}: invalid escape \\${n ?? ''} in label value`);
        i += 2;
        continue;
      }
      v += c;
      i++;
    }
    labels[name] = v;
    i++;
    if (line[i] === ',') i++;
    else if (line[i] !== '}') throw new Error(`${where}: expected , or } after label ${name}`);
  }
}

export function parseExposition(text: string): Map<string, MetricFamily> {
  if (text.length > 0 && !text.endsWith('\n')) throw new Error('the exposition must end with a newline');
  const families = new Map<string, MetricFamily>();
  const finished = new Set<string>();
  const seen = new Set<string>();
  let current: MetricFamily | null = null;
  const lines = text.split('\n');
  lines.pop();
  lines.forEach((line, k) => {
    const where = `line ${k + 1}`;
    if (/^\s*$/.test(line)) return;
    if (line.startsWith('#')) {
      const m = /^#\s+(HELP|TYPE)\s+(\S+)(?:\s(.*))?$/.exec(line);
      if (!m) return; // a plain comment
      const [, kw, name, rest = ''] = m;
      if (!METRIC_NAME.test(name!)) throw new Error(`${where}: bad metric name ${name}`);
      let f = families.get(name!);
      if (f && finished.has(name!)) throw new Error(`${where}: ${kw} of ${name} after its samples ended (families must be contiguous)`);
      if (!f) {
        f = { name: name!, type: 'untyped', help: null, samples: [] };
        families.set(name!, f);
        (f as MetricFamily & { typed?: boolean }).typed = false;
      }
      if (current && current !== f) finished.add(current.name);
      current = f;
      if (kw === 'HELP') {
        if (f.help !== null) throw new Error(`${where}: second HELP for ${name}`);
        if (rest.replace(/\\[\\n]/g, '').includes('\\')) throw new Error(`${where}: invalid escape in HELP of ${name}`);
        f.help = rest.replace(/\\(\\|n)/g, (_, c: string) => (c === 'n' ? '\n' : '\\'));
      } else {
        const ff = f as MetricFamily & { typed?: boolean };
        if (ff.typed) throw new Error(`${where}: second TYPE for ${name}`);
        if (f.samples.length) throw new Error(`${where}: TYPE of ${name} after its first sample`);
        if (!(TYPES as readonly string[]).includes(rest.trim())) throw new Error(`${where}: unknown type ${rest}`);
        f.type = rest.trim() as MetricFamily['type'];
        ff.typed = true;
      }
      return;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(line);
    if (!m) throw new Error(`${where}: expected a metric name: ${JSON.stringify(line)}`);
    const name = m[1]!;
    let i = name.length;
    let labels: Record<string, string> = {};
    if (line[i] === '{') {
      const p = parseLabels(line, i + 1, where);
      labels = p.labels;
      i = p.end;
    }
    const tail = line.slice(i);
    const vm = /^[ \t]+(\S+)(?:[ \t]+(-?\d+))?[ \t]*$/.exec(tail);
    if (!vm) throw new Error(`${where}: expected "value [timestamp]" after ${name}: ${JSON.stringify(tail)}`);
    const value = parseFloatGo(vm[1]!, where);
    const f = familyOf(name, families);
    if (!f || !(f as MetricFamily & { typed?: boolean }).typed) throw new Error(`${where}: sample ${name} has no TYPE line before it`);
    if (finished.has(f.name)) throw new Error(`${where}: sample of ${f.name} after the family ended (families must be contiguous)`);
    if (current && current !== f) {
      finished.add(current.name);
      current = f;
    }
    current = f;
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    if (seen.has(key)) throw new Error(`${where}: duplicate sample ${key}`);
    seen.add(key);
    if (f.type === 'histogram' && name.endsWith('_bucket') && !('le' in labels)) throw new Error(`${where}: bucket without le`);
    if (f.type === 'counter' && !(value >= 0)) throw new Error(`${where}: counter ${name} is ${value}`);
    f.samples.push({ name, labels, value });
  });
  for (const f of families.values()) {
    if (!(f as MetricFamily & { typed?: boolean }).typed) throw new Error(`family ${f.name} has HELP but no TYPE`);
    delete (f as MetricFamily & { typed?: boolean }).typed;
    if (f.type !== 'histogram') continue;
    const series = new Map<string, { buckets: [number, number][]; sum?: number; count?: number }>();
    for (const s of f.samples) {
      const rest = Object.entries(s.labels).filter(([k]) => k !== 'le').sort();
      const key = JSON.stringify(rest);
      let e = series.get(key);
      if (!e) series.set(key, (e = { buckets: [] }));
      if (s.name.endsWith('_bucket')) e.buckets.push([parseFloatGo(s.labels['le']!, `${f.name} le`), s.value]);
      else if (s.name.endsWith('_sum')) e.sum = s.value;
      else if (s.name.endsWith('_count')) e.count = s.value;
    }
    for (const [key, e] of series) {
      const w = `histogram ${f.name}${key}`;
      if (e.sum === undefined || e.count === undefined) throw new Error(`${w}: _sum or _count missing`);
      if (e.buckets.length === 0 || e.buckets[e.buckets.length - 1]![0] !== Infinity) throw new Error(`${w}: no +Inf bucket last`);
      for (let i = 1; i < e.buckets.length; i++) {
        if (!(e.buckets[i]![0] > e.buckets[i - 1]![0])) throw new Error(`${w}: le not increasing`);
        if (!(e.buckets[i]![1] >= e.buckets[i - 1]![1])) throw new Error(`${w}: buckets not cumulative`);
      }
      if (e.buckets[e.buckets.length - 1]![1] !== e.count) throw new Error(`${w}: +Inf bucket ${e.buckets[e.buckets.length - 1]![1]} ≠ _count ${e.count}`);
    }
  }
  return families;
}

/** The value of one sample (labels must match exactly); throws when absent. */
export function sampleValue(fams: Map<string, MetricFamily>, name: string, labels: Record<string, string> = {}): number {
  for (const f of fams.values()) {
    for (const s of f.samples) {
      if (s.name !== name) continue;
      const a = Object.entries(s.labels).sort();
      const b = Object.entries(labels).sort();
      if (JSON.stringify(a) === JSON.stringify(b)) return s.value;
    }
  }
  throw new Error(`no sample ${name}${JSON.stringify(labels)}`);
}
