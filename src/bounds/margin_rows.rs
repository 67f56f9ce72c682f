//! Back-substituted site boxes of the noise margin (issue 13, part 2; beyond the paper): a
//! bound of |Δz_v| for every entry of a site input z_v by back-substitution across several
//! blocks, to the input of the site's stage, instead of the box-to-box composition of
//! [`super::MarginCertifier`]'s forward boxes.
//!
//! # The math object
//! With the notation of `margin` and `margin_lin` (Δ the exact perturbation, e the site
//! noise with |e_t| ≤ η·B_t, S_t the slope enclosure of site t over the box its input can
//! reach, s_t = s_ref the point slopes fixed once per input, δ_t = S_t − s_t with
//! |δ_t| ≤ d_t = mag(S_t − s_t)), take an **anchor** value a that every path from the
//! network input to z_v passes through (a cut of the graph). Every op between a and z_v is
//! linear (biases cancel in Δ) or a site, where Δ_out = s_t ∘ (Δ_in + e_t) +
//! δ_t ∘ (Δ_in + e_t). For the row e_i of entry i of z_v, λ ← Wᵀλ backward through the
//! linear ops (a residual sum passes λ to both inputs, fan-outs add) and λ_in = λ_out ∘ s_t
//! at each site t (as `margin_lin` does for the margins y_c − y_j) give, exactly,
//!
//!   Δz_v,i = λ_aᵀΔ_a + Σ_t [λ_{t,in}ᵀ e_t + λ_{t,out}ᵀ(δ_t ∘ (Δ_{t,in} + e_t))],
//!
//! so with the forward box R_a ≥ |Δ_a| and w_t ≥ |Δ_{t,in} + e_t| (the box over which S_t is
//! enclosed, itself tightened first when t has rows):
//!
//!   |Δz_v,i| ≤ η·k_i + Σ_t mag(λ_{t,out})ᵀ(d_t ∘ w_t) + mag(λ_a)ᵀR_a,
//!   k_i = Σ_t B_t·Σ_q mag(λ_{t,in,q}).
//!
//! The noise and the slope variation of each site are boxed at their own site, and the
//! linear map from there to z_v is applied exactly (the linearised block map is
//! diag(s_out)·(I + W₂·diag(s₁·Σ₁)·W₁) for an identity shortcut; option-A shortcuts — strided
//! slice, zero channel pad — and 1×1 projections are linear ops too). λ and k_i do not
//! depend on η: they are built once per input ([`SiteRows`]), and each tested η costs one
//! dot product per row and earlier site. The box of z_v,i is the smaller of this bound and
//! the forward box (both certified), so it is never larger. The gain is the cancellation
//! inside the composed map of several blocks, which box-to-box composition ignores.
//!
//! **Anchor rule** (from the graph only). Walking back from z_v over the nodes, the anchor is
//! the earliest boundary between nodes that a single live value crosses (a cut) such that
//! the segment in between has only supported ops (Conv, BatchNormalization, Relu sites,
//! residual Add, Slice / Pad, Flatten / Reshape / Identity), at most `window` earlier sites
//! ([`WINDOW_SITES`] = 3 by default), and stops at the first cut whose value has another
//! spatial size than z_v (the input of the stage's resolution change) or that no live value
//! crosses (Δ = 0: the network-input side). A max-pool node, a Gemm or an average pool ends
//! the segment. **Budget:** one row per entry of z_v, each a backward pass of the segment;
//! sites are taken from the last one backward while the multiply–adds of their transposed
//! convolutions stay within the budget ([`ROW_BUDGET`] = 1.2·10^11 by default), the others
//! keep the forward boxes. On ResNet-20 this gives rows to the last three sites of stage 3
//! (two anchored at the output of its first block, one at the stage input); the whole stage
//! to its input takes window 5 and ~2.6·10^11.
//!
//! **Measured** (ResNet-20; machine shared with other jobs, so the seconds are rough CPU
//! figures, not timings). 10 evenly spread CIFAR-10 JPEG test images, B calibrated on them
//! (`polycert bound --alpha 10,12,14 --per-input --method trajectory --noise-margin --evenly
//! --limit 10`), median log₂ η without → with the default rows: −36.1 → −33.8 (α = 10),
//! −37.5 → −35.1 (α = 12), −39.25 → −36.8 (α = 14), every image gaining 2.2–2.5 octaves;
//! 14.4 s CPU per image and α against 4.0 s (certificate included). On the first image of
//! `test_first20.bin` (α = 14): −38.8 without rows, −36.4 with the defaults, −34.1 with the
//! whole last stage back-substituted to its input (window 5, budget 3·10^11, ≈ 4× the CPU of
//! the defaults). At η = 2^−38 the whole-stage rows shrink the last site's largest box from
//! 0.30 to 2.3·10^−4 (median entry ×0.0045; site 65 ×0.02, sites 58 and 62 ×0.15) and the
//! bound of the margins' drop from 10^138 to 2.5·10^−5. ResNet-32 (2 images, α = 14):
//! −50.4 / −49.4 → −48.6 / −47.9; VGG (2 images): −36.1 unchanged. Memory: the rows of one
//! image take ~0.4 GB (bfloat16). What limits η now: the anchor box R_a at the stage input, still
//! composed box to box through stages 1 and 2 (their rows, one per entry of 8192 and 16384
//! entries, would cost ~2·10^11 multiply–adds each in binary64), and the cost of the rows
//! (one binary64 transposed convolution per row and op; a binary32 version needs a finer
//! rounding analysis than the uniform radius, which grows like the |W| products).
//!
//! # Arithmetic
//! λ is propagated in binary64 as midpoints with one radius per row (|λ − c| ≤ ρ entrywise):
//! through a convolution ρ ← A·(ρ + γ_n·‖c‖∞) + 2n·ETA with A ≥ the largest row sum of |Wᵀ|
//! ([`conv_colsums`]); through a batch norm ρ ← max|S|·ρ + 5u·max|s|·‖c‖∞ + ETA; at a site
//! ρ ← max|s|·ρ + u·‖c∘s‖∞ + ETA; a fan-in sum adds the radii and 2u·‖c‖∞ (the rounding of
//! the sum, as `margin::acc_into`). mag(λ) = |c| + ρ is rounded up to bfloat16 for storage
//! (relative overestimate < 2^−7; half the memory of binary32),
//! and each bound is a non-negative dot product rounded up (`dot_up`).
//!
//! Symbols: `lam` λ, `k` k_i, `dw` d_t ∘ w_t, `ra` R_a, `rho` ρ.

