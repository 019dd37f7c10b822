// The dependency-free plotter: ticks, font, rasteriser, SVG/PNG output.
import { describe, expect, it } from 'vitest';
import { decode as decodePng, hasPngSignature } from 'fast-png';
import { channelChart, navigationChart, panelChart, niceTicks, formatTick, renderPng, renderSvg, Raster, plotFormat } from '../../src/plot/index.js';
import { GLYPH_COUNT, glyph, glyphPixel, textWidth } from '../../src/plot/font5x7.js';

describe('plot helpers', () => {
  it('niceTicks picks round steps covering the range', () => {
    expect(niceTicks(0, 1, 5)).toEqual({ ticks: [0, 0.2, 0.4, 0.6000000000000001, 0.8, 1], step: 0.2 });
    const t = niceTicks(-0.83, 1.42, 4);
    expect(t.step).toBe(1);
    expect(t.ticks[0]).toBeLessThanOrEqual(-0.83);
    expect(t.ticks[t.ticks.length - 1]).toBeGreaterThanOrEqual(1.42);
    expect(niceTicks(5, 5).ticks.length).toBeGreaterThan(1);
    expect(formatTick(0.5, 0.5)).toBe('0.5');
    expect(formatTick(0.25, 0.25)).toBe('0.25');
    expect(formatTick(3, 1)).toBe('3');
    expect(plotFormat('a/b.PNG')).toBe('png');
    expect(plotFormat('x.svg')).toBe('svg');
    expect(plotFormat('x.jpg')).toBeNull();
  });

  it('has a glyph for every printable ASCII character', () => {
    expect(GLYPH_COUNT).toBe(95);
    const lit = (ch: string) => glyph(ch).reduce((n, col) => n + col.toString(2).split('1').length - 1, 0);
    expect(lit(' ')).toBe(0);
    for (let c = 0x21; c <= 0x7e; c++) expect(lit(String.fromCharCode(c)), String.fromCharCode(c)).toBeGreaterThan(0);
    expect(glyph('é')).toEqual(glyph('?'));
    expect(glyphPixel(glyph('|'), 2, 0)).toBe(true);
    expect(textWidth('ab')).toBe(11);
  });

  it('rasterises lines and text', () => {
    const r = new Raster(20, 10, '#ffffff');
    r.polyline([[0, 5], [20, 5]], '#000000', 2);
    const px = (x: number, y: number) => r.data[4 * (y * 20 + x)]!;
    expect(px(10, 4)).toBeLessThan(40); // on the line
    expect(px(10, 0)).toBe(255); // far from it
    r.text(0, 0, 'I', 1, '#ff0000', 'start', 'top');
    expect([r.data[4 * 2], r.data[4 * 2 + 1]]).toEqual([255, 0]); // top of the I's stem (column 2)
    const png = decodePng(r.toPng());
    expect([png.width, png.height, png.channels]).toEqual([20, 10, 4]);
  });

  it('draws channel and navigation charts to SVG and PNG', () => {
    const scene = channelChart({ title: 'test <&>', names: ['a', 'b', 'c'], values: [0, 1, 2, 1, 2, 3], rows: 2 });
    const svg = renderSvg(scene);
    expect(svg).toContain('test &lt;&amp;&gt;');
    expect((svg.match(/<polyline /g) ?? []).length).toBeGreaterThanOrEqual(3);
    const png = renderPng(scene);
    expect(hasPngSignature(png)).toBe(true);
    const nav = navigationChart({ title: 'nav', waypoints: [{ x: 1, y: 0.5, yaw: 0.3 }, { x: 2, y: NaN, yaw: 0 }] });
    expect(decodePng(renderPng(nav)).width).toBe(nav.width);
    expect(renderSvg(nav)).toContain('y left (m)');
    expect(() => channelChart({ title: 'x', names: ['a'], values: [], rows: 2 })).toThrow();
  });

  it('draws stacked panels of named series on one x axis, y from 0 by default, skipping non-finite points', () => {
    const scene = panelChart({
      title: 'soak', xLabel: 'call',
      panels: [
        { label: 'latency (ms)', series: [{ name: 'p50', points: [[250, 400], [750, 410], [1250, NaN], [1750, 405]] }, { name: 'p99', points: [[250, 900], [750, 950]] }] },
        { label: 'memory (MB)', series: [{ name: 'RSS', points: [[0, 380], [1000, 381]] }], fromZero: false },
      ],
    });
    const svg = renderSvg(scene);
    for (const s of ['latency (ms)', 'memory (MB)', 'p50', 'p99', 'RSS', 'call']) expect(svg).toContain(s);
    // one polyline per series with ≥ 2 finite points (the NaN point is dropped, not drawn at 0)
    const lines = [...svg.matchAll(/<polyline points="([^"]+)"[^>]*stroke-width="2"/g)].map((m) => m[1]!.trim().split(/\s+/).length);
    expect(lines.filter((n) => n === 3)).toHaveLength(1);
    // y axis of the first panel starts at 0: a "0" tick label is drawn
    expect(svg).toMatch(/>0</);
    expect(decodePng(renderPng(scene)).height).toBe(scene.height);
    expect(() => panelChart({ title: 'x', xLabel: 'x', panels: [] })).toThrow(/at least one panel/);
  });
});
