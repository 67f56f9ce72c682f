//! Tests of the encrypted graph executor (`graph`, `resnet`). All encrypted runs use
//! INSECURE small parameters (N ≤ 2^11); golden values come from the plaintext engine
//! (`nn::Engine`, independent of the CKKS code).

#![expect(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::nn::{
    ActivationPolicy, BatchNorm, Conv, Engine, Linear, Network, Node, NodeId, Op, Pad, Preprocess,
    RunStats, Shape, Slice, Tensor, ValueId, ValueInfo,
};
use crate::remez::table1_sign;

use super::graph::{compile_graph, GOp};
use super::{
    plan_encrypted, run_encrypted_with, CkksError, CkksParams, EncryptedConfig, EncryptedReport,
    RunSetup,
};

/// A network under construction.
struct Net {
    values: Vec<ValueInfo>,
    nodes: Vec<Node>,
    seed: u64,
}

impl Net {
    fn new(input: &[usize]) -> Self {
        Self {
            values: vec![ValueInfo {
                name: "input".into(),
                shape: Shape(input.to_vec()),
            }],
            nodes: Vec::new(),
            seed: 12345,
        }
    }

    /// Deterministic pseudo-random weights in [−a, a] (an LCG; any values do).
    fn rand(&mut self, n: usize, a: f32) -> Vec<f32> {
        (0..n)
            .map(|_| {
                self.seed = self
                    .seed
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let u = (self.seed >> 40) as f32 / (1u64 << 24) as f32;
                a * (2.0 * u - 1.0)
            })
            .collect()
    }

    fn push(&mut self, op: Op, inputs: Vec<ValueId>, shape: &[usize]) -> ValueId {
        let output = self.values.len();
        self.values.push(ValueInfo {
            name: format!("v{output}"),
            shape: Shape(shape.to_vec()),
        });
        self.nodes.push(Node {
            name: format!("n{}", self.nodes.len()),
            op,
            inputs,
            output,
        });
        output
    }

    #[expect(clippy::too_many_arguments, reason = "conv shape")]
    fn conv(
        &mut self,
        x: ValueId,
        cin: usize,
        cout: usize,
        hw: usize,
        pad: usize,
        stride: usize,
        bias: bool,
    ) -> ValueId {
        let a = 1.0 / (cin as f32 * 3.0).sqrt();
        let w = self.rand(cout * cin * 9, a);
        let b = bias.then(|| self.rand(cout, 0.3));
        let ho = (hw + 2 * pad - 3) / stride + 1;
        self.push(
            Op::Conv(Conv {
                weight: Tensor {
                    dims: vec![cout, cin, 3, 3],
                    data: w,
                },
                bias: b,
                strides: [stride, stride],
                pads: [pad; 4],
                dilations: [1, 1],
                groups: 1,
            }),
            vec![x],
            &[cout, ho, ho],
        )
    }

    fn bn(&mut self, x: ValueId, c: usize, hw: usize) -> ValueId {
        let gamma = self.rand(c, 0.5).iter().map(|v| v + 1.0).collect();
        let beta = self.rand(c, 0.2);
        let mean = self.rand(c, 0.2);
        let var = self.rand(c, 0.3).iter().map(|v| v + 1.0).collect();
        self.push(
            Op::BatchNorm(BatchNorm {
                gamma,
                beta,
                mean,
                var,
                eps: 1e-5,
            }),
            vec![x],
            &[c, hw, hw],
        )
    }

    fn gemm(&mut self, x: ValueId, nin: usize, out: usize) -> ValueId {
        let w = self.rand(out * nin, 1.0);
        let b = self.rand(out, 0.1);
        self.push(
            Op::Gemm(Linear {
                weight: Tensor {
                    dims: vec![out, nin],
                    data: w,
                },
                bias: Some(b),
            }),
            vec![x],
            &[out],
        )
    }

