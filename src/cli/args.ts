// A small declarative argument parser: `--name value`, `--name=value`, boolean flags, repeatable options,
// positionals, `--` to end options, `-h/--help`. Every problem is a UsageError (exit code 2).
import { QvlaError } from '../util/errors.js';


export class UsageError extends QvlaError {
  constructor(message: string) {
    super(message, { code: 'usage' });
    this.name = 'UsageError';
  }
}

export type OptType = 'string' | 'int' | 'number' | 'flag' | 'list';

export interface OptSpec {
  name: string;
  type: OptType;
  help: string;
  /** Placeholder in the help (default: derived from the type). */
  metavar?: string;
  /** Shown in the help as "(default: …)". Not applied by the parser (commands apply their own defaults). */
  defaultText?: string;
  choices?: readonly string[];
  min?: number;
  max?: number;
  short?: string;
}

export interface CommandSpec {
  name: string;
  summary: string;
  usage: string;
  description?: string;
  options: OptSpec[];
  /** Positional arguments allowed (max count; Infinity for any). Default 0. */
  positionals?: number;
  positionalHelp?: string;
  examples?: string[];
}

export type OptValue = string | number | boolean | string[];

export interface Parsed {
  opts: Map<string, OptValue>;
  positionals: string[];
  help: boolean;
}

export const HELP_OPT: OptSpec = { name: 'help', short: 'h', type: 'flag', help: 'show this help and exit' };
export const DEVICE_INFO_OPT: OptSpec = { name: 'device-info', type: 'flag', help: 'print the WebGPU adapter (description, features, limits) and exit' };

function editDistance(a: string, b: string): number {
  const d: number[] = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0]!;
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = d[j]!;
      d[j] = Math.min(d[j]! + 1, d[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return d[b.length]!;
}

function suggest(name: string, spec: CommandSpec): string {
  let best: string | null = null;
  let bestD = 3;
  for (const o of spec.options) {
    const dd = editDistance(name, o.name);
    if (dd < bestD) {
      bestD = dd;
      best = o.name;
    }
  }
  return best ? ` (did you mean --${best}?)` : '';
}

function convert(o: OptSpec, raw: string, cmd: string): OptValue {
  const where = `${cmd}: --${o.name}`;
  switch (o.type) {
    case 'int': {
      if (!/^[+-]?\d+$/.test(raw.trim())) throw new UsageError(`${where} needs an integer, got ${JSON.stringify(raw)}`);
      const v = Number(raw);
      if (!Number.isSafeInteger(v)) throw new UsageError(`${where}: ${raw} is out of range`);
      if (o.min !== undefined && v < o.min) throw new UsageError(`${where} must be ≥ ${o.min}, got ${v}`);
      if (o.max !== undefined && v > o.max) throw new UsageError(`${where} must be ≤ ${o.max}, got ${v}`);
      return v;
    }
    case 'number': {
      const v = raw.trim() === '' ? NaN : Number(raw);
      if (!Number.isFinite(v)) throw new UsageError(`${where} needs a number, got ${JSON.stringify(raw)}`);
      if (o.min !== undefined && v < o.min) throw new UsageError(`${where} must be ≥ ${o.min}, got ${v}`);
      if (o.max !== undefined && v > o.max) throw new UsageError(`${where} must be ≤ ${o.max}, got ${v}`);
      return v;
    }
    default:
      if (o.choices && !o.choices.includes(raw)) {
        throw new UsageError(`${where} must be one of ${o.choices.join(', ')}, got ${JSON.stringify(raw)}`);
      }
      return raw;
  }
}

/** Parses `argv` (the arguments after the command name). */
export function parseArgs(spec: CommandSpec, argv: string[], prog = 'qvla'): Parsed {
  const cmd = `${prog} ${spec.name}`.trim();
  const opts = new Map<string, OptValue>();
  const positionals: string[] = [];
  let help = false;
  const byName = new Map(spec.options.map((o) => [o.name, o]));
  const byShort = new Map(spec.options.filter((o) => o.short).map((o) => [o.short!, o]));
  let i = 0;
  let onlyPositionals = false;
  while (i < argv.length) {
    const a = argv[i++]!;
    if (onlyPositionals || a === '-' || !a.startsWith('-') || /^-\d/.test(a)) {
      positionals.push(a);
      continue;
    }
    if (a === '--') {
      onlyPositionals = true;
      continue;
    }
    let o: OptSpec | undefined;
    let inline: string | undefined;
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq >= 0 ? a.slice(2, eq) : a.slice(2);
      inline = eq >= 0 ? a.slice(eq + 1) : undefined;
      o = byName.get(name);
      if (!o) throw new UsageError(`${cmd}: unknown option --${name}${suggest(name, spec)}; see '${cmd} --help'`);
    } else {
      o = byShort.get(a.slice(1));
      if (!o) throw new UsageError(`${cmd}: unknown option ${a}; see '${cmd} --help'`);
    }
    if (o.name === 'help') {
      help = true;
      continue;
    }
    if (o.type === 'flag') {
      if (inline !== undefined) throw new UsageError(`${cmd}: --${o.name} is a flag and takes no value`);
      opts.set(o.name, true);
      continue;
    }
    let raw = inline;
    if (raw === undefined) {
      if (i >= argv.length) throw new UsageError(`${cmd}: --${o.name} needs a value (${o.metavar ?? o.type})`);
      const next = argv[i]!;
      if (next.startsWith('--') && next.length > 2) throw new UsageError(`${cmd}: --${o.name} needs a value (${o.metavar ?? o.type}), got the option ${next}`);
      raw = next;
      i++;
    }
    if (o.type === 'list') {
      const prev = (opts.get(o.name) as string[] | undefined) ?? [];
      prev.push(convert(o, raw, cmd) as string);
      opts.set(o.name, prev);
    } else {
      if (opts.has(o.name)) throw new UsageError(`${cmd}: --${o.name} is given twice`);
      opts.set(o.name, convert(o, raw, cmd));
    }
  }
  const maxPos = spec.positionals ?? 0;
  if (!help && positionals.length > maxPos) {
    throw new UsageError(
      maxPos === 0
        ? `${cmd}: unexpected argument ${JSON.stringify(positionals[0])}; see '${cmd} --help'`
        : `${cmd}: at most ${maxPos} positional argument(s), got ${positionals.length}`,
    );
  }
  return { opts, positionals, help };
}

