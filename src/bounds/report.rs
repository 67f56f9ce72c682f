//! Bounds over a dataset ([`bound_report`]): the global bound per α, and with data the
//! measured ‖F^α(x) − F(x)‖∞ of the f64 engine next to the per-input bound, their ratio,
//! the range-check failures and the certified-unchanged predictions. Also the smallest α
//! meeting a target error ([`smallest_alpha`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::network::{BoundedNetwork, GlobalBound, PerInputBound};
use super::polyerr::{PolyErrors, ALPHAS};
use super::trajectory_report::{
    stats_from_images, trajectory_markdown, trajectory_stats, PerInputMethod, TrajectoryStats,
};
use super::BoundsError;
use crate::nn::{
    calibrate, import_onnx, ActivationPolicy, Calibration, Dataset, Engine, LayerRange, NodeId,
    RangePolicy, RunStats,
};

/// What [`bound_report`] computes.
#[derive(Debug, Clone)]
pub struct BoundConfig {
    /// ONNX model.
    pub model: PathBuf,
    /// Precision parameters α (each in [`ALPHAS`]).
    pub alphas: Vec<u32>,
    /// Directory of the certificates `table1-alphaNN.json` (re-checked before use; α without
    /// a file is certified in memory).
    pub proofs: PathBuf,
    /// How B is chosen (calibrated on `calib`, or fixed).
    pub range: RangePolicy,
    /// Calibration data (default: `data`).
    pub calib: Option<PathBuf>,
    /// Calibrate on the first K images only (default: `limit`).
    pub calib_limit: Option<usize>,
    /// Data for the measured error and per-input bounds.
    pub data: Option<PathBuf>,
    /// Use only K images of `data`: the first K, or with `evenly` K spread over the file.
    pub limit: Option<usize>,
    /// With `limit`: take the images ⌊i·n/K⌋ (i < K) instead of the first K (for files sorted
    /// by class, like the CIFAR-10 JPEG copy).
    pub evenly: bool,
    /// Compute per-input bounds and measured errors (needs `data`).
    pub per_input: bool,
    /// Which per-input certificate(s) `per_input` computes.
    pub method: PerInputMethod,
    /// With the trajectory certificate: also the certified noise margin η per image.
    pub noise_margin: bool,
    /// With `noise_margin`: also the back-substituted site boxes of the last stage
    /// ([`super::ROW_BUDGET`]; η ~2.4 octaves larger on ResNet-20, ~3.5× the cost).
    pub margin_rows: bool,
    /// Certify only part `k` of `n` (1 ≤ k ≤ n) of the selected images (the trajectory
    /// method only): B is still calibrated on the whole selection, and the report keeps every
    /// image's record so that [`merge_bound_reports`] recombines the `n` parts into the
    /// unsharded report. `None`: all images.
    pub shard: Option<(usize, usize)>,
}

/// Measured errors against per-input bounds over the evaluated images for one α.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataStats {
    /// Number of images evaluated.
    pub images: usize,
    /// Images whose every activation input passed the range check (certified).
    pub in_range: usize,
    /// Images failing the range check (no certificate; counted, not dropped).
    pub out_of_range: usize,
    /// Max over images of the measured ‖F^α(x) − F(x)‖∞ (f64 engine).
    #[serde(deserialize_with = "super::nan_f64")]
    pub measured_max: f64,
    /// Mean over images of the measured error.
    #[serde(deserialize_with = "super::nan_f64")]
    pub measured_mean: f64,
    /// Max over in-range images of the per-input bound.
    #[serde(deserialize_with = "super::nan_f64")]
    pub per_input_max: f64,
    /// Mean over in-range images of the per-input bound.
    #[serde(deserialize_with = "super::nan_f64")]
    pub per_input_mean: f64,
    /// Mean over in-range images of measured / per-input bound.
    #[serde(deserialize_with = "super::nan_f64")]
    pub ratio_mean: f64,
    /// Max over in-range images of measured / per-input bound (≤ 1 when the bound holds).
    #[serde(deserialize_with = "super::nan_f64")]
    pub ratio_max: f64,
    /// Max over in-range images of per-input bound / global bound (≤ 1 expected).
    #[serde(deserialize_with = "super::nan_f64")]
    pub per_input_over_global_max: f64,
    /// In-range images with measured > per-input bound (a refutation; expected 0).
    pub measured_above_bound: usize,
    /// In-range images with per-input bound > global bound (expected 0).
    pub per_input_above_global: usize,
    /// Images with a certified-unchanged top-1 prediction.
    pub unchanged: usize,
    /// `unchanged / images`.
    #[serde(deserialize_with = "super::nan_f64")]
    pub unchanged_fraction: f64,
    /// Images where F and the f64 F^α disagree on the top-1 class (measured).
    pub top1_changed: usize,
    /// Images where the f64 F^α produced a non-finite output (measured error +∞).
    pub nonfinite: usize,
    /// Histogram of the first block whose range check failed: entry b counts the images
    /// that first failed at block b (one entry per block).
    pub first_failure: Vec<usize>,
    /// Lower median of the first failing block over the images that failed (`None` when
    /// none failed).
    pub first_failure_median: Option<usize>,
    /// Per-block diagnostic of the per-input propagation (where certification is lost).
    pub diagnostic: Vec<BlockDiag>,
}

