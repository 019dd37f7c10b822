// The prompt-prefix cache of a policy (docs/architecture.md "Prompt-prefix cache"): the action prompt starts with
// text fixed per embodiment (src/text/prompt.ts actionPromptText: chat header, embodiment text, first camera
// name, <|vision_start|>) and the text decoder is causal, so the decoder state after that prefix (conv history +
// delta-rule state per Gated DeltaNet layer, K/V per full-attention layer, and the prefix rows' hidden states the
// action decoder reads as context) is computed once (QwenVLM.encodePrefix) and every later prompt with the same
// prefix runs only its suffix from it (TextDecoder.prefillRows with `prefixes`).
//
// Determinism: with the cache on, a prompt with a prefix is ALWAYS computed as (prefix alone, once) + suffix, on a
// hit and on a miss alike, so a row's bits never depend on the cache's history or on the batch around it. The
// prefix is every token before the first image pad (the prompt's first image); a prompt without images has no
// prefix (computed whole, from zero states, as with the cache off).
//
// Entries are keyed by the prefix token ids (the model and weights are fixed per device state: the cache lives in
// it and goes with it on device loss / recover(), src/policy/session.ts), kept least-recently-used within
// `maxEntries` and `maxBytes`, and trimmed at the end of an encoding pass (an entry used by the pass is never
// freed before its uses are encoded). Entry tensors are cache-owned (src/gpu/lifetimes.ts `cached`): live, not
// leaks.
import type { Gpu } from '../gpu/device.js';
import type { Tensor } from '../tensor.js';
import type { QwenVLM, PromptPrefix, VlmInput } from '../model/vlm.js';
import { PolicyError } from './errors.js';

export interface PrefixCacheOptions {
  /** Most entries kept (distinct prefixes: embodiments × prompt variants). Default 16. */
  maxEntries?: number;
  /** Most bytes of GPU memory kept in entries. Default 256 MiB. */
  maxBytes?: number;
}

export interface PrefixCacheStats {
  hits: number;
  misses: number;
  evictions: number;
  entries: number;
  bytes: number;
}

const DEFAULT_MAX_ENTRIES = 16;
const DEFAULT_MAX_BYTES = 256 * 2 ** 20;

/** Tokens of `input` before its first image pad (0 without images): the part fixed per embodiment. */
export function promptPrefixLength(input: VlmInput): number {
  const k = input.mmTokenTypeIds.indexOf(1);
  return k < 0 ? 0 : k;
}

function tensorsOf(p: PromptPrefix): Tensor[] {
  const out: Tensor[] = [p.hidden];
  for (const t of [...p.cache.conv, ...p.cache.recurrent]) if (t) out.push(t);
  for (const kv of p.cache.kv) if (kv) out.push(kv.k, kv.v);
  return out;
}

export class PrefixCache {
  private readonly entries = new Map<string, { prefix: PromptPrefix; bytes: number }>();
  private readonly maxEntries: number;
  private readonly maxBytes: number;
  private bytes = 0;
  readonly stats = { hits: 0, misses: 0, evictions: 0 };

  constructor(private readonly gpu: Gpu, private readonly vlm: QwenVLM, private readonly layer: number, opts: PrefixCacheOptions = {}) {
    this.maxEntries = opts.maxEntries ?? DEFAULT_MAX_ENTRIES;
    this.maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
    if (!Number.isInteger(this.maxEntries) || this.maxEntries < 0) throw new PolicyError(`must be a non-negative integer, got ${this.maxEntries}`, 'options.prefixCache.maxEntries');
    if (!(this.maxBytes >= 0)) throw new PolicyError(`must be a non-negative number, got ${this.maxBytes}`, 'options.prefixCache.maxBytes');
  }

  /**
   * The prefix state of each input (null: no prefix), computing the missing ones (encoded on the stream, alone).
   * Call `trim()` once the pass that uses them is encoded.
   */
  lookup(inputs: readonly VlmInput[]): { prefixes: (PromptPrefix | null)[]; hits: number; misses: number } {
    let hits = 0, misses = 0;
    const prefixes = inputs.map((input) => {
      const P = promptPrefixLength(input);
      if (P === 0) return null;
      const ids = input.ids.subarray(0, P);
      const key = ids.join(',');
      const e = this.entries.get(key);
      if (e) {
        this.entries.delete(key); // refresh LRU order
        this.entries.set(key, e);
        hits++;
        return e.prefix;
      }
      const prefix = this.vlm.encodePrefix(ids, this.layer);
      let bytes = 0;
      for (const t of tensorsOf(prefix)) {
        this.gpu.lifetimes.cached(t);
        bytes += t.byteLength;
      }
      this.entries.set(key, { prefix, bytes });
      this.bytes += bytes;
      misses++;
      return prefix;
    });
    this.stats.hits += hits;
    this.stats.misses += misses;
    return { prefixes, hits, misses };
  }

  /** Evicts least-recently-used entries beyond the bounds (after the pass using them was encoded). */
  trim(): void {
    for (const [key, e] of this.entries) {
      if (this.entries.size <= this.maxEntries && this.bytes <= this.maxBytes) break;
      this.entries.delete(key);
      this.free(e);
      this.stats.evictions++;
    }
  }

  get info(): PrefixCacheStats {
    return { ...this.stats, entries: this.entries.size, bytes: this.bytes };
  }

  private free(e: { prefix: PromptPrefix; bytes: number }): void {
    this.bytes -= e.bytes;
    if (!this.gpu.isLost) for (const t of tensorsOf(e.prefix)) t.release();
  }

  /** Frees every entry (destroy(), device loss / recover()). */
  clear(): void {
    for (const e of this.entries.values()) this.free(e);
    this.entries.clear();
  }
}