function metavar(o: OptSpec): string {
  if (o.type === 'flag') return '';
  if (o.metavar) return ` ${o.metavar}`;
  if (o.choices) return ` ${o.choices.join('|')}`;
  return o.type === 'int' ? ' N' : o.type === 'number' ? ' X' : ' VALUE';
}

/** The `--help` text of a command. */
export function formatHelp(spec: CommandSpec, prog = 'qvla'): string {
  const lines: string[] = [];
  lines.push(`usage: ${prog} ${spec.usage}`.replace(/\s+$/, ''));
  lines.push('');
  lines.push(spec.summary);
  if (spec.description) {
    lines.push('');
    lines.push(spec.description);
  }
  if (spec.positionalHelp) {
    lines.push('');
    lines.push('arguments:');
    lines.push(spec.positionalHelp);
  }
  lines.push('');
  lines.push('options:');
  const heads = spec.options.map((o) => `${o.short ? `-${o.short}, ` : ''}--${o.name}${metavar(o)}${o.type === 'list' ? ' (repeatable)' : ''}`);
  const w = Math.min(34, Math.max(...heads.map((h) => h.length)) + 2);
  spec.options.forEach((o, k) => {
    const h = heads[k]!;
    const help = `${o.help}${o.defaultText !== undefined ? ` (default: ${o.defaultText})` : ''}`;
    if (h.length + 2 > w) {
      lines.push(`  ${h}`);
      lines.push(`  ${' '.repeat(w)}${help}`);
    } else {
      lines.push(`  ${h.padEnd(w)}${help}`);
    }
  });
  if (spec.examples && spec.examples.length > 0) {
    lines.push('');
    lines.push('examples:');
    for (const e of spec.examples) lines.push(`  ${e}`);
  }
  lines.push('');
  return lines.join('\n');
}

// ---- typed getters

export function getString(p: Parsed, name: string): string | undefined {
  const v = p.opts.get(name);
  return typeof v === 'string' ? v : undefined;
}

export function getNumber(p: Parsed, name: string): number | undefined {
  const v = p.opts.get(name);
  return typeof v === 'number' ? v : undefined;
}

export function getFlag(p: Parsed, name: string): boolean {
  return p.opts.get(name) === true;
}

export function getList(p: Parsed, name: string): string[] {
  const v = p.opts.get(name);
  return Array.isArray(v) ? v : [];
}

/** Parses "v1,v2,…" into finite numbers. */
export function parseNumberList(raw: string, what: string): number[] {
  const parts = raw.split(/[,\s]+/).filter((s) => s.length > 0);
  if (parts.length === 0) throw new UsageError(`${what} needs comma-separated numbers, got ${JSON.stringify(raw)}`);
  return parts.map((s, i) => {
    const v = Number(s);
    if (!Number.isFinite(v)) throw new UsageError(`${what}: value ${i} (${JSON.stringify(s)}) is not a finite number`);
    return v;
  });
}

/** Parses "n1,n2,…" into integers in [min, max] (e.g. `--batch 1,8,32`, `--clients 1,2,4`). */
export function parseIntList(raw: string, what: string, min = 1, max = Number.MAX_SAFE_INTEGER): number[] {
  const v = parseNumberList(raw, what);
  v.forEach((x, i) => {
    if (!Number.isInteger(x) || x < min || x > max) throw new UsageError(`${what}: value ${i} (${x}) must be an integer in [${min}, ${max}]`);
  });
  return v;
}
