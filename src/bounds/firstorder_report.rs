//! The first-order limit over a dataset ([`first_order_report`]): per model and α, the
//! fraction of images that are first-order certifiable (margin_j > L_j(α) for every j ≠ t,
//! see [`super::FirstOrderNetwork`]) and the distribution of the ratio max_j L_j/margin_j.
//! A computed linearisation, **not** a certificate: it estimates from above what any
//! certificate built from the per-neuron polynomial error boxes can certify.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rayon::prelude::*;
use serde::Serialize;

use super::firstorder::{FirstOrderLimit, FirstOrderNetwork};
use super::polyerr::PolyErrors;
use super::report::{
    choose_ranges, median, prep, quantile, range_policy_text, select, BoundConfig,
};
use super::BoundsError;
use crate::nn::{import_onnx, Engine, LayerRange, RangePolicy};

/// The first-order limit of one model at one α over the images.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FirstOrderAlpha {
    /// Precision parameter α.
    pub alpha: u32,
    /// Certificate the per-neuron polynomial errors came from.
    pub certificate: String,
    /// Images with margin_j > L_j(α) for every j ≠ t (first-order certifiable).
    pub certifiable: usize,
    /// `certifiable / images`.
    pub certifiable_fraction: f64,
    /// Lower 10% quantile over images of max_{j≠t} L_j(α)/margin_j (< 1: certifiable).
    pub ratio_p10: f64,
    /// Lower median of the ratio.
    pub ratio_median: f64,
    /// Lower 90% quantile of the ratio.
    pub ratio_p90: f64,
    /// Max of the ratio (+∞, JSON `null`, when some image has a zero margin).
    pub ratio_max: f64,
    /// Lower median over images of max_{j≠t} L_j(α), the first-order worst-case change of a
    /// margin.
    pub limit_median: f64,
}

/// The first-order limit of one model over a dataset, for several α.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FirstOrderReport {
    /// Model file.
    pub model: String,
    /// Data file.
    pub data: String,
    /// Which images of the data file were used.
    pub data_selection: String,
    /// Calibration set of B (file and images), when B was calibrated.
    pub calib_data: Option<String>,
    /// Range policy.
    pub range: RangePolicy,
    /// B per activation node (with the calibrated max |input| when calibrated).
    pub ranges: Vec<LayerRange>,
    /// Number of images.
    pub images: usize,
    /// Images whose exact activation inputs leave [−B, B] somewhere (the per-neuron bounds do
    /// not apply; counted as not certifiable at every α).
    pub exact_out_of_range: usize,
    /// Lower median over images of min_{j≠t} margin_j = F_t − F_j.
    pub margin_median: f64,
    /// Per α.
    pub alphas: Vec<FirstOrderAlpha>,
}

