//! Integration tests of `polycert::nn`: ONNX import round-trips on generated models, exact
//! accuracy on the shared models (README figures), agreement with onnxruntime, bad input,
//! and the `eval` CLI.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use polycert::nn::proto::{
    attribute_type, data_type, AttributeProto, Dimension, GraphProto, ModelProto, NodeProto,
    OperatorSetIdProto, StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto,
    TypeProtoTensor, ValueInfoProto,
};
use polycert::nn::{
    import_onnx, import_onnx_bytes, ActivationPolicy, Dataset, Engine, NnError, Op, RunStats,
};
use prost::Message;

use crate::util;
use crate::util::have_onnxruntime;

fn shared() -> Option<PathBuf> {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared"));
    if p.join("models").is_dir() && p.join("data").is_dir() {
        Some(p)
    } else {
        eprintln!("skipping: ../shared (models and data) is not present");
        None
    }
}

// ---------- building small models with the prost structs ----------

/// Deterministic pseudo-random values in [−1, 1) (LCG; fixtures only).
pub(crate) struct Lcg(pub(crate) u64);
impl Lcg {
    pub(crate) fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    pub(crate) fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.next()).collect()
    }
}

pub(crate) fn tensor_f(name: &str, dims: &[i64], v: Vec<f32>, raw: bool) -> TensorProto {
    let mut t = TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: data_type::FLOAT,
        ..Default::default()
    };
    if raw {
        t.raw_data = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    } else {
        t.float_data = v;
    }
    t
}

fn tensor_i(name: &str, v: Vec<i64>, raw: bool) -> TensorProto {
    let mut t = TensorProto {
        name: name.into(),
        dims: vec![v.len() as i64],
        data_type: data_type::INT64,
        ..Default::default()
    };
    if raw {
        t.raw_data = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    } else {
        t.int64_data = v;
    }
    t
}

pub(crate) fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        ints: v.to_vec(),
        r#type: attribute_type::INTS,
        ..Default::default()
    }
}
pub(crate) fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        i: v,
        r#type: attribute_type::INT,
        ..Default::default()
    }
}
fn string(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        s: v.as_bytes().to_vec(),
        r#type: attribute_type::STRING,
        ..Default::default()
    }
}

pub(crate) fn node(
    op: &str,
    name: &str,
    ins: &[&str],
    out: &str,
    attrs: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        op_type: op.into(),
        name: name.into(),
        input: ins.iter().map(|s| s.to_string()).collect(),
        output: vec![out.into()],
        attribute: attrs,
        ..Default::default()
    }
}

pub(crate) fn vinfo(name: &str, dims: &[Option<i64>]) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type: data_type::FLOAT,
                shape: Some(TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|d| match d {
                            Some(v) => Dimension {
                                dim_value: Some(*v),
                                dim_param: None,
                            },
                            None => Dimension {
                                dim_value: None,
                                dim_param: Some("N".into()),
                            },
                        })
                        .collect(),
                }),
            }),
        }),
    }
}

