//! [`BoundsError`]: every way building an error bound can fail.

/// Errors of the `bounds` module. Each message names the bad value, where it was (file,
/// node, α) and the valid range.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BoundsError {
    /// The network contains a structure the block decomposition (paper §4) does not cover.
    #[error("node {node:?} ({op}): cannot decompose into the paper's blocks: {reason}")]
    Unsupported {
        /// Node name.
        node: String,
        /// ONNX op type.
        op: String,
        /// What was found and what is supported.
        reason: String,
    },
    /// The first-order limit cannot handle a node (inconsistent shapes, missing input).
    #[error("node {node:?} ({op}): no first-order limit: {reason}")]
    FirstOrder {
        /// Node name.
        node: String,
        /// ONNX op type.
        op: String,
        /// What was found.
        reason: String,
    },
    /// No certificate for α could be loaded, checked or produced.
    #[error("certificate for alpha {alpha} ({file}): {reason}")]
    Certificate {
        /// Precision parameter α.
        alpha: u32,
        /// The certificate file (or `<certify>` when re-certified in memory).
        file: String,
        /// Why it is unusable (checker verdict, missing claim, parse error).
        reason: String,
    },
    /// α outside the range for which certificates exist.
    #[error("alpha {alpha} is out of range: certificates exist for alpha in {lo}..={hi}")]
    Alpha {
        /// The requested α.
        alpha: u32,
        /// Smallest available α.
        lo: u32,
        /// Largest available α.
        hi: u32,
    },
    /// A ReLU / max-pool node has no valid approximation range B.
    #[error("node {node:?} (#{index}): approximation range B = {value} is invalid; expected a finite B > 0 for every ReLU and MaxPool node")]
    Range {
        /// Node name.
        node: String,
        /// Node index.
        index: usize,
        /// The value found.
        value: String,
    },
    /// An input vector of the wrong size.
    #[error("{what}: has {got} values, expected {expected}")]
    Size {
        /// Which vector.
        what: String,
        /// Number of values given.
        got: usize,
        /// Number expected.
        expected: usize,
    },
    /// A bad setting (target error, data limit).
    #[error("{what} = {value} is invalid; expected {valid}")]
    Config {
        /// The setting.
        what: String,
        /// The value given.
        value: String,
        /// The valid range.
        valid: String,
    },
    /// A node the noise margin ([`super::MarginCertifier`]) does not support, or an
    /// inconsistency met while computing it.
    #[error("node {node:?} ({op}): no noise margin: {reason}")]
    NoiseMargin {
        /// The ONNX node name.
        node: String,
        /// The ONNX op type.
        op: String,
        /// What is not supported.
        reason: String,
    },
    /// A committed bounds report (JSON) that cannot be read back.
    #[error("bounds report {file}: {reason}")]
    ReportFile {
        /// The file.
        file: String,
        /// What is wrong (I/O error, or the JSON error with its line and column).
        reason: String,
    },
    /// A failure of the network engine or dataset reader.
    #[error(transparent)]
    Nn(#[from] crate::nn::NnError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_value_and_the_valid_range() {
        let cases = [
            (
                BoundsError::Unsupported {
                    node: "n3".into(),
                    op: "Concat".into(),
                    reason: "x".into(),
                },
                "node \"n3\" (Concat): cannot decompose into the paper's blocks: x",
            ),
            (
                BoundsError::FirstOrder {
                    node: "c7".into(),
                    op: "Conv".into(),
                    reason: "x".into(),
                },
                "node \"c7\" (Conv): no first-order limit: x",
            ),
            (
                BoundsError::NoiseMargin {
                    node: "mp".into(),
                    op: "MaxPool".into(),
                    reason: "x".into(),
                },
                "node \"mp\" (MaxPool): no noise margin: x",
            ),
            (
                BoundsError::Certificate {
                    alpha: 9,
                    file: "p/f.json".into(),
                    reason: "no condition1 claim".into(),
                },
                "certificate for alpha 9 (p/f.json): no condition1 claim",
            ),
            (
                BoundsError::Alpha {
                    alpha: 20,
                    lo: 4,
                    hi: 14,
                },
                "alpha 20 is out of range: certificates exist for alpha in 4..=14",
            ),
            (
                BoundsError::Range {
                    node: "r1".into(),
                    index: 2,
                    value: "Some(-1.0)".into(),
                },
                "node \"r1\" (#2): approximation range B = Some(-1.0) is invalid; expected a finite B > 0 for every ReLU and MaxPool node",
            ),
            (
                BoundsError::Size {
                    what: "input".into(),
                    got: 3,
                    expected: 4,
                },
                "input: has 3 values, expected 4",
            ),
            (
                BoundsError::Config {
                    what: "target error".into(),
                    value: "-1".into(),
                    valid: "a finite E > 0".into(),
                },
                "target error = -1 is invalid; expected a finite E > 0",
            ),
            (
                BoundsError::ReportFile {
                    file: "r/b.json".into(),
                    reason: "missing field `alphas` at line 3 column 1".into(),
                },
                "bounds report r/b.json: missing field `alphas` at line 3 column 1",
            ),
        ];
        for (e, want) in cases {
            assert_eq!(e.to_string(), want);
        }
    }
}