    fn finish(self, out: ValueId) -> Arc<Network> {
        Arc::new(Network {
            name: "toy".into(),
            values: self.values,
            nodes: self.nodes,
            input: 0,
            output: out,
            preprocess: Preprocess::default(),
            metadata: Vec::new(),
        })
    }
}

/// A toy ResNet: [2, 8, 8] → Conv pad 1 + BN → Relu → block(Conv stride 2 + BN → Relu →
/// Conv + BN; option-A shortcut Slice + Pad) → Add → Relu → GlobalAveragePool → Flatten →
/// Gemm 4 → 2 (two logits: more do not fit beside the 4×4 grid of stride 2 in a 64-slot block).
fn toy_resnet() -> Arc<Network> {
    toy_resnet_with(4)
}

/// [`toy_resnet`] with `cm` (even, ≥ 4) channels in the stride-2 block (the shortcut padded by
/// (cm − 2)/2 zero channels on each side).
fn toy_resnet_with(cm: usize) -> Arc<Network> {
    let mut n = Net::new(&[2, 8, 8]);
    let c = n.conv(0, 2, 2, 8, 1, 1, false);
    let b = n.bn(c, 2, 8);
    let r = n.push(Op::Relu, vec![b], &[2, 8, 8]);
    let c1 = n.conv(r, 2, cm, 8, 1, 2, false);
    let b1 = n.bn(c1, cm, 4);
    let r1 = n.push(Op::Relu, vec![b1], &[cm, 4, 4]);
    let c2 = n.conv(r1, cm, cm, 4, 1, 1, false);
    let b2 = n.bn(c2, cm, 4);
    let s = n.push(
        Op::Slice(Slice {
            starts: vec![0, 0, 0],
            steps: vec![1, 2, 2],
        }),
        vec![r],
        &[2, 4, 4],
    );
    let p = n.push(
        Op::Pad(Pad {
            begin: vec![(cm - 2) / 2, 0, 0],
            end: vec![(cm - 2) / 2, 0, 0],
            value: 0.0,
        }),
        vec![s],
        &[cm, 4, 4],
    );
    let a = n.push(Op::Add { constant: None }, vec![b2, p], &[cm, 4, 4]);
    let r2 = n.push(Op::Relu, vec![a], &[cm, 4, 4]);
    let g = n.push(Op::GlobalAvgPool, vec![r2], &[cm, 1, 1]);
    let f = n.push(Op::Flatten, vec![g], &[cm]);
    let o = n.gemm(f, cm, 2);
    n.finish(o)
}

/// Deterministic test images in [−1, 1].
fn images(net: &Network, k: usize) -> Vec<Vec<f64>> {
    let len = net.input_shape().numel();
    (0..k)
        .map(|i| {
            (0..len)
                .map(|j| (((i * 7919 + j * 104_729) % 2001) as f64 / 1000.0) - 1.0)
                .collect()
        })
        .collect()
}

/// B per ReLU: 1.2 × the largest |input| of the exact runs on `xs` (at least 0.5).
fn ranges_for(net: &Arc<Network>, xs: &[Vec<f64>]) -> BTreeMap<NodeId, f64> {
    let e: Engine<f64> = Engine::new(Arc::clone(net));
    let mut st = RunStats::default();
    for x in xs {
        e.run(x, &ActivationPolicy::Exact, &mut st).unwrap();
    }
    st.max_abs
        .iter()
        .map(|(&k, &v)| (k, (1.2 * v).max(0.5)))
        .collect()
}

