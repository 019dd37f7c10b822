/**
 * Prompt builders: the TypeScript twins of tools/reference/qvla_ref/prompt.py (contract: weights/README.md
 * "The prompt"; docs/architecture.md §9, docs/action-decoder.md §11). Token ids must equal the Python reference exactly
 * (test/fixtures/prompts.json).
 *
 * Strings first, then ids: the text is built with ONE `<|image_pad|>` per image, encoded, and each pad id is then
 * expanded to that image's token count N = grid_t·grid_h·grid_w / merge². (Added tokens split the text before
 * BPE, so this equals encoding the text with N literal pads.) Special token strings are fixed by the template;
 * their ids always come from the tokenizer.
 *
 * Determinism: "trimmed" is String.prototype.trim(); numbers print as String(n) (an exponent form, e.g. 1e-7, is
 * refused like in the reference).
 */
import type { Embodiment } from '../policy/embodiments.js';
import type { QvlaTokenizer } from './tokenizer.js';
import { QvlaError } from '../util/errors.js';

export const IMAGE_PAD = '<|image_pad|>';
export const VIDEO_PAD = '<|video_pad|>';
export const VISION_START = '<|vision_start|>';
export const VISION_END = '<|vision_end|>';
export const IM_START = '<|im_start|>';
export const IM_END = '<|im_end|>';
export const THINK = '<think>';
export const THINK_END = '</think>';

export class PromptError extends QvlaError {
  constructor(message: string) {
    super(message, { code: 'prompt' });
    this.name = 'PromptError';
  }
}

/** What the embodiment text needs of an entry ({@link Embodiment} fits). */
export type EmbodimentPromptFields = Pick<Embodiment, 'name' | 'description' | 'cameras' | 'prompt'> & {
  taskType?: Embodiment['taskType'];
  control: Pick<Embodiment['control'], 'mode' | 'rateHz' | 'chunk'>;
  action: Pick<Embodiment['action'], 'names'>;
};

export interface PromptImage {
  /** Camera name shown before the image (action prompt only); `view{i}` when absent. */
  camera?: string | null;
  /** image_grid_thw[1], in patches. */
  gridH: number;
  /** image_grid_thw[2], in patches. */
  gridW: number;
  /** image_grid_thw[0]; 1 for an image (default). */
  gridT?: number;
}

export interface PromptOptions {
  /** spatial_merge_size (default 2). */
  mergeSize?: number;
  /** Context budget: a prompt longer than this is an error. */
  maxTokens?: number;
}

export interface ChatPromptOptions extends PromptOptions {
  /** Generation prompt `<think>\n` (true) or `<think>\n\n</think>\n\n` (false, default). */
  thinking?: boolean;
}

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
  /**
   * Number of images shown at the start of this turn (image blocks, then the text). When no message sets it,
   * all images go at the start of the last user turn.
   */
  images?: number;
}

export interface PromptResult {
  /** Token ids, each image pad expanded to its token count. */
  ids: Int32Array;
  /** 1 on image pads, 2 on video pads, 0 elsewhere (per id). */
  mmTokenTypeIds: Uint8Array;
  /** One run of image-pad ids per image, in order. */
  imagePadRuns: { start: number; count: number }[];
  /** The prompt text with ONE `<|image_pad|>` per image (as prompt.py's *_prompt_text). */
  text: string;
}

/** JavaScript String.prototype.trim (the reference's js_trim). */
export function jsTrim(s: string): string {
  return s.trim();
}

/** String(x) for the plain numbers of the embodiment text; exponent forms and non-finite values are refused. */
export function formatNumber(x: number): string {
  if (typeof x !== 'number') throw new PromptError(`expected a number, got ${typeof x}`);
  if (!Number.isFinite(x)) throw new PromptError(`non-finite number ${x}`);
  const s = String(x);
  if (/e/i.test(s)) throw new PromptError(`number ${s} needs exponent formatting; not supported in prompts`);
  return s;
}

