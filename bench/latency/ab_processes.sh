#!/bin/bash
# Alternating A/B of tiny act() (widowx, 10 Euler steps, stageTimings off), one process per build per round:
# base then new, new then base, … ($1 rounds × $2 calls each; BASE = the old build's worktree, built with
# `npx tsc -p tsconfig.json`; NEW = this one, built). Prints one line per process, then the medians.
# usage: BASE=/work/wt/lat-base bash bench/latency/ab_processes.sh 4 5
rounds=${1:-4}; calls=${2:-5}
out=$(mktemp)
for r in $(seq 1 "$rounds"); do
  if [ $((r % 2)) -eq 1 ]; then order="base new"; else order="new base"; fi
  for b in $order; do
    root=${BASE:-/work/wt/lat-base}; [ "$b" = new ] && root=${NEW:-.}
    echo "$b $(node bench/latency/one_build.mjs "$root" "$calls" 2>/dev/null | tail -1)" | tee -a "$out"
  done
done
node -e "
const d = { base: [], new: [] };
for (const l of require('fs').readFileSync(process.argv[1], 'utf8').trim().split('\n')) d[l.slice(0, l.indexOf(' '))].push(...JSON.parse(l.slice(l.indexOf(' ') + 1)));
const m = (a) => { a = [...a].sort((x, y) => x - y); const n = a.length; return n % 2 ? a[(n - 1) / 2] : (a[n / 2 - 1] + a[n / 2]) / 2; };
console.log(JSON.stringify({ calls: d.base.length, baseMedianMs: +m(d.base).toFixed(1), newMedianMs: +m(d.new).toFixed(1), speedup: +(m(d.base) / m(d.new)).toFixed(2) }));
" "$out"
rm -f "$out"
