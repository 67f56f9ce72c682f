//! `polycert certify`: prove every claim about a composite sign polynomial and write the
//! certificate (JSON, atomically).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use polycert::certify::{
    certify, read_coeff_files, read_json_certificate, Arith, Certificate, CertifyConfig, Verdict,
};

use super::Outcome;

/// Arithmetic for `--arith`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ArithArg {
    /// The polynomial itself (exact real arithmetic).
    Exact,
    /// Also certify evaluation in IEEE binary64 (rounding error included).
    F64,
    /// Also certify evaluation in IEEE binary32 (rounding error included).
    F32,
}

/// Flags of `polycert certify`.
#[derive(Debug, Args)]
pub struct CertifyArgs {
    /// Precision parameter α (Table 1's polynomial unless --coeffs/--json is given; then the
    /// α the shipped polynomial promises, default: the one in the JSON file).
    #[arg(long)]
    pub alpha: Option<u32>,
    /// Max function factor ζ (ε = ζ·2^−α); default Table 1's ζ for α.
    #[arg(long)]
    pub zeta: Option<String>,
    /// Certify shipped coefficients: DEG_FILE (one degree per line) and COEFF_FILE (d+1
    /// power-basis coefficients per component, ascending, one per line).
    #[arg(long, num_args = 2, value_names = ["DEG_FILE", "COEFF_FILE"])]
    pub coeffs: Option<Vec<PathBuf>>,
    /// Certify the polynomial of one of our certificate files.
    #[arg(long, value_name = "FILE", conflicts_with = "coeffs")]
    pub json: Option<PathBuf>,
    /// Also certify evaluation in floating point with the crate's scheme.
    #[arg(long, value_enum, default_value = "exact")]
    pub arith: ArithArg,
    /// Write the certificate here (atomically).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print the certificate (the `polycert-certificate/1` JSON) to stdout instead of the
    /// summary table.
    #[arg(long)]
    pub print_json: bool,
}

fn zeta_arg(s: &str) -> anyhow::Result<rug::Rational> {
    polycert::poly::parse_decimal_rational(s)
        .map_err(|e| anyhow::anyhow!("--zeta {s:?}: {e}; expected a positive decimal number"))
}

/// Run `polycert certify`.
pub fn run(args: CertifyArgs, quiet: bool) -> anyhow::Result<Outcome> {
    let arith = match args.arith {
        ArithArg::Exact => Arith::Exact,
        ArithArg::F64 => Arith::F64,
        ArithArg::F32 => Arith::F32,
    };
    let (poly, alpha, file_zeta) = if let Some(files) = &args.coeffs {
        let [d, c] = files.as_slice() else {
            anyhow::bail!("--coeffs needs DEG_FILE COEFF_FILE");
        };
        let alpha = args
            .alpha
            .context("--coeffs needs --alpha (the precision the coefficients promise)")?;
        (read_coeff_files(d, c)?, alpha, None)
    } else if let Some(j) = &args.json {
        let (p, a, z) = read_json_certificate(j)?;
        (p, args.alpha.unwrap_or(a), Some(z))
    } else {
        let alpha = args
            .alpha
            .context("give --alpha (4..=14), --coeffs or --json")?;
        let sign = polycert::remez::table1_sign(alpha)?;
        (
            polycert::certify::RationalComposite::from_composite(sign.poly())?,
            alpha,
            None,
        )
    };
    let cfg = match (&args.zeta, file_zeta) {
        (Some(z), _) => CertifyConfig::new(alpha, zeta_arg(z)?)?,
        (None, Some(z)) => CertifyConfig::new(alpha, z)?,
        (None, None) => CertifyConfig::table1(alpha)
            .context("no Table 1 zeta for this alpha (4..=14); give --zeta")?,
    }
    .with_arith(arith);
    let t = std::time::Instant::now();
    let cert = certify(&poly, &cfg)?;
    let secs = t.elapsed().as_secs_f64();
    if !args.print_json {
        print_summary(&cert)?;
    }
    if !quiet {
        eprintln!("certified in {secs:.2} s");
    }
    if args.print_json || args.out.is_some() {
        let mut file = cert.to_file();
        let text = polycert::proof::encode(&mut file)?;
        if args.print_json {
            out!("{text}")?;
        }
        let Some(out) = &args.out else {
            return Ok(if cert.all_hold() {
                Outcome::Ok
            } else {
                Outcome::Failed
            });
        };
        polycert::proof::write_atomic(out, &text)?;
        if !quiet {
            eprintln!("wrote {}", out.display());
        }
    }
    Ok(if cert.all_hold() {
        Outcome::Ok
    } else {
        Outcome::Failed
    })
}

fn print_summary(cert: &Certificate) -> anyhow::Result<()> {
    outln!(
        "alpha {} degrees {:?}: claims certified (sup as [lo, hi])",
        cert.alpha,
        cert.poly.degrees()
    )?;
    for c in &cert.claims {
        let v = match c.verdict {
            Verdict::Holds => "holds".to_string(),
            Verdict::Refuted { witness } => format!("REFUTED at x = {witness:e}"),
            Verdict::Undecided => "undecided".to_string(),
        };
        let hi = if c.sup_hi.is_infinite() {
            " (the evaluation can overflow to ±inf)".to_string()
        } else if c.sup_hi > 0.0 {
            format!(" = 2^{:.3}", c.sup_hi.log2())
        } else {
            String::new()
        };
        outln!(
            "  {:<20} sup in [{:.6e}, {:.6e}]{hi} bound {:.6e} boxes {:>6}  {v}",
            c.kind.id(),
            c.sup_lo,
            c.sup_hi,
            c.bound.to_f64(),
            c.boxes.len()
        )?;
    }
    Ok(())
}
