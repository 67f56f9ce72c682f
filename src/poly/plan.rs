//! Evaluation plans for odd polynomials: straight-line (SSA) programs that can be replayed on
//! any number type — f64, rug `Float`, and (in `ckks`) ciphertexts — together with their cost:
//! multiplicative depth and number of non-scalar multiplications (paper §2.2: Table 1's depth
//! column; Lee–Lee–No–Kim's cost model of the odd baby-step giant-step evaluation).
//!
//! # Level model (what `depth()` counts)
//! The input x is at level 0. Then, as in CKKS where every multiplication by a non-integer
//! value is followed by a rescaling:
//! - `Mul(a, b)` (non-scalar): max(level a, level b) + 1;
//! - `MulConst(a, k)` (by the real constant `coeffs[k]`): level a + 1;
//! - `MulInt(a, n)` (by a small integer), `AddConst`, `Add`, `Sub`: no level
//!   (`Add`/`Sub` take the max of their operands).
//!
//! # Odd BSGS
//! [`EvalPlan::odd_bsgs`] evaluates p(x) = Σ_j s_j S_j(x) in the scaled Chebyshev basis
//! S_j(x) = b^j·T_j(x/b) of the component's input interval [−b, b]. The scaling is folded into
//! the recurrences, which then only need integer multiples and additive constants:
//!
//! S_{2m} = 2·S_m² − b^{2m},  S_{m+n} = 2·S_m·S_n − b^{2n}·S_{m−n}  (m > n),
//!
//! so S_j sits at level ⌈log₂ j⌉ exactly. Baby steps are the odd S_j, j < 2^l, and the powers
//! S_2, S_4, …, S_{2^G}; a polynomial of degree e that must be ready at level L is either a
//! *leaf* (e < 2^l, Σ s_j·S_j, level ⌈log₂ e⌉ + 1) or is divided by a power S_M, M = 2^g ≤ e,
//! g ≤ L − 1: p = Q·S_M + R (Chebyshev long division, S_j = 2S_M S_{j−M} − b^{2min(M,j−M)}
//! S_{|j−2M|}), with Q ready at level L − 1 and R at level L, costing one non-scalar
//! multiplication. A small dynamic program over (l, G) and the split choices minimises the
//! number of non-scalar multiplications subject to depth exactly ⌈log₂(d+1)⌉. For odd degrees
//! 1..63 this reproduces the reference counts of Lee–Lee–No–Kim
//! (0 2 3 5 5 6 7 8 8 8 9 9 10 10 11 12 11 11 11 11 12 12 13 13 14 14 14 14 15 15 16 17).

use std::collections::HashMap;

use rug::Float;

use super::{odd_power_to_chebyshev, Degree, OddPoly};

/// One instruction of an [`EvalPlan`]; operands index earlier instructions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Op {
    /// The input x (level 0).
    Input,
    /// Non-scalar product of two values (consumes one level).
    Mul(usize, usize),
    /// Sum of two values.
    Add(usize, usize),
    /// Difference of two values.
    Sub(usize, usize),
    /// Product with the real constant `coeffs[k]` (consumes one level).
    MulConst(usize, usize),
    /// Product with a small integer (free: no rescaling).
    MulInt(usize, i64),
    /// Sum with the real constant `coeffs[k]` (free).
    AddConst(usize, usize),
}

/// Arithmetic an [`EvalPlan`] needs from a number type (f64, rug `Float`, ciphertexts).
pub trait PlanArith: Clone {
    /// Non-scalar product.
    fn mul(&self, other: &Self) -> Self;
    /// Sum.
    fn add(&self, other: &Self) -> Self;
    /// Difference.
    fn sub(&self, other: &Self) -> Self;
    /// Product with a real constant.
    fn mul_const(&self, c: &Float) -> Self;
    /// Product with an integer.
    fn mul_int(&self, n: i64) -> Self;
    /// Sum with a real constant.
    fn add_const(&self, c: &Float) -> Self;
}

impl PlanArith for f64 {
    fn mul(&self, other: &Self) -> Self {
        self * other
    }
    fn add(&self, other: &Self) -> Self {
        self + other
    }
    fn sub(&self, other: &Self) -> Self {
        self - other
    }
    fn mul_const(&self, c: &Float) -> Self {
        self * c.to_f64()
    }
    fn mul_int(&self, n: i64) -> Self {
        self * n as f64
    }
    fn add_const(&self, c: &Float) -> Self {
        self + c.to_f64()
    }
}

