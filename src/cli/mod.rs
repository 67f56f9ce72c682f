//! Argument parsing (clap) and one short handler per subcommand. No math here: each handler
//! turns raw flags into a library config, makes one library call and writes the result.
//!
//! Exit codes: 0 ok, 1 a claim was refuted or a check failed, 2 bad input.

use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};

/// `print!` to stdout that returns the write error (with context) instead of panicking, so a
/// reader that closes the pipe early (`polycert sign --table | head -1`) ends the command
/// quietly (see [`main`]). Use as `out!(…)?`.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        anyhow::Context::context(
            write!(stdout, $($arg)*).and_then(|()| stdout.flush()),
            "writing to stdout",
        )
    }};
}

/// `println!` counterpart of `out!`.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        anyhow::Context::context(
            writeln!(stdout, $($arg)*).and_then(|()| stdout.flush()),
            "writing to stdout",
        )
    }};
}

mod bound;
mod certify;
mod check;
mod ckks;
mod eval;
mod report;
mod sign;

/// Certified polynomial approximations of ReLU and max-pooling for CNNs under CKKS.
#[derive(Debug, Parser)]
#[command(name = "polycert", version, about)]
pub struct Cli {
    /// Suppress progress bars and informational messages on stderr.
    #[arg(long, global = true)]
    pub quiet: bool,
    /// The subcommand to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Composite minimax sign polynomials: one polynomial, a given degree set, or Table 1.
    Sign(sign::SignArgs),
    /// Prove every claim about a composite sign polynomial (interval arithmetic) and write a
    /// certificate.
    Certify(certify::CertifyArgs),
    /// Check certificate files with the independent exact checker.
    Check(check::CheckArgs),
    /// Accuracy of the network with exact and approximate (α) activations (paper Table 2).
    Eval(eval::EvalArgs),
    /// Certified error-propagation bounds ‖F^α(x) − F(x)‖∞ ≤ C·2^−α per block (Theorems
    /// 2–4), per-input bounds and certified-unchanged predictions.
    Bound(bound::BoundArgs),
    /// Encrypted inference under RNS-CKKS, cross-checked against the plaintext networks.
    Ckks(ckks::CkksArgs),
    /// Regenerate `reports/` (Table 1, certificates, plots): the main job.
    Report(report::ReportArgs),
}

/// What a handler reports back: success, or a refuted claim / failed check (exit 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything held.
    Ok,
    /// A claim was refuted or a check failed.
    Failed,
}

/// Parse arguments, dispatch, map errors to exit codes.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match run(cli) {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Failed) => ExitCode::from(1),
        // The reader went away (`| head`): nothing left to tell anyone.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Whether an error comes from writing into a closed pipe.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn run(cli: Cli) -> anyhow::Result<Outcome> {
    match cli.command {
        Command::Sign(a) => sign::run(&a),
        Command::Certify(a) => certify::run(a, cli.quiet),
        Command::Check(a) => check::run(a, cli.quiet),
        Command::Eval(a) => eval::run(&a, cli.quiet),
        Command::Report(a) => report::run(&a, cli.quiet),
        Command::Bound(a) => bound::run(&a, cli.quiet),
        Command::Ckks(a) => ckks::run(&a, cli.quiet),
    }
}

/// Parse a list of precision parameters: `A..B` (inclusive), `A,B,C` or one value.
///
/// # Errors
/// A non-integer or an empty range, naming the flag value.
pub(crate) fn parse_alphas(s: &str) -> anyhow::Result<Vec<u32>> {
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
    if v.is_empty() {
        bail!("--alpha {s:?}: empty range (expected e.g. 4..14, 8,10,14 or 14)");
    }
    Ok(v)
}
