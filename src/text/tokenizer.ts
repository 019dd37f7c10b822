/**
 * The checkpoint's byte-level BPE tokenizer (`tokenizer.json`), through `@huggingface/tokenizers`.
 *
 * Conventions (tools/tokenizer/README.md, cross-checked against tools/reference/qvla_ref/tokenizer.py):
 * - constructed with `clean_up_tokenization_spaces: false` (Qwen's tokenizer_config; the library default `true`
 *   would rewrite `" ."`, `" ?"`, `" 's"` … on decode);
 * - `encode` adds no BOS/EOS (Qwen's ByteLevel post-processor adds nothing; we also pass
 *   `add_special_tokens: false` so a different post-processor cannot add any);
 * - special ids are looked up by their token strings, never hard-coded.
 */
import { platform } from '../platform/index.js';
import { Tokenizer } from '@huggingface/tokenizers';
import { CheckpointError, describeValue } from '../io/errors.js';

/** Token strings of the specials qvla needs (all present in Qwen3.5 and weights/tiny tokenizers). */
export const SPECIAL_TOKENS = {
  imStart: '<|im_start|>',
  imEnd: '<|im_end|>',
  endOfText: '<|endoftext|>',
  visionStart: '<|vision_start|>',
  visionEnd: '<|vision_end|>',
  imagePad: '<|image_pad|>',
  videoPad: '<|video_pad|>',
  thinkStart: '<think>',
  thinkEnd: '</think>',
} as const;

export type SpecialTokenName = keyof typeof SPECIAL_TOKENS;
export type SpecialIds = Readonly<Record<SpecialTokenName, number>>;

export interface DecodeOptions {
  /** Drop special tokens (`<|im_end|>` …) from the text. Default false. */
  skipSpecialTokens?: boolean;
  /**
   * An id the tokenizer has no token for (e.g. a padded row of the model's vocab_size): 'throw' (default) a
   * RangeError naming it, or 'replace' it with U+FFFD in the text (for model output, which must never stop a reply).
   */
  unknown?: 'throw' | 'replace';
}

export class QvlaTokenizer {
  /** Ids of the special tokens. */
  readonly specialIds: SpecialIds;
  /** max token id + 1 over the model vocabulary and the added tokens (the config's vocab_size may be larger: padded). */
  readonly vocabSize: number;
  /** The file it was read from ('<memory>' for {@link QvlaTokenizer.fromJson}). */
  readonly file: string;

  private constructor(private readonly tok: Tokenizer, specialIds: SpecialIds, vocabSize: number, file: string) {
    this.specialIds = specialIds;
    this.vocabSize = vocabSize;
    this.file = file;
  }

  /** Reads `dir/tokenizer.json`. CheckpointError naming the file when it is missing or malformed. */
  static async load(dir: string): Promise<QvlaTokenizer> {
    const file = platform().fs.join(dir, 'tokenizer.json');
    let text: string;
    try {
      text = await platform().fs.readText(file);
    } catch (e) {
      throw new CheckpointError(`cannot read tokenizer: ${e instanceof Error ? e.message : String(e)}`, { file, cause: e });
    }
    let json: unknown;
    try {
      json = JSON.parse(text) as unknown;
    } catch (e) {
      throw new CheckpointError(`is not valid JSON (${e instanceof Error ? e.message : String(e)})`, { file, cause: e });
    }
    return QvlaTokenizer.fromJson(json, file);
  }

