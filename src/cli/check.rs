//! `polycert check FILE…`: the independent exact checker (exit 1 when a file is rejected,
//! 2 when one is malformed).

use std::io::Write as _;
use std::path::PathBuf;

use clap::Args;
use polycert::proof::{check_file, ProofError};
use serde_json::json;

use super::Outcome;

/// Flags of `polycert check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Certificate files to check.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Print one JSON object (a `files` array with each file's status and claims) instead of
    /// the text lines.
    #[arg(long)]
    pub json: bool,
}

/// Run `polycert check`.
pub fn run(args: CheckArgs, quiet: bool) -> anyhow::Result<Outcome> {
    let mut outcome = Outcome::Ok;
    let mut malformed = None;
    let mut rows = Vec::new();
    for f in &args.files {
        let t = std::time::Instant::now();
        let res = check_file(f);
        if args.json {
            rows.push(match &res {
                Ok(r) => json!({"file": r.file, "status": "accepted", "alpha": r.alpha,
                    "claims": r.claims.iter().map(|c| json!({"id": c.id, "verdict": c.verdict,
                        "certified_sup": c.certified_sup, "bound": c.bound, "boxes": c.boxes})).collect::<Vec<_>>()}),
                Err(e @ ProofError::Rejected { .. }) => {
                    json!({"file": f.display().to_string(), "status": "rejected", "error": e.to_string()})
                }
                Err(e) => {
                    json!({"file": f.display().to_string(), "status": "malformed", "error": e.to_string()})
                }
            });
            match res {
                Ok(_) => {}
                Err(ProofError::Rejected { .. }) => outcome = Outcome::Failed,
                Err(e) => {
                    malformed.get_or_insert(e);
                }
            }
            continue;
        }
        match res {
            Ok(r) => {
                outln!(
                    "{}: ACCEPTED (alpha {}, {} claims)",
                    r.file,
                    r.alpha,
                    r.claims.len()
                )?;
                if !quiet {
                    for c in &r.claims {
                        outln!(
                            "  {:<16} {:<9} sup in [{}, {}] bound {} ({} boxes)",
                            c.id,
                            c.verdict,
                            c.certified_sup[0],
                            c.certified_sup[1],
                            c.bound,
                            c.boxes
                        )?;
                    }
                    eprintln!("  checked in {:.2} s", t.elapsed().as_secs_f64());
                }
            }
            Err(e @ ProofError::Rejected { .. }) => {
                outln!("{e}")?;
                outcome = Outcome::Failed;
            }
            Err(e) => {
                eprintln!("error: {e}");
                malformed.get_or_insert(e);
            }
        }
    }
    if args.json {
        // A closed pipe (`| head`) is not an error of the check.
        let _ = writeln!(
            std::io::stdout().lock(),
            "{}",
            serde_json::to_string_pretty(&json!({"files": rows}))?
        );
    }
    if let Some(e) = malformed {
        return Err(e.into());
    }
    Ok(outcome)
}
