//! The composite minimax sign polynomial p = p_k ∘ … ∘ p_1 of Lee–Lee–No–Kim (paper §2.2,
//! Table 1): p_1 is the odd minimax approximation of sgn on [−1,−ε] ∪ [ε,1], τ_1 its minimax
//! error; p_{i+1} is the odd minimax approximation of sgn on [−1−τ_i,−1+τ_i] ∪ [1−τ_i,1+τ_i].
//! Every x ∈ [ε, 1] is mapped by p_i ∘ … ∘ p_1 into [1−τ_i, 1+τ_i], so p is (β, ε)-close
//! (|p(x) − sgn x| ≤ 2^−β on [−1,1] \ (−ε, ε)) as soon as τ_k ≤ 2^−β.
//!
//! Stored values (what is printed, written to proofs and certified):
//! - coefficients: each component's power-basis coefficients rounded to nearest at
//!   `256 + max(0, e)` bits, e the largest binary exponent among that component's
//!   coefficients (so every coefficient is exact to 2^−256 relative or absolute, whichever is
//!   coarser);
//! - τ_i: the measured minimax error (largest |e| found by the Remez exchange on a
//!   multi-precision grid plus Newton refinement) rounded *up* to 64 bits. τ_i is measured,
//!   not certified: `certify` owns the enclosure.

use rug::float::Round;
use rug::ops::AssignRound;
use rug::Float;

use super::exchange::{remez, Minimax};
use super::RemezError;
use crate::poly::{chebyshev_affine_to_power, CompositePoly, Degree, OddPoly};

/// Significant bits kept for every stored coefficient (plus the coefficient's integer bits).
pub const STORED_COEFF_BITS: u32 = 256;
/// Bits τ_i is rounded up to.
pub const TAU_BITS: u32 = 64;
/// Largest degree accepted for one component.
pub const MAX_DEGREE: u32 = 255;

/// One stage p_i of the composite: its interval [a, b] and minimax error.
#[derive(Debug, Clone)]
pub struct SignStage {
    /// Left end of the positive approximation interval (ε for stage 1, 1 − τ_{i−1} after).
    pub a: Float,
    /// Right end (1 for stage 1, 1 + τ_{i−1} after).
    pub b: Float,
    /// Measured minimax error τ_i (rounded up to [`TAU_BITS`] bits).
    pub tau: Float,
    /// Remez working precision used (bits).
    pub work_prec: u32,
    /// Remez exchange iterations.
    pub iterations: u32,
    /// The final alternation points x_0 < … < x_n of the equioscillation (positive side).
    pub extrema: Vec<Float>,
    /// e(x_j) = 1 − p_i(x_j) at the alternation points (alternating signs, |·| ≈ τ_i).
    pub extrema_err: Vec<Float>,
}

/// A composite minimax sign polynomial with its construction record (paper §2.2, Table 1).
#[derive(Debug, Clone)]
pub struct CompositeSign {
    pub(crate) poly: CompositePoly,
    pub(crate) stages: Vec<SignStage>,
    pub(crate) taus: Vec<Float>,
    pub(crate) eps: Float,
    pub(crate) zeta: Option<u32>,
    pub(crate) alpha: Option<u32>,
}

