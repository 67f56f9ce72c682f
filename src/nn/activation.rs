//! Polynomial activations (paper §3): r̃_α(x) = B·r_α(x/B) with r_α(x) = (x + x·p_α(x))/2
//! (Eq. 4 scaled, "Approximation range"), and M̃_{α,n} of Eq. (7) built from the tree of
//! m_α(a, b) = ((a + b) + (a − b)·p_α(a − b))/2 of Eq. (6).
//!
//! Evaluation kernel: the composite sign polynomial p_α = p_k ∘ … ∘ p_1 is evaluated in f64
//! (whatever the engine's precision: FACTS records that a float32 first stage breaks the 2^−α
//! promise at α = 13, 14) over chunks of 32 values, the coefficient loop outside the element
//! loop, Horner in x² with `mul_add`, so that the compiler vectorises the inner loop. The
//! `approx` module owns the exact objects; this kernel is the fast batched f64 evaluator the
//! engine needs.
//!
//! Eq. (7) as printed reads M̃ = B′·M(x/B′ + 0.5); the shift by 0.5 moves every input into
//! [0, 1] and must be undone, so we evaluate M̃ = B′·(M(x/B′ + 0.5) − 0.5), the form for which
//! |M̃ − max| ≤ B′·2^−α holds.

use std::collections::BTreeMap;

use crate::poly::CompositePoly;

use super::gemm::{composite_odd_chunk, POLY_CHUNK};
use super::ir::NodeId;

const CHUNK: usize = POLY_CHUNK;

/// The composite sign polynomial p_α in f64, ready for batched evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct SignKernel {
    /// Precision parameter α (Table 1).
    pub alpha: u32,
    /// Odd coefficients `[c_1, c_3, …]` of each component in application order.
    comps: Vec<Vec<f64>>,
}

impl SignKernel {
    /// From a composite polynomial (e.g. `remez::table1_sign(alpha)?.poly()`).
    pub fn new(alpha: u32, p: &CompositePoly) -> Self {
        Self {
            alpha,
            comps: p.components().iter().map(|c| c.odd_coeffs_f64()).collect(),
        }
    }

    /// The component coefficient lists.
    pub fn components(&self) -> &[Vec<f64>] {
        &self.comps
    }

    /// p_α(u) for every element, in place.
    pub fn sign_in_place(&self, u: &mut [f64]) {
        for chunk in u.chunks_mut(CHUNK) {
            let len = chunk.len();
            let mut y = [0.0f64; CHUNK];
            if let Some(y) = y.get_mut(..len) {
                y.copy_from_slice(chunk);
            }
            composite_odd_chunk(&mut y, &self.comps);
            if let Some(y) = y.get(..len) {
                chunk.copy_from_slice(y);
            }
        }
    }

    /// r̃_α(x) = B·r_α(x/B) = (x + x·p_α(x/B))/2 in place; returns how many |x| > B.
    pub fn relu_in_place<T: super::Real>(&self, x: &mut [T], b: f64) -> u64 {
        self.relu_in_place_stats(x, b).0
    }

    /// [`SignKernel::relu_in_place`], also returning the largest |x| of the inputs (NaN
    /// ignored): `(count of |x| > B, max |x|)`.
    pub fn relu_in_place_stats<T: super::Real>(&self, x: &mut [T], b: f64) -> (u64, f64) {
        T::relu_poly(self, x, b)
    }

    /// The portable loop behind [`SignKernel::relu_in_place_stats`] (f64 engines, and f32
    /// without AVX2 + FMA).
    pub(crate) fn relu_poly_portable<T: super::Real>(&self, x: &mut [T], b: f64) -> (u64, f64) {
        // Four lanes of counts and maxima (a select-based max, NaN ignored), so that the
        // compiler keeps them in one vector register each; max is exact in any order.
        let mut outside = [0u64; 4];
        let mut m = [0.0f64; 4];
        let inv = 1.0 / b;
        for chunk in x.chunks_mut(CHUNK) {
            let mut xs = [0.0f64; CHUNK];
            for (d, s) in xs.iter_mut().zip(chunk.iter()) {
                *d = s.to_f64();
            }
            // Padding lanes hold 0, which is neither outside nor above the maximum.
            for q in xs.chunks_exact(4) {
                for ((o, ml), v) in outside.iter_mut().zip(m.iter_mut()).zip(q) {
                    let a = v.abs();
                    *o += u64::from(a > b);
                    *ml = if a > *ml { a } else { *ml };
                }
            }
            let mut u = [0.0f64; CHUNK];
            for (u, v) in u.iter_mut().zip(&xs) {
                *u = v * inv;
            }
            composite_odd_chunk(&mut u, &self.comps);
            for (d, (xv, p)) in chunk.iter_mut().zip(xs.iter().zip(u.iter())) {
                *d = T::from_f64(0.5 * xv.mul_add(*p, *xv));
            }
        }
        (outside.iter().sum(), m.iter().fold(0.0, |a, &v| a.max(v)))
    }

