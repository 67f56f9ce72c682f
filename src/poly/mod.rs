//! Odd polynomials and their compositions (paper §2.2): the objects p_i whose composition
//! p = p_k ∘ … ∘ p_1 approximates sgn(x).
//!
//! Symbols: `d` degree of a component, `c_j` power-basis coefficient of x^j (j odd).
//!
//! Coefficients are rug [`Float`]s. A finite `Float` is exactly a dyadic rational m·2^e, so the
//! polynomial that is evaluated, certified and written to a file is one and the same exact
//! object; [`exact_decimal`] prints that value with no rounding. This module does not own the
//! approximation algorithm (see `remez`) or evaluation with error bounds (see `certify`).

mod chebyshev;
mod decimal;
mod file;
mod odd;
mod plan;

pub use chebyshev::{
    chebyshev_affine_to_power, chebyshev_to_power_exact, odd_chebyshev_to_power,
    odd_power_to_chebyshev, power_to_chebyshev_exact, substitute_affine_exact,
};
pub use decimal::{exact_decimal, parse_decimal_rational, rational_to_dyadic};
pub use file::{ComponentRecord, PolyFile, CONVENTION_OPENFHE, CONVENTION_STANDARD, POLY_FORMAT};
pub use odd::{CompositePoly, OddPoly};
pub use plan::{odd_bsgs_cost, EvalPlan, Op, PlanArith};

/// Degree of a polynomial component (a newtype so it is not confused with a bit precision).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Degree(pub u32);

impl Degree {
    /// Multiplicative depth ⌈log₂(d+1)⌉ of evaluating an odd polynomial of this degree
    /// (FACTS: 3 → 2, 5–7 → 3, 9–15 → 4, 17–31 → 5, 33–63 → 6).
    pub fn depth(self) -> u32 {
        let n = u64::from(self.0) + 1;
        // ⌈log₂ n⌉ for n ≥ 1.
        64 - (n - 1).leading_zeros()
    }
}

impl std::fmt::Display for Degree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// MPFR working precision in bits.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Precision(pub u32);

/// Errors of the `poly` module.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PolyError {
    /// A polynomial was given no coefficients.
    #[error("an odd polynomial needs at least one coefficient (of x), got none")]
    Empty,
    /// A coefficient is NaN or infinite.
    #[error("coefficient of x^{power} is not a finite number ({value})")]
    NonFinite {
        /// The power of x the coefficient belongs to.
        power: usize,
        /// The offending value as text.
        value: String,
    },
    /// A power-basis coefficient list for an odd polynomial has a non-zero even coefficient.
    #[error("polynomial is not odd: coefficient of x^{power} is {value}, expected 0")]
    NotOdd {
        /// The even power with a non-zero coefficient.
        power: usize,
        /// The offending value as text.
        value: String,
    },
    /// An even degree was requested where only odd degrees make sense.
    #[error("degree {0} is even; odd approximations of sgn need odd degrees (1, 3, 5, …)")]
    EvenDegree(u32),
    /// A decimal number could not be parsed.
    #[error("not a decimal number: {0:?}")]
    BadNumber(String),
    /// A composition was given no components.
    #[error("a composite polynomial needs at least one component, got none")]
    EmptyComposite,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_matches_facts_table() {
        let cases = [
            (1, 1),
            (3, 2),
            (5, 3),
            (7, 3),
            (9, 4),
            (15, 4),
            (17, 5),
            (31, 5),
            (33, 6),
            (63, 6),
        ];
        for (d, depth) in cases {
            assert_eq!(Degree(d).depth(), depth, "degree {d}");
        }
    }
}