/** The embodiment sentence of one entry (entry.prompt verbatim when it is a string). */
export function embodimentText(entry: EmbodimentPromptFields): string {
  if (typeof entry.prompt === 'string') return entry.prompt;
  const ctl = entry.control;
  const head = `Embodiment: ${entry.name}, ${entry.description}. Cameras: ${entry.cameras.join(', ')}. `;
  if ((entry.taskType ?? 'manipulation') === 'navigation') {
    return `${head}Control: ${ctl.mode}, ${formatNumber(ctl.chunk)} future waypoints (x forward, y left, yaw) ` +
      `in the current robot frame, meters/radians, ${formatNumber(ctl.rateHz)} Hz.`;
  }
  const names = entry.action.names;
  return `${head}Control: ${ctl.mode}, ${names.length}-D = [${names.join(', ')}], ${formatNumber(ctl.rateHz)} Hz, ` +
    `chunk ${formatNumber(ctl.chunk)}.`;
}

/** LLM tokens of one image: grid_t·grid_h·grid_w / merge². */
export function imageTokenCount(img: PromptImage, mergeSize = 2): number {
  const t = img.gridT ?? 1;
  const { gridH: h, gridW: w } = img;
  for (const [k, v] of [['gridT', t], ['gridH', h], ['gridW', w]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new PromptError(`image ${k} must be a positive integer, got ${String(v)}`);
  }
  if (!Number.isInteger(mergeSize) || mergeSize < 1) throw new PromptError(`mergeSize must be a positive integer, got ${mergeSize}`);
  if (h % mergeSize !== 0 || w % mergeSize !== 0) {
    throw new PromptError(`grid [${t}, ${h}, ${w}] not divisible by merge_size ${mergeSize}`);
  }
  return (t * h * w) / (mergeSize * mergeSize);
}

/** The action prompt text with one `<|image_pad|>` per image (prompt.py action_prompt_text). */
export function actionPromptText(entry: EmbodimentPromptFields, instruction: string, cameras: (string | null | undefined)[]): string {
  if (typeof instruction !== 'string') throw new PromptError(`instruction must be a string, got ${typeof instruction}`);
  const parts = [IM_START, 'user\n', embodimentText(entry), '\n'];
  cameras.forEach((cam, i) => {
    parts.push(`${cam ?? `view${i}`}: ${VISION_START}${IMAGE_PAD}${VISION_END}\n`);
  });
  parts.push(`Task: ${jsTrim(instruction)}${IM_END}\n${IM_START}assistant\n${THINK}\n\n${THINK_END}\n\n`);
  return parts.join('');
}

function stripThink(content: string): string {
  const k = content.lastIndexOf(THINK_END);
  if (k < 0) return content;
  return content.slice(k + THINK_END.length).replace(/^\n+/, '');
}

/** The chat prompt text with one `<|image_pad|>` per image (prompt.py chat_prompt_text). */
export function chatPromptText(messages: ChatMessage[], nImages: number, thinking = false): string {
  if (!Array.isArray(messages)) throw new PromptError('messages must be a list');
  if (!Number.isInteger(nImages) || nImages < 0) throw new PromptError(`image count must be a non-negative integer, got ${nImages}`);
  let nParts = 0;
  let anyPlaced = false;
  let lastUser = -1;
  messages.forEach((m, i) => {
    if (m === null || typeof m !== 'object') throw new PromptError(`messages[${i}] must be {role, content}`);
    if (m.role !== 'system' && m.role !== 'user' && m.role !== 'assistant') {
      throw new PromptError(`messages[${i}].role must be system, user or assistant, got ${JSON.stringify(m.role)}`);
    }
    if (typeof m.content !== 'string') throw new PromptError(`messages[${i}].content must be a string`);
    if (m.images !== undefined) {
      if (!Number.isInteger(m.images) || m.images < 0) throw new PromptError(`messages[${i}].images must be a non-negative integer, got ${m.images}`);
      anyPlaced = true;
      nParts += m.images;
    }
    if (m.role === 'user') lastUser = i;
  });
  if (anyPlaced && nParts !== nImages) throw new PromptError(`${nParts} image parts but ${nImages} images`);
  if (!anyPlaced && nImages > 0 && lastUser < 0) throw new PromptError('images need a user turn');
  const vision = VISION_START + IMAGE_PAD + VISION_END;
  const out: string[] = [];
  messages.forEach((m, i) => {
    if (m.role === 'system' && i !== 0) throw new PromptError('system message must be first');
    let s: string;
    if (anyPlaced) s = vision.repeat(m.images ?? 0) + m.content;
    else s = m.role === 'user' && i === lastUser ? vision.repeat(nImages) + m.content : m.content;
    if (m.role === 'assistant') s = stripThink(s);
    out.push(`${IM_START}${m.role}\n${jsTrim(s)}${IM_END}\n`);
  });
  out.push(`${IM_START}assistant\n`);
  out.push(thinking ? `${THINK}\n` : `${THINK}\n\n${THINK_END}\n\n`);
  return out.join('');
}

/** Encodes `text` and expands the k-th image pad to counts[k] copies. */
export function expandImagePads(tok: QvlaTokenizer, text: string, counts: number[], maxTokens?: number): PromptResult {
  const enc = tok.encode(text);
  const imageId = tok.specialIds.imagePad;
  const videoId = tok.specialIds.videoPad;
  let nPads = 0;
  let total = 0;
  for (const id of enc) {
    if (id === imageId) {
      if (nPads >= counts.length) throw new PromptError('more image pads in the prompt than images');
      total += counts[nPads++]!;
    } else {
      total++;
    }
  }
  if (nPads !== counts.length) throw new PromptError(`${nPads} image pads in the prompt for ${counts.length} images`);
  if (maxTokens !== undefined && total > maxTokens) {
    throw new PromptError(`prompt has ${total} tokens, over the context budget ${maxTokens}`);
  }
  const ids = new Int32Array(total);
  const mm = new Uint8Array(total);
  const runs: { start: number; count: number }[] = [];
  let p = 0;
  let k = 0;
  for (const id of enc) {
    if (id === imageId) {
      const n = counts[k++]!;
      ids.fill(imageId, p, p + n);
      mm.fill(1, p, p + n);
      runs.push({ start: p, count: n });
      p += n;
    } else {
      ids[p] = id;
      if (id === videoId) mm[p] = 2;
      p++;
    }
  }
  return { ids, mmTokenTypeIds: mm, imagePadRuns: runs, text };
}

function checkBudget(opts: PromptOptions | undefined): void {
  const m = opts?.maxTokens;
  if (m !== undefined && (!Number.isInteger(m) || m < 1)) throw new PromptError(`maxTokens must be a positive integer, got ${m}`);
}

/**
 * The action prompt (one user turn + the non-thinking generation prompt) for an embodiment, an instruction and
 * the images in order (each with its camera name and patch grid).
 */
export function buildActionPrompt(
  tok: QvlaTokenizer,
  entry: EmbodimentPromptFields,
  instruction: string,
  images: PromptImage[],
  opts: PromptOptions = {},
): PromptResult {
  checkBudget(opts);
  const counts = images.map((im) => imageTokenCount(im, opts.mergeSize ?? 2));
  const text = actionPromptText(entry, instruction, images.map((im) => im.camera));
  return expandImagePads(tok, text, counts, opts.maxTokens);
}

/** The plain Qwen3.5 chat prompt (optional system turn, turns, generation prompt). */
export function buildChatPrompt(
  tok: QvlaTokenizer,
  messages: ChatMessage[],
  images: PromptImage[],
  opts: ChatPromptOptions = {},
): PromptResult {
  checkBudget(opts);
  const counts = images.map((im) => imageTokenCount(im, opts.mergeSize ?? 2));
  const text = chatPromptText(messages, counts.length, opts.thinking ?? false);
  return expandImagePads(tok, text, counts, opts.maxTokens);
}
