//! CKKS benchmarks (issue 6): multiplication + relinearisation + rescale, one rotation, and
//! one encrypted r̃_α at α = 14 (Table 1 degrees {15, 27, 29}, depth 15) on a full ciphertext,
//! at N = 2^15 and 2^16 with 128-bit parameters of 16 levels (q_0 ≈ 60 bits, scale 2^40).
//! Peer figures: benches/compare/tenseal_ops.py (SEAL via TenSEAL) on the same shapes.
//!
//! `POLYCERT_CKKS_BENCH_LOGN=15` restricts to one N.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use polycert::ckks::{
    relu_scaled, sign_plans, CkksContext, CkksParams, Evaluator, GaloisKeys, PublicKey, RelinKey,
    SecretKey,
};
use polycert::poly::EvalPlan;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

fn bench(c: &mut Criterion) {
    let only: Option<u32> = std::env::var("POLYCERT_CKKS_BENCH_LOGN")
        .ok()
        .and_then(|s| s.parse().ok());
    let sign = polycert::remez::table1_sign(14).unwrap();
    let plans: Vec<EvalPlan> = sign_plans(&sign);
    let mut g = c.benchmark_group("ckks");
    g.sample_size(10);
    for log_n in [15u32, 16] {
        if only.is_some_and(|o| o != log_n) {
            continue;
        }
        let params = CkksParams::for_depth(log_n, 16, 20, false).unwrap();
        let ctx = CkksContext::new(params).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let sk = SecretKey::generate(&ctx, &mut rng);
        let pk = PublicKey::generate(&ctx, &sk, &mut rng);
        let rk = RelinKey::generate(&ctx, &sk, &mut rng);
        let gk = GaloisKeys::generate(&ctx, &sk, &[1], &mut rng);
        let ev = Evaluator::new(Arc::clone(&ctx), Some(rk), gk).unwrap();
        let top = ctx.params().max_level();
        let n = ctx.params().slots();
        let v: Vec<f64> = (0..n).map(|i| (i as f64 / n as f64) * 2.0 - 1.0).collect();
        let pt = ctx.encode(&v, top, ctx.params().scale(top)).unwrap();
        let ct = ctx.encrypt(&pk, &pt, &mut rng).unwrap();
        g.bench_function(
            BenchmarkId::new("mul_relin_rescale", format!("N=2^{log_n}")),
            |b| b.iter(|| ev.mul(&ct, &ct).unwrap()),
        );
        g.bench_function(BenchmarkId::new("rotate", format!("N=2^{log_n}")), |b| {
            b.iter(|| ev.rotate(&ct, 1).unwrap())
        });
        g.bench_function(
            BenchmarkId::new("relu_alpha14", format!("N=2^{log_n}")),
            |b| b.iter(|| relu_scaled(&ev, &plans, &ct, 1.0).unwrap()),
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
