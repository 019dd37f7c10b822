// Builds the browser bundle: web/src/main.ts (the playground, which imports the engine from src/) →
// dist/web/playground.js (ESM, with a source map). `npm run build:web`, or `import { buildWeb } from './build.mjs'`.
//
// Two things differ from the Node build, both done here so that src/ has one source of truth:
// - src/platform/default.js resolves to default.browser.ts (fetch + navigator.gpu instead of node:fs + Dawn);
// - `qvla:kernels` is generated from kernels/**/*.wgsl at build time: the same files Node reads at runtime.
// platform 'browser': any node:* import left in the graph fails the build (the check that nothing Node-only leaks).
import * as esbuild from 'esbuild';
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const OUT_DIR = path.join(ROOT, 'dist', 'web');
const KERNELS = path.join(ROOT, 'kernels');

/** kernels/**\/*.wgsl → { 'linear': source, 'lib/x': source } */
export function kernelSources() {
  const out = {};
  const walk = (dir, prefix) => {
    for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      if (e.isDirectory()) walk(path.join(dir, e.name), `${prefix}${e.name}/`);
      else if (e.name.endsWith('.wgsl')) out[`${prefix}${e.name.slice(0, -5)}`] = readFileSync(path.join(dir, e.name), 'utf8');
    }
  };
  walk(KERNELS, '');
  return out;
}

const qvlaBrowser = {
  name: 'qvla-browser',
  setup(build) {
    build.onResolve({ filter: /^qvla:kernels$/ }, () => ({ path: 'kernels', namespace: 'qvla-kernels' }));
    build.onLoad({ filter: /.*/, namespace: 'qvla-kernels' }, () => {
      const src = kernelSources();
      return {
        contents: `export default ${JSON.stringify(src)};`,
        loader: 'js',
        watchFiles: Object.keys(src).map((k) => path.join(KERNELS, `${k}.wgsl`)),
      };
    });
    build.onResolve({ filter: /^\.\/default\.js$/ }, (args) => {
      if (path.resolve(args.resolveDir) !== path.join(ROOT, 'src', 'platform')) return undefined;
      return { path: path.join(ROOT, 'src', 'platform', 'default.browser.ts') };
    });
  },
};

/** Builds dist/web/playground.js; resolves to esbuild's result (metafile included). */
export async function buildWeb({ outdir = OUT_DIR, minify = false, logLevel = 'warning' } = {}) {
  return esbuild.build({
    entryPoints: { playground: path.join(ROOT, 'web', 'src', 'main.ts') },
    outdir,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: ['es2022', 'chrome113'],
    sourcemap: true,
    minify,
    metafile: true,
    legalComments: 'none',
    logLevel,
    plugins: [qvlaBrowser],
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const t0 = performance.now();
  const r = await buildWeb({ minify: process.argv.includes('--minify') });
  const out = Object.entries(r.metafile.outputs).filter(([f]) => f.endsWith('.js'));
  for (const [f, o] of out) console.log(`${path.relative(ROOT, path.resolve(ROOT, f))}  ${(o.bytes / 1024).toFixed(0)} KiB`);
  console.log(`built in ${(performance.now() - t0).toFixed(0)} ms`);
}
