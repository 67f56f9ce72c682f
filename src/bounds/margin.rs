//! The certified noise margin η of one input (issue 13, part 2; beyond the paper): the
//! largest relative perturbation of the activation inputs of F^α under which its class
//! provably stays the certified class c.
//!
//! # The math object
//! Let z_a be the input of the a-th ReLU site of F^α (replaced by r̃_α, Eq. 4, with range B_a)
//! on the exact trajectory of x. CKKS adds noise to every value; we model it as a
//! perturbation e_a of each site input, |e_{a,i}| ≤ η·B_a, and write Δ_v = (perturbed −
//! nominal) at every value v of the graph (exact reals). Then, exactly:
//!
//! - linear ops (conv, batch norm, Gemm, pooling by averages, slices, pads, sums): Δ_out =
//!   W·Δ_in (biases cancel);
//! - a site: Δ_out = r̃_α(z + Δ_in + e) − r̃_α(z) = S ∘ (Δ_in + e) with S_i = r̃_α′(ξ_i) at some
//!   ξ_i between z_i and z_i + Δ_in,i + e_i (mean-value theorem), so S_i lies in the enclosure
//!   S_i ⊆ r̃_α′([m_i − ρ_i − R_i − η·B, m_i + ρ_i + R_i + η·B]), where ⟨m_i, ρ_i⟩ is the
//!   certified trajectory ball of z_i ([`super::TrajectoryCertifier`]) and R_i ≥ |Δ_in,i|;
//!   r̃_α′(ξ) = (1 + p(u) + u·p′(u))/2 with u = ξ/B, enclosed by interval arithmetic on the
//!   exact certificate coefficients (chain rule through every component, each component
//!   enclosed naively and in centred form, intersected). r̃_α is not monotone near 0 and its
//!   slope reaches ±14 at α = 14: nothing here assumes a Lipschitz constant.
//!
//! **Forward boxes.** R ← |W|·R through linear ops, R ← mag(S)·(R + η·B) at a site, from
//! R = 0 at the network input; a site input with back-substituted rows (`margin_rows`)
//! takes the smaller of R and the rows' bound before its slopes are enclosed. At the output y of every conv–[BN]–site–conv chain (the main
//! branch of a residual block) R_y is the smaller of that |W| box and the relational box of
//! `margin_rel`: |M̂|·R_x + |W₂|·v with M = W₂·diag(s·Σ₁)·W₁ the chain's linearisation at the
//! trajectory's point slopes s, back-substituted to the chain's input x (the slope variation
//! and the noise in v, module docs there).
//!
//! **Back-substitution** (`margin_lin`). Split each slope as S = s_ref + δ with s_ref a
//! point slope fixed once per input (the midpoint of the slope enclosure on the trajectory
//! ball), |δ| ≤ mag(S − s_ref), so Δ_out = s_ref ∘ (Δ_in + e) + δ ∘ (Δ_in + e) with
//! |δ ∘ (Δ_in + e)| ≤ mag(S − s_ref)·w, w = R + η·B. For each class j ≠ c the change of
//! the margin y_c − y_j is Δm_j = λ_outᵀΔ_out with λ_out = e_c − e_j; going backward,
//! λ ← Wᵀλ through linear ops (fan-outs and residual sums add their coefficients) and at a
//! site λ_outᵀΔ_out = λ_inᵀΔ_in + λ_inᵀe + λ_outᵀ(δ ∘ (Δ_in + e)) with
//! λ_in = λ_out ∘ s_ref, a point vector (the linearisation at the trajectory, kept with a
//! rigorous rounding radius). Δ = 0 at the network input, so
//!
//!   |Δm_j| ≤ D_j(η) = η·K_j + E_j(η),
//!   K_j = Σ_sites B_a·Σ_i mag(λ_{a,in,i}),   E_j = Σ_sites Σ_i mag(λ_{a,out,i})·mag(S_i − s_ref,i)·w_i.
//!
//! λ and K_j do not depend on η: they are computed once per input, and each tested η costs
//! the forward boxes and one dot product per class and site.
//! η·K_j is the first-order drop (attained, to first order, by e = −η·B·sign(λ_in)); E_j is
//! the remainder from the variation of r̃_α′ over the boxes. Carrying λ as an interval vector
//! instead (λ ← λ·S) is also sound but useless on deep networks: any relative width of S
//! (even the ~10^−8 of the f64 Taylor coefficients) is amplified by the |Wᵀ| products
//! (~10^20 on ResNet-20), whereas here the widths enter E_j once, at their own site.
//!
//! The class stays c for every admissible e when lower(y_c − y_j) > D_j(η) for all j ≠ c,
//! with lower(y_c − y_j) from the certified output balls of F^α(x).
//!
//! **What limits η.** With |W| boxes alone, R grows by the |W| products (×3–6 per ReLU
//! layer on ResNet-20, ~10^13 from the first site to the last), so the last stage's slope
//! enclosures explode beyond η ≈ 2^−53. The relational boxes of the residual blocks' main
//! branches cut the growth to ×5–9 per block (median relational / |W| box: 0.45 after the
//! first block, 10^−5 at stage 3), which moves the certified η on ResNet-20 (α = 14) from
//! ≈ 2^−53.7 to ≈ 2^−38.9. They still compose box to box across blocks: at that η the last
//! site's box is ~10^6× the largest deviation of sampled sign patterns, whose growth is
//! ×1.5–2 per block; the first-order estimate η₀ = min_j lower_j/K_j(0) is ~2^−11 there.
//! At the certified η, D_j is almost all remainder (η·K_j ≈ 7·10^−8 against E_j ≈ 12) and
//! 99.8 % of E_j comes from the last site, whose box (~2·10^−2) spans r̃_α′'s transition for
//! the neurons near 0. E_j grows like (box)², so the certified η scales like 1 / (box growth).
//! **Back-substituted site boxes** (`margin_rows`): every entry of the last stage's site
//! inputs (within a budget of multiply–adds) gets a bound by back-substitution through the
//! linearised blocks to an anchor (the stage input, or at most three sites back), the noise
//! and slope variation boxed at their own sites; the box is the smaller of that and the
//! forward box. On ResNet-20 the median certified log₂ η over 10 evenly spread images moves
//! from −39.25 to −36.8 at α = 14 (−37.5 → −35.1 at α = 12, −36.1 → −33.8 at α = 10) with the
//! defaults (rows for the last three sites), and on one image from −38.8 to −34.1 with the
//! whole last stage back-substituted to its input (`with_row_window(5)`,
//! `with_row_budget(3e11)`): at η = 2^−38 the last site's largest box falls from 0.30 to
//! 2.3·10^−4. Still ~2^16 below the CKKS noise of the encrypted run (~2^−18 of the range).
//! What limits η now is the box at the stage input, composed box to box through stages 1 and
//! 2, whose rows (one per entry, 8192 and 16384 entries) would cost ~2·10^11 multiply–adds
//! each in binary64, and the cost of the rows themselves. On
//! shallow networks (MNIST, two sites) the gap is the slope enclosure itself: over boxes of
//! width η·B ≈ 2^−11·B, r̃_α′ varies across ripples (certified ~2^−12 against η₀ ~ 2^−6.4).
//!
//! **Search** (`margin_lin`): on the grid 2^(k/16), −80 ≤ log₂ η ≤ 0, from the
//! first-order estimate η₀ = min_j lower_j/K_j down in octave-doubling steps, then bisection.
//! Each tested η is checked in full; a failing test stops at the first site where the
//! accumulated η·K_j + E_j already reaches a margin (the verdict is exactly that of the full
//! test, `MarginCertifier::drops_early`). The slope enclosures and their Taylor coefficients
//! run eight entries at a time (`margin_slope::SiteTaylor`, bit-identical to the scalar code).
//!
//! # Arithmetic
//! binary64 with directed rounding, not multi-precision: the radii of the nominal balls
//! (~10^−18) and the rounding of the recursion (~10^−16 relative) are far below η·B at any η
//! of interest, so f64 suffices; every rounding is still accounted for. Vectors λ are kept as
//! midpoint–radius pairs (c, r): λ ← Wᵀλ gives c ← fl(Wᵀc) and r ← |W|ᵀ(r + γ_n·|c|) rounded
//! up (Higham's γ_n bound on the signed dot product, and the non-negative dot product bounded
//! by ŝ/(1 − γ_n) plus underflow allowances, see `round`); the batch-norm scale
//! s = γ/√(σ² + ε) is computed in f64 with |S − s| ≤ 4u·|s|. Slope enclosures use
//! outward-rounded midpoint–radius balls around the fixed-point chain of the trajectory
//! (`margin_slope`).
//!
//! Supported: Conv, BatchNormalization, Gemm / MatMul, Relu (the sites), MaxPool (M̃_{α,n},
//! noise at every pairwise maximum's polynomial; a forward box from the certificate's ball
//! evaluation, and the back-substitution stops there, `margin_pool`), AveragePool,
//! GlobalAveragePool, Add (residual or constant), Flatten, Reshape, Identity, Slice, Pad.
//! Clip, Mul, Div, Concat and Softmax are refused with an error naming the node.
//!
//! Symbols: `eta` η, `b` B, `r` forward boxes R, `s` slope enclosures S, `lam` λ, `k` K_j.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::sync::Arc;

