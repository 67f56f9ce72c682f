//! `polycert bound`: certified error-propagation bounds (paper §4, Theorems 2–4) per block,
//! and with data the per-input bounds against the measured error.

use std::path::PathBuf;

use anyhow::{bail, Context as _};
use clap::Args;

use polycert::bounds::{
    bound_report, bounds_markdown, first_order_markdown, first_order_report, merge_bound_reports,
    ranges_for, smallest_alpha, BoundConfig, BoundReport, FirstOrderReport, PerInputMethod,
};
use polycert::nn::RangePolicy;

use super::Outcome;

/// Arguments of `polycert bound`.
#[derive(Debug, Args)]
pub struct BoundArgs {
    /// ONNX model file (repeat for several models).
    #[arg(long, required_unless_present = "merge")]
    pub model: Vec<PathBuf>,
    /// Instead of computing: merge the JSON files that earlier `polycert bound --out-json`
    /// runs wrote (repeat; models in the order given, each exactly as its run certified it)
    /// into one report for --out-json / --out-md. A model in two files is refused.
    #[arg(long, conflicts_with_all = ["model", "data", "first_order", "target_error"])]
    pub merge: Vec<PathBuf>,
    /// Precision parameters: `A..B` (inclusive), a list `A,B,C`, or one value; each in 4..=14.
    #[arg(long, default_value = "14")]
    pub alpha: String,
    /// Data file(s) for calibration and `--per-input` (one for all models, or one per model).
    #[arg(long)]
    pub data: Vec<PathBuf>,
    /// Per-input bounds, measured errors and certified-unchanged predictions on the data.
    #[arg(long)]
    pub per_input: bool,
    /// With `--per-input`, the per-input certificate: `trajectory` (the default: rigorous
    /// ball enclosures of F(x) and F^α(x) themselves, so of ‖F^α(x) − F(x)‖∞ and of both
    /// classes), `elementwise` (the earlier bound: each polynomial error an unknown in its
    /// certified box, under a range check), or `both`.
    #[arg(long, value_parser = ["trajectory", "elementwise", "both"], requires = "per_input")]
    pub method: Option<String>,
    /// With `--method trajectory` (or `both`): also the certified noise margin η of every
    /// certified-unchanged image — the largest η such that perturbing every ReLU input by up
    /// to η·B keeps the class (median and 5th percentile of log₂ η in the report).
    #[arg(long, requires = "per_input")]
    pub noise_margin: bool,
    /// With `--noise-margin`: also bound the site inputs of the last stage by
    /// back-substitution to the stage input (η ~2.4 octaves larger on ResNet-20 at ~3.5× the
    /// cost; recorded in the report).
    #[arg(long, requires = "noise_margin")]
    pub margin_rows: bool,
    /// With `--per-input --method trajectory`: certify only part K of N of the selected
    /// images (`K/N`, e.g. `3/10`; part K is the positions ⌊(K−1)·n/N⌋..⌊K·n/N⌋ of the n
    /// selected images). B is calibrated on the whole selection as without it, and the JSON
    /// keeps every image's record, so `--merge` of parts 1..N gives the unsharded report.
    #[arg(long, requires = "per_input", conflicts_with_all = ["merge", "first_order", "target_error"])]
    pub shard: Option<String>,
    /// Use only K images of the data (the first K, or with `--evenly` K spread over the file);
    /// one for all models, or one per model.
    #[arg(long)]
    pub limit: Vec<usize>,
    /// With `--limit`: take the images spread evenly over the file (for files sorted by
    /// class, like the CIFAR-10 JPEG copy) instead of the first ones.
    #[arg(long)]
    pub evenly: bool,
    /// Approximation range: `auto` (calibrated on the data or --calib) or a fixed B > 0.
    #[arg(long, default_value = "auto")]
    pub b: String,
    /// With `--b auto`: one B per layer or one per network.
    #[arg(long, value_parser = ["layer", "network"], default_value = "layer")]
    pub b_scope: String,
    /// With `--b auto`: multiply the calibrated max |input| by this factor (≥ 1). The
    /// default 1.1 is `polycert eval`'s: with 1.0 the image attaining the calibrated max has
    /// no slack at all, and F^α inputs drift just past B.
    #[arg(long, default_value_t = 1.1)]
    pub margin: f64,
    /// Calibration data (default: the data).
    #[arg(long)]
    pub calib: Option<PathBuf>,
    /// Calibrate on the first K images only (default: --limit).
    #[arg(long)]
    pub calib_limit: Option<usize>,
    /// Directory of the certificates `table1-alphaNN.json` (re-checked before use).
    #[arg(long, default_value = "proofs")]
    pub proofs: PathBuf,
    /// Instead of the bounds: the first-order limit of box-based certificates on the data (a
    /// computed linearisation, not a certificate): per α, the fraction of images whose
    /// margins exceed the first-order worst-case change over the per-neuron error boxes.
    /// Needs --data; --out-json / --out-md then receive this report.
    #[arg(long, conflicts_with_all = ["per_input", "target_error"])]
    pub first_order: bool,
    /// Print the smallest α (4..=14) whose global bound is ≤ E, instead of the tables.
    #[arg(long)]
    pub target_error: Option<f64>,
    /// Print JSON to stdout instead of Markdown.
    #[arg(long)]
    pub json: bool,
    /// Also write the JSON to this file.
    #[arg(long)]
    pub out_json: Option<PathBuf>,
    /// Also write the Markdown to this file.
    #[arg(long)]
    pub out_md: Option<PathBuf>,
}

