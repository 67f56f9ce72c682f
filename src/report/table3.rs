//! The ImageNet section (paper Table 3): an ImageNet model (input `[3, 224, 224]`, e.g.
//! EfficientNet-Lite0 with ReLU6 = Clip(0, 6)) on the 224×224 validation records, exact and with
//! every Clip replaced by min + r̃_α(x − min) − r̃_α(x − max) (two r̃_α with their own
//! calibrated B, evaluated side by side: no extra depth), top-1 and top-5 per α, compared with
//! the paper's Table 3. Every figure here is **measured** (sampled on the data).
//!
//! Used by `polycert report` (a section when the models folder holds an ImageNet model and the
//! data folder `imagenet/imagenet_val500_224.bin`) and by `polycert eval --table3-out DIR`
//! (the committed `reports/table3/`, with the command at the top).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::network::{file_name, onnx_files};
use super::{write_atomic, Evidence, MdTable, NetworkReportConfig, ReportError, Section};
use crate::nn::{import_onnx, table2, DataFormat, EvalReport, Precision, Table2Spec};

/// The ImageNet records inside the data folder (layout of `shared/data`).
pub const IMAGENET_FILE: &str = "imagenet/imagenet_val500_224.bin";

/// Per-sample input shape of the ImageNet models this section evaluates.
pub const IMAGENET_SHAPE: [usize; 3] = [3, 224, 224];

/// Paper Table 3 (α = 14; ReLU range [−400, 400], max-pooling [−100, 100]; full ImageNet
/// validation set): backbone, baseline top-1 (%), approximate top-1 (%).
pub const PAPER_TABLE3: [(&str, f64, f64); 5] = [
    ("Inception-v3", 69.54, 69.23),
    ("GoogLeNet", 68.13, 69.76),
    ("VGG-19", 74.22, 73.46),
    ("ResNet-152", 78.31, 77.52),
    ("ResNeXt-101-32x8d", 79.31, 78.25),
];

/// How close to the exact model counts as "within" in the summary line (points).
pub const WITHIN_PT: f64 = 1.0;

fn alpha_text(a: Option<u32>) -> String {
    a.map_or_else(|| "none of the evaluated α".into(), |a| format!("α = {a}"))
}

/// The Markdown body of Table 3 for one evaluation (`command`, when given, goes on top).
pub fn table3_markdown(rep: &EvalReport, command: Option<&str>) -> String {
    let mut s = String::new();
    if let Some(c) = command {
        let _ = writeln!(s, "Command: `{c}`\n");
    }
    let _ = writeln!(
        s,
        "Each Clip(min, max) (here ReLU6 = Clip(0, 6)) is replaced by \
         min + r̃_α(x − min) − r̃_α(x − max), each r̃_α(t) = B·r_α(t/B) with its own B per site \
         (calibrated max |t| on the evaluated images × margin). The two r̃_α read the same \
         input and run side by side, so under CKKS a ReLU6 costs the depth of one ReLU. \
         Measured on the data, not certified.\n"
    );
    s.push_str(&rep.to_markdown());
    let _ = writeln!(
        s,
        "\nWithin {WITHIN_PT} pt of the exact model at this and every larger evaluated α: \
         top-1 from {}, top-5 from {}.\n",
        alpha_text(rep.alpha_within(WITHIN_PT, false)),
        alpha_text(rep.alpha_within(WITHIN_PT, true)),
    );
    let _ = writeln!(
        s,
        "Paper Table 3 (α = 14, other ImageNet networks with ReLU, full validation set, one \
         fixed range [−400, 400] for every ReLU):\n"
    );
    let mut t = MdTable::new(&[
        "network",
        "baseline top-1 (%)",
        "α = 14 top-1 (%)",
        "Δ (pt)",
    ]);
    for (name, b, a) in PAPER_TABLE3 {
        t.row(&[
            name.to_string(),
            format!("{b:.2}"),
            format!("{a:.2}"),
            format!("{:+.2}", a - b),
        ]);
    }
    if let Some(a14) = rep.alphas.iter().find(|a| a.alpha == 14) {
        t.row(&[
            format!("this run: {} ({} images)", rep.model, rep.images),
            format!("{:.2}", rep.baseline_accuracy_pct),
            format!("{:.2}", a14.accuracy_pct),
            format!("{:+.2}", a14.accuracy_pct - rep.baseline_accuracy_pct),
        ]);
    }
    s.push_str(&t.render());
    let (lo, hi) = (
        rep.alphas.iter().map(|a| a.alpha).min(),
        rep.alphas.iter().map(|a| a.alpha).max(),
    );
    let mut header = vec![
        "site".to_string(),
        "measured max |input|".into(),
        "B".into(),
    ];
    let shown: Vec<u32> = lo
        .into_iter()
        .chain(hi.filter(|h| Some(*h) != lo))
        .collect();
    header.extend(shown.iter().map(|a| format!("B·2^−{a}")));
    let mut t = MdTable::new(&header);
    for l in &rep.layers {
        let mut cells = vec![
            format!("{} ({})", l.name, l.op),
            format!("{:.4}", l.measured_max_abs),
            format!("{:.4}", l.b),
        ];
        cells.extend(
            shown
                .iter()
                .map(|&a| format!("{:.3e}", l.b * (-f64::from(a)).exp2())),
        );
        t.row(&cells);
    }
    let _ = writeln!(
        s,
        "\nApproximation range per site (B·2^−α scales the r̃_α error term of the paper's \
         analysis; the inputs reach |x| ≈ 100, so it is large at small α):\n"
    );
    s.push_str(&t.render());
    s
}

