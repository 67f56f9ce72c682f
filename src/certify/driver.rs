//! The certification driver: builds every claim for one composite polynomial and converts the
//! result to the `proof` file format.

use rug::{float::Round, Rational};

use super::claims::{
    dec_round, dec_round_digits, dec_round_q, dyadic_text, f64_down, f64_up, pow2, rational_text,
    Arith, CertBox, Certificate, Claim, ClaimKind, RationalComposite, Verdict,
};
use super::search::{certify_sup, Func, Limits};
use super::taylor::ShiftPoly;
use super::CertifyError;
use crate::proof::{CertificateFile, ClaimRecord, FORMAT};

/// Table 1 of the paper: the minimum max function factor ζ for α = 4..=14.
pub const TABLE1_ZETA: [(u32, u32); 11] = [
    (4, 5),
    (5, 5),
    (6, 10),
    (7, 11),
    (8, 12),
    (9, 13),
    (10, 13),
    (11, 15),
    (12, 15),
    (13, 16),
    (14, 17),
];

/// What to prove and how hard to try.
#[derive(Debug, Clone, PartialEq)]
pub struct CertifyConfig {
    alpha: u32,
    zeta: Rational,
    arith: Arith,
    rel_tol: f64,
    max_boxes: usize,
}

impl CertifyConfig {
    /// Claims for precision α with ε = ζ·2^−α. Defaults: exact arithmetic, certified suprema
    /// within a relative 10^−4 of a rigorous lower bound, at most 2·10^6 boxes per claim.
    ///
    /// # Errors
    /// [`CertifyError::BadAlpha`] unless 1 ≤ α ≤ 40; [`CertifyError::BadZeta`] unless
    /// 0 < ζ·2^−α < 1.
    pub fn new(alpha: u32, zeta: Rational) -> Result<Self, CertifyError> {
        if !(1..=40).contains(&alpha) {
            return Err(CertifyError::BadAlpha(alpha));
        }
        let eps = Rational::from(&zeta * &pow2(-(alpha as i32)));
        if eps <= 0 || eps >= 1 {
            return Err(CertifyError::BadZeta {
                value: rational_text(&zeta),
            });
        }
        Ok(Self {
            alpha,
            zeta,
            arith: Arith::Exact,
            rel_tol: 1e-4,
            max_boxes: 2_000_000,
        })
    }

    /// Claims for precision α with Table 1's ζ.
    ///
    /// # Errors
    /// [`CertifyError::BadAlpha`] for α outside 4..=14.
    pub fn table1(alpha: u32) -> Result<Self, CertifyError> {
        let zeta = TABLE1_ZETA
            .iter()
            .find(|(a, _)| *a == alpha)
            .map(|(_, z)| *z)
            .ok_or(CertifyError::BadAlpha(alpha))?;
        Self::new(alpha, Rational::from(zeta))
    }

    /// Also certify evaluation in `arith` (rounding error included).
    pub fn with_arith(mut self, arith: Arith) -> Self {
        self.arith = arith;
        self
    }

    /// Relative tightness target for certified suprema (clamped to [1e−12, 1]).
    pub fn with_rel_tol(mut self, tol: f64) -> Self {
        self.rel_tol = if tol.is_finite() {
            tol.clamp(1e-12, 1.0)
        } else {
            1e-4
        };
        self
    }

    /// Maximum number of boxes per claim.
    pub fn with_max_boxes(mut self, n: usize) -> Self {
        self.max_boxes = n.max(1);
        self
    }

    /// α.
    pub fn alpha(&self) -> u32 {
        self.alpha
    }

    /// ε = ζ·2^−α, exact.
    pub fn eps(&self) -> Rational {
        Rational::from(&self.zeta * &pow2(-(self.alpha as i32)))
    }
}

fn ipolys(poly: &RationalComposite) -> Result<Vec<ShiftPoly>, CertifyError> {
    poly.components()
        .iter()
        .enumerate()
        .map(|(i, c)| {
            ShiftPoly::new(c).ok_or_else(|| {
                let (j, v) = c
                    .iter()
                    .enumerate()
                    .find(|(_, q)| super::taylor::enclose(q).is_none())
                    .map_or((0, String::new()), |(j, q)| (2 * j + 1, rational_text(q)));
                CertifyError::BadCoefficient {
                    component: i + 1,
                    power: j,
                    value: v,
                }
            })
        })
        .collect()
}

