//! Fixed-point balls: the number type of the trajectory certificate ([`super::trajectory`]).
//!
//! A ball ⟨m, ρ⟩ is the set [m − ρ, m + ρ] of reals, with the midpoint m = M·2^−F an exact
//! fixed-point number (M a GMP integer, F the number of fraction bits, [`Frac`]) and the
//! radius ρ a binary64 rounded upward. Sums and exact products of midpoints are exact
//! integers; the only rounding is the explicit floor of a product or quotient back to F
//! fraction bits, whose error is < 1 ulp = 2^−F and is added to the radius. There is no
//! γ_n·Σ|w||m| term: a dot product of any length is exact before its single floor, so the
//! rounding error injected per value is absolute (2^−F) and the precision is chosen by F
//! alone (it is raised until the final radius is far below the certified difference).
//!
//! This module also evaluates the certified polynomials on balls: one odd component p_i
//! (Horner in y², midpoint in fixed point with its rounding error tracked upward) and the
//! enclosure of p_i′ over the ball in outward-rounded interval arithmetic (`inari`), for the
//! centred (mean-value) forms of r̃_α (Eq. 4) and m_α (§2.2). r̃_α is not monotone near 0
//! and its slope reaches ±14 at α = 14: nothing here assumes a Lipschitz constant.
//!
//! Symbols: `f` the fraction bits F, `ulp` = 2^−F, `rho` a radius, `e` a rounding-error bound.

use inari::Interval;
use rug::{Integer, Rational};

use super::round::{add_ru, mul_ru, Ulp};
use super::wide::Wide;

/// Number of fraction bits F of the fixed-point midpoints (value = integer·2^−F).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Frac(pub u32);

/// 2^e as a binary64 (exact for −1022 ≤ e ≤ 1023; 0 / +∞ outside).
pub(crate) fn pow2(e: i32) -> f64 {
    if e < -1022 {
        0.0
    } else if e > 1023 {
        f64::INFINITY
    } else {
        // The biased exponent e + 1023 ∈ [1, 2046] with a zero mantissa is exactly 2^e.
        f64::from_bits(u64::from((e + 1023).unsigned_abs()) << 52)
    }
}

impl Frac {
    /// One unit in the last place, 2^−F, as an f64 (an upper bound when F > 1022).
    pub(crate) fn ulp(self) -> f64 {
        let f = i32::try_from(self.0).unwrap_or(i32::MAX);
        if f > 1022 {
            // 2^−1022 ≥ 2^−F: a valid upper bound.
            pow2(-1022)
        } else {
            pow2(-f)
        }
    }
}

/// An exact dyadic number as (odd-or-zero integer mantissa, exponent): q = m·2^e.
pub(crate) fn dyadic_of_f64(x: f64) -> Option<(Integer, i32)> {
    let q = Rational::from_f64(x)?;
    let (n, d) = q.into_numer_denom();
    // The denominator of a finite binary64 is a power of two.
    let k = d.significant_bits().saturating_sub(1);
    Some((n, -i32::try_from(k).ok()?))
}

/// ⌊q·2^F⌋ and whether it is exact.
pub(crate) fn rat_to_fixed(q: &Rational, f: Frac) -> (Integer, bool) {
    let s = Rational::from(q << f.0);
    let (n, d) = s.into_numer_denom();
    let (quo, rem) = n.div_rem_floor(d);
    (quo, rem.is_zero())
}

/// ⌊x·2^F⌋ of a binary64 (None for NaN / ±∞) and whether it is exact.
pub(crate) fn f64_to_fixed(x: f64, f: Frac) -> Option<(Integer, bool)> {
    Rational::from_f64(x).map(|q| rat_to_fixed(&q, f))
}

/// Enclosure [lo, hi] ⊇ {M·2^−F} in binary64 (outward: `to_f64` truncates, one ulp each way).
pub(crate) fn fixed_bounds(m: &Integer, f: Frac) -> (f64, f64) {
    bounds_of_trunc(m.to_f64(), f)
}

