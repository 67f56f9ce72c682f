//! First-order limit of box-based certificates (issue 5): the vector-Jacobian products
//! against central finite differences of the engine (an independent forward pass) on random
//! small networks and on shared models, the exact identity L_j = worst case over the boxes
//! on a one-hidden-layer network (brute-force sign enumeration), the elementwise per-input
//! certificate e_t + e_j ≥ L_j, and the CLI.

use std::collections::BTreeMap;
use std::sync::Arc;

use polycert::bounds::{BoundedNetwork, FirstOrderNetwork, PolyErrors};
use polycert::nn::{
    calibrate, import_onnx, ActivationPolicy, BatchNorm, Conv, Dataset, Engine, Linear, Network,
    Op, Pool, RangePolicy, RunStats, Tensor,
};
use proptest::prelude::*;

use crate::bounds::{gemm, net, pe, proofs, ranges, small_resnet};
use crate::util;

fn run(n: &Arc<Network>, x: &[f64]) -> Vec<f64> {
    Engine::<f64>::new(Arc::clone(n))
        .run(x, &ActivationPolicy::Exact, &mut RunStats::default())
        .unwrap()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(p, q)| p * q).sum()
}

/// Central difference of cᵀF along a direction: (cᵀF(+h) − cᵀF(−h))/2h for the network
/// with the given perturbation applied by `set(h)`.
fn central(c: &[f64], h: f64, mut f: impl FnMut(f64) -> Vec<f64>) -> f64 {
    (dot(c, &f(h)) - dot(c, &f(-h))) / (2.0 * h)
}

/// A random piecewise-linear CNN with a zero constant `Add` (a probe) after every activation
/// node, so the engine can be run with a perturbation of that activation's output:
/// Conv(c0→c1, k, stride s, pad p, bias) → BN → ReLU → probe → Conv(c1→c1, 3×3, pad 1,
/// bias) → ReLU → probe, plus the BN output (fan-out) → MaxPool 2×2 / AvgPool 2×2 (stride 1
/// or 2) → probe → Flatten → Gemm(→3) → ReLU → probe → Gemm(3→3). Every pre-activation and
/// pooled value is generic (biases, no sum of exact zeros), so no kink or tie sits exactly at
/// the evaluation point. Returns the network and the (activation node, probe node) pairs.
#[expect(clippy::too_many_arguments, reason = "test generator")]
fn probed_net(
    c0: usize,
    c1: usize,
    hw: usize,
    k: usize,
    s: usize,
    p: usize,
    maxpool: bool,
    ps: usize,
    seed: u64,
) -> (Network, Vec<(usize, usize)>) {
    let mut rnd = util::lcg_weights(seed | 1);
    let h1 = (hw + 2 * p - k) / s + 1;
    let hpool = (h1 - 2) / ps + 1;
    let flat = c1 * hpool * hpool;
    let conv = |w: Vec<f32>,
                cout: usize,
                cin: usize,
                k: usize,
                s: usize,
                p: usize,
                b: Option<Vec<f32>>| {
        Op::Conv(Conv {
            weight: Tensor {
                dims: vec![cout, cin, k, k],
                data: w,
            },
            bias: b,
            strides: [s, s],
            pads: [p; 4],
            dilations: [1, 1],
            groups: 1,
        })
    };
    let zero = |n: usize| Op::Add {
        constant: Some(Tensor {
            dims: vec![n],
            data: vec![0.0; n],
        }),
    };
    let a1 = c1 * h1 * h1;
    let pool = Pool {
        kernel: [2, 2],
        strides: [ps, ps],
        pads: [0; 4],
    };
    let pool_op = if maxpool {
        Op::MaxPool(pool)
    } else {
        Op::AvgPool {
            pool,
            count_include_pad: false,
        }
    };
    let fc1 = Op::Gemm(Linear {
        weight: Tensor {
            dims: vec![3, flat],
            data: rnd(3 * flat, 2.0),
        },
        bias: Some(rnd(3, 0.5)),
    });
    let nodes = vec![
        (
            conv(
                rnd(c1 * c0 * k * k, 1.5),
                c1,
                c0,
                k,
                s,
                p,
                Some(rnd(c1, 0.3)),
            ),
            vec![0],
            1,
        ),
        (
            Op::BatchNorm(BatchNorm {
                gamma: rnd(c1, 1.0).iter().map(|g| g.abs() + 0.5).collect(),
                beta: rnd(c1, 0.4),
                mean: rnd(c1, 0.2),
                var: rnd(c1, 0.5).iter().map(|v| v.abs() + 0.5).collect(),
                eps: 1e-5,
            }),
            vec![1],
            2,
        ),
        (Op::Relu, vec![2], 3),
        (zero(a1), vec![3], 4),
        (
            conv(rnd(c1 * c1 * 9, 1.0), c1, c1, 3, 1, 1, Some(rnd(c1, 0.6))),
            vec![4],
            5,
        ),
        (Op::Relu, vec![5], 6),
        (zero(a1), vec![6], 7),
        (Op::Add { constant: None }, vec![7, 2], 8),
        (pool_op, vec![8], 9),
        (zero(c1 * hpool * hpool), vec![9], 10),
        (Op::Flatten, vec![10], 11),
        (fc1, vec![11], 12),
        (Op::Relu, vec![12], 13),
        (zero(3), vec![13], 14),
        (gemm(&rnd(9, 2.0), 3, 3), vec![14], 15),
    ];
    let sh: Vec<Vec<usize>> = vec![
        vec![c0, hw, hw],
        vec![c1, h1, h1],
        vec![c1, h1, h1],
        vec![c1, h1, h1],
        vec![c1, h1, h1],
        vec![c1, h1, h1],
        vec![c1, h1, h1],
        vec![c1, h1, h1],
        vec![c1, h1, h1],
        vec![c1, hpool, hpool],
        vec![c1, hpool, hpool],
        vec![flat],
        vec![3],
        vec![3],
        vec![3],
        vec![3],
    ];
    let shapes: Vec<&[usize]> = sh.iter().map(Vec::as_slice).collect();
    let probes = if maxpool {
        vec![(2, 3), (5, 6), (8, 9), (12, 13)]
    } else {
        vec![(2, 3), (5, 6), (12, 13)]
    };
    (net(&shapes, nodes), probes)
}

