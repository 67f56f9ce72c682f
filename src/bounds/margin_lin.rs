//! The η-independent back-substitution of the noise margin and the η search (issue 13,
//! part 2; beyond the paper).
//!
//! # The math object
//! With the notation of `margin` (Δ the exact perturbation, e the site noise with
//! |e_a| ≤ η·B_a, S the slope enclosure of a site over the box the perturbation can reach),
//! fix **once per input** a point slope s_ref per site entry: the midpoint of the slope
//! enclosure on the certified trajectory ball (η = 0). For every η, exactly,
//!
//!   Δ_out = S ∘ (Δ_in + e) = s_ref ∘ (Δ_in + e) + (S − s_ref) ∘ (Δ_in + e),
//!   |(S − s_ref) ∘ (Δ_in + e)| ≤ mag(S − s_ref)·w,   w = R + η·B,
//!
//! so with λ_in = λ_out ∘ s_ref at every site (and λ ← Wᵀλ through the linear ops, as in
//! `margin`) the drop of the margin y_c − y_j satisfies
//!
//!   |Δm_j| ≤ D_j(η) = η·K_j + E_j(η),
//!   K_j = Σ_sites B_a·Σ_i mag(λ_{a,in,i}),   E_j(η) = Σ_sites Σ_i mag(λ_{a,out,i})·mag(S_i − s_ref,i)·w_i.
//!
//! Neither λ nor K_j depends on η: the back-substitution runs once per input
//! ([`Linearised`]), and each tested η costs the forward boxes and slope enclosures
//! (`MarginCertifier::forward`) plus one dot product per class and site. Compared with a
//! linearisation at the midpoint of S(η), mag(S − s_ref) ≤ |mid S − s_ref| + rad S, at most
//! 2·rad S since s_ref ∈ S (interval arithmetic is inclusion-monotone and S ⊇ the enclosure
//! on the ball).
//!
//! **Search.** η is searched on the grid 2^(k/16), −80 ≤ log₂ η ≤ 0: K gives the estimate
//! η₀ = min_j lower_j/K_j (D grows with η, so the certified η is at most about η₀), then a
//! bracket below η₀ in octave-doubling steps and bisection. Each tested η is checked in full,
//! so the reported η is certified whether or not D is monotone in η. A test stops early as
//! soon as the remainder accumulated site by site (graph order, the same upward roundings)
//! makes some η·K_j + E_j reach lower(y_c − y_j): every later share is ≥ 0 and `add_ru` is
//! monotone, so the full test would fail too; the probes, and hence η, are unchanged.
//! Max-pool nodes add Σ mag(λ)·R of their output box to E_j (`margin_pool`). (A model of the
//! remainder, E ∝ η^p, does not shorten it on ResNet-20: E jumps from ~10 to +∞ within one
//! octave where the slope enclosures of the last stage reach r̃_α′'s transition, so the
//! failing probes carry no usable value.)
//!
//! Symbols: `s_ref` s_ref, `lam` λ, `k` K_j, `mag_out` mag(λ_out).

use std::collections::BTreeMap;

use super::margin::{Drops, MPrep, MarginCertifier, NoiseMargin, Nominal, Term};
use super::round::{add_ru, dot_up, mul_ru, Ulp, U};
use super::BoundsError;
use crate::nn::NodeId;

/// The back-substitution of y_c − y_j for every class j ≠ c, linearised at the fixed point
/// slopes s_ref (see the module docs; independent of η).
#[derive(Debug, Clone, Default)]
pub(crate) struct Linearised {
    /// The classes j ≠ c, in order.
    js: Vec<usize>,
    /// K_j per entry of `js` (rounded up).
    k: Vec<f64>,
    /// Per site: s_ref per entry.
    s_ref: BTreeMap<NodeId, Vec<f64>>,
    /// Per site: per entry of `js`, mag(λ_out) per site entry (rounded up).
    mag_out: BTreeMap<NodeId, Vec<Vec<f64>>>,
    /// Per max-pool node: per entry of `js`, mag(λ) at its output (rounded up); the
    /// back-substitution stops there (`margin_pool`).
    pool_out: BTreeMap<NodeId, Vec<Vec<f64>>>,
}