/// [`fixed_bounds`] from v, the mantissa M rounded toward zero to binary64 (v = 0 iff M = 0).
fn bounds_of_trunc(v: f64, f: Frac) -> (f64, f64) {
    if v == 0.0 {
        return (0.0, 0.0);
    }
    let s = pow2(-i32::try_from(f.0).unwrap_or(1022).min(1022));
    let rest = i32::try_from(f.0).unwrap_or(i32::MAX).saturating_sub(1022);
    // Scaling by powers of two is exact away from the subnormal range; F > 1022 scales
    // twice (still exact for the magnitudes met here; the outward step covers the rest).
    let mut lo = v.down() * s;
    let mut hi = v.up() * s;
    if rest > 0 {
        lo *= pow2(-rest);
        hi *= pow2(-rest);
    }
    (lo.down(), hi.up())
}

/// Upper bound of |M·2^−F|.
pub(crate) fn fixed_mag(m: &Integer, f: Frac) -> f64 {
    m.mag(f)
}

/// Lower bound of |M·2^−F|.
pub(crate) fn fixed_mig(m: &Integer, f: Frac) -> f64 {
    let (lo, hi) = fixed_bounds(m, f);
    if lo > 0.0 {
        lo
    } else if hi < 0.0 {
        -hi
    } else {
        0.0
    }
}

/// ⌊a·b·2^−F⌋: the fixed-point product, error < 2^−F.
pub(crate) fn mul_fixed(a: &Integer, b: &Integer, f: Frac) -> Integer {
    let mut p = Integer::from(a * b);
    p >>= f.0;
    p
}

/// ⌊M / c⌋ with c = cm·2^ce > 0 an exact dyadic: the fixed-point quotient by c, error < 2^−F.
pub(crate) fn div_dyadic_floor(m: &Integer, c: &(Integer, i32)) -> Integer {
    let (cm, ce) = c;
    if *ce <= 0 {
        let n = Integer::from(m << ce.unsigned_abs());
        n.div_rem_floor(cm.clone()).0
    } else {
        let d = Integer::from(cm << ce.unsigned_abs());
        m.clone().div_rem_floor(d).0
    }
}

/// ⌊M·c⌋ with c = cm·2^ce an exact dyadic: the fixed-point product by c, error < 2^−F
/// (exact when ce ≥ 0).
pub(crate) fn mul_dyadic_floor(m: &Integer, c: &(Integer, i32)) -> Integer {
    let (cm, ce) = c;
    let mut p = Integer::from(m * cm);
    if *ce >= 0 {
        p <<= ce.unsigned_abs();
    } else {
        p >>= ce.unsigned_abs();
    }
    p
}

/// A fixed-point midpoint mantissa M (value M·2^−F): a GMP [`Integer`] (any size) or a
/// fixed-width [`Wide`] (the fast path). Every operation is exact; the fixed-width type
/// returns `None` instead of overflowing, and its binary64 view rounds toward zero as GMP's,
/// so both types give bit-identical midpoints and radii wherever the fast one succeeds.
pub(crate) trait FixedMid: Clone + Sized {
    /// Zero.
    fn zero() -> Self;
    /// ⌊a·b·2^−F⌋ ([`mul_fixed`]).
    fn mul_fixed(&self, b: &Self, f: Frac) -> Option<Self>;
    /// a + b.
    fn add(&self, b: &Self) -> Option<Self>;
    /// ⌊a·2^−k⌋.
    fn shr_floor(&self, k: u32) -> Self;
    /// ⌊a/c⌋ for an exact dyadic c > 0 ([`div_dyadic_floor`]).
    fn div_dyadic(&self, c: &(Integer, i32)) -> Option<Self>;
    /// The enclosure of M·2^−F of [`fixed_bounds`].
    fn bounds(&self, f: Frac) -> (f64, f64);
    /// Upper bound of |M·2^−F| ([`fixed_mag`]).
    fn mag(&self, f: Frac) -> f64 {
        let (lo, hi) = self.bounds(f);
        hi.max(-lo)
    }
}

