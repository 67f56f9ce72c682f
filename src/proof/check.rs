//! The independent checker: re-derives every box enclosure of a certificate from the exact
//! coefficients written in the file, in exact fixed-point rational interval arithmetic
//! (`fixed`), and checks coverage, bounds, witnesses, derived constants and the digest.
//!
//! Its evaluation method, written separately from `certify`: on a box [a, b] with centre m and
//! half-width ρ, each stage output is kept as c + d·h + R (h ∈ [−ρ, ρ]); an odd component q
//! maps it to q(c) + q'(c)·d·h + (q'(c)·R + ½·q''(Y)·Δ²) with Δ = d·h + R, Y = c + Δ
//! (Taylor's theorem with Lagrange remainder). A box whose stated bound is not implied at
//! once is split in halves (up to [`MAX_SPLIT_DEPTH`] levels) before it is rejected.

#![expect(
    clippy::indexing_slicing,
    reason = "indices are bounded by lengths checked just before"
)]

use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{One, Signed, Zero};

use super::fixed::{ceil_shift, floor_shift, Fi, FRAC_BITS};
use super::format::{digest_of, CertificateFile, ClaimRecord, FORMAT};
use super::parse::parse_exact;
use super::ProofError;

/// How many times a box may be halved when its stated bound is not implied at once.
pub const MAX_SPLIT_DEPTH: u32 = 8;

/// The outcome of checking one claim.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimCheck {
    /// Claim id.
    pub id: String,
    /// The verdict the file states (and the checker confirmed).
    pub verdict: String,
    /// Number of boxes checked.
    pub boxes: usize,
    /// Certified supremum `[lo, hi]` as written.
    pub certified_sup: [String; 2],
    /// The bound as written.
    pub bound: String,
}

/// The outcome of checking a whole file that was accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckReport {
    /// The file.
    pub file: String,
    /// α.
    pub alpha: u32,
    /// Per-claim results.
    pub claims: Vec<ClaimCheck>,
}

/// One odd component q, prepared for exact-point Taylor shifts in units of 2^−K.
struct Poly {
    /// floor(c_j·2^K) for j = 0 … d (even entries 0).
    coeffs: Vec<BigInt>,
    /// E_k: after a shift at any point |y| ≤ 4, |b_k − a_k(y)| ≤ E_k units.
    err: Vec<BigInt>,
}

/// Centres must satisfy |y| ≤ Y_MAX for the precomputed error bounds.
const Y_MAX: i64 = 4;

impl Poly {
    fn new(exact: &[BigRational]) -> Self {
        let scale = BigRational::from_integer(BigInt::one() << FRAC_BITS);
        let mut coeffs = Vec::with_capacity(2 * exact.len());
        for q in exact {
            coeffs.push(BigInt::zero());
            coeffs.push((q * &scale).floor().to_integer());
        }
        // Error recursion mirroring the shift: every coefficient starts with < 1 unit of
        // rounding error; each step b_j ← b_j + floor(y·b_{j+1}) adds |y|·err_{j+1} + 1.
        let n = coeffs.len();
        let mut err: Vec<BigInt> = vec![BigInt::one(); n];
        for i in 0..n.saturating_sub(1) {
            for j in (i..n - 1).rev() {
                let add = &err[j + 1] * Y_MAX + 1;
                err[j] += add;
            }
        }
        Self { coeffs, err }
    }

    /// Taylor coefficients b_k ≈ a_k(y) (units 2^−K) of q at the exact point y·2^−K.
    fn shift(&self, y: &BigInt) -> Option<Vec<BigInt>> {
        if y.abs() > (BigInt::from(Y_MAX) << FRAC_BITS) {
            return None;
        }
        let mut b = self.coeffs.clone();
        let n = b.len();
        for i in 0..n.saturating_sub(1) {
            for j in (i..n - 1).rev() {
                let t = floor_shift(&(y * &b[j + 1]));
                b[j] += t;
            }
        }
        Some(b)
    }
}