impl CompositeSign {
    /// The composite polynomial p = p_k ∘ … ∘ p_1 (components in application order).
    pub fn poly(&self) -> &CompositePoly {
        &self.poly
    }
    /// τ_i per stage (measured minimax errors, rounded up to 64 bits); the last one is the
    /// closeness of the composite on [ε, 1].
    pub fn taus(&self) -> &[Float] {
        &self.taus
    }
    /// The final τ_k.
    pub fn tau(&self) -> &Float {
        // `taus` is never empty: composite_sign refuses an empty degree list.
        self.taus.last().unwrap_or(&self.eps)
    }
    /// ε: p approximates sgn on [−1, −ε] ∪ [ε, 1].
    pub fn eps(&self) -> &Float {
        &self.eps
    }
    /// Component degrees in application order.
    pub fn degrees(&self) -> Vec<Degree> {
        self.poly.degrees()
    }
    /// ζ with ε = ζ·2^−α, when built from (α, ζ) (Table 1).
    pub fn zeta(&self) -> Option<u32> {
        self.zeta
    }
    /// α, when built for a precision parameter (β = α − 1).
    pub fn alpha(&self) -> Option<u32> {
        self.alpha
    }
    /// Σ ⌈log₂(d_i+1)⌉, the depth of p alone. Table 1's depth column is `depth() + 1` (the
    /// final multiplication by x in r_α and m_α), see [`CompositeSign::table_depth`].
    pub fn depth(&self) -> u32 {
        self.poly.depth()
    }
    /// Table 1's depth: [`CompositeSign::depth`] + 1.
    pub fn table_depth(&self) -> u32 {
        self.depth() + 1
    }
    /// The per-stage construction record.
    pub fn stages(&self) -> &[SignStage] {
        &self.stages
    }
    /// log₂ τ_k (for reports).
    pub fn log2_tau(&self) -> f64 {
        self.tau().to_f64().log2()
    }
}

/// Working precision (bits) of the Remez exchange on [a, b] with n odd coefficients:
/// 192 bits, plus log₂(b/a) (the Chebyshev coefficients of q grow like b/a when a → 0),
/// plus 2n (accumulated rounding in Clenshaw and in the elimination).
pub(crate) fn work_precision(a: f64, b: f64, n: usize) -> u32 {
    let ratio_bits = (b / a).log2().ceil().max(0.0) as u32;
    192 + ratio_bits + 2 * u32::try_from(n).unwrap_or(u32::MAX / 4)
}

/// Round `x` up (toward +∞) to `bits` bits.
fn round_up(x: &Float, bits: u32) -> Float {
    let mut r = Float::new(bits);
    let _ = r.assign_round(x, Round::Up);
    r
}

/// Check a degree list: non-empty, odd, 1 ≤ d ≤ [`MAX_DEGREE`].
pub(crate) fn check_degrees(degrees: &[Degree]) -> Result<(), RemezError> {
    if degrees.is_empty() {
        return Err(RemezError::NoDegrees);
    }
    for (index, d) in degrees.iter().enumerate() {
        if d.0 % 2 == 0 {
            return Err(RemezError::EvenDegree { index, degree: d.0 });
        }
        if d.0 > MAX_DEGREE {
            return Err(RemezError::DegreeTooLarge {
                index,
                degree: d.0,
                max: MAX_DEGREE,
            });
        }
    }
    Ok(())
}

/// Check ε ∈ (0, 1).
pub(crate) fn check_eps(eps: &Float) -> Result<(), RemezError> {
    if !(eps.is_finite() && *eps > 0 && *eps < 1) {
        return Err(RemezError::EpsOutOfRange {
            eps: eps.to_string(),
        });
    }
    Ok(())
}

