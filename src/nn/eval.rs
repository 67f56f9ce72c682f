//! Table 2 measurements: calibration of the approximation range B, and streaming evaluation
//! of F and F^α for several α on a dataset (top-1 accuracy, measured ‖F^α(x) − F(x)‖∞,
//! out-of-range counts). Everything here is **measured** on the given inputs.

use std::collections::BTreeMap;

use rayon::prelude::*;

use super::activation::{ActivationPolicy, RangePolicy, SignKernel};
use super::data::Dataset;
use super::engine::{Engine, Real, RunStats};
use super::ir::{ApproxSite, Network, NodeId, SitePart};
use super::NnError;

/// Measured max |input| of one approximation site (a ReLU / MaxPool node, or one ReLU of a
/// Clip), and the B chosen for it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LayerRange {
    /// Node index in the network.
    pub node: NodeId,
    /// Node name.
    pub name: String,
    /// `Relu`, `MaxPool`, or `Clip: ReLU(x − a)` for the ReLU of a Clip shifted by a.
    pub op: String,
    /// Measured max |input| over the calibration images.
    pub measured_max_abs: f64,
    /// The approximation range B used for this node.
    pub b: f64,
}

impl LayerRange {
    /// The row of approximation site `s` of `net` with its measured max |input| and B.
    fn of_site(net: &Network, s: &ApproxSite, measured_max_abs: f64, b: f64) -> Self {
        LayerRange {
            node: s.node,
            name: net
                .nodes
                .get(s.node)
                .map(|n| n.name.clone())
                .unwrap_or_default(),
            op: s.label(net),
            measured_max_abs,
            b,
        }
    }
}

/// Calibration result: per-site measured maxima.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Calibration {
    /// Calibration data file.
    pub data: String,
    /// Number of calibration images.
    pub images: usize,
    /// Per approximation site (`Network::approx_sites`: each ReLU / MaxPool node, and the
    /// ReLU(x − min), ReLU(x − max) of each Clip), in graph order (`b` equals the measured
    /// max until [`Calibration::choose`] is applied).
    pub layers: Vec<LayerRange>,
    /// The range key of each entry of `layers` (the node, or `clip_upper_key(node)`).
    #[serde(skip)]
    keys: Vec<NodeId>,
}

/// The name of a site in per-layer lists: the node name, followed by `: ReLU(x − a)` for a
/// ReLU of a Clip.
pub(crate) fn site_name(net: &Network, s: &ApproxSite) -> String {
    let name = net.nodes.get(s.node).map_or("", |n| n.name.as_str());
    match s.part {
        SitePart::Whole => name.to_string(),
        SitePart::ClipLower(a) | SitePart::ClipUpper(a) => format!("{name}: ReLU(x − {a})"),
    }
}