/// Run `net` encrypted on `xs` and check every image against the plaintext approximate
/// engine: class equal, max |decrypted − F^α| ≤ `tol`.
fn check_against_engine(
    net: &Arc<Network>,
    xs: &[Vec<f64>],
    alpha: u32,
    setup: RunSetup,
    tol: f64,
) -> EncryptedReport {
    let ranges = ranges_for(net, xs);
    let sign = table1_sign(alpha).unwrap();
    let cfg = EncryptedConfig {
        alpha,
        log_n: setup.params.log_n(),
        insecure: true,
        seed: 3,
    };
    let labels = vec![0u16; xs.len()];
    let idx: Vec<usize> = (0..xs.len()).collect();
    let rep = run_encrypted_with(
        net,
        xs,
        &labels,
        &idx,
        &ranges,
        &sign,
        &cfg,
        setup,
        None,
        &mut |m| eprintln!("{m}"),
    )
    .unwrap();
    for im in &rep.images {
        eprintln!(
            "image {}: decrypted {:?}, approximate {:?}, error {:.2e}",
            im.index, im.decrypted_logits, im.approx_logits, im.ckks_error
        );
        assert_eq!(im.decrypted_class, im.approx_class, "image {}", im.index);
        assert!(
            im.ckks_error <= tol,
            "image {}: {:e}",
            im.index,
            im.ckks_error
        );
    }
    assert_eq!(rep.agree_with_approx, xs.len());
    rep
}

/// (b) Padded (same) 3×3 convolutions at stride 1 (two in a row, then the option-A
/// subsampling, so that the dense layer's grid leaves room for the logits) and at stride 2,
/// followed by a dense layer with 2 logits, against the plaintext engine (INSECURE N = 2^11,
/// no activation: F^α = F).
#[test]
fn padded_and_strided_conv_equal_plaintext_insecure() {
    for stride in [1, 2] {
        let mut n = Net::new(&[2, 8, 8]);
        let mut c = n.conv(0, 2, 3, 8, 1, stride, true);
        if stride == 1 {
            let c2 = n.conv(c, 3, 3, 8, 1, 1, true);
            c = n.push(
                Op::Slice(Slice {
                    starts: vec![0, 0, 0],
                    steps: vec![1, 2, 2],
                }),
                vec![c2],
                &[3, 4, 4],
            );
        }
        let f = n.push(Op::Flatten, vec![c], &[48]);
        let o = n.gemm(f, 48, 2);
        let net = n.finish(o);
        let g = compile_graph(&net).unwrap();
        assert!(matches!(g.nodes[0].op, GOp::Conv { pad: 1, .. }));
        assert_eq!(g.nodes[0].geo.st, stride);
        let params = CkksParams::for_depth(11, 6, 20, true).unwrap();
        let xs = images(&net, 3);
        let setup = RunSetup {
            params,
            bootstrap: None,
        };
        // A wrong offset or mask moves whole pixels: errors of order 0.1–1. Measured ≈ 1e-6.
        let err = check_against_engine(&net, &xs, 8, setup, 1e-3).max_ckks_error;
        eprintln!("stride {stride}: max error {err:.2e}");
    }
}

/// (a) The toy residual network (padded convolutions, a stride-2 block with an option-A
/// shortcut, residual Add, global average pooling, Gemm) without bootstrapping (INSECURE
/// N = 2^11, α = 6) against the plaintext approximate engine.
#[test]
fn toy_resnet_equals_plaintext_approx_insecure() {
    let net = toy_resnet();
    let xs = images(&net, 4);
    let sign = table1_sign(6).unwrap();
    let levels = super::encrypted_levels(&net, &sign).unwrap();
    // Conv 2 + ReLU 6 + Conv 2 + ReLU 6 + Conv 2 (+ Add 0: the branch is already at κ) + ReLU 6
    // + dense 1 (depths of α = 6: 2 and 3, plus the product).
    assert_eq!(levels, 25);
    let params = CkksParams::for_depth(11, levels, 20, true).unwrap();
    let setup = RunSetup {
        params,
        bootstrap: None,
    };
    // A wrong mask, scaling κ or shortcut moves the logits by O(0.1); measured 9.1e-7.
    let err = check_against_engine(&net, &xs, 6, setup, 1e-3).max_ckks_error;
    eprintln!("toy ResNet without bootstrapping: max error {err:.2e}");
}