/// One odd minimax stage on [a, b] at multi-precision, converted to a stored [`OddPoly`].
pub(crate) fn minimax_stage(
    a: &Float,
    b: &Float,
    degree: Degree,
) -> Result<(OddPoly, SignStage), RemezError> {
    let n = (degree.0 as usize).div_ceil(2);
    let prec = work_precision(a.to_f64(), b.to_f64(), n);
    let aw = Float::with_val(prec, a);
    let bw = Float::with_val(prec, b);
    let mm: Minimax<Float> = remez(&aw, &bw, n, 2f64.powi(-60), 60)?;
    // q(t) = Σ γ_k T_k(u), u = c1·(t − a²) − 1 = c1·t − (1 + c1·a²), c1 = 2/(b² − a²).
    // The substitution multiplies coefficient k by up to (|c1| + |c0|)^k: give it the room.
    let c1_f = 2.0 / (b.to_f64().powi(2) - a.to_f64().powi(2));
    let growth = (c1_f.abs() * (1.0 + b.to_f64().powi(2)) + 1.0)
        .log2()
        .ceil()
        .max(0.0) as u32;
    let conv_prec = prec + growth * u32::try_from(n).unwrap_or(u32::MAX / 64) + 64;
    let a_c = Float::with_val(conv_prec, a);
    let b_c = Float::with_val(conv_prec, b);
    let a2 = Float::with_val(conv_prec, &a_c * &a_c);
    let b2 = Float::with_val(conv_prec, &b_c * &b_c);
    let c1 = Float::with_val(conv_prec, 2) / Float::with_val(conv_prec, &b2 - &a2);
    let c0 = Float::with_val(conv_prec, -(Float::with_val(conv_prec, &c1 * &a2) + 1u32));
    let gamma: Vec<Float> = mm
        .gamma
        .iter()
        .map(|g| Float::with_val(conv_prec, g))
        .collect();
    let power = chebyshev_affine_to_power(&gamma, &c1, &c0, conv_prec);
    let max_exp = power
        .iter()
        .filter_map(Float::get_exp)
        .max()
        .unwrap_or(0)
        .max(0);
    let store_bits = STORED_COEFF_BITS + u32::try_from(max_exp).unwrap_or(0);
    let stored: Vec<Float> = power
        .iter()
        .map(|c| Float::with_val(store_bits, c))
        .collect();
    let poly = OddPoly::from_odd_coeffs(stored).map_err(|e| RemezError::Internal {
        what: format!("stored polynomial of degree {degree}: {e}"),
    })?;
    let stage = SignStage {
        a: a.clone(),
        b: b.clone(),
        tau: round_up(&mm.max_err, TAU_BITS),
        work_prec: prec,
        iterations: mm.iterations,
        extrema: mm.extrema,
        extrema_err: mm.extrema_err,
    };
    Ok((poly, stage))
}

/// Build the composite minimax sign polynomial for ε and the given component degrees
/// (Lee–Lee–No–Kim; paper §2.2): p_1 on [ε, 1], then p_{i+1} on [1−τ_i, 1+τ_i].
///
/// # Errors
/// [`RemezError::EpsOutOfRange`] unless 0 < ε < 1; [`RemezError::NoDegrees`],
/// [`RemezError::EvenDegree`], [`RemezError::DegreeTooLarge`] for a bad degree list; a Remez
/// failure (singular system, no convergence) with the stage's interval.
pub fn composite_sign(eps: &Float, degrees: &[Degree]) -> Result<CompositeSign, RemezError> {
    check_eps(eps)?;
    check_degrees(degrees)?;
    let mut a = Float::with_val(eps.prec().max(64), eps);
    let mut b = Float::with_val(64, 1);
    let mut comps = Vec::with_capacity(degrees.len());
    let mut stages = Vec::with_capacity(degrees.len());
    let mut taus = Vec::with_capacity(degrees.len());
    for d in degrees {
        let (p, st) = minimax_stage(&a, &b, *d)?;
        let tau = st.tau.clone();
        if tau >= 1 {
            return Err(RemezError::Internal {
                what: format!("stage of degree {d} on [{a}, {b}] has minimax error τ = {tau} ≥ 1"),
            });
        }
        a = Float::with_val(TAU_BITS + 2, 1 - &tau);
        b = Float::with_val(TAU_BITS + 2, 1 + &tau);
        comps.push(p);
        stages.push(st);
        taus.push(tau);
    }
    let poly = CompositePoly::new(comps).map_err(|e| RemezError::Internal {
        what: e.to_string(),
    })?;
    Ok(CompositeSign {
        poly,
        stages,
        taus,
        eps: eps.clone(),
        zeta: None,
        alpha: None,
    })
}

