//! `polycert check FILE…`: the independent exact checker (exit 1 when a file is rejected,
//! 2 when one is malformed).

use std::path::PathBuf;

use clap::Args;
use polycert::proof::{check_file, ProofError};

use super::Outcome;

/// Flags of `polycert check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Certificate files to check.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// Run `polycert check`.
pub fn run(args: CheckArgs, quiet: bool) -> anyhow::Result<Outcome> {
    let mut outcome = Outcome::Ok;
    let mut malformed = None;
    for f in &args.files {
        let t = std::time::Instant::now();
        match check_file(f) {
            Ok(r) => {
                println!(
                    "{}: ACCEPTED (alpha {}, {} claims)",
                    r.file,
                    r.alpha,
                    r.claims.len()
                );
                if !quiet {
                    for c in &r.claims {
                        println!(
                            "  {:<16} {:<9} sup in [{}, {}] bound {} ({} boxes)",
                            c.id,
                            c.verdict,
                            c.certified_sup[0],
                            c.certified_sup[1],
                            c.bound,
                            c.boxes
                        );
                    }
                    eprintln!("  checked in {:.2} s", t.elapsed().as_secs_f64());
                }
            }
            Err(e @ ProofError::Rejected { .. }) => {
                println!("{e}");
                outcome = Outcome::Failed;
            }
            Err(e) => {
                eprintln!("error: {e}");
                malformed.get_or_insert(e);
            }
        }
    }
    if let Some(e) = malformed {
        return Err(e.into());
    }
    Ok(outcome)
}
