//! Multi-precision Remez exchange for odd minimax approximations of sgn(x), the composite
//! construction of Lee–Lee–No–Kim (paper §2.2, Table 1), the degree optimizer and the ζ search.
//!
//! Symbols: `eps` = ε (the sign gap), `tau` = τ_i (minimax error of stage i), `beta` = β
//! (target closeness 2^−β), `alpha` = α (precision parameter, β = α − 1), `zeta` = ζ
//! (ε = ζ·2^−α).

mod composite;
mod exchange;
mod json;
mod optimize;
mod real;

pub use json::{ExportTarget, CHEBYSHEV_PRINT_BITS};
pub use optimize::{
    check_zeta_degrees, measure_max_dev, optimal_sign, optimal_sign_for, try_zeta, zeta_search,
    OptimalDegrees, SignOptimizer, ZetaSearch, ZetaTrial, OPT_MAX_DEGREE, OPT_MAX_DEPTH,
};

pub use composite::{
    composite_sign, composite_with_zeta, eps_from_zeta, table1_sign, CompositeSign, SignStage,
    MAX_DEGREE, STORED_COEFF_BITS, TABLE1, TAU_BITS,
};

/// Errors of the `remez` module.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RemezError {
    /// The Remez linear system was singular.
    #[error("Remez system singular for degree {degree} on [{a}, {b}] at iteration {iteration}")]
    Singular {
        /// Degree of the odd polynomial.
        degree: u64,
        /// Left end of the positive interval.
        a: f64,
        /// Right end of the positive interval.
        b: f64,
        /// Exchange iteration.
        iteration: u32,
    },
    /// The exchange did not reach its convergence tolerance.
    #[error(
        "Remez exchange for degree {degree} on [{a}, {b}] did not converge in {iterations} \
         iterations (relative gap (max−min)/max = {gap:e})"
    )]
    NoConvergence {
        /// Degree of the odd polynomial.
        degree: u64,
        /// Left end of the positive interval.
        a: f64,
        /// Right end of the positive interval.
        b: f64,
        /// Iterations used.
        iterations: u32,
        /// Last relative gap.
        gap: f64,
    },
    /// ε outside (0, 1).
    #[error("ε = {eps} is outside (0, 1); the sign gap must satisfy 0 < ε < 1")]
    EpsOutOfRange {
        /// The offending ε as text.
        eps: String,
    },
    /// An empty degree list.
    #[error("no component degrees given; give at least one odd degree such as 15,27,29")]
    NoDegrees,
    /// An even component degree.
    #[error(
        "component {index} has even degree {degree}; components must have odd degree (1, 3, 5, …)"
    )]
    EvenDegree {
        /// Position in the degree list (0-based).
        index: usize,
        /// The offending degree.
        degree: u32,
    },
    /// A component degree above the supported maximum.
    #[error("component {index} has degree {degree}; supported degrees are odd, 1 to {max}")]
    DegreeTooLarge {
        /// Position in the degree list (0-based).
        index: usize,
        /// The offending degree.
        degree: u32,
        /// Largest supported degree.
        max: u32,
    },
    /// α outside the supported range.
    #[error("α = {alpha} is outside the supported range {min}..={max}")]
    AlphaOutOfRange {
        /// The offending α.
        alpha: i64,
        /// Smallest allowed α.
        min: u32,
        /// Largest allowed α.
        max: u32,
    },
    /// No degree set reaches the target within the search limits.
    #[error(
        "no composite of odd degrees ≤ {max_degree} with total depth ≤ {max_depth} reaches \
         closeness 2^-{beta} at ε = {eps}; raise the depth limit or ε"
    )]
    Unreachable {
        /// Target closeness exponent β.
        beta: u32,
        /// ε as text.
        eps: String,
        /// Depth limit searched.
        max_depth: u32,
        /// Largest component degree searched.
        max_degree: u32,
    },
    /// β outside the supported range.
    #[error("β = {beta} is outside the supported range 0..=40")]
    BetaOutOfRange {
        /// The offending β.
        beta: i64,
    },
    /// No ζ in the searched range satisfies condition (1).
    #[error("no ζ in 1..={max_zeta} satisfies the max-function condition (1) at α = {alpha}")]
    NoZeta {
        /// α searched.
        alpha: u32,
        /// Largest ζ tried.
        max_zeta: u32,
    },
    /// An internal consistency check failed (a bug, reported instead of panicking).
    #[error("internal error in the sign construction: {what}")]
    Internal {
        /// What went wrong.
        what: String,
    },
}

#[cfg(test)]
mod tests {
    use super::RemezError;

    /// Every message names the bad value and the valid range (STYLE §3: one test pins each
    /// Display string).
    #[test]
    fn error_messages_are_pinned() {
        let cases = [
            (
                RemezError::Singular {
                    degree: 7,
                    a: 0.5,
                    b: 1.0,
                    iteration: 3,
                },
                "Remez system singular for degree 7 on [0.5, 1] at iteration 3",
            ),
            (
                RemezError::NoConvergence {
                    degree: 7,
                    a: 0.5,
                    b: 1.0,
                    iterations: 60,
                    gap: 0.25,
                },
                "Remez exchange for degree 7 on [0.5, 1] did not converge in 60 iterations \
                 (relative gap (max−min)/max = 2.5e-1)",
            ),
            (
                RemezError::EpsOutOfRange { eps: "1.5".into() },
                "ε = 1.5 is outside (0, 1); the sign gap must satisfy 0 < ε < 1",
            ),
            (
                RemezError::NoDegrees,
                "no component degrees given; give at least one odd degree such as 15,27,29",
            ),
            (
                RemezError::EvenDegree {
                    index: 1,
                    degree: 28,
                },
                "component 1 has even degree 28; components must have odd degree (1, 3, 5, …)",
            ),
            (
                RemezError::DegreeTooLarge {
                    index: 0,
                    degree: 257,
                    max: 255,
                },
                "component 0 has degree 257; supported degrees are odd, 1 to 255",
            ),
            (
                RemezError::AlphaOutOfRange {
                    alpha: 31,
                    min: 1,
                    max: 30,
                },
                "α = 31 is outside the supported range 1..=30",
            ),
            (
                RemezError::Unreachable {
                    beta: 10,
                    eps: "1e-30".into(),
                    max_depth: 40,
                    max_degree: 63,
                },
                "no composite of odd degrees ≤ 63 with total depth ≤ 40 reaches closeness \
                 2^-10 at ε = 1e-30; raise the depth limit or ε",
            ),
            (
                RemezError::BetaOutOfRange { beta: 41 },
                "β = 41 is outside the supported range 0..=40",
            ),
            (
                RemezError::NoZeta {
                    alpha: 3,
                    max_zeta: 1,
                },
                "no ζ in 1..=1 satisfies the max-function condition (1) at α = 3",
            ),
            (
                RemezError::Internal { what: "x".into() },
                "internal error in the sign construction: x",
            ),
        ];
        for (e, want) in cases {
            assert_eq!(e.to_string(), want);
        }
    }
}
