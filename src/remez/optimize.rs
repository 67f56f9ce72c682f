//! The degree optimizer (Lee–Lee–No–Kim's "Algorithm 5"; paper §2.2, Table 1) and the search
//! for the max-function factor ζ.
//!
//! # Optimizer
//! Given ε and β, find component degrees d_1, …, d_k (odd, 3 ≤ d_i ≤ 63) such that the
//! composite of [`composite_sign`](super::composite_sign) satisfies τ_k ≤ 2^−β, minimising
//! first the depth Σ⌈log₂(d_i+1)⌉ and then the number of non-scalar multiplications Σ
//! [`odd_bsgs_cost`](crate::poly::odd_bsgs_cost)(d_i) of the crate's own odd BSGS; remaining
//! ties go to the smaller final τ. Two facts make the search exact and small:
//! 1. the minimax error of a stage decreases with the degree and increases with the width of
//!    its interval, and each stage's interval is [1−τ, 1+τ] of the previous τ, so the final τ
//!    is monotone in every τ_i: for a given split of the depth, the largest degree per stage
//!    is best (this gives the minimal depth D*), and a (degree, cost) pair that is beaten by a
//!    larger degree of equal depth and cost is never needed;
//! 2. the minimax error only depends on the ratio a/b (sgn is scale invariant), so the search
//!    runs the Remez exchange in `f64` (Chebyshev basis on [a², b²]; relative accuracy ~1e−9)
//!    with a cache keyed by the exact stage input. The chosen set is then rebuilt in
//!    multi-precision and re-checked; a set whose f64 τ is within 10^−6 of the target is
//!    decided by the multi-precision result.
//!
//! # ζ search
//! For α, β = α − 1 and ε = ζ·2^−α, m_α(a,b) = ((a+b) + (a−b)p(a−b))/2 meets the max-function
//! condition (1) |m_α − max| ≤ 2^−α on [0,1]² iff |x·p(x) − |x|| ≤ 2^{1−α} on [−1, 1]
//! (x = a − b). That quantity is *measured* (dense f64 grid, then the largest local maxima
//! refined in 256-bit arithmetic) — certification is `certify`'s job.

use std::collections::HashMap;

use rug::Float;

use super::composite::{composite_with_zeta, eps_from_zeta, CompositeSign};
use super::exchange::remez;
use super::RemezError;
use crate::poly::{odd_bsgs_cost, Degree};

/// Largest component degree the optimizer considers.
pub const OPT_MAX_DEGREE: u32 = 63;
/// Largest total depth the optimizer searches.
pub const OPT_MAX_DEPTH: u32 = 40;

/// The input of a stage: the first stage sees [ε, 1], later ones [1−τ, 1+τ].
#[derive(Debug, Clone, Copy, PartialEq)]
enum StageIn {
    First(f64),
    Later(f64),
}

impl StageIn {
    fn key(self) -> (bool, u64) {
        match self {
            StageIn::First(e) => (true, e.to_bits()),
            StageIn::Later(t) => (false, t.to_bits()),
        }
    }
    fn interval(self) -> (f64, f64) {
        match self {
            StageIn::First(e) => (e, 1.0),
            StageIn::Later(t) => (1.0 - t, 1.0 + t),
        }
    }
    /// Closeness of the composite so far (1 before any stage).
    fn tau(self) -> f64 {
        match self {
            StageIn::First(_) => 1.0,
            StageIn::Later(t) => t,
        }
    }
}

/// Result of the degree optimizer.
#[derive(Debug, Clone, PartialEq)]
pub struct OptimalDegrees {
    /// Component degrees in application order.
    pub degrees: Vec<Degree>,
    /// Σ⌈log₂(d_i+1)⌉.
    pub depth: u32,
    /// Σ non-scalar multiplications of the odd BSGS.
    pub mults: u32,
    /// The final τ estimated by the f64 search (measured).
    pub tau_estimate: f64,
}

/// The degree optimizer with its cache of stage errors (reuse one instance across many
/// (ε, β) queries, e.g. a ζ search).
#[derive(Debug, Default)]
pub struct SignOptimizer {
    cache: HashMap<(u32, bool, u64), f64>,
    inv_cache: HashMap<(u32, u64), f64>,
    thresholds: HashMap<u32, Vec<f64>>,
    /// Number of f64 Remez exchanges run so far.
    pub remez_calls: u64,
}

