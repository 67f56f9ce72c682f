//! Batched evaluation of r̃_α(x) = x·(1 + p(x/B))/2 over slices: chunks of 32 values, the
//! coefficient loop outside and the lane loop inside (auto-vectorised `mul_add`), f64 inside
//! even for f32 slices.

use super::ApproxError;
use crate::poly::CompositePoly;

const CHUNK: usize = 32;

/// A composite sign polynomial prepared for fast batched ReLU evaluation on [−B, B].
#[derive(Debug, Clone, PartialEq)]
pub struct ReluKernel {
    inv_range: f64,
    range: f64,
    /// Per stage, the odd power coefficients [c_1, c_3, …] rounded to f64.
    stages: Vec<Vec<f64>>,
}

impl ReluKernel {
    /// Prepare r̃_α(x) = B·r_α(x/B) (paper §3.1) for the sign polynomial `p` and range B.
    ///
    /// # Errors
    /// [`ApproxError::BadRange`] unless 0 < B < ∞.
    pub fn new(p: &CompositePoly, range: f64) -> Result<Self, ApproxError> {
        if !(range.is_finite() && range > 0.0) {
            return Err(ApproxError::BadRange { b: range });
        }
        Ok(Self {
            inv_range: 1.0 / range,
            range,
            stages: p.components().iter().map(|c| c.odd_coeffs_f64()).collect(),
        })
    }

    /// The range B.
    pub fn range(&self) -> f64 {
        self.range
    }

    /// p(x/B) for one chunk, in place on `y` (which holds x on entry).
    #[inline]
    fn sign_chunk(&self, y: &mut [f64; CHUNK]) {
        for v in y.iter_mut() {
            *v *= self.inv_range;
        }
        for stage in &self.stages {
            let mut y2 = [0.0f64; CHUNK];
            for (s, v) in y2.iter_mut().zip(y.iter()) {
                *s = v * v;
            }
            let (last, rest) = match stage.split_last() {
                Some(x) => x,
                None => continue,
            };
            let mut acc = [*last; CHUNK];
            for c in rest.iter().rev() {
                for (a, s) in acc.iter_mut().zip(y2.iter()) {
                    *a = a.mul_add(*s, *c);
                }
            }
            for (v, a) in y.iter_mut().zip(acc.iter()) {
                *v *= a;
            }
        }
    }

    /// r̃_α applied in place to every value (an estimate; see `certify` for bounds).
    pub fn apply_f64(&self, xs: &mut [f64]) {
        for chunk in xs.chunks_mut(CHUNK) {
            let mut y = [0.0f64; CHUNK];
            for (d, s) in y.iter_mut().zip(chunk.iter()) {
                *d = *s;
            }
            self.sign_chunk(&mut y);
            for (x, p) in chunk.iter_mut().zip(y.iter()) {
                *x = 0.5 * *x * (1.0 + p);
            }
        }
    }

    /// r̃_α applied in place to f32 values (computed in f64, rounded once at the end).
    pub fn apply_f32(&self, xs: &mut [f32]) {
        for chunk in xs.chunks_mut(CHUNK) {
            let mut y = [0.0f64; CHUNK];
            for (d, s) in y.iter_mut().zip(chunk.iter()) {
                *d = f64::from(*s);
            }
            self.sign_chunk(&mut y);
            for (x, p) in chunk.iter_mut().zip(y.iter()) {
                *x = (0.5 * f64::from(*x) * (1.0 + p)) as f32;
            }
        }
    }

    /// p(x/B) for every value of `xs` (the scaled sign approximation), in place.
    pub fn sign_f64(&self, xs: &mut [f64]) {
        for chunk in xs.chunks_mut(CHUNK) {
            let mut y = [0.0f64; CHUNK];
            for (d, s) in y.iter_mut().zip(chunk.iter()) {
                *d = *s;
            }
            self.sign_chunk(&mut y);
            for (x, p) in chunk.iter_mut().zip(y.iter()) {
                *x = *p;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approx::relu_scaled_f64;
    use crate::remez::table1_sign;

    #[test]
    fn kernel_matches_scalar_evaluation() {
        let s = table1_sign(13).unwrap();
        let k = ReluKernel::new(s.poly(), 40.0).unwrap();
        let xs: Vec<f64> = (0..1001).map(|i| -40.0 + 0.08 * f64::from(i)).collect();
        let mut a = xs.clone();
        k.apply_f64(&mut a);
        let mut f: Vec<f32> = xs.iter().map(|x| *x as f32).collect();
        k.apply_f32(&mut f);
        for ((x, y), z) in xs.iter().zip(&a).zip(&f) {
            // Reference: x(1 + p(x/B))/2 in 200-bit arithmetic.
            let xf = rug::Float::with_val(200, *x);
            let u = rug::Float::with_val(200, &xf / 40u32);
            let pu = s.poly().eval_float(&u, 200);
            let want = (0.5 * x * (1.0 + pu.to_f64())).max(f64::MIN);
            let scalar = relu_scaled_f64(s.poly(), 40.0, *x).unwrap();
            // f64 power-basis evaluation: the first stage's coefficients (~1e3) and the
            // cancellation in 1 + p leave ~1e−10 relative error in p, times |x|/2 ≤ 20.
            assert!((y - want).abs() <= 1e-8, "x={x} y={y} want={want}");
            assert!((scalar - want).abs() <= 1e-8, "x={x}");
            // f32: input quantisation 40·2^−24 times a slope ≤ 2, plus output rounding.
            let tol = 1e-5 + want.abs() * 2f64.powi(-23);
            assert!(
                (f64::from(*z) - want).abs() <= tol,
                "x={x} f32={z} want={want}"
            );
            // Theorem 1 scaled: |r̃ − ReLU| ≤ B·2^−α (+ rounding).
            assert!((y - x.max(0.0)).abs() <= 40.0 * 2f64.powi(-13) + 1e-9);
        }
        assert!(ReluKernel::new(s.poly(), f64::NAN).is_err());
    }
}