/// Per-block diagnostic over the images of one α (see [`super::BlockTrace`]). Medians are
/// lower medians; NaN (JSON `null`) when no image qualifies. Every number is computed from
/// certified (outward-rounded) per-input quantities; none is measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockDiag {
    /// Block index.
    pub block: usize,
    /// Block kind (`linear`, `relu`, `residual`, …).
    pub kind: String,
    /// Images whose range check passed at every earlier block (their certified propagation
    /// reaches this block).
    pub reached: usize,
    /// Of those, the images whose range check fails in this block.
    pub failed: usize,
    /// Median over the images passing this block (and every earlier one) of max_i e_i, the
    /// certified per-input bound |F^α − F| at the block's output.
    #[serde(deserialize_with = "super::nan_f64")]
    pub e_median: f64,
    /// Max over the same images of max_i e_i.
    #[serde(deserialize_with = "super::nan_f64")]
    pub e_max: f64,
    /// Median over the same images of r, the certified enclosure of the f64 forward pass.
    #[serde(deserialize_with = "super::nan_f64")]
    pub r_median: f64,
    /// Median over the `reached` images of the range slack min_i (B − |ŷ_i| − r − e_i) of
    /// the block's activations (negative: fails).
    #[serde(deserialize_with = "super::nan_f64")]
    pub slack_median: f64,
    /// Min over the `reached` images of the range slack.
    #[serde(deserialize_with = "super::nan_f64")]
    pub slack_min: f64,
    /// Median over the `reached` images of the excess max_i (r + e_i)/(B − |ŷ_i|) (> 1:
    /// fails; the factor by which the bound would have to shrink).
    #[serde(deserialize_with = "super::nan_f64")]
    pub excess_median: f64,
    /// Max over the `reached` images of the excess.
    #[serde(deserialize_with = "super::nan_f64")]
    pub excess_max: f64,
}

/// Results for one α.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlphaBound {
    /// Precision parameter α.
    pub alpha: u32,
    /// Certificate the polynomial errors came from.
    pub certificate: String,
    /// The global bound with the per-block table.
    pub global: GlobalBound,
    /// Measured vs the elementwise per-input bound, when data was given with `per_input`
    /// and the method includes it.
    pub data: Option<DataStats>,
    /// The trajectory certificate over the data, when data was given with `per_input` and
    /// the method includes it (absent from the JSON otherwise, as in reports written before
    /// the trajectory certificate existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trajectory: Option<TrajectoryStats>,
}

/// The bounds of one model over several α.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoundReport {
    /// Model file.
    pub model: String,
    /// Data file (when given).
    pub data: Option<String>,
    /// Which images of the data file were used (e.g. "all 10000 images").
    pub data_selection: Option<String>,
    /// Calibration set of B (file and images), when B was calibrated.
    pub calib_data: Option<String>,
    /// Range policy.
    pub range: RangePolicy,
    /// B per activation node (with the calibrated max |input| when calibrated).
    pub ranges: Vec<LayerRange>,
    /// Number of calibration images (when B was calibrated).
    pub calib_images: Option<usize>,
    /// Number of blocks of the decomposition.
    pub blocks: usize,
    /// Per α.
    pub alphas: Vec<AlphaBound>,
    /// For a sharded run (`--shard k/n`): which part of the selection it certified. Absent
    /// from unsharded and merged reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
    /// Why there is no global (and no elementwise) bound: the network does not decompose into
    /// the paper's blocks (e.g. a Div node of the input normalisation); the global bound's
    /// numbers are then NaN (`null`) and `blocks` is 0. Absent when it was computed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_unavailable: Option<String>,
}

/// Part `part` of `parts` of a sharded `polycert bound --per-input` run: the images
/// `first..end` (positions in the selection of `of` images). Part k of n covers
/// ⌊(k−1)·of/n⌋..⌊k·of/n⌋, so the parts 1..=n tile the selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// k, from 1.
    pub part: usize,
    /// n.
    pub parts: usize,
    /// First image (position in the selection).
    pub first: usize,
    /// One past the last image.
    pub end: usize,
    /// Images in the selection.
    pub of: usize,
}

impl Shard {
    /// Part `part` of `parts` of a selection of `of` images.
    ///
    /// # Errors
    /// [`BoundsError::Config`] unless 1 ≤ part ≤ parts ≤ of.
    pub fn new(part: usize, parts: usize, of: usize) -> Result<Self, BoundsError> {
        if !(1 <= part && part <= parts && parts <= of) {
            return Err(BoundsError::Config {
                what: "--shard".into(),
                value: format!("{part}/{parts} of {of} images"),
                valid: "k/n with 1 ≤ k ≤ n ≤ the number of selected images".into(),
            });
        }
        let at = |k: usize| k * of / parts;
        Ok(Self {
            part,
            parts,
            first: at(part - 1),
            end: at(part),
            of,
        })
    }
}

/// The answer to `--target-error`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetAlpha {
    /// The target E.
    pub target: f64,
    /// The smallest α in [`ALPHAS`] whose global bound is ≤ E (`None` when none is).
    pub alpha: Option<u32>,
    /// The global bound at each α tried, ascending.
    pub bounds: Vec<(u32, f64)>,
}

pub(super) fn prep(
    net: &crate::nn::Network,
    data: &Dataset,
    i: usize,
) -> Result<Vec<f64>, BoundsError> {
    let raw = data.image(i).ok_or_else(|| BoundsError::Config {
        what: "image index".into(),
        value: i.to_string(),
        valid: format!("< {} images", data.len()),
    })?;
    let expected = net.input_shape().numel();
    if raw.len() != expected {
        return Err(BoundsError::Size {
            what: format!("image {i} of {}", data.path.display()),
            got: raw.len(),
            expected,
        });
    }
    let mut x = Vec::with_capacity(raw.len());
    net.preprocess.apply(raw, data.shape[0], &mut x);
    Ok(x)
}

/// Load the certified errors for every α (checked once each).
fn load_all(cfg: &BoundConfig) -> Result<Vec<PolyErrors>, BoundsError> {
    cfg.alphas
        .iter()
        .map(|&a| PolyErrors::load_or_certify(&cfg.proofs, a))
        .collect()
}

/// B per node, the per-layer table, and the number of calibration images.
pub(super) type Ranges = (BTreeMap<NodeId, f64>, Vec<LayerRange>, Option<usize>);