pub(crate) fn model(
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    input: &[Option<i64>],
    out: &str,
) -> ModelProto {
    ModelProto {
        ir_version: 8,
        producer_name: "polycert-test".into(),
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 13,
        }],
        metadata_props: vec![
            StringStringEntryProto {
                key: "input_scale".into(),
                value: "1".into(),
            },
            StringStringEntryProto {
                key: "input_mean".into(),
                value: "0".into(),
            },
            StringStringEntryProto {
                key: "input_std".into(),
                value: "1".into(),
            },
        ],
        graph: Some(GraphProto {
            name: "gen".into(),
            node: nodes,
            initializer: inits,
            input: vec![vinfo("x", input)],
            output: vec![vinfo(out, &[None, Some(3)])],
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A model touching every supported op: grouped / dilated convolutions, BN, Relu, Clip (with
/// a `Constant` bound), MaxPool, AveragePool (padded), Add (residual and broadcast constant),
/// Slice, Pad, Concat, GlobalAveragePool, Flatten, Reshape, Gemm (transB, α, β), MatMul,
/// Identity, Softmax. Input `[N, 2, 8, 8]`, output `[N, 3]`.
pub(crate) fn all_ops_model(raw: bool) -> ModelProto {
    let mut r = Lcg(7);
    let lo_const = NodeProto {
        op_type: "Constant".into(),
        name: "lo_c".into(),
        output: vec!["lo".into()],
        attribute: vec![AttributeProto {
            name: "value".into(),
            t: Some(tensor_f("", &[], vec![-0.2], false)),
            r#type: attribute_type::TENSOR,
            ..Default::default()
        }],
        ..Default::default()
    };
    let inits = vec![
        tensor_f("w1", &[4, 1, 3, 3], r.vec(36), raw),
        tensor_f("b1", &[4], r.vec(4), raw),
        tensor_f("g", &[4], r.vec(4).iter().map(|v| v + 1.5).collect(), raw),
        tensor_f("be", &[4], r.vec(4), raw),
        tensor_f("mu", &[4], r.vec(4), raw),
        tensor_f(
            "var",
            &[4],
            r.vec(4).iter().map(|v| v.abs() + 0.5).collect(),
            raw,
        ),
        tensor_f("w2", &[4, 4, 3, 3], r.vec(144), raw),
        tensor_f("c", &[1, 4, 1, 1], r.vec(4), raw),
        tensor_f("hi", &[], vec![0.8], raw),
        tensor_i("st", vec![0, 0], raw),
        tensor_i("en", vec![i64::MAX, i64::MAX], raw),
        tensor_i("ax", vec![2, 3], raw),
        tensor_i("sp", vec![2, 2], raw),
        tensor_i("pads", vec![0, 1, 0, 0, 0, 1, 0, 0], raw),
        tensor_i("shape", vec![0, -1], raw),
        tensor_f("wm0", &[6, 14], r.vec(84), raw),
        tensor_f("wmm", &[6, 5], r.vec(30), raw),
        tensor_f("wg", &[5, 3], r.vec(15), raw),
        tensor_f("bg", &[3], r.vec(3), raw),
    ];
    let alpha = AttributeProto {
        name: "alpha".into(),
        f: 0.5,
        r#type: attribute_type::FLOAT,
        ..Default::default()
    };
    let beta = AttributeProto {
        name: "beta".into(),
        f: 2.0,
        r#type: attribute_type::FLOAT,
        ..Default::default()
    };
    let nodes = vec![
        lo_const,
        node(
            "Conv",
            "conv1",
            &["x", "w1", "b1"],
            "c1",
            vec![
                ints("kernel_shape", &[3, 3]),
                ints("pads", &[1, 1, 1, 1]),
                int("group", 2),
            ],
        ),
        node(
            "BatchNormalization",
            "bn1",
            &["c1", "g", "be", "mu", "var"],
            "n1",
            vec![],
        ),
        node("Relu", "relu1", &["n1"], "r1", vec![]),
        node(
            "Conv",
            "conv2",
            &["r1", "w2"],
            "c2",
            vec![ints("pads", &[2, 2, 2, 2]), ints("dilations", &[2, 2])],
        ),
        node("Add", "res", &["c2", "r1"], "a1", vec![]),
        node("Add", "addc", &["a1", "c"], "a2", vec![]),
        node("Clip", "clip", &["a2", "lo", "hi"], "k1", vec![]),
        node(
            "MaxPool",
            "mp",
            &["k1"],
            "p1",
            vec![ints("kernel_shape", &[2, 2]), ints("strides", &[2, 2])],
        ),
        node(
            "AveragePool",
            "ap",
            &["r1"],
            "p2",
            vec![
                ints("kernel_shape", &[3, 3]),
                ints("strides", &[2, 2]),
                ints("pads", &[1, 1, 1, 1]),
            ],
        ),
        node("Slice", "sl", &["r1", "st", "en", "ax", "sp"], "s1", vec![]),
        node(
            "Pad",
            "pad",
            &["s1", "pads"],
            "q1",
            vec![string("mode", "constant")],
        ),
        node(
            "Concat",
            "cat",
            &["p1", "p2", "q1"],
            "cc",
            vec![int("axis", 1)],
        ),
        node("GlobalAveragePool", "gap", &["cc"], "gp", vec![]),
        node("Flatten", "flat", &["gp"], "f1", vec![int("axis", 1)]),
        node("Reshape", "rs", &["f1", "shape"], "f2", vec![]),
        node("Gemm", "fc0", &["f2", "wm0"], "h0", vec![int("transB", 1)]),
        node("Relu", "relu2", &["h0"], "h1", vec![]),
        node("MatMul", "mm", &["h1", "wmm"], "h2", vec![]),
        node("Identity", "id", &["h2"], "h3", vec![]),
        node("Gemm", "fc", &["h3", "wg", "bg"], "y0", vec![alpha, beta]),
        node("Softmax", "sm", &["y0"], "y", vec![int("axis", -1)]),
    ];
    model(nodes, inits, &[None, Some(2), Some(8), Some(8)], "y")
}

fn run_exact(net: &polycert::nn::Network, x: &[f64]) -> Vec<f64> {
    let e: Engine<f64> = Engine::new(Arc::new(net.clone()));
    e.run(x, &ActivationPolicy::Exact, &mut RunStats::default())
        .unwrap()
}

#[test]
fn import_roundtrip_generated_model() {
    let bytes_f = all_ops_model(false).encode_to_vec();
    let bytes_r = all_ops_model(true).encode_to_vec();
    let net = import_onnx_bytes(&bytes_f, "gen").unwrap();
    let net_r = import_onnx_bytes(&bytes_r, "gen-raw").unwrap();
    // float_data and raw_data encodings import to the same network.
    assert_eq!(net, net_r);
    let ops: Vec<&str> = net.nodes.iter().map(|n| n.op.op_type()).collect();
    assert_eq!(
        ops,
        [
            "Conv",
            "BatchNormalization",
            "Relu",
            "Conv",
            "Add",
            "Add",
            "Clip",
            "MaxPool",
            "AveragePool",
            "Slice",
            "Pad",
            "Concat",
            "GlobalAveragePool",
            "Flatten",
            "Reshape",
            "Gemm",
            "Relu",
            "MatMul",
            "Identity",
            "Gemm",
            "Softmax"
        ]
    );
    let shape = |name: &str| {
        net.values
            .iter()
            .find(|v| v.name == name)
            .unwrap()
            .shape
            .0
            .clone()
    };
    assert_eq!(shape("c1"), [4, 8, 8]);
    assert_eq!(shape("c2"), [4, 8, 8]);
    assert_eq!(shape("p1"), [4, 4, 4]);
    assert_eq!(shape("p2"), [4, 4, 4]);
    assert_eq!(shape("q1"), [6, 4, 4]);
    assert_eq!(shape("cc"), [14, 4, 4]);
    assert_eq!(shape("f2"), [14]);
    assert_eq!(net.output_shape().0, [3]);
    // Parameters survive: conv1 weights and attributes as written.
    let mut r = Lcg(7);
    match &net.nodes[0].op {
        Op::Conv(c) => {
            assert_eq!(c.weight.data, r.vec(36));
            assert_eq!(c.groups, 2);
            assert_eq!(c.pads, [1, 1, 1, 1]);
            assert_eq!(c.weight.dims, [4, 1, 3, 3]);
        }
        other => panic!("{other:?}"),
    }
    match &net.nodes[3].op {
        Op::Conv(c) => assert_eq!((c.dilations, c.bias.is_none()), ([2, 2], true)),
        other => panic!("{other:?}"),
    }
    match &net.nodes[6].op {
        Op::Clip { min, max } => assert_eq!((*min, *max), (-0.2, 0.8)),
        other => panic!("{other:?}"),
    }
    // Gemm (α = 0.5, β = 2) is normalised to [out, in] with α, β folded in.
    match (&net.nodes[19].op, &net.nodes[15].op) {
        (Op::Gemm(l), Op::Gemm(l0)) => {
            assert_eq!(l.weight.dims, [3, 5]);
            assert_eq!(l0.weight.dims, [6, 14]);
        }
        other => panic!("{other:?}"),
    }
    // The softmax output is a probability vector.
    let x: Vec<f64> = Lcg(3).vec(128).iter().map(|&v| f64::from(v)).collect();
    let y = run_exact(&net, &x);
    assert!((y.iter().sum::<f64>() - 1.0).abs() < 1e-12);
}

/// Logits from onnxruntime for a model file and preprocessed raw inputs.
fn ort_raw(model: &Path, shape: &[usize], x: &[f32]) -> Vec<Vec<f64>> {
    use std::io::Write;
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let mut child = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/ort_logits.py"
        ))
        .arg(model)
        .arg(format!("raw:{}", dims.join(",")))
        .arg(shape[0].to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let text: Vec<String> = x.iter().map(|v| format!("{v:e}")).collect();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.join(" ").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn generated_model_matches_onnxruntime() {
    if !have_onnxruntime() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("all_ops.onnx");
    std::fs::write(&path, all_ops_model(true).encode_to_vec()).unwrap();
    let net = import_onnx(&path).unwrap();
    let xs: Vec<f32> = Lcg(11).vec(3 * 128).iter().map(|v| v * 3.0).collect();
    let want = ort_raw(&path, &[3, 2, 8, 8], &xs);
    let e: Engine<f32> = Engine::new(Arc::new(net));
    for (i, w) in want.iter().enumerate() {
        let y = e
            .run(
                &xs[i * 128..(i + 1) * 128],
                &ActivationPolicy::Exact,
                &mut RunStats::default(),
            )
            .unwrap();
        for (a, b) in y.iter().zip(w) {
            assert!((f64::from(*a) - b).abs() < 1e-5, "image {i}: {a} vs {b}");
        }
    }
}

/// Issue 15: the EfficientNet-Lite0 preprocessing and block ops — Sub and Div by per-channel
/// constants, Mul by a scalar, a depthwise convolution with TF "SAME" asymmetric pads and
/// stride 2, Clip(0, 6) with min/max as inputs, a 1×1 convolution — in one model.
fn mobile_ops_model() -> ModelProto {
    let mut r = Lcg(15);
    let nodes = vec![
        node("Sub", "pre.sub", &["x", "mean"], "a", vec![]),
        node("Div", "pre.div", &["a", "std"], "b", vec![]),
        node("Mul", "pre.mul", &["two", "b"], "c", vec![]),
        node(
            "Conv",
            "dw",
            &["c", "dw.w", "dw.b"],
            "d",
            vec![
                int("group", 2),
                ints("kernel_shape", &[3, 3]),
                ints("pads", &[0, 0, 1, 1]),
                ints("strides", &[2, 2]),
            ],
        ),
        node("Clip", "relu6", &["d", "zero", "six"], "e", vec![]),
        node("Conv", "pw", &["e", "pw.w"], "f", vec![]),
        node("GlobalAveragePool", "gap", &["f"], "g", vec![]),
        node("Flatten", "flat", &["g"], "h", vec![]),
        node("Gemm", "fc", &["h", "fc.w"], "y", vec![int("transB", 1)]),
    ];
    let inits = vec![
        tensor_f("mean", &[1, 2, 1, 1], vec![127.0, 100.5], true),
        tensor_f("std", &[1, 2, 1, 1], vec![128.0, 3.0], true),
        tensor_f("two", &[], vec![2.5], false),
        tensor_f(
            "dw.w",
            &[2, 1, 3, 3],
            r.vec(18).iter().map(|v| v * 4.0).collect(),
            true,
        ),
        tensor_f("dw.b", &[2], vec![0.5, -0.25], true),
        tensor_f("zero", &[], vec![0.0], false),
        tensor_f("six", &[], vec![6.0], false),
        tensor_f("pw.w", &[4, 2, 1, 1], r.vec(8), true),
        tensor_f("fc.w", &[3, 4], r.vec(12), true),
    ];
    model(nodes, inits, &[None, Some(2), Some(7), Some(8)], "y")
}

#[test]
fn mobile_ops_import_and_match_onnxruntime() {
    let m = mobile_ops_model();
    let net = import_onnx_bytes(&m.encode_to_vec(), "mobile").unwrap();
    let ops: Vec<&str> = net.nodes.iter().map(|n| n.op.op_type()).collect();
    // Sub by a constant is imported as the addition of its negation.
    assert_eq!(
        ops,
        [
            "Add",
            "Div",
            "Mul",
            "Conv",
            "Clip",
            "Conv",
            "GlobalAveragePool",
            "Flatten",
            "Gemm"
        ]
    );
    // ⌊(7 + 0 + 1 − 3)/2⌋ + 1 = 3 rows, ⌊(8 + 0 + 1 − 3)/2⌋ + 1 = 4 columns.
    assert_eq!(net.shape(net.nodes[3].output).dims(), &[2, 3, 4]);
    match &net.nodes[4].op {
        Op::Clip { min, max } => assert_eq!((*min, *max), (0.0, 6.0)),
        other => panic!("{other:?}"),
    }
    if !have_onnxruntime() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mobile.onnx");
    std::fs::write(&path, m.encode_to_vec()).unwrap();
    // Raw 0..255-like pixels, as the ImageNet model gets them.
    let xs: Vec<f32> = Lcg(3)
        .vec(4 * 112)
        .iter()
        .map(|v| (v * 127.5 + 127.5).round())
        .collect();
    let want = ort_raw(&path, &[4, 2, 7, 8], &xs);
    let e: Engine<f32> = Engine::new(Arc::new(net));
    for (i, w) in want.iter().enumerate() {
        let y = e
            .run(
                &xs[i * 112..(i + 1) * 112],
                &ActivationPolicy::Exact,
                &mut RunStats::default(),
            )
            .unwrap();
        for (a, b) in y.iter().zip(w) {
            assert!((f64::from(*a) - b).abs() < 1e-5, "image {i}: {a} vs {b}");
        }
    }
}

/// An approximate policy replaces the Clip by two r̃_α only when it gives ranges for both
/// ReLUs (keys `node` and `clip_upper_key(node)`); half of them is an error naming the node.
#[test]
fn clip_is_approximated_only_with_both_ranges() {
    use polycert::nn::{clip_upper_key, SignKernel};
    use std::collections::BTreeMap;
    let net = import_onnx_bytes(&mobile_ops_model().encode_to_vec(), "mobile").unwrap();
    let e: Engine<f64> = Engine::new(Arc::new(net));
    let x: Vec<f64> = Lcg(5)
        .vec(112)
        .iter()
        .map(|v| f64::from(v * 127.5 + 127.5))
        .collect();
    let mut st = RunStats::default();
    let exact = e.run(&x, &ActivationPolicy::Exact, &mut st).unwrap();
    // The exact pass records max |x − 0| and max |x − 6| at the Clip's two keys.
    let (m0, m6) = (st.max_abs[&4], st.max_abs[&clip_upper_key(4)]);
    assert!(m0 > 0.0 && m6 > 0.0 && (m0 - m6).abs() <= 6.0, "{m0} {m6}");
    let sign = SignKernel::new(14, polycert::remez::table1_sign(14).unwrap().poly());
    let policy = |ranges: BTreeMap<usize, f64>| ActivationPolicy::Approx {
        sign: sign.clone(),
        ranges,
    };
    // No Clip ranges: the Clip stays exact (the network has no ReLU / MaxPool).
    let same = e
        .run(&x, &policy(BTreeMap::new()), &mut RunStats::default())
        .unwrap();
    assert_eq!(same, exact);
    // Both ranges (B = 1.1 × the measured maxima): approximated, close to exact, none outside.
    let both = BTreeMap::from([(4, 1.1 * m0), (clip_upper_key(4), 1.1 * m6)]);
    let mut sa = RunStats::default();
    let approx = e.run(&x, &policy(both), &mut sa).unwrap();
    assert_ne!(approx, exact);
    let d = approx
        .iter()
        .zip(&exact)
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    assert!(d < 1e-2, "{d}");
    assert_eq!(sa.out_of_range[&4] + sa.out_of_range[&clip_upper_key(4)], 0);
    // Half of them: a configuration error naming the node.
    let err = e
        .run_batch(
            std::slice::from_ref(&x),
            &policy(BTreeMap::from([(4, 10.0)])),
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("ranges B of Clip node \"relu6\" (#4)"),
        "{err}"
    );
}

/// Clip before opset 11 takes min / max as attributes (ReLU6 = Clip(0, 6)); from opset 11 on
/// an attribute is an error naming the node (the bounds are inputs there).
#[test]
fn clip_attributes_before_opset_11() {
    let float = |name: &str, f: f32| AttributeProto {
        name: name.into(),
        f,
        r#type: attribute_type::FLOAT,
        ..Default::default()
    };
    let clip = node(
        "Clip",
        "relu6",
        &["x"],
        "y",
        vec![float("min", 0.0), float("max", 6.0)],
    );
    let mut m = model(vec![clip], vec![], &[None, Some(3)], "y");
    m.opset_import[0].version = 10;
    let net = import_onnx_bytes(&m.encode_to_vec(), "m10").unwrap();
    match &net.nodes[0].op {
        Op::Clip { min, max } => assert_eq!((*min, *max), (0.0, 6.0)),
        other => panic!("{other:?}"),
    }
    let e: Engine<f64> = Engine::new(Arc::new(net));
    let y = e
        .run(
            &[-2.0, 3.5, 7.0],
            &ActivationPolicy::Exact,
            &mut RunStats::default(),
        )
        .unwrap();
    assert_eq!(y, [0.0, 3.5, 6.0]);
    m.opset_import[0].version = 13;
    let err = import_onnx_bytes(&m.encode_to_vec(), "m13").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("node \"relu6\" (Clip): unsupported attribute \"min\""),
        "{err}"
    );
}

#[test]
fn unsupported_sub_div_mul_forms_are_errors_naming_the_node() {
    let cases: [(&str, &[&str], &str); 4] = [
        ("Sub", &["mean", "x"], "node \"bad\" (Sub): unsupported constant \"mean\" as the first operand (supported: activation − constant)"),
        ("Div", &["x", "x"], "node \"bad\" (Div): unsupported two activation operands (supported: one operand a constant)"),
        ("Mul", &["mean", "mean"], "node \"bad\" (Mul): unsupported Mul of two constants"),
        ("Div", &["x", "zero"], "node \"bad\": Div: divisor \"zero\" has a zero at flat index 1"),
    ];
    for (op, ins, want) in cases {
        let m = model(
            vec![node(op, "bad", ins, "y", vec![])],
            vec![
                tensor_f("mean", &[1, 3], vec![1.0, 2.0, 3.0], true),
                tensor_f("zero", &[3], vec![1.0, 0.0, 2.0], true),
            ],
            &[None, Some(3)],
            "y",
        );
        let e = import_onnx_bytes(&m.encode_to_vec(), "m").unwrap_err();
        assert_eq!(e.to_string(), want);
    }
}

fn logits(e: &Engine<f32>, d: &Dataset, i: usize) -> Vec<f32> {
    let mut x = Vec::new();
    e.network()
        .preprocess
        .apply(d.image(i).unwrap(), d.shape[0], &mut x);
    e.run(&x, &ActivationPolicy::Exact, &mut RunStats::default())
        .unwrap()
}

fn argmax(v: &[f32]) -> usize {
    let mut b = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[b] {
            b = i;
        }
    }
    b
}

fn accuracy(model: &Path, data: &Path) -> (usize, usize) {
    let net = import_onnx(model).unwrap();
    let d = Dataset::open(data, None).unwrap();
    let e: Engine<f32> = Engine::new(Arc::new(net));
    let correct = (0..d.len())
        .filter(|&i| argmax(&logits(&e, &d, i)) == usize::from(d.label(i).unwrap()))
        .count();
    (correct, d.len())
}

/// Issue #4 (engine throughput): the direct convolution, the folded batch norms, the fused
/// ReLU and the vectorised r̃_α keep every output and every run statistic bit-for-bit the same
/// with 1 and 2 rayon threads and between `run_batch` and per-image `run`, for the exact
/// network and for α = 12 (f32 and f64 engines).
#[test]
fn engine_results_do_not_depend_on_thread_count() {
    let Some(s) = shared() else { return };
    let net = Arc::new(import_onnx(&s.join("models/resnet20_cifar10.onnx")).unwrap());
    let d = Dataset::open(&s.join("data/cifar10/test_first20.bin"), None).unwrap();
    let sign = polycert::remez::table1_sign(12).unwrap();
    // B = 8 leaves some ReLU inputs of this model outside [−B, B] (README: even B = 10 does),
    // so the out-of-range counts are exercised too.
    let ranges = net
        .activation_nodes()
        .into_iter()
        .map(|id| (id, 8.0))
        .collect();
    let approx = ActivationPolicy::Approx {
        sign: polycert::nn::SignKernel::new(12, sign.poly()),
        ranges,
    };
    fn check<T: polycert::nn::Real>(e: &Engine<T>, d: &Dataset, approx: &ActivationPolicy) {
        let xs: Vec<Vec<T>> = (0..12)
            .map(|i| {
                let mut x = Vec::new();
                e.network()
                    .preprocess
                    .apply(d.image(i).unwrap(), d.shape[0], &mut x);
                x
            })
            .collect();
        for policy in [&ActivationPolicy::Exact, approx] {
            let runs: Vec<_> = [1, 2]
                .into_iter()
                .map(|t| {
                    rayon::ThreadPoolBuilder::new()
                        .num_threads(t)
                        .build()
                        .unwrap()
                        .install(|| e.run_batch(&xs, policy).unwrap())
                })
                .collect();
            let bits = |ys: &[Vec<T>]| -> Vec<Vec<u64>> {
                ys.iter()
                    .map(|y| y.iter().map(|v| v.to_f64().to_bits()).collect())
                    .collect()
            };
            assert_eq!(bits(&runs[0].0), bits(&runs[1].0), "{}", T::NAME);
            assert_eq!(runs[0].1, runs[1].1, "{}", T::NAME);
            let mut st = RunStats::default();
            let single: Vec<Vec<T>> = xs
                .iter()
                .map(|x| e.run(x, policy, &mut st).unwrap())
                .collect();
            assert_eq!(bits(&single), bits(&runs[0].0), "{}", T::NAME);
            assert_eq!(st, runs[0].1, "{}", T::NAME);
            assert_eq!(st.max_abs.len(), e.network().activation_nodes().len());
            if matches!(policy, ActivationPolicy::Approx { .. }) {
                assert!(
                    st.out_of_range.values().sum::<u64>() > 0,
                    "B = 8 should leave inputs outside"
                );
            }
        }
    }
    check::<f32>(&Engine::new(Arc::clone(&net)), &d, &approx);
    check::<f64>(&Engine::new(net), &d, &approx);
}

/// README (shared/models): first-20 accuracies 20/20, 19/20, 20/20, 20/20.
#[test]
fn shared_models_first20_accuracy_matches_readme() {
    let Some(s) = shared() else { return };
    let data = s.join("data/cifar10/test_first20.bin");
    for (m, want) in [
        ("resnet20", 20),
        ("resnet32", 19),
        ("resnet44", 20),
        ("vgg_small", 20),
    ] {
        let (c, n) = accuracy(&s.join(format!("models/{m}_cifar10.onnx")), &data);
        assert_eq!((c, n), (want, 20), "{m}");
    }
}

/// README (shared/models): 10,000-image accuracies (JPEG CIFAR-10 copy and MNIST t10k).
#[test]
#[ignore = "slow: 60,000 forward passes; run in release by .ci/run"]
fn shared_models_full_accuracy_matches_readme() {
    let Some(s) = shared() else { return };
    let cifar = s.join("data/cifar10/test_batch_jpeg.bin");
    let mnist = s.join("data/mnist/t10k-images-idx3-ubyte");
    for (m, data, want) in [
        ("resnet20_cifar10", &cifar, 8103),
        ("resnet32_cifar10", &cifar, 8256),
        ("resnet44_cifar10", &cifar, 8267),
        ("vgg_small_cifar10", &cifar, 7657),
        ("mnist_cnn_small", &mnist, 9795),
        ("mnist_cnn_small_maxpool", &mnist, 9805),
    ] {
        let (c, n) = accuracy(&s.join(format!("models/{m}.onnx")), data);
        assert_eq!(n, 10_000);
        // 0.05 pt of 10,000 images = 5 images.
        assert!(c.abs_diff(want) <= 5, "{m}: {c} correct, README {want}");
    }
}

/// The exact f32 engine reproduces onnxruntime's logits on every shared model.
#[test]
fn shared_models_match_onnxruntime() {
    let Some(s) = shared() else { return };
    if !have_onnxruntime() {
        return;
    }
    for (m, data) in [
        ("resnet20_cifar10", "cifar10/test_first20.bin"),
        ("resnet32_cifar10", "cifar10/test_first20.bin"),
        ("resnet44_cifar10", "cifar10/test_first20.bin"),
        ("vgg_small_cifar10", "cifar10/test_first20.bin"),
        ("mnist_cnn_small", "mnist/t10k-images-idx3-ubyte"),
        ("mnist_cnn_small_maxpool", "mnist/t10k-images-idx3-ubyte"),
    ] {
        let model = s.join(format!("models/{m}.onnx"));
        let data = s.join(format!("data/{data}"));
        let out = util::run_ok(
            Command::new("python3")
                .arg(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/tests/data/ort_logits.py"
                ))
                .arg(&model)
                .arg(&data)
                .arg("20"),
        );
        let want: Vec<Vec<f64>> = serde_json::from_slice(&out.stdout).unwrap();
        let e: Engine<f32> = Engine::new(Arc::new(import_onnx(&model).unwrap()));
        let d = Dataset::open(&data, None).unwrap();
        let mut worst = 0.0f64;
        for (i, w) in want.iter().enumerate() {
            let y = logits(&e, &d, i);
            for (a, b) in y.iter().zip(w) {
                worst = worst.max((f64::from(*a) - b).abs());
            }
        }
        // Logits reach ~37 in magnitude; f32 summation order differs from onnxruntime's.
        assert!(worst < 1e-3, "{m}: max |polycert − onnxruntime| = {worst}");
    }
}

