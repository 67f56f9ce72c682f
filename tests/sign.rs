//! Integration tests of issue 2: `polycert sign` (Table 1, one polynomial, α beyond the paper,
//! bad input), run through the real binary where the CLI is what is specified.
//!
//! Golden values: the paper's Table 1 (copied below from the paper's text, not from the crate),
//! the reference implementation's odd-BSGS multiplication counts (FACTS.md), the independent
//! figures of FACTS.md for α = 14, and certificates produced by `certify` (interval
//! arithmetic, a different code path than the Remez exchange that built the polynomials).

use polycert::certify::{certify, CertifyConfig, ClaimKind, RationalComposite, Verdict};
use polycert::poly::Degree;
use polycert::remez::{composite_with_zeta, zeta_search, SignOptimizer};
use rug::Rational;
use serde_json::Value;

use crate::util::polycert;

/// Paper, Table 1: (α, ζ, degrees, depth incl. the final ×x).
const PAPER_TABLE1: [(u32, u32, &[u32], u32); 11] = [
    (4, 5, &[5], 4),
    (5, 5, &[13], 5),
    (6, 10, &[3, 7], 6),
    (7, 11, &[7, 7], 7),
    (8, 12, &[7, 15], 8),
    (9, 13, &[15, 15], 9),
    (10, 13, &[7, 7, 13], 11),
    (11, 15, &[7, 7, 27], 12),
    (12, 15, &[7, 15, 27], 13),
    (13, 16, &[15, 15, 27], 14),
    (14, 17, &[15, 27, 29], 15),
];

/// FACTS.md: non-scalar multiplications of the reference odd BSGS for odd degrees 1, 3, …, 63.
const REF_MULTS: [u32; 32] = [
    0, 2, 3, 5, 5, 6, 7, 8, 8, 8, 9, 9, 10, 10, 11, 12, 11, 11, 11, 11, 12, 12, 13, 13, 14, 14, 14,
    14, 15, 15, 16, 17,
];

fn ref_mults(degrees: &[u32]) -> u32 {
    degrees
        .iter()
        .map(|d| REF_MULTS[(*d as usize - 1) / 2])
        .sum()
}

/// ⌈log₂(d+1)⌉ summed, plus 1 for the final ×x (Table 1's depth).
fn table_depth(degrees: &[u32]) -> u32 {
    1 + degrees.iter().map(|d| 32 - d.leading_zeros()).sum::<u32>()
}

fn degrees_of(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|d| u32::try_from(d.as_u64().unwrap()).unwrap())
        .collect()
}

fn run_json(args: &[&str]) -> (Option<i32>, Value, String) {
    let out = polycert()
        .arg("sign")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code(), v, stderr)
}

/// Certify closeness and condition (1) of the composite for (α, ζ, degrees) with `certify`.
/// Only the verdicts are asserted here (tightness of the certified suprema is tested in
/// `certify`), so the search may stop as soon as each claim is decided: relative tolerance 1
/// (a `Holds` verdict still means every box's outward-rounded upper bound is ≤ the bound).
fn certified_ok(alpha: u32, zeta: u32, degrees: &[u32]) -> bool {
    let degs: Vec<Degree> = degrees.iter().map(|d| Degree(*d)).collect();
    let s = composite_with_zeta(alpha, zeta, &degs).unwrap();
    let p = RationalComposite::from_composite(s.poly()).unwrap();
    let cfg = CertifyConfig::new(alpha, Rational::from(zeta))
        .unwrap()
        .with_rel_tol(1.0);
    let c = certify(&p, &cfg).unwrap();
    [ClaimKind::Closeness, ClaimKind::Condition1]
        .iter()
        .all(|k| c.claim(*k).unwrap().verdict == Verdict::Holds)
}

#[test]
fn reference_cost_model_matches_the_crates_odd_bsgs() {
    for (i, want) in REF_MULTS.iter().enumerate() {
        let d = Degree(2 * i as u32 + 1);
        assert_eq!(polycert::poly::odd_bsgs_cost(d), *want, "degree {d}");
        assert_eq!(d.depth(), table_depth(&[d.0]) - 1, "degree {d}");
    }
}