use inari::Interval;
use rug::Integer;
use serde::Serialize;

use super::firstorder::{conv_transpose, linear_and_transpose, pad_src, slice_src, ConvT};
use super::fixed::{fixed_bounds, mag, Frac};
use super::margin_lin::Linearised;
use super::margin_pool::PoolNom;
use super::margin_rel::RelChain;
use super::margin_rows::{
    anchors, conv_colsums, site_dw, Anchor, SiteRows, ROW_BUDGET, WINDOW_SITES,
};
use super::margin_slope::{Ball, IntervalSign, SiteTaylor};
use super::network::f64s;
use super::polyerr::PolyErrors;
use super::round::{add_ru, div_ru, dot_up, gamma_ru, mul_ru, sum_factor_ru, sum_up, Ulp, ETA, U};
use super::trajectory::{ApproxRun, BallT, SiteBalls, TrajectoryBound, TrajectoryCertifier};
use super::BoundsError;
use crate::nn::ops::{self, ConvK};
use crate::nn::{Network, NodeId, Op};

/// Grid steps per octave of the η search.
pub const STEPS_PER_OCTAVE: i32 = 16;
/// Smallest log₂ η searched.
pub const LOG2_ETA_MIN: i32 = -80;

/// Per-node data of the perturbation recursion.
#[derive(Debug, Clone)]
#[expect(
    clippy::large_enum_variant,
    reason = "one value per node, built once per network"
)]
pub(super) enum MPrep {
    Conv {
        /// |W| as a forward kernel (no bias).
        abs: ConvK<f64>,
        /// Wᵀ and |W|ᵀ.
        t: ConvT,
        t_abs: ConvT,
        /// Terms per forward / transposed output.
        n_fwd: usize,
        n_bwd: usize,
    },
    Bn {
        /// s = γ/√(σ² + ε) in f64 and an upper bound of |S| (|S − s| ≤ 4u·|s|).
        s: Vec<f64>,
        s_up: Vec<f64>,
    },
    Linear {
        w_abs: Vec<f64>,
        wt: Vec<f64>,
        wt_abs: Vec<f64>,
        m: usize,
        k: usize,
    },
    /// Output position → input flat index (`usize::MAX`: a constant fill).
    Index(Vec<usize>),
    /// Averages: per output, the input indices and the divisor.
    Pool(Vec<(Vec<usize>, usize)>),
    /// Identity on Δ (Flatten, Reshape, Identity, Add of a constant).
    Pass,
    /// Residual sum of two values.
    Add,
    /// A ReLU site.
    Site,
    /// A max-pool node (M̃_{α,n}): its windows' input indices (`margin_pool`).
    MaxPool(Vec<Vec<usize>>),
}

