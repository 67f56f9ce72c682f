#!/usr/bin/env bash
# ResNet-20 throughput, polycert (criterion bench `nn`) and onnxruntime side by side, in one run.
#
# usage: benches/compare/resnet20_side_by_side.sh [THREADS ...]   (default: 1 2)
#
# For each thread count T: onnxruntime (`onnxruntime_resnet20.py --threads T`), then
# `RAYON_NUM_THREADS=T cargo bench --bench nn` (exact and α = 14), then onnxruntime again; the
# ratios use the mean of the two onnxruntime medians, so load that changes during the run
# shows up as a spread between them instead of skewing the ratio. Last, `cargo bench --bench
# alpha_ratio` (PAIRS, default 16, of BATCHES, default 10, exact and α = 14 batches timed
# back to back) gives the α = 14 / exact ratio as the median and quartiles of paired ratios,
# the figure issue #4's target (b) is read from: criterion times the two policies ~5 s apart,
# and on this shared machine load drifts on that scale. Needs ../shared and `pip install onnxruntime onnx numpy`.
# Prints one Markdown table.
set -euo pipefail
cd "$(dirname "$0")/../.."
threads=("$@")
[ ${#threads[@]} -eq 0 ] && threads=(1 2)
cargo bench --bench nn --no-run >/dev/null 2>&1
cargo bench --bench alpha_ratio --no-run >/dev/null 2>&1
est=target/criterion/resnet20_f32_batch100
rows=()
for t in "${threads[@]}"; do
  o1=$(python3 benches/compare/onnxruntime_resnet20.py --threads "$t")
  RAYON_NUM_THREADS=$t cargo bench --bench nn -- --noplot >/dev/null 2>&1
  o2=$(python3 benches/compare/onnxruntime_resnet20.py --threads "$t")
  pr=$(RAYON_NUM_THREADS=$t cargo bench --bench alpha_ratio 2>/dev/null | sed -n 's/^RESULT //p')
  rows+=("$(python3 - "$t" "$o1" "$o2" "$est" "$pr" <<'PY'
import json, sys
t, o1, o2, est = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4]
pr = json.loads(sys.argv[5])
def ips(name):
    e = json.load(open(f"{est}/{name}/100/new/estimates.json"))
    return 100 / (e["median"]["point_estimate"] * 1e-9)
ex, ap = ips("exact"), ips("alpha14")
a, b = o1["images_per_s_median"], o2["images_per_s_median"]
ort = (a + b) / 2
paired = (f"{pr['ratio_median']:.2f}× ({pr['ratio_q1']:.2f}–{pr['ratio_q3']:.2f}; "
          f"{100 * pr['frac_ge_0_8']:.0f}% ≥ 0.8; {pr['pairs']} pairs of {pr['batches']} batches)")
print(f"| {t} | {a:.0f} / {b:.0f} | {ex:.0f} | {ap:.0f} | {ex / ort:.2f}× | {ap / ex:.2f}× | {paired} |")
PY
)")
done
echo "onnxruntime: $(python3 -c 'import onnxruntime; print(onnxruntime.__version__)'); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| threads | onnxruntime img/s (median, before / after) | polycert exact img/s | polycert α=14 img/s | exact / onnxruntime | α=14 / exact (criterion) | α=14 / exact, paired median (quartiles) |"
echo "|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
