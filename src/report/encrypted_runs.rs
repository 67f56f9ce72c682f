//! The committed encrypted runs of residual networks (`ckks_resnet*.json` in the report
//! folder, written by `polycert ckks --out`, e.g. `reports/ckks_resnet20.json`): a 128-bit
//! ResNet-20 run takes tens of minutes, so `polycert report` does not repeat it (its CKKS
//! section skips residual networks) but includes the committed files when they are present:
//! per file the model, α, ring, security, images, agreement of the encrypted class with the
//! plaintext approximate network F^α and the exact network F, the **measured** CKKS error
//! ‖dec − F^α(x)‖∞, ‖dec − F(x)‖∞, the bootstraps and the recorded time and memory.
//!
//! Deterministic: the section is a function of the files' bytes (sorted by name).

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::{Evidence, MdTable, ReportError, Section};

/// File-name prefix of the committed runs.
pub const PREFIX: &str = "ckks_resnet";

fn committed(path: &Path, message: impl Into<String>) -> ReportError {
    ReportError::Committed {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn field<'a>(path: &Path, v: &'a Value, ptr: &str) -> Result<&'a Value, ReportError> {
    v.pointer(ptr)
        .ok_or_else(|| committed(path, format!("field {ptr} is missing")))
}

fn num(path: &Path, v: &Value, ptr: &str) -> Result<f64, ReportError> {
    field(path, v, ptr)?
        .as_f64()
        .ok_or_else(|| committed(path, format!("field {ptr} is not a number")))
}

fn text(path: &Path, v: &Value, ptr: &str) -> Result<String, ReportError> {
    field(path, v, ptr)?
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| committed(path, format!("field {ptr} is not a string")))
}

/// The committed run files in `dir`, sorted by name.
fn run_files(dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(committed(dir, e.to_string())),
    };
    let mut files = Vec::new();
    for e in entries {
        let e = e.map_err(|err| committed(dir, err.to_string()))?;
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(PREFIX) && name.ends_with(".json") {
            files.push(e.path());
        }
    }
    files.sort();
    Ok(files)
}

/// One row: the figures of one committed run.
fn row(path: &Path) -> Result<Value, ReportError> {
    let bytes = std::fs::read(path).map_err(|e| committed(path, e.to_string()))?;
    let v: Value =
        serde_json::from_slice(&bytes).map_err(|e| committed(path, format!("not JSON: {e}")))?;
    let images = field(path, &v, "/images")?
        .as_array()
        .ok_or_else(|| committed(path, "field /images is not an array"))?;
    if images.is_empty() {
        return Err(committed(path, "field /images is empty"));
    }
    let opt = |ptr: &str| v.pointer(ptr).and_then(Value::as_f64);
    Ok(json!({
        "file": path.file_name().map(|n| n.to_string_lossy().into_owned()),
        "model": text(path, &v, "/model")?,
        "alpha": num(path, &v, "/alpha")?,
        "log_n": num(path, &v, "/params/log_n")?,
        "security": text(path, &v, "/params/security")?,
        "images": images.len(),
        "agree_with_approx": num(path, &v, "/agree_with_approx")?,
        "agree_with_exact": num(path, &v, "/agree_with_exact")?,
        "correct": num(path, &v, "/correct")?,
        "max_ckks_error": num(path, &v, "/max_ckks_error")?,
        "precision_bits": num(path, &v, "/precision_bits")?,
        "max_error_vs_exact": num(path, &v, "/max_error_vs_exact")?,
        "bootstraps": opt("/bootstrap/bootstraps"),
        "per_image_s": opt("/timings/per_image_s"),
        "eval_s": opt("/timings/eval_s"),
        "peak_rss_mib": opt("/timings/peak_rss_mib"),
    }))
}

fn cell(v: &Value, key: &str, fmt: impl Fn(f64) -> String) -> String {
    v.get(key).and_then(Value::as_f64).map_or("–".into(), fmt)
}

