//! JSON form of a [`CompositeSign`]: exact coefficients (decimal strings of the stored rug
//! values) in the power basis and in the odd Chebyshev basis of each component's interval,
//! every τ_i, depth and multiplication counts. Key order is fixed (serde_json
//! `preserve_order`), so equal inputs give byte-identical output.

use rug::{Float, Rational};
use serde_json::{json, Map, Value};

use super::composite::{CompositeSign, STORED_COEFF_BITS};
use crate::poly::{
    exact_decimal, odd_bsgs_cost, odd_power_to_chebyshev, power_to_chebyshev_exact,
    rational_to_dyadic, ComponentRecord, EvalPlan, PolyFile, CONVENTION_OPENFHE,
    CONVENTION_STANDARD, POLY_FORMAT,
};

/// The library a Chebyshev export ([`CompositeSign::to_poly_file`]) is laid out for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportTarget {
    /// Plain `polycert-poly/1` (standard convention Σ c_k T_k).
    Json,
    /// OpenFHE `EvalChebyshevSeries(ct, coeffs, a, b)`: c_0/2 + Σ_{k≥1} c_k T_k, so c_0 is
    /// written doubled (it is 0 for these odd components).
    OpenFhe,
    /// Lattigo Chebyshev polynomials (`bignum.ChebyshevPolynomial` / interval [a, b]):
    /// standard convention.
    Lattigo,
}

impl ExportTarget {
    /// The name on the command line and in the file.
    pub fn name(self) -> &'static str {
        match self {
            ExportTarget::Json => "json",
            ExportTarget::OpenFhe => "openfhe",
            ExportTarget::Lattigo => "lattigo",
        }
    }
}

/// Exact text of a rational: a finite decimal when it is dyadic, else `n/d`.
fn exact_text(q: &Rational) -> String {
    rational_to_dyadic(q).map_or_else(
        || format!("{}/{}", q.numer(), q.denom()),
        |f| exact_decimal(&f),
    )
}

/// Bits of the Chebyshev coefficients printed (they are derived from the stored power-basis
/// coefficients, which are the certified object).
pub const CHEBYSHEV_PRINT_BITS: u32 = 256;

impl CompositeSign {
    /// Σ non-scalar multiplications of the crate's odd BSGS over the components.
    pub fn nonscalar_mults(&self) -> u32 {
        self.degrees().iter().map(|d| odd_bsgs_cost(*d)).sum()
    }

    /// Odd BSGS evaluation plans, one per component, each in the scaled Chebyshev basis of
    /// that component's input interval [−b_i, b_i] (b_1 = 1, b_{i+1} = 1 + τ_i).
    pub fn plans(&self) -> Vec<EvalPlan> {
        self.poly
            .components()
            .iter()
            .zip(&self.stages)
            .map(|(p, st)| EvalPlan::odd_bsgs_on(p, &st.b))
            .collect()
    }

    /// The composite's stages p_1, …, p_k as Chebyshev series on each stage's input interval
    /// [−b_i, b_i] (b_1 = 1, b_{i+1} = 1 + τ_i; paper §2.2), in the `polycert-poly/1` layout
    /// for `target`: exact decimal coefficients (converted exactly from the stored dyadic
    /// power-basis coefficients, so the series is the same polynomial) and their nearest f64.
    /// A component whose coefficients are not finite is skipped (none are, by construction).
    pub fn to_poly_file(&self, target: ExportTarget) -> PolyFile {
        let half_c0 = target == ExportTarget::OpenFhe;
        let mut components = Vec::new();
        for (p, st) in self.poly.components().iter().zip(&self.stages) {
            let Some(b) = st.b.to_rational() else {
                continue;
            };
            let a = Rational::from(-&b);
            let all: Option<Vec<Rational>> =
                p.power_coeffs().iter().map(Float::to_rational).collect();
            let Some(g) = all.and_then(|all| power_to_chebyshev_exact(&all, &a, &b)) else {
                continue;
            };
            let g: Vec<Rational> = g
                .into_iter()
                .enumerate()
                .map(|(k, v)| if k == 0 && half_c0 { v * 2u32 } else { v })
                .collect();
            components.push(ComponentRecord {
                basis: "chebyshev".into(),
                interval: Some([exact_text(&a), exact_text(&b)]),
                degree: u32::try_from(g.len().saturating_sub(1)).ok(),
                coeffs_f64: Some(g.iter().map(|v| Float::with_val(53, v).to_f64()).collect()),
                coeffs: g.iter().map(exact_text).collect(),
            });
        }
        let note = match target {
            ExportTarget::Json => "p(x) = p_k(...p_1(x)); component i is sum_k coeffs[k] T_k((2y - a - b)/(b - a)) on its interval [a, b]; r_alpha(x) = (x + x p(x))/2",
            ExportTarget::OpenFhe => "per component: ct = cc.EvalChebyshevSeries(ct, coeffs_f64, a, b) (OpenFHE adds coeffs[0]/2); then r_alpha = (x + x p(x))/2",
            ExportTarget::Lattigo => "per component: bignum.NewPolynomial(bignum.Chebyshev, coeffs, [2]float64{a, b}) evaluated with polynomial.Evaluator; then r_alpha = (x + x p(x))/2",
        };
        PolyFile {
            format: POLY_FORMAT.into(),
            target: Some(target.name().into()),
            convention: Some(
                if half_c0 {
                    CONVENTION_OPENFHE
                } else {
                    CONVENTION_STANDARD
                }
                .into(),
            ),
            alpha: self.alpha,
            zeta: self.zeta,
            eps: Some(exact_decimal(&self.eps)),
            depth: Some(self.depth()),
            note: Some(note.into()),
            components,
        }
    }

