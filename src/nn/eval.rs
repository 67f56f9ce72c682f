//! Table 2 measurements: calibration of the approximation range B, and streaming evaluation
//! of F and F^α for several α on a dataset (top-1 accuracy, measured ‖F^α(x) − F(x)‖∞,
//! out-of-range counts). Everything here is **measured** on the given inputs.

use std::collections::BTreeMap;

use rayon::prelude::*;

use super::activation::{ActivationPolicy, RangePolicy, SignKernel};
use super::data::Dataset;
use super::engine::{Engine, Real, RunStats};
use super::ir::{Network, NodeId};
use super::NnError;

/// Measured max |input| of one ReLU / MaxPool node, and the B chosen for it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LayerRange {
    /// Node index in the network.
    pub node: NodeId,
    /// Node name.
    pub name: String,
    /// `Relu` or `MaxPool`.
    pub op: String,
    /// Measured max |input| over the calibration images.
    pub measured_max_abs: f64,
    /// The approximation range B used for this node.
    pub b: f64,
}

/// Calibration result: per-node measured maxima.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Calibration {
    /// Calibration data file.
    pub data: String,
    /// Number of calibration images.
    pub images: usize,
    /// Per activation node, in graph order (`b` equals the measured max until
    /// [`Calibration::choose`] is applied).
    pub layers: Vec<LayerRange>,
}

impl Calibration {
    /// The calibration of the first `images` images of `data` from the merged statistics of
    /// their exact pass: B of every ReLU / MaxPool node is its measured max |input| (before
    /// [`Calibration::choose`] applies the policy).
    #[must_use]
    pub fn from_stats(net: &Network, data: &Dataset, images: usize, stats: &RunStats) -> Self {
        let layers = net
            .activation_nodes()
            .into_iter()
            .map(|id| {
                let m = stats.max_abs.get(&id).copied().unwrap_or(0.0);
                let node = net.nodes.get(id);
                LayerRange {
                    node: id,
                    name: node.map(|n| n.name.clone()).unwrap_or_default(),
                    op: node.map(|n| n.op.op_type().to_string()).unwrap_or_default(),
                    measured_max_abs: m,
                    b: m,
                }
            })
            .collect();
        Calibration {
            data: data.path.display().to_string(),
            images,
            layers,
        }
    }

    /// Pick B per node according to `policy` ("the smallest B such that all the inputs … are
    /// included in [−B, B]", §3, times the margin).
    ///
    /// # Errors
    /// [`NnError::Config`] for a margin < 1 or a non-positive / non-finite B.
    pub fn choose(&mut self, policy: RangePolicy) -> Result<BTreeMap<NodeId, f64>, NnError> {
        let net_max = self
            .layers
            .iter()
            .map(|l| l.measured_max_abs)
            .fold(0.0f64, f64::max);
        let check_margin = |m: f64| {
            if m.is_finite() && m >= 1.0 {
                Ok(m)
            } else {
                Err(NnError::Config {
                    what: "range margin".into(),
                    value: m.to_string(),
                    valid: "a finite factor ≥ 1".into(),
                })
            }
        };
        let mut out = BTreeMap::new();
        for l in &mut self.layers {
            let b = match policy {
                RangePolicy::PerLayer { margin } => l.measured_max_abs * check_margin(margin)?,
                RangePolicy::PerNetwork { margin } => net_max * check_margin(margin)?,
                RangePolicy::Fixed(b) => b,
            };
            // A node that never saw a non-zero input still needs a positive range.
            let b = if b == 0.0 && !matches!(policy, RangePolicy::Fixed(_)) {
                1.0
            } else {
                b
            };
            if !(b.is_finite() && b > 0.0) {
                return Err(NnError::Config {
                    what: format!("B of node {:?}", l.name),
                    value: b.to_string(),
                    valid: "a finite B > 0".into(),
                });
            }
            l.b = b;
            out.insert(l.node, b);
        }
        Ok(out)
    }
}