/// (a) The toy network with the default bootstrap of the executor (sparse-secret
/// encapsulation, INSECURE N = 2^10, 8 user levels: top level 8 + 12 = 20, bootstraps restore
/// level 8; with 6 or 7 the planner refuses, as it does not bootstrap the input of a scaling,
/// a convolution or the dense layer): the keys of the encapsulation are made by the executor, at least one bootstrap
/// runs, and the decrypted logits equal the plaintext approximate engine's within the CKKS
/// noise.
#[test]
fn toy_resnet_encapsulated_bootstrap_equals_plaintext_approx_insecure() {
    let net = toy_resnet();
    let xs = images(&net, 2);
    let setup = RunSetup::bootstrapped(10, Some(8), true).unwrap();
    assert_eq!(setup.bootstrap.and_then(|b| b.sparse_secret), Some(32));
    assert_eq!(setup.params.max_level(), 20);
    let rep = check_against_engine(&net, &xs, 6, setup, 1e-3);
    let b = rep.bootstrap.unwrap();
    assert!(b.bootstraps >= 1);
    eprintln!(
        "toy ResNet, encapsulated bootstrap: max error {:.2e}, bootstrap precision ≥ {:.1} bits",
        rep.max_ckks_error,
        b.precision_bits.unwrap()
    );
}

/// (a) The same toy network with bootstrapping (INSECURE N = 2^10, 5 user levels: bootstraps
/// restore level 5 from the top level 19). By hand: Conv 19 → 17, ReLU 17 → 11, Conv → 9, ReLU
/// → 3, Conv → 1; the last ReLU bootstraps u (level 1 < depth 2 of p_1) and p_α(u) before the
/// product, its 4 channels sharing one ciphertext, then unpacks (level 3): 2 bootstraps. The
/// 4×4 grid of stride 2 on rows of 8 is {16y + 2x : x, y < 4}; the greedy disjoint copies are
/// at offsets 0, 1 (the odd slots), 8 and 9 (the free even columns 8…14 of each 16 slots).
#[test]
fn toy_resnet_bootstrapped_equals_plaintext_approx_insecure() {
    let net = toy_resnet();
    let xs = images(&net, 2);
    // The dense-secret bootstrap (14 levels at N = 2^10; the encapsulated one takes 12, and its
    // top level 17 would leave the last convolution 1 level: the planner does not bootstrap a
    // convolution's input).
    let config = crate::ckks::BootstrapConfig::full(1 << 10).unwrap();
    let setup = RunSetup::bootstrapped_with(config, 10, Some(5), true).unwrap();
    assert_eq!(setup.params.max_level(), 19);
    // Measured 1.4e-7.
    let rep = check_against_engine(&net, &xs, 6, setup, 1e-3);
    let b = rep.bootstrap.unwrap();
    assert_eq!(b.bootstraps, 2);
    let last = b.schedule.layers.iter().rfind(|l| l.op == "Relu").unwrap();
    assert_eq!(last.pack_offsets, vec![0, 1, 8, 9]);
    assert_eq!((last.level_in, last.level_out), (1, 3));
    eprintln!(
        "toy ResNet bootstrapped: max error {:.2e}, bootstrap precision ≥ {:.1} bits",
        rep.max_ckks_error,
        b.precision_bits.unwrap()
    );
}

