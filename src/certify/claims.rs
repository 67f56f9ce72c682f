//! The claims about a composite sign polynomial p = p_k ∘ … ∘ p_1 (paper §2.2, §3, Eq. 1–7,
//! Theorems 1–2), their certified suprema and verdicts, and the [`Certificate`] collecting them.

use rug::{float::Round, Float, Integer, Rational};

use super::CertifyError;
use crate::poly::CompositePoly;

/// Arithmetic in which r_α is evaluated (the `--arith` flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arith {
    /// Exact real arithmetic: the claims are about the polynomial itself.
    Exact,
    /// IEEE binary64 with the crate's evaluation scheme (see `floaterr`).
    F64,
    /// IEEE binary32 with the crate's evaluation scheme (see `floaterr`).
    F32,
}

impl Arith {
    /// The name used on the command line and in files.
    pub fn name(self) -> &'static str {
        match self {
            Arith::Exact => "exact",
            Arith::F64 => "f64",
            Arith::F32 => "f32",
        }
    }
}

/// A composite polynomial p = p_k ∘ … ∘ p_1 with exact rational coefficients, in application
/// order. This is exactly the polynomial that is certified and written to the certificate.
///
/// Odd (every even coefficient exactly 0, the paper's §2.2 setting) or general (a polynomial
/// as someone shipped it, e.g. with even coefficients ≈ 1e−46 left by a solver): a general one
/// keeps every power-basis coefficient and is certified as written, both sides of 0 separately.
#[derive(Debug, Clone, PartialEq)]
pub struct RationalComposite {
    /// Odd coefficients c_1, c_3, … of each component (the odd part when `power` is set).
    components: Vec<Vec<Rational>>,
    /// All coefficients c_0 … c_d of each component, when some even coefficient is non-zero.
    power: Option<Vec<Vec<Rational>>>,
}

impl RationalComposite {
    /// Build from odd coefficients per component.
    ///
    /// # Errors
    /// [`CertifyError::BadCoefficient`] for an empty component list or component.
    pub fn new(components: Vec<Vec<Rational>>) -> Result<Self, CertifyError> {
        if components.is_empty() || components.iter().any(Vec::is_empty) {
            return Err(CertifyError::BadCoefficient {
                component: components
                    .iter()
                    .position(Vec::is_empty)
                    .map_or(0, |i| i + 1),
                power: 1,
                value: "no coefficients".to_string(),
            });
        }
        Ok(Self {
            components,
            power: None,
        })
    }

    /// Build from all power-basis coefficients c_0 … c_d per component, exactly as written:
    /// odd when every even coefficient is exactly 0 (then equal to [`Self::new`] of the odd
    /// ones), general otherwise (even terms kept, never dropped).
    ///
    /// # Errors
    /// [`CertifyError::BadCoefficient`] for an empty component list, or a component with no
    /// coefficient of positive power.
    pub fn from_power_basis(power: Vec<Vec<Rational>>) -> Result<Self, CertifyError> {
        if let Some(i) = power.iter().position(|c| c.len() < 2) {
            return Err(CertifyError::BadCoefficient {
                component: i + 1,
                power: 1,
                value: "no coefficient of x^1 or higher".to_string(),
            });
        }
        let odd: Vec<Vec<Rational>> = power
            .iter()
            .map(|c| c.iter().skip(1).step_by(2).cloned().collect())
            .collect();
        let mut p = Self::new(odd)?;
        let is_odd = power.iter().all(|c| c.iter().step_by(2).all(|q| *q == 0));
        if !is_odd {
            p.power = Some(power);
        }
        Ok(p)
    }

    /// Whether p is odd exactly (every even coefficient 0): only then do the claims follow
    /// on [−1, 0] from those on [0, 1] by symmetry.
    pub fn is_odd(&self) -> bool {
        self.power.is_none()
    }

    /// All power-basis coefficients c_0 … c_d of each component (even ones included).
    pub fn power_coeffs(&self) -> Vec<Vec<Rational>> {
        match &self.power {
            Some(p) => p.clone(),
            None => self
                .components
                .iter()
                .map(|c| {
                    c.iter()
                        .flat_map(|q| [Rational::new(), q.clone()])
                        .collect()
                })
                .collect(),
        }
    }