/// A midpoint–radius interval vector (c ± r), one per class.
type Lam = Vec<(Vec<f64>, Vec<f64>)>;

impl Linearised {
    /// The point slopes s_ref of site `i`.
    pub(super) fn s_ref(&self, i: NodeId) -> Option<&[f64]> {
        self.s_ref.get(&i).map(Vec::as_slice)
    }
}

/// One site of the back-substitution at the point slopes `s` (midpoint–radius, outward):
/// λ_in = λ_out ∘ s as (c, r) (the rounding u·|c·s| added to the radius), mag(λ_out) per
/// entry and Σ_i mag(λ_in,i), all rounded up.
pub(super) fn site_back(c: &[f64], r: &[f64], s: &[f64]) -> (Vec<f64>, Vec<f64>, Vec<f64>, f64) {
    let mut c2 = Vec::with_capacity(c.len());
    let mut r2 = Vec::with_capacity(c.len());
    let mut mo = Vec::with_capacity(c.len());
    let mut sum = 0.0f64;
    for ((cq, rq), &sm) in c.iter().zip(r).zip(s) {
        let m = cq * sm;
        let rad = add_ru(mul_ru(*rq, sm.abs()), mul_ru(U, m.abs()));
        sum += add_ru(m.abs(), rad);
        mo.push(add_ru(cq.abs(), *rq));
        c2.push(m);
        r2.push(rad);
    }
    (c2, r2, mo, dot_up(sum, c.len()))
}

/// An upper bound of mag(S − s) for S ⊆ [sm ± sr].
pub(super) fn mag_minus(sm: f64, sr: f64, s: f64) -> f64 {
    let d = (sm - s).abs();
    // |sm − s| rounded to nearest is within u·d of the exact one: one ulp up covers it (a
    // zero difference is exact).
    let d = if d > 0.0 { d.up() } else { d };
    add_ru(d, sr)
}

/// One site's share of E_j for every entry of `lin.js` (rounded up): Σ_i mag(λ_out,i)·
/// mag(S_i − s_ref,i)·w_i, from the site's (s_mid, s_rad, w) per entry `s`.
fn site_remainder(per_j: &[Vec<f64>], s: &[(f64, f64, f64)], sref: &[f64]) -> Vec<f64> {
    // mag(S − s_ref)·w per entry, rounded up, shared by every class.
    let dw: Vec<f64> = s
        .iter()
        .zip(sref)
        .map(|(&(sm, sr, w), &sq)| mul_ru(mag_minus(sm, sr, sq), w))
        .collect();
    per_j
        .iter()
        .map(|mo| {
            let rem: f64 = mo.iter().zip(&dw).map(|(m, d)| mul_ru(*m, *d)).sum();
            dot_up(rem, mo.len())
        })
        .collect()
}

/// One max-pool node's share of E_j for every entry of `lin.js` (rounded up): Σ_i mag(λ_i)·R_i
/// with R its output box.
fn pool_remainder(per_j: &[Vec<f64>], r: &[f64]) -> Vec<f64> {
    per_j
        .iter()
        .map(|mo| {
            let rem: f64 = mo.iter().zip(r).map(|(m, d)| mul_ru(*m, *d)).sum();
            dot_up(rem, mo.len())
        })
        .collect()
}

/// The share of E_j of the site or max-pool node `i` for every entry of `lin.js` from what
/// the forward pass hands over (`None`: the back-substitution did not reach it).
fn term_remainder(lin: &Linearised, i: NodeId, term: Term<'_>) -> Option<Vec<f64>> {
    match term {
        Term::Site(s) => Some(site_remainder(lin.mag_out.get(&i)?, s, lin.s_ref.get(&i)?)),
        Term::Pool(r) => Some(pool_remainder(lin.pool_out.get(&i)?, r)),
    }
}