/// B per activation node: fixed, or calibrated on `calib` (default `data`) with
/// [`crate::nn::calibrate`] and [`crate::nn::Calibration::choose`].
pub(super) fn choose_ranges(
    cfg: &BoundConfig,
    engine: &Engine<f64>,
    from_data: Option<Calibration>,
) -> Result<(Ranges, Option<String>), BoundsError> {
    let net = engine.network();
    if let RangePolicy::Fixed(b) = cfg.range {
        let ranges: BTreeMap<NodeId, f64> = net
            .activation_nodes()
            .into_iter()
            .map(|id| (id, b))
            .collect();
        let layers = ranges
            .iter()
            .map(|(&id, &b)| LayerRange {
                node: id,
                name: net
                    .nodes
                    .get(id)
                    .map(|n| n.name.clone())
                    .unwrap_or_default(),
                op: net
                    .nodes
                    .get(id)
                    .map(|n| n.op.op_type().to_string())
                    .unwrap_or_default(),
                measured_max_abs: f64::NAN,
                b,
            })
            .collect();
        return Ok(((ranges, layers, None), None));
    }
    if let Some(mut cal) = from_data {
        let ranges = cal.choose(cfg.range)?;
        let what = format!("the same {} images as the data", cal.images);
        return Ok(((ranges, cal.layers, Some(cal.images)), Some(what)));
    }
    let path = cfg
        .calib
        .as_ref()
        .or(cfg.data.as_ref())
        .ok_or_else(|| BoundsError::Config {
            what: "approximation range".into(),
            value: "auto (calibrated)".into(),
            valid: "calibration data (--calib or --data) or a fixed B (--b)".into(),
        })?;
    let (data, what) = if cfg.calib.is_some() {
        select(path, cfg.calib_limit, false)?
    } else {
        select(path, cfg.calib_limit.or(cfg.limit), cfg.evenly)?
    };
    let mut cal = calibrate(engine, &data, None)?;
    let ranges = cal.choose(cfg.range)?;
    Ok(((ranges, cal.layers, Some(cal.images)), Some(what)))
}

/// The images of `path` selected by `limit` / `evenly`, and a description.
pub(super) fn select(
    path: &std::path::Path,
    limit: Option<usize>,
    evenly: bool,
) -> Result<(Dataset, String), BoundsError> {
    let mut d = Dataset::open(path, None)?;
    let n = d.len();
    let what = match limit {
        Some(k) if k < n && evenly => {
            d.select_evenly(k);
            format!(
                "{k} of the {n} images of `{}`, spread evenly (indices ⌊i·{n}/{k}⌋)",
                path.display()
            )
        }
        Some(k) if k < n => {
            d.truncate(k);
            format!("the first {k} of the {n} images of `{}`", path.display())
        }
        _ => format!("all {n} images of `{}`", path.display()),
    };
    Ok((d, what))
}

/// Global bounds for every α of `cfg`, and with `cfg.per_input` the per-input bounds and
/// measured errors over the data (images in parallel; results in image order, so the report
/// is deterministic).
///
/// # Errors
/// Model, data or certificate errors; [`BoundsError::Config`] for `per_input` without data
/// or no way to choose B.
pub fn bound_report(
    cfg: &BoundConfig,
    progress: &(dyn Fn(&str, usize, usize) + Sync),
) -> Result<BoundReport, BoundsError> {
    if cfg.noise_margin && !(cfg.per_input && cfg.method.trajectory()) {
        return Err(BoundsError::Config {
            what: "--noise-margin".into(),
            value: format!(
                "with per-input = {}, method = {:?}",
                cfg.per_input, cfg.method
            ),
            valid: "--per-input with the trajectory method (trajectory or both)".into(),
        });
    }
    if cfg.shard.is_some() && !(cfg.per_input && cfg.method == PerInputMethod::Trajectory) {
        return Err(BoundsError::Config {
            what: "--shard".into(),
            value: format!(
                "with per-input = {}, method = {:?}",
                cfg.per_input, cfg.method
            ),
            valid: "--per-input with the trajectory method alone".into(),
        });
    }
    let net = Arc::new(import_onnx(&cfg.model)?);
    // The trajectory certificate runs on any graph the engine runs; the global bound and the
    // elementwise one need the paper's block decomposition. A network outside it still gets
    // the trajectory certificate, with the reason the global bound is missing.
    let (bn, global_unavailable) = match BoundedNetwork::new(Arc::clone(&net)) {
        Ok(bn) => (Some(bn), None),
        Err(e @ BoundsError::Unsupported { .. })
            if cfg.per_input && cfg.method == PerInputMethod::Trajectory =>
        {
            (None, Some(e.to_string()))
        }
        Err(e) => return Err(e),
    };
    let engine: Engine<f64> = Engine::new(Arc::clone(&net));
    progress("checking certificates", 0, 0);
    let pes = load_all(cfg)?;
    let data = match (&cfg.data, cfg.per_input) {
        (Some(p), true) => Some(select(p, cfg.limit, cfg.evenly)?),
        (None, true) => {
            return Err(BoundsError::Config {
                what: "--per-input".into(),
                value: "without data".into(),
                valid: "a data file (--data)".into(),
            })
        }
        _ => None,
    };
    // The exact pass F(x) does not depend on α: run it once, keep only the outputs (inputs
    // are re-read), and calibrate B on it when the calibration set is the data itself.
    let same_calib = cfg.calib.is_none()
        && cfg.calib_limit.is_none()
        && !matches!(cfg.range, RangePolicy::Fixed(_));
    let mut from_data = None;
    let exact: Option<Vec<Vec<f64>>> = match &data {
        Some((d, _)) => {
            progress("exact pass", 0, d.len());
            let res = (0..d.len())
                .into_par_iter()
                .map(|i| {
                    let x = prep(&net, d, i)?;
                    let mut st = RunStats::default();
                    let y = engine.run(&x, &ActivationPolicy::Exact, &mut st)?;
                    Ok((y, st))
                })
                .collect::<Result<Vec<_>, BoundsError>>()?;
            let mut stats = RunStats::default();
            let mut ys = Vec::with_capacity(res.len());
            for (y, st) in res {
                stats.merge(&st);
                ys.push(y);
            }
            if same_calib {
                from_data = Some(Calibration::from_stats(&net, d, d.len(), &stats));
            }
            Some(ys)
        }
        None => None,
    };
    let shard = match (cfg.shard, &data) {
        (Some((k, n)), Some((d, _))) => Some(Shard::new(k, n, d.len())?),
        _ => None,
    };
    let part = shard.map_or(0..usize::MAX, |s| s.first..s.end);
    progress("choosing B", 0, 0);
    let ((ranges, layers, calib_images), calib_data) = choose_ranges(cfg, &engine, from_data)?;
    // The trajectory certificate runs every α per image (F is shared across α).
    let mut traj: Vec<Option<TrajectoryStats>> = match (&exact, &data) {
        (Some(ys), Some((d, _))) if cfg.method.trajectory() => trajectory_stats(
            &net,
            &engine,
            &pes,
            &ranges,
            d,
            ys,
            progress,
            10,
            cfg.noise_margin.then_some(cfg.margin_rows),
            part,
            shard.is_some(),
        )?
        .into_iter()
        .map(Some)
        .collect(),
        _ => vec![None; pes.len()],
    };
    let mut alphas = Vec::new();
    for (k, pe) in pes.iter().enumerate() {
        progress("alpha", k, pes.len());
        let global = match &bn {
            Some(bn) => bn.global(pe, &ranges)?,
            None => GlobalBound {
                alpha: pe.alpha(),
                relu_sup: pe.relu_sup(),
                blocks: Vec::new(),
                bound: f64::NAN,
                gain: f64::NAN,
                c: f64::NAN,
            },
        };
        let stats = match (&exact, &bn) {
            (Some(ys), Some(bn)) if cfg.method.elementwise() => match &data {
                Some((d, _)) => Some(data_stats(bn, &engine, pe, &ranges, d, ys, &global)?),
                None => None,
            },
            _ => None,
        };
        alphas.push(AlphaBound {
            alpha: pe.alpha(),
            certificate: pe.source().to_string(),
            global,
            data: stats,
            trajectory: traj.get_mut(k).and_then(Option::take),
        });
    }
    Ok(BoundReport {
        model: cfg.model.display().to_string(),
        data: cfg.data.as_ref().map(|p| p.display().to_string()),
        data_selection: data.map(|(_, w)| w),
        calib_data,
        range: cfg.range,
        ranges: layers,
        calib_images,
        blocks: bn.as_ref().map_or(0, |bn| bn.blocks().len()),
        alphas,
        shard,
        global_unavailable,
    })
}