/// What the forward pass hands to its hook after a node that adds to the remainder E_j.
pub(crate) enum Term<'a> {
    /// A ReLU site: (s_mid, s_rad, w) per entry.
    Site(&'a [(f64, f64, f64)]),
    /// A max-pool node: the box R of its output.
    Pool(&'a [f64]),
}

/// Per node: for a site, (s_mid, s_rad, w) per entry (S ⊆ [s_mid ± s_rad], |Δ_in + e| ≤ w).
pub(crate) type SiteSlope = Option<Vec<(f64, f64, f64)>>;

/// Forward boxes R per value (`None`: Δ = 0).
pub(crate) type Boxes = Vec<Option<Vec<f64>>>;

/// [`SiteSlope`] per node.
pub(crate) type SiteSlopes = Vec<SiteSlope>;

/// A midpoint–radius interval vector (c ± r), one per class.
type Lam = Vec<(Vec<f64>, Vec<f64>)>;

/// The nominal trajectory of one input: the certified output balls' margins and the site
/// input balls.
#[derive(Debug, Clone)]
pub(crate) struct Nominal {
    /// The k-th α of the certifier.
    k: usize,
    /// The certified class c.
    pub(crate) class: usize,
    /// Certified lower bound of y_c − y_j per class j (rounded down; 0 at c).
    pub(crate) margins: Vec<f64>,
    /// Site input balls of F^α (and the input balls of every max-pool node).
    pub(super) sites: SiteBalls,
    /// The polynomial maximum of the certificate (networks with max-pool nodes).
    pub(super) pool: Option<PoolNom>,
    /// Per site, the Taylor coefficients of every entry (`IntervalSign::site_taylor`).
    taylor: BTreeMap<NodeId, SiteTaylor>,
    /// Per site of a chain, the point slopes s of the relational boxes (`margin_rel`).
    slin: BTreeMap<NodeId, Vec<f64>>,
    /// Per chain, |M̂| (`RelChain::kernel`; empty when not used).
    rel: Vec<Vec<f32>>,
    /// The back-substitution at the trajectory's point slopes (`margin_lin`).
    pub(super) lin: Linearised,
    /// Per site, the back-substituted rows of its input (`margin_rows`).
    pub(super) rows: BTreeMap<NodeId, SiteRows>,
}

/// One evaluation of the recursion at η.
#[derive(Debug, Clone)]
pub(crate) struct Drops {
    /// K_j per class (0 at c; independent of η, `margin_lin`): the first-order part of
    /// D_j(η) is η·K_j.
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "read by the tests' diagnostics of what limits η")
    )]
    pub(crate) k: Vec<f64>,
    /// D_j(η) = η·K_j(η) + E_j(η) per class (0 at c), rounded up: the certified bound of
    /// the drop of y_c − y_j.
    pub(crate) d: Vec<f64>,
    /// With `lambda_for = Some(j)`: per site, the midpoints of λ_in for class j.
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "read by the tests' adversarial sign pattern")
    )]
    pub(crate) lambda: BTreeMap<NodeId, Vec<f64>>,
    /// With `lambda_for = Some(j)`: per site, its share of E_j(η) (the slope-variation
    /// remainder, rounded up).
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "read by the tests' diagnostics of what limits η")
    )]
    pub(crate) remainder: BTreeMap<NodeId, f64>,
}

/// The certified noise margin of one input at one α (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NoiseMargin {
    /// Precision parameter α.
    pub alpha: u32,
    /// The certified class c of F^α(x) (= that of F(x)).
    pub class: usize,
    /// The largest certified η on the grid 2^(k/16): every site-input perturbation with
    /// |e_i| ≤ η·B keeps the class c (certified).
    pub eta: f64,
    /// log₂ η (a multiple of 1/16).
    pub log2_eta: f64,
    /// The class j with the least slack lower(y_c − y_j) − D_j(η).
    pub tightest: usize,
    /// Certified lower bound of y_c − y_j for that class.
    pub margin_lower: f64,
    /// D_j(η) for that class: the certified bound of the margin's drop (rounded up).
    pub drop_bound: f64,
    /// Evaluations of the recursion spent by the search.
    pub evaluations: usize,
    /// log₂ η₀, η₀ = min_j lower(y_c − y_j)/K_j(0): the first-order estimate (a
    /// linearisation, **not** certified; ≥ about what any tighter forward box could certify).
    pub log2_eta_first_order: f64,
}

/// The noise-margin certifier of one network for several α (see the module docs).
#[derive(Debug, Clone)]
pub struct MarginCertifier {
    pub(super) net: Arc<Network>,
    pub(super) preps: Vec<MPrep>,
    /// Values that depend on a site's output (Δ ≠ 0 possible).
    pub(super) live: Vec<bool>,
    signs: Vec<IntervalSign>,
    alphas: Vec<u32>,
    pub(super) ranges: BTreeMap<NodeId, f64>,
    /// The conv–site–conv chains with relational boxes (`margin_rel`).
    chains: Vec<RelChain>,
    /// Per node: the chain whose second convolution it is.
    chain_at: Vec<Option<usize>>,
    /// Whether the relational boxes are used (else the |W| boxes alone).
    relational: bool,
    /// Per site node: the anchor of the back-substitution of its input (`margin_rows`).
    pub(super) anchors: Vec<Option<Anchor>>,
    /// Per node: for a convolution, an upper bound of the largest row sum of |Wᵀ|
    /// (`margin_rows`).
    pub(super) conv_colsum: Vec<f64>,
    /// The budget (multiply–adds) and window (earlier sites) of the rows.
    row_plan: (f64, usize),
}

pub(super) fn margin_err(net: &Network, id: NodeId, reason: impl Into<String>) -> BoundsError {
    let node = net.nodes.get(id);
    BoundsError::NoiseMargin {
        node: node.map(|n| n.name.clone()).unwrap_or_default(),
        op: node.map_or("?", |n| n.op.op_type()).to_string(),
        reason: reason.into(),
    }
}

/// Midpoint–radius form of an interval (radius rounded up; +∞ when unbounded).
fn mid_rad(i: Interval) -> (f64, f64) {
    let (a, b) = (i.inf(), i.sup());
    if !(a.is_finite() && b.is_finite()) {
        return (0.0, f64::INFINITY);
    }
    let m = 0.5 * a + 0.5 * b;
    (m, (b - m).up().max((m - a).up()))
}

/// slot += (c ± r), outward: |fl(c₁ + c₂) − (c₁ + c₂)| ≤ u·|fl(c₁ + c₂)|·(1 + u).
pub(super) fn acc_into(slot: &mut Option<Lam>, add: Lam) {
    match slot {
        None => *slot = Some(add),
        Some(acc) => {
            for ((c, r), (c2, r2)) in acc.iter_mut().zip(add) {
                for (((ci, ri), cj), rj) in c.iter_mut().zip(r.iter_mut()).zip(c2).zip(r2) {
                    *ci += cj;
                    *ri = add_ru(add_ru(*ri, rj), mul_ru(2.0 * U, ci.abs()));
                }
            }
        }
    }
}