#[test]
#[ignore = "about 7 s CPU in release (the whole ζ search for α = 4..14): CI runs it"]
fn cli_table1_reproduces_the_paper_alpha4_to_14() {
    let (code, v, err) = run_json(&["--table", "--alpha", "4..14"]);
    assert_eq!(code, Some(0), "{err}");
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 11);
    for (row, (alpha, zeta, degs, depth)) in rows.iter().zip(PAPER_TABLE1) {
        assert_eq!(row["alpha"], alpha);
        // The paper's set is always rebuilt and printed, and it meets condition (1).
        let paper = &row["paper"];
        assert_eq!(paper["zeta"], zeta, "α = {alpha}");
        assert_eq!(degrees_of(&paper["degrees"]), degs, "α = {alpha}");
        assert_eq!(paper["depth"], depth, "α = {alpha}");
        assert_eq!(paper["nonscalar_mults"], ref_mults(degs), "α = {alpha}");
        assert_eq!(paper["condition1_measured_ok"], true, "α = {alpha}");
        assert!(paper["log2_tau_measured"].as_f64().unwrap() <= -f64::from(alpha - 1));
        let opt = &row["optimizer"];
        let od = degrees_of(&opt["degrees"]);
        assert_eq!(opt["depth"], table_depth(&od), "α = {alpha}");
        assert_eq!(opt["nonscalar_mults"], ref_mults(&od), "α = {alpha}");
        let dev = opt["max_abs_xp_minus_absx_measured"].as_f64().unwrap();
        assert!(dev <= 2f64.powi(1 - alpha as i32), "α = {alpha}");
        if alpha >= 6 {
            // The optimizer's own ζ search and degree choice give the paper's row exactly.
            assert_eq!(opt["zeta"], zeta, "α = {alpha}");
            assert_eq!(od, degs, "α = {alpha}");
            assert_eq!(opt["depth"], depth, "α = {alpha}");
            assert_eq!(row["matches_paper"], true);
        } else {
            // α = 4, 5: a strictly cheaper set (depth, then multiplications) at a larger ζ;
            // README, "Table 1 at α = 4 and 5". Its validity is certified separately below.
            let paper_cost = (depth, ref_mults(degs));
            let opt_cost = (table_depth(&od), ref_mults(&od));
            assert!(opt_cost < paper_cost, "α = {alpha}: {opt_cost:?}");
            assert!(opt["zeta"].as_u64().unwrap() > u64::from(zeta));
            assert_eq!(row["matches_paper"], false);
        }
        // The ζ search stopped at the first failure, which is recorded and really fails.
        let fz = opt["first_failing_zeta"].as_u64().unwrap();
        assert_eq!(fz, opt["zeta"].as_u64().unwrap() + 1, "α = {alpha}");
        let fdev = opt["first_failing_max_abs_xp_minus_absx_measured"]
            .as_f64()
            .unwrap();
        assert!(fdev > 2f64.powi(1 - alpha as i32), "α = {alpha}");
    }
}

/// The cheaper sets the optimizer finds at α = 4 and 5 are valid: certified by interval
/// arithmetic (not by the Remez code that chose them). At α = 4 the set {3} at ζ = 8 is also
/// checked against the closed form of the cubic minimax error (independent algebra): τ =
/// 0.0859546… ≤ 2^−3.
#[test]
fn optimizer_sets_at_alpha4_and_5_are_certified_valid() {
    assert!(certified_ok(4, 8, &[3]));
    assert!(certified_ok(5, 9, &[7]));
    // The paper's sets hold too (Table 1 stays reproducible with --paper).
    assert!(certified_ok(4, 5, &[5]));
    assert!(certified_ok(5, 5, &[13]));
    let s = composite_with_zeta(4, 8, &[Degree(3)]).unwrap();
    // Closed form on [a, 1]: β = 2/(a + a² + (2/3)s^{3/2}/√3), s = 1 + a + a², E = 1 − β(a + a²).
    let a: f64 = 0.5;
    let sq = 1.0 + a + a * a;
    let beta = 2.0 / (a + a * a + (2.0 / 3.0) * sq.powf(1.5) / 3f64.sqrt());
    let e = 1.0 - beta * (a + a * a);
    assert!((s.tau().to_f64() - e).abs() < 1e-12 * e, "{}", s.tau());
    assert!((e - 0.085_954_624_355_641_6).abs() < 1e-12);
}