    /// The odd part of every component (c_j for odd j only): p itself when p is odd.
    pub fn odd_part(&self) -> Self {
        Self {
            components: self.components.clone(),
            power: None,
        }
    }

    /// The exact coefficients of a [`CompositePoly`] (dyadic rug `Float`s).
    ///
    /// # Errors
    /// [`CertifyError::BadCoefficient`] for a non-finite coefficient.
    pub fn from_composite(p: &CompositePoly) -> Result<Self, CertifyError> {
        let mut comps = Vec::new();
        for (i, c) in p.components().iter().enumerate() {
            let mut odd = Vec::new();
            for (j, f) in c.odd_coeffs().iter().enumerate() {
                odd.push(
                    f.to_rational()
                        .ok_or_else(|| CertifyError::BadCoefficient {
                            component: i + 1,
                            power: 2 * j + 1,
                            value: f.to_string(),
                        })?,
                );
            }
            comps.push(odd);
        }
        Self::new(comps)
    }

    /// Odd coefficients c_1, c_3, … per component: the whole polynomial only when
    /// [`Self::is_odd`], else its odd part (see [`Self::power_coeffs`]).
    pub fn components(&self) -> &[Vec<Rational>] {
        &self.components
    }

    /// Component degrees: d_i = 2·len − 1 for odd p, the written degree for general p.
    pub fn degrees(&self) -> Vec<u32> {
        match &self.power {
            Some(p) => p
                .iter()
                .map(|c| u32::try_from(c.len() - 1).unwrap_or(u32::MAX))
                .collect(),
            None => self
                .components
                .iter()
                .map(|c| u32::try_from(2 * c.len() - 1).unwrap_or(u32::MAX))
                .collect(),
        }
    }

    /// p(x) exactly (rational arithmetic; for tests and witnesses, slow for high degree).
    pub fn eval_exact(&self, x: &Rational) -> Rational {
        let mut y = x.clone();
        if let Some(power) = &self.power {
            for c in power {
                let mut acc = Rational::new();
                for cj in c.iter().rev() {
                    acc *= &y;
                    acc += cj;
                }
                y = acc;
            }
            return y;
        }
        for c in &self.components {
            let s = Rational::from(&y * &y);
            let mut acc = Rational::new();
            for cj in c.iter().rev() {
                acc *= &s;
                acc += cj;
            }
            y = acc * &y;
        }
        y
    }

    /// p(x) at `prec` bits (MPFR, round to nearest per operation; a measurement).
    pub fn eval_float(&self, x: &Float, prec: u32) -> Float {
        let mut y = Float::with_val(prec, x);
        if let Some(power) = &self.power {
            for c in power {
                let mut acc = Float::with_val(prec, 0);
                for cj in c.iter().rev() {
                    acc *= &y;
                    acc += cj;
                }
                y = acc;
            }
            return y;
        }
        for c in &self.components {
            let s = Float::with_val(prec, &y * &y);
            let mut acc = Float::with_val(prec, 0);
            for cj in c.iter().rev() {
                acc *= &s;
                acc += cj;
            }
            y = acc * &y;
        }
        y
    }
}

