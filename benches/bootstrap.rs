//! CKKS bootstrapping bench (issue 14): one full-slot bootstrap (level 0 → the output level)
//! with a dense uniform ternary secret and sparse-secret encapsulation (h = 32). Default:
//! N = 2^16, 128-bit (HomomorphicEncryption.org), Δ_0 = 2^54 (dense: 2^57), q_0 ≈ 2^60,
//! `BootstrapConfig::encapsulated` (level budget 3/3 at N = 2^16, EvalMod K = 12 with 2 double
//! angles, degree 47); `POLYCERT_BOOT_BENCH_DENSE=1` runs `BootstrapConfig::full` instead
//! (ModRaise under the dense secret, K = 482 with 6 double angles, degree 95),
//! four 61-bit special primes; the other primes are user levels filling the 128-bit bound.
//! Before key generation it prints the key memory model and refuses (skips, with the reason)
//! when it exceeds MemAvailable; before timing it prints the measured precision and levels.
//!
//! `POLYCERT_BOOT_BENCH_SCALE=55` sets log₂ Δ_0 (default at N = 2^16: 54 encapsulated, 11 user
//! levels of 54 bits; 57 dense, 5 user levels; 50 for the toy; see the `bootstrap` module docs
//! for the measured precision against Δ_0).
//! `POLYCERT_BOOT_BENCH_SPECIAL=6` uses six special primes (fewer digits: smaller keys, fewer
//! levels left). The memory model at N = 2^16 (`Bootstrapper::key_memory`, encapsulated, no
//! keys made): 4 special primes: L = 25, 7 digits at the top, keys 7.69 GiB + diagonals
//! 3.01 GiB, output level 11; 6: L = 23, 4 digits, 4.63 + 2.70 GiB, output level 9; 8: L = 21,
//! 3 digits, 3.47 + 2.39 GiB, output level 7 (OpenFHE's [3,3] bootstrap leaves 4). Fewer digits
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

fn bench(c: &mut Criterion) {
    let log_n: u32 = std::env::var("POLYCERT_BOOT_BENCH_LOGN")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(16);
    let n = 1usize << log_n;
    let insecure = log_n < 15;
    let dense = std::env::var("POLYCERT_BOOT_BENCH_DENSE").is_ok_and(|v| v == "1");
    let config = if dense {
        BootstrapConfig::full(n).unwrap()
    } else {
        BootstrapConfig::encapsulated(n).unwrap()
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
        .unwrap_or(match (insecure, dense) {
            (true, _) => 50,
            (false, true) => 57,
            (false, false) => 54,
        });
    let params = bootstrap_params(log_n, depth, scale_bits, user, special, insecure).unwrap();
    eprintln!(
        "N = 2^{log_n}, {} slots, L = {}, log2 QP = {:.1}, {}; secret: {}; EvalMod K = {}, \
         degree {}, {} double angles",
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
        config.eval_mod.double_angles
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
    // The median of more bootstraps (OpenFHE's script reports the same: its first
    // bootstrap is slower than the later ones); statistics.median's convention (the mean of
    // the two middle values for an even count).
    let reps: usize = std::env::var("POLYCERT_BOOT_BENCH_REPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    if reps > 0 {
        let mut times: Vec<f64> = (0..reps)
            .map(|_| {
                let t = std::time::Instant::now();
                b.bootstrap(&ev, &ct0).unwrap();
                t.elapsed().as_secs_f64()
            })
            .collect();
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
            } else {
                "full_slots"
            },
            format!("N=2^{log_n}"),
        ),
        |bch| bch.iter(|| b.bootstrap(&ev, &ct0).unwrap()),
    );
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