/// The measured ‖F^α(x) − F(x)‖∞ of two engine outputs. A non-finite output of F^α (the
/// polynomial diverges far outside [−B, B]) is an unbounded error: +∞, never dropped by a
/// NaN-ignoring max.
pub(super) fn measured_error(y: &[f64], ya: &[f64]) -> f64 {
    y.iter().zip(ya).fold(0.0f64, |a, (p, q)| {
        let d = (p - q).abs();
        if d.is_nan() {
            f64::INFINITY
        } else {
            a.max(d)
        }
    })
}

/// One image: measured error, top-1 changed, and its per-input bound (early exit).
struct ImageResult {
    measured: f64,
    changed: bool,
    bound: PerInputBound,
}

/// Lower median (NaN for none), ordering by `total_cmp`.
/// How B was chosen, in words (the reports' "Range:" line).
pub(super) fn range_policy_text(range: RangePolicy) -> String {
    match range {
        RangePolicy::PerLayer { margin } => {
            format!("one B per ReLU / max-pool node = {margin} × its calibrated max |input|")
        }
        RangePolicy::PerNetwork { margin } => {
            format!("one B for the network = {margin} × the calibrated max |input|")
        }
        RangePolicy::Fixed(b) => format!("fixed B = {b}"),
    }
}

/// Lower q-quantile (NaN for none), ordering by `total_cmp`: the element at index
/// ⌊(n − 1)·q⌋ of the sorted values.
pub(super) fn quantile(v: &[f64], q: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let i = ((v.len().saturating_sub(1)) as f64 * q).floor() as usize;
    v.get(i).copied().unwrap_or(f64::NAN)
}

/// Lower median (NaN for none): [`quantile`] at 0.5.
pub(super) fn median(v: &[f64]) -> f64 {
    quantile(v, 0.5)
}

fn fold_or_nan(v: &[f64], f: fn(f64, f64) -> f64) -> f64 {
    v.iter().copied().reduce(f).unwrap_or(f64::NAN)
}

/// The per-block diagnostic and the first-failure histogram.
fn diagnose(
    bn: &BoundedNetwork,
    per: &[ImageResult],
) -> (Vec<BlockDiag>, Vec<usize>, Option<usize>) {
    let nb = bn.blocks().len();
    let mut hist = vec![0usize; nb];
    let mut fails: Vec<usize> = Vec::new();
    for p in per {
        if let Some(b) = p.bound.first_failure {
            if let Some(h) = hist.get_mut(b) {
                *h += 1;
            }
            fails.push(b);
        }
    }
    fails.sort_unstable();
    let fmed = fails.get(fails.len().saturating_sub(1) / 2).copied();
    let diag = bn
        .blocks()
        .iter()
        .enumerate()
        .map(|(bi, blk)| {
            let (mut e, mut r, mut slack, mut excess) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            let (mut reached, mut failed) = (0usize, 0usize);
            for p in per {
                if p.bound.first_failure.is_some_and(|f| f < bi) {
                    continue;
                }
                let Some(t) = p.bound.trace.iter().find(|t| t.block == bi) else {
                    continue;
                };
                reached += 1;
                if let (Some(s), Some(x)) = (t.slack, t.excess) {
                    slack.push(s);
                    excess.push(x);
                }
                if p.bound.first_failure == Some(bi) {
                    failed += 1;
                } else {
                    e.push(t.e_max);
                    r.push(t.r);
                }
            }
            BlockDiag {
                block: bi,
                kind: blk.kind().to_string(),
                reached,
                failed,
                e_max: fold_or_nan(&e, f64::max),
                e_median: median(&e),
                r_median: median(&r),
                slack_min: fold_or_nan(&slack, f64::min),
                slack_median: median(&slack),
                excess_max: fold_or_nan(&excess, f64::max),
                excess_median: median(&excess),
            }
        })
        .collect();
    (diag, hist, fmed)
}