/// Odd degrees of depth k that are not dominated by a larger degree of equal depth and equal
/// or lower multiplication count.
fn pareto_degrees(k: u32) -> Vec<Degree> {
    let lo = (1u32 << (k - 1)) | 1;
    let hi = ((1u32 << k) - 1).min(OPT_MAX_DEGREE);
    let mut out: Vec<Degree> = Vec::new();
    let mut d = hi;
    let mut best_cost = u32::MAX;
    while d >= lo {
        let c = odd_bsgs_cost(Degree(d));
        if c < best_cost {
            out.push(Degree(d));
            best_cost = c;
        }
        if d < 2 {
            break;
        }
        d -= 2;
    }
    out.reverse();
    out
}

impl SignOptimizer {
    /// A fresh optimizer with an empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Minimax error of degree d on the stage input (f64 Remez, cached).
    fn stage(&mut self, d: Degree, s: StageIn) -> Result<f64, RemezError> {
        let (flag, bits) = s.key();
        if let Some(t) = self.cache.get(&(d.0, flag, bits)) {
            return Ok(*t);
        }
        let (a, b) = s.interval();
        self.remez_calls += 1;
        let n = (d.0 as usize).div_ceil(2);
        let t = match remez(&a, &b, n, 1e-10, 60) {
            Ok(m) => m.max_err,
            // f64 can stall at its noise floor on extreme inputs; fall back to multi-precision.
            Err(_) => {
                let prec = super::composite::work_precision(a, b, n);
                let m = remez(
                    &Float::with_val(prec, a),
                    &Float::with_val(prec, b),
                    n,
                    2f64.powi(-40),
                    80,
                )?;
                m.max_err.to_f64()
            }
        };
        self.cache.insert((d.0, flag, bits), t);
        Ok(t)
    }

    /// sup{τ ∈ (0,1) : stage error of degree d on [1−τ, 1+τ] ≤ y}: the stage map is
    /// increasing in τ and never exceeds τ (p(x) = x has error τ), so the answer lies in
    /// [y, 1); found by Illinois regula falsi on ln f(τ) − ln y in logit(τ).
    fn inv_stage(&mut self, d: Degree, y: f64) -> Result<f64, RemezError> {
        let key = (d.0, y.to_bits());
        if let Some(v) = self.inv_cache.get(&key) {
            return Ok(*v);
        }
        let hi_tau = 1.0 - 1e-9;
        let out = if y.is_nan() || y <= 0.0 {
            0.0
        } else if y >= hi_tau || self.stage(d, StageIn::Later(hi_tau))? <= y {
            hi_tau
        } else {
            let logit = |t: f64| (t / (1.0 - t)).ln();
            let unlogit = |v: f64| 1.0 / (1.0 + (-v).exp());
            let ly = y.ln();
            let mut lo = logit(y);
            let mut hi = logit(hi_tau);
            let mut flo = self.stage(d, StageIn::Later(y))?.ln() - ly;
            let mut fhi = self.stage(d, StageIn::Later(hi_tau))?.ln() - ly;
            if flo > 0.0 {
                // Rounding at the f64 noise floor: treat y itself as the threshold.
                lo = hi;
            }
            let mut side = 0i8;
            for _ in 0..100 {
                if hi - lo <= 1e-11 * (1.0 + lo.abs()) {
                    break;
                }
                let mut v = hi - fhi * (hi - lo) / (fhi - flo);
                if !(v > lo && v < hi) {
                    v = 0.5 * (lo + hi);
                }
                let fv = self.stage(d, StageIn::Later(unlogit(v)))?.ln() - ly;
                if fv <= 0.0 {
                    lo = v;
                    flo = fv;
                    if side == -1 {
                        fhi *= 0.5;
                    }
                    side = -1;
                } else {
                    hi = v;
                    fhi = fv;
                    if side == 1 {
                        flo *= 0.5;
                    }
                    side = 1;
                }
            }
            unlogit(lo)
        };
        self.inv_cache.insert(key, out);
        Ok(out)
    }

