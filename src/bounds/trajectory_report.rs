//! The trajectory certificate over a dataset: per α, the certified-unchanged fraction and the
//! distance of the certified upper bound of ‖F^α(x) − F(x)‖∞ from the measured value of the
//! f64 engine ([`TrajectoryStats`], part of [`super::AlphaBound`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::margin::{MarginCertifier, NoiseMargin};
use super::polyerr::PolyErrors;
use super::report::{measured_error, median, prep, quantile};
use super::trajectory::{TrajectoryBound, TrajectoryCertifier, PRECISIONS};
use super::BoundsError;
use crate::nn::{ActivationPolicy, Dataset, Engine, Network, NodeId, RunStats};

/// Which per-input certificate `--per-input` computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum PerInputMethod {
    /// The trajectory certificate ([`TrajectoryCertifier`]): enclosures of F(x) and F^α(x).
    Trajectory,
    /// The elementwise per-input bound ([`super::BoundedNetwork::per_input`]): polynomial
    /// errors as unknowns in their certified boxes, under a range check.
    Elementwise,
    /// Both.
    Both,
}

impl PerInputMethod {
    /// Whether the trajectory certificate is computed.
    pub fn trajectory(self) -> bool {
        matches!(self, Self::Trajectory | Self::Both)
    }
    /// Whether the elementwise bound is computed.
    pub fn elementwise(self) -> bool {
        matches!(self, Self::Elementwise | Self::Both)
    }
}

/// The trajectory certificate of one model at one α over the images. Everything called
/// certified comes from [`TrajectoryBound`]; "measured" is the f64 engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrajectoryStats {
    /// Images evaluated.
    pub images: usize,
    /// Images whose F and F^α classes are both certified and equal.
    pub certified_unchanged: usize,
    /// `certified_unchanged / images`.
    #[serde(deserialize_with = "super::nan_f64")]
    pub certified_unchanged_fraction: f64,
    /// Images whose measured classes (f64 engine) of F and F^α agree.
    pub measured_unchanged: usize,
    /// Certified-unchanged images among the measured-unchanged ones, as a fraction of them.
    #[serde(deserialize_with = "super::nan_f64")]
    pub certified_of_measured_unchanged: f64,
    /// Images whose class of F itself is certified (its interval above all others).
    pub exact_class_certified: usize,
    /// Lower median over images of (certified upper − measured)/measured.
    #[serde(deserialize_with = "super::nan_f64")]
    pub excess_median: f64,
    /// Max over images of (certified upper − measured)/measured.
    #[serde(deserialize_with = "super::nan_f64")]
    pub excess_max: f64,
    /// Min over images of (certified upper − measured)/measured (negative only where the f64
    /// engine's own rounding puts its value above the exact one's enclosure).
    #[serde(deserialize_with = "super::nan_f64")]
    pub excess_min: f64,
    /// Images whose measured value lies outside the certified [lo, hi].
    pub measured_outside: usize,
    /// Max over images of |measured − clamp(measured, lo, hi)| (0 when every measured value is
    /// inside its enclosure): the f64 engine's distance from the exact value's enclosure.
    #[serde(deserialize_with = "super::nan_f64")]
    pub measured_outside_max: f64,
    /// Lower median over images of the certified upper bound.
    #[serde(deserialize_with = "super::nan_f64")]
    pub upper_median: f64,
    /// Max over images of the certified upper bound.
    #[serde(deserialize_with = "super::nan_f64")]
    pub upper_max: f64,
    /// Lower median over images of the measured value.
    #[serde(deserialize_with = "super::nan_f64")]
    pub measured_median: f64,
    /// Max of the final output radius (F and F^α, rounded up) over images.
    #[serde(deserialize_with = "super::nan_f64")]
    pub radius_max: f64,
    /// Lower median of the final output radius.
    #[serde(deserialize_with = "super::nan_f64")]
    pub radius_median: f64,
    /// Images per fraction-bit precision F that gave the result, ascending in F.
    pub precision: Vec<(u32, usize)>,
    /// Images with at least one activation input of F^α leaving [−B, B].
    pub out_of_range_images: usize,
    /// The certified noise margin η over the certified-unchanged images (`--noise-margin`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise_margin: Option<MarginStats>,
}