    /// The JSON description (see the module docs). `measured` adds the measured
    /// max |x·p(x) − |x|| over [−1, 1] when given.
    pub fn to_json(&self, measured: Option<f64>) -> Value {
        let mut m = Map::new();
        m.insert("alpha".into(), json!(self.alpha));
        m.insert("zeta".into(), json!(self.zeta));
        m.insert(
            "beta".into(),
            json!(self.alpha.map(|a| a.saturating_sub(1))),
        );
        m.insert("eps".into(), json!(exact_decimal(&self.eps)));
        m.insert(
            "degrees".into(),
            json!(self.degrees().iter().map(|d| d.0).collect::<Vec<_>>()),
        );
        m.insert("depth".into(), json!(self.depth()));
        m.insert("table_depth".into(), json!(self.table_depth()));
        m.insert("nonscalar_mults".into(), json!(self.nonscalar_mults()));
        m.insert(
            "taus_measured".into(),
            json!(self.taus.iter().map(exact_decimal).collect::<Vec<_>>()),
        );
        m.insert(
            "log2_taus_measured".into(),
            json!(self
                .taus
                .iter()
                .map(|t| t.to_f64().log2())
                .collect::<Vec<_>>()),
        );
        if let Some(a) = self.alpha {
            let bound = 2f64.powi(1 - i32::try_from(a).unwrap_or(30));
            m.insert("condition1_bound".into(), json!(bound));
            if let Some(dev) = measured {
                m.insert("max_abs_xp_minus_absx_measured".into(), json!(dev));
                m.insert("condition1_measured_ok".into(), json!(dev <= bound));
            }
        } else if let Some(dev) = measured {
            m.insert("max_abs_xp_minus_absx_measured".into(), json!(dev));
        }
        m.insert(
            "coefficient_bits".into(),
            json!(format!(
                "power basis: {STORED_COEFF_BITS} significant bits + the integer bits of the \
                 largest coefficient (exact dyadics); Chebyshev basis: derived, \
                 {CHEBYSHEV_PRINT_BITS} bits"
            )),
        );
        let mut comps = Vec::new();
        for (i, (p, st)) in self.poly.components().iter().zip(&self.stages).enumerate() {
            let prec = p.max_prec() + 4 * p.degree().0 + 128;
            let cheb: Vec<String> = odd_power_to_chebyshev(p.odd_coeffs(), &st.b, prec)
                .iter()
                .map(|c| exact_decimal(&Float::with_val(CHEBYSHEV_PRINT_BITS, c)))
                .collect();
            let plan = EvalPlan::odd_bsgs_on(p, &st.b);
            comps.push(json!({
                "stage": i + 1,
                "degree": p.degree().0,
                "interval": [exact_decimal(&st.a), exact_decimal(&st.b)],
                "tau_measured": exact_decimal(&st.tau),
                "remez_iterations": st.iterations,
                "remez_precision_bits": st.work_prec,
                "depth": plan.depth(),
                "nonscalar_mults": plan.nonscalar_mults(),
                "power_basis_odd": p.odd_coeffs_decimal(),
                "chebyshev_odd": {
                    "basis": "p(x) = sum_k c_k T_(2k+1)(x/b)",
                    "b": exact_decimal(&st.b),
                    "coeffs": cheb,
                },
            }));
        }
        m.insert("components".into(), Value::Array(comps));
        Value::Object(m)
    }
}
