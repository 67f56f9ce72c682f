//! EvalMod: the homomorphic reduction modulo q_0 of bootstrapping, as a scaled sine evaluated
//! by a Chebyshev interpolant of a cosine followed by double-angle steps (Cheon–Han–Kim–Kim–
//! Song 2018; Han–Ki 2020 "Better bootstrapping for approximate HE", §3).
//!
//! After ModRaise and CoeffToSlot a slot holds u = t/(q_0·K) with t = m + q_0·I, |I| < K and
//! |m| ≪ q_0 (m the message coefficient at scale Δ_0). Then
//!
//! sin(2π·K·u) = sin(2π·t/q_0) = sin(2π·m/q_0) = 2π·m/q_0 − (2π·m/q_0)³/6 + …,
//!
//! so (q_0/2π)·sin(2πKu) recovers m with relative error (2π·m/q_0)²/6 (2^−35 for
//! m/q_0 = 2^−20). Evaluating sin(2πKu) directly needs degree ≈ 2πK on [−1, 1]; instead
//!
//! c_0(u) ≈ cos(2π·(K·u − 1/4)/2^r)  (Chebyshev interpolant of degree d on [−1, 1]),
//! c_{i+1} = 2·c_i² − 1  (cos 2θ = 2cos²θ − 1), r times,
//!
//! gives c_r ≈ cos(2π·K·u − π/2) = sin(2πKu). The interpolated function has frequency
//! ω = 2πK/2^r, and its Chebyshev coefficients 2·J_j(ω) decay super-exponentially once
//! j > ω, so d ≈ ω + O(ω^{1/3}·log(1/ε)); each double angle multiplies an error by at most
//! 4 (d/dc (2c² − 1) = 4c). Depth: that of the Chebyshev BSGS plan (at most ⌈log₂(d + 1)⌉ + 1; ⌈log₂(d + 1)⌉ when
//! the leaves, one level above their baby steps, meet giant steps one level lower — e.g.
//! d = 95: 7), plus r.
//!
//! # Cubic correction (issue 14)
//! The sine's output (q_0/2π)·sin(2π·m/q_0) misses m by m·x²/6, x = 2π·m/q_0: a bias that
//! grows with Δ_0/q_0 and caps the precision (the `bootstrap` module docs measure the
//! trade-off). With [`EvalModConfig::cubic_correction`] a second interpolant, sharing the
//! first one's Chebyshev powers T_j(u), approximates the second harmonic:
//!
//! b_0(u) ≈ a_0·cos(2π·(2K·u − 1/4)/2^{r+1}) = a_0·cos(2π·(K·u − 1/8)/2^r),
//! b_{i+1} = 2·b_i² − a_i²,  a_{i+1} = a_i²,  a_0 = 8^{−1/2^{r+1}},
//!
//! so that b_i = a_i·cos(2^i·ψ) exactly when b_0 = a_0·cos ψ (induction: 2a_i²cos² − a_i² =
//! a_i²·cos 2·), and after r + 1 steps b_{r+1} ≈ sin(2θ)/8, θ = 2πKu. The interpolated
//! frequency 2·2πK/2^{r+1} equals the first interpolant's, so the same degree serves; the
//! 1/8 rides on the Chebyshev coefficients and the subtracted constants (no level). The
//! output is
//!
//! sin θ − sin(2θ)/8 = (x − x³/6 + x⁵/120) − (2x − 8x³/6 + 32x⁵/120)/8 = (3/4)·x − x⁵/40 + O(x⁷)
//!
//! for θ = 2π·n + x (n an integer): the cubic terms cancel, the relative error falls from
//! x²/6 to x⁴/30, and the gain 3/4 is undone by the SlotToCoeff constant
//! ([`EvalModConfig::output_gain`]). Depth: the second chain has one more double angle, so
//! EvalMod consumes one level more (9 instead of 8 for K = 12, h = 32) and has 24 instead of
//! 16 non-scalar and 84 instead of 42 scalar multiplications (the second chain's giant-step
//! products, leaves and double angles); measured at N = 2^16 (eight special primes, full
//! slots, Δ_0 = 2^56 against the sine at 2^54, one run each on a busy 2-core machine): 12.85 s
//! against 11.38 s of CPU time per bootstrap (1.13×; the bench's `/proc/self/stat` median of 3).
//!
//! Why not y + y³/6 after the sine (the arcsine's Taylor polynomial, as Lee et al. 2021 and
//! Bossuat et al. 2021 compose): y³ is two levels below y. Nor can the last double angle
//! absorb it: with one extra level the output would be a quartic P(c) of c = cos(θ/2 − π/4),
//! the value before it; near the integers c takes values ±c(x) on two families of points with
//! the same output there, so P acts as its even part S(c²) = S((1 + y)/2), a quadratic in y
//! with no cubic term (the same holds one step earlier, degree 8 in cos(θ/4 − π/8)). The
//! second harmonic is an independent signal, one level deeper only because its chain has one
//! more double angle.
//!
//! K comes from the secret: for a uniform ternary secret with h ≤ N non-zero coefficients and
//! c_1 uniform mod q_0, the coefficient I of t = c_0 + c_1·s over q_0 is at most
//! 1/2 + |Σ_j ±c_{1,j}|/q_0, a sum of h uniform variables on [−1/2, 1/2): standard deviation
//! √(h/12) ≤ √(N/12). [`EvalModConfig::for_ring`] takes K = ⌈1 + z·√(N/12)⌉ with z = 6.5
//! (a coefficient exceeds it with probability 2·Φ(−6.5) ≈ 8·10^−11; N·8·10^−11 per
//! bootstrap, 5·10^−6 at N = 2^16): a dense secret, no sparsity assumption. With sparse-secret
//! encapsulation (`encapsulation`) ModRaise runs under a weight-h secret and
//! [`EvalModConfig::for_sparse_secret`] takes K from the exact Irwin–Hall tail of h uniforms
//! (K = 12 for h = 32, failure 2^−47.2 per coefficient, 2^−31.2 per bootstrap at N = 2^16).

