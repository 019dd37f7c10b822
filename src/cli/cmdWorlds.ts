// qvla worlds: the closed-loop toy worlds (src/worlds) — list them, run their scripted experts, render a frame,
// record demonstrations for training (tools/train).
import { promises as fsp } from 'node:fs';
import * as nodePath from 'node:path';
import { QvlaTokenizer } from '../text/tokenizer.js';
import { findWorldSpecs, WORLD_SPECS, WORLD_NAMES, EVAL_SEED_BASE } from '../worlds/registry.js';
import { recordDemonstrations } from '../worlds/record.js';
import { encodeRgbPng, hstack } from '../worlds/png.js';
import type { WorldSpec } from '../worlds/types.js';
import {
  UsageError, formatHelp, getFlag, getNumber, getString, parseArgs, HELP_OPT, type CommandSpec, type Parsed,
} from './args.js';
import { defaultCheckpoint } from './common.js';
import { table } from './format.js';

const LEVELS = ['A', 'B', 'bimodal', 'all'] as const;
const SELECT_OPTS = [
  { name: 'world', type: 'string' as const, metavar: 'NAME', choices: [...WORLD_NAMES, 'all'], help: 'world', defaultText: 'all' },
  { name: 'embodiment', type: 'string' as const, metavar: 'NAME', help: 'embodiment (planar, arm2, rover, tracker)', defaultText: 'all of the world' },
  { name: 'level', type: 'string' as const, choices: LEVELS, help: 'level A (no colour binding), B (distractors) or the bimodal variant', defaultText: 'A' },
];

export const WORLDS_SPEC: CommandSpec = {
  name: 'worlds',
  usage: 'worlds <list|expert|show|record> [options]',
  summary: 'Closed-loop toy worlds (tabletop manipulation, navigation, ball trajectories): list, expert, show, record.',
  description: [
    'subcommands:',
    '  list      the worlds × embodiments × levels',
    '  expert    run the scripted expert (no GPU): success rate per world',
    '  show      render one observation (with the expert chunk drawn on it) to a PNG',
    '  record    record expert demonstrations (DART perturbations) as safetensors shards for tools/train',
    '',
    `Training seeds start at --seed-base (default 0); evaluation seeds start at ${EVAL_SEED_BASE} (src/worlds/README.md).`,
  ].join('\n'),
  options: [
    ...SELECT_OPTS,
    { name: 'episodes', type: 'int', metavar: 'N', min: 1, max: 10_000_000, help: 'episodes (expert, record)', defaultText: '100' },
    { name: 'seed', type: 'int', metavar: 'S', min: 0, max: 0xffffffff, help: 'seed (show)', defaultText: String(EVAL_SEED_BASE) },
    { name: 'seed-base', type: 'int', metavar: 'S', min: 0, max: 0xffffffff, help: 'first seed (expert, record)', defaultText: `0 for record, ${EVAL_SEED_BASE} for expert` },
    { name: 'out', type: 'string', metavar: 'PATH', help: 'record: output directory; show: the PNG file' },
    { name: 'tokenizer', type: 'string', metavar: 'FILE', help: 'tokenizer.json for the recorded prompt ids', defaultText: 'weights/tiny/tokenizer.json' },
    { name: 'no-dart', type: 'flag', help: 'record without perturbations' },
    { name: 'overwrite', type: 'flag', help: 'record: replace existing shards of the same embodiment and level' },
    { name: 'scale', type: 'int', metavar: 'K', min: 1, max: 8, help: 'show: upscale factor', defaultText: '3' },
    HELP_OPT,
  ],
  examples: [
    'qvla worlds list',
    'qvla worlds expert --episodes 200',
    'qvla worlds show --world nav --seed 7 --out nav.png',
    'qvla worlds record --world tabletop --embodiment planar --episodes 2000 --out data/worlds',
  ],
};

function selected(p: Parsed): WorldSpec[] {
  const world = getString(p, 'world') ?? 'all';
  const emb = getString(p, 'embodiment');
  const level = getString(p, 'level') ?? 'A';
  const specs = findWorldSpecs(world, emb, level === 'all' ? undefined : level);
  if (specs.length === 0) throw new UsageError(`qvla worlds: no world matches --world ${world}${emb ? ` --embodiment ${emb}` : ''} --level ${level}; see 'qvla worlds list'`);
  return specs;
}