fn verdict(lo: f64, hi: f64, witness: f64, bound: &Rational) -> Verdict {
    if Rational::from_f64(hi).is_some_and(|h| h <= *bound) {
        Verdict::Holds
    } else if Rational::from_f64(lo).is_some_and(|l| l > *bound) {
        Verdict::Refuted { witness }
    } else {
        Verdict::Undecided
    }
}

/// Prove one box-based claim.
fn sup_claim(
    polys: &[ShiftPoly],
    kind: ClaimKind,
    func: Func,
    domain: (Rational, Rational),
    bound: Rational,
    cfg: &CertifyConfig,
) -> Result<Claim, CertifyError> {
    let lo = f64_down(&domain.0);
    let hi = f64_up(&domain.1);
    let limits = Limits {
        rel_tol: cfg.rel_tol,
        max_boxes: cfg.max_boxes,
    };
    let bound_f = f64_down(&bound);
    let s =
        certify_sup(polys, func, lo, hi, bound_f, limits).map_err(|p| CertifyError::BoxLimit {
            claim: kind.id(),
            boxes: p.boxes.len(),
            limit: cfg.max_boxes,
            lo: p.lower,
            hi: p.upper,
            bound: bound_f,
        })?;
    Ok(Claim {
        kind,
        verdict: verdict(s.lower, s.upper, s.witness, &bound),
        bound,
        domain,
        sup_lo: s.lower,
        sup_hi: s.upper,
        witness: Some(s.witness),
        boxes: s
            .boxes
            .iter()
            .map(|b| CertBox {
                lo: b.a,
                hi: b.b,
                upper: b.upper,
            })
            .collect(),
    })
}

/// ⌈log₂ n⌉ for n ≥ 1.
fn ceil_log2(n: u32) -> u32 {
    32 - n.saturating_sub(1).leading_zeros()
}

/// The Theorem 2 / Eq. (7) bound per unit B: B'·L·2^−α with B' = 1/(1/2 − (L−1)·2^−α).
pub(crate) fn maxpool_factor(alpha: u32, n: u32) -> Rational {
    let l = Rational::from(ceil_log2(n));
    let two_a = pow2(-(alpha as i32));
    let denom = Rational::from((1, 2)) - Rational::from(&l - 1u32) * &two_a;
    l / denom
}

