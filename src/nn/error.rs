//! [`NnError`]: every way importing, reading data or running a network can fail.

use std::path::PathBuf;

/// Errors of the `nn` module. Each message names the bad value, where it was (file, node,
/// record) and what would have been valid.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NnError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The bytes are not a valid ONNX protobuf (truncated or corrupt).
    #[error("{origin}: not a valid ONNX model (protobuf decode failed: {reason})")]
    Decode {
        /// File name or `<memory>`.
        origin: String,
        /// The decoder's message.
        reason: String,
    },
    /// An operator or attribute outside the supported subset.
    #[error("node {node:?} ({op_type}): unsupported {what}")]
    Unsupported {
        /// Node name (or `#index` when unnamed).
        node: String,
        /// ONNX op type.
        op_type: String,
        /// What is not supported, with the value found and the supported values.
        what: String,
    },
    /// A structurally invalid model (missing tensor, wrong number of inputs, bad shape).
    #[error("node {node:?}: {reason}")]
    BadModel {
        /// Node name (or a graph-level location such as `graph input`).
        node: String,
        /// What is wrong and what was expected.
        reason: String,
    },
    /// A malformed dataset file.
    #[error("{path}: {reason}")]
    Data {
        /// The data file.
        path: PathBuf,
        /// What is wrong (offset, value, expected layout).
        reason: String,
    },
    /// An input does not have the size the network expects.
    #[error("input {index}: has {got} values, the network expects {expected} (shape {shape})")]
    InputSize {
        /// Index of the input in the batch.
        index: usize,
        /// Number of values given.
        got: usize,
        /// Number of values expected.
        expected: usize,
        /// The network's per-sample input shape.
        shape: String,
    },
    /// Bad preprocessing metadata or flag.
    #[error("preprocessing {key} = {value:?}: {reason}")]
    Preprocess {
        /// `input_scale`, `input_mean` or `input_std`.
        key: String,
        /// The value found.
        value: String,
        /// Why it is rejected and what is valid.
        reason: String,
    },
    /// A bad engine or evaluation setting.
    #[error("{what} = {value}: {valid}")]
    Config {
        /// The setting.
        what: String,
        /// The value given.
        value: String,
        /// The valid range.
        valid: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_value_and_place() {
        let e = NnError::Unsupported {
            node: "conv1".into(),
            op_type: "Conv".into(),
            what: "attribute auto_pad = \"SAME_UPPER\" (supported: NOTSET, VALID)".into(),
        };
        assert_eq!(
            e.to_string(),
            "node \"conv1\" (Conv): unsupported attribute auto_pad = \"SAME_UPPER\" (supported: NOTSET, VALID)"
        );
        let e = NnError::InputSize {
            index: 3,
            got: 10,
            expected: 3072,
            shape: "[3, 32, 32]".into(),
        };
        assert_eq!(
            e.to_string(),
            "input 3: has 10 values, the network expects 3072 (shape [3, 32, 32])"
        );
        let e = NnError::Config {
            what: "alpha".into(),
            value: "2".into(),
            valid: "expected 4..=14".into(),
        };
        assert_eq!(e.to_string(), "alpha = 2: expected 4..=14");
        let e = NnError::Decode {
            origin: "m.onnx".into(),
            reason: "x".into(),
        };
        assert_eq!(
            e.to_string(),
            "m.onnx: not a valid ONNX model (protobuf decode failed: x)"
        );
    }
}