fn prep_image<T: Real>(engine: &Engine<T>, data: &Dataset, i: usize) -> Result<Vec<T>, NnError> {
    let net = engine.network();
    let raw = data.image(i).ok_or_else(|| NnError::Data {
        path: data.path.clone(),
        reason: format!("image {i} out of range ({} images)", data.len()),
    })?;
    let expected = net.input_shape().numel();
    if raw.len() != expected {
        return Err(NnError::InputSize {
            index: i,
            got: raw.len(),
            expected,
            shape: format!("{} (data images are {:?})", net.input_shape(), data.shape),
        });
    }
    let mut x = Vec::with_capacity(raw.len());
    net.preprocess.apply(raw, data.shape[0], &mut x);
    Ok(x)
}

/// Index of the largest value (first on ties).
fn argmax<T: Real>(v: &[T]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if v.get(best).is_some_and(|b| x > b) {
            best = i;
        }
    }
    best
}

/// Exact pass over the first `limit` images of `data`, recording max |input| at every ReLU
/// and MaxPool node.
///
/// # Errors
/// Input size mismatch or engine errors.
pub fn calibrate<T: Real>(
    engine: &Engine<T>,
    data: &Dataset,
    limit: Option<usize>,
) -> Result<Calibration, NnError> {
    let n = limit.map_or(data.len(), |l| l.min(data.len()));
    let mut stats = RunStats::default();
    for start in (0..n).step_by(256) {
        let end = (start + 256).min(n);
        let part: Vec<Result<RunStats, NnError>> = (start..end)
            .into_par_iter()
            .map(|i| {
                let x = prep_image(engine, data, i)?;
                let mut st = RunStats::default();
                engine.run(&x, &ActivationPolicy::Exact, &mut st)?;
                Ok(st)
            })
            .collect();
        for p in part {
            stats.merge(&p?);
        }
    }
    Ok(Calibration::from_stats(engine.network(), data, n, &stats))
}

/// Settings of an evaluation.
#[derive(Debug, Clone)]
pub struct EvalConfig {
    /// Evaluate only the first `limit` images.
    pub limit: Option<usize>,
    /// Images per streaming chunk (memory is proportional to this, not to the data size).
    pub chunk: usize,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            limit: None,
            chunk: 256,
        }
    }
}

/// Measurements for one α.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AlphaResult {
    /// Precision parameter α.
    pub alpha: u32,
    /// Component degrees of p_α.
    pub degrees: Vec<usize>,
    /// Correct top-1 predictions of F^α.
    pub correct: usize,
    /// Top-1 accuracy of F^α in percent.
    pub accuracy_pct: f64,
    /// Measured max of ‖F^α(x) − F(x)‖∞ over the inputs where F^α(x) is finite.
    pub linf_max: f64,
    /// Measured mean of ‖F^α(x) − F(x)‖∞ over the inputs where F^α(x) is finite.
    pub linf_mean: f64,
    /// Inputs where F^α(x) overflowed to ±∞ or NaN (a polynomial evaluated far outside
    /// [−1, 1] after an input left [−B, B]).
    pub nonfinite_outputs: usize,
    /// Inputs where F^α and F disagree on the top-1 class.
    pub top1_disagreements: usize,
    /// Total activation inputs outside [−B, B] (summed over nodes and images).
    pub out_of_range_total: u64,
    /// Per node (graph order): name and count of inputs outside [−B, B].
    pub out_of_range: Vec<(String, u64)>,
}

/// Table 2 for one model and dataset.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EvalReport {
    /// Model name (file name).
    pub model: String,
    /// Data file.
    pub data: String,
    /// Images evaluated.
    pub images: usize,
    /// Engine precision (`f32` / `f64`); activation polynomials are evaluated in f64.
    pub precision: String,
    /// How B was chosen.
    pub range_policy: RangePolicy,
    /// Calibration images (0 for a fixed B).
    pub calibration_images: usize,
    /// Correct top-1 predictions of F.
    pub baseline_correct: usize,
    /// Top-1 accuracy of F in percent.
    pub baseline_accuracy_pct: f64,
    /// Per-node measured range over the *evaluated* images and the B used.
    pub layers: Vec<LayerRange>,
    /// One entry per α.
    pub alphas: Vec<AlphaResult>,
}

