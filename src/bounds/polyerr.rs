//! Certified polynomial errors for one α: the evidence the bounds are built from.
//!
//! [`PolyErrors`] holds, for the composite sign polynomial p_α of Table 1,
//! - s = sup_{x∈[−1,1]} |r_α(x) − ReLU(x)| = ½·sup |x·p(x) − |x|| (Theorem 1; half of the
//!   certified supremum of claim `condition1`), an upper bound rounded up;
//! - the *local* certified bounds of |x·p(x) − |x|| on the boxes of claim `condition1`
//!   (boxes `[x_lo, x_hi, f_upper]` partitioning [0, 1]; the function is even), indexed by a
//!   grid of 2^14 cells over [0, 1] with a sparse table for range maxima: a query over
//!   [a, b] returns the largest `f_upper` of the boxes meeting the cells that meet [a, b],
//!   which is ≥ the largest `f_upper` of the boxes meeting [a, b] (conservative);
//! - the coefficients of p_α (to run F^α with exactly the certified polynomial).
//!
//! A value is only built from a certificate file that the independent exact checker
//! ([`crate::proof::check_certificate`]) accepted, or from a [`Certificate`] produced by
//! [`crate::certify`] in this process; the constructor is private, so an unchecked number
//! cannot be propagated. The nominal 2^−α is never used.
//!
//! Scope: the certificates in `proofs/` are about p_α in exact real arithmetic (`arith =
//! exact`); the bounds are therefore about F^α computed exactly. The rounding of a
//! floating-point evaluation of F^α is not included (the measured errors compare the f64
//! engine's F^α and F).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use rug::{float::Round, Float, Rational};

use super::round::{div_ru, mul_ru, Ulp};
use super::BoundsError;
use crate::certify::{Certificate, ClaimKind};
use crate::nn::SignKernel;
use crate::poly::{CompositePoly, OddPoly};

/// α for which `proofs/` holds Table 1 certificates.
pub const ALPHAS: std::ops::RangeInclusive<u32> = 4..=14;

/// Certificates checked in this process: (path, α, SHA-256 of the text) → evidence.
static CHECKED: Mutex<BTreeMap<CacheKey, PolyErrors>> = Mutex::new(BTreeMap::new());

type CacheKey = (String, u32, Vec<u8>);

const GRID_BITS: u32 = 14;
/// Number of grid cells over [0, 1].
pub(crate) const GRID: usize = 1 << GRID_BITS;

/// Certified error data of p_α (see the module docs). Only built from checked evidence.
#[derive(Debug, Clone)]
pub struct PolyErrors {
    alpha: u32,
    source: String,
    /// Certified upper bound of sup |x·p(x) − |x|| on [−1, 1].
    cond1_sup: f64,
    /// Sparse table: `table[k][i]` = max of the grid cells i .. i + 2^k.
    table: Vec<Vec<f64>>,
    /// Odd coefficients per component (exact).
    components: Vec<Vec<Rational>>,
}

fn cert_err(alpha: u32, file: &str, reason: impl Into<String>) -> BoundsError {
    BoundsError::Certificate {
        alpha,
        file: file.to_string(),
        reason: reason.into(),
    }
}

/// Parse an exact number of a certificate: a decimal, `n/d`, or a dyadic `m p e` (= m·2^e).
fn parse_exact(s: &str) -> Option<Rational> {
    if let Some((m, e)) = s.split_once('p') {
        let m: rug::Integer = m.parse().ok()?;
        let e: i32 = e.parse().ok()?;
        let mut q = Rational::from(m);
        if e >= 0 {
            q <<= e.unsigned_abs();
        } else {
            q >>= e.unsigned_abs();
        }
        return Some(q);
    }
    if let Some((n, d)) = s.split_once('/') {
        let n = crate::poly::parse_decimal_rational(n).ok()?;
        let d = crate::poly::parse_decimal_rational(d).ok()?;
        return (d != 0).then(|| n / d);
    }
    crate::poly::parse_decimal_rational(s).ok()
}

fn f64_up(q: &Rational) -> f64 {
    Float::with_val_round(53, q, Round::Up).0.to_f64()
}

fn f64_down(q: &Rational) -> f64 {
    Float::with_val_round(53, q, Round::Down).0.to_f64()
}

/// One condition-(1) box with outward-rounded f64 ends and an upward-rounded bound.
#[derive(Debug, Clone, Copy)]
struct Bx {
    lo: f64,
    hi: f64,
    upper: f64,
}

