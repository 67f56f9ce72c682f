//! CKKS bootstrapping bench (issue 14): one full-slot bootstrap (level 0 → the output level)
//! with a dense uniform ternary secret and sparse-secret encapsulation (h = 32). Default:
//! N = 2^16, 128-bit (HomomorphicEncryption.org), Δ_0 = 2^56, q_0 ≈ 2^60,
//! `BootstrapConfig::encapsulated_corrected` (level budget 3/3 at N = 2^16, EvalMod K = 12 with
//! 2 double angles, degree 47, and the cubic correction: depth 9, 15 levels consumed);
//! `POLYCERT_BOOT_BENCH_EVALMOD=sine` runs `BootstrapConfig::encapsulated` (the plain sine,
//! depth 8, 14 levels, Δ_0 = 2^54: what the encrypted executors use);
//! `POLYCERT_BOOT_BENCH_DENSE=1` runs `BootstrapConfig::full` instead (ModRaise under the dense
//! secret, K = 482 with 6 double angles, degree 95, Δ_0 = 2^57),
//! four 61-bit special primes; the other primes are user levels filling the 128-bit bound.
//! After the precision it prints its decomposition: EvalMod's deterministic bias (the encoded
//! message's coefficients through EvalMod's exact function, `EvalModConfig::reduce_model`)
//! and the rest (noise and interpolation), both measured.
//! Before key generation it prints the key memory model and refuses (skips, with the reason)
//! when it exceeds MemAvailable; before timing it prints the measured precision and levels.
//!
//! `POLYCERT_BOOT_BENCH_SCALE=55` sets log₂ Δ_0 (default at N = 2^16: 56 corrected, 10 user
//! levels of 56 bits with four special primes, 5 with eight; 54 with the sine, 11 user levels;
//! 57 dense, 5 user levels; 50 for the toy; see the `bootstrap` module docs for the measured
//! precision against Δ_0).
//! `POLYCERT_BOOT_BENCH_SPECIAL=6` uses six special primes (fewer digits: smaller keys, fewer
//! levels left). The memory model at N = 2^16 (`Bootstrapper::key_memory`, encapsulated, no
//! keys made, the plain sine at Δ_0 = 2^54): 4 special primes: L = 25, 7 digits at the top,
//! keys 7.69 GiB + diagonals 3.01 GiB, output level 11; 6: L = 23, 4 digits, 4.63 + 2.70 GiB,
//! output level 9; 8: L = 21, 3 digits, 3.47 + 2.39 GiB, output level 7 (OpenFHE's [3,3]
//! bootstrap leaves 4); the corrected EvalMod at 2^56 with 8: L = 20, keys 3.35 GiB +
//! diagonals 2.16 GiB, output level 5. Fewer digits
//! also mean fewer NTTs per key switch (ModUp ≈ digits·(ℓ + 1 + k) transforms): an NTT-count
//! model of the whole bootstrap gives 0.80× (6) and 0.72× (8) of the key-switching work of 4.
//! After the first bootstrap it times `POLYCERT_BOOT_BENCH_REPS` more (default 2) and prints
//! their median, as `benches/compare/openfhe_bootstrap.py --reps 2` does for OpenFHE, then the
//! counts of the evaluator's limb pool (limbs reused and freshly allocated, bytes retained).
//! `POLYCERT_BOOT_BENCH_LOGN=10` runs a toy INSECURE N = 2^10 instead (smoke runs):
//! `POLYCERT_BOOT_BENCH_LOGN=10 cargo bench --bench bootstrap -- --test`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use polycert::ckks::{
    available_memory_bytes, bootstrap_params, BootstrapConfig, Bootstrapper, CkksContext,
    Evaluator, PublicKey, RelinKey, SecretKey,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// log₂ Δ_0 of the corrected EvalMod at N ≥ 2^15 (the measured optimum, `bootstrap` module
/// docs).
const CORRECTED_SCALE_BITS: u32 = 56;

