//! The polynomial file format `polycert-poly/1` (JSON): a composite p = p_k ∘ … ∘ p_1 given
//! component by component, each in the power basis or in the Chebyshev basis of a stated
//! interval [a, b] (q(y) = Σ_k c_k T_k((2y − a − b)/(b − a)), the form OpenFHE's
//! `EvalChebyshevSeries` and Lattigo's Chebyshev polynomials take). Coefficients are exact
//! decimal (or `n/d`) strings; `coeffs_f64` are their nearest binary64 values, for libraries
//! that take doubles (informative: readers use the exact strings).
//!
//! `polycert sign --export` writes this format and `polycert certify --poly` reads it. This
//! module owns only the layout (serde types); conversion lives with its users.

use serde::{Deserialize, Serialize};

/// The format tag.
pub const POLY_FORMAT: &str = "polycert-poly/1";

/// Chebyshev convention: the series is Σ_k c_k T_k (the textbook form, Lattigo).
pub const CONVENTION_STANDARD: &str = "standard";

/// Chebyshev convention of OpenFHE's `EvalChebyshevSeries`: c_0/2 + Σ_{k≥1} c_k T_k (the
/// constant coefficient is stored doubled).
pub const CONVENTION_OPENFHE: &str = "openfhe-half-c0";

/// A composite polynomial file (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolyFile {
    /// Always [`POLY_FORMAT`].
    pub format: String,
    /// Which library the file is laid out for (`json`, `openfhe`, `lattigo`); informative.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Chebyshev convention ([`CONVENTION_STANDARD`], the default, or [`CONVENTION_OPENFHE`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub convention: Option<String>,
    /// Precision parameter α the polynomial is meant for (informative).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<u32>,
    /// ζ with ε = ζ·2^−α (informative).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zeta: Option<u32>,
    /// ε, exact (informative).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eps: Option<String>,
    /// Multiplicative depth of the crate's odd evaluation (informative).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth: Option<u32>,
    /// Free-form note (how to use the file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The components in application order (p_1 first).
    pub components: Vec<ComponentRecord>,
}

/// One component p_i.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentRecord {
    /// `power` or `chebyshev`.
    pub basis: String,
    /// For `chebyshev`: the interval [a, b] (exact strings), the range of this component's
    /// input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<[String; 2]>,
    /// Degree d (coefficient count − 1); informative, checked when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub degree: Option<u32>,
    /// c_0 … c_d, exact decimal or `n/d` strings.
    pub coeffs: Vec<String>,
    /// The same as binary64 (nearest); informative.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coeffs_f64: Option<Vec<f64>>,
}