// ---------- bad input ----------

#[test]
fn corrupt_and_truncated_onnx_are_errors() {
    let bytes = all_ops_model(true).encode_to_vec();
    for cut in [1, 7, bytes.len() / 3, bytes.len() / 2, bytes.len() - 1] {
        let r = import_onnx_bytes(&bytes[..cut], "cut");
        assert!(r.is_err(), "prefix of {cut} bytes imported");
    }
    let mut garbage = bytes.clone();
    for (i, b) in garbage.iter_mut().enumerate().step_by(97) {
        *b ^= (i as u8) | 0x81;
    }
    let _ = import_onnx_bytes(&garbage, "garbage"); // must not panic
    let e = import_onnx_bytes(b"\xff\xff\xff\xff", "junk").unwrap_err();
    assert!(matches!(e, NnError::Decode { .. }), "{e}");
    let e = import_onnx(Path::new("/nonexistent/m.onnx")).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/m.onnx"), "{e}");
}

#[test]
fn unsupported_op_and_attribute_name_the_node() {
    let mut m = all_ops_model(false);
    let g = m.graph.as_mut().unwrap();
    g.node[3].op_type = "Tanh".into();
    let e = import_onnx_bytes(&m.encode_to_vec(), "m").unwrap_err();
    assert!(
        e.to_string().contains("relu1") && e.to_string().contains("Tanh"),
        "{e}"
    );

    let mut m = all_ops_model(false);
    m.graph.as_mut().unwrap().node[1]
        .attribute
        .push(string("auto_pad", "SAME_UPPER"));
    let e = import_onnx_bytes(&m.encode_to_vec(), "m").unwrap_err();
    assert_eq!(
        e.to_string(),
        "node \"conv1\" (Conv): unsupported attribute auto_pad = \"SAME_UPPER\" (supported: NOTSET, VALID)"
    );

    let mut m = all_ops_model(false);
    m.graph.as_mut().unwrap().node[8]
        .attribute
        .push(int("ceil_mode", 1));
    let e = import_onnx_bytes(&m.encode_to_vec(), "m").unwrap_err();
    assert!(
        e.to_string().contains("\"mp\"") && e.to_string().contains("ceil_mode"),
        "{e}"
    );

    // A weight with the wrong shape is a clear error, not a panic.
    let mut m = all_ops_model(false);
    m.graph.as_mut().unwrap().initializer[6] = tensor_f("w2", &[4, 3, 3, 3], vec![0.0; 108], false);
    let e = import_onnx_bytes(&m.encode_to_vec(), "m").unwrap_err();
    assert!(e.to_string().contains("conv2"), "{e}");

    // Initialiser data shorter than its dims.
    let mut m = all_ops_model(false);
    m.graph.as_mut().unwrap().initializer[0]
        .float_data
        .truncate(10);
    let e = import_onnx_bytes(&m.encode_to_vec(), "m").unwrap_err();
    assert!(
        e.to_string().contains("w1") && e.to_string().contains("36"),
        "{e}"
    );
}

