#!/usr/bin/env python3
"""Cross-library check (issue 16): polycert's certified composite sign polynomials evaluated
under OpenFHE CKKS.

For each alpha (default 8..14) the script
  1. exports the Table 1 composite with `polycert sign --alpha A --paper --export openfhe`
     (stages as Chebyshev series on their intervals [-b_i, b_i], OpenFHE convention) and
     reads the certified bounds from `proofs/table1-alphaAA.json` (sup |p - sgn| on
     [-1,-eps] U [eps,1]: claim `closeness`; sup |r_alpha - ReLU| on [-1,1]: `theorem1_relu`);
  2. OpenFHE (PyPI `openfhe`): CKKS, N = 2^16, HEStd_128_classic, FLEXIBLEAUTO, 32768 slots
     holding x spread evenly over [-1, 1]; encrypts, applies EvalChebyshevSeries per stage, then
     r = (x + x p(x)) / 2, decrypts; reports the measured max |p(x) - sgn(x)| over |x| >= eps
     and max |r - ReLU| over all slots against the certified bounds, the wall time and the
     levels consumed, next to polycert's own CKKS depth for the same polynomial (criterion
     bench `ckks/relu_alpha14` for its time: `cargo bench --bench ckks`).
     A composite whose depth does not fit N = 2^16 at 128 bits without bootstrapping is
     reported as such (not run).
  --plaintext: the same pipeline with the OpenFHE evaluation replaced by a float64 Clenshaw
     evaluation of the exported series (no OpenFHE needed): checks the export and the
     bookkeeping; its errors include only float64 rounding.

Usage:
  python3 benches/compare/openfhe_sign.py [--alphas 8..14] [--polycert target/release/polycert]
      [--plaintext] [--out benches/compare/openfhe_sign.json] [--md benches/compare/RESULTS.md]
This measures errors (CKKS noise included), not speed; timings are informative only.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from fractions import Fraction

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SLOTS = 1 << 15
LOG_N = 16
# HomomorphicEncryption.org, 128-bit classical, ternary secret: log2(QP) <= 1772 at N = 2^16.
MAX_LOG_QP = 1772
SCALE_BITS = 50
FIRST_MOD_BITS = 60


def parse_alphas(s):
    if ".." in s:
        a, b = s.split("..")
        return list(range(int(a), int(b.lstrip("=")) + 1))
    return [int(v) for v in s.split(",")]


def frac(s):
    s = str(s)
    if "/" in s:
        n, d = s.split("/")
        return Fraction(n) / Fraction(d)
    if "p" in s:
        m, e = s.split("p")
        return Fraction(int(m)) * Fraction(2) ** int(e)
    return Fraction(s)


def openfhe_cheb_depth(d):
    """Multiplicative depth of OpenFHE's EvalChebyshevSeries for degree d (its documented
    table in FUNCTION_EVALUATION.md)."""
    for hi, depth in [(5, 4), (13, 5), (27, 6), (59, 7), (119, 8), (247, 9), (495, 10), (1007, 11)]:
        if d <= hi:
            return depth
    return 12


def export(polycert, alpha, tmp):
    out = os.path.join(tmp, f"a{alpha}-openfhe.json")
    subprocess.run([polycert, "sign", "--alpha", str(alpha), "--paper", "--export", "openfhe",
                    "--out", out], check=True, stdout=subprocess.DEVNULL)
    sign = json.loads(subprocess.run([polycert, "sign", "--alpha", str(alpha), "--paper", "--json"],
                                     check=True, capture_output=True, text=True).stdout)
    with open(out) as f:
        return json.load(f), sign


def certified(alpha):
    path = os.path.join(REPO, "proofs", f"table1-alpha{alpha:02d}.json")
    with open(path) as f:
        c = json.load(f)
    sup = {r["id"]: r["certified_sup"][1] for r in c["claims"]}
    return float(frac(c["eps"])), float(frac(sup["closeness"])), float(frac(sup["theorem1_relu"]))


def xs():
    return [-1.0 + 2.0 * i / (SLOTS - 1) for i in range(SLOTS)]


def clenshaw(coeffs, a, b, x, half_c0):
    u = (2.0 * x - a - b) / (b - a)
    b1 = b2 = 0.0
    for c in reversed(coeffs[1:]):
        b1, b2 = 2.0 * u * b1 - b2 + c, b1
    c0 = coeffs[0] / 2.0 if half_c0 else coeffs[0]
    return u * b1 - b2 + c0


def eval_plaintext(exp, x):
    half = exp.get("convention") == "openfhe-half-c0"
    y = list(x)
    for comp in exp["components"]:
        a, b = (float(frac(v)) for v in comp["interval"])
        y = [clenshaw(comp["coeffs_f64"], a, b, v, half) for v in y]
    return y


def eval_openfhe(exp, x, depth):
    import openfhe as o  # noqa: PLC0415 (optional dependency)

    params = o.CCParamsCKKSRNS()
    params.SetMultiplicativeDepth(depth)
    params.SetScalingModSize(SCALE_BITS)
    params.SetFirstModSize(FIRST_MOD_BITS)
    params.SetRingDim(1 << LOG_N)
    params.SetBatchSize(SLOTS)
    params.SetSecurityLevel(o.SecurityLevel.HEStd_128_classic)
    params.SetScalingTechnique(o.ScalingTechnique.FLEXIBLEAUTO)
    cc = o.GenCryptoContext(params)
    for feat in (o.PKESchemeFeature.PKE, o.PKESchemeFeature.KEYSWITCH, o.PKESchemeFeature.LEVELEDSHE,
                 o.PKESchemeFeature.ADVANCEDSHE):
        cc.Enable(feat)
    keys = cc.KeyGen()
    cc.EvalMultKeyGen(keys.secretKey)
    ct = cc.Encrypt(keys.publicKey, cc.MakeCKKSPackedPlaintext(x))
    t = time.perf_counter()
    y = ct
    for comp in exp["components"]:
        a, b = (float(frac(v)) for v in comp["interval"])
        y = cc.EvalChebyshevSeries(y, comp["coeffs_f64"], a, b)
    p_ct = y
    r_ct = cc.EvalMult(cc.EvalAdd(ct, cc.EvalMult(ct, p_ct)), 0.5)
    secs = time.perf_counter() - t
    levels = r_ct.GetLevel()
    out = []
    for c in (p_ct, r_ct):
        pt = cc.Decrypt(keys.secretKey, c)
        pt.SetLength(SLOTS)
        out.append([v.real for v in pt.GetCKKSPackedValue()])
    return out[0], out[1], secs, levels, cc.GetRingDimension()


def run(args):
    rows = []
    polycert = args.polycert
    with tempfile.TemporaryDirectory() as tmp:
        for alpha in parse_alphas(args.alphas):
            exp, sign = export(polycert, alpha, tmp)
            eps, cert_close, cert_relu = certified(alpha)
            degrees = [c["degree"] for c in exp["components"]]
            depth = sum(openfhe_cheb_depth(d) for d in degrees) + 2  # x*p, then *0.5
            levels_fit = (MAX_LOG_QP - 2 * FIRST_MOD_BITS) // SCALE_BITS
            row = {"alpha": alpha, "degrees": degrees, "eps": eps,
                   "certified_closeness_sup": cert_close, "certified_relu_sup": cert_relu,
                   "openfhe_depth_planned": depth, "polycert_depth": sign["depth"] + 1}
            x = xs()
            if args.plaintext:
                p = eval_plaintext(exp, x)
                r = [(xi + xi * pi) / 2.0 for xi, pi in zip(x, p)]
                row.update(mode="plaintext float64 Clenshaw (no OpenFHE)", seconds=None,
                           levels_consumed=None)
            elif depth > levels_fit:
                row.update(mode="openfhe", skipped=f"depth {depth} > {levels_fit} levels of "
                           f"{SCALE_BITS} bits in log2(QP) <= {MAX_LOG_QP} (needs bootstrapping)")
                rows.append(row)
                print(json.dumps(row), flush=True)
                continue
            else:
                p, r, secs, levels, n = eval_openfhe(exp, x, depth)
                row.update(mode=f"openfhe CKKS N={n}", seconds=secs, levels_consumed=levels)
            close = max(abs(pi - math.copysign(1.0, xi)) for xi, pi in zip(x, p) if abs(xi) >= eps)
            relu = max(abs(ri - max(xi, 0.0)) for xi, ri in zip(x, r))
            row.update(measured_closeness_max=close, measured_relu_max=relu,
                       closeness_within=close <= cert_close, relu_within=relu <= cert_relu)
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def markdown(rows, cmd):
    out = ["", "## OpenFHE cross-check of the certified sign polynomials (issue 16)", "",
           f"Command: `{cmd}`", "",
           "| α | degrees | mode | measured max abs(p − sgn), abs(x) ≥ ε | certified | measured max abs(r_α − ReLU) | certified | levels (OpenFHE / polycert) | OpenFHE s |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "skipped" in r:
            out.append(f"| {r['alpha']} | {r['degrees']} | not run: {r['skipped']} | | {r['certified_closeness_sup']:.4e} | | {r['certified_relu_sup']:.4e} | {r['openfhe_depth_planned']} / {r['polycert_depth']} | |")
            continue
        secs = "" if r["seconds"] is None else f"{r['seconds']:.1f}"
        lv = r["levels_consumed"] if r["levels_consumed"] is not None else r["openfhe_depth_planned"]
        out.append(f"| {r['alpha']} | {r['degrees']} | {r['mode']} | {r['measured_closeness_max']:.4e} | {r['certified_closeness_sup']:.4e} | {r['measured_relu_max']:.4e} | {r['certified_relu_sup']:.4e} | {lv} / {r['polycert_depth']} | {secs} |")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--alphas", default="8..14")
    ap.add_argument("--polycert", default=os.path.join(REPO, "target", "release", "polycert"))
    ap.add_argument("--plaintext", action="store_true")
    ap.add_argument("--out", help="write the rows as JSON here")
    ap.add_argument("--md", help="append a Markdown table to this file")
    args = ap.parse_args()
    if not args.plaintext:
        try:
            import openfhe  # noqa: F401, PLC0415
        except ImportError as e:
            sys.exit(f"openfhe is not importable under Python {sys.version.split()[0]}: {e}. "
                     "PyPI's openfhe wheels carry only CPython 3.8, 3.10 and 3.12 modules; "
                     "run with such an interpreter, or use --plaintext.")
    rows = run(args)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)
            f.write("\n")
    if args.md:
        with open(args.md, "a") as f:
            f.write(markdown(rows, "python3 " + " ".join(sys.argv)))
    bad = [r["alpha"] for r in rows if "skipped" not in r and not (r["closeness_within"] and r["relu_within"])]
    if bad:
        print(f"measured error above the certified bound at alpha {bad}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
