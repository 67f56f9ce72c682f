//! First-order Taylor models recentred per box, propagated stage by stage through the
//! composite p = p_k ∘ … ∘ p_1 (paper §2.2) in outward-rounded `inari` interval arithmetic.
//!
//! On a box X = [m − ρ, m + ρ] every stage output is enclosed as
//! y(x) ∈ c + d·(x − m) + R with c, d real numbers enclosed by thin intervals C, D and an
//! interval remainder R. Composing with an odd polynomial q uses Taylor's theorem at c:
//!
//! q(y) = q(c) + q'(c)·(y − c) + ½·q''(ξ)·(y − c)², ξ between c and y,
//!
//! so with Δ = D·H + R ∋ y − c (H = [−ρ, ρ]) and Y = C + Δ ∋ ξ:
//! C' = q(C), D' = q'(C)·D, R' = q'(C)·R + ½·q''(Y)·Δ².
//! The linear part is carried exactly (up to rounding), so the overestimation is O(ρ²):
//! this is the "recentring per box" of FACTS (a plain mean-value form over [−1,1] or naive
//! Horner on the composite is useless).

use inari::{const_interval, Interval};

/// The point interval 0.
pub(crate) const ZERO: Interval = const_interval!(0.0, 0.0);
use rug::{float::Round, Float, Rational};

/// Tight outward f64 enclosure of an exact rational.
pub(crate) fn enclose(q: &Rational) -> Option<Interval> {
    let (lo, _) = Float::with_val_round(53, q, Round::Down);
    let (hi, _) = Float::with_val_round(53, q, Round::Up);
    let (lo, hi) = (lo.to_f64(), hi.to_f64());
    if !lo.is_finite() || !hi.is_finite() || lo.abs() > 1e300 || hi.abs() > 1e300 {
        return None;
    }
    Interval::try_from((lo, hi)).ok()
}

/// Interval enclosure of an odd polynomial q(y) = Σ c_j y^j and its first two derivatives.
#[derive(Debug, Clone)]
pub(crate) struct IPoly {
    /// c_1, c_3, …, c_d.
    odd: Vec<Interval>,
    /// j·c_j (coefficient of y^{j−1}) for j = 1, 3, …: q' is even, Horner in y².
    d1: Vec<Interval>,
    /// j·(j−1)·c_j (coefficient of y^{j−2}) for j = 3, 5, …: q'' is odd, Horner in y² times y.
    d2: Vec<Interval>,
}

/// Horner's rule in s = y² over interval coefficients (highest first).
fn horner(coeffs: &[Interval], s: Interval) -> Interval {
    let mut acc = ZERO;
    for c in coeffs.iter().rev() {
        acc = acc.mul_add(s, *c);
    }
    acc
}

impl IPoly {
    /// Enclose the exact odd coefficients `[c_1, c_3, …]`.
    pub(crate) fn new(odd_exact: &[Rational]) -> Option<Self> {
        let odd: Vec<Interval> = odd_exact.iter().map(enclose).collect::<Option<_>>()?;
        let mut d1 = Vec::with_capacity(odd.len());
        let mut d2 = Vec::with_capacity(odd.len());
        for (i, c) in odd.iter().enumerate() {
            // j = 2i + 1; small integers are exact in f64.
            let j = (2 * i + 1) as f64;
            d1.push(*c * Interval::try_from((j, j)).ok()?);
            if i > 0 {
                let jj = j * (j - 1.0);
                d2.push(*c * Interval::try_from((jj, jj)).ok()?);
            }
        }
        Some(Self { odd, d1, d2 })
    }

    /// Enclosure of q(Y).
    pub(crate) fn eval(&self, y: Interval) -> Interval {
        horner(&self.odd, y.sqr()) * y
    }

    /// Enclosure of q'(Y).
    pub(crate) fn eval_d1(&self, y: Interval) -> Interval {
        horner(&self.d1, y.sqr())
    }

    /// Enclosure of q''(Y).
    pub(crate) fn eval_d2(&self, y: Interval) -> Interval {
        if self.d2.is_empty() {
            return ZERO;
        }
        horner(&self.d2, y.sqr()) * y
    }
}

/// A first-order Taylor model y(x) ∈ c + d·(x − m) + R on a box centred at m.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tm {
    /// Enclosure of the constant term c.
    pub c: Interval,
    /// Enclosure of the linear coefficient d.
    pub d: Interval,
    /// Remainder enclosure.
    pub r: Interval,
}

impl Tm {
    /// The identity x = m + 1·(x − m).
    pub(crate) fn identity(m: f64) -> Self {
        Self {
            c: Interval::try_from((m, m)).unwrap_or(Interval::ENTIRE),
            d: Interval::try_from((1.0, 1.0)).unwrap_or(Interval::ENTIRE),
            r: ZERO,
        }
    }

    /// Enclosure of y over the box (H = [−ρ, ρ]).
    pub(crate) fn range(&self, h: Interval) -> Interval {
        self.c + self.d * h + self.r
    }

    /// Compose with the odd polynomial q (see the module docs for the derivation).
    pub(crate) fn compose(&self, q: &IPoly, h: Interval) -> Self {
        let delta = self.d * h + self.r;
        let y = self.c + delta;
        let dq = q.eval_d1(self.c);
        let half = Interval::try_from((0.5, 0.5)).unwrap_or(Interval::ENTIRE);
        Self {
            c: q.eval(self.c),
            d: dq * self.d,
            r: dq * self.r + half * q.eval_d2(y) * delta.sqr(),
        }
    }
}

/// Taylor models of every stage output p_i ∘ … ∘ p_1 on the box with centre `m` and
/// half-width interval `h` (the last entry is p itself).
pub(crate) fn stages(polys: &[IPoly], m: f64, h: Interval) -> Vec<Tm> {
    let mut out = Vec::with_capacity(polys.len());
    let mut tm = Tm::identity(m);
    for q in polys {
        tm = tm.compose(q, h);
        out.push(tm);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(n: i64, d: i64) -> Rational {
        Rational::from((n, d))
    }

    #[test]
    fn enclosure_of_one_tenth_is_tight_and_contains_it() {
        let i = enclose(&q(1, 10)).unwrap();
        assert!(i.inf() < 0.1 + 1e-17 && i.sup() >= 0.1);
        assert!(i.inf() <= 0.1 && i.wid() > 0.0 && i.wid() < 1e-16);
    }

    #[test]
    fn taylor_model_encloses_sampled_values() {
        // q(y) = (3y − y³)/2 twice.
        let p = IPoly::new(&[q(3, 2), q(-1, 2)]).unwrap();
        let polys = vec![p.clone(), p];
        let (m, rho) = (0.3, 0.01);
        let h = Interval::try_from((-rho, rho)).unwrap();
        let tms = stages(&polys, m, h);
        let f = |x: f64| {
            let y = 1.5 * x - 0.5 * x * x * x;
            1.5 * y - 0.5 * y * y * y
        };
        let enc = tms[1].range(h);
        for k in 0..=100 {
            let x = m - rho + 2.0 * rho * f64::from(k) / 100.0;
            let v = f(x);
            assert!(
                enc.inf() - 1e-14 <= v && v <= enc.sup() + 1e-14,
                "{x} {v} {enc:?}"
            );
        }
        // Second-order overestimation only: width ≈ 2ρ·|f'(m)| + O(ρ²).
        let fp = (f(m + 1e-6) - f(m - 1e-6)) / 2e-6;
        assert!(
            enc.wid() < 2.0 * rho * fp.abs() * 1.01 + 1e-3,
            "{}",
            enc.wid()
        );
    }
}
