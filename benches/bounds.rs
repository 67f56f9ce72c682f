//! Cost of the per-input bound against an exact forward pass: ResNet-20 on the first 32
//! images of the CIFAR-10 JPEG test file, f64, images in parallel (rayon) in both cases;
//! α = 14, B per layer calibrated on the same images (margin 1.1, as `polycert bound`).
//! Target: per-input ≤ 3× exact; with early exit (the report's path) below the full
//! per-input (measured under load, one run: exact 117 ms, per-input 292 ms, early exit 228 ms).
#![allow(missing_docs)] // criterion_group! generates an undocumented function

use std::path::{Path, PathBuf};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use polycert::bounds::{
    BoundedNetwork, FirstOrderNetwork, Frac, MarginCertifier, PolyErrors, TrajectoryBound,
    TrajectoryCertifier,
};
use polycert::nn::{
    calibrate, import_onnx, ActivationPolicy, Dataset, Engine, Network, RangePolicy, RunStats,
};
use rayon::prelude::*;

fn shared() -> Option<PathBuf> {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared"));
    p.join("models").is_dir().then_some(p)
}

/// A CIFAR-10 model with its f64 engine, the first `n` test images preprocessed, and B per
/// layer calibrated on them (margin 1.1, as `polycert bound`); `None` (with a printed
/// reason) when the model or data cannot be read.
fn setup(s: &Path, model: &str, n: usize) -> Option<Setup> {
    setup_data(s, model, "cifar10/test_batch_jpeg.bin", n)
}

/// [`setup`] on the data file `data` (under `../shared/data`).
fn setup_data(s: &Path, model: &str, data: &str, n: usize) -> Option<Setup> {
    let (Ok(net), Ok(mut data)) = (
        import_onnx(&s.join(format!("models/{model}.onnx"))),
        Dataset::open(&s.join("data").join(data), None),
    ) else {
        eprintln!("skipping bounds benches: cannot read {model} or the data");
        return None;
    };
    data.truncate(n);
    let net = Arc::new(net);
    let engine: Engine<f64> = Engine::new(Arc::clone(&net));
    let xs: Vec<Vec<f64>> = (0..n)
        .filter_map(|i| {
            let mut x = Vec::new();
            net.preprocess.apply(data.image(i)?, 3, &mut x);
            Some(x)
        })
        .collect();
    let mut cal = calibrate(&engine, &data, None).ok()?;
    let ranges = cal.choose(RangePolicy::PerLayer { margin: 1.1 }).ok()?;
    Some((net, engine, xs, ranges))
}

type Setup = (
    Arc<Network>,
    Engine<f64>,
    Vec<Vec<f64>>,
    std::collections::BTreeMap<usize, f64>,
);