/// Which claim (paper reference in each variant's docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClaimKind {
    /// (α−1, ζ·2^−α)-closeness (§2.2): |p(x) − sgn(x)| ≤ 2^−(α−1) on [−1, −ε] ∪ [ε, 1].
    Closeness,
    /// Condition (1) for m_α (§2.2, Eq. 1 with Eq. 2): |x·p(x) − |x|| ≤ 2^(1−α) on [−1, 1].
    Condition1,
    /// Enclosure of p on [−1, 1]: |p(x)| ≤ 1 + 2^−(α−1).
    Enclosure,
    /// Theorem 1 (Eq. 5): |r_α(x) − ReLU(x)| ≤ 2^−α on [−1, 1], derived exactly from
    /// [`ClaimKind::Condition1`] (r_α − ReLU = (x·p(x) − |x|)/2); scaled by B on [−B, B].
    Theorem1Relu,
    /// Theorem 2 with Eq. (7) for n inputs: |M̃_{α,n} − max| ≤ B'·⌈log₂ n⌉·2^−α on [−B, B]^n,
    /// B' = B / (0.5 − (⌈log₂ n⌉ − 1)·2^−α); stated per unit B.
    MaxPool {
        /// Number of pooled inputs (4 for 2×2, 9 for 3×3 kernels).
        n: u32,
    },
    /// Closeness on the negative side, for a p that is not odd: |p(x) + 1| ≤ 2^−(α−1) on
    /// [−1, −ε] (no symmetry to appeal to).
    ClosenessNeg,
    /// Condition (1) on the negative side, for a p that is not odd: |x·p(x) + x| = |x·p(x) −
    /// |x|| ≤ 2^(1−α) on [−1, 0].
    Condition1Neg,
    /// The enclosure on the negative side, for a p that is not odd: |p(x)| ≤ 1 + 2^(1−α) on
    /// [−1, 0].
    EnclosureNeg,
    /// With `--odd-part`: the effect of the dropped even terms, |p_shipped(x) − p(x)| on
    /// [−1, 1], p the odd part (of every component) of the shipped p_shipped.
    EvenPart,
    /// With `--odd-part`: closeness of the shipped polynomial, derived as closeness of the odd
    /// part plus [`ClaimKind::EvenPart`]: |p_shipped − sgn| ≤ |p − sgn| + |p_shipped − p|.
    ClosenessShipped,
    /// With `--odd-part`: Theorem 1 for the shipped polynomial, derived as Theorem 1 of the odd
    /// part plus half of [`ClaimKind::EvenPart`]: |r_shipped − r| = |x|·|p_shipped − p|/2.
    ReluShipped,
    /// Theorem 1 for r_α evaluated in floating point with the crate's scheme, rounding error
    /// included: |r̂_α(x) − ReLU(x)| ≤ 2^−α for every float x in [−1, 1].
    FloatRelu {
        /// The floating-point format.
        arith: Arith,
    },
}

impl ClaimKind {
    /// Identifier used in files.
    pub fn id(self) -> String {
        match self {
            ClaimKind::Closeness => "closeness".into(),
            ClaimKind::Condition1 => "condition1".into(),
            ClaimKind::Enclosure => "enclosure".into(),
            ClaimKind::Theorem1Relu => "theorem1_relu".into(),
            ClaimKind::MaxPool { n } => format!("maxpool_n{n}"),
            ClaimKind::FloatRelu { arith } => format!("float_relu_{}", arith.name()),
            ClaimKind::ClosenessNeg => "closeness_neg".into(),
            ClaimKind::Condition1Neg => "condition1_neg".into(),
            ClaimKind::EnclosureNeg => "enclosure_neg".into(),
            ClaimKind::EvenPart => "even_part".into(),
            ClaimKind::ClosenessShipped => "closeness_shipped".into(),
            ClaimKind::ReluShipped => "theorem1_relu_shipped".into(),
        }
    }
}

/// The verdict on a claim. A refuted claim is a value, not an error.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The certified supremum's upper end is at most the bound.
    Holds,
    /// The certified supremum's lower end exceeds the bound, attained at `witness`.
    Refuted {
        /// A point x where the claim fails.
        witness: f64,
    },
    /// Neither (only possible for floating-point claims, whose worst-case rounding analysis
    /// cannot be refined by subdivision).
    Undecided,
}

/// One box of a claim's partition of its domain.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CertBox {
    /// Left end of the x-interval.
    pub lo: f64,
    /// Right end of the x-interval.
    pub hi: f64,
    /// Certified upper bound of the claim function on the box.
    pub upper: f64,
}

/// A claim with its certified supremum.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    /// Which claim.
    pub kind: ClaimKind,
    /// The claimed bound (exact).
    pub bound: Rational,
    /// The domain of x (exact).
    pub domain: (Rational, Rational),
    /// Rigorous lower bound of the supremum (attained at `witness`; 0 with no witness).
    pub sup_lo: f64,
    /// Rigorous (outward-rounded) upper bound of the supremum.
    pub sup_hi: f64,
    /// Where `sup_lo` is attained.
    pub witness: Option<f64>,
    /// The verdict.
    pub verdict: Verdict,
    /// Boxes partitioning the domain (empty for derived claims).
    pub boxes: Vec<CertBox>,
}

/// Evidence that a value was certified by this module (only `certify` can construct it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Certified<T> {
    value: T,
}

impl<T> Certified<T> {
    /// Wrap a certified value (crate-internal: only interval proofs may call this).
    pub(crate) fn new(value: T) -> Self {
        Self { value }
    }

    /// The certified value.
    pub fn get(&self) -> &T {
        &self.value
    }