impl PlanArith for Float {
    fn mul(&self, other: &Self) -> Self {
        Float::with_val(self.prec(), self * other)
    }
    fn add(&self, other: &Self) -> Self {
        Float::with_val(self.prec(), self + other)
    }
    fn sub(&self, other: &Self) -> Self {
        Float::with_val(self.prec(), self - other)
    }
    fn mul_const(&self, c: &Float) -> Self {
        Float::with_val(self.prec(), self * c)
    }
    fn mul_int(&self, n: i64) -> Self {
        Float::with_val(self.prec(), self * n)
    }
    fn add_const(&self, c: &Float) -> Self {
        Float::with_val(self.prec(), self + c)
    }
}

/// A straight-line program evaluating one polynomial (see the module docs for the level
/// model).
#[derive(Debug, Clone, PartialEq)]
pub struct EvalPlan {
    /// Instructions in order; operands refer to earlier indices.
    pub ops: Vec<Op>,
    /// Real constants referenced by `MulConst` / `AddConst`.
    pub coeffs: Vec<Float>,
    /// Index of the result.
    pub output: usize,
}

impl EvalPlan {
    /// Level of every instruction under the module's level model.
    pub fn levels(&self) -> Vec<u32> {
        let mut lv: Vec<u32> = Vec::with_capacity(self.ops.len());
        for op in &self.ops {
            let get = |i: usize| lv.get(i).copied().unwrap_or(0);
            let l = match *op {
                Op::Input => 0,
                Op::Mul(a, b) => get(a).max(get(b)) + 1,
                Op::Add(a, b) | Op::Sub(a, b) => get(a).max(get(b)),
                Op::MulConst(a, _) => get(a) + 1,
                Op::MulInt(a, _) | Op::AddConst(a, _) => get(a),
            };
            lv.push(l);
        }
        lv
    }

    /// Multiplicative depth of the output.
    pub fn depth(&self) -> u32 {
        self.levels().get(self.output).copied().unwrap_or(0)
    }

