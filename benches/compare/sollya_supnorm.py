#!/usr/bin/env python3
"""Sollya side of the certification comparison (benches/certify.rs is polycert's side).

usage: sollya_supnorm.py [--alpha 8] [--claim closeness|condition1] [--timeout 300]

Reads the exact coefficients of proofs/table1-alphaNN.json, writes a Sollya script that
builds the composite p = p_k o ... o p_1 (expanded to the power basis, exact dyadic
coefficients, prec = 2000 bits) and calls Sollya's `supnorm` on the same claim polynomial as
polycert certifies:
  closeness:  sup |p(x) - 1|      on [eps, 1]
  condition1: sup |x p(x) - x|    on [0, 1]
Prints one JSON line: Sollya's enclosure, its wall time, and polycert's certified_sup from the
certificate. Sollya 8.0 (Debian package `sollya`) must be on PATH.
"""
import argparse
import json
import os
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PROOFS = os.path.join(HERE, "..", "..", "proofs")


def poly_text(odd_coeffs):
    # p(x) = sum_j c_j x^(2j+1), written in Horner form in x^2.
    acc = "0"
    for c in reversed(odd_coeffs):
        acc = "(%s) + x^2*(%s)" % (c, acc)
    return "x*(%s)" % acc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--alpha", type=int, default=8)
    ap.add_argument("--claim", choices=["closeness", "condition1"], default="closeness")
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--accuracy", default="2^(-20)",
                    help="supnorm's relative accuracy of the enclosure")
    args = ap.parse_args()
    path = os.path.join(PROOFS, "table1-alpha%02d.json" % args.alpha)
    with open(path) as f:
        cert = json.load(f)
    claim = next(c for c in cert["claims"] if c["id"] == args.claim)
    lines = ["prec = 2000!;", "display = decimal!;"]
    for i, comp in enumerate(cert["components"]):
        lines.append("p%d = %s;" % (i + 1, poly_text(comp)))
    comp = "x"
    for i in range(len(cert["components"])):
        comp = "p%d(%s)" % (i + 1, comp)
    # Composition in Sollya is f(g); expand() gives the power basis with exact coefficients.
    lines.append("p = expand(%s);" % comp)
    lo, hi = claim["domain"]
    if args.claim == "closeness":
        lines.append("I = [%s; %s];" % (lo, hi))
        lines.append("r = supnorm(p, 1, I, absolute, %s);" % args.accuracy)
    else:
        lines.append("I = [%s; %s];" % (lo, hi))
        lines.append("r = supnorm(expand(x*p), x, I, absolute, %s);" % args.accuracy)
    lines.append('print("RESULT", inf(r), sup(r));')
    lines.append("quit;")
    with tempfile.NamedTemporaryFile("w", suffix=".sollya", delete=False) as tf:
        tf.write("\n".join(lines) + "\n")
        script = tf.name
    t0 = time.time()
    status, lo_s, hi_s, msg = "ok", None, None, ""
    try:
        out = subprocess.run(["sollya", "--warnonstderr", script], capture_output=True,
                             text=True, timeout=args.timeout)
        wall = time.time() - t0
        for line in out.stdout.splitlines():
            if line.startswith("RESULT"):
                parts = line.split()
                lo_s, hi_s = parts[1], parts[2]
        if lo_s is None or "error" in (lo_s + hi_s).lower() or "nan" in (lo_s + hi_s).lower():
            status = "failed"
            msg = (out.stdout + out.stderr).strip().splitlines()[-3:]
    except subprocess.TimeoutExpired:
        wall = time.time() - t0
        status, msg = "timeout", "no answer within %.0f s" % args.timeout
    finally:
        os.unlink(script)
    print(json.dumps({
        "alpha": args.alpha,
        "claim": args.claim,
        "sollya_status": status,
        "sollya_enclosure": [lo_s, hi_s],
        "sollya_wall_s": round(wall, 3),
        "sollya_message": msg,
        "polycert_certified_sup": claim["certified_sup"],
    }))


if __name__ == "__main__":
    main()
