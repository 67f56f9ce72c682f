#!/usr/bin/env python3
"""Independent exact (fractions) oracle for the Chebyshev tests of issue 16.

  to-cheb IN OUT [CONVENTION]
      IN: {"components": [{"coeffs": [c_0, ..., c_d], "interval": [a, b]}, ...]} (power basis,
      exact decimal or n/d strings). OUT: a polycert-poly/1 file with each component in the
      Chebyshev basis of its interval, exact "n/d" strings (CONVENTION "openfhe-half-c0" stores
      c_0 doubled).
  to-cheb-text IN OUT
      As to-cheb, one coefficient per line (the text form; all intervals must be equal).
  compare EXPORT SIGN_JSON
      EXPORT: a polycert-poly/1 file (Chebyshev components); SIGN_JSON: `polycert sign --json`
      output (exact power-basis odd coefficients). Evaluates both exactly at 257 points of each
      component's interval (Clenshaw on the series, Horner on the power basis) and prints
      "max_abs_diff <value>", "components <k>" and "f64_mismatches <n>" (coeffs_f64 entries
      that are not the nearest double of the exact string); exits 1 on a layout mismatch.

Written separately from the crate (no shared code): plain Python fractions.
"""
import json
import sys
from fractions import Fraction as F
from math import comb


def q(s):
    s = str(s).strip()
    if "/" in s:
        n, d = s.split("/")
        return F(n) / F(d)
    return F(s)


def power_to_cheb(c, a, b):
    """Chebyshev coefficients g_k with sum_k g_k T_k(u) = sum_j c_j y^j, y = ((b-a)u + a + b)/2."""
    n = len(c)
    half_w, mid = (b - a) / 2, (a + b) / 2
    # p(y(u)) in powers of u: Horner with polynomials.
    pu = [F(0)] * n
    for cj in reversed(c):
        nxt = [F(0)] * n
        for i, v in enumerate(pu):
            if v:
                nxt[i] += v * mid
                if i + 1 < n:
                    nxt[i + 1] += v * half_w
        nxt[0] += cj
        pu = nxt
    # u^j = 2^(1-j) sum_{i = j, j-2, ...} C(j, (j-i)/2) T_i, the T_0 term halved.
    g = [F(0)] * n
    for j, v in enumerate(pu):
        if not v:
            continue
        if j == 0:
            g[0] += v
            continue
        for i in range(j, -1, -2):
            t = F(comb(j, (j - i) // 2), 2 ** (j - 1))
            if i == 0:
                t /= 2
            g[i] += v * t
    return g


def clenshaw(g, u):
    b1, b2 = F(0), F(0)
    for gk in reversed(g[1:]):
        b1, b2 = 2 * u * b1 - b2 + gk, b1
    return u * b1 - b2 + g[0]


def text(x):
    return str(x.numerator) if x.denominator == 1 else f"{x.numerator}/{x.denominator}"


def to_cheb(inp, convention):
    comps = []
    for comp in inp["components"]:
        a, b = (q(v) for v in comp["interval"])
        g = power_to_cheb([q(v) for v in comp["coeffs"]], a, b)
        if convention == "openfhe-half-c0":
            g[0] *= 2
        comps.append({"basis": "chebyshev", "interval": comp["interval"], "coeffs": [text(v) for v in g]})
    out = {"format": "polycert-poly/1", "components": comps}
    if convention:
        out["convention"] = convention
    return out


def compare(export, sign):
    conv = export.get("convention", "standard")
    comps = export["components"]
    power = [[q(v) for v in c] for c in sign["components_power"]] if "components_power" in sign else None
    if power is None:
        power = []
        for comp in sign["components"]:
            odd = [q(v) for v in comp["power_basis_odd"]]
            full = []
            for v in odd:
                full += [F(0), v]
            power.append(full)
    if len(power) != len(comps):
        print(f"component count {len(comps)} != {len(power)}")
        sys.exit(1)
    worst = F(0)
    f64_bad = 0
    for comp, pc in zip(comps, power):
        if "coeffs_f64" in comp:
            f64_bad += sum(float(q(s)) != v for s, v in zip(comp["coeffs"], comp["coeffs_f64"]))
        if comp["basis"] != "chebyshev":
            print("not a Chebyshev component")
            sys.exit(1)
        a, b = (q(v) for v in comp["interval"])
        g = [q(v) for v in comp["coeffs"]]
        if conv == "openfhe-half-c0":
            g[0] /= 2
        if len(g) != len(pc):
            print(f"degree {len(g) - 1} != {len(pc) - 1}")
            sys.exit(1)
        for i in range(257):
            y = a + (b - a) * F(i, 256)
            u = (2 * y - a - b) / (b - a)
            s = clenshaw(g, u)
            p = F(0)
            for cj in reversed(pc):
                p = p * y + cj
            worst = max(worst, abs(s - p))
    print(f"max_abs_diff {float(worst)!r} exact_zero {worst == 0}")
    print(f"components {len(comps)}")
    print(f"f64_mismatches {f64_bad}")


def main():
    cmd = sys.argv[1]
    if cmd in ("to-cheb", "to-cheb-text"):
        inp = json.load(open(sys.argv[2]))
        conv = sys.argv[4] if len(sys.argv) > 4 else None
        out = to_cheb(inp, conv)
        with open(sys.argv[3], "w") as f:
            if cmd == "to-cheb":
                json.dump(out, f, indent=1)
            else:
                for c in out["components"]:
                    f.write("\n".join(c["coeffs"]) + "\n")
    elif cmd == "compare":
        compare(json.load(open(sys.argv[2])), json.load(open(sys.argv[3])))
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
