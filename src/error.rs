//! The crate-level error: one variant per module, each wrapping that module's own
//! `#[non_exhaustive]` error type (fhe.rs style). Library code never panics on input;
//! every message names the bad value, where it came from and the valid range.

/// Any error produced by the polycert library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Polynomial representation or evaluation error.
    #[error(transparent)]
    Poly(#[from] crate::poly::PolyError),
    /// Report writing error.
    #[error(transparent)]
    Report(#[from] crate::report::ReportError),
    /// Interval proof error (certify module).
    #[error(transparent)]
    Certify(#[from] crate::certify::CertifyError),
    /// Certificate format or checker error (proof module).
    #[error(transparent)]
    Proof(#[from] crate::proof::ProofError),
    /// Remez exchange, composite sign construction or degree optimizer error.
    #[error(transparent)]
    Remez(#[from] crate::remez::RemezError),
    /// Approximate ReLU / max-pooling error.
    #[error(transparent)]
    Approx(#[from] crate::approx::ApproxError),
    /// Network import, dataset or inference error.
    #[error(transparent)]
    Nn(#[from] crate::nn::NnError),
    /// Error-propagation bound error (bounds module).
    #[error(transparent)]
    Bounds(#[from] crate::bounds::BoundsError),
    /// CKKS scheme or encrypted inference error.
    #[error(transparent)]
    Ckks(#[from] crate::ckks::CkksError),
    /// Input/output error with the path it concerns.
    #[error("{path}: {source}")]
    Io {
        /// The file that could not be read or written.
        path: std::path::PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
}

/// `Result` with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
