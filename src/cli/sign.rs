//! `polycert sign`: build, optimise and print composite minimax sign polynomials (Table 1).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;
use polycert::poly::Degree;
use polycert::remez::{
    check_zeta_degrees, composite_sign, eps_from_zeta, measure_max_dev, optimal_sign_for,
    table1_sign, zeta_search, CompositeSign, ExportTarget, SignOptimizer, TABLE1,
};
use rug::Float;
use serde_json::{json, Value};

use super::Outcome;

/// Flags of `polycert sign`.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// Precision parameter α (1..=30), or a range `4..14` with --table.
    #[arg(long)]
    pub alpha: Option<String>,
    /// Print Table 1 (paper vs this crate's optimizer) for the α range (default 4..14).
    #[arg(long)]
    pub table: bool,
    /// Use the paper's Table 1 degree set and ζ instead of the optimizer (α in 4..=14).
    #[arg(long)]
    pub paper: bool,
    /// Component degrees, e.g. `15,27,29` (with --zeta and --alpha, or with --eps).
    #[arg(long, value_delimiter = ',')]
    pub degrees: Option<Vec<u32>>,
    /// Max-function factor ζ: ε = ζ·2^−α.
    #[arg(long)]
    pub zeta: Option<u32>,
    /// Target closeness β (|p − sgn| ≤ 2^−β on [−1,1] \ (−ε, ε)); use with --eps.
    #[arg(long)]
    pub beta: Option<u32>,
    /// ε (decimal), the sign gap.
    #[arg(long)]
    pub eps: Option<String>,
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Also write the JSON to this file (atomically); with --export, the export instead.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write the composite's stages as Chebyshev series on each stage's interval, exact
    /// decimals plus f64, laid out for this library (`polycert-poly/1`; needs --out).
    #[arg(long, value_enum, requires = "out")]
    pub export: Option<ExportArg>,
}

/// Library for `--export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportArg {
    /// OpenFHE `EvalChebyshevSeries` (c_0 doubled).
    Openfhe,
    /// Lattigo Chebyshev polynomials.
    Lattigo,
    /// Plain `polycert-poly/1`.
    Json,
}

fn parse_alpha(s: &str) -> anyhow::Result<u32> {
    let a: i64 = s
        .trim()
        .parse()
        .with_context(|| format!("--alpha {s:?} is not an integer (expected 1..=30)"))?;
    if !(1..=30).contains(&a) {
        bail!("--alpha {a} is outside 1..=30");
    }
    Ok(u32::try_from(a)?)
}

fn parse_alpha_range(s: &str) -> anyhow::Result<(u32, u32)> {
    match s.split_once("..") {
        Some((a, b)) => {
            let b = b.strip_prefix('=').unwrap_or(b);
            let (a, b) = (parse_alpha(a)?, parse_alpha(b)?);
            if a > b {
                bail!("--alpha range {s:?} is empty (start {a} > end {b})");
            }
            Ok((a, b))
        }
        None => {
            let a = parse_alpha(s)?;
            Ok((a, a))
        }
    }
}

