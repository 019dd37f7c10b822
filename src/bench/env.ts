// Benchmark environment: pin lavapipe's worker count and describe the machine in every report header.
//
// `LP_NUM_THREADS` is read by Mesa's llvmpipe when the Vulkan device is created, i.e. at the first
// `Gpu.create()` of the process: pin it before that. An existing value is respected; the default is the
// number of cores Node may use. Its value changes lavapipe results a lot, so every report prints it.
import os from 'node:os';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { Gpu } from '../gpu/device.js';

/** Set `LP_NUM_THREADS` to the core count unless already set; returns the value in effect. */
export function pinLpNumThreads(): string {
  if (!process.env.LP_NUM_THREADS) process.env.LP_NUM_THREADS = String(os.availableParallelism());
  return process.env.LP_NUM_THREADS;
}

export interface BenchHeader {
  adapter: string;
  /** CPU implementation (lavapipe / SwiftShader): numbers are for relative comparison only */
  software: boolean;
  features: string[];
  lpNumThreads: string;
  node: string;
  date: string;
  cpu: string;
  cores: number;
  memoryGiB: number;
  platform: string;
  /** 1-minute load average when the header was taken: other processes share the cores lavapipe runs on */
  loadAvg: number;
}

export function benchHeader(gpu: Gpu): BenchHeader {
  const f = gpu.features;
  return machineHeader({
    adapter: gpu.description,
    software: gpu.isSoftware,
    features: [f.f16 ? 'shader-f16' : '', f.subgroups ? 'subgroups' : '', f.timestamps ? 'timestamp-query' : ''].filter(Boolean),
    lpNumThreads: process.env.LP_NUM_THREADS ?? '(unset)',
  });
}

/** The header of a run whose adapter is described by the caller (e.g. a server's metadata): the machine part added. */
export function machineHeader(a: Pick<BenchHeader, 'adapter' | 'software' | 'features' | 'lpNumThreads'>): BenchHeader {
  return {
    ...a,
    node: process.version,
    date: new Date().toISOString(),
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.availableParallelism(),
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    loadAvg: Math.round(os.loadavg()[0] * 100) / 100,
  };
}

export function formatHeader(h: BenchHeader): string[] {
  return [
    `adapter:        ${h.adapter}${h.software ? '  (software rasterizer: relative numbers only)' : ''}`,
    `features:       ${h.features.join(', ') || '-'}`,
    `LP_NUM_THREADS: ${h.lpNumThreads}`,
    `host:           ${h.cpu}, ${h.cores} cores, ${h.memoryGiB} GiB, ${h.platform}, load average ${h.loadAvg}`,
    `node:           ${h.node}`,
    `date:           ${h.date}`,
  ];
}

/** Plain-text table with right-aligned numeric columns (a column is numeric when every cell parses as one). */
export function formatTable(head: string[], rows: string[][]): string[] {
  const width = head.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
  const numeric = head.map((_, c) => rows.length > 0 && rows.every((r) => /^[-+]?[\d.,]+(%|e[-+]?\d+)?$|^-$|^n\/a$/.test(r[c] ?? '')));
  const cell = (s: string, c: number) => (numeric[c] ? s.padStart(width[c]) : s.padEnd(width[c]));
  return [
    head.map(cell).join('  ').trimEnd(),
    width.map((w) => '-'.repeat(w)).join('  '),
    ...rows.map((r) => r.map(cell).join('  ').trimEnd()),
  ];
}

/** 3 significant digits, no exponent for the ranges benchmarks print. */
export function fmt(x: number | undefined | null, digits = 3): string {
  if (x === undefined || x === null || !Number.isFinite(x)) return '-';
  if (x === 0) return '0';
  const a = Math.abs(x);
  if (a >= 10 ** digits) return x.toFixed(0);
  const d = Math.max(0, digits - 1 - Math.floor(Math.log10(a)));
  return x.toFixed(Math.min(d, 6));
}

/** Writes a benchmark report as indented JSON (creating the directory). */
export async function writeJsonReport(file: string, report: unknown): Promise<void> {
  await fsp.mkdir(path.dirname(path.resolve(file)), { recursive: true });
  await fsp.writeFile(file, JSON.stringify(report, null, 2) + '\n');
}

/** An error value: 3 significant digits, exponent below 1e-3. */
export function fe(x: number | null | undefined): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return '-';
  if (x !== 0 && Math.abs(x) < 1e-3) return x.toExponential(2);
  return fmt(x);
}

/** An order: 2 decimals. */
export function fo(x: number | null | undefined): string {
  return x === null || x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(2);
}
