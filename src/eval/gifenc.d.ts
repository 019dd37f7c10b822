// Types for the parts of gifenc (https://github.com/mattdesl/gifenc, MIT; no bundled types) that
// src/eval/rollouts.ts uses. Node's ESM loader sees its CommonJS build (everything under `default`), bundlers
// and vitest its ESM build (named exports): rollouts.ts takes whichever namespace has the functions.
declare module 'gifenc' {
  export type Palette = number[][];
  export type Format = 'rgb565' | 'rgb444' | 'rgba4444';
  export interface GifStream {
    writeFrame(index: Uint8Array, width: number, height: number, opts?: { palette?: Palette; delay?: number; repeat?: number; first?: boolean }): void;
    finish(): void;
    bytes(): Uint8Array;
  }
  export function GIFEncoder(opts?: { auto?: boolean; initialCapacity?: number }): GifStream;
  export function quantize(rgba: Uint8Array | Uint8ClampedArray, maxColors: number, opts?: { format?: Format }): Palette;
  export function applyPalette(rgba: Uint8Array | Uint8ClampedArray, palette: Palette, format?: Format): Uint8Array;
  const _default: unknown;
  export default _default;
}