#![expect(
    clippy::indexing_slicing,
    reason = "Chebyshev coefficient and node indices are < degree + 1 by construction"
)]

use rug::Float;

use crate::poly::{EvalPlan, Op};

use super::CkksError;

/// Configuration of EvalMod.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct EvalModConfig {
    /// K: the input interval is t/q_0 ∈ [−K, K].
    pub k: f64,
    /// Degree d of the Chebyshev interpolant of the cosine.
    pub degree: usize,
    /// Number r of double-angle steps.
    pub double_angles: u32,
    /// The cubic correction (module docs): subtract sin(2θ)/8, evaluated by a second
    /// interpolant of the same degree with r + 1 double angles; the output is then
    /// (3/4)·2π·(Ku − n) up to a relative x⁴/30 instead of sin(2π(Ku − n)) with its relative
    /// x²/6. Not serialised when false (the reports of the plain sine keep their shape).
    #[serde(skip_serializing_if = "is_false")]
    pub cubic_correction: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The z-score of [`EvalModConfig::for_ring`]'s bound on |I|.
pub const K_SIGMAS: f64 = 6.5;

/// Interpolation error (against the cosine) the automatic degree choice aims at: 2^−44,
/// near the f64 floor of a Chebyshev sum of values ≤ 1.
const TARGET_ERR: f64 = 5.7e-14;

impl EvalModConfig {
    /// K = ⌈1 + 6.5·√(N/12)⌉ for a dense uniform ternary secret at ring degree N (module
    /// docs); the fewest double angles r for which the interpolated frequency 2πK/2^r is at
    /// most 50 (3 at N = 2^10, 6 at N = 2^15 and 2^16), and the degree of
    /// [`EvalModConfig::with_k`] (95 for all three).
    ///
    /// # Errors
    /// As [`EvalModConfig::with_k`].
    pub fn for_ring(n: usize) -> Result<Self, CkksError> {
        let k = (1.0 + K_SIGMAS * (n as f64 / 12.0).sqrt()).ceil();
        let mut r = 0u32;
        while std::f64::consts::TAU * k / 2f64.powi(i32::try_from(r).unwrap_or(0)) > 50.0 {
            r += 1;
        }
        Self::with_k(k, r)
    }

