//! Errors of the `certify` module.

/// Errors of the `certify` module (bad input to a proof, or a proof that cannot be completed).
///
/// A refuted claim is not an error: it is a [`crate::certify::Verdict::Refuted`] value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CertifyError {
    /// The precision parameter α is outside the supported range.
    #[error("precision parameter alpha = {0} is out of range; valid: 1..=40")]
    BadAlpha(u32),
    /// ζ (so ε = ζ·2^−α) is not in the valid range.
    #[error("max function factor zeta = {value} gives eps = zeta·2^-alpha outside (0, 1); valid: 0 < zeta < 2^alpha")]
    BadZeta {
        /// ζ as text.
        value: String,
    },
    /// A coefficient is not a finite number or is too large for an f64 enclosure.
    #[error("component {component}, coefficient of x^{power}: {value} is not a finite number of magnitude < 1e300")]
    BadCoefficient {
        /// 1-based component index (application order).
        component: usize,
        /// Power of x.
        power: usize,
        /// The value as text.
        value: String,
    },
    /// A coefficient file could not be read or parsed.
    #[error("{file}:{line}: {message}")]
    Input {
        /// The file concerned.
        file: String,
        /// 1-based line number (0 when the problem is the file as a whole).
        line: usize,
        /// What was wrong and what was expected.
        message: String,
    },
    /// The adaptive subdivision reached its box limit before the claim was decided.
    #[error("claim {claim}: undecided after {boxes} boxes (limit {limit}); certified sup in [{lo:e}, {hi:e}] against bound {bound:e}")]
    BoxLimit {
        /// The claim being proved.
        claim: String,
        /// Boxes used.
        boxes: usize,
        /// The configured limit.
        limit: usize,
        /// Best rigorous lower bound so far.
        lo: f64,
        /// Best rigorous upper bound so far.
        hi: f64,
        /// The claimed bound.
        bound: f64,
    },
    /// A claim that needs an odd polynomial was asked of one that is not odd.
    #[error("{what} needs an odd polynomial (every even coefficient exactly 0) and this one is not; certify it as written (exact arithmetic) or its odd part (--odd-part)")]
    NotOdd {
        /// What was asked.
        what: String,
    },
    /// Building the Table 1 polynomial failed.
    #[error(transparent)]
    Remez(#[from] crate::remez::RemezError),
    /// Writing or encoding the certificate failed.
    #[error("cannot write certificate {path}: {message}")]
    Write {
        /// Target path.
        path: String,
        /// The underlying problem.
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_odd_message_names_the_request_and_the_ways_out() {
        let e = CertifyError::NotOdd {
            what: "--arith f64".into(),
        };
        assert_eq!(
            e.to_string(),
            "--arith f64 needs an odd polynomial (every even coefficient exactly 0) and this one is not; certify it as written (exact arithmetic) or its odd part (--odd-part)"
        );
        let e = CertifyError::Input {
            file: "c.txt".into(),
            line: 3,
            message: "\"x\" is not a decimal number or fraction n/d (component 1, coefficient 2)"
                .into(),
        };
        assert_eq!(
            e.to_string(),
            "c.txt:3: \"x\" is not a decimal number or fraction n/d (component 1, coefficient 2)"
        );
    }
}