#[cfg(test)]
/// The slope side of one evaluation: E_j per entry of `lin.js` (rounded up) and, for the
/// entry `jpos`, each site's share.
fn remainder(
    lin: &Linearised,
    slopes: &super::margin::SiteSlopes,
    pool_box: impl Fn(NodeId) -> Option<Vec<f64>>,
    jpos: Option<usize>,
) -> Result<(Vec<f64>, BTreeMap<NodeId, f64>), usize> {
    let mut es = vec![0.0f64; lin.js.len()];
    let mut shares = BTreeMap::new();
    // Sites and max-pool nodes in graph order (the order of `drops_early`).
    let mut nodes: Vec<NodeId> = lin
        .mag_out
        .keys()
        .chain(lin.pool_out.keys())
        .copied()
        .collect();
    nodes.sort_unstable();
    for i in nodes {
        let rems = if let Some(per_j) = lin.pool_out.get(&i) {
            pool_remainder(per_j, &pool_box(i).ok_or(i)?)
        } else {
            let (Some(per_j), Some(Some(s)), Some(sref)) =
                (lin.mag_out.get(&i), slopes.get(i), lin.s_ref.get(&i))
            else {
                return Err(i);
            };
            site_remainder(per_j, s, sref)
        };
        for (ci, rem) in rems.into_iter().enumerate() {
            if let Some(e) = es.get_mut(ci) {
                *e = add_ru(*e, rem);
            }
            if jpos == Some(ci) {
                shares.insert(i, rem);
            }
        }
    }
    Ok((es, shares))
}

impl MarginCertifier {
    /// The back-substitution of every margin y_c − y_j (j ≠ c) at the point slopes `s_ref`
    /// (see the module docs), and with `lambda_for = Some(j)` the midpoints of λ_in at every
    /// site for class j (the adversarial direction).
    ///
    /// # Errors
    /// [`BoundsError::NoiseMargin`] when a site has no point slopes.
    pub(crate) fn linearise(
        &self,
        class: usize,
        s_ref: BTreeMap<NodeId, Vec<f64>>,
        lambda_for: Option<usize>,
    ) -> Result<(Linearised, BTreeMap<NodeId, Vec<f64>>), BoundsError> {
        let net = &*self.net;
        let live = |v: usize| self.live.get(v).copied().unwrap_or(false);
        let n_out = net.output_shape().numel();
        let js: Vec<usize> = (0..n_out).filter(|&j| j != class).collect();
        let mut lams: Vec<Option<Lam>> = vec![None; net.values.len()];
        let init: Lam = js
            .iter()
            .map(|&j| {
                let mut c = vec![0.0; n_out];
                if let Some(v) = c.get_mut(class) {
                    *v = 1.0;
                }
                if let Some(v) = c.get_mut(j) {
                    *v = -1.0;
                }
                (c, vec![0.0; n_out])
            })
            .collect();
        if let Some(s) = lams.get_mut(net.output) {
            *s = Some(init);
        }
        let mut ks = vec![0.0f64; js.len()];
        let mut mag_out = BTreeMap::new();
        let mut pool_out = BTreeMap::new();
        let mut lambda = BTreeMap::new();
        let (mut buf, mut buf2) = (Vec::new(), Vec::new());
        let jpos = lambda_for.and_then(|j| js.iter().position(|&q| q == j));
        for (i, (node, prep)) in net.nodes.iter().zip(&self.preps).enumerate().rev() {
            let Some(lam) = lams.get_mut(node.output).and_then(Option::take) else {
                continue;
            };
            let in0 = node.inputs.first().copied().unwrap_or(usize::MAX);
            if matches!(prep, MPrep::MaxPool(_)) {
                // The output box stands for every perturbation before it (`margin_pool`).
                let mags = lam
                    .iter()
                    .map(|(c, r)| {
                        c.iter()
                            .zip(r)
                            .map(|(cq, rq)| add_ru(cq.abs(), *rq))
                            .collect()
                    })
                    .collect();
                pool_out.insert(i, mags);
                continue;
            }
            let back: Lam = match prep {
                MPrep::Site => {
                    let b = self.ranges.get(&i).copied().unwrap_or(f64::NAN);
                    let s = s_ref
                        .get(&i)
                        .ok_or_else(|| super::margin::margin_err(net, i, "no point slopes"))?;
                    let mut out = Vec::with_capacity(lam.len());
                    let mut mags = Vec::with_capacity(lam.len());
                    for (ci, (c, r)) in lam.iter().enumerate() {
                        let (c2, r2, mo, sum) = site_back(c, r, s);
                        if let Some(kj) = ks.get_mut(ci) {
                            *kj = add_ru(*kj, mul_ru(b, sum));
                        }
                        if jpos == Some(ci) {
                            lambda.insert(i, c2.clone());
                        }
                        mags.push(mo);
                        out.push((c2, r2));
                    }
                    mag_out.insert(i, mags);
                    out
                }
                _ => self.back_lin(i, lam, &mut buf, &mut buf2),
            };
            let upd = |v: usize, lams: &mut Vec<Option<Lam>>, l: Lam| {
                if live(v) {
                    if let Some(slot) = lams.get_mut(v) {
                        super::margin::acc_into(slot, l);
                    }
                }
            };
            if matches!(prep, MPrep::Add) {
                if let Some(&in1) = node.inputs.get(1) {
                    upd(in1, &mut lams, back.clone());
                }
            }
            upd(in0, &mut lams, back);
        }
        Ok((
            Linearised {
                js,
                k: ks,
                s_ref,
                mag_out,
                pool_out,
            },
            lambda,
        ))
    }