fn bench(c: &mut Criterion) {
    let log_n: u32 = std::env::var("POLYCERT_BOOT_BENCH_LOGN")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(16);
    let n = 1usize << log_n;
    let insecure = log_n < 15;
    let dense = std::env::var("POLYCERT_BOOT_BENCH_DENSE").is_ok_and(|v| v == "1");
    let sine = std::env::var("POLYCERT_BOOT_BENCH_EVALMOD").is_ok_and(|v| v == "sine");
    let config = if dense {
        BootstrapConfig::full(n).unwrap()
    } else if sine {
        BootstrapConfig::encapsulated(n).unwrap()
    } else {
        BootstrapConfig::encapsulated_corrected(n).unwrap()
    };
    let depth = config.depth();
    let user = if insecure { Some(2) } else { None };
    let special: usize = std::env::var("POLYCERT_BOOT_BENCH_SPECIAL")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    let scale_bits: u32 = std::env::var("POLYCERT_BOOT_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(match (insecure, dense, sine) {
            (true, _, _) => 50,
            (false, true, _) => 57,
            (false, false, true) => 54,
            (false, false, false) => CORRECTED_SCALE_BITS,
        });
    let params = bootstrap_params(log_n, depth, scale_bits, user, special, insecure).unwrap();
    eprintln!(
        "N = 2^{log_n}, {} slots, L = {}, log2 QP = {:.1}, {}; secret: {}; EvalMod K = {}, \
         degree {}, {} double angles{}, Δ_0 = 2^{scale_bits}",
        config.slots,
        params.max_level(),
        params.log_qp(),
        params.security(),
        config
            .sparse_secret
            .map_or("dense ternary".to_string(), |h| format!(
                "dense ternary, ModRaise under an ephemeral sparse secret of weight {h}"
            )),
        config.eval_mod.k,
        config.eval_mod.degree,
        config.eval_mod.double_angles,
        if config.eval_mod.cubic_correction {
            " + the cubic correction (second harmonic)"
        } else {
            " (plain sine)"
        }
    );
    let ctx = CkksContext::new(params).unwrap();
    let t_new = std::time::Instant::now();
    let b = Bootstrapper::new(&ctx, config).unwrap();
    let new_s = t_new.elapsed().as_secs_f64();
    let mem = b.key_memory(&ctx);
    eprintln!("{mem}");
    eprintln!("bootstrapper construction (encodes the DFT diagonals once): {new_s:.2} s");
    let avail = available_memory_bytes().unwrap_or(u64::MAX);
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let sk = SecretKey::generate(&ctx, &mut rng);
    let t_keys = std::time::Instant::now();
    let gk = match b.generate_keys(&ctx, &sk, avail, &mut rng) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("skipping the bootstrap bench: {e}");
            return;
        }
    };
    let pk = PublicKey::generate(&ctx, &sk, &mut rng);
    let rk = RelinKey::generate(&ctx, &sk, &mut rng);
    let ev = Evaluator::new(Arc::clone(&ctx), Some(rk), gk).unwrap();
    let keys_s = t_keys.elapsed().as_secs_f64();
    let slots = ctx.params().slots();
    let v: Vec<f64> = (0..slots).map(|_| rng.random_range(-1.0..1.0)).collect();
    let top = ctx.params().max_level();
    let pt = ctx.encode(&v, top, ctx.params().scale(top)).unwrap();
    let ct = ctx.encrypt(&pk, &pt, &mut rng).unwrap();
    let ct0 = ev.adjust_to(&ct, 0).unwrap();
    let t_boot = std::time::Instant::now();
    let (out, phases) = b.bootstrap_timed(&ev, &ct0).unwrap();
    let boot_s = t_boot.elapsed().as_secs_f64();
    eprintln!("first bootstrap by step: {phases}");
    let got = ctx.decrypt_decode(&sk, &out).unwrap();
    let err = got
        .iter()
        .zip(&v)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    eprintln!(
        "bootstrap: depth {}, output level {} of L = {top}, precision {:.1} bits (measured, \
         max over {slots} slots); key generation {keys_s:.1} s, first bootstrap {boot_s:.1} s \
         (one run, wall clock, {} rayon threads)",
        b.depth(),
        out.level(),
        -err.log2(),
        rayon::current_num_threads()
    );
    // Error decomposition (measured): m = the encoded message's coefficients (without the
    // encryption noise), its image under EvalMod's exact function (the sine's bias, or the
    // corrected one's), decoded; the bias is |model − m|, the rest |output − model| (CKKS
    // noise of the bootstrap, interpolation error, the input's own noise).
    let scale0 = ctx.params().scale(0);
    let q0 = *ctx.params().q().first().unwrap() as f64;
    let enc = ctx.encoder();
    let m: Vec<f64> = enc
        .encode_coeffs(&v, scale0)
        .unwrap()
        .iter()
        .map(|&c| c as f64)
        .collect();
    let model: Vec<f64> = m
        .iter()
        .map(|&x| q0 * config.eval_mod.reduce_model(x / q0))
        .collect();
    let exact = enc.decode_coeffs(&m, scale0);
    let modelled = enc.decode_coeffs(&model, scale0);
    let max_bits = |a: &[f64], b: &[f64]| {
        -a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max)
            .log2()
    };
    let max_coeff = m.iter().fold(0.0f64, |a, x| a.max(x.abs()));
    eprintln!(
        "error decomposition (measured, max over the slots): EvalMod's bias {:.1} bits \
         (max |m|/q_0 = 2^{:.1}), the rest (noise, interpolation) {:.1} bits",
        max_bits(&modelled, &exact),
        (max_coeff / q0).log2(),
        max_bits(&got, &modelled)
    );
    // The median of more bootstraps (OpenFHE's script reports the same: its first
    // bootstrap is slower than the later ones); statistics.median's convention (the mean of
    // the two middle values for an even count).
    let reps: usize = std::env::var("POLYCERT_BOOT_BENCH_REPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    if reps > 0 {
        let mut cpu: Vec<f64> = Vec::with_capacity(reps);
        let mut times: Vec<f64> = (0..reps)
            .map(|_| {
                let c = cpu_seconds();
                let t = std::time::Instant::now();
                b.bootstrap(&ev, &ct0).unwrap();
                let wall = t.elapsed().as_secs_f64();
                if let (Some(c0), Some(c1)) = (c, cpu_seconds()) {
                    cpu.push(c1 - c0);
                }
                wall
            })
            .collect();
        cpu.sort_by(f64::total_cmp);
        if let Some(c) = cpu.get(cpu.len() / 2) {
            eprintln!(
                "later bootstraps: CPU time (user + sys of all threads, /proc/self/stat) median \
                 {c:.2} s (sorted: {} s; load-robust, for A/B on a busy machine)",
                cpu.iter()
                    .map(|t| format!("{t:.2}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        times.sort_by(f64::total_cmp);
        let mid = |i: usize| times.get(i).copied().unwrap_or(f64::NAN);
        let median = if reps % 2 == 1 {
            mid(reps / 2)
        } else {
            (mid(reps / 2 - 1) + mid(reps / 2)) / 2.0
        };
        let all: Vec<String> = times.iter().map(|t| format!("{t:.2}")).collect();
        eprintln!(
            "later bootstraps: median of {reps} more {median:.2} s (sorted: {} s; wall clock, {} \
             rayon threads)",
            all.join(", "),
            rayon::current_num_threads()
        );
    }
    eprintln!("limb pool: {}", ctx.pool_stats());
    let mut g = c.benchmark_group("bootstrap");
    g.sample_size(10);
    g.bench_function(
        BenchmarkId::new(
            if dense {
                "full_slots_dense"
            } else if sine {
                "full_slots_sine"
            } else {
                "full_slots"
            },
            format!("N=2^{log_n}"),
        ),
        |bch| bch.iter(|| b.bootstrap(&ev, &ct0).unwrap()),
    );
    g.finish();
}

/// user + sys CPU seconds of this process (all threads) from /proc/self/stat (fields 14 and
/// 15, in clock ticks of 1/100 s); None where it cannot be read.
fn cpu_seconds() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = s.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14, stime field 15.
    let ut: f64 = f.get(11)?.parse().ok()?;
    let st: f64 = f.get(12)?.parse().ok()?;
    Some((ut + st) / 100.0)
}

criterion_group!(benches, bench);
criterion_main!(benches);
