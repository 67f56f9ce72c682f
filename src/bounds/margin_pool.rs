//! Max-pool nodes in the noise margin (issue 13, part 2; beyond the paper): the forward box of
//! the perturbation at the output of M̃_{α,n} (Eq. 6), the polynomial maximum that replaces
//! MaxPool in F^α.
//!
//! # The math object
//! Per window of n inputs x_1..x_n, F^α normalises y_i = x_i/B′ + ½ (B′ of Eq. 7 for the
//! window size) and evaluates the tree M of pairwise maxima max2(a, b) = (a + b)/2 +
//! (a − b)·p(a − b)/2 = b + r̃(a − b), r̃(ξ) = ξ·(1 + p(ξ))/2 (n = 2k: halves; n = 2k + 1:
//! k and k + 1, as the engine), then outputs B′·(M − ½). CKKS noise enters every sign
//! polynomial's input a − b: we model it as a perturbation e with |e| ≤ η·B′ (η in the
//! normalised units), which is the same as evaluating max2(a + e, b).
//!
//! **Forward box.** For one pairwise maximum t = b + r̃(d + e), d = a − b, exactly
//! Δt = Δb + r̃(d + Δa − Δb + e) − r̃(d) = (1 − S)·Δb + S·(Δa + e) with S = r̃′(ξ) at some ξ
//! between d and d + Δa − Δb + e (mean-value theorem). The certificate's tree evaluation
//! records, per pairwise maximum, an enclosure X of the exact nominal d and the chain of p at
//! its midpoint (`trajectory_ops::max_tree_with`), so ξ ∈ [X ± (R_a + R_b + η)] and S is
//! enclosed there by `margin_slope` (range 1, the same centred form as the ReLU sites). Hence
//!
//!   |Δt| ≤ mag(1 − S)·R_b + mag(S)·(R_a + η)   (rounded up),
//!
//! from the leaves R_i/B′ up the tree, and the output box is B′·R_root. M̃ is not
//! 1-Lipschitz (S reaches ±14 near d = 0 at α = 14), so the interval maximum of the input
//! boxes would not be sound. (A ball evaluation of M̃ on the widened input balls, as the
//! certificate does, is sound too but useless here: its monomial derivative enclosures
//! multiply a radius of 10^−9 by ~10^20.)
//!
//! **Back-substitution.** The back-substitution of the margins stops at a max-pool output:
//! its perturbation is treated as an independent input bounded by the box above, so the
//! drop gains Σ_i mag(λ_i)·R_i there (part of the η-dependent remainder E_j, see `margin_lin`),
//! and the sites before the max-pool enter only through that box. This is sound for any
//! sign pattern of the perturbations and needs no linear relaxation of M̃.
//!
//! Symbols: `bp` B′, `r_in` R at the input, `eta` η.

use std::collections::BTreeMap;

use inari::{const_interval, Interval};

use super::fixed::mag;
use super::margin::{margin_err, MarginCertifier, Nominal};
use super::margin_slope::{Ball, IntervalSign};
use super::round::{add_ru, div_ru, mul_ru, Ulp};
use super::trajectory::SiteRec;
use super::BoundsError;
use crate::nn::{NodeId, SignKernel};

/// The polynomial maximum's data for one input: the f64 kernel (for B′) and, per max-pool
/// node, the Taylor coefficients at the chain of every pairwise maximum
/// ([`IntervalSign::taylor`], concatenated in the order of the record).
#[derive(Debug, Clone)]
pub(super) struct PoolNom {
    pub(super) kernel: SignKernel,
    pub(super) taylor: BTreeMap<NodeId, Vec<Ball>>,
}

/// What the tree recursion of one max-pool node reads.
struct Tree<'a> {
    sign: &'a IntervalSign,
    rec: &'a SiteRec,
    taylor: &'a [Ball],
    eta: f64,
}

impl Tree<'_> {
    /// The box of the tree's output over the leaves' boxes `rs` (normalised units), taking
    /// the pairwise maxima from entry `*q` of the record on, in post-order.
    fn eval(&self, rs: &[f64], q: &mut usize) -> f64 {
        match rs {
            [] => f64::INFINITY,
            [r] => *r,
            _ => {
                let (l, r) = rs.split_at(rs.len() / 2);
                let ra = self.eval(l, q);
                let rb = self.eval(r, q);
                let e = *q;
                *q += 1;
                let st = self.rec.stride.max(1);
                let tl = self.sign.taylor_len();
                let (Some(x), Some(chain), Some(tay)) = (
                    self.rec.x.get(e),
                    self.rec.chain.get(e * st..(e + 1) * st),
                    self.taylor.get(e * tl..(e + 1) * tl),
                ) else {
                    return f64::INFINITY;
                };
                let w = add_ru(add_ru(ra, rb), self.eta);
                let (lo, hi) = ((x.inf() - w).down(), (x.sup() + w).up());
                let xi = Interval::try_from((lo, hi)).unwrap_or(Interval::ENTIRE);
                let s = self.sign.relu_slope(xi, 1.0, chain, tay);
                let t = mul_ru(mag(const_interval!(1.0, 1.0) - s), rb);
                add_ru(t, mul_ru(mag(s), add_ru(ra, self.eta)))
            }
        }
    }
}

impl MarginCertifier {
    /// The forward box R of the output of max-pool node `i` (windows `wins`) at η, from the
    /// box `r_in` of its input (`None`: Δ = 0 there; see the module docs).
    ///
    /// # Errors
    /// [`BoundsError::NoiseMargin`] when the node's record or Taylor coefficients are
    /// missing.
    pub(super) fn pool_box(
        &self,
        i: NodeId,
        wins: &[Vec<usize>],
        nom: &Nominal,
        eta: f64,
        r_in: Option<&[f64]>,
    ) -> Result<Vec<f64>, BoundsError> {
        let net = &*self.net;
        let err = |what: &str| margin_err(net, i, what.to_string());
        let pool = nom
            .pool
            .as_ref()
            .ok_or_else(|| err("no max-pool polynomial"))?;
        let tree = Tree {
            sign: self
                .sign_of(nom)
                .ok_or_else(|| err("no polynomial for this α"))?,
            rec: nom
                .sites
                .get(&i)
                .ok_or_else(|| err("no trajectory record for this max-pool"))?,
            taylor: pool
                .taylor
                .get(&i)
                .ok_or_else(|| err("no Taylor coefficients for this max-pool"))?,
            eta,
        };
        let b = self.ranges.get(&i).copied().unwrap_or(f64::NAN);
        let mut q = 0usize;
        let mut out = Vec::with_capacity(wins.len());
        for w in wins {
            let bp = pool.kernel.b_prime(b, w.len());
            let rs: Vec<f64> = w
                .iter()
                .map(|&j| {
                    let r = r_in.map_or(0.0, |v| v.get(j).copied().unwrap_or(f64::INFINITY));
                    div_ru(r, bp)
                })
                .collect();
            let r = tree.eval(&rs, &mut q);
            out.push(if bp.is_finite() && bp > 0.0 && !r.is_nan() {
                mul_ru(bp, r)
            } else {
                f64::INFINITY
            });
        }
        Ok(out)
    }
}
