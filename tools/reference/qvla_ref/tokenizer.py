"""Independent byte-level BPE tokenizer reading a Hugging Face tokenizer.json (Qwen-style).

Stdlib + the `regex` module only (Debian: apt-get install python3-regex). Written from the format, not from any
tokenizer library, so it can cross-check @huggingface/tokenizers (tools/reference/check_tokenizer.py).

Encoding pipeline (what tokenizer.json says for Qwen3 / Qwen3.5 and for weights/tiny/tokenizer.json):
  1. split the raw text on added tokens (normalized=false ones), leftmost-longest match; each match is one id;
  2. every other segment: normalizer (NFC), then split again on normalized=true added tokens (none in Qwen);
  3. pre-tokenizer: Split(regex, Isolated) -> pieces; ByteLevel: UTF-8 bytes of each piece mapped through the
     GPT-2 byte-to-unicode table (no prefix space, no extra regex);
  4. BPE per piece: start from single characters, repeatedly merge the adjacent pair with the lowest merge rank
     (leftmost on ties) until no mergeable pair remains; symbols -> ids through model.vocab;
  5. no BOS/EOS (ByteLevel post-processor adds nothing).
Decoding: id -> token string; ByteLevel decoder maps each char back to its byte (a token with a char outside the
table, e.g. none here, is taken as its UTF-8 bytes); the bytes are UTF-8 decoded with U+FFFD replacement.

Regex notes. The pattern is taken from tokenizer.json and translated the way @huggingface/tokenizers does it:
  - \\s / \\S -> \\p{White_Space} / \\P{White_Space} (Oniguruma's Unicode \\s; Python's and JS's \\s differ from it
    on U+001C..U+001F, U+0085, U+FEFF);
  - (?i:...) -> ASCII case-insensitive: each ASCII letter c becomes [cC]. Oniguruma (the Rust tokenizers crate)
    uses Unicode case folding there, so the only possible divergence from Rust is U+017F (long s) or U+212A
    (Kelvin) directly after an apostrophe; the JS library and this module agree.
"""
import json
import unicodedata

import regex


def bytes_to_unicode():
    """GPT-2 byte -> printable unicode char table (as a dict byte -> str)."""
    bs = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


BYTE_ENCODER = bytes_to_unicode()
BYTE_DECODER = {c: b for b, c in BYTE_ENCODER.items()}


def translate_pattern(pat):
    """Oniguruma-flavoured split regex -> Python `regex` pattern (see module docstring)."""
    out = []
    i = 0
    ci_depth = 0  # >0 while inside a (?i:...) group
    paren_stack = []
    n = len(pat)
    while i < n:
        c = pat[i]
        if c == "\\":
            nxt = pat[i + 1]
            if nxt == "s":
                out.append(r"\p{White_Space}")
            elif nxt == "S":
                out.append(r"\P{White_Space}")
            elif nxt in "pP" and i + 2 < n and pat[i + 2] == "{":
                j = pat.index("}", i)
                out.append(pat[i:j + 1])
                i = j + 1
                continue
            else:
                out.append(pat[i:i + 2])
            i += 2
            continue
        if pat.startswith("(?i:", i):
            paren_stack.append(True)
            ci_depth += 1
            out.append("(?:")
            i += 4
            continue
        if c == "(":
            paren_stack.append(False)
            out.append(c)
            i += 1
            continue
        if c == ")":
            if paren_stack.pop():
                ci_depth -= 1
            out.append(c)
            i += 1
            continue
        if ci_depth and c.isascii() and c.isalpha():
            out.append("[" + c.lower() + c.upper() + "]")
            i += 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _normalizer(cfg):
    if cfg is None:
        return lambda s: s
    t = cfg["type"]
    if t in ("NFC", "NFD", "NFKC", "NFKD"):
        return lambda s: unicodedata.normalize(t, s)
    if t == "Sequence":
        fs = [_normalizer(c) for c in cfg["normalizers"]]

        def seq(s):
            for f in fs:
                s = f(s)
            return s
        return seq
    raise NotImplementedError(f"normalizer {t}")


def _split_isolated(rx, text):
    """Split with behaviour Isolated: matches and the gaps between them are all pieces (empty ones dropped)."""
    pieces = []
    pos = 0
    for m in rx.finditer(text):
        if m.start() > pos:
            pieces.append(text[pos:m.start()])
        if m.end() > m.start():
            pieces.append(m.group())
        pos = m.end()
    if pos < len(text):
        pieces.append(text[pos:])
    return pieces


