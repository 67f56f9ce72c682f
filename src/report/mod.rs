//! Reports (issue 7): byte-for-byte deterministic JSON, Markdown tables and plots (plotters, PNG
//! and SVG with an embedded font), assembled into `reports/index.md` + `reports/report.json`.
//!
//! Every figure and number carries an [`Evidence`] label: `certified` for outward-rounded,
//! machine-checked bounds, `measured` for sampled values. This module owns presentation only;
//! it computes nothing mathematical and nothing else in the crate imports it (except the CLI).

mod builder;
mod ckks;
mod default;
mod encrypted_runs;
mod io;
mod markdown;
mod network;
mod plot;
mod table3;
mod toynet;

pub use builder::{Report, Section};
pub use ckks::{
    ckks_section, CkksReportConfig, CkksTiming, DEFAULT_CKKS_ALPHA, DEFAULT_CKKS_IMAGES,
    DEFAULT_CKKS_SEED,
};
pub use default::{build_default_report, ReportConfig};
pub use encrypted_runs::encrypted_runs_section;
pub use io::{to_json_bytes, write_atomic, write_json_atomic};
pub use markdown::MdTable;
pub use network::{
    accuracy_section, bounds_section, evaluate_models, match_models, ModelData,
    NetworkReportConfig, CIFAR_FILE, MNIST_FILE,
};
pub use plot::{LegendPos, LinePlot, Series};
pub use table3::{
    imagenet_models, table3_json, table3_markdown, table3_section, write_table3, IMAGENET_FILE,
    IMAGENET_SHAPE, PAPER_TABLE3, WITHIN_PT,
};
pub use toynet::{toy_bounds_section, toy_network, TOY_B, TOY_INPUTS};

/// Whether a figure is a certified bound or a measured (sampled) value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Evidence {
    /// An outward-rounded bound checked by interval arithmetic and the exact checker.
    Certified,
    /// A value sampled on a grid or on data: an estimate, not a bound.
    Measured,
    /// Both kinds appear side by side (each series says which).
    Mixed,
}

impl Evidence {
    /// The label as written in reports (`certified`, `measured`, `certified+measured`).
    pub fn label(self) -> &'static str {
        match self {
            Evidence::Certified => "certified",
            Evidence::Measured => "measured",
            Evidence::Mixed => "certified+measured",
        }
    }
}

/// Errors of the `report` module.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// A file or directory could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The path concerned.
        path: std::path::PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// JSON serialisation failed.
    #[error("cannot serialise JSON for {what}: {message}")]
    Json {
        /// What was being serialised.
        what: String,
        /// The serde_json message.
        message: String,
    },
    /// A plot could not be drawn.
    #[error("cannot draw plot {id:?}: {message}")]
    Plot {
        /// The plot's file stem.
        id: String,
        /// What went wrong.
        message: String,
    },
    /// A committed run file (e.g. `reports/ckks_resnet20.json`) could not be read or lacks a
    /// field the report needs.
    #[error("cannot use the committed run {path}: {message}")]
    Committed {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong (I/O error, JSON error, or the missing field).
        message: String,
    },
    /// A plot was given data it cannot show (e.g. a non-positive value on a log axis).
    #[error("plot {id:?}, series {series:?}: point ({x}, {y}) cannot be drawn: {why}")]
    BadPoint {
        /// The plot's file stem.
        id: String,
        /// The series name.
        series: String,
        /// x value.
        x: f64,
        /// y value.
        y: f64,
        /// Why it cannot be drawn.
        why: &'static str,
    },
}