    /// T(r): the largest τ from which exactly r more levels of depth can reach 2^−β, by the
    /// backward recursion T(0) = 2^−β, T(1) = 0 (no depth-1 stage),
    /// T(r) = max_k g_k(T(r − k)) with g_k the inverse of the stage map of degree 2^k − 1
    /// (fact 1 of the module docs: feasible ⇔ τ ≤ T(r)). Independent of ε, cached per β.
    fn threshold(&mut self, beta: u32, r: u32) -> Result<f64, RemezError> {
        let mut t = self
            .thresholds
            .remove(&beta)
            .unwrap_or_else(|| vec![2f64.powi(-i32::try_from(beta).unwrap_or(40)), 0.0]);
        let res = (|| {
            while t.len() <= r as usize {
                let n = t.len();
                let mut best = 0.0f64;
                for k in 2..=n.min(6) {
                    let y = t.get(n - k).copied().unwrap_or(0.0);
                    if y > 0.0 {
                        let d = Degree(((1u32 << k) - 1).min(OPT_MAX_DEGREE));
                        best = best.max(self.inv_stage(d, y)?);
                    }
                }
                t.push(best);
            }
            Ok(t.get(r as usize).copied().unwrap_or(0.0))
        })();
        self.thresholds.insert(beta, t);
        res
    }