    /// Approximate Clip(x) = a + ReLU(x − a) − ReLU(x − b) in place (a = min, b = max;
    /// ReLU6(x) = ReLU(x) − ReLU(x − 6)), each ReLU replaced by its own r̃_α:
    /// x ← a + r̃_α(x − a; B_lo) − r̃_α(x − b; B_hi), with r̃_α(t; B) = B·r_α(t/B) as in
    /// [`SignKernel::relu_in_place_stats`] (same bits on the shifted values t, which are
    /// formed in the engine's precision). A side that is `None` (an infinite bound) is left
    /// out: with no lower ReLU the result is x − r̃_α(x − b), with no upper one
    /// a + r̃_α(x − a). The two ReLUs read the same x and are independent, so under CKKS they
    /// run side by side: an approximate Clip costs the multiplicative depth of one r̃_α.
    ///
    /// Returns, per side (lower, upper), the count of shifted inputs with |t| > B and the
    /// largest |t| (NaN ignored; `(0, 0.0)` for an absent side).
    ///
    /// With both sides present, f32 values go through one fused pass where the CPU has
    /// AVX-512F (the same operations per value, so the same bits as the two-pass loop).
    pub fn clip_in_place_stats<T: super::Real>(
        &self,
        x: &mut [T],
        lower: Option<ClipRelu>,
        upper: Option<ClipRelu>,
    ) -> [(u64, f64); 2] {
        if let (Some(l), Some(u)) = (lower, upper) {
            if let Some(st) = T::clip_poly(self, x, l, u) {
                return st;
            }
        }
        self.clip_two_pass(x, lower, upper)
    }

    /// The two-pass loop behind [`SignKernel::clip_in_place_stats`]: the shifted values per
    /// side into a buffer, r̃_α on each ([`SignKernel::relu_in_place_stats`]), then combined.
    pub(crate) fn clip_two_pass<T: super::Real>(
        &self,
        x: &mut [T],
        lower: Option<ClipRelu>,
        upper: Option<ClipRelu>,
    ) -> [(u64, f64); 2] {
        const N: usize = 8 * CHUNK;
        let mut st = [(0u64, 0.0f64); 2];
        let mut t = [[T::ZERO; N]; 2];
        for chunk in x.chunks_mut(N) {
            let len = chunk.len();
            for ((side, buf), s) in [lower, upper].iter().zip(t.iter_mut()).zip(st.iter_mut()) {
                let (Some(side), Some(buf)) = (side, buf.get_mut(..len)) else {
                    continue;
                };
                let shift = T::from_f64(side.shift);
                for (d, v) in buf.iter_mut().zip(chunk.iter()) {
                    *d = *v - shift;
                }
                let (n, m) = T::relu_poly(self, buf, side.b);
                s.0 += n;
                s.1 = s.1.max(m);
            }
            let [lo, hi] = &t;
            for (i, v) in chunk.iter_mut().enumerate() {
                let base = match (lower, lo.get(i)) {
                    (Some(l), Some(&r)) => T::from_f64(l.shift) + r,
                    _ => *v,
                };
                *v = match (upper, hi.get(i)) {
                    (Some(_), Some(&r)) => base - r,
                    _ => base,
                };
            }
        }
        st
    }

    /// m_α(a, b) = ((a + b) + (a − b)·p_α(a − b))/2 elementwise: `a ← m_α(a, b)`.
    pub fn max2_in_place(&self, a: &mut [f64], b: &[f64]) {
        let mut d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
        let dd = d.clone();
        self.sign_in_place(&mut d);
        for ((x, y), (p, df)) in a.iter_mut().zip(b).zip(d.iter().zip(&dd)) {
            *x = 0.5 * (df.mul_add(*p, *x + *y));
        }
    }

