#!/usr/bin/env bash
# One command for a machine with a real GPU adapter: tune, kernel bench, e2e at full size, rivals side by side.
#
#   bench/gpu/run.sh [--dry-run] [--out DIR] [--budget-s S]
#
# Steps (each one's stdout/stderr in DIR/<step>.txt, its JSON in DIR/<step>.json; a failed step is recorded and the
# script goes on):
#   device    qvla --device-info
#   tune      qvla tune --config full (Qwen3.5-4B + full DiT shapes; families linear, gated_delta_net chunk size,
#             attention prefill kernel) → DIR/tune.json, the table every later step reads (QVLA_TUNE_FILE); timings
#             of every candidate in DIR/tune-report.json
#   kernels   qvla bench kernels (every perf case of the op harness, measured peaks, % of peak)
#   e2e       a random-weight checkpoint at the full-size shapes (bf16, generated once into $QVLA_FULL_DIR,
#             default /tmp/qvla-full; vocabulary = the tiny tokenizer's), then qvla bench e2e --checkpoint it, f16
#             weights on the GPU; the small config as well
#   rivals    node bench/rivals/sidebyside.mjs (tfjs-webgpu, onnxruntime-web/-node if installed in bench/rivals)
#   summary   bench/gpu/summarize.mjs DIR → DIR/summary.txt + DIR/summary.json
# --dry-run: the same steps at reduced sizes (tiny/small configs, a few shape classes and cases, 1–2 reps) so
# the script can be checked on lavapipe in a few minutes; its output says DRY RUN everywhere.
# Budget: the full run is planned for < 8 minutes on a discrete GPU; each step has a timeout (the rest of
# --budget-s, default 480) so one slow step cannot eat the others.
# Needs: node ≥ 20, npm ci done, the engine built (it builds if dist/ is missing). Rivals: optional, installed with
# `npm install --prefix bench/rivals --ignore-scripts` beforehand (a GPU box may have no network).
set -uo pipefail
cd "$(dirname "$0")/../.."
DRY=0
OUT=""
BUDGET=480
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --out) OUT="$2"; shift ;;
    --budget-s) BUDGET="$2"; shift ;;
    -h|--help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[ -n "$OUT" ] || OUT="bench/out/gpu-$(date -u +%Y%m%dT%H%M%SZ)$([ $DRY = 1 ] && echo -dry)"
# Never write into a directory that already holds something (its tune.json, logs and results would be replaced).
if [ -d "$OUT" ] && [ -n "$(ls -A "$OUT")" ]; then echo "bench/gpu/run.sh: --out $OUT is not empty; give a new directory" >&2; exit 2; fi
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
export QVLA_TUNE_FILE="$OUT/tune.json"
START=$(date +%s)
log() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$OUT/log.txt"; }
left() { echo $(( BUDGET - ($(date +%s) - START) )); }
# step NAME SHARE_OF_REMAINING_PERCENT CMD...: runs CMD with a timeout of that share of the remaining budget.
step() {
  local name="$1" share="$2"; shift 2
  local rem; rem=$(left)
  if [ "$rem" -le 5 ]; then log "$name: SKIPPED (budget spent)"; echo "$name skipped budget" >> "$OUT/steps.tsv"; return; fi
  local t=$(( rem * share / 100 )); [ "$t" -lt 5 ] && t=5
  local s; s=$(date +%s)
  log "$name: $* (timeout ${t}s)"
  timeout --kill-after=10 "$t" "$@" > "$OUT/$name.txt" 2>&1
  local rc=$?
  local d=$(( $(date +%s) - s ))
  log "$name: exit $rc after ${d}s$([ $rc = 124 ] && echo ' (TIMED OUT)')"
  printf '%s\t%s\t%s\n' "$name" "$rc" "$d" >> "$OUT/steps.tsv"
}
: > "$OUT/steps.tsv"
log "bench/gpu/run.sh $([ $DRY = 1 ] && echo 'DRY RUN (reduced sizes) ')→ $OUT, budget ${BUDGET}s, tuning table $QVLA_TUNE_FILE"
if [ ! -f dist/src/cli/main.js ]; then log "building dist/"; npx tsc -p tsconfig.json >> "$OUT/log.txt" 2>&1 || { log "build failed"; exit 1; }; fi
QVLA="node bin/qvla.js"

step device 5 $QVLA --device-info
if [ $DRY = 1 ]; then
  step tune 30 $QVLA tune --config small --reps 1 --prefill-rows 64 --out "$QVLA_TUNE_FILE" --json "$OUT/tune-report.json" \
    --classes '^(gemv:f32:m1:n1024:k4096|gemm:f32:m64:n1024:k4096|rows:f32:n512:k1024|chunk:dk128:dv128|prefill:d256:g4)$' \
    --variants '^(gemv wg(8|64) rows4|gemv_sg groups1 rows4|plain 4×4 wg8×8|plain 8×4 wg8×1|tiled 4×4 wg16×16|gemm_sg 16×2 groups1|chunk (32|64)$|rows$|tiles$)'
  step kernels 30 $QVLA bench kernels --op linear --name 'decode' --reps 5 --no-wall --json "$OUT/kernels.json"
  step e2e 50 $QVLA bench e2e --config tiny --calls 2 --warmup 1 --mode fast --json "$OUT/e2e.json"
  step rivals 90 node bench/rivals/sidebyside.mjs --only linear --case decode --reps 1 --no-peaks --json "$OUT/rivals.json"
else
  step tune 25 $QVLA tune --config full --reps 5 --max-mib 4096 --out "$QVLA_TUNE_FILE" --json "$OUT/tune-report.json"
  step kernels 25 $QVLA bench kernels --reps 7 --json "$OUT/kernels.json"
  FULL_DIR="${QVLA_FULL_DIR:-/tmp/qvla-full}"
  node --input-type=module -e "import('./dist/src/model/config.js').then(m => process.stdout.write(JSON.stringify(m.qwen35_4bConfigJson())))" > "$OUT/full-config.json"
  step make-full 30 node tools/make_small_checkpoint.mjs "$FULL_DIR" --config "$OUT/full-config.json"
  step e2e 45 $QVLA bench e2e --checkpoint "$FULL_DIR" --weight-dtype f16 --calls 10 --warmup 2 --json "$OUT/e2e.json"
  step e2e-small 25 $QVLA bench e2e --config small --calls 10 --json "$OUT/e2e-small.json"
  step rivals 90 node bench/rivals/sidebyside.mjs --reps 5 --json "$OUT/rivals.json"
fi
node bench/gpu/summarize.mjs "$OUT" $([ $DRY = 1 ] && echo --dry-run) > "$OUT/summary.txt" 2>> "$OUT/log.txt"
log "summary: $OUT/summary.txt ($(( $(date +%s) - START ))s in all)"
cat "$OUT/summary.txt"