    #[cfg(test)]
    /// K_j and D_j(η) for every class (see the module docs); with `lambda_for = Some(j)` also
    /// the midpoints of λ_in at every site and each site's share of E_j(η) for class j.
    ///
    /// # Errors
    /// [`BoundsError::NoiseMargin`] when a site ball or its slopes are missing.
    pub(crate) fn drops(
        &self,
        nom: &Nominal,
        eta: f64,
        lambda_for: Option<usize>,
    ) -> Result<Drops, BoundsError> {
        let lin = &nom.lin;
        let (boxes, slopes) = self.forward(nom, eta)?;
        let jpos = lambda_for.and_then(|j| lin.js.iter().position(|&q| q == j));
        let pool_box = |i: NodeId| {
            let v = self.net.nodes.get(i)?.output;
            boxes.get(v)?.clone()
        };
        let (es, remainder) = remainder(lin, &slopes, pool_box, jpos)
            .map_err(|i| super::margin::margin_err(&self.net, i, "site slopes not computed"))?;
        let lambda = match lambda_for {
            Some(j) => self.linearise(nom.class, lin.s_ref.clone(), Some(j))?.1,
            None => BTreeMap::new(),
        };
        let seen = lin.mag_out.len() + lin.pool_out.len();
        Ok(Drops {
            lambda,
            remainder,
            ..self.drops_of(nom, eta, es, seen)?
        })
    }

