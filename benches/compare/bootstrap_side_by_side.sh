#!/usr/bin/env bash
# CKKS bootstrap (issue 14): polycert (`cargo bench --bench bootstrap -- --test`, one
# full-slot bootstrap) and OpenFHE (`openfhe_bootstrap.py`, the FACTS.md anchor settings) side
# by side, in one run, one after the other (never at once: each needs 9–14 GiB).
#
# usage: benches/compare/bootstrap_side_by_side.sh [THREADS]   (default 2)
#
# Both at N = 2^16, 32768 slots, 128-bit, sparse-secret encapsulation, inputs uniform in
# [−1, 1]: wall time of the first bootstrap and the median of 2 more, precision
# −log2 max |dec − x| over all slots, levels left, key generation, peak RSS (polycert: the
# bench process via /usr/bin/time; OpenFHE: its own getrusage). Target of issue 14: polycert /
# OpenFHE time ≤ 1.0 at ≥ OpenFHE's precision, with no more levels consumed and no more memory.
# OpenFHE's PyPI wheel holds only a Python 3.10 module: PY310 names the interpreter (default:
# python3.10 on PATH, else pyenv's 3.10). Prints one Markdown table.
set -euo pipefail
cd "$(dirname "$0")/../.."
t=${1:-2}
py=${PY310:-}
if [ -z "$py" ]; then
  # A pyenv shim named python3.10 may exist and still fail: take the first that runs.
  for c in python3.10 "$HOME"/.pyenv/versions/3.10*/bin/python3.10; do
    if "$c" -c "import sys" >/dev/null 2>&1; then py=$c; break; fi
  done
fi
[ -n "$py" ] || { echo "bootstrap_side_by_side.sh: no working Python 3.10 interpreter (set PY310)" >&2; exit 2; }
"$py" -c "import openfhe" 2>/dev/null || "$py" -m pip install -q openfhe
cargo bench --bench bootstrap --no-run >/dev/null 2>&1
tmp=$(mktemp -d)
RAYON_NUM_THREADS=$t /usr/bin/time -v cargo bench --bench bootstrap -- --test >"$tmp/rust.out" 2>&1
OMP_NUM_THREADS=$t "$py" benches/compare/openfhe_bootstrap.py --reps 2 --json "$tmp/ofhe.json" >"$tmp/ofhe.out"
python3 - "$t" "$tmp/rust.out" "$tmp/ofhe.json" <<'PY'
import json, re, sys
t, rust, ofhe = sys.argv[1], open(sys.argv[2]).read(), json.load(open(sys.argv[3]))
m = re.search(r"output level (\d+) of L = (\d+), precision ([\d.]+) bits.*?key generation ([\d.]+) s, "
              r"first bootstrap ([\d.]+) s", rust, re.S)
rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", rust)
later = re.search(r"median of (\d+) more ([\d.]+) s", rust)
if not m or not rss or not later:
    sys.exit("bootstrap_side_by_side.sh: unexpected polycert bench output:\n" + rust[-2000:])
left, top, bits, keys, boot = int(m[1]), int(m[2]), float(m[3]), float(m[4]), float(m[5])
gib = int(rss[1]) / 2**20
print(f"| library ({t} threads) | first bootstrap | median of 2 more | precision | levels left | key generation | peak RSS |")
print("|---|---|---|---|---|---|---|")
med = float(later[2])
print(f"| polycert | {boot:.1f} s | {med:.1f} s | {bits:.1f} bits | {left} of {top} | {keys:.1f} s | {gib:.1f} GiB |")
o = ofhe
print(f"| OpenFHE | {o['bootstrap_first_s']:.1f} s | {o['bootstrap_median_s']:.1f} s | {o['precision_bits']:.1f} bits | "
      f"{o['levels_left']} of {o['depth']} | {o['keygen_s']:.1f} s | {o['peak_rss_gib']:.1f} GiB |")
print(f"\npolycert / OpenFHE: first bootstrap {boot / o['bootstrap_first_s']:.2f}×, "
      f"median of 2 more {med / o['bootstrap_median_s']:.2f}×; "
      f"precision {bits - o['precision_bits']:+.1f} bits; peak RSS {gib / o['peak_rss_gib']:.2f}×")
PY
rm -rf "$tmp"