/// The network with probe node `probe`'s constant set to h·e_k.
fn with_probe(n: &Network, probe: usize, k: usize, h: f64) -> Arc<Network> {
    let mut m = n.clone();
    if let Op::Add { constant: Some(t) } = &mut m.nodes[probe].op {
        t.data.iter_mut().for_each(|v| *v = 0.0);
        t.data[k] = h as f32;
    }
    Arc::new(m)
}

/// Whether the one-sided differences (f(+h) − f(0))/h and (f(0) − f(−h))/h agree to `tol`:
/// for a piecewise-linear function, whether no kink lies within h of the point, however close
/// to it. [`agrees`] alone misses a kink within ~tol·h/|slope change| of the point (both
/// central differences then straddle it alike, and the gradient is one side's slope).
fn no_kink_within(f: impl Fn(f64) -> f64, h: f64, tol: f64) -> bool {
    let f0 = f(0.0);
    ((f(h) - f0) / h - (f0 - f(-h)) / h).abs() <= tol
}

/// |fd − g| ≤ tol, unless the finite differences with h and h/2 disagree (a ReLU kink or a
/// max-pool tie was crossed: the function is not differentiable there at that scale).
fn agrees(fd_h: f64, fd_h2: f64, g: f64, tol: f64) -> Option<bool> {
    if (fd_h - fd_h2).abs() > tol {
        return None;
    }
    Some((fd_h2 - g).abs() <= tol)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    /// cᵀ·∂F/∂x and cᵀ·J_a at every activation node equal central finite differences of the
    /// engine (piecewise-linear networks: the differences are exact up to rounding away from
    /// kinks; kinks within h are detected by the one-sided differences and by halving h, and
    /// skipped).
    #[test]
    fn vjp_matches_finite_differences_of_the_engine(
        c0 in 1usize..=2, c1 in 1usize..=3, hw in 4usize..=7, k in prop::sample::select(vec![1usize, 3]),
        s in 1usize..=2, p in 0usize..=1, maxpool in any::<bool>(), ps in 1usize..=2,
        seed in any::<u64>(),
    ) {
        // A padded 1×1 convolution would give border outputs that all equal the bias (ties
        // in the max pooling at the evaluation point): pad only 3×3 kernels.
        let p = p.min((k - 1) / 2);
        prop_assume!(hw + 2 * p > k && (hw + 2 * p - k) / s + 1 >= 2);
        let (n, probes) = probed_net(c0, c1, hw, k, s, p, maxpool, ps, seed);
        let na = Arc::new(n.clone());
        let fo = FirstOrderNetwork::new(Arc::clone(&na)).unwrap();
        let mut st = seed ^ 0x9e37_79b9;
        let mut r = || {
            st = st.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (st >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        let x: Vec<f64> = (0..c0 * hw * hw).map(|_| 2.0 * r()).collect();
        let c: Vec<f64> = (0..3).map(|_| r()).collect();
        let v = fo.vjp(&x, std::slice::from_ref(&c)).unwrap();
        // The first-order module's forward pass is the engine's.
        let y = run(&na, &x);
        for (a, b) in v.output.iter().zip(&y) {
            prop_assert!((a - b).abs() <= 1e-12 * (1.0 + b.abs()));
        }
        let (h, tol) = (1e-3, 1e-6);
        let mut checked = 0;
        for i in 0..x.len() {
            let fd = |h: f64| central(&c, h, |d| { let mut xd = x.clone(); xd[i] += d; run(&na, &xd) });
            let along = |d: f64| { let mut xd = x.clone(); xd[i] += d; dot(&c, &run(&na, &xd)) };
            if !no_kink_within(along, h / 2.0, tol) {
                continue;
            }
            if let Some(ok) = agrees(fd(h), fd(h / 2.0), v.input[0][i], tol) {
                prop_assert!(ok, "input {i}: fd {} vs vjp {}", fd(h / 2.0), v.input[0][i]);
                checked += 1;
            }
        }
        for &(a, probe) in &probes {
            let g = &v.activations[&a][0];
            prop_assert_eq!(g.len(), n.shape(n.nodes[a].output).numel());
            for (kk, &gk) in g.iter().enumerate() {
                let fd = |h: f64| central(&c, h, |d| run(&with_probe(&n, probe, kk, d), &x));
                let along = |d: f64| dot(&c, &run(&with_probe(&n, probe, kk, d), &x));
                // f32 constants: h and h/2 are powers of two, exact in f32.
                if !no_kink_within(along, 1.0 / 2048.0, tol) {
                    continue;
                }
                if let Some(ok) = agrees(fd(1.0 / 1024.0), fd(1.0 / 2048.0), gk, tol) {
                    prop_assert!(ok, "node {a} entry {kk}: fd {} vs vjp {gk}", fd(1.0 / 2048.0));
                    checked += 1;
                }
            }
        }
        prop_assert!(checked > 0);
    }
}

/// x ↦ Gemm(3 → 8, bias) → ReLU → Gemm(8 → 3): F^α − F = W₂·ε exactly (the ReLU inputs
/// are exact), so the first-order limit is the exact worst case over the boxes.
fn one_hidden_layer() -> (Arc<Network>, Vec<f32>, Vec<f32>, Vec<f32>) {
    let w1: Vec<f32> = (0..24).map(|i| ((i * 7 % 11) as f32 - 5.0) / 4.0).collect();
    let b1: Vec<f32> = (0..8).map(|i| (i as f32 - 3.5) / 8.0).collect();
    let w2: Vec<f32> = (0..24).map(|i| ((i * 5 % 13) as f32 - 6.0) / 3.0).collect();
    let l1 = Op::Gemm(Linear {
        weight: Tensor {
            dims: vec![8, 3],
            data: w1.clone(),
        },
        bias: Some(b1.clone()),
    });
    let n = net(
        &[&[3], &[8], &[8], &[3]],
        vec![
            (l1, vec![0], 1),
            (Op::Relu, vec![1], 2),
            (gemm(&w2, 3, 8), vec![2], 3),
        ],
    );
    (Arc::new(n), w1, b1, w2)
}

#[test]
fn one_hidden_layer_limit_is_the_enumerated_worst_case_and_bounds_the_measured_change() {
    let (n, w1, b1, w2) = one_hidden_layer();
    let b = 4.0;
    let r = ranges(&n, b);
    let fo = FirstOrderNetwork::new(Arc::clone(&n)).unwrap();
    let pes: Vec<PolyErrors> = [6u32, 10, 14].iter().map(|&a| pe(a).clone()).collect();
    let engine: Engine<f64> = Engine::new(Arc::clone(&n));
    for x in [[0.3, -0.7, 0.9], [-1.1, 0.2, 0.5], [0.05, 0.6, -0.4]] {
        let lim = fo.limit(&pes, &r, &x).unwrap();
        // Independent computation: hidden pre-activations, the per-neuron boxes from the
        // certificate's local bound, and the worst case over all 2^8 sign patterns.
        let y: Vec<f64> = (0..8)
            .map(|i| {
                f64::from(b1[i]) + (0..3).map(|k| f64::from(w1[i * 3 + k]) * x[k]).sum::<f64>()
            })
            .collect();
        let f: Vec<f64> = (0..3)
            .map(|o| {
                (0..8)
                    .map(|i| f64::from(w2[o * 8 + i]) * y[i].max(0.0))
                    .sum()
            })
            .collect();
        let t = (0..3).fold(0, |a, j| if f[j] > f[a] { j } else { a });
        assert_eq!(lim.top1, t);
        for (k, p) in pes.iter().enumerate() {
            let e: Vec<f64> = y
                .iter()
                .map(|v| b / 2.0 * p.cond1_local(v.abs() / b, v.abs() / b))
                .collect();
            let pol = ActivationPolicy::Approx {
                sign: p.sign_kernel().unwrap(),
                ranges: r.clone(),
            };
            let fa = engine.run(&x, &pol, &mut RunStats::default()).unwrap();
            for j in (0..3).filter(|&j| j != t) {
                let worst = (0..1u32 << 8)
                    .map(|m| {
                        (0..8)
                            .map(|i| {
                                let s = if m >> i & 1 == 1 { 1.0 } else { -1.0 };
                                (f64::from(w2[t * 8 + i]) - f64::from(w2[j * 8 + i])) * s * e[i]
                            })
                            .sum::<f64>()
                    })
                    .fold(f64::NEG_INFINITY, f64::max);
                let l = lim.limits[k][j];
                assert!(
                    (l - worst).abs() <= 1e-12 * worst,
                    "alpha {} j {j}: L {l} vs enumerated {worst}",
                    p.alpha()
                );
                assert!((lim.margins[j] - (f[t] - f[j])).abs() <= 1e-12 * f[t].abs().max(1.0));
                // Here the first order is exact: the measured change of the margin lies
                // within L (allowance 1e-12·B for the f64 evaluation of p_α by the engine,
                // which the exact-arithmetic certificate does not cover).
                let dm = ((fa[t] - fa[j]) - (f[t] - f[j])).abs();
                assert!(dm <= l + 1e-12 * b, "alpha {}: {dm} > {l}", p.alpha());
            }
        }
    }
}

/// The elementwise per-input certificate of the margin change, e_t + e_j, is ≥ L_j: |A|·e
/// dominates |cᵀA|·e and its masks and boxes contain the exact ones (relative allowance 1e-9
/// for the round-to-nearest evaluation of L).
fn check_elementwise_dominates(
    n: &Arc<Network>,
    r: &BTreeMap<usize, f64>,
    xs: &[Vec<f64>],
    alphas: &[u32],
) -> usize {
    let fo = FirstOrderNetwork::new(Arc::clone(n)).unwrap();
    let bn = BoundedNetwork::new(Arc::clone(n)).unwrap();
    let pes: Vec<PolyErrors> = alphas.iter().map(|&a| pe(a).clone()).collect();
    let mut compared = 0;
    for x in xs {
        let lim = fo.limit(&pes, r, x).unwrap();
        for (k, p) in pes.iter().enumerate() {
            let pi = bn.per_input(p, r, x).unwrap();
            assert!(pi.complete);
            if !pi.in_range || pi.top1 != lim.top1 {
                continue;
            }
            let t = lim.top1;
            for j in (0..lim.margins.len()).filter(|&j| j != t) {
                let el = pi.elementwise[t] + pi.elementwise[j];
                let l = lim.limits[k][j];
                assert!(
                    l <= el * (1.0 + 1e-9),
                    "alpha {} j {j}: L {l} > e_t + e_j {el}",
                    p.alpha()
                );
                compared += 1;
            }
            // The per-input certificate never certifies an image the limit rejects.
            if pi.unchanged {
                assert!(lim.certifiable(k), "alpha {}", p.alpha());
            }
        }
    }
    compared
}

#[test]
fn elementwise_certificate_dominates_the_limit_on_a_small_resnet() {
    let n = small_resnet();
    let r = ranges(&n, 8.0);
    let xs: Vec<Vec<f64>> = (0..16)
        .map(|s| {
            (0..36)
                .map(|i| (((i * 7 + s * 13) % 17) as f64 - 8.0) / 6.0)
                .collect()
        })
        .collect();
    assert!(check_elementwise_dominates(&n, &r, &xs, &[6, 10, 14]) > 0);
}

/// A shared model, its B per activation node (calibrated on the images) and the images.
type Shared = (Arc<Network>, BTreeMap<usize, f64>, Vec<Vec<f64>>);

fn shared_model(m: &str, data: &str, n: usize) -> Option<Shared> {
    let sh = util::shared("shared models")?;
    let net = Arc::new(import_onnx(&sh.join(format!("models/{m}.onnx"))).unwrap());
    let mut d = Dataset::open(&sh.join(data), None).unwrap();
    d.truncate(n);
    let engine: Engine<f64> = Engine::new(Arc::clone(&net));
    let r = calibrate(&engine, &d, None)
        .unwrap()
        .choose(RangePolicy::PerLayer { margin: 1.1 })
        .unwrap();
    let xs = (0..n)
        .map(|i| {
            let mut x = Vec::new();
            net.preprocess
                .apply(d.image(i).unwrap(), d.shape[0], &mut x);
            x
        })
        .collect();
    Some((net, r, xs))
}

#[test]
fn elementwise_certificate_dominates_the_limit_on_mnist() {
    for m in ["mnist_cnn_small", "mnist_cnn_small_maxpool"] {
        let Some((n, r, xs)) = shared_model(m, "data/mnist/t10k-images-idx3-ubyte", 20) else {
            return;
        };
        let c = check_elementwise_dominates(&n, &r, &xs, &[10, 14]);
        // Most of the 20 MNIST images pass the range check at α = 10 and 14.
        assert!(c >= 2 * 9 * 18, "{m}: {c} comparisons");
    }
}

/// cᵀ·∂F/∂x against central finite differences of the engine at a few input coordinates of
/// an image, c = e_t − e_j (piecewise-linear models: exact away from kinks).
fn shared_vjp_matches_finite_differences(m: &str, data: &str) {
    let Some((n, _, xs)) = shared_model(m, data, 1) else {
        return;
    };
    let fo = FirstOrderNetwork::new(Arc::clone(&n)).unwrap();
    let x = &xs[0];
    let y = run(&n, x);
    let t = (0..y.len()).fold(0, |a, j| if y[j] > y[a] { j } else { a });
    let j = (t + 1) % y.len();
    let mut c = vec![0.0; y.len()];
    c[t] = 1.0;
    c[j] = -1.0;
    let v = fo.vjp(x, std::slice::from_ref(&c)).unwrap();
    for (a, b) in v.output.iter().zip(&y) {
        assert!((a - b).abs() <= 1e-9 * (1.0 + b.abs()), "{m}: {a} vs {b}");
    }
    let g = &v.input[0];
    let gmax = g.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    let mut checked = 0;
    for i in (0..x.len()).step_by(x.len() / 24) {
        let fd = |h: f64| {
            central(&c, h, |d| {
                let mut xd = x.clone();
                xd[i] += d;
                run(&n, &xd)
            })
        };
        if let Some(ok) = agrees(fd(1e-4), fd(5e-5), g[i], 1e-6 * gmax) {
            assert!(ok, "{m} input {i}: fd {} vs vjp {}", fd(5e-5), g[i]);
            checked += 1;
        }
    }
    assert!(checked >= 20, "{m}: {checked}");
    // Every activation node has a gradient of its output's size.
    for a in n.activation_nodes() {
        assert_eq!(
            v.activations[&a][0].len(),
            n.shape(n.nodes[a].output).numel()
        );
    }
}

#[test]
fn resnet20_vjp_matches_finite_differences() {
    shared_vjp_matches_finite_differences("resnet20_cifar10", "data/cifar10/test_first20.bin");
}

#[test]
fn vgg_small_vjp_matches_finite_differences() {
    shared_vjp_matches_finite_differences("vgg_small_cifar10", "data/cifar10/test_first20.bin");
}

#[test]
fn mnist_maxpool_vjp_matches_finite_differences() {
    shared_vjp_matches_finite_differences(
        "mnist_cnn_small_maxpool",
        "data/mnist/t10k-images-idx3-ubyte",
    );
}

#[test]
fn cli_bound_first_order_is_deterministic_and_checks_its_flags() {
    let Some(sh) = util::shared("MNIST model") else {
        return;
    };
    let model = sh.join("models/mnist_cnn_small_maxpool.onnx");
    let data = sh.join("data/mnist/t10k-images-idx3-ubyte");
    let dir = tempfile::tempdir().unwrap();
    let go = |name: &str| {
        let json = dir.path().join(format!("{name}.json"));
        let md = dir.path().join(format!("{name}.md"));
        util::run_ok(
            util::polycert()
                .args([
                    "--quiet",
                    "bound",
                    "--first-order",
                    "--alpha",
                    "10,14",
                    "--limit",
                    "30",
                    "--proofs",
                ])
                .arg(proofs())
                .arg("--model")
                .arg(&model)
                .arg("--data")
                .arg(&data)
                .arg("--out-json")
                .arg(&json)
                .arg("--out-md")
                .arg(&md),
        );
        (
            std::fs::read(json).unwrap(),
            std::fs::read_to_string(md).unwrap(),
        )
    };
    let (j1, md) = go("a");
    let (j2, _) = go("b");
    assert_eq!(j1, j2, "same inputs and flags give byte-identical JSON");
    let v: serde_json::Value = serde_json::from_slice(&j1).unwrap();
    assert_eq!(v[0]["images"], 30);
    let a = v[0]["alphas"].as_array().unwrap();
    assert_eq!(a.len(), 2);
    assert_eq!(a[1]["alpha"], 14);
    let (c10, c14) = (
        a[0]["certifiable"].as_u64().unwrap(),
        a[1]["certifiable"].as_u64().unwrap(),
    );
    assert!(c10 <= 30 && c14 <= 30);
    assert!(
        md.contains("computed linearisation, not a certificate"),
        "{md}"
    );
    // Bad input: no data, or combined with --per-input (exit 2).
    let out = util::polycert()
        .args(["--quiet", "bound", "--first-order", "--model"])
        .arg(&model)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--first-order needs a data file"));
    let out = util::polycert()
        .args([
            "--quiet",
            "bound",
            "--first-order",
            "--per-input",
            "--model",
        ])
        .arg(&model)
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// Slice (option-A shortcut style), Pad, Concat, Clip, GlobalAveragePool, Gemm and a final
/// Softmax: cᵀ·∂F/∂x against central finite differences of the engine (smooth away from
/// the Clip kinks, which the step halving detects).
#[test]
fn vjp_through_slice_pad_concat_clip_softmax_matches_finite_differences() {
    use polycert::nn::{Pad, Slice};
    let w: Vec<f32> = (0..54)
        .map(|i| ((i * 7 % 13) as f32 - 6.0) / 10.0)
        .collect();
    let conv = Op::Conv(Conv {
        weight: Tensor {
            dims: vec![3, 2, 3, 3],
            data: w,
        },
        bias: Some(vec![0.1, -0.2, 0.05]),
        strides: [1, 1],
        pads: [1; 4],
        dilations: [1, 1],
        groups: 1,
    });
    let fc = Op::Gemm(Linear {
        weight: Tensor {
            dims: vec![4, 7],
            data: (0..28).map(|i| ((i * 5 % 11) as f32 - 5.0) / 2.0).collect(),
        },
        bias: Some(vec![0.3, -0.1, 0.0, 0.2]),
    });
    let n = Arc::new(net(
        &[
            &[2, 4, 4],
            &[2, 2, 2],
            &[4, 4, 4],
            &[3, 4, 4],
            &[7, 4, 4],
            &[7, 4, 4],
            &[7, 1, 1],
            &[7],
            &[4],
            &[4],
        ],
        vec![
            (
                Op::Slice(Slice {
                    starts: vec![0, 0, 1],
                    steps: vec![1, 2, 2],
                }),
                vec![0],
                1,
            ),
            (
                Op::Pad(Pad {
                    begin: vec![1, 1, 1],
                    end: vec![1, 1, 1],
                    value: 0.25,
                }),
                vec![1],
                2,
            ),
            (conv, vec![0], 3),
            (Op::Concat { axis: 0 }, vec![2, 3], 4),
            (
                Op::Clip {
                    min: -0.5,
                    max: 0.8,
                },
                vec![4],
                5,
            ),
            (Op::GlobalAvgPool, vec![5], 6),
            (Op::Flatten, vec![6], 7),
            (fc, vec![7], 8),
            (Op::Softmax { axis: 0 }, vec![8], 9),
        ],
    ));
    let fo = FirstOrderNetwork::new(Arc::clone(&n)).unwrap();
    let x: Vec<f64> = (0..32)
        .map(|i| ((i * 11 % 17) as f64 - 8.0) / 9.0)
        .collect();
    let cots = vec![vec![1.0, -1.0, 0.0, 0.0], vec![0.2, 0.5, -0.7, 0.1]];
    let v = fo.vjp(&x, &cots).unwrap();
    let y = run(&n, &x);
    for (a, b) in v.output.iter().zip(&y) {
        assert!((a - b).abs() <= 1e-14);
    }
    let mut checked = 0;
    for (c, g) in cots.iter().zip(&v.input) {
        let gmax = g.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        assert!(gmax > 0.0);
        for i in 0..x.len() {
            let fd = |h: f64| {
                central(c, h, |d| {
                    let mut xd = x.clone();
                    xd[i] += d;
                    run(&n, &xd)
                })
            };
            if let Some(ok) = agrees(fd(1e-4), fd(5e-5), g[i], 1e-8) {
                assert!(ok, "input {i}: fd {} vs vjp {}", fd(5e-5), g[i]);
                checked += 1;
            }
        }
    }
    assert!(checked >= 48, "{checked}");
    // No polynomial activation: the first-order limit is 0 and every image is certifiable.
    let lim = fo.limit(&[pe(10).clone()], &BTreeMap::new(), &x).unwrap();
    assert!(lim.limits[0].iter().all(|&l| l == 0.0) && lim.certifiable(0));
}