/// Σ_{k≥2} m_k·δ^k in units of 2^−K, rounded up (m_k, δ ≥ 0 in units).
fn tail(m: &[BigInt], delta: &BigInt) -> BigInt {
    let mut acc = BigInt::zero();
    for mk in m.iter().skip(2).rev() {
        acc = ceil_shift(&(&acc * delta)) + mk;
    }
    ceil_shift(&(&ceil_shift(&(&acc * delta)) * delta))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Func {
    AbsPMinus1,
    XAbsPMinus1,
    AbsP,
}

/// Upper bound of f on [a, b] and an enclosure-based lower bound of f at the centre
/// (`None` when a stage centre leaves [−4, 4]).
fn enclose(
    polys: &[Poly],
    f: Func,
    a: &BigRational,
    b: &BigRational,
) -> (BigRational, BigRational) {
    let two = BigRational::from_integer(BigInt::from(2));
    let m = (a + b) / &two;
    let rho = (b - a) / &two;
    let mi = Fi::from_rational(&m);
    let h = Fi::symmetric(&Fi::from_rational(&rho));
    // Stage state: centre y (exact, units 2^−K), |c − y| ≤ e units, c + d·h + R.
    let mut y = mi.lo_raw().clone();
    let mut e = mi.hi_raw() - mi.lo_raw();
    let (mut d, mut r) = (Fi::int(1), Fi::zero());
    for q in polys {
        let Some(bk) = q.shift(&y) else {
            let inf = BigRational::from_integer(BigInt::one() << 4096u32);
            return (inf, BigRational::zero());
        };
        let ev = Fi::raw(-e.clone(), e.clone());
        let delta = ev.add(&d.mul(&h)).add(&r);
        let mags: Vec<BigInt> = bk.iter().zip(&q.err).map(|(b, er)| b.abs() + er).collect();
        let t = tail(&mags, &delta.mag_int());
        let a1 = Fi::raw(&bk[1] - &q.err[1], &bk[1] + &q.err[1]);
        d = a1.mul(&d);
        r = a1.mul(&ev.add(&r)).add(&Fi::raw(-t.clone(), t));
        e = q.err[0].clone();
        y = bk[0].clone();
    }
    let c = Fi::raw(&y - &e, &y + &e);
    let one = Fi::int(1);
    let (enc, at_m) = match f {
        Func::AbsPMinus1 => {
            let c1 = c.sub(&one);
            (c1.add(&d.mul(&h)).add(&r), c1)
        }
        Func::AbsP => (c.add(&d.mul(&h)).add(&r), c),
        Func::XAbsPMinus1 => {
            let c1 = c.sub(&one);
            let x = Fi::hull(a, b);
            let lin = mi.mul(&d).add(&c1);
            let e = mi
                .mul(&c1)
                .add(&lin.mul(&h))
                .add(&d.mul(&h.sqr()))
                .add(&x.mul(&r));
            (e, mi.mul(&c1))
        }
    };
    (enc.mag(), at_m.mig())
}

/// Is `stated` an upper bound of f on [a, b]? Splits up to `depth` more times.
fn implied(
    polys: &[Poly],
    f: Func,
    a: &BigRational,
    b: &BigRational,
    stated: &BigRational,
    depth: u32,
) -> Result<(), BigRational> {
    let (up, _) = enclose(polys, f, a, b);
    if up <= *stated {
        return Ok(());
    }
    if depth == 0 {
        return Err(up);
    }
    let m = (a + b) / BigRational::from_integer(BigInt::from(2));
    implied(polys, f, a, &m, stated, depth - 1)?;
    implied(polys, f, &m, b, stated, depth - 1)
}

fn pow2(e: i64) -> BigRational {
    let p = BigInt::one() << e.unsigned_abs();
    if e >= 0 {
        BigRational::from_integer(p)
    } else {
        BigRational::new(BigInt::one(), p)
    }
}

fn ceil_log2(n: u32) -> u32 {
    32 - n.saturating_sub(1).leading_zeros()
}

struct Ctx<'a> {
    file: &'a str,
}

impl Ctx<'_> {
    fn reject(&self, claim: &str, item: Option<usize>, reason: String) -> ProofError {
        ProofError::Rejected {
            file: self.file.to_string(),
            claim: claim.to_string(),
            item: item.map_or_else(|| "-".to_string(), |i| format!("box {i}")),
            reason,
        }
    }
    fn num(
        &self,
        claim: &str,
        item: Option<usize>,
        what: &str,
        s: &str,
    ) -> Result<BigRational, ProofError> {
        parse_exact(s).ok_or_else(|| {
            self.reject(
                claim,
                item,
                format!("{what} = {s:?} is not an exact number"),
            )
        })
    }
}

struct Parsed {
    lo: BigRational,
    hi: BigRational,
    bound: BigRational,
}

fn check_verdict(ctx: &Ctx<'_>, c: &ClaimRecord, p: &Parsed) -> Result<(), ProofError> {
    let ok = match c.verdict.as_str() {
        "holds" => p.hi <= p.bound,
        "refuted" => p.lo > p.bound,
        "undecided" => p.hi > p.bound && p.lo <= p.bound,
        other => {
            return Err(ctx.reject(
                &c.id,
                None,
                format!("verdict {other:?} is not holds, refuted or undecided"),
            ));
        }
    };
    if !ok {
        return Err(ctx.reject(
            &c.id,
            None,
            format!(
                "verdict {:?} is not implied by certified sup [{}, {}] and bound {}",
                c.verdict, c.certified_sup[0], c.certified_sup[1], c.bound
            ),
        ));
    }
    Ok(())
}

