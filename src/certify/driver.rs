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
use crate::proof::{CertificateFile, ClaimRecord, SourceRecord, FORMAT};

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
    let bad = |i: usize, c: &[Rational], step: usize| {
        let (j, v) = c
            .iter()
            .enumerate()
            .find(|(_, q)| super::taylor::enclose(q).is_none())
            .map_or((0, String::new()), |(j, q)| {
                (step * j + step - 1, rational_text(q))
            });
        CertifyError::BadCoefficient {
            component: i + 1,
            power: j,
            value: v,
        }
    };
    if !poly.is_odd() {
        return poly
            .power_coeffs()
            .iter()
            .enumerate()
            .map(|(i, c)| ShiftPoly::new_power(c).ok_or_else(|| bad(i, c, 1)))
            .collect();
    }
    poly.components()
        .iter()
        .enumerate()
        .map(|(i, c)| ShiftPoly::new(c).ok_or_else(|| bad(i, c, 2)))
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
    other: &[ShiftPoly],
    kind: ClaimKind,
    func: Func,
    domain: (Rational, Rational),
    bound: Rational,
    cfg: &CertifyConfig,
) -> Result<Claim, CertifyError> {
    let lo = f64_down(&domain.0);
    let hi = f64_up(&domain.1);
    let floor = if func == Func::Diff {
        EVEN_PART_FLOOR
    } else {
        0.0
    };
    // The even-part difference is bounded to 1% (its stage-wise bound takes absolute values
    // of terms that may cancel; it is only added to other suprema).
    let rel_tol = if func == Func::Diff {
        cfg.rel_tol.max(1e-2)
    } else {
        cfg.rel_tol
    };
    let limits = Limits {
        rel_tol,
        max_boxes: cfg.max_boxes,
        floor,
    };
    let bound_f = f64_down(&bound);
    let mut s = certify_sup(polys, other, func, lo, hi, bound_f, limits).map_err(|p| {
        CertifyError::BoxLimit {
            claim: kind.id(),
            boxes: p.boxes.len(),
            limit: cfg.max_boxes,
            lo: p.lower,
            hi: p.upper,
            bound: bound_f,
        }
    })?;
    if floor > 0.0 {
        // State every box bound as at least the floor (still an upper bound), so that the
        // independent checker, whose fixed-point centres carry errors near 2^−57, can
        // re-derive it; a lower end below the floor is not claimed.
        for b in &mut s.boxes {
            b.upper = b.upper.max(floor);
        }
        s.upper = s.upper.max(floor);
        if s.lower < floor {
            s.lower = 0.0;
        }
    }
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

/// The smallest upper bound stated for the even-part difference |p_shipped − p| (2^−40), see
/// [`ClaimKind::EvenPart`].
const EVEN_PART_FLOOR: f64 = 9.094_947_017_729_282e-13;

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

/// Prove every claim about `poly` (see [`ClaimKind`]). An odd p is proved on [0, 1] and
/// extended by symmetry; a p that is not odd (as shipped, even terms included) is proved on
/// both sides separately (the `_neg` claims), and the derived claims use the larger side.
///
/// # Errors
/// [`CertifyError::BadCoefficient`] for coefficients that cannot be enclosed,
/// [`CertifyError::BoxLimit`] when a claim stays undecided within the box limit,
/// [`CertifyError::NotOdd`] for floating-point claims about a p that is not odd.
pub fn certify(poly: &RationalComposite, cfg: &CertifyConfig) -> Result<Certificate, CertifyError> {
    if !poly.is_odd() && cfg.arith != Arith::Exact {
        return Err(CertifyError::NotOdd {
            what: format!("--arith {}", cfg.arith.name()),
        });
    }
    let polys = ipolys(poly)?;
    let odd = poly.is_odd();
    let alpha = cfg.alpha as i32;
    let one = Rational::from(1);
    let m_one = Rational::from(-1);
    let zero = Rational::new();
    let eps = cfg.eps();
    let tol = pow2(1 - alpha);
    let enc_bound = Rational::from(&one + &tol);
    let box_claim =
        |kind, func, domain, bound| sup_claim(&polys, &[], kind, func, domain, bound, cfg);
    let mut claims = vec![box_claim(
        ClaimKind::Closeness,
        Func::AbsPMinus1,
        (eps.clone(), one.clone()),
        tol.clone(),
    )?];
    if !odd {
        claims.push(box_claim(
            ClaimKind::ClosenessNeg,
            Func::AbsPPlus1,
            (m_one.clone(), Rational::from(-&eps)),
            tol.clone(),
        )?);
    }
    let mut conds = vec![box_claim(
        ClaimKind::Condition1,
        Func::XAbsPMinus1,
        (zero.clone(), one.clone()),
        tol.clone(),
    )?];
    if !odd {
        conds.push(box_claim(
            ClaimKind::Condition1Neg,
            Func::XAbsPPlus1,
            (m_one.clone(), zero.clone()),
            tol.clone(),
        )?);
    }
    let mut encl = vec![box_claim(
        ClaimKind::Enclosure,
        Func::AbsP,
        (zero.clone(), one.clone()),
        enc_bound.clone(),
    )?];
    if !odd {
        encl.push(box_claim(
            ClaimKind::EnclosureNeg,
            Func::AbsP,
            (m_one.clone(), zero.clone()),
            enc_bound,
        )?);
    }
    // Theorem 1: r_α − ReLU = (x·p(x) − |x|)/2 exactly, so halve condition (1)'s supremum
    // (halving is exact in binary floating point); for a p that is not odd, the larger of
    // the two sides.
    let (mut half_lo, mut half_hi, mut witness) = (0.0f64, 0.0f64, None);
    for c in &conds {
        half_hi = half_hi.max(c.sup_hi / 2.0);
        if c.sup_lo / 2.0 > half_lo || witness.is_none() {
            half_lo = half_lo.max(c.sup_lo / 2.0);
            witness = c.witness;
        }
    }
    let cond_holds = conds.iter().all(|c| c.verdict == Verdict::Holds);
    let t1_bound = pow2(-alpha);
    let mut derived = vec![Claim {
        kind: ClaimKind::Theorem1Relu,
        verdict: verdict(half_lo, half_hi, witness.unwrap_or(0.0), &t1_bound),
        bound: t1_bound,
        domain: (m_one.clone(), one.clone()),
        sup_lo: half_lo,
        sup_hi: half_hi,
        witness,
        boxes: Vec::new(),
    }];
    // Theorem 2 + Eq. (7): with s = sup|m_α − max| = half of condition (1)'s supremum and
    // s ≤ 2^−α, |M̃_{α,n} − max| ≤ B'·⌈log₂ n⌉·s per unit B.
    for n in [4u32, 9] {
        let factor = maxpool_factor(cfg.alpha, n);
        let bound = Rational::from(&factor * &pow2(-alpha));
        let hi = Rational::from_f64(half_hi).map(|s| f64_up(&(s * &factor)));
        derived.push(Claim {
            kind: ClaimKind::MaxPool { n },
            verdict: match (cond_holds, hi) {
                (true, Some(h)) if Rational::from_f64(h).is_some_and(|h| h <= bound) => {
                    Verdict::Holds
                }
                _ => Verdict::Undecided,
            },
            bound,
            domain: (m_one.clone(), one.clone()),
            sup_lo: 0.0,
            sup_hi: hi.unwrap_or(f64::INFINITY),
            witness: None,
            boxes: Vec::new(),
        });
    }
    claims.extend(conds);
    claims.extend(encl);
    claims.extend(derived);
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
        sources: Vec::new(),
        shipped: None,
    })
}

