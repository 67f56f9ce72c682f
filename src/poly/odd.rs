//! [`OddPoly`] (one odd component p_i) and [`CompositePoly`] (p = p_k ∘ … ∘ p_1).

use rug::Float;

use super::{exact_decimal, Degree, PolyError};

/// An odd polynomial p(x) = Σ_{j odd ≤ d} c_j x^j in the power basis.
///
/// Stores only the odd coefficients c_1, c_3, …, c_d, each an exact dyadic rational (a finite
/// rug `Float`). Invariant: at least one coefficient, all finite.
#[derive(Debug, Clone, PartialEq)]
pub struct OddPoly {
    odd: Vec<Float>,
}

impl OddPoly {
    /// Build from the odd coefficients `[c_1, c_3, …, c_d]`.
    ///
    /// # Errors
    /// [`PolyError::Empty`] for no coefficients, [`PolyError::NonFinite`] for NaN/∞.
    pub fn from_odd_coeffs(odd: Vec<Float>) -> Result<Self, PolyError> {
        if odd.is_empty() {
            return Err(PolyError::Empty);
        }
        for (i, c) in odd.iter().enumerate() {
            if !c.is_finite() {
                return Err(PolyError::NonFinite {
                    power: 2 * i + 1,
                    value: c.to_string(),
                });
            }
        }
        Ok(Self { odd })
    }

    /// Build from a full power-basis list `[c_0, c_1, …, c_d]` whose even entries must be zero.
    ///
    /// # Errors
    /// [`PolyError::NotOdd`] when an even coefficient is non-zero; see also
    /// [`OddPoly::from_odd_coeffs`].
    pub fn from_power_coeffs(all: &[Float]) -> Result<Self, PolyError> {
        let mut odd = Vec::with_capacity(all.len() / 2);
        for (j, c) in all.iter().enumerate() {
            if j % 2 == 0 {
                if !c.is_zero() {
                    return Err(PolyError::NotOdd {
                        power: j,
                        value: c.to_string(),
                    });
                }
            } else {
                odd.push(c.clone());
            }
        }
        Self::from_odd_coeffs(odd)
    }

    /// The degree d = 2·(number of odd coefficients) − 1.
    pub fn degree(&self) -> Degree {
        Degree(u32::try_from(2 * self.odd.len() - 1).unwrap_or(u32::MAX))
    }

    /// The odd coefficients `[c_1, c_3, …, c_d]`.
    pub fn odd_coeffs(&self) -> &[Float] {
        &self.odd
    }

    /// The full power-basis coefficients `[c_0, c_1, …, c_d]` (even entries zero).
    pub fn power_coeffs(&self) -> Vec<Float> {
        let prec = self.max_prec();
        let mut v = Vec::with_capacity(2 * self.odd.len());
        for c in &self.odd {
            v.push(Float::new(prec));
            v.push(c.clone());
        }
        v
    }

    /// Largest precision among the stored coefficients.
    pub fn max_prec(&self) -> u32 {
        self.odd.iter().map(Float::prec).max().unwrap_or(2)
    }

    /// The coefficients rounded to nearest f64, `[c_1, c_3, …]`.
    pub fn odd_coeffs_f64(&self) -> Vec<f64> {
        self.odd.iter().map(Float::to_f64).collect()
    }

    /// The exact decimal strings of `[c_1, c_3, …]` (see [`exact_decimal`]).
    pub fn odd_coeffs_decimal(&self) -> Vec<String> {
        self.odd.iter().map(exact_decimal).collect()
    }

    /// p(x) by Horner's rule in x², rounded at precision `prec` bits per operation.
    pub fn eval_float(&self, x: &Float, prec: u32) -> Float {
        let x2 = Float::with_val(prec, x * x);
        let mut acc = Float::with_val(prec, 0);
        for c in self.odd.iter().rev() {
            acc *= &x2;
            acc += c;
        }
        acc *= x;
        acc
    }