    /// Can state `s` reach 2^−β with exactly `r` more levels (within the f64 search's
    /// relative slack of 10^−6)?
    fn feasible(&mut self, s: StageIn, r: u32, beta: u32) -> Result<bool, RemezError> {
        const SLACK: f64 = 1.0 + 1e-6;
        match s {
            StageIn::Later(t) => {
                if r == 0 {
                    return Ok(t <= 2f64.powi(-i32::try_from(beta).unwrap_or(40)) * SLACK);
                }
                Ok(t <= self.threshold(beta, r)? * SLACK)
            }
            StageIn::First(_) => {
                for k in 2..=r.min(6) {
                    let d = Degree(((1u32 << k) - 1).min(OPT_MAX_DEGREE));
                    let t = self.stage(d, s)?;
                    if self.feasible(StageIn::Later(t), r - k, beta)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
        }
    }

    /// Optimal degrees for (β, ε)-closeness: minimal depth, then minimal multiplications,
    /// then smallest τ.
    ///
    /// # Errors
    /// [`RemezError::EpsOutOfRange`], [`RemezError::BetaOutOfRange`] (β > 40),
    /// [`RemezError::Unreachable`] when no set within [`OPT_MAX_DEPTH`] reaches 2^−β.
    pub fn optimize(&mut self, eps: f64, beta: u32) -> Result<OptimalDegrees, RemezError> {
        self.optimize_excluding(eps, beta, &[])
    }

    fn optimize_excluding(
        &mut self,
        eps: f64,
        beta: u32,
        banned: &[Vec<Degree>],
    ) -> Result<OptimalDegrees, RemezError> {
        if !(eps > 0.0 && eps < 1.0) {
            return Err(RemezError::EpsOutOfRange {
                eps: eps.to_string(),
            });
        }
        if beta > 40 {
            return Err(RemezError::BetaOutOfRange {
                beta: i64::from(beta),
            });
        }
        let target = 2f64.powi(-i32::try_from(beta).unwrap_or(40));
        let start = StageIn::First(eps);
        // Minimal depth D*.
        let mut dstar = None;
        for r in 2..=OPT_MAX_DEPTH {
            if r == 1 {
                continue;
            }
            if self.feasible(start, r, beta)? {
                dstar = Some(r);
                break;
            }
        }
        let Some(dstar) = dstar else {
            return Err(RemezError::Unreachable {
                beta,
                eps: eps.to_string(),
                max_depth: OPT_MAX_DEPTH,
                max_degree: OPT_MAX_DEGREE,
            });
        };
        // Minimal multiplications at depth D* (branch and bound).
        let pareto: Vec<Vec<Degree>> = (0..=6u32)
            .map(|k| if k < 2 { Vec::new() } else { pareto_degrees(k) })
            .collect();
        // fill[r] = fewest multiplications that can fill exactly r levels.
        let min_cost: Vec<u32> = pareto
            .iter()
            .map(|v| {
                v.iter()
                    .map(|d| odd_bsgs_cost(*d))
                    .min()
                    .unwrap_or(u32::MAX / 4)
            })
            .collect();
        let mut fill = vec![u32::MAX / 4; OPT_MAX_DEPTH as usize + 1];
        if let Some(f0) = fill.first_mut() {
            *f0 = 0;
        }
        for r in 1..=OPT_MAX_DEPTH as usize {
            let mut best = u32::MAX / 4;
            for k in 2..=6usize.min(r) {
                let prev = fill.get(r - k).copied().unwrap_or(u32::MAX / 4);
                let c = min_cost.get(k).copied().unwrap_or(u32::MAX / 4);
                best = best.min(prev.saturating_add(c));
            }
            if let Some(slot) = fill.get_mut(r) {
                *slot = best;
            }
        }
        // The f64 feasibility test is deliberately permissive (relative slack 10^−6); should no
        // sequence of depth D* survive the exact end check, the next depth is searched.
        for depth in dstar..=OPT_MAX_DEPTH {
            let mut ctx = Dfs {
                target,
                beta,
                pareto: &pareto,
                fill: &fill,
                best: None,
                seq: Vec::new(),
                banned,
            };
            ctx.run(self, start, depth, 0)?;
            if let Some((mults, tau, degrees)) = ctx.best {
                return Ok(OptimalDegrees {
                    degrees,
                    depth,
                    mults,
                    tau_estimate: tau,
                });
            }
        }
        Err(RemezError::Unreachable {
            beta,
            eps: eps.to_string(),
            max_depth: OPT_MAX_DEPTH,
            max_degree: OPT_MAX_DEGREE,
        })
    }

    /// Optimal degrees, rebuilt in multi-precision and checked: τ_k ≤ 2^−β. A set the f64
    /// search accepted within its accuracy but the multi-precision check rejects is excluded
    /// and the search repeated.
    ///
    /// # Errors
    /// As [`SignOptimizer::optimize`], plus Remez failures of the rebuild.
    pub fn optimal_composite(
        &mut self,
        alpha: Option<u32>,
        zeta: Option<u32>,
        eps: &Float,
        beta: u32,
    ) -> Result<(OptimalDegrees, CompositeSign), RemezError> {
        let mut banned: Vec<Vec<Degree>> = Vec::new();
        let target = 2f64.powi(-i32::try_from(beta).unwrap_or(40));
        for _ in 0..8 {
            let opt = self.optimize_excluding(eps.to_f64(), beta, &banned)?;
            let mut c = super::composite_sign(eps, &opt.degrees)?;
            c.alpha = alpha;
            c.zeta = zeta;
            if c.tau().to_f64() <= target {
                return Ok((opt, c));
            }
            banned.push(opt.degrees.clone());
        }
        Err(RemezError::Unreachable {
            beta,
            eps: eps.to_string(),
            max_depth: OPT_MAX_DEPTH,
            max_degree: OPT_MAX_DEGREE,
        })
    }
}

struct Dfs<'a> {
    target: f64,
    beta: u32,
    pareto: &'a [Vec<Degree>],
    fill: &'a [u32],
    best: Option<(u32, f64, Vec<Degree>)>,
    seq: Vec<Degree>,
    banned: &'a [Vec<Degree>],
}

impl Dfs<'_> {
    fn run(
        &mut self,
        opt: &mut SignOptimizer,
        s: StageIn,
        r: u32,
        mults: u32,
    ) -> Result<(), RemezError> {
        if r == 0 {
            let tau = s.tau();
            // Within 1e−6 of the target the multi-precision rebuild decides (optimal_composite).
            if tau <= self.target * (1.0 + 1e-6) && !self.banned.contains(&self.seq) {
                let better = match &self.best {
                    None => true,
                    Some((m, t, _)) => mults < *m || (mults == *m && tau < *t),
                };
                if better {
                    self.best = Some((mults, tau, self.seq.clone()));
                }
            }
            return Ok(());
        }
        let lower =
            mults.saturating_add(self.fill.get(r as usize).copied().unwrap_or(u32::MAX / 4));
        if let Some((m, _, _)) = &self.best {
            if lower > *m {
                return Ok(());
            }
        }
        if !opt.feasible(s, r, self.beta)? {
            return Ok(());
        }
        for k in 2..=r.min(6) {
            if r - k == 1 {
                continue;
            }
            let Some(degs) = self.pareto.get(k as usize) else {
                continue;
            };
            // Highest degree first: once a degree cannot reach the target, no lower degree of
            // this depth can (its stage error is larger), so the loop stops there.
            for d in degs.iter().rev() {
                let c = odd_bsgs_cost(*d);
                let lb = mults
                    + c
                    + self
                        .fill
                        .get((r - k) as usize)
                        .copied()
                        .unwrap_or(u32::MAX / 4);
                if let Some((m, _, _)) = &self.best {
                    if lb > *m {
                        continue;
                    }
                }
                let t = opt.stage(*d, s)?;
                if !opt.feasible(StageIn::Later(t), r - k, self.beta)? {
                    break;
                }
                self.seq.push(*d);
                self.run(opt, StageIn::Later(t), r - k, mults + c)?;
                self.seq.pop();
            }
        }
        Ok(())
    }
}