fn data_stats(
    bn: &BoundedNetwork,
    engine: &Engine<f64>,
    pe: &PolyErrors,
    ranges: &BTreeMap<NodeId, f64>,
    data: &Dataset,
    ys: &[Vec<f64>],
    global: &GlobalBound,
) -> Result<DataStats, BoundsError> {
    let policy = ActivationPolicy::Approx {
        sign: pe.sign_kernel()?,
        ranges: ranges.clone(),
    };
    engine.check_policy(&policy)?;
    let net = bn.network();
    let per: Vec<ImageResult> = ys
        .par_iter()
        .enumerate()
        .map(|(i, y)| {
            let x = prep(net, data, i)?;
            let ya = engine.run(&x, &policy, &mut RunStats::default())?;
            // A non-finite output of F^α (the polynomial diverges far outside [−B, B]) is an
            // unbounded error: +∞, never dropped by a NaN-ignoring max.
            let measured = measured_error(y, &ya);
            // Early exit: an image failing the range check gets no certificate, so its
            // propagation stops at the failing block (passing images are unaffected).
            let bound = bn.per_input_with(pe, ranges, &x, None, true)?;
            let changed = super::network::argmax(y) != super::network::argmax(&ya);
            Ok(ImageResult {
                measured,
                changed,
                bound,
            })
        })
        .collect::<Result<_, BoundsError>>()?;
    let n = per.len();
    let inr: Vec<&ImageResult> = per.iter().filter(|p| p.bound.in_range).collect();
    let k = inr.len();
    let mean = |v: &mut dyn Iterator<Item = f64>, d: usize| {
        if d == 0 {
            f64::NAN
        } else {
            v.sum::<f64>() / d as f64
        }
    };
    let ratio = |p: &&ImageResult| {
        if p.bound.bound > 0.0 {
            p.measured / p.bound.bound
        } else {
            0.0
        }
    };
    let unchanged = per.iter().filter(|p| p.bound.unchanged).count();
    let (diagnostic, first_failure, first_failure_median) = diagnose(bn, &per);
    Ok(DataStats {
        images: n,
        in_range: k,
        out_of_range: n - k,
        measured_max: per.iter().fold(0.0f64, |a, p| a.max(p.measured)),
        measured_mean: mean(&mut per.iter().map(|p| p.measured), n),
        per_input_max: if k == 0 {
            f64::NAN
        } else {
            inr.iter().fold(0.0f64, |a, p| a.max(p.bound.bound))
        },
        per_input_mean: mean(&mut inr.iter().map(|p| p.bound.bound), k),
        ratio_mean: mean(&mut inr.iter().map(ratio), k),
        ratio_max: if k == 0 {
            f64::NAN
        } else {
            inr.iter().map(ratio).fold(0.0f64, f64::max)
        },
        per_input_over_global_max: if k == 0 {
            f64::NAN
        } else {
            inr.iter()
                .fold(0.0f64, |a, p| a.max(p.bound.bound / global.bound))
        },
        nonfinite: per.iter().filter(|p| p.measured.is_infinite()).count(),
        measured_above_bound: inr.iter().filter(|p| p.measured > p.bound.bound).count(),
        per_input_above_global: inr.iter().filter(|p| p.bound.bound > global.bound).count(),
        unchanged,
        unchanged_fraction: if n == 0 {
            0.0
        } else {
            unchanged as f64 / n as f64
        },
        top1_changed: per.iter().filter(|p| p.changed).count(),
        first_failure,
        first_failure_median,
        diagnostic,
    })
}

/// The smallest α in [`ALPHAS`] (4..=14, the α with certificates) whose global bound is
/// ≤ `target`.
///
/// # Errors
/// [`BoundsError::Config`] unless `target` is finite and > 0; certificate and range errors.
pub fn smallest_alpha(
    bn: &BoundedNetwork,
    ranges: &BTreeMap<NodeId, f64>,
    proofs: &std::path::Path,
    target: f64,
) -> Result<TargetAlpha, BoundsError> {
    if !(target.is_finite() && target > 0.0) {
        return Err(BoundsError::Config {
            what: "target error".into(),
            value: target.to_string(),
            valid: "a finite E > 0".into(),
        });
    }
    let mut bounds = Vec::new();
    for alpha in ALPHAS {
        let pe = PolyErrors::load_or_certify(proofs, alpha)?;
        let g = bn.global(&pe, ranges)?;
        bounds.push((alpha, g.bound));
        if g.bound <= target {
            return Ok(TargetAlpha {
                target,
                alpha: Some(alpha),
                bounds,
            });
        }
    }
    Ok(TargetAlpha {
        target,
        alpha: None,
        bounds,
    })
}

/// Global bounds for a given range policy without data files (`--target-error` helper).
///
/// # Errors
/// As [`bound_report`].
pub fn ranges_for(
    cfg: &BoundConfig,
) -> Result<(BoundedNetwork, BTreeMap<NodeId, f64>), BoundsError> {
    let net = Arc::new(import_onnx(&cfg.model)?);
    let bn = BoundedNetwork::new(Arc::clone(&net))?;
    let engine: Engine<f64> = Engine::new(net);
    let ((ranges, _, _), _) = choose_ranges(cfg, &engine, None)?;
    Ok((bn, ranges))
}

fn fixed(x: f64) -> String {
    if x.is_nan() {
        "—".into()
    } else {
        format!("{x:.3}")
    }
}

fn sci(x: f64) -> String {
    if x.is_nan() {
        "—".into()
    } else {
        format!("{x:.3e}")
    }
}