/// The paper's Table 1: (α, ζ, degrees, depth) for α = 4..14 (depth includes the final ×x).
pub const TABLE1: [(u32, u32, &[u32], u32); 11] = [
    (4, 5, &[5], 4),
    (5, 5, &[13], 5),
    (6, 10, &[3, 7], 6),
    (7, 11, &[7, 7], 7),
    (8, 12, &[7, 15], 8),
    (9, 13, &[15, 15], 9),
    (10, 13, &[7, 7, 13], 11),
    (11, 15, &[7, 7, 27], 12),
    (12, 15, &[7, 15, 27], 13),
    (13, 16, &[15, 15, 27], 14),
    (14, 17, &[15, 27, 29], 15),
];

/// ε = ζ·2^−α as an exact dyadic.
pub fn eps_from_zeta(alpha: u32, zeta: u32) -> Float {
    let mut e = Float::with_val(64, zeta);
    e >>= alpha;
    e
}

/// The composite sign polynomial with α, ζ and the degree set of the paper's Table 1
/// (ε = ζ·2^−α), for α ∈ 4..=14.
///
/// # Errors
/// [`RemezError::AlphaOutOfRange`] outside 4..=14; Remez failures as in [`composite_sign`].
pub fn table1_sign(alpha: u32) -> Result<CompositeSign, RemezError> {
    let row = TABLE1
        .iter()
        .find(|r| r.0 == alpha)
        .ok_or(RemezError::AlphaOutOfRange {
            alpha: i64::from(alpha),
            min: 4,
            max: 14,
        })?;
    composite_with_zeta(
        alpha,
        row.1,
        &row.2.iter().map(|d| Degree(*d)).collect::<Vec<_>>(),
    )
}

