// Evaluation output: the JSON document, the results table, the success-vs-NFE chart.
import { writeFileAtomic } from '../io/safetensorsWriter.js';
import { rateChart, type RateSeries } from '../plot/rateChart.js';
import type { Scene } from '../plot/scene.js';
import { prettyJson, table } from '../cli/format.js';
import { keyMetrics, type EvalRow } from './episodes.js';

export interface EvalDocument {
  checkpoint: string | null;
  /** the WebGPU adapter (null for expert-only runs) */
  adapter: string | null;
  /** ISO 8601 */
  date: string;
  command: string;
  results: EvalRow[];
}

export function evalDocument(o: { checkpoint: string | null; adapter: string | null; command: string; results: EvalRow[]; date?: Date }): EvalDocument {
  return { checkpoint: o.checkpoint, adapter: o.adapter, date: (o.date ?? new Date()).toISOString(), command: o.command, results: o.results };
}

/** Writes the document atomically (temporary file + rename). */
export async function writeEvalJson(path: string, doc: EvalDocument): Promise<void> {
  await writeFileAtomic(path, async (h) => {
    await h.writeFile(`${prettyJson(doc)}\n`);
  });
}

function pct(v: number): string {
  return `${(100 * v).toFixed(1)}`;
}

/** The results table: one line per row. */
export function resultsTable(rows: readonly EvalRow[]): string {
  const header = ['world', 'embodiment', 'level', 'condition', 'solver', 'steps', 'NFE', 'episodes', 'success %', '95 % CI', 'metrics', 'wall s', 'ep/s'];
  const body = rows.map((r) => [
    r.world, r.embodiment, r.level, r.condition, r.solver ?? '-', r.steps === null ? '-' : String(r.steps), String(r.nfe),
    String(r.episodes), pct(r.success_rate), `[${pct(r.ci95[0])}, ${pct(r.ci95[1])}]`, keyMetrics(r),
    r.wall_s.toFixed(1), r.wall_s > 0 ? (r.episodes / r.wall_s).toFixed(2) : '-',
  ]);
  return table(header, body, ['l', 'l', 'l', 'l', 'l', 'r', 'r', 'r', 'r', 'r', 'l', 'r', 'r']);
}

function worldName(r: EvalRow): string {
  return `${r.world}/${r.embodiment}/${r.level}`;
}

/**
 * Success rate vs network evaluations per decision: one line per solver (× world × condition when there are
 * several), Wilson 95 % whiskers, expert rows as grey reference lines.
 */
export function evalChart(rows: readonly EvalRow[], title = 'closed-loop success vs network evaluations'): Scene {
  const policyRows = rows.filter((r) => r.solver !== null);
  const worlds = new Set(rows.map(worldName));
  const conditions = new Set(policyRows.map((r) => r.condition));
  const groups = new Map<string, EvalRow[]>();
  for (const r of policyRows) {
    const name = [worlds.size > 1 ? worldName(r) : '', conditions.size > 1 ? r.condition : '', r.solver].filter(Boolean).join(' ');
    const g = groups.get(name) ?? [];
    g.push(r);
    groups.set(name, g);
  }
  const series: RateSeries[] = [...groups].map(([name, g]) => ({
    name,
    points: g.map((r) => ({ x: r.nfe, y: r.success_rate, lo: r.ci95[0], hi: r.ci95[1] })),
  }));
  const references = rows.filter((r) => r.solver === null).map((r) => ({ name: `expert${worlds.size > 1 ? ` ${worldName(r)}` : ''} ${pct(r.success_rate)} %`, y: r.success_rate }));
  const episodes = [...new Set(rows.map((r) => r.episodes))];
  const subtitle = `${worlds.size === 1 ? `${[...worlds][0]}, ` : ''}${episodes.length === 1 ? `${episodes[0]} episodes per point` : 'episodes per point vary'}; whiskers: Wilson 95 % interval`;
  return rateChart({ title, subtitle, series, references, xLabel: 'network evaluations per decision (NFE)' });
}
