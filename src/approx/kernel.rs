//! Batched evaluation of r̃_α(x) = x·(1 + p(x/B))/2 over slices: chunks of 32 values, the
//! coefficient loop outside and the lane loop inside (auto-vectorised `mul_add`), f64 inside
//! even for f32 slices.
//!
//! # Floating-point contract (why every component runs in f64)
//!
//! Each component p(y) = y·q(y²), q(s) = Σ_{i≤m} c_i s^i (degree d = 2m + 1), is evaluated as
//! s = fl(y·y), Horner in s with fused multiply-adds (a ← fl(a·s + c_j)), then fl(y·a). In
//! a format with unit roundoff u, the term c_i y^{2i+1} collects at most i + 1 Horner
//! roundings, i from s, one from the last product and one from rounding c_i to the format:
//! 2m + 3 relative perturbations in all, so (standard forward analysis, no underflow or
//! overflow; Higham, *Accuracy and Stability*, §5.1)
//!
//! |fl(p(y)) − p(y)| ≤ γ_{2m+3}·Σ_i |c_i|·|y|^{2i+1},  γ_k = k·u/(1 − k·u)
//!
//! ([`odd_horner_error_bound`]). Errors entering a later component are amplified by its slope.
//! For Table 1's α = 14 composite ({15, 27, 29}) the stages' inputs reach |y| ≈ 1.97 (the
//! output of p_1) and ≈ 1.57 (of p_2), where Σ|c_i||y|^{2i+1} is 2.9e5 (p_1 at 1), 6.6e9
//! (p_2 at 1.97) and 3.6e7 (p_3 at 1.57). In binary32 (u = 2^−24) the bounds are 0.29, 1.1e4
//! and 66, and the error itself is not small either: the last component alone in f32 on f64
//! inputs is off by more than 100·2^−14 (0.67 at u = x/B ≈ 0.647 in a numpy
//! re-computation), and p_2 in f32 sends p_3 to overflow (test
//! `f32_last_component_breaks_the_alpha14_promise`), against a budget of 2^−14 ≈ 6.1e−5 of
//! which the certified approximation error 2^−14.016 already uses 99%. In binary64 the same
//! global bounds are 5.5e−10, 2.1e−5 and 1.2e−7, too coarse to prove the promise alone; the
//! rounding-aware certificate per box (`polycert certify --alpha 14 --arith f64`, README
//! "Floating-point evaluation") proves the evaluated r_α within 2^−14. So every component is
//! evaluated in f64: a cheaper f32 α = 14 pass would need a better-conditioned representation
//! (a Chebyshev basis on [−1.97, 1.97] by Clenshaw costs two operations per degree where
//! Horner in y² costs half of one, which cancels the gain of twice the lanes).

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

/// γ_k = k·u/(1 − k·u) (Higham §3.1), rounded up; +∞ once k·u ≥ 1.
fn gamma(k: usize, u: f64) -> f64 {
    #[expect(clippy::cast_precision_loss, reason = "small k")]
    let ku = k as f64 * u;
    if ku >= 1.0 {
        f64::INFINITY
    } else {
        // One ulp up per operation covers the rounding of this f64 computation.
        (ku / (1.0 - ku)).next_up().next_up()
    }
}