    /// Number of non-scalar multiplications (`Mul` instructions).
    pub fn nonscalar_mults(&self) -> u32 {
        let n = self.ops.iter().filter(|o| matches!(o, Op::Mul(..))).count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Number of scalar multiplications (`MulConst`).
    pub fn scalar_mults(&self) -> u32 {
        let n = self
            .ops
            .iter()
            .filter(|o| matches!(o, Op::MulConst(..)))
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Replay the plan on `x`. A malformed plan (an operand index not before its use) yields
    /// `None`; plans built by this module are always well formed.
    pub fn try_eval<T: PlanArith>(&self, x: &T) -> Option<T> {
        let mut v: Vec<T> = Vec::with_capacity(self.ops.len());
        for op in &self.ops {
            let r = match *op {
                Op::Input => x.clone(),
                Op::Mul(a, b) => v.get(a)?.mul(v.get(b)?),
                Op::Add(a, b) => v.get(a)?.add(v.get(b)?),
                Op::Sub(a, b) => v.get(a)?.sub(v.get(b)?),
                Op::MulConst(a, k) => v.get(a)?.mul_const(self.coeffs.get(k)?),
                Op::MulInt(a, n) => v.get(a)?.mul_int(n),
                Op::AddConst(a, k) => v.get(a)?.add_const(self.coeffs.get(k)?),
            };
            v.push(r);
        }
        v.get(self.output).cloned()
    }

    /// Replay the plan on `x` (the input itself for a malformed plan, which this module never
    /// builds).
    pub fn eval<T: PlanArith>(&self, x: &T) -> T {
        self.try_eval(x).unwrap_or_else(|| x.clone())
    }

    /// Horner's rule in x²: p(x) = x·(c_1 + x²(c_3 + x²(…))). For n = (d+1)/2 ≥ 2
    /// coefficients: n non-scalar multiplications and depth n + 1; for n = 1: 0 and 1.
    pub fn horner(p: &OddPoly) -> Self {
        let mut b = Builder::default();
        let x = b.push(Op::Input);
        let c = p.odd_coeffs();
        let out = match c {
            [] => x,
            [c1] => {
                let k = b.constant(c1.clone());
                b.push(Op::MulConst(x, k))
            }
            [.., last] => {
                let u = b.push(Op::Mul(x, x));
                let kl = b.constant(last.clone());
                let mut acc = b.push(Op::MulConst(u, kl));
                let n = c.len();
                for (i, cj) in c.iter().enumerate().rev().skip(1) {
                    if i + 2 < n {
                        acc = b.push(Op::Mul(acc, u));
                    }
                    let k = b.constant(cj.clone());
                    acc = b.push(Op::AddConst(acc, k));
                }
                b.push(Op::Mul(acc, x))
            }
        };
        b.finish(out)
    }

    /// Odd baby-step giant-step plan in the scaled Chebyshev basis of [−1, 1] (b = 1).
    pub fn odd_bsgs(p: &OddPoly) -> Self {
        Self::odd_bsgs_on(p, &Float::with_val(64, 1))
    }

    /// Odd baby-step giant-step plan in the basis S_j(x) = b^j T_j(x/b) of the input
    /// interval [−b, b] (module docs): depth ⌈log₂(d+1)⌉ and the minimum number of non-scalar
    /// multiplications found by [`odd_bsgs_cost`].
    pub fn odd_bsgs_on(p: &OddPoly, b: &Float) -> Self {
        let d = p.degree().0;
        let prec = p.max_prec().max(b.prec()) + 4 * d + 128;
        let bw = Float::with_val(prec, b);
        // s_j = a_k / b^j, with p = Σ a_k T_{2k+1}(x/b).
        let cheb = odd_power_to_chebyshev(p.odd_coeffs(), &bw, prec);
        let mut s: Vec<Float> = Vec::with_capacity(cheb.len());
        let mut bj = bw.clone();
        let b2 = Float::with_val(prec, &bw * &bw);
        for a in cheb {
            s.push(Float::with_val(prec, &a / &bj));
            bj *= &b2;
        }
        // Dense vector indexed by the power j (even entries zero).
        let mut dense = vec![Float::with_val(prec, 0); d as usize + 1];
        for (k, v) in s.into_iter().enumerate() {
            if let Some(slot) = dense.get_mut(2 * k + 1) {
                *slot = v;
            }
        }
        let target = Degree(d).depth();
        let choice = best_strategy(d);
        let (l, g_max) = (choice.l, choice.g);
        let mut bld = Builder::default();
        let x = bld.push(Op::Input);
        let is_one = bw == 1;
        let mut gen = Gen {
            b: &mut bld,
            bw: &bw,
            prec,
            is_one,
            s: HashMap::new(),
            memo: choice.memo,
            l,
            g_max,
        };
        gen.s.insert(1, x);
        // Powers S_2 … S_{2^G}.
        for g in 1..=g_max {
            gen.power(g);
        }
        // Odd baby steps S_3 … S_{2^l − 1}.
        let mut j = 3u32;
        while j < (1u32 << l) {
            gen.baby(j);
            j += 2;
        }
        let out = gen.eval(dense, target).unwrap_or_else(|| {
            let z = gen.b.constant(Float::with_val(prec, 0));
            gen.b.push(Op::MulConst(x, z))
        });
        bld.finish(out)
    }
}

#[derive(Default)]
struct Builder {
    ops: Vec<Op>,
    coeffs: Vec<Float>,
}

impl Builder {
    fn push(&mut self, op: Op) -> usize {
        self.ops.push(op);
        self.ops.len() - 1
    }
    fn constant(&mut self, c: Float) -> usize {
        self.coeffs.push(c);
        self.coeffs.len() - 1
    }
    fn finish(self, output: usize) -> EvalPlan {
        EvalPlan {
            ops: self.ops,
            coeffs: self.coeffs,
            output,
        }
    }
}

/// What the dynamic program decided for a polynomial of degree e needed at level L.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Leaf,
    Split(u32),
}

/// The chosen strategy for one degree: baby-step size 2^l, largest power 2^G, and the
/// per-(e, L) decisions.
struct Strategy {
    l: u32,
    g: u32,
    memo: Memo,
    total: u32,
}

type Memo = HashMap<(u32, u32), (Option<u32>, Step)>;

fn clog2(n: u32) -> u32 {
    if n <= 1 {
        0
    } else {
        32 - (n - 1).leading_zeros()
    }
}

/// Memoised DP: minimal combination mults for a generic odd polynomial of degree e at level
/// ≤ L with baby size 2^l and powers up to 2^G; `None` when impossible.
fn dp(e: u32, lvl: u32, l: u32, g_max: u32, memo: &mut Memo) -> Option<u32> {
    if let Some((c, _)) = memo.get(&(e, lvl)) {
        return *c;
    }
    let mut best: Option<(u32, Step)> = None;
    if e <= 1 {
        if lvl >= 1 {
            best = Some((0, Step::Leaf));
        }
    } else {
        if e < (1 << l) && lvl > clog2(e) {
            best = Some((0, Step::Leaf));
        }
        for g in 1..=g_max {
            let m = 1u32 << g;
            if m > e || g + 1 > lvl {
                continue;
            }
            let q = dp(e - m, lvl - 1, l, g_max, memo);
            let r = dp(m - 1, lvl, l, g_max, memo);
            if let (Some(q), Some(r)) = (q, r) {
                let c = 1 + q + r;
                if best.is_none_or(|(b, _)| c < b) {
                    best = Some((c, Step::Split(g)));
                }
            }
        }
    }
    let out = best.map(|(c, _)| c);
    let step = best.map_or(Step::Leaf, |(_, s)| s);
    memo.insert((e, lvl), (out, step));
    out
}

fn best_strategy(d: u32) -> Strategy {
    let target = Degree(d).depth();
    let mut best: Option<Strategy> = None;
    for l in 1..=7u32 {
        for g in l.saturating_sub(1)..=7 {
            let mut memo = HashMap::new();
            let Some(c) = dp(d, target, l, g, &mut memo) else {
                continue;
            };
            let total = g + (1u32 << (l - 1)) - 1 + c;
            if best.as_ref().is_none_or(|b| total < b.total) {
                best = Some(Strategy { l, g, memo, total });
            }
        }
    }
    best.unwrap_or(Strategy {
        l: 1,
        g: 0,
        memo: HashMap::new(),
        total: 0,
    })
}

/// Non-scalar multiplications of [`EvalPlan::odd_bsgs`] for a generic odd polynomial of degree
/// d (all coefficients non-zero), at depth ⌈log₂(d+1)⌉.
///
/// Degrees up to 63 (the optimizer's range, queried in its inner loop) are computed once per
/// process and then looked up.
pub fn odd_bsgs_cost(d: Degree) -> u32 {
    static TABLE: std::sync::OnceLock<Vec<u32>> = std::sync::OnceLock::new();
    if d.0 % 2 == 1 {
        let table =
            TABLE.get_or_init(|| (0..32u32).map(|i| best_strategy(2 * i + 1).total).collect());
        if let Some(c) = table.get((d.0 / 2) as usize) {
            return *c;
        }
    }
    best_strategy(d.0).total
}

struct Gen<'a> {
    b: &'a mut Builder,
    bw: &'a Float,
    prec: u32,
    is_one: bool,
    s: HashMap<u32, usize>,
    memo: Memo,
    l: u32,
    g_max: u32,
}

