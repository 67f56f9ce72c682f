//! `polycert eval`: Table-2-style accuracy of a network with exact and approximate activations.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use clap::Args;

use polycert::nn::{table2, DataFormat, Precision, Preprocess, RangePolicy, Table2Spec};

use super::{parse_alphas, Outcome};

/// Arguments of `polycert eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// ONNX model file.
    #[arg(long)]
    pub model: PathBuf,
    /// Data file (CIFAR-10 binary, or MNIST IDX images with the labels file next to it).
    #[arg(long)]
    pub data: PathBuf,
    /// Precision parameters: `A..B` (inclusive), a list `A,B,C`, or one value; each in 4..=14.
    #[arg(long, default_value = "4..14")]
    pub alpha: String,
    /// Evaluate only K images (the first K, or with `--evenly` K spread over the file).
    #[arg(long)]
    pub limit: Option<usize>,
    /// With `--limit`: take the images spread evenly over the file (for files sorted by
    /// class, like the CIFAR-10 JPEG copy) instead of the first ones.
    #[arg(long)]
    pub evenly: bool,
    /// Approximation range: `auto` (calibrated) or a fixed value B > 0.
    #[arg(long, default_value = "auto")]
    pub b: String,
    /// With `--b auto`: one B per layer or one per network.
    #[arg(long, value_parser = ["layer", "network"], default_value = "layer")]
    pub b_scope: String,
    /// With `--b auto`: multiply the calibrated max |input| by this factor (≥ 1).
    #[arg(long, default_value_t = 1.1)]
    pub margin: f64,
    /// Calibration data (default: the evaluation data).
    #[arg(long)]
    pub calib: Option<PathBuf>,
    /// Calibrate on the first K images only (default: --limit).
    #[arg(long)]
    pub calib_limit: Option<usize>,
    /// Data format (default: detected from the file: IDX magic → mnist; otherwise by length,
    /// a multiple of 3,073 bytes → cifar10, of 150,530 → imagenet224, of both → error).
    #[arg(long, value_parser = ["cifar10", "mnist", "imagenet224"])]
    pub format: Option<String>,
    /// Engine precision.
    #[arg(long, value_parser = ["f32", "f64"], default_value = "f32")]
    pub precision: String,
    /// Override the model's preprocessing: `SCALE:MEAN:STD` (e.g. `1/255:0.5:0.25`).
    #[arg(long)]
    pub preprocess: Option<String>,
    /// Print JSON to stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Also write the JSON report to this file.
    #[arg(long)]
    pub out_json: Option<PathBuf>,
    /// Also write the Markdown table to this file.
    #[arg(long)]
    pub out_md: Option<PathBuf>,
    /// Images per streaming chunk.
    #[arg(long, default_value_t = 256)]
    pub chunk: usize,
    /// Also write the paper-Table-3 files `DIR/table3.md` and `DIR/table3.json` (top-1 and
    /// top-5 per α, the α within 1 pt of exact, the paper's rows, B·2^−α per site), with this
    /// command at their top.
    #[arg(long)]
    pub table3_out: Option<PathBuf>,
}

fn write_atomic(path: &Path, text: &str) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile_in(dir)?;
    tmp.1
        .write_all(text.as_bytes())
        .with_context(|| format!("writing {}", tmp.0.display()))?;
    tmp.1.sync_all().ok();
    std::fs::rename(&tmp.0, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

fn tempfile_in(dir: &Path) -> anyhow::Result<(PathBuf, std::fs::File)> {
    for i in 0..100u32 {
        let p = dir.join(format!(".polycert-tmp-{}-{i}", std::process::id()));
        if let Ok(f) = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&p)
        {
            return Ok((p, f));
        }
    }
    bail!("cannot create a temporary file in {}", dir.display())
}

/// Handle `polycert eval`.
pub fn run(a: &EvalArgs, quiet: bool) -> anyhow::Result<Outcome> {
    let alphas = parse_alphas(&a.alpha)?;
    let range = if a.b == "auto" {
        match a.b_scope.as_str() {
            "network" => RangePolicy::PerNetwork { margin: a.margin },
            _ => RangePolicy::PerLayer { margin: a.margin },
        }
    } else {
        let b: f64 =
            a.b.parse()
                .with_context(|| format!("--b {:?}: expected `auto` or a number > 0", a.b))?;
        RangePolicy::Fixed(b)
    };
    let preprocess = match &a.preprocess {
        None => None,
        Some(s) => {
            let parts: Vec<&str> = s.split(':').collect();
            let [sc, m, d] = parts.as_slice() else {
                bail!("--preprocess {s:?}: expected SCALE:MEAN:STD");
            };
            Some(Preprocess::parse(sc, m, d)?)
        }
    };
    let spec = Table2Spec {
        model: a.model.clone(),
        data: a.data.clone(),
        format: a.format.as_deref().map(DataFormat::parse).transpose()?,
        alphas,
        limit: a.limit,
        evenly: a.evenly,
        range,
        calib: a.calib.clone(),
        calib_limit: a.calib_limit,
        preprocess,
        precision: if a.precision == "f64" {
            Precision::F64
        } else {
            Precision::F32
        },
        chunk: a.chunk,
    };
    let progress = |stage: &str, done: usize, total: usize| {
        if !quiet {
            if total == 0 {
                eprintln!("{stage}…");
            } else {
                eprintln!("{stage}: {done}/{total}");
            }
        }
    };
    let rep = table2(&spec, &progress)?;
    let json = serde_json::to_string_pretty(&rep)? + "\n";
    let md = rep.to_markdown();
    if let Some(p) = &a.out_json {
        write_atomic(p, &json)?;
    }
    if let Some(p) = &a.out_md {
        write_atomic(p, &md)?;
    }
    if let Some(dir) = &a.table3_out {
        // The command as typed, program name normalised (paths as given).
        let args: Vec<String> = std::env::args().skip(1).collect();
        polycert::report::write_table3(dir, &rep, &format!("polycert {}", args.join(" ")))?;
    }
    if a.json {
        out!("{json}")?;
    } else {
        out!("{md}")?;
    }
    Ok(Outcome::Ok)
}