    /// Unwrap.
    pub fn into_inner(self) -> T {
        self.value
    }
}

/// All claims proved about one composite polynomial.
#[derive(Debug, Clone, PartialEq)]
pub struct Certificate {
    /// Precision parameter α.
    pub alpha: u32,
    /// Max function factor ζ (ε = ζ·2^−α).
    pub zeta: Rational,
    /// The certified polynomial, exactly.
    pub poly: RationalComposite,
    /// The arithmetic of the float claims (`Exact` when there are none).
    pub arith: Arith,
    /// The claims, in a fixed order.
    pub claims: Vec<Claim>,
    /// The files the polynomial was read from, with their SHA-256 (empty for our own).
    pub sources: Vec<SourceFile>,
    /// With `--odd-part`: the shipped polynomial whose odd part `poly` is.
    pub shipped: Option<RationalComposite>,
}

/// An input file of a certificate, identified by its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// The path as given.
    pub file: String,
    /// Lower-case hex SHA-256 of the file's bytes.
    pub sha256: String,
    /// How it was read: `degrees`, `power-text`, `chebyshev-text [lo, hi]`, `json`.
    pub form: String,
}

impl Certificate {
    /// The claim of the given kind.
    pub fn claim(&self, kind: ClaimKind) -> Option<&Claim> {
        self.claims.iter().find(|c| c.kind == kind)
    }

    /// Certified sup |r_α(x) − ReLU(x)| on [−1, 1] (Theorem 1), an upper bound rounded up,
    /// when the Theorem 1 claim was proved.
    pub fn relu_error(&self) -> Option<Certified<f64>> {
        self.claim(ClaimKind::Theorem1Relu)
            .map(|c| Certified::new(c.sup_hi))
    }

    /// Certified sup |r̃_α(x) − ReLU(x)| on [−B, B] = B·sup|r_α − ReLU| (§3.1), rounded up.
    pub fn relu_error_scaled(&self, b: f64) -> Option<Certified<f64>> {
        let e = self.claim(ClaimKind::Theorem1Relu)?.sup_hi;
        let q = Rational::from_f64(e)? * Rational::from_f64(b)?;
        Some(Certified::new(f64_up(&q)))
    }

    /// Whether every claim holds.
    pub fn all_hold(&self) -> bool {
        self.claims.iter().all(|c| c.verdict == Verdict::Holds)
    }
}

/// Nearest f64 at or above `q`.
pub(crate) fn f64_up(q: &Rational) -> f64 {
    Float::with_val_round(53, q, Round::Up).0.to_f64()
}

/// Nearest f64 at or below `q`.
pub(crate) fn f64_down(q: &Rational) -> f64 {
    Float::with_val_round(53, q, Round::Down).0.to_f64()
}

/// 2^e exactly.
pub(crate) fn pow2(e: i32) -> Rational {
    let mut q = Rational::from(1);
    if e >= 0 {
        q <<= e.unsigned_abs();
    } else {
        q >>= e.unsigned_abs();
    }
    q
}

/// An f64 as a decimal string `ne-k` with 17 significant digits, rounded up
/// (`Round::Up`) or down (any other mode), so the text is ≥ or ≤ x exactly.
pub(crate) fn dec_round(x: f64, round: Round) -> String {
    dec_round_digits(x, round, 17)
}

/// As [`dec_round`] with `digits` (2..=17) significant digits.
pub(crate) fn dec_round_digits(x: f64, round: Round, digits: i32) -> String {
    match Rational::from_f64(x) {
        Some(q) => dec_round_qd(&q, round, digits),
        None => x.to_string(),
    }
}

/// A rational as a decimal string with 17 significant digits rounded up (`Round::Up`) or
/// down (any other mode).
pub(crate) fn dec_round_q(q: &Rational, round: Round) -> String {
    dec_round_qd(q, round, 17)
}

