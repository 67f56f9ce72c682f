//! `polycert report`: regenerate `reports/` (the README's main job).

use std::path::PathBuf;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use polycert::report::{build_default_report, ReportConfig};

use super::Outcome;

/// Flags of `polycert report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Output folder (its `index.md`, `report.json` and `plots/` are rewritten from scratch).
    #[arg(long, default_value = "reports")]
    pub out: PathBuf,
    /// Print report.json to stdout as well.
    #[arg(long)]
    pub json: bool,
}

/// Run `polycert report`.
pub fn run(args: &ReportArgs, quiet: bool) -> anyhow::Result<Outcome> {
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
    let report = build_default_report(&cfg, &mut |m: &str| bar.set_message(m.to_string()))?;
    bar.set_message("writing");
    let files = report.write(&args.out)?;
    bar.finish_and_clear();
    let json = report.to_json();
    let failed = json["sections"]["certificates"]["data"]
        .as_array()
        .is_some_and(|rows| {
            rows.iter()
                .any(|r| r["all_hold"] != true || r["exact_checker"] != "accepted")
        });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else if !quiet {
        println!("wrote {} files under {}", files.len(), args.out.display());
        println!("{}", args.out.join("index.md").display());
    }
    Ok(if failed { Outcome::Failed } else { Outcome::Ok })
}