    /// D_j(η) as [`Self::drops`] (without λ or the per-site shares), or `None` as soon as
    /// the test at η must fail: E_j is accumulated site by site during the forward pass in
    /// the same order and with the same upward roundings, each share is ≥ 0 and `add_ru` is
    /// monotone, so once η·K_j + (E_j so far) ≥ lower(y_c − y_j) (or is NaN) for some j the
    /// full D_j is too and [`Self::holds`] would be false. The verdict is thus exactly that
    /// of [`Self::drops`] and [`Self::holds`]; only failing tests get cheaper.
    ///
    /// # Errors
    /// As [`Self::drops`].
    pub(crate) fn drops_early(
        &self,
        nom: &Nominal,
        eta: f64,
    ) -> Result<Option<Drops>, BoundsError> {
        let lin = &nom.lin;
        let margin_of = |ci: usize| nom.margin_of(ci);
        let mut es = vec![0.0f64; lin.js.len()];
        let mut seen = 0usize;
        let fw = self.forward_with(nom, eta, &mut |i, term| {
            let Some(rems) = term_remainder(lin, i, term) else {
                return true;
            };
            seen += 1;
            for (ci, rem) in rems.into_iter().enumerate() {
                if let Some(e) = es.get_mut(ci) {
                    *e = add_ru(*e, rem);
                }
            }
            lin.k
                .iter()
                .zip(&es)
                .enumerate()
                .all(|(ci, (&kj, &e))| add_ru(mul_ru(eta, kj), e) < margin_of(ci))
        })?;
        if fw.is_none() {
            return Ok(None);
        }
        Ok(Some(self.drops_of(nom, eta, es, seen)?))
    }

    /// D_j(η) = η·K_j + E_j per class from the accumulated E_j of `seen` sites and max-pool
    /// nodes.
    ///
    /// # Errors
    /// [`BoundsError::NoiseMargin`] when not every term of the back-substitution was seen.
    fn drops_of(
        &self,
        nom: &Nominal,
        eta: f64,
        es: Vec<f64>,
        seen: usize,
    ) -> Result<Drops, BoundsError> {
        let lin = &nom.lin;
        if seen != lin.mag_out.len() + lin.pool_out.len() {
            return Err(super::margin::margin_err(
                &self.net,
                0,
                "site slopes not computed",
            ));
        }
        let n_out = self.net.output_shape().numel();
        let mut d = vec![0.0f64; n_out];
        let mut k = vec![0.0f64; n_out];
        for ((&j, &kj), ej) in lin.js.iter().zip(&lin.k).zip(es) {
            if let (Some(s), Some(t)) = (d.get_mut(j), k.get_mut(j)) {
                *s = add_ru(mul_ru(eta, kj), ej);
                *t = kj;
            }
        }
        Ok(Drops {
            k,
            d,
            lambda: BTreeMap::new(),
            remainder: BTreeMap::new(),
        })
    }

    /// D_j(η) from the full forward pass (no early exit), as [`Self::drops_early`] returns
    /// it when the test does not stop.
    ///
    /// # Errors
    /// As [`Self::drops_early`].
    fn drops_full(&self, nom: &Nominal, eta: f64) -> Result<Option<Drops>, BoundsError> {
        let lin = &nom.lin;
        let mut es = vec![0.0f64; lin.js.len()];
        let mut seen = 0usize;
        self.forward_with(nom, eta, &mut |i, term| {
            let Some(rems) = term_remainder(lin, i, term) else {
                return true;
            };
            seen += 1;
            for (e, rem) in es.iter_mut().zip(rems) {
                *e = add_ru(*e, rem);
            }
            true
        })?;
        Ok(Some(self.drops_of(nom, eta, es, seen)?))
    }

    /// The η search on the grid 2^(k/16) (see the module docs).
    ///
    /// # Errors
    /// As [`Self::drops`].
    pub(crate) fn search(
        &self,
        nom: &Nominal,
        alpha: u32,
    ) -> Result<Option<NoiseMargin>, BoundsError> {
        self.search_with(nom, alpha, true)
    }