/// Nonzero histogram entries as `block:count`, most frequent first (at most 4), `—` if none.
fn histogram(h: &[usize]) -> String {
    let mut v: Vec<(usize, usize)> = h
        .iter()
        .copied()
        .enumerate()
        .filter(|&(_, c)| c > 0)
        .collect();
    if v.is_empty() {
        return "—".into();
    }
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let more = v.len().saturating_sub(4);
    let mut out: Vec<String> = v.iter().take(4).map(|(b, c)| format!("{b}:{c}")).collect();
    if more > 0 {
        out.push(format!("+{more} more"));
    }
    out.join(", ")
}

/// The per-block diagnostic table of one α (rows up to the last block any image reaches).
fn diagnostic_markdown(alpha: u32, d: &DataStats) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\nWhere the per-input certificate is lost at α = {alpha} (certified quantities; legend above):\n"
    );
    let _ = writeln!(
        s,
        "| # | block | reached | fail here | e median (max) | r median | slack median (min) | excess median (max) |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
    let last = d
        .diagnostic
        .iter()
        .rposition(|b| b.reached > 0)
        .unwrap_or(0);
    for b in d.diagnostic.iter().take(last + 1) {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} ({}) | {} | {} ({}) | {} ({}) |",
            b.block,
            b.kind,
            b.reached,
            b.failed,
            sci(b.e_median),
            sci(b.e_max),
            sci(b.r_median),
            sci(b.slack_median),
            sci(b.slack_min),
            sci(b.excess_median),
            sci(b.excess_max)
        );
    }
    if last + 1 < d.diagnostic.len() {
        let _ = writeln!(
            s,
            "| {}–{} | | 0 | | | | | |",
            last + 1,
            d.diagnostic.len() - 1
        );
    }
    s
}

/// Read back the reports that `polycert bound --out-json` wrote: a JSON array of
/// [`BoundReport`]. Non-finite numbers, which JSON writes as `null`, come back as NaN, so
/// writing the result again gives the same bytes.
///
/// # Errors
/// [`BoundsError::ReportFile`] naming the file, with the I/O error or the JSON error and its
/// line and column.
pub fn read_bound_reports(path: &std::path::Path) -> Result<Vec<BoundReport>, BoundsError> {
    let err = |reason: String| BoundsError::ReportFile {
        file: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| err(e.to_string()))
}

/// Several `polycert bound --out-json` files as one report (`polycert bound --merge`): the
/// models in the order of the files, each exactly as its own run certified it. A model file
/// that appears in two inputs is refused (the merged tables would show it twice), except
/// for the parts of a sharded run (`--shard k/n`): parts 1..=n of one model, each once, with
/// the same data, selection, ranges and global bounds, are recombined — their per-image
/// records concatenated and every statistic recomputed from them — into the report the
/// unsharded run writes (same JSON), at the position of the first part given.
///
/// # Errors
/// [`BoundsError::ReportFile`] for an unreadable file, an empty one, a repeated model, a
/// repeated, missing or inconsistent shard.
pub fn merge_bound_reports(paths: &[std::path::PathBuf]) -> Result<Vec<BoundReport>, BoundsError> {
    // Each model (or its shards) with the file(s) it came from, in order of appearance:
    // (model, whether sharded, first file, reports).
    type Group = (String, bool, String, Vec<(BoundReport, String)>);
    let mut out: Vec<Group> = Vec::new();
    for p in paths {
        let file = p.display().to_string();
        let rs = read_bound_reports(p)?;
        if rs.is_empty() {
            return Err(BoundsError::ReportFile {
                file,
                reason: "holds no model".into(),
            });
        }
        for r in rs {
            match out.iter_mut().find(|g| g.0 == r.model) {
                Some(g) if r.shard.is_some() && g.1 => g.3.push((r, file.clone())),
                Some(g) => {
                    return Err(BoundsError::ReportFile {
                        file,
                        reason: format!("model {} is already in {}", r.model, g.2),
                    })
                }
                None => out.push((
                    r.model.clone(),
                    r.shard.is_some(),
                    file.clone(),
                    vec![(r, file.clone())],
                )),
            }
        }
    }
    let mut merged = Vec::with_capacity(out.len());
    for (_, sharded, _, g) in out {
        if sharded {
            merged.push(merge_shards(g)?);
        } else {
            merged.extend(g.into_iter().map(|(r, _)| r));
        }
    }
    Ok(merged)
}