/// (c, r) ↦ (Wᵀc, |W|ᵀ(r + γ_n|c|)) with the given signed and absolute operators.
fn lin_back(
    c: &[f64],
    r: &[f64],
    n: usize,
    mut signed: impl FnMut(&[f64]) -> Vec<f64>,
    mut abs: impl FnMut(&[f64]) -> Vec<f64>,
) -> (Vec<f64>, Vec<f64>) {
    let g = gamma_ru(n);
    let v: Vec<f64> = c
        .iter()
        .zip(r)
        .map(|(ci, ri)| add_ru(*ri, mul_ru(g, ci.abs())))
        .collect();
    let c2 = signed(c);
    // The signed sum's underflow allowances are added by counting its terms twice.
    let r2 = abs(&v).into_iter().map(|s| dot_up(s, 2 * n)).collect();
    (c2, r2)
}

impl MarginCertifier {
    /// Prepare `net` for the certified polynomials `pes` (one per α) and B per ReLU node.
    ///
    /// # Errors
    /// [`BoundsError::NoiseMargin`] naming the first unsupported node; a convolution with
    /// inconsistent shapes as [`BoundsError::FirstOrder`].
    #[expect(clippy::too_many_lines, reason = "one arm per op")]
    pub fn new(
        net: Arc<Network>,
        pes: &[PolyErrors],
        ranges: BTreeMap<NodeId, f64>,
    ) -> Result<Self, BoundsError> {
        let mut preps = Vec::with_capacity(net.nodes.len());
        for (i, node) in net.nodes.iter().enumerate() {
            let in0 = node.inputs.first().copied().unwrap_or(usize::MAX);
            let s_in = net.shape(in0);
            let s_out = net.shape(node.output);
            let p = match &node.op {
                Op::Conv(c) => {
                    let (Some(ic), Some(oc)) = (s_in.chw(), s_out.chw()) else {
                        return Err(margin_err(
                            &net,
                            i,
                            format!("input {s_in} / output {s_out} are not [C, H, W]"),
                        ));
                    };
                    let w = f64s(&c.weight.data);
                    let wa: Vec<f64> = w.iter().map(|v| v.abs()).collect();
                    let k = ConvK::from_conv(c, w, None);
                    let abs = ConvK::from_conv(c, wa, None);
                    let t = conv_transpose(&node.name, &k, ic, oc)?;
                    let t_abs = conv_transpose(&node.name, &abs, ic, oc)?;
                    let g = k.groups.max(1);
                    let taps = k.kh * k.kw;
                    MPrep::Conv {
                        abs,
                        t,
                        t_abs,
                        n_fwd: k.cin / g * taps,
                        n_bwd: k.cout / g * taps,
                    }
                }
                Op::BatchNorm(b) => {
                    let mut s = Vec::new();
                    let mut s_up = Vec::new();
                    for (g, v) in b.gamma.iter().zip(&b.var) {
                        let d = f64::from(*v) + f64::from(b.eps);
                        if d.is_nan() || d <= 0.0 || !g.is_finite() {
                            return Err(margin_err(
                                &net,
                                i,
                                format!("var + eps = {d}, gamma = {g}: not a finite scale"),
                            ));
                        }
                        let si = f64::from(*g) / d.sqrt();
                        s.push(si);
                        s_up.push(mul_ru(si.abs(), (1.0 + 4.0 * U).up()));
                    }
                    MPrep::Bn { s, s_up }
                }
                Op::Gemm(l) | Op::MatMul(l) => {
                    let (w, wt, m, k) = linear_and_transpose(l);
                    MPrep::Linear {
                        w_abs: w.iter().map(|v| v.abs()).collect(),
                        wt_abs: wt.iter().map(|v| v.abs()).collect(),
                        wt,
                        m,
                        k,
                    }
                }
                Op::Slice(s) => MPrep::Index(slice_src(s, s_in, s_out)),
                Op::Pad(p) => MPrep::Index(pad_src(p, s_in, s_out)),
                Op::AvgPool {
                    pool,
                    count_include_pad,
                } => {
                    let chw = s_in.chw().unwrap_or((0, 0, 0));
                    let out_hw = s_out.chw().map_or((0, 0), |(_, h, w)| (h, w));
                    let full = pool.kernel[0] * pool.kernel[1];
                    let mut wins = Vec::new();
                    ops::for_pool_windows(chw, pool, out_hw, |_, w| {
                        let n = if *count_include_pad { full } else { w.len() };
                        wins.push((w.to_vec(), n.max(1)));
                    });
                    MPrep::Pool(wins)
                }
                Op::GlobalAvgPool => {
                    let (c, h, w) = s_in.chw().unwrap_or((0, 0, 0));
                    let plane = h * w;
                    MPrep::Pool(
                        (0..c)
                            .map(|ci| ((ci * plane..(ci + 1) * plane).collect(), plane.max(1)))
                            .collect(),
                    )
                }
                Op::Add { constant: None } => MPrep::Add,
                Op::Add { constant: Some(_) } | Op::Flatten | Op::Reshape | Op::Identity => {
                    MPrep::Pass
                }
                Op::Relu | Op::MaxPool(_) => {
                    match ranges.get(&i) {
                        Some(&b) if b.is_finite() && b > 0.0 => {}
                        other => {
                            return Err(BoundsError::Range {
                                node: node.name.clone(),
                                index: i,
                                value: format!("{other:?}"),
                            })
                        }
                    }
                    if let Op::MaxPool(p) = &node.op {
                        let chw = s_in.chw().unwrap_or((0, 0, 0));
                        let out_hw = s_out.chw().map_or((0, 0), |(_, h, w)| (h, w));
                        let mut wins = Vec::new();
                        ops::for_pool_windows(chw, p, out_hw, |_, w| wins.push(w.to_vec()));
                        MPrep::MaxPool(wins)
                    } else {
                        MPrep::Site
                    }
                }
                op => {
                    return Err(margin_err(
                        &net,
                        i,
                        format!("{} is not supported by the noise margin yet", op.op_type()),
                    ))
                }
            };
            preps.push(p);
        }
        let mut live = vec![false; net.values.len()];
        for (node, p) in net.nodes.iter().zip(&preps) {
            let l = matches!(p, MPrep::Site | MPrep::MaxPool(_))
                || node
                    .inputs
                    .iter()
                    .any(|&v| live.get(v).copied().unwrap_or(false));
            if let Some(s) = live.get_mut(node.output) {
                *s = l;
            }
        }
        let chains = RelChain::detect(&net, &preps);
        let mut chain_at = vec![None; net.nodes.len()];
        for (ci, ch) in chains.iter().enumerate() {
            if let Some(s) = chain_at.get_mut(ch.conv2) {
                *s = Some(ci);
            }
        }
        let row_plan = (ROW_BUDGET, WINDOW_SITES);
        let anchors = anchors(&net, &preps, &live, row_plan);
        let conv_colsum = conv_colsums(&net, &preps);
        Ok(Self {
            chains,
            chain_at,
            relational: true,
            anchors,
            conv_colsum,
            row_plan,
            signs: pes
                .iter()
                .map(|pe| IntervalSign::new(pe.components()))
                .collect(),
            alphas: pes.iter().map(PolyErrors::alpha).collect(),
            net,
            preps,
            live,
            ranges,
        })
    }