    /// M_{α,n}(x_1, …, x_n) of Eq. (6) elementwise over equally long columns (`cols[i]` holds
    /// x_{i+1} for every position). Returns the result column.
    pub fn max_tree(&self, cols: &[Vec<f64>]) -> Vec<f64> {
        match cols {
            [] => Vec::new(),
            [x] => x.clone(),
            _ => {
                // n = 2k → (k, k); n = 2k + 1 → (k, k + 1).
                let k = cols.len() / 2;
                let (l, r) = cols.split_at(k);
                let mut a = self.max_tree(l);
                let b = self.max_tree(r);
                self.max2_in_place(&mut a, &b);
                a
            }
        }
    }

    /// B′ = B / (0.5 − (⌈log₂ n⌉ − 1)·2^−α) of Eq. (7).
    pub fn b_prime(&self, b: f64, n: usize) -> f64 {
        let depth = ceil_log2(n);
        let shrink = (f64::from(depth) - 1.0).max(0.0) * (-f64::from(self.alpha)).exp2();
        b / (0.5 - shrink)
    }
}

/// ⌈log₂ n⌉ for n ≥ 1 (0 for n ≤ 1).
pub(crate) fn ceil_log2(n: usize) -> u32 {
    if n <= 1 {
        0
    } else {
        usize::BITS - (n - 1).leading_zeros()
    }
}

/// One ReLU of an approximate Clip (see [`SignKernel::clip_in_place_stats`]): ReLU(x − shift)
/// replaced by r̃_α with range B = `b`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClipRelu {
    /// The Clip bound the ReLU is shifted by (min or max).
    pub shift: f64,
    /// Its approximation range B.
    pub b: f64,
}

/// How B is chosen from calibration statistics.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum RangePolicy {
    /// One B per ReLU / max-pool node: its calibrated max |input| × margin.
    PerLayer {
        /// Multiplier ≥ 1 applied to the measured maximum.
        margin: f64,
    },
    /// One B for the network: the largest calibrated max |input| × margin.
    PerNetwork {
        /// Multiplier ≥ 1 applied to the measured maximum.
        margin: f64,
    },
    /// A fixed B for every node (no calibration).
    Fixed(f64),
}