/// The section of the committed encrypted runs in `dir` (`None` when there is none).
///
/// # Errors
/// [`ReportError::Committed`] naming the file when one cannot be read, is not JSON, or lacks
/// a field.
pub fn encrypted_runs_section(dir: &Path) -> Result<Option<Section>, ReportError> {
    let files = run_files(dir)?;
    if files.is_empty() {
        return Ok(None);
    }
    let rows = files
        .iter()
        .map(|f| row(f))
        .collect::<Result<Vec<_>, _>>()?;
    let mut t = MdTable::new(&[
        "file",
        "model",
        "α",
        "N",
        "security",
        "images",
        "encrypted = approx",
        "encrypted = exact",
        "max ‖dec − F^α‖∞ (bits)",
        "max ‖dec − F‖∞",
        "bootstraps",
        "s per image",
        "peak RSS",
    ]);
    for r in &rows {
        let n = r.get("images").and_then(Value::as_u64).unwrap_or(0);
        let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        t.row(&[
            s("file"),
            s("model"),
            cell(r, "alpha", |x| format!("{x}")),
            cell(r, "log_n", |x| format!("2^{x}")),
            s("security"),
            n.to_string(),
            cell(r, "agree_with_approx", |x| format!("{x}/{n}")),
            cell(r, "agree_with_exact", |x| format!("{x}/{n}")),
            format!(
                "{} ({})",
                cell(r, "max_ckks_error", |x| format!("{x:.3e}")),
                cell(r, "precision_bits", |x| format!("{x:.1}"))
            ),
            cell(r, "max_error_vs_exact", |x| format!("{x:.3e}")),
            cell(r, "bootstraps", |x| format!("{x}")),
            cell(r, "per_image_s", |x| format!("{x:.0}")),
            cell(r, "peak_rss_mib", |x| format!("{:.1} GiB", x / 1024.0)),
        ]);
    }
    let markdown = format!(
        "Committed encrypted runs of residual networks (`polycert ckks`, the command at the top of \
         each file's Markdown twin), read from the report folder; `polycert report` does not \
         repeat them. All figures are **measured** on the recorded run; time and memory are the \
         run's own (2-core machine), per image = evaluation time / images.\n\n{}",
        t.render()
    );
    Ok(Some(Section {
        id: "ckks_resnet".into(),
        title: "Encrypted residual networks (committed runs)".into(),
        evidence: Evidence::Measured,
        markdown,
        data: json!({ "runs": rows }),
        plots: Vec::new(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_json(model: &str, alpha: u32, with_timings: bool) -> Value {
        let mut v = json!({
            "model": model,
            "alpha": alpha,
            "params": {"log_n": 16, "security": "128-bit"},
            "images": [{"index": 0}, {"index": 1}, {"index": 2}, {"index": 3}],
            "agree_with_approx": 4,
            "agree_with_exact": 3,
            "correct": 3,
            "max_ckks_error": 1.5e-4,
            "precision_bits": 12.7,
            "max_error_vs_exact": 2.0e-3,
            "bootstrap": {"bootstraps": 48},
        });
        if with_timings {
            v["timings"] = json!({"per_image_s": 612.4, "eval_s": 2449.6, "peak_rss_mib": 15360.0});
        }
        v
    }

    #[test]
    fn absent_folder_or_files_give_no_section() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(encrypted_runs_section(&dir.path().join("absent"))
            .expect("ok")
            .is_none());
        std::fs::write(dir.path().join("ckks_mnist.json"), "{}").expect("write");
        assert!(encrypted_runs_section(dir.path()).expect("ok").is_none());
    }

    #[test]
    fn rows_are_sorted_by_file_and_carry_the_figures() {
        let dir = tempfile::tempdir().expect("tempdir");
        let write = |name: &str, v: &Value| {
            std::fs::write(dir.path().join(name), serde_json::to_vec(v).expect("json"))
                .expect("write");
        };
        write("ckks_resnet20_alpha14.json", &run_json("r20", 14, false));
        write("ckks_resnet20.json", &run_json("r20", 13, true));
        let s = encrypted_runs_section(dir.path())
            .expect("ok")
            .expect("section");
        let runs = s.data["runs"].as_array().expect("runs");
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0]["file"], "ckks_resnet20.json");
        assert_eq!(runs[0]["alpha"], 13.0);
        assert_eq!(runs[1]["alpha"], 14.0);
        assert!(runs[1]["per_image_s"].is_null());
        assert!(
            s.markdown.contains("| 4/4 | 3/4 | 1.500e-4 (12.7) |"),
            "{}",
            s.markdown
        );
        assert!(
            s.markdown.contains("| 48 | 612 | 15.0 GiB |"),
            "{}",
            s.markdown
        );
        assert!(s.markdown.contains("| 48 | – | – |"), "{}", s.markdown);
        // Deterministic: the same files give the same JSON.
        let again = encrypted_runs_section(dir.path())
            .expect("ok")
            .expect("section");
        assert_eq!(again.data, s.data);
    }

    #[test]
    fn a_missing_field_or_bad_json_names_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut v = run_json("r20", 13, true);
        v.as_object_mut().expect("object").remove("max_ckks_error");
        let p = dir.path().join("ckks_resnet20.json");
        std::fs::write(&p, serde_json::to_vec(&v).expect("json")).expect("write");
        let e = encrypted_runs_section(dir.path()).expect_err("missing field");
        assert_eq!(
            e.to_string(),
            format!(
                "cannot use the committed run {}: field /max_ckks_error is missing",
                p.display()
            )
        );
        std::fs::write(&p, b"{ not json").expect("write");
        let e = encrypted_runs_section(dir.path()).expect_err("bad json");
        assert!(
            e.to_string().starts_with(&format!(
                "cannot use the committed run {}: not JSON:",
                p.display()
            )),
            "{e}"
        );
    }
}
