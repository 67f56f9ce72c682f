//! The bounds section of the default report: Theorems 3–4 on a small generated network
//! (no external data), the certified global bound against the error measured on seeded
//! random inputs, for every α of the report.
//!
//! The network is a 16 → 32 → 32 → 10 perceptron with ReLUs (Gemm, Relu, Gemm, Relu, Gemm),
//! weights drawn from a fixed xorshift sequence scaled by 1/√fan-in; B = 4 for both ReLUs.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Value};

use super::{Evidence, LegendPos, LinePlot, MdTable, Section, Series};
use crate::bounds::{BoundedNetwork, PolyErrors};
use crate::certify::Certificate;
use crate::nn::{
    ActivationPolicy, Engine, Linear, Network, Node, Op, Preprocess, Shape, Tensor, ValueInfo,
};

/// Range B of both ReLUs of the generated network.
pub const TOY_B: f64 = 4.0;
/// Random inputs of the measured error (each coordinate uniform in [−1, 1]).
pub const TOY_INPUTS: usize = 2000;

struct XorShift(u64);

impl XorShift {
    /// Uniform in [−1, 1).
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        #[allow(clippy::cast_precision_loss)]
        let u = (self.0 >> 11) as f64 / (1u64 << 53) as f64;
        2.0 * u - 1.0
    }
}

/// The generated network (deterministic).
pub fn toy_network() -> Network {
    let dims = [16usize, 32, 32, 10];
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut values = vec![ValueInfo {
        name: "input".into(),
        shape: Shape(vec![dims[0]]),
    }];
    let mut nodes = Vec::new();
    for (k, (&fan_in, &fan_out)) in dims.iter().zip(dims.iter().skip(1)).enumerate() {
        #[allow(clippy::cast_precision_loss)]
        let s = 1.0 / (fan_in as f64).sqrt();
        #[allow(clippy::cast_possible_truncation)]
        let data: Vec<f32> = (0..fan_in * fan_out)
            .map(|_| (s * rng.next()) as f32)
            .collect();
        #[allow(clippy::cast_possible_truncation)]
        let bias: Vec<f32> = (0..fan_out).map(|_| (0.1 * rng.next()) as f32).collect();
        let input = values.len() - 1;
        values.push(ValueInfo {
            name: format!("fc{k}"),
            shape: Shape(vec![fan_out]),
        });
        nodes.push(Node {
            name: format!("fc{k}"),
            op: Op::Gemm(Linear {
                weight: Tensor {
                    dims: vec![fan_out, fan_in],
                    data,
                },
                bias: Some(bias),
            }),
            inputs: vec![input],
            output: values.len() - 1,
        });
        if k + 2 < dims.len() {
            values.push(ValueInfo {
                name: format!("relu{k}"),
                shape: Shape(vec![fan_out]),
            });
            nodes.push(Node {
                name: format!("relu{k}"),
                op: Op::Relu,
                inputs: vec![values.len() - 2],
                output: values.len() - 1,
            });
        }
    }
    Network {
        name: "generated-mlp-16-32-32-10".into(),
        output: values.len() - 1,
        values,
        nodes,
        input: 0,
        preprocess: Preprocess::default(),
        metadata: Vec::new(),
    }
}

/// The bounds section for the certificates `certs` (one per α, from the default report).
///
/// # Errors
/// Bounds or engine errors (none for the generated network and valid certificates).
pub fn toy_bounds_section(certs: &[&Certificate]) -> crate::Result<Section> {
    let net = Arc::new(toy_network());
    let bn = BoundedNetwork::new(Arc::clone(&net))?;
    let ranges: BTreeMap<usize, f64> = net
        .activation_nodes()
        .into_iter()
        .map(|i| (i, TOY_B))
        .collect();
    let engine: Engine<f64> = Engine::new(Arc::clone(&net));
    let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
    let xs: Vec<Vec<f64>> = (0..TOY_INPUTS)
        .map(|_| (0..16).map(|_| rng.next()).collect())
        .collect();
    let (exact, _) = engine.run_batch(&xs, &ActivationPolicy::Exact)?;
    let mut t = MdTable::new(&[
        "α",
        "certified s = sup|r_α − ReLU|",
        "certified bound C·2^−α",
        "C",
        "measured max ‖F^α − F‖∞",
        "measured / certified",
        "inputs outside [−B, B]",
    ]);
    let mut rows = Vec::new();
    let (mut bound_pts, mut meas_pts) = (Vec::new(), Vec::new());
    for cert in certs {
        let pe = PolyErrors::from_certificate(cert)?;
        let g = bn.global(&pe, &ranges)?;
        let policy = ActivationPolicy::Approx {
            sign: pe.sign_kernel()?,
            ranges: ranges.clone(),
        };
        let (approx, stats) = engine.run_batch(&xs, &policy)?;
        let out_of_range: u64 = stats.out_of_range.values().sum();
        let measured = exact
            .iter()
            .zip(&approx)
            .flat_map(|(a, b)| a.iter().zip(b).map(|(x, y)| (x - y).abs()))
            .fold(0.0f64, f64::max);
        let alpha = f64::from(cert.alpha);
        bound_pts.push((alpha, g.bound));
        if measured > 0.0 {
            meas_pts.push((alpha, measured));
        }
        t.row(&[
            cert.alpha.to_string(),
            format!("{:.4e}", g.relu_sup),
            format!("{:.4e}", g.bound),
            format!("{:.3}", g.c),
            format!("{measured:.4e}"),
            format!("{:.3}", measured / g.bound),
            out_of_range.to_string(),
        ]);
        rows.push(json!({
            "alpha": cert.alpha,
            "certified": {"relu_sup": g.relu_sup, "bound": g.bound, "c": g.c, "blocks": g.blocks},
            "measured": {"max_linf": measured, "inputs": TOY_INPUTS, "out_of_range": out_of_range},
        }));
    }
    let md = format!(
        "Theorems 3–4 on a generated network (`{}`: Gemm 16→32, ReLU, Gemm 32→32, ReLU, Gemm \
         32→10, seeded weights; B = {TOY_B} for both ReLUs). The **certified** bound composes \
         the Lemma 1 functions (‖A‖∞·e for Gemm, B·s + e for ReLU) with s the certified sup of \
         the checked certificate, rounded upward; it holds for every input whose ReLU inputs \
         stay in [−B, B]. The **measured** error is the max over {TOY_INPUTS} seeded random \
         inputs in [−1, 1]^16 (f64 engine). Real models: `polycert bound` and \
         `reports/bounds.md`.\n\n{}",
        net.name,
        t.render()
    );
    let plot = LinePlot {
        id: "network_bound_vs_measured".into(),
        title: "Generated network: bound and measured ‖F^α − F‖∞".into(),
        x_label: "α (precision parameter)".into(),
        y_label: "‖F^α(x) − F(x)‖∞".into(),
        log_x: false,
        log_y: true,
        series: vec![
            Series {
                dashed: true,
                ..Series::new("certified bound C·2^−α", bound_pts)
            },
            Series::new("measured max over random inputs", meas_pts),
        ],
        evidence: Evidence::Mixed,
        legend: LegendPos::UpperRight,
    };
    Ok(Section {
        id: "bounds".into(),
        title: "Network error bound (Theorems 3–4) on a generated network".into(),
        evidence: Evidence::Mixed,
        markdown: md,
        data: Value::Array(rows),
        plots: vec![plot],
    })
}