/// An a-priori bound on |fl(p(y)) − p(y)| for the odd polynomial p(y) = Σ_i c_i y^{2i+1}
/// (`coeffs` = [c_1, c_3, …]) evaluated in a format of unit roundoff `u` by the crate's
/// scheme (see the module docs: coefficients rounded to the format, s = fl(y²), Horner in s
/// with fused multiply-adds, a final product by y), at an input y exact in that format:
/// γ_{2m+3}·Σ|c_i||y|^{2i+1} with m + 1 coefficients (no underflow or overflow assumed).
/// An upper bound computed in f64 (each term rounded up by a relative 2^−50 margin).
pub fn odd_horner_error_bound(coeffs: &[f64], y: f64, u: f64) -> f64 {
    let s = y * y;
    let mut pw = y.abs();
    let mut sum = 0.0;
    for c in coeffs {
        sum += c.abs() * pw;
        pw *= s;
    }
    let m1 = coeffs.len();
    gamma(2 * m1 + 1, u) * sum * (1.0 + 2f64.powi(-50))
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

    /// The crate's odd Horner scheme in binary32 (coefficients rounded to f32, FMA).
    fn odd_horner_f32(c: &[f64], y: f32) -> f32 {
        let s = y * y;
        let cf: Vec<f32> = c.iter().map(|v| *v as f32).collect();
        let (&last, rest) = cf.split_last().unwrap();
        y * rest.iter().rev().fold(last, |a, &cj| a.mul_add(s, cj))
    }

    #[test]
    fn odd_horner_bound_holds_for_f32_against_exact_evaluation() {
        // Every component of α = 12..14 at f32 inputs over its reachable range, near 0 and
        // near ±1: |f32 result − p(y)| ≤ the a-priori bound, p(y) from a 300-bit evaluation
        // (rug) of the same f64 coefficients (the exact values the bound refers to).
        for alpha in [12, 13, 14] {
            let s = table1_sign(alpha).unwrap();
            for comp in s.poly().components() {
                let c = comp.odd_coeffs_f64();
                let pts = (0..=4000)
                    .map(|i| -2.0 + f64::from(i) * 1e-3)
                    .chain((0..200).map(|i| 1.0 + (f64::from(i) - 100.0) * 1e-6))
                    .chain((0..200).map(|i| (f64::from(i) - 100.0) * 1e-7));
                for y in pts {
                    let y32 = y as f32;
                    let yf = rug::Float::with_val(300, y32);
                    let s2 = rug::Float::with_val(300, &yf * &yf);
                    let mut acc = rug::Float::with_val(300, 0);
                    for ci in c.iter().rev() {
                        acc = rug::Float::with_val(300, &acc * &s2) + *ci;
                    }
                    let exact = rug::Float::with_val(300, &acc * &yf).to_f64();
                    let got = f64::from(odd_horner_f32(&c, y32));
                    let bound = odd_horner_error_bound(&c, f64::from(y32), 2f64.powi(-24));
                    assert!(
                        (got - exact).abs() <= bound,
                        "α = {alpha}, degree {}, y = {y32}: |{got} − {exact}| > {bound}",
                        2 * c.len() - 1
                    );
                }
            }
        }
    }

    #[test]
    fn f32_last_component_breaks_the_alpha14_promise() {
        // Witness for the module docs' contract: p_1, p_2 of α = 14 in f64, p_3 in f32 (the
        // cheapest mixed scheme) is off by far more than 2^−14 somewhere on [0, 1], and the
        // a-priori f32 bound of p_3 at its largest input exceeds 2^−14 as well; the all-f64
        // evaluation stays within 1e−9 of a 300-bit one there.
        let s = table1_sign(14).unwrap();
        let comps: Vec<Vec<f64>> = s
            .poly()
            .components()
            .iter()
            .map(|c| c.odd_coeffs_f64())
            .collect();
        let [c1, c2, c3] = &comps[..] else {
            panic!("α = 14 has three components")
        };
        let h64 = |c: &[f64], y: f64| {
            let t = y * y;
            let (&last, rest) = c.split_last().unwrap();
            y * rest.iter().rev().fold(last, |a, &cj| a.mul_add(t, cj))
        };
        let (mut worst, mut at, mut y2max) = (0.0f64, 0.0, 0.0f64);
        for i in 0..=100_000 {
            let u = f64::from(i) * 1e-5;
            let y2 = h64(c2, h64(c1, u));
            y2max = y2max.max(y2.abs());
            let e = (f64::from(odd_horner_f32(c3, y2 as f32)) - h64(c3, y2)).abs();
            if e > worst {
                (worst, at) = (e, u);
            }
        }
        assert!(
            worst > 100.0 * 2f64.powi(-14),
            "max f32 error {worst} at u = {at}"
        );
        assert!(odd_horner_error_bound(c3, y2max, 2f64.powi(-24)) > 2f64.powi(-14));
        let uf = rug::Float::with_val(300, at);
        let exact = s.poly().eval_float(&uf, 300).to_f64();
        assert!((s.poly().eval_f64(at) - exact).abs() <= 1e-9);
    }
}