    /// The α values, in order.
    pub fn alphas(&self) -> &[u32] {
        &self.alphas
    }

    /// The slope enclosures' polynomial of the α of `nom`.
    pub(super) fn sign_of(&self, nom: &Nominal) -> Option<&IntervalSign> {
        self.signs.get(nom.k)
    }

    /// The same certifier with the relational boxes of conv–site–conv chains switched on or
    /// off (on by default; off gives the |W| boxes alone, for comparison).
    #[must_use]
    pub fn with_relational(mut self, on: bool) -> Self {
        self.relational = on;
        self
    }

    /// The same certifier with the back-substituted site boxes of `margin_rows` within
    /// `budget` multiply–adds per input (0 switches them off, for comparison; the default
    /// is [`ROW_BUDGET`]).
    #[must_use]
    pub fn with_row_budget(mut self, budget: f64) -> Self {
        self.row_plan.0 = budget;
        self.anchors = anchors(&self.net, &self.preps, &self.live, self.row_plan);
        self
    }

    /// The same certifier with (`true`, the default budget) or without (`false`) the
    /// back-substituted site boxes: what `--margin-rows` selects in the CLI.
    #[must_use]
    pub fn with_rows(self, on: bool) -> Self {
        if on {
            self
        } else {
            self.with_row_budget(0.0)
        }
    }

    /// The same certifier with at most `sites` earlier sites between a site input and the
    /// anchor of its back-substitution (`margin_rows`; the default is [`WINDOW_SITES`]).
    #[must_use]
    pub fn with_row_window(mut self, sites: usize) -> Self {
        self.row_plan.1 = sites;
        self.anchors = anchors(&self.net, &self.preps, &self.live, self.row_plan);
        self
    }

    /// Number of sites whose inputs get back-substituted boxes (`margin_rows`).
    pub fn row_sites(&self) -> usize {
        self.anchors.iter().flatten().count()
    }

    /// Number of conv–site–conv chains that get relational boxes.
    pub fn relational_chains(&self) -> usize {
        self.chains.len()
    }

    /// The nominal trajectory of `x` for the certificate `tb` (one of `tc`'s results for
    /// `x`): `None` unless the class is certified unchanged.
    ///
    /// # Errors
    /// As [`TrajectoryCertifier::certify`]; [`BoundsError::Config`] for an α this certifier
    /// was not built for.
    #[cfg(test)]
    pub(crate) fn nominal(
        &self,
        tc: &TrajectoryCertifier,
        x: &[f64],
        tb: &TrajectoryBound,
    ) -> Result<Option<Nominal>, BoundsError> {
        self.nominal_from(tc, x, tb, None)
    }

    /// [`Self::nominal`] from `run`, the F^α run that gave `tb`
    /// ([`TrajectoryCertifier::certify_near_recording`]), instead of running it again; a
    /// `run` at another precision than `tb`'s is ignored.
    ///
    /// # Errors
    /// As [`Self::nominal`].
    pub(crate) fn nominal_from(
        &self,
        tc: &TrajectoryCertifier,
        x: &[f64],
        tb: &TrajectoryBound,
        run: Option<ApproxRun>,
    ) -> Result<Option<Nominal>, BoundsError> {
        let (Some(c), true) = (tb.class_approx, tb.unchanged) else {
            return Ok(None);
        };
        let alpha_err = || BoundsError::Config {
            what: "noise margin alpha".into(),
            value: tb.alpha.to_string(),
            valid: format!("one of {:?}", self.alphas),
        };
        let k = self
            .alphas
            .iter()
            .position(|&a| a == tb.alpha)
            .ok_or_else(alpha_err)?;
        let kt = tc
            .alphas()
            .iter()
            .position(|&a| a == tb.alpha)
            .ok_or_else(alpha_err)?;
        let f = Frac(tb.frac_bits);
        let (out, sites) = match run {
            Some(r) if r.frac == f => (r.out, r.sites),
            _ => tc.approx_sites(x, kt, f)?,
        };
        let margins = output_margins(&out, c, f);
        if margins
            .iter()
            .enumerate()
            .any(|(j, &m)| j != c && (m.is_nan() || m <= 0.0))
        {
            return Ok(None);
        }
        let sign = self
            .signs
            .get(k)
            .ok_or_else(|| margin_err(&self.net, 0, "no polynomial for this α"))?;
        let is = |i: NodeId, pool: bool| {
            matches!(
                (self.preps.get(i), pool),
                (Some(MPrep::Site), false) | (Some(MPrep::MaxPool(_)), true)
            )
        };
        let taylor: BTreeMap<NodeId, SiteTaylor> = sites
            .iter()
            .filter(|(&i, _)| is(i, false))
            .map(|(&i, rec)| (i, sign.site_taylor(&rec.chain, rec.stride)))
            .collect();
        let mut slin = BTreeMap::new();
        let mut rel = Vec::with_capacity(self.chains.len());
        for ch in &self.chains {
            if !self.relational {
                rel.push(Vec::new());
                continue;
            }
            if let Entry::Vacant(slot) = slin.entry(ch.site) {
                let (Some(rec), Some(tay), Some(&b)) = (
                    sites.get(&ch.site),
                    taylor.get(&ch.site),
                    self.ranges.get(&ch.site),
                ) else {
                    rel.push(Vec::new());
                    continue;
                };
                let mut sl = Vec::with_capacity(rec.x.len());
                sign.site_slopes(&rec.x, b, &rec.chain, rec.stride, tay, &mut sl);
                let s: Vec<f64> = sl
                    .into_iter()
                    .map(|si| RelChain::point_slope(mid_rad(si).0))
                    .collect();
                slot.insert(s);
            }
            rel.push(slin.get(&ch.site).map_or_else(Vec::new, |s| ch.kernel(s)));
        }
        let pool_taylor: BTreeMap<NodeId, Vec<Ball>> = sites
            .iter()
            .filter(|(&i, _)| is(i, true))
            .map(|(&i, rec)| {
                let mut t = Vec::with_capacity(rec.x.len() * sign.taylor_len());
                for chain in rec.chain.chunks(rec.stride.max(1)) {
                    sign.taylor(chain, &mut t);
                }
                (i, t)
            })
            .collect();
        let pool = match tc.pool_kernel(kt) {
            Some(kernel) if !pool_taylor.is_empty() => Some(PoolNom {
                kernel: kernel.clone(),
                taylor: pool_taylor,
            }),
            _ => None,
        };
        let mut nom = Nominal {
            k,
            class: c,
            margins,
            sites,
            pool,
            taylor,
            slin,
            rel,
            lin: Linearised::default(),
            rows: BTreeMap::new(),
        };
        // s_ref: the midpoints of the slope enclosures on the trajectory balls (η = 0).
        let (_, slopes) = self.forward(&nom, 0.0)?;
        let s_ref = slopes
            .into_iter()
            .enumerate()
            .filter_map(|(i, s)| Some((i, s?.into_iter().map(|(sm, _, _)| sm).collect())))
            .collect();
        nom.lin = self.linearise(c, s_ref, None)?.0;
        nom.rows = self.site_rows(&nom)?;
        Ok(Some(nom))
    }