/// Certify the odd part p of a shipped polynomial p_shipped (every component's even terms
/// dropped), and add what dropping them costs: the certified sup of |p_shipped − p| on
/// [−1, 1] ([`ClaimKind::EvenPart`], stated as at least 2^−40) and the shipped polynomial's
/// closeness and Theorem 1 errors derived from it ([`ClaimKind::ClosenessShipped`],
/// [`ClaimKind::ReluShipped`]). An odd p_shipped gets the plain certificate.
///
/// # Errors
/// As [`certify`].
pub fn certify_odd_part(
    shipped: &RationalComposite,
    cfg: &CertifyConfig,
) -> Result<Certificate, CertifyError> {
    let odd = shipped.odd_part();
    let mut cert = certify(&odd, cfg)?;
    if shipped.is_odd() {
        return Ok(cert);
    }
    let p = ipolys(&odd)?;
    let q = ipolys(shipped)?;
    let alpha = cfg.alpha as i32;
    let even = sup_claim(
        &p,
        &q,
        ClaimKind::EvenPart,
        Func::Diff,
        (Rational::from(-1), Rational::from(1)),
        pow2(1 - alpha),
        cfg,
    )?;
    let mut derived = Vec::new();
    for (kind, base, share) in [
        (ClaimKind::ClosenessShipped, ClaimKind::Closeness, 1.0),
        (ClaimKind::ReluShipped, ClaimKind::Theorem1Relu, 0.5),
    ] {
        let Some(b) = cert.claim(base) else {
            continue;
        };
        // |f_shipped| ≤ |f| + share·|p_shipped − p| and ≥ |f| − share·|p_shipped − p|.
        let e = Rational::from_f64(even.sup_hi)
            .map(|e| e * Rational::from_f64(share).unwrap_or_default());
        let (hi, lo) = match (
            e,
            Rational::from_f64(b.sup_hi),
            Rational::from_f64(b.sup_lo),
        ) {
            (Some(e), Some(h), Some(l)) => {
                let lo = Rational::from(&l - &e);
                (f64_up(&(h + &e)), if lo > 0 { f64_down(&lo) } else { 0.0 })
            }
            _ => (f64::INFINITY, 0.0),
        };
        derived.push(Claim {
            kind,
            verdict: verdict(lo, hi, b.witness.unwrap_or(0.0), &b.bound),
            bound: b.bound.clone(),
            domain: b.domain.clone(),
            sup_lo: lo,
            sup_hi: hi,
            witness: if lo > 0.0 { b.witness } else { None },
            boxes: Vec::new(),
        });
    }
    let at = cert
        .claims
        .iter()
        .position(|c| matches!(c.kind, ClaimKind::FloatRelu { .. }))
        .unwrap_or(cert.claims.len());
    let tail: Vec<Claim> = cert.claims.split_off(at);
    cert.claims.push(even);
    cert.claims.extend(derived);
    cert.claims.extend(tail);
    cert.shipped = Some(shipped.clone());
    Ok(cert)
}