/// The first-order limit for every α of `cfg` over its data (images in parallel; results in
/// image order, so the report is deterministic). B is chosen as by [`super::bound_report`]
/// (calibrated on `cfg.calib`, default the data, or fixed); `cfg.per_input` is ignored.
///
/// # Errors
/// Model, data or certificate errors; [`BoundsError::Config`] without data.
pub fn first_order_report(
    cfg: &BoundConfig,
    progress: &(dyn Fn(&str, usize, usize) + Sync),
) -> Result<FirstOrderReport, BoundsError> {
    let path = cfg.data.as_ref().ok_or_else(|| BoundsError::Config {
        what: "--first-order".into(),
        value: "without data".into(),
        valid: "a data file (--data)".into(),
    })?;
    let net = Arc::new(import_onnx(&cfg.model)?);
    let fo = FirstOrderNetwork::new(Arc::clone(&net))?;
    let engine: Engine<f64> = Engine::new(Arc::clone(&net));
    progress("checking certificates", 0, 0);
    let pes: Vec<PolyErrors> = cfg
        .alphas
        .iter()
        .map(|&a| PolyErrors::load_or_certify(&cfg.proofs, a))
        .collect::<Result<_, _>>()?;
    let (data, selection) = select(path, cfg.limit, cfg.evenly)?;
    progress("choosing B", 0, 0);
    let ((ranges, layers, _), calib_data) = choose_ranges(cfg, &engine, None)?;
    let n = data.len();
    let done = AtomicUsize::new(0);
    let per: Vec<FirstOrderLimit> = (0..n)
        .into_par_iter()
        .map(|i| {
            let x = prep(&net, &data, i)?;
            let l = fo.limit(&pes, &ranges, &x)?;
            let d = done.fetch_add(1, Ordering::Relaxed) + 1;
            if d.is_multiple_of(500) || d == n {
                progress("first-order limit", d, n);
            }
            Ok(l)
        })
        .collect::<Result<_, BoundsError>>()?;
    let margins: Vec<f64> = per
        .iter()
        .map(|p| {
            p.margins
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != p.top1)
                .fold(f64::INFINITY, |a, (_, &m)| a.min(m))
        })
        .collect();
    let alphas = pes
        .iter()
        .enumerate()
        .map(|(k, pe)| {
            let ratios: Vec<f64> = per.iter().map(|p| p.ratio(k)).collect();
            let certifiable = per.iter().filter(|p| p.certifiable(k)).count();
            FirstOrderAlpha {
                alpha: pe.alpha(),
                certificate: pe.source().to_string(),
                certifiable,
                certifiable_fraction: if n == 0 {
                    0.0
                } else {
                    certifiable as f64 / n as f64
                },
                ratio_p10: quantile(&ratios, 0.1),
                ratio_median: median(&ratios),
                ratio_p90: quantile(&ratios, 0.9),
                ratio_max: ratios.iter().copied().reduce(f64::max).unwrap_or(f64::NAN),
                limit_median: median(&per.iter().map(|p| p.limit_max(k)).collect::<Vec<_>>()),
            }
        })
        .collect();
    Ok(FirstOrderReport {
        model: cfg.model.display().to_string(),
        data: path.display().to_string(),
        data_selection: selection,
        calib_data,
        range: cfg.range,
        ranges: layers,
        images: n,
        exact_out_of_range: per.iter().filter(|p| p.out_of_range > 0).count(),
        margin_median: median(&margins),
        alphas,
    })
}

fn sci(x: f64) -> String {
    if x.is_nan() {
        "—".into()
    } else if x.is_infinite() {
        "∞".into()
    } else {
        format!("{x:.3e}")
    }
}

fn file_name(p: &str) -> String {
    std::path::Path::new(p)
        .file_name()
        .map_or_else(|| p.to_string(), |f| f.to_string_lossy().into_owned())
}

