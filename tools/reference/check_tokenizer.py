#!/usr/bin/env python3
"""Compare qvla_ref.tokenizer (independent Python byte-level BPE) with @huggingface/tokenizers.

First run the JS side, which writes the ids it produces:
    node tools/tokenizer/crosscheck.mjs                 # tiny tokenizer -> out/tokenizer_crosscheck.json
    node tools/tokenizer/crosscheck.mjs --full          # full Qwen3 vocab + Qwen3.5 regex -> out/tokenizer_crosscheck_full.json
then:
    /usr/bin/python3 tools/reference/check_tokenizer.py [out/tokenizer_crosscheck.json] [--tokenizer PATH]
    /usr/bin/python3 tools/reference/check_tokenizer.py out/tokenizer_crosscheck_full.json

Exit status 0 iff every string pre-tokenizes to the same pieces, encodes to the same ids, decodes to the same
text, and the special-token ids agree.
"""
import argparse
import json
import os
import sys
import unicodedata

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from qvla_ref.tokenizer import Tokenizer  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ids_json", nargs="?", default="out/tokenizer_crosscheck.json")
    ap.add_argument("--tokenizer", default=None, help="tokenizer.json (default: the one named in ids_json)")
    args = ap.parse_args()

    with open(args.ids_json, encoding="utf-8") as f:
        ref = json.load(f)
    tok_path = args.tokenizer or ref["tokenizer"]
    tok = Tokenizer.from_file(tok_path)

    bad = 0
    if tok.vocab_size != ref["vocab_size"]:
        print(f"FAIL vocab_size: python {tok.vocab_size} vs js {ref['vocab_size']}")
        bad += 1
    for name, jid in ref["special_ids"].items():
        pid = tok.token_to_id(name)
        if pid != jid or tok.encode(name) != [jid] or tok.encode("abc" + name + "def").count(jid) != 1:
            print(f"FAIL special {name}: python {pid} / {tok.encode(name)} vs js {jid}")
            bad += 1

    n_tokens = 0
    for k, case in enumerate(ref["cases"]):
        text, js_ids = case["text"], case["ids"]
        if "pieces" in case:
            py_pieces = tok.pre_tokenize(text)
            if py_pieces != case["pieces"]:
                bad += 1
                print(f"FAIL pre-tokenize case {k} {text!r}\n  python: {py_pieces}\n  js:     {case['pieces']}")
        py_ids = tok.encode(text)
        n_tokens += len(py_ids)
        if py_ids != js_ids:
            bad += 1
            first = next((i for i, (a, b) in enumerate(zip(py_ids, js_ids)) if a != b), min(len(py_ids), len(js_ids)))
            print(f"FAIL ids case {k} {text!r}\n  first difference at {first}\n"
                  f"  python: {[tok.id_to_token(i) for i in py_ids[max(0, first - 3):first + 5]]}\n"
                  f"  js:     {case['tokens'][max(0, first - 3):first + 5]}")
            continue
        dec = tok.decode(py_ids)
        if dec != case["decoded"]:
            bad += 1
            print(f"FAIL decode case {k} {text!r}: python {dec!r} vs js {case['decoded']!r}")
        if dec != unicodedata.normalize("NFC", text) and all(i not in tok.special_ids for i in py_ids):
            bad += 1
            print(f"FAIL roundtrip case {k} {text!r} -> {dec!r}")

    total = len(ref["cases"])
    print(f"{tok_path}: vocab {tok.vocab_size}; {total} strings, {n_tokens} tokens; "
          f"{'all agree with ' + ref['library'] if not bad else str(bad) + ' mismatches'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