fn degrees(v: &[u32]) -> Vec<Degree> {
    v.iter().map(|d| Degree(*d)).collect()
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
        let p = dir.join(format!(".polycert-sign-{}-{i}.tmp", std::process::id()));
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

fn emit(args: &SignArgs, v: &Value, text: &str) -> anyhow::Result<()> {
    let s = serde_json::to_string_pretty(v)? + "\n";
    if let (Some(p), None) = (&args.out, args.export) {
        write_atomic(p, &s)?;
    }
    if args.json {
        out!("{s}")?;
    } else {
        out!("{text}")?;
    }
    Ok(())
}

fn describe(c: &CompositeSign, dev: f64) -> String {
    let degs: Vec<String> = c.degrees().iter().map(|d| d.to_string()).collect();
    let taus: Vec<String> = c
        .taus()
        .iter()
        .map(|t| format!("2^{:.4}", t.to_f64().log2()))
        .collect();
    let mut s = String::new();
    if let (Some(a), Some(z)) = (c.alpha(), c.zeta()) {
        s += &format!("α = {a}, ζ = {z}, ε = ζ·2^-α = {}\n", c.eps().to_f64());
    } else {
        s += &format!("ε = {}\n", c.eps().to_f64());
    }
    s += &format!(
        "degrees {{{}}}, depth {} (+1 for ×x: {}), non-scalar mults {}\n",
        degs.join(","),
        c.depth(),
        c.table_depth(),
        c.nonscalar_mults()
    );
    s += &format!("τ_i (measured): {}\n", taus.join(", "));
    s += &format!("max |x·p(x) − |x|| on [−1,1] (measured): {dev:.6e}");
    if let Some(a) = c.alpha() {
        let bound = 2f64.powi(1 - i32::try_from(a).unwrap_or(30));
        s += &format!(
            " vs 2^(1−α) = {bound:.6e}: {}",
            if dev <= bound {
                "ok"
            } else {
                "FAILS condition (1)"
            }
        );
    }
    s.push('\n');
    s
}

/// Run `polycert sign`.
pub fn run(args: &SignArgs) -> anyhow::Result<Outcome> {
    if args.table {
        return run_table(args);
    }
    let sign = if let Some(d) = &args.degrees {
        let d = degrees(d);
        match (&args.alpha, args.zeta, &args.eps) {
            (Some(a), Some(z), None) => {
                let a = parse_alpha(a)?;
                let t = check_zeta_degrees(a, z, &d)?;
                t.sign
            }
            (None, None, Some(e)) => composite_sign(&parse_eps(e)?, &d)?,
            _ => bail!("--degrees needs either --alpha and --zeta, or --eps"),
        }
    } else if let (Some(b), Some(e)) = (args.beta, &args.eps) {
        optimal_sign_for(&parse_eps(e)?, b)?
    } else if let Some(a) = &args.alpha {
        let a = parse_alpha(a)?;
        if args.paper {
            table1_sign(a)?
        } else if let Some(z) = args.zeta {
            let eps = eps_from_zeta(a, z);
            let mut opt = SignOptimizer::new();
            opt.optimal_composite(Some(a), Some(z), &eps, a - 1)?.1
        } else {
            let mut opt = SignOptimizer::new();
            let s = zeta_search(&mut opt, a)?;
            let Some(t) = s.selected() else {
                bail!("ζ search at α = {a} selected nothing");
            };
            t.sign.clone()
        }
    } else {
        bail!("give --alpha, --table, --degrees with --zeta/--eps, or --beta with --eps");
    };
    let (dev, _) = measure_max_dev(&sign);
    let v = sign.to_json(Some(dev));
    emit(args, &v, &describe(&sign, dev))?;
    if let (Some(e), Some(out)) = (args.export, &args.out) {
        let target = match e {
            ExportArg::Openfhe => ExportTarget::OpenFhe,
            ExportArg::Lattigo => ExportTarget::Lattigo,
            ExportArg::Json => ExportTarget::Json,
        };
        let file = sign.to_poly_file(target);
        write_atomic(out, &(serde_json::to_string_pretty(&file)? + "\n"))?;
    }
    let ok = match sign.alpha() {
        Some(a) => dev <= 2f64.powi(1 - i32::try_from(a).unwrap_or(30)),
        None => true,
    };
    let closeness_ok = match args.beta {
        Some(b) => sign.tau().to_f64() <= 2f64.powi(-i32::try_from(b).unwrap_or(40)),
        None => true,
    };
    Ok(if ok && closeness_ok {
        Outcome::Ok
    } else {
        Outcome::Failed
    })
}

fn parse_eps(s: &str) -> anyhow::Result<Float> {
    let q = polycert::poly::parse_decimal_rational(s)
        .with_context(|| format!("--eps {s:?} is not a decimal number"))?;
    let f = Float::with_val(256, &q);
    if !(f > 0 && f < 1) {
        bail!("--eps {s} is outside (0, 1)");
    }
    Ok(f)
}

fn run_table(args: &SignArgs) -> anyhow::Result<Outcome> {
    let (lo, hi) = match &args.alpha {
        Some(s) => parse_alpha_range(s)?,
        None => (4, 14),
    };
    let mut opt = SignOptimizer::new();
    let mut rows = Vec::new();
    let mut text = String::from(
        "  α | paper ζ  degrees        depth | τ_k (paper set)  max|xp−|x|| measured | \
         optimizer ζ  degrees        depth mults | match\n",
    );
    let mut all_paper_ok = true;
    for alpha in lo..=hi {
        let paper = TABLE1.iter().find(|r| r.0 == alpha);
        let search = zeta_search(&mut opt, alpha)?;
        let Some(sel) = search.selected() else {
            bail!("ζ search at α = {alpha} selected nothing");
        };
        let fail = search.first_failure();
        let mut row = serde_json::Map::new();
        row.insert("alpha".into(), json!(alpha));
        let mut paper_txt = format!("{:>6}  {:<14} {:>5}", "-", "-", "-");
        let mut paper_meas = format!("{:>16}  {:>20}", "-", "-");
        let mut matches = None;
        if let Some((_, z, d, depth)) = paper {
            let c = table1_sign(alpha)?;
            let (dev, _) = measure_max_dev(&c);
            let bound = 2f64.powi(1 - i32::try_from(alpha).unwrap_or(30));
            all_paper_ok &= dev <= bound
                && c.tau().to_f64() <= 2f64.powi(1 - i32::try_from(alpha).unwrap_or(30));
            let ds: Vec<String> = d.iter().map(|x| x.to_string()).collect();
            paper_txt = format!("{z:>6}  {:<14} {depth:>5}", format!("{{{}}}", ds.join(",")));
            paper_meas = format!(
                "{:>16}  {:>20}",
                format!("2^{:.3}", c.log2_tau()),
                format!("{dev:.4e}")
            );
            let m = *z == sel.zeta
                && sel.sign.degrees() == degrees(d)
                && sel.sign.table_depth() == *depth;
            matches = Some(m);
            row.insert(
                "paper".into(),
                json!({
                    "zeta": z, "degrees": d, "depth": depth,
                    "log2_tau_measured": c.log2_tau(),
                    "max_abs_xp_minus_absx_measured": dev,
                    "condition1_measured_ok": dev <= bound,
                    "nonscalar_mults": c.nonscalar_mults(),
                }),
            );
        }
        let sd: Vec<String> = sel.sign.degrees().iter().map(|d| d.to_string()).collect();
        let opt_txt = format!(
            "{:>11}  {:<14} {:>5} {:>5}",
            sel.zeta,
            format!("{{{}}}", sd.join(",")),
            sel.sign.table_depth(),
            sel.mults
        );
        row.insert(
            "optimizer".into(),
            json!({
                "zeta": sel.zeta,
                "degrees": sel.sign.degrees().iter().map(|d| d.0).collect::<Vec<_>>(),
                "depth": sel.sign.table_depth(),
                "nonscalar_mults": sel.mults,
                "log2_tau_measured": sel.sign.log2_tau(),
                "max_abs_xp_minus_absx_measured": sel.max_dev,
                "first_failing_zeta": fail.map(|f| f.zeta),
                "first_failing_degrees": fail.map(|f| f.sign.degrees().iter().map(|d| d.0).collect::<Vec<_>>()),
                "first_failing_max_abs_xp_minus_absx_measured": fail.map(|f| f.max_dev),
            }),
        );
        row.insert("matches_paper".into(), json!(matches));
        rows.push(Value::Object(row));
        text += &format!(
            "{alpha:>3} | {paper_txt} | {paper_meas} | {opt_txt} | {}\n",
            match matches {
                Some(true) => "yes",
                Some(false) => "NO (both printed; see README)",
                None => "-",
            }
        );
    }
    let v = json!({ "table": "paper Table 1 vs polycert optimizer", "rows": rows });
    emit(args, &v, &text)?;
    Ok(if all_paper_ok {
        Outcome::Ok
    } else {
        Outcome::Failed
    })
}