    /// The certified noise margin of `x` at the α of `tb` (see the module docs): `None` when
    /// the class is not certified unchanged or no η ≥ 2^−80 is certified.
    ///
    /// # Errors
    /// As [`Self::nominal`].
    pub fn margin(
        &self,
        tc: &TrajectoryCertifier,
        x: &[f64],
        tb: &TrajectoryBound,
    ) -> Result<Option<NoiseMargin>, BoundsError> {
        self.margin_from(tc, x, tb, None)
    }

    /// [`Self::margin`] from `run`, the F^α run that gave `tb` (see [`Self::nominal_from`]):
    /// the same margin, one F^α run fewer.
    ///
    /// # Errors
    /// As [`Self::nominal`].
    pub fn margin_from(
        &self,
        tc: &TrajectoryCertifier,
        x: &[f64],
        tb: &TrajectoryBound,
        run: Option<ApproxRun>,
    ) -> Result<Option<NoiseMargin>, BoundsError> {
        let Some(nom) = self.nominal_from(tc, x, tb, run)? else {
            return Ok(None);
        };
        self.search(&nom, tb.alpha)
    }

    /// The box R of a non-site node's output from its inputs' boxes (`None`: Δ = 0): |W|·R
    /// rounded up for linear ops, R_a + R_b for a residual sum.
    pub(super) fn fwd_lin(
        &self,
        i: NodeId,
        rs: &[Option<Vec<f64>>],
        buf: &mut Vec<f64>,
    ) -> Option<Vec<f64>> {
        let net = &*self.net;
        let (node, prep) = (net.nodes.get(i)?, self.preps.get(i)?);
        let in0 = node.inputs.first().copied().unwrap_or(usize::MAX);
        let a = rs.get(in0).and_then(Option::as_ref);
        let s_in = net.shape(in0);
        let chw = s_in.chw().unwrap_or((0, 0, 0));
        let out_hw = net
            .shape(node.output)
            .chw()
            .map_or((0, 0), |(_, h, w)| (h, w));
        match prep {
            MPrep::Site => None,
            // Handled by `pool_box` (it needs η and the trajectory); never Δ = 0 here.
            MPrep::MaxPool(wins) => Some(vec![f64::INFINITY; wins.len()]),
            _ if a.is_none() && !matches!(prep, MPrep::Add) => None,
            MPrep::Conv { abs, n_fwd, .. } => a.map(|a| {
                // `dot_up(s, n_fwd)` with its factor computed once per node (same values).
                let fac = sum_factor_ru(n_fwd + 1);
                ops::conv(a, chw, abs, out_hw, buf, false)
                    .0
                    .into_iter()
                    .map(|s| sum_up(s, fac, n_fwd + 1))
                    .collect()
            }),
            MPrep::Bn { s_up, .. } => a.map(|a| {
                let plane = (a.len() / s_up.len().max(1)).max(1);
                a.iter()
                    .enumerate()
                    .map(|(q, r)| mul_ru(s_up.get(q / plane).copied().unwrap_or(f64::NAN), *r))
                    .collect()
            }),
            MPrep::Linear { w_abs, m, k, .. } => a.map(|a| {
                ops::linear(a, w_abs, *m, *k, None)
                    .into_iter()
                    .map(|s| dot_up(s, *k))
                    .collect()
            }),
            MPrep::Index(src) => a.map(|a| {
                src.iter()
                    .map(|&q| a.get(q).copied().unwrap_or(0.0))
                    .collect()
            }),
            MPrep::Pool(wins) => a.map(|a| {
                wins.iter()
                    .map(|(w, n)| {
                        let s: f64 = w.iter().map(|&q| a.get(q).copied().unwrap_or(0.0)).sum();
                        div_ru(dot_up(s, w.len()), *n as f64)
                    })
                    .collect()
            }),
            MPrep::Pass => a.cloned(),
            MPrep::Add => {
                let b = node
                    .inputs
                    .get(1)
                    .and_then(|&v| rs.get(v))
                    .and_then(Option::as_ref);
                match (a, b) {
                    (Some(a), Some(b)) => {
                        Some(a.iter().zip(b).map(|(p, q)| add_ru(*p, *q)).collect())
                    }
                    (Some(x), None) | (None, Some(x)) => Some(x.clone()),
                    (None, None) => None,
                }
            }
        }
    }