/// (a) Bootstraps packing channels across block groups: the toy network with 8 channels in
/// its stride-2 block, on batches of B = 2 and B = 1 images (INSECURE N = 2^10, 512 slots,
/// 64-slot blocks: m = 4 and 8 block groups), with the dense-secret bootstrap and 5 user
/// levels as [`toy_resnet_bootstrapped_equals_plaintext_approx_insecure`] (same levels: only the
/// last ReLU bootstraps u and p_α(u)). Its 8 channels make 2 packs of k = 4 (offsets 0, 1, 8,
/// 9), which now share one ciphertext in 2 block groups: 2 bootstraps instead of 4. The
/// residual Add (shortcut with zero-padded channels), the convolutions' masks and the
/// unpacking must leave the blocks B … empty for this to be right; the decrypted logits equal
/// the plaintext approximate engine's within the CKKS noise.
#[test]
fn toy_resnet_block_groups_equal_plaintext_approx_insecure() {
    let net = toy_resnet_with(8);
    for nb in [2, 1] {
        let xs = images(&net, nb);
        let config = crate::ckks::BootstrapConfig::full(1 << 10).unwrap();
        let setup = RunSetup::bootstrapped_with(config, 10, Some(5), true).unwrap();
        assert_eq!(setup.params.max_level(), 19);
        // A wrong group stride or mask moves values of size ~1; measured ≈ 1e-7.
        let rep = check_against_engine(&net, &xs, 6, setup, 1e-3);
        let b = rep.bootstrap.unwrap();
        let last = b.schedule.layers.iter().rfind(|l| l.op == "Relu").unwrap();
        assert_eq!(last.pack_offsets, vec![0, 1, 8, 9]);
        assert_eq!((last.block_groups, last.ciphertexts), (2, 1), "B = {nb}");
        assert_eq!(last.group_stride, nb * 64);
        assert_eq!((last.level_in, last.level_out), (1, 3));
        assert_eq!(b.bootstraps, 2);
        eprintln!(
            "toy ResNet, B = {nb}, 2 block groups: max error {:.2e}, bootstrap precision ≥ {:.1} bits",
            rep.max_ckks_error,
            b.precision_bits.unwrap()
        );
    }
}

/// Unsupported nodes are refused with an error naming the node.
#[test]
fn unsupported_nodes_are_named() {
    let mut n = Net::new(&[2, 8, 8]);
    let c = n.conv(0, 2, 2, 8, 1, 1, false);
    let r = n.push(Op::Relu, vec![c], &[2, 8, 8]);
    let s = n.push(
        Op::Slice(Slice {
            starts: vec![0, 1, 1],
            steps: vec![1, 2, 2],
        }),
        vec![r],
        &[2, 4, 4],
    );
    let f = n.push(Op::Flatten, vec![s], &[32]);
    let o = n.gemm(f, 32, 3);
    let net = n.finish(o);
    let e = compile_graph(&net).unwrap_err();
    assert_eq!(
        e.to_string(),
        CkksError::Unsupported {
            node: "n2".into(),
            op: "Slice".into(),
            reason: "only the option-A subsampling (starts 0, steps 1, 2, 2 of an even map)".into()
        }
        .to_string()
    );
    // A BatchNormalization that does not follow a convolution.
    let mut n = Net::new(&[2, 4, 4]);
    let b = n.bn(0, 2, 4);
    let f = n.push(Op::Flatten, vec![b], &[32]);
    let o = n.gemm(f, 32, 3);
    let e = compile_graph(&n.finish(o)).unwrap_err();
    assert!(
        e.to_string().contains("\"n0\"") && e.to_string().contains("BatchNormalization"),
        "{e}"
    );
}

fn shared_model(name: &str) -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/models")
        .join(name);
    if p.exists() {
        Some(p)
    } else {
        eprintln!("skipped: {} is absent", p.display());
        None
    }
}