/// Recombine the parts of one sharded run (see [`merge_bound_reports`]).
fn merge_shards(mut g: Vec<(BoundReport, String)>) -> Result<BoundReport, BoundsError> {
    let err = |file: &str, reason: String| BoundsError::ReportFile {
        file: file.to_string(),
        reason,
    };
    g.sort_by_key(|(r, _)| r.shard.map_or(0, |s| s.part));
    // Everything but the trajectory statistics and the shard must agree (compared as JSON,
    // so that NaN equals NaN).
    let common = |r: &BoundReport| {
        let mut c = r.clone();
        c.shard = None;
        for a in &mut c.alphas {
            a.trajectory = None;
        }
        serde_json::to_value(&c).map_err(|e| e.to_string())
    };
    let Some((first, first_file)) = g.first() else {
        return Err(err("--merge", "no shard given".into()));
    };
    let model = first.model.clone();
    let want = common(first).map_err(|e| err(first_file, e))?;
    let Some(s0) = first.shard else {
        return Err(err(first_file, format!("model {model} is not a shard")));
    };
    for (k, (r, file)) in g.iter().enumerate() {
        let Some(s) = r.shard else {
            return Err(err(
                file,
                format!("model {model}: a whole run mixed with shards"),
            ));
        };
        if s.parts != s0.parts || s.of != s0.of {
            return Err(err(
                file,
                format!(
                    "model {model}: shard {}/{} of {} images does not match shard {}/{} of {} images in {first_file}",
                    s.part, s.parts, s.of, s0.part, s0.parts, s0.of
                ),
            ));
        }
        if s.part != k + 1 {
            let reason = if s.part == k {
                format!(
                    "model {model}: shard {}/{} is already in {}",
                    s.part,
                    s.parts,
                    g.get(k.wrapping_sub(1)).map_or("", |p| p.1.as_str())
                )
            } else {
                format!("model {model}: shard {}/{} is missing", k + 1, s.parts)
            };
            return Err(err(file, reason));
        }
        if Shard::new(s.part, s.parts, s.of).ok() != Some(s) {
            return Err(err(
                file,
                format!(
                    "model {model}: shard {}/{} covers images {}..{}, not the part's",
                    s.part, s.parts, s.first, s.end
                ),
            ));
        }
        if common(r).map_err(|e| err(file, e))? != want {
            return Err(err(
                file,
                format!("model {model}: data, selection, ranges or global bounds differ from {first_file}"),
            ));
        }
    }
    if g.len() != s0.parts {
        return Err(err(
            g.last().map_or("", |p| p.1.as_str()),
            format!(
                "model {model}: shard {}/{} is missing",
                g.len() + 1,
                s0.parts
            ),
        ));
    }
    let mut merged = first.clone();
    merged.shard = None;
    for (k, a) in merged.alphas.iter_mut().enumerate() {
        let mut images = Vec::with_capacity(s0.of);
        let mut margin = None;
        for (r, file) in &g {
            let t = r.alphas.get(k).and_then(|a| a.trajectory.as_ref());
            let Some(recs) = t.and_then(|t| t.per_image.as_ref()) else {
                return Err(err(
                    file,
                    format!("model {model}, α = {}: no per-image records", a.alpha),
                ));
            };
            let s = r.shard.unwrap_or(s0);
            if recs.len() != s.end - s.first
                || recs.iter().zip(s.first..).any(|(x, i)| x.image != i)
            {
                return Err(err(
                    file,
                    format!(
                        "model {model}, α = {}: the per-image records are not images {}..{}",
                        a.alpha, s.first, s.end
                    ),
                ));
            }
            let nm = t.and_then(|t| t.noise_margin.as_ref().map(|m| m.back_substituted_rows));
            if *margin.get_or_insert(nm) != nm {
                return Err(err(
                    file,
                    format!(
                        "model {model}, α = {}: noise margin in some shards only, or with and \
                         without --margin-rows",
                        a.alpha
                    ),
                ));
            }
            images.extend(recs.iter().cloned());
        }
        a.trajectory = Some(stats_from_images(&images, margin.flatten()));
    }
    Ok(merged)
}

/// The Markdown report for several models: an explanation, a summary, then each model's
/// tables ([`BoundReport::to_markdown`]). `command` is quoted as the way to regenerate it.
pub fn bounds_markdown(reports: &[BoundReport], command: &str) -> String {
    let mut s = String::from("# Error-propagation bounds (paper §4, Theorems 2–4)\n\n");
    s.push_str(concat!(
        "Generated by `polycert bound` (deterministic: same inputs and flags give the same files).\n\n",
        "- **global bound** (certified): the Theorem 3 composition of the Lemma 1 block functions, with\n",
        "  the certified sup |r_α − ReLU| of the checked certificate `proofs/table1-alphaNN.json` (not the\n",
        "  nominal 2^−α) and the B of each ReLU / max-pool node, rounded upward; C = bound·2^α (Theorem 4).\n",
        "  It holds for every input whose F^α activation inputs stay in [−B, B].\n",
        "- **per-input bound** (certified for inputs that pass the range check): elementwise propagation\n",
        "  (|A|·e for linear maps, local certified box bounds of |x·p(x) − |x|| at the actual\n",
        "  pre-activations for ReLU), with an a-priori enclosure of the f64 forward pass.\n",
        "- **in range**: images whose every ReLU / max-pool input interval [ŷ − r − e, ŷ + r + e] lies in\n",
        "  [−B, B]; the others get no certificate and are counted, never dropped.\n",
        "- **measured**: max |F^α(x) − F(x)| of the f64 engine with the certified polynomial (sampled).\n",
        "- **certified unchanged**: in range and F̂_top − r − e_top > F̂_j + r + e_j for every j ≠ top\n",
        "  (elementwise, directed rounding): F and F^α provably predict the same class.\n",
        "- **first failing block** / **where the per-input certificate is lost**: the propagation of an image\n",
        "  stops at the first block whose range check fails (it gets no certificate; its measured error is\n",
        "  still computed); images that pass get exactly the full propagation's certificate. The per-block\n",
        "  tables (smallest and largest α) are computed from the certified per-input quantities, medians\n",
        "  are lower medians over images: *reached* = images in range at every earlier block; *e* = max_i e_i\n",
        "  at the block output, over the images also passing this block; *r* = the f64 forward-pass\n",
        "  enclosure; *slack* = min_i (B − |ŷ_i| − r − e_i) over the block's activation inputs (< 0 fails);\n",
        "  *excess* = max_i (r + e_i)/(B − |ŷ_i|) (> 1 fails: the factor by which the bound would have to\n",
        "  shrink for the block to pass).\n",
        "- The polynomial errors are certified in exact arithmetic (`arith = exact`); the bounds are about\n",
        "  F^α computed exactly, the measured errors include the f64 evaluation of p_α.\n\n",
    ));
    let _ = writeln!(s, "Command:\n\n```\n{command}\n```\n");
    let _ = writeln!(s, "## Summary\n");
    let _ = writeln!(s, "| model | blocks | α | global bound (certified) | C | images | in range | measured max | per-input mean (certified) | certified unchanged | first failing block (median) |");
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|");
    for r in reports {
        // Smallest and largest α; one row when they are the same α.
        let last = r.alphas.last().filter(|_| r.alphas.len() > 1);
        for a in [r.alphas.first(), last].into_iter().flatten() {
            let (im, inr, mm, pm, un, ff) = match &a.data {
                Some(d) => (
                    d.images.to_string(),
                    d.in_range.to_string(),
                    sci(d.measured_max),
                    sci(d.per_input_mean),
                    format!("{:.2}%", 100.0 * d.unchanged_fraction),
                    d.first_failure_median
                        .map_or_else(|| "—".into(), |b| b.to_string()),
                ),
                None => (
                    "—".into(),
                    "—".into(),
                    "—".into(),
                    "—".into(),
                    "—".into(),
                    "—".into(),
                ),
            };
            let name = std::path::Path::new(&r.model)
                .file_name()
                .map_or_else(|| r.model.clone(), |f| f.to_string_lossy().into_owned());
            let _ = writeln!(
                s,
                "| {name} | {} | {} | {} | {} | {im} | {inr} | {mm} | {pm} | {un} | {ff} |",
                r.blocks,
                a.alpha,
                sci(a.global.bound),
                sci(a.global.c)
            );
        }
    }
    let traj: Vec<(String, u32, &TrajectoryStats)> = reports
        .iter()
        .flat_map(|r| {
            let name = std::path::Path::new(&r.model)
                .file_name()
                .map_or_else(|| r.model.clone(), |f| f.to_string_lossy().into_owned());
            r.alphas
                .iter()
                .filter_map(move |a| a.trajectory.as_ref().map(|t| (name.clone(), a.alpha, t)))
        })
        .collect();
    if !traj.is_empty() {
        s.push('\n');
        s.push_str(&trajectory_markdown(&traj));
    }
    s.push_str("\n## Per model\n\n");
    for r in reports {
        s.push_str(&r.to_markdown());
        s.push('\n');
    }
    s
}