/// The certified noise margin η ([`NoiseMargin`]) over the certified-unchanged images of one
/// model at one α: every certified quantity, no measured one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MarginStats {
    /// Certified-unchanged images.
    pub images: usize,
    /// Those with a certified η ≥ 2^−80.
    pub with_margin: usize,
    /// Lower median of log₂ η over `with_margin`.
    #[serde(deserialize_with = "super::nan_f64")]
    pub log2_eta_median: f64,
    /// Lower 5th percentile of log₂ η.
    #[serde(deserialize_with = "super::nan_f64")]
    pub log2_eta_p5: f64,
    /// Smallest log₂ η.
    #[serde(deserialize_with = "super::nan_f64")]
    pub log2_eta_min: f64,
    /// Per image (in image order; `None` when not certified unchanged or no η): log₂ η.
    pub log2_eta: Vec<Option<f64>>,
    /// Lower median of the first-order estimate log₂ η₀ (not certified; see
    /// [`NoiseMargin::log2_eta_first_order`]).
    #[serde(deserialize_with = "super::nan_f64")]
    pub log2_eta_first_order_median: f64,
}

/// Per image and α: the certificate, the measured error and whether the measured classes
/// agree.
struct Row {
    cert: TrajectoryBound,
    measured: f64,
    measured_same: bool,
    margin: Option<NoiseMargin>,
}

/// Run the trajectory certificate over `data` for every α of `pes` (images in parallel,
/// results in image order: deterministic), next to the f64 engine's measured error given the
/// exact outputs `ys`; with `noise_margin` also the certified η of every certified-unchanged
/// image ([`MarginCertifier`]). Returns one [`TrajectoryStats`] per α.
///
/// # Errors
/// Network, range and data errors.
#[expect(clippy::too_many_arguments, reason = "the report's shared inputs")]
pub(crate) fn trajectory_stats(
    net: &Arc<Network>,
    engine: &Engine<f64>,
    pes: &[PolyErrors],
    ranges: &BTreeMap<NodeId, f64>,
    data: &Dataset,
    ys: &[Vec<f64>],
    progress: &(dyn Fn(&str, usize, usize) + Sync),
    step: usize,
    noise_margin: bool,
) -> Result<Vec<TrajectoryStats>, BoundsError> {
    let tc = TrajectoryCertifier::new(Arc::clone(net), pes, ranges.clone(), &PRECISIONS)?;
    let mc = if noise_margin {
        Some(MarginCertifier::new(Arc::clone(net), pes, ranges.clone())?)
    } else {
        None
    };
    let policies: Vec<ActivationPolicy> = pes
        .iter()
        .map(|pe| {
            Ok(ActivationPolicy::Approx {
                sign: pe.sign_kernel()?,
                ranges: ranges.clone(),
            })
        })
        .collect::<Result<_, BoundsError>>()?;
    for p in &policies {
        engine.check_policy(p)?;
    }
    let n = ys.len();
    let done = AtomicUsize::new(0);
    let rows: Vec<Vec<Row>> = ys
        .par_iter()
        .enumerate()
        .map(|(i, y)| {
            let x = prep(net, data, i)?;
            let certs = tc.certify(&x)?;
            let mut out = Vec::with_capacity(certs.len());
            for (cert, pol) in certs.into_iter().zip(&policies) {
                let ya = engine.run(&x, pol, &mut RunStats::default())?;
                let measured = measured_error(y, &ya);
                let measured_same = super::network::argmax(y) == super::network::argmax(&ya);
                let margin = match &mc {
                    Some(mc) if cert.unchanged => mc.margin(&tc, &x, &cert)?,
                    _ => None,
                };
                out.push(Row {
                    cert,
                    measured,
                    measured_same,
                    margin,
                });
            }
            let d = done.fetch_add(1, Ordering::Relaxed) + 1;
            if d.is_multiple_of(step.max(1)) || d == n {
                progress("trajectory certificate", d, n);
            }
            Ok(out)
        })
        .collect::<Result<_, BoundsError>>()?;
    Ok((0..pes.len())
        .map(|k| {
            let col: Vec<&Row> = rows.iter().filter_map(|r| r.get(k)).collect();
            let mut st = stats_of(&col);
            if noise_margin {
                st.noise_margin = Some(margin_stats(&col));
            }
            st
        })
        .collect())
}