/// (c) The plan of ResNet-20 at N = 2^16 (128-bit bootstrapping parameters with sparse-secret
/// encapsulation, α = 13), no key: levels never below 0, a bootstrap wherever a ReLU's levels
/// run out, channel sharing 1/4/16 per stage. Expected counts derived by hand (L = 25,
/// bootstraps restore level 11; α = 13 has depths 4, 4, 5; product 1; convolution 2): the stem
/// ReLU fits (25 → 23 → 19 → 15 → 10 → 9). Every later ReLU needs exactly 2 bootstraps: from 11
/// the three components need 13 levels, so one split is needed besides the one that restores
/// u; u reaches a ReLU at level 7 (first block) or 2 (after a convolution at 4) and the
/// output must leave the next convolution its 2 levels. Ciphertexts per ReLU: 16 (32×32), 8
/// (16×16 stride 2, 4 copies), 4 (8×8 stride 4, 16 copies): 2·(6·16 + 6·8 + 6·4) = 336 per
/// batch of 32; smaller batches use the block groups (counts in the body).
#[test]
fn resnet20_plan_at_2_16_without_keys() {
    let Some(model) = shared_model("resnet20_cifar10.onnx") else {
        return;
    };
    let net = crate::nn::import_onnx(&model).unwrap();
    let sign = table1_sign(13).unwrap();
    let depths: Vec<u32> = super::sign_plans(&sign).iter().map(|p| p.depth()).collect();
    assert_eq!(depths, vec![4, 4, 5]);
    let ranges: BTreeMap<NodeId, f64> = net
        .activation_nodes()
        .into_iter()
        .map(|i| (i, 16.0))
        .collect();
    let setup = RunSetup::bootstrapped(16, None, false).unwrap();
    assert_eq!(setup.params.max_level(), 25);
    let plan = plan_encrypted(&net, &ranges, &sign, &setup, 32, false).unwrap();
    eprintln!("{plan}");
    let s = &plan.schedule;
    assert_eq!(s.boot_output_level, Some(11));
    let relus: Vec<_> = s.layers.iter().filter(|l| l.op == "Relu").collect();
    assert_eq!(relus.len(), 19);
    assert_eq!(relus[0].bootstraps, 0);
    for r in &relus[1..] {
        assert_eq!(r.relu.as_ref().unwrap().bootstraps(), 2, "{}", r.node);
    }
    let copies: Vec<usize> = relus[1..].iter().map(|r| r.pack_offsets.len()).collect();
    assert_eq!(copies, [vec![1; 6], vec![4; 6], vec![16; 6]].concat());
    assert_eq!(s.bootstraps, 336);
    for l in &s.layers {
        // Levels only fall outside ReLUs; a convolution's input has its 2 levels.
        if l.op != "Relu" {
            assert!(l.level_out <= l.level_in, "{}", l.node);
        }
        if l.op == "Conv" {
            assert!(l.level_in >= 2, "{}", l.node);
        }
    }
    assert_eq!(plan.cost.images_per_batch, 32);
    // Smaller batches pack channels across the m = 32/B block groups (`schedule` module docs):
    // per ReLU the ⌈C/k⌉ k-channel packs (16, 8, 4 per stage) go to ⌈⌈C/k⌉/m⌉ ciphertexts.
    // B = 4 (m = 8): 2, 1, 1 ciphertexts of 8, 8, 4 groups, 2·6·(2 + 1 + 1) = 48 bootstraps;
    // B = 2 (m = 16) and B = 1 (m = 32): 1, 1, 1 ciphertexts, 2·6·3 = 36. Two more rotation
    // keys, ∓B·1024 (no other step is a multiple of 1024).
    for (images, groups, cts, total) in [
        (4, [8, 8, 4], [2, 1, 1], 48),
        (2, [16, 8, 4], [1, 1, 1], 36),
        (1, [16, 8, 4], [1, 1, 1], 36),
    ] {
        let p = plan_encrypted(&net, &ranges, &sign, &setup, images, false).unwrap();
        eprintln!("{p}");
        assert_eq!(p.schedule.bootstraps, total, "B = {images}");
        assert_eq!(p.cost.images_per_batch, images);
        assert_eq!(p.cost.bootstraps, total);
        let rs: Vec<_> = p
            .schedule
            .layers
            .iter()
            .filter(|l| l.op == "Relu")
            .collect();
        let stage = |i: usize| (i - 1) / 6;
        for (i, r) in rs.iter().enumerate().skip(1) {
            assert_eq!(r.block_groups, groups[stage(i)], "B = {images}, {}", r.node);
            assert_eq!(r.ciphertexts, cts[stage(i)], "B = {images}, {}", r.node);
            assert_eq!(r.group_stride, images * 1024);
            assert_eq!(r.bootstraps, 2 * cts[stage(i)]);
        }
        // The levels are those of the full batch: only the packing differs.
        for (a, b) in p.schedule.layers.iter().zip(&s.layers) {
            assert_eq!(
                (a.level_in, a.level_out),
                (b.level_in, b.level_out),
                "{}",
                a.node
            );
        }
        assert_eq!(p.rotation_keys.len(), plan.rotation_keys.len() + 2);
        let stride = (images * 1024) as i64;
        for step in [-stride, stride] {
            assert!(p.rotation_keys.iter().any(|&(s, _)| s == step), "{step}");
        }
        assert!(p.cost.batch_s() < plan.cost.batch_s());
    }
    // Without bootstrapping ResNet-20 does not fit: refused naming the node.
    let setup = RunSetup {
        params: setup.params,
        bootstrap: None,
    };
    let e = plan_encrypted(&net, &ranges, &sign, &setup, 32, false).unwrap_err();
    assert!(e.to_string().contains("r̃_α without bootstrapping"), "{e}");
}

