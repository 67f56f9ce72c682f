//! Cost of the per-input bound against an exact forward pass: ResNet-20 on the first 32
//! images of the CIFAR-10 JPEG test file, f64, images in parallel (rayon) in both cases;
//! α = 14, B per layer calibrated on the same images (margin 1.1, as `polycert bound`).
//! Target: per-input ≤ 3× exact; with early exit (the report's path) below the full
//! per-input (measured under load, one run: exact 117 ms, per-input 292 ms, early exit 228 ms).
#![allow(missing_docs)] // criterion_group! generates an undocumented function

use std::path::PathBuf;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use polycert::bounds::{BoundedNetwork, PolyErrors};
use polycert::nn::{calibrate, import_onnx, ActivationPolicy, Dataset, Engine, RangePolicy};
use rayon::prelude::*;

fn shared() -> Option<PathBuf> {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared"));
    p.join("models").is_dir().then_some(p)
}

fn bench_per_input(c: &mut Criterion) {
    let Some(s) = shared() else {
        eprintln!("skipping bounds benches: ../shared is absent");
        return;
    };
    let (Ok(net), Ok(mut data)) = (
        import_onnx(&s.join("models/resnet20_cifar10.onnx")),
        Dataset::open(&s.join("data/cifar10/test_batch_jpeg.bin"), None),
    ) else {
        eprintln!("skipping bounds benches: cannot read the model or data");
        return;
    };
    let n = 32;
    data.truncate(n);
    let net = Arc::new(net);
    let engine: Engine<f64> = Engine::new(Arc::clone(&net));
    let Ok(bn) = BoundedNetwork::new(Arc::clone(&net)) else {
        return;
    };
    let proofs = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/proofs"));
    let Ok(pe) = PolyErrors::load(&proofs, 14) else {
        eprintln!("skipping: cannot load proofs/table1-alpha14.json");
        return;
    };
    let xs: Vec<Vec<f64>> = (0..n)
        .filter_map(|i| {
            let mut x = Vec::new();
            net.preprocess.apply(data.image(i)?, 3, &mut x);
            Some(x)
        })
        .collect();
    let Ok(mut cal) = calibrate(&engine, &data, None) else {
        return;
    };
    let Ok(ranges) = cal.choose(RangePolicy::PerLayer { margin: 1.1 }) else {
        return;
    };
    let mut g = c.benchmark_group("resnet20_f64_batch32");
    g.throughput(Throughput::Elements(n as u64));
    g.sample_size(10);
    g.bench_function(BenchmarkId::new("exact_forward", n), |b| {
        b.iter(|| {
            engine
                .run_batch(&xs, &ActivationPolicy::Exact)
                .map(|r| r.0.len())
                .unwrap_or(0)
        });
    });
    g.bench_function(BenchmarkId::new("per_input_bound_alpha14", n), |b| {
        b.iter(|| {
            xs.par_iter()
                .filter_map(|x| bn.per_input(&pe, &ranges, x).ok())
                .count()
        });
    });
    // As used by `polycert bound --per-input`: an input failing the range check stops at
    // its first failing block (on ResNet-20 every image does, at block 2–4).
    g.bench_function(
        BenchmarkId::new("per_input_bound_alpha14_early_exit", n),
        |b| {
            b.iter(|| {
                xs.par_iter()
                    .filter_map(|x| bn.per_input_with(&pe, &ranges, x, None, true).ok())
                    .count()
            });
        },
    );
    g.finish();
}

criterion_group!(benches, bench_per_input);
criterion_main!(benches);