fn margin_stats(col: &[&Row]) -> MarginStats {
    let per: Vec<Option<f64>> = col
        .iter()
        .map(|r| r.margin.as_ref().map(|m| m.log2_eta))
        .collect();
    let v: Vec<f64> = per.iter().flatten().copied().collect();
    MarginStats {
        images: col.iter().filter(|r| r.cert.unchanged).count(),
        with_margin: v.len(),
        log2_eta_median: median(&v),
        log2_eta_p5: quantile(&v, 0.05),
        log2_eta_min: v.iter().copied().reduce(f64::min).unwrap_or(f64::NAN),
        log2_eta: per,
        log2_eta_first_order_median: median(
            &col.iter()
                .filter_map(|r| r.margin.as_ref().map(|m| m.log2_eta_first_order))
                .collect::<Vec<_>>(),
        ),
    }
}

fn stats_of(col: &[&Row]) -> TrajectoryStats {
    let n = col.len();
    let frac = |a: usize, b: usize| {
        if b == 0 {
            f64::NAN
        } else {
            a as f64 / b as f64
        }
    };
    let excess: Vec<f64> = col
        .iter()
        .map(|r| {
            if r.measured > 0.0 {
                (r.cert.hi - r.measured) / r.measured
            } else {
                f64::INFINITY
            }
        })
        .collect();
    let outside: Vec<f64> = col
        .iter()
        .map(|r| {
            if r.measured < r.cert.lo {
                r.cert.lo - r.measured
            } else if r.measured > r.cert.hi {
                r.measured - r.cert.hi
            } else {
                0.0
            }
        })
        .collect();
    let radius: Vec<f64> = col
        .iter()
        .map(|r| r.cert.radius_exact.max(r.cert.radius_approx))
        .collect();
    let mu = col.iter().filter(|r| r.measured_same).count();
    let cu_mu = col
        .iter()
        .filter(|r| r.measured_same && r.cert.unchanged)
        .count();
    let mut prec: BTreeMap<u32, usize> = BTreeMap::new();
    for r in col {
        *prec.entry(r.cert.frac_bits).or_insert(0) += 1;
    }
    let fold = |v: &[f64], f: fn(f64, f64) -> f64| v.iter().copied().reduce(f).unwrap_or(f64::NAN);
    let uppers: Vec<f64> = col.iter().map(|r| r.cert.hi).collect();
    let measured: Vec<f64> = col.iter().map(|r| r.measured).collect();
    let cu = col.iter().filter(|r| r.cert.unchanged).count();
    TrajectoryStats {
        images: n,
        certified_unchanged: cu,
        certified_unchanged_fraction: frac(cu, n),
        measured_unchanged: mu,
        certified_of_measured_unchanged: frac(cu_mu, mu),
        exact_class_certified: col.iter().filter(|r| r.cert.class_exact.is_some()).count(),
        excess_median: median(&excess),
        excess_max: fold(&excess, f64::max),
        excess_min: fold(&excess, f64::min),
        measured_outside: outside.iter().filter(|&&d| d > 0.0).count(),
        measured_outside_max: fold(&outside, f64::max),
        upper_median: median(&uppers),
        upper_max: fold(&uppers, f64::max),
        measured_median: quantile(&measured, 0.5),
        radius_max: fold(&radius, f64::max),
        radius_median: median(&radius),
        precision: prec.into_iter().collect(),
        out_of_range_images: col.iter().filter(|r| r.cert.out_of_range > 0).count(),
        noise_margin: None,
    }
}