fn parse_alphas(s: &str) -> anyhow::Result<Vec<u32>> {
    let v: Vec<u32> = if let Some((a, b)) = s.split_once("..") {
        let a: u32 = a
            .trim()
            .parse()
            .with_context(|| format!("--alpha {s:?}: bad start"))?;
        let b: u32 = b
            .trim()
            .trim_start_matches('=')
            .parse()
            .with_context(|| format!("--alpha {s:?}: bad end"))?;
        (a..=b).collect()
    } else {
        s.split(',')
            .map(|p| {
                p.trim()
                    .parse::<u32>()
                    .with_context(|| format!("--alpha {s:?}: {p:?} is not an integer"))
            })
            .collect::<anyhow::Result<_>>()?
    };
    if v.is_empty() || v.iter().any(|a| !(4..=14).contains(a)) {
        bail!("--alpha {s:?}: expected α in 4..=14 (e.g. 6..14, 8,10,14 or 14)");
    }
    Ok(v)
}

/// `K/N` with 1 ≤ K ≤ N (checked again against the number of images by the library).
fn parse_shard(s: &str) -> anyhow::Result<(usize, usize)> {
    let parsed = s.split_once('/').and_then(|(k, n)| {
        Some((
            k.trim().parse::<usize>().ok()?,
            n.trim().parse::<usize>().ok()?,
        ))
    });
    match parsed {
        Some((k, n)) if 1 <= k && k <= n => Ok((k, n)),
        _ => bail!("--shard {s:?}: expected K/N with 1 ≤ K ≤ N (e.g. 3/10)"),
    }
}

