#!/usr/bin/env bash
# Run the missing parts of one sharded `polycert bound` run, one after another.
#
# usage: reports/shards/run.sh FOLDER N BOUND-FLAGS...
#   e.g. reports/shards/run.sh nm_resnet44_1000 50 --alpha 10,12,14 --per-input \
#          --method trajectory --noise-margin --model ../shared/models/resnet44_cifar10.onnx \
#          --data ../shared/data/cifar10/test_batch_jpeg.bin --evenly --limit 1000
# For K = 1..N, skips reports/shards/FOLDER/part-K-of-N.json when present; otherwise runs
# `polycert --quiet bound FLAGS --shard K/N` into temporary files of its own and renames them
# into the folder when the part succeeds (a killed run leaves no part behind). BIN overrides the
# binary (default: a copy of target/release/polycert, rebuilt first so that it matches the
# checkout, and copied so that a later rebuild does not change a running chain). Timings and peak memory
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
  [ -f "$part.json" ] && continue
  tmp=$dir/.tmp-$k-$$  # this chain's own temporaries: two chains meeting on part K never share one
  /usr/bin/time -v -o "$tmp.time" "$BIN" --quiet bound "$@" --shard "$k/$n" \
    --out-json "$tmp.json" --out-md "$tmp.md" >/dev/null
  # the Markdown records the command line: name the part's own files there, not this chain's
  # temporaries, so that two chains meeting on part K write the same bytes
  sed "s#$tmp\.#$part.#g" "$tmp.md" > "$tmp.md2" && rm "$tmp.md"
  mv "$tmp.md2" "$part.md"
  mv "$tmp.json" "$part.json"
  echo "$part: $(grep -E 'User time' "$tmp.time" | tr -s ' \t' ' ')"
  mv "$tmp.time" "$dir/.log/part-$k.time"
done