/// Prove every claim about `poly` (see [`ClaimKind`]).
///
/// # Errors
/// [`CertifyError::BadCoefficient`] for coefficients that cannot be enclosed,
/// [`CertifyError::BoxLimit`] when a claim stays undecided within the box limit.
pub fn certify(poly: &RationalComposite, cfg: &CertifyConfig) -> Result<Certificate, CertifyError> {
    let polys = ipolys(poly)?;
    let alpha = cfg.alpha as i32;
    let one = Rational::from(1);
    let zero = Rational::new();
    let mut claims = Vec::new();
    claims.push(sup_claim(
        &polys,
        ClaimKind::Closeness,
        Func::AbsPMinus1,
        (cfg.eps(), one.clone()),
        pow2(1 - alpha),
        cfg,
    )?);
    let cond1 = sup_claim(
        &polys,
        ClaimKind::Condition1,
        Func::XAbsPMinus1,
        (zero.clone(), one.clone()),
        pow2(1 - alpha),
        cfg,
    )?;
    claims.push(sup_claim(
        &polys,
        ClaimKind::Enclosure,
        Func::AbsP,
        (zero.clone(), one.clone()),
        Rational::from(&one + &pow2(1 - alpha)),
        cfg,
    )?);
    // Theorem 1: r_α − ReLU = (x·p(x) − |x|)/2 exactly, so halve condition (1)'s supremum
    // (halving is exact in binary floating point).
    let half_lo = cond1.sup_lo / 2.0;
    let half_hi = cond1.sup_hi / 2.0;
    let t1_bound = pow2(-alpha);
    claims.push(Claim {
        kind: ClaimKind::Theorem1Relu,
        verdict: verdict(half_lo, half_hi, cond1.witness.unwrap_or(0.0), &t1_bound),
        bound: t1_bound,
        domain: (Rational::from(-1), one.clone()),
        sup_lo: half_lo,
        sup_hi: half_hi,
        witness: cond1.witness,
        boxes: Vec::new(),
    });
    // Theorem 2 + Eq. (7): with s = sup|m_α − max| = half of condition (1)'s supremum and
    // s ≤ 2^−α, |M̃_{α,n} − max| ≤ B'·⌈log₂ n⌉·s per unit B.
    for n in [4u32, 9] {
        let factor = maxpool_factor(cfg.alpha, n);
        let bound = Rational::from(&factor * &pow2(-alpha));
        let hi = Rational::from_f64(half_hi).map(|s| f64_up(&(s * &factor)));
        let holds = cond1.verdict == Verdict::Holds;
        claims.push(Claim {
            kind: ClaimKind::MaxPool { n },
            verdict: match (holds, hi) {
                (true, Some(h)) if Rational::from_f64(h).is_some_and(|h| h <= bound) => {
                    Verdict::Holds
                }
                _ => Verdict::Undecided,
            },
            bound,
            domain: (Rational::from(-1), one.clone()),
            sup_lo: 0.0,
            sup_hi: hi.unwrap_or(f64::INFINITY),
            witness: None,
            boxes: Vec::new(),
        });
    }
    claims.insert(1, cond1);
    if cfg.arith != Arith::Exact {
        claims.push(super::floaterr::float_relu_claim(
            poly,
            &polys,
            cfg.arith,
            cfg.alpha,
            cfg.rel_tol,
        )?);
    }
    Ok(Certificate {
        alpha: cfg.alpha,
        zeta: cfg.zeta.clone(),
        poly: poly.clone(),
        arith: cfg.arith,
        claims,
    })
}

fn statement(kind: ClaimKind) -> &'static str {
    match kind {
        ClaimKind::Closeness => "(alpha-1, zeta*2^-alpha)-closeness (paper §2.2): |p(x) - sgn(x)| <= 2^-(alpha-1) on [-1,-eps] U [eps,1]; proved on [eps,1], the rest by oddness of p",
        ClaimKind::Condition1 => "condition (1) for m_alpha (paper Eq. 1, 2): |x p(x) - |x|| <= 2^(1-alpha) on [-1,1], i.e. |m_alpha(a,b) - max(a,b)| <= 2^-alpha on [0,1]^2; proved on [0,1], the rest by evenness",
        ClaimKind::Enclosure => "enclosure of p on [-1,1]: |p(x)| <= 1 + 2^(1-alpha); proved on [0,1], the rest by oddness",
        ClaimKind::Theorem1Relu => "Theorem 1 (Eq. 5): |r_alpha(x) - ReLU(x)| <= 2^-alpha on [-1,1], since r_alpha - ReLU = (x p(x) - |x|)/2 (derived from condition1, sup halved exactly); with r~(x) = B r(B^-1 x): B times this on [-B,B]",
        ClaimKind::MaxPool { .. } => "Theorem 2 with Eq. (7): |M~_{alpha,n}(x) - max(x)| <= B' ceil(log2 n) s on [-B,B]^n with s = sup|m_alpha - max| <= 2^-alpha and B' = B/(0.5 - (ceil(log2 n)-1) 2^-alpha); stated per unit B (derived from condition1)",
        ClaimKind::FloatRelu { .. } => "Theorem 1 in floating point: |fl(r_alpha)(x) - ReLU(x)| <= 2^-alpha for every float x in [-1,1], rounding error of the crate's evaluation scheme included; proved on [0,1], the rest by the sign symmetry of round-to-nearest",
    }
}

fn function(kind: ClaimKind) -> &'static str {
    match kind {
        ClaimKind::Closeness => "abs(p(x) - 1)",
        ClaimKind::Condition1 => "abs(x p(x) - x)",
        ClaimKind::Enclosure => "abs(p(x))",
        ClaimKind::Theorem1Relu => "abs(r_alpha(x) - ReLU(x))",
        ClaimKind::MaxPool { .. } => "abs(M~_{alpha,n}(x) - max(x)) / B",
        ClaimKind::FloatRelu { .. } => "abs(fl(r_alpha)(x) - ReLU(x))",
    }
}

