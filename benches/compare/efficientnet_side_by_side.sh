#!/usr/bin/env bash
# EfficientNet-Lite0 throughput (paper Table 3, issue 15), polycert (criterion bench
# `efficientnet`) and onnxruntime side by side, in one run.
#
# usage: benches/compare/efficientnet_side_by_side.sh [THREADS ...]   (default: 1 2)
#
# For each thread count T: onnxruntime (`onnxruntime_resnet20.py --layout imagenet224
# --threads T`, the first 16 ImageNet records as raw pixels), then
# `RAYON_NUM_THREADS=T cargo bench --bench efficientnet` (exact and α = 14, the same 16
# records), then onnxruntime again; the ratios use the mean of the two onnxruntime medians, so
# load that changes during the run shows up as a spread between them instead of skewing the
# ratio. Targets of issue 15: exact / onnxruntime ≥ 0.8 and α = 14 / exact ≥ 0.6 at 1 and 2
# threads. Needs ../shared and `pip install onnxruntime onnx numpy`. Prints one Markdown table.
set -euo pipefail
cd "$(dirname "$0")/../.."
threads=("$@")
[ ${#threads[@]} -eq 0 ] && threads=(1 2)
S=../shared
ort=(python3 benches/compare/onnxruntime_resnet20.py --layout imagenet224 --batch 16 --reps 10
     --model "$S/models/efficientnet_lite0_imagenet.onnx"
     --data "$S/data/imagenet/imagenet_val500_224.bin")
cargo bench --bench efficientnet --no-run >/dev/null 2>&1
est=target/criterion/efficientnet_lite0_f32_batch16
rows=()
for t in "${threads[@]}"; do
  o1=$("${ort[@]}" --threads "$t")
  RAYON_NUM_THREADS=$t cargo bench --bench efficientnet -- --noplot >/dev/null 2>&1
  o2=$("${ort[@]}" --threads "$t")
  rows+=("$(python3 - "$t" "$o1" "$o2" "$est" <<'PY'
import json, sys
t, o1, o2, est = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4]
def ips(name):
    e = json.load(open(f"{est}/{name}/16/new/estimates.json"))
    return 16 / (e["median"]["point_estimate"] * 1e-9)
ex, ap = ips("exact"), ips("alpha14")
a, b = o1["images_per_s_median"], o2["images_per_s_median"]
ort = (a + b) / 2
print(f"| {t} | {a:.1f} / {b:.1f} | {ex:.1f} | {ap:.1f} | {ex / ort:.2f}× | {ap / ex:.2f}× |")
PY
)")
done
echo "onnxruntime: $(python3 -c 'import onnxruntime; print(onnxruntime.__version__)'); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| threads | onnxruntime img/s (median, before / after) | polycert exact img/s | polycert α=14 img/s | exact / onnxruntime | α=14 / exact |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
