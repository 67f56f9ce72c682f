//! Multi-precision Remez exchange for odd minimax approximations of sgn(x), the composite
//! construction of Lee–Lee–No–Kim (paper §2.2, Table 1), the degree optimizer and the ζ search.
//!
//! Symbols: `eps` = ε (the sign gap), `tau` = τ_i (minimax error of stage i), `beta` = β
//! (target closeness 2^−β), `alpha` = α (precision parameter, β = α − 1), `zeta` = ζ
//! (ε = ζ·2^−α).

mod composite;
mod exchange;
mod real;

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
        "no composite of odd degrees ≤ {max_degree} with total depth ≤ {max_depth} reaches          closeness 2^-{beta} at ε = {eps}; raise the depth limit or ε"
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
    #[error("β = {beta} is outside the supported range 1..=40")]
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