use std::collections::{BTreeMap, BTreeSet};

use rayon::prelude::*;

use super::margin::{MPrep, MarginCertifier, Nominal};
use super::margin_lin::mag_minus;
use super::margin_rel::f32_up;
use super::round::{add_ru, dot_up, gamma_ru, mul_ru, ETA, U};
use super::BoundsError;
use crate::nn::{Network, NodeId, ValueId};

/// Default window: at most this many earlier sites between a site input and its anchor.
pub const WINDOW_SITES: usize = 3;

/// Default budget of the back-substitution, in multiply–adds of the transposed
/// convolutions (all rows of all sites with rows).
pub const ROW_BUDGET: f64 = 1.2e11;

/// Rows back-substituted together (bounds the memory of one batch).
const CHUNK: usize = 256;

/// Where the back-substitution of one site input stops (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Anchor {
    /// The anchor value (`None`: no live value crosses the boundary, Δ = 0).
    pub(super) value: Option<ValueId>,
    /// The first node of the segment (the nodes `start..site` lie between a and z_v).
    pub(super) start: usize,
}

/// The back-substituted rows of one site (see the module docs; built once per input): one
/// row per entry of the site input.
#[derive(Debug, Clone)]
pub(crate) struct SiteRows {
    /// k_i per row (rounded up).
    k: Vec<f64>,
    /// Per earlier site t of the segment: mag(λ_{t,out}) per row, `[row][entry of t]`,
    /// rounded up to bfloat16 bits (`bf16_up`).
    terms: Vec<(NodeId, Vec<u16>)>,
    /// The anchor and mag(λ_a) per row `[row][entry of a]` (rounded up to bfloat16 bits).
    anchor: Option<(ValueId, Vec<u16>)>,
}

