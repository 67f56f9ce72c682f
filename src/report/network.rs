//! The network sections of the report (`polycert report --models DIR --data DIR`): accuracy
//! of every model with exact and approximate activations against α (paper Table 2), and the
//! measured ‖F^α(x) − F(x)‖∞. Every figure here is **measured** (sampled on the data).
//!
//! Models are matched to data by their input shape: `[3, 32, 32]` → `DATA/cifar10/<cifar>`,
//! `[1, 28, 28]` → `DATA/mnist/t10k-images-idx3-ubyte` (labels next to it); `[3, 224, 224]`
//! (ImageNet) models are left to the Table 3 section (`table3_section`). A model of any other
//! input shape is an error naming the file.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::{Evidence, LegendPos, LinePlot, MdTable, Section, Series};
use crate::nn::{import_onnx, table2, EvalReport, NnError, Precision, RangePolicy, Table2Spec};

/// CIFAR-10 test file used by default (inside `DATA/cifar10/`).
pub const CIFAR_FILE: &str = "test_batch_jpeg.bin";
/// MNIST test images (inside `DATA/mnist/`).
pub const MNIST_FILE: &str = "t10k-images-idx3-ubyte";

/// Default B margin of the report: B = 1.1 × the calibrated max |input| per layer.
pub const DEFAULT_MARGIN: f64 = 1.1;

/// What the network sections cover.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkReportConfig {
    /// Folder of `.onnx` models (every `*.onnx` in it, in file-name order).
    pub models: PathBuf,
    /// Folder with `cifar10/` and `mnist/` (layout of `shared/data`).
    pub data: PathBuf,
    /// CIFAR-10 file name inside `DATA/cifar10/`.
    pub cifar_file: String,
    /// Precision parameters α (each in 4..=14).
    pub alphas: Vec<u32>,
    /// Evaluate only `limit` images of each data file, spread evenly over it (`None`: all).
    pub limit: Option<usize>,
    /// How B is chosen (calibrated on the evaluated images).
    pub range: RangePolicy,
    /// Images per model for the per-input bounds of the bounds section (the first ones of
    /// each data file; 0 skips the section).
    pub bound_images: usize,
    /// Folder of the certificates `table1-alphaNN.json` used by the bounds section.
    pub proofs: PathBuf,
}

impl NetworkReportConfig {
    /// Defaults for the `shared/` layout: α = 4..14, every image, B per layer = 1.1 × the
    /// calibrated max |input|. With margin 1 an approximate activation that drifts just past
    /// the calibrated maximum leaves [−B, B], where the composite sign polynomial grows fast,
    /// and one such input can turn an output non-finite (seen on ResNet-44 at α = 10 and 14).
    pub fn new(models: PathBuf, data: PathBuf) -> Self {
        Self {
            models,
            data,
            cifar_file: CIFAR_FILE.into(),
            alphas: (4..=14).collect(),
            limit: None,
            range: RangePolicy::PerLayer {
                margin: DEFAULT_MARGIN,
            },
            bound_images: 20,
            proofs: PathBuf::from("proofs"),
        }
    }
}

/// One model with the data file it is evaluated on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelData {
    /// The `.onnx` file.
    pub model: PathBuf,
    /// The data file matched to it by input shape.
    pub data: PathBuf,
}