class Tokenizer:
    def __init__(self, tok):
        model = tok["model"]
        if model["type"] != "BPE":
            raise NotImplementedError(model["type"])
        if model.get("byte_fallback") or model.get("continuing_subword_prefix") or model.get("end_of_word_suffix"):
            raise NotImplementedError("byte_fallback / subword prefixes")
        self.vocab = dict(model["vocab"])
        self.merge_ranks = {}
        for r, m in enumerate(model["merges"]):
            a, b = m if isinstance(m, list) else m.split(" ")
            self.merge_ranks.setdefault((a, b), r)
        self.added = sorted(tok.get("added_tokens", []), key=lambda t: t["id"])
        for t in self.added:
            if t.get("single_word"):
                raise NotImplementedError("single_word added tokens")
        self.added_by_content = {t["content"]: t for t in self.added}
        self.id_to_tok = {i: s for s, i in self.vocab.items()}
        for t in self.added:
            self.id_to_tok[t["id"]] = t["content"]
        self.special_ids = {t["id"] for t in self.added if t.get("special")}
        self.normalize = _normalizer(tok.get("normalizer"))
        self._raw_added = self._alternation([t["content"] for t in self.added if not t.get("normalized")])
        self._norm_added = self._alternation([self.normalize(t["content"]) for t in self.added if t.get("normalized")])

        pre = tok.get("pre_tokenizer")
        pres = pre["pretokenizers"] if pre and pre["type"] == "Sequence" else ([pre] if pre else [])
        self.split_rx = None
        for p in pres:
            if p["type"] == "Split":
                if p.get("invert") or p.get("behavior", "Isolated") != "Isolated" or "Regex" not in p["pattern"]:
                    raise NotImplementedError("only Split(Regex, Isolated, invert=false)")
                if self.split_rx is not None:
                    raise NotImplementedError("two Split pre-tokenizers")
                self.split_pattern = p["pattern"]["Regex"]
                self.split_rx = regex.compile(translate_pattern(self.split_pattern))
            elif p["type"] == "ByteLevel":
                if p.get("add_prefix_space") or p.get("use_regex"):
                    raise NotImplementedError("ByteLevel with add_prefix_space/use_regex")
            else:
                raise NotImplementedError(p["type"])
        self._cache = {}

    @classmethod
    def from_file(cls, path):
        with open(path, "r", encoding="utf-8") as f:
            return cls(json.load(f))

    @staticmethod
    def _alternation(contents):
        if not contents:
            return None
        # longest first => leftmost-longest among alternatives that start at the same position
        alts = sorted(set(contents), key=lambda s: (-len(s), s))
        return regex.compile("|".join(regex.escape(s) for s in alts))

    # ---- vocabulary helpers -------------------------------------------------------------------------------
    @property
    def vocab_size(self):
        return max(self.id_to_tok) + 1

    def token_to_id(self, token):
        t = self.added_by_content.get(token)
        return t["id"] if t else self.vocab.get(token)

    def id_to_token(self, i):
        return self.id_to_tok.get(i)

    # ---- encoding -----------------------------------------------------------------------------------------
    def _bpe(self, word):
        cached = self._cache.get(word)
        if cached is not None:
            return cached
        syms = list(word)
        ranks = self.merge_ranks
        while len(syms) > 1:
            best, best_i = None, -1
            for i in range(len(syms) - 1):
                r = ranks.get((syms[i], syms[i + 1]))
                if r is not None and (best is None or r < best):
                    best, best_i = r, i
            if best is None:
                break
            syms[best_i:best_i + 2] = [syms[best_i] + syms[best_i + 1]]
        ids = []
        for s in syms:
            if s not in self.vocab:
                raise KeyError(f"BPE symbol {s!r} not in vocab (no unk token)")
            ids.append(self.vocab[s])
        self._cache[word] = ids
        return ids

    def _encode_plain(self, text):
        """Text with no added tokens in it (already normalized)."""
        pieces = _split_isolated(self.split_rx, text) if self.split_rx is not None else [text]
        ids = []
        for p in pieces:
            word = "".join(BYTE_ENCODER[b] for b in p.encode("utf-8"))
            ids.extend(self._bpe(word))
        return ids

    @staticmethod
    def _split_added(rx, text, table):
        """-> list of (is_added, str). Applies lstrip/rstrip of the matched tokens."""
        if rx is None:
            return [(False, text)]
        parts = []
        pos = 0
        for m in rx.finditer(text):
            if m.start() > pos:
                parts.append([False, text[pos:m.start()]])
            parts.append([True, m.group()])
            pos = m.end()
        if pos < len(text):
            parts.append([False, text[pos:]])
        for k, (is_added, s) in enumerate(parts):
            if not is_added:
                continue
            t = table[s]
            if t.get("lstrip") and k > 0 and not parts[k - 1][0]:
                parts[k - 1][1] = parts[k - 1][1].rstrip()
            if t.get("rstrip") and k + 1 < len(parts) and not parts[k + 1][0]:
                parts[k + 1][1] = parts[k + 1][1].lstrip()
        return [(a, s) for a, s in parts if a or s]

    def encode(self, text):
        ids = []
        norm_table = {self.normalize(t["content"]): t for t in self.added if t.get("normalized")}
        for is_added, seg in self._split_added(self._raw_added, text, self.added_by_content):
            if is_added:
                ids.append(self.added_by_content[seg]["id"])
                continue
            seg = self.normalize(seg)
            for is_added2, sub in self._split_added(self._norm_added, seg, norm_table):
                if is_added2:
                    ids.append(norm_table[sub]["id"])
                else:
                    ids.extend(self._encode_plain(sub))
        return ids

    def pre_tokenize(self, text):
        """NFC + regex split + byte-level map of `text` as a whole (added tokens are NOT split off here)."""
        text = self.normalize(text)
        pieces = _split_isolated(self.split_rx, text) if self.split_rx is not None else [text]
        return ["".join(BYTE_ENCODER[b] for b in p.encode("utf-8")) for p in pieces]

    def tokenize(self, text):
        return [self.id_to_tok[i] for i in self.encode(text)]

    # ---- decoding -----------------------------------------------------------------------------------------
    def decode(self, ids, skip_special_tokens=False):
        out = bytearray()
        for i in ids:
            if skip_special_tokens and i in self.special_ids:
                continue
            tok = self.id_to_tok[i]
            try:
                out.extend(bytes(BYTE_DECODER[c] for c in tok))
            except KeyError:
                out.extend(tok.encode("utf-8"))
        return out.decode("utf-8", errors="replace")


def load(path):
    return Tokenizer.from_file(path)