fn statement(kind: ClaimKind, odd: bool) -> &'static str {
    match (kind, odd) {
        (ClaimKind::Closeness, true) => "(alpha-1, zeta*2^-alpha)-closeness (paper §2.2): |p(x) - sgn(x)| <= 2^-(alpha-1) on [-1,-eps] U [eps,1]; proved on [eps,1], the rest by oddness of p",
        (ClaimKind::Closeness, false) => "(alpha-1, zeta*2^-alpha)-closeness (paper §2.2) on the positive side: |p(x) - 1| <= 2^-(alpha-1) on [eps,1] (p is not odd: [-1,-eps] is claim closeness_neg)",
        (ClaimKind::ClosenessNeg, _) => "(alpha-1, zeta*2^-alpha)-closeness (paper §2.2) on the negative side: |p(x) + 1| <= 2^-(alpha-1) on [-1,-eps] (p is not odd, so proved separately)",
        (ClaimKind::Condition1, true) => "condition (1) for m_alpha (paper Eq. 1, 2): |x p(x) - |x|| <= 2^(1-alpha) on [-1,1], i.e. |m_alpha(a,b) - max(a,b)| <= 2^-alpha on [0,1]^2; proved on [0,1], the rest by evenness",
        (ClaimKind::Condition1, false) => "condition (1) for m_alpha (paper Eq. 1, 2) on [0,1]: |x p(x) - x| <= 2^(1-alpha) (p is not odd: [-1,0] is claim condition1_neg)",
        (ClaimKind::Condition1Neg, _) => "condition (1) for m_alpha (paper Eq. 1, 2) on [-1,0]: |x p(x) + x| = |x p(x) - |x|| <= 2^(1-alpha) (p is not odd, so proved separately)",
        (ClaimKind::Enclosure, true) => "enclosure of p on [-1,1]: |p(x)| <= 1 + 2^(1-alpha); proved on [0,1], the rest by oddness",
        (ClaimKind::Enclosure, false) => "enclosure of p on [0,1]: |p(x)| <= 1 + 2^(1-alpha) (p is not odd: [-1,0] is claim enclosure_neg)",
        (ClaimKind::EnclosureNeg, _) => "enclosure of p on [-1,0]: |p(x)| <= 1 + 2^(1-alpha) (p is not odd, so proved separately)",
        (ClaimKind::Theorem1Relu, true) => "Theorem 1 (Eq. 5): |r_alpha(x) - ReLU(x)| <= 2^-alpha on [-1,1], since r_alpha - ReLU = (x p(x) - |x|)/2 (derived from condition1, sup halved exactly); with r~(x) = B r(B^-1 x): B times this on [-B,B]",
        (ClaimKind::Theorem1Relu, false) => "Theorem 1 (Eq. 5): |r_alpha(x) - ReLU(x)| <= 2^-alpha on [-1,1], r_alpha(x) = (x + x p(x))/2, since r_alpha - ReLU = (x p(x) - |x|)/2 (derived from the larger of condition1 and condition1_neg, sup halved exactly); with r~(x) = B r(B^-1 x): B times this on [-B,B]",
        (ClaimKind::MaxPool { .. }, true) => "Theorem 2 with Eq. (7): |M~_{alpha,n}(x) - max(x)| <= B' ceil(log2 n) s on [-B,B]^n with s = sup|m_alpha - max| <= 2^-alpha and B' = B/(0.5 - (ceil(log2 n)-1) 2^-alpha); stated per unit B (derived from condition1)",
        (ClaimKind::MaxPool { .. }, false) => "Theorem 2 with Eq. (7): |M~_{alpha,n}(x) - max(x)| <= B' ceil(log2 n) s on [-B,B]^n with s = sup|m_alpha - max| <= 2^-alpha and B' = B/(0.5 - (ceil(log2 n)-1) 2^-alpha); stated per unit B (derived from the larger of condition1 and condition1_neg)",
        (ClaimKind::EvenPart, _) => "effect of the dropped even terms: |p_shipped(x) - p(x)| on [-1,1], p the odd part of every component of the shipped polynomial p_shipped (odd_part_of); bound 2^(1-alpha); box bounds stated as at least 2^-40",
        (ClaimKind::ClosenessShipped, _) => "closeness of the shipped polynomial: |p_shipped(x) - sgn(x)| <= 2^-(alpha-1) on [-1,-eps] U [eps,1], derived: sup <= closeness sup + even_part sup, lower end closeness lower end - even_part sup",
        (ClaimKind::ReluShipped, _) => "Theorem 1 for the shipped polynomial: |(x + x p_shipped(x))/2 - ReLU(x)| <= 2^-alpha on [-1,1], derived: sup <= theorem1_relu sup + even_part sup / 2, lower end theorem1_relu lower end - even_part sup / 2",
        (ClaimKind::FloatRelu { .. }, _) => "Theorem 1 in floating point: |fl(r_alpha)(x) - ReLU(x)| <= 2^-alpha for every float x in [-1,1], rounding error of the crate's evaluation scheme included; proved on [0,1], the rest by the sign symmetry of round-to-nearest",
    }
}

