//! Exact interval arithmetic on fixed-point rationals n·2^−K (K = [`FRAC_BITS`]) with explicit
//! outward rounding: sums are exact; a product of two such numbers has denominator 2^(2K) and
//! is rounded outward (lower end down, upper end up) to a multiple of 2^−K, so sizes stay
//! bounded while every interval still encloses the exact real value.

use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{Signed, Zero};

/// Fractional bits of every endpoint.
pub(crate) const FRAC_BITS: u32 = 120;

pub(crate) fn floor_shift(x: &BigInt) -> BigInt {
    // num-bigint's `>>` on BigInt rounds toward −∞ (checked by a unit test below).
    x >> FRAC_BITS
}

pub(crate) fn ceil_shift(x: &BigInt) -> BigInt {
    -((-x) >> FRAC_BITS)
}

/// A closed interval [lo·2^−K, hi·2^−K].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fi {
    lo: BigInt,
    hi: BigInt,
}

impl Fi {
    /// The point 0.
    pub(crate) fn zero() -> Self {
        Self {
            lo: BigInt::zero(),
            hi: BigInt::zero(),
        }
    }

    /// [lo·2^−K, hi·2^−K] from raw numerators (lo ≤ hi).
    pub(crate) fn raw(lo: BigInt, hi: BigInt) -> Self {
        Self { lo, hi }
    }

    /// Raw lower numerator.
    pub(crate) fn lo_raw(&self) -> &BigInt {
        &self.lo
    }

    /// Raw upper numerator.
    pub(crate) fn hi_raw(&self) -> &BigInt {
        &self.hi
    }

    /// Upper bound of |x| as a raw numerator (units of 2^−K).
    pub(crate) fn mag_int(&self) -> BigInt {
        self.mag_raw()
    }

    /// The smallest such interval enclosing the rational q.
    pub(crate) fn from_rational(q: &BigRational) -> Self {
        let scaled = q * BigRational::from_integer(BigInt::from(1) << FRAC_BITS);
        Self {
            lo: scaled.floor().to_integer(),
            hi: scaled.ceil().to_integer(),
        }
    }

    /// The smallest such interval enclosing [a, b].
    pub(crate) fn hull(a: &BigRational, b: &BigRational) -> Self {
        let (a, b) = if a <= b { (a, b) } else { (b, a) };
        Self {
            lo: Self::from_rational(a).lo,
            hi: Self::from_rational(b).hi,
        }
    }

    /// The integer k exactly.
    pub(crate) fn int(k: i64) -> Self {
        let v = BigInt::from(k) << FRAC_BITS;
        Self {
            lo: v.clone(),
            hi: v,
        }
    }

    /// [−r, r] for r ≥ 0 given as an interval's upper end.
    pub(crate) fn symmetric(r: &Fi) -> Self {
        let m = r.mag_raw();
        Self {
            lo: -m.clone(),
            hi: m,
        }
    }

    pub(crate) fn add(&self, o: &Fi) -> Fi {
        Fi {
            lo: &self.lo + &o.lo,
            hi: &self.hi + &o.hi,
        }
    }

    pub(crate) fn sub(&self, o: &Fi) -> Fi {
        Fi {
            lo: &self.lo - &o.hi,
            hi: &self.hi - &o.lo,
        }
    }

    pub(crate) fn mul(&self, o: &Fi) -> Fi {
        let p = [
            &self.lo * &o.lo,
            &self.lo * &o.hi,
            &self.hi * &o.lo,
            &self.hi * &o.hi,
        ];
        let mut mn = &p[0];
        let mut mx = &p[0];
        for v in &p[1..] {
            if v < mn {
                mn = v;
            }
            if v > mx {
                mx = v;
            }
        }
        Fi {
            lo: floor_shift(mn),
            hi: ceil_shift(mx),
        }
    }

    /// {x² : x in self}.
    pub(crate) fn sqr(&self) -> Fi {
        let a = &self.lo * &self.lo;
        let b = &self.hi * &self.hi;
        let (mn, mx) = if a < b { (a, b) } else { (b, a) };
        if self.lo.sign() != num_bigint::Sign::Plus && self.hi.sign() != num_bigint::Sign::Minus {
            Fi {
                lo: BigInt::zero(),
                hi: ceil_shift(&mx),
            }
        } else {
            Fi {
                lo: floor_shift(&mn),
                hi: ceil_shift(&mx),
            }
        }
    }

    fn mag_raw(&self) -> BigInt {
        self.lo.abs().max(self.hi.abs())
    }

    /// max |x| as an exact rational.
    pub(crate) fn mag(&self) -> BigRational {
        BigRational::new(self.mag_raw(), BigInt::from(1) << FRAC_BITS)
    }

    /// min |x| as an exact rational.
    pub(crate) fn mig(&self) -> BigRational {
        let v = if self.lo.sign() == num_bigint::Sign::Plus {
            self.lo.clone()
        } else if self.hi.sign() == num_bigint::Sign::Minus {
            -self.hi.clone()
        } else {
            BigInt::zero()
        };
        BigRational::new(v, BigInt::from(1) << FRAC_BITS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(n: i64, d: i64) -> BigRational {
        BigRational::new(BigInt::from(n), BigInt::from(d))
    }

    #[test]
    fn shifts_round_toward_minus_infinity() {
        assert_eq!(BigInt::from(-3) >> 1u32, BigInt::from(-2));
        assert_eq!(-((-BigInt::from(3)) >> 1u32), BigInt::from(2));
    }

    #[test]
    fn one_third_squared_is_enclosed() {
        let t = Fi::from_rational(&q(1, 3));
        let s = t.mul(&t);
        let exact = q(1, 9);
        let lo = BigRational::new(s.lo.clone(), BigInt::from(1) << FRAC_BITS);
        let hi = BigRational::new(s.hi.clone(), BigInt::from(1) << FRAC_BITS);
        assert!(lo <= exact && exact <= hi && lo < hi);
        let n = Fi::from_rational(&q(-1, 3)).sqr();
        assert_eq!(n.sqr().lo.sign(), num_bigint::Sign::Plus);
        let z = Fi::hull(&q(-1, 2), &q(1, 3)).sqr();
        assert!(z.lo.is_zero() && z.mag() >= q(1, 4));
    }
}