impl FixedMid for Integer {
    fn zero() -> Self {
        Integer::new()
    }
    fn mul_fixed(&self, b: &Self, f: Frac) -> Option<Self> {
        Some(mul_fixed(self, b, f))
    }
    fn add(&self, b: &Self) -> Option<Self> {
        Some(Integer::from(self + b))
    }
    fn shr_floor(&self, k: u32) -> Self {
        Integer::from(self >> k)
    }
    fn div_dyadic(&self, c: &(Integer, i32)) -> Option<Self> {
        Some(div_dyadic_floor(self, c))
    }
    fn bounds(&self, f: Frac) -> (f64, f64) {
        fixed_bounds(self, f)
    }
}

impl<const N: usize> FixedMid for Wide<N> {
    fn zero() -> Self {
        Self::ZERO
    }
    fn mul_fixed(&self, b: &Self, f: Frac) -> Option<Self> {
        self.mul_shr_floor(b, f)
    }
    fn add(&self, b: &Self) -> Option<Self> {
        self.checked_add(b)
    }
    fn shr_floor(&self, k: u32) -> Self {
        Wide::shr_floor(self, k)
    }
    fn div_dyadic(&self, c: &(Integer, i32)) -> Option<Self> {
        self.div_dyadic_floor(c)
    }
    fn bounds(&self, f: Frac) -> (f64, f64) {
        // Fast path of `bounds_of_trunc(self.to_f64_trunc(), f)`, bit for bit: for t·2^−F
        // normal (t = |M| truncated to 53 bits, v = ±t), next_up/next_down of a positive
        // normal are ±1 on its bit pattern and the scaling by 2^−F is exact, so
        // hi(t) = bits(t·2^−F) + 2 and lo(t) = bits(t·2^−F) − 2; for v = −t the enclosure
        // is the mirror image (−hi(t), −lo(t)), as `down` is defined as −up(−·).
        match self.abs_scaled_bits(f) {
            Some(b) => {
                let (lo, hi) = (f64::from_bits(b - 2), f64::from_bits(b + 2));
                if self.is_negative() {
                    (-hi, -lo)
                } else {
                    (lo, hi)
                }
            }
            None => bounds_of_trunc(self.to_f64_trunc(), f),
        }
    }
    fn mag(&self, f: Frac) -> f64 {
        // max(hi, −lo) of `bounds` is hi(t) for either sign (see `bounds`); zero and the
        // edge cases take the general formula.
        match self.abs_scaled_bits(f) {
            Some(b) => f64::from_bits(b + 2),
            None => {
                let (lo, hi) = self.bounds(f);
                hi.max(-lo)
            }
        }
    }
}

/// The interval [lo − ρ, hi + ρ] around a midpoint (outward), ENTIRE when not finite.
pub(crate) fn ball_interval<M: FixedMid>(m: &M, rho: f64, f: Frac) -> Interval {
    let (lo, hi) = m.bounds(f);
    let (a, b) = ((lo - rho).down(), (hi + rho).up());
    if a.is_finite() && b.is_finite() && a <= b {
        Interval::try_from((a, b)).unwrap_or(Interval::ENTIRE)
    } else {
        Interval::ENTIRE
    }
}

/// An f64 enclosure of an exact rational as an interval (one ulp outward).
pub(crate) fn rat_interval(q: &Rational) -> Interval {
    let v = q.to_f64();
    let (a, b) = (v.down(), v.up());
    if a.is_finite() && b.is_finite() {
        Interval::try_from((a, b)).unwrap_or(Interval::ENTIRE)
    } else {
        Interval::ENTIRE
    }
}

/// Upper bound of the magnitude of an interval (+∞ for an empty or unbounded one).
pub(crate) fn mag(i: Interval) -> f64 {
    if i.is_empty() {
        f64::INFINITY
    } else {
        i.mag()
    }
}