    /// λ_in = Wᵀλ_out of a non-site node (midpoint–radius, rounded outward; a residual sum
    /// passes λ to both inputs).
    pub(super) fn back_lin(
        &self,
        i: NodeId,
        lam: Lam,
        buf: &mut Vec<f64>,
        buf2: &mut Vec<f64>,
    ) -> Lam {
        let net = &*self.net;
        let (Some(node), Some(prep)) = (net.nodes.get(i), self.preps.get(i)) else {
            return lam;
        };
        let in0 = node.inputs.first().copied().unwrap_or(usize::MAX);
        let n_in = net.shape(in0).numel();
        match prep {
            // A max-pool stops the back-substitution (`margin_lin::linearise`).
            MPrep::Site | MPrep::MaxPool(_) => lam,
            MPrep::Conv {
                t, t_abs, n_bwd, ..
            } => lam
                .iter()
                .map(|(c, r)| lin_back(c, r, *n_bwd, |v| t.apply(v, buf), |v| t_abs.apply(v, buf2)))
                .collect(),
            MPrep::Bn { s, s_up } => {
                let plane = (n_in / s.len().max(1)).max(1);
                lam.iter()
                    .map(|(c, r)| {
                        let mut c2 = Vec::with_capacity(c.len());
                        let mut r2 = Vec::with_capacity(c.len());
                        for (q, (cq, rq)) in c.iter().zip(r).enumerate() {
                            let sc = s.get(q / plane).copied().unwrap_or(f64::NAN);
                            let su = s_up.get(q / plane).copied().unwrap_or(f64::NAN);
                            let v = sc * cq;
                            // |S·λ − fl(s·c)| ≤ |S|·r + 4u|s||c| + u|s·c|.
                            let e = add_ru(mul_ru(mul_ru(5.0 * U, sc.abs()), cq.abs()), ETA);
                            c2.push(v);
                            r2.push(add_ru(mul_ru(su, *rq), e));
                        }
                        (c2, r2)
                    })
                    .collect()
            }
            MPrep::Linear {
                wt, wt_abs, m, k, ..
            } => lam
                .iter()
                .map(|(c, r)| {
                    lin_back(
                        c,
                        r,
                        *m,
                        |v| ops::linear(v, wt, *k, *m, None),
                        |v| ops::linear(v, wt_abs, *k, *m, None),
                    )
                })
                .collect(),
            MPrep::Index(src) => lam
                .iter()
                .map(|(c, r)| {
                    // Slice and Pad are injective: each input gets one output's λ (or 0).
                    let (mut c2, mut r2) = (vec![0.0; n_in], vec![0.0; n_in]);
                    for ((&q, co), ro) in src.iter().zip(c).zip(r) {
                        if let (Some(x), Some(y)) = (c2.get_mut(q), r2.get_mut(q)) {
                            *x += co;
                            *y = add_ru(add_ru(*y, *ro), mul_ru(2.0 * U, x.abs()));
                        }
                    }
                    (c2, r2)
                })
                .collect(),
            MPrep::Pool(wins) => lam
                .iter()
                .map(|(c, r)| {
                    // Each input gets Σ_{windows ∋ q} λ_o/n: with m windows per input the
                    // computed midpoint is within 2γ_{m+2}·Σ|c_o|/n of the exact one.
                    let mut c2 = vec![0.0; n_in];
                    let mut a2 = vec![0.0; n_in];
                    let mut m2 = vec![0.0; n_in];
                    let mut cnt = vec![0usize; n_in];
                    for ((w, n), (co, ro)) in wins.iter().zip(c.iter().zip(r)) {
                        let nf = *n as f64;
                        for &q in w {
                            if let (Some(x), Some(y), Some(z), Some(k)) =
                                (c2.get_mut(q), a2.get_mut(q), m2.get_mut(q), cnt.get_mut(q))
                            {
                                *x += co / nf;
                                *y += div_ru(*ro, nf);
                                *z += co.abs() / nf;
                                *k += 1;
                            }
                        }
                    }
                    // r₂ = Σ r_o/n + 2γ_{k+2}·Σ|c_o|/n: both sums bounded from their
                    // computed values (the RN quotients |c_o|/n lose at most u each,
                    // covered by counting 2k + 2 terms).
                    let r2 = a2
                        .iter()
                        .zip(&m2)
                        .zip(&cnt)
                        .map(|((a, m), &k)| {
                            let g = mul_ru(2.0, gamma_ru(k + 2));
                            add_ru(dot_up(*a, k), mul_ru(g, dot_up(*m, 2 * k + 2)))
                        })
                        .collect();
                    (c2, r2)
                })
                .collect(),
            MPrep::Pass | MPrep::Add => lam,
        }
    }
    /// The forward boxes R per value (`None`: Δ = 0) and, per site, (s_mid, s_rad, w) per
    /// entry with S ⊆ [s_mid ± s_rad] and |Δ_in + e| ≤ w, at η (see the module docs; the
    /// outputs of conv–site–conv chains get the smaller of the |W| box and the relational box
    /// of `margin_rel`).
    ///
    /// # Errors
    /// [`BoundsError::NoiseMargin`] when a site ball is missing.
    pub(crate) fn forward(
        &self,
        nom: &Nominal,
        eta: f64,
    ) -> Result<(Boxes, SiteSlopes), BoundsError> {
        self.forward_with(nom, eta, &mut |_, _| true)?
            .ok_or_else(|| margin_err(&self.net, 0, "forward pass stopped"))
    }

