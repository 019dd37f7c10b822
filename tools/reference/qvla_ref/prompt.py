"""Prompt builders, exactly as defined in weights/README.md ("The prompt"), and mm_token_type_ids.

Strings first, then token ids: text is built with ONE <|image_pad|> per image, encoded with the checkpoint's
tokenizer, and each <|image_pad|> id is then expanded to N copies (N = grid_t*grid_h*grid_w / merge_size^2, i.e.
grid_h*grid_w/4 for one image). Because added tokens split the text before BPE, this equals encoding the text with
N literal pads. All special ids come from the tokenizer, none is hard-coded.

Determinism choices (the TypeScript side must do the same):
  - "trimmed" means JavaScript String.prototype.trim(): strips WhiteSpace + LineTerminator code points
    (TRIM_CHARS below; note U+FEFF is stripped, U+0085 and U+001C..U+001F are not - unlike Python's str.strip).
  - numbers in the embodiment text are formatted like JavaScript's String(number): integral values without a
    decimal point (50, 5), others in the shortest round-trip form (2.5, 0.1).
"""
import math

IMAGE_PAD = "<|image_pad|>"
VIDEO_PAD = "<|video_pad|>"
VISION_START = "<|vision_start|>"
VISION_END = "<|vision_end|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
THINK = "<think>"
THINK_END = "</think>"

# ECMAScript WhiteSpace (TAB, VT, FF, SP, NBSP, ZWNBSP, Zs) + LineTerminator (LF, CR, LS, PS)
TRIM_CHARS = ("\t\n\u000b\u000c\r \u00a0\u1680" + "".join(chr(c) for c in range(0x2000, 0x200B))
              + "\u2028\u2029\u202f\u205f\u3000\ufeff")


def js_trim(s):
    return s.strip(TRIM_CHARS)


def fmt_num(x):
    """String(x) of JavaScript for the plain numbers used here."""
    if isinstance(x, bool):
        raise TypeError("boolean where a number is expected")
    if isinstance(x, int):
        return str(x)
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"non-finite number {x}")
    if x.is_integer() and abs(x) < 1e21:
        return str(int(x))
    r = repr(x)  # shortest round-trip, same digits as JS for 1e-7 <= |x| < 1e21
    if "e" in r or "E" in r:
        raise ValueError(f"number {x} needs exponent formatting; not supported in prompts")
    return r


# ---------------------------------------------------------------------------------------------------------------
# embodiment text
# ---------------------------------------------------------------------------------------------------------------
def embodiment_text(entry):
    """The embodiment sentence of one embodiments.json entry (entry['prompt'] verbatim when it is a string)."""
    if isinstance(entry.get("prompt"), str):
        return entry["prompt"]
    name = entry["name"]
    desc = entry["description"]
    cams = ", ".join(entry["cameras"])
    ctl = entry["control"]
    head = f"Embodiment: {name}, {desc}. Cameras: {cams}. "
    if entry.get("task_type", "manipulation") == "navigation":
        return (head + f"Control: {ctl['mode']}, {fmt_num(ctl['chunk'])} future waypoints (x forward, y left, yaw) "
                f"in the current robot frame, meters/radians, {fmt_num(ctl['rate_hz'])} Hz.")
    names = entry["action"]["names"]
    return (head + f"Control: {ctl['mode']}, {len(names)}-D = [{', '.join(names)}], {fmt_num(ctl['rate_hz'])} Hz, "
            f"chunk {fmt_num(ctl['chunk'])}.")


# ---------------------------------------------------------------------------------------------------------------
# image token counts
# ---------------------------------------------------------------------------------------------------------------
def image_token_count(grid_thw, merge_size=2):
    """LLM tokens of one image: grid_t*grid_h*grid_w / merge_size^2 (grid in patches, as image_grid_thw)."""
    t, h, w = grid_thw
    n, r = divmod(t * h * w, merge_size * merge_size)
    if r or h % merge_size or w % merge_size:
        raise ValueError(f"grid {grid_thw} not divisible by merge_size {merge_size}")
    return n


def _norm_images(images):
    """[(camera|None, n)] from items that are (camera, n), {'camera', 'n_tokens'|'grid_thw'}, or plain n."""
    out = []
    for im in images:
        if isinstance(im, dict):
            n = im["n_tokens"] if "n_tokens" in im else image_token_count(im["grid_thw"], im.get("merge_size", 2))
            out.append((im.get("camera"), int(n)))
        elif isinstance(im, (tuple, list)):
            cam, n = im
            out.append((cam, int(n)))
        else:
            out.append((None, int(im)))
    for _, n in out:
        if n < 1:
            raise ValueError("an image needs at least one token")
    return out


def expand_image_pads(ids, counts, image_token_id):
    """Replace the k-th image_token_id in ids by counts[k] copies. The number of pads must equal len(counts)."""
    out = []
    k = 0
    for i in ids:
        if i == image_token_id:
            if k >= len(counts):
                raise ValueError("more image pads in the prompt than images")
            out.extend([image_token_id] * counts[k])
            k += 1
        else:
            out.append(i)
    if k != len(counts):
        raise ValueError(f"{k} image pads in the prompt for {len(counts)} images")
    return out