fn sci(x: f64) -> String {
    if x.is_nan() {
        "—".into()
    } else {
        format!("{x:.3e}")
    }
}

/// The Markdown table of the trajectory certificate, one row per (model, α).
pub(crate) fn trajectory_markdown(rows: &[(String, u32, &TrajectoryStats)]) -> String {
    let mut s = String::new();
    s.push_str(concat!(
        "## Trajectory certificate (certified, per input)\n\n",
        "F(x) and F^α(x) evaluated in fixed-point ball arithmetic (exact midpoints floored to F fraction bits,\n",
        "radii rounded upward, r̃_α / M̃ in centred form from the exact certificate coefficients; no range\n",
        "hypothesis). *certified unchanged*: the classes of F and F^α are both certified (intervals\n",
        "separated) and equal; *of measured unchanged*: the same among the images whose f64-engine classes\n",
        "agree. *(upper − measured)/measured*: certified upper bound of ‖F^α − F‖∞ against the f64 engine's\n",
        "value (lower median, max, min). *outside*: images whose f64-engine value lies outside the certified\n",
        "enclosure of the exact value (the engine's own rounding), with the largest distance. *F bits*:\n",
        "images per precision.\n\n",
        "| model | α | images | certified unchanged | of measured unchanged | (upper − measured)/measured: median | max | min | outside (max dist.) | upper median | radius max | F bits: images | images leaving [−B, B] |\n",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    ));
    for (model, alpha, t) in rows {
        let prec = t
            .precision
            .iter()
            .map(|(f, n)| format!("{f}: {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            s,
            "| {model} | {alpha} | {} | {:.2}% | {:.2}% | {} | {} | {} | {} ({}) | {} | {} | {prec} | {} |",
            t.images,
            100.0 * t.certified_unchanged_fraction,
            100.0 * t.certified_of_measured_unchanged,
            sci(t.excess_median),
            sci(t.excess_max),
            sci(t.excess_min),
            t.measured_outside,
            sci(t.measured_outside_max),
            sci(t.upper_median),
            sci(t.radius_max),
            t.out_of_range_images,
        );
    }
    s.push('\n');
    let nm: Vec<_> = rows
        .iter()
        .filter_map(|(m, a, t)| t.noise_margin.as_ref().map(|n| (m, a, n)))
        .collect();
    if !nm.is_empty() {
        s.push_str(concat!(
            "## Noise margin η (certified, per input)\n\n",
            "The largest η on the grid 2^(k/16) such that perturbing every ReLU input z_i of F^α by any e_i with\n",
            "|e_i| ≤ η·B provably keeps the certified class (forward perturbation boxes, back-substitution of\n",
            "each margin at the trajectory's slopes plus the remainder of r̃_α′ over the boxes). Over the certified-unchanged\n",
            "images: how many got an η ≥ 2^−80, and the lower median, 5th percentile and minimum of log₂ η.\n",
            "*first-order (not certified)*: median of log₂ η₀, η₀ = min_j lower(y_c − y_j)/K_j(0), the\n",
            "linearised margin; the gap to the certified η is the growth of the forward boxes.\n\n",
            "| model | α | certified unchanged | with η | log₂ η median | log₂ η 5th pct. | log₂ η min | first-order log₂ η₀ median (not certified) |\n",
            "|---|---|---|---|---|---|---|---|\n",
        ));
        for (model, alpha, n) in nm {
            let _ = writeln!(
                s,
                "| {model} | {alpha} | {} | {} | {:.4} | {:.4} | {:.4} | {:.2} |",
                n.images,
                n.with_margin,
                n.log2_eta_median,
                n.log2_eta_p5,
                n.log2_eta_min,
                n.log2_eta_first_order_median
            );
        }
        s.push('\n');
    }
    s
}
