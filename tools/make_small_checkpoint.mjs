#!/usr/bin/env node
// Generates the random-weight "small" benchmark checkpoint (Qwen3.5-0.8B-shaped VLM with the tiny tokenizer's
// vocabulary + a small DiT; src/bench/makeCheckpoint.ts) into a directory. `qvla bench e2e` does this on demand
// into os.tmpdir()/qvla-small (or --gen-dir); this script is for generating it elsewhere or from another config.
// DIR must be new, empty, or a directory this generator made (it carries qvla-bench-checkpoint.json); any other
// directory is refused and left untouched.
//
// usage: node tools/make_small_checkpoint.mjs [DIR] [--seed N] [--dtype bf16|f32] [--config CONFIG.json]
//                                             [--shard-mb MB (0: one file)] [--force (regenerate even if up to date)]
// Needs the compiled sources (npm run build).
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const mod = new URL('../dist/src/bench/makeCheckpoint.js', import.meta.url);
if (!existsSync(fileURLToPath(mod))) {
  console.error('not built yet: run `npm run build` first');
  process.exit(2);
}
const { ensureSmallCheckpoint, defaultSmallDir } = await import(mod.href);

const args = process.argv.slice(2);
let dir = defaultSmallDir();
const opts = { log: (l) => console.log(l) };
let force = false;
for (let k = 0; k < args.length; k++) {
  const a = args[k];
  const val = () => {
    const v = args[++k];
    if (v === undefined) throw new Error(`${a} needs a value`);
    return v;
  };
  if (a === '--seed') opts.seed = Number(val());
  else if (a === '--dtype') opts.dtype = val();
  else if (a === '--config') opts.configJson = JSON.parse(readFileSync(val(), 'utf8'));
  else if (a === '--shard-mb') opts.shardBytes = Number(val()) * 2 ** 20;
  else if (a === '--force') force = true;
  else if (a === '-h' || a === '--help') {
    console.log(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(1, 10).map((l) => l.replace(/^\/\/ ?/, '')).join('\n'));
    process.exit(0);
  } else if (a.startsWith('-')) throw new Error(`unknown option ${a}`);
  else dir = a;
}
if (opts.dtype !== undefined && opts.dtype !== 'bf16' && opts.dtype !== 'f32') throw new Error('--dtype must be bf16 or f32');
let r;
try {
  r = await ensureSmallCheckpoint(dir, { ...opts, force });
} catch (e) {
  if (e?.name !== 'GeneratorDirError') throw e;
  console.error(e.message);
  process.exit(1);
}
console.log(r.generated ? `wrote ${r.dir}` : `${r.dir} is up to date (${(r.params / 1e6).toFixed(1)} M parameters); --force regenerates`);