/// Whether the back-substitution of `margin_rows` supports the op (else a segment stops
/// before it).
fn supported(p: &MPrep) -> bool {
    matches!(
        p,
        MPrep::Conv { .. }
            | MPrep::Bn { .. }
            | MPrep::Site
            | MPrep::Add
            | MPrep::Pass
            | MPrep::Index(_)
    )
}

/// The anchor of every site's input within `budget` multiply–adds (`None`: not a site, or
/// no rows; see the module docs).
pub(super) fn anchors(
    net: &Network,
    preps: &[MPrep],
    live: &[bool],
    (budget, window): (f64, usize),
) -> Vec<Option<Anchor>> {
    let n = net.nodes.len();
    let is_live = |v: ValueId| live.get(v).copied().unwrap_or(false);
    // Last consumer of every value (the network output: after the last node).
    let mut last_use = vec![None::<usize>; net.values.len()];
    for (i, node) in net.nodes.iter().enumerate() {
        for &v in &node.inputs {
            if let Some(s) = last_use.get_mut(v) {
                *s = Some(i);
            }
        }
    }
    if let Some(s) = last_use.get_mut(net.output) {
        *s = Some(n);
    }
    // open[b]: the live values crossing the boundary before node b (produced before b,
    // consumed at b or later); only whether it is empty or a single value matters.
    let mut open: Vec<Option<Option<ValueId>>> = Vec::with_capacity(n + 1);
    let mut set = BTreeSet::new();
    if is_live(net.input) {
        set.insert(net.input);
    }
    let single = |s: &BTreeSet<ValueId>| match s.len() {
        0 => Some(None),
        1 => s.iter().next().map(|&v| Some(v)),
        _ => None,
    };
    open.push(single(&set));
    for (i, node) in net.nodes.iter().enumerate() {
        set.retain(|&v| last_use.get(v).copied().flatten().is_some_and(|u| u > i));
        let out = node.output;
        if is_live(out) && last_use.get(out).copied().flatten().is_some_and(|u| u > i) {
            set.insert(out);
        }
        open.push(single(&set));
    }
    let hw = |v: ValueId| net.shape(v).chw().map(|(_, h, w)| (h, w));
    // Multiply–adds of one row through node b (a transposed convolution).
    let row_cost = |b: usize| -> f64 {
        match (preps.get(b), net.nodes.get(b)) {
            (Some(MPrep::Conv { n_bwd, .. }), Some(node)) => {
                let n_in = node.inputs.first().map_or(0, |&v| net.shape(v).numel());
                #[expect(clippy::cast_precision_loss, reason = "an estimate")]
                let c = (n_in * n_bwd) as f64;
                c
            }
            _ => 0.0,
        }
    };
    let mut out = vec![None; n];
    let mut spent = 0.0;
    for v in (0..n).rev() {
        if !matches!(preps.get(v), Some(MPrep::Site)) {
            continue;
        }
        let Some(&z) = net.nodes.get(v).and_then(|nd| nd.inputs.first()) else {
            continue;
        };
        if !is_live(z) {
            continue;
        }
        let mut best: Option<(Anchor, f64)> = None;
        let (mut sites, mut cost) = (0usize, 0.0);
        for b in (0..v).rev() {
            match preps.get(b) {
                Some(p) if supported(p) => {}
                _ => break,
            }
            if matches!(preps.get(b), Some(MPrep::Site)) {
                sites += 1;
                if sites > window {
                    break;
                }
            }
            cost += row_cost(b);
            match open.get(b).copied().flatten() {
                Some(None) => {
                    best = Some((
                        Anchor {
                            value: None,
                            start: b,
                        },
                        cost,
                    ));
                    break;
                }
                Some(Some(u)) => {
                    best = Some((
                        Anchor {
                            value: Some(u),
                            start: b,
                        },
                        cost,
                    ));
                    // The input of the stage's resolution change ends the segment.
                    if hw(u) != hw(z) {
                        break;
                    }
                }
                None => {}
            }
        }
        let Some((anchor, cost)) = best else { continue };
        #[expect(clippy::cast_precision_loss, reason = "an estimate")]
        let total = cost * net.shape(z).numel() as f64;
        if total <= 0.0 || spent + total > budget {
            continue;
        }
        spent += total;
        if let Some(slot) = out.get_mut(v) {
            *slot = Some(anchor);
        }
    }
    out
}

