//! Time to compute composite minimax sign polynomials (issue 2's speed targets):
//! - `table1/zeta_search/4..14`: the whole of the paper's Table 1 — for every α = 4..14 the ζ
//!   search, each ζ with the degree optimizer (f64 search, multi-precision rebuild of the
//!   chosen set) and the measured condition (1) — from an empty optimizer cache, exactly what
//!   `polycert sign --table --alpha 4..14` computes. Target: under 60 s on 2 cores.
//! - `alpha14/table1_set/15,27,29`: one α = 14 polynomial (ζ = 17, degrees {15, 27, 29}) built
//!   by the multi-precision Remez exchange, stage by stage. Target: under 2 s.
//! - `alpha14/optimize/zeta17`: the degree optimizer plus rebuild for α = 14, ζ = 17 from an
//!   empty cache (`polycert sign --alpha 14 --zeta 17`).
#![allow(missing_docs)] // criterion_group! generates an undocumented function

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use polycert::poly::Degree;
use polycert::remez::{composite_with_zeta, eps_from_zeta, zeta_search, SignOptimizer};

fn bench_table1(c: &mut Criterion) {
    let mut g = c.benchmark_group("table1");
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(1));
    g.measurement_time(Duration::from_secs(1));
    g.bench_function(BenchmarkId::new("zeta_search", "4..14"), |b| {
        b.iter(|| {
            let mut opt = SignOptimizer::new();
            let mut zetas = Vec::new();
            for alpha in 4..=14 {
                if let Ok(s) = zeta_search(&mut opt, alpha) {
                    zetas.push(s.zeta);
                }
            }
            zetas
        });
    });
    g.finish();
}

fn bench_alpha14(c: &mut Criterion) {
    let mut g = c.benchmark_group("alpha14");
    g.sample_size(10);
    let degs = [Degree(15), Degree(27), Degree(29)];
    g.bench_function(BenchmarkId::new("table1_set", "15,27,29"), |b| {
        b.iter(|| composite_with_zeta(14, 17, &degs).map(|s| s.log2_tau()));
    });
    g.bench_function(BenchmarkId::new("optimize", "zeta17"), |b| {
        b.iter(|| {
            let mut opt = SignOptimizer::new();
            opt.optimal_composite(Some(14), Some(17), &eps_from_zeta(14, 17), 13)
                .map(|(o, _)| o.mults)
        });
    });
    g.finish();
}

criterion_group!(benches, bench_alpha14, bench_table1);
criterion_main!(benches);