/// What replaces ReLU and max-pooling in a run.
#[derive(Debug, Clone, PartialEq)]
pub enum ActivationPolicy {
    /// The original network F.
    Exact,
    /// F^α: r̃_α for ReLU and M̃_{α,k²} for max-pooling, with the approximation range B per
    /// node (`ranges[node]`, every ReLU/MaxPool node must be present). A Clip node is
    /// approximated by two r̃_α ([`SignKernel::clip_in_place_stats`]) when `ranges` holds the
    /// keys of all its sites (`node` for ReLU(x − min), `nn::clip_upper_key(node)` for
    /// ReLU(x − max); see `Network::approx_sites`), and stays exact when it holds none (the
    /// convention of callers that do not model the Clip approximation).
    Approx {
        /// p_α.
        sign: SignKernel,
        /// B for each activation node.
        ranges: BTreeMap<NodeId, f64>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::poly::OddPoly;
    use proptest::prelude::*;
    use rug::Float;

    /// p(x) = (3x − x³)/2 composed `k` times: a sign approximation on [−1, 1].
    pub(crate) fn classic(k: usize) -> CompositePoly {
        let p = OddPoly::from_odd_coeffs(vec![Float::with_val(53, 1.5), Float::with_val(53, -0.5)])
            .unwrap();
        CompositePoly::new(vec![p; k]).unwrap()
    }

    proptest! {
        #[test]
        fn kernel_matches_scalar_composite(xs in prop::collection::vec(-1.0f64..1.0, 0..100)) {
            let c = classic(5);
            let k = SignKernel::new(4, &c);
            let mut y = xs.clone();
            k.sign_in_place(&mut y);
            for (a, x) in y.iter().zip(&xs) {
                prop_assert!((a - c.eval_f64(*x)).abs() <= 1e-15);
            }
        }

        #[test]
        fn relu_is_b_scaled_r(xs in prop::collection::vec(-30.0f64..30.0, 1..80), b in 1.0f64..40.0) {
            let c = classic(6);
            let k = SignKernel::new(4, &c);
            let mut y = xs.clone();
            let outside = k.relu_in_place(&mut y, b);
            prop_assert_eq!(outside as usize, xs.iter().filter(|v| v.abs() > b).count());
            // Inside [−B, B] the kernel equals B·r(x/B) to rounding; outside, the composite
            // diverges and is ill-conditioned, so only the count is checked there.
            for (a, x) in y.iter().zip(&xs).filter(|(_, x)| x.abs() <= b) {
                let u = x / b;
                let want = b * (u + u * c.eval_f64(u)) / 2.0;
                prop_assert!((a - want).abs() <= 1e-12 * b, "{} vs {}", a, want);
            }
        }

        #[test]
        fn f32_relu_kernel_matches_portable_bit_for_bit(
            xs in prop::collection::vec(-40.0f32..40.0, 0..100), nan_at in 0usize..120, b in 1.0f64..30.0,
        ) {
            // The dispatched f32 kernel (AVX2 + FMA here) against the portable loop: same
            // outputs bit for bit, same out-of-range count, same max |x| (NaN ignored).
            let k = SignKernel::new(4, &classic(6));
            let mut a = xs.clone();
            if let Some(v) = a.get_mut(nan_at) {
                *v = f32::NAN;
            }
            let mut p = a.clone();
            let (na, ma) = k.relu_in_place_stats(&mut a, b);
            let (np, mp) = k.relu_poly_portable(&mut p, b);
            prop_assert_eq!(na, np);
            prop_assert_eq!(ma, mp);
            prop_assert_eq!(a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), p.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
            let finite: Vec<f32> = xs.iter().enumerate().filter(|&(i, _)| i != nan_at).map(|(_, &v)| v).collect();
            prop_assert_eq!(na as usize, finite.iter().filter(|v| f64::from(v.abs()) > b).count());
            prop_assert_eq!(ma, finite.iter().fold(0.0f64, |m, v| m.max(f64::from(v.abs()))));
        }

        #[test]
        fn f32_fused_clip_matches_two_pass_bit_for_bit(
            xs in prop::collection::vec(-50.0f32..50.0, 0..130), nan_at in 0usize..150,
            lo in -3.0f64..1.0, width in 0.5f64..8.0, b_lo in 1.0f64..40.0, b_hi in 1.0f64..40.0,
        ) {
            // The dispatched f32 Clip (one fused AVX-512 pass where the CPU has it) against
            // the two-pass loop: same outputs bit for bit, same counts and maxima per side,
            // on lengths that leave partial chunks, small B (values outside [−B, B]) and a NaN.
            let k = SignKernel::new(4, &classic(6));
            let mut a = xs.clone();
            if let Some(v) = a.get_mut(nan_at) {
                *v = f32::NAN;
            }
            let mut p = a.clone();
            let lower = Some(ClipRelu { shift: lo, b: b_lo });
            let upper = Some(ClipRelu { shift: lo + width, b: b_hi });
            let sa = k.clip_in_place_stats(&mut a, lower, upper);
            let sp = k.clip_two_pass(&mut p, lower, upper);
            prop_assert_eq!(sa, sp);
            prop_assert_eq!(a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), p.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
        }

        #[test]
        fn clip_is_two_shifted_relus(
            xs in prop::collection::vec(-40.0f64..40.0, 1..300), lo in -3.0f64..1.0,
            width in 0.5f64..8.0, b_lo in 2.0f64..60.0, b_hi in 2.0f64..60.0, sides in 0usize..3,
        ) {
            // Against a direct scalar evaluation of min + B_lo·r(u/B_lo) − B_hi·r(v/B_hi),
            // u = x − min, v = x − max, r(t) = (t + t·p(t))/2 with p the composite evaluated
            // by CompositePoly::eval_f64 (not the kernel); an infinite bound drops its ReLU.
            // Counts and maxima against direct counts of |u| > B_lo, |v| > B_hi.
            let c = classic(6);
            let k = SignKernel::new(4, &c);
            let hi = lo + width;
            let lower = (sides != 1).then_some(ClipRelu { shift: lo, b: b_lo });
            let upper = (sides != 2).then_some(ClipRelu { shift: hi, b: b_hi });
            let mut y = xs.clone();
            let st = k.clip_in_place_stats(&mut y, lower, upper);
            let r = |t: f64, b: f64| { let u = t / b; b * (u + u * c.eval_f64(u)) / 2.0 };
            for (a, &x) in y.iter().zip(&xs) {
                let inside = lower.is_none_or(|l| (x - l.shift).abs() <= l.b)
                    && upper.is_none_or(|h| (x - h.shift).abs() <= h.b);
                if inside {
                    let base = lower.map_or(x, |l| l.shift + r(x - l.shift, l.b));
                    let want = base - upper.map_or(0.0, |h| r(x - h.shift, h.b));
                    prop_assert!((a - want).abs() <= 1e-12 * (b_lo + b_hi + x.abs()), "{} vs {}", a, want);
                }
            }
            for (side, s) in [lower, upper].iter().zip(st) {
                match side {
                    None => prop_assert_eq!(s, (0, 0.0)),
                    Some(cr) => {
                        let n = xs.iter().filter(|x| (*x - cr.shift).abs() > cr.b).count();
                        let m = xs.iter().fold(0.0f64, |m, x| m.max((x - cr.shift).abs()));
                        prop_assert_eq!(s.0 as usize, n);
                        prop_assert_eq!(s.1, m);
                    }
                }
            }
        }

        #[test]
        fn max_tree_follows_eq6(xs in prop::collection::vec(0.0f64..1.0, 1..10)) {
            // Against a direct recursive scalar evaluation of Eq. (6).
            fn m(c: &CompositePoly, a: f64, b: f64) -> f64 { ((a + b) + (a - b) * c.eval_f64(a - b)) / 2.0 }
            fn mm(c: &CompositePoly, x: &[f64]) -> f64 {
                match x.len() { 1 => x[0], n => { let k = n / 2; m(c, mm(c, &x[..k]), mm(c, &x[k..])) } }
            }
            let c = classic(8);
            let k = SignKernel::new(4, &c);
            let cols: Vec<Vec<f64>> = xs.iter().map(|&v| vec![v]).collect();
            let got = k.max_tree(&cols)[0];
            prop_assert!((got - mm(&c, &xs)).abs() < 1e-13);
        }
    }

    #[test]
    fn f32_relu6_is_within_twice_the_relu_error_at_alpha_14() {
        // ReLU6 with B = 40 for both ReLUs at α = 14 (Table 1's p_α) on a grid of f32 inputs
        // in [−40, 40]: within 2·B·2^−14 (each r̃_α is within B·2^−α of its ReLU on
        // [−B, B], §3) plus f32 rounding of min(max(x, 0), 6) evaluated directly.
        let s = crate::remez::table1_sign(14).unwrap();
        let k = SignKernel::new(14, s.poly());
        let xs: Vec<f32> = (-4000..=4000).map(|i| i as f32 / 100.0).collect();
        let mut y = xs.clone();
        let side = |shift| Some(ClipRelu { shift, b: 40.0 });
        let st = k.clip_in_place_stats(&mut y, side(0.0), side(6.0));
        // |x − 6| reaches 46 > B at x < −34: counted, and those inputs are left out below.
        assert_eq!(st[0], (0, 40.0));
        assert_eq!(st[1], (600, 46.0));
        let tol = 2.0 * 40.0 * (-14f64).exp2() + 1e-5;
        for (a, x) in y.iter().zip(&xs).filter(|(_, x)| **x >= -34.0) {
            let want = f64::from(*x).clamp(0.0, 6.0);
            assert!(
                (f64::from(*a) - want).abs() <= tol,
                "x = {x}: {a} vs {want}"
            );
        }
    }

    #[test]
    fn b_prime_and_depth() {
        let k = SignKernel::new(10, &classic(1));
        assert_eq!(ceil_log2(1), 0);
        assert_eq!(ceil_log2(4), 2);
        assert_eq!(ceil_log2(9), 4);
        // n = 4: B' = B / (0.5 − 2^−10).
        assert_eq!(k.b_prime(3.0, 4), 3.0 / (0.5 - 1.0 / 1024.0));
        assert_eq!(k.b_prime(3.0, 2), 6.0);
    }
}