/// Rows (c ± ρ): midpoints per row and one radius per row (|λ − c| ≤ ρ entrywise).
type Rows = (Vec<Vec<f64>>, Vec<f64>);

/// max |c_q| of a row.
fn norm_inf(c: &[f64]) -> f64 {
    c.iter().fold(0.0f64, |m, v| m.max(v.abs()))
}

impl MarginCertifier {
    /// The rows of every site with an anchor for the nominal trajectory `nom` (see the
    /// module docs).
    ///
    /// # Errors
    /// [`BoundsError::NoiseMargin`] when a site's point slopes are missing.
    pub(super) fn site_rows(
        &self,
        nom: &Nominal,
    ) -> Result<BTreeMap<NodeId, SiteRows>, BoundsError> {
        let mut out = BTreeMap::new();
        for (v, anchor) in self.anchors.iter().enumerate() {
            let Some(anchor) = anchor else { continue };
            if let Some(rows) = self.back_rows(nom, v, *anchor)? {
                out.insert(v, rows);
            }
        }
        Ok(out)
    }

    /// The back-substitution of every row of site `v`'s input to its anchor, in batches
    /// (`None` when a coefficient is not finite).
    fn back_rows(
        &self,
        nom: &Nominal,
        v: NodeId,
        anchor: Anchor,
    ) -> Result<Option<SiteRows>, BoundsError> {
        let net = &*self.net;
        let z = net
            .nodes
            .get(v)
            .and_then(|nd| nd.inputs.first())
            .copied()
            .ok_or_else(|| super::margin::margin_err(net, v, "a site without input"))?;
        let nz = net.shape(z).numel();
        let chunks: Vec<(usize, usize)> = (0..nz)
            .step_by(CHUNK)
            .map(|a| (a, (a + CHUNK).min(nz)))
            .collect();
        let parts = chunks
            .into_par_iter()
            .map(|(a, b)| self.back_chunk(nom, v, anchor, z, a..b))
            .collect::<Result<Vec<_>, _>>()?;
        let mut rows = SiteRows {
            k: Vec::with_capacity(nz),
            terms: Vec::new(),
            anchor: None,
        };
        for part in parts {
            let Some(p) = part else { return Ok(None) };
            rows.k.extend(p.k);
            if rows.terms.is_empty() {
                rows.terms = p.terms.iter().map(|(t, _)| (*t, Vec::new())).collect();
            }
            for ((t, dst), (t2, src)) in rows.terms.iter_mut().zip(p.terms) {
                if *t != t2 {
                    return Ok(None);
                }
                dst.extend(src);
            }
            match (&mut rows.anchor, p.anchor) {
                (Some((_, dst)), Some((_, src))) => dst.extend(src),
                (slot @ None, Some(a)) => *slot = Some(a),
                _ => {}
            }
        }
        Ok(Some(rows))
    }