impl PolyErrors {
    /// The certificate file name for α in a proofs directory: `table1-alphaNN.json`.
    pub fn file_name(alpha: u32) -> String {
        format!("table1-alpha{alpha:02}.json")
    }

    /// Load `dir/table1-alphaNN.json`, re-check it with the independent exact checker
    /// ([`crate::proof::check_certificate`]) and extract the condition-(1) evidence.
    ///
    /// # Errors
    /// [`BoundsError::Alpha`] for α outside [`ALPHAS`]; [`BoundsError::Certificate`] when the
    /// file is unreadable, malformed, rejected by the checker, for another α, or lacks a
    /// `condition1` claim with boxes.
    pub fn load(dir: &Path, alpha: u32) -> Result<Self, BoundsError> {
        if !ALPHAS.contains(&alpha) {
            return Err(BoundsError::Alpha {
                alpha,
                lo: *ALPHAS.start(),
                hi: *ALPHAS.end(),
            });
        }
        let path: PathBuf = dir.join(Self::file_name(alpha));
        let name = path.display().to_string();
        let text =
            std::fs::read_to_string(&path).map_err(|e| cert_err(alpha, &name, e.to_string()))?;
        // The exact check takes seconds per file: a file already checked in this process
        // (same path, α and SHA-256 of the text) is not checked again.
        let key = (
            name.clone(),
            alpha,
            Sha256::digest(text.as_bytes()).to_vec(),
        );
        if let Some(p) = CHECKED.lock().ok().and_then(|c| c.get(&key).cloned()) {
            return Ok(p);
        }
        let p = Self::load_text(alpha, &name, &text)?;
        if let Ok(mut c) = CHECKED.lock() {
            c.insert(key, p.clone());
        }
        Ok(p)
    }

    fn load_text(alpha: u32, name: &str, text: &str) -> Result<Self, BoundsError> {
        let name = name.to_string();
        let file =
            crate::proof::decode(&name, text).map_err(|e| cert_err(alpha, &name, e.to_string()))?;
        crate::proof::check_certificate(&name, &file)
            .map_err(|e| cert_err(alpha, &name, format!("rejected by the checker: {e}")))?;
        if file.alpha != alpha {
            return Err(cert_err(
                alpha,
                &name,
                format!("the file is for alpha {}", file.alpha),
            ));
        }
        let claim = file
            .claims
            .iter()
            .find(|c| c.id == "condition1")
            .ok_or_else(|| cert_err(alpha, &name, "no condition1 claim"))?;
        let bad = |what: &str, s: &str| {
            cert_err(alpha, &name, format!("{what} {s:?} is not an exact number"))
        };
        let sup_q = parse_exact(&claim.certified_sup[1])
            .ok_or_else(|| bad("condition1 certified_sup", &claim.certified_sup[1]))?;
        let mut boxes = Vec::with_capacity(claim.boxes.len());
        for b in &claim.boxes {
            let lo = parse_exact(&b[0]).ok_or_else(|| bad("box x_lo", &b[0]))?;
            let hi = parse_exact(&b[1]).ok_or_else(|| bad("box x_hi", &b[1]))?;
            let up = parse_exact(&b[2]).ok_or_else(|| bad("box f_upper", &b[2]))?;
            boxes.push(Bx {
                lo: f64_down(&lo),
                hi: f64_up(&hi),
                upper: f64_up(&up),
            });
        }
        let mut components = Vec::new();
        for (k, c) in file.components.iter().enumerate() {
            let mut odd = Vec::new();
            for (j, s) in c.iter().enumerate() {
                odd.push(parse_exact(s).ok_or_else(|| bad(&format!("components[{k}][{j}]"), s))?);
            }
            components.push(odd);
        }
        Self::build(alpha, name, f64_up(&sup_q), &boxes, components)
    }

    /// Load from `dir` when the file exists there, otherwise certify p_α in this process
    /// ([`crate::certify::certify_table1`], exact arithmetic, ≤ ~2 s).
    ///
    /// # Errors
    /// As [`PolyErrors::load`] and [`PolyErrors::from_certificate`].
    pub fn load_or_certify(dir: &Path, alpha: u32) -> Result<Self, BoundsError> {
        if dir.join(Self::file_name(alpha)).is_file() {
            return Self::load(dir, alpha);
        }
        if !ALPHAS.contains(&alpha) {
            return Err(BoundsError::Alpha {
                alpha,
                lo: *ALPHAS.start(),
                hi: *ALPHAS.end(),
            });
        }
        let cert = crate::certify::certify_table1(alpha, crate::certify::Arith::Exact)
            .map_err(|e| cert_err(alpha, "<certify>", e.to_string()))?;
        Self::from_certificate(&cert)
    }

