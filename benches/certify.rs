//! Time to certify and to check (issue 3's speed targets, one core: neither `certify` nor the
//! checker spawns threads):
//! - `certify/alpha14/exact`: every claim (closeness, condition (1), enclosure, Theorem 1,
//!   max-pooling n = 4 and 9) for the committed α = 14 polynomial (ζ = 17, {15, 27, 29}), read
//!   from `proofs/table1-alpha14.json`. Target: ≤ 2 s.
//! - `check/alpha14/file`: the independent exact checker on `proofs/table1-alpha14.json`
//!   (parse, digest, re-derivation of every box). Target: ≤ 10 s.
//!
//! Sollya's `supnorm` on the α = 8 composite is timed side by side by
//! `benches/compare/sollya_supnorm.py` (with `certify/alpha08/exact` here as polycert's side).
#![allow(missing_docs)] // criterion_group! generates an undocumented function

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use polycert::certify::{certify, read_json_certificate, CertifyConfig};
use polycert::proof::check_file;

fn proof(alpha: u32) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/proofs"))
        .join(format!("table1-alpha{alpha:02}.json"))
}

fn bench_certify(c: &mut Criterion) {
    let mut g = c.benchmark_group("certify");
    g.sample_size(10);
    for alpha in [8u32, 14] {
        let (Ok((poly, _, _)), Ok(cfg)) = (
            read_json_certificate(&proof(alpha)),
            CertifyConfig::table1(alpha),
        ) else {
            eprintln!("skipping certify bench at alpha {alpha}: cannot read its certificate");
            continue;
        };
        g.bench_function(BenchmarkId::new(format!("alpha{alpha:02}"), "exact"), |b| {
            b.iter(|| certify(&poly.poly, &cfg).map(|c| c.all_hold()));
        });
    }
    g.finish();
}

fn bench_check(c: &mut Criterion) {
    let mut g = c.benchmark_group("check");
    g.sample_size(10);
    let p = proof(14);
    g.bench_function(BenchmarkId::new("alpha14", "file"), |b| {
        b.iter(|| check_file(&p).map(|r| r.claims.len()));
    });
    g.finish();
}

criterion_group!(benches, bench_certify, bench_check);
criterion_main!(benches);