/// Measured max over x ∈ [0, 1] of |x·p(x) − x| (= max over [−1,1] of |x·p(x) − |x||, p odd):
/// a dense f64 grid (uniform on [0,1] plus a finer one on [0, 4ε]), then the largest local
/// maxima refined by golden-section search in 256-bit arithmetic. Returns (max, argmax).
pub fn measure_max_dev(c: &CompositeSign) -> (f64, f64) {
    let p = c.poly();
    let eps = c.eps().to_f64();
    let f = |x: f64| (x * p.eval_f64(x) - x).abs();
    let mut pts: Vec<f64> = Vec::new();
    let n1 = 1 << 15;
    for i in 0..=n1 {
        pts.push(f64::from(i) / f64::from(n1));
    }
    let n2 = 1 << 13;
    let hi = (4.0 * eps).min(1.0);
    for i in 0..=n2 {
        pts.push(hi * f64::from(i) / f64::from(n2));
    }
    pts.sort_by(f64::total_cmp);
    pts.dedup();
    let vals: Vec<f64> = pts.iter().map(|x| f(*x)).collect();
    // Local maxima of the sampled values, largest first.
    let mut cands: Vec<(f64, usize)> = Vec::new();
    for i in 0..vals.len() {
        let v = vals.get(i).copied().unwrap_or(0.0);
        let l = if i == 0 {
            f64::NEG_INFINITY
        } else {
            vals.get(i - 1).copied().unwrap_or(0.0)
        };
        let r = vals.get(i + 1).copied().unwrap_or(f64::NEG_INFINITY);
        if v >= l && v >= r {
            cands.push((v, i));
        }
    }
    cands.sort_by(|a, b| b.0.total_cmp(&a.0));
    let prec = 256;
    let fr = |x: f64| -> f64 {
        let xf = Float::with_val(prec, x);
        let y = p.eval_float(&xf, prec);
        let v = Float::with_val(prec, &xf * &y) - &xf;
        v.abs().to_f64()
    };
    let mut best = (0.0f64, 0.0f64);
    for (_, i) in cands.iter().take(12) {
        let lo = pts.get(i.saturating_sub(1)).copied().unwrap_or(0.0);
        let hi = pts.get(i + 1).copied().unwrap_or(1.0);
        // Golden-section maximisation on [lo, hi].
        let g = 0.618_033_988_749_894_9;
        let (mut a, mut b) = (lo, hi);
        let mut x1 = b - g * (b - a);
        let mut x2 = a + g * (b - a);
        let mut f1 = fr(x1);
        let mut f2 = fr(x2);
        for _ in 0..60 {
            if f1 > f2 {
                b = x2;
                x2 = x1;
                f2 = f1;
                x1 = b - g * (b - a);
                f1 = fr(x1);
            } else {
                a = x1;
                x1 = x2;
                f1 = f2;
                x2 = a + g * (b - a);
                f2 = fr(x2);
            }
        }
        for (x, v) in [(x1, f1), (x2, f2), (lo, fr(lo)), (hi, fr(hi))] {
            if v > best.0 {
                best = (v, x);
            }
        }
    }
    best
}