function specName(s: WorldSpec): string {
  return `${s.world}/${s.embodiment}/${s.level}`;
}

export async function cmdWorlds(argv: string[]): Promise<number> {
  const sub = argv[0];
  if (sub === undefined || sub === '-h' || sub === '--help') {
    process.stdout.write(formatHelp(WORLDS_SPEC));
    return sub === undefined ? 2 : 0;
  }
  const p = parseArgs(WORLDS_SPEC, argv.slice(1));
  if (p.help) {
    process.stdout.write(formatHelp(WORLDS_SPEC));
    return 0;
  }
  switch (sub) {
    case 'list':
      process.stdout.write(`${table(['world', 'embodiment', 'level', 'max decisions'], WORLD_SPECS.map((s) => [s.world, s.embodiment, s.level, String(s.create(EVAL_SEED_BASE).maxDecisions)]))}\n`);
      return 0;
    case 'expert': {
      const n = getNumber(p, 'episodes') ?? 100;
      const base = getNumber(p, 'seed-base') ?? EVAL_SEED_BASE;
      const rows: string[][] = [];
      for (const s of selected(p)) {
        let ok = 0, decisions = 0;
        for (let e = 0; e < n; e++) {
          const w = s.create(base + e);
          while (!w.done) w.step(w.expert());
          ok += w.success ? 1 : 0;
          decisions += w.decisions;
        }
        rows.push([specName(s), String(n), String(ok), `${((100 * ok) / n).toFixed(1)} %`, (decisions / n).toFixed(1)]);
      }
      process.stdout.write(`${table(['world', 'episodes', 'successes', 'success', 'decisions/episode'], rows)}\n`);
      return 0;
    }
    case 'show': {
      const out = getString(p, 'out');
      if (!out) throw new UsageError('qvla worlds show: --out FILE.png is required');
      const s = selected(p)[0]!;
      const w = s.create(getNumber(p, 'seed') ?? EVAL_SEED_BASE);
      const scale = getNumber(p, 'scale') ?? 3;
      const obs = w.observe();
      const pic = w.picture(w.expert(), scale);
      await fsp.writeFile(out, encodeRgbPng(hstack([pic, ...obs.images.map((i) => i.image)])));
      process.stdout.write(`${specName(s)} seed ${w.seed}: "${obs.instruction}"${obs.state ? `, state [${obs.state.map((v) => v.toFixed(3)).join(', ')}]` : ''} → ${out}\n`);
      return 0;
    }
    case 'record': {
      const out = getString(p, 'out');
      if (!out) throw new UsageError('qvla worlds record: --out DIR is required');
      const tokPath = getString(p, 'tokenizer') ?? nodePath.join(defaultCheckpoint(), 'tokenizer.json');
      const tokenizer = QvlaTokenizer.fromJson(JSON.parse(await fsp.readFile(tokPath, 'utf8')), tokPath);
      const n = getNumber(p, 'episodes') ?? 100;
      const base = getNumber(p, 'seed-base') ?? 0;
      if (base + n > EVAL_SEED_BASE) throw new UsageError(`qvla worlds record: seeds ${base}…${base + n - 1} reach the evaluation range (≥ ${EVAL_SEED_BASE})`);
      for (const s of selected(p)) {
        const t0 = performance.now();
        const r = await recordDemonstrations(s, {
          episodes: n, seedBase: base, dart: !getFlag(p, 'no-dart'), out, tokenizer, overwrite: getFlag(p, 'overwrite'),
          limits: { hMax: 16, kMax: 16, sMax: 16 },
          onEpisode: (d, total) => {
            if (d % 50 === 0 || d === total) process.stderr.write(`\r${specName(s)}: ${d}/${total} episodes`);
          },
        });
        process.stderr.write('\n');
        process.stdout.write(`${specName(s)}: ${r.episodes} episodes (${r.successes} successes under perturbation), ${r.samples} samples, ${r.files.length} shard(s), ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
      }
      return 0;
    }
    default:
      throw new UsageError(`qvla worlds: unknown subcommand ${JSON.stringify(sub)}; one of list, expert, show, record`);
  }
}