/// (d) ResNet-20 on CIFAR-10 test image 0 encrypted with bootstrapping at INSECURE N = 2^11
/// (1024 slots: one 32×32 image), α = 13: encrypted class = plaintext approximate class.
/// Slow (hundreds of bootstraps): run with `POLYCERT_CKKS_RESNET=1`.
#[test]
#[ignore = "slow: hundreds of bootstraps; set POLYCERT_CKKS_RESNET=1"]
fn resnet20_one_cifar_image_bootstrapped_insecure() {
    if std::env::var_os("POLYCERT_CKKS_RESNET").is_none() {
        eprintln!("skipped: set POLYCERT_CKKS_RESNET=1 to run (it takes long)");
        return;
    }
    let Some(model) = shared_model("resnet20_cifar10.onnx") else {
        return;
    };
    let data =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/cifar10/test_first20.bin");
    if !data.exists() {
        eprintln!("skipped: {} is absent", data.display());
        return;
    }
    let net = Arc::new(crate::nn::import_onnx(&model).unwrap());
    let ds = crate::nn::Dataset::open(&data, None).unwrap();
    let engine: Engine<f64> = Engine::new(Arc::clone(&net));
    let mut cal = crate::nn::calibrate(&engine, &ds, None).unwrap();
    let ranges = cal
        .choose(crate::nn::RangePolicy::PerLayer { margin: 1.05 })
        .unwrap();
    let mut x = Vec::new();
    net.preprocess.apply(ds.image(0).unwrap(), 3, &mut x);
    let sign = table1_sign(13).unwrap();
    let setup = RunSetup::bootstrapped(11, Some(5), true).unwrap();
    let cfg = EncryptedConfig {
        alpha: 13,
        log_n: 11,
        insecure: true,
        seed: 1,
    };
    let t = std::time::Instant::now();
    let rep = run_encrypted_with(
        &net,
        &[x],
        &[ds.label(0).unwrap()],
        &[0],
        &ranges,
        &sign,
        &cfg,
        setup,
        None,
        &mut |m| eprintln!("{m}"),
    )
    .unwrap();
    let im = &rep.images[0];
    eprintln!(
        "ResNet-20 image 0: {:.0} s, {} bootstraps, classes encrypted/approx/exact {}/{}/{}, \
         ‖dec − F^α‖∞ {:.2e}, ‖dec − F‖∞ {:.2e}",
        t.elapsed().as_secs_f64(),
        rep.bootstrap.as_ref().map_or(0, |b| b.bootstraps),
        im.decrypted_class,
        im.approx_class,
        im.exact_class,
        im.ckks_error,
        im.error_vs_exact
    );
    assert_eq!(im.decrypted_class, im.approx_class);
}