fn parse_claim(ctx: &Ctx<'_>, c: &ClaimRecord) -> Result<Parsed, ProofError> {
    let lo = ctx.num(&c.id, None, "certified_sup[0]", &c.certified_sup[0])?;
    let hi = ctx.num(&c.id, None, "certified_sup[1]", &c.certified_sup[1])?;
    let bound = ctx.num(&c.id, None, "bound", &c.bound)?;
    if lo > hi {
        return Err(ctx.reject(
            &c.id,
            None,
            format!(
                "certified sup lower end {} exceeds upper end {}",
                c.certified_sup[0], c.certified_sup[1]
            ),
        ));
    }
    Ok(Parsed { lo, hi, bound })
}

fn check_box_claim(
    ctx: &Ctx<'_>,
    polys: &[Poly],
    c: &ClaimRecord,
    f: Func,
    domain: (&BigRational, &BigRational),
    bound: &BigRational,
) -> Result<Parsed, ProofError> {
    let p = parse_claim(ctx, c)?;
    let d0 = ctx.num(&c.id, None, "domain[0]", &c.domain[0])?;
    let d1 = ctx.num(&c.id, None, "domain[1]", &c.domain[1])?;
    if (&d0, &d1) != domain {
        return Err(ctx.reject(
            &c.id,
            None,
            format!(
                "domain [{}, {}] is not the claim's domain",
                c.domain[0], c.domain[1]
            ),
        ));
    }
    if p.bound != *bound {
        return Err(ctx.reject(
            &c.id,
            None,
            format!("bound {} differs from the claim's bound", c.bound),
        ));
    }
    if c.derived_from.is_some() {
        return Err(ctx.reject(&c.id, None, "a box claim cannot be derived".into()));
    }
    let Some(first) = c.boxes.first() else {
        return Err(ctx.reject(&c.id, None, "no boxes: the domain is not covered".into()));
    };
    let first_lo = ctx.num(&c.id, Some(0), "x_lo", &first[0])?;
    if first_lo > d0 {
        return Err(ctx.reject(
            &c.id,
            Some(0),
            format!(
                "domain not covered: first box starts at {} > {}",
                first[0], c.domain[0]
            ),
        ));
    }
    let mut prev_hi: Option<BigRational> = None;
    for (i, bx) in c.boxes.iter().enumerate() {
        let a = ctx.num(&c.id, Some(i), "x_lo", &bx[0])?;
        let b = ctx.num(&c.id, Some(i), "x_hi", &bx[1])?;
        let u = ctx.num(&c.id, Some(i), "upper", &bx[2])?;
        if a >= b {
            return Err(ctx.reject(&c.id, Some(i), format!("empty box [{}, {}]", bx[0], bx[1])));
        }
        if let Some(ph) = &prev_hi {
            match a.cmp(ph) {
                std::cmp::Ordering::Greater => {
                    return Err(ctx.reject(
                        &c.id,
                        Some(i),
                        format!(
                            "gap before box: previous box ends at {ph}, this one starts at {}",
                            bx[0]
                        ),
                    ));
                }
                std::cmp::Ordering::Less => {
                    return Err(ctx.reject(
                        &c.id,
                        Some(i),
                        format!(
                            "overlap: previous box ends at {ph}, this one starts at {}",
                            bx[0]
                        ),
                    ));
                }
                std::cmp::Ordering::Equal => {}
            }
        }
        if u > p.hi {
            return Err(ctx.reject(
                &c.id,
                Some(i),
                format!(
                    "box upper bound {} exceeds the certified sup {}",
                    bx[2], c.certified_sup[1]
                ),
            ));
        }
        if let Err(got) = implied(polys, f, &a, &b, &u, MAX_SPLIT_DEPTH) {
            return Err(ctx.reject(
                &c.id,
                Some(i),
                format!(
                    "stated upper bound {} on [{}, {}] is not implied (checker's enclosure reaches {:.6e})",
                    bx[2], bx[0], bx[1], to_f64(&got)
                ),
            ));
        }
        prev_hi = Some(b);
    }
    if prev_hi.as_ref().is_some_and(|h| *h < d1) {
        return Err(ctx.reject(
            &c.id,
            Some(c.boxes.len() - 1),
            format!("domain not covered: last box ends before {}", c.domain[1]),
        ));
    }
    // The lower end must be attained at the witness.
    if p.lo > BigRational::zero() {
        let Some(w) = &c.witness else {
            return Err(ctx.reject(&c.id, None, "positive lower bound without a witness".into()));
        };
        let w = ctx.num(&c.id, None, "witness", w)?;
        let (_, at) = enclose(polys, f, &w, &w);
        if at < p.lo {
            return Err(ctx.reject(
                &c.id,
                None,
                format!(
                    "f(witness) is not at least the certified lower end {}",
                    c.certified_sup[0]
                ),
            ));
        }
    }
    check_verdict(ctx, c, &p)?;
    Ok(p)
}

