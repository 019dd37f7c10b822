// The `qvla` command (bin/qvla.js calls run()). Exit codes: 0 ok, 1 runtime error, 2 usage error.
import { parseArgs, formatHelp, UsageError, getFlag, type CommandSpec, type Parsed } from './args.js';
import { printDeviceInfo } from './common.js';
import { oneLine } from './format.js';
import { qvlaVersion } from '../server/pkg.js';
import { RUN_SPEC, cmdRun } from './cmdRun.js';
import { DEMO_SPEC, cmdDemo } from './cmdDemo.js';
import { CHAT_SPEC, cmdChat } from './cmdChat.js';
import { INSPECT_SPEC, cmdInspect } from './cmdInspect.js';
import { SERVE_SPEC, cmdServe } from './cmdServe.js';
import { BENCH_SPEC, cmdBench } from './cmdBench.js';
import { WORLDS_SPEC, cmdWorlds } from './cmdWorlds.js';
import { EVAL_SPEC, cmdEval } from './cmdEval.js';
import { WEB_SPEC, cmdWeb } from './cmdWeb.js';
import { QUANTIZE_SPEC, cmdQuantize } from './cmdQuantize.js';

interface Command {
  spec: CommandSpec;
  run(p: Parsed): Promise<number>;
}

const COMMANDS: Record<string, Command> = {
  demo: { spec: DEMO_SPEC, run: cmdDemo },
  run: { spec: RUN_SPEC, run: cmdRun },
  chat: { spec: CHAT_SPEC, run: cmdChat },
  inspect: { spec: INSPECT_SPEC, run: cmdInspect },
  serve: { spec: SERVE_SPEC, run: cmdServe },
  eval: { spec: EVAL_SPEC, run: cmdEval },
  web: { spec: WEB_SPEC, run: cmdWeb },
  quantize: { spec: QUANTIZE_SPEC, run: cmdQuantize },
};

const ONE_LINERS: [string, string][] = [
  ['demo', 'act() on every embodiment of the bundled tiny checkpoint with its sample frames (what `npm start` shows)'],
  ['run', 'one observation → one action chunk: a table + latency breakdown, --json, --plot FILE.png|svg'],
  ['chat', 'ask the VLM about images; prints its text answer'],
  ['inspect', 'checkpoint summary without the GPU: config, tensors, parameters per module, dtypes, files, embodiments'],
  ['serve', 'openpi-compatible WebSocket + msgpack policy server (GET /healthz, /stats)'],
  ['bench', 'benchmarks: kernels | e2e | steps | batch | serve'],
  ['worlds', 'closed-loop toy worlds: list | expert | show | record (training data)'],
  ['eval', 'closed-loop evaluation on the toy worlds: success rate [95 % CI], SR/OSR/SPL, ADE/FDE; --json, --plot, --rollouts'],
  ['quantize', 'weight-only int8 / int4 copy of a checkpoint (docs/quantization.md)'],
  ['web', 'the browser playground: serve web/ + a checkpoint on localhost (episodes, chunk explorer, chat in a tab)'],
];

export function mainHelp(): string {
  return [
    `qvla ${qvlaVersion()} — the Qwen-VLA robot policy on WebGPU`,
    '',
    'usage: qvla <command> [options]',
    '',
    'commands:',
    ...ONE_LINERS.map(([n, s]) => `  ${n.padEnd(9)}${s}`),
    '',
    'global options:',
    '  --device-info  print the WebGPU adapter (description, features, limits) and exit',
    '  --version      print the version and exit',
    '  -h, --help     this help; `qvla <command> --help` for the options of a command',
    '',
    'exit codes: 0 ok, 1 runtime error, 2 usage error. QVLA_DEBUG=1 prints stack traces.',
    '',
  ].join('\n');
}

function errorLine(prefix: string, e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return `${prefix}: ${oneLine(msg)}`;
}

let epipeHooked = false;

/** Runs the command line (without `node` and the script) and resolves to the exit code. */
export async function run(argv: string[]): Promise<number> {
  if (!epipeHooked) {
    epipeHooked = true;
    // `qvla … | head` closes stdout early: stop quietly instead of crashing on EPIPE.
    process.stdout.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE') process.exit(0);
    });
  }
  const first = argv[0];
  let cmdName = '';
  try {
    if (first === undefined) {
      process.stderr.write(mainHelp());
      return 2;
    }
    if (first === '-h' || first === '--help' || first === 'help') {
      const topic = first === 'help' ? argv[1] : undefined;
      if (topic !== undefined && COMMANDS[topic]) process.stdout.write(formatHelp(COMMANDS[topic]!.spec));
      else if (topic === 'bench') process.stdout.write(formatHelp(BENCH_SPEC));
      else if (topic === 'worlds') process.stdout.write(formatHelp(WORLDS_SPEC));
      else if (topic !== undefined) throw new UsageError(`unknown command ${JSON.stringify(topic)}; see 'qvla --help'`);
      else process.stdout.write(mainHelp());
      return 0;
    }
    if (first === '--version' || first === '-V') {
      process.stdout.write(`${qvlaVersion()}\n`);
      return 0;
    }
    if (first === '--device-info') {
      if (argv.length > 1) throw new UsageError(`--device-info takes no other arguments (got ${argv.slice(1).join(' ')})`);
      return await printDeviceInfo();
    }
    if (first.startsWith('-')) throw new UsageError(`unknown global option ${first}; see 'qvla --help'`);
    cmdName = first;
    if (first === 'bench') return await cmdBench(argv.slice(1));
    if (first === 'worlds') return await cmdWorlds(argv.slice(1));
    const cmd = COMMANDS[first];
    if (!cmd) {
      const near = Object.keys(COMMANDS).concat('bench', 'worlds').find((c) => c.startsWith(first.slice(0, 2)));
      throw new UsageError(`unknown command ${JSON.stringify(first)}${near ? ` (did you mean ${near}?)` : ''}; see 'qvla --help'`);
    }
    const p = parseArgs(cmd.spec, argv.slice(1));
    if (p.help) {
      process.stdout.write(formatHelp(cmd.spec));
      return 0;
    }
    if (getFlag(p, 'device-info')) return await printDeviceInfo();
    return await cmd.run(p);
  } catch (e) {
    if (process.env['QVLA_DEBUG'] && e instanceof Error && e.stack) process.stderr.write(`${e.stack}\n`);
    if (e instanceof UsageError) {
      const m = e.message.startsWith('qvla') ? e.message : `qvla${cmdName ? ` ${cmdName}` : ''}: ${e.message}`;
      process.stderr.write(`${oneLine(m)}\n`);
      return 2;
    }
    process.stderr.write(`${errorLine(`qvla${cmdName ? ` ${cmdName}` : ''}: error`, e)}\n`);
    return 1;
  }
}
