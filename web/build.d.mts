// Types of web/build.mjs (imported by tests and `qvla web --build`).
import type { BuildResult } from 'esbuild';
export declare const ROOT: string;
export declare const OUT_DIR: string;
/** kernels/**\/*.wgsl by file name without extension ("linear", "lib/x"). */
export declare function kernelSources(): Record<string, string>;
export declare function buildWeb(opts?: { outdir?: string; minify?: boolean; logLevel?: 'silent' | 'error' | 'warning' | 'info' }): Promise<BuildResult<{ metafile: true }>>;