    /// EvalMod after sparse-secret encapsulation with an ephemeral secret of weight h
    /// (`encapsulation` module docs): K of [`super::sparse_k`] (12 for h = 32, failure
    /// probability 2^−47.2 per coefficient), and among 0 ..= 6 double angles the configuration
    /// of [`EvalModConfig::with_k`] of least depth, ties broken by fewer non-scalar
    /// multiplications. h = 32: r = 2, degree 47, depth 8, 16 non-scalar and 42 scalar
    /// multiplications (r = 0: degree 127, also depth 8, but 24 and 120; the dense secret at
    /// N = 2^16: degree 95, r = 6, depth 13, 28 and 90).
    ///
    /// # Errors
    /// [`CkksError::BadParam`] for h = 0.
    pub fn for_sparse_secret(h: usize) -> Result<Self, CkksError> {
        Self::sparse(h, false)
    }

    /// As [`EvalModConfig::for_sparse_secret`] with the cubic correction (module docs;
    /// [`EvalModConfig::with_k_corrected`]). h = 32: K = 12, r = 2, degree 47 for both
    /// interpolants, depth 9 (one more than without), 24 non-scalar and 84 scalar
    /// multiplications.
    ///
    /// # Errors
    /// As [`EvalModConfig::for_sparse_secret`].
    pub fn for_sparse_secret_corrected(h: usize) -> Result<Self, CkksError> {
        Self::sparse(h, true)
    }

    fn sparse(h: usize, corrected: bool) -> Result<Self, CkksError> {
        let h32 = u32::try_from(h).unwrap_or(u32::MAX);
        if h32 == 0 || h32 == u32::MAX {
            return Err(CkksError::BadParam {
                what: "sparse-secret weight".into(),
                value: h.to_string(),
                valid: "1..2^32".into(),
            });
        }
        let (k, _) = super::sparse_k(h32);
        let mut best: Option<((usize, u32), Self)> = None;
        for r in 0..=6 {
            if let Ok(c) = Self::choose(k, r, corrected) {
                let cost = (c.depth(), c.plan().nonscalar_mults());
                if best.as_ref().is_none_or(|(b, _)| cost < *b) {
                    best = Some((cost, c));
                }
            }
        }
        best.map(|(_, c)| c).ok_or_else(|| CkksError::BadParam {
            what: "EvalMod for a sparse secret".into(),
            value: format!("h = {h}, K = {k}"),
            valid: "a weight whose K has an interpolant of degree ≤ 2047".into(),
        })
    }

    /// K and r given; the smallest degree d ∈ {2^j − 1, 3·2^{j−1} − 1} whose interpolant is
    /// within 2^−44 of the cosine on a grid of [−1, 1] (near the f64 floor; the CKKS noise of
    /// the evaluation is far above it). No cubic correction.
    ///
    /// # Errors
    /// [`CkksError::BadParam`] for K < 1, more than 12 double angles, or when no degree
    /// ≤ 3071 reaches 2^−44.
    pub fn with_k(k: f64, double_angles: u32) -> Result<Self, CkksError> {
        Self::choose(k, double_angles, false)
    }

    /// As [`EvalModConfig::with_k`] with the cubic correction: the degree is the smallest at
    /// which both interpolants (the cosine and the second harmonic's, module docs) are within
    /// 2^−44 of their functions.
    ///
    /// # Errors
    /// As [`EvalModConfig::with_k`] (at most 11 double angles: the second chain has r + 1).
    pub fn with_k_corrected(k: f64, double_angles: u32) -> Result<Self, CkksError> {
        Self::choose(k, double_angles, true)
    }

    fn choose(k: f64, double_angles: u32, cubic_correction: bool) -> Result<Self, CkksError> {
        let max_r = if cubic_correction { 11 } else { 12 };
        if !(k >= 1.0 && k.is_finite()) || double_angles > max_r {
            return Err(CkksError::BadParam {
                what: "EvalMod K / double angles".into(),
                value: format!("{k} / {double_angles}"),
                valid: format!("K ≥ 1, at most {max_r} double angles"),
            });
        }
        let mut j = 3u32;
        while j <= 11 {
            for d in [(1usize << j) - 1, 3 * (1usize << (j - 1)) - 1] {
                let c = Self {
                    k,
                    degree: d,
                    double_angles,
                    cubic_correction,
                };
                if c.interpolation_error() <= TARGET_ERR {
                    return Ok(c);
                }
            }
            j += 1;
        }
        Err(CkksError::BadParam {
            what: "EvalMod degree".into(),
            value: format!("K = {k}, {double_angles} double angles"),
            valid: "a configuration whose interpolant degree is ≤ 2047 (add double angles)".into(),
        })
    }