impl Gen<'_> {
    fn bpow(&self, e: u32) -> Float {
        {
            use rug::ops::Pow;
            Float::with_val(self.prec, self.bw.pow(e))
        }
    }

    fn node(&self, j: u32) -> usize {
        self.s.get(&j).copied().unwrap_or(0)
    }

    /// S_{2^g} = 2·S_{2^{g−1}}² − b^{2^g}.
    fn power(&mut self, g: u32) {
        let h = self.node(1 << (g - 1));
        let sq = self.b.push(Op::Mul(h, h));
        let two = self.b.push(Op::MulInt(sq, 2));
        let k = self.b.constant(-self.bpow(1 << g));
        let r = self.b.push(Op::AddConst(two, k));
        self.s.insert(1 << g, r);
    }

    /// Odd S_j = 2·S_P·S_{j−P} − b^{2(j−P)}·S_{2P−j}, P the largest power of two below j.
    fn baby(&mut self, j: u32) {
        let p = 1u32 << (31 - j.leading_zeros());
        let a = self.node(p);
        let c = self.node(j - p);
        let prod = self.b.push(Op::Mul(a, c));
        let two = self.b.push(Op::MulInt(prod, 2));
        let low = self.node(2 * p - j);
        let low = if self.is_one {
            low
        } else {
            let k = self.b.constant(self.bpow(2 * (j - p)));
            self.b.push(Op::MulConst(low, k))
        };
        let r = self.b.push(Op::Sub(two, low));
        self.s.insert(j, r);
    }

    /// Evaluate Σ c_j S_j (dense by j) at level ≤ lvl following the DP table.
    fn eval(&mut self, mut c: Vec<Float>, lvl: u32) -> Option<usize> {
        let e = u32::try_from(c.iter().rposition(|v| !v.is_zero())?).ok()?;
        let step = if e <= 1 {
            Step::Leaf
        } else {
            dp(e, lvl, self.l, self.g_max, &mut self.memo)?;
            self.memo.get(&(e, lvl)).map_or(Step::Leaf, |(_, s)| *s)
        };
        match step {
            Step::Leaf if e < (1 << self.l) || e <= 1 => {
                let mut acc: Option<usize> = None;
                for (j, cj) in c.iter().enumerate() {
                    if cj.is_zero() {
                        continue;
                    }
                    let sj = self.node(u32::try_from(j).ok()?);
                    let k = self.b.constant(cj.clone());
                    let t = self.b.push(Op::MulConst(sj, k));
                    acc = Some(match acc {
                        None => t,
                        Some(a) => self.b.push(Op::Add(a, t)),
                    });
                }
                acc
            }
            Step::Leaf => None,
            Step::Split(g) => {
                let m = 1usize << g;
                let mut q = vec![Float::with_val(self.prec, 0); c.len()];
                let top = c.len() - 1;
                for j in (m..=top).rev() {
                    let cj = c.get(j).cloned()?;
                    if cj.is_zero() {
                        continue;
                    }
                    // S_j = 2·S_M·S_{j−M} − b^{2·min(M, j−M)}·S_{|j−2M|}
                    *q.get_mut(j - m)? += Float::with_val(self.prec, &cj * 2u32);
                    let low = j.abs_diff(2 * m);
                    let f = self.bpow(2 * u32::try_from(m.min(j - m)).ok()?);
                    *c.get_mut(low)? -= Float::with_val(self.prec, &cj * &f);
                    *c.get_mut(j)? = Float::with_val(self.prec, 0);
                }
                let qn = self.eval(q, lvl - 1);
                let rn = self.eval(c, lvl);
                let sm = self.node(1 << g);
                let prod = qn.map(|qn| self.b.push(Op::Mul(qn, sm)));
                match (prod, rn) {
                    (Some(p), Some(r)) => Some(self.b.push(Op::Add(p, r))),
                    (Some(p), None) => Some(p),
                    (None, r) => r,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// FACTS (reference odd BSGS of Lee–Lee–No–Kim), odd degrees 1, 3, …, 63.
    const REFERENCE: [u32; 32] = [
        0, 2, 3, 5, 5, 6, 7, 8, 8, 8, 9, 9, 10, 10, 11, 12, 11, 11, 11, 11, 12, 12, 13, 13, 14, 14,
        14, 14, 15, 15, 16, 17,
    ];

    fn random_poly(d: u32, seed: u64, prec: u32) -> OddPoly {
        let mut x = seed;
        let c = (0..=d / 2)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let v = ((x >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0;
                Float::with_val(prec, v)
            })
            .collect();
        OddPoly::from_odd_coeffs(c).unwrap()
    }

    #[test]
    fn bsgs_counts_match_reference_and_depth_is_optimal() {
        for (i, want) in REFERENCE.iter().enumerate() {
            let d = 2 * i as u32 + 1;
            assert_eq!(odd_bsgs_cost(Degree(d)), *want, "degree {d}");
            let p = random_poly(d, d as u64, 100);
            for b in [1.0, 1.9] {
                let plan = EvalPlan::odd_bsgs_on(&p, &Float::with_val(64, b));
                assert_eq!(plan.nonscalar_mults(), *want, "degree {d} b {b}");
                assert_eq!(plan.depth(), Degree(d).depth(), "degree {d} b {b}");
            }
        }
    }

    #[test]
    fn horner_costs() {
        for d in [1u32, 3, 7, 15, 27] {
            let p = random_poly(d, 7, 100);
            let plan = EvalPlan::horner(&p);
            let n = d.div_ceil(2);
            let (m, dep) = if n == 1 { (0, 1) } else { (n, n + 1) };
            assert_eq!(plan.nonscalar_mults(), m, "{d}");
            assert_eq!(plan.depth(), dep, "{d}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]
        #[test]
        fn plans_equal_direct_evaluation(k in 0u32..32, seed in any::<u64>(), x in -1.0f64..1.0, b in 1.0f64..2.0) {
            let d = 2 * k + 1;
            let p = random_poly(d, seed, 200);
            let xf = Float::with_val(200, x * b);
            let direct = p.eval_float(&xf, 200);
            for plan in [EvalPlan::horner(&p), EvalPlan::odd_bsgs_on(&p, &Float::with_val(64, b))] {
                let v = plan.eval(&xf);
                // |p| ≤ Σ|c_j| b^j ≤ 32·2^63; 200-bit arithmetic leaves ≥ 100 bits.
                let err = Float::with_val(200, &v - &direct).abs().to_f64();
                prop_assert!(err <= 1e-25 * (1.0 + direct.to_f64().abs()) * b.powi(d as i32), "d={} err={}", d, err);
                let vf = plan.eval(&(x * b));
                prop_assert!((vf - direct.to_f64()).abs() <= 1e-6 * b.powi(d as i32) * 64.0);
            }
        }
    }
}
