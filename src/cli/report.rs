//! `polycert report`: regenerate `reports/` (the README's main job). With `--models` and
//! `--data` it adds the network sections (accuracy against α, Table 2 style), the certified
//! bounds against measured error, and the encrypted (CKKS) runs against the certified bounds.

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use polycert::report::{
    accuracy_section, bounds_section, build_default_report, ckks_section, encrypted_runs_section,
    evaluate_models, table3_section, CkksReportConfig, NetworkReportConfig, ReportConfig,
    DEFAULT_CKKS_ALPHA, DEFAULT_CKKS_IMAGES, DEFAULT_CKKS_SEED,
};

use super::{parse_alphas, Outcome};

/// Flags of `polycert report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Output folder (its `index.md`, `report.json` and `plots/` are rewritten from scratch).
    #[arg(long, default_value = "reports")]
    pub out: PathBuf,
    /// Print report.json to stdout as well.
    #[arg(long)]
    pub json: bool,
    /// Folder of ONNX models: adds the network sections (needs `--data`).
    #[arg(long)]
    pub models: Option<PathBuf>,
    /// Data folder with `cifar10/` and `mnist/` (layout of `shared/data`; needs `--models`);
    /// with `imagenet/imagenet_val500_224.bin` and an ImageNet model (input [3, 224, 224]) in
    /// `--models`, the report adds the Table 3 section (`--limit` K: its first K records).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Network sections: precision parameters, `A..B`, `A,B,C` or one value, each in 4..=14.
    #[arg(long, default_value = "4..14")]
    pub alpha: String,
    /// Network sections: evaluate only K images of each data file, spread evenly over it.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Network sections: images per model for the certified bounds section (0 skips it).
    #[arg(long, default_value_t = 20)]
    pub bound_images: usize,
    /// Folder of the certificates used by the bounds section.
    #[arg(long, default_value = "proofs")]
    pub proofs: PathBuf,
    /// Network sections: the CIFAR-10 file inside `DATA/cifar10/`.
    #[arg(long, default_value = polycert::report::CIFAR_FILE)]
    pub cifar_file: String,
    /// CKKS section: encrypt the first K images of each supported model's data file (one
    /// N = 2^16 batch, a few minutes per model whatever K ≤ 32; 0 skips the section).
    #[arg(long, default_value_t = DEFAULT_CKKS_IMAGES)]
    pub ckks_images: usize,
    /// CKKS section: α of Table 1 (4..=14; bootstrapped from 14 on or when the levels do not
    /// fit; models that fit neither are listed as skipped).
    #[arg(long, default_value_t = DEFAULT_CKKS_ALPHA)]
    pub ckks_alpha: u32,
    /// CKKS section: seed of the ChaCha20 CSPRNG (keys and encryption noise).
    #[arg(long, default_value_t = DEFAULT_CKKS_SEED)]
    pub ckks_seed: u64,
}

/// Run `polycert report`.
pub fn run(args: &ReportArgs, quiet: bool) -> anyhow::Result<Outcome> {
    let net_cfg = match (&args.models, &args.data) {
        (Some(m), Some(d)) => {
            let mut c = NetworkReportConfig::new(m.clone(), d.clone());
            c.alphas = parse_alphas(&args.alpha)?;
            c.limit = args.limit;
            c.cifar_file.clone_from(&args.cifar_file);
            c.bound_images = args.bound_images;
            c.proofs.clone_from(&args.proofs);
            Some(c)
        }
        (None, None) => None,
        _ => bail!(
            "--models and --data go together (both folders are needed for the network sections)"
        ),
    };
    // Checked before any work (the library checks again).
    if !(4..=14).contains(&args.ckks_alpha) {
        bail!(
            "--ckks-alpha {}: expected an α in 4..=14 (Table 1 with a committed certificate)",
            args.ckks_alpha
        );
    }
    let ckks_cfg = CkksReportConfig {
        images: args.ckks_images,
        alpha: args.ckks_alpha,
        seed: args.ckks_seed,
        ..CkksReportConfig::default()
    };
    let cfg = ReportConfig::default();
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new_spinner()
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let mut report = build_default_report(&cfg, &mut |m: &str| bar.set_message(m.to_string()))?;
    if let Some(nc) = &net_cfg {
        let evals = evaluate_models(nc, &|model: &str, done: usize, total: usize| {
            bar.set_message(format!("{model}: {done}/{total} images"));
        })?;
        report.push(accuracy_section(&evals, nc));
        if let Some(t3) = table3_section(nc, &|model: &str, done: usize, total: usize| {
            bar.set_message(format!("Table 3, {model}: {done}/{total} images"));
        })? {
            report.push(t3);
        }
        if nc.bound_images > 0 {
            report.push(bounds_section(
                nc,
                &|model: &str, done: usize, total: usize| {
                    bar.set_message(format!("bounds, {model}: {done}/{total}"));
                },
            )?);
        }
        if ckks_cfg.images > 0 {
            let (section, timings) =
                ckks_section(nc, &ckks_cfg, &mut |m: &str| bar.set_message(m.to_string()))?;
            report.push(section);
            if !quiet {
                // Measured, machine-dependent: printed, never written into report.json.
                for t in &timings {
                    let tm = &t.timings;
                    bar.suspend(|| {
                        eprintln!(
                        "CKKS {}: key generation {:.1} s, evaluation {:.1} s ({:.2} s per image), \
                         peak RSS {}",
                        t.model,
                        tm.keygen_s,
                        tm.eval_s,
                        tm.per_image_s,
                        tm.peak_rss_mib
                            .map_or("n/a".to_string(), |m| format!("{m:.0} MiB"))
                    )
                    });
                }
            }
        }
        let net_inputs = serde_json::json!({
            "alphas": nc.alphas,
            "limit": nc.limit,
            "cifar_file": nc.cifar_file,
            "bound_images": nc.bound_images,
            "ckks": {"images": ckks_cfg.images, "alpha": ckks_cfg.alpha, "seed": ckks_cfg.seed},
            "models": evals.iter().map(|e| e.model.clone()).collect::<Vec<_>>(),
        });
        if let Some(obj) = report.inputs.as_object_mut() {
            obj.insert("network".into(), net_inputs);
        }
    }
    // Committed encrypted runs of residual networks (`polycert ckks --out`), when present.
    if let Some(section) = encrypted_runs_section(&args.out)? {
        report.push(section);
    }
    bar.set_message("writing");
    let files = report.write(&args.out)?;
    bar.finish_and_clear();
    let json = report.to_json();
    let failed = json
        .pointer("/sections/certificates/data")
        .and_then(serde_json::Value::as_array)
        .is_some_and(|rows| {
            rows.iter().any(|r| {
                r.get("all_hold") != Some(&true.into())
                    || r.get("exact_checker") != Some(&"accepted".into())
            })
        });
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&json)?)?;
    } else if !quiet {
        outln!("wrote {} files under {}", files.len(), args.out.display())?;
        outln!("{}", args.out.join("index.md").display())?;
    }
    Ok(if failed { Outcome::Failed } else { Outcome::Ok })
}