fn write(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    polycert::report::write_atomic(path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// Write the report to `--out-json` / `--out-md` (each atomically, the JSON first: a Markdown
/// file that exists means its JSON is complete, which `reports/shards/run.sh` relies on) and
/// print it (JSON with `--json`, else Markdown).
fn emit(a: &BoundArgs, json: &str, md: &str) -> anyhow::Result<()> {
    if let Some(p) = &a.out_json {
        write(p, json)?;
    }
    if let Some(p) = &a.out_md {
        write(p, md)?;
    }
    if a.json {
        out!("{json}")?;
    } else {
        out!("{md}")?;
    }
    Ok(())
}

/// The command line as typed (minus the binary path), quoted in the report.
fn command() -> String {
    std::iter::once("polycert".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Handle `polycert bound`.
pub fn run(a: &BoundArgs, quiet: bool) -> anyhow::Result<Outcome> {
    if !a.merge.is_empty() {
        let reports = merge_bound_reports(&a.merge)?;
        emit(
            a,
            &(serde_json::to_string_pretty(&reports)? + "\n"),
            &bounds_markdown(&reports, &command()),
        )?;
        return Ok(outcome(&reports));
    }
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
        if !(b.is_finite() && b > 0.0) {
            bail!("--b {b}: expected a finite B > 0");
        }
        RangePolicy::Fixed(b)
    };
    if !(a.data.is_empty() || a.data.len() == 1 || a.data.len() == a.model.len()) {
        bail!(
            "{} --data files for {} --model files: give one for all models or one per model",
            a.data.len(),
            a.model.len()
        );
    }
    if !(a.limit.len() <= 1 || a.limit.len() == a.model.len()) {
        bail!(
            "{} --limit values for {} --model files: give one for all models or one per model",
            a.limit.len(),
            a.model.len()
        );
    }
    let shard = a.shard.as_deref().map(parse_shard).transpose()?;
    if shard.is_some() && a.model.len() > 1 {
        bail!("--shard takes one --model (got {})", a.model.len());
    }
    let progress = |stage: &str, done: usize, total: usize| {
        if !quiet {
            if total == 0 {
                eprintln!("{stage}…");
            } else {
                eprintln!("{stage}: {done}/{total}");
            }
        }
    };
    let mut reports: Vec<BoundReport> = Vec::new();
    let mut first: Vec<FirstOrderReport> = Vec::new();
    let mut targets = Vec::new();
    for (i, model) in a.model.iter().enumerate() {
        let data = a.data.get(i).or(a.data.first()).cloned();
        let cfg = BoundConfig {
            model: model.clone(),
            alphas: alphas.clone(),
            proofs: a.proofs.clone(),
            range,
            calib: a.calib.clone(),
            calib_limit: a.calib_limit,
            data,
            limit: a.limit.get(i).or(a.limit.first()).copied(),
            evenly: a.evenly,
            per_input: a.per_input,
            method: match a.method.as_deref() {
                Some("elementwise") => PerInputMethod::Elementwise,
                Some("both") => PerInputMethod::Both,
                _ => PerInputMethod::Trajectory,
            },
            noise_margin: a.noise_margin,
            margin_rows: a.margin_rows,
            shard,
        };
        if let Some(e) = a.target_error {
            let (bn, ranges) = ranges_for(&cfg)?;
            let t = smallest_alpha(&bn, &ranges, &a.proofs, e)?;
            targets.push((model.display().to_string(), t));
            continue;
        }
        progress(&format!("model {}", model.display()), 0, 0);
        let partial = |p: &std::path::Path| {
            let mut s = p.as_os_str().to_owned();
            s.push(".partial");
            PathBuf::from(s)
        };
        if a.first_order {
            if cfg.data.is_none() {
                bail!("--first-order needs a data file (--data)");
            }
            first.push(first_order_report(&cfg, &progress)?);
            if i + 1 < a.model.len() {
                if let Some(p) = &a.out_json {
                    write(&partial(p), &(serde_json::to_string_pretty(&first)? + "\n"))?;
                }
                if let Some(p) = &a.out_md {
                    write(&partial(p), &first_order_markdown(&first, &command()))?;
                }
            }
            continue;
        }
        reports.push(bound_report(&cfg, &progress)?);
        // Long runs: the models done so far go to `<file>.partial` until the last one.
        if i + 1 < a.model.len() {
            if let Some(p) = &a.out_json {
                write(
                    &partial(p),
                    &(serde_json::to_string_pretty(&reports)? + "\n"),
                )?;
            }
            if let Some(p) = &a.out_md {
                write(&partial(p), &bounds_markdown(&reports, &command()))?;
            }
        }
    }
    if a.target_error.is_some() {
        let json = serde_json::to_string_pretty(&targets)? + "\n";
        if let Some(p) = &a.out_json {
            write(p, &json)?;
        }
        if a.json {
            out!("{json}")?;
        } else {
            for (m, t) in &targets {
                match t.alpha {
                    Some(al) => outln!(
                        "{m}: alpha = {al} (global bound {:e} <= {:e})",
                        t.bounds.last().map_or(f64::NAN, |b| b.1),
                        t.target
                    )?,
                    None => outln!(
                        "{m}: no alpha in 4..=14 has a global bound <= {:e} (alpha 14: {:e})",
                        t.target,
                        t.bounds.last().map_or(f64::NAN, |b| b.1)
                    )?,
                }
            }
        }
        return Ok(if targets.iter().all(|t| t.1.alpha.is_some()) {
            Outcome::Ok
        } else {
            Outcome::Failed
        });
    }
    if a.first_order {
        emit(
            a,
            &(serde_json::to_string_pretty(&first)? + "\n"),
            &first_order_markdown(&first, &command()),
        )?;
        return Ok(Outcome::Ok);
    }
    emit(
        a,
        &(serde_json::to_string_pretty(&reports)? + "\n"),
        &bounds_markdown(&reports, &command()),
    )?;
    Ok(outcome(&reports))
}

/// `Failed` when a per-input bound is refuted by a measurement (or exceeds the global one).
fn outcome(reports: &[BoundReport]) -> Outcome {
    let refuted = reports.iter().flat_map(|r| &r.alphas).any(|a| {
        a.data
            .as_ref()
            .is_some_and(|d| d.measured_above_bound > 0 || d.per_input_above_global > 0)
    });
    if refuted {
        Outcome::Failed
    } else {
        Outcome::Ok
    }
}