    /// [`Self::forward`] that calls `site_done(node, term)` after every site and max-pool
    /// node and stops,
    /// returning `None`, as soon as it returns `false` (the early exit of the η search).
    ///
    /// # Errors
    /// As [`Self::forward`].
    pub(crate) fn forward_with(
        &self,
        nom: &Nominal,
        eta: f64,
        site_done: &mut dyn FnMut(NodeId, Term<'_>) -> bool,
    ) -> Result<Option<(Boxes, SiteSlopes)>, BoundsError> {
        let net = &*self.net;
        let sign = self
            .signs
            .get(nom.k)
            .ok_or_else(|| margin_err(net, 0, "no polynomial for this α"))?;
        let live = |v: usize| self.live.get(v).copied().unwrap_or(false);
        // Forward boxes R (None: Δ = 0) and the slope enclosures S per site.
        let mut rs: Vec<Option<Vec<f64>>> = vec![None; net.values.len()];
        // Per site: (s_mid, s_rad, w) per entry, S ⊆ [s_mid ± s_rad], |Δ_in + e| ≤ w.
        let mut slopes: SiteSlopes = vec![None; net.nodes.len()];
        let mut buf = Vec::new();
        // Per site: d ∘ w (`margin_rows`; only when some site has rows).
        let mut dws: Vec<Option<Vec<f64>>> = vec![None; net.nodes.len()];
        for (i, (node, prep)) in net.nodes.iter().zip(&self.preps).enumerate() {
            if !live(node.output) {
                continue;
            }
            let in0 = node.inputs.first().copied().unwrap_or(usize::MAX);
            if let Some(sr) = nom.rows.get(&i) {
                // The back-substituted rows tighten the site input's box (`margin_rows`).
                if let Some(mut t) = rs.get(in0).cloned().flatten() {
                    sr.tighten(eta, &mut t, &dws, &rs);
                    if let Some(slot) = rs.get_mut(in0) {
                        *slot = Some(t);
                    }
                }
            }
            let a = rs.get(in0).and_then(Option::as_ref);
            let out: Option<Vec<f64>> = match prep {
                MPrep::Site => {
                    let b = self.ranges.get(&i).copied().unwrap_or(f64::NAN);
                    let rec = nom
                        .sites
                        .get(&i)
                        .ok_or_else(|| margin_err(net, i, "no trajectory ball for this site"))?;
                    let eb = mul_ru(eta, b);
                    let n = rec.x.len();
                    let mut ws = Vec::with_capacity(n);
                    let mut xis = Vec::with_capacity(n);
                    for (q, x) in rec.x.iter().enumerate() {
                        let w = add_ru(a.and_then(|a| a.get(q)).copied().unwrap_or(0.0), eb);
                        let (lo, hi) = ((x.inf() - w).down(), (x.sup() + w).up());
                        xis.push(Interval::try_from((lo, hi)).unwrap_or(Interval::ENTIRE));
                        ws.push(w);
                    }
                    let tay = nom.taylor.get(&i).ok_or_else(|| {
                        margin_err(net, i, "no Taylor coefficients for this site")
                    })?;
                    let mut sis = Vec::with_capacity(n);
                    sign.site_slopes(&xis, b, &rec.chain, rec.stride, tay, &mut sis);
                    let mut s = Vec::with_capacity(n);
                    let mut o = Vec::with_capacity(n);
                    for (si, w) in sis.into_iter().zip(ws) {
                        o.push(mul_ru(mag(si), w));
                        let (sm, sr) = mid_rad(si);
                        s.push((sm, sr, w));
                    }
                    if !site_done(i, Term::Site(&s)) {
                        return Ok(None);
                    }
                    if !nom.rows.is_empty() {
                        if let Some(slot) = dws.get_mut(i) {
                            *slot = site_dw(&s, nom.lin.s_ref(i));
                        }
                    }
                    if let Some(slot) = slopes.get_mut(i) {
                        *slot = Some(s);
                    }
                    Some(o)
                }
                MPrep::MaxPool(wins) => {
                    let o = self.pool_box(i, wins, nom, eta, a.map(Vec::as_slice))?;
                    if !site_done(i, Term::Pool(&o)) {
                        return Ok(None);
                    }
                    Some(o)
                }
                _ => {
                    let w = self.fwd_lin(i, &rs, &mut buf);
                    match self.chain_at.get(i).copied().flatten() {
                        Some(ci) if self.relational => {
                            let rel = self.relational_box(ci, nom, eta, &rs, &slopes, &mut buf);
                            match (w, rel) {
                                (Some(w), Some(r)) => {
                                    Some(w.iter().zip(&r).map(|(p, q)| p.min(*q)).collect())
                                }
                                (w, _) => w,
                            }
                        }
                        _ => w,
                    }
                }
            };
            if let Some(slot) = rs.get_mut(node.output) {
                *slot = out;
            }
        }
        Ok(Some((rs, slopes)))
    }

    /// The relational box of the output of chain `ci` at η (`margin_rel`): |M̂|·R_x + |W₂|·v.
    fn relational_box(
        &self,
        ci: usize,
        nom: &Nominal,
        eta: f64,
        rs: &[Option<Vec<f64>>],
        slopes: &[SiteSlope],
        buf: &mut Vec<f64>,
    ) -> Option<Vec<f64>> {
        let ch = self.chains.get(ci)?;
        let m = nom.rel.get(ci).filter(|m| !m.is_empty())?;
        let s = nom.slin.get(&ch.site)?;
        let sl = slopes.get(ch.site)?.as_ref()?;
        let b = self.ranges.get(&ch.site).copied()?;
        let rx = rs.get(ch.x).and_then(Option::as_ref);
        let t1 = match rx {
            Some(_) => Some(self.fwd_lin(ch.conv1, rs, buf)?),
            None => None,
        };
        let v = ch.site_term(t1.as_deref(), s, sl, mul_ru(eta, b));
        let u = self.net.nodes.get(ch.conv2)?.inputs.first().copied()?;
        let mut tmp: Vec<Option<Vec<f64>>> = vec![None; self.net.values.len()];
        *tmp.get_mut(u)? = Some(v);
        let w2v = self.fwd_lin(ch.conv2, &tmp, buf)?;
        match rx {
            Some(rx) => {
                let mr = ch.apply(m, rx)?;
                Some(w2v.iter().zip(&mr).map(|(p, q)| add_ru(*p, *q)).collect())
            }
            None => Some(w2v),
        }
    }
}

/// Certified lower bounds of y_c − y_j from the output balls (rounded down; 0 at c).
fn output_margins(out: &BallT, c: usize, f: Frac) -> Vec<f64> {
    let (Some(mc), Some(&rc)) = (out.mid.get(c), out.rad.get(c)) else {
        return Vec::new();
    };
    out.mid
        .iter()
        .zip(&out.rad)
        .enumerate()
        .map(|(j, (mj, rj))| {
            if j == c {
                return 0.0;
            }
            let d = Integer::from(mc - mj);
            let (lo, _) = fixed_bounds(&d, f);
            (lo - add_ru(rc, *rj)).down()
        })
        .collect()
}