fn dec_round_qd(q: &Rational, round: Round, digits: i32) -> String {
    let digits = digits.clamp(2, 17);
    if *q == 0 {
        return "0".to_string();
    }
    let x = q.to_f64();
    // Find k with 10^(digits−1) ≤ |q|·10^k < 10^digits.
    let mut k: i32 = digits - 1 - x.abs().log10().floor() as i32;
    let lo = Integer::from(Integer::u_pow_u(10, digits.unsigned_abs() - 1));
    let hi = Integer::from(Integer::u_pow_u(10, digits.unsigned_abs()));
    for _ in 0..4 {
        let s = Rational::from(q * &pow10(k)).abs();
        if s < lo {
            k += 1;
        } else if s >= hi {
            k -= 1;
        } else {
            break;
        }
    }
    let s = Rational::from(q * &pow10(k));
    let n = if round == Round::Up {
        s.ceil()
    } else {
        s.floor()
    };
    let n = n.numer().clone();
    if k == 0 {
        n.to_string()
    } else {
        format!("{n}e{}", -k)
    }
}

fn pow10(k: i32) -> Rational {
    let p = Rational::from(Integer::from(Integer::u_pow_u(10, k.unsigned_abs())));
    if k >= 0 {
        p
    } else {
        p.recip()
    }
}

/// Exact text of a rational: a finite decimal when the denominator is 2^a·5^b, else `n/d`.
pub(crate) fn rational_text(q: &Rational) -> String {
    let mut d = Integer::from(q.denom());
    let (mut a, mut b) = (0u32, 0u32);
    while d.is_divisible_u(2) {
        d /= 2;
        a += 1;
    }
    while d.is_divisible_u(5) {
        d /= 5;
        b += 1;
    }
    if d != 1 {
        return format!("{}/{}", q.numer(), q.denom());
    }
    let k = a.max(b);
    if k == 0 {
        return q.numer().to_string();
    }
    // q = n / (2^a 5^b) = n·2^(k−a)·5^(k−b) / 10^k.
    let n = Integer::from(q.numer().abs_ref())
        * Integer::from(Integer::u_pow_u(2, k - a))
        * Integer::from(Integer::u_pow_u(5, k - b));
    let mut digits = n.to_string();
    let k = k as usize;
    if digits.len() <= k {
        digits = "0".repeat(k + 1 - digits.len()) + &digits;
    }
    let (ip, fp) = digits.split_at(digits.len() - k);
    let fp = fp.trim_end_matches('0');
    let sign = if *q < 0 { "-" } else { "" };
    if fp.is_empty() {
        format!("{sign}{ip}")
    } else {
        format!("{sign}{ip}.{fp}")
    }
}

/// Exact text `m p e` (= m·2^e, m odd) of a finite f64; plain integers for 0 ≤ e < 53.
pub(crate) fn dyadic_text(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return "0".to_string();
    }
    let bits = x.to_bits();
    let sign = if x < 0.0 { "-" } else { "" };
    let exp_bits = ((bits >> 52) & 0x7ff) as i64;
    let frac = bits & 0x000f_ffff_ffff_ffff;
    let (mut m, mut e) = if exp_bits == 0 {
        (frac, -1074i64)
    } else {
        (frac | (1u64 << 52), exp_bits - 1075)
    };
    while m % 2 == 0 {
        m /= 2;
        e += 1;
    }
    if (0..11).contains(&e) {
        return format!("{sign}{}", m << e);
    }
    format!("{sign}{m}p{e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rational_text_is_exact() {
        assert_eq!(rational_text(&Rational::from((3, 8))), "0.375");
        assert_eq!(rational_text(&Rational::from((-1, 20))), "-0.05");
        assert_eq!(rational_text(&Rational::from((1, 3))), "1/3");
        assert_eq!(rational_text(&Rational::from(17)), "17");
        assert_eq!(rational_text(&pow2(-3)), "0.125");
    }

    #[test]
    fn dyadic_text_is_exact() {
        assert_eq!(dyadic_text(0.375), "3p-3");
        assert_eq!(dyadic_text(1.0), "1");
        assert_eq!(dyadic_text(-6.0), "-6");
        assert_eq!(dyadic_text(2f64.powi(-40) * 5.0), "5p-40");
        assert_eq!(dyadic_text(0.0), "0");
    }

    #[test]
    fn directed_decimal_rounding_brackets_the_value() {
        for x in [1.2207e-4, 0.1, 1.0 / 3.0, 6.04e-5, 123.456] {
            let up = crate::poly::parse_decimal_rational(&dec_round(x, Round::Up)).unwrap();
            let dn = crate::poly::parse_decimal_rational(&dec_round(x, Round::Down)).unwrap();
            let ex = Rational::from_f64(x).unwrap();
            assert!(dn <= ex && ex <= up, "{x}");
        }
    }
}