/// List the models of `cfg.models` (sorted by file name) with their data files. ImageNet
/// models (input `[3, 224, 224]`) are skipped: `table3_section` evaluates them.
///
/// # Errors
/// An unreadable folder, a folder without models, a model that cannot be imported, a model
/// whose input shape matches no data set, or a missing data file.
pub fn match_models(cfg: &NetworkReportConfig) -> crate::Result<Vec<ModelData>> {
    let models = onnx_files(&cfg.models)?;
    if models.is_empty() {
        return Err(NnError::Config {
            what: "--models".into(),
            value: cfg.models.display().to_string(),
            valid: "a folder holding at least one .onnx model".into(),
        }
        .into());
    }
    let mut out = Vec::new();
    for m in models {
        let net = import_onnx(&m)?;
        let data = match net.input_shape().dims() {
            [3, 32, 32] => cfg.data.join("cifar10").join(&cfg.cifar_file),
            [1, 28, 28] => cfg.data.join("mnist").join(MNIST_FILE),
            // ImageNet models have their own section (`table3_section`).
            dims if dims == super::IMAGENET_SHAPE => continue,
            other => {
                return Err(NnError::Config {
                    what: format!("input shape of {}", m.display()),
                    value: format!("{other:?}"),
                    valid: "[3, 32, 32] (CIFAR-10), [1, 28, 28] (MNIST) or [3, 224, 224] \
                            (ImageNet, Table 3 section)"
                        .into(),
                }
                .into())
            }
        };
        if !data.is_file() {
            return Err(crate::Error::Io {
                path: data,
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("data file for model {} not found", m.display()),
                ),
            });
        }
        out.push(ModelData { model: m, data });
    }
    Ok(out)
}

/// The `*.onnx` files of folder `dir`, sorted by name.
///
/// # Errors
/// [`crate::Error::Io`] when the folder cannot be read.
pub(super) fn onnx_files(dir: &Path) -> crate::Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|source| crate::Error::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut models: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "onnx"))
        .collect();
    models.sort();
    Ok(models)
}

