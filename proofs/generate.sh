#!/usr/bin/env bash
# Regenerate the committed certificates of the Table 1 polynomials (alpha = 4..14) and check
# them with the independent exact checker. Usage: bash proofs/generate.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
for a in 4 5 6 7 8 9 10 11 12 13 14; do
  ./target/release/polycert certify --quiet --alpha "$a" --out "proofs/table1-alpha$(printf %02d "$a").json" >/dev/null
done
./target/release/polycert check --quiet proofs/*.json
