//! The trajectory certificate (beyond the paper): for one input x, rigorous enclosures of
//! F(x) and F^α(x) themselves, evaluated in fixed-point ball arithmetic ([`super::fixed`]),
//! hence an enclosure [lo, hi] of ‖F^α(x) − F(x)‖∞ and certified classes.
//!
//! Unlike the elementwise per-input bound ([`super::BoundedNetwork::per_input`]), which lets
//! each activation's polynomial error be any value in its certified box, this evaluates the
//! fixed certified polynomial r̃_α (Eq. 4) / M̃_{α,n} (Eq. 6–7) on the input's actual
//! trajectory, so no range hypothesis is needed: the polynomial is evaluated wherever its
//! input falls (inputs leaving [−B, B] are still counted, [`TrajectoryBound::out_of_range`]).
//!
//! Every linear operator is evaluated exactly on the midpoints (f32 weights are exact
//! integers times 2^−G, sums of exact products are exact) and floored once to F fraction bits
//! (error < 2^−F); radii go through |W| in binary64 rounded upward (Higham's γ_n bound on the
//! non-negative dot product). Batch normalisation's scale γ/√(σ² + ε) is computed with MPFR
//! at F + 80 bits and its error is added to the radius. ReLU / max in F are 1-Lipschitz:
//! ⟨max(m, 0), ρ⟩ (⟨0, 0⟩ when m + ρ ≤ 0) and ⟨max m_i, max ρ_i⟩. r̃_α and m_α use the
//! centred form: radius = sup over the ball of |derivative| (outward-rounded interval
//! enclosure, chain rule through every component) times the input radius, plus the tracked
//! rounding error of the midpoint evaluation.
//!
//! The precision F is chosen per input among [`PRECISIONS`]: 128 bits first, then 192,
//! 256, 512 and 1024 while the sum of the two output radii exceeds 10^−6 of the certified
//! lower bound of the difference.
//!
//! Speed: convolutions, fully connected layers and r̃_α run on a fixed-width fast path
//! (`trajectory_ops`: limb dot products in i128 accumulators under a per-layer overflow
//! guard, carry-normalised every K weights where one pass could overflow; 256-bit
//! polynomial midpoints; F^α's Clip entries wholly in 256 bits) that gives bit-identical
//! balls and falls back to GMP per layer / per activation / per entry whenever a value does
//! not fit. Where F's radii ignore the midpoints (no batch norm, no exact ReLU: e.g.
//! EfficientNet-Lite0), a level whose radii alone rule out every α is skipped without
//! running F ([`TrajectoryNetwork::exact_radii`]); the certificates are the same.

use std::collections::BTreeMap;
use std::sync::Arc;

use inari::Interval;
use rug::{Float, Integer, Rational};
use serde::Serialize;

use super::fixed::{
    ball_interval, div_dyadic_floor, dyadic_of_f64, f64_to_fixed, fixed_bounds, fixed_mag,
    fixed_mig, mul_dyadic_floor, rat_to_fixed, ChainBall, FixedMid, FixedSign, Frac,
};
use super::polyerr::PolyErrors;
use super::round::{add_ru, div_ru, dot_up, mul_ru, Ulp};
pub(crate) use super::trajectory_ops::BallT;
use super::trajectory_ops::{
    conv, conv_radii, linear, linear_radii, max_tree, max_tree_with, relu_approx, relu_ball,
    ConvGeom, IntWeights, PolyWide,
};
use super::BoundsError;
use crate::nn::{clip_upper_key, Network, NodeId, Op, SignKernel};

/// Fraction bits tried in turn until the certificate is tight (see the module docs).
/// 128 and 192 run on the fixed-width fast path (values below 2^(255 − F) in the
/// polynomials, dot products up to 4 limbs), 256 and up on GMP.
pub const PRECISIONS: [Frac; 5] = [Frac(128), Frac(192), Frac(256), Frac(512), Frac(1024)];

/// Relative tightness asked of the enclosure: radius_F + radius_Fα ≤ this × lower bound.
const TIGHT: f64 = 1e-6;

/// The input balls of the ReLUs of F^α per node (see [`SiteRec`]).
pub(crate) type SiteBalls = BTreeMap<NodeId, SiteRec>;

/// One run of F^α on balls, kept for the noise margin: its output balls and the input balls
/// of its ReLUs at `frac` fraction bits ([`TrajectoryCertifier::approx_sites`]).
/// Opaque outside the crate: made by [`TrajectoryCertifier::certify_near_recording`], read
/// by [`super::MarginCertifier::margin_from`].
#[derive(Debug, Clone)]
pub struct ApproxRun {
    pub(crate) frac: Frac,
    pub(crate) out: BallT,
    pub(crate) sites: SiteBalls,
}

/// One ReLU layer of F^α on the certified trajectory: per entry, the input ball ⟨m, ρ⟩ as an
/// outward f64 interval, and the enclosures of the composite's chain at u = m/B alone
/// (`FixedSign::chain_points`, `stride` = components + 1 intervals per entry).
#[derive(Debug, Clone, Default)]
pub(crate) struct SiteRec {
    pub(crate) x: Vec<Interval>,
    pub(crate) chain: Vec<Interval>,
    pub(crate) stride: usize,
}

impl SiteRec {
    /// The record of one ReLU layer; the chains on the fixed-width fast path `wide` where
    /// its midpoints fit (the same operations, hence the same intervals), else on GMP.
    fn new(
        sign: &FixedSign,
        wide: Option<&FixedSign<PolyWide>>,
        a: &BallT,
        bd: &(Integer, i32),
        f: Frac,
    ) -> Self {
        let mut rec = Self::default();
        for (m, r) in a.mid.iter().zip(&a.rad) {
            rec.x.push(ball_interval(m, *r, f));
            let u = ChainBall {
                mid: div_dyadic_floor(m, bd),
                rho: f.ulp(),
                e: f.ulp(),
            };
            let fast = wide.and_then(|ws| {
                ws.chain_points_checked(ChainBall {
                    mid: PolyWide::from_integer(&u.mid)?,
                    rho: u.rho,
                    e: u.e,
                })
            });
            let ch = fast.unwrap_or_else(|| sign.chain_points(u));
            rec.stride = ch.len();
            rec.chain.extend(ch);
        }
        rec
    }
}

/// Which network is evaluated.
#[derive(Clone, Copy)]
pub(crate) enum Mode<'a> {
    /// F: exact ReLU and max.
    Exact,
    /// F^α: r̃_α and M̃_{α,n} with B per node.
    Approx {
        sign: &'a FixedSign,
        /// The same polynomial for the fixed-width fast path (when its coefficients fit).
        wide: Option<&'a FixedSign<PolyWide>>,
        kernel: &'a SignKernel,
        ranges: &'a BTreeMap<NodeId, f64>,
    },
}