/// One odd component p(y) = Σ_j c_j·y^(2j+1) prepared at F fraction bits.
#[derive(Debug, Clone)]
pub(crate) struct FixedOdd<M = Integer> {
    /// ⌊c_j·2^F⌋.
    coeffs: Vec<M>,
    /// Bound of |c_j − coeffs[j]·2^−F| (0 when every coefficient is exact at F bits).
    coef_err: f64,
    /// Enclosures of (2j + 1)·c_j, the coefficients of p′(y) = Σ_j (2j+1)c_j·y^(2j).
    dcoef: Vec<Interval>,
}

/// A ball during a polynomial chain: midpoint ŷ, radius ρ of the image of the whole input
/// ball, and e, the bound of |ŷ − y(m)| for the input's midpoint m alone (e ≤ ρ).
#[derive(Debug, Clone)]
pub(crate) struct ChainBall<M = Integer> {
    pub(crate) mid: M,
    pub(crate) rho: f64,
    pub(crate) e: f64,
}

impl FixedOdd {
    /// The same component with fixed-width coefficients, `None` when one does not fit.
    fn to_wide<const N: usize>(&self) -> Option<FixedOdd<Wide<N>>> {
        Some(FixedOdd {
            coeffs: self
                .coeffs
                .iter()
                .map(Wide::from_integer)
                .collect::<Option<_>>()?,
            coef_err: self.coef_err,
            dcoef: self.dcoef.clone(),
        })
    }

    /// Prepare the exact odd coefficients [c_1, c_3, …] at F fraction bits.
    pub(crate) fn new(odd: &[Rational], f: Frac) -> Self {
        let mut coeffs = Vec::with_capacity(odd.len());
        let mut exact = true;
        let mut dcoef = Vec::with_capacity(odd.len());
        for (j, c) in odd.iter().enumerate() {
            let (m, ex) = rat_to_fixed(c, f);
            exact &= ex;
            coeffs.push(m);
            let k = Rational::from(c * Integer::from(2 * j + 1));
            dcoef.push(rat_interval(&k));
        }
        Self {
            coeffs,
            coef_err: if exact { 0.0 } else { f.ulp() },
            dcoef,
        }
    }
}

impl<M: FixedMid> FixedOdd<M> {
    /// p applied to a chain ball; also returns the enclosure of p′ over the input ball
    /// (p′ over [ŷ ± ρ], by Horner in y² with outward rounding); `None` only when a
    /// fixed-width midpoint overflows.
    ///
    /// Midpoint: s ← c_d; s ← ⌊s·ŷ²⌋ + c_j; p̂ = ⌊s·ŷ⌋, with ŷ² = ⌊ŷ·ŷ⌋ (error δ < ulp).
    /// With E the running bound of |ŝ − s(ŷ)|: E ← E·(|ŷ²| + δ) + |ŝ|·δ + ulp + coef_err,
    /// and finally |p̂ − p(ŷ)| ≤ |ŷ|·E + ulp =: E_p. By the mean-value theorem, for y in the
    /// ball, |p(y) − p̂| ≤ sup|p′|·ρ + E_p (and the same with e for the midpoint's point).
    pub(crate) fn apply(&self, y: &ChainBall<M>, f: Frac) -> Option<(ChainBall<M>, Interval)> {
        let ulp = f.ulp();
        let yi = ball_interval(&y.mid, y.rho, f);
        let y2i = yi.sqr();
        let mut d = Interval::try_from((0.0, 0.0)).unwrap_or(Interval::ENTIRE);
        for c in self.dcoef.iter().rev() {
            d = d.mul_add(y2i, *c);
        }
        let y2 = y.mid.mul_fixed(&y.mid, f)?;
        let y2_mag = add_ru(y2.mag(f), ulp);
        let mut s = M::zero();
        let mut e = 0.0f64;
        let mut first = true;
        for c in self.coeffs.iter().rev() {
            if first {
                s = c.clone();
                e = self.coef_err;
                first = false;
                continue;
            }
            let s_mag = s.mag(f);
            s = s.mul_fixed(&y2, f)?.add(c)?;
            e = add_ru(
                add_ru(mul_ru(e, y2_mag), mul_ru(s_mag, ulp)),
                add_ru(ulp, self.coef_err),
            );
        }
        let p = s.mul_fixed(&y.mid, f)?;
        let ep = add_ru(mul_ru(y.mid.mag(f), e), ulp);
        let dm = mag(d);
        let out = ChainBall {
            mid: p,
            rho: add_ru(mul_ru(dm, y.rho), ep),
            e: add_ru(mul_ru(dm, y.e), ep),
        };
        Some((out, d))
    }
}

