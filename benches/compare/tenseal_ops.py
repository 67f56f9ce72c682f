#!/usr/bin/env python3
"""SEAL (via TenSEAL's sealapi bindings, PyPI tenseal 0.3.18) timings of the CKKS operations
benchmarked in benches/ckks.rs, on the same N and the same modulus chain shape: q_0 of 60 bits,
16 rescaling primes of 40 bits, special prime(s) of 60 bits (SEAL has one special prime and
one digit per prime; polycert uses hybrid key switching with a few special primes).

Usage: python3 benches/compare/tenseal_ops.py [--reps R] [--log-n 15,16]
Prints one JSON line per (N, op) with the median seconds."""
import argparse
import json
import statistics
import time

import tenseal.sealapi as s


def median_time(f, reps):
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def bench(log_n, reps):
    n = 1 << log_n
    bits = [60] + [40] * 16 + [60]
    parms = s.EncryptionParameters(s.SCHEME_TYPE.CKKS)
    parms.set_poly_modulus_degree(n)
    parms.set_coeff_modulus(s.CoeffModulus.Create(n, bits))
    ctx = s.SEALContext(parms, True, s.SEC_LEVEL_TYPE.TC128)
    kg = s.KeyGenerator(ctx)
    pk = s.PublicKey()
    kg.create_public_key(pk)
    rk = s.RelinKeys()
    kg.create_relin_keys(rk)
    gk = s.GaloisKeys()
    # Galois element of a rotation by one slot: 3 (SEAL's generator).
    kg.create_galois_keys([3], gk)
    enc = s.Encryptor(ctx, pk)
    ev = s.Evaluator(ctx)
    ce = s.CKKSEncoder(ctx)
    scale = 2.0 ** 40
    pt = s.Plaintext()
    ce.encode([0.5] * (n // 2), scale, pt)
    ct = s.Ciphertext()
    enc.encrypt(pt, ct)

    def mul_relin_rescale():
        out = s.Ciphertext()
        ev.multiply(ct, ct, out)
        ev.relinearize_inplace(out, rk)
        ev.rescale_to_next_inplace(out)

    def rotate():
        out = s.Ciphertext()
        ev.rotate_vector(ct, 1, gk, out)

    out = []
    for name, f in [("mul_relin_rescale", mul_relin_rescale), ("rotate", rotate)]:
        f()
        sec = median_time(f, reps)
        out.append({"peer": "SEAL 4.x via tenseal 0.3.18", "log_n": log_n,
                    "log_q": sum(bits), "op": name, "median_s": sec})
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--log-n", default="15,16")
    a = ap.parse_args()
    for ln in [int(x) for x in a.log_n.split(",")]:
        for r in bench(ln, a.reps):
            print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