  /** Builds the tokenizer from an already parsed tokenizer.json object. */
  static fromJson(json: unknown, file = '<memory>'): QvlaTokenizer {
    if (json === null || typeof json !== 'object' || Array.isArray(json)) {
      throw new CheckpointError('must be a JSON object (a Hugging Face tokenizers file)', { file });
    }
    const o = json as Record<string, unknown>;
    const model = o['model'];
    if (model === null || typeof model !== 'object' || Array.isArray(model)) {
      throw new CheckpointError('model is missing or not an object', { file, field: 'model' });
    }
    const m = model as Record<string, unknown>;
    if (m['type'] !== undefined && m['type'] !== 'BPE') {
      throw new CheckpointError(`model.type must be "BPE", got ${JSON.stringify(m['type'])}`, { file, field: 'model.type' });
    }
    const vocab = m['vocab'];
    if (vocab === null || typeof vocab !== 'object' || Array.isArray(vocab)) {
      throw new CheckpointError('model.vocab is missing or not an object', { file, field: 'model.vocab' });
    }
    if (!Array.isArray(m['merges'])) {
      throw new CheckpointError('model.merges is missing or not a list', { file, field: 'model.merges' });
    }
    const added = o['added_tokens'] ?? [];
    if (!Array.isArray(added)) {
      throw new CheckpointError('added_tokens must be a list', { file, field: 'added_tokens' });
    }
    let maxId = -1;
    for (const [t, id] of Object.entries(vocab as Record<string, unknown>)) {
      // ids travel to the GPU as i32, so anything above 2^31−1 (e.g. 1e308, which is an "integer") is malformed.
      if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id > 0x7fffffff) {
        throw new CheckpointError(`model.vocab[${JSON.stringify(t)}] must be an integer id in [0, 2^31), got ${describeValue(id)}`, { file, field: 'model.vocab' });
      }
      if (id > maxId) maxId = id;
    }
    added.forEach((a: unknown, i: number) => {
      const at = a as Record<string, unknown> | null;
      if (at === null || typeof at !== 'object' || typeof at['content'] !== 'string' ||
          typeof at['id'] !== 'number' || !Number.isInteger(at['id']) || (at['id'] as number) < 0 || (at['id'] as number) > 0x7fffffff) {
        throw new CheckpointError(`added_tokens[${i}] must be {id: int, content: string, ...}`, { file, field: `added_tokens[${i}]` });
      }
      if ((at['id'] as number) > maxId) maxId = at['id'] as number;
    });
    let tok: Tokenizer;
    try {
      tok = new Tokenizer(o, { clean_up_tokenization_spaces: false, add_bos_token: false });
    } catch (e) {
      throw new CheckpointError(`cannot build the tokenizer: ${e instanceof Error ? e.message : String(e)}`, { file, cause: e });
    }
    const ids = {} as Record<SpecialTokenName, number>;
    for (const [name, s] of Object.entries(SPECIAL_TOKENS) as [SpecialTokenName, string][]) {
      const id = tok.token_to_id(s);
      if (id === undefined) {
        throw new CheckpointError(`special token ${JSON.stringify(s)} is not in the vocabulary`, { file });
      }
      ids[name] = id;
    }
    return new QvlaTokenizer(tok, Object.freeze(ids), maxId + 1, file);
  }

  /** Token ids of `text` (added/special tokens inside the text are recognised; no BOS/EOS). */
  encode(text: string): number[] {
    if (typeof text !== 'string') throw new TypeError(`encode: expected a string, got ${typeof text}`);
    if (text.length === 0) return [];
    return this.tok.encode(text, { add_special_tokens: false }).ids;
  }

  private mask: Uint8Array | null = null;

  /** 1 for every id below {@link vocabSize} that has a token, 0 for holes (built once, then shared: do not write). */
  decodableMask(): Uint8Array {
    if (this.mask === null) {
      const m = new Uint8Array(this.vocabSize);
      for (let id = 0; id < m.length; id++) m[id] = this.tok.id_to_token(id) !== undefined ? 1 : 0;
      this.mask = m;
    }
    return this.mask;
  }

  /** Whether `id` has a token (so {@link decode} can turn it into text). */
  hasId(id: number): boolean {
    return Number.isInteger(id) && id >= 0 && id < this.vocabSize && this.tok.id_to_token(id) !== undefined;
  }

  /**
   * Text of `ids` (byte-level decoded, invalid UTF-8 → U+FFFD). An id outside the vocabulary throws, or becomes
   * U+FFFD with `unknown: 'replace'`.
   */
  decode(ids: ArrayLike<number>, opts: DecodeOptions = {}): string {
    const list: number[] = Array.from(ids);
    const replace = opts.unknown === 'replace';
    for (const id of list) {
      if (!replace && !this.hasId(id)) {
        throw new RangeError(`decode: token id ${id} is not in the vocabulary (size ${this.vocabSize})`);
      }
    }
    if (list.length === 0) return '';
    const dec = (run: number[]): string => run.length === 0 ? '' :
      this.tok.decode(run, { skip_special_tokens: opts.skipSpecialTokens ?? false, clean_up_tokenization_spaces: false });
    if (!replace) return dec(list);
    // Decode each run of known ids, with U+FFFD for every unknown id between them.
    let text = '';
    let run: number[] = [];
    for (const id of list) {
      if (this.hasId(id)) {
        run.push(id);
      } else {
        text += `${dec(run)}\uFFFD`;
        run = [];
      }
    }
    return text + dec(run);
  }

  /** Id of one token string (vocabulary or added token). Throws naming the token when absent. */
  tokenId(token: string): number {
    const id = this.tok.token_to_id(token);
    if (id === undefined) throw new Error(`token ${JSON.stringify(token)} is not in the vocabulary of ${this.file}`);
    return id;
  }

  /** Token string of one id, or undefined. */
  idToToken(id: number): string | undefined {
    return this.tok.id_to_token(id);
  }
}