    /// [`Self::search`] with (`early`) or without the early exit of failing tests
    /// ([`Self::drops_early`]); both give the same result.
    ///
    /// # Errors
    /// As [`Self::drops`].
    pub(crate) fn search_with(
        &self,
        nom: &Nominal,
        alpha: u32,
        early: bool,
    ) -> Result<Option<NoiseMargin>, BoundsError> {
        let spo = super::margin::STEPS_PER_OCTAVE;
        let kmin = super::margin::LOG2_ETA_MIN * spo;
        let eta_of = |k: i32| (f64::from(k) / f64::from(spo)).exp2();
        let lin = &nom.lin;
        let margin_of = |ci: usize| nom.margin_of(ci);
        // Estimate η₀ = min_j lower_j / K_j (the linearisation, one back-substitution).
        let mut est = f64::INFINITY;
        for (ci, &kj) in lin.k.iter().enumerate() {
            est = est.min(margin_of(ci) / kj);
        }
        let k0 = if est.is_nan() {
            kmin
        } else if est >= 1.0 {
            0
        } else {
            // The grid point at or below η₀ (clamped to the searched range).
            let l = (est.log2() * f64::from(spo)).floor();
            if l < f64::from(kmin) {
                kmin
            } else {
                l as i32
            }
        };
        let mut evals = 1usize;
        let mut best: Option<Drops> = None;
        let mut check = |k: i32| -> Result<bool, BoundsError> {
            evals += 1;
            let d = if early {
                self.drops_early(nom, eta_of(k))?
            } else {
                self.drops_full(nom, eta_of(k))?
            };
            let Some(d) = d else {
                return Ok(false);
            };
            let ok = Self::holds(nom, &d);
            if ok {
                best = Some(d);
            }
            Ok(ok)
        };
        // Bracket [lo, hi): lo certified, hi not (None: lo is the top of the range).
        let mut lo;
        let mut hi = None;
        if check(k0)? {
            lo = k0;
            // η₀ is an estimate, not a bound: look above it in growing steps.
            let mut step = 1;
            while lo < 0 {
                let next = (lo + step).min(0);
                if check(next)? {
                    lo = next;
                    step *= 2;
                } else {
                    hi = Some(next);
                    break;
                }
            }
        } else {
            hi = Some(k0);
            let mut step = spo;
            let mut k = k0;
            loop {
                if k == kmin {
                    return Ok(None);
                }
                let next = (k - step).max(kmin);
                if check(next)? {
                    lo = next;
                    break;
                }
                hi = Some(next);
                k = next;
                step *= 2;
            }
        }
        if let Some(mut h) = hi {
            while h - lo > 1 {
                let mid = lo + (h - lo) / 2;
                if check(mid)? {
                    lo = mid;
                } else {
                    h = mid;
                }
            }
        }
        let lo = Some(lo);
        let (Some(lo), Some(d)) = (lo, best) else {
            return Ok(None);
        };
        let mut tight: Option<(usize, f64, f64)> = None;
        for (j, (&m, &drop)) in nom.margins.iter().zip(&d.d).enumerate() {
            if j == nom.class {
                continue;
            }
            if tight.is_none_or(|(_, bm, bd)| m - drop < bm - bd) {
                tight = Some((j, m, drop));
            }
        }
        let Some((tightest, margin_lower, drop_bound)) = tight else {
            return Ok(None);
        };
        Ok(Some(NoiseMargin {
            alpha,
            class: nom.class,
            eta: eta_of(lo),
            log2_eta: f64::from(lo) / f64::from(spo),
            tightest,
            margin_lower,
            drop_bound,
            evaluations: evals,
            log2_eta_first_order: est.log2(),
        }))
    }

    /// Whether lower(y_c − y_j) > D_j(η) for every j ≠ c.
    pub(crate) fn holds(nom: &Nominal, d: &Drops) -> bool {
        nom.margins
            .iter()
            .zip(&d.d)
            .enumerate()
            .all(|(j, (&m, &dj))| j == nom.class || dj < m)
    }
}

impl Nominal {
    /// The certified margin y_c − y_j of the `ci`-th competing class of the linearisation
    /// (NaN when out of range).
    fn margin_of(&self, ci: usize) -> f64 {
        self.lin
            .js
            .get(ci)
            .and_then(|&j| self.margins.get(j))
            .copied()
            .unwrap_or(f64::NAN)
    }
}
