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
//! **Forward box.** The certificate's ball evaluation of the tree (`trajectory_ops::max_tree`,
//! a mean-value enclosure on each max2 with the derivative of d·p(d) enclosed over the
//! ball of d = a − b) encloses M over every input in its balls. With the nominal input
//! balls ⟨m_i, ρ_i⟩ and the forward boxes R_i ≥ |Δx_i|, evaluating it once on ⟨m_i, ρ_i⟩
//! (giving ⟨M₀, r₀⟩ ∋ the nominal output) and once on ⟨m_i, ρ_i + R_i/B′⟩ with every
//! max2's first operand widened by η (`max_tree_noisy`, giving ⟨M₁, r₁⟩ ∋ every perturbed
//! output) bounds the output's change by
//!
//!   |Δ| ≤ B′·(|M₁ − M₀| + r₁ + r₀)   (rounded up).
//!
//! M̃ is not 1-Lipschitz (its slopes (1 ± g)/2, g = p(d) + d·p′(d), exceed 1 near d = 0), so
//! the interval maximum of the input boxes would not be sound; the ball evaluation is.
//!
//! **Back-substitution.** The back-substitution of the margins stops at a max-pool output:
//! its perturbation is treated as an independent input bounded by the box above, so the
//! drop gains Σ_i mag(λ_i)·R_i there (part of the η-dependent remainder E_j, see `margin_lin`),
//! and the sites before the max-pool enter only through that box. This is sound for any
//! sign pattern of the perturbations and needs no linear relaxation of M̃.
//!
//! Symbols: `bp` B′, `r_in` R at the input, `eta` η.

use rug::Integer;

use super::fixed::{div_dyadic_floor, dyadic_of_f64, fixed_mag, FixedSign, Frac};
use super::margin::{margin_err, MarginCertifier, Nominal};
use super::round::{add_ru, div_ru, mul_ru};
use super::trajectory_ops::{max_tree, max_tree_noisy};
use super::BoundsError;
use crate::nn::{NodeId, SignKernel};

/// The polynomial maximum as the certificate evaluated it for one input: the composite
/// sign polynomial at the trajectory's precision and the f64 kernel (for B′).
#[derive(Debug, Clone)]
pub(super) struct PoolNom {
    pub(super) sign: FixedSign,
    pub(super) kernel: SignKernel,
    pub(super) f: Frac,
}

impl MarginCertifier {
    /// The forward box R of the output of max-pool node `i` (windows `wins`) at η, from the
    /// box `r_in` of its input (`None`: Δ = 0 there; see the module docs). A window whose
    /// enclosure fails (an input ball outside the polynomial's range) gets +∞.
    ///
    /// # Errors
    /// [`BoundsError::NoiseMargin`] when the node's trajectory balls or the polynomial are
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
        let pool = nom
            .pool
            .as_ref()
            .ok_or_else(|| margin_err(net, i, "no max-pool polynomial"))?;
        let ball = nom
            .sites
            .get(&i)
            .and_then(|r| r.pool_in.as_ref())
            .ok_or_else(|| margin_err(net, i, "no trajectory ball for this max-pool"))?;
        let b = self.ranges.get(&i).copied().unwrap_or(f64::NAN);
        let f = pool.f;
        let ulp = f.ulp();
        let half = Integer::from(1) << (f.0 - 1);
        let mut out = Vec::with_capacity(wins.len());
        let (mut ys0, mut ys1) = (Vec::new(), Vec::new());
        for w in wins {
            let bp = pool.kernel.b_prime(b, w.len());
            let Some(bpd) = dyadic_of_f64(bp).filter(|_| bp.is_finite() && bp > 0.0) else {
                out.push(f64::INFINITY);
                continue;
            };
            ys0.clear();
            ys1.clear();
            for &j in w {
                let (Some(m), Some(r)) = (ball.mid.get(j), ball.rad.get(j)) else {
                    continue;
                };
                // y = x/B′ + ½: floor error < ulp (as the certificate).
                let mut y = div_dyadic_floor(m, &bpd);
                y += &half;
                let r0 = add_ru(div_ru(*r, bp), ulp);
                let dx = r_in.map_or(0.0, |v| v.get(j).copied().unwrap_or(f64::INFINITY));
                ys1.push((y.clone(), add_ru(r0, div_ru(dx, bp))));
                ys0.push((y, r0));
            }
            if ys0.len() != w.len() {
                out.push(f64::INFINITY);
                continue;
            }
            let (m0, r0) = max_tree(&pool.sign, &ys0, f);
            let (m1, r1) = max_tree_noisy(&pool.sign, &ys1, f, eta);
            let dm = fixed_mag(&Integer::from(&m1 - &m0), f);
            let d = add_ru(add_ru(dm, r1), r0);
            out.push(if d.is_nan() {
                f64::INFINITY
            } else {
                mul_ru(bp, d)
            });
        }
        Ok(out)
    }
}