    /// From a certificate produced by [`crate::certify`] (its `condition1` claim and boxes).
    ///
    /// # Errors
    /// [`BoundsError::Certificate`] when the certificate has no `condition1` claim with boxes
    /// or its polynomial is not odd.
    pub fn from_certificate(cert: &Certificate) -> Result<Self, BoundsError> {
        let alpha = cert.alpha;
        if !cert.poly.is_odd() {
            return Err(cert_err(
                alpha,
                "<certify>",
                "p is not odd (non-zero even coefficients); the propagation needs an odd p: certify its odd part (--odd-part)",
            ));
        }
        let claim = cert
            .claim(ClaimKind::Condition1)
            .ok_or_else(|| cert_err(alpha, "<certify>", "no condition1 claim"))?;
        // Theorem 1's certified value, to make sure the evidence is the certify module's.
        let relu = cert
            .relu_error()
            .ok_or_else(|| cert_err(alpha, "<certify>", "no theorem1_relu claim"))?;
        let sup = claim.sup_hi.max(2.0 * relu.into_inner());
        let boxes: Vec<Bx> = claim
            .boxes
            .iter()
            .map(|b| Bx {
                lo: b.lo,
                hi: b.hi,
                upper: b.upper,
            })
            .collect();
        Self::build(
            alpha,
            "<certify>".into(),
            sup,
            &boxes,
            cert.poly.components().to_vec(),
        )
    }

    fn build(
        alpha: u32,
        source: String,
        sup: f64,
        boxes: &[Bx],
        components: Vec<Vec<Rational>>,
    ) -> Result<Self, BoundsError> {
        if boxes.is_empty() || components.is_empty() {
            return Err(cert_err(
                alpha,
                &source,
                "condition1 has no boxes or p has no components",
            ));
        }
        let mut grid = vec![f64::NAN; GRID];
        let g = GRID as f64;
        let mut max_upper = 0.0f64;
        for b in boxes {
            if !(b.lo <= b.hi && b.upper.is_finite() && b.upper >= 0.0) {
                return Err(cert_err(
                    alpha,
                    &source,
                    format!("box [{}, {}] with bound {} is invalid", b.lo, b.hi, b.upper),
                ));
            }
            max_upper = max_upper.max(b.upper);
            // Cells are closed: [c/G, (c+1)/G]. A box meets every cell from the one holding
            // its left end (and the previous cell when the end is on a boundary) to the one
            // holding its right end.
            let lo = (b.lo.clamp(0.0, 1.0) * g).floor();
            let mut c0 = lo as usize;
            if lo == b.lo * g && c0 > 0 {
                c0 -= 1;
            }
            let c1 = ((b.hi.clamp(0.0, 1.0) * g).floor() as usize).min(GRID - 1);
            for cell in grid.iter_mut().take(c1 + 1).skip(c0) {
                *cell = if cell.is_nan() {
                    b.upper
                } else {
                    cell.max(b.upper)
                };
            }
        }
        if let Some(c) = grid.iter().position(|v| v.is_nan()) {
            return Err(cert_err(
                alpha,
                &source,
                format!(
                    "condition1 boxes do not cover [0, 1] near x = {}",
                    c as f64 / g
                ),
            ));
        }
        let mut table = vec![grid];
        let mut w = 1usize;
        while 2 * w <= GRID {
            let prev = table.last().map(Vec::as_slice).unwrap_or(&[]);
            let next: Vec<f64> = (0..=GRID - 2 * w)
                .map(|i| {
                    let a = prev.get(i).copied().unwrap_or(f64::INFINITY);
                    let b = prev.get(i + w).copied().unwrap_or(f64::INFINITY);
                    a.max(b)
                })
                .collect();
            table.push(next);
            w *= 2;
        }
        Ok(Self {
            alpha,
            source,
            cond1_sup: sup.max(max_upper),
            table,
            components,
        })
    }

    /// α.
    pub fn alpha(&self) -> u32 {
        self.alpha
    }

    /// The exact odd power-basis coefficients [c_1, c_3, …] of each component p_i of the
    /// certified composite p_α = p_k ∘ … ∘ p_1 (the trajectory certificate evaluates exactly
    /// this polynomial).
    pub(crate) fn components(&self) -> &[Vec<Rational>] {
        &self.components
    }

    /// Where the evidence came from (the certificate file, or `<certify>`).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Certified s = sup_{[−1,1]} |r_α − ReLU| (Theorem 1), rounded up. The approximate ReLU
    /// r̃_α(x) = B·r_α(x/B) has error ≤ B·s on [−B, B] (§3).
    pub fn relu_sup(&self) -> f64 {
        // Halving is exact in binary floating point.
        self.cond1_sup / 2.0
    }