fn function(kind: ClaimKind) -> &'static str {
    match kind {
        ClaimKind::Closeness => "abs(p(x) - 1)",
        ClaimKind::ClosenessNeg => "abs(p(x) + 1)",
        ClaimKind::Condition1 => "abs(x p(x) - x)",
        ClaimKind::Condition1Neg => "abs(x p(x) + x)",
        ClaimKind::Enclosure | ClaimKind::EnclosureNeg => "abs(p(x))",
        ClaimKind::Theorem1Relu => "abs(r_alpha(x) - ReLU(x))",
        ClaimKind::MaxPool { .. } => "abs(M~_{alpha,n}(x) - max(x)) / B",
        ClaimKind::EvenPart => "abs(p_shipped(x) - p(x))",
        ClaimKind::ClosenessShipped => "abs(p_shipped(x) - sgn(x))",
        ClaimKind::ReluShipped => "abs((x + x p_shipped(x))/2 - ReLU(x))",
        ClaimKind::FloatRelu { .. } => "abs(fl(r_alpha)(x) - ReLU(x))",
    }
}

/// Rewrite the derived claims' certified sups from the *written* decimal texts of the claims
/// they come from, so the exact relations the checker verifies hold for the texts themselves.
fn derive_texts(mut claims: Vec<ClaimRecord>, alpha: u32) -> Vec<ClaimRecord> {
    let parse = |s: &str| super::input::parse_exact(s);
    let sup_of = |claims: &[ClaimRecord], id: &str| {
        let c = claims.iter().find(|c| c.id == id)?;
        Some((parse(&c.certified_sup[0])?, parse(&c.certified_sup[1])?))
    };
    let Some((mut lo, mut hi)) = sup_of(&claims, "condition1") else {
        return claims;
    };
    if let Some((l, h)) = sup_of(&claims, "condition1_neg") {
        lo = lo.max(l);
        hi = hi.max(h);
    }
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
    let Some((_, even)) = sup_of(&claims, "even_part") else {
        return claims;
    };
    for (id, base, share) in [
        ("closeness_shipped", "closeness", Rational::from(1)),
        (
            "theorem1_relu_shipped",
            "theorem1_relu",
            Rational::from((1, 2)),
        ),
    ] {
        let Some((blo, bhi)) = sup_of(&claims, base) else {
            continue;
        };
        let Some(c) = claims.iter_mut().find(|c| c.id == id) else {
            continue;
        };
        let e = Rational::from(&even * &share);
        let lo = Rational::from(&blo - &e).max(Rational::new());
        let hi = bhi + &e;
        let bound = parse(&c.bound).unwrap_or_default();
        c.verdict = if hi <= bound {
            "holds"
        } else if lo > bound {
            "refuted"
        } else {
            "undecided"
        }
        .to_string();
        if lo == 0 {
            c.witness = None;
        }
        c.certified_sup = [rational_text(&lo), rational_text(&hi)];
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
                statement: statement(c.kind, self.poly.is_odd()).to_string(),
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
                        Some(if self.poly.is_odd() {
                            "condition1".to_string()
                        } else {
                            "condition1,condition1_neg".to_string()
                        })
                    }
                    ClaimKind::ClosenessShipped => Some("closeness,even_part".to_string()),
                    ClaimKind::ReluShipped => Some("theorem1_relu,even_part".to_string()),
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
            components: if self.poly.is_odd() {
                texts(self.poly.components())
            } else {
                Vec::new()
            },
            coefficients: (!self.poly.is_odd()).then(|| texts(&self.poly.power_coeffs())),
            odd_part_of: self.shipped.as_ref().map(|s| texts(&s.power_coeffs())),
            sources: self
                .sources
                .iter()
                .map(|s| SourceRecord {
                    file: s.file.clone(),
                    sha256: s.sha256.clone(),
                    form: s.form.clone(),
                })
                .collect(),
            claims,
            digest: String::new(),
        }
    }
}

fn texts(coeffs: &[Vec<Rational>]) -> Vec<Vec<String>> {
    coeffs
        .iter()
        .map(|c| c.iter().map(rational_text).collect())
        .collect()
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
