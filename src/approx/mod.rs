//! Approximate ReLU and max-pooling (paper §3): r_α (Eq. 4), m_α (§2.2), M_{α,n} (Eq. 6) and
//! the range scalings r̃_α(x) = B·r_α(x/B) and M̃_{α,n} with B′ (Eq. 7). Does not own the sign
//! polynomial itself (see `remez`) nor any bound on these approximations (see `certify`).
//!
//! Symbols: `p` = p_α, the composite sign polynomial; `b_range` = B; `b_prime` = B′.
//!
//! All evaluations here are plain floating-point estimates (f64, or rug at a chosen precision),
//! not bounds. The batched kernels ([`ReluKernel`]) take f32 or f64 slices, compute in f64 with
//! fused multiply-adds over chunks of 32 values with the coefficient loop outside (f32
//! evaluation of the first stage's power basis is known to break the 2^−α promise at α = 13, 14).

mod kernel;

pub use kernel::{odd_horner_error_bound, ReluKernel};

use rug::Float;

use crate::poly::CompositePoly;

/// Errors of the `approx` module.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ApproxError {
    /// The range B is not a positive finite number.
    #[error("range B = {b} is not a positive finite number; B must satisfy 0 < B < ∞")]
    BadRange {
        /// The offending B.
        b: f64,
    },
    /// M_{α,n} of no values.
    #[error("max-pooling of an empty list: M_(α,n) needs n ≥ 1 values")]
    Empty,
    /// B′ = B/(0.5 − (⌈log₂ n⌉ − 1)·2^−α) is undefined (denominator ≤ 0).
    #[error(
        "B' undefined for α = {alpha}, n = {n}: 0.5 − (⌈log₂ n⌉ − 1)·2^-α ≤ 0; \
         use a larger α or a smaller pooling window"
    )]
    BPrimeUndefined {
        /// α.
        alpha: u32,
        /// Number of pooled values.
        n: usize,
    },
}

/// r_α(x) = (x + x·p(x))/2 (Eq. 4), in f64.
pub fn relu_f64(p: &CompositePoly, x: f64) -> f64 {
    0.5 * (x + x * p.eval_f64(x))
}

/// r_α(x) = (x + x·p(x))/2 (Eq. 4), at `prec` bits.
pub fn relu_float(p: &CompositePoly, x: &Float, prec: u32) -> Float {
    let px = p.eval_float(x, prec);
    let s = Float::with_val(prec, x * &px) + x;
    s / 2u32
}

/// r̃_α(x) = B·r_α(x/B), ReLU on [−B, B] with error ≤ B·2^−α (paper §3.1), in f64.
///
/// # Errors
/// [`ApproxError::BadRange`] unless 0 < B < ∞.
pub fn relu_scaled_f64(p: &CompositePoly, b_range: f64, x: f64) -> Result<f64, ApproxError> {
    check_range(b_range)?;
    // B·r(x/B) = B·(x/B)(1 + p(x/B))/2 = x(1 + p(x/B))/2.
    Ok(0.5 * x * (1.0 + p.eval_f64(x / b_range)))
}

/// m_α(a, b) = ((a+b) + (a−b)·p(a−b))/2 (paper §2.2), in f64.
pub fn max2_f64(p: &CompositePoly, a: f64, b: f64) -> f64 {
    let d = a - b;
    0.5 * ((a + b) + d * p.eval_f64(d))
}

/// M_{α,n}(x_1, …, x_n) by the recursion of Eq. 6 (n = 2k: halves; n = 2k+1: k and k+1), in
/// f64. The error is ≤ ⌈log₂ n⌉·2^−α on [(⌈log₂ n⌉−1)2^−α, 1 − (⌈log₂ n⌉−1)2^−α] (Theorem 2).
///
/// # Errors
/// [`ApproxError::Empty`] for no values.
pub fn max_n_f64(p: &CompositePoly, xs: &[f64]) -> Result<f64, ApproxError> {
    match xs {
        [] => Err(ApproxError::Empty),
        [x] => Ok(*x),
        _ => {
            let k = xs.len() / 2;
            let (l, r) = xs.split_at(k);
            Ok(max2_f64(p, max_n_f64(p, l)?, max_n_f64(p, r)?))
        }
    }
}

