// Dependency-free plotting: build a Scene with the charts, write it as SVG or PNG.
import { promises as fsp } from 'node:fs';
import * as nodePath from 'node:path';
import { renderSvg } from './svg.js';
import { renderPng } from './raster.js';
import type { Scene } from './scene.js';

export {
  channelChart, navigationChart, panelChart, niceTicks, formatTick,
  type ChannelChartInput, type NavChartInput, type NavWaypoint, type Panel, type PanelChartInput, type Series,
} from './charts.js';
export { stepsChart } from './stepsChart.js';
export { rateChart, type RateChartInput, type RatePoint, type RateSeries } from './rateChart.js';
export { renderSvg } from './svg.js';
export { renderPng, rasterize, Raster } from './raster.js';
export type { Scene, Item, Color } from './scene.js';

export type PlotFormat = 'png' | 'svg';

/** The format a path's extension names, or null. */
export function plotFormat(path: string): PlotFormat | null {
  const ext = nodePath.extname(path).toLowerCase();
  return ext === '.png' ? 'png' : ext === '.svg' ? 'svg' : null;
}

export function renderPlot(scene: Scene, format: PlotFormat): Uint8Array | string {
  return format === 'png' ? renderPng(scene) : renderSvg(scene);
}

/** Writes the scene to `path` (.png or .svg). */
export async function writePlot(path: string, scene: Scene): Promise<void> {
  const f = plotFormat(path);
  if (!f) throw new Error(`plot file must end in .png or .svg: ${path}`);
  await fsp.writeFile(path, renderPlot(scene, f));
}
