//! Throughput of the plaintext engine on EfficientNet-Lite0 (paper Table 3, issue 15):
//! images/s on the first 16 ImageNet validation records of `../shared`, exact and with every
//! ReLU6 = Clip(0, 6) replaced by r̃_α(x) − r̃_α(x − 6) at α = 14 (B per site = 1.1 × the max
//! |input| calibrated on the same records). Compare with
//! `benches/compare/onnxruntime_resnet20.py --layout imagenet224` at the same thread count
//! (RAYON_NUM_THREADS / --threads); `benches/compare/efficientnet_side_by_side.sh` runs both
//! back to back and prints the ratios.
//!
//! Work per image (counted, not timed): the convolutions are 385 M f32 multiply-adds; the
//! 33 Clip nodes output 6,157,536 values, each a ReLU6 = two r̃_α, and at α = 14 ({15, 27, 29},
//! odd, Horner in x²) one r̃_α is 7 + 13 + 14 = 34 f64 FMAs, 3 squares, 3 products by y, the
//! scaling by 1/B and (t + t·p)/2: 43 f64 operations, so 12.3 M r̃_α = 530 M f64 operations
//! (431 M FMAs) per image. With twice the f32 lanes per vector, the polynomial is ≈ 2.8× the
//! convolutions' arithmetic, while α = 14 / exact ≥ 0.6 needs it within 0.67× of the whole
//! exact pass's time. Why it stays in f64: `polycert::approx::odd_horner_error_bound` and the
//! module docs of `approx` (kernel.rs).
#![allow(missing_docs)] // criterion_group! generates an undocumented function

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use polycert::nn::ActivationPolicy;

mod common;

const N: usize = 16;

fn bench_efficientnet(c: &mut Criterion) {
    let Some((engine, xs, approx)) = common::efficientnet(N) else {
        return;
    };
    let mut g = c.benchmark_group("efficientnet_lite0_f32_batch16");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(10);
    for (name, policy) in [("exact", ActivationPolicy::Exact), ("alpha14", approx)] {
        g.bench_with_input(BenchmarkId::new(name, N), &policy, |b, p| {
            b.iter(|| engine.run_batch(&xs, p).map(|r| r.0.len()).unwrap_or(0));
        });
    }
    g.finish();
}

criterion_group!(benches, bench_efficientnet);
criterion_main!(benches);