/// The JSON of Table 3 for one evaluation: the command (when given), the α within
/// [`WITHIN_PT`] of exact for top-1 and top-5, the paper's rows and the full report.
pub fn table3_json(rep: &EvalReport, command: Option<&str>) -> Value {
    json!({
        "command": command,
        "within_pt": WITHIN_PT,
        "top1_within_from_alpha": rep.alpha_within(WITHIN_PT, false),
        "top5_within_from_alpha": rep.alpha_within(WITHIN_PT, true),
        "paper_table3": PAPER_TABLE3
            .iter()
            .map(|(n, b, a)| json!({"network": n, "baseline_top1_pct": b, "alpha14_top1_pct": a}))
            .collect::<Vec<_>>(),
        "report": rep,
    })
}

/// Write `DIR/table3.md` and `DIR/table3.json` (atomically) for one evaluation, with the
/// command that produced it on top.
///
/// # Errors
/// [`ReportError::Io`] or [`ReportError::Json`].
pub fn write_table3(
    dir: &Path,
    rep: &EvalReport,
    command: &str,
) -> Result<Vec<PathBuf>, ReportError> {
    let md = format!(
        "# Table 3: {} on ImageNet with approximate ReLU6\n\n{}",
        rep.model,
        table3_markdown(rep, Some(command))
    );
    let json = super::to_json_bytes("table3", &table3_json(rep, Some(command)))?;
    let (pm, pj) = (dir.join("table3.md"), dir.join("table3.json"));
    write_atomic(&pm, md.as_bytes())?;
    write_atomic(&pj, &json)?;
    Ok(vec![pm, pj])
}

/// The ImageNet models of `cfg.models` (input [`IMAGENET_SHAPE`]), sorted by file name.
///
/// # Errors
/// An unreadable folder or a model that cannot be imported.
pub fn imagenet_models(cfg: &NetworkReportConfig) -> crate::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for m in onnx_files(&cfg.models)? {
        if import_onnx(&m)?.input_shape().dims() == IMAGENET_SHAPE {
            out.push(m);
        }
    }
    Ok(out)
}