/// The composite sign polynomial p = p_k ∘ … ∘ p_1 at F fraction bits, with midpoints of
/// type M (GMP integers, or fixed-width for the fast path).
#[derive(Debug, Clone)]
pub(crate) struct FixedSign<M = Integer> {
    comps: Vec<FixedOdd<M>>,
    f: Frac,
}

/// Result of the composite on a ball: the chain ball of p and the enclosure of p′ over the
/// input ball (product of the components' derivative enclosures, chain rule).
pub(crate) struct SignBall<M = Integer> {
    pub(crate) p: ChainBall<M>,
    pub(crate) dp: Interval,
}

impl FixedSign {
    /// From the exact odd coefficients of each component.
    pub(crate) fn new(components: &[Vec<Rational>], f: Frac) -> Self {
        Self {
            comps: components.iter().map(|c| FixedOdd::new(c, f)).collect(),
            f,
        }
    }

    /// Enclosures of the exact chain y_0 = y(m), y_i = p_i(y_{i−1}) at the midpoint alone:
    /// [ŷ_i ± e_i] as outward f64 intervals, i = 0..=k (the noise margin's centred forms).
    pub(crate) fn chain_points(&self, y: ChainBall) -> Vec<Interval> {
        let mut b = y;
        let mut out = Vec::with_capacity(self.comps.len() + 1);
        out.push(ball_interval(&b.mid, b.e, self.f));
        for c in &self.comps {
            // The GMP midpoint path never overflows; `None` cannot occur here.
            let Some((next, _)) = c.apply(&b, self.f) else {
                break;
            };
            b = next;
            out.push(ball_interval(&b.mid, b.e, self.f));
        }
        out
    }

    /// The same polynomial with N-limb fixed-width coefficients (the fast path), `None`
    /// when a coefficient does not fit.
    pub(crate) fn to_wide<const N: usize>(&self) -> Option<FixedSign<Wide<N>>> {
        Some(FixedSign {
            comps: self
                .comps
                .iter()
                .map(FixedOdd::to_wide)
                .collect::<Option<_>>()?,
            f: self.f,
        })
    }
}

impl<M: FixedMid> FixedSign<M> {
    /// [`FixedSign::chain_points`] for any midpoint type (the same operations, so the same
    /// intervals as the GMP path); `None` when a fixed-width midpoint overflows.
    pub(crate) fn chain_points_checked(&self, y: ChainBall<M>) -> Option<Vec<Interval>> {
        let mut b = y;
        let mut out = Vec::with_capacity(self.comps.len() + 1);
        out.push(ball_interval(&b.mid, b.e, self.f));
        for c in &self.comps {
            b = c.apply(&b, self.f)?.0;
            out.push(ball_interval(&b.mid, b.e, self.f));
        }
        Some(out)
    }