/// The composite for ε = ζ·2^−α and the given degrees, recording α and ζ.
///
/// # Errors
/// [`RemezError::AlphaOutOfRange`] unless 1 ≤ α ≤ 30; [`RemezError::EpsOutOfRange`] when
/// ζ·2^−α ∉ (0, 1); as [`composite_sign`] otherwise.
pub fn composite_with_zeta(
    alpha: u32,
    zeta: u32,
    degrees: &[Degree],
) -> Result<CompositeSign, RemezError> {
    if !(1..=30).contains(&alpha) {
        return Err(RemezError::AlphaOutOfRange {
            alpha: i64::from(alpha),
            min: 1,
            max: 30,
        });
    }
    let eps = eps_from_zeta(alpha, zeta);
    let mut c = composite_sign(&eps, degrees)?;
    c.alpha = Some(alpha);
    c.zeta = Some(zeta);
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table1_alpha14_tau_below_target() {
        let c = table1_sign(14).unwrap();
        assert_eq!(c.degrees(), vec![Degree(15), Degree(27), Degree(29)]);
        assert_eq!(c.table_depth(), 15);
        // FACTS (independent computation): τ_3 = 2^−13.66 at α = 14.
        let l = c.log2_tau();
        assert!((l + 13.66).abs() < 0.01, "log2 tau = {l}");
        assert!(l < -13.0);
    }

    #[test]
    fn odd_and_interval_chain() {
        let eps = eps_from_zeta(8, 12);
        let c = composite_sign(&eps, &[Degree(7), Degree(15)]).unwrap();
        let p = c.poly();
        for x in [0.01, 0.1, 0.5, 0.9] {
            assert_eq!(p.eval_f64(-x), -p.eval_f64(x));
        }
        // After stage 1, [ε,1] maps into [1−τ_1, 1+τ_1].
        let p1 = &p.components()[0];
        let t1 = c.taus()[0].to_f64();
        for i in 0..=1000 {
            let x = eps.to_f64() + (1.0 - eps.to_f64()) * f64::from(i) / 1000.0;
            let y = p1.eval_f64(x);
            assert!((y - 1.0).abs() <= t1 * (1.0 + 1e-9), "x={x}");
        }
    }

    mod random_stages {
        use super::*;
        use proptest::prelude::*;

        /// Degree d = 2n − 1 and [a, b] with b ∈ [0.5, 2], a/b log-uniform in [10^−3, 0.95].
        fn stage_case() -> impl Strategy<Value = (u32, f64, f64)> {
            (2u32..=32, 0.5f64..2.0, -3.0f64..(0.95f64).log10())
                .prop_map(|(n, b, l)| (2 * n - 1, b * 10f64.powf(l), b))
        }

        proptest! {
            #![proptest_config(ProptestConfig {
                cases: 24,
                rng_seed: proptest::test_runner::RngSeed::Fixed(20_261_202),
                failure_persistence: None,
                ..ProptestConfig::default()
            })]

            /// For random (degree, interval): n+1 alternation points of equal magnitude τ and
            /// alternating sign (equioscillation), confirmed on the *stored* power-basis
            /// polynomial by independent 512-bit evaluation; a dense grid never exceeds τ (so τ
            /// is the sup and the polynomial is the minimax one); p is odd; and one more odd
            /// degree of freedom strictly lowers τ.
            #[test]
            fn random_stage_equioscillates_and_is_minimax((d, a, b) in stage_case()) {
                let (af, bf) = (Float::with_val(64, a), Float::with_val(64, b));
                let (p, st) = minimax_stage(&af, &bf, Degree(d)).unwrap();
                let n = (d as usize).div_ceil(2);
                let tau = st.tau.to_f64();
                prop_assert!(tau > 0.0 && tau < 1.0);
                prop_assert_eq!(st.extrema.len(), n + 1);
                let e = |x: &Float| -> f64 {
                    let y = p.eval_float(&Float::with_val(512, x), 512);
                    Float::with_val(512, 1u32 - y).to_f64()
                };
                let mut prev: Option<(f64, f64)> = None;
                for x in &st.extrema {
                    let xv = x.to_f64();
                    prop_assert!(xv >= a * (1.0 - 1e-15) && xv <= b * (1.0 + 1e-15));
                    let ev = e(x);
                    prop_assert!((ev.abs() - tau).abs() <= 1e-9 * tau, "|e| {} vs τ {}", ev, tau);
                    if let Some((px, pe)) = prev {
                        prop_assert!(xv > px, "alternation points not increasing");
                        prop_assert!(pe * ev < 0.0, "alternation lost at x = {}", xv);
                    }
                    prev = Some((xv, ev));
                }
                let m = 4000;
                for i in 0..=m {
                    let x = Float::with_val(64, a + (b - a) * f64::from(i) / f64::from(m));
                    prop_assert!(e(&x).abs() <= tau * (1.0 + 1e-9), "grid exceeds τ at {}", x);
                    let y = p.eval_float(&x, 256);
                    let ym = p.eval_float(&Float::with_val(64, -&x), 256);
                    prop_assert_eq!(Float::with_val(256, -ym), y);
                }
                if d >= 3 {
                    let (_, lower) = minimax_stage(&af, &bf, Degree(d - 2)).unwrap();
                    prop_assert!(lower.tau > st.tau);
                }
            }
        }
    }

    #[test]
    fn bad_input_is_refused() {
        let eps = Float::with_val(53, 0.1);
        assert!(matches!(
            composite_sign(&eps, &[Degree(4)]),
            Err(RemezError::EvenDegree {
                index: 0,
                degree: 4
            })
        ));
        assert!(matches!(
            composite_sign(&eps, &[]),
            Err(RemezError::NoDegrees)
        ));
        assert!(matches!(
            composite_sign(&Float::with_val(53, 1.5), &[Degree(3)]),
            Err(RemezError::EpsOutOfRange { .. })
        ));
        assert!(matches!(
            composite_sign(&Float::with_val(53, 0), &[Degree(3)]),
            Err(RemezError::EpsOutOfRange { .. })
        ));
        assert!(matches!(
            table1_sign(3),
            Err(RemezError::AlphaOutOfRange { alpha: 3, .. })
        ));
    }
}