/// The Table 3 section: every ImageNet model of `cfg.models` on `DATA/`[`IMAGENET_FILE`]
/// (the first `cfg.limit` records, or all), α of `cfg`. `None` when there is no ImageNet
/// model or no ImageNet data file.
///
/// # Errors
/// As [`imagenet_models`] and [`crate::nn::table2`].
pub fn table3_section(
    cfg: &NetworkReportConfig,
    progress: &(dyn Fn(&str, usize, usize) + Sync),
) -> crate::Result<Option<Section>> {
    let data = cfg.data.join(IMAGENET_FILE);
    let models = imagenet_models(cfg)?;
    if models.is_empty() || !data.is_file() {
        return Ok(None);
    }
    let mut md = String::new();
    let mut rows = Vec::new();
    for m in models {
        let name = file_name(&m);
        let spec = Table2Spec {
            model: m.clone(),
            data: data.clone(),
            format: Some(DataFormat::Imagenet224),
            alphas: cfg.alphas.clone(),
            limit: cfg.limit,
            evenly: false,
            range: cfg.range,
            calib: None,
            calib_limit: None,
            preprocess: None,
            precision: Precision::F32,
            chunk: 64,
        };
        let mut rep: EvalReport = table2(&spec, &|_, d, n| progress(&name, d, n))?;
        rep.data = IMAGENET_FILE.into();
        md.push_str(&table3_markdown(&rep, None));
        md.push('\n');
        rows.push(table3_json(&rep, None));
    }
    Ok(Some(Section {
        id: "table3".into(),
        title: "ImageNet with approximate ReLU6 (Table 3)".into(),
        evidence: Evidence::Measured,
        markdown: md,
        data: Value::Array(rows),
        plots: Vec::new(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{AlphaResult, LayerRange, RangePolicy};

    fn alpha(alpha: u32, top1: f64, top5: f64) -> AlphaResult {
        AlphaResult {
            alpha,
            degrees: vec![15],
            correct: 0,
            accuracy_pct: top1,
            top5_correct: Some(0),
            top5_accuracy_pct: Some(top5),
            linf_max: 0.5,
            linf_mean: 0.25,
            nonfinite_outputs: 0,
            top1_disagreements: 0,
            out_of_range_total: 0,
            out_of_range: Vec::new(),
        }
    }

    fn report() -> EvalReport {
        EvalReport {
            model: "m.onnx".into(),
            data: IMAGENET_FILE.into(),
            images: 500,
            precision: "f32".into(),
            range_policy: RangePolicy::PerLayer { margin: 1.1 },
            calibration_images: 500,
            baseline_correct: 407,
            baseline_accuracy_pct: 81.4,
            baseline_top5_correct: Some(474),
            baseline_top5_accuracy_pct: Some(94.8),
            layers: vec![LayerRange {
                node: 3,
                name: "stem.act.clip".into(),
                op: "Clip: ReLU(x − 6)".into(),
                measured_max_abs: 98.0,
                b: 102.4,
            }],
            // Top-1 within 1 pt from α = 12 on (α = 10 is within but α = 11 is not), top-5
            // from α = 10.
            alphas: vec![
                alpha(8, 20.0, 50.0),
                alpha(10, 80.6, 94.0),
                alpha(11, 80.2, 94.2),
                alpha(12, 81.0, 94.8),
                alpha(14, 81.4, 95.0),
            ],
        }
    }

    #[test]
    fn within_one_point_holds_from_the_alpha_on() {
        let r = report();
        assert_eq!(r.alpha_within(WITHIN_PT, false), Some(12));
        assert_eq!(r.alpha_within(WITHIN_PT, true), Some(10));
        let mut far = r.clone();
        far.alphas.retain(|a| a.alpha < 11);
        far.alphas.push(alpha(14, 70.0, 90.0));
        assert_eq!(far.alpha_within(WITHIN_PT, false), None);
        let mut no5 = r;
        no5.baseline_top5_accuracy_pct = None;
        assert_eq!(no5.alpha_within(WITHIN_PT, true), None);
    }

    #[test]
    fn markdown_has_command_paper_rows_and_ranges() {
        let md = table3_markdown(&report(), Some("polycert eval --alpha 8..14"));
        assert!(
            md.starts_with("Command: `polycert eval --alpha 8..14`\n"),
            "{md}"
        );
        assert!(md.contains("top-1 from α = 12, top-5 from α = 10"), "{md}");
        assert!(
            md.contains("| ResNet-152 | 78.31 | 77.52 | -0.79 |"),
            "{md}"
        );
        assert!(
            md.contains("| this run: m.onnx (500 images) | 81.40 | 81.40 | +0.00 |"),
            "{md}"
        );
        // B·2^−8 = 102.4/256 = 0.4, B·2^−14 = 102.4/16384 = 6.25e−3.
        assert!(
            md.contains(
                "| stem.act.clip (Clip: ReLU(x − 6)) | 98.0000 | 102.4000 | 4.000e-1 | 6.250e-3 |"
            ),
            "{md}"
        );
        let j = table3_json(&report(), None);
        assert_eq!(j["top1_within_from_alpha"], 12);
        assert_eq!(j["paper_table3"][3]["network"], "ResNet-152");
    }
}
