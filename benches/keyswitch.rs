//! Key-switching microbench (issue 14, item 2): where one hybrid key switch spends its time at
//! the bootstrapping parameters (N = 2^16, `BootstrapConfig::encapsulated` chain: L = 25,
//! 26 q-primes, four 61-bit special primes, 7 digits of 4 primes).
//!
//! Groups:
//! - `ntt`: one forward / inverse negacyclic NTT of one 60-bit prime at N = 2^16, fhe-math's
//!   native Harvey NTT against tfhe-ntt's `prime64::Plan` (the concrete-ntt successor; on
//!   stable Rust its AVX2 path).
//! - `keyswitch`: a relinearised multiplication with rescale (`mul`), a rotation
//!   (`rotate`: ModUp, inner product, ModDown), and hoisted rotations by 1 and 2 slots
//!   (one ModUp, two inner products and ModDowns): hoisted(2) − rotate ≈ inner product +
//!   ModDown, rotate − that ≈ ModUp.
//!
//! Before criterion it prints, per operation, the mean wall time, the mean process CPU time
//! (user + system, from /proc/self/stat) and the mean minor page faults of
//! `POLYCERT_KS_BENCH_REPS` runs (default 5): on a loaded machine the CPU time is the steadier
//! figure for A/B comparisons, and the fault count (a count, not a timing) shows the limb
//! pool at work; then the pool's counts.
//!
//! Keys: one relinearisation key and two Galois keys at the top level (~0.8 GB).
//! `POLYCERT_KS_BENCH_LOGN=12` runs a toy INSECURE N = 2^12 instead (smoke runs:
//! `POLYCERT_KS_BENCH_LOGN=12 cargo bench --bench keyswitch -- --test`).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use fhe_math::ntt::NttOperator;
use fhe_math::zq::Modulus;
use polycert::ckks::{
    bootstrap_params, BootstrapConfig, CkksContext, Evaluator, GaloisKeys, PublicKey, RelinKey,
    SecretKey,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

fn bench(c: &mut Criterion) {
    let log_n: u32 = std::env::var("POLYCERT_KS_BENCH_LOGN")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(16);
    let n = 1usize << log_n;
    let insecure = log_n < 15;
    let config = BootstrapConfig::encapsulated(n).unwrap();
    let user = if insecure { Some(2) } else { None };
    let params = bootstrap_params(log_n, config.depth(), 54, user, 4, insecure).unwrap();
    let label = format!("N=2^{log_n}");
    eprintln!(
        "N = 2^{log_n}, L = {}, {} special primes, digit size {}, {} rayon threads",
        params.max_level(),
        params.p().len(),
        params.digit_size(),
        rayon::current_num_threads()
    );

    // One NTT of one prime: fhe-math native against tfhe-ntt.
    let p = *params.q().last().unwrap();
    let m = Modulus::new(p).unwrap();
    let native = NttOperator::new(&m, n).unwrap();
    let plan = tfhe_ntt::prime64::Plan::try_new(n, p).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let x: Vec<u64> = (0..n).map(|_| rng.random_range(0..p)).collect();
    let mut g = c.benchmark_group("ntt");
    g.sample_size(20);
    let mut buf = x.clone();
    g.bench_function(BenchmarkId::new("fhe_math_forward", &label), |b| {
        b.iter(|| native.forward(&mut buf))
    });
    g.bench_function(BenchmarkId::new("fhe_math_backward", &label), |b| {
        b.iter(|| native.backward(&mut buf))
    });
    g.bench_function(BenchmarkId::new("tfhe_ntt_forward", &label), |b| {
        b.iter(|| plan.fwd(&mut buf))
    });
    g.bench_function(BenchmarkId::new("tfhe_ntt_backward", &label), |b| {
        b.iter(|| {
            plan.inv(&mut buf);
            plan.normalize(&mut buf);
        })
    });
    g.finish();

    let ctx = CkksContext::new(params).unwrap();
    let sk = SecretKey::generate(&ctx, &mut rng);
    let pk = PublicKey::generate(&ctx, &sk, &mut rng);
    let rk = RelinKey::generate(&ctx, &sk, &mut rng);
    let gk = GaloisKeys::generate(&ctx, &sk, &[1, 2], &mut rng);
    let ev = Evaluator::new(Arc::clone(&ctx), Some(rk), gk).unwrap();
    let top = ctx.params().max_level();
    let slots = ctx.params().slots();
    let v: Vec<f64> = (0..slots).map(|_| rng.random_range(-1.0..1.0)).collect();
    let pt = ctx.encode(&v, top, ctx.params().scale(top)).unwrap();
    let ct = ctx.encrypt(&pk, &pt, &mut rng).unwrap();
    let reps: u32 = std::env::var("POLYCERT_KS_BENCH_REPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    // Outputs go back to the evaluator's limb pool, as a caller that is done with them does.
    let ops: [(&str, &dyn Fn()); 4] = [
        ("mul_relin_rescale", &|| {
            ev.recycle(ev.mul(&ct, &ct).unwrap())
        }),
        ("rotate", &|| ev.recycle(ev.rotate(&ct, 1).unwrap())),
        ("rotate_hoisted_2", &|| {
            for x in ev.rotate_hoisted(&ct, &[1, 2]).unwrap() {
                ev.recycle(x);
            }
        }),
        ("rescale", &|| ev.recycle(ev.rescale(&ct).unwrap())),
    ];
    for (name, op) in ops {
        op();
        let (w0, c0, f0) = (std::time::Instant::now(), cpu_seconds(), minor_faults());
        for _ in 0..reps {
            op();
        }
        let wall = w0.elapsed().as_secs_f64() / f64::from(reps);
        let cpu = c0
            .zip(cpu_seconds())
            .map(|(a, b)| (b - a) / f64::from(reps));
        let faults = f0
            .zip(minor_faults())
            .map(|(a, b)| (b - a) / u64::from(reps));
        eprintln!(
            "{name} ({label}, {reps} runs): wall {:.1} ms, process CPU {} ms, minor page \
             faults {}",
            1e3 * wall,
            cpu.map_or("?".into(), |c| format!("{:.1}", 1e3 * c)),
            faults.map_or("?".into(), |f| f.to_string())
        );
    }
    eprintln!("limb pool: {}", ctx.pool_stats());
    let mut g = c.benchmark_group("keyswitch");
    g.sample_size(10);
    g.bench_function(BenchmarkId::new("mul_relin_rescale", &label), |b| {
        b.iter(|| ev.mul(&ct, &ct).unwrap())
    });
    g.bench_function(BenchmarkId::new("rotate", &label), |b| {
        b.iter(|| ev.rotate(&ct, 1).unwrap())
    });
    g.bench_function(BenchmarkId::new("rotate_hoisted_2", &label), |b| {
        b.iter(|| ev.rotate_hoisted(&ct, &[1, 2]).unwrap())
    });
    g.bench_function(BenchmarkId::new("rescale", &label), |b| {
        b.iter(|| ev.rescale(&ct).unwrap())
    });
    g.finish();
}

/// User + system CPU seconds of this process (fields 14 and 15 of /proc/self/stat, in
/// clock ticks of 1/100 s); None where that file is unreadable.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces: count fields after its closing ')'.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// Minor page faults of this process so far (field 10 of /proc/self/stat); None where that
/// file is unreadable.
fn minor_faults() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(7)?.parse().ok()
}

criterion_group!(benches, bench);
criterion_main!(benches);
