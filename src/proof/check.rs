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

/// One component q, prepared for exact-point Taylor shifts in units of 2^−K.
struct Poly {
    /// floor(c_j·2^K) for j = 0 … d (even entries 0 for an odd component).
    coeffs: Vec<BigInt>,
    /// E_k: after a shift at any point |y| ≤ 4, |b_k − a_k(y)| ≤ E_k units.
    err: Vec<BigInt>,
}

/// Centres must satisfy |y| ≤ Y_MAX for the precomputed error bounds.
const Y_MAX: i64 = 4;

impl Poly {
    /// From the odd coefficients c_1, c_3, … of an odd component.
    fn new(exact: &[BigRational]) -> Self {
        let mut all = Vec::with_capacity(2 * exact.len());
        for q in exact {
            all.push(BigRational::zero());
            all.push(q.clone());
        }
        Self::new_full(&all)
    }

    /// From all coefficients c_0, c_1, …, c_d (a component that need not be odd).
    fn new_full(exact: &[BigRational]) -> Self {
        let scale = BigRational::from_integer(BigInt::one() << FRAC_BITS);
        let coeffs: Vec<BigInt> = exact
            .iter()
            .map(|q| (q * &scale).floor().to_integer())
            .collect();
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
    /// |p − 1|.
    AbsPMinus1,
    /// |p + 1|.
    AbsPPlus1,
    /// |x·(p − 1)|.
    XAbsPMinus1,
    /// |x·(p + 1)|.
    XAbsPPlus1,
    /// |p|.
    AbsP,
    /// |q − p| for the second composite q.
    Diff,
}

/// Per stage of [`chain`]: the input centre y_{i−1} (units), the radius Δ of the input
/// around it on the box (units), and |Taylor coefficient| + error bounds (units).
type StageData = (BigInt, BigInt, Vec<BigInt>);

/// The composite on a box: c + d·h + R with c ∈ [y − e, y + e] (units 2^−K), or `None` when
/// a stage centre leaves [−4, 4]; with `info`, the per-stage data.
fn chain(
    polys: &[Poly],
    mi: &Fi,
    h: &Fi,
    mut info: Option<&mut Vec<StageData>>,
) -> Option<(Fi, Fi, Fi)> {
    // Stage state: centre y (exact, units 2^−K), |c − y| ≤ e units, c + d·h + R.
    let mut y = mi.lo_raw().clone();
    let mut e = mi.hi_raw() - mi.lo_raw();
    let (mut d, mut r) = (Fi::int(1), Fi::zero());
    for q in polys {
        let bk = q.shift(&y)?;
        let ev = Fi::raw(-e.clone(), e.clone());
        let delta = ev.add(&d.mul(h)).add(&r);
        let mags: Vec<BigInt> = bk.iter().zip(&q.err).map(|(b, er)| b.abs() + er).collect();
        let t = tail(&mags, &delta.mag_int());
        let a1 = Fi::raw(&bk[1] - &q.err[1], &bk[1] + &q.err[1]);
        if let Some(v) = info.as_deref_mut() {
            v.push((y.clone(), delta.mag_int(), mags));
        }
        d = a1.mul(&d);
        r = a1.mul(&ev.add(&r)).add(&Fi::raw(-t.clone(), t));
        e = q.err[0].clone();
        y = bk[0].clone();
    }
    Some((Fi::raw(&y - &e, &y + &e), d, r))
}

/// Upper bound (units) of |q(x) − p(x)| on the box from p's per-stage data, q_i = p_i + e_i:
/// δ_i = L_i·δ_{i−1} + sup|e_i|, L_i = Σ_k k·|A_k|·R^(k−1) a Lipschitz bound of p_i on
/// [y − R, y + R], R = Δ + δ_{i−1}, sup|e_i| ≤ Σ_{j even} (|c_j| + 1 unit)·(|y| + R)^j.
fn diff_bound(stages: &[StageData], shipped: &[Poly]) -> BigInt {
    let mut delta = BigInt::zero();
    for ((y, radius, mags), q) in stages.iter().zip(shipped) {
        let r = radius + &delta;
        let mut l = BigInt::zero();
        for (k, mk) in mags.iter().enumerate().skip(1).rev() {
            l = ceil_shift(&(&l * &r)) + mk * k;
        }
        let z = y.abs() + &r;
        let mut ev = BigInt::zero();
        for (j, c) in q.coeffs.iter().enumerate().rev() {
            ev = ceil_shift(&(&ev * &z));
            if j % 2 == 0 {
                ev += c.abs() + 1;
            }
        }
        delta = ceil_shift(&(&l * &delta)) + ev;
    }
    delta
}

/// Upper bound of f on [a, b] and an enclosure-based lower bound of f at the centre (a huge
/// upper bound when a stage centre leaves [−4, 4]); `other` is [`Func::Diff`]'s second
/// composite.
fn enclose(
    polys: &[Poly],
    other: &[Poly],
    f: Func,
    a: &BigRational,
    b: &BigRational,
) -> (BigRational, BigRational) {
    let two = BigRational::from_integer(BigInt::from(2));
    let m = (a + b) / &two;
    let rho = (b - a) / &two;
    let mi = Fi::from_rational(&m);
    let h = Fi::symmetric(&Fi::from_rational(&rho));
    let inf = || {
        (
            BigRational::from_integer(BigInt::one() << 4096u32),
            BigRational::zero(),
        )
    };
    let mut info = Vec::new();
    let want_info = if f == Func::Diff {
        Some(&mut info)
    } else {
        None
    };
    let Some((c, d, r)) = chain(polys, &mi, &h, want_info) else {
        return inf();
    };
    let one = Fi::int(1);
    let x_times = |c1: Fi| {
        let x = Fi::hull(a, b);
        let lin = mi.mul(&d).add(&c1);
        let e = mi
            .mul(&c1)
            .add(&lin.mul(&h))
            .add(&d.mul(&h.sqr()))
            .add(&x.mul(&r));
        (e, mi.mul(&c1))
    };
    let (enc, at_m) = match f {
        Func::AbsPMinus1 => {
            let c1 = c.sub(&one);
            (c1.add(&d.mul(&h)).add(&r), c1)
        }
        Func::AbsPPlus1 => {
            let c1 = c.add(&one);
            (c1.add(&d.mul(&h)).add(&r), c1)
        }
        Func::AbsP => (c.add(&d.mul(&h)).add(&r), c),
        Func::XAbsPMinus1 => x_times(c.sub(&one)),
        Func::XAbsPPlus1 => x_times(c.add(&one)),
        Func::Diff => {
            // Upper bound by stage-wise propagation; the lower bound (used at point boxes,
            // the witness) from both chains, whose remainders there are those at h = 0.
            let Some((cq, _, rq)) = chain(other, &mi, &h, None) else {
                return inf();
            };
            let upper = diff_bound(&info, other);
            let lower = cq.sub(&c).add(&rq.sub(&r)).mig();
            return (BigRational::new(upper, BigInt::one() << FRAC_BITS), lower);
        }
    };
    (enc.mag(), at_m.mig())
}

/// Is `stated` an upper bound of f on [a, b]? Splits up to `depth` more times.
fn implied(
    polys: &[Poly],
    other: &[Poly],
    f: Func,
    a: &BigRational,
    b: &BigRational,
    stated: &BigRational,
    depth: u32,
) -> Result<(), BigRational> {
    let (up, _) = enclose(polys, other, f, a, b);
    if up <= *stated {
        return Ok(());
    }
    if depth == 0 {
        return Err(up);
    }
    let m = (a + b) / BigRational::from_integer(BigInt::from(2));
    implied(polys, other, f, a, &m, stated, depth - 1)?;
    implied(polys, other, f, &m, b, stated, depth - 1)
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

/// Polynomials from all their coefficients c_0 … c_d per component, checked against the
/// degrees.
fn full_polys(
    ctx: &Ctx<'_>,
    what: &str,
    coeffs: &[Vec<String>],
    degrees: &[u32],
) -> Result<Vec<Poly>, ProofError> {
    if coeffs.is_empty() || coeffs.len() != degrees.len() {
        return Err(ctx.reject(
            "-",
            None,
            format!("{} {what} for {} degrees", coeffs.len(), degrees.len()),
        ));
    }
    let mut polys = Vec::new();
    for (k, (comp, d)) in coeffs.iter().zip(degrees).enumerate() {
        if comp.len() < 2 || comp.len() != *d as usize + 1 {
            return Err(ctx.reject(
                "-",
                None,
                format!(
                    "{what}[{k}] has {} coefficients, degree {d} needs {}",
                    comp.len(),
                    u64::from(*d) + 1
                ),
            ));
        }
        let exact = comp
            .iter()
            .enumerate()
            .map(|(j, s)| ctx.num("-", None, &format!("{what}[{k}][{j}]"), s))
            .collect::<Result<Vec<_>, _>>()?;
        polys.push(Poly::new_full(&exact));
    }
    Ok(polys)
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
    other: &[Poly],
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
        if let Err(got) = implied(polys, other, f, &a, &b, &u, MAX_SPLIT_DEPTH) {
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
        let (_, at) = enclose(polys, other, f, &w, &w);
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
    let ctx_num = |what: String, v: &str| ctx.num("-", None, &what, v);
    let general = cert.coefficients.is_some();
    if general && cert.odd_part_of.is_some() {
        return Err(ctx.reject(
            "-",
            None,
            "coefficients and odd_part_of exclude each other".into(),
        ));
    }
    let mut polys = Vec::new();
    if let Some(coeffs) = &cert.coefficients {
        if !cert.components.is_empty() {
            return Err(ctx.reject(
                "-",
                None,
                "components must be empty when coefficients are given".into(),
            ));
        }
        polys = full_polys(&ctx, "coefficients", coeffs, &cert.degrees)?;
    } else {
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
                exact.push(ctx_num(format!("components[{k}][{j}]"), s)?);
            }
            polys.push(Poly::new(&exact));
        }
    }
    // With --odd-part: the shipped polynomial, whose odd part must be `components` exactly.
    let mut shipped = Vec::new();
    if let Some(full) = &cert.odd_part_of {
        if full.len() != cert.components.len() {
            return Err(ctx.reject(
                "-",
                None,
                format!(
                    "odd_part_of has {} components, components {}",
                    full.len(),
                    cert.components.len()
                ),
            ));
        }
        for (k, (f, odd)) in full.iter().zip(&cert.components).enumerate() {
            for (j, s) in f.iter().enumerate() {
                let q = ctx_num(format!("odd_part_of[{k}][{j}]"), s)?;
                let want = if j % 2 == 1 {
                    match odd.get(j / 2) {
                        Some(o) => ctx_num(format!("components[{k}][{}]", j / 2), o)?,
                        None => BigRational::zero(),
                    }
                } else {
                    q.clone()
                };
                if q != want {
                    return Err(ctx.reject(
                        "-",
                        None,
                        format!("components[{k}] is not the odd part of odd_part_of[{k}] (x^{j})"),
                    ));
                }
            }
            if f.len() / 2 != odd.len() {
                return Err(ctx.reject(
                    "-",
                    None,
                    format!("components[{k}] does not have the odd terms of odd_part_of[{k}]"),
                ));
            }
            let exact = f
                .iter()
                .enumerate()
                .map(|(j, s)| ctx_num(format!("odd_part_of[{k}][{j}]"), s))
                .collect::<Result<Vec<_>, _>>()?;
            shipped.push(Poly::new_full(&exact));
        }
    }
    for src in &cert.sources {
        if src.sha256.len() != 64 || !src.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ctx.reject(
                "-",
                None,
                format!(
                    "source {}: sha256 {:?} is not 64 hex digits",
                    src.file, src.sha256
                ),
            ));
        }
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
    let mut ids = vec!["closeness"];
    if general {
        ids.push("closeness_neg");
    }
    ids.push("condition1");
    if general {
        ids.push("condition1_neg");
    }
    ids.push("enclosure");
    if general {
        ids.push("enclosure_neg");
    }
    ids.extend(["theorem1_relu", "maxpool_n4", "maxpool_n9"]);
    if !shipped.is_empty() {
        ids.extend(["even_part", "closeness_shipped", "theorem1_relu_shipped"]);
    }
    if cert.claims.len() != ids.len() || cert.claims.iter().zip(&ids).any(|(c, id)| c.id != *id) {
        let got: Vec<&str> = cert.claims.iter().map(|c| c.id.as_str()).collect();
        return Err(ctx.reject(
            "-",
            None,
            format!("claims {got:?}; expected exactly {ids:?}"),
        ));
    }
    let zero = BigRational::zero();
    let one = BigRational::one();
    let m_one = -BigRational::one();
    let tol = pow2(1 - alpha);
    let enc_bound = &one + &tol;
    let two = BigRational::from_integer(BigInt::from(2));
    let conds: &[&str] = if general {
        &["condition1", "condition1_neg"]
    } else {
        &["condition1"]
    };
    let cond_from = conds.join(",");
    let mut out = Vec::new();
    let mut results: Vec<(String, Parsed)> = Vec::new();
    let found = |results: &[(String, Parsed)], id: &str| -> Option<usize> {
        results.iter().position(|(i, _)| i == id)
    };
    for c in &cert.claims {
        let boxed =
            |f: Func, other: &[Poly], d0: &BigRational, d1: &BigRational, b: &BigRational| {
                check_box_claim(&ctx, &polys, other, c, f, (d0, d1), b)
            };
        let parsed = match c.id.as_str() {
            "closeness" => boxed(Func::AbsPMinus1, &[], &eps, &one, &tol)?,
            "closeness_neg" => boxed(Func::AbsPPlus1, &[], &m_one, &-&eps, &tol)?,
            "condition1" => boxed(Func::XAbsPMinus1, &[], &zero, &one, &tol)?,
            "condition1_neg" => boxed(Func::XAbsPPlus1, &[], &m_one, &zero, &tol)?,
            "enclosure" => boxed(Func::AbsP, &[], &zero, &one, &enc_bound)?,
            "enclosure_neg" => boxed(Func::AbsP, &[], &m_one, &zero, &enc_bound)?,
            "even_part" => boxed(Func::Diff, &shipped, &m_one, &one, &tol)?,
            "closeness_shipped" | "theorem1_relu_shipped" => {
                let (base, share) = if c.id == "closeness_shipped" {
                    ("closeness", one.clone())
                } else {
                    (
                        "theorem1_relu",
                        BigRational::new(BigInt::one(), BigInt::from(2)),
                    )
                };
                let from = format!("{base},even_part");
                let (Some(bi), Some(ei)) = (found(&results, base), found(&results, "even_part"))
                else {
                    return Err(ctx.reject(&c.id, None, format!("needs {from} first")));
                };
                let p = parse_claim(&ctx, c)?;
                let (b, e) = (&results[bi].1, &results[ei].1);
                let brec = &cert.claims[bi];
                if c.derived_from.as_deref() != Some(from.as_str()) || !c.boxes.is_empty() {
                    return Err(ctx.reject(
                        &c.id,
                        None,
                        format!("must be derived from {from}, with no boxes"),
                    ));
                }
                if c.domain != brec.domain || p.bound != b.bound {
                    return Err(ctx.reject(
                        &c.id,
                        None,
                        format!("domain and bound must be {base}'s"),
                    ));
                }
                // |f_shipped| ≤ |f| + share·|p_shipped − p| and ≥ |f| − share·|p_shipped − p|.
                let se = &share * &e.hi;
                if p.hi < &b.hi + &se {
                    return Err(ctx.reject(
                        &c.id,
                        None,
                        format!(
                            "certified sup {} is below {base}'s plus {share} times even_part's",
                            c.certified_sup[1]
                        ),
                    ));
                }
                if p.lo > zero {
                    if p.lo > &b.lo - &se {
                        return Err(ctx.reject(
                            &c.id,
                            None,
                            format!(
                                "lower end {} exceeds {base}'s minus {share} times even_part's",
                                c.certified_sup[0]
                            ),
                        ));
                    }
                    if c.witness != brec.witness {
                        return Err(ctx.reject(
                            &c.id,
                            None,
                            format!("witness differs from {base}'s"),
                        ));
                    }
                }
                check_verdict(&ctx, c, &p)?;
                p
            }
            _ => {
                let idx: Vec<usize> = conds.iter().filter_map(|id| found(&results, id)).collect();
                if idx.len() != conds.len() {
                    return Err(ctx.reject(&c.id, None, format!("needs {cond_from} first")));
                }
                // The larger side of condition (1).
                let mut cond_hi = zero.clone();
                let mut cond_lo = zero.clone();
                for &i in &idx {
                    cond_hi = cond_hi.max(results[i].1.hi.clone());
                    cond_lo = cond_lo.max(results[i].1.lo.clone());
                }
                let p = parse_claim(&ctx, c)?;
                if c.derived_from.as_deref() != Some(cond_from.as_str()) || !c.boxes.is_empty() {
                    return Err(ctx.reject(
                        &c.id,
                        None,
                        format!("must be derived from {cond_from}, with no boxes"),
                    ));
                }
                let d0 = ctx.num(&c.id, None, "domain[0]", &c.domain[0])?;
                let d1 = ctx.num(&c.id, None, "domain[1]", &c.domain[1])?;
                if d0 != m_one || d1 != one {
                    return Err(ctx.reject(&c.id, None, "domain must be [-1, 1]".into()));
                }
                if c.id == "theorem1_relu" {
                    // r_α − ReLU = (x p(x) − |x|)/2: the supremum is exactly half of condition (1)'s.
                    if p.bound != pow2(-alpha) {
                        return Err(ctx.reject(
                            &c.id,
                            None,
                            format!("bound {} is not 2^-alpha", c.bound),
                        ));
                    }
                    if p.hi < &cond_hi / &two || p.lo > &cond_lo / &two {
                        return Err(ctx.reject(
                            &c.id,
                            None,
                            format!(
                                "certified sup [{}, {}] is not half of {cond_from}'s",
                                c.certified_sup[0], c.certified_sup[1],
                            ),
                        ));
                    }
                    if p.lo > zero {
                        // The witness must be one where condition (1) attains at least 2·lo.
                        let w = c.witness.as_deref().unwrap_or("");
                        let ok = idx.iter().any(|&i| {
                            cert.claims[i].witness.as_deref() == Some(w)
                                && results[i].1.lo >= &p.lo * &two
                        });
                        if !ok {
                            return Err(ctx.reject(
                                &c.id,
                                None,
                                format!("witness differs from {cond_from}'s"),
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
                    if p.hi < &factor * (&cond_hi / &two) {
                        return Err(ctx.reject(
                            &c.id,
                            None,
                            format!(
                                "constant {} is below B'·ceil(log2 n)·s from {cond_from}",
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
                    if c.verdict == "holds"
                        && idx.iter().any(|&i| cert.claims[i].verdict != "holds")
                    {
                        return Err(ctx.reject(
                            &c.id,
                            None,
                            format!("holds although {cond_from} (Theorem 2's hypothesis) does not"),
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
        results.push((c.id.clone(), parsed));
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