def mm_token_type_ids(ids, image_token_id, video_token_id=None):
    """1 on image pads, 2 on video pads (when video_token_id is given), 0 elsewhere."""
    return [1 if i == image_token_id else 2 if (video_token_id is not None and i == video_token_id) else 0
            for i in ids]


# ---------------------------------------------------------------------------------------------------------------
# action prompt
# ---------------------------------------------------------------------------------------------------------------
def action_prompt_text(entry, instruction, cameras):
    """Action prompt string with one <|image_pad|> per image. cameras: list of camera names (None -> view{i})."""
    parts = [IM_START, "user\n", embodiment_text(entry), "\n"]
    for i, cam in enumerate(cameras):
        parts.append(f"{cam if cam is not None else f'view{i}'}: {VISION_START}{IMAGE_PAD}{VISION_END}\n")
    parts.append(f"Task: {js_trim(instruction)}{IM_END}\n{IM_START}assistant\n{THINK}\n\n{THINK_END}\n\n")
    return "".join(parts)


def action_prompt(entry, instruction, cameras_with_token_counts, tok):
    """Token ids of the action prompt; each image's pad expanded to its token count.

    cameras_with_token_counts: list of (camera name or None, n_tokens) / dicts {camera, n_tokens | grid_thw}.
    tok: a qvla_ref.tokenizer.Tokenizer (or anything with encode(str) and token_to_id(str)).
    """
    ims = _norm_images(cameras_with_token_counts)
    text = action_prompt_text(entry, instruction, [c for c, _ in ims])
    image_id = tok.token_to_id(IMAGE_PAD)
    return expand_image_pads(tok.encode(text), [n for _, n in ims], image_id)


# ---------------------------------------------------------------------------------------------------------------
# chat prompt (plain Qwen3.5 template)
# ---------------------------------------------------------------------------------------------------------------
def _strip_think(content):
    # history assistant turns lose their <think>...</think> block (Qwen3.x template)
    if THINK_END in content:
        content = content.split(THINK_END)[-1].lstrip("\n")
    return content


def chat_prompt_text(messages, n_images=0, thinking=False, system=None):
    """Chat prompt string with one <|image_pad|> per image.

    messages: a string (one user turn) or a list of {role: system|user|assistant, content}. content is a string
      or a list of parts {type: 'image'} / {type: 'text', text}. With string contents only, the n_images image
      blocks go at the start of the LAST user turn ("per image, then the text"); with part lists, each image part
      is one image and n_images must match their number.
      Each turn's rendered content (image blocks, then text) is trimmed as a whole, like the template's |trim,
      so leading whitespace of a text that follows an image block is kept.
    system: optional system text (emitted first; an explicit messages[0] of role system is also accepted).
    thinking: generation prompt ends with "<think>\\n" (True) or "<think>\\n\\n</think>\\n\\n" (False, default).
    """
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    messages = list(messages)
    if system is not None:
        if messages and messages[0]["role"] == "system":
            raise ValueError("system given twice")
        messages = [{"role": "system", "content": system}] + messages
    n_parts = sum(1 for m in messages if isinstance(m["content"], list)
                  for p in m["content"] if p.get("type") in ("image", "image_url"))
    last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=-1)
    if n_parts and n_parts != n_images:
        raise ValueError(f"{n_parts} image parts but {n_images} images")
    if not n_parts and n_images and last_user < 0:
        raise ValueError("images need a user turn")
    vision = VISION_START + IMAGE_PAD + VISION_END
    out = []
    for i, m in enumerate(messages):
        role, content = m["role"], m["content"]
        if role == "system" and i != 0:
            raise ValueError("system message must be first")
        if isinstance(content, list):
            s = "".join(vision if p.get("type") in ("image", "image_url") else p["text"] for p in content)
        else:
            s = content
            if role == "user" and i == last_user and not n_parts:
                s = vision * n_images + s
        if role == "assistant":
            s = _strip_think(s)
        out.append(f"{IM_START}{role}\n{js_trim(s)}{IM_END}\n")
    out.append(f"{IM_START}assistant\n")
    out.append(f"{THINK}\n" if thinking else f"{THINK}\n\n{THINK_END}\n\n")
    return "".join(out)


def chat_prompt(messages, images, thinking=False, system=None, tok=None):
    """Token ids of the chat prompt. images: per image its token count (int), (None, n), or {grid_thw}."""
    if tok is None:
        raise ValueError("chat_prompt needs tok=")
    counts = [n for _, n in _norm_images(images)]
    text = chat_prompt_text(messages, len(counts), thinking=thinking, system=system)
    return expand_image_pads(tok.encode(text), counts, tok.token_to_id(IMAGE_PAD))