/// Rewrite the derived claims' certified sups from condition (1)'s *written* decimal texts,
/// so the exact relations the checker verifies hold for the texts themselves.
fn derive_texts(mut claims: Vec<ClaimRecord>, alpha: u32) -> Vec<ClaimRecord> {
    let parse = |s: &str| super::input::parse_exact(s);
    let Some(cond1) = claims.iter().find(|c| c.id == "condition1").cloned() else {
        return claims;
    };
    let (Some(lo), Some(hi)) = (
        parse(&cond1.certified_sup[0]),
        parse(&cond1.certified_sup[1]),
    ) else {
        return claims;
    };
    for c in &mut claims {
        if c.id == "theorem1_relu" {
            c.certified_sup = [
                rational_text(&Rational::from(&lo / 2u32)),
                rational_text(&Rational::from(&hi / 2u32)),
            ];
        } else if let Some(n) = c.id.strip_prefix("maxpool_n").and_then(|n| n.parse().ok()) {
            let v = Rational::from(&hi / 2u32) * maxpool_factor(alpha, n);
            c.certified_sup[1] = dec_round_q(&v, Round::Up);
        }
    }
    claims
}

impl Certificate {
    /// The certificate in the `polycert-certificate/1` file format (digest left empty; see
    /// [`crate::proof::encode`]).
    pub fn to_file(&self) -> CertificateFile {
        let eps = Rational::from(&self.zeta * &pow2(-(self.alpha as i32)));
        let claims = self
            .claims
            .iter()
            .map(|c| ClaimRecord {
                id: c.kind.id(),
                statement: statement(c.kind).to_string(),
                function: function(c.kind).to_string(),
                domain: [rational_text(&c.domain.0), rational_text(&c.domain.1)],
                bound: rational_text(&c.bound),
                certified_sup: [
                    dec_round(c.sup_lo, Round::Down),
                    // Box claims: the same 10-digit upward rounding as the boxes, so the
                    // claim's upper end is exactly the largest box bound as written.
                    if c.boxes.is_empty() {
                        dec_round(c.sup_hi, Round::Up)
                    } else {
                        dec_round_digits(c.sup_hi, Round::Up, 10)
                    },
                ],
                witness: c.witness.map(dyadic_text),
                verdict: match c.verdict {
                    Verdict::Holds => "holds",
                    Verdict::Refuted { .. } => "refuted",
                    Verdict::Undecided => "undecided",
                }
                .to_string(),
                derived_from: match c.kind {
                    ClaimKind::Theorem1Relu | ClaimKind::MaxPool { .. } => {
                        Some("condition1".to_string())
                    }
                    _ => None,
                },
                boxes: c
                    .boxes
                    .iter()
                    .map(|b| {
                        [
                            dyadic_text(b.lo),
                            dyadic_text(b.hi),
                            dec_round_digits(b.upper, Round::Up, 10),
                        ]
                    })
                    .collect(),
            })
            .collect::<Vec<ClaimRecord>>();
        let claims = derive_texts(claims, self.alpha);
        CertificateFile {
            format: FORMAT.to_string(),
            alpha: self.alpha,
            zeta: rational_text(&self.zeta),
            eps: rational_text(&eps),
            arith: self.arith.name().to_string(),
            degrees: self.poly.degrees(),
            components: self
                .poly
                .components()
                .iter()
                .map(|c| c.iter().map(rational_text).collect())
                .collect(),
            claims,
            digest: String::new(),
        }
    }
}

/// Build the Table 1 polynomial for α (via [`crate::remez::table1_sign`]) and certify it with
/// Table 1's ζ.
///
/// # Errors
/// As [`crate::remez::table1_sign`] and [`certify`].
pub fn certify_table1(alpha: u32, arith: Arith) -> Result<Certificate, CertifyError> {
    let sign = crate::remez::table1_sign(alpha)?;
    let poly = RationalComposite::from_composite(sign.poly())?;
    certify(&poly, &CertifyConfig::table1(alpha)?.with_arith(arith))
}