    /// The rows `range` of site `v`'s input (value `z`) back-substituted to the anchor.
    #[expect(clippy::too_many_lines, reason = "one arm per op")]
    fn back_chunk(
        &self,
        nom: &Nominal,
        v: NodeId,
        anchor: Anchor,
        z: ValueId,
        range: std::ops::Range<usize>,
    ) -> Result<Option<SiteRows>, BoundsError> {
        let net = &*self.net;
        let live = |u: ValueId| self.live.get(u).copied().unwrap_or(false);
        let err = |i: NodeId, what: &str| super::margin::margin_err(net, i, what.to_string());
        let nz = net.shape(z).numel();
        let nr = range.len();
        let mut lams: Vec<Option<Rows>> = vec![None; net.values.len()];
        let init: Vec<Vec<f64>> = range
            .map(|q| {
                let mut c = vec![0.0; nz];
                if let Some(x) = c.get_mut(q) {
                    *x = 1.0;
                }
                c
            })
            .collect();
        if let Some(s) = lams.get_mut(z) {
            *s = Some((init, vec![0.0; nr]));
        }
        let mut k = vec![0.0f64; nr];
        let mut terms = Vec::new();
        let mut buf = Vec::new();
        for i in (anchor.start..v).rev() {
            let (Some(node), Some(prep)) = (net.nodes.get(i), self.preps.get(i)) else {
                continue;
            };
            let Some((cs, rho)) = lams.get_mut(node.output).and_then(Option::take) else {
                continue;
            };
            let in0 = node.inputs.first().copied().unwrap_or(usize::MAX);
            let n_in = net.shape(in0).numel();
            let back: Rows = match prep {
                MPrep::Conv { t, n_bwd, .. } => {
                    // ĉ = fl(Wᵀc): |ĉ − Wᵀc| ≤ γ_n·|Wᵀ|·|c| + 2n·ETA, and
                    // |Wᵀ(λ − c)| ≤ |Wᵀ|·ρ; |Wᵀ|·1 ≤ A entrywise (`conv_colsum`).
                    let a = self.conv_colsum.get(i).copied().unwrap_or(f64::INFINITY);
                    let g = gamma_ru(*n_bwd);
                    #[expect(clippy::cast_precision_loss, reason = "small counts")]
                    let tiny = mul_ru(2.0 * *n_bwd as f64, ETA);
                    let mut c2 = Vec::with_capacity(nr);
                    let mut r2 = Vec::with_capacity(nr);
                    for (c, r) in cs.iter().zip(&rho) {
                        let rr = add_ru(mul_ru(a, add_ru(*r, mul_ru(g, norm_inf(c)))), tiny);
                        c2.push(t.apply(c, &mut buf));
                        r2.push(rr);
                    }
                    (c2, r2)
                }
                MPrep::Bn { s, s_up } => {
                    let plane = (n_in / s.len().max(1)).max(1);
                    let su = s_up.iter().fold(0.0f64, |m, v| m.max(*v));
                    let sm = s.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                    let mut c2 = Vec::with_capacity(nr);
                    let mut r2 = Vec::with_capacity(nr);
                    for (c, r) in cs.iter().zip(&rho) {
                        // |Σλ − fl(s·c)| ≤ |Σ|·ρ + 4u|s||c| + u|s·c| (+ underflow).
                        let rr = add_ru(
                            add_ru(mul_ru(su, *r), mul_ru(mul_ru(5.0 * U, sm), norm_inf(c))),
                            ETA,
                        );
                        c2.push(
                            c.iter()
                                .enumerate()
                                .map(|(q, x)| s.get(q / plane).copied().unwrap_or(f64::NAN) * x)
                                .collect(),
                        );
                        r2.push(rr);
                    }
                    (c2, r2)
                }
                MPrep::Site => {
                    let b = self.ranges.get(&i).copied().unwrap_or(f64::NAN);
                    let s = nom.lin.s_ref(i).ok_or_else(|| err(i, "no point slopes"))?;
                    let smax = s.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                    let nt = s.len();
                    let mut mags = Vec::with_capacity(nr * nt);
                    let mut c2 = Vec::with_capacity(nr);
                    let mut r2 = Vec::with_capacity(nr);
                    for ((c, r), kq) in cs.iter().zip(&rho).zip(k.iter_mut()) {
                        // λ_in = λ_out ∘ s: |λ∘s − fl(c∘s)| ≤ |s|·ρ + u|c∘s| (+ underflow).
                        let ci: Vec<f64> = c.iter().zip(s).map(|(x, y)| x * y).collect();
                        let rr = add_ru(add_ru(mul_ru(smax, *r), mul_ru(U, norm_inf(&ci))), ETA);
                        // Σ_q mag(λ_in,q) ≤ Σ|ĉ_q| (rounded up) + n·ρ_in.
                        let sum: f64 = ci.iter().map(|x| x.abs()).sum();
                        #[expect(clippy::cast_precision_loss, reason = "small counts")]
                        let sum = add_ru(dot_up(sum, nt), mul_ru(nt as f64, rr));
                        *kq = add_ru(*kq, mul_ru(b, sum));
                        mags.extend(c.iter().map(|x| bf16_up(add_ru(x.abs(), *r))));
                        c2.push(ci);
                        r2.push(rr);
                    }
                    terms.push((i, mags));
                    (c2, r2)
                }
                MPrep::Index(src) => {
                    // Slice and Pad are injective: each input gets one output's λ (or 0).
                    let c2 = cs
                        .iter()
                        .map(|c| {
                            let mut o = vec![0.0; n_in];
                            for (&q, x) in src.iter().zip(c) {
                                if let Some(d) = o.get_mut(q) {
                                    *d = *x;
                                }
                            }
                            o
                        })
                        .collect();
                    (c2, rho)
                }
                MPrep::Pass | MPrep::Add => (cs, rho),
                _ => return Err(err(i, "an op the rows do not support inside a segment")),
            };
            if back.0.iter().flatten().any(|x| !x.is_finite())
                || back.1.iter().any(|x| !x.is_finite())
            {
                return Ok(None);
            }
            let mut targets = vec![in0];
            if matches!(prep, MPrep::Add) {
                if let Some(&in1) = node.inputs.get(1) {
                    targets.push(in1);
                }
            }
            for u in targets {
                if !live(u) {
                    continue;
                }
                let Some(slot) = lams.get_mut(u) else {
                    continue;
                };
                match slot {
                    None => *slot = Some(back.clone()),
                    Some((ca, ra)) => {
                        // λ_a + λ_b: |fl(c_a + c_b) − (c_a + c_b)| ≤ u·|fl(c_a + c_b)|.
                        for ((x, r), (y, r2)) in ca
                            .iter_mut()
                            .zip(ra.iter_mut())
                            .zip(back.0.iter().zip(&back.1))
                        {
                            for (p, q) in x.iter_mut().zip(y) {
                                *p += q;
                            }
                            *r = add_ru(add_ru(*r, *r2), mul_ru(2.0 * U, norm_inf(x)));
                        }
                    }
                }
            }
        }
        let anchor = match anchor.value {
            Some(a) => lams.get_mut(a).and_then(Option::take).map(|(cs, rho)| {
                let mags = cs
                    .iter()
                    .zip(&rho)
                    .flat_map(|(c, r)| c.iter().map(move |x| bf16_up(add_ru(x.abs(), *r))))
                    .collect();
                (a, mags)
            }),
            None => None,
        };
        // The anchor is a cut: nothing else before the segment holds a coefficient.
        if lams.iter().any(Option::is_some) {
            return Err(err(v, "the back-substitution left the segment"));
        }
        Ok(Some(SiteRows { k, terms, anchor }))
    }
}