#[test]
fn wrong_input_size_is_an_error() {
    let net = import_onnx_bytes(&all_ops_model(false).encode_to_vec(), "m").unwrap();
    let e: Engine<f32> = Engine::new(Arc::new(net));
    let err = e
        .run(
            &[0.0; 100],
            &ActivationPolicy::Exact,
            &mut RunStats::default(),
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "input 0: has 100 values, the network expects 128 (shape [2, 8, 8])"
    );
}

#[test]
fn truncated_data_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.bin");
    std::fs::write(&p, vec![1u8; 3073 * 2 + 5]).unwrap();
    let e = Dataset::open(&p, None).unwrap_err();
    assert!(
        e.to_string().contains("c.bin") && e.to_string().contains("6151"),
        "{e}"
    );
    let p = dir.path().join("x-images-idx3-ubyte");
    let mut img = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 28, 0, 0, 0, 28];
    img.extend(vec![0u8; 28 * 28 * 2]);
    std::fs::write(&p, &img).unwrap();
    let e = Dataset::open(&p, None).unwrap_err();
    assert!(e.to_string().contains("x-labels-idx1-ubyte"), "{e}");
    std::fs::write(&p, &img[..100]).unwrap();
    assert!(Dataset::open(&p, None).is_err());
}

// ---------- CLI ----------