/// ⌈log₂ n⌉ (0 for n ≤ 1).
pub fn ceil_log2(n: usize) -> u32 {
    if n <= 1 {
        0
    } else {
        usize::BITS - (n - 1).leading_zeros()
    }
}

/// B′ = B / (0.5 − (⌈log₂ n⌉ − 1)·2^−α) (Eq. 7).
///
/// # Errors
/// [`ApproxError::BadRange`], [`ApproxError::BPrimeUndefined`] when the denominator is ≤ 0.
pub fn b_prime(alpha: u32, n: usize, b_range: f64) -> Result<f64, ApproxError> {
    check_range(b_range)?;
    let l = f64::from(ceil_log2(n)) - 1.0;
    let den = 0.5 - l * 2f64.powi(-i32::try_from(alpha).unwrap_or(i32::MAX));
    if den <= 0.0 {
        return Err(ApproxError::BPrimeUndefined { alpha, n });
    }
    Ok(b_range / den)
}

/// M̃_{α,n}(x) = B′·(M_{α,n}(x_1/B′ + ½, …, x_n/B′ + ½) − ½) for x_i ∈ [−B, B] (Eq. 7), error
/// ≤ B′·⌈log₂ n⌉·2^−α (Theorem 2 scaled). Eq. 7 as printed omits the final −½ inside (which
/// would leave the result shifted by B′/2); the shift back is applied here.
///
/// # Errors
/// As [`b_prime`] and [`max_n_f64`].
pub fn max_n_scaled_f64(
    p: &CompositePoly,
    alpha: u32,
    b_range: f64,
    xs: &[f64],
) -> Result<f64, ApproxError> {
    let bp = b_prime(alpha, xs.len(), b_range)?;
    let ys: Vec<f64> = xs.iter().map(|x| x / bp + 0.5).collect();
    Ok(bp * (max_n_f64(p, &ys)? - 0.5))
}

fn check_range(b: f64) -> Result<(), ApproxError> {
    if b.is_finite() && b > 0.0 {
        Ok(())
    } else {
        Err(ApproxError::BadRange { b })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remez::table1_sign;

    #[test]
    fn relu_and_max_within_theorem_bounds() {
        let s = table1_sign(8).unwrap();
        let p = s.poly();
        let bound = 2f64.powi(-8);
        for i in -200..=200 {
            let x = f64::from(i) / 200.0;
            let r = relu_f64(p, x);
            assert!((r - x.max(0.0)).abs() <= bound, "x={x}");
            let rf = relu_float(p, &Float::with_val(128, x), 128).to_f64();
            assert!((rf - r).abs() < 1e-12);
            let rs = relu_scaled_f64(p, 10.0, 10.0 * x).unwrap();
            assert!((rs - 10.0 * x.max(0.0)).abs() <= 10.0 * bound);
        }
        for (a, b) in [(0.1, 0.7), (0.9, 0.2), (0.5, 0.5), (0.0, 1.0)] {
            assert!((max2_f64(p, a, b) - f64::max(a, b)).abs() <= bound);
        }
        let xs = [0.3, 0.8, 0.1, 0.55, 0.6, 0.2, 0.79, 0.4, 0.5];
        let m = max_n_f64(p, &xs).unwrap();
        assert!((m - 0.8).abs() <= f64::from(ceil_log2(xs.len())) * bound);
        let xs_b: Vec<f64> = xs.iter().map(|x| 20.0 * x - 9.0).collect();
        let mb = max_n_scaled_f64(p, 8, 20.0, &xs_b).unwrap();
        let bp = b_prime(8, xs.len(), 20.0).unwrap();
        assert!((mb - (20.0 * 0.8 - 9.0)).abs() <= bp * f64::from(ceil_log2(xs.len())) * bound);
    }

    #[test]
    fn errors() {
        let s = table1_sign(4).unwrap();
        assert_eq!(max_n_f64(s.poly(), &[]), Err(ApproxError::Empty));
        assert!(matches!(
            relu_scaled_f64(s.poly(), 0.0, 1.0),
            Err(ApproxError::BadRange { .. })
        ));
        assert!(matches!(
            b_prime(1, 1 << 10, 1.0),
            Err(ApproxError::BPrimeUndefined { .. })
        ));
        assert_eq!(ceil_log2(1), 0);
        assert_eq!(ceil_log2(4), 2);
        assert_eq!(ceil_log2(9), 4);
    }
}
