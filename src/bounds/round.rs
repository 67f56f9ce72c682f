//! Upward-rounded f64 arithmetic for non-negative error bounds.
//!
//! Every helper returns a value ≥ the exact real result for finite non-negative inputs: the
//! operation is rounded to nearest (error ≤ ½ ulp) and then stepped one ulp up with
//! [`f64::next_up`], which is ≥ the exact result. `gamma_ru(n)` is an upper bound of
//! γ_n = n·u/(1 − n·u), u = 2^−53, the classical bound on the relative rounding error of an
//! n-term sum or dot product of non-negative terms evaluated in any order (Higham, *Accuracy
//! and Stability of Numerical Algorithms*, §3.1), fused multiply-add included.

/// One-ulp steps (the neighbouring binary64 values), as `f64::next_up` / `next_down`.
pub(crate) trait Ulp {
    /// The least f64 > self (NaN and +∞ unchanged).
    fn up(self) -> f64;
    /// The greatest f64 < self (NaN and −∞ unchanged).
    fn down(self) -> f64;
}

impl Ulp for f64 {
    fn up(self) -> f64 {
        if self.is_nan() || self == f64::INFINITY {
            return self;
        }
        if self == 0.0 {
            return f64::from_bits(1);
        }
        let b = self.to_bits();
        f64::from_bits(if self > 0.0 { b + 1 } else { b - 1 })
    }

    fn down(self) -> f64 {
        -(-self).up()
    }
}

/// Unit roundoff of binary64, u = 2^−53.
pub(crate) const U: f64 = 1.0 / 9_007_199_254_740_992.0;

/// The smallest positive subnormal, the absolute error allowance per operation for underflow.
pub(crate) const ETA: f64 = 5e-324;

/// a + b rounded up (a, b ≥ 0).
pub(crate) fn add_ru(a: f64, b: f64) -> f64 {
    if a == 0.0 {
        return b;
    }
    if b == 0.0 {
        return a;
    }
    (a + b).up()
}

/// a·b rounded up (a, b ≥ 0).
pub(crate) fn mul_ru(a: f64, b: f64) -> f64 {
    if a == 0.0 || b == 0.0 {
        return 0.0;
    }
    if a == 1.0 {
        return b;
    }
    if b == 1.0 {
        return a;
    }
    (a * b).up()
}

/// a/b rounded up (a ≥ 0, b > 0).
pub(crate) fn div_ru(a: f64, b: f64) -> f64 {
    (a / b).up()
}

/// An upper bound of γ_n = n·u/(1 − n·u).
pub(crate) fn gamma_ru(n: usize) -> f64 {
    #[expect(clippy::cast_precision_loss, reason = "n < 2^52: exact")]
    let nu = mul_ru(n as f64, U);
    div_ru(nu, (1.0 - nu).down())
}

/// An upper bound of 1/(1 − γ_n): for non-negative terms the exact sum s and the computed
/// sum ŝ satisfy s ≤ ŝ/(1 − γ_n), so s ≤ ŝ·`sum_factor_ru(n)` rounded up.
pub(crate) fn sum_factor_ru(n: usize) -> f64 {
    div_ru(1.0, (1.0 - gamma_ru(n)).down())
}

/// Upper bound of the exact non-negative sum/dot product from its computed value `s` over
/// `n` terms: s·(1 − γ_n)^−1 plus n underflow allowances, rounded up.
pub(crate) fn sum_up(s: f64, factor: f64, n: usize) -> f64 {
    #[expect(clippy::cast_precision_loss, reason = "n < 2^52: exact")]
    let tiny = mul_ru(n as f64 + 1.0, ETA);
    add_ru(mul_ru(s, factor), tiny)
}

/// Upper bound of the exact non-negative sum / dot product of `n` terms from its binary64
/// value `s` (the γ_{n+1} form of [`sum_up`]; one extra term for a bias).
pub(crate) fn dot_up(s: f64, n: usize) -> f64 {
    sum_up(s, sum_factor_ru(n + 1), n + 1)
}

/// Σ|w_i| rounded up (each partial sum stepped up).
pub(crate) fn abs_sum_ru(w: impl IntoIterator<Item = f64>) -> f64 {
    w.into_iter().fold(0.0, |acc, v| add_ru(acc, v.abs()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rug::Rational;

    /// Exact value; +∞ (a trivially valid upper bound) maps to a huge rational.
    fn q(x: f64) -> Rational {
        Rational::from_f64(x).unwrap_or_else(|| Rational::from(rug::Integer::from(1) << 2000))
    }

    #[test]
    fn upward_helpers_bound_the_exact_rational_result() {
        // Independent oracle: exact rational arithmetic (rug).
        let xs = [0.1, 1.0 / 3.0, 7.25, 1e-300, 3e10, 0.0, 5e-324];
        for &a in &xs {
            for &b in &xs {
                assert!(q(add_ru(a, b)) >= q(a) + q(b));
                assert!(q(mul_ru(a, b)) >= q(a) * q(b));
                if b > 0.0 {
                    assert!(q(div_ru(a, b)) >= q(a) / q(b));
                }
            }
        }
        let s = abs_sum_ru([0.1, -0.2, 0.3]);
        assert!(q(s) >= q(0.1) + q(0.2) + q(0.3));
    }

    #[test]
    fn ulp_steps_are_the_neighbours() {
        for x in [
            1.0,
            -1.0,
            0.1,
            -3e-310,
            5e-324,
            f64::MAX,
            -f64::MAX,
            0.0,
            -0.0,
        ] {
            let (u, d) = (x.up(), x.down());
            assert!(u > x && d < x, "{x}");
            assert!(u.down() == x || x == 0.0, "{x}");
            assert!(d.up() == x || x == 0.0, "{x}");
        }
        assert_eq!(1.0f64.up(), 1.0 + f64::EPSILON);
        assert_eq!(f64::MAX.up(), f64::INFINITY);
    }

    #[test]
    fn gamma_is_an_upper_bound() {
        for n in [1usize, 9, 576, 1 << 20] {
            let nu = Rational::from(n) * q(U);
            let exact = nu.clone() / (Rational::from(1) - nu);
            assert!(q(gamma_ru(n)) >= exact, "n = {n}");
            assert!(gamma_ru(n) < 1.0001 * (n as f64) * U);
        }
    }
}