impl BoundReport {
    /// Markdown: the summary per α, then the per-block table of the last α.
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let ratio_note = "measured/per-input: mean (max) over in-range images";
        let _ = writeln!(s, "### {}\n", self.model);
        let images = self
            .alphas
            .iter()
            .find_map(|a| a.data.as_ref().map(|d| d.images));
        match (&self.data_selection, &self.data, images) {
            (Some(w), _, _) => {
                let _ = writeln!(s, "Data: {w}.");
            }
            (None, Some(d), Some(n)) => {
                let _ = writeln!(s, "Data: {n} images of `{d}`.");
            }
            _ => {}
        }
        if let Some(why) = &self.global_unavailable {
            let _ = writeln!(
                s,
                "No global or elementwise bound (the trajectory certificate needs neither): {why}."
            );
        }
        if let Some(sh) = self.shard {
            let _ = writeln!(
                s,
                "Shard {}/{}: the per-input certificate covers images {}..{} of the {} selected (B \
                 calibrated on all of them); `polycert bound --merge` of parts 1..={} gives the \
                 whole report.",
                sh.part, sh.parts, sh.first, sh.end, sh.of, sh.parts
            );
        }
        let policy = range_policy_text(self.range);
        let _ = writeln!(
            s,
            "Range: {policy}{}. {} blocks.\n",
            self.calib_data
                .as_ref()
                .map(|c| format!("; calibration set: {c} (exact forward pass F)"))
                .unwrap_or_default(),
            self.blocks
        );
        let _ = writeln!(s, "({ratio_note}.)\n");
        let _ = writeln!(s, "| α | global bound (certified) | C = bound·2^α | images | in range | measured max | per-input max (certified) | per-input mean (certified) | measured/per-input mean (max) | per-input/global max | certified unchanged | first failing block: images |");
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|---|");
        for a in &self.alphas {
            match &a.data {
                Some(d) => {
                    let _ = writeln!(
                        s,
                        "| {} | {} | {} | {} | {} | {} | {} | {} | {} ({}) | {} | {} ({:.2}%) | {} |",
                        a.alpha,
                        sci(a.global.bound),
                        sci(a.global.c),
                        d.images,
                        d.in_range,
                        sci(d.measured_max),
                        sci(d.per_input_max),
                        sci(d.per_input_mean),
                        fixed(d.ratio_mean),
                        fixed(d.ratio_max),
                        fixed(d.per_input_over_global_max),
                        d.unchanged,
                        100.0 * d.unchanged_fraction,
                        histogram(&d.first_failure)
                    );
                }
                None => {
                    let _ = writeln!(
                        s,
                        "| {} | {} | {} | — | — | — | — | — | — | — | — | — |",
                        a.alpha,
                        sci(a.global.bound),
                        sci(a.global.c)
                    );
                }
            }
        }
        // The diagnostic at the smallest and the largest α.
        let ends = match (self.alphas.first(), self.alphas.last()) {
            (Some(f), Some(l)) if f.alpha != l.alpha => vec![f, l],
            (_, Some(l)) => vec![l],
            _ => Vec::new(),
        };
        for a in ends {
            if let Some(d) = &a.data {
                s.push_str(&diagnostic_markdown(a.alpha, d));
            }
        }
        if let Some(a) = self.alphas.last().filter(|a| !a.global.blocks.is_empty()) {
            let _ = writeln!(
                s,
                "\nBlocks at α = {} (E(e) = gain·e + added; certified s = {}):\n",
                a.alpha,
                sci(a.global.relu_sup)
            );
            let _ = writeln!(
                s,
                "| # | block | nodes | gain (‖A‖∞) | added error | cumulative bound |"
            );
            let _ = writeln!(s, "|---|---|---|---|---|---|");
            for r in &a.global.blocks {
                let kind = match r.shortcut {
                    Some(sc) => format!("{} ({sc:?})", r.kind),
                    None => r.kind.clone(),
                };
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} |",
                    r.index,
                    kind,
                    r.nodes,
                    sci(r.gain),
                    sci(r.added),
                    sci(r.cumulative)
                );
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_lower_quantiles() {
        let v = [5.0, 1.0, 4.0, 2.0, 3.0, f64::INFINITY];
        assert_eq!(quantile(&v, 0.5), 3.0);
        assert_eq!(quantile(&v, 0.0), 1.0);
        assert_eq!(quantile(&v, 0.9), 5.0);
        assert_eq!(quantile(&v, 1.0), f64::INFINITY);
        assert!(quantile(&[], 0.5).is_nan());
        // The lower median of an even count is the smaller middle value.
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.0);
        assert_eq!(median(&[7.0]), 7.0);
        assert!(median(&[]).is_nan());
    }
}
