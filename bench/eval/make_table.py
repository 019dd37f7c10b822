#!/usr/bin/python3
"""Markdown tables from the `qvla eval --json` files in bench/eval/ (the README's and bench/RESULTS.md's results).

  /usr/bin/python3 bench/eval/make_table.py            # print the tables
  /usr/bin/python3 bench/eval/make_table.py --write    # replace the blocks between the markers in README.md and
                                                       # bench/RESULTS.md (<!-- eval-table -->, <!-- eval-steps -->,
                                                       # <!-- eval-levelb -->; a block without markers is left alone)
Main table: Level A, the checkpoint's default sampler (Euler x 10): policy, blind, swapped prompt, scripted expert.
"""
import glob
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
ORDER = [("tabletop", "planar"), ("tabletop", "arm2"), ("nav", "rover"), ("ball", "tracker")]


def load():
    rows = []
    for f in sorted(glob.glob(os.path.join(HERE, "*.json"))):
        with open(f) as fh:
            d = json.load(fh)
        for r in d.get("results", []):
            if "world" not in r:          # not a qvla eval file (e.g. vqa-A.json)
                continue
            r["_file"] = os.path.basename(f)
            rows.append(r)
    return rows


def wilson(k, n, z=1.959963984540054):
    if n == 0:
        return [0.0, 1.0]
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / d
    return [max(0.0, c - h), min(1.0, c + h)]


def merge(rs):
    """Rows of one setting from several runs on disjoint seed ranges (e.g. two 50-episode halves) -> one row:
    successes and episodes summed, Wilson interval recomputed, metrics averaged weighted by episodes."""
    if len(rs) == 1:
        return rs[0]
    seeds = sorted((r["seeds"][0], r["seeds"][1]) for r in rs)
    for (a0, a1), (b0, b1) in zip(seeds, seeds[1:]):
        if b0 <= a1:
            raise ValueError(f"overlapping seed ranges in {[r['_file'] for r in rs]}")
    n = sum(r["episodes"] for r in rs)
    k = sum(r["successes"] for r in rs)
    keys = set.intersection(*(set(r["metrics"]) for r in rs))
    out = dict(rs[0])
    out.update(episodes=n, successes=k, success_rate=k / n, ci95=wilson(k, n),
               metrics={m: sum(r["metrics"][m] * r["episodes"] for r in rs) / n for m in keys},
               _file="+".join(r["_file"] for r in rs), seeds=[seeds[0][0], seeds[-1][1]])
    return out


def pct(r):
    lo, hi = r["ci95"]
    return f"{100 * r['success_rate']:.0f} % [{100 * lo:.0f}, {100 * hi:.0f}]"


def cell(r, bold=False):
    if r is None:
        return "not run"
    s = pct(r)
    s = f"**{s}**" if bold else s
    return f"{s} (n={r['episodes']})"


def metrics(r):
    m = r["metrics"]
    if r["world"] == "ball":
        ratio = m["fde"] / m["cv_fde"]
        return f"ADE {m['ade']:.3f}, FDE {m['fde']:.3f} vs constant velocity {m['cv_ade']:.3f} / {m['cv_fde']:.3f} (FDE ratio {ratio:.3f})"
    if r["world"] == "nav":
        return f"SR {m['sr']:.2f}, OSR {m['osr']:.2f}, SPL {m['spl']:.2f}, stopped {m.get('stopped', float('nan')):.2f}"
    return f"{m['decisions']:.1f} decisions per episode"


def pick(rows, world, emb, level, cond, solver="euler", steps=10):
    """The setting's rows from every non-sweep file; a policy row repeated by an ablation-only run (same seeds) is
    counted once (the first file's)."""
    c = [r for r in rows if r["world"] == world and r["embodiment"] == emb and r["level"] == level
         and r["condition"].split(":")[0] == cond and "steps" not in r["_file"]
         and (cond == "expert" or (r["solver"] == solver and r["steps"] == steps))]
    uniq = {}
    for r in c:
        uniq.setdefault((r["condition"], tuple(r["seeds"])), r)
    c = list(uniq.values())
    return merge(c) if c else None


def main_table(rows, level="A"):
    out = ["| world / embodiment | trained policy | blind (black frames) | swapped prompt | scripted expert | metrics (policy; blind) |",
           "|---|---|---|---|---|---|"]
    for w, e in ORDER:
        p = pick(rows, w, e, level, "policy")
        if p is None:
            continue
        b = pick(rows, w, e, level, "blind")
        s = pick(rows, w, e, level, "prompt-as")
        x = pick(rows, w, e, level, "expert")
        sw = "not run" if s is None else f"{cell(s)} ({s['condition'].split(':')[1]}'s prompt)"
        met = metrics(p) + ("" if b is None else f"; blind: {metrics(b)}")
        out.append(f"| {w} / {e} | {cell(p, True)} | {cell(b)} | {sw} | {cell(x)} | {met} |")
    return "\n".join(out)


def steps_table(rows):
    sweep = [r for r in rows if "steps" in r["_file"] and r["condition"] == "policy"]
    if not sweep:
        return None
    ns = sorted({r["steps"] for r in sweep})
    out = ["| world / embodiment | solver | " + " | ".join(f"N={n} (NFE)" for n in ns) + " |",
           "|---|---|" + "---|" * len(ns)]
    for w, e in ORDER:
        for solver in ("euler", "heun", "midpoint", "rk4"):
            groups = {}
            for r in sweep:
                if r["world"] == w and r["embodiment"] == e and r["solver"] == solver:
                    groups.setdefault(r["steps"], []).append(r)
            if not groups:
                continue
            rs = {n: merge(g) for n, g in groups.items()}  # runs over disjoint seed ranges add up
            cells = []
            for n in ns:
                r = rs.get(n)
                if r is None:
                    cells.append("–")
                    continue
                c = f"{100 * r['success_rate']:.0f} % ({r['nfe']})"
                if w == "ball":
                    c += f", FDE {r['metrics']['fde']:.3f}"
                cells.append(c)
            n_ep = max(r["episodes"] for r in rs.values())
            out.append(f"| {w} / {e} ({n_ep} ep.) | {solver} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def replace_block(path, tag, body):
    with open(path) as f:
        text = f.read()
    pat = re.compile(rf"(<!-- {tag} -->\n)(.*?)(<!-- /{tag} -->)", re.S)
    if not pat.search(text):
        return False
    text = pat.sub(lambda m: m.group(1) + body + "\n" + m.group(3), text)
    with open(path, "w") as f:
        f.write(text)
    return True


def main():
    rows = load()
    blocks = {"eval-table": main_table(rows, "A"), "eval-steps": steps_table(rows), "eval-levelb": main_table(rows, "B")}
    for k, v in blocks.items():
        print(f"<!-- {k} -->\n{v}\n")
    if "--write" in sys.argv:
        for path in (os.path.join(REPO, "README.md"), os.path.join(REPO, "bench/RESULTS.md")):
            for k, v in blocks.items():
                if v is not None and replace_block(path, k, v):
                    print(f"wrote {k} in {os.path.relpath(path, REPO)}")


if __name__ == "__main__":
    main()