fn bench_per_input(c: &mut Criterion) {
    let Some(s) = shared() else {
        eprintln!("skipping bounds benches: ../shared is absent");
        return;
    };
    let n = 32;
    let Some((net, engine, xs, ranges)) = setup(&s, "resnet20_cifar10", n) else {
        return;
    };
    let Ok(bn) = BoundedNetwork::new(Arc::clone(&net)) else {
        return;
    };
    let proofs = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/proofs"));
    let Ok(pe) = PolyErrors::load(&proofs, 14) else {
        eprintln!("skipping: cannot load proofs/table1-alpha14.json");
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

/// Cost of the first-order limit (one exact forward pass + 9 backward passes, all nine
/// α 6..14) against one exact f64 forward pass of the engine, one image at a time on one
/// thread, on ResNet-20 and ResNet-44 (first 4 CIFAR-10 JPEG test images, B calibrated on
/// them). Measured (one run, `RAYON_NUM_THREADS=1`, shared 2-core machine), per image:
/// ResNet-20 exact 3.3 ms, first-order 58 ms (17.6×); ResNet-44 exact 7.2 ms, first-order
/// 136 ms (18.7×).
fn bench_first_order(c: &mut Criterion) {
    let Some(s) = shared() else {
        eprintln!("skipping first-order benches: ../shared is absent");
        return;
    };
    let proofs = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/proofs"));
    let Ok(pes) = (6..=14)
        .map(|a| PolyErrors::load(&proofs, a))
        .collect::<Result<Vec<_>, _>>()
    else {
        eprintln!("skipping: cannot load proofs/table1-alpha06..14.json");
        return;
    };
    let n = 4;
    for m in ["resnet20_cifar10", "resnet44_cifar10"] {
        let Some((net, engine, xs, ranges)) = setup(&s, m, n) else {
            return;
        };
        let Ok(fo) = FirstOrderNetwork::new(Arc::clone(&net)) else {
            return;
        };
        let mut g = c.benchmark_group(format!("{m}_f64_one_thread"));
        g.throughput(Throughput::Elements(n as u64));
        g.sample_size(10);
        g.bench_function(BenchmarkId::new("exact_forward", n), |b| {
            b.iter(|| {
                xs.iter()
                    .filter_map(|x| {
                        engine
                            .run(x, &ActivationPolicy::Exact, &mut RunStats::default())
                            .ok()
                    })
                    .count()
            });
        });
        g.bench_function(BenchmarkId::new("first_order_limit_alpha6to14", n), |b| {
            b.iter(|| {
                xs.iter()
                    .filter_map(|x| fo.limit(&pes, &ranges, x).ok())
                    .count()
            });
        });
        g.finish();
    }
}

/// Cost of the trajectory certificate (fixed-point ball enclosures of F(x) and F^α(x), F = 128
/// fraction bits, α = 14: one F pass and one F^α pass) against one exact f64 forward pass of
/// the engine, one image at a time on one thread (run with `RAYON_NUM_THREADS=1`), ResNet-20,
/// the first 2 CIFAR-10 JPEG test images, B calibrated on them. Target: ≤ 1 s per image
/// per α; goal ≤ 100× the exact pass. Before the fixed-width fast path (GMP dot products and
/// polynomials): 2.18 s against 3.52 ms (one thread, quiet machine); the fast path gives
/// bit-identical balls.
fn bench_trajectory(c: &mut Criterion) {
    let Some(s) = shared() else {
        eprintln!("skipping trajectory benches: ../shared is absent");
        return;
    };
    let proofs = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/proofs"));
    let Ok(pe) = PolyErrors::load(&proofs, 14) else {
        eprintln!("skipping: cannot load proofs/table1-alpha14.json");
        return;
    };
    let n = 2;
    let Some((net, engine, xs, ranges)) = setup(&s, "resnet20_cifar10", n) else {
        return;
    };
    let Ok(tc) = TrajectoryCertifier::new(Arc::clone(&net), &[pe], ranges, &[Frac(128)]) else {
        eprintln!("skipping: trajectory certifier could not be built");
        return;
    };
    let mut g = c.benchmark_group("resnet20_trajectory_per_image");
    g.sample_size(10);
    g.bench_function(BenchmarkId::new("exact_forward_f64", 1), |b| {
        b.iter(|| {
            xs.iter()
                .take(1)
                .filter_map(|x| {
                    engine
                        .run(x, &ActivationPolicy::Exact, &mut RunStats::default())
                        .ok()
                })
                .count()
        });
    });
    g.bench_function(BenchmarkId::new("trajectory_alpha14_f128", 1), |b| {
        b.iter(|| xs.iter().take(1).filter_map(|x| tc.certify(x).ok()).count());
    });
    g.finish();
}

/// The certified noise margin η of one image (ResNet-20, α = 14, the first CIFAR-10 JPEG
/// test image, B calibrated on the first 2): the recorded trajectory at 128 bits, the
/// per-site Taylor coefficients, the relational boxes' kernels |M̂| and the back-substitution
/// of the nine margins once per image, then the η search (forward boxes and slope
/// enclosures plus one dot product per class and site per tested η, with the
/// back-substituted site boxes of the last stage), and the same without those boxes, with the
/// whole last stage back-substituted, and with the |W| boxes alone. Run with `RAYON_NUM_THREADS=1`. Target: ≤ 10 s per image; issue 13's
/// next target ≤ 2.5 s. Also the MNIST max-pool model (first MNIST test image, B calibrated
/// on the first 2), whose M̃_{α,n} nodes the margin supports since the `margin4` helper.
fn bench_margin(c: &mut Criterion) {
    let Some(s) = shared() else {
        eprintln!("skipping margin bench: ../shared is absent");
        return;
    };
    let proofs = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/proofs"));
    let Ok(pe) = PolyErrors::load(&proofs, 14) else {
        eprintln!("skipping: cannot load proofs/table1-alpha14.json");
        return;
    };
    let pes = [pe];
    let Some((tc, mc, x, tb)) =
        setup(&s, "resnet20_cifar10", 2).and_then(|st| margin_setup(st, &pes))
    else {
        return;
    };
    let mut g = c.benchmark_group("resnet20_noise_margin_per_image");
    g.sample_size(10);
    g.bench_function(BenchmarkId::new("margin_alpha14", 1), |b| {
        b.iter(|| mc.margin(&tc, &x, &tb).ok().flatten().map(|m| m.log2_eta));
    });
    // Without the back-substituted site boxes of `margin_rows` (relational boxes only, the
    // method before the `margin5` helper), and with the whole last stage back-substituted
    // to its input (window 5, budget 3·10^11 multiply–adds instead of the defaults).
    let mc_nr = mc.clone().with_row_budget(0.0);
    g.bench_function(BenchmarkId::new("margin_alpha14_no_rows", 1), |b| {
        b.iter(|| {
            mc_nr
                .margin(&tc, &x, &tb)
                .ok()
                .flatten()
                .map(|m| m.log2_eta)
        });
    });
    let mc_full = mc.clone().with_row_window(5).with_row_budget(3e11);
    g.bench_function(BenchmarkId::new("margin_alpha14_rows_stage", 1), |b| {
        b.iter(|| {
            mc_full
                .margin(&tc, &x, &tb)
                .ok()
                .flatten()
                .map(|m| m.log2_eta)
        });
    });
    // The same search with the |W| boxes alone (no relational boxes), side by side.
    let mc_w = mc.clone().with_relational(false).with_row_budget(0.0);
    g.bench_function(BenchmarkId::new("margin_alpha14_w_boxes", 1), |b| {
        b.iter(|| mc_w.margin(&tc, &x, &tb).ok().flatten().map(|m| m.log2_eta));
    });
    g.finish();
    let mnist = "mnist/t10k-images-idx3-ubyte";
    let Some((tc, mc, x, tb)) =
        setup_data(&s, "mnist_cnn_small_maxpool", mnist, 2).and_then(|st| margin_setup(st, &pes))
    else {
        return;
    };
    let mut g = c.benchmark_group("mnist_maxpool_noise_margin_per_image");
    g.sample_size(10);
    g.bench_function(BenchmarkId::new("margin_alpha14", 1), |b| {
        b.iter(|| mc.margin(&tc, &x, &tb).ok().flatten().map(|m| m.log2_eta));
    });
    g.finish();
}

/// The trajectory (F = 128) and margin certifiers of a set-up, its first image and that
/// image's certificate; `None` (with a printed reason) when one cannot be built.
fn margin_setup(
    (net, _, xs, ranges): Setup,
    pes: &[PolyErrors],
) -> Option<(
    TrajectoryCertifier,
    MarginCertifier,
    Vec<f64>,
    TrajectoryBound,
)> {
    let (Ok(tc), Ok(mc)) = (
        TrajectoryCertifier::new(Arc::clone(&net), pes, ranges.clone(), &[Frac(128)]),
        MarginCertifier::new(Arc::clone(&net), pes, ranges),
    ) else {
        eprintln!("skipping: certifiers could not be built");
        return None;
    };
    let x = xs.into_iter().next()?;
    let tb = tc.certify(&x).ok()?.into_iter().next()?;
    Some((tc, mc, x, tb))
}

criterion_group!(
    benches,
    bench_per_input,
    bench_first_order,
    bench_trajectory,
    bench_margin
);
criterion_main!(benches);