fn to_f64(q: &BigRational) -> f64 {
    num_traits::ToPrimitive::to_f64(q).unwrap_or(f64::NAN)
}

/// Check one certificate already decoded from `file`.
///
/// # Errors
/// [`ProofError::Rejected`] naming the claim and box that fail; [`ProofError::Malformed`]
/// for an unknown format version.
pub fn check_certificate(file: &str, cert: &CertificateFile) -> Result<CheckReport, ProofError> {
    let ctx = Ctx { file };
    if cert.format != FORMAT {
        return Err(ProofError::Malformed {
            file: file.to_string(),
            line: 0,
            column: 0,
            message: format!("format {:?} is not {FORMAT:?}", cert.format),
        });
    }
    let digest = digest_of(cert)?;
    if digest != cert.digest {
        return Err(ctx.reject(
            "-",
            None,
            format!(
                "digest mismatch: file says {}, contents hash to {digest}",
                cert.digest
            ),
        ));
    }
    if cert.arith != "exact" {
        return Err(ctx.reject(
            "-",
            None,
            format!(
                "arith {:?}: this checker verifies exact-arithmetic certificates only",
                cert.arith
            ),
        ));
    }
    if !(1..=40).contains(&cert.alpha) {
        return Err(ctx.reject(
            "-",
            None,
            format!("alpha = {} out of range 1..=40", cert.alpha),
        ));
    }
    if cert.components.is_empty() || cert.components.len() != cert.degrees.len() {
        return Err(ctx.reject(
            "-",
            None,
            format!(
                "{} components for {} degrees",
                cert.components.len(),
                cert.degrees.len()
            ),
        ));
    }
    let mut polys = Vec::new();
    for (k, (comp, d)) in cert.components.iter().zip(&cert.degrees).enumerate() {
        if comp.is_empty() || 2 * comp.len() - 1 != *d as usize {
            return Err(ctx.reject(
                "-",
                None,
                format!(
                    "component {} has {} odd coefficients, degree {d} needs {}",
                    k + 1,
                    comp.len(),
                    d / 2 + 1
                ),
            ));
        }
        let mut exact = Vec::new();
        for (j, s) in comp.iter().enumerate() {
            exact.push(ctx.num("-", None, &format!("components[{k}][{j}]"), s)?);
        }
        polys.push(Poly::new(&exact));
    }
    let alpha = i64::from(cert.alpha);
    let zeta = ctx.num("-", None, "zeta", &cert.zeta)?;
    let eps = ctx.num("-", None, "eps", &cert.eps)?;
    if eps != &zeta * pow2(-alpha) || eps <= BigRational::zero() || eps >= BigRational::one() {
        return Err(ctx.reject(
            "-",
            None,
            format!("eps = {} is not zeta·2^-alpha in (0, 1)", cert.eps),
        ));
    }
    let ids = [
        "closeness",
        "condition1",
        "enclosure",
        "theorem1_relu",
        "maxpool_n4",
        "maxpool_n9",
    ];
    if cert.claims.len() != ids.len() || cert.claims.iter().zip(ids).any(|(c, id)| c.id != id) {
        let got: Vec<&str> = cert.claims.iter().map(|c| c.id.as_str()).collect();
        return Err(ctx.reject(
            "-",
            None,
            format!("claims {got:?}; expected exactly {ids:?}"),
        ));
    }
    let zero = BigRational::zero();
    let one = BigRational::one();
    let mut out = Vec::new();
    let mut results = Vec::new();
    for c in &cert.claims {
        let parsed = match c.id.as_str() {
            "closeness" => check_box_claim(
                &ctx,
                &polys,
                c,
                Func::AbsPMinus1,
                (&eps, &one),
                &pow2(1 - alpha),
            )?,
            "condition1" => check_box_claim(
                &ctx,
                &polys,
                c,
                Func::XAbsPMinus1,
                (&zero, &one),
                &pow2(1 - alpha),
            )?,
            "enclosure" => check_box_claim(
                &ctx,
                &polys,
                c,
                Func::AbsP,
                (&zero, &one),
                &(&one + pow2(1 - alpha)),
            )?,
            _ => {
                let cond1: &Parsed = &results[1];
                let cond1_rec = &cert.claims[1];
                let p = parse_claim(&ctx, c)?;
                if c.derived_from.as_deref() != Some("condition1") || !c.boxes.is_empty() {
                    return Err(ctx.reject(
                        &c.id,
                        None,
                        "must be derived from condition1, with no boxes".into(),
                    ));
                }
                let d0 = ctx.num(&c.id, None, "domain[0]", &c.domain[0])?;
                let d1 = ctx.num(&c.id, None, "domain[1]", &c.domain[1])?;
                if d0 != -&one || d1 != one {
                    return Err(ctx.reject(&c.id, None, "domain must be [-1, 1]".into()));
                }
                let two = BigRational::from_integer(BigInt::from(2));
                if c.id == "theorem1_relu" {
                    // r_α − ReLU = (x p(x) − |x|)/2: the supremum is exactly half of condition (1)'s.
                    if p.bound != pow2(-alpha) {
                        return Err(ctx.reject(
                            &c.id,
                            None,
                            format!("bound {} is not 2^-alpha", c.bound),
                        ));
                    }
                    if p.hi < &cond1.hi / &two || p.lo > &cond1.lo / &two {
                        return Err(ctx.reject(
                            &c.id,
                            None,
                            format!(
                                "certified sup [{}, {}] is not half of condition1's [{}, {}]",
                                c.certified_sup[0],
                                c.certified_sup[1],
                                cond1_rec.certified_sup[0],
                                cond1_rec.certified_sup[1]
                            ),
                        ));
                    }
                    if p.lo > zero {
                        let w = c.witness.as_deref().unwrap_or("");
                        if Some(w) != cond1_rec.witness.as_deref() {
                            return Err(ctx.reject(
                                &c.id,
                                None,
                                "witness differs from condition1's".into(),
                            ));
                        }
                    }
                } else {
                    let n: u32 = c.id.trim_start_matches("maxpool_n").parse().unwrap_or(0);
                    let l = BigRational::from_integer(BigInt::from(ceil_log2(n)));
                    // B' per unit B = 1/(1/2 − (L − 1)·2^−α); bound B'·L·2^−α; value B'·L·s.
                    let denom = BigRational::new(BigInt::one(), BigInt::from(2))
                        - (&l - &one) * pow2(-alpha);
                    let factor = &l / &denom;
                    if p.bound != &factor * pow2(-alpha) {
                        return Err(ctx.reject(
                            &c.id,
                            None,
                            format!("bound {} is not B'·ceil(log2 n)·2^-alpha", c.bound),
                        ));
                    }
                    if p.hi < &factor * (&cond1.hi / &two) {
                        return Err(ctx.reject(
                            &c.id,
                            None,
                            format!(
                                "constant {} is below B'·ceil(log2 n)·s from condition1",
                                c.certified_sup[1]
                            ),
                        ));
                    }
                    if p.lo != zero {
                        return Err(ctx.reject(
                            &c.id,
                            None,
                            "no lower bound is derived for max-pooling; certified_sup[0] must be 0"
                                .into(),
                        ));
                    }
                    if c.verdict == "holds" && cond1_rec.verdict != "holds" {
                        return Err(ctx.reject(
                            &c.id,
                            None,
                            "holds although condition1 (Theorem 2's hypothesis) does not".into(),
                        ));
                    }
                }
                check_verdict(&ctx, c, &p)?;
                p
            }
        };
        out.push(ClaimCheck {
            id: c.id.clone(),
            verdict: c.verdict.clone(),
            boxes: c.boxes.len(),
            certified_sup: c.certified_sup.clone(),
            bound: c.bound.clone(),
        });
        results.push(parsed);
    }
    Ok(CheckReport {
        file: file.to_string(),
        alpha: cert.alpha,
        claims: out,
    })
}

/// Read, decode and check one certificate file.
///
/// # Errors
/// [`ProofError::Io`] or [`ProofError::Malformed`] for unreadable or malformed files (exit 2),
/// [`ProofError::Rejected`] when a check fails (exit 1).
pub fn check_file(path: &std::path::Path) -> Result<CheckReport, ProofError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ProofError::Io {
        path: name.clone(),
        message: e.to_string(),
    })?;
    let cert = super::format::decode(&name, &text)?;
    check_certificate(&name, &cert)
}
