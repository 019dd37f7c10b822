#!/usr/bin/python3
"""Generate test/fixtures/prompts.json: prompt texts and token ids from the Python reference
(qvla_ref/prompt.py + qvla_ref/tokenizer.py on weights/tiny/tokenizer.json), for test/text/prompt.test.ts.

usage: /usr/bin/python3 tools/reference/make_prompt_fixtures.py [--repo ROOT] [--out test/fixtures/prompts.json]

Deterministic (same bytes every run). Needs only the stdlib and `regex` (apt-get install python3-regex).

Case format (what the TypeScript side replays):
  action: {kind, embodiment (key into "embodiments"), instruction, images: [{camera|null, gridH, gridW}], text, ids, mm}
  chat:   {kind, messages: [{role, content, images?}], images: [{gridH, gridW}], thinking, text, ids, mm}
  encode: {kind, text, ids, decoded}
A chat message's `images: k` means k image blocks before its text (Python: a part list of k image parts and one
text part); with no `images` anywhere, the images go at the start of the last user turn (Python: string contents).
"""
import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from qvla_ref.prompt import (action_prompt, action_prompt_text, chat_prompt, chat_prompt_text,  # noqa: E402
                             mm_token_type_ids)
from qvla_ref.tokenizer import Tokenizer  # noqa: E402


def load_embodiments(repo):
    out = {}
    with open(os.path.join(repo, "weights/tiny/embodiments.json")) as f:
        out.update(json.load(f)["embodiments"])
    with open(os.path.join(repo, "tools/reference/configs/fixture_b_embodiments.json")) as f:
        out.update(json.load(f)["embodiments"])
    # explicit prompt text (used verbatim) and a trajectory entry with float formatting
    explicit = json.loads(json.dumps(out["widowx"]))
    explicit["prompt"] = "Embodiment: a custom robot described by hand; 7-D actions."
    out["widowx_explicit"] = explicit
    traj = json.loads(json.dumps(out["nav"]))
    traj.update({"name": "Drone", "task_type": "trajectory", "description": "quadrotor, 3-D path",
                 "cameras": ["down", "fwd"],
                 "control": {"mode": "3-D points", "rate_hz": 0.1, "chunk": 10, "frame": "world"}})
    traj["action"] = {"names": ["x", "y", "z"], "relative": [False] * 3, "gripper": [], "binarize_gripper": False}
    traj["normalization"] = {"method": "min_max", "action": {"min": [-1.0, -2.0, 0.0], "max": [1.0, 2.0, 3.0]}}
    out["drone"] = traj
    return out


ACTION_CASES = [
    # (embodiment, instruction, [(camera, gridH, gridW)])
    ("widowx", "put the spoon on the towel", []),
    ("widowx", "  put the carrot in the pot \n", [("image_0", 4, 6)]),
    ("aloha", "fold the towel", [("cam_high", 4, 4), ("cam_left_wrist", 2, 6), ("cam_right_wrist", 6, 2)]),
    ("aloha", "\u00a0\ufeffpick up the cube\u3000\t", [(None, 2, 2), (None, 4, 2), ("cam_right_wrist", 2, 2)]),
    ("nav", "go to the kitchen and stop near the fridge", [("front", 4, 8)]),
    ("nav", "turn left", []),
    ("testbot", "Don't drop it! 3.14 <|im_end|> tricky", [("cam_a", 2, 2), ("cam_b", 2, 4)]),
    ("widowx_explicit", "wipe the table", [("image_0", 2, 2)]),
    ("drone", "fly over the red roof", [("down", 2, 2), ("fwd", 2, 2)]),
    ("testbot", "video pad inside <|video_pad|> the text", [(None, 2, 2)]),
    ("aloha", "", [("cam_high", 2, 2)]),
]