pub(super) fn file_name(p: &Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Run the Table 2 evaluation of every model (f32 engine, activations in f64).
/// `progress(model, done, total)` is called while it runs.
///
/// # Errors
/// As [`match_models`] and [`crate::nn::table2`].
pub fn evaluate_models(
    cfg: &NetworkReportConfig,
    progress: &(dyn Fn(&str, usize, usize) + Sync),
) -> crate::Result<Vec<EvalReport>> {
    let mut out = Vec::new();
    for md in match_models(cfg)? {
        let name = file_name(&md.model);
        let spec = Table2Spec {
            model: md.model.clone(),
            data: md.data.clone(),
            format: None,
            alphas: cfg.alphas.clone(),
            limit: cfg.limit,
            evenly: true,
            range: cfg.range,
            calib: None,
            calib_limit: None,
            preprocess: None,
            precision: Precision::F32,
            chunk: 256,
        };
        let mut rep = table2(&spec, &|_, d, n| progress(&name, d, n))?;
        // Record the data file relative to the data folder, so the JSON does not depend on
        // where the data folder lives.
        rep.data = md
            .data
            .strip_prefix(&cfg.data)
            .map_or_else(|_| file_name(&md.data), |p| p.display().to_string());
        out.push(rep);
    }
    Ok(out)
}

fn pct_text(x: f64) -> String {
    format!("{x:.2}")
}

/// The accuracy section (paper Table 2 layout: one row per model, baseline then one column per
/// α) with plots of top-1 accuracy and of the measured max ‖F^α − F‖∞ against α.
pub fn accuracy_section(reports: &[EvalReport], cfg: &NetworkReportConfig) -> Section {
    let mut header: Vec<String> = vec!["model".into(), "data (images)".into(), "baseline".into()];
    header.extend(cfg.alphas.iter().map(|a| format!("α={a}")));
    let mut t = MdTable::new(&header);
    let mut acc_series = Vec::new();
    let mut err_series = Vec::new();
    let mut rows = Vec::new();
    for r in reports {
        let mut cells = vec![
            r.model.clone(),
            format!("{} ({})", r.data, r.images),
            pct_text(r.baseline_accuracy_pct),
        ];
        for a in &r.alphas {
            let d = a.accuracy_pct - r.baseline_accuracy_pct;
            let mark = if d.abs() < 1.0 {
                "**"
            } else if d.abs() < 5.0 {
                "_"
            } else {
                ""
            };
            cells.push(format!("{mark}{}{mark}", pct_text(a.accuracy_pct)));
        }
        t.row(&cells);
        acc_series.push(Series::new(
            r.model.trim_end_matches(".onnx"),
            r.alphas
                .iter()
                .map(|a| (f64::from(a.alpha), a.accuracy_pct))
                .collect(),
        ));
        let pts: Vec<(f64, f64)> = r
            .alphas
            .iter()
            .filter(|a| a.linf_max.is_finite() && a.linf_max > 0.0 && a.nonfinite_outputs == 0)
            .map(|a| (f64::from(a.alpha), a.linf_max))
            .collect();
        if !pts.is_empty() {
            err_series.push(Series::new(r.model.trim_end_matches(".onnx"), pts));
        }
        rows.push(json!({
            "model": r.model,
            "data": r.data,
            "images": r.images,
            "range_policy": r.range_policy,
            "baseline_accuracy_pct": r.baseline_accuracy_pct,
            "alphas": r.alphas,
            "layers": r.layers,
        }));
    }
    let mut md = String::from(
        "Top-1 accuracy (%) of each model with exact activations (baseline) and with ReLU and \
         max-pooling replaced by r̃_α(x) = B·r_α(x/B) and M̃_{α,n} (Eq. 7), B = margin × the max |input| calibrated per \
         layer on the evaluated images (margin in `report.json`) (paper Table 2 layout). **bold**: within 1 pt of the \
         baseline, _italic_: within 5 pt. Measured on the data, not certified.\n\n",
    );
    md.push_str(&t.render());
    md.push_str(
        "\nPer α, `report.json` also holds the measured max and mean ‖F^α(x) − F(x)‖∞, the \
         number of top-1 changes, non-finite outputs and the activation inputs that left \
         [−B, B] per layer (never clamped).\n",
    );
    let plots = vec![
        LinePlot {
            id: "accuracy_vs_alpha".into(),
            title: "Top-1 accuracy of F^α against α".into(),
            x_label: "α (precision parameter)".into(),
            y_label: "top-1 accuracy (%)".into(),
            log_x: false,
            log_y: false,
            series: acc_series,
            evidence: Evidence::Measured,
            legend: LegendPos::UpperRight,
        },
        LinePlot {
            id: "network_error_vs_alpha".into(),
            title: "max ‖F^α(x) − F(x)‖∞ over the data against α".into(),
            x_label: "α (precision parameter)".into(),
            y_label: "max ‖F^α(x) − F(x)‖∞".into(),
            log_x: false,
            log_y: true,
            series: err_series,
            evidence: Evidence::Measured,
            legend: LegendPos::UpperRight,
        },
    ];
    Section {
        id: "accuracy".into(),
        title: "Accuracy against α (Table 2)".into(),
        evidence: Evidence::Measured,
        markdown: md,
        data: Value::Array(rows),
        plots,
    }
}

/// The bounds section: for every model, the certified global bound C·2^−α (Theorems 3–4,
/// from the checked certificates) against the measured ‖F^α − F‖∞ and the per-input bounds
/// on `cfg.bound_images` images spread evenly over each data file, for the α of `cfg` in 4..=14.
///
/// # Errors
/// As [`match_models`] and [`crate::bounds::bound_report`].
pub fn bounds_section(
    cfg: &NetworkReportConfig,
    progress: &(dyn Fn(&str, usize, usize) + Sync),
) -> crate::Result<Section> {
    let alphas: Vec<u32> = cfg
        .alphas
        .iter()
        .copied()
        .filter(|a| crate::bounds::ALPHAS.contains(a))
        .collect();
    let mut reports = Vec::new();
    let mut series = Vec::new();
    for md in match_models(cfg)? {
        let name = file_name(&md.model);
        let bc = crate::bounds::BoundConfig {
            model: md.model.clone(),
            alphas: alphas.clone(),
            proofs: cfg.proofs.clone(),
            range: cfg.range,
            calib: None,
            calib_limit: None,
            data: Some(md.data.clone()),
            limit: Some(cfg.bound_images),
            evenly: true,
            per_input: true,
            method: crate::bounds::PerInputMethod::Elementwise,
            noise_margin: false,
            margin_rows: false,
            shard: None,
        };
        let mut r = crate::bounds::bound_report(&bc, &|_, d, n| progress(&name, d, n))?;
        r.model.clone_from(&name);
        r.data = Some(
            md.data
                .strip_prefix(&cfg.data)
                .map_or_else(|_| file_name(&md.data), |p| p.display().to_string()),
        );
        let stem = name.trim_end_matches(".onnx").to_string();
        let set = if md.data.starts_with(cfg.data.join("mnist")) {
            "mnist"
        } else {
            "cifar10"
        };
        series.push((
            set,
            Series {
                dashed: true,
                markers: false,
                ..Series::new(
                    format!("{stem}: certified bound"),
                    r.alphas
                        .iter()
                        .filter(|a| a.global.bound.is_finite() && a.global.bound > 0.0)
                        .map(|a| (f64::from(a.alpha), a.global.bound))
                        .collect(),
                )
            },
        ));
        series.push((
            set,
            Series::new(
                format!("{stem}: measured max"),
                r.alphas
                    .iter()
                    .filter_map(|a| {
                        a.data
                            .as_ref()
                            .map(|d| (f64::from(a.alpha), d.measured_max))
                    })
                    .filter(|(_, m)| m.is_finite() && *m > 0.0)
                    .collect(),
            ),
        ));
        reports.push(r);
    }
    let mut md = format!(
        "Theorems 3–4 on the real models: the **certified** global bound C·2^−α (Lemma 1 \
         functions composed block by block from the BN-folded weights, with the certified \
         polynomial errors of the checked certificates, rounded upward) against the error \
         **measured** on {} images spread evenly over each data file, with the per-input bounds \
         (certified for the images that pass the range check). Full tables: `polycert bound` \
         and `reports/bounds.md`. The global bound holds only for inputs whose F^α activation \
         inputs stay in [−B, B]; the measured max is over all evaluated images, including those \
         that leave the range at small α (where the polynomials diverge), so in the plots it can \
         lie above the bound there; non-finite measured errors are left out of the plots (the \
         tables show them as inf).\n\n",
        cfg.bound_images
    );
    let full = crate::bounds::bounds_markdown(&reports, "polycert report --models … --data …");
    // Drop the standalone file's title and demote its headings below this section's.
    let body = full
        .split_once("\n\n")
        .map_or(full.as_str(), |(_, rest)| rest);
    for line in body.lines() {
        if line.starts_with('#') {
            md.push_str("##");
        }
        md.push_str(line);
        md.push('\n');
    }
    // One plot per data set (at most 8 series each, so no colour repeats).
    let mut plots = Vec::new();
    for (set, title) in [("mnist", "MNIST models"), ("cifar10", "CIFAR-10 models")] {
        let s: Vec<Series> = series
            .iter()
            .filter(|(d, _)| *d == set)
            .map(|(_, s)| s.clone())
            .collect();
        if !s.is_empty() {
            plots.push(LinePlot {
                id: format!("network_bound_vs_measured_{set}"),
                title: format!("{title}: certified bound and measured ‖F^α − F‖∞"),
                x_label: "α (precision parameter)".into(),
                y_label: "‖F^α(x) − F(x)‖∞".into(),
                log_x: false,
                log_y: true,
                series: s,
                evidence: Evidence::Mixed,
                legend: LegendPos::UpperRight,
            });
        }
    }
    let data = serde_json::to_value(&reports).map_err(|e| super::ReportError::Json {
        what: "bounds section".into(),
        message: e.to_string(),
    })?;
    Ok(Section {
        id: "network_bounds".into(),
        title: "Certified network bounds against measured error".into(),
        evidence: Evidence::Mixed,
        markdown: md,
        data,
        plots,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_models_folder_is_an_error_naming_it() {
        let cfg = NetworkReportConfig::new("/nonexistent/models".into(), "/nonexistent".into());
        let e = match_models(&cfg).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/models"), "{e}");
    }

    #[test]
    fn empty_models_folder_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = NetworkReportConfig::new(dir.path().into(), dir.path().into());
        let e = match_models(&cfg).unwrap_err().to_string();
        assert!(e.contains(".onnx"), "{e}");
    }
}
