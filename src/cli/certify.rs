//! `polycert certify`: prove every claim about a composite sign polynomial and write the
//! certificate (JSON, atomically).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use polycert::certify::{
    certify, certify_odd_part, read_coeff_files, read_json_certificate, read_poly_json, Arith,
    Basis, Certificate, CertifyConfig, ShippedPoly, Verdict,
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
    /// coefficients per component, ascending, one per line; even powers are kept as written).
    #[arg(long, num_args = 2, value_names = ["DEG_FILE", "COEFF_FILE"])]
    pub coeffs: Option<Vec<PathBuf>>,
    /// Basis of the --coeffs components: power (c_j of y^j) or chebyshev (c_k of
    /// T_k((2y − lo − hi)/(hi − lo)), on --interval).
    #[arg(long, value_enum, default_value = "power", requires = "coeffs")]
    pub basis: BasisArg,
    /// Interval [LO, HI] of every Chebyshev component of --coeffs (exact decimals).
    #[arg(long, num_args = 2, value_names = ["LO", "HI"], allow_hyphen_values = true)]
    pub interval: Option<Vec<String>>,
    /// Certify a `polycert-poly/1` JSON file (power or Chebyshev components, e.g. one written
    /// by `polycert sign --export`).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["coeffs", "json"])]
    pub poly: Option<PathBuf>,
    /// Certify the polynomial of one of our certificate files.
    #[arg(long, value_name = "FILE", conflicts_with = "coeffs")]
    pub json: Option<PathBuf>,
    /// Certify the odd part of each component instead (even terms dropped) and add the
    /// certified effect of the dropped terms, sup |p_shipped − p_odd| on [−1, 1], with the
    /// shipped polynomial's closeness and Theorem 1 errors derived from it.
    #[arg(long)]
    pub odd_part: bool,
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

/// Basis for `--basis`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BasisArg {
    /// Power basis.
    Power,
    /// Chebyshev basis on --interval.
    Chebyshev,
}

fn basis(args: &CertifyArgs) -> anyhow::Result<Basis> {
    match (args.basis, &args.interval) {
        (BasisArg::Power, None) => Ok(Basis::Power),
        (BasisArg::Power, Some(_)) => anyhow::bail!("--interval needs --basis chebyshev"),
        (BasisArg::Chebyshev, Some(v)) => {
            let [lo, hi] = v.as_slice() else {
                anyhow::bail!("--interval needs LO HI");
            };
            let num = |s: &str| {
                polycert::poly::parse_decimal_rational(s).map_err(|e| {
                    anyhow::anyhow!("--interval {s:?}: {e}; expected a decimal number")
                })
            };
            Ok(Basis::Chebyshev {
                lo: num(lo)?,
                hi: num(hi)?,
            })
        }
        (BasisArg::Chebyshev, None) => {
            anyhow::bail!("--basis chebyshev needs --interval LO HI (the components' interval)")
        }
    }
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
    let (shipped, alpha, file_zeta) = if let Some(files) = &args.coeffs {
        let [d, c] = files.as_slice() else {
            anyhow::bail!("--coeffs needs DEG_FILE COEFF_FILE");
        };
        let alpha = args
            .alpha
            .context("--coeffs needs --alpha (the precision the coefficients promise)")?;
        (read_coeff_files(d, c, &basis(&args)?)?, alpha, None)
    } else if let Some(f) = &args.poly {
        let alpha = args
            .alpha
            .context("--poly needs --alpha (the precision the polynomial promises)")?;
        (read_poly_json(f)?, alpha, None)
    } else if let Some(j) = &args.json {
        let (p, a, z) = read_json_certificate(j)?;
        (p, args.alpha.unwrap_or(a), Some(z))
    } else {
        let alpha = args
            .alpha
            .context("give --alpha (4..=14), --coeffs, --poly or --json")?;
        let sign = polycert::remez::table1_sign(alpha)?;
        let poly = polycert::certify::RationalComposite::from_composite(sign.poly())?;
        (
            ShippedPoly {
                poly,
                sources: Vec::new(),
            },
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
    let mut cert = if args.odd_part {
        certify_odd_part(&shipped.poly, &cfg)?
    } else {
        certify(&shipped.poly, &cfg)?
    };
    cert.sources = shipped.sources;
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
    if !cert.poly.is_odd() {
        outln!("  p is not odd (non-zero even coefficients): certified as written, [-1, 0] and [0, 1] separately")?;
    }
    if cert.shipped.is_some() {
        outln!("  --odd-part: claims on the odd part p of the shipped p_shipped; even_part = sup|p_shipped - p| on [-1, 1] (at least 2^-40 as stated), *_shipped derived from it")?;
    }
    for s in &cert.sources {
        outln!("  source {} ({}) sha256 {}", s.file, s.form, s.sha256)?;
    }
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