/// Upper bounds A_i ≥ max_q Σ_p |W_{p,q}| (the largest row sum of |Wᵀ|) per convolution
/// node (+∞ elsewhere).
pub(super) fn conv_colsums(net: &Network, preps: &[MPrep]) -> Vec<f64> {
    let mut buf = Vec::new();
    preps
        .iter()
        .enumerate()
        .map(|(i, p)| match p {
            MPrep::Conv { t_abs, n_bwd, .. } => {
                let n_out = net
                    .nodes
                    .get(i)
                    .map_or(0, |nd| net.shape(nd.output).numel());
                t_abs
                    .apply(&vec![1.0; n_out], &mut buf)
                    .into_iter()
                    .fold(0.0f64, |m, s| m.max(dot_up(s, *n_bwd)))
            }
            _ => f64::INFINITY,
        })
        .collect()
}

impl SiteRows {
    /// Tighten the forward box `r` of the site's input at η (see the module docs): each
    /// entry gets min(R_i, η·k_i + Σ_t mag(λ_{t,out})ᵀ(d_t ∘ w_t) + mag(λ_a)ᵀR_a), from the
    /// per-site d_t ∘ w_t `dw` (rounded up) and the forward boxes `rs`.
    pub(super) fn tighten(
        &self,
        eta: f64,
        r: &mut [f64],
        dw: &[Option<Vec<f64>>],
        rs: &[Option<Vec<f64>>],
    ) {
        let mut vecs: Vec<(&[u16], &[f64])> = Vec::with_capacity(self.terms.len() + 1);
        for (t, mags) in &self.terms {
            let Some(Some(d)) = dw.get(*t) else { return };
            vecs.push((mags, d));
        }
        if let Some((a, m)) = &self.anchor {
            if let Some(Some(ra)) = rs.get(*a) {
                vecs.push((m, ra));
            }
        }
        let n: usize = vecs.iter().map(|(_, d)| d.len()).sum();
        let bounds: Vec<f64> = (0..self.k.len())
            .into_par_iter()
            .map(|row| {
                let mut s = 0.0f64;
                for (m, d) in &vecs {
                    let len = d.len();
                    match m.get(row * len..(row + 1) * len) {
                        Some(m) => {
                            s += m
                                .iter()
                                .zip(*d)
                                .map(|(a, b)| bf16_value(*a) * b)
                                .sum::<f64>();
                        }
                        None => return f64::INFINITY,
                    }
                }
                let kq = self.k.get(row).copied().unwrap_or(f64::INFINITY);
                if s.is_nan() {
                    f64::INFINITY
                } else {
                    add_ru(mul_ru(eta, kq), dot_up(s, n))
                }
            })
            .collect();
        for (x, b) in r.iter_mut().zip(bounds) {
            if b < *x {
                *x = b;
            }
        }
    }
}