    /// The gain g of the output near the integers: the plan returns g·2π·(Ku − n) to first
    /// order (1 for the sine; 3/4 with the cubic correction, module docs). Bootstrapping
    /// divides its SlotToCoeff constant by it.
    pub fn output_gain(&self) -> f64 {
        if self.cubic_correction {
            0.75
        } else {
            1.0
        }
    }

    /// The function the plan approximates, exactly (f64), as a function of θ = 2πKu:
    /// sin θ, or sin θ − sin(2θ)/8 with the cubic correction.
    pub fn ideal(&self, theta: f64) -> f64 {
        if self.cubic_correction {
            theta.sin() - (2.0 * theta).sin() / 8.0
        } else {
            theta.sin()
        }
    }

    /// What EvalMod contributes to the bootstrapped message, in the units of m: for
    /// f = t/q_0 (t = m + q_0·I), the value (q_0/(2π·g))·ideal(2π·f)/q_0 =
    /// ideal(2πf)/(2π·g), which is f − round(f) up to the sine's bias (f³-order relative
    /// x²/6, x = 2π(f − round f); x⁴/30 with the cubic correction). The model of the
    /// deterministic part of the bootstrap error (the bench compares the measured output
    /// with it).
    pub fn reduce_model(&self, f: f64) -> f64 {
        self.ideal(std::f64::consts::TAU * f) / (std::f64::consts::TAU * self.output_gain())
    }

    /// a_0 = 8^{−1/2^{r+1}}: the scale of the second interpolant (module docs).
    fn harmonic_scale0(&self) -> f64 {
        let steps = 2f64.powi(i32::try_from(self.double_angles + 1).unwrap_or(0));
        8f64.powf(-1.0 / steps)
    }

    /// The function interpolated: cos(2π·(K·u − 1/4)/2^r).
    fn target(&self, u: f64) -> f64 {
        let r = 2f64.powi(i32::try_from(self.double_angles).unwrap_or(0));
        (std::f64::consts::TAU * (self.k * u - 0.25) / r).cos()
    }

    /// The second harmonic's function, unscaled: cos(2π·(K·u − 1/8)/2^r) (its r + 1 double
    /// angles give cos(4πKu − π/2) = sin 2θ).
    fn target_harmonic(&self, u: f64) -> f64 {
        let r = 2f64.powi(i32::try_from(self.double_angles).unwrap_or(0));
        (std::f64::consts::TAU * (self.k * u - 0.125) / r).cos()
    }

    /// Chebyshev coefficients c_0 … c_d of the interpolant at the d + 1 Chebyshev nodes
    /// (discrete cosine transform): p(u) = Σ_j c_j·T_j(u).
    pub fn chebyshev_coeffs(&self) -> Vec<f64> {
        chebyshev_interpolant(self.degree, |u| self.target(u))
    }

    /// The second interpolant's coefficients (cubic correction): a_0 times the interpolant of
    /// cos(2π·(K·u − 1/8)/2^r). Empty without the correction.
    pub fn harmonic_coeffs(&self) -> Vec<f64> {
        if !self.cubic_correction {
            return Vec::new();
        }
        let a0 = self.harmonic_scale0();
        chebyshev_interpolant(self.degree, |u| self.target_harmonic(u))
            .into_iter()
            .map(|c| c * a0)
            .collect()
    }

    /// The approximation of [`EvalModConfig::ideal`] in f64: interpolant(s) (Clenshaw), then
    /// the double angles, then (with the correction) the difference of the two chains.
    pub fn eval_f64(&self, u: f64) -> f64 {
        self.eval_with(&self.chebyshev_coeffs(), &self.harmonic_coeffs(), u)
    }

    fn eval_with(&self, c: &[f64], h: &[f64], u: f64) -> f64 {
        let mut v = clenshaw(c, u);
        for _ in 0..self.double_angles {
            v = 2.0 * v * v - 1.0;
        }
        if self.cubic_correction {
            let mut a = self.harmonic_scale0();
            let mut w = clenshaw(h, u);
            for _ in 0..=self.double_angles {
                w = 2.0 * w * w - a * a;
                a *= a;
            }
            v -= w;
        }
        v
    }