/// Outcome of checking one ζ: the composite, its measured max |x·p(x) − |x|| and whether it
/// meets 2^{1−α}.
#[derive(Debug, Clone)]
pub struct ZetaTrial {
    /// ζ tried.
    pub zeta: u32,
    /// The optimised composite for ε = ζ·2^−α.
    pub sign: CompositeSign,
    /// Non-scalar multiplications of the degree set.
    pub mults: u32,
    /// Measured max over [−1,1] of |x p(x) − |x||.
    pub max_dev: f64,
    /// max_dev ≤ 2^{1−α}.
    pub ok: bool,
}

/// Check ζ at α: optimise degrees for (α−1, ζ·2^−α)-closeness and measure condition (1).
///
/// # Errors
/// As [`SignOptimizer::optimal_composite`].
pub fn try_zeta(opt: &mut SignOptimizer, alpha: u32, zeta: u32) -> Result<ZetaTrial, RemezError> {
    let eps = eps_from_zeta(alpha, zeta);
    let (o, sign) = opt.optimal_composite(Some(alpha), Some(zeta), &eps, alpha - 1)?;
    let (max_dev, _) = measure_max_dev(&sign);
    let ok = max_dev <= 2f64.powi(1 - i32::try_from(alpha).unwrap_or(30));
    Ok(ZetaTrial {
        zeta,
        sign,
        mults: o.mults,
        max_dev,
        ok,
    })
}

/// Check a given degree set at (α, ζ): build it and measure condition (1).
///
/// # Errors
/// As [`composite_with_zeta`].
pub fn check_zeta_degrees(
    alpha: u32,
    zeta: u32,
    degrees: &[Degree],
) -> Result<ZetaTrial, RemezError> {
    let sign = composite_with_zeta(alpha, zeta, degrees)?;
    let (max_dev, _) = measure_max_dev(&sign);
    let ok = max_dev <= 2f64.powi(1 - i32::try_from(alpha).unwrap_or(30));
    let mults = degrees.iter().map(|d| odd_bsgs_cost(*d)).sum();
    Ok(ZetaTrial {
        zeta,
        sign,
        mults,
        max_dev,
        ok,
    })
}

/// The ζ search at one α (see the module docs), with every trial kept for reports.
#[derive(Debug, Clone)]
pub struct ZetaSearch {
    /// α searched (β = α − 1).
    pub alpha: u32,
    /// Every ζ tried, in order 1, 2, …, up to and including the first failure.
    pub trials: Vec<ZetaTrial>,
    /// The selected ζ: the last one before the first failure.
    pub zeta: u32,
}

impl ZetaSearch {
    /// The trial of the selected ζ.
    pub fn selected(&self) -> Option<&ZetaTrial> {
        self.trials.iter().find(|t| t.zeta == self.zeta)
    }
    /// The first failing trial (ζ + 1), if the search hit one before ε reached 1.
    pub fn first_failure(&self) -> Option<&ZetaTrial> {
        self.trials.iter().find(|t| !t.ok)
    }
}

/// ζ search at α: for ζ = 1, 2, … (while ε = ζ·2^−α < 1) optimise the degrees for
/// (α−1, ζ·2^−α)-closeness and measure condition (1); stop at the first ζ that fails and select
/// the one before it. Condition (1) always holds for ζ ≤ 2 (|x(1 − p(x))| ≤ x ≤ ε for x < ε)
/// and fails once ε is too wide for the transition region, so the selected ζ is the largest
/// one of the initial run of successes; this reproduces Table 1 for α = 6..14 (α = 4, 5: see
/// the README).
///
/// # Errors
/// [`RemezError::AlphaOutOfRange`] unless 1 ≤ α ≤ 30; [`RemezError::NoZeta`] when ζ = 1
/// already fails; optimizer and Remez failures.
pub fn zeta_search(opt: &mut SignOptimizer, alpha: u32) -> Result<ZetaSearch, RemezError> {
    if !(1..=30).contains(&alpha) {
        return Err(RemezError::AlphaOutOfRange {
            alpha: i64::from(alpha),
            min: 1,
            max: 30,
        });
    }
    let mut trials = Vec::new();
    let mut zeta = 0;
    let limit = 1u64 << alpha;
    let mut z = 1u32;
    while u64::from(z) < limit {
        let t = try_zeta(opt, alpha, z)?;
        let ok = t.ok;
        trials.push(t);
        if !ok {
            break;
        }
        zeta = z;
        z += 1;
    }
    if zeta == 0 {
        return Err(RemezError::NoZeta { alpha, max_zeta: z });
    }
    Ok(ZetaSearch {
        alpha,
        trials,
        zeta,
    })
}