    /// p and p′ on a ball; `None` only when a fixed-width midpoint overflows.
    pub(crate) fn apply(&self, y: ChainBall<M>) -> Option<SignBall<M>> {
        let mut b = y;
        let mut dp = Interval::try_from((1.0, 1.0)).unwrap_or(Interval::ENTIRE);
        for c in &self.comps {
            let (nb, d) = c.apply(&b, self.f)?;
            b = nb;
            dp *= d;
        }
        Some(SignBall { p: b, dp })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(x: f64) -> Rational {
        Rational::from_f64(x).unwrap()
    }

    fn val(m: &Integer, f: Frac) -> Rational {
        Rational::from(m.clone()) >> f.0
    }

    #[test]
    fn floor_conversions_and_bounds_enclose_exact_values() {
        let f = Frac(80);
        for x in [0.1, -0.1, 1.0 / 3.0, -7.25, 1e-30, 12345.678] {
            let (m, exact) = f64_to_fixed(x, f).unwrap();
            let v = val(&m, f);
            let err = Rational::from(&q(x) - &v);
            assert!(err >= 0 && err < q(f.ulp()), "x={x}");
            assert_eq!(exact, err == 0);
            let (lo, hi) = fixed_bounds(&m, f);
            assert!(q(lo) <= v && v <= q(hi));
            assert!(q(fixed_mag(&m, f)) >= Rational::from(v.abs_ref()));
            assert!(q(fixed_mig(&m, f)) <= Rational::from(v.abs_ref()));
        }
        // Floor of a negative product rounds toward −∞ (error in (−ulp, 0]).
        let a = f64_to_fixed(-0.3, f).unwrap().0;
        let b = f64_to_fixed(0.7, f).unwrap().0;
        let p = mul_fixed(&a, &b, f);
        let exact = val(&a, f) * val(&b, f);
        let d = Rational::from(&exact - &val(&p, f));
        assert!(d >= 0 && d < q(f.ulp()));
        let c = dyadic_of_f64(3.75).unwrap();
        assert_eq!(c, (Integer::from(15), -2));
        let qd = div_dyadic_floor(&a, &c);
        let d = val(&a, f) / q(3.75) - val(&qd, f);
        assert!(d >= 0 && d < q(f.ulp()));
        let c2 = dyadic_of_f64(0.1).unwrap();
        let md = mul_dyadic_floor(&a, &c2);
        let d = val(&a, f) * q(0.1) - val(&md, f);
        assert!(d >= 0 && d < q(f.ulp()));
        assert_eq!(pow2(-3), 0.125);
        assert_eq!(pow2(10), 1024.0);
    }

    #[test]
    fn odd_component_ball_contains_exact_values() {
        // p(y) = 3y − 4y³ + 0.3y⁵ (non-monotone, large slope); exact oracle: rug Rational.
        let coeffs = [q(3.0), q(-4.0), q(0.3)];
        let f = Frac(96);
        let p = FixedOdd::new(&coeffs, f);
        for &(m, rho) in &[(0.41, 1e-9), (-0.9, 1e-3), (0.0, 0.0), (1.2, 1e-12)] {
            let (mid, _) = f64_to_fixed(m, f).unwrap();
            let ball = ChainBall {
                mid: mid.clone(),
                rho,
                e: 0.0,
            };
            let (out, d) = p.apply(&ball, f).unwrap();
            for t in [-1.0, -0.5, 0.0, 0.3, 1.0] {
                let y = val(&mid, f) + q(t * rho);
                let y2 = Rational::from(&y * &y);
                let inner = &coeffs[1] + Rational::from(&y2 * &coeffs[2]);
                let exact = &y * (&coeffs[0] + Rational::from(&y2 * &inner));
                let dist = Rational::from(&exact - &val(&out.mid, f)).abs();
                assert!(dist <= q(out.rho), "m={m} t={t}");
                let d1 = Rational::from(3 * &coeffs[1]) + Rational::from(&y2 * 5) * &coeffs[2];
                let dexact = &coeffs[0] + Rational::from(&y2 * &d1);
                let dv = dexact.to_f64();
                assert!(d.inf() <= dv && dv <= d.sup(), "derivative m={m} t={t}");
                if t == 0.0 {
                    assert!(dist <= q(out.e));
                }
            }
        }
    }
}