    /// max |interpolant − its function| on a grid of 4097 points of [−1, 1], over both
    /// interpolants with the cubic correction (the second one unscaled; measured, f64).
    pub fn interpolation_error(&self) -> f64 {
        let c = self.chebyshev_coeffs();
        let h = if self.cubic_correction {
            chebyshev_interpolant(self.degree, |u| self.target_harmonic(u))
        } else {
            Vec::new()
        };
        (0..=4096)
            .map(|i| {
                let u = -1.0 + 2.0 * i as f64 / 4096.0;
                let e = (clenshaw(&c, u) - self.target(u)).abs();
                if h.is_empty() {
                    e
                } else {
                    e.max((clenshaw(&h, u) - self.target_harmonic(u)).abs())
                }
            })
            .fold(0.0, f64::max)
    }

    /// max |approximation − ideal(2πKu)| on a grid of 4097 points of [−1, 1] (measured, f64).
    pub fn max_error(&self) -> f64 {
        let c = self.chebyshev_coeffs();
        let h = self.harmonic_coeffs();
        (0..=4096)
            .map(|i| {
                let u = -1.0 + 2.0 * i as f64 / 4096.0;
                let v = self.eval_with(&c, &h, u);
                (v - self.ideal(std::f64::consts::TAU * self.k * u)).abs()
            })
            .fold(0.0, f64::max)
    }

    /// The evaluation plan: Chebyshev BSGS of the interpolant, then the double angles; with
    /// the cubic correction the second interpolant on the same Chebyshev powers, its r + 1
    /// scaled double angles b ↦ 2b² − a_i², and the difference.
    pub fn plan(&self) -> EvalPlan {
        let c = self.chebyshev_coeffs();
        let mut b = ChebPlan::new(self.degree);
        let mut out = b.eval(&c);
        for _ in 0..self.double_angles {
            let sq = b.push(Op::Mul(out, out));
            let two = b.push(Op::MulInt(sq, 2));
            let m1 = b.constant(-1.0);
            out = b.push(Op::AddConst(two, m1));
        }
        if self.cubic_correction {
            let h = self.harmonic_coeffs();
            let mut w = b.eval(&h);
            let mut a = self.harmonic_scale0();
            for _ in 0..=self.double_angles {
                let sq = b.push(Op::Mul(w, w));
                let two = b.push(Op::MulInt(sq, 2));
                let ma = b.constant(-a * a);
                w = b.push(Op::AddConst(two, ma));
                a *= a;
            }
            out = b.push(Op::Sub(out, w));
        }
        EvalPlan {
            ops: b.ops,
            coeffs: b.coeffs,
            output: out,
        }
    }

    /// Levels EvalMod consumes (the plan's depth).
    pub fn depth(&self) -> usize {
        self.plan().depth() as usize
    }
}

/// Chebyshev coefficients c_0 … c_d of the interpolant of f at the d + 1 Chebyshev nodes of
/// the first kind (discrete cosine transform): p(u) = Σ_j c_j·T_j(u).
fn chebyshev_interpolant(degree: usize, f: impl Fn(f64) -> f64) -> Vec<f64> {
    let n = degree + 1;
    let nodes: Vec<f64> = (0..n)
        .map(|i| f((std::f64::consts::PI * (i as f64 + 0.5) / n as f64).cos()))
        .collect();
    (0..n)
        .map(|j| {
            let s: f64 = nodes
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    f * (std::f64::consts::PI * j as f64 * (i as f64 + 0.5) / n as f64).cos()
                })
                .sum();
            let c = 2.0 * s / n as f64;
            if j == 0 {
                c / 2.0
            } else {
                c
            }
        })
        .collect()
}

fn clenshaw(c: &[f64], u: f64) -> f64 {
    let (mut b1, mut b2) = (0.0, 0.0);
    for &ck in c.iter().skip(1).rev() {
        let b0 = 2.0 * u * b1 - b2 + ck;
        b2 = b1;
        b1 = b0;
    }
    u * b1 - b2 + c.first().copied().unwrap_or(0.0)
}