#[test]
fn cli_alpha14_tau_and_condition1_hold_for_zeta17_not_16() {
    let (code, v, err) = run_json(&["--alpha", "14", "--degrees", "15,27,29", "--zeta", "17"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(degrees_of(&v["degrees"]), [15, 27, 29]);
    assert_eq!(v["table_depth"], 15);
    assert_eq!(v["nonscalar_mults"], ref_mults(&[15, 27, 29]));
    let l = v["log2_taus_measured"].as_array().unwrap();
    assert_eq!(l.len(), 3);
    let last = l[2].as_f64().unwrap();
    // FACTS (independent computation): τ_3 = 2^−13.66 and max |x p(x) − |x|| ≈ 1.207e−4.
    assert!(last < -13.0 && (last + 13.66).abs() < 0.01, "{last}");
    let dev = v["max_abs_xp_minus_absx_measured"].as_f64().unwrap();
    assert!(
        dev < 2f64.powi(-13) && (dev - 1.207e-4).abs() < 2e-7,
        "{dev}"
    );
    // Exact coefficients in both bases, every τ_i, per-component depth and mults.
    for (c, d) in v["components"]
        .as_array()
        .unwrap()
        .iter()
        .zip([15u32, 27, 29])
    {
        assert_eq!(c["degree"], d);
        assert_eq!(
            c["power_basis_odd"].as_array().unwrap().len() as u32,
            d.div_ceil(2)
        );
        assert_eq!(
            c["chebyshev_odd"]["coeffs"].as_array().unwrap().len() as u32,
            d.div_ceil(2)
        );
        assert_eq!(c["nonscalar_mults"], REF_MULTS[(d as usize - 1) / 2]);
        let s = c["power_basis_odd"][0].as_str().unwrap();
        assert!(polycert::poly::parse_decimal_rational(s).is_ok(), "{s}");
    }
    // ζ = 16 with the same degrees: τ above 2^−13 and condition (1) fails (exit 1).
    let (code, v, _) = run_json(&["--alpha", "14", "--degrees", "15,27,29", "--zeta", "16"]);
    assert_eq!(code, Some(1));
    assert!(v["log2_taus_measured"][2].as_f64().unwrap() > -13.0);
    assert_eq!(v["condition1_measured_ok"], false);
    assert!(v["max_abs_xp_minus_absx_measured"].as_f64().unwrap() > 2f64.powi(-13));
}

#[test]
fn cli_beta_eps_and_deterministic_output() {
    let args = ["--beta", "6", "--eps", "0.05"];
    let (code, v, err) = run_json(&args);
    assert_eq!(code, Some(0), "{err}");
    let degs = degrees_of(&v["degrees"]);
    let tau: f64 = v["log2_taus_measured"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .as_f64()
        .unwrap();
    assert!(tau <= -6.0, "{tau}");
    assert!(degs.iter().all(|d| d % 2 == 1));
    let a = polycert()
        .arg("sign")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    let b = polycert()
        .arg("sign")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    assert_eq!(
        a.stdout, b.stdout,
        "same flags must give byte-identical JSON"
    );
}

/// α beyond the paper (15..=20) with the same optimizer and ζ search; the selected
/// polynomial's closeness and condition (1) are then certified by interval arithmetic.
#[test]
#[ignore = "about 25 s CPU in release (ζ search at α = 20 plus certification): CI runs it"]
fn alpha20_zeta_search_selects_a_certified_valid_set() {
    let mut opt = SignOptimizer::new();
    let s = zeta_search(&mut opt, 20).unwrap();
    let t = s.selected().unwrap();
    assert!(t.ok);
    assert!(t.sign.tau().to_f64() <= 2f64.powi(-19));
    assert!(t.max_dev <= 2f64.powi(-19));
    let degs: Vec<u32> = t.sign.degrees().iter().map(|d| d.0).collect();
    // Depth grows with α: more than α = 14's 15 levels, at most the optimizer's limit.
    assert!(t.sign.table_depth() > 15, "{degs:?}");
    assert!(s
        .first_failure()
        .is_some_and(|f| !f.ok && f.zeta == s.zeta + 1));
    assert!(
        certified_ok(20, s.zeta, &degs),
        "α = 20, ζ = {}, {degs:?}",
        s.zeta
    );
}

#[test]
fn cli_bad_input_exits_2_naming_the_value() {
    let cases: [(&[&str], &str); 10] = [
        (&["--alpha", "0"], "outside 1..=30"),
        (&["--alpha", "31"], "outside 1..=30"),
        (&["--alpha=-3"], "outside 1..=30"),
        (&["--alpha", "fourteen"], "not an integer"),
        (&["--table", "--alpha", "9..4"], "empty"),
        (
            &["--alpha", "14", "--zeta", "17", "--degrees", "15,28,29"],
            "even degree 28",
        ),
        (&["--beta", "5", "--eps", "1.5"], "outside (0, 1)"),
        (&["--beta", "5", "--eps", "0"], "outside (0, 1)"),
        (
            &["--alpha", "14", "--zeta", "16384", "--degrees", "15"],
            "outside (0, 1)",
        ),
        (&["--beta", "41", "--eps", "0.1"], "β = 41"),
    ];
    for (args, want) in cases {
        let out = polycert().arg("sign").args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn unreachable_target_is_a_clear_error() {
    // ε = 10^−30 needs ~19 stages of degree 63 to lift [ε, 1] near 1: beyond depth 40.
    let out = polycert()
        .args(["sign", "--beta", "10", "--eps", "1e-30"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("no composite") && err.contains("depth ≤ 40"),
        "{err}"
    );
}