/// The least bfloat16 (the upper 16 bits of a binary32) ≥ v ≥ 0, as its bits (+∞ beyond
/// the range or for NaN): the storage of mag(λ), which halves the memory of binary32 at a
/// relative overestimate below 2^−7.
fn bf16_up(v: f64) -> u16 {
    let f = f32_up(v);
    if f.is_nan() {
        return 0x7F80;
    }
    let b = f.to_bits();
    let hi = (b >> 16) as u16;
    if b & 0xFFFF == 0 {
        hi
    } else {
        // The next bfloat16 up (0x7F7F + 1 is +∞).
        hi + 1
    }
}

/// The value of the bfloat16 bits `h`, exactly.
fn bf16_value(h: u16) -> f64 {
    f64::from(f32::from_bits(u32::from(h) << 16))
}

/// d_t ∘ w_t per entry of a site (rounded up) from its (s_mid, s_rad, w) and point slopes.
pub(super) fn site_dw(s: &[(f64, f64, f64)], sref: Option<&[f64]>) -> Option<Vec<f64>> {
    let sref = sref?;
    Some(
        s.iter()
            .zip(sref)
            .map(|(&(sm, sr, w), &sq)| mul_ru(mag_minus(sm, sr, sq), w))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rug::Rational;

    #[test]
    fn bf16_up_bounds_the_value_within_two_to_the_minus_seven() {
        // Golden: exact rationals of the input and of the decoded bfloat16.
        for v in [
            0.0,
            1e-45,
            1e-30,
            0.1,
            1.0 / 3.0,
            1.0,
            7.5,
            3.3e38,
            1e39,
            f64::NAN,
        ] {
            let h = bf16_up(v);
            let d = bf16_value(h);
            if v.is_nan() || v > 3.38e38 {
                assert_eq!(d, f64::INFINITY, "{v}");
                continue;
            }
            assert!(
                Rational::from_f64(d).unwrap() >= Rational::from_f64(v).unwrap(),
                "{v}"
            );
            if v > 1e-37 {
                assert!(d <= v * (1.0 + 1.0 / 128.0), "{v}: {d}");
            }
        }
        assert_eq!(bf16_value(bf16_up(0.5)), 0.5);
    }
}
