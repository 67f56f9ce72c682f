//! Certificate file format (`polycert-certificate/1`) and the independent exact checker.
//!
//! This module must not import `rug`, `inari` or `certify`: it is the second, independent
//! opinion. It parses the file itself, re-derives every box enclosure from the exact
//! coefficients with `num-rational`/`num-bigint` arithmetic rounded outward to multiples of
//! 2^−120, checks that the boxes partition each claim's domain, that the derived constants
//! (Theorem 1, Theorem 2 / Eq. 7) follow exactly, and checks the digest.

mod check;
mod fixed;
mod format;
mod parse;

pub use check::{check_certificate, check_file, CheckReport, ClaimCheck, MAX_SPLIT_DEPTH};
pub use format::{
    decode, digest_of, encode, sha256_hex, write_atomic, CertificateFile, ClaimRecord,
    SourceRecord, FORMAT,
};

/// Errors of the `proof` module.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// The file is not valid JSON of the certificate format (exit 2).
    #[error("{file}:{line}:{column}: malformed certificate: {message}")]
    Malformed {
        /// The file.
        file: String,
        /// 1-based line (0 when not applicable).
        line: usize,
        /// 1-based column (0 when not applicable).
        column: usize,
        /// What was wrong.
        message: String,
    },
    /// A check failed: the certificate does not prove what it states (exit 1).
    #[error("{file}: REJECTED claim {claim}, {item}: {reason}")]
    Rejected {
        /// The file.
        file: String,
        /// The claim id (`-` for file-level checks).
        claim: String,
        /// The box (`box i`, 0-based) or `-`.
        item: String,
        /// Why.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        message: String,
    },
    /// JSON encoding failed.
    #[error("cannot encode certificate: {0}")]
    Encode(String),
}
