#!/usr/bin/env bash
# Merge every part of one shard folder into one report under reports/.
#
# usage: reports/shards/merge.sh FOLDER STEM
#   e.g. reports/shards/merge.sh nm_resnet20_1000 bounds_noise_margin_resnet20_1000
# Reads reports/shards/FOLDER/part-K-of-N.json for K = 1..N (N from the file names; the merge
# refuses a missing, repeated or foreign part), writes reports/STEM.{json,md} with
# `polycert bound --merge` (the JSON is byte for byte the unsharded run's), and puts a note
# naming the folder under the Markdown title. BIN overrides the binary
# (default: target/release/polycert, rebuilt first so that it matches the checkout).
set -euo pipefail
cd "$(dirname "$0")/../.."
folder=$1 stem=$2
dir=reports/shards/$folder
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
  BIN=target/release/polycert
fi
first=$(ls "$dir" | grep -E '^part-[0-9]+-of-[0-9]+\.json$' | head -1)
[ -n "$first" ] || { echo "merge.sh: no part-K-of-N.json in $dir" >&2; exit 1; }
n=${first##*-of-}; n=${n%.json}
args=()
for k in $(seq 1 "$n"); do args+=(--merge "$dir/part-$k-of-$n.json"); done
"$BIN" --quiet bound "${args[@]}" --out-json "reports/$stem.json" --out-md "reports/$stem.md" >/dev/null
{
  head -n 1 "reports/$stem.md"
  printf '\n> Merged from the %s parts in `%s/` (the command of each part is in\n' "$n" "$dir"
  printf '> `reports/shards/README.md`); the merge gives byte for byte the unsharded run'"'"'s JSON.\n'
  tail -n +2 "reports/$stem.md"
} > "reports/$stem.md.tmp"
mv "reports/$stem.md.tmp" "reports/$stem.md"
echo "reports/$stem.{json,md}: $n parts of $dir"