CHAT_CASES = [
    # (messages (TS form), [(gridH, gridW)], thinking)
    ([{"role": "user", "content": "Describe this image."}], [(4, 4)], False),
    ([{"role": "user", "content": "Describe this image."}], [(4, 4)], True),
    ([{"role": "user", "content": "Hello, who are you?"}], [], False),
    ([{"role": "user", "content": "Hello, who are you?"}], [], True),
    ([{"role": "system", "content": "You are a helpful robot.  "},
      {"role": "user", "content": "  What is on the table?\n"}], [(2, 4), (4, 2)], False),
    ([{"role": "system", "content": "Be brief."},
      {"role": "user", "content": "Count the cubes."},
      {"role": "assistant", "content": "<think>\nthere are three\n</think>\n\nThree."},
      {"role": "user", "content": "And the bowls?"}], [(2, 2)], True),
    ([{"role": "user", "content": " first picture", "images": 1},
      {"role": "assistant", "content": "A kitchen."},
      {"role": "user", "content": "and these two", "images": 2}], [(2, 2), (2, 4), (4, 4)], False),
    ([{"role": "user", "content": "text only turn"},
      {"role": "user", "content": "", "images": 1}], [(2, 2)], True),
]

ENCODE_CASES = [
    "Hello world!",
    "pick up the red cube and place it in the bowl",
    "  leading and trailing spaces   ",
    "one\ntwo\n\nthree\r\n",
    "numbers 0 7 42 3.14159 -2.5e-3",
    "机器人抓取红色方块 🤖👍🏽 café e\u0301",
    "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
    "Don't I'LL we're x'LLama",
]


def py_messages(messages):
    """TS-form messages -> prompt.py messages."""
    placed = any("images" in m for m in messages)
    out = []
    for m in messages:
        if placed:
            parts = [{"type": "image"}] * m.get("images", 0) + [{"type": "text", "text": m["content"]}]
            out.append({"role": m["role"], "content": parts})
        else:
            out.append({"role": m["role"], "content": m["content"]})
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", default=os.path.abspath(os.path.join(HERE, "..", "..")))
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    repo = a.repo
    out_path = a.out or os.path.join(repo, "test/fixtures/prompts.json")
    tok = Tokenizer.from_file(os.path.join(repo, "weights/tiny/tokenizer.json"))
    image_id = tok.token_to_id("<|image_pad|>")
    video_id = tok.token_to_id("<|video_pad|>")
    embs = load_embodiments(repo)
    cases = []
    for key, instr, ims in ACTION_CASES:
        entry = embs[key]
        counts = [{"camera": cam, "grid_thw": (1, h, w)} for cam, h, w in ims]
        ids = action_prompt(entry, instr, counts, tok)
        cases.append({"kind": "action", "embodiment": key, "instruction": instr,
                      "images": [{"camera": cam, "gridH": h, "gridW": w} for cam, h, w in ims],
                      "text": action_prompt_text(entry, instr, [cam for cam, _, _ in ims]),
                      "ids": ids, "mm": mm_token_type_ids(ids, image_id, video_id)})
    for messages, ims, thinking in CHAT_CASES:
        pm = py_messages(messages)
        counts = [{"grid_thw": (1, h, w)} for h, w in ims]
        ids = chat_prompt(pm, counts, thinking=thinking, tok=tok)
        cases.append({"kind": "chat", "messages": messages, "images": [{"gridH": h, "gridW": w} for h, w in ims],
                      "thinking": thinking, "text": chat_prompt_text(pm, len(ims), thinking=thinking),
                      "ids": ids, "mm": mm_token_type_ids(ids, image_id, video_id)})
    for text in ENCODE_CASES:
        ids = tok.encode(text)
        cases.append({"kind": "encode", "text": text, "ids": ids, "decoded": tok.decode(ids)})
    doc = {
        "generator": "tools/reference/make_prompt_fixtures.py",
        "tokenizer": "weights/tiny/tokenizer.json",
        "special_ids": {s: tok.token_to_id(s) for s in ["<|im_start|>", "<|im_end|>", "<|endoftext|>",
                                                         "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
                                                         "<|video_pad|>", "<think>", "</think>"]},
        "embodiments": embs,
        "cases": cases,
    }
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(out_path, "w") as f:
        # one case per line keeps the file small and diffable
        f.write("{\n")
        keys = list(doc)
        for i, k in enumerate(keys):
            if k == "cases":
                f.write(' "cases": [\n')
                f.write(",\n".join("  " + json.dumps(c, ensure_ascii=True, separators=(",", ":")) for c in cases))
                f.write("\n ]")
            else:
                f.write(f" {json.dumps(k)}: {json.dumps(doc[k], ensure_ascii=True, sort_keys=True, separators=(',', ':'))}")
            f.write(",\n" if i + 1 < len(keys) else "\n")
        f.write("}\n")
    print(f"{len(cases)} cases -> {out_path}")


if __name__ == "__main__":
    main()
