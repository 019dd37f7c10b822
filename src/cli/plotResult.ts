// The plot of one act() result: navigation → waypoints on the ground plane; otherwise → one line plot per channel.
import type { ActResult } from '../policy/policy.js';
import type { Embodiment } from '../policy/embodiments.js';
import { channelChart, navigationChart, writePlot, plotFormat, type Scene } from '../plot/index.js';
import { UsageError } from './args.js';

export function resultScene(r: ActResult, emb: Embodiment, instruction: string): Scene {
  const a = r.actions;
  const subtitle = `${emb.name}: "${instruction.length > 60 ? `${instruction.slice(0, 57)}...` : instruction}"  ${r.solver} x ${r.steps}, seed ${r.seed}`;
  if (emb.taskType === 'navigation' && a.waypoints) {
    return navigationChart({ title: `${emb.key}: ${a.rows} waypoints (robot frame)`, subtitle, waypoints: a.waypoints });
  }
  return channelChart({
    title: `${emb.key}: ${a.rows} x ${a.dims} actions at ${emb.control.rateHz} Hz`,
    subtitle,
    names: a.names,
    values: a.actions,
    rows: a.rows,
    xLabel: 'step',
  });
}

export function checkPlotPaths(paths: string[]): void {
  for (const p of paths) {
    if (!plotFormat(p)) throw new UsageError(`--plot ${p}: the file name must end in .png or .svg`);
  }
}

export async function writeResultPlots(paths: string[], r: ActResult, emb: Embodiment, instruction: string): Promise<void> {
  if (paths.length === 0) return;
  const scene = resultScene(r, emb, instruction);
  for (const p of paths) await writePlot(p, scene);
}
