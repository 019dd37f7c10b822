// qvla chat: the VLM's text answer about images (policy.chat).
import { existsSync } from 'node:fs';
import type { ChatMessage } from '../text/prompt.js';
import { UsageError, getFlag, getList, getNumber, getString, DEVICE_INFO_OPT, HELP_OPT, type CommandSpec, type Parsed } from './args.js';
import { CHECKPOINT_OPT, F16_OPT, MAX_PIXELS_OPT, checkpointDir, isTinyCheckpoint, loadPolicy, policyOptions } from './common.js';

export const CHAT_SPEC: CommandSpec = {
  name: 'chat',
  usage: 'chat --prompt TEXT [--image PATH ...] [options]',
  summary: "Ask the vision-language model about images and print its answer (the VLM's language head; no actions).",
  positionals: 1,
  positionalHelp: '  PROMPT                    the question (instead of --prompt)',
  options: [
    CHECKPOINT_OPT,
    { name: 'image', type: 'list', metavar: 'PATH', help: 'an image (PNG/JPEG) shown before the prompt' },
    { name: 'prompt', short: 'p', type: 'string', metavar: 'TEXT', help: 'the question (required)' },
    { name: 'system', type: 'string', metavar: 'TEXT', help: 'a system message' },
    { name: 'max-tokens', type: 'int', metavar: 'N', min: 1, max: 8192, help: 'longest answer in tokens', defaultText: '128' },
    { name: 'temperature', type: 'number', metavar: 'T', min: 0, max: 10, help: 'sampling temperature; 0 = greedy', defaultText: '0' },
    { name: 'top-k', type: 'int', metavar: 'N', min: 0, help: 'sample from the N most likely tokens (0 = off)' },
    { name: 'top-p', type: 'number', metavar: 'P', min: 0, max: 1, help: 'nucleus sampling mass' },
    { name: 'seed', type: 'int', metavar: 'N', min: 0, max: 0xffffffff, help: 'sampling seed', defaultText: '0' },
    { name: 'thinking', type: 'flag', help: 'let the model think first (<think> … </think>)' },
    F16_OPT,
    MAX_PIXELS_OPT,
    { name: 'json', type: 'flag', help: 'print {"text", "tokens", "ms"} as JSON' },
    { name: 'quiet', short: 'q', type: 'flag', help: 'no progress output on stderr' },
    DEVICE_INFO_OPT,
    HELP_OPT,
  ],
  examples: ['qvla chat --image weights/tiny/samples/nav_front.png --prompt "What is in front of the robot?"'],
};

export async function cmdChat(p: Parsed): Promise<number> {
  const dir = checkpointDir(p);
  const prompt = getString(p, 'prompt') ?? p.positionals[0];
  if (getString(p, 'prompt') !== undefined && p.positionals.length > 0) throw new UsageError('qvla chat: give the prompt once (--prompt or a positional argument)');
  if (prompt === undefined) throw new UsageError('qvla chat: --prompt TEXT is required');
  const images = getList(p, 'image');
  for (const im of images) if (!existsSync(im)) throw new UsageError(`--image ${im}: no such file`);
  const messages: ChatMessage[] = [];
  const system = getString(p, 'system');
  if (system !== undefined) messages.push({ role: 'system', content: system });
  messages.push({ role: 'user', content: prompt });
  const json = getFlag(p, 'json');
  const policy = await loadPolicy(dir, policyOptions(p), getFlag(p, 'quiet'));
  try {
    if (isTinyCheckpoint(dir) && !json && !getFlag(p, 'quiet')) process.stderr.write('note: weights/tiny has random weights, so the answer is gibberish.\n');
    const t0 = performance.now();
    const opts = {
      maxNewTokens: getNumber(p, 'max-tokens') ?? 128,
      temperature: getNumber(p, 'temperature') ?? 0,
      seed: getNumber(p, 'seed') ?? 0,
      thinking: getFlag(p, 'thinking'),
      ...(getNumber(p, 'top-k') !== undefined ? { topK: getNumber(p, 'top-k') } : {}),
      ...(getNumber(p, 'top-p') !== undefined ? { topP: getNumber(p, 'top-p') } : {}),
    };
    const r = await policy.chat(messages, images, opts);
    const ms = performance.now() - t0;
    if (json) {
      process.stdout.write(`${JSON.stringify({ text: r.text, tokens: r.tokens.length, ms: Math.round(ms * 10) / 10 })}\n`);
    } else {
      process.stdout.write(`${r.text}\n`);
      if (!getFlag(p, 'quiet')) process.stderr.write(`(${r.tokens.length} tokens in ${(ms / 1000).toFixed(2)} s)\n`);
    }
    return 0;
  } finally {
    policy.destroy();
  }
}
