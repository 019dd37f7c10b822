#!/usr/bin/env bash
# Regenerate the tiny checkpoint, the fixture checkpoint(s) and all golden fixtures, deterministically.
# usage: bash tools/reference/regenerate.sh [--no-selfcheck]
# Runs with the Debian python (/usr/bin/python3 + python3-torch + numpy). Prints sha256 of every output.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=/usr/bin/python3
export PYTHONHASHSEED=0 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONDONTWRITEBYTECODE=1

echo "== tiny tokenizer"
node tools/tokenizer/make_tiny_tokenizer.mjs weights/tiny/tokenizer.json

echo "== weights/tiny (bf16)"
$PY tools/reference/make_checkpoint.py tools/reference/configs/tiny.json weights/tiny \
    --tokenizer weights/tiny/tokenizer.json --dtype bf16 --seed 0 --min-pixels 16384 --max-pixels 65536

echo "== test/fixtures/fixture_b (f32, untied head, 2 shards)"
$PY tools/reference/make_checkpoint.py tools/reference/configs/fixture_b.json test/fixtures/fixture_b \
    --tokenizer weights/tiny/tokenizer.json --dtype f32 --seed 1 --shards 2 --min-pixels 16384 --max-pixels 32768
cp weights/tiny/tokenizer.json test/fixtures/fixture_b/tokenizer.json
cp tools/reference/configs/fixture_b_embodiments.json test/fixtures/fixture_b/embodiments.json

echo "== fixtures"
$PY tools/reference/make_fixtures.py

if [ "${1:-}" != "--no-selfcheck" ]; then
  echo "== selfcheck"
  $PY tools/reference/selfcheck.py
fi

echo "== sha256"
sha256sum weights/tiny/config.json weights/tiny/model.safetensors weights/tiny/preprocessor_config.json \
  weights/tiny/tokenizer.json weights/tiny/samples/*.png test/fixtures/fixture_b/* test/fixtures/*.safetensors