    /// Certified per-unit-B error of M̃_{α,n} (Theorem 2 with Eq. 7):
    /// ⌈log₂ n⌉·s/(½ − (⌈log₂ n⌉ − 1)·2^−α), rounded up; |M̃_{α,n} − max| ≤ B times this on
    /// [−B, B]^n. Returns 0 for n ≤ 1.
    ///
    /// # Errors
    /// [`BoundsError::Config`] when ½ − (⌈log₂ n⌉ − 1)·2^−α ≤ 0 (B′ undefined, Eq. 7).
    pub fn maxpool_unit(&self, n: usize) -> Result<f64, BoundsError> {
        let l = crate::approx::ceil_log2(n);
        if l == 0 {
            return Ok(0.0);
        }
        // (L − 1)·2^−α and ½ minus it are exact in binary64 (small integers, α ≤ 40).
        let den = 0.5 - f64::from(l - 1) * (-f64::from(self.alpha)).exp2();
        if den <= 0.0 {
            return Err(BoundsError::Config {
                what: format!("max-pool window of {n} values at alpha {}", self.alpha),
                value: format!("1/2 - (ceil(log2 n) - 1) 2^-alpha = {den}"),
                valid: "a positive denominator of B' (Eq. 7)".into(),
            });
        }
        Ok(mul_ru(div_ru(f64::from(l), den), self.relu_sup()))
    }

    /// Certified upper bound of |x·p(x) − |x|| over all |x| ∈ [a, b] ⊂ [0, 1] (local
    /// condition-(1) boxes; `b` is clamped to 1, `a` to 0).
    pub fn cond1_local(&self, a: f64, b: f64) -> f64 {
        let g = GRID as f64;
        let ca = (a.max(0.0) * g).floor() as usize;
        let cb = (b.min(1.0) * g).floor() as usize;
        self.cells_max(ca, cb)
    }

    /// Max of the grid cells ca ..= cb (cb clamped to the last cell, ca to cb).
    #[inline]
    pub(crate) fn cells_max(&self, ca: usize, cb: usize) -> f64 {
        if ca == cb {
            // One cell: the grid itself (row 0 of the sparse table).
            let row = self.table.first().map(Vec::as_slice).unwrap_or(&[]);
            return row.get(ca.min(GRID - 1)).copied().unwrap_or(f64::INFINITY);
        }
        let cb = cb.min(GRID - 1);
        let ca = ca.min(cb);
        let len = cb - ca + 1;
        let k = (usize::BITS - 1 - len.leading_zeros()) as usize;
        let row = self.table.get(k).map(Vec::as_slice).unwrap_or(&[]);
        let x = row.get(ca).copied().unwrap_or(f64::INFINITY);
        let y = row.get(cb + 1 - (1 << k)).copied().unwrap_or(f64::INFINITY);
        x.max(y)
    }

    /// Certified bound of the approximate ReLU's error at every y with |y| ∈ [ua, ub]
    /// (`cells` from [`LocalRelu::cells`]): |r̃_α(y) − ReLU(y)| = (B/2)·|u·p(u) − |u|| with
    /// u = y/B (§3), bounded by B/2 times the largest condition-(1) box bound of the grid
    /// cells, rounded up. Valid when ub ≤ B (the last cell is used beyond).
    #[inline]
    pub(crate) fn relu_local(&self, lr: &LocalRelu, cells: (usize, usize)) -> f64 {
        mul_ru(lr.half_b, self.cells_max(cells.0, cells.1))
    }

    /// The certified composite polynomial p_α as a batched f64 kernel (coefficients rounded
    /// to nearest binary64), to evaluate F^α with exactly this polynomial.
    ///
    /// # Errors
    /// [`BoundsError::Certificate`] when a component cannot be built.
    pub fn sign_kernel(&self) -> Result<SignKernel, BoundsError> {
        let mut comps = Vec::new();
        for c in &self.components {
            let odd: Vec<Float> = c.iter().map(|q| Float::with_val(2048, q)).collect();
            comps.push(
                OddPoly::from_odd_coeffs(odd)
                    .map_err(|e| cert_err(self.alpha, &self.source, e.to_string()))?,
            );
        }
        let p = CompositePoly::new(comps)
            .map_err(|e| cert_err(self.alpha, &self.source, e.to_string()))?;
        Ok(SignKernel::new(self.alpha, &p))
    }
}

