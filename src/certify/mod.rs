//! Interval-arithmetic proofs (inari, outward rounding) of the claims made about a composite
//! sign polynomial p = p_k ∘ … ∘ p_1 (paper §2.2, §3): (β, ε)-closeness, condition (1) for
//! m_α (hence Theorem 1 and its B-scaled form), an enclosure of p on [−1, 1], the Theorem 2 /
//! Eq. (7) max-pooling constants, and optionally the floating-point evaluation error.
//!
//! Symbols: `alpha` α, `zeta` ζ, `eps` ε = ζ·2^−α, `beta` β = α − 1.
//!
//! Method: stage-by-stage first-order Taylor models recentred at each box's midpoint
//! (`taylor`), adaptive bisection by largest upper bound (`search`). Coefficients enter as
//! tight intervals around the exact rationals, so the certified polynomial is exactly the one
//! written to the certificate. This module does not own the file format or the independent
//! checker (see [`crate::proof`]).

mod claims;
mod driver;
mod error;
mod floaterr;
mod input;
mod search;
mod taylor;

pub use claims::{
    Arith, CertBox, Certificate, Certified, Claim, ClaimKind, RationalComposite, SourceFile,
    Verdict,
};
pub use driver::{certify, certify_odd_part, certify_table1, CertifyConfig, TABLE1_ZETA};
pub use error::CertifyError;
pub use input::{
    read_coeff_files, read_json_certificate, read_poly_json, Basis, ShippedPoly,
    MAX_CHEBYSHEV_DEGREE, MAX_DEGREE,
};