/// Per-node constants at F fraction bits.
#[derive(Debug, Clone)]
enum TPrep {
    Conv {
        wt: IntWeights,
        geo: ConvGeom,
    },
    Linear {
        wt: IntWeights,
        m: usize,
        k: usize,
    },
    Bn {
        /// ⌊S·2^(F+40)⌋ per channel.
        s: Vec<Integer>,
        s_mag: Vec<f64>,
        /// Bound of |S − s·2^−(F+40)|.
        ds: Vec<f64>,
        /// ⌊T·2^F⌋ per channel.
        t: Vec<Integer>,
        /// Bound of |T − t·2^−F|.
        dt: Vec<f64>,
    },
    Constant {
        c: Vec<Integer>,
        err: f64,
    },
    /// ⌊min·2^F⌋ and ⌊max·2^F⌋ (`None` for an infinite bound), with their error bound.
    Clip {
        lo: Option<Integer>,
        hi: Option<Integer>,
        err: f64,
    },
    /// Elementwise x·c (`div` false) or x/c (`div` true) by exact dyadic constants c.
    Scale {
        c: Vec<(Integer, i32)>,
        cabs: Vec<f64>,
        div: bool,
    },
    Other,
}

use super::block::node_unsupported as node_err;

fn constant_fixed(vals: impl Iterator<Item = f64>, f: Frac) -> (Vec<Integer>, f64) {
    let mut exact = true;
    let c = vals
        .map(|v| {
            let (m, ex) = f64_to_fixed(v, f).unwrap_or((Integer::new(), false));
            exact &= ex;
            m
        })
        .collect();
    (c, if exact { 0.0 } else { f.ulp() })
}