/// The Markdown report for several models: what the limit is, a summary (fraction first-order
/// certifiable per model and α), then each model's table. `command` is quoted as the way to
/// regenerate it.
pub fn first_order_markdown(reports: &[FirstOrderReport], command: &str) -> String {
    let mut s = String::from(
        "# First-order limit of box-based certificates (computed linearisation, not a certificate)\n\n",
    );
    s.push_str(concat!(
        "Generated by `polycert bound --first-order` (deterministic: same inputs and flags give the same\n",
        "files). Question: is the 0% certified-unchanged of the elementwise per-input bound on the CIFAR-10\n",
        "networks inherent to certificates built from per-neuron polynomial error boxes, or a weakness of\n",
        "the elementwise propagation?\n\n",
        "- To first order in the polynomial errors ε_a (ReLU: r̃_α − ReLU, max pooling: M̃ − max),\n",
        "  F^α(x) − F(x) ≈ Σ_a J_a(x)·ε_a, with J_a the Jacobian of the exact network's logits with respect\n",
        "  to the output of activation node a, at x, with F's activation pattern.\n",
        "- **L_j(α)** = Σ_a Σ_i |g_{a,i}|·E_{a,i}(α), g_a = (e_t − e_j)ᵀJ_a (one backward pass per class j ≠ t,\n",
        "  t = F's top-1 class), E_{a,i}(α) = the per-input method's own certified per-neuron box bound at\n",
        "  the exact pre-activation (local condition-(1) bound of the checked certificate; B·Eq. 7 constant\n",
        "  for max pooling). It is the worst change of the margin F_t − F_j over the boxes, to first order\n",
        "  (attained by ε = E·sign(g)).\n",
        "- **first-order certifiable**: margin_j = F_t(x) − F_j(x) > L_j(α) for every j ≠ t. An image that is\n",
        "  not cannot be certified \"prediction unchanged\" by *any* method sound for every error pattern in\n",
        "  the boxes (relational or not), up to second-order terms; one that is could be certified by a\n",
        "  relational (back-substitution / zonotope) method, if the second-order terms and the range\n",
        "  hypothesis (F^α's activation inputs in [−B, B], not modelled here) permit. The fraction is\n",
        "  therefore an estimate from above of what box-based certificates can reach; the elementwise\n",
        "  per-input certificate (e_t + e_j ≥ L_j) never exceeds it.\n",
        "- **ratio** = max_{j≠t} L_j(α)/margin_j per image (< 1: first-order certifiable); quantiles are\n",
        "  lower quantiles over the images. B is chosen as by `polycert bound` (calibrated on the data).\n",
        "- Computed in f64 (rounded to nearest): an estimate, not an outward-rounded bound.\n\n",
    ));
    let _ = writeln!(s, "Command:\n\n```\n{command}\n```\n");
    let _ = writeln!(
        s,
        "## Summary: fraction of images first-order certifiable\n"
    );
    let alphas: Vec<u32> = reports
        .first()
        .map(|r| r.alphas.iter().map(|a| a.alpha).collect())
        .unwrap_or_default();
    let _ = write!(s, "| model | images |");
    for a in &alphas {
        let _ = write!(s, " α = {a} |");
    }
    let _ = write!(s, "\n|---|---|");
    for _ in &alphas {
        s.push_str("---|");
    }
    s.push('\n');
    for r in reports {
        let _ = write!(s, "| {} | {} |", file_name(&r.model), r.images);
        for a in &alphas {
            match r.alphas.iter().find(|x| x.alpha == *a) {
                Some(x) => {
                    let _ = write!(s, " {:.2}% |", 100.0 * x.certifiable_fraction);
                }
                None => s.push_str(" — |"),
            }
        }
        s.push('\n');
    }
    s.push_str("\n## Per model\n");
    for r in reports {
        let _ = writeln!(s, "\n### {}\n", r.model);
        let _ = writeln!(s, "Data: {}.", r.data_selection);
        let policy = range_policy_text(r.range);
        let _ = writeln!(
            s,
            "Range: {policy}{}. {} activation nodes; images with an exact activation input outside [−B, B]: {}. Median smallest margin min_j (F_t − F_j): {}.\n",
            r.calib_data
                .as_ref()
                .map(|c| format!("; calibration set: {c}"))
                .unwrap_or_default(),
            r.ranges.len(),
            r.exact_out_of_range,
            sci(r.margin_median)
        );
        let _ = writeln!(s, "| α | first-order certifiable | ratio L/margin p10 | median | p90 | max | median max_j L_j |");
        let _ = writeln!(s, "|---|---|---|---|---|---|---|");
        for a in &r.alphas {
            let _ = writeln!(
                s,
                "| {} | {} ({:.2}%) | {} | {} | {} | {} | {} |",
                a.alpha,
                a.certifiable,
                100.0 * a.certifiable_fraction,
                sci(a.ratio_p10),
                sci(a.ratio_median),
                sci(a.ratio_p90),
                sci(a.ratio_max),
                sci(a.limit_median)
            );
        }
    }
    s
}