/// The optimal composite sign polynomial for α (paper §2.2, Table 1): the ζ search of
/// [`zeta_search`] with the degree optimizer, α ∈ 1..=30 (β = α − 1).
///
/// # Errors
/// As [`zeta_search`].
pub fn optimal_sign(alpha: u32) -> Result<CompositeSign, RemezError> {
    let mut opt = SignOptimizer::new();
    let s = zeta_search(&mut opt, alpha)?;
    s.selected()
        .map(|t| t.sign.clone())
        .ok_or(RemezError::NoZeta {
            alpha,
            max_zeta: s.zeta,
        })
}

/// The (β, ε)-close composite with optimal degrees (minimal depth, then multiplications).
///
/// # Errors
/// As [`SignOptimizer::optimal_composite`].
pub fn optimal_sign_for(eps: &Float, beta: u32) -> Result<CompositeSign, RemezError> {
    super::composite::check_eps(eps)?;
    let mut opt = SignOptimizer::new();
    opt.optimal_composite(None, None, eps, beta).map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pareto_sets() {
        let d = |v: &[u32]| v.iter().map(|x| Degree(*x)).collect::<Vec<_>>();
        assert_eq!(pareto_degrees(3), d(&[5, 7]));
        assert_eq!(pareto_degrees(4), d(&[9, 11, 13, 15]));
        assert_eq!(pareto_degrees(5), d(&[19, 23, 27, 29, 31]));
        assert_eq!(pareto_degrees(6), d(&[39, 43, 47, 55, 59, 61, 63]));
    }

    /// Golden values from the paper's Table 1 (degrees for the paper's ζ).
    #[test]
    fn optimizer_reproduces_table1_degrees() {
        let mut opt = SignOptimizer::new();
        for (alpha, zeta, degs, depth) in super::super::TABLE1.iter() {
            let eps = eps_from_zeta(*alpha, *zeta).to_f64();
            let o = opt.optimize(eps, alpha - 1).unwrap();
            let want: Vec<Degree> = degs.iter().map(|d| Degree(*d)).collect();
            assert_eq!(o.degrees, want, "α = {alpha}");
            assert_eq!(o.depth + 1, *depth, "α = {alpha}");
        }
    }

    #[test]
    fn zeta_16_fails_at_alpha_14() {
        // FACTS (independent check): with ζ = 16 and {15,27,29} the bound 2^−13 fails.
        let t = check_zeta_degrees(14, 16, &[Degree(15), Degree(27), Degree(29)]).unwrap();
        assert!(!t.ok);
        assert!(t.sign.log2_tau() > -13.0);
        let t = check_zeta_degrees(14, 17, &[Degree(15), Degree(27), Degree(29)]).unwrap();
        assert!(t.ok);
        // FACTS: max |x p(x) − |x|| ≈ 1.207e−4 at α = 14.
        assert!((t.max_dev - 1.207e-4).abs() < 0.002e-4, "{}", t.max_dev);
    }

    #[test]
    fn bad_input() {
        let mut opt = SignOptimizer::new();
        assert!(matches!(
            opt.optimize(1.5, 3),
            Err(RemezError::EpsOutOfRange { .. })
        ));
        assert!(matches!(
            opt.optimize(0.1, 41),
            Err(RemezError::BetaOutOfRange { .. })
        ));
        assert!(matches!(
            zeta_search(&mut opt, 0),
            Err(RemezError::AlphaOutOfRange { .. })
        ));
        assert!(matches!(
            zeta_search(&mut opt, 31),
            Err(RemezError::AlphaOutOfRange { .. })
        ));
    }
}