#[allow(clippy::cast_precision_loss)]
fn pct(c: usize, n: usize) -> f64 {
    if n == 0 {
        0.0
    } else {
        100.0 * c as f64 / n as f64
    }
}

/// Per-image outcome.
struct ImageOut {
    label: u8,
    exact_pred: usize,
    exact_stats: RunStats,
    approx: Vec<(usize, f64, RunStats)>,
}

/// Evaluate F and every F^α (one per `signs` entry) on the data, streaming in chunks with
/// rayon across images. `ranges` gives B per ReLU/MaxPool node; `calibration` is recorded
/// in the report. `progress` is called with the number of images done.
///
/// # Errors
/// Size mismatches, a missing range, or engine errors.
#[allow(clippy::too_many_arguments)]
pub fn evaluate<T: Real>(
    engine: &Engine<T>,
    data: &Dataset,
    signs: &[(SignKernel, Vec<usize>)],
    ranges: &BTreeMap<NodeId, f64>,
    range_policy: RangePolicy,
    calibration: Option<&Calibration>,
    cfg: &EvalConfig,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<EvalReport, NnError> {
    let n = cfg.limit.map_or(data.len(), |l| l.min(data.len()));
    if n == 0 {
        return Err(NnError::Config {
            what: "number of images".into(),
            value: "0".into(),
            valid: "at least 1 image (check --limit and the data file)".into(),
        });
    }
    let policies: Vec<ActivationPolicy> = signs
        .iter()
        .map(|(s, _)| ActivationPolicy::Approx {
            sign: s.clone(),
            ranges: ranges.clone(),
        })
        .collect();
    for p in &policies {
        engine.check_policy(p)?;
    }
    let k = signs.len();
    let mut base_correct = 0usize;
    let mut exact_stats = RunStats::default();
    let mut correct = vec![0usize; k];
    let mut disagree = vec![0usize; k];
    let mut lmax = vec![0.0f64; k];
    let mut lsum = vec![0.0f64; k];
    let mut nonfinite = vec![0usize; k];
    let mut astats = vec![RunStats::default(); k];
    let chunk = cfg.chunk.max(1);
    for start in (0..n).step_by(chunk) {
        let end = (start + chunk).min(n);
        let outs: Vec<Result<ImageOut, NnError>> = (start..end)
            .into_par_iter()
            .map(|i| {
                let x = prep_image(engine, data, i)?;
                let mut es = RunStats::default();
                let y = engine.run(&x, &ActivationPolicy::Exact, &mut es)?;
                let mut approx = Vec::with_capacity(k);
                for p in &policies {
                    let mut st = RunStats::default();
                    let ya = engine.run(&x, p, &mut st)?;
                    let linf = ya
                        .iter()
                        .zip(&y)
                        .map(|(a, b)| (a.to_f64() - b.to_f64()).abs())
                        .fold(0.0f64, |m, d| {
                            if d.is_nan() || m.is_nan() {
                                f64::NAN
                            } else {
                                m.max(d)
                            }
                        });
                    approx.push((argmax(&ya), linf, st));
                }
                Ok(ImageOut {
                    label: data.label(i).unwrap_or(255),
                    exact_pred: argmax(&y),
                    exact_stats: es,
                    approx,
                })
            })
            .collect();
        for o in outs {
            let o = o?;
            base_correct += usize::from(o.exact_pred == usize::from(o.label));
            exact_stats.merge(&o.exact_stats);
            for (j, (pred, linf, st)) in o.approx.iter().enumerate() {
                if let (Some(c), Some(d), Some(m), Some(s), Some(a)) = (
                    correct.get_mut(j),
                    disagree.get_mut(j),
                    lmax.get_mut(j),
                    lsum.get_mut(j),
                    astats.get_mut(j),
                ) {
                    *c += usize::from(*pred == usize::from(o.label));
                    *d += usize::from(*pred != o.exact_pred);
                    // A NaN / ∞ output (blown-up polynomial) is counted, not averaged.
                    if linf.is_finite() {
                        *m = m.max(*linf);
                        *s += linf;
                    } else if let Some(nf) = nonfinite.get_mut(j) {
                        *nf += 1;
                    }
                    a.merge(st);
                }
            }
        }
        progress(end);
    }
    let net = engine.network();
    let act = net.activation_nodes();
    let layers = act
        .iter()
        .map(|&id| {
            let node = net.nodes.get(id);
            LayerRange {
                node: id,
                name: node.map(|n| n.name.clone()).unwrap_or_default(),
                op: node.map(|n| n.op.op_type().to_string()).unwrap_or_default(),
                measured_max_abs: exact_stats.max_abs.get(&id).copied().unwrap_or(0.0),
                b: ranges.get(&id).copied().unwrap_or(f64::NAN),
            }
        })
        .collect();
    #[allow(clippy::cast_precision_loss)]
    let alphas = signs
        .iter()
        .enumerate()
        .map(|(j, (s, degrees))| {
            let st = astats.get(j).cloned().unwrap_or_default();
            let per: Vec<(String, u64)> = act
                .iter()
                .map(|&id| {
                    let name = net
                        .nodes
                        .get(id)
                        .map(|n| n.name.clone())
                        .unwrap_or_default();
                    (name, st.out_of_range.get(&id).copied().unwrap_or(0))
                })
                .collect();
            let c = correct.get(j).copied().unwrap_or(0);
            AlphaResult {
                alpha: s.alpha,
                degrees: degrees.clone(),
                correct: c,
                accuracy_pct: pct(c, n),
                linf_max: lmax.get(j).copied().unwrap_or(0.0),
                linf_mean: {
                    let nf = nonfinite.get(j).copied().unwrap_or(0);
                    if n > nf {
                        lsum.get(j).copied().unwrap_or(0.0) / (n - nf) as f64
                    } else {
                        f64::NAN
                    }
                },
                nonfinite_outputs: nonfinite.get(j).copied().unwrap_or(0),
                top1_disagreements: disagree.get(j).copied().unwrap_or(0),
                out_of_range_total: per.iter().map(|(_, c)| c).sum(),
                out_of_range: per,
            }
        })
        .collect();
    Ok(EvalReport {
        model: net.name.clone(),
        data: data.path.display().to_string(),
        images: n,
        precision: T::NAME.into(),
        range_policy,
        calibration_images: calibration.map_or(0, |c| c.images),
        baseline_correct: base_correct,
        baseline_accuracy_pct: pct(base_correct, n),
        layers,
        alphas,
    })
}

impl EvalReport {
    /// A Table-2-style Markdown table: baseline and top-1 per α, with the measured
    /// ‖F^α − F‖∞ and out-of-range counts.
    pub fn to_markdown(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "**{}** on `{}` ({} images, engine {}, range {}): baseline top-1 **{:.2}%** ({}/{})\n",
            self.model,
            self.data,
            self.images,
            self.precision,
            match self.range_policy {
                RangePolicy::PerLayer { margin } => format!("B per layer, margin {margin}"),
                RangePolicy::PerNetwork { margin } => format!("B per network, margin {margin}"),
                RangePolicy::Fixed(b) => format!("B = {b} fixed"),
            },
            self.baseline_accuracy_pct,
            self.baseline_correct,
            self.images
        );
        let _ = writeln!(
            s,
            "| α | degrees | top-1 (%) | Δ vs baseline (pt) | top-1 ≠ F | measured max ‖F^α−F‖∞ | measured mean ‖F^α−F‖∞ | F^α non-finite | activation inputs outside [−B,B] |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
        for a in &self.alphas {
            let deg: Vec<String> = a.degrees.iter().map(usize::to_string).collect();
            let _ = writeln!(
                s,
                "| {} | {} | {:.2} | {:+.2} | {} | {:.3e} | {:.3e} | {} | {} |",
                a.alpha,
                deg.join(","),
                a.accuracy_pct,
                a.accuracy_pct - self.baseline_accuracy_pct,
                a.top1_disagreements,
                a.linf_max,
                a.linf_mean,
                a.nonfinite_outputs,
                a.out_of_range_total
            );
        }
        s
    }
}