/// Builder of a Chebyshev BSGS plan on [−1, 1]: T_1 … T_{2^l − 1} (baby steps) and
/// T_{2^l}, T_{2^{l+1}}, … (giant steps) by T_{2m} = 2T_m² − 1 and T_{m+n} = 2T_m·T_n − T_{m−n};
/// p = q·T_M + r by the Chebyshev division T_j = 2·T_M·T_{j−M} − T_{2M−j} (M < j < 2M), leaves
/// Σ c_j T_j. Depth at most ⌈log₂(d + 1)⌉ + 1 (module docs).
struct ChebPlan {
    ops: Vec<Op>,
    coeffs: Vec<Float>,
    /// Index of T_j in `ops` (None until built).
    t: Vec<Option<usize>>,
    baby: usize,
}

impl ChebPlan {
    fn new(degree: usize) -> Self {
        let logd = usize::BITS - degree.max(1).leading_zeros();
        let l = logd.div_ceil(2).max(1);
        let baby = 1usize << l;
        let mut s = Self {
            ops: vec![Op::Input],
            coeffs: Vec::new(),
            t: vec![None; (degree + 1).max(baby + 1).next_power_of_two() + 1],
            baby,
        };
        s.t[1] = Some(0);
        s
    }

    fn push(&mut self, op: Op) -> usize {
        self.ops.push(op);
        self.ops.len() - 1
    }

    fn constant(&mut self, c: f64) -> usize {
        self.coeffs.push(Float::with_val(64, c));
        self.coeffs.len() - 1
    }

    /// T_j, built on demand (levels ⌈log₂ j⌉).
    fn t(&mut self, j: usize) -> usize {
        if let Some(Some(i)) = self.t.get(j) {
            return *i;
        }
        // j ≥ 2: split j = a + b with a the largest power of two < j (a ≥ b).
        let a = if j.is_power_of_two() {
            j / 2
        } else {
            1usize << (usize::BITS - 1 - j.leading_zeros())
        };
        let b = j - a;
        let ta = self.t(a);
        let tb = self.t(b);
        let prod = self.push(Op::Mul(ta, tb));
        let two = self.push(Op::MulInt(prod, 2));
        let r = if a == b {
            let m1 = self.constant(-1.0);
            self.push(Op::AddConst(two, m1))
        } else {
            let td = self.t(a - b);
            self.push(Op::Sub(two, td))
        };
        if let Some(slot) = self.t.get_mut(j) {
            *slot = Some(r);
        }
        r
    }

    /// Σ c_j T_j.
    fn eval(&mut self, c: &[f64]) -> usize {
        let deg = c.iter().rposition(|&x| x != 0.0).unwrap_or(0);
        if deg < self.baby {
            return self.leaf(&c[..=deg]);
        }
        // M: the largest power of two ≤ deg (a giant step, ≥ the baby bound).
        let m = 1usize << (usize::BITS - 1 - deg.leading_zeros());
        let mut q = vec![0.0; deg - m + 1];
        let mut r: Vec<f64> = c[..m].to_vec();
        for j in m..=deg {
            if j == m {
                q[0] += c[j];
            } else {
                q[j - m] += 2.0 * c[j];
                r[2 * m - j] -= c[j];
            }
        }
        let qv = self.eval(&q);
        let tm = self.t(m);
        let prod = self.push(Op::Mul(qv, tm));
        let rv = self.eval(&r);
        self.push(Op::Add(prod, rv))
    }

    fn leaf(&mut self, c: &[f64]) -> usize {
        let mut acc: Option<usize> = None;
        for (j, &cj) in c.iter().enumerate().skip(1) {
            if cj == 0.0 {
                continue;
            }
            let tj = self.t(j);
            let k = self.constant(cj);
            let term = self.push(Op::MulConst(tj, k));
            acc = Some(match acc {
                None => term,
                Some(a) => self.push(Op::Add(a, term)),
            });
        }
        let acc = match acc {
            Some(a) => a,
            None => {
                let z = self.constant(0.0);
                self.push(Op::MulConst(0, z))
            }
        };
        match c.first() {
            Some(&c0) if c0 != 0.0 => {
                let k = self.constant(c0);
                self.push(Op::AddConst(acc, k))
            }
            _ => acc,
        }
    }
}