impl Calibration {
    /// The calibration of the first `images` images of `data` from the merged statistics of
    /// their exact pass: B of every approximation site (ReLU / MaxPool node, and each ReLU
    /// of a Clip, see `Network::approx_sites`) is its measured max |input| (before
    /// [`Calibration::choose`] applies the policy).
    #[must_use]
    pub fn from_stats(net: &Network, data: &Dataset, images: usize, stats: &RunStats) -> Self {
        let sites = net.approx_sites();
        let layers = sites
            .iter()
            .map(|s| {
                let m = stats.max_abs.get(&s.key).copied().unwrap_or(0.0);
                LayerRange::of_site(net, s, m, m)
            })
            .collect();
        Calibration {
            data: data.path.display().to_string(),
            images,
            layers,
            keys: sites.iter().map(|s| s.key).collect(),
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
        for (i, l) in self.layers.iter_mut().enumerate() {
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
            out.insert(self.keys.get(i).copied().unwrap_or(l.node), b);
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

/// Whether class `label` is among the `k` largest values of `v`: fewer than `k` values are
/// larger than `v[label]` or NaN (ties count in its favour; a NaN at the label is never in
/// the top k). `false` when `label` is out of range.
fn in_top_k<T: Real>(v: &[T], label: usize, k: usize) -> bool {
    v.get(label).is_some_and(|l| {
        v.iter()
            .filter(|&&x| x.partial_cmp(l) != Some(std::cmp::Ordering::Less) && x != *l)
            .count()
            < k
    })
}

/// Top-5 accuracy is reported for networks with more than this many outputs (for 10-class
/// data it says little, and Table 2 reports stay as they were).
pub const TOP5_MIN_CLASSES: usize = 11;

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
    /// Correct top-5 predictions of F^α (networks with ≥ [`TOP5_MIN_CLASSES`] outputs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top5_correct: Option<usize>,
    /// Top-5 accuracy of F^α in percent (networks with ≥ [`TOP5_MIN_CLASSES`] outputs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top5_accuracy_pct: Option<f64>,
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
    /// Per approximation site (graph order): name (`node: ReLU(x − a)` for a ReLU of a
    /// Clip) and count of inputs outside [−B, B].
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
    /// Correct top-5 predictions of F (networks with ≥ [`TOP5_MIN_CLASSES`] outputs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_top5_correct: Option<usize>,
    /// Top-5 accuracy of F in percent (networks with ≥ [`TOP5_MIN_CLASSES`] outputs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_top5_accuracy_pct: Option<f64>,
    /// Per approximation site (ReLU / MaxPool node, each ReLU of an approximated Clip): the
    /// measured range over the *evaluated* images and the B used.
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
    label: usize,
    exact_pred: usize,
    exact_top5: bool,
    exact_stats: RunStats,
    /// Per α: top-1 class, label in the top 5, ‖F^α − F‖∞, statistics.
    approx: Vec<(usize, bool, f64, RunStats)>,
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
    let mut base_top5 = 0usize;
    let mut top5 = vec![0usize; k];
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
                let label = data.label(i).map_or(usize::MAX, usize::from);
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
                    approx.push((argmax(&ya), in_top_k(&ya, label, 5), linf, st));
                }
                Ok(ImageOut {
                    label,
                    exact_pred: argmax(&y),
                    exact_top5: in_top_k(&y, label, 5),
                    exact_stats: es,
                    approx,
                })
            })
            .collect();
        for o in outs {
            let o = o?;
            base_correct += usize::from(o.exact_pred == o.label);
            base_top5 += usize::from(o.exact_top5);
            exact_stats.merge(&o.exact_stats);
            for (j, (pred, t5, linf, st)) in o.approx.iter().enumerate() {
                if let (Some(c), Some(c5), Some(d), Some(m), Some(s), Some(a)) = (
                    correct.get_mut(j),
                    top5.get_mut(j),
                    disagree.get_mut(j),
                    lmax.get_mut(j),
                    lsum.get_mut(j),
                    astats.get_mut(j),
                ) {
                    *c += usize::from(*pred == o.label);
                    *c5 += usize::from(*t5);
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
    // The sites of this run: every ReLU / MaxPool, and the ReLUs of the Clips `ranges`
    // approximates.
    let sites: Vec<ApproxSite> = net
        .approx_sites()
        .into_iter()
        .filter(|s| s.part == SitePart::Whole || ranges.contains_key(&s.key))
        .collect();
    let layers = sites
        .iter()
        .map(|s| {
            let m = exact_stats.max_abs.get(&s.key).copied().unwrap_or(0.0);
            LayerRange::of_site(net, s, m, ranges.get(&s.key).copied().unwrap_or(f64::NAN))
        })
        .collect();
    let with_top5 = net.output_shape().numel() >= TOP5_MIN_CLASSES;
    #[allow(clippy::cast_precision_loss)]
    let alphas = signs
        .iter()
        .enumerate()
        .map(|(j, (s, degrees))| {
            let st = astats.get(j).cloned().unwrap_or_default();
            let per: Vec<(String, u64)> = sites
                .iter()
                .map(|site| {
                    (
                        site_name(net, site),
                        st.out_of_range.get(&site.key).copied().unwrap_or(0),
                    )
                })
                .collect();
            let c = correct.get(j).copied().unwrap_or(0);
            AlphaResult {
                alpha: s.alpha,
                degrees: degrees.clone(),
                correct: c,
                accuracy_pct: pct(c, n),
                top5_correct: with_top5.then(|| top5.get(j).copied().unwrap_or(0)),
                top5_accuracy_pct: with_top5.then(|| pct(top5.get(j).copied().unwrap_or(0), n)),
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
        baseline_top5_correct: with_top5.then_some(base_top5),
        baseline_top5_accuracy_pct: with_top5.then(|| pct(base_top5, n)),
        layers,
        alphas,
    })
}

impl EvalReport {
    /// The smallest evaluated α from which on every evaluated α ≥ it has its top-1 (or, with
    /// `top5`, its top-5) accuracy within `pt` points of the baseline; `None` when the largest
    /// evaluated α is not (or there is no top-5 figure).
    pub fn alpha_within(&self, pt: f64, top5: bool) -> Option<u32> {
        let base = if top5 {
            self.baseline_top5_accuracy_pct?
        } else {
            self.baseline_accuracy_pct
        };
        let mut by_alpha: Vec<(u32, Option<f64>)> = self
            .alphas
            .iter()
            .map(|a| {
                let acc = if top5 {
                    a.top5_accuracy_pct
                } else {
                    Some(a.accuracy_pct)
                };
                (a.alpha, acc)
            })
            .collect();
        by_alpha.sort_by_key(|(a, _)| *a);
        let mut best = None;
        for (alpha, acc) in by_alpha.iter().rev() {
            match acc {
                Some(v) if (v - base).abs() <= pt => best = Some(*alpha),
                _ => break,
            }
        }
        best
    }

    /// A Table-2-style Markdown table: baseline and top-1 per α (and top-5 when the report has
    /// it), with the measured ‖F^α − F‖∞ and out-of-range counts.
    pub fn to_markdown(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let top5 = self
            .baseline_top5_accuracy_pct
            .zip(self.baseline_top5_correct);
        let _ = writeln!(
            s,
            "**{}** on `{}` ({} images, engine {}, range {}): baseline top-1 **{:.2}%** ({}/{}){}\n",
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
            self.images,
            top5.map_or(String::new(), |(p, c)| format!(
                ", top-5 **{p:.2}%** ({c}/{})",
                self.images
            ))
        );
        let (t5h, t5r) = if top5.is_some() {
            (" top-5 (%) | Δ top-5 (pt) |", "---|---|")
        } else {
            ("", "")
        };
        let _ = writeln!(
            s,
            "| α | degrees | top-1 (%) | Δ vs baseline (pt) |{t5h} top-1 ≠ F | measured max ‖F^α−F‖∞ | measured mean ‖F^α−F‖∞ | F^α non-finite | activation inputs outside [−B,B] |"
        );
        let _ = writeln!(s, "|---|---|---|---|{t5r}---|---|---|---|---|");
        for a in &self.alphas {
            let deg: Vec<String> = a.degrees.iter().map(usize::to_string).collect();
            let t5 = match (top5, a.top5_accuracy_pct) {
                (Some((b, _)), Some(v)) => format!(" {v:.2} | {:+.2} |", v - b),
                (Some(_), None) => " | |".to_string(),
                _ => String::new(),
            };
            // With no finite output there is no measured difference: say so instead of
            // printing the empty fold's 0 and NaN.
            let (max, mean) = if a.nonfinite_outputs >= self.images {
                ("— (no finite output)".to_string(), "—".to_string())
            } else {
                (
                    format!("{:.3e}", a.linf_max),
                    format!("{:.3e}", a.linf_mean),
                )
            };
            let _ = writeln!(
                s,
                "| {} | {} | {:.2} | {:+.2} |{t5} {} | {max} | {mean} | {} | {} |",
                a.alpha,
                deg.join(","),
                a.accuracy_pct,
                a.accuracy_pct - self.baseline_accuracy_pct,
                a.top1_disagreements,
                a.nonfinite_outputs,
                a.out_of_range_total
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_counts_larger_and_nan_values_against_the_label() {
        let v = [1.0f32, 5.0, 3.0, 3.0, f32::NAN, 0.5];
        // Label 2 (3.0): larger are 5.0 and the NaN; its tie with index 3 counts in its favour.
        assert!(in_top_k(&v, 2, 3));
        assert!(!in_top_k(&v, 2, 2));
        assert!(in_top_k(&v, 1, 2) && !in_top_k(&v, 1, 1));
        assert!(!in_top_k(&v, 4, 6), "a NaN logit is never in the top k");
        assert!(!in_top_k(&v, 9, 6), "out of range");
        assert!(in_top_k(&v, 5, 6) && !in_top_k(&v, 5, 5));
    }
}