#[test]
fn cli_eval_first20_json() {
    let Some(s) = shared() else { return };
    let dir = tempfile::tempdir().unwrap();
    let md = dir.path().join("t.md");
    let out = util::run_ok(
        util::polycert()
            .args(["--quiet", "eval", "--alpha", "13..14", "--json"])
            .arg("--model")
            .arg(s.join("models/resnet20_cifar10.onnx"))
            .arg("--data")
            .arg(s.join("data/cifar10/test_first20.bin"))
            .arg("--out-md")
            .arg(&md),
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["images"], 20);
    assert_eq!(v["baseline_correct"], 20);
    assert_eq!(v["alphas"].as_array().unwrap().len(), 2);
    assert_eq!(v["alphas"][1]["alpha"], 14);
    assert!(v["alphas"][1]["linf_max"].as_f64().unwrap() < 5.0);
    assert_eq!(v["layers"].as_array().unwrap().len(), 19);
    assert!(std::fs::read_to_string(&md)
        .unwrap()
        .contains("| 14 | 15,27,29 |"));

    // Bad input → exit code 2 with a message naming the file.
    let out = util::polycert()
        .args([
            "--quiet",
            "eval",
            "--model",
            "/nonexistent.onnx",
            "--data",
            "/x.bin",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.onnx"));
    // Wrong data for the model (MNIST images into a CIFAR network).
    let out = util::polycert()
        .args(["--quiet", "eval", "--alpha", "14", "--limit", "2"])
        .arg("--model")
        .arg(s.join("models/resnet20_cifar10.onnx"))
        .arg("--data")
        .arg(s.join("data/mnist/t10k-images-idx3-ubyte"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("expects 3072"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
