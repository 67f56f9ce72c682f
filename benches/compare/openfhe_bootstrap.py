#!/usr/bin/env python3
"""OpenFHE's CKKS bootstrap, the peer of polycert's `cargo bench --bench bootstrap` (issue 14).

Settings (the first row of ../shared/reference/FACTS.md, "CKKS bootstrapping anchors"):
N = 2^16, 32768 slots (full), HEStd_128_classic, FLEXIBLEAUTO, hybrid key switching with
dnum = 3, scaling modulus 59 bits, first modulus 60 bits, level budget [3, 3], secret
SPARSE_ENCAPSULATED (the sparse-secret encapsulation polycert also uses). The multiplicative
depth is the bootstrap depth plus the most levels after it that 128-bit security admits at
N = 2^16 (searched downward from --levels-after; OpenFHE refuses larger moduli).

Measured: key generation (EvalMultKeyGen + EvalBootstrapKeyGen), the first bootstrap and the
median of --reps more (wall clock), the precision -log2 max_i |dec_i - x_i| over all slots for
x uniform in [-1, 1] (seeded), the levels left after the bootstrap (depth - GetLevel()), and
the process's peak RSS. Threads: OMP_NUM_THREADS (set it; OpenFHE uses OpenMP).

`--insecure-small` runs N = 2^12 with HEStd_NotSet (a smoke test of the script, seconds).

Usage (OpenFHE's PyPI wheel holds only a Python 3.10 module):
  OMP_NUM_THREADS=2 python3.10 benches/compare/openfhe_bootstrap.py [--reps 2] [--json out.json]
Side by side with polycert: benches/compare/bootstrap_side_by_side.sh.
"""
import argparse
import json
import math
import os
import random
import resource
import statistics
import sys
import time


def build(o, log_n, levels_after, secure):
    dist = o.SecretKeyDist.SPARSE_ENCAPSULATED
    budget = [3, 3]
    boot_depth = o.CryptoContext.GetBootstrapDepth(budget, dist)
    last_err = None
    for after in range(levels_after, 0, -1):
        p = o.CCParamsCKKSRNS()
        p.SetSecretKeyDist(dist)
        if secure:
            p.SetSecurityLevel(o.SecurityLevel.HEStd_128_classic)
        else:
            p.SetSecurityLevel(o.SecurityLevel.HEStd_NotSet)
        p.SetRingDim(1 << log_n)
        p.SetScalingTechnique(o.ScalingTechnique.FLEXIBLEAUTO)
        p.SetKeySwitchTechnique(o.KeySwitchTechnique.HYBRID)
        p.SetNumLargeDigits(3)
        p.SetScalingModSize(59)
        p.SetFirstModSize(60)
        depth = after + boot_depth
        p.SetMultiplicativeDepth(depth)
        try:
            cc = o.GenCryptoContext(p)
        except Exception as e:  # OpenFHE refuses a modulus too large for the security level
            last_err = e
            continue
        for f in (o.PKESchemeFeature.PKE, o.PKESchemeFeature.KEYSWITCH,
                  o.PKESchemeFeature.LEVELEDSHE, o.PKESchemeFeature.ADVANCEDSHE,
                  o.PKESchemeFeature.FHE):
            cc.Enable(f)
        return cc, depth, after, boot_depth, budget
    sys.exit(f"openfhe_bootstrap.py: no depth fits N = 2^{log_n}: {last_err}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=2, help="bootstraps after the first (median)")
    ap.add_argument("--levels-after", type=int, default=20,
                    help="start of the downward search for the levels left after bootstrapping")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--insecure-small", action="store_true",
                    help="N = 2^12, HEStd_NotSet: a seconds-long smoke test (INSECURE)")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    a = ap.parse_args()
    if a.reps < 0:
        sys.exit(f"--reps {a.reps}: expected >= 0")
    try:
        import openfhe as o
    except ImportError as e:
        sys.exit(f"openfhe_bootstrap.py: cannot import openfhe ({e}); "
                 "install the PyPI wheel into a Python 3.10 interpreter")
    log_n = 12 if a.insecure_small else 16
    cc, depth, after, boot_depth, budget = build(o, log_n, a.levels_after, not a.insecure_small)
    slots = (1 << log_n) // 2
    cc.EvalBootstrapSetup(budget, [0, 0], slots)
    t0 = time.perf_counter()
    keys = cc.KeyGen()
    cc.EvalMultKeyGen(keys.secretKey)
    cc.EvalBootstrapKeyGen(keys.secretKey, slots)
    keygen_s = time.perf_counter() - t0
    rng = random.Random(a.seed)
    x = [rng.uniform(-1.0, 1.0) for _ in range(slots)]
    pt = cc.MakeCKKSPackedPlaintext(x, 1, depth - 1, None, slots)
    pt.SetLength(slots)
    ct = cc.Encrypt(keys.publicKey, pt)
    times = []
    out = None
    for _ in range(1 + a.reps):
        t0 = time.perf_counter()
        out = cc.EvalBootstrap(ct)
        times.append(time.perf_counter() - t0)
    dec = cc.Decrypt(out, keys.secretKey)
    dec.SetLength(slots)
    vals = dec.GetCKKSPackedValue()
    err = max(abs(v.real - xi) for v, xi in zip(vals, x))
    bits = -math.log2(err) if err > 0 else float("inf")
    levels_left = depth - out.GetLevel()
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    res = {
        "library": f"OpenFHE (PyPI openfhe {getattr(o, '__version__', '1.6.x')})",
        "insecure": a.insecure_small,
        "log_n": log_n,
        "slots": slots,
        "security": "HEStd_NotSet (INSECURE)" if a.insecure_small else "HEStd_128_classic",
        "secret": "SPARSE_ENCAPSULATED",
        "level_budget": budget,
        "dnum": 3,
        "scale_bits": 59,
        "first_mod_bits": 60,
        "depth": depth,
        "bootstrap_depth": boot_depth,
        "levels_left": levels_left,
        "keygen_s": round(keygen_s, 3),
        "bootstrap_first_s": round(times[0], 3),
        "bootstrap_median_s": round(statistics.median(times[1:]), 3) if a.reps else None,
        "bootstrap_all_s": [round(t, 3) for t in times],
        "precision_bits": round(bits, 2),
        "max_abs_error": err,
        "peak_rss_gib": round(peak_gib, 2),
    }
    print(f"openfhe bootstrap: N = 2^{log_n}, {slots} slots, {res['security']}, secret "
          f"SPARSE_ENCAPSULATED, budget {budget}, depth {depth} (bootstrap {boot_depth}), "
          f"levels left {levels_left}; key generation {keygen_s:.1f} s, first bootstrap "
          f"{times[0]:.2f} s" + (f", median of {a.reps} more {res['bootstrap_median_s']:.2f} s"
                                 if a.reps else "") +
          f", precision {bits:.1f} bits, peak RSS {peak_gib:.1f} GiB")
    if a.json:
        with open(a.json + ".tmp", "w") as f:
            json.dump(res, f, indent=2)
            f.write("\n")
        os.replace(a.json + ".tmp", a.json)


if __name__ == "__main__":
    main()
