//! Throughput of the plaintext engine (images/s): ResNet-20 on the first 100 images of the
//! CIFAR-10 JPEG test file, exact and with α = 14 polynomial activations (B per layer from a
//! calibration pass on the same images). Compare with `benches/compare/onnxruntime_resnet20.py`
//! run with the same thread count (RAYON_NUM_THREADS / --threads);
//! `benches/compare/resnet20_side_by_side.sh` runs both back to back and prints the ratios.
#![allow(missing_docs)] // criterion_group! generates an undocumented function
#![allow(unsafe_code)] // the AVX-512 multiply-add peak (`fma512`)

mod common;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use polycert::nn::{ActivationPolicy, ClipRelu, SignKernel};

fn bench_resnet20(c: &mut Criterion) {
    let n = 100;
    let Some((engine, xs, approx)) = common::resnet20(n) else {
        return;
    };
    let mut g = c.benchmark_group("resnet20_f32_batch100");
    g.throughput(Throughput::Elements(n as u64));
    g.sample_size(10);
    for (name, policy) in [("exact", ActivationPolicy::Exact), ("alpha14", approx)] {
        g.bench_with_input(BenchmarkId::new(name, n), &policy, |b, p| {
            b.iter(|| engine.run_batch(&xs, p).map(|r| r.0.len()).unwrap_or(0));
        });
    }
    g.finish();
}

/// The r̃_α kernel alone (α = 14, f32 in, f64 evaluation): 16,384 values (one 16-channel
/// 32 × 32 activation map of ResNet-20), copied in from a fixed buffer each iteration.
fn bench_relu_kernel(c: &mut Criterion) {
    let Ok(sign) = polycert::remez::table1_sign(14) else {
        eprintln!("skipping: table1_sign(14) failed");
        return;
    };
    let k = SignKernel::new(14, sign.poly());
    let n = 16_384usize;
    let mut r = 0x9e37_79b9_7f4a_7c15u64;
    let src: Vec<f32> = (0..n)
        .map(|_| {
            r = r
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            #[allow(clippy::cast_precision_loss)]
            let u = (r >> 40) as f32 / (1u64 << 24) as f32;
            8.0 * u - 4.0
        })
        .collect();
    let mut buf = src.clone();
    let mut g = c.benchmark_group("relu_alpha14_f32");
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function(BenchmarkId::from_parameter(n), |b| {
        b.iter(|| {
            buf.copy_from_slice(&src);
            k.relu_in_place_stats(&mut buf, 4.5)
        });
    });
    g.finish();
    // ReLU6 = Clip(0, 6) on the same values: two r̃_α per value (B = 4.5 for x, 10.5 for
    // x − 6), one fused pass on AVX-512F machines; compare per value with twice the above.
    let (lower, upper) = (
        Some(ClipRelu { shift: 0.0, b: 4.5 }),
        Some(ClipRelu {
            shift: 6.0,
            b: 10.5,
        }),
    );
    let mut g = c.benchmark_group("relu6_alpha14_f32");
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function(BenchmarkId::from_parameter(n), |b| {
        b.iter(|| {
            buf.copy_from_slice(&src);
            k.clip_in_place_stats(&mut buf, lower, upper)
        });
    });
    g.finish();
}

/// The machine's f64 multiply-add peak, the floor the r̃_α kernel is held against: 48
/// independent chains (12 vectors of 4 lanes at `target-cpu=haswell`) of 1,000 fused
/// multiply-adds each; throughput in f64 lane multiply-adds. Where the CPU has AVX-512F, also
/// 16 chains of 8-lane vectors (`avx512_16_chains`, detected at run time): a Zen 5 core runs
/// two full-width 512-bit FMAs per cycle (16 lanes), twice the 256-bit rate, with a 4-cycle
/// latency, so it needs ≥ 8 vectors in flight.
fn bench_fma_peak(c: &mut Criterion) {
    const LANES: usize = 48;
    const STEPS: usize = 1000;
    let mut g = c.benchmark_group("fma_peak_f64");
    g.throughput(Throughput::Elements((LANES * STEPS) as u64));
    g.bench_function("48_chains", |b| {
        b.iter(|| {
            let (m, k) = std::hint::black_box((0.999_999f64, 1e-7f64));
            let mut a = std::hint::black_box([1.0f64; LANES]);
            for _ in 0..STEPS {
                for v in &mut a {
                    *v = v.mul_add(m, k);
                }
            }
            a
        });
    });
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        g.throughput(Throughput::Elements((16 * 8 * STEPS) as u64));
        g.bench_function("avx512_16_chains", |b| {
            // SAFETY: AVX-512F detected above, the only feature `fma512` enables.
            b.iter(|| unsafe { fma512::<STEPS>(std::hint::black_box((0.999_999, 1e-7))) });
        });
    }
    g.finish();
}

/// 16 independent 8-lane f64 multiply-add chains of `S` steps each.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn fma512<const S: usize>((m, k): (f64, f64)) -> [f64; 8] {
    use std::arch::x86_64::{_mm512_add_pd, _mm512_fmadd_pd, _mm512_set1_pd, _mm512_storeu_pd};
    let (mv, kv) = (_mm512_set1_pd(m), _mm512_set1_pd(k));
    let mut a = [_mm512_set1_pd(1.0); 16];
    for _ in 0..S {
        for v in &mut a {
            *v = _mm512_fmadd_pd(*v, mv, kv);
        }
    }
    let s = a
        .iter()
        .fold(_mm512_set1_pd(0.0), |s, &v| _mm512_add_pd(s, v));
    let mut out = [0.0; 8];
    // SAFETY: `out` holds 8 f64 values.
    unsafe { _mm512_storeu_pd(out.as_mut_ptr(), s) };
    out
}

criterion_group!(benches, bench_resnet20, bench_relu_kernel, bench_fma_peak);
criterion_main!(benches);