/// The grid geometry of the local ReLU bound for one approximation range B: which cells of
/// |y|/B a range of |y| meets (shared by the per-input bound and the first-order limit, so
/// both use exactly the same per-neuron bound).
#[derive(Debug, Clone, Copy)]
pub(crate) struct LocalRelu {
    half_b: f64,
    scale_dn: f64,
    scale_up: f64,
}

impl LocalRelu {
    /// For the range B > 0.
    pub(crate) fn new(b: f64) -> Self {
        // Grid cells of |y|/B: floor(|y|·G/B), with G/B rounded down for the left end and up
        // for the right end, so the cells cover [|y|_lo/B, |y|_hi/B].
        let g = GRID as f64;
        Self {
            half_b: b / 2.0,
            scale_dn: (g / b).down(),
            scale_up: (g / b).up(),
        }
    }

    /// The cells (first, last) meeting |y|/B for |y| ∈ [ua, ub] (0 ≤ ua ≤ ub).
    #[inline]
    pub(crate) fn cells(&self, ua: f64, ub: f64) -> (usize, usize) {
        // Truncation toward 0 is floor for these non-negative values.
        let ca = (ua * self.scale_dn).down().max(0.0) as usize;
        let cb = (ub * self.scale_up).up() as usize;
        (ca, cb)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proofs() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("proofs")
    }

    #[test]
    fn parse_exact_forms() {
        assert_eq!(parse_exact("3p-3").unwrap(), Rational::from((3, 8)));
        assert_eq!(
            parse_exact("1806317726e-12").unwrap(),
            Rational::from((1806317726, 1_000_000_000_000i64))
        );
        assert_eq!(parse_exact("2/511").unwrap(), Rational::from((2, 511)));
        assert!(parse_exact("abc").is_none());
    }

    #[test]
    fn alpha10_matches_the_certificate_text() {
        let p = PolyErrors::load(&proofs(), 10).unwrap();
        // condition1 certified_sup[1] of proofs/table1-alpha10.json is 1806317726e-12.
        assert!(p.relu_sup() >= 0.000903158863);
        assert!(p.relu_sup() < 0.000903158863 * (1.0 + 1e-12));
        // Local bounds never exceed the global supremum, and far from 0 they are smaller.
        assert!(p.cond1_local(0.0, 1.0) <= 2.0 * p.relu_sup());
        assert!(p.cond1_local(0.5, 0.51) < p.cond1_local(0.0, 1.0));
        // maxpool_n4 of the file: 36197051886966732e-19 per unit B.
        let m4 = p.maxpool_unit(4).unwrap();
        assert!((0.0036197051886966732..0.0036197051886966732 * (1.0 + 1e-12)).contains(&m4));
    }

    #[test]
    fn local_bound_dominates_dense_samples_of_the_polynomial() {
        // Independent computation: x·p(x) − x evaluated with MPFR at 256 bits.
        let p = PolyErrors::load(&proofs(), 8).unwrap();
        for i in 0..=2000 {
            let x = f64::from(i) / 2000.0;
            let mut y = Float::with_val(256, x);
            for c in &p.components {
                let s = Float::with_val(256, &y * &y);
                let mut acc = Float::with_val(256, 0);
                for cj in c.iter().rev() {
                    acc *= &s;
                    acc += cj;
                }
                y = acc * &y;
            }
            let v = (Float::with_val(256, &y * x) - x).abs().to_f64();
            assert!(
                v <= p.cond1_local(x, x),
                "x = {x}: {v} > {}",
                p.cond1_local(x, x)
            );
        }
    }

    #[test]
    fn tampered_certificate_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let text = std::fs::read_to_string(proofs().join("table1-alpha06.json")).unwrap();
        // Lower the first condition1 box bound: the checker must refuse the file.
        let i = text.find("\"id\": \"condition1\"").unwrap();
        let j = i + text[i..].find("\"boxes\"").unwrap();
        let k = j + text[j..].find("e-").unwrap();
        let mut t = text.clone();
        t.replace_range(k - 1..k, if &text[k - 1..k] == "1" { "0" } else { "1" });
        std::fs::write(dir.path().join("table1-alpha06.json"), t).unwrap();
        let e = PolyErrors::load(dir.path(), 6).unwrap_err().to_string();
        assert!(
            e.contains("alpha 6") && e.contains("table1-alpha06.json"),
            "{e}"
        );
        let e = PolyErrors::load(dir.path(), 3).unwrap_err().to_string();
        assert_eq!(
            e,
            "alpha 3 is out of range: certificates exist for alpha in 4..=14"
        );
    }
}
