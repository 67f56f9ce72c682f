//! A minimal real-number abstraction so the Remez exchange runs both in `f64` (fast, used by
//! the degree optimizer's searches) and in rug `Float` (multi-precision, used for every
//! polynomial that is stored, printed or certified).

use rug::Float;

/// Real arithmetic needed by the Remez exchange. Constants are created "like" an existing value
/// so that a rug `Float` keeps its working precision.
pub(crate) trait Real: Clone + PartialOrd + std::fmt::Debug {
    /// The constant `v` at the precision of `self`.
    fn cst(&self, v: f64) -> Self;
    /// self + o
    fn add(&self, o: &Self) -> Self;
    /// self − o
    fn sub(&self, o: &Self) -> Self;
    /// self · o
    fn mul(&self, o: &Self) -> Self;
    /// self / o
    fn div(&self, o: &Self) -> Self;
    /// |self|
    fn abs(&self) -> Self;
    /// √self
    fn sqrt(&self) -> Self;
    /// −self
    fn neg(&self) -> Self;
    /// Nearest f64.
    fn to_f64(&self) -> f64;
    /// Finite (not NaN, not ±∞).
    fn finite(&self) -> bool;
    /// Working precision in bits (53 for f64).
    fn bits(&self) -> u32;
}

impl Real for f64 {
    fn cst(&self, v: f64) -> Self {
        v
    }
    fn add(&self, o: &Self) -> Self {
        self + o
    }
    fn sub(&self, o: &Self) -> Self {
        self - o
    }
    fn mul(&self, o: &Self) -> Self {
        self * o
    }
    fn div(&self, o: &Self) -> Self {
        self / o
    }
    fn abs(&self) -> Self {
        f64::abs(*self)
    }
    fn sqrt(&self) -> Self {
        f64::sqrt(*self)
    }
    fn neg(&self) -> Self {
        -self
    }
    fn to_f64(&self) -> f64 {
        *self
    }
    fn finite(&self) -> bool {
        self.is_finite()
    }
    fn bits(&self) -> u32 {
        53
    }
}

impl Real for Float {
    fn cst(&self, v: f64) -> Self {
        Float::with_val(self.prec(), v)
    }
    fn add(&self, o: &Self) -> Self {
        Float::with_val(self.prec(), self + o)
    }
    fn sub(&self, o: &Self) -> Self {
        Float::with_val(self.prec(), self - o)
    }
    fn mul(&self, o: &Self) -> Self {
        Float::with_val(self.prec(), self * o)
    }
    fn div(&self, o: &Self) -> Self {
        Float::with_val(self.prec(), self / o)
    }
    fn abs(&self) -> Self {
        Float::with_val(self.prec(), self.abs_ref())
    }
    fn sqrt(&self) -> Self {
        Float::with_val(self.prec(), self.sqrt_ref())
    }
    fn neg(&self) -> Self {
        Float::with_val(self.prec(), -self)
    }
    fn to_f64(&self) -> f64 {
        Float::to_f64(self)
    }
    fn finite(&self) -> bool {
        self.is_finite()
    }
    fn bits(&self) -> u32 {
        self.prec()
    }
}