fn prepare(net: &Network, id: NodeId, op: &Op, f: Frac) -> Result<TPrep, BoundsError> {
    Ok(match op {
        Op::Conv(c) => {
            let d = &c.weight.dims;
            TPrep::Conv {
                wt: IntWeights::new(&c.weight.data, c.bias.as_deref(), f),
                geo: ConvGeom {
                    dims: [
                        d.first().copied().unwrap_or(0),
                        d.get(1).copied().unwrap_or(0),
                        d.get(2).copied().unwrap_or(1),
                        d.get(3).copied().unwrap_or(1),
                    ],
                    strides: c.strides,
                    pads: c.pads,
                    dil: c.dilations,
                    groups: c.groups.max(1),
                },
            }
        }
        Op::Gemm(l) | Op::MatMul(l) => TPrep::Linear {
            wt: IntWeights::new(&l.weight.data, l.bias.as_deref(), f),
            m: l.weight.dims.first().copied().unwrap_or(0),
            k: l.weight.dims.get(1).copied().unwrap_or(0),
        },
        Op::BatchNorm(b) => {
            // S = γ/√(σ² + ε) and T = β − μ·S at P = F + 80 bits (round to nearest): the
            // relative error of S is ≤ 2^−(P−2) (σ² + ε exact as a rational, then one
            // rounding for the conversion, the square root and the quotient), and that of
            // T's evaluation adds ≤ (|μ||S| + |β|)·2^−(P−4).
            let p = f.0 + 80;
            let gs = Frac(f.0 + 40);
            let (mut s, mut s_mag, mut ds, mut t, mut dt) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
            let rel = super::fixed::pow2(-i32::try_from(p - 4).unwrap_or(1022).min(1022));
            for (((gm, be), mu), var) in b.gamma.iter().zip(&b.beta).zip(&b.mean).zip(&b.var) {
                let q = |x: f32| Rational::from_f32(x);
                let (Some(gq), Some(bq), Some(mq), Some(vq), Some(eq)) =
                    (q(*gm), q(*be), q(*mu), q(*var), q(b.eps))
                else {
                    return Err(node_err(net, id, "non-finite batch-norm parameter"));
                };
                let v = vq + eq;
                if v <= 0 {
                    return Err(node_err(
                        net,
                        id,
                        format!("var + eps = {} is not positive", v.to_f64()),
                    ));
                }
                let sq = Float::with_val(p, &v).sqrt();
                let sf = Float::with_val(p, &gq) / &sq;
                let tf = Float::with_val(p, &bq) - Float::with_val(p, &mq * &sf);
                let (Some(sr), Some(tr)) = (sf.to_rational(), tf.to_rational()) else {
                    return Err(node_err(net, id, "batch-norm scale is not finite"));
                };
                let (si, _) = rat_to_fixed(&sr, gs);
                let (ti, _) = rat_to_fixed(&tr, f);
                let smag = sr.to_f64().abs().up();
                s_mag.push(smag);
                ds.push(add_ru(mul_ru(smag, rel), gs.ulp()));
                let tmag = add_ru(mul_ru(mq.to_f64().abs().up(), smag), bq.to_f64().abs().up());
                dt.push(add_ru(mul_ru(tmag, rel), f.ulp()));
                s.push(si);
                t.push(ti);
            }
            TPrep::Bn {
                s,
                s_mag,
                ds,
                t,
                dt,
            }
        }
        Op::Add { constant: Some(c) } => {
            let (c, err) = constant_fixed(c.data.iter().map(|&v| f64::from(v)), f);
            TPrep::Constant { c, err }
        }
        Op::Pad(p) => {
            let (c, err) = constant_fixed(std::iter::once(f64::from(p.value)), f);
            TPrep::Constant { c, err }
        }
        Op::Clip { min, max } => {
            let bound = |v: f32| {
                v.is_finite()
                    .then(|| f64_to_fixed(f64::from(v), f))
                    .flatten()
            };
            let (lo, hi) = (bound(*min), bound(*max));
            let exact = [&lo, &hi].iter().all(|b| b.as_ref().is_none_or(|x| x.1));
            TPrep::Clip {
                lo: lo.map(|x| x.0),
                hi: hi.map(|x| x.0),
                err: if exact { 0.0 } else { f.ulp() },
            }
        }
        Op::Mul { constant } | Op::Div { constant } => {
            let div = matches!(op, Op::Div { .. });
            let c = constant
                .data
                .iter()
                .map(|&v| {
                    dyadic_of_f64(f64::from(v))
                        .filter(|d| !(div && d.0.is_zero()))
                        .ok_or_else(|| {
                            node_err(
                                net,
                                id,
                                format!("constant {v} is not a finite (non-zero) factor"),
                            )
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            TPrep::Scale {
                c,
                cabs: constant.data.iter().map(|&v| f64::from(v).abs()).collect(),
                div,
            }
        }
        Op::Softmax { .. } => {
            return Err(node_err(
                net,
                id,
                "softmax is not supported by the trajectory certificate (certify the logits)",
            ))
        }
        _ => TPrep::Other,
    })
}

/// A network prepared for the trajectory certificate at F fraction bits.
#[derive(Debug, Clone)]
pub struct TrajectoryNetwork {
    net: Arc<Network>,
    f: Frac,
    preps: Vec<TPrep>,
    last_use: Vec<Option<NodeId>>,
    /// Whether the fixed-width fast path of the dot products is tried (same results).
    fast: bool,
    /// Whether the radii of F (`Mode::Exact`) are independent of the midpoints: every op
    /// propagates radii from radii alone (no batch norm, no exact ReLU), so
    /// [`Self::exact_radii`] gives them without the midpoint arithmetic.
    radii_only: bool,
}

/// Whether F's radius rule for `op` ignores the midpoints (see [`TrajectoryNetwork`]):
/// linear maps (|W|·ρ), Clip (ρ + the bounds' error), max / mean pooling, sums, scalings
/// and index moves do; batch normalisation (|m|·δS) and ReLU (ρ dropped when m ≤ −ρ) do not.
fn radius_ignores_midpoints(op: &Op) -> bool {
    matches!(
        op,
        Op::Conv(_)
            | Op::Gemm(_)
            | Op::MatMul(_)
            | Op::Clip { .. }
            | Op::MaxPool(_)
            | Op::AvgPool { .. }
            | Op::GlobalAvgPool
            | Op::Add { .. }
            | Op::Mul { .. }
            | Op::Div { .. }
            | Op::Flatten
            | Op::Reshape
            | Op::Identity
            | Op::Slice(_)
            | Op::Pad(_)
            | Op::Concat { .. }
    )
}

impl TrajectoryNetwork {
    /// Prepare `net` at `f` fraction bits.
    ///
    /// # Errors
    /// [`BoundsError::Unsupported`] for softmax or an invalid batch norm.
    pub fn new(net: Arc<Network>, f: Frac) -> Result<Self, BoundsError> {
        let preps = net
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| prepare(&net, i, &n.op, f))
            .collect::<Result<Vec<_>, _>>()?;
        let mut last_use = vec![None; net.values.len()];
        for (i, n) in net.nodes.iter().enumerate() {
            for &v in &n.inputs {
                if let Some(l) = last_use.get_mut(v) {
                    *l = Some(i);
                }
            }
        }
        let radii_only = net.nodes.iter().all(|n| radius_ignores_midpoints(&n.op));
        Ok(Self {
            net,
            f,
            preps,
            last_use,
            fast: true,
            radii_only,
        })
    }

    /// The radii of F(x)'s output balls (`Mode::Exact`) without the midpoint arithmetic,
    /// bit-identical to those of [`Self::run`], or `None` when this network's radii depend
    /// on the midpoints (see [`TrajectoryNetwork`]'s `radii_only`). Linear layers run their
    /// radius loop alone; every other op runs as in F on zero midpoints, and its radius
    /// rule does not read them.
    ///
    /// # Errors
    /// As [`Self::run`].
    pub(crate) fn exact_radii(&self, x: &[f64]) -> Result<Option<Vec<f64>>, BoundsError> {
        if !self.radii_only {
            return Ok(None);
        }
        let (o, _) = self.run_inner(x, Mode::Exact, None, true)?;
        Ok(Some(o.rad))
    }

    /// The same network with the fixed-width fast path of the dot products on or off (the
    /// results are bit-identical either way; off is the GMP reference path).
    #[cfg(test)]
    pub(crate) fn with_fast(mut self, fast: bool) -> Self {
        self.fast = fast;
        self
    }

    /// The fraction bits F.
    pub fn frac(&self) -> Frac {
        self.f
    }

    /// The network.
    pub fn network(&self) -> &Network {
        &self.net
    }

    /// Evaluate F (`Mode::Exact`) or F^α on balls from the exact input x; returns the output
    /// balls and the number of activation inputs whose ball leaves [−B, B] (F^α only).
    pub(crate) fn run(&self, x: &[f64], mode: Mode<'_>) -> Result<(BallT, usize), BoundsError> {
        self.run_recording(x, mode, None)
    }

    /// [`Self::run`] that also records, when `rec` is given, the input ball of every ReLU of
    /// F^α as outward f64 intervals (the noise margin's nominal trajectory, `super::margin`).
    pub(crate) fn run_recording(
        &self,
        x: &[f64],
        mode: Mode<'_>,
        rec: Option<&mut SiteBalls>,
    ) -> Result<(BallT, usize), BoundsError> {
        self.run_inner(x, mode, rec, false)
    }

    /// [`Self::run_recording`]; with `radii_only` (F on a network whose radii ignore the
    /// midpoints, [`Self::exact_radii`]) the linear layers skip their midpoints (all 0).
    #[expect(clippy::too_many_lines, reason = "one arm per op")]
    fn run_inner(
        &self,
        x: &[f64],
        mode: Mode<'_>,
        mut rec: Option<&mut SiteBalls>,
        radii_only: bool,
    ) -> Result<(BallT, usize), BoundsError> {
        let net = &*self.net;
        let f = self.f;
        let ulp = f.ulp();
        let n_in = net.input_shape().numel();
        if x.len() != n_in {
            return Err(BoundsError::Size {
                what: "input".into(),
                got: x.len(),
                expected: n_in,
            });
        }
        let mut input = BallT::default();
        for &v in x {
            let (m, exact) = f64_to_fixed(v, f).ok_or_else(|| BoundsError::Config {
                what: "input value".into(),
                value: v.to_string(),
                valid: "a finite number".into(),
            })?;
            input.mid.push(if radii_only { Integer::new() } else { m });
            input.rad.push(if exact { 0.0 } else { ulp });
        }
        let mut vals: Vec<Option<BallT>> = vec![None; net.values.len()];
        if let Some(s) = vals.get_mut(net.input) {
            *s = Some(input);
        }
        let mut oor = 0usize;
        for (i, (node, prep)) in net.nodes.iter().zip(&self.preps).enumerate() {
            let get = |v: usize| {
                vals.get(v)
                    .and_then(Option::as_ref)
                    .ok_or_else(|| node_err(net, i, "input value not computed"))
            };
            let in0 = node.inputs.first().copied().unwrap_or(usize::MAX);
            let a = get(in0)?;
            let s_in = net.shape(in0);
            let s_out = net.shape(node.output);
            let chw = s_in.chw().unwrap_or((0, 0, 0));
            let out_hw = s_out.chw().map_or((0, 0), |(_, h, w)| (h, w));
            let out = match (&node.op, prep) {
                (Op::Conv(_), TPrep::Conv { wt, geo }) => {
                    if radii_only {
                        conv_radii(a, chw, wt, geo, out_hw, ulp)
                    } else {
                        conv(a, chw, wt, geo, out_hw, ulp, self.fast)
                    }
                }
                (Op::Gemm(_) | Op::MatMul(_), TPrep::Linear { wt, m, k }) => {
                    if radii_only {
                        linear_radii(a, wt, *m, *k, ulp)
                    } else {
                        linear(a, wt, *m, *k, ulp, self.fast)
                    }
                }
                (
                    Op::BatchNorm(_),
                    TPrep::Bn {
                        s,
                        s_mag,
                        ds,
                        t,
                        dt,
                    },
                ) => {
                    let plane = chw.1 * chw.2;
                    let gs = f.0 + 40;
                    let mut o = BallT::default();
                    for (j, (m, r)) in a.mid.iter().zip(&a.rad).enumerate() {
                        let c = j / plane.max(1);
                        let (Some(sc), Some(sm), Some(dsc), Some(tc), Some(dtc)) =
                            (s.get(c), s_mag.get(c), ds.get(c), t.get(c), dt.get(c))
                        else {
                            return Err(node_err(net, i, "channel count mismatch"));
                        };
                        let mut y = Integer::from(m * sc);
                        y >>= gs;
                        y += tc;
                        // |S·ξ + T − ŷ| ≤ |S|ρ + |m|·δS + ulp + δT.
                        let rad = add_ru(
                            add_ru(mul_ru(*sm, *r), mul_ru(fixed_mag(m, f), *dsc)),
                            add_ru(ulp, *dtc),
                        );
                        o.mid.push(y);
                        o.rad.push(rad);
                    }
                    o
                }
                (Op::Relu, _) => match mode {
                    Mode::Exact => {
                        let mut o = a.clone();
                        for (m, r) in o.mid.iter_mut().zip(o.rad.iter_mut()) {
                            if m.is_negative() {
                                if fixed_mig(m, f) >= *r {
                                    *r = 0.0;
                                }
                                *m = Integer::new();
                            }
                        }
                        o
                    }
                    Mode::Approx {
                        sign, wide, ranges, ..
                    } => {
                        let b = range_of(net, ranges, i)?;
                        let bd = dyadic_of_f64(b).ok_or_else(|| range_err(net, i, b))?;
                        if let Some(r) = rec.as_deref_mut() {
                            r.insert(i, SiteRec::new(sign, wide, a, &bd, f));
                        }
                        let mut o = BallT::default();
                        for (m, r) in a.mid.iter().zip(&a.rad) {
                            oor += usize::from(add_ru(fixed_mag(m, f), *r) > b);
                            let (y, rad) = relu_ball(sign, wide, m, *r, b, &bd, f);
                            o.mid.push(y);
                            o.rad.push(rad);
                        }
                        o
                    }
                },
                (Op::MaxPool(p), _) => {
                    let mut wins: Vec<Vec<usize>> = Vec::new();
                    crate::nn::ops::for_pool_windows(chw, p, out_hw, |_, w| wins.push(w.to_vec()));
                    let mut o = BallT::default();
                    match mode {
                        Mode::Exact => {
                            for w in &wins {
                                let mut best: Option<&Integer> = None;
                                let mut rmax = 0.0f64;
                                for &j in w {
                                    if let (Some(m), Some(r)) = (a.mid.get(j), a.rad.get(j)) {
                                        if best.is_none_or(|bm| m > bm) {
                                            best = Some(m);
                                        }
                                        rmax = rmax.max(*r);
                                    }
                                }
                                o.mid.push(best.cloned().unwrap_or_default());
                                o.rad.push(rmax);
                            }
                        }
                        Mode::Approx {
                            sign,
                            kernel,
                            ranges,
                            ..
                        } => {
                            let b = range_of(net, ranges, i)?;
                            // For the noise margin: per pairwise maximum (windows in
                            // order, post-order in each), the ball of d = a − b and the chain
                            // at d̂ (range 1: d is already normalised).
                            let mut pool_rec = rec.is_some().then(SiteRec::default);
                            for w in &wins {
                                let bp = kernel.b_prime(b, w.len());
                                let bpd = dyadic_of_f64(bp).ok_or_else(|| range_err(net, i, bp))?;
                                let mut ys = Vec::with_capacity(w.len());
                                for &j in w {
                                    let (Some(m), Some(r)) = (a.mid.get(j), a.rad.get(j)) else {
                                        continue;
                                    };
                                    oor += usize::from(add_ru(fixed_mag(m, f), *r) > b);
                                    // y = x/B′ + ½: floor error < ulp.
                                    let mut y = div_dyadic_floor(m, &bpd);
                                    y += Integer::from(1) << (f.0 - 1);
                                    ys.push((y, add_ru(div_ru(*r, bp), ulp)));
                                }
                                let (mm, mr) = match pool_rec.as_mut() {
                                    Some(pr) => max_tree_with(sign, &ys, f, &mut |d, rd| {
                                        pr.x.push(ball_interval(d, rd, f));
                                        let ch = sign.chain_points(ChainBall {
                                            mid: d.clone(),
                                            rho: ulp,
                                            e: ulp,
                                        });
                                        pr.stride = ch.len();
                                        pr.chain.extend(ch);
                                    }),
                                    None => max_tree(sign, &ys, f),
                                };
                                // B′·(M − ½).
                                let mut z = mm;
                                z -= Integer::from(1) << (f.0 - 1);
                                o.mid.push(mul_dyadic_floor(&z, &bpd));
                                o.rad.push(add_ru(mul_ru(mr, bp), ulp));
                            }
                            if let (Some(r), Some(pr)) = (rec.as_deref_mut(), pool_rec) {
                                r.insert(i, pr);
                            }
                        }
                    }
                    o
                }
                (
                    Op::AvgPool {
                        pool,
                        count_include_pad,
                    },
                    _,
                ) => {
                    let mut o = BallT::default();
                    crate::nn::ops::for_pool_windows(chw, pool, out_hw, |_, w| {
                        let n = if *count_include_pad {
                            pool.kernel[0] * pool.kernel[1]
                        } else {
                            w.len()
                        }
                        .max(1);
                        let (m, r) = mean_of(a, w.iter().copied(), n, ulp);
                        o.mid.push(m);
                        o.rad.push(r);
                    });
                    o
                }
                (Op::GlobalAvgPool, _) => {
                    let plane = (chw.1 * chw.2).max(1);
                    let mut o = BallT::default();
                    for c in 0..chw.0 {
                        let (m, r) = mean_of(a, c * plane..(c + 1) * plane, plane, ulp);
                        o.mid.push(m);
                        o.rad.push(r);
                    }
                    o
                }
                (Op::Add { constant: None }, _) => {
                    let b = get(node.inputs.get(1).copied().unwrap_or(usize::MAX))?;
                    BallT {
                        mid: a
                            .mid
                            .iter()
                            .zip(&b.mid)
                            .map(|(p, q)| Integer::from(p + q))
                            .collect(),
                        rad: a
                            .rad
                            .iter()
                            .zip(&b.rad)
                            .map(|(p, q)| add_ru(*p, *q))
                            .collect(),
                    }
                }
                (Op::Add { constant: Some(_) }, TPrep::Constant { c, err }) => BallT {
                    mid: a
                        .mid
                        .iter()
                        .zip(c)
                        .map(|(p, q)| Integer::from(p + q))
                        .collect(),
                    rad: a.rad.iter().map(|r| add_ru(*r, *err)).collect(),
                },
                (Op::Clip { min, max }, TPrep::Clip { lo, hi, err }) => {
                    let approx = match mode {
                        Mode::Exact => None,
                        Mode::Approx {
                            sign, wide, ranges, ..
                        } => clip_ranges(net, i, (*min, *max), ranges)?.map(|s| (sign, wide, s)),
                    };
                    match approx {
                        None => clip_exact(a, lo.as_ref(), hi.as_ref(), *err),
                        Some((sign, wide, (b_lo, b_hi))) => {
                            let sides = [(lo.as_ref(), b_lo), (hi.as_ref(), b_hi)];
                            let mut ds = Vec::with_capacity(2);
                            for (c, b) in sides {
                                ds.push(match (c, b) {
                                    (Some(c), Some(b)) => Some((
                                        c,
                                        b,
                                        dyadic_of_f64(b).ok_or_else(|| range_err(net, i, b))?,
                                    )),
                                    _ => None,
                                });
                            }
                            // The same sides for the fixed-width path (when every bound fits).
                            let wsides: Option<Vec<ClipSide<PolyWide>>> = wide.and_then(|_| {
                                ds.iter()
                                    .map(|d| match d {
                                        Some((c, b, bd)) => {
                                            Some(Some((PolyWide::from_integer(c)?, *b, bd.clone())))
                                        }
                                        None => Some(None),
                                    })
                                    .collect()
                            });
                            let mut o = BallT::default();
                            for (m, r) in a.mid.iter().zip(&a.rad) {
                                if let (Some(ws), Some(sd)) = (wide, wsides.as_deref()) {
                                    if let Some((y, rad, n)) =
                                        clip_entry_wide(ws, m, *r, sd, *err, f)
                                    {
                                        oor += n;
                                        o.mid.push(y);
                                        o.rad.push(rad);
                                        continue;
                                    }
                                }
                                // min + r̃_{B_lo}(x − min) − r̃_{B_hi}(x − max), as the engine
                                // (an absent side: x, resp. 0); radii add (triangle inequality).
                                let (mut y, mut rad) = (m.clone(), *r);
                                for (k, d) in ds.iter().enumerate() {
                                    let Some((c, b, bd)) = d else { continue };
                                    let u = Integer::from(m - *c);
                                    let ru = add_ru(*r, *err);
                                    oor += usize::from(add_ru(fixed_mag(&u, f), ru) > *b);
                                    let (t, rt) = relu_ball(sign, wide, &u, ru, *b, bd, f);
                                    if k == 0 {
                                        y = t + *c;
                                        rad = add_ru(rt, *err);
                                    } else {
                                        y -= t;
                                        rad = add_ru(rad, rt);
                                    }
                                }
                                o.mid.push(y);
                                o.rad.push(rad);
                            }
                            o
                        }
                    }
                }
                (Op::Mul { .. } | Op::Div { .. }, TPrep::Scale { c, cabs, div }) => {
                    let mut o = BallT::default();
                    for ((m, r), (cd, ca)) in a.mid.iter().zip(&a.rad).zip(c.iter().zip(cabs)) {
                        // ⌊M·c⌋ or ⌊M/c⌋ (error < ulp); radius |c|·ρ or ρ/|c|, rounded up.
                        if *div {
                            let q = if cd.0.is_negative() {
                                div_dyadic_floor(&Integer::from(-m), &(Integer::from(-&cd.0), cd.1))
                            } else {
                                div_dyadic_floor(m, cd)
                            };
                            o.mid.push(q);
                            o.rad.push(add_ru(div_ru(*r, *ca), ulp));
                        } else {
                            o.mid.push(mul_dyadic_floor(m, cd));
                            o.rad.push(add_ru(mul_ru(*r, *ca), ulp));
                        }
                    }
                    o
                }
                (Op::Flatten | Op::Reshape | Op::Identity, _) => a.clone(),
                (Op::Slice(s), _) => {
                    let idx = index_map(a.mid.len(), |v| {
                        crate::nn::ops::slice(v, s_in, &s.starts, &s.steps, s_out)
                    });
                    gather(a, &idx, None)
                }
                (Op::Pad(p), TPrep::Constant { c, err }) => {
                    let idx = index_map(a.mid.len(), |v| {
                        crate::nn::ops::pad(v, s_in, &p.begin, -1.0, s_out)
                    });
                    gather(a, &idx, c.first().map(|v| (v, *err)))
                }
                (Op::Concat { axis }, _) => {
                    let mut all = BallT::default();
                    let mut parts: Vec<(Vec<f64>, &crate::nn::Shape)> = Vec::new();
                    for &v in &node.inputs {
                        let t = get(v)?;
                        let off = all.mid.len();
                        parts.push((
                            (0..t.mid.len()).map(|k| (off + k) as f64).collect(),
                            net.shape(v),
                        ));
                        all.mid.extend(t.mid.iter().cloned());
                        all.rad.extend(t.rad.iter().copied());
                    }
                    let refs: Vec<(&[f64], &crate::nn::Shape)> =
                        parts.iter().map(|(v, s)| (v.as_slice(), *s)).collect();
                    let idx = crate::nn::ops::concat(&refs, *axis, s_out);
                    gather(&all, &idx, None)
                }
                (op, _) => {
                    return Err(node_err(
                        net,
                        i,
                        format!(
                            "{} is not supported by the trajectory certificate",
                            op.op_type()
                        ),
                    ))
                }
            };
            for &v in &node.inputs {
                if v != net.output && self.last_use.get(v).copied().flatten() == Some(i) {
                    if let Some(slot) = vals.get_mut(v) {
                        *slot = None;
                    }
                }
            }
            if let Some(slot) = vals.get_mut(node.output) {
                *slot = Some(out);
            }
        }
        let out = vals
            .get_mut(net.output)
            .and_then(Option::take)
            .ok_or_else(|| node_err(net, 0, "graph output not computed"))?;
        Ok((out, oor))
    }
}

fn range_of(net: &Network, ranges: &BTreeMap<NodeId, f64>, id: NodeId) -> Result<f64, BoundsError> {
    match ranges.get(&id) {
        Some(&b) if b.is_finite() && b > 0.0 => Ok(b),
        other => Err(range_err(net, id, other.copied().unwrap_or(f64::NAN))),
    }
}

fn range_err(net: &Network, id: NodeId, b: f64) -> BoundsError {
    BoundsError::Range {
        node: net
            .nodes
            .get(id)
            .map(|n| n.name.clone())
            .unwrap_or_default(),
        index: id,
        value: b.to_string(),
    }
}

/// The ranges B of a Clip node's two shifted ReLUs in F^α, as the engine: `None` when
/// `ranges` holds none of its keys (the Clip stays exact), else B_lo (key `id`, finite min)
/// and B_hi (key [`clip_upper_key`], finite max).
///
/// # Errors
/// [`BoundsError::Range`] when only some keys are present or a B is not finite and > 0.
#[expect(clippy::type_complexity, reason = "the two optional sides")]
fn clip_ranges(
    net: &Network,
    id: NodeId,
    (min, max): (f32, f32),
    ranges: &BTreeMap<NodeId, f64>,
) -> Result<Option<(Option<f64>, Option<f64>)>, BoundsError> {
    let want = [(min, id), (max, clip_upper_key(id))];
    let got: Vec<Option<f64>> = want
        .iter()
        .map(|(v, k)| v.is_finite().then(|| ranges.get(k).copied()).flatten())
        .collect();
    let needed = want.iter().filter(|(v, _)| v.is_finite()).count();
    let present = got.iter().flatten().count();
    if present == 0 {
        return Ok(None);
    }
    if present < needed {
        return Err(range_err(net, id, f64::NAN));
    }
    for b in got.iter().flatten() {
        range_of(net, &BTreeMap::from([(id, *b)]), id)?;
    }
    Ok(Some((
        got.first().copied().flatten(),
        got.get(1).copied().flatten(),
    )))
}

/// One side of F^α's Clip: the bound c (min or max at F bits), its range B and B as an
/// exact dyadic; `None` for an infinite bound.
type ClipSide<M> = Option<(M, f64, (Integer, i32))>;

/// One entry of F^α's Clip, min + r̃_{B_lo}(x − min) − r̃_{B_hi}(x − max), entirely on the
/// fixed-width path: the same operations in the same order as the GMP loop of
/// [`TrajectoryNetwork::run_recording`] (differences of midpoints are exact, r̃_α is
/// [`relu_approx`]'s fast path, which is bit-identical to GMP where it returns a ball, and
/// the magnitudes are the same binary64 bounds), so the same ball and out-of-range count;
/// `None` when a value does not fit (the caller then runs the GMP loop).
fn clip_entry_wide(
    ws: &FixedSign<PolyWide>,
    m: &Integer,
    r: f64,
    sides: &[ClipSide<PolyWide>],
    err: f64,
    f: Frac,
) -> Option<(Integer, f64, usize)> {
    let mw = PolyWide::from_integer(m)?;
    let (mut y, mut rad, mut oor) = (mw, r, 0usize);
    for (k, d) in sides.iter().enumerate() {
        let Some((c, b, bd)) = d else { continue };
        let u = mw.checked_sub(c)?;
        let ru = add_ru(r, err);
        oor += usize::from(add_ru(u.mag(f), ru) > *b);
        let (t, rt) = relu_approx(ws, &u, ru, *b, bd, f)?;
        if k == 0 {
            y = t.checked_add(c)?;
            rad = add_ru(rt, err);
        } else {
            y = y.checked_sub(&t)?;
            rad = add_ru(rad, rt);
        }
    }
    Some((y.to_integer(), rad, oor))
}

/// Exact clip of the midpoints to [lo, hi] (1-Lipschitz: radius ρ + the bounds' error).
fn clip_exact(a: &BallT, lo: Option<&Integer>, hi: Option<&Integer>, err: f64) -> BallT {
    BallT {
        mid: a
            .mid
            .iter()
            .map(|m| match (lo, hi) {
                (Some(l), _) if m < l => l.clone(),
                (_, Some(h)) if m > h => h.clone(),
                _ => m.clone(),
            })
            .collect(),
        rad: a.rad.iter().map(|r| add_ru(*r, err)).collect(),
    }
}

/// Source index per output position, from an index-moving op applied to 0, 1, 2, … as f64
/// (exact below 2^53); negative entries mark fill values.
fn index_map(n: usize, f: impl FnOnce(&[f64]) -> Vec<f64>) -> Vec<f64> {
    let v: Vec<f64> = (0..n).map(|k| k as f64).collect();
    f(&v)
}

fn gather(a: &BallT, idx: &[f64], fill: Option<(&Integer, f64)>) -> BallT {
    let mut o = BallT::default();
    for &k in idx {
        let j = k as usize;
        match (k >= 0.0, a.mid.get(j), a.rad.get(j)) {
            (true, Some(m), Some(r)) => {
                o.mid.push(m.clone());
                o.rad.push(*r);
            }
            _ => {
                let (m, e) = fill.map_or((Integer::new(), 0.0), |(m, e)| (m.clone(), e));
                o.mid.push(m);
                o.rad.push(e);
            }
        }
    }
    o
}

/// Mean of the entries `idx` divided by n: ⌊Σm/n⌋ (error < ulp), radius Σρ/n rounded up.
fn mean_of(a: &BallT, idx: impl Iterator<Item = usize>, n: usize, ulp: f64) -> (Integer, f64) {
    let mut s = Integer::new();
    let mut r = 0.0f64;
    let mut cnt = 0usize;
    for j in idx {
        if let (Some(m), Some(rr)) = (a.mid.get(j), a.rad.get(j)) {
            s += m;
            r += rr;
            cnt += 1;
        }
    }
    let q = s.div_rem_floor(Integer::from(n)).0;
    let rad = add_ru(div_ru(dot_up(r, cnt), n as f64), ulp);
    (q, rad)
}

/// The trajectory certificate of one input at one α (see the module docs). Certified:
/// outward-rounded enclosures of the exact F(x) and F^α(x).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrajectoryBound {
    /// Precision parameter α.
    pub alpha: u32,
    /// Fraction bits F of the midpoints used for this result.
    pub frac_bits: u32,
    /// Certified lower bound of ‖F^α(x) − F(x)‖∞ (rounded down).
    pub lo: f64,
    /// Certified upper bound of ‖F^α(x) − F(x)‖∞ (rounded up).
    pub hi: f64,
    /// The class of F(x) when certified (its interval above every other class's).
    pub class_exact: Option<usize>,
    /// The class of F^α(x) when certified.
    pub class_approx: Option<usize>,
    /// Both classes certified and equal.
    pub unchanged: bool,
    /// Largest output radius of F(x) (rounded up).
    pub radius_exact: f64,
    /// Largest output radius of F^α(x) (rounded up).
    pub radius_approx: f64,
    /// Activation input entries of F^α whose ball leaves [−B, B] (the polynomial is still
    /// evaluated there; no hypothesis depends on this count).
    pub out_of_range: usize,
    /// Midpoints of F(x) rounded to binary64 (for comparison with other engines).
    pub exact_output: Vec<f64>,
    /// Midpoints of F^α(x) rounded to binary64.
    pub approx_output: Vec<f64>,
}

/// The certified top class of a ball vector: t with mid_t − mid_j > ρ_t + ρ_j for all j ≠ t.
fn certified_class(o: &BallT, f: Frac) -> Option<usize> {
    let mut t = 0usize;
    for (i, m) in o.mid.iter().enumerate() {
        if o.mid.get(t).is_some_and(|b| m > b) {
            t = i;
        }
    }
    let mt = o.mid.get(t)?;
    let rt = *o.rad.get(t)?;
    let ok = o.mid.iter().zip(&o.rad).enumerate().all(|(j, (mj, rj))| {
        j == t || {
            let d = Integer::from(mt - mj);
            !d.is_negative() && fixed_mig(&d, f) > add_ru(rt, *rj)
        }
    });
    ok.then_some(t)
}

fn max_of(v: &[f64]) -> f64 {
    v.iter().fold(
        0.0f64,
        |a, &b| if b.is_nan() { f64::INFINITY } else { a.max(b) },
    )
}

/// Combine the balls of F(x) and F^α(x) into the certificate.
pub(crate) fn combine(alpha: u32, f: Frac, ex: &BallT, ap: &BallT, oor: usize) -> TrajectoryBound {
    let (mut lo, mut hi) = (0.0f64, 0.0f64);
    for ((me, re), (ma, ra)) in ex.mid.iter().zip(&ex.rad).zip(ap.mid.iter().zip(&ap.rad)) {
        let d = Integer::from(ma - me);
        let r = add_ru(*re, *ra);
        lo = lo.max((fixed_mig(&d, f) - r).down().max(0.0));
        hi = hi.max(add_ru(fixed_mag(&d, f), r));
    }
    let class_exact = certified_class(ex, f);
    let class_approx = certified_class(ap, f);
    let mids = |o: &BallT| -> Vec<f64> {
        o.mid
            .iter()
            .map(|m| {
                let (a, b) = fixed_bounds(m, f);
                0.5 * a + 0.5 * b
            })
            .collect()
    };
    TrajectoryBound {
        alpha,
        frac_bits: f.0,
        lo,
        hi,
        unchanged: class_exact.is_some() && class_exact == class_approx,
        class_exact,
        class_approx,
        radius_exact: max_of(&ex.rad),
        radius_approx: max_of(&ap.rad),
        out_of_range: oor,
        exact_output: mids(ex),
        approx_output: mids(ap),
    }
}

/// One precision level: the network and the composite polynomials at F bits.
#[derive(Debug, Clone)]
struct Level {
    tn: TrajectoryNetwork,
    signs: Vec<FixedSign>,
    /// The same polynomials for the fixed-width fast path (`None` where one does not fit).
    wide: Vec<Option<FixedSign<PolyWide>>>,
}

/// The trajectory certifier of one network for several α (see the module docs): it picks
/// the precision per input among [`PRECISIONS`].
#[derive(Debug, Clone)]
pub struct TrajectoryCertifier {
    levels: Vec<Level>,
    alphas: Vec<u32>,
    kernels: Vec<SignKernel>,
    ranges: BTreeMap<NodeId, f64>,
    /// Whether a level's F run is skipped when its radii alone show that no α can use it
    /// ([`TrajectoryNetwork::exact_radii`]; the same certificates either way).
    radius_skip: bool,
}

impl TrajectoryCertifier {
    /// Prepare `net` for the certified polynomials `pes` (one per α) and B per activation
    /// node, at every precision of `precisions` (ascending; [`PRECISIONS`] by default).
    ///
    /// # Errors
    /// As [`TrajectoryNetwork::new`]; [`BoundsError::Certificate`] when a polynomial
    /// cannot be built; [`BoundsError::Config`] for an empty precision list.
    pub fn new(
        net: Arc<Network>,
        pes: &[PolyErrors],
        ranges: BTreeMap<NodeId, f64>,
        precisions: &[Frac],
    ) -> Result<Self, BoundsError> {
        if precisions.is_empty() || precisions.iter().any(|f| f.0 < 16) {
            return Err(BoundsError::Config {
                what: "trajectory precisions".into(),
                value: format!("{precisions:?}"),
                valid: "a non-empty ascending list of fraction bits ≥ 16".into(),
            });
        }
        let levels = precisions
            .iter()
            .map(|&f| {
                let signs: Vec<FixedSign> = pes
                    .iter()
                    .map(|pe| FixedSign::new(pe.components(), f))
                    .collect();
                Ok(Level {
                    tn: TrajectoryNetwork::new(Arc::clone(&net), f)?,
                    wide: signs.iter().map(FixedSign::to_wide).collect(),
                    signs,
                })
            })
            .collect::<Result<Vec<_>, BoundsError>>()?;
        Ok(Self {
            levels,
            alphas: pes.iter().map(PolyErrors::alpha).collect(),
            kernels: pes
                .iter()
                .map(PolyErrors::sign_kernel)
                .collect::<Result<_, _>>()?,
            ranges,
            radius_skip: true,
        })
    }

    /// The same certifier with the radius-only level skip on or off (the certificates are
    /// the same either way; off runs F at every level).
    #[cfg(test)]
    pub(crate) fn with_radius_skip(mut self, on: bool) -> Self {
        self.radius_skip = on;
        self
    }

    /// The certificate of one preprocessed input for every α: F is evaluated once per
    /// precision level and shared across α; an α moves to the next level while its result is
    /// not tight (radius_F + radius_Fα > 10^−6·lo, or a radius overflowed f64: the midpoints
    /// are exact integers, so a non-finite radius is the ball growth of a too-short F, e.g.
    /// through EfficientNet-Lite0's 49 convolutions at 128 bits, and a longer F can fix it;
    /// where F^α itself diverges far outside [−B, B] no F helps, and every level is tried).
    ///
    /// # Errors
    /// [`BoundsError::Size`] for a wrong input size; [`BoundsError::Range`] for a missing B;
    /// [`BoundsError::Unsupported`] for an op outside the supported set.
    pub fn certify(&self, x: &[f64]) -> Result<Vec<TrajectoryBound>, BoundsError> {
        self.certify_near(x, None)
    }

    /// [`Self::certify`] with the measured ‖F^α(x) − F(x)‖∞ of a binary64 engine per α
    /// (`measured[k]` for the k-th α) as a hint that skips hopeless F^α runs: at a level
    /// that is not the last, the k-th α's F^α run is skipped when the radius of F alone
    /// exceeds 10^−6·2·`measured[k]` (a positive finite value). Tightness needs radius ≤ 10^−6·lo and lo ≤ the true
    /// value, so a skip changes nothing unless the measured value is below half the true one;
    /// either way the result is the same certificate (a later, longer F), never a weaker claim.
    /// When F's radii ignore the midpoints ([`TrajectoryNetwork::exact_radii`]) and they
    /// alone skip every open α at a level, F itself is not run there (the same results).
    ///
    /// # Errors
    /// As [`Self::certify`].
    pub fn certify_near(
        &self,
        x: &[f64],
        measured: Option<&[f64]>,
    ) -> Result<Vec<TrajectoryBound>, BoundsError> {
        Ok(self
            .certify_near_recording(x, measured, false)?
            .into_iter()
            .map(|(tb, _)| tb)
            .collect())
    }

    /// [`Self::certify_near`]; with `record`, each α's result also carries the F^α run it
    /// came from with the input balls of its ReLUs (the [`Self::approx_sites`] of that α at
    /// the result's precision: the same run, hence the same balls bit for bit), so that the
    /// noise margin need not run F^α again. Runs at levels whose result is not kept record too
    /// (their records are dropped).
    ///
    /// # Errors
    /// As [`Self::certify`].
    pub fn certify_near_recording(
        &self,
        x: &[f64],
        measured: Option<&[f64]>,
        record: bool,
    ) -> Result<Vec<(TrajectoryBound, Option<ApproxRun>)>, BoundsError> {
        let mut done: Vec<Option<(TrajectoryBound, Option<ApproxRun>)>> =
            vec![None; self.alphas.len()];
        let nl = self.levels.len();
        for (li, lv) in self.levels.iter().enumerate() {
            if done.iter().all(Option::is_some) {
                break;
            }
            let f = lv.tn.frac();
            let last = li + 1 == nl;
            // The largest radius of F; a NaN radius counts as +∞ (`f64::max` would drop it).
            let max_rad = |rad: &[f64]| {
                rad.iter().fold(
                    0.0f64,
                    |a, &r| if r.is_nan() { f64::INFINITY } else { a.max(r) },
                )
            };
            // Whether the k-th α's F^α run at this level can be skipped: a non-finite radius
            // of F makes every α's radius non-finite, hence not tight, and a radius of F
            // above 10^−6·2·measured cannot be tight either (see above); the same results,
            // without the wasted runs.
            let skip = |k: usize, rex: f64| {
                !last
                    && (!rex.is_finite()
                        || measured
                            .and_then(|m| m.get(k))
                            .is_some_and(|&m| m.is_finite() && m > 0.0 && rex > TIGHT * 2.0 * m))
            };
            let open = |rex: f64| {
                done.iter()
                    .enumerate()
                    .any(|(k, s)| s.is_none() && !skip(k, rex))
            };
            // Where F's radii ignore the midpoints, they decide the skips alone: a level
            // whose every open α would be skipped needs no F run at all (same radii, bit
            // for bit, hence the same decisions; its balls would be discarded).
            if self.radius_skip && !last {
                if let Some(rad) = lv.tn.exact_radii(x)? {
                    if !open(max_rad(&rad)) {
                        continue;
                    }
                }
            }
            let (ex, _) = lv.tn.run(x, Mode::Exact)?;
            let rex = max_rad(&ex.rad);
            for (k, slot) in done.iter_mut().enumerate() {
                if slot.is_some() || skip(k, rex) {
                    continue;
                }
                let (Some(sign), Some(kernel), Some(&alpha)) =
                    (lv.signs.get(k), self.kernels.get(k), self.alphas.get(k))
                else {
                    continue;
                };
                let mut sites = record.then(SiteBalls::new);
                let (ap, oor) = lv.tn.run_recording(
                    x,
                    Mode::Approx {
                        sign,
                        wide: lv.wide.get(k).and_then(Option::as_ref),
                        kernel,
                        ranges: &self.ranges,
                    },
                    sites.as_mut(),
                )?;
                let tb = combine(alpha, f, &ex, &ap, oor);
                let r = add_ru(tb.radius_exact, tb.radius_approx);
                let tight = r <= TIGHT * tb.lo;
                if tight || li + 1 == nl {
                    let run = sites.map(|sites| ApproxRun {
                        frac: f,
                        out: ap,
                        sites,
                    });
                    *slot = Some((tb, run));
                }
            }
        }
        Ok(done.into_iter().flatten().collect())
    }

    /// F^α(x) for the k-th α at `f` fraction bits (one of the prepared precisions) with the
    /// input balls of its ReLUs (see [`TrajectoryNetwork::run_recording`]).
    ///
    /// # Errors
    /// As [`Self::certify`]; [`BoundsError::Config`] for an unprepared precision or α index.
    pub(crate) fn approx_sites(
        &self,
        x: &[f64],
        k: usize,
        f: Frac,
    ) -> Result<(BallT, SiteBalls), BoundsError> {
        let lv = self.levels.iter().find(|l| l.tn.frac() == f);
        let (Some(lv), Some(kernel)) = (lv, self.kernels.get(k)) else {
            return Err(BoundsError::Config {
                what: "trajectory level".into(),
                value: format!("alpha #{k} at {} fraction bits", f.0),
                valid: "a prepared α and precision".into(),
            });
        };
        let sign = lv.signs.get(k).ok_or_else(|| BoundsError::Config {
            what: "trajectory level".into(),
            value: format!("alpha #{k}"),
            valid: "a prepared α".into(),
        })?;
        let mut sites = SiteBalls::new();
        let mode = Mode::Approx {
            sign,
            wide: lv.wide.get(k).and_then(Option::as_ref),
            kernel,
            ranges: &self.ranges,
        };
        let (out, _) = lv.tn.run_recording(x, mode, Some(&mut sites))?;
        Ok((out, sites))
    }

    /// The α values, in order.
    pub fn alphas(&self) -> &[u32] {
        &self.alphas
    }

    /// The f64 kernel of the k-th α (B′ of a max-pool window, as the certificate).
    pub(crate) fn pool_kernel(&self, k: usize) -> Option<&SignKernel> {
        self.kernels.get(k)
    }
}