    /// p(x) in f64 by Horner's rule in x² with fused multiply-add (an estimate, not a bound).
    pub fn eval_f64(&self, x: f64) -> f64 {
        let x2 = x * x;
        let mut acc = 0.0f64;
        for c in self.odd.iter().rev() {
            acc = acc.mul_add(x2, c.to_f64());
        }
        acc * x
    }
}

/// A composition p = p_k ∘ … ∘ p_1 of odd polynomials (components in application order:
/// `components()[0]` = p_1 is applied first).
#[derive(Debug, Clone, PartialEq)]
pub struct CompositePoly {
    components: Vec<OddPoly>,
}

impl CompositePoly {
    /// Build from components in application order.
    ///
    /// # Errors
    /// [`PolyError::EmptyComposite`] for an empty list.
    pub fn new(components: Vec<OddPoly>) -> Result<Self, PolyError> {
        if components.is_empty() {
            return Err(PolyError::EmptyComposite);
        }
        Ok(Self { components })
    }

    /// Components in application order (p_1 first).
    pub fn components(&self) -> &[OddPoly] {
        &self.components
    }

    /// Component degrees in application order (Table 1's "degrees" column).
    pub fn degrees(&self) -> Vec<Degree> {
        self.components.iter().map(OddPoly::degree).collect()
    }

    /// Σ ⌈log₂(d_i+1)⌉: the multiplicative depth of the composition (without the final
    /// multiplication by x of r_α / m_α, which Table 1's depth column adds).
    pub fn depth(&self) -> u32 {
        self.degrees().iter().map(|d| d.depth()).sum()
    }

    /// p(x) at precision `prec` (each component by [`OddPoly::eval_float`]).
    pub fn eval_float(&self, x: &Float, prec: u32) -> Float {
        let mut y = Float::with_val(prec, x);
        for p in &self.components {
            y = p.eval_float(&y, prec);
        }
        y
    }

    /// p(x) in f64 (an estimate, not a bound).
    pub fn eval_f64(&self, x: f64) -> f64 {
        self.components.iter().fold(x, |y, p| p.eval_f64(y))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(x: f64) -> Float {
        Float::with_val(53, x)
    }

    #[test]
    fn classic_sign_iteration_is_odd_and_composes() {
        // p(x) = (3x − x³)/2 maps 1 ↦ 1 and is odd.
        let p = OddPoly::from_odd_coeffs(vec![f(1.5), f(-0.5)]).unwrap();
        assert_eq!(p.degree(), Degree(3));
        assert_eq!(p.eval_f64(1.0), 1.0);
        assert_eq!(p.eval_f64(-0.3), -p.eval_f64(0.3));
        let c = CompositePoly::new(vec![p.clone(), p]).unwrap();
        assert_eq!(c.depth(), 4);
        let y = c.eval_f64(0.5);
        // p(0.5) = 0.6875, p(0.6875) = 1.5·0.6875 − 0.5·0.6875³
        let expect = 1.5 * 0.6875 - 0.5 * 0.6875f64.powi(3);
        assert!((y - expect).abs() < 1e-15);
        let yf = c.eval_float(&f(0.5), 200);
        assert!((yf.to_f64() - expect).abs() < 1e-15);
    }

    #[test]
    fn rejects_bad_coefficients() {
        assert_eq!(OddPoly::from_odd_coeffs(vec![]), Err(PolyError::Empty));
        assert!(matches!(
            OddPoly::from_odd_coeffs(vec![f(f64::NAN)]),
            Err(PolyError::NonFinite { power: 1, .. })
        ));
        assert!(matches!(
            OddPoly::from_power_coeffs(&[f(0.0), f(1.0), f(0.5)]),
            Err(PolyError::NotOdd { power: 2, .. })
        ));
        assert!(CompositePoly::new(vec![]).is_err());
    }
}
