#!/usr/bin/env bash
# Run the missing parts of one sharded `polycert bound` run, one after another.
#
# usage: reports/shards/run.sh FOLDER N BOUND-FLAGS...
#   e.g. reports/shards/run.sh nm_resnet44_1000 50 --alpha 10,12,14 --per-input \
#          --method trajectory --noise-margin --model ../shared/models/resnet44_cifar10.onnx \
#          --data ../shared/data/cifar10/test_batch_jpeg.bin --evenly --limit 1000
# For K = 1..N, skips reports/shards/FOLDER/part-K-of-N when its .md is present; otherwise runs
# `polycert --quiet bound FLAGS --shard K/N --out-json part-K-of-N.json --out-md part-K-of-N.md`.
# polycert writes each file atomically (temporary file, then rename) and the JSON before the
# Markdown, so a part with its .md is complete and a killed run leaves no torn file (at most a
# complete JSON without its .md, which the next chain computes again). BIN overrides the binary
# (default: a copy of target/release/polycert, rebuilt first so that it matches the checkout,
# and copied so that a later rebuild does not change a running chain). Timings and peak memory
# of each part go to FOLDER/.log/part-K.time (not committed). REVERSE=1 runs K = N..1, so that a
# second chain on the same folder starts from the other end (the two chains meet on at most one
# part, and both write the same bytes).
set -euo pipefail
cd "$(dirname "$0")/../.."
folder=$1 n=$2; shift 2
dir=reports/shards/$folder
mkdir -p "$dir/.log"
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
  BIN=$(mktemp -d)/polycert; cp target/release/polycert "$BIN"
fi
if [ -n "${REVERSE:-}" ]; then ks=$(seq "$n" -1 1); else ks=$(seq 1 "$n"); fi
for k in $ks; do
  part=$dir/part-$k-of-$n
  [ -f "$part.md" ] && continue
  t=$dir/.tmp-$k-$$.time  # this chain's own: two chains meeting on part K both time it
  /usr/bin/time -v -o "$t" "$BIN" --quiet bound "$@" --shard "$k/$n" \
    --out-json "$part.json" --out-md "$part.md" >/dev/null
  echo "$part: $(grep -E 'User time' "$t" | tr -s ' \t' ' ')"
  mv "$t" "$dir/.log/part-$k.time"
done
